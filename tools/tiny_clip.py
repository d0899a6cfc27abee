"""Random CLIPModel folders in exact Hugging Face layout.

A family module of tools/make_tiny_models.py:

    /usr/bin/python3 tools/make_tiny_models.py clip tiny OUT [--act gelu] [--dtype bf16]
    /usr/bin/python3 tools/make_tiny_models.py clip base OUT [--layers 2] [--legacy-config]

Sizes:
  tiny  vision hidden 64, 2 layers, 4 heads, ffn 128, patch 8, image 32;
        text hidden 32, 2 layers, 2 heads, ffn 64, 77 positions, the real
        49408-token vocabulary (so real CLIP tokenizer files fit); projection 24
  base  ViT-B/32 (openai/clip-vit-base-patch32's shape): vision hidden 768,
        12 layers, 12 heads, ffn 3072, patch 32, image 224; text hidden 512,
        12 layers, 8 heads, ffn 2048, 77 positions, vocab 49408; projection 512

Writes OUT/config.json (CLIPConfig as transformers writes it: "architectures"
["CLIPModel"], text_config / vision_config; `tiny` writes the sub-configs in
full, `base` only the fields that differ from the class defaults, as
to_diff_dict() does, so a loader must fill the defaults), OUT/model.safetensors
(HF tensor names, incl. the scalar `logit_scale` and the I64
`*.embeddings.position_ids` buffers older checkpoints carry) and
OUT/preprocessor_config.json (CLIPImageProcessor, OpenAI mean/std, shortest
edge = crop = image size). With the CLIP BPE fixture present
(../shared/fixtures/clip-bpe/bpe_simple_vocab_16e6.txt.gz) it also writes
vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json
derived from it, as CLIPTokenizer.save_pretrained lays them out.

Options: --act quick_gelu|gelu (both towers' hidden_act); --legacy-config
writes the pre-4.2x layout: the real sizes in text_config_dict /
vision_config_dict, stale default-size text_config / vision_config beside
them (transformers lets *_config_dict override), text eos_token_id 2 (so
pooling takes HF's argmax rule) and the old int "size"/"crop_size"
preprocessor fields.

Weights are random but scaled so every layer matters (linears N(0, 1/fan_in),
LayerNorm weights 1 + N(0, 0.1^2), biases N(0, 0.1^2), embeddings N(0, 1)):
HF's small init would make a parity test insensitive.
"""
import gzip
import json
import math
import os

import torch

import safetensors_io

KINDS = ("clip",)

OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]

TEXT_DEFAULTS = {
    "vocab_size": 49408, "hidden_size": 512, "intermediate_size": 2048,
    "projection_dim": 512, "num_hidden_layers": 12, "num_attention_heads": 8,
    "max_position_embeddings": 77, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05,
    "attention_dropout": 0.0, "initializer_range": 0.02, "initializer_factor": 1.0,
    "pad_token_id": 1, "bos_token_id": 49406, "eos_token_id": 49407,
}
VISION_DEFAULTS = {
    "hidden_size": 768, "intermediate_size": 3072, "projection_dim": 512,
    "num_hidden_layers": 12, "num_attention_heads": 12, "num_channels": 3,
    "image_size": 224, "patch_size": 32, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05,
    "attention_dropout": 0.0, "initializer_range": 0.02, "initializer_factor": 1.0,
}

# (hidden, layers, heads, ffn[, patch, image]) per tower, and the projection
SIZES = {
    "tiny": {"text": (32, 2, 2, 64), "vision": (64, 2, 4, 128, 8, 32), "proj": 24},
    "base": {"text": (512, 12, 8, 2048), "vision": (768, 12, 12, 3072, 32, 224), "proj": 512},
}

DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}
TORCH_DTYPE_NAME = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}


