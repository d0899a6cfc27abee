"""OpenRLHF HEAD's remote-RM path against rewardd's POST /get_reward, replayed.

Mirrors (read at the source, OpenRLHF/OpenRLHF):
  openrlhf/utils/agent.py@04655bc3 SingleTurnAgentExecutor.execute and
    _fetch_rewards_via_http: one sample per request, a new
    aiohttp.ClientSession(timeout=ClientTimeout(total=180)) per try,
    session.post(url, json={"query","prompts","labels"}), raise_for_status(),
    response.json(); 5 tries with asyncio.sleep(1) on any error; reads
    rewards_info["rewards"], ["scores"] or ["rewards"], ["extra_logs"] or {}.
  openrlhf/trainer/ppo_utils/samples_generator.py (info["reward"],
    info["score"], then info[k] = torch.tensor([v]) for every extra_logs key).
  openrlhf/trainer/ppo_utils/experience.py@12bb0364 Experience._merge_item
    (a dict merges only the keys its items have) and split_experience_batch
    (raises ValueError "Size of info[k] (m) does not match batch_size (n)").
Labels: prompts_dataset.py gives "" without --label_key.

The dataset is mixed (labelled, unlabelled "", a tool-call label), which is
what crashed HEAD when our extra_logs keys varied per item. Oracle: the same
item through POST /v1/rewards (the configured reward), and values by
construction of the rules (format 1 for a well-formed response).
Usage: test_openrlhf.py REWARDD_EXE"""
import asyncio
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import rwd_harness as H  # noqa: E402

try:
    import aiohttp
    import torch
except ImportError as e:
    H.skip("needs python3-aiohttp and python3-torch (%s)" % e)

EXE = sys.argv[1]
C = H.Checker("test_openrlhf")
SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"


def prompt(q):
    return SYSTEM + "<|im_start|>user\n" + q + "<|im_end|>\n<|im_start|>assistant\n"


async def post_request(url, data, try_max_times=5, log=None):
    """agent.py _post_request: a new session per try, any error retried after 1 s."""
    timeout = aiohttp.ClientTimeout(total=180)
    for _ in range(try_max_times):
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                async with session.post(url, json=data) as response:
                    response.raise_for_status()
                    return await response.json()
        except aiohttp.ClientError as e:
            if log is not None:
                log.append(str(e))
        await asyncio.sleep(1)
    raise RuntimeError("Request error for %d times" % try_max_times)


async def execute(url, query, p, label, log):
    """execute(): rewards_info_list[0] -> reward, scores, extra_logs; errors leave reward None."""
    out = {"reward": None, "scores": None, "extra_logs": {}}
    try:
        info = (await asyncio.gather(post_request(url, {"query": [query], "prompts": [p], "labels": [label]},
                                                  log=log)))[0]
        out.update(reward=info.get("rewards"), scores=info.get("scores") or info.get("rewards"),
                   extra_logs=info.get("extra_logs") or {})
    except Exception as e:  # OpenRLHF only logs it
        log.append(repr(e))
    return out


def to_info(out):
    """samples_generator.py: info of one sample."""
    info = {}
    if out["reward"] is not None:
        info["reward"] = torch.tensor([out["reward"][0]])
    if out["scores"] is not None:
        info["score"] = torch.tensor([out["scores"][0]])
    for k, v in out["extra_logs"].items():
        v = v[0] if isinstance(v, list) else v
        info[k] = torch.tensor([v])
    return info


def merge_info(infos):
    """Experience._merge_item for the info dict: per key, the items that have it, concatenated."""
    result = {}
    for d in infos:
        for k, v in d.items():
            result.setdefault(k, []).append(v)
    return {k: torch.cat(v) for k, v in result.items()}


def split_info(info, batch_size):
    """split_experience_batch: every info[k] must have batch length."""
    items = [{} for _ in range(batch_size)]
    for k, v in info.items():
        if len(v) != batch_size:
            raise ValueError("Size of info[%s] (%d) does not match batch_size (%d)" % (k, len(v), batch_size))
        for i in range(batch_size):
            items[i][k] = v[i]
    return items


