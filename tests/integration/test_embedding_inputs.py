"""The mlp kind's vector inputs over real HTTP: "embedding" arrays (the
float-array fast path, and the jansson path forced by an escaped key),
"embedding_b64" (base64 little-endian float32, as vLLM's
encoding_format="base64" writes it) and OIP binary FP32 tensors must give
bit-identical scores, which must match a PyTorch head computed here; bad
base64 vectors get 400 naming items[i].embedding_b64.
Usage: test_embedding_inputs.py REWARDD_EXE"""
import base64
import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rwd_harness as H  # noqa: E402

try:
    import numpy as np
    import torch  # noqa: F401 (the oracle in make_mlp_head)
except ImportError as e:
    H.skip("numpy / PyTorch (Debian python3-numpy, python3-torch) missing: %s" % e)

EXE = sys.argv[1]
C = H.Checker("test_embedding_inputs")
D_IN = 96
N = 12
DIMS = ["quality", "safety"]


def b64(x):
    return base64.b64encode(np.asarray(x, dtype="<f4").tobytes()).decode()


def f32(v):
    return struct.pack("<f", v)


def scores(r):
    """[[quality, safety] per item] as float32 bytes (the reply's 9 digits round-trip float32)."""
    return [[f32(res["scores"][d]) for d in DIMS] for res in r.json["results"]]


def main():
    work = H.mkdtemp("rwd-emb-")
    oracle = H.make_mlp_head(os.path.join(work, "head"), d_in=D_IN, outputs=tuple(DIMS))
    cfg = {"http": {"threads": 2},
           "models": {"head": {"path": os.path.join(work, "head"),
                               "batching": {"max_batch_size": 1, "max_delay_us": 0}}}}
    d = H.Daemon(EXE, cfg)
    try:
        run(d, oracle)
    finally:
        rc = d.stop()
        C.check(rc == 0, "exit status after SIGTERM is %d" % rc)
    C.done()


def post(d, items):
    r = d.request("POST", "/v1/rewards", {"model": "head", "items": items})
    C.check(r.status == 200, "POST /v1/rewards: %d %s" % (r.status, r.raw[:300]))
    return r


