"""Trainer adapters: TRL reward_funcs and verl compute_score over rewardd.

TRL (GRPOTrainer)::

    from rewardd_client import Client
    from rewardd_client.adapters import trl_reward_funcs
    funcs = trl_reward_funcs(Client("http://127.0.0.1:8080"), model="rules",
                             dimensions=["format", "accuracy"], label_column="solution")
    trainer = GRPOTrainer(..., reward_funcs=funcs)

  One function per dimension (named after it, so TRL logs rewards/<dim>/mean
  and can weight each); they share one request per batch: the first call
  scores every dimension and the others reuse the answer. A dimension that
  does not apply to an item (e.g. accuracy without a label) is None, which
  TRL treats as "not applicable" (NaN, ignored by nansum/nanmean). A failed
  item raises: a failure never becomes a reward.

verl (custom_reward_function.path=<this file's folder>/verl_reward.py)::

  compute_score(data_source, solution_str, ground_truth, extra_info=None)
  returns {"score": reward, <dim>: value, …}; configure with REWARDD_URL,
  REWARDD_MODEL, REWARDD_API_KEY, REWARDD_DIMENSIONS (comma-separated).

OpenRLHF needs no adapter: --reward.remote_url http://HOST:8080/get_reward
"""
import hashlib
import json
import threading

from .client import ItemError, RewarddError


def _text(x):
    """A completion/prompt as text: a string, or the last message's content."""
    if isinstance(x, str):
        return x
    if isinstance(x, list) and x and isinstance(x[-1], dict):
        return x[-1].get("content", "")
    if isinstance(x, dict):
        return x.get("content", "")
    raise TypeError("expected a string or a list of chat messages, got %r" % type(x))


def default_item(prompt, completion, label=None, reference=None):
    """The item rewardd scores for one TRL sample (override with item_builder)."""
    item = {"prompt": _text(prompt), "response": _text(completion)}
    if isinstance(prompt, list) and isinstance(completion, list):
        item["messages"] = list(prompt) + list(completion)
    if label is not None:
        item["label"] = label if isinstance(label, str) else json.dumps(label)
    if reference is not None:
        item["reference"] = reference
    return item


def trl_reward_funcs(client, model=None, dimensions=None, label_column=None,
                     reference_column=None, item_builder=default_item, include_reward=False):
    """Build TRL reward functions, one per dimension (plus "reward" if asked)."""
    if not dimensions:
        info = client.model(model) if model else client.models()["models"][0]
        dimensions = info["dimensions"]
    dimensions = list(dimensions)
    lock = threading.Lock()
    cache = {"key": None, "results": None}

    def score_batch(prompts, completions, kwargs):
        labels = kwargs.get(label_column) if label_column else None
        refs = kwargs.get(reference_column) if reference_column else None
        key = hashlib.sha256(json.dumps([prompts, completions, labels, refs],
                                        sort_keys=True, default=str).encode()).hexdigest()
        with lock:
            if cache["key"] == key:
                return cache["results"]
        items = [item_builder(p, c,
                              labels[i] if labels is not None else None,
                              refs[i] if refs is not None else None)
                 for i, (p, c) in enumerate(zip(prompts, completions))]
        results = client.scores(items, model=model, dimensions=dimensions)
        with lock:
            cache["key"], cache["results"] = key, results
        return results

    def make(dim):
        def reward_func(prompts, completions, **kwargs):
            results = score_batch(prompts, completions, kwargs)
            if dim == "reward":
                return [r.get("reward") for r in results]
            return [r["scores"].get(dim) for r in results]
        reward_func.__name__ = reward_func.__qualname__ = dim
        return reward_func

    funcs = [make(d) for d in dimensions]
    if include_reward:
        funcs.append(make("reward"))
    return funcs


def verl_compute_score(client, model=None, dimensions=None):
    """Build a verl compute_score returning {"score": reward, dim: value, …}.

    Absent dimensions are NaN so every sample has the same keys (verl makes
    one list per key). An item without a reward (none of the requested
    dimensions applies) raises RewarddError("no_reward"): verl needs a
    number, and inventing one would train on a fake reward.
    """
    def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
        item = {"response": solution_str}
        if ground_truth is not None:
            item["label"] = ground_truth if isinstance(ground_truth, str) else json.dumps(ground_truth)
        if isinstance(extra_info, dict) and isinstance(extra_info.get("prompt"), str):
            item["prompt"] = extra_info["prompt"]
        out = client.rewards([item], model=model, dimensions=dimensions)
        r = out["results"][0]
        if "error" in r:
            e = r["error"]
            raise ItemError(200, e.get("code", "item_error"), e.get("message", ""), e.get("field"), r)
        if r.get("reward") is None:
            # no dimension of the reward applies (e.g. accuracy without a label):
            # verl needs a number, and a made-up one would train on a fake reward
            raise RewarddError(200, "no_reward", "the item has no reward (no requested dimension applies)",
                               None, r)
        res = {"score": r["reward"]}
        for d in out["dimensions"]:
            res[d] = r["scores"].get(d, float("nan"))
        return res
    return compute_score
