"""verl custom reward function backed by rewardd.

    custom_reward_function.path=deploy/clients/python/verl_reward.py
    custom_reward_function.name=compute_score        # naive / remote / rate_limited managers
    custom_reward_function.name=compute_score_async  # the same, awaited on verl's reward loop
    custom_reward_function.name=compute_score_batch  # reward_manager=batch (legacy signature)

Each returns {"score": <the model's reward>, "rewardd/<dim>": value, ...}:
verl trains on "score"; the dimensions come under a prefix so that none can
overwrite it (a seqcls head is named "score"), NaN where a dimension does not
apply, the same keys for every sample. Errors raise (the step fails): a
failure is never a reward.

Environment, read when verl loads this file (and carried with the function
when verl's remote manager pickles it to its Ray workers):
  REWARDD_URL          default http://127.0.0.1:8080
  REWARDD_MODEL        the served model (default: the first one)
  REWARDD_API_KEY      bearer key, when the server has keys
  REWARDD_DIMENSIONS   comma-separated subset of the model's dimensions
  REWARDD_PREFIX       key prefix of the dimensions (default "rewardd/")
  REWARDD_PROMPT_KEY   comma-separated extra_info keys holding the prompt
                       (default "prompt,question"); a seqcls model needs one,
                       because verl passes compute_score only the response
  REWARDD_TIMEOUT, REWARDD_RETRIES   per-request seconds (120), retries on
                       429/503/connection errors (5)

The functions below are plain module-level functions so that cloudpickle
(Ray) ships them by value; the client itself is built in each process, from
_CONFIG, the first time a function runs there.
"""
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_CONFIG = {
    "url": os.environ.get("REWARDD_URL", "http://127.0.0.1:8080"),
    "model": os.environ.get("REWARDD_MODEL", ""),
    "api_key": os.environ.get("REWARDD_API_KEY", ""),
    "dimensions": os.environ.get("REWARDD_DIMENSIONS", ""),
    "prefix": os.environ.get("REWARDD_PREFIX", "rewardd/"),
    "prompt_keys": os.environ.get("REWARDD_PROMPT_KEY", ""),
    "timeout": os.environ.get("REWARDD_TIMEOUT", ""),
    "retries": os.environ.get("REWARDD_RETRIES", ""),
}


def _scorer():
    # In a Ray worker this file's folder is not on sys.path: add it before the import.
    if _HERE not in sys.path:
        sys.path.insert(0, _HERE)
    from rewardd_client.adapters import verl_scorer_from_config
    return verl_scorer_from_config(_CONFIG)


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    return _scorer()(data_source, solution_str, ground_truth, extra_info, **kwargs)


async def compute_score_async(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    return await _scorer().acall(data_source, solution_str, ground_truth, extra_info, **kwargs)


def compute_score_batch(data_sources, solution_strs, ground_truths, extra_infos, **kwargs):
    return _scorer().batch(data_sources, solution_strs, ground_truths, extra_infos, **kwargs)


_scorer()  # import the client now, so a wrong path fails when verl loads this file
