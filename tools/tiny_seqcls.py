"""Random Qwen2/Qwen3/Llama *ForSequenceClassification folders in exact HF layout.

A family module of tools/make_tiny_models.py:

    /usr/bin/python3 tools/make_tiny_models.py qwen3 tiny OUT [--dtype bf16] [--labels a,b,c]
    /usr/bin/python3 tools/make_tiny_models.py qwen3 0.6b OUT --layers 4

Writes OUT/config.json (the keys transformers writes for these model types),
OUT/model.safetensors (HF tensor names, F32/BF16/F16), OUT/tokenizer_config.json
(with the family's real chat template: Qwen2.5 / Qwen3 ChatML, Llama-3) and
OUT/generation_config.json. No tokenizer.json: the tiny vocabularies are
fictional; the 0.6b preset has Qwen's real vocabulary size (151936) so a real
Qwen tokenizer.json can be dropped beside it.

Weights are random but scaled so every layer contributes (linears
N(0, 1/fan_in), RMSNorm weights 1 + N(0, 0.1^2), Qwen2 biases N(0, 0.1^2)):
HF's N(0, 0.02) initialisation would leave the tiny models' residual stream
almost equal to the embeddings and make a parity test insensitive.
"""
import json
import math
import os

import torch

import safetensors_io

KINDS = ("qwen2", "qwen3", "llama")

ARCH = {
    "qwen2": "Qwen2ForSequenceClassification",
    "qwen3": "Qwen3ForSequenceClassification",
    "llama": "LlamaForSequenceClassification",
}

# name: (vocab, hidden, intermediate, heads, kv_heads, head_dim, layers)
SIZES = {
    "tiny": {
        # qwen3's head_dim is set explicitly and heads*head_dim != hidden here,
        # as it may be in real Qwen3 checkpoints.
        "qwen2": (512, 64, 160, 4, 2, 16, 2),
        "qwen3": (512, 64, 160, 4, 2, 32, 2),
        "llama": (512, 64, 160, 4, 2, 16, 2),
    },
    # Qwen3-0.6B's shape (hidden 1024, intermediate 3072, 16 heads, 8 kv heads,
    # head_dim 128, vocab 151936) with few layers; llama/qwen2 reuse it
    # (head_dim = hidden / heads = 64 for them, as their configs derive it).
    "0.6b": {
        "qwen2": (151936, 1024, 3072, 16, 8, 64, 2),
        "qwen3": (151936, 1024, 3072, 16, 8, 128, 2),
        "llama": (151936, 1024, 3072, 16, 8, 64, 2),
    },
    # tiny, with Qwen's real vocabulary size: real token ids such as
    # Qwen2.5-Math-PRM's step separator 151651 exist, at 39 MB of embeddings
    "tinyvocab": {
        "qwen2": (151936, 64, 160, 4, 2, 16, 2),
        "qwen3": (151936, 64, 160, 4, 2, 32, 2),
        "llama": (151936, 64, 160, 4, 2, 16, 2),
    },
}

CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)

# The real templates (tests/data/chat_templates, with their sources), so the
# folders work with lib/text/chat's recogniser; the inline ones above are the
# fallback when this file is used outside the source tree.
REAL_TEMPLATES = {"qwen2": "qwen2.5-instruct.json", "qwen3": "qwen3-0.6b.json",
                  "llama": "llama3-8b-instruct.json"}


def chat_template(kind):
    f = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data",
                     "chat_templates", REAL_TEMPLATES[kind])
    try:
        with open(f) as fh:
            return json.load(fh)["chat_template"]
    except (OSError, KeyError, ValueError):
        return LLAMA3_TEMPLATE if kind == "llama" else CHATML_TEMPLATE


DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}
TORCH_DTYPE_NAME = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}


def special_ids(kind, vocab):
    """(bos, eos, pad) ids: the real ones for the full vocabulary, else the top ids."""
    if kind == "llama":
        if vocab >= 128256:
            return 128000, 128009, 128004
        return vocab - 3, vocab - 2, vocab - 1
    if vocab >= 151936:
        return 151643, 151645, 151643
    return vocab - 3, vocab - 2, vocab - 1


def head_of(args):
    return getattr(args, "head", "seq") or "seq"


def make_config(kind, size, args):
    vocab, hidden, inter, heads, kv, hd, layers = SIZES[size][kind]
    if args.layers is not None:
        layers = args.layers
    head = head_of(args)
    labels = args.labels.split(",") if args.labels else ["LABEL_0"]
    if head in ("prm", "token2"):
        labels = ["LABEL_0", "LABEL_1"]
    elif head == "token1":
        labels = ["LABEL_0"]
    bos, eos, pad = special_ids(kind, vocab)
    cfg = {
        "architectures": [ARCH[kind]],
        "attention_dropout": 0.0,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "hidden_act": "silu",
        "hidden_size": hidden,
        "id2label": {str(i): name for i, name in enumerate(labels)},
        "initializer_range": 0.02,
        "intermediate_size": inter,
        "label2id": {name: i for i, name in enumerate(labels)},
        "model_type": kind,
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "num_key_value_heads": kv,
        "pad_token_id": pad,
        "rms_norm_eps": 1e-05 if kind == "llama" else 1e-06,
        "tie_word_embeddings": kind != "llama",
        "torch_dtype": TORCH_DTYPE_NAME[args.dtype],
        "transformers_version": "4.51.3",
        "use_cache": True,
        "vocab_size": vocab,
    }
    if head == "prm":
        if kind != "qwen2":
            raise SystemExit("--head prm: Qwen2ForProcessRewardModel is a qwen2 model")
        cfg["architectures"] = ["Qwen2ForProcessRewardModel"]
    elif head.startswith("token"):
        cfg["architectures"] = [ARCH[kind].replace("SequenceClassification", "TokenClassification")]
    if head != "seq" and getattr(args, "step_tag_id", None) is not None:
        cfg["step_tag_id"] = args.step_tag_id
    if kind == "qwen3":
        cfg.update({
            "attention_bias": False,
            "head_dim": hd,
            "max_position_embeddings": 40960,
            "max_window_layers": layers,
            "rope_scaling": None,
            "rope_theta": 1000000,
            "sliding_window": None,
            "use_sliding_window": False,
        })
    elif kind == "qwen2":
        assert hd * heads == hidden
        cfg.update({
            "max_position_embeddings": 32768,
            "max_window_layers": layers,
            "rope_scaling": None,
            "rope_theta": 1000000.0,
            "sliding_window": 32768,
            "use_sliding_window": False,
        })
    else:
        assert hd * heads == hidden
        cfg.update({
            "attention_bias": False,
            "head_dim": hd,
            "max_position_embeddings": 131072,
            "mlp_bias": False,
            "pretraining_tp": 1,
            "rope_scaling": {
                "factor": 8.0,
                "high_freq_factor": 4.0,
                "low_freq_factor": 1.0,
                "original_max_position_embeddings": 8192,
                "rope_type": "llama3",
            },
            "rope_theta": 500000.0,
        })
    return dict(sorted(cfg.items())), hd


