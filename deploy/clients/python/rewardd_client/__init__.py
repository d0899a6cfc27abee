"""rewardd_client: talk to a rewardd reward-model server.

    from rewardd_client import Client
    c = Client("http://127.0.0.1:8080")
    c.rewards([{"response": "<think>…</think><answer>42</answer>", "label": "42"}], model="rules")
"""
from .client import AsyncClient, Client, ItemError, RewarddError

__all__ = ["Client", "AsyncClient", "RewarddError", "ItemError"]
__version__ = "0.1.0"
