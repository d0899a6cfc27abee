#!/usr/bin/python3
"""Parity: lib/image/resize (Pillow-exact resampling + CLIPImageProcessor
preprocessing) against Pillow itself and transformers' documented arithmetic.

    /usr/bin/python3 test_clip_preprocess.py HARNESS

The oracle runs here: Debian's python3-pil does every resize, and the
CLIPImageProcessor steps are re-implemented with numpy exactly as
transformers' image_transforms does them (get_resize_output_image_size with
int() truncation, PIL resize with reducing_gap=None, center_crop with //2
offsets and ceil() zero padding, rescale in float64 then float32, normalize in
float32). Images: scikit-image's sample photos (RGB, grayscale, RGBA,
palette; converted to RGB as convert_to_rgb does; also fed to the C side as
the PNG/JPEG files themselves, decoded by lib/image/decode, for the whole
bytes -> tensor path) plus synthetic ones from
17 px to 4,000 px, portrait and landscape, smooth and hard-edged (to hit the
filter's overshoot and the uint8 clipping).

Checks: uint8 resizes bit-exact (every filter, 1 and 3 channels, up, down,
one-axis and identity resizes, windows); preprocessed float tensors within
1/255 (they are expected to be equal). Prints the worst differences.
Exit 0 pass, 1 fail, 77 skip (oracle missing).
"""
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

SKIMAGE_DATA = "/usr/lib/python3/dist-packages/skimage/data"
OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]

RNG = np.random.default_rng(1234)


