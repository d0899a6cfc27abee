#!/usr/bin/python3
"""Parity: the clip kind (lib/models/clip.c) against clip_ref.py (PyTorch).

    /usr/bin/python3 test_clip_torch.py HARNESS SOURCE_ROOT

Checkpoints are written here by tools/make_tiny_models.py with random
weights in exact Hugging Face layout: tiny (quick_gelu, gelu, and the legacy
config layout with *_config_dict overrides and eos_token_id 2, so pooling
takes the argmax rule) and base-size ViT-B/32 (quick_gelu and gelu; the gelu
folder shares the weights and differs only in config.json).

Checks, each ≤ 1e-4 relative, the reference in float64:
  - image embeddings of random pixel tensors and text embeddings of id
    sequences (short, full 77-token, without EOS, with EOS/0 padding after
    EOS) through `clip-harness embed`;
  - every dimension through the model kind (`clip-harness score`: items as
    the API receives them, PNG/JPEG base64, one batch with duplicate inputs):
    text_alignment (PickScore and CLIPScore variants), image_similarity,
    edit_direction, and an mlp head on the unit image embedding. The oracle
    decodes with Pillow (convert("RGB")), preprocesses with transformers'
    CLIPImageProcessor arithmetic (test_clip_preprocess.hf_preprocess) and
    uses the token ids of the model's own tokenizer (their parity with HF
    tokenizers is tests/parity/test_tokenizer_clip.js's job).
Relative error: max|ours - ref| / max|ref| for embeddings; for a scalar
dimension |ours - ref| / max(|ref|, scale), scale = exp(logit_scale) for
PickScore, the weight for CLIPScore, 1 otherwise. Prints the worst errors.
Exit 0 pass, 1 fail, 77 skip.
"""
import base64
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    from PIL import Image
except ImportError as e:  # pragma: no cover
    print(f"SKIP: oracle missing ({e}); needs Debian python3-torch, python3-numpy, python3-pil")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import clip_ref  # noqa: E402
from test_clip_preprocess import cfg_of, hf_preprocess  # noqa: E402

TOL = 1e-4
RNG = np.random.default_rng(7)


def make_model(src_root, out, size, *extra):
    subprocess.run(["/usr/bin/python3", os.path.join(src_root, "tools", "make_tiny_models.py"),
                    "clip", size, out, *extra], check=True)


def rel_err(ours, ref):
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    return float(np.abs(ours - ref).max() / max(np.abs(ref).max(), 1e-30))


def prep_cfg(folder):
    with open(os.path.join(folder, "preprocessor_config.json")) as f:
        pc = json.load(f)
    size, crop = pc.get("size", 224), pc.get("crop_size", 224)
    shortest = size if isinstance(size, int) else size["shortest_edge"]
    ch, cw = (crop, crop) if isinstance(crop, int) else (crop["height"], crop["width"])
    return cfg_of(shortest=shortest, crop_h=ch, crop_w=cw, resample=pc.get("resample", 3),
                  factor=pc.get("rescale_factor", 1 / 255), mean=pc["image_mean"],
                  std=pc["image_std"])


def random_ids(n, vocab_top=49405):
    return [int(x) for x in RNG.integers(0, vocab_top, n)]


def id_cases(ctx):
    bos, eos = 49406, 49407
    return [
        [bos] + random_ids(5) + [eos],
        [bos, eos],
        [bos] + random_ids(ctx - 2) + [eos],
        [bos] + random_ids(9),                      # no EOS
        [bos] + random_ids(3) + [eos, eos, eos],    # openai padding (pad = EOS)
        [bos] + random_ids(4) + [eos, 0, 0, 0],     # LAION padding (pad = "!")
        random_ids(12),
    ]


def image_bytes(w, h, fmt, mode="RGB"):
    yy, xx = np.mgrid[0:h, 0:w]
    a = np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)),
                  ((xx + yy) * 3) % 256], axis=-1).astype(np.int16)
    a = np.clip(a + RNG.integers(-30, 31, a.shape), 0, 255).astype(np.uint8)
    im = Image.fromarray(a, "RGB")
    if mode != "RGB":
        im = im.convert(mode)
    buf = io.BytesIO()
    im.save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def ref_pixels(data, cfg):
    im = Image.open(io.BytesIO(data)).convert("RGB")
    return torch.from_numpy(hf_preprocess(im, cfg))