def samples():
    """(query, prompt, label, format oracle)."""
    out = []
    for i, (a, b) in enumerate([(2, 3), (10, 7), (4, 4), (9, 1), (6, 5), (8, 8), (3, 9), (7, 2)]):
        p = prompt("What is %d + %d?" % (a, b))
        ok = i % 3 != 2
        resp = "<think>add</think><answer>%d</answer>" % (a + b) if ok else "%d" % (a + b)
        if i % 4 == 1:
            label = ""   # no --label_key
        elif i % 4 == 3:
            label = {"name": "add", "arguments": {"a": a, "b": b}}
            resp = '<tool_call>{"name": "add", "arguments": {"a": %d, "b": %d}}</tool_call>' % (a, b)
            ok = None
        else:
            label = str(a + b)
        out.append((p + resp + "<|im_end|>", p, label, ok))
    return out


async def run_all(url, ss, log):
    return await asyncio.gather(*[execute(url, q, p, lab, log) for q, p, lab, _ in ss])


def main():
    d = H.Daemon(EXE, {"models": {"rm": {"kind": "rules",
                                          "compat": {"scores": {"from": "reward", "transform": "linear",
                                                                "min": 0, "max": 1}}}}})
    try:
        url = "http://127.0.0.1:%d/get_reward?model=rm" % d.port
        ss = samples()
        log = []
        outs = asyncio.run(run_all(url, ss, log))
        C.check(all(o["reward"] is not None for o in outs), "every sample got a reward: %s" % log[:3])
        keys = [tuple(sorted(o["extra_logs"])) for o in outs]
        C.check(len(set(keys)) == 1, "one extra_logs key set for every sample: %s" % set(keys))
        C.check("score" not in keys[0] and "reward" not in keys[0], "no key overwrites info[score]/[reward]")
        # the oracle: /v1/rewards on the same items
        for (q, p, lab, fmt), o in zip(ss, outs):
            item = {"response": q, "prompt": p}
            if lab != "":
                item["label"] = lab
            r = d.request("POST", "/v1/rewards", body={"model": "rm", "items": [item]})
            want = r.json["results"][0].get("reward") if r.status == 200 else None
            C.check(want is not None and abs(o["reward"][0] - want) < 1e-6,
                    "reward %s = /v1/rewards %s (%r)" % (o["reward"], want, lab))
            if fmt is not None:
                C.check(o["extra_logs"]["format"] == [1.0 if fmt else 0.0], "format by construction")
            C.check(o["extra_logs"]["accuracy_present"] == [0.0 if lab == "" else 1.0] or
                    isinstance(lab, dict), "accuracy_present follows the label")
            C.check(0.0 <= o["scores"][0] <= 1.0, "scores in [0, 1] for dynamic filtering")
        # the downstream step that crashed: micro-batches of 4 merged, then split
        for start in range(0, len(outs), 4):
            mb = [to_info(o) for o in outs[start:start + 4]]
            try:
                split_info(merge_info(mb), len(mb))
                ok = True
            except ValueError as e:
                ok = False
                log.append(str(e))
            C.check(ok, "merge-then-split of a mixed micro-batch: %s" % log[-1:])
        # an empty shard (HEAD sends [] to every endpoint but the first)
        r = asyncio.run(post_request(url, {"query": [], "prompts": [], "labels": []}))
        C.check(r["rewards"] == [] and set(r["extra_logs"]) == set(keys[0]), "empty shard, same keys")
        # misuse: labels longer than query is a 400 naming the field (OpenRLHF would retry 5 x, then None)
        r = d.request("POST", "/get_reward?model=rm", body={"query": ["a"], "prompts": ["a"], "labels": ["1", "2"]},
                      validate_route="/get_reward")
        C.check(r.status == 400 and r.json["error"].get("field") == "labels", "labels longer: %s" % r.raw[:200])
    finally:
        d.stop()
    C.done()


main()
