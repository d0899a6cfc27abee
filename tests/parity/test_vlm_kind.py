#!/usr/bin/python3
"""Parity: the `vlm` kind end to end (PNG bytes + prompt in, mu and sigma
out, through the generic model API: kind_harness with the kind detected
from the folder) against independent oracles on a tiny HPSv3-style folder
(tools/make_tiny_models.py qwen2_vl tinyvocab --vlm-head hpsv3, Qwen's real
vocabulary and token ids) with a Qwen2 tokenizer.json written here from
../shared/fixtures/qwen2-tokenizer plus the Qwen2-VL added tokens and
HPSv3's <|Reward|> (151657):

  text    the Qwen2-VL chat template rendered here from its description
          (default system message, <|vision_start|><|image_pad|>*N
          <|vision_end|>, add_generation_prompt), token ids by Hugging Face
          tokenizers (node @anush008/tokenizers, hf_encode.js);
  image   Pillow's PNG decode, test_vlm_prep.process (Pillow BICUBIC +
          numpy, smart_resize, patch order);
  model   vlm_ref.reward (PyTorch float64, written from the architecture),
          1D positions as HPSv3's code computes them.

    /usr/bin/python3 test_vlm_kind.py KIND_HARNESS NODE SRCDIR WORKDIR

The same for a tiny EditReward-style folder (qwen2_5_vl, v4.52 names,
source + edited image, one prompt per dimension), in 1D positions and with
position_ids "mrope" (vlm_ref.get_rope_index). The HPSv3 folder also with its fetch_image stage (min_pixels = max_pixels).
Each mu and sigma must match to |c - ref| / |ref| <= 1e-4. Also: the
dimensions are hpsv3 and hpsv3_sigma, extra.sigma carries sigma, an image over
the pixel limit and a missing prompt fail naming their field, and a prompt
holding a second <|Reward|> or an <|image_pad|> of its own is refused; folders
with a dimension whose prompt is missing, an unknown prompt part, position_ids
or pool token, or no tokenizer are refused at load, naming the reason.
Exit 0 pass, 1 fail, 77 skip (torch / node tokenizers / fixture missing).
"""
import base64
import io
import json
import os
import subprocess
import sys

try:
    import numpy as np
    import torch
    from PIL import Image
except ImportError as e:  # pragma: no cover
    print(f"SKIP: oracle missing ({e}); needs Debian python3-torch, python3-numpy, python3-pil")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_vlm_prep  # noqa: E402  (the Pillow + numpy processor oracle)
import vlm_ref  # noqa: E402

TOL = 1e-4
QWEN2_RX = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
            "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
ADDED = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
         "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
         "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<|Reward|>"]