def check_embeddings(harness, folder, ref, n_img, tmp, worst, failures, label):
    S = ref.vision["image_size"]
    px = torch.from_numpy(RNG.standard_normal((n_img, 3, S, S)).astype(np.float32))
    ids = id_cases(ref.text["max_position_embeddings"])
    pxf = os.path.join(tmp, "px.f32")
    idf = os.path.join(tmp, "ids.txt")
    px.numpy().tofile(pxf)
    with open(idf, "w") as f:
        f.write("\n".join(" ".join(map(str, i)) for i in ids) + "\n")
    oi, ot = os.path.join(tmp, "ie.f32"), os.path.join(tmp, "te.f32")
    subprocess.run([harness, "embed", folder, pxf, str(n_img), idf, oi, ot], check=True)
    ours_i = np.fromfile(oi, dtype=np.float32).reshape(n_img, -1)
    ours_t = np.fromfile(ot, dtype=np.float32).reshape(len(ids), -1)
    ri = ref.image_embeds(px).numpy()
    rt = ref.text_embeds(ids).numpy()
    for what, o, r in (("image embeddings", ours_i, ri), ("text embeddings", ours_t, rt)):
        e = rel_err(o, r)
        key = f"{label}: {what}"
        worst[key] = e
        if not e <= TOL:
            failures.append(f"{key}: relative error {e:.3g}")


def make_head(path, proj, gen):
    """An mlp head file (layers.0: proj->8, layers.2: 8->1), no activation."""
    sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
    import safetensors_io
    w = {"layers.0.weight": torch.randn(8, proj, generator=gen) / proj ** 0.5,
         "layers.0.bias": 0.1 * torch.randn(8, generator=gen),
         "layers.2.weight": torch.randn(1, 8, generator=gen) / 8 ** 0.5,
         "layers.2.bias": 0.1 * torch.randn(1, generator=gen)}
    safetensors_io.save(w, path, metadata={"format": "pt"})
    return {k: v.double() for k, v in w.items()}


