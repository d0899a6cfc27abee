#!/usr/bin/python3
"""Parity: the imagereward kind, end to end from PNG/JPEG bytes, against the
PyTorch reference written from ImageReward's model definition
(tests/parity/imagereward_ref.py).

    /usr/bin/python3 test_imagereward_torch.py HARNESS SOURCE_ROOT [REWARDD_EXE]

The checkpoint: random weights in ImageReward.pt's exact state-dict layout
(tools/make_tiny_models.py imagereward tiny: the real 224 px / patch 16 image
path, 197 image tokens, the real 30524-id vocabulary, 35 tokens, the real
head widths; small towers), converted by tools/convert_checkpoint.py
imagereward, then loaded by its config.json's kind through the generic model
API (rwd_model_load / check / run). The converter's round trip is checked
tensor by tensor against the .pt.

Token ids: the oracle tokenises with Hugging Face tokenizers
(tests/parity/bert_tokenize.js: bert-base-uncased + [DEC] [ENC], padded to 35
with the attention mask) and runs the padded sequence with med.py's -10000
mask; rewardd computes the real tokens only. Images: scikit-image photos and
synthetic ones of sizes that hit every transform case (downscale, upscale,
already 224 on the short side, exactly 224 x 224, odd crop margins where
round-half-even differs from floor, portrait, landscape, grey), as PNG and
JPEG, decoded by Pillow in the oracle. Checks: the preprocessed tensor equals
the oracle's (max |diff| printed), each score within 1e-5 relative of the
float64 reference, the same scores within 1e-6 relative in batches of 1 and
of all (not bit for bit: OpenBLAS picks its sgemm kernels by the row count),
and items without a prompt or with broken image bytes fail without a score.
With REWARDD_EXE the same folder is also served by the daemon
(--model ir=FOLDER, the generic path) and POST /v1/rewards must return the
same scores within 1e-5 relative of the reference, and an item without a
prompt no score.
Exit 0 pass, 1 fail, 77 skip.
"""
import base64
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

HARNESS, SRC = sys.argv[1], sys.argv[2]
EXE = sys.argv[3] if len(sys.argv) > 3 else None
sys.path.insert(0, os.path.join(SRC, "tools"))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def skip(why):
    print("SKIP:", why)
    sys.exit(77)


try:
    import numpy as np
    import torch
    from PIL import Image
except ImportError as e:
    skip("needs Debian python3-torch, python3-numpy, python3-pil (%s)" % e)
import imagereward_ref as R  # noqa: E402
import safetensors_io  # noqa: E402

VOCAB = os.path.join(SRC, "tests", "data", "bert-base-uncased", "vocab.txt")
NODE = shutil.which("node")
if not NODE:
    skip("node not found (the HF tokenizers oracle)")
if not os.path.isdir(os.path.join(SRC, "node_modules", "@anush008", "tokenizers")):
    skip("@anush008/tokenizers not installed in node_modules")
SKD = "/usr/lib/python3/dist-packages/skimage/data"

failed = []


def check(cond, what):
    if not cond:
        failed.append(what)
        print("FAIL:", what)


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        print("command failed:", " ".join(cmd), r.stdout, r.stderr)
        sys.exit(1)
    return r.stdout


