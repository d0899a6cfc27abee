"""A Qwen2-VL reward model (the `vlm` kind, HPSv3 style) through the real daemon.

The tiny HPSv3 folder of tests/parity/test_vlm_kind.py (tools/make_tiny_models.py
qwen2_vl tinyvocab --vlm-head hpsv3, a Qwen2 tokenizer.json from the fixture)
is served with `--model hps=DIR` (the kind detected from config.json's
architectures + reward_head.json), and a second time from the config file with a
reward configuration over sigma: reward = mu - 0.5 * sigma (an affine transform
on hpsv3_sigma, then weighted_sum). Checked against the same oracles as the
parity test (Pillow processor, HF tokenizers via node, vlm_ref.py in torch):
  - POST /v1/rewards: scores.hpsv3 and scores.hpsv3_sigma, and the result's
    sigma object, within 1e-4 relative;
  - the reward configuration gives mu - 0.5 sigma of the oracle's values;
  - /v1/stats has the hpsv3_sigma series (count, mean of the oracle's sigma);
  - GET /v1/models lists the model as kind vlm with inputs image and prompt;
  - an image over the pixel limit and a missing prompt are errors naming the
    field, never a reward.

Usage: test_vlm.py REWARDD
"""
import base64
import io
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rwd_harness as H  # noqa: E402

