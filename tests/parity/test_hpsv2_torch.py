#!/usr/bin/python3
"""Parity: HPSv2 served by the clip kind, end to end, against an OpenCLIP
reference written here in PyTorch from the architecture.

    /usr/bin/python3 test_hpsv2_torch.py REWARDD_EXE SOURCE_ROOT

What HPSv2 computes (tgxs002/HPSv2@866735e, read at the source):
  hpsv2/img_score.py: create_model_and_transforms('ViT-H-14', ...,
    force_quick_gelu=False, light_augmentation=True, output_dict=True);
    model.load_state_dict(checkpoint['state_dict']); score =
    diag(image_features @ text_features.T), features L2-normalised by
    encode_image/encode_text(normalize=True); no logit scale.
  hpsv2/src/open_clip/factory.py: light_augmentation → preprocess_val =
    image_transform(..., resize_longest_max=True).
  hpsv2/src/open_clip/transform.py: _convert_to_rgb_or_rgba, ToTensor(),
    ResizeMaxSize(224, BICUBIC, fill=0): scale = 224 / max(h, w),
    new = round(dim * scale), F.resize (a float tensor: torchvision calls
    torch.nn.functional.interpolate(bicubic, align_corners=False, antialias)
    and neither rounds nor clamps float output), F.pad [w//2, h//2, rest],
    then Normalize(OPENAI_DATASET_MEAN, OPENAI_DATASET_STD).
  OpenCLIP's ViT: conv1 (no bias) patches, class token, positional
    embedding, ln_pre, pre-LN residual blocks (nn.MultiheadAttention with
    in_proj, GELU MLP c_fc/c_proj), ln_post on the class token, @ proj.
    Text: token + positional embedding, causal blocks, ln_final, the row at
    argmax(ids) (the EOT id is the largest), @ text_projection.
Debian has no torchvision, so its tensor resize is called as it calls
torch (interpolate), with antialias True (torchvision >= 0.17's default for
tensors) and False (older), the converter's two settings.

The checkpoint: random weights in OpenCLIP's exact state-dict naming (a
ViT-H-14-shaped tower cut to width 128 and 2 layers at the real 224 px /
patch 14 / 77 tokens / 49408 ids), saved as HPSv2 ships it
({"state_dict": {"module." + name: tensor}}), converted with
tools/convert_checkpoint.py hpsv2, served with --model. Token ids of the
prompts come from the fixture's documented ids (../shared/fixtures/README.md:
"a photo of a cat" → 49406 320 1125 539 320 2368 49407), padded with 0 to 77
as OpenCLIP's tokenizer pads. Images: skimage photos of several shapes
(downscaled, upscaled, portrait, grey), as PNG and JPEG, decoded by Pillow
in the oracle. Tolerance: 1e-4 on the cosine; the reference runs in float64.
Exit 0 pass, 1 fail, 77 skip.
"""
import base64
import io
import json
import os
import subprocess
import sys

EXE, SRC = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
sys.path.insert(0, os.path.join(SRC, "tools"))
import rwd_harness as H  # noqa: E402

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image
except ImportError as e:
    H.skip("needs Debian python3-torch, python3-numpy, python3-pil (%s)" % e)

BPE = os.path.join(SRC, "..", "shared", "fixtures", "clip-bpe", "bpe_simple_vocab_16e6.txt.gz")
if not os.path.exists(BPE):
    H.skip("the CLIP BPE fixture is absent (%s)" % BPE)
SKD = "/usr/lib/python3/dist-packages/skimage/data"
if not os.path.isdir(SKD):
    H.skip("needs python3-skimage's photos in %s" % SKD)

C = H.Checker("test_hpsv2_torch")
MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073], dtype=torch.float32)
STD = torch.tensor([0.26862954, 0.26130258, 0.27577711], dtype=torch.float32)
WORD = {"a": 320, "photo": 1125, "of": 539, "cat": 2368}
SOT, EOT = 49406, 49407
W, L, PATCH, IMG, CTX, VOCAB, EMBED = 128, 2, 14, 224, 77, 49408, 64


