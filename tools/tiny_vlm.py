"""Random Qwen2-VL / Qwen2.5-VL checkpoints in the exact Hugging Face layout.

A family module of tools/make_tiny_models.py:

    /usr/bin/python3 tools/make_tiny_models.py qwen2_vl tiny OUT [--dtype bf16] [--layers N]
    /usr/bin/python3 tools/make_tiny_models.py qwen2_5_vl tiny OUT [--names v452]

Writes OUT/config.json with the keys the hub checkpoints carry
(Qwen2VLForConditionalGeneration / Qwen2_5_VLForConditionalGeneration,
model_type, rope_scaling {"type": "mrope", "mrope_section"}, the vision token
ids, a nested vision_config) and OUT/model.safetensors with the hub tensor
names (`visual.*`, `model.embed_tokens`, `model.layers.N.*`, `model.norm`,
`lm_head`), or with --names v452 the transformers >= 4.52 names
(`model.visual.*`, `model.language_model.*`, `lm_head`) and a nested
text_config, as EditReward's checkpoints are written.

Vision towers: Qwen2-VL blocks (LayerNorm with bias, qkv/proj with bias,
fc1/fc2 MLP with hidden_act quick_gelu left out of the config as the hub does,
mlp_ratio 4, merger LayerNorm); Qwen2.5-VL blocks (RMSNorm, SiLU-gated
gate/up/down with biases, window_size 112, fullatt_block_indexes, merger
RMSNorm). Patch size 14, temporal patch 2, spatial merge 2: the real values,
so the real image processor applies.

Weights are random but scaled so every layer contributes (linears
N(0, 1/fan_in), norm weights 1 + N(0, 0.1^2), biases N(0, 0.1^2)).
"""
import json
import math
import os

import torch

import safetensors_io

KINDS = ("qwen2_vl", "qwen2_5_vl")

ARCH = {"qwen2_vl": "Qwen2VLForConditionalGeneration",
        "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration"}

# LLM: vocab, hidden, intermediate, heads, kv_heads, layers, mrope_section
# vision: width, heads, depth, intermediate (2.5 only), fullatt blocks (2.5 only)
SIZES = {
    "tiny": {
        "llm": (512, 64, 160, 4, 2, 2, [2, 3, 3]),
        "vision": (32, 2, 3, 48, [1]),
    },
    # tiny, with Qwen's real vocabulary and special-token ids (a real
    # tokenizer.json can be dropped beside it)
    "tinyvocab": {
        "llm": (151936, 64, 160, 4, 2, 2, [2, 3, 3]),
        "vision": (32, 2, 3, 48, [1]),
    },
    # Qwen2-VL-2B's shapes (vision 1280 x 16 heads, LLM 1536, 12 heads, 2 kv
    # heads, mrope [16, 24, 24]) with few layers, for the benchmark
    "2b": {
        "llm": (151936, 1536, 8960, 12, 2, 2, [16, 24, 24]),
        "vision": (1280, 16, 2, 3420, [1]),
    },
}

TORCH_DTYPE_NAME = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}
DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}


def make_config(kind, size, args):
    vocab, H, inter, heads, kv, layers, mrope = SIZES[size]["llm"]
    vw, vh, vdepth, vinter, fullatt = SIZES[size]["vision"]
    if args.layers is not None:
        layers = args.layers
    big = vocab > 151656
    ids = {"bos_token_id": 151643 if big else 1, "eos_token_id": 151645 if big else 2,
           "vision_start_token_id": 151652 if big else 500,
           "vision_end_token_id": 151653 if big else 501,
           "vision_token_id": 151654 if big else 502,
           "image_token_id": 151655 if big else 503,
           "video_token_id": 151656 if big else 504}
    text = {
        "hidden_size": H, "intermediate_size": inter, "num_attention_heads": heads,
        "num_key_value_heads": kv, "num_hidden_layers": layers, "hidden_act": "silu",
        "max_position_embeddings": 32768, "max_window_layers": layers,
        "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "sliding_window": 32768,
        "use_sliding_window": False, "tie_word_embeddings": False,
        "rope_scaling": {"type": "mrope", "mrope_section": mrope},
        "vocab_size": vocab, "attention_dropout": 0.0, "initializer_range": 0.02,
        "use_cache": True,
    }
    if kind == "qwen2_vl":
        vision = {"depth": vdepth, "embed_dim": vw, "mlp_ratio": 4, "num_heads": vh,
                  "in_chans": 3, "hidden_size": H, "patch_size": 14,
                  "spatial_merge_size": 2, "spatial_patch_size": 14,
                  "temporal_patch_size": 2}
    else:
        vision = {"depth": vdepth, "hidden_act": "silu", "hidden_size": vw,
                  "intermediate_size": vinter, "num_heads": vh, "in_chans": 3,
                  "out_hidden_size": H, "patch_size": 14, "spatial_merge_size": 2,
                  "spatial_patch_size": 14, "temporal_patch_size": 2, "window_size": 112,
                  "fullatt_block_indexes": fullatt, "tokens_per_second": 2}
    cfg = {"architectures": [ARCH[kind]], "model_type": kind,
           "torch_dtype": TORCH_DTYPE_NAME[args.dtype]}
    cfg.update(ids)
    if getattr(args, "names", None) == "v452":
        cfg["text_config"] = dict(text, model_type=kind + "_text", **ids)
        cfg["tie_word_embeddings"] = False
        cfg["transformers_version"] = "4.57.0"
    else:
        cfg.update(text)
        cfg["transformers_version"] = "4.45.0.dev0"
    cfg["vision_config"] = vision
    return cfg