def images():
    """(name, PIL RGB/L image) covering the transform's cases."""
    g = np.random.default_rng(7)
    out = []
    for name in ("astronaut.png", "chelsea.png", "coffee.png", "camera.png"):
        p = os.path.join(SKD, name)
        if os.path.exists(p):
            out.append((name, Image.open(p)))

    def smooth(w, h, grey=False):
        a = g.random((h // 8 + 2, w // 8 + 2, 1 if grey else 3)) * 255
        im = Image.fromarray(a.astype(np.uint8).squeeze() if grey else a.astype(np.uint8))
        im = im.resize((w, h), Image.BILINEAR)
        n = g.integers(-20, 20, (h, w) if grey else (h, w, 3))
        return Image.fromarray(np.clip(np.asarray(im).astype(int) + n, 0, 255).astype(np.uint8))
    for w, h in ((225, 301), (301, 227), (100, 80), (224, 224), (224, 300), (1000, 230), (231, 224), (97, 403)):
        out.append(("synthetic %dx%d" % (w, h), smooth(w, h)))
    out.append(("grey 260x333", smooth(260, 333, grey=True)))
    return out


def encode(im, fmt):
    b = io.BytesIO()
    im.save(b, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return b.getvalue()


PROMPTS = ["a photo of a cat", "A painting of a FOX in the snow, by Monet; trending on artstation!",
           "", "café naïve 東京 🤖 x[DEC]y [ENC]",
           "an extremely long prompt " * 12, "unaffable", "1girl, masterpiece, best quality, ultra-detailed"]


def serve(model, items, want, names):
    import rwd_harness as H
    d = H.Daemon(EXE, {"models": {}}, args=["--model", "ir=" + model])
    try:
        r = d.request("POST", "/v1/rewards", body={"model": "ir", "items": items})
        check(r.status == 200, "daemon answered %d %s" % (r.status, r.raw[:300]))
        worst = 0.0
        if r.status == 200:
            for i, res in enumerate(r.json["results"]):
                got = res.get("scores", {}).get("imagereward")
                rel = abs(got - want[i].item()) / max(abs(want[i].item()), 1e-3) if got is not None else float("inf")
                worst = max(worst, rel)
                check(rel <= 1e-5, "daemon %s: %s vs reference %.9g" % (names[i], got, want[i].item()))
        r2 = d.request("POST", "/v1/rewards", body={"model": "ir", "items": [{"image": items[0]["image"]}]})
        no_score = r2.status >= 400 or not r2.json["results"][0].get("scores")
        check(no_score, "an item without a prompt gets no score: %d %s" % (r2.status, r2.raw[:300]))
        m = d.request("GET", "/v1/models/ir")
        check(m.status == 200 and m.json.get("kind") == "imagereward", "GET /v1/models/ir: %d %s" % (
            m.status, m.raw[:200]))
        print("daemon: POST /v1/rewards on %d items, max relative error %.3g; no prompt -> %d" % (
            len(items), worst, r2.status))
    finally:
        d.stop()


def main():
    tmp = tempfile.mkdtemp(prefix="rwd-imagereward-")
    try:
        src, model = os.path.join(tmp, "src"), os.path.join(tmp, "model")
        run([sys.executable, os.path.join(SRC, "tools", "make_tiny_models.py"), "imagereward", "tiny", src,
             "--seed", "3"])
        run([sys.executable, os.path.join(SRC, "tools", "convert_checkpoint.py"), "imagereward",
             os.path.join(src, "ImageReward.pt"), os.path.join(src, "med_config.json"), model,
             "--vision-heads", "2", "--vocab", VOCAB])
        sd = torch.load(os.path.join(src, "ImageReward.pt"), weights_only=True)
        med = json.load(open(os.path.join(src, "med_config.json")))
        conv = safetensors_io.load(os.path.join(model, "model.safetensors"))
        need = [k for k in sd if not k.startswith(("blip.vision_proj", "blip.text_proj")) and
                not k.endswith("position_ids")]
        check(sorted(conv) == sorted(need), "the converted tensors are the score's tensors of the .pt")
        check(all(torch.equal(conv[k], sd[k].float()) for k in need if k in conv),
              "every converted tensor equals the .pt's")
        cfg = json.load(open(os.path.join(model, "config.json")))
        check(cfg["text_config"]["encoder_width"] == 32 and med["encoder_width"] == 768,
              "encoder_width is the vision width, as BLIP_Pretrain sets it")
        ref = R.ImageRewardRef(sd, 2, med)

        ims = images()
        items, pils, names, prompts = [], [], [], []
        k = 0
        for name, im in ims:
            for fmt in ("PNG", "JPEG"):
                data = encode(im, fmt)
                p = PROMPTS[k % len(PROMPTS)]
                k += 1
                items.append({"image": base64.b64encode(data).decode(), "prompt": p})
                pils.append(Image.open(io.BytesIO(data)))
                names.append("%s %s" % (name, fmt))
                prompts.append(p)
        tok = json.loads(run([NODE, os.path.join(SRC, "tests", "parity", "bert_tokenize.js"), SRC, VOCAB],
                             input=json.dumps(prompts)))
        ids = torch.tensor(tok["ids"], dtype=torch.long)
        att = torch.tensor(tok["mask"], dtype=torch.long)
        pix = torch.stack([R.transform(p) for p in pils])
        with torch.no_grad():
            want = ref.score(ids, att, pix)

        # the preprocessing alone, on the PNGs
        worst_px = 0.0
        for i in range(0, len(items), 2):
            f_img, f_out = os.path.join(tmp, "img.bin"), os.path.join(tmp, "px.bin")
            open(f_img, "wb").write(base64.b64decode(items[i]["image"]))
            run([HARNESS, "preprocess", model, f_img, f_out])
            ours = torch.frombuffer(bytearray(open(f_out, "rb").read()), dtype=torch.float32).reshape(3, 224, 224)
            d = (ours - pix[i]).abs().max().item()
            worst_px = max(worst_px, d)
            check(d <= 1e-6, "%s: preprocessed pixels differ by %g" % (names[i], d))
        print("preprocessing: %d images, max |ours - torchvision-on-PIL| = %g" % (len(items) // 2, worst_px))

        bad = [{"image": items[0]["image"]}, {"image": base64.b64encode(b"not an image").decode(), "prompt": "x"},
               {"prompt": "a cat"}]
        fi, fo = os.path.join(tmp, "items.json"), os.path.join(tmp, "out.json")
        json.dump(items + bad, open(fi, "w"))
        run([HARNESS, "score", model, fi, fo])
        got_all = json.load(open(fo))
        check(got_all["kind"] == "imagereward", "the kind comes from config.json")
        run([HARNESS, "score", model, fi, fo, "1"])
        got_one = json.load(open(fo))
        worst = worst_b = 0.0
        for i in range(len(items)):
            a, b = got_all["items"][i], got_one["items"][i]
            if a["status"] != 0:
                check(False, "%s: item failed: %s" % (names[i], a.get("error")))
                continue
            s = a["scores"]["imagereward"]
            rel = abs(s - want[i].item()) / max(abs(want[i].item()), 1e-3)
            worst = max(worst, rel)
            check(rel <= 1e-5, "%s %r: %.9g vs reference %.9g (rel %.2g)" % (names[i], prompts[i][:30], s,
                                                                             want[i].item(), rel))
            d = abs(b["scores"]["imagereward"] - s) / max(abs(s), 1e-3) if b["status"] == 0 else float("inf")
            worst_b = max(worst_b, d)
            check(d <= 1e-6, "%s: batch of 1 gives %r, batch of %d %r" % (names[i], b["scores"], len(items), s))
        for j, it in enumerate(got_all["items"][len(items):]):
            check(it["status"] != 0 and not it["scores"], "bad item %d fails without a score: %r" % (j, it))
        spread = want.max().item() - want.min().item()
        print("scores: %d items (%d images x PNG/JPEG), reference range [%.4f, %.4f] (spread %.3f), "
              "max relative error %.3g; batch of 1 vs batch of %d: max relative difference %.3g" % (
                  len(items), len(ims), want.min().item(), want.max().item(), spread, worst, len(items), worst_b))
        check(spread > 0.05, "the scores vary with the input (spread %g)" % spread)
        if EXE:
            serve(model, items, want, names)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("test_imagereward_torch: %s" % ("FAIL (%d)" % len(failed) if failed else "PASS"))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
