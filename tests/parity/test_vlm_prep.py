#!/usr/bin/python3
"""Parity: lib/image/qwen_vl (Qwen2VLImageProcessor, and qwen_vl_utils'
fetch_image resize before it) against an oracle written here from
transformers' image_processing_qwen2_vl.py (commit cb0fc56) and the reward
models' vendored qwen_vl_utils, run on Pillow + numpy.

    /usr/bin/python3 test_vlm_prep.py HARNESS

Oracle steps: smart_resize (factor 28, Python round, floor/ceil rescales,
the side and ratio checks); PIL Image.resize(BICUBIC); astype(float64) *
(1/255) then float32; (x - mean) / std in float32 (OPENAI_CLIP); the last
frame repeated to temporal_patch_size; reshape(t, 2, C, h/28, 2, 14, w/28, 2,
14).transpose(0, 3, 6, 4, 7, 2, 1, 5, 8). Inputs: synthetic frames (odd
sizes, upscales under min_pixels, downscales over max_pixels, exact
multiples of 28), two-frame and three-frame videos, and PNG/JPEG files
decoded by the C side (convert("RGB") here). Expected: bit-equal floats.
Exit 0 pass, 1 fail, 77 skip (oracle missing).
"""
import io
import math
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    from PIL import Image
except ImportError as e:  # pragma: no cover
    print(f"SKIP: oracle missing ({e}); needs Debian python3-pil and python3-numpy")
    sys.exit(77)

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
RNG = np.random.default_rng(2026)


def smart_resize(h, w, factor, min_px, max_px, fetch):
    """transformers' smart_resize (fetch=False) or qwen_vl_utils' (fetch=True)."""
    if not fetch and (h < factor or w < factor):
        raise ValueError("side")
    if max(h, w) / min(h, w) > 200:
        raise ValueError("ratio")
    hb = round(h / factor) * factor
    wb = round(w / factor) * factor
    if fetch:
        hb, wb = max(factor, hb), max(factor, wb)
    if hb * wb > max_px:
        beta = math.sqrt((h * w) / max_px)
        hb = math.floor(h / beta / factor) * factor
        wb = math.floor(w / beta / factor) * factor
    elif hb * wb < min_px:
        beta = math.sqrt(min_px / (h * w))
        hb = math.ceil(h * beta / factor) * factor
        wb = math.ceil(w * beta / factor) * factor
    if hb < 1 or wb < 1:
        raise ValueError("zero")
    return hb, wb