def check_scores(harness, folder, ref, tmp, worst, failures, label, sizes, with_head=True):
    if not os.path.exists(os.path.join(folder, "vocab.json")):
        print(f"{label}: dimensions SKIPPED: no tokenizer files (the CLIP BPE fixture "
              "../shared/fixtures/clip-bpe/bpe_simple_vocab_16e6.txt.gz is absent)")
        return
    cfg = prep_cfg(folder)
    gen = torch.Generator().manual_seed(11)
    D = ref.w["visual_projection.weight"].shape[0]
    head_path = os.path.join(tmp, "head.safetensors")
    head = make_head(head_path, D, gen)
    imgs = []
    for i, (w, h) in enumerate(sizes):
        fmt = "JPEG" if i % 2 else "PNG"
        mode = ["RGB", "RGB", "L", "RGBA"][i % 4] if fmt == "PNG" else ["RGB", "L"][i % 2]
        imgs.append(image_bytes(w, h, fmt, mode))
    b64 = [base64.b64encode(b).decode() for b in imgs]
    texts = ["a photo of a cat", "make it snowy", "a photo of a dog in the snow",
             "A DOG, sitting on grass!", ""]
    items = [
        {"image": b64[0], "prompt": texts[0]},
        {"image": b64[1], "source_image": b64[0], "instruction": texts[1]},
        {"image": b64[2], "source_image": b64[1], "source_caption": texts[3],
         "target_caption": texts[2], "prompt": texts[0]},
        {"image": b64[0], "prompt": texts[0]},                       # duplicate
        {"image": "data:image/png;base64," + b64[3 % len(b64)]},     # image only
        {"image": b64[1], "source_image": b64[2], "target_caption": texts[2]},
        {"image": "bm90IGFuIGltYWdl", "prompt": texts[0]},           # not an image
    ]
    itf = os.path.join(tmp, "items.json")
    with open(itf, "w") as f:
        json.dump(items, f)
    tf, tof = os.path.join(tmp, "texts.json"), os.path.join(tmp, "tok.json")
    with open(tf, "w") as f:
        json.dump(texts, f)
    subprocess.run([harness, "tokenize", folder, tf, tof], check=True)
    with open(tof) as f:
        tok = dict(zip(texts, json.load(f)))

    pix = {b: ref_pixels(base64.b64decode(b), cfg) for b in set(b64)}
    emb = dict(zip(pix, ref.image_embeds(torch.stack(list(pix.values())))))
    temb = dict(zip(texts, ref.text_embeds([tok[t] for t in texts])))
    scale = ref.logit_scale()

    def unit(v):
        return v / v.norm()

    def expect(item, clipscore):
        img = item["image"].split(",")[-1]
        if img not in emb:
            return None
        e = emb[img]
        out = {}
        at = item.get("prompt", item.get("target_caption"))
        if at is not None:
            out["text_alignment"] = (ref.clipscore(e, temb[at], 2.5) if clipscore
                                     else ref.text_alignment(e, temb[at]))
        if "source_image" in item:
            s = emb[item["source_image"]]
            out["image_similarity"] = ref.image_similarity(s, e)
            tt = item.get("target_caption", item.get("instruction", item.get("prompt")))
            if tt is not None:
                ts = item.get("source_caption", "")
                out["edit_direction"] = ref.edit_direction(s, e, temb[ts], temb[tt])
        if with_head:
            x = unit(e.double())
            hcur = x @ head["layers.0.weight"].t() + head["layers.0.bias"]
            out["aesthetic"] = float(hcur @ head["layers.2.weight"].t() + head["layers.2.bias"])
        return out

    for clipscore in (False, True):
        opts = {"text_alignment": "clipscore" if clipscore else "pickscore"}
        if with_head:
            opts["heads"] = [{"name": "aesthetic", "path": head_path}]
        of = os.path.join(tmp, "scores.json")
        subprocess.run([harness, "score", folder, json.dumps(opts), itf, of], check=True)
        with open(of) as f:
            got = json.load(f)["items"]
        tag = f"{label} [{'clipscore' if clipscore else 'pickscore'}]"
        for i, (item, g) in enumerate(zip(items, got)):
            exp = expect(item, clipscore)
            if exp is None:
                if g["status"] == 0:
                    failures.append(f"{tag}: item {i} (not an image) did not fail")
                continue
            if g["status"] != 0:
                failures.append(f"{tag}: item {i} failed: {g.get('error')}")
                continue
            if set(g["scores"]) != set(exp):
                failures.append(f"{tag}: item {i} dims {sorted(g['scores'])} != {sorted(exp)}")
                continue
            for d, r in exp.items():
                sc = {"text_alignment": 2.5 if clipscore else scale}.get(d, 1.0)
                e = abs(g["scores"][d] - r) / max(abs(r), sc)
                key = f"{label}: {d}{' (clipscore)' if clipscore and d == 'text_alignment' else ''}"
                worst[key] = max(worst.get(key, 0.0), e)
                if not e <= TOL:
                    failures.append(f"{tag}: item {i} {d}: {g['scores'][d]} vs {r} (rel {e:.3g})")


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    harness, root = sys.argv[1], sys.argv[2]
    worst, failures = {}, []
    with tempfile.TemporaryDirectory(prefix="rwd-clip-torch-") as tmp:
        tiny_sizes = [(64, 48), (40, 90), (33, 33), (120, 64)]
        for name, extra in [("tiny quick_gelu", ["--seed", "1"]),
                            ("tiny gelu", ["--act", "gelu", "--seed", "2"]),
                            ("tiny legacy-config", ["--legacy-config", "--seed", "3"])]:
            d = os.path.join(tmp, name.replace(" ", "_"))
            make_model(root, d, "tiny", *extra)
            ref = clip_ref.CLIPRef(d)
            check_embeddings(harness, d, ref, 5, tmp, worst, failures, name)
            check_scores(harness, d, ref, tmp, worst, failures, name, tiny_sizes)
        if os.environ.get("RWD_CLIP_TINY_ONLY"):
            print("RWD_CLIP_TINY_ONLY set: base-size models skipped")
            return report(worst, failures)
        # base-size ViT-B/32: generated once per version of the generator and
        # kept in tests/parity/.cache (600 MB, ~30 s to write); the gelu
        # variant shares the weights
        bq = base_model(root)
        bg = os.path.join(tmp, "base_gelu")
        os.makedirs(bg)
        for f in os.listdir(bq):
            if f == "model.safetensors":
                os.link(os.path.join(bq, f), os.path.join(bg, f))
            elif f != "config.json":
                shutil.copy(os.path.join(bq, f), bg)
        with open(os.path.join(bq, "config.json")) as f:
            c = json.load(f)
        c["text_config"]["hidden_act"] = c["vision_config"]["hidden_act"] = "gelu"
        with open(os.path.join(bg, "config.json"), "w") as f:
            json.dump(c, f)
        for name, d in [("base quick_gelu", bq), ("base gelu", bg)]:
            ref = clip_ref.CLIPRef(d)
            check_embeddings(harness, d, ref, 3, tmp, worst, failures, name)
            check_scores(harness, d, ref, tmp, worst, failures, name, [(300, 224), (224, 400), (256, 256)])
            del ref
    return report(worst, failures)


def report(worst, failures):
    for k in sorted(worst):
        print(f"{k:50s} worst relative error {worst[k]:.3g}")
    for f in failures[:30]:
        print("FAIL:", f)
    return 1 if failures else 0


def base_model(root):
    """The base quick_gelu folder, cached under tests/parity/.cache by generator hash."""
    import hashlib
    h = hashlib.sha256()
    for f in ("tiny_clip.py", "make_tiny_models.py", "safetensors_io.py"):
        with open(os.path.join(root, "tools", f), "rb") as fh:
            h.update(fh.read())
    d = os.path.join(root, "tests", "parity", ".cache", "clip-base-" + h.hexdigest()[:16])
    if not os.path.exists(os.path.join(d, "done")):
        shutil.rmtree(d, ignore_errors=True)
        make_model(root, d, "base", "--seed", "4")
        open(os.path.join(d, "done"), "w").close()
    return d


if __name__ == "__main__":
    sys.exit(main())
