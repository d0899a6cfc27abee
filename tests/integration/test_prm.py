"""A process reward model's per-step outputs through the real daemon.

A random Qwen2ForProcessRewardModel checkpoint in the HF layout
(tools/make_tiny_models.py qwen2 tiny --head prm --step-tag-id 500) and a
Qwen3ForTokenClassification with 1 label are served. Checked against the
PyTorch oracle tests/parity/seqcls_ref.py (the HF head definitions and the
Qwen2.5-Math-PRM card's make_step_rewards), not our own output:
  - POST /v1/rewards: each result carries `step_rewards` (and `step_probs`
    for 2 classes) and the prm_* dimensions, within 1e-5;
  - POST /pooling (vLLM's pooling API): `data[i].data` is vLLM's STEP-pooler
    shape for Qwen2ForProcessRewardModel, [[p0, p1] per separator] (a 1-label
    head: [[value] per separator]);
  - an item without a separator is a 422 naming the item, never a reward;
  - a two-member ensemble of PRMs serves, members' extra released (ASan).

Usage: test_prm.py REWARDD
"""
import json
import math
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rwd_harness as H  # noqa: E402

EXE = sys.argv[1]
SRC = os.environ.get("RWD_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
C = H.Checker("prm")
STEP = 500
TOL = 1e-5


def make(work, name, kind, head, seed=5):
    out = os.path.join(work, name)
    subprocess.run([sys.executable, os.path.join(SRC, "tools", "make_tiny_models.py"), kind, "tiny", out,
                    "--seed", str(seed), "--head", head, "--step-tag-id", str(STEP)], check=True,
                   stdout=subprocess.DEVNULL)
    return out


def main():
    try:
        import torch  # noqa: F401
    except ImportError:
        print("SKIP: /usr/bin/python3 has no torch (Debian python3-torch)")
        sys.exit(77)
    sys.path.insert(0, os.path.join(SRC, "tests", "parity"))
    import seqcls_ref
    work = H.mkdtemp("rwd-prm-")
    prm = make(work, "prm", "qwen2", "prm")
    tok1 = make(work, "tok1", "qwen3", "token1")
    prmb = make(work, "prmb", "qwen2", "prm", seed=6)
    rng = random.Random(3)
    items = []
    for n in (5, 30, 90):
        ids = [rng.randrange(1, 400) for _ in range(n)]
        for p in sorted(rng.sample(range(n), 3)):
            ids[p] = STEP
        items.append(ids)
    cfg = {"models": {"prm": {"path": prm}, "tok1": {"path": tok1}, "prmb": {"path": prmb},
                      "prm2": {"members": ["prm", "prmb"], "combine": "mean"}}}
    d = H.Daemon(EXE, cfg)
    try:
        for name, folder, two in (("prm", prm, True), ("tok1", tok1, False)):
            ref = seqcls_ref.Model(folder)
            oracle = [ref.step_rewards(ids, STEP) for ids in items]
            r = d.request("POST", "/v1/rewards", {"model": name, "items": [{"input_ids": x} for x in items]})
            res = (r.json or {}).get("results", [])
            C.check(r.status == 200 and len(res) == len(items), "%s /v1/rewards: %d %s" % (name, r.status, r.raw[:300]))
            for i, (steps, probs) in enumerate(oracle):
                got = res[i] if i < len(res) else {}
                sr = got.get("step_rewards")
                ok = isinstance(sr, list) and len(sr) == len(steps) and all(
                    abs(a - b) <= TOL * max(1.0, abs(b)) for a, b in zip(sr, steps))
                C.check(ok, "%s item %d step_rewards %s vs torch %s" % (name, i, sr, list(steps)))
                if two:
                    sp = got.get("step_probs")
                    ok = isinstance(sp, list) and len(sp) == len(probs) and all(
                        abs(a - b) <= TOL for r1, r2 in zip(sp, probs) for a, b in zip(r1, r2))
                    C.check(ok, "%s item %d step_probs %s" % (name, i, sp))
                v = [float(x) for x in steps]
                sc = got.get("scores", {})
                want = {"prm_min": min(v), "prm_mean": sum(v) / len(v), "prm_last": v[-1]}
                for k, w in want.items():
                    C.check(k in sc and abs(sc[k] - w) <= TOL * max(1.0, abs(w)),
                            "%s item %d %s %s vs %s" % (name, i, k, sc.get(k), w))
                C.check("prm_product" in sc and abs(sc["prm_product"] - math.prod(v)) <= 1e-4 * abs(math.prod(v)) + 1e-30,
                        "%s item %d prm_product" % (name, i))
            r = d.request("POST", "/pooling", {"model": name, "input": items})
            data = (r.json or {}).get("data", [])
            C.check(r.status == 200 and len(data) == len(items), "%s /pooling: %d %s" % (name, r.status, r.raw[:300]))
            for i, (steps, probs) in enumerate(oracle):
                got = data[i].get("data") if i < len(data) else None
                want = [list(p) for p in probs] if two else [[float(s)] for s in steps]
                ok = isinstance(got, list) and len(got) == len(want) and all(
                    len(a) == len(b) and all(abs(x - y) <= TOL * max(1.0, abs(y)) for x, y in zip(a, b))
                    for a, b in zip(got, want))
                C.check(ok, "%s /pooling item %d: %s vs vLLM STEP pooler %s" % (name, i, got, want))
        r = d.request("POST", "/v1/rewards", {"model": "prm", "items": [{"input_ids": [1, 2, 3]}]})
        e = (r.json or {}).get("error", {})
        C.check(r.status == 422 and "items[0]" in e.get("field", ""), "no separator: 422 naming the item: %d %s"
                % (r.status, r.raw[:300]))
        r = d.request("POST", "/v1/rewards", {"model": "prm2", "items": [{"input_ids": x} for x in items]})
        res = (r.json or {}).get("results", [])
        C.check(r.status == 200 and len(res) == len(items) and all("members" in x for x in res),
                "ensemble of the PRM: %d %s" % (r.status, r.raw[:300]))
    finally:
        rc = d.stop()
        C.check(rc == 0, "exit status %d after SIGTERM" % rc)
    C.done()


if __name__ == "__main__":
    main()