def process(frames, min_px, max_px, fmin, fmax):
    """frames: PIL RGB images of one size -> (rows float32, (t, gh, gw))."""
    if fmin or fmax:
        w, h = frames[0].size
        fh, fw = smart_resize(h, w, 28, fmin, fmax or (1 << 40), True)
        frames = [im.resize((fw, fh), Image.BICUBIC) for im in frames]
    w, h = frames[0].size
    rh, rw = smart_resize(h, w, 28, min_px, max_px, False)
    out = []
    for im in frames:
        a = np.asarray(im.resize((rw, rh), Image.BICUBIC))
        x = (a.astype(np.float64) * (1 / 255)).astype(np.float32)
        x = (x - MEAN) / STD
        out.append(x.transpose(2, 0, 1))
    p = np.array(out)
    if p.shape[0] % 2:
        p = np.concatenate([p, np.repeat(p[-1][None], 1, axis=0)], axis=0)
    t, gh, gw = p.shape[0] // 2, rh // 14, rw // 14
    p = p.reshape(t, 2, 3, gh // 2, 2, 14, gw // 2, 2, 14).transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return p.reshape(t * gh * gw, 3 * 2 * 14 * 14), (t, gh, gw)


def frame(w, h, kind):
    if kind == "smooth":
        gx = np.sin(np.arange(w) / w * 5.3)[None, :, None]
        gy = np.cos(np.arange(h) / h * 2.9)[:, None, None]
        a = 127 + 70 * gx + 50 * gy + RNG.integers(-25, 26, (h, w, 3))
        return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")
    if kind == "edges":
        cb = ((np.arange(w)[None, :] // 3 + np.arange(h)[:, None] // 2) % 2 * 255).astype(np.uint8)
        return Image.fromarray(np.repeat(cb[..., None], 3, axis=2), "RGB")
    return Image.fromarray(RNG.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def main():
    harness = sys.argv[1]
    fails = 0
    worst = 0.0
    with tempfile.TemporaryDirectory() as td:
        jobs, expect = [], []
        # smart_resize alone, including refusals and half-way rounding (h/28 = k + 0.5)
        for (h, w, mn, mx, fetch) in [(14, 100, 3136, 1003520, 0), (14, 100, 3136, 1003520, 1),
                                      (42, 70, 3136, 1003520, 0), (98, 154, 3136, 1003520, 0),
                                      (30, 6001, 3136, 1003520, 0), (1000, 1000, 200704, 200704, 1),
                                      (33, 4000, 3136, 200704, 1), (2000, 1500, 3136, 1003520, 0),
                                      (29, 29, 200704, 200704, 1), (5000, 3, 3136, 1003520, 1),
                                      (700, 20, 3136, 1003520, 1), (1, 1, 3136, 1003520, 1)]:
            jobs.append(f"smart {h} {w} 28 {mn} {mx} {fetch}")
            try:
                expect.append(("smart", smart_resize(h, w, 28, mn, mx, bool(fetch))))
            except ValueError:
                expect.append(("smart", None))
        cases = []
        # (w, h, kind, n_frames, min, max, fetch_min, fetch_max)
        specs = [(56, 56, "noise", 1, 3136, 1003520, 0, 0),       # identity resize
                 (61, 43, "smooth", 1, 3136, 1003520, 0, 0),      # rounding both ways
                 (30, 29, "edges", 1, 3136, 1003520, 0, 0),       # upscale under min_pixels
                 (300, 200, "smooth", 1, 3136, 12544, 0, 0),      # floor under max_pixels
                 (140, 90, "noise", 2, 3136, 1003520, 0, 0),      # two-frame video
                 (84, 57, "smooth", 3, 3136, 1003520, 0, 0),      # odd frame count repeats
                 (333, 251, "edges", 1, 3136, 1003520, 50176, 50176),  # fetch_image stage
                 (100, 20, "smooth", 1, 3136, 1003520, 12544, 12544),  # fetch upscale, thin
                 (20, 20, "noise", 1, 3136, 1003520, 0, 0),       # refused: side < 28
                 ]
        for i, (w, h, kind, nf, mn, mx, fmn, fmx) in enumerate(specs):
            frames = [frame(w, h, kind) for _ in range(nf)]
            names = []
            for j, im in enumerate(frames):
                path = os.path.join(td, f"c{i}_{j}.rgb")
                with open(path, "wb") as f:
                    f.write(np.asarray(im).tobytes())
                names.append(path)
            out = os.path.join(td, f"c{i}.out")
            jobs.append(f"prep {out} {w} {h} {mn} {mx} {fmn} {fmx} " + " ".join(names))
            try:
                expect.append(("prep", process(frames, mn, mx, fmn, fmx), out))
            except ValueError:
                expect.append(("prep", None, out))
        # encoded files, decoded by lib/image/decode on the C side
        for i, (fmt, mode, w, h) in enumerate([("PNG", "RGBA", 97, 61), ("JPEG", "RGB", 120, 75),
                                               ("PNG", "L", 64, 90), ("PNG", "P", 77, 77)]):
            im = frame(w, h, "smooth")
            if mode == "RGBA":
                a = np.asarray(im)
                alpha = RNG.integers(0, 256, (h, w, 1), dtype=np.uint8)
                im = Image.fromarray(np.concatenate([a, alpha], axis=2), "RGBA")
            elif mode != "RGB":
                im = im.convert(mode)
            buf = io.BytesIO()
            im.save(buf, fmt, quality=90) if fmt == "JPEG" else im.save(buf, fmt)
            path = os.path.join(td, f"f{i}.{fmt.lower()}")
            with open(path, "wb") as f:
                f.write(buf.getvalue())
            rgb = Image.open(path).convert("RGB")
            out = os.path.join(td, f"f{i}.out")
            jobs.append(f"prep {out} 0 0 3136 1003520 40000 40000 {path}")
            expect.append(("prep", process([rgb], 3136, 1003520, 40000, 40000), out))
        jobfile = os.path.join(td, "jobs")
        with open(jobfile, "w") as f:
            f.write("\n".join(jobs) + "\n")
        res = subprocess.run([harness, jobfile], capture_output=True, text=True)
        if res.returncode:
            print(res.stdout, res.stderr)
            print("FAIL: harness exited", res.returncode)
            return 1
        lines = res.stdout.splitlines()
        if len(lines) != len(jobs):
            print("FAIL: harness printed", len(lines), "lines for", len(jobs), "jobs")
            return 1
        for job, line, exp in zip(jobs, lines, expect):
            tok = line.split()
            if exp[0] == "smart":
                got = None if tok[1] == "error" else (int(tok[1]), int(tok[2]))
                if got != exp[1]:
                    print("FAIL", job, "->", got, "expected", exp[1])
                    fails += 1
                continue
            if exp[1] is None:
                if tok[1] != "error":
                    print("FAIL", job, "should be refused, got", line)
                    fails += 1
                continue
            rows, grid = exp[1]
            if tok[1] == "error" or tuple(map(int, tok[1:4])) != grid:
                print("FAIL", job.split()[:8], "grid", line, "expected", grid)
                fails += 1
                continue
            got = np.fromfile(exp[2], dtype=np.float32).reshape(rows.shape)
            d = float(np.max(np.abs(got - rows)))
            worst = max(worst, d)
            if not np.array_equal(got, rows):
                print("FAIL", job.split()[:8], "max |diff|", d)
                fails += 1
    print(f"qwen-vl preprocessing: {len(jobs)} jobs, worst |diff| {worst:.3g}, {fails} failures")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