def run(d, oracle):
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((N, D_IN)) * rng.choice([1e-3, 0.05, 1, 30], (N, 1))).astype(np.float32)
    x[0, :4] = [0.0, -0.0, 1e-45, -3e-39]  # signed zero and float32 denormals
    # json.dumps of float32 → double reprs (17 digits): what trainers send
    as_list = [[float(v) for v in row] for row in x]
    # max_batch_size 1: every item its own forward pass, so all forms meet the same GEMM shapes
    r_fast = post(d, [{"embedding": row} for row in as_list])
    # an escaped key is the same field to jansson but not to the fast path's byte match
    body = json.dumps({"model": "head", "items": [{"embedding": row} for row in as_list]})
    body = body.replace('"embedding"', '"embe\\u0064ding"')
    r_slow = d.request("POST", "/v1/rewards", body.encode(), headers={"Content-Type": "application/json"})
    C.check(r_slow.status == 200, "jansson path: %d %s" % (r_slow.status, r_slow.raw[:300]))
    # numpy's shortest float32 strings: another decimal form of the same floats
    short = "[" + ",".join("{\"embedding\":[%s]}" % ",".join(str(v) for v in row) for row in x) + "]"
    r_short = d.request("POST", "/v1/rewards", ('{"model":"head","items":%s}' % short).encode(),
                        headers={"Content-Type": "application/json"})
    C.check(r_short.status == 200, "shortest float32 strings: %d %s" % (r_short.status, r_short.raw[:200]))
    r_b64 = post(d, [{"embedding_b64": b64(row)} for row in x])
    # vLLM-style clients may wrap the text (MIME line breaks): whitespace is skipped
    wrapped = [b64(row) for row in x]
    wrapped = [s[:40] + "\n" + s[40:] for s in wrapped]
    r_wrap = post(d, [{"embedding_b64": s} for s in wrapped])
    # OIP binary FP32 tensor (the binary tensor data extension)
    hdr = json.dumps({"inputs": [{"name": "embedding", "shape": [N, D_IN], "datatype": "FP32",
                                  "parameters": {"binary_data_size": N * D_IN * 4}}],
                      "outputs": [{"name": d_} for d_ in DIMS]}).encode()
    r_oip = d.request("POST", "/v2/models/head/infer", hdr + x.astype("<f4").tobytes(),
                      headers={"Inference-Header-Content-Length": str(len(hdr)),
                               "Content-Type": "application/octet-stream"},
                      validate_route="/v2/models/{name}/infer")
    C.check(r_oip.status == 200, "OIP binary infer: %d %s" % (r_oip.status, r_oip.raw[:300]))
    if not all(r.status == 200 for r in (r_fast, r_slow, r_short, r_b64, r_wrap, r_oip)):
        return
    ref = scores(r_slow)
    for name, r in (("fast path", r_fast), ("numpy shortest", r_short), ("embedding_b64", r_b64),
                    ("wrapped base64", r_wrap)):
        C.check(scores(r) == ref, "%s scores bit-identical to the jansson path" % name)
    oip = {o["name"]: o["data"] for o in r_oip.json["outputs"]}
    oip_bits = [[f32(oip[dm][i]) for dm in DIMS] for i in range(N)]
    C.check(oip_bits == ref, "OIP binary FP32 bit-identical to the jansson path")
    want = oracle(x.tolist())
    worst = 0.0
    same = 0
    for i in range(N):
        for k, dm in enumerate(DIMS):
            got = r_b64.json["results"][i]["scores"][dm]
            worst = max(worst, abs(got - want[i][k]) / max(1.0, abs(want[i][k])))
            same += f32(got) == f32(want[i][k])
    print("embedding_b64 vs PyTorch: worst relative error %.3g, %d of %d float32 bit-equal" %
          (worst, same, 2 * N))
    C.check(worst <= 1e-5, "embedding_b64 matches PyTorch (worst %.3g)" % worst)

    # refusals name the field
    bad = [
        ({"embedding_b64": b64(x[0][:-1])}, "holds %d float32" % (D_IN - 1)),
        ({"embedding_b64": base64.b64encode(b"\0" * 10).decode()}, "not a whole number of float32"),
        ({"embedding_b64": b64([float("nan")] + [0.0] * (D_IN - 1))}, "element 0 is NaN"),
        ({"embedding_b64": b64([0.0] * (D_IN - 1) + [float("-inf")])}, "element %d is infinite" % (D_IN - 1)),
        ({"embedding_b64": b64(x[0]), "embedding": as_list[0]}, "not both"),
        ({"embedding_b64": "AAAA*AAA"}, ""),
        ({"embedding_b64": 12}, "must be a string"),
    ]
    for item, needle in bad:
        r = d.request("POST", "/v1/rewards", {"model": "head", "items": [{"embedding": as_list[1]}, item]})
        e = r.json.get("error", {}) if isinstance(r.json, dict) else {}
        C.check(r.status == 400 and e.get("field") == "items[1].embedding_b64" and needle in e.get("message", ""),
                "bad embedding_b64 %r: %d %s" % (str(item)[:60], r.status, r.raw[:200]))
    # the array form's errors are unchanged by the fast path
    r = d.request("POST", "/v1/rewards", {"model": "head", "items": [{"embedding": as_list[0][:-1]}]})
    C.check(r.status == 400 and r.json["error"].get("field") == "items[0].embedding",
            "short array: %d %s" % (r.status, r.raw[:200]))
    r = d.request("POST", "/v1/rewards", b'{"model":"head","items":[{"embedding":[1,2,,3]}]}',
                  headers={"Content-Type": "application/json"})
    C.check(r.status == 400 and r.json["error"].get("line") == 1, "malformed array: %d %s" % (r.status, r.raw[:200]))


if __name__ == "__main__":
    main()
