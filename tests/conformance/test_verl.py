"""Conformance: verl's custom-reward-function paths through deploy/clients/python/verl_reward.py.

Mirrors verl-project/verl at 1dda039 (2026-08-22):
  - verl/utils/import_utils.py:95-145 load_module: the file is exec'd as
    custom_module_<hash>, not put in sys.modules;
  - verl/trainer/ppo/reward.py:32-86: compute_score wrapped as
    partial(_call_with_kwargs[_async], raw_fn, reward_kwargs), async chosen by
    inspect.iscoroutinefunction(raw_fn);
  - experimental/reward_loop/reward_manager/naive.py:34-99: extra_info from
    the dataset plus num_turns and rollout_reward_scores; a sync function run
    in the loop's default executor, an async one awaited; score =
    result["score"], every key copied into reward_extra_info;
  - experimental/reward_loop/reward_loop.py:136-141 (gather of one task per
    sample) and 365-369 compute_rm_score (sample 0's keys index every sample);
  - experimental/reward_loop/reward_manager/remote.py:26-69,108-115: the
    wrapped function handed to a Ray actor (Ray serialises it with
    cloudpickle; here Debian's python3-cloudpickle, loaded in a fresh process
    without this environment or sys.path);
  - workers/reward_manager/batch.py:47-128: compute_score(data_sources=,
    solution_strs=, ground_truths=, extra_infos=) with numpy object arrays,
    then reward_extra_info[key].append per sample.
Oracles: the same items through POST /v1/rewards, rule expectations by
construction, and for seqcls the [user, assistant] pair rendered by Jinja2 +
HF tokenizers + PyTorch (conformance_lib). Usage: test_verl.py REWARDD_EXE
"""
import asyncio
import importlib.util
import inspect
import json
import math
import os
import subprocess
import sys
from functools import partial

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import conformance_lib as L  # noqa: E402

H = L.H
try:
    import numpy as np
except ImportError:
    H.skip("/usr/bin/python3 has no numpy (Debian python3-numpy)")

EXE = sys.argv[1]
C = H.Checker("conformance-verl")
VERL_REWARD = os.path.join(L.CLIENT_DIR, "verl_reward.py")


def _call_with_kwargs(raw_fn, extra_kwargs, *args, **kwargs):  # reward.py:32-37
    return raw_fn(*args, **{**kwargs, **extra_kwargs})


async def _call_with_kwargs_async(raw_fn, extra_kwargs, *args, **kwargs):  # reward.py:40-46
    return await raw_fn(*args, **{**kwargs, **extra_kwargs})


def readme_config():
    """README.md's verl one-liner: custom_reward_function.path=… custom_reward_function.name=…"""
    line = L.readme_one_liner("verl")
    cfg = dict(kv.split("=", 1) for kv in line.split())
    path = os.path.join(H.SRC, cfg["custom_reward_function.path"])
    return path, cfg.get("custom_reward_function.name")