def write_tokenizer(fixdir, out):
    vocab = json.load(open(os.path.join(fixdir, "vocab.json"), encoding="utf-8"))
    merges = [ln.split(" ") for ln in open(os.path.join(fixdir, "merges.txt"), encoding="utf-8").read().splitlines()
              if ln and not ln.startswith("#version")]
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    tj = {"version": "1.0", "truncation": None, "padding": None,
          "added_tokens": [{"id": 151643 + i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                            "normalized": False, "special": True} for i, t in enumerate(ADDED)],
          "normalizer": {"type": "NFC"},
          "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
              {"type": "Split", "pattern": {"Regex": QWEN2_RX}, "behavior": "Isolated", "invert": False}, bl]},
          "post_processor": bl, "decoder": bl,
          "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                    "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                    "vocab": vocab, "merges": merges}}
    with open(out, "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False)


def render(spec_prompt, grids, item):
    """The Qwen2-VL chat template, from its description (reference/vlm-reward-models.md)."""
    s, k = "", 0
    for i, msg in enumerate(spec_prompt["messages"]):
        if i == 0 and msg["role"] != "system":
            s += "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        s += f"<|im_start|>{msg['role']}\n"
        for part in msg["content"]:
            if part["type"] == "image":
                t, h, w = grids[k]
                k += 1
                s += "<|vision_start|>" + "<|image_pad|>" * (t * h * w // 4) + "<|vision_end|>"
            else:
                txt = part["text"]
                if part.get("text_field"):
                    txt = txt.replace("{text_prompt}", item[part["text_field"]], 1)
                s += txt
        s += "<|im_end|>\n"
    if spec_prompt.get("add_generation_prompt"):
        s += "<|im_start|>assistant\n"
    return s


def png(w, h, kind, mode="RGB"):
    im = test_vlm_prep.frame(w, h, kind)
    if mode != "RGB":
        im = im.convert(mode)
    b = io.BytesIO()
    im.save(b, "PNG")
    return b.getvalue()


def main():
    harness, node, src, work = sys.argv[1:5]
    fix = os.path.join(os.environ.get("RWD_FIXTURES", os.path.join(src, "..", "..", "shared", "fixtures")),
                       "qwen2-tokenizer")
    if not os.path.exists(os.path.join(fix, "vocab.json")):
        fix = os.path.join(src, "..", "shared", "fixtures", "qwen2-tokenizer")
    if not os.path.exists(os.path.join(fix, "vocab.json")):
        print(f"SKIP: fixture {fix} is absent (set RWD_FIXTURES)")
        return 77
    folder = os.path.join(work, "kind-hpsv3")
    os.makedirs(folder, exist_ok=True)
    if not os.path.exists(os.path.join(folder, "model.safetensors")):
        subprocess.run([sys.executable, os.path.join(src, "tools", "make_tiny_models.py"), "qwen2_vl", "tinyvocab",
                        folder, "--vlm-head", "hpsv3", "--seed", "3"], check=True)
    if not os.path.exists(os.path.join(folder, "tokenizer.json")):
        write_tokenizer(fix, os.path.join(folder, "tokenizer.json"))
    spec = json.load(open(os.path.join(folder, "reward_head.json")))

    images = [png(60, 45, "smooth"), png(90, 70, "noise"), png(33, 120, "edges", "L")]
    prompts = ["a red fox in the snow", "café ☕ at dusk — 夕焼け, 3 cats", "  spaces\tand\nnewlines  "]
    items = [{"image": base64.b64encode(images[0]).decode(), "prompt": prompts[0]},
             {"image": "data:image/png;base64," + base64.b64encode(images[1]).decode(), "prompt": prompts[1]},
             {"image": base64.b64encode(images[2]).decode(), "prompt": prompts[2]}]
    big = Image.new("RGB", (4200, 4000), (10, 20, 30))
    bb = io.BytesIO()
    big.save(bb, "PNG")
    items.append({"image": base64.b64encode(bb.getvalue()).decode(), "prompt": "too big"})
    items.append({"image": items[0]["image"]})
    items.append({"image": items[0]["image"], "prompt": "two pools <|Reward|> here"})
    items.append({"image": items[0]["image"], "prompt": "a pad <|image_pad|> of my own"})
    ip = os.path.join(work, "kind-hpsv3-items.json")
    json.dump(items, open(ip, "w"))
    res = subprocess.run([harness, "auto", folder, "null", ip, '{"max_batch_size": 4}'], capture_output=True,
                         text=True)
    if res.returncode:
        print(f"FAIL: kind-harness: {res.stderr.strip()}")
        return 1
    got = json.loads(res.stdout)

    # the oracle: Pillow processor, HF tokenizers ids, torch forward
    cfg, w = vlm_ref.load_folder(folder)
    texts, rows, grids = [], [], []
    for it, data in zip(items[:3], images):
        im = Image.open(io.BytesIO(data)).convert("RGB")
        r, g = test_vlm_prep.process([im], 56 * 56, 28 * 28 * 1280, 0, 0)
        rows.append(r)
        grids.append(g)
        texts.append(render(spec["prompts"]["overall"], [g], it))
    sp = os.path.join(work, "kind-hpsv3-texts.json")
    json.dump(texts, open(sp, "w"))
    enc = subprocess.run([node, os.path.join(HERE, "hf_encode.js"), src, os.path.join(folder, "tokenizer.json"), sp],
                         capture_output=True, text=True)
    if enc.returncode == 77:
        print(enc.stdout.strip())
        return 77
    if enc.returncode:
        print(f"FAIL: hf_encode.js: {enc.stderr.strip()}")
        return 1
    ids = json.loads(enc.stdout)
    bad = 0
    worst = 0.0
    for i in range(3):
        ref = vlm_ref.reward(cfg, w, spec, torch.from_numpy(rows[i]).double(), [grids[i]], ids[i], "seq")
        mu, sigma = ref["hpsv3"]
        g = got[i]
        if "scores" not in g:
            print(f"FAIL item {i}: {g}")
            bad += 1
            continue
        sc = g["scores"]
        e_mu = abs(sc["hpsv3"] - mu) / abs(mu)
        e_sg = abs(sc["hpsv3_sigma"] - sigma) / abs(sigma)
        e_ex = abs(g.get("extra", {}).get("sigma", {}).get("hpsv3", float("nan")) - sigma) / abs(sigma)
        ok = e_mu <= TOL and e_sg <= TOL and e_ex <= TOL and set(sc) == {"hpsv3", "hpsv3_sigma"}
        worst = max(worst, e_mu, e_sg)
        bad += not ok
        print(f"{'ok  ' if ok else 'FAIL'} item {i}: grid {grids[i]}, {len(ids[i])} tokens: mu {sc['hpsv3']:.7g} "
              f"(ref {mu:.7g}, rel {e_mu:.1e}), sigma {sc['hpsv3_sigma']:.7g} (ref {sigma:.7g}, rel {e_sg:.1e})")
    e3, e4 = got[3].get("error", {}), got[4].get("error", {})
    ok3 = e3.get("field") == "image" and "image" in e3.get("message", "") and e3.get("code") is not None
    ok4 = e4.get("field") == "prompt" and e4.get("stage") == "check"
    print(f"{'ok  ' if ok3 else 'FAIL'} 4200x4000 image refused: {e3}")
    print(f"{'ok  ' if ok4 else 'FAIL'} missing prompt refused: {e4}")
    e5, e6 = got[5].get("error", {}), got[6].get("error", {})
    ok5 = "occurs 2 times" in e5.get("message", "")
    ok6 = "placeholder" in e6.get("message", "")
    print(f"{'ok  ' if ok5 else 'FAIL'} a second <|Reward|> in the prompt refused: {e5}")
    print(f"{'ok  ' if ok6 else 'FAIL'} an <|image_pad|> in the prompt refused: {e6}")
    bad += (not ok3) + (not ok4) + (not ok5) + (not ok6)
    bad += load_errors(harness, folder, spec, work)
    # the last item repeats item 0's image: encoded once in the batch
    b1, w1 = fetch_stage(harness, node, src, folder, spec, work, items[:3] + [dict(items[0], prompt=prompts[1])],
                         images + [images[0]])
    bad += b1
    worst = max(worst, w1)
    for mode in ("seq", "mrope"):
        b2, w2 = editreward(harness, node, src, work, fix, mode)
        bad += b2
        worst = max(worst, w2)
    print(f"worst rel err {worst:.2e} (tolerance {TOL:g})")
    return 1 if bad else 0


def fetch_stage(harness, node, src, base, spec, work, items, images):
    """HPSv3's own fetch_image resize (reward_head.json min_pixels = max_pixels,
    here 16·28·28) before the processor, as test_vlm_prep.process does it."""
    folder = os.path.join(work, "kind-hpsv3-fetch")
    os.makedirs(folder, exist_ok=True)
    for f in ("config.json", "model.safetensors", "tokenizer.json"):
        if not os.path.exists(os.path.join(folder, f)):
            os.symlink(os.path.join(base, f), os.path.join(folder, f))
    px = 16 * 28 * 28
    spec = dict(spec, min_pixels=px, max_pixels=px)
    json.dump(spec, open(os.path.join(folder, "reward_head.json"), "w"))
    ip = os.path.join(work, "kind-hpsv3-fetch-items.json")
    json.dump(items, open(ip, "w"))
    res = subprocess.run([harness, "auto", folder, "null", ip], capture_output=True, text=True)
    if res.returncode:
        print(f"FAIL fetch: kind-harness: {res.stderr.strip()}")
        return 1, 0.0
    got = json.loads(res.stdout)
    cfg, w = vlm_ref.load_folder(folder)
    bad, worst = 0, 0.0
    for i, (it, data) in enumerate(zip(items, images)):
        rows, g = test_vlm_prep.process([Image.open(io.BytesIO(data)).convert("RGB")], 56 * 56, 28 * 28 * 1280, px, px)
        ids = hf_ids(node, src, folder, [render(spec["prompts"]["overall"], [g], it)], work, "kind-hpsv3-fetch")[0]
        mu, sigma = vlm_ref.reward(cfg, w, spec, torch.from_numpy(rows).double(), [g], ids, "seq")["hpsv3"]
        sc = got[i].get("scores", {})
        e = max(abs(sc.get("hpsv3", 1e30) - mu) / abs(mu), abs(sc.get("hpsv3_sigma", 1e30) - sigma) / abs(sigma))
        ok = e <= TOL
        bad += not ok
        worst = max(worst, e)
        print(f"{'ok  ' if ok else 'FAIL'} fetch_image item {i}: grid {g}, mu {sc.get('hpsv3')} (ref {mu:.7g}), "
              f"sigma {sc.get('hpsv3_sigma')} (ref {sigma:.7g}), rel {e:.1e}")
    return bad, worst


def load_errors(harness, folder, spec, work):
    """Folders the kind must refuse at load, with the reason named."""
    def variant(name, mutate, tokenizer=True):
        d = os.path.join(work, "kind-bad-" + name)
        os.makedirs(d, exist_ok=True)
        for f in ("config.json", "model.safetensors") + (("tokenizer.json",) if tokenizer else ()):
            if not os.path.exists(os.path.join(d, f)):
                os.symlink(os.path.join(folder, f), os.path.join(d, f))
        sp = json.loads(json.dumps(spec))
        mutate(sp)
        json.dump(sp, open(os.path.join(d, "reward_head.json"), "w"))
        return d

    def no_prompt(sp):
        sp["prompts"] = {}

    def bad_part(sp):
        sp["prompts"]["overall"]["messages"][0]["content"].append({"type": "video", "field": "clip"})

    def bad_pos(sp):
        sp["position_ids"] = "absolute"

    def bad_pool(sp):
        sp["dimensions"][0]["pool"] = "<|NoSuchToken|>"

    cases = [("noprompt", no_prompt, True, "is not in \"prompts\""),
             ("badpart", bad_part, True, "part type \"video\""),
             ("badpos", bad_pos, True, "position_ids \"absolute\""),
             ("badpool", bad_pool, True, "pool token <|NoSuchToken|>"),
             ("notok", lambda sp: None, False, "tokenizer")]
    ip = os.path.join(work, "kind-bad-items.json")
    json.dump([], open(ip, "w"))
    bad = 0
    for name, mut, tok, want in cases:
        res = subprocess.run([harness, "auto", variant(name, mut, tok), "null", ip], capture_output=True, text=True)
        ok = res.returncode == 2 and want in res.stderr
        bad += not ok
        print(f"{'ok  ' if ok else 'FAIL'} load refused ({name}): {res.stderr.strip()[:200]}")
    return bad


def hf_ids(node, src, folder, texts, work, tag):
    sp = os.path.join(work, tag + "-texts.json")
    json.dump(texts, open(sp, "w"))
    enc = subprocess.run([node, os.path.join(HERE, "hf_encode.js"), src, os.path.join(folder, "tokenizer.json"), sp],
                         capture_output=True, text=True, check=True)
    return json.loads(enc.stdout)


def editreward(harness, node, src, work, fix, mode):
    """EditReward style: Qwen2.5-VL with transformers >= 4.52 names, two
    images (source, edited) and one prompt per dimension, each pooled at its
    own <|Reward|>; mode "mrope": the same folder with position_ids mrope
    (get_rope_index over both images, as a value-head model would run)."""
    base = os.path.join(work, "kind-editreward")
    os.makedirs(base, exist_ok=True)
    if not os.path.exists(os.path.join(base, "model.safetensors")):
        subprocess.run([sys.executable, os.path.join(src, "tools", "make_tiny_models.py"), "qwen2_5_vl", "tinyvocab",
                        base, "--names", "v452", "--vlm-head", "editreward", "--seed", "5"], check=True)
    if not os.path.exists(os.path.join(base, "tokenizer.json")):
        write_tokenizer(fix, os.path.join(base, "tokenizer.json"))
    spec = json.load(open(os.path.join(base, "reward_head.json")))
    folder = base
    if mode == "mrope":
        folder = base + "-mrope"
        os.makedirs(folder, exist_ok=True)
        for f in ("config.json", "model.safetensors", "tokenizer.json"):
            if not os.path.exists(os.path.join(folder, f)):
                os.symlink(os.path.join(base, f), os.path.join(folder, f))
        spec["position_ids"] = "mrope"
        json.dump(spec, open(os.path.join(folder, "reward_head.json"), "w"))
    pairs = [(png(70, 50, "smooth"), png(100, 64, "noise"), "make the sky purple"),
             (png(120, 40, "edges"), png(56, 56, "smooth"), "remove the cat — 猫を消して")]
    items = [{"source_image": base64.b64encode(a).decode(), "edited_image": base64.b64encode(b).decode(),
              "instruction": t} for a, b, t in pairs]
    ip = os.path.join(work, "kind-editreward-items.json")  # the same items in both modes
    json.dump(items, open(ip, "w"))
    res = subprocess.run([harness, "auto", folder, "null", ip], capture_output=True, text=True)
    if res.returncode:
        print(f"FAIL editreward: kind-harness: {res.stderr.strip()}")
        return 1, 0.0
    got = json.loads(res.stdout)
    cfg, w = vlm_ref.load_folder(folder)
    bad, worst = 0, 0.0
    for i, (it, (a, b, _)) in enumerate(zip(items, pairs)):
        rows, grids = [], []
        for data in (a, b):
            r, g = test_vlm_prep.process([Image.open(io.BytesIO(data)).convert("RGB")], 56 * 56, 28 * 28 * 1280, 0, 0)
            rows.append(r)
            grids.append(g)
        allrows = torch.from_numpy(np.concatenate(rows)).double()
        sc = got[i].get("scores")
        if sc is None:
            print(f"FAIL editreward item {i}: {got[i]}")
            bad += 1
            continue
        for d in spec["dimensions"]:
            ids = hf_ids(node, src, folder, [render(spec["prompts"][d["prompt"]], grids, it)], work, "kind-editreward")[0]
            one = dict(spec, dimensions=[d])
            mu, sigma = vlm_ref.reward(cfg, w, one, allrows, grids, ids, mode)[d["name"]]
            e_mu = abs(sc[d["name"]] - mu) / abs(mu)
            e_sg = abs(sc[d["name"] + "_sigma"] - sigma) / abs(sigma)
            ok = e_mu <= TOL and e_sg <= TOL
            worst = max(worst, e_mu, e_sg)
            bad += not ok
            print(f"{'ok  ' if ok else 'FAIL'} editreward {mode} item {i} {d['name']}: grids {grids}, {len(ids)} tokens: "
                  f"mu {sc[d['name']]:.7g} (ref {mu:.7g}, rel {e_mu:.1e}), sigma {sc[d['name'] + '_sigma']:.7g} "
                  f"(ref {sigma:.7g}, rel {e_sg:.1e})")
    return bad, worst


if __name__ == "__main__":
    sys.exit(main())
