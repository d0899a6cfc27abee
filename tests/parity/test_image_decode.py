"""lib/image/decode against Pillow: our RGB pixels vs Image.open(f).convert("RGB").

Usage: test_image_decode.py IMAGE_HARNESS

Inputs: the real photos shipped with scikit-image (Debian python3-skimage)
plus images synthesised here: with Pillow (gray/LA/RGBA/palette+tRNS PNG,
baseline/progressive/subsampled/grayscale/CMYK JPEG, EXIF orientation), with
a small PNG writer below for what Pillow cannot write (16-bit RGB/RGBA/LA,
1/2/4-bit gray, Adam7 interlacing, colour-key tRNS), and YCCK JPEG through the
harness's libjpeg encoder. The oracle is always Pillow's decoder.
PNG must match exactly; JPEG too (same libjpeg-turbo, same DCT settings):
the worst absolute difference is printed and must be 0 unless a tolerance is
stated below. Errors (truncated, corrupt, unsupported, over the pixel limit)
must be errors on both sides. Exit 0 pass, 1 fail, 77 skip.
"""
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

try:
    import numpy as np
    from PIL import Image, ImageOps
    import PIL
    from PIL import features
except ImportError as e:  # pragma: no cover
    print(f"SKIP: Pillow/numpy not importable ({e})")
    sys.exit(77)

HARNESS = sys.argv[1] if len(sys.argv) > 1 else None
SKDATA = "/usr/lib/python3/dist-packages/skimage/data"
JPEG_TOL = 0  # same libjpeg-turbo as Pillow, same settings: exact

failures = []
worst = {"png": 0, "jpeg": 0}
count = {"png": 0, "jpeg": 0, "error": 0}


def run(path, *opts):
    out = path + ".rgb"
    p = subprocess.run([HARNESS, "decode", *opts, path, out], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"harness failed on {path}: {p.stderr}")
    res = json.loads(p.stdout)
    if res["ok"]:
        data = np.fromfile(out, dtype=np.uint8).reshape(res["h"], res["w"], 3)
        os.unlink(out)
        return res, data
    return res, None