def make_weights(kind, cfg, gen, names="hub"):
    text = cfg.get("text_config", cfg)
    vis = cfg["vision_config"]
    H, inter = text["hidden_size"], text["intermediate_size"]
    heads, kv = text["num_attention_heads"], text["num_key_value_heads"]
    hd = H // heads
    w = {}

    def rnd(*shape, std=1.0):
        return torch.randn(*shape, generator=gen) * std

    def lin(name, out_f, in_f, bias=True):
        w[name + ".weight"] = rnd(out_f, in_f, std=1 / math.sqrt(in_f))
        if bias:
            w[name + ".bias"] = rnd(out_f, std=0.1)

    def norm(name, n, bias):
        w[name + ".weight"] = 1 + rnd(n, std=0.1)
        if bias:
            w[name + ".bias"] = rnd(n, std=0.1)

    vp = "model.visual" if names == "v452" else "visual"
    lp = "model.language_model" if names == "v452" else "model"
    q2 = kind == "qwen2_vl"
    E = vis["embed_dim"] if q2 else vis["hidden_size"]
    out_dim = vis["hidden_size"] if q2 else vis["out_hidden_size"]
    P, T = vis["patch_size"], vis["temporal_patch_size"]
    w[vp + ".patch_embed.proj.weight"] = rnd(E, 3, T, P, P, std=1 / math.sqrt(3 * T * P * P))
    for i in range(vis["depth"]):
        b = f"{vp}.blocks.{i}"
        norm(b + ".norm1", E, q2)
        norm(b + ".norm2", E, q2)
        lin(b + ".attn.qkv", 3 * E, E)
        lin(b + ".attn.proj", E, E)
        if q2:
            lin(b + ".mlp.fc1", E * vis["mlp_ratio"], E)
            lin(b + ".mlp.fc2", E, E * vis["mlp_ratio"])
        else:
            vi = vis["intermediate_size"]
            lin(b + ".mlp.gate_proj", vi, E)
            lin(b + ".mlp.up_proj", vi, E)
            lin(b + ".mlp.down_proj", E, vi)
    norm(vp + ".merger.ln_q", E, q2)
    M = E * vis["spatial_merge_size"] ** 2
    lin(vp + ".merger.mlp.0", M, M)
    lin(vp + ".merger.mlp.2", out_dim, M)

    w[lp + ".embed_tokens.weight"] = rnd(text["vocab_size"], H)
    for i in range(text["num_hidden_layers"]):
        b = f"{lp}.layers.{i}"
        norm(b + ".input_layernorm", H, False)
        norm(b + ".post_attention_layernorm", H, False)
        lin(b + ".self_attn.q_proj", heads * hd, H)
        lin(b + ".self_attn.k_proj", kv * hd, H)
        lin(b + ".self_attn.v_proj", kv * hd, H)
        lin(b + ".self_attn.o_proj", H, heads * hd, bias=False)
        lin(b + ".mlp.gate_proj", inter, H, bias=False)
        lin(b + ".mlp.up_proj", inter, H, bias=False)
        lin(b + ".mlp.down_proj", H, inter, bias=False)
    norm(lp + ".norm", H, False)
    lin("lm_head", text["vocab_size"], H, bias=False)
    return w


