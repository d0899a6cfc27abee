"""image_metrics vs scikit-image / scipy / numpy, computed here on real photos
and distorted versions of them (Gaussian noise, blur, JPEG recompression,
brightness clipping).

Usage: test_image_metrics.py IMAGE_HARNESS

Oracles (luma is Pillow's convert("L"), the same uint8 array for both sides):
  ssim          skimage.metrics.structural_similarity(src_L, img_L,
                gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                data_range=255)
  psnr          skimage.metrics.peak_signal_noise_ratio(src_RGB, img_RGB,
                data_range=255), inf -> 100 (our documented cap)
  sharpness     scipy.ndimage.laplace(img_L as float64, mode='mirror').var()
  colorfulness  Hasler-Suesstrunk with numpy (population std)
  exposure      numpy mean of (0 < L < 255)
Every value must agree to 1e-4 (absolute); the worst errors are printed.
Sizes that differ must fail the item; sides under 11 pixels give no ssim.
Exit 0 pass, 1 fail, 77 skip.
"""
import io
import json
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    from PIL import Image, ImageFilter
    from scipy import ndimage
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
except ImportError as e:  # pragma: no cover
    print(f"SKIP: oracle not importable ({e})")
    sys.exit(77)

HARNESS = sys.argv[1]
SKDATA = "/usr/lib/python3/dist-packages/skimage/data"
TOL = 1e-4
PSNR_MAX = 100.0

worst = {}
failures = []


def harness(img, src=None):
    args = [HARNESS, "metrics", img] + ([src] if src else [])
    p = subprocess.run(args, capture_output=True, text=True, env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    if p.returncode != 0:
        raise RuntimeError(f"harness failed: {p.stderr}")
    return json.loads(p.stdout)


def oracle(img_path, src_path=None):
    im = Image.open(img_path)
    rgb = np.asarray(im.convert("RGB"))
    L = np.asarray(im.convert("L"))
    f = rgb.astype(np.float64)
    rg = f[..., 0] - f[..., 1]
    yb = 0.5 * (f[..., 0] + f[..., 1]) - f[..., 2]
    out = {
        "sharpness": float(ndimage.laplace(L.astype(np.float64), mode="mirror").var()),
        "colorfulness": float(np.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)),
        "exposure": float(np.mean((L > 0) & (L < 255))),
    }
    if src_path:
        s = Image.open(src_path)
        srgb = np.asarray(s.convert("RGB"))
        sL = np.asarray(s.convert("L"))
        with np.errstate(divide="ignore"):
            psnr = peak_signal_noise_ratio(srgb, rgb, data_range=255)
        out["psnr"] = float(min(psnr, PSNR_MAX))
        if min(L.shape) >= 11:
            out["ssim"] = float(structural_similarity(sL, L, gaussian_weights=True, sigma=1.5,
                                                      use_sample_covariance=False, data_range=255))
    return out


def compare(name, img, src=None):
    ours = harness(img, src)
    ref = oracle(img, src)
    if not ours.get("ok"):
        failures.append(f"{name}: harness error {ours}")
        return
    keys = set(ref) | (set(ours) - {"ok"})
    line = []
    for k in sorted(keys):
        if k not in ours or k not in ref:
            failures.append(f"{name}: {k} present only in {'ours' if k in ours else 'the oracle'}")
            continue
        err = abs(ours[k] - ref[k])
        rel = err / max(abs(ref[k]), 1e-12)
        w = worst.get(k, (0.0, 0.0, ""))
        if err >= w[0]:
            worst[k] = (err, rel, name)
        line.append(f"{k} {ours[k]:.6g}")
        if not err <= TOL:
            failures.append(f"{name}: {k} ours {ours[k]!r} vs oracle {ref[k]!r} (|err| {err:.3g})")
    print(f"  {name}: " + ", ".join(line))


def main():
    if not os.path.isdir(SKDATA):
        print(f"SKIP: {SKDATA} (Debian python3-skimage data) is missing")
        return 77
    rng = np.random.default_rng(7)
    tmp = tempfile.mkdtemp(prefix="rwd-image-metrics-")

    def save(arr_or_im, name):
        p = os.path.join(tmp, name)
        im = arr_or_im if isinstance(arr_or_im, Image.Image) else Image.fromarray(arr_or_im)
        im.save(p)
        return p

    photos = ["astronaut.png", "chelsea.png", "coffee.png", "camera.png", "rocket.jpg", "logo.png", "hubble_deep_field.jpg"]
    for name in photos:
        path = os.path.join(SKDATA, name)
        if not os.path.exists(path):
            continue
        im = Image.open(path).convert("RGB")
        if max(im.size) > 320:  # keep the test fast: a 320x256 crop is plenty
            im = im.crop((40, 40, min(im.size[0], 360), min(im.size[1], 296)))
        src = save(im, f"src_{name}.png")
        a = np.asarray(im).astype(np.float64)
        noisy = np.clip(a + rng.normal(0, 12, a.shape), 0, 255).round().astype(np.uint8)
        bright = np.clip(a * 1.6 + 20, 0, 255).astype(np.uint8)
        buf = io.BytesIO(); im.save(buf, "JPEG", quality=25); buf.seek(0)
        variants = {
            "identical": src,
            "noise": save(noisy, f"noise_{name}.png"),
            "blur": save(im.filter(ImageFilter.GaussianBlur(2)), f"blur_{name}.png"),
            "jpeg25": save(Image.open(buf).convert("RGB"), f"jpeg_{name}.png"),
            "bright": save(bright, f"bright_{name}.png"),
        }
        print(f"{name} ({im.size[0]}x{im.size[1]}):")
        for vname, vpath in variants.items():
            compare(f"{name}/{vname}", vpath, src)
        compare(f"{name}/no source", src)

    print("small and odd sizes:")
    base = np.asarray(Image.open(os.path.join(SKDATA, "coffee.png")).convert("RGB"))
    for (w, h) in [(11, 11), (12, 17), (37, 11), (10, 40), (5, 3), (1, 1), (2, 1), (1, 9)]:
        a = base[50:50 + h, 70:70 + w]
        b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
        compare(f"{w}x{h}", save(b, f"b_{w}x{h}.png"), save(a, f"a_{w}x{h}.png"))
    compare("flat black", save(np.zeros((16, 16, 3), np.uint8), "black.png"))
    compare("flat white vs black", save(np.full((16, 16, 3), 255, np.uint8), "white.png"), os.path.join(tmp, "black.png"))

    print("mismatched sizes must fail the item:")
    r = harness(os.path.join(tmp, "a_12x17.png"), os.path.join(tmp, "a_11x11.png"))
    if r.get("ok") or r.get("code") != "invalid input":
        failures.append(f"mismatched sizes: expected an 'invalid input' error, got {r}")
    else:
        print(f"  12x17 vs 11x11: {r['code']}: {r['msg']}")

    print("\nworst absolute (relative) error per metric vs scikit-image/scipy/numpy:")
    for k, (err, rel, where) in sorted(worst.items()):
        print(f"  {k:13s} {err:.3e} ({rel:.3e})  at {where}")
    if failures:
        print("FAILURES:")
        for f in failures:
            print("  " + f)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