def pillow_rgb(path, exif=False, composite=None):
    with Image.open(path) as im:
        if exif:
            im = ImageOps.exif_transpose(im)
        if composite is not None:
            rgba = np.asarray(im.convert("RGBA")).astype(np.int64)
            a = rgba[..., 3:4]
            bg = np.array(composite, dtype=np.int64)
            return ((a * rgba[..., :3] + (255 - a) * bg + 127) // 255).astype(np.uint8)
        return np.asarray(im.convert("RGB"))


def compare(name, path, fmt, *opts, exif=False, composite=None):
    res, ours = run(path, *opts)
    try:
        ref = pillow_rgb(path, exif=exif, composite=composite)
    except Exception as e:  # Pillow refuses: we must refuse too
        if res["ok"]:
            failures.append(f"{name}: Pillow fails ({e}) but we decoded it")
        else:
            count["error"] += 1
            print(f"  {name}: both fail (ours: {res['code']}: {res['msg']})")
        return
    if not res["ok"]:
        failures.append(f"{name}: we fail ({res['code']}: {res['msg']}) but Pillow decodes it")
        return
    if ours.shape != ref.shape:
        failures.append(f"{name}: shape {ours.shape} vs Pillow {ref.shape}")
        return
    diff = int(np.abs(ours.astype(np.int16) - ref.astype(np.int16)).max()) if ours.size else 0
    tol = 0 if fmt == "png" else JPEG_TOL
    worst[fmt] = max(worst[fmt], diff)
    count[fmt] += 1
    status = "ok" if diff <= tol else "FAIL"
    print(f"  {name}: {ours.shape[1]}x{ours.shape[0]} max|diff| {diff} {status}")
    if diff > tol:
        n = int((ours != ref).any(axis=2).sum())
        failures.append(f"{name}: max diff {diff} over {n} pixels")


def expect_error(name, path, code, *opts):
    res, _ = run(path, *opts)
    if res["ok"]:
        failures.append(f"{name}: decoded, expected a '{code}' error")
    elif res["code"] != code:
        failures.append(f"{name}: got '{res['code']}' ({res['msg']}), expected '{code}'")
    else:
        count["error"] += 1
        print(f"  {name}: {res['code']}: {res['msg']}")


# ---- a small PNG writer for what Pillow cannot write -----------------------

def _chunk(tag, data):
    c = struct.pack(">I", len(data)) + tag + data
    return c + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def _pack_rows(a, depth, channels):
    """a: (h, w, channels) ints -> list of packed row bytes (no filter byte)."""
    h, w = a.shape[:2]
    rows = []
    for y in range(h):
        r = a[y].reshape(-1)
        if depth == 16:
            rows.append(r.astype(">u2").tobytes())
        elif depth == 8:
            rows.append(r.astype(np.uint8).tobytes())
        else:
            per = 8 // depth
            vals = list(r.astype(int)) + [0] * ((-len(r)) % per)
            out = bytearray()
            for i in range(0, len(vals), per):
                b = 0
                for v in vals[i:i + per]:
                    b = (b << depth) | v
                out.append(b)
            rows.append(bytes(out))
    return rows


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def write_png(path, a, color_type, depth, palette=None, trns=None, interlace=False, exif=None):
    a = np.asarray(a)
    if a.ndim == 2:
        a = a[..., None]
    h, w, ch = a.shape
    raw = bytearray()
    if interlace:
        for x0, y0, dx, dy in ADAM7:
            sub = a[y0::dy, x0::dx]
            if sub.shape[0] == 0 or sub.shape[1] == 0:
                continue
            for row in _pack_rows(sub, depth, ch):
                raw += b"\0" + row
    else:
        for row in _pack_rows(a, depth, ch):
            raw += b"\0" + row
    png = b"\x89PNG\r\n\x1a\n"
    png += _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 1 if interlace else 0))
    if palette is not None:
        png += _chunk(b"PLTE", bytes(np.asarray(palette, dtype=np.uint8).reshape(-1)))
    if trns is not None:
        png += _chunk(b"tRNS", trns)
    if exif is not None:
        png += _chunk(b"eXIf", exif)
    png += _chunk(b"IDAT", zlib.compress(bytes(raw), 6))
    png += _chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def main():
    if not os.path.isdir(SKDATA):
        print(f"SKIP: {SKDATA} (Debian python3-skimage data) is missing")
        return 77
    print(f"Pillow {PIL.__version__}, libjpeg {features.version('jpg')}")
    rng = np.random.default_rng(1234)
    tmp = tempfile.mkdtemp(prefix="rwd-image-decode-")

    print("real photos (scikit-image data):")
    for name in ["astronaut.png", "chelsea.png", "coffee.png", "camera.png", "logo.png",
                 "green_palette.png", "palette_color.png", "palette_gray.png", "foo3x5x4indexed.png",
                 "horse.png", "page.png", "rocket.jpg", "retina.jpg", "hubble_deep_field.jpg",
                 "color.png", "brick.png", "truncated.jpg"]:
        p = os.path.join(SKDATA, name)
        if os.path.exists(p):
            compare(name, p, "jpeg" if name.endswith(".jpg") else "png")

    print("synthesised with Pillow:")
    photo = np.asarray(Image.open(os.path.join(SKDATA, "astronaut.png")).convert("RGB"))
    def crop(w, h):
        return photo[100:100 + h, 150:150 + w]
    cases = []
    for (w, h) in [(1, 1), (7, 5), (33, 17), (257, 131)]:
        rgb = crop(w, h)
        im = Image.fromarray(rgb)
        p = os.path.join(tmp, f"rgb_{w}x{h}.png"); im.save(p); cases.append((p, "png"))
        p = os.path.join(tmp, f"rgba_{w}x{h}.png")
        rgba = np.dstack([rgb, rng.integers(0, 256, (h, w), dtype=np.uint8)])
        Image.fromarray(rgba, "RGBA").save(p); cases.append((p, "png"))
        p = os.path.join(tmp, f"la_{w}x{h}.png")
        Image.fromarray(np.dstack([rgb[..., 0], rgb[..., 1]]), "LA").save(p); cases.append((p, "png"))
        p = os.path.join(tmp, f"l_{w}x{h}.png"); im.convert("L").save(p); cases.append((p, "png"))
        pal = im.quantize(37)
        pal.info["transparency"] = bytes(range(0, 37 * 7, 7))
        p = os.path.join(tmp, f"p_trns_{w}x{h}.png"); pal.save(p, transparency=bytes(range(0, 37 * 7, 7))); cases.append((p, "png"))
        for q, sub in [(90, 0), (75, 1), (60, 2)]:
            p = os.path.join(tmp, f"q{q}_s{sub}_{w}x{h}.jpg"); im.save(p, quality=q, subsampling=sub); cases.append((p, "jpeg"))
        p = os.path.join(tmp, f"prog_{w}x{h}.jpg"); im.save(p, quality=85, progressive=True); cases.append((p, "jpeg"))
        p = os.path.join(tmp, f"gray_{w}x{h}.jpg"); im.convert("L").save(p, quality=85); cases.append((p, "jpeg"))
        p = os.path.join(tmp, f"cmyk_{w}x{h}.jpg"); im.convert("CMYK").save(p, quality=90); cases.append((p, "jpeg"))
        cmyk = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
        p = os.path.join(tmp, f"cmyk_rand_{w}x{h}.jpg"); Image.fromarray(cmyk, "CMYK").save(p, quality=95); cases.append((p, "jpeg"))
        # YCCK through the harness's libjpeg encoder
        rawp = os.path.join(tmp, f"ycck_{w}x{h}.cmyk"); cmyk.tofile(rawp)
        p = os.path.join(tmp, f"ycck_{w}x{h}.jpg")
        subprocess.run([HARNESS, "write-ycck", rawp, str(w), str(h), p], check=True)
        cases.append((p, "jpeg"))
    for p, fmt in cases:
        compare(os.path.basename(p), p, fmt)

    print("synthesised with the PNG writer (16-bit, low bit depths, Adam7, colour-key tRNS):")
    for (w, h) in [(1, 1), (5, 3), (37, 23)]:
        rgb16 = rng.integers(0, 65536, (h, w, 3))
        for interlace in (False, True):
            tag = f"{w}x{h}{'_adam7' if interlace else ''}"
            p = os.path.join(tmp, f"rgb16_{tag}.png"); write_png(p, rgb16, 2, 16, interlace=interlace); compare(os.path.basename(p), p, "png")
            p = os.path.join(tmp, f"rgba16_{tag}.png"); write_png(p, rng.integers(0, 65536, (h, w, 4)), 6, 16, interlace=interlace); compare(os.path.basename(p), p, "png")
            p = os.path.join(tmp, f"la16_{tag}.png"); write_png(p, rng.integers(0, 65536, (h, w, 2)), 4, 16, interlace=interlace); compare(os.path.basename(p), p, "png")
            # 16-bit gray: Pillow's mode "I" clips to 255; small values show the clip edge
            g16 = rng.integers(0, 600, (h, w)); g16.flat[0] = 65535
            p = os.path.join(tmp, f"gray16_{tag}.png"); write_png(p, g16, 0, 16, interlace=interlace); compare(os.path.basename(p), p, "png")
            for d in (1, 2, 4, 8):
                p = os.path.join(tmp, f"gray{d}_{tag}.png"); write_png(p, rng.integers(0, 1 << d, (h, w)), 0, d, interlace=interlace); compare(os.path.basename(p), p, "png")
                npal = min(1 << d, 11)
                pal = rng.integers(0, 256, (npal, 3))
                p = os.path.join(tmp, f"pal{d}_{tag}.png")
                write_png(p, rng.integers(0, npal, (h, w)), 3, d, palette=pal, trns=bytes(rng.integers(0, 256, npal).astype(np.uint8)), interlace=interlace)
                compare(os.path.basename(p), p, "png")
            for d in (4, 8):  # indices past the PLTE entries (Pillow: grey ramp)
                p = os.path.join(tmp, f"pal{d}_short_{tag}.png")
                write_png(p, rng.integers(0, 1 << d, (h, w)), 3, d, palette=rng.integers(0, 256, (5, 3)), interlace=interlace)
                compare(os.path.basename(p), p, "png")
            p = os.path.join(tmp, f"rgb8_trns_{tag}.png")
            a = rng.integers(0, 4, (h, w, 3)) * 60
            write_png(p, a, 2, 8, trns=struct.pack(">HHH", 60, 0, 120), interlace=interlace); compare(os.path.basename(p), p, "png")

    print("composite over a background (oracle: Pillow convert('RGBA') blended with numpy, rounded):")
    for p in [os.path.join(tmp, "rgba_33x17.png"), os.path.join(tmp, "la_33x17.png"),
              os.path.join(tmp, "p_trns_33x17.png"), os.path.join(tmp, "pal8_37x23.png"),
              os.path.join(tmp, "rgb8_trns_37x23.png"), os.path.join(tmp, "rgba16_37x23_adam7.png"),
              os.path.join(SKDATA, "logo.png"), os.path.join(tmp, "rgb_33x17.png"),
              os.path.join(tmp, "q90_s0_33x17.jpg")]:
        for bg in [(255, 255, 255), (10, 200, 30)]:
            compare(f"{os.path.basename(p)} over {bg}", p, "jpeg" if p.endswith(".jpg") else "png",
                    "--composite", ",".join(map(str, bg)), composite=bg)

    print("EXIF orientation (oracle: ImageOps.exif_transpose):")
    base = Image.fromarray(crop(13, 7))
    for o in range(1, 9):
        ex = Image.Exif(); ex[0x0112] = o
        for fmt, ext in [("jpeg", "jpg"), ("png", "png")]:
            p = os.path.join(tmp, f"orient{o}.{ext}")
            base.save(p, exif=ex.tobytes(), **({"quality": 95} if ext == "jpg" else {}))
            compare(f"orient{o}.{ext} (applied)", p, fmt, "--exif", exif=True)
            compare(f"orient{o}.{ext} (default: ignored)", p, fmt)

    print("errors:")
    good_png = os.path.join(tmp, "rgb_257x131.png")
    good_jpg = os.path.join(tmp, "q90_s0_257x131.jpg")
    prog_jpg = os.path.join(tmp, "prog_257x131.jpg")
    for src, fmt in [(good_png, "png"), (good_jpg, "jpeg"), (prog_jpg, "jpeg")]:
        data = open(src, "rb").read()
        for cut in [len(data) // 2, len(data) - 40, 30, 9]:
            p = os.path.join(tmp, f"cut{cut}_" + os.path.basename(src)); open(p, "wb").write(data[:cut])
            compare(f"{os.path.basename(src)} cut at {cut}", p, fmt)
            expect_error(f"{os.path.basename(src)} cut at {cut}", p, "malformed input")
    # corrupt PNG: a flipped byte inside IDAT (CRC mismatch in a critical chunk)
    data = bytearray(open(good_png, "rb").read()); i = data.find(b"IDAT") + 100; data[i] ^= 0xFF
    p = os.path.join(tmp, "idat_crc.png"); open(p, "wb").write(data)
    compare("png with a corrupt IDAT", p, "png")
    expect_error("png with a corrupt IDAT", p, "malformed input")
    # over the pixel limit, told from the header alone (IHDR claims 100000 x 100000)
    p = os.path.join(tmp, "huge.png")
    open(p, "wb").write(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)) + _chunk(b"IEND", b""))
    expect_error("png IHDR 100000x100000", p, "limit exceeded")
    expect_error("astronaut.png with max_pixels 1000", os.path.join(SKDATA, "astronaut.png"), "limit exceeded", "--max-pixels", "1000")
    expect_error("hubble jpg with max_pixels 1000", os.path.join(SKDATA, "hubble_deep_field.jpg"), "limit exceeded", "--max-pixels", "1000")
    # JPEG SOF claiming 60000 x 60000
    d = bytearray(open(good_jpg, "rb").read()); i = d.find(b"\xff\xc0")
    d[i + 5:i + 9] = struct.pack(">HH", 60000, 60000)
    p = os.path.join(tmp, "huge.jpg"); open(p, "wb").write(d)
    expect_error("jpeg SOF 60000x60000", p, "limit exceeded")
    # unsupported formats
    for name in ["no_time_for_that_tiny.gif", "multipage.tif"]:
        p = os.path.join(SKDATA, name)
        if os.path.exists(p):
            expect_error(name, p, "unsupported")
    p = os.path.join(tmp, "x.webp"); open(p, "wb").write(b"RIFF\x10\0\0\0WEBPVP8 " + b"\0" * 16)
    expect_error("webp", p, "unsupported")
    p = os.path.join(tmp, "empty"); open(p, "wb").write(b"")
    expect_error("empty", p, "malformed input")

    print(f"\n{count['png']} PNG and {count['jpeg']} JPEG decodes compared with Pillow, {count['error']} error cases;"
          f" worst |diff|: PNG {worst['png']}, JPEG {worst['jpeg']}")
    if failures:
        print("FAILURES:")
        for f in failures:
            print("  " + f)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