def make_head(kind, cfg, gen, style, weights):
    """HPSv3 (rm_head.{0,3,5}: H -> 1024 -> 16 -> 2, ReLU) or EditReward
    (rm_heads.head_{0,1}, the same Sequential each) tensors, float32 as the
    authors keep them, and the reward_head.json that describes them."""
    text = cfg.get("text_config", cfg)
    H = text["hidden_size"]
    vocab = text["vocab_size"]
    reward_id = 151657 if vocab > 151657 else 505

    def seq(prefix):
        for name, o, i in (("0", 1024, H), ("3", 16, 1024), ("5", 2, 16)):
            weights[f"{prefix}.{name}.weight"] = torch.randn(o, i, generator=gen) / math.sqrt(i)
            weights[f"{prefix}.{name}.bias"] = torch.randn(o, generator=gen) * 0.1
        return {"file": "model.safetensors",
                "layers": [{"weight": f"{prefix}.0.weight", "bias": f"{prefix}.0.bias", "activation": "relu"},
                           {"weight": f"{prefix}.3.weight", "bias": f"{prefix}.3.bias", "activation": "relu"},
                           {"weight": f"{prefix}.5.weight", "bias": f"{prefix}.5.bias", "activation": None}]}

    if style == "hpsv3":
        heads = {"rm_head": seq("rm_head")}
        dims = [{"name": "hpsv3", "prompt": "overall", "pool": "<|Reward|>", "head": "rm_head",
                 "mu": 0, "log_sigma": 1}]
        # HPSv3's data_collator_qwen layout (a shortened INSTRUCTION): the
        # image, then the instruction with the item's prompt and <|Reward|>
        prompts = {"overall": {"add_generation_prompt": True, "messages": [{"role": "user", "content": [
            {"type": "image", "field": "image"},
            {"type": "text", "text": "You are evaluating an image generated from the prompt: {text_prompt}\n"
                                     "Please provide the overall ratings of this image: <|Reward|>\n\nEND\n",
             "text_field": "prompt"}]}]}}
    else:
        heads = {"head_0": seq("rm_heads.head_0"), "head_1": seq("rm_heads.head_1")}
        dims = [{"name": "instruction_following", "prompt": "dim1", "pool": "<|Reward|>", "head": "head_0",
                 "mu": 0, "log_sigma": 1},
                {"name": "visual_quality", "prompt": "dim2", "pool": "<|Reward|>", "head": "head_1",
                 "mu": 0, "log_sigma": 1}]
        def edit_prompt(question):
            return {"add_generation_prompt": True, "messages": [{"role": "user", "content": [
                {"type": "image", "field": "source_image"}, {"type": "image", "field": "edited_image"},
                {"type": "text", "text": "Editing instruction: {text_prompt}\n" + question + " <|Reward|>",
                 "text_field": "instruction"}]}]}
        prompts = {"dim1": edit_prompt("How well does the edit follow the instruction?"),
                   "dim2": edit_prompt("How good is the edited image's visual quality?")}
    return {"prompts": prompts, "heads": heads, "dimensions": dims, "position_ids": "sequential",
            "special_tokens": {"<|Reward|>": reward_id}, "source": f"tools/tiny_vlm.py ({style}, random)"}


def make(kind, size, outdir, args):
    if size not in SIZES:
        raise SystemExit(f"{kind}: unknown size {size!r} (have {', '.join(SIZES)})")
    gen = torch.Generator().manual_seed(args.seed)
    cfg = make_config(kind, size, args)
    names = getattr(args, "names", None) or "hub"
    weights = make_weights(kind, cfg, gen, names)
    dt = DTYPES[args.dtype]
    weights = {k: v.to(dt) for k, v in weights.items()}
    style = getattr(args, "vlm_head", None)
    if style:
        head_w = {}
        spec = make_head(kind, cfg, gen, style, head_w)
        weights.update(head_w)  # float32, whatever the backbone's dtype
        with open(os.path.join(outdir, "reward_head.json"), "w") as f:
            json.dump(spec, f, indent=2)
    with open(os.path.join(outdir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    safetensors_io.save(weights, os.path.join(outdir, "model.safetensors"),
                        metadata={"format": "pt"})