def synthetic(w, h, kind, mode="RGB"):
    """A w×h test image: smooth gradients + noise, hard edges, or noise."""
    ch = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
    if kind == "smooth":
        gx = np.sin(np.arange(w, dtype=np.float32) / w * 6.1)
        gy = np.sin(np.arange(h, dtype=np.float32) / h * 3.3)
        base = (127.5 + 60 * gx[None, :] + 40 * gy[:, None]).astype(np.int16)
        a = base[..., None] + RNG.integers(-20, 21, (h, w, ch), dtype=np.int16)
        a = np.clip(a, 0, 255).astype(np.uint8)
    elif kind == "edges":  # checkerboard with flipped pixels: overshoot and clipping
        cb = ((np.arange(w)[None, :] // 3 + np.arange(h)[:, None] // 2) % 2 * 255).astype(np.uint8)
        a = np.repeat(cb[..., None], ch, axis=2)
        a ^= (RNG.random((h, w, ch), dtype=np.float32) < 0.02).astype(np.uint8) * 255
    else:  # "noise"
        a = RNG.integers(0, 256, (h, w, ch), dtype=np.uint8)
    if ch == 1:
        a = a[..., 0]
    return Image.fromarray(np.ascontiguousarray(a), mode)


# Files fed to the C side undecoded (lib/image/decode does PNG/JPEG -> RGB).
FILE_SAMPLES = ["astronaut.png", "camera.png", "logo.png", "horse.png", "green_palette.png",
                "rocket.jpg", "retina.jpg", "hubble_deep_field.jpg", "coffee.png", "page.png"]


def sample_images():
    imgs = []
    names = ["astronaut.png", "camera.png", "coffee.png", "chelsea.png", "rocket.jpg",
             "hubble_deep_field.jpg", "retina.jpg", "logo.png", "horse.png", "page.png",
             "text.png", "microaneurysms.png", "green_palette.png", "block.png",
             "motorcycle_left.png", "cell.png"]
    for n in names:
        p = os.path.join(SKIMAGE_DATA, n)
        if os.path.exists(p):
            im = Image.open(p)
            im.load()
            imgs.append((n + ":" + im.mode, im))
    if len(imgs) < 5:
        print(f"SKIP: scikit-image sample data missing under {SKIMAGE_DATA}")
        sys.exit(77)
    for (w, h, kind, mode) in [
        (17, 17, "noise", "RGB"), (17, 40, "smooth", "RGB"), (40, 17, "edges", "RGB"),
        (17, 4000, "smooth", "RGB"), (4000, 17, "noise", "L"), (4000, 3000, "smooth", "RGB"),
        (3000, 4000, "edges", "RGB"), (223, 224, "noise", "RGB"), (224, 224, "edges", "RGB"),
        (225, 224, "smooth", "RGBA"), (1023, 577, "edges", "L"), (577, 1023, "noise", "RGBA"),
        (300, 18, "smooth", "RGB"),
    ]:
        imgs.append((f"synthetic {w}x{h} {kind} {mode}", synthetic(w, h, kind, mode)))
    return imgs


# --- the oracle: transformers' CLIPImageProcessor arithmetic, re-implemented ---

def hf_resize_size(w, h, cfg):
    if cfg["shortest"] > 0:
        size = cfg["shortest"]
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = size, int(size * long / short)
        oh, ow = (new_long, new_short) if w <= h else (new_short, new_long)
        return ow, oh
    return cfg["resize_w"], cfg["resize_h"]


def hf_center_crop(a, ch, cw):
    """transformers.image_transforms.center_crop on a CHW array."""
    H, W = a.shape[-2:]
    top = (H - ch) // 2
    bottom = top + ch
    left = (W - cw) // 2
    right = left + cw
    if top >= 0 and bottom <= H and left >= 0 and right <= W:
        return a[..., top:bottom, left:right]
    nh, nw = max(ch, H), max(cw, W)
    new = np.zeros_like(a, shape=a.shape[:-2] + (nh, nw))
    tp = math.ceil((nh - H) / 2)
    lp = math.ceil((nw - W) / 2)
    new[..., tp:tp + H, lp:lp + W] = a
    top += tp
    bottom += tp
    left += lp
    right += lp
    return new[..., max(0, top):min(nh, bottom), max(0, left):min(nw, right)]


def hf_preprocess(img_rgb, cfg):
    im = img_rgb
    if cfg["do_resize"]:
        ow, oh = hf_resize_size(im.width, im.height, cfg)
        im = im.resize((ow, oh), resample=cfg["resample"], reducing_gap=None)
    a = np.array(im).transpose(2, 0, 1)  # CHW uint8
    if cfg["crop"]:
        a = hf_center_crop(a, cfg["crop_h"], cfg["crop_w"])
    if cfg["rescale"]:
        a = (a.astype(np.float64) * cfg["factor"]).astype(np.float32)
    if cfg["normalize"]:
        if not np.issubdtype(a.dtype, np.floating):
            a = a.astype(np.float32)
        mean = np.array(cfg["mean"], dtype=a.dtype)
        std = np.array(cfg["std"], dtype=a.dtype)
        a = ((a.T - mean) / std).T
    return np.ascontiguousarray(a.astype(np.float32))


def cfg_of(**kw):
    c = dict(do_resize=True, shortest=224, resize_h=0, resize_w=0, resample=3, crop=True,
             crop_h=224, crop_w=224, rescale=True, factor=1 / 255, normalize=True,
             mean=OPENAI_MEAN, std=OPENAI_STD)
    c.update(kw)
    if not c["do_resize"]:
        c["shortest"] = c["resize_h"] = c["resize_w"] = 0
    return c


CONFIGS = {
    "clip-224": cfg_of(),
    "clip-336": cfg_of(shortest=336, crop_h=336, crop_w=336),
    "pad-crop": cfg_of(shortest=200, crop_h=256, crop_w=240),
    "exact-size": cfg_of(shortest=0, resize_h=256, resize_w=192, crop=False),
    "crop-only": cfg_of(do_resize=False, crop_h=224, crop_w=224),
    "bilinear-rescale": cfg_of(resample=2, normalize=False, shortest=160, crop_h=128,
                               crop_w=160),
    "lanczos-halfnorm": cfg_of(resample=1, mean=[0.5] * 3, std=[0.5] * 3, rescale=False),
}


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    harness = sys.argv[1]
    images = sample_images()
    failures = []
    with tempfile.TemporaryDirectory(prefix="rwd-clip-prep-") as tmp:
        jobs, checks = [], []
        rgb_cache = {}

        def add_resize(label, im, dw, dh, filt, window=None):
            a = np.array(im)
            h, w = a.shape[:2]
            ch = 1 if a.ndim == 2 else a.shape[2]
            i = len(jobs)
            src = os.path.join(tmp, f"r{i}.in")
            dst = os.path.join(tmp, f"r{i}.out")
            a.tofile(src)
            ref = np.array(im.resize((dw, dh), resample=filt, reducing_gap=None))
            if window:
                x0, y0, rw, rh = window
                jobs.append(f"window {src} {dst} {w} {h} {ch} {dw} {dh} {x0} {y0} {rw} {rh} {filt}")
                ref = ref[y0:y0 + rh, x0:x0 + rw]
            else:
                jobs.append(f"resize {src} {dst} {w} {h} {ch} {dw} {dh} {filt}")
            checks.append(("u8", label, dst, ref))

        def add_prep(label, im, cname):
            cfg = CONFIGS[cname]
            i = len(jobs)
            if id(im) not in rgb_cache:
                rgb = im if im.mode == "RGB" else im.convert("RGB")  # convert_to_rgb drops alpha
                src = os.path.join(tmp, f"p{i}.in")
                np.asarray(rgb).tofile(src)
                rgb_cache[id(im)] = (rgb, src)
            rgb, src = rgb_cache[id(im)]
            dst = os.path.join(tmp, f"p{i}.out")
            ref = hf_preprocess(rgb, cfg)
            m, s = cfg["mean"], cfg["std"]
            jobs.append(" ".join(str(v) for v in [
                "prep", src, dst, rgb.width, rgb.height, cfg["shortest"], cfg["resize_h"],
                cfg["resize_w"], cfg["resample"], int(cfg["crop"]), cfg["crop_h"], cfg["crop_w"],
                int(cfg["rescale"]), repr(cfg["factor"]), int(cfg["normalize"]),
                repr(m[0]), repr(m[1]), repr(m[2]), repr(s[0]), repr(s[1]), repr(s[2])]))
            checks.append(("f32", f"{label} [{cname}]", dst, ref))

        # Bare resizes: every filter, 1 and 3 channels, up/down/one-axis/identity.
        noise3 = synthetic(640, 427, "noise")
        edges1 = synthetic(301, 199, "edges", "L")
        smooth3 = synthetic(97, 61, "smooth")
        for filt in (1, 2, 3, 4, 5):
            for im in (noise3, edges1, smooth3):
                for (dw, dh) in [(224, 150), (37, 23), (im.width, 50), (50, im.height),
                                 (im.width * 2 + 1, im.height + 3), (1, 1)]:
                    add_resize(f"resize {im.mode} {im.width}x{im.height}->{dw}x{dh} f{filt}",
                               im, dw, dh, filt)
        add_resize("identity", noise3, noise3.width, noise3.height, 3)
        tiny = synthetic(1, 1, "noise")
        add_resize("1x1 up", tiny, 7, 9, 3)
        add_resize("5x3 up", synthetic(5, 3, "edges"), 224, 224, 3)
        for win in [(0, 0, 336, 224), (56, 0, 224, 224), (1, 3, 5, 7), (335, 223, 1, 1)]:
            add_resize(f"window {win}", noise3, 336, 224, 3, window=win)
        add_resize("window big", synthetic(4000, 3000, "edges"), 298, 224, 3,
                   window=(37, 0, 224, 224))

        # CLIPImageProcessor pipelines.
        for label, im in images:
            add_prep(label, im, "clip-224")
        for label, im in images[::3]:
            for cname in CONFIGS:
                if cname != "clip-224":
                    add_prep(label, im, cname)

        # The whole decode path: sample files (PNG RGB/gray/RGBA/palette, JPEG)
        # decoded by lib/image/decode vs Pillow's Image.open().convert("RGB").
        for n in FILE_SAMPLES:
            path = os.path.join(SKIMAGE_DATA, n)
            if not os.path.exists(path):
                continue
            for cname in ("clip-224", "pad-crop"):
                cfg = CONFIGS[cname]
                ref = hf_preprocess(Image.open(path).convert("RGB"), cfg)
                i = len(jobs)
                dst = os.path.join(tmp, f"f{i}.out")
                m, sd = cfg["mean"], cfg["std"]
                jobs.append(" ".join(str(v) for v in [
                    "prepfile", path, dst, 0, 0, cfg["shortest"], cfg["resize_h"],
                    cfg["resize_w"], cfg["resample"], int(cfg["crop"]), cfg["crop_h"],
                    cfg["crop_w"], int(cfg["rescale"]), repr(cfg["factor"]),
                    int(cfg["normalize"]), repr(m[0]), repr(m[1]), repr(m[2]), repr(sd[0]),
                    repr(sd[1]), repr(sd[2])]))
                checks.append(("f32", f"decoded file {n} [{cname}]", dst, ref))

        jobfile = os.path.join(tmp, "jobs.txt")
        with open(jobfile, "w") as f:
            f.write("\n".join(jobs) + "\n")
        res = subprocess.run([harness, jobfile], capture_output=True, text=True)
        if res.returncode != 0:
            print("harness failed:", res.stderr.strip())
            return 1
        lines = res.stdout.split("\n")

        worst_u8 = (0, "")
        worst_f = (0.0, "")
        n_u8 = n_f = 0
        for (kind, label, dst, ref), line in zip(checks, lines):
            if kind == "u8":
                got = np.fromfile(dst, dtype=np.uint8)
                if got.size != ref.size:
                    failures.append(f"{label}: size {got.size} != {ref.size}")
                    continue
                d = int(np.abs(got.astype(int) - ref.reshape(-1).astype(int)).max()) if got.size else 0
                n_u8 += 1
                if d > worst_u8[0]:
                    worst_u8 = (d, label)
                if d != 0:
                    failures.append(f"{label}: uint8 differs by up to {d}")
            else:
                parts = line.split()
                ow, oh = int(parts[1]), int(parts[2])
                if (3, oh, ow) != ref.shape:
                    failures.append(f"{label}: shape (3,{oh},{ow}) != {ref.shape}")
                    continue
                got = np.fromfile(dst, dtype="<f4").reshape(ref.shape)
                d = float(np.abs(got - ref).max())
                n_f += 1
                if d > worst_f[0]:
                    worst_f = (d, label)
                if not d <= 1 / 255:
                    failures.append(f"{label}: float differs by {d}")
    print(f"uint8 resizes: {n_u8} compared, worst abs diff {worst_u8[0]} {worst_u8[1]}")
    print(f"preprocessed tensors: {n_f} compared, worst abs diff {worst_f[0]:.3g} {worst_f[1]}")
    for f in failures[:20]:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
