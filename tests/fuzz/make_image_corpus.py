"""Regenerate tests/fuzz/corpus/{png,jpeg}/: tiny valid images of every kind
the decoder handles, plus truncated, corrupt and huge-header variants.
Run with Debian's /usr/bin/python3 (Pillow, numpy); deterministic."""
import io
import os
import struct
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "parity"))
from test_image_decode import _chunk, write_png  # noqa: E402

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
rng = np.random.default_rng(99)


def put(kind, name, data):
    with open(os.path.join(root, kind, name), "wb") as f:
        f.write(data)


def png(name, a, ct, depth, **kw):
    p = os.path.join(root, "png", name)
    write_png(p, a, ct, depth, **kw)
    return open(p, "rb").read()


exif6 = b"MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0"
png("rgb8.png", rng.integers(0, 256, (5, 7, 3)), 2, 8)
png("rgba16_adam7.png", rng.integers(0, 65536, (9, 6, 4)), 6, 16, interlace=True)
png("gray1.png", rng.integers(0, 2, (4, 11)), 0, 1)
png("gray16_trns.png", rng.integers(0, 600, (3, 3)), 0, 16, trns=struct.pack(">H", 5))
png("la8.png", rng.integers(0, 256, (3, 4, 2)), 4, 8)
png("pal4_trns.png", rng.integers(0, 9, (5, 5)), 3, 4, palette=rng.integers(0, 256, (9, 3)), trns=bytes([0, 50, 255]))
png("pal8_short_plte.png", rng.integers(0, 16, (4, 4)), 3, 8, palette=rng.integers(0, 256, (4, 3)))
good = png("rgb8_exif.png", rng.integers(0, 256, (4, 6, 3)), 2, 8, exif=exif6)
put("png", "truncated.png", good[: len(good) // 2])
bad = bytearray(good); bad[good.find(b"IDAT") + 6] ^= 0x55
put("png", "corrupt_idat.png", bytes(bad))
put("png", "huge_ihdr.png", b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 70000, 70000, 8, 6, 0, 0, 0)) + _chunk(b"IEND", b""))
put("png", "bad_ihdr.png", b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 3, 3, 7, 2, 0, 0, 0)) + _chunk(b"IEND", b""))

im = Image.fromarray(rng.integers(0, 256, (9, 13, 3), dtype=np.uint8))
def jpg(name, img, **kw):
    b = io.BytesIO(); img.save(b, "JPEG", **kw); put("jpeg", name, b.getvalue()); return b.getvalue()
base = jpg("baseline.jpg", im, quality=80)
jpg("progressive.jpg", im, quality=80, progressive=True)
jpg("gray.jpg", im.convert("L"), quality=80)
jpg("cmyk.jpg", im.convert("CMYK"), quality=80)
jpg("s444.jpg", im, quality=80, subsampling=0)
ex = Image.Exif(); ex[0x0112] = 8
jpg("exif8.jpg", im, quality=80, exif=ex.tobytes())
put("jpeg", "truncated.jpg", base[: len(base) // 2])
d = bytearray(base); i = d.find(b"\xff\xc0"); d[i + 5:i + 9] = struct.pack(">HH", 65000, 65000)
put("jpeg", "huge_sof.jpg", bytes(d))
d = bytearray(base); i = d.find(b"\xff\xc4"); d[i + 5] = 0xff
put("jpeg", "bad_dht.jpg", bytes(d))
print("corpus written to", root)