EXE = sys.argv[1]
SRC = os.environ.get("RWD_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
C = H.Checker("vlm")
TOL = 1e-4


def main():
    try:
        import torch
        from PIL import Image
    except ImportError as e:
        print("SKIP: /usr/bin/python3 lacks %s (Debian python3-torch, python3-pil)" % e)
        sys.exit(77)
    node = shutil.which("node")
    if not node:
        print("SKIP: node not found (the HF tokenizers oracle)")
        sys.exit(77)
    if not os.path.isdir(os.path.join(SRC, "node_modules", "@anush008", "tokenizers")):
        print("SKIP: @anush008/tokenizers not installed in node_modules")
        sys.exit(77)
    sys.path.insert(0, os.path.join(SRC, "tests", "parity"))
    import test_vlm_kind as K
    import test_vlm_prep
    import vlm_ref
    fix = os.path.join(os.environ.get("RWD_FIXTURES", os.path.join(SRC, "..", "shared", "fixtures")),
                       "qwen2-tokenizer")
    if not os.path.exists(os.path.join(fix, "vocab.json")):
        print("SKIP: fixture %s is absent (set RWD_FIXTURES)" % fix)
        sys.exit(77)
    work = H.mkdtemp("rwd-vlm-")
    folder = os.path.join(work, "hps")
    subprocess.run([sys.executable, os.path.join(SRC, "tools", "make_tiny_models.py"), "qwen2_vl", "tinyvocab",
                    folder, "--vlm-head", "hpsv3", "--seed", "7"], check=True, stdout=subprocess.DEVNULL)
    K.write_tokenizer(fix, os.path.join(folder, "tokenizer.json"))
    spec = json.load(open(os.path.join(folder, "reward_head.json")))
    images = [K.png(64, 48, "smooth"), K.png(84, 84, "noise")]
    prompts = ["a lighthouse at night", "two dogs, one ball"]
    items = [{"image": base64.b64encode(b).decode(), "prompt": p} for b, p in zip(images, prompts)]

    cfg, w = vlm_ref.load_folder(folder)
    oracle = []
    for it, data in zip(items, images):
        rows, g = test_vlm_prep.process([Image.open(io.BytesIO(data)).convert("RGB")], 56 * 56, 28 * 28 * 1280, 0, 0)
        ids = K.hf_ids(node, SRC, folder, [K.render(spec["prompts"]["overall"], [g], it)], work, "it")[0]
        oracle.append(vlm_ref.reward(cfg, w, spec, torch.from_numpy(rows).double(), [g], ids, "seq")["hpsv3"])

    def close(a, b):
        return isinstance(a, (int, float)) and abs(a - b) <= TOL * abs(b)

    # 1. --model NAME=DIR
    d = H.Daemon(EXE, {}, args=["--model", "hps=" + folder])
    try:
        r = d.request("POST", "/v1/rewards", {"model": "hps", "items": items})
        res = (r.json or {}).get("results", [])
        C.check(r.status == 200 and len(res) == len(items), "/v1/rewards: %d %s" % (r.status, r.raw[:300]))
        for i, (mu, sigma) in enumerate(oracle):
            got = res[i] if i < len(res) else {}
            sc = got.get("scores", {})
            C.check(close(sc.get("hpsv3"), mu), "item %d mu %s vs torch %s" % (i, sc.get("hpsv3"), mu))
            C.check(close(sc.get("hpsv3_sigma"), sigma), "item %d sigma %s vs torch %s" % (i, sc.get("hpsv3_sigma"), sigma))
            C.check(close((got.get("sigma") or {}).get("hpsv3"), sigma), "item %d result sigma %s" % (i, got.get("sigma")))
        r = d.request("GET", "/v1/stats")
        dims = (((r.json or {}).get("models") or {}).get("hps") or {}).get("dimensions", {})
        sg = dims.get("hpsv3_sigma", {})
        want = sum(s for _, s in oracle) / len(oracle)
        C.check(r.status == 200 and sg.get("count") == len(items) and close(sg.get("mean"), want),
                "/v1/stats hpsv3_sigma: %s (mean of the oracle's sigma %s)" % (json.dumps(sg)[:200], want))
        r = d.request("GET", "/v1/models")
        models = {m.get("id", m.get("name")): m for m in (r.json or {}).get("data", (r.json or {}).get("models", []))}
        m = models.get("hps", {})
        C.check(m.get("kind") == "vlm" and set(m.get("inputs", [])) == {"image", "prompt"},
                "/v1/models: %s" % json.dumps(m)[:300])
        from PIL import Image as I
        big = io.BytesIO()
        I.new("RGB", (4200, 4000), (1, 2, 3)).save(big, "PNG")
        r = d.request("POST", "/v1/rewards", {"model": "hps", "items": [
            {"image": base64.b64encode(big.getvalue()).decode(), "prompt": "big"}]})
        raw = r.raw.decode(errors="replace")
        print("over the pixel limit: %d %s" % (r.status, raw[:300]))
        res = (r.json or {}).get("results") or [{}]
        err = res[0].get("error") or (r.json or {}).get("error") or {}
        C.check(r.status in (200, 413) and "reward" not in res[0] and "image" in err.get("field", "") and
                "pixels" in err.get("message", ""), "over the pixel limit: an error naming image: %d %s"
                % (r.status, raw[:400]))
        r = d.request("POST", "/v1/rewards", {"model": "hps", "items": [{"image": items[0]["image"]}]})
        e = (r.json or {}).get("error", {})
        C.check(r.status == 400 and e.get("field") == "items[0].prompt", "missing prompt: 400 naming items[0].prompt: %d %s"
                % (r.status, r.raw[:300]))
    finally:
        rc = d.stop()
        C.check(rc == 0, "exit status %d after SIGTERM" % rc)

    # 2. the reward configuration over sigma: mu - 0.5 sigma
    conf = {"models": {"hps": {"path": folder, "reward": {
        "transforms": {"hpsv3_sigma": [{"affine": {"scale": -0.5}}]},
        "aggregate": {"mode": "weighted_sum", "terms": ["hpsv3", "hpsv3_sigma"]}}}}}
    d = H.Daemon(EXE, conf)
    try:
        r = d.request("POST", "/v1/rewards", {"model": "hps", "items": items})
        res = (r.json or {}).get("results", [])
        C.check(r.status == 200 and len(res) == len(items), "/v1/rewards (reward config): %d %s" % (r.status, r.raw[:300]))
        for i, (mu, sigma) in enumerate(oracle):
            got = res[i] if i < len(res) else {}
            want = mu - 0.5 * sigma
            C.check(isinstance(got.get("reward"), (int, float)) and abs(got["reward"] - want) <= TOL * max(abs(want), abs(mu)),
                    "item %d reward %s vs mu - 0.5 sigma %s" % (i, got.get("reward"), want))
    finally:
        rc = d.stop()
        C.check(rc == 0, "exit status %d after SIGTERM" % rc)
    C.done()


if __name__ == "__main__":
    main()
