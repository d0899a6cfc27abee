"""vLLM- and SGLang-shaped bodies against rewardd, read as their clients read them.

Mirrors (read at the source):
  vllm .../pooling/classify/protocol.py (ClassificationChatRequest: "messages",
    one conversation; ClassificationData probs: list[float]) and the
    embeddings "encoding_format": "base64" (float32 bytes, base64).
  sgl-project/sglang python/sglang/srt/entrypoints/http_server.py
    classify_request(obj: EmbeddingReqInput): {"text": str | [str]} in,
    {"embedding": [...], "meta_info"} out (a list for a list of texts);
    docs/supported_models/retrieval_ranking/classify_models.md: POST
    /v1/classify in vLLM's shape; GET /health.
Oracle: the same items through POST /v1/rewards.
Usage: test_vllm_sglang.py REWARDD_EXE"""
import base64
import http.client
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import rwd_harness as H  # noqa: E402

try:
    import numpy as np
except ImportError as e:
    H.skip("needs python3-numpy (%s)" % e)

EXE = sys.argv[1]
C = H.Checker("test_vllm_sglang")


def call(port, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    data = json.dumps(body).encode() if body is not None else None
    c.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
    r = c.getresponse()
    raw = r.read()
    c.close()
    # the reply against proto/openapi.yaml, as H.Daemon.request does
    H.CONTRACT.validate(method, H.route_of(path), r.status, (r.getheader("Content-Type") or "").split(";")[0], raw)
    return r.status, (json.loads(raw) if raw else None)


def main():
    d = H.Daemon(EXE, {"models": {"rm": {"kind": "rules", "compat": {"classify_dimension": "format"}}}})
    try:
        good, bad = "<think>x</think><answer>1</answer>", "plain"
        r = d.request("POST", "/v1/rewards", body={"model": "rm", "items": [{"response": good}, {"response": bad}]})
        want = [x["scores"]["format"] for x in r.json["results"]]
        st, _ = call(d.port, "GET", "/health")
        C.check(st == 200, "GET /health")
        # SGLang native /classify: one text -> one object, a list -> a list
        st, j = call(d.port, "POST", "/classify", {"text": good})
        C.check(st == 200 and isinstance(j, dict) and j["embedding"] == [want[0]] and "meta_info" in j,
                "SGLang /classify one text: %s" % j)
        st, j = call(d.port, "POST", "/classify", {"text": [good, bad]})
        C.check(st == 200 and isinstance(j, list) and [o["embedding"][0] for o in j] == want,
                "SGLang /classify list: %s" % j)
        # /v1/classify: vLLM's shape
        st, j = call(d.port, "POST", "/v1/classify", {"model": "rm", "input": [good, bad], "use_activation": False})
        C.check(st == 200 and [x["probs"][-1] for x in j["data"]] == want, "/v1/classify: %s" % j)
        # the chat form: one conversation, the last message is the response
        msgs = [{"role": "user", "content": "say 1"}, {"role": "assistant", "content": good}]
        st, j = call(d.port, "POST", "/classify", {"model": "rm", "messages": msgs, "use_activation": False})
        C.check(st == 200 and j["data"][0]["probs"] == [want[0]], "chat form: %s" % j)
        st, j = call(d.port, "POST", "/classify", {"model": "rm", "messages": msgs, "input": good})
        C.check(st == 400 and j["error"]["field"] == "messages", "input and messages together")
        # encoding_format base64: float32 little-endian
        st, j = call(d.port, "POST", "/v1/embeddings", {"model": "rm", "input": [good, bad], "encoding_format": "base64"})
        got = [np.frombuffer(base64.b64decode(x["embedding"]), dtype="<f4").tolist() for x in j["data"]] if st == 200 else None
        C.check(got == [[w] for w in want], "base64 embeddings %s vs %s" % (got, want))
        st, j = call(d.port, "POST", "/pooling", {"model": "rm", "input": good, "encoding_format": "hex"})
        C.check(st == 400 and j["error"]["field"] == "encoding_format", "bad encoding_format")
        st, j = call(d.port, "POST", "/pooling", {"model": "rm", "input": good, "truncate_prompt_tokens": 0})
        C.check(st == 400 and j["error"]["field"] == "truncate_prompt_tokens", "bad truncate_prompt_tokens")
    finally:
        d.stop()
    C.done()


main()