def load_custom(env, name, path=None):
    """get_custom_reward_fn: load_module(path) then the partial wrapper."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        path = path or VERL_REWARD
        spec = importlib.util.spec_from_file_location("custom_module_%d" % hash(os.path.abspath(path)), path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    raw = getattr(mod, name)
    if inspect.iscoroutinefunction(raw):
        return partial(_call_with_kwargs_async, raw, {})
    return partial(_call_with_kwargs, raw, {})


def naive_run(fn, samples):
    """reward_loop compute_score_batch -> NaiveRewardManager.run_single per sample, then compute_rm_score."""
    is_async = inspect.iscoroutinefunction(fn)

    async def run_single(s):
        extra_info = dict(s.get("extra_info", {}))
        extra_info["num_turns"] = None
        extra_info["rollout_reward_scores"] = {}
        kw = dict(data_source=s["data_source"], solution_str=s["response"],
                  ground_truth=s["reward_model"]["ground_truth"], extra_info=extra_info)
        if is_async:
            result = await fn(**kw)
        else:
            result = await asyncio.get_running_loop().run_in_executor(None, lambda: fn(**kw))
        if isinstance(result, dict):
            return {"reward_score": result["score"], "reward_extra_info": dict(result)}
        return {"reward_score": result, "reward_extra_info": {"acc": result}}

    async def batch():
        return await asyncio.gather(*[asyncio.create_task(run_single(s)) for s in samples])
    outs = asyncio.run(batch())
    infos = [o["reward_extra_info"] for o in outs]
    keys = list(infos[0].keys())
    extra = {k: np.array([i[k] for i in infos]) for k in keys}  # KeyError if a sample lacks a key
    return [o["reward_score"] for o in outs], extra


def direct(d, items, model, dimensions=None):
    body = {"model": model, "items": items}
    if dimensions:
        body["dimensions"] = dimensions
    r = d.request("POST", "/v1/rewards", body)
    assert r.status == 200, r.raw[:300]
    return r.json["results"]


CALL = {"name": "lookup", "arguments": {"q": "x"}}
RULES = [  # (response, ground_truth as verl's parquet gives it, accuracy, tool)
    ("<think>2+2</think><answer>4</answer>", "4", 1.0, None),
    ("<think>list</think><answer>4</answer>", np.array(["four", "4"], dtype=object), 1.0, None),
    ("<think>n</think><answer>4</answer>", np.int64(4), 1.0, None),
    ("<think>n</think><answer>4.0</answer>", 4, 1.0, None),
    ("<think>w</think><answer>5</answer>", "4", 0.0, None),
    ("<tool_call>\n" + json.dumps(CALL) + "\n</tool_call>", dict(CALL), None, (1.0, 1.0)),
]


def rules_samples():
    return [{"data_source": "gsm8k", "response": r[0], "reward_model": {"ground_truth": r[1]},
             "extra_info": {"split": "train", "index": i, "question": "What is 2 + 2?"}} for i, r in enumerate(RULES)]


def check_rules(d, scores, extra, tag):
    dims = ["format", "accuracy", "tool_name", "tool_args"]
    want = direct(d, [{"response": r[0], "label": r[1].tolist() if hasattr(r[1], "tolist") else r[1]}
                      for r in RULES], "rules", dims)
    C.check(all(L.close(a, w["reward"], 1e-6) for a, w in zip(scores, want)),
            "%s: score is the model's reward %r vs %r" % (tag, scores, [w["reward"] for w in want]))
    C.check(set(extra) >= {"score"} | {"rewardd/" + k for k in dims}, "%s: keys %s" % (tag, sorted(extra)))
    for i, r in enumerate(RULES):
        acc = extra["rewardd/accuracy"][i]
        C.check((r[2] is None and math.isnan(acc)) or acc == r[2],
                "%s row %d: accuracy %r want %r (ground_truth %r)" % (tag, i, acc, r[2], r[1]))
        tool = (extra["rewardd/tool_name"][i], extra["rewardd/tool_args"][i])
        C.check((r[3] is None and all(math.isnan(x) for x in tool)) or tool == r[3],
                "%s row %d: tool %r want %r" % (tag, i, tool, r[3]))


def test_rules(d, env):
    path, name = readme_config()
    C.check(os.path.samefile(path, VERL_REWARD) and name == "compute_score",
            "README verl one-liner names %s:%s" % (path, name))
    fn = load_custom(env, name, path)  # the README's line, as verl loads it
    C.check(not inspect.iscoroutinefunction(fn), "compute_score is sync")
    scores, extra = naive_run(fn, rules_samples())
    check_rules(d, scores, extra, "naive")
    fa = load_custom(env, "compute_score_async")
    C.check(inspect.iscoroutinefunction(fa), "compute_score_async is detected as async through the partial")
    scores, extra = naive_run(fa, rules_samples())
    check_rules(d, scores, extra, "naive async")
    # legacy batch manager: numpy object arrays, one call for the batch
    fb = load_custom(env, "compute_score_batch")
    ss = rules_samples()
    extras = np.array([s["extra_info"] for s in ss], dtype=object)
    for e in extras:
        e["rollout_reward_scores"] = {}
    out = fb(data_sources=np.array([s["data_source"] for s in ss], dtype=object),
             solution_strs=[s["response"] for s in ss],
             ground_truths=[s["reward_model"]["ground_truth"] for s in ss], extra_infos=extras)
    rei = {}
    for sc in out:  # batch.py:102-107
        for k, v in sc.items():
            rei.setdefault(k, []).append(v)
    C.check(all(len(v) == len(ss) for v in rei.values()), "batch: every key has one value per sample")
    check_rules(d, [sc["score"] for sc in out], {k: np.array(v) for k, v in rei.items()}, "batch")
    # remote: the wrapped function through cloudpickle into a fresh process
    try:
        import cloudpickle
    except ImportError:
        print("SKIP part: python3-cloudpickle missing: the remote manager's pickling not replayed")
        return
    blob = cloudpickle.dumps(fn)
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("REWARDD_") and k != "PYTHONPATH"}
    code = ("import sys, json, pickle\n"
            "fn = pickle.loads(sys.stdin.buffer.read())\n"
            "r = fn(data_source='gsm8k', solution_str=%r, ground_truth=['four', '4'], "
            "extra_info={'num_turns': None, 'rollout_reward_scores': {}})\n"
            "print(json.dumps(r))\n" % RULES[1][0])
    here = os.path.dirname(os.path.abspath(__file__))
    # verl is importable in a Ray worker; here its _call_with_kwargs lives in this test module
    child_env["PYTHONPATH"] = here
    p = subprocess.run(["/usr/bin/python3", "-c", code], input=blob, capture_output=True, env=child_env,
                       cwd=H.mkdtemp("rwd-conf-ray-"))
    got = json.loads(p.stdout) if p.returncode == 0 else None
    C.check(got is not None and got["score"] == 1.0 and got["rewardd/accuracy"] == 1.0,
            "remote: cloudpickled compute_score runs in a fresh process: %r %s" % (got, p.stderr[-500:]))
    # the adapter objects themselves pickle with plain pickle
    import pickle
    from rewardd_client import Client
    from rewardd_client.adapters import VerlScorer
    s = pickle.loads(pickle.dumps(VerlScorer(Client("http://127.0.0.1:%d" % d.port), model="rules")))
    C.check(s(None, RULES[0][0], "4")["score"] == 1.0, "VerlScorer survives plain pickle")


def test_seqcls(d, env_base, folder):
    env = dict(env_base, REWARDD_MODEL="cls_cfg")
    fn = load_custom(env, "compute_score")
    q = "What is 2 + 2?"
    resp = ["It is 4.", "Four.", "5"]
    samples = [{"data_source": "x", "response": r, "reward_model": {"ground_truth": "4"},
                "extra_info": {"question": q, "index": i}} for i, r in enumerate(resp)]
    scores, extra = naive_run(fn, samples)
    want = direct(d, [{"prompt": q, "response": r} for r in resp], "cls_cfg")
    C.check(all(L.close(a, w["reward"], 1e-6) for a, w in zip(scores, want)),
            "seqcls: score = the configured reward %r vs %r" % (scores, [w["reward"] for w in want]))
    dim = extra["rewardd/score"].tolist()
    C.check(all(L.close(a, w["scores"]["score"], 1e-6) for a, w in zip(dim, want)) and
            all(abs(a - 2 * b) < 1e-5 * max(1, abs(a)) for a, b in zip(dim, scores)),
            "seqcls: the `score` dimension is under rewardd/score and did not overwrite \"score\" (%r vs %r)"
            % (dim, scores))
    if L.have_hf_tokenizers():
        oracle = L.TrlRewardModelOracle(folder)
        ref, _ = oracle.scores([[{"role": "user", "content": q}, {"role": "assistant", "content": r}] for r in resp])
        C.check(all(L.close(a, b, 1e-4) for a, b in zip(dim, ref)),
                "seqcls: [user, assistant] == Jinja2 + HF tokenizers + torch %r vs %r" % (dim, ref))
    # the prompt as chat messages (verl's own `prompt` column layout, a numpy object array)
    msgs = np.array([{"role": "user", "content": q}], dtype=object)
    s2 = [dict(s, extra_info={"prompt": msgs}) for s in samples[:1]]
    sc2, ex2 = naive_run(fn, s2)
    C.check(L.close(ex2["rewardd/score"][0], want[0]["scores"]["score"], 1e-6),
            "seqcls: prompt from extra_info['prompt'] as messages")
    # no prompt: a clear error, nothing sent, never a number
    n0 = H.metric(d.metrics(), "rewardd_requests_total", model="cls_cfg", code="200")
    try:
        r = naive_run(fn, [dict(samples[0], extra_info={"index": 0})])
        C.check(False, "seqcls without a prompt must raise, got %r" % (r,))
    except ValueError as e:
        C.check("prompt" in str(e) and "REWARDD_PROMPT_KEY" in str(e) and "extra_info" in str(e),
                "seqcls without a prompt: %s" % e)
    C.check(H.metric(d.metrics(), "rewardd_requests_total", model="cls_cfg", code="200") == n0,
            "nothing sent without a prompt")


def test_errors(d, env):
    from rewardd_client import RewarddError
    fn = load_custom(env, "compute_score")
    try:
        r = naive_run(fn, [dict(rules_samples()[0], reward_model={"ground_truth": {"not": "a call"}})])
        C.check(False, "a refused label must raise, got %r" % (r,))
    except RewarddError as e:
        C.check(e.status == 400, "a refused ground_truth raises %s, never a 0" % e)
    fe = load_custom(dict(env, REWARDD_DIMENSIONS="accuracy"), "compute_score")
    try:
        r = naive_run(fe, [dict(rules_samples()[0], reward_model={"ground_truth": None})])
        C.check(False, "no reward must raise, got %r" % (r,))
    except RewarddError as e:
        C.check(e.code == "no_reward", "an item with no reward raises no_reward")


def main():
    work = H.mkdtemp("rwd-conf-verl-")
    with open(os.path.join(H.SRC, "config", "default.json")) as f:
        rules = json.load(f)["models"]["rules"]
    folder = L.make_seqcls(work, "cls", "qwen3", seed=7, corpus="What is 2 + 2? It is 4. Four. 5")
    models = {"rules": rules, "cls_cfg": {"path": folder, "reward": {"aggregate": {
        "mode": "weighted_sum", "terms": ["score"], "weights": {"score": 0.5}}}}}
    d = H.Daemon(EXE, {"models": models})
    try:
        env = {"REWARDD_URL": "http://127.0.0.1:%d" % d.port, "REWARDD_MODEL": "rules",
               "REWARDD_DIMENSIONS": "format,accuracy,tool_name,tool_args"}
        test_rules(d, env)
        test_seqcls(d, {"REWARDD_URL": env["REWARDD_URL"]}, folder)
        test_errors(d, env)
    finally:
        C.check(d.stop() == 0, "daemon exits 0")
    C.done()


if __name__ == "__main__":
    main()
