"""verl custom reward function backed by rewardd.

    custom_reward_function.path=deploy/clients/python/verl_reward.py
    custom_reward_function.name=compute_score

Environment: REWARDD_URL (default http://127.0.0.1:8080), REWARDD_MODEL,
REWARDD_API_KEY, REWARDD_DIMENSIONS (comma-separated).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from rewardd_client import Client  # noqa: E402
from rewardd_client.adapters import verl_compute_score  # noqa: E402

_dims = os.environ.get("REWARDD_DIMENSIONS")
compute_score = verl_compute_score(
    Client(os.environ.get("REWARDD_URL", "http://127.0.0.1:8080"),
           api_key=os.environ.get("REWARDD_API_KEY")),
    model=os.environ.get("REWARDD_MODEL") or None,
    dimensions=_dims.split(",") if _dims else None)