def openclip_state_dict(seed):
    g = torch.Generator().manual_seed(seed)

    def rn(*shape, s=0.02):
        return torch.randn(*shape, generator=g) * s

    sd = {}

    def blocks(prefix):
        for i in range(L):
            p = "%s%d." % (prefix, i)
            sd[p + "ln_1.weight"], sd[p + "ln_1.bias"] = 1 + rn(W, s=0.1), rn(W, s=0.1)
            sd[p + "attn.in_proj_weight"], sd[p + "attn.in_proj_bias"] = rn(3 * W, W, s=0.08), rn(3 * W, s=0.05)
            sd[p + "attn.out_proj.weight"], sd[p + "attn.out_proj.bias"] = rn(W, W, s=0.08), rn(W, s=0.05)
            sd[p + "ln_2.weight"], sd[p + "ln_2.bias"] = 1 + rn(W, s=0.1), rn(W, s=0.1)
            sd[p + "mlp.c_fc.weight"], sd[p + "mlp.c_fc.bias"] = rn(4 * W, W, s=0.08), rn(4 * W, s=0.05)
            sd[p + "mlp.c_proj.weight"], sd[p + "mlp.c_proj.bias"] = rn(W, 4 * W, s=0.05), rn(W, s=0.05)
    sd["visual.class_embedding"] = rn(W, s=0.5)
    sd["visual.positional_embedding"] = rn((IMG // PATCH) ** 2 + 1, W, s=0.1)
    sd["visual.proj"] = rn(W, EMBED, s=0.1)
    sd["visual.conv1.weight"] = rn(W, 3, PATCH, PATCH, s=0.05)
    sd["visual.ln_pre.weight"], sd["visual.ln_pre.bias"] = 1 + rn(W, s=0.1), rn(W, s=0.1)
    blocks("visual.transformer.resblocks.")
    sd["visual.ln_post.weight"], sd["visual.ln_post.bias"] = 1 + rn(W, s=0.1), rn(W, s=0.1)
    sd["positional_embedding"] = rn(CTX, W, s=0.1)
    sd["text_projection"] = rn(W, EMBED, s=0.1)
    sd["logit_scale"] = torch.tensor(4.6052)
    sd["token_embedding.weight"] = rn(VOCAB, W, s=0.5)
    blocks("transformer.resblocks.")
    sd["ln_final.weight"], sd["ln_final.bias"] = 1 + rn(W, s=0.1), rn(W, s=0.1)
    return sd


class OpenClipRef:
    """OpenCLIP's ViT-H-14 CLIP forward, float64 (heads = width // 64)."""

    def __init__(self, sd):
        self.sd = {k: v.double() for k, v in sd.items()}
        self.heads = W // 64

    def block(self, x, p, causal):
        s = self.sd
        h = F.layer_norm(x, (W,), s[p + "ln_1.weight"], s[p + "ln_1.bias"], 1e-5)
        qkv = h @ s[p + "attn.in_proj_weight"].T + s[p + "attn.in_proj_bias"]
        q, k, v = qkv.split(W, dim=-1)
        B, T, _ = x.shape
        d = W // self.heads

        def sp(t):
            return t.reshape(B, T, self.heads, d).transpose(1, 2)
        a = (sp(q) @ sp(k).transpose(-1, -2)) / d ** 0.5
        if causal:
            a = a + torch.full((T, T), float("-inf"), dtype=a.dtype).triu(1)
        o = (a.softmax(-1) @ sp(v)).transpose(1, 2).reshape(B, T, W)
        x = x + o @ s[p + "attn.out_proj.weight"].T + s[p + "attn.out_proj.bias"]
        h = F.layer_norm(x, (W,), s[p + "ln_2.weight"], s[p + "ln_2.bias"], 1e-5)
        h = F.gelu(h @ s[p + "mlp.c_fc.weight"].T + s[p + "mlp.c_fc.bias"])
        return x + h @ s[p + "mlp.c_proj.weight"].T + s[p + "mlp.c_proj.bias"]

    def image(self, px):
        s = self.sd
        x = F.conv2d(px.double()[None], s["visual.conv1.weight"], stride=PATCH)
        x = x.reshape(1, W, -1).permute(0, 2, 1)
        x = torch.cat([s["visual.class_embedding"].expand(1, 1, W), x], dim=1) + s["visual.positional_embedding"]
        x = F.layer_norm(x, (W,), s["visual.ln_pre.weight"], s["visual.ln_pre.bias"], 1e-5)
        for i in range(L):
            x = self.block(x, "visual.transformer.resblocks.%d." % i, False)
        x = F.layer_norm(x[:, 0], (W,), s["visual.ln_post.weight"], s["visual.ln_post.bias"], 1e-5)
        f = (x @ s["visual.proj"])[0]
        return f / f.norm()

    def text(self, ids):
        s = self.sd
        t = torch.tensor(ids)[None]
        x = s["token_embedding.weight"][t] + s["positional_embedding"]
        for i in range(L):
            x = self.block(x, "transformer.resblocks.%d." % i, True)
        x = F.layer_norm(x, (W,), s["ln_final.weight"], s["ln_final.bias"], 1e-5)
        f = (x[0, t[0].argmax()] @ s["text_projection"])
        return f / f.norm()


def preprocess(data, antialias):
    """_convert_to_rgb_or_rgba, ToTensor, ResizeMaxSize(224, fill 0), Normalize."""
    im = Image.open(io.BytesIO(data)).convert("RGB")
    x = torch.from_numpy(np.array(im)).permute(2, 0, 1).to(torch.float32).div(255)
    h, w = x.shape[1:]
    scale = IMG / float(max(h, w))
    if scale != 1.0:
        nh, nw = round(h * scale), round(w * scale)
        x = F.interpolate(x[None], size=(nh, nw), mode="bicubic", align_corners=False, antialias=antialias)[0]
        ph, pw = IMG - nh, IMG - nw
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=0.0)
    return (x - MEAN[:, None, None]) / STD[:, None, None]


def images():
    out = []
    for name, box, fmt in [("astronaut.png", None, "PNG"), ("coffee.png", None, "JPEG"), ("chelsea.png", None, "PNG"),
                           ("camera.png", None, "PNG"), ("astronaut.png", (100, 40, 160, 200), "PNG"),
                           ("coffee.png", (0, 0, 90, 61), "PNG"), ("chelsea.png", (10, 10, 451, 200), "JPEG")]:
        im = Image.open(os.path.join(SKD, name)).convert("RGB")
        if box:
            im = im.crop(box)
        b = io.BytesIO()
        im.save(b, format=fmt, quality=92) if fmt == "JPEG" else im.save(b, format=fmt)
        out.append(("%s%s.%s" % (name, box or "", fmt.lower()), b.getvalue()))
    return out


def main():
    work = H.mkdtemp("rwd-hps-")
    sd = openclip_state_dict(11)
    ckpt = os.path.join(work, "HPS_v2_compressed.pt")
    torch.save({"state_dict": {"module." + k: v for k, v in sd.items()}}, ckpt)
    dirs = {}
    for aa in (True, False):
        d = os.path.join(work, "hps" if aa else "hps_old")
        cmd = ["/usr/bin/python3", os.path.join(SRC, "tools", "convert_checkpoint.py"), "hpsv2", ckpt, BPE, d]
        p = subprocess.run(cmd + ([] if aa else ["--no-antialias"]), capture_output=True, text=True)
        C.check(p.returncode == 0, "convert_checkpoint.py hpsv2 (antialias %s): %s" % (aa, p.stderr[-300:]))
        dirs[aa] = d
    # round trip: the converted tensors put back into OpenCLIP's names are the originals
    import safetensors_io
    t = safetensors_io.load(os.path.join(dirs[True], "model.safetensors"))
    for tower, pre in (("vision_model", "visual.transformer.resblocks."), ("text_model", "transformer.resblocks.")):
        for i in range(L):
            q = "%s.encoder.layers.%d.self_attn." % (tower, i)
            back = torch.cat([t[q + n + ".weight"] for n in ("q_proj", "k_proj", "v_proj")])
            C.check(torch.equal(back, sd["%s%d.attn.in_proj_weight" % (pre, i)]), "%s in_proj round trip" % q)
    C.check(torch.equal(t["visual_projection.weight"].T, sd["visual.proj"]), "visual.proj round trip")
    C.check(torch.equal(t["text_projection.weight"].T, sd["text_projection"]), "text_projection round trip")

    ref = OpenClipRef(sd)
    prompts = ["a photo of a cat", "a cat", "a photo of a photo of a cat", "cat of a photo"]
    ids = {p: [SOT] + [WORD[w] for w in p.split()] + [EOT] for p in prompts}
    tfeat = {p: ref.text(ids[p] + [0] * (CTX - len(ids[p]))) for p in prompts}
    imgs = images()
    d = H.Daemon(EXE, {"models": {}}, args=["--model", "hps=" + dirs[True], "--model", "hps_old=" + dirs[False]])
    try:
        worst = 0.0
        for aa, model in ((True, "hps"), (False, "hps_old")):
            items, want = [], []
            for k, (name, data) in enumerate(imgs):
                p = prompts[k % len(prompts)]
                items.append({"image": base64.b64encode(data).decode(), "prompt": p})
                want.append((name, float(ref.image(preprocess(data, aa)) @ tfeat[p])))
            r = d.request("POST", "/v1/rewards", body={"model": model, "items": items})
            C.check(r.status == 200, "%s answered: %d %s" % (model, r.status, r.raw[:300]))
            if r.status != 200:
                continue
            for (name, w), res in zip(want, r.json["results"]):
                got = res.get("scores", {}).get("text_alignment")
                err = abs(got - w) if got is not None else float("inf")
                worst = max(worst, err)
                C.check(err <= 1e-4, "%s %s: HPS %s vs reference %.7f" % (model, name, got, w))
        print("worst |ours - reference| over %d images x 2 resize modes: %.2e" % (len(imgs), worst))
    finally:
        d.stop()
    C.done()


main()
