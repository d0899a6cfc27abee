"""A non-finite raw score is an item error on every endpoint, never a reward.

A linear mlp head whose "quality" row has an infinite weight scores +inf for
an input with x[0] > 0; the model's reward configuration maps quality through
a sigmoid, which would turn that inf into a finite 1.0. POST /v1/rewards must
fail the item (500 internal, no reward) unless only the finite "safety" is
requested, and the OIP infer route (the drop-in path an mlp takes) must fail
the request instead of returning 1.0. The expected finite values come from
numpy on the same weights.

Usage: test_nonfinite.py REWARDD
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rwd_harness as H  # noqa: E402

EXE = sys.argv[1]
C = H.Checker("nonfinite")


def main():
    import numpy as np
    sys.path.insert(0, os.path.join(os.environ.get("RWD_SOURCE_ROOT", "."), "tools"))
    import safetensors_io
    import torch
    work = H.mkdtemp("rwd-nonfinite-")
    folder = os.path.join(work, "inf")
    os.makedirs(folder)
    w = np.array([[np.inf, 0, 0, 0], [1, 1, 0.5, 0]], dtype=np.float32)
    b = np.array([0, 0.25], dtype=np.float32)
    safetensors_io.save({"layers.0.weight": torch.from_numpy(w), "layers.0.bias": torch.from_numpy(b)},
                        os.path.join(folder, "model.safetensors"))
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump({"rewardd_kind": "mlp", "outputs": ["quality", "safety"]}, f)
    cfg = {"models": {"inf": {"path": folder, "reward": {
        "transforms": {"quality": [{"sigmoid": {"scale": 1.0}}]}}}}}
    x = [1.0, 1.0, 2.0, 0.0]
    safety = float(np.float32(w[1] @ np.array(x, dtype=np.float32) + b[1]))
    d = H.Daemon(EXE, cfg)
    try:
        r = d.request("POST", "/v1/rewards", {"items": [{"embedding": x}]})
        e = (r.json or {}).get("error", {})
        C.check(r.status == 500 and e.get("code") == "internal" and "non-finite 'quality'" in e.get("message", ""),
                "/v1/rewards: the only item fails, no reward: %d %s" % (r.status, r.raw[:300]))
        r = d.request("POST", "/v1/rewards", {"items": [{"embedding": x}], "dimensions": ["safety"]})
        res = (r.json or {}).get("results", [{}])[0]
        C.check(r.status == 200 and abs(res.get("reward", 1e9) - safety) < 1e-5,
                "/v1/rewards: only the finite dimension requested scores: %s (numpy %.6f)" % (r.raw[:300], safety))
        body = {"inputs": [{"name": "embedding", "shape": [1, 4], "datatype": "FP32", "data": x}]}
        r = d.request("POST", "/v2/models/inf/infer", body, validate_route="/v2/models/{name}/infer")
        C.check(r.status == 500 and "non-finite" in str((r.json or {}).get("error")),
                "OIP infer: the request fails, no sigmoid(inf) = 1.0 reward: %d %s" % (r.status, r.raw[:300]))
    finally:
        rc = d.stop()
        C.check(rc == 0, "exit status %d after SIGTERM" % rc)
    C.done()


if __name__ == "__main__":
    main()