def make_weights(kind, cfg, hd, gen, head="seq"):
    H = cfg["hidden_size"]
    I = cfg["intermediate_size"]
    nH = cfg["num_attention_heads"]
    nKV = cfg["num_key_value_heads"]
    V = cfg["vocab_size"]
    L = cfg["num_hidden_layers"]
    nl = len(cfg["id2label"])

    def lin(out_f, in_f):
        return torch.randn(out_f, in_f, generator=gen) / math.sqrt(in_f)

    def norm(n):
        return 1.0 + 0.1 * torch.randn(n, generator=gen)

    def bias(n):
        return 0.1 * torch.randn(n, generator=gen)

    w = {"model.embed_tokens.weight": torch.randn(V, H, generator=gen)}
    for li in range(L):
        p = f"model.layers.{li}."
        w[p + "input_layernorm.weight"] = norm(H)
        w[p + "post_attention_layernorm.weight"] = norm(H)
        w[p + "self_attn.q_proj.weight"] = lin(nH * hd, H)
        w[p + "self_attn.k_proj.weight"] = lin(nKV * hd, H)
        w[p + "self_attn.v_proj.weight"] = lin(nKV * hd, H)
        w[p + "self_attn.o_proj.weight"] = lin(H, nH * hd)
        if kind == "qwen2":
            w[p + "self_attn.q_proj.bias"] = bias(nH * hd)
            w[p + "self_attn.k_proj.bias"] = bias(nKV * hd)
            w[p + "self_attn.v_proj.bias"] = bias(nKV * hd)
        if kind == "qwen3":
            w[p + "self_attn.q_norm.weight"] = norm(hd)
            w[p + "self_attn.k_norm.weight"] = norm(hd)
        w[p + "mlp.gate_proj.weight"] = lin(I, H)
        w[p + "mlp.up_proj.weight"] = lin(I, H)
        w[p + "mlp.down_proj.weight"] = lin(H, I)
    w["model.norm.weight"] = norm(H)
    if head == "prm":
        # Qwen2ForProcessRewardModel: score = Sequential(Linear(H, H), ReLU(), Linear(H, 2))
        w["score.0.weight"] = lin(H, H)
        w["score.0.bias"] = bias(H)
        w["score.2.weight"] = lin(2, H)
        w["score.2.bias"] = bias(2)
    else:
        w["score.weight"] = lin(nl, H)
        if head.startswith("token"):
            w["score.bias"] = bias(nl)  # nn.Linear's default bias=True
    return w


def make_tokenizer_config(kind, cfg):
    if kind == "llama":
        bos, eos, pad = "<|begin_of_text|>", "<|eot_id|>", "<|finetune_right_pad_id|>"
    else:
        bos, eos, pad = None, "<|im_end|>", "<|endoftext|>"
    template = chat_template(kind)
    return {
        "add_bos_token": kind == "llama",
        "add_eos_token": False,
        "bos_token": bos,
        "chat_template": template,
        "clean_up_tokenization_spaces": False,
        "eos_token": eos,
        "model_max_length": cfg["max_position_embeddings"],
        "pad_token": pad,
        "tokenizer_class": "PreTrainedTokenizerFast" if kind == "llama" else "Qwen2Tokenizer",
    }


def make(kind, size, outdir, args):
    if size not in SIZES:
        raise SystemExit(f"{kind}: unknown size {size!r} (have {', '.join(SIZES)})")
    cfg, hd = make_config(kind, size, args)
    gen = torch.Generator().manual_seed(args.seed)
    weights = make_weights(kind, cfg, hd, gen, head_of(args))
    dt = DTYPES[args.dtype]
    weights = {k: v.to(dt).contiguous() for k, v in weights.items()}
    safetensors_io.save(weights, os.path.join(outdir, "model.safetensors"),
                        metadata={"format": "pt"})
    with open(os.path.join(outdir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    with open(os.path.join(outdir, "tokenizer_config.json"), "w") as f:
        json.dump(make_tokenizer_config(kind, cfg), f, indent=2)
        f.write("\n")
    gcfg = {"bos_token_id": cfg["bos_token_id"], "eos_token_id": cfg["eos_token_id"],
            "transformers_version": cfg["transformers_version"]}
    with open(os.path.join(outdir, "generation_config.json"), "w") as f:
        json.dump(gcfg, f, indent=2)
        f.write("\n")
