"""Random ImageReward checkpoints in the authors' exact layout.

A family module of tools/make_tiny_models.py:

    /usr/bin/python3 tools/make_tiny_models.py imagereward tiny OUT [--seed N] [--layers N]

writes what THUDM/ImageReward publishes (huggingface.co/THUDM/ImageReward):
  OUT/ImageReward.pt     torch.save of the ImageReward module's state dict
                         (THUDM/ImageReward@c1392c6 ImageReward/ImageReward.py:
                         self.blip = BLIP_Pretrain(...), self.mlp = MLP(768)),
                         so the names are blip.visual_encoder.* (timm-style
                         VisionTransformer, models/BLIP/vit.py),
                         blip.text_encoder.* (med.py BertModel with
                         crossattention, no pooler), blip.vision_proj /
                         blip.text_proj (unused by the score) and
                         mlp.layers.{0,2,4,6,7} (Linears between Dropouts),
                         plus the int64 position_ids buffer BertEmbeddings
                         registers;
  OUT/med_config.json    the BertConfig JSON (train/src/config/med_config.json's
                         fields at the tiny sizes, add_cross_attention true).
Convert with tools/convert_checkpoint.py imagereward (pass --vision-heads
for widths that are not multiples of 64).

Sizes:
  tiny  the real image path (224 px, patch 16: 197 image tokens), vision
        hidden 32, 2 layers, 2 heads, ffn 64; text hidden 32, 2 layers, 2
        heads, ffn 64, the real 30524-id vocabulary and 512 positions; the
        real head widths 1024 → 128 → 64 → 16 → 1.

Weights are random but scaled so every layer matters (linears N(0,
1/fan_in), LayerNorm weights 1 + N(0, 0.1^2), biases N(0, 0.1^2),
embeddings N(0, 1)).
"""
import json
import os

import torch

KINDS = ("imagereward",)
SIZES = {
    "tiny": dict(image=224, patch=16, vd=32, vl=2, vh=2, vf=64, td=32, tl=2, th=2, tf=64, vocab=30524, pos=512),
    # real widths (BLIP ViT-B and BERT-base), one layer each: GEMMs past lib/nn's 16M
    # multiply-add threading threshold, for the batch-invariance test's 2-thread runs
    "wide": dict(image=224, patch=16, vd=768, vl=1, vh=12, vf=3072, td=768, tl=1, th=12, tf=3072,
                 vocab=30524, pos=512),
}


def state_dict(z, seed=0, layers=None):
    g = torch.Generator().manual_seed(seed)

    def rn(*shape, s=1.0):
        return torch.randn(*shape, generator=g) * s

    sd = {}

    def lin(name, out, inp):
        sd[name + ".weight"] = rn(out, inp, s=inp ** -0.5)
        sd[name + ".bias"] = rn(out, s=0.1)

    def ln(name, n):
        sd[name + ".weight"] = 1 + rn(n, s=0.1)
        sd[name + ".bias"] = rn(n, s=0.1)

    vl = layers or z["vl"]
    tl = layers or z["tl"]
    D, P, T = z["vd"], z["patch"], (z["image"] // z["patch"]) ** 2 + 1
    v = "blip.visual_encoder."
    sd[v + "cls_token"] = rn(1, 1, D, s=0.5)
    sd[v + "pos_embed"] = rn(1, T, D, s=0.1)
    sd[v + "patch_embed.proj.weight"] = rn(D, 3, P, P, s=(3 * P * P) ** -0.5)
    sd[v + "patch_embed.proj.bias"] = rn(D, s=0.1)
    for i in range(vl):
        p = "%sblocks.%d." % (v, i)
        ln(p + "norm1", D)
        lin(p + "attn.qkv", 3 * D, D)
        lin(p + "attn.proj", D, D)
        ln(p + "norm2", D)
        lin(p + "mlp.fc1", z["vf"], D)
        lin(p + "mlp.fc2", D, z["vf"])
    ln(v + "norm", D)
    H = z["td"]
    t = "blip.text_encoder."
    sd[t + "embeddings.position_ids"] = torch.arange(z["pos"]).expand((1, -1)).clone()
    sd[t + "embeddings.word_embeddings.weight"] = rn(z["vocab"], H)
    sd[t + "embeddings.position_embeddings.weight"] = rn(z["pos"], H, s=0.5)
    ln(t + "embeddings.LayerNorm", H)
    for i in range(tl):
        p = "%sencoder.layer.%d." % (t, i)
        for a, kv in (("attention", H), ("crossattention", D)):
            lin(p + a + ".self.query", H, H)
            lin(p + a + ".self.key", H, kv)
            lin(p + a + ".self.value", H, kv)
            lin(p + a + ".output.dense", H, H)
            ln(p + a + ".output.LayerNorm", H)
        lin(p + "intermediate.dense", z["tf"], H)
        lin(p + "output.dense", H, z["tf"])
        ln(p + "output.LayerNorm", H)
    lin("blip.vision_proj", 256, D)
    lin("blip.text_proj", 256, H)
    for idx, (o, i) in zip((0, 2, 4, 6, 7), ((1024, H), (128, 1024), (64, 128), (16, 64), (1, 16))):
        lin("mlp.layers.%d" % idx, o, i)
    return sd


def med_config(z):
    return {"architectures": ["BertModel"], "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1, "hidden_size": z["td"], "initializer_range": 0.02,
            "intermediate_size": z["tf"], "layer_norm_eps": 1e-12, "max_position_embeddings": z["pos"],
            "model_type": "bert", "num_attention_heads": z["th"], "num_hidden_layers": z["tl"],
            "pad_token_id": 0, "type_vocab_size": 2, "vocab_size": z["vocab"], "encoder_width": 768,
            "add_cross_attention": True}


def make(kind, size, outdir, args):
    if size not in SIZES:
        raise SystemExit("imagereward sizes: %s" % ", ".join(SIZES))
    z = dict(SIZES[size])
    if getattr(args, "layers", None):
        z["vl"] = z["tl"] = args.layers
    torch.save(state_dict(z, getattr(args, "seed", 0) or 0), os.path.join(outdir, "ImageReward.pt"))
    with open(os.path.join(outdir, "med_config.json"), "w") as f:
        json.dump(med_config(z), f, indent=2)
        f.write("\n")
    print("%s: ImageReward.pt + med_config.json (vision %d x %d, heads %d; text %d x %d)" % (
        outdir, z["vl"], z["vd"], z["vh"], z["tl"], z["td"]))
