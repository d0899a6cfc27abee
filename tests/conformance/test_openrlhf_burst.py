"""OpenRLHF HEAD's burst: every sample of a rollout posts at once, a new connection each.

Mirrors OpenRLHF/OpenRLHF@3c3be62 openrlhf/utils/agent.py:322-356
(_fetch_rewards_via_http, as described in shared/reference/trainer-paths.md §1):
for every generated sample, as soon as it finishes (vllm_engine.py:185-208
gathers them all at once), a new aiohttp.ClientSession(timeout=total 180 s)
posts {"query": [q], "prompts": [p], "labels": [l]} to /get_reward,
raise_for_status(), response.json(); any exception is retried up to 5 times
with asyncio.sleep(1) (Retry-After ignored), then the sample keeps
reward=None (which later crashes torch.cat).

2,000 such samples against config/default.json (its `rules` model), as the
issue measured (710 lost on 1024/256 connection limits). Every sample must get
its reward, equal to what /v1/rewards answers for the same item; the number of
retries is reported. The client raises its own open-file limit, as a trainer
process would need to.

Usage: test_openrlhf_burst.py REWARDD
"""
import asyncio
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import rwd_harness as H  # noqa: E402

import aiohttp  # noqa: E402

EXE = sys.argv[1]
C = H.Checker("openrlhf-burst")
N = 2000


def samples():
    out = []
    for i in range(N):
        prompt = "<|im_start|>user\nWhat is %d + %d?<|im_end|>\n<|im_start|>assistant\n" % (i % 7, i % 5)
        ans = (i % 7) + (i % 5) + (1 if i % 3 == 0 else 0)   # a third of them wrong
        resp = "<think>adding</think><answer>%d</answer><|im_end|>" % ans
        label = "" if i % 11 == 0 else str((i % 7) + (i % 5))
        out.append((prompt + resp, prompt, label))
    return out


async def fetch(url, q, p, lab, retries):
    # agent.py: a new session per try, total timeout 180 s, 5 tries, sleep(1)
    for attempt in range(5):
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=180)) as session:
                async with session.post(url, json={"query": [q], "prompts": [p], "labels": [lab]}) as response:
                    response.raise_for_status()
                    return await response.json()
        except Exception:
            retries[0] += 1
            if attempt < 4:
                await asyncio.sleep(1)
    return None


async def burst(url, items):
    retries = [0]
    res = await asyncio.gather(*(fetch(url, q, p, lab, retries) for q, p, lab in items))
    return res, retries[0]


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    with open(os.path.join(H.SRC, "config", "default.json")) as f:
        cfg = json.load(f)
    d = H.Daemon(EXE, cfg)
    try:
        items = samples()
        # the oracle: each distinct item once through /v1/rewards
        want = {}
        for q, p, lab in set(items):
            r = d.request("POST", "/v1/rewards", {"model": "rules", "items": [
                {"prompt": p, "response": q[len(p):], "label": lab or None}]})
            want[(q, p, lab)] = r.json["results"][0]["reward"] if r.status == 200 else None
        C.check(all(v is not None for v in want.values()), "the oracle requests were answered")
        t0 = time.time()
        res, retries = asyncio.run(burst("http://127.0.0.1:%d/get_reward?model=rules" % d.port, items))
        dt = time.time() - t0
        lost = sum(r is None for r in res)
        wrong = sum(1 for r, it in zip(res, items)
                    if r is not None and abs(r["rewards"][0] - want[it]) > 1e-6)
        print("%d samples at once: %d lost after 5 tries, %d wrong, %d retries, %.2f s" % (
            N, lost, wrong, retries, dt))
        C.check(lost == 0, "every sample got its reward (%d lost)" % lost)
        C.check(wrong == 0, "every reward equals /v1/rewards' (%d differ)" % wrong)
        keys = {tuple(sorted(r["extra_logs"])) for r in res if r is not None}
        C.check(len(keys) == 1, "one extra_logs key set across all samples: %d sets" % len(keys))
    finally:
        C.check(d.stop() == 0, "exit 0 after SIGTERM")
    C.done()


if __name__ == "__main__":
    main()