def make_configs(size, args):
    s = SIZES[size]
    th, tl, tn, ti = s["text"]
    vh, vl, vn, vi, vp, vs = s["vision"]
    if args.layers is not None:
        tl = vl = args.layers
    act = getattr(args, "act", None) or "quick_gelu"
    text = dict(TEXT_DEFAULTS, hidden_size=th, num_hidden_layers=tl, num_attention_heads=tn,
                intermediate_size=ti, projection_dim=s["proj"], hidden_act=act,
                model_type="clip_text_model")
    vision = dict(VISION_DEFAULTS, hidden_size=vh, num_hidden_layers=vl, num_attention_heads=vn,
                  intermediate_size=vi, patch_size=vp, image_size=vs, projection_dim=s["proj"],
                  hidden_act=act, model_type="clip_vision_model")
    if getattr(args, "legacy_config", False):
        text.update(bos_token_id=0, eos_token_id=2)
    return text, vision, s["proj"]


def diff(cfg, defaults):
    return {k: v for k, v in cfg.items() if k not in defaults or defaults[k] != v}


def write_config(outdir, size, text, vision, proj, args):
    if size == "tiny":
        tc, vc = dict(text), dict(vision)
    else:
        tc, vc = diff(text, TEXT_DEFAULTS), diff(vision, VISION_DEFAULTS)
    cfg = {
        "architectures": ["CLIPModel"],
        "initializer_factor": 1.0,
        "logit_scale_init_value": 2.6592,
        "model_type": "clip",
        "projection_dim": proj,
        "torch_dtype": TORCH_DTYPE_NAME[args.dtype],
        "transformers_version": "4.44.2",
    }
    if getattr(args, "legacy_config", False):
        # the *_dict entries win; the plain ones are stale class defaults
        cfg["text_config_dict"] = tc
        cfg["vision_config_dict"] = vc
        cfg["text_config"] = {"model_type": "clip_text_model", "hidden_size": 512,
                              "num_hidden_layers": 12, "num_attention_heads": 8,
                              "intermediate_size": 2048, "hidden_act": "quick_gelu"}
        cfg["vision_config"] = {"model_type": "clip_vision_model", "hidden_size": 768,
                                "num_hidden_layers": 12, "image_size": 224, "patch_size": 32}
    else:
        cfg["text_config"] = tc
        cfg["vision_config"] = vc
    with open(os.path.join(outdir, "config.json"), "w") as f:
        json.dump(dict(sorted(cfg.items())), f, indent=2, sort_keys=True)
        f.write("\n")


def write_preprocessor(outdir, image_size, args):
    if getattr(args, "legacy_config", False):
        p = {"crop_size": image_size, "do_center_crop": True, "do_normalize": True,
             "do_resize": True, "feature_extractor_type": "CLIPFeatureExtractor",
             "image_mean": OPENAI_MEAN, "image_std": OPENAI_STD, "resample": 3,
             "size": image_size}
    else:
        p = {"crop_size": {"height": image_size, "width": image_size},
             "do_center_crop": True, "do_convert_rgb": True, "do_normalize": True,
             "do_rescale": True, "do_resize": True, "image_mean": OPENAI_MEAN,
             "image_processor_type": "CLIPImageProcessor", "image_std": OPENAI_STD,
             "resample": 3, "rescale_factor": 0.00392156862745098,
             "size": {"shortest_edge": image_size}}
    with open(os.path.join(outdir, "preprocessor_config.json"), "w") as f:
        json.dump(p, f, indent=2, sort_keys=True)
        f.write("\n")


