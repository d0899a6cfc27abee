"""verl HEAD's discriminative-RM read of vLLM's POST /classify, replayed.

Mirrors verl-project/verl@1dda039 verl/experimental/reward_loop/reward_loop.py
(per shared/reference/trainer-paths.md §2): the body {"model":
reward_model.model_path, "input": text, "use_activation": False}, a new
aiohttp session per attempt, 16 tries with backoff min(2**k, 30) s, no retry
on a 4xx, and the score read as data[-1]["probs"][-1]: only the LAST class.
vLLM types probs as list[float] (vllm .../pooling/classify/protocol.py
ClassificationData), so a null there is a crash (rm_score = None).
Oracle: the same item through POST /v1/rewards.
Usage: test_verl_classify.py REWARDD_EXE"""
import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import rwd_harness as H  # noqa: E402

try:
    import aiohttp
except ImportError as e:
    H.skip("needs python3-aiohttp (%s)" % e)

EXE = sys.argv[1]
C = H.Checker("test_verl_classify")


async def post_request(url, payload, max_retries=16):
    """_post_request: 4xx raised at once, 5xx and connection errors retried (backoff shortened here)."""
    for k in range(max_retries):
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
                async with session.post(url, json=payload) as resp:
                    if 400 <= resp.status < 500:
                        return resp.status, await resp.json()
                    resp.raise_for_status()
                    return resp.status, await resp.json()
        except aiohttp.ClientError:
            await asyncio.sleep(min(2 ** k, 30) * 0.01)
    raise RuntimeError("no answer")


def rm_score(body):
    """verl: data[-1]["probs"][-1]."""
    return body["data"][-1]["probs"][-1]


def main():
    text = "<think>2 and 3</think><answer>5</answer>"
    d = H.Daemon(EXE, {"models": {"plain": {"kind": "rules"},
                                  "picked": {"kind": "rules", "compat": {"classify_dimension": "format"}},
                                  "rewarded": {"kind": "rules", "compat": {"classify_dimension": "reward"}}}})
    try:
        url = "http://127.0.0.1:%d/classify" % d.port
        # default rules model: accuracy and tool_* are absent without a label, never null: 422 naming one
        st, body = asyncio.run(post_request(url, {"model": "plain", "input": text, "use_activation": False}))
        C.check(st == 422 and "accuracy" in body["error"]["message"] and body["error"]["field"] == "input[0]",
                "absent last dimension is a 422: %s %s" % (st, body))
        for name, key in (("picked", "format"), ("rewarded", "reward")):
            st, body = asyncio.run(post_request(url, {"model": name, "input": text, "use_activation": False}))
            r = d.request("POST", "/v1/rewards", body={"model": name, "items": [{"response": text}]})
            res = r.json["results"][0]
            want = res["reward"] if key == "reward" else res["scores"][key]
            got = rm_score(body) if st == 200 else None
            C.check(st == 200 and got is not None and abs(got - want) < 1e-6,
                    "%s: probs[-1] %s = /v1/rewards %s" % (name, got, want))
            C.check(st == 200 and all(v is not None for v in body["data"][-1]["probs"]), "no null in probs")
        # b178a3c's body: "activation": false
        st, body = asyncio.run(post_request(url, {"model": "picked", "input": text, "activation": False}))
        C.check(st == 200 and rm_score(body) == 1.0, "old verl body: %s" % body)
    finally:
        d.stop()
    C.done()


main()