def make_weights(text, vision, proj, gen):
    def lin(out_f, in_f):
        return torch.randn(out_f, in_f, generator=gen) / math.sqrt(in_f)

    def norm(n):
        return 1.0 + 0.1 * torch.randn(n, generator=gen)

    def bias(n):
        return 0.1 * torch.randn(n, generator=gen)

    def encoder(prefix, H, I, L):
        w = {}
        for li in range(L):
            p = f"{prefix}.encoder.layers.{li}."
            for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
                w[p + f"self_attn.{n}.weight"] = lin(H, H)
                w[p + f"self_attn.{n}.bias"] = bias(H)
            w[p + "layer_norm1.weight"] = norm(H)
            w[p + "layer_norm1.bias"] = bias(H)
            w[p + "mlp.fc1.weight"] = lin(I, H)
            w[p + "mlp.fc1.bias"] = bias(I)
            w[p + "mlp.fc2.weight"] = lin(H, I)
            w[p + "mlp.fc2.bias"] = bias(H)
            w[p + "layer_norm2.weight"] = norm(H)
            w[p + "layer_norm2.bias"] = bias(H)
        return w

    vh, P = vision["hidden_size"], vision["patch_size"]
    n_pos = (vision["image_size"] // P) ** 2 + 1
    th = text["hidden_size"]
    w = {"logit_scale": torch.tensor(2.6592)}
    w["vision_model.embeddings.class_embedding"] = torch.randn(vh, generator=gen)
    w["vision_model.embeddings.patch_embedding.weight"] = (
        torch.randn(vh, 3, P, P, generator=gen) / math.sqrt(3 * P * P))
    w["vision_model.embeddings.position_embedding.weight"] = 0.5 * torch.randn(n_pos, vh, generator=gen)
    w["vision_model.embeddings.position_ids"] = torch.arange(n_pos, dtype=torch.int64)[None]
    w["vision_model.pre_layrnorm.weight"] = norm(vh)
    w["vision_model.pre_layrnorm.bias"] = bias(vh)
    w.update(encoder("vision_model", vh, vision["intermediate_size"], vision["num_hidden_layers"]))
    w["vision_model.post_layernorm.weight"] = norm(vh)
    w["vision_model.post_layernorm.bias"] = bias(vh)
    w["visual_projection.weight"] = lin(proj, vh)

    T = text["max_position_embeddings"]
    w["text_model.embeddings.token_embedding.weight"] = torch.randn(text["vocab_size"], th, generator=gen)
    w["text_model.embeddings.position_embedding.weight"] = 0.5 * torch.randn(T, th, generator=gen)
    w["text_model.embeddings.position_ids"] = torch.arange(T, dtype=torch.int64)[None]
    w.update(encoder("text_model", th, text["intermediate_size"], text["num_hidden_layers"]))
    w["text_model.final_layer_norm.weight"] = norm(th)
    w["text_model.final_layer_norm.bias"] = bias(th)
    w["text_projection.weight"] = lin(proj, th)
    return w


def _bytes_to_unicode():
    """GPT-2's reversible byte -> printable-character table (CLIP uses it too)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def write_tokenizer(outdir):
    """vocab.json + merges.txt from OpenAI's bpe_simple_vocab_16e6.txt.gz, if present."""
    here = os.path.dirname(os.path.abspath(__file__))
    fixtures = os.environ.get("RWD_FIXTURES") or os.path.join(here, "..", "..", "shared", "fixtures")
    gz = os.path.join(fixtures, "clip-bpe", "bpe_simple_vocab_16e6.txt.gz")
    gz = os.environ.get("RWD_CLIP_BPE", gz)
    if not os.path.exists(gz):
        return False
    with gzip.open(gz, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = lines[1:49152 - 256 - 2 + 1]
    chars = list(_bytes_to_unicode().values())
    vocab = chars + [c + "</w>" for c in chars] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    with open(os.path.join(outdir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(outdir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
               "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}
    with open(os.path.join(outdir, "special_tokens_map.json"), "w") as f:
        json.dump(special, f, indent=2)
    tc = dict(special, tokenizer_class="CLIPTokenizer", model_max_length=77,
              do_lower_case=True, errors="replace", add_prefix_space=False)
    with open(os.path.join(outdir, "tokenizer_config.json"), "w") as f:
        json.dump(tc, f, indent=2, sort_keys=True)
    return True


def make(kind, size, outdir, args):
    if size not in SIZES:
        raise SystemExit(f"clip: unknown size {size!r} (have {', '.join(SIZES)})")
    act = getattr(args, "act", None) or "quick_gelu"
    if act not in ("quick_gelu", "gelu"):
        raise SystemExit(f"clip: --act must be quick_gelu or gelu, not {act!r}")
    text, vision, proj = make_configs(size, args)
    gen = torch.Generator().manual_seed(args.seed)
    w = make_weights(text, vision, proj, gen)
    dt = DTYPES[args.dtype]
    w = {k: (v.to(dt) if v.is_floating_point() else v) for k, v in w.items()}
    safetensors_io.save(w, os.path.join(outdir, "model.safetensors"), metadata={"format": "pt"})
    write_config(outdir, size, text, vision, proj, args)
    write_preprocessor(outdir, vision["image_size"], args)
    write_tokenizer(outdir)
