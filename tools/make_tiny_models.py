#!/usr/bin/python3
"""Write randomly initialised checkpoints in exact Hugging Face folder layout.

    /usr/bin/python3 tools/make_tiny_models.py KIND SIZE OUTDIR [--dtype f32|bf16|f16] [--seed N] [...]

KIND is one of the generators below (clip, qwen2, qwen3, llama, mlp, imagereward); SIZE
names a preset of that generator (e.g. tiny, base). Each generator lives in
its own module (tools/tiny_<family>.py) with a `make(kind, size, outdir,
args)` function and a `KINDS` tuple; this file only dispatches. The parity
tests call it to build the checkpoints they compare against PyTorch.
"""
import argparse
import importlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

FAMILIES = ("tiny_clip", "tiny_seqcls", "tiny_mlp", "tiny_imagereward", "tiny_vlm")


def _generators():
    gens = {}
    for fam in FAMILIES:
        try:
            mod = importlib.import_module(fam)
        except ModuleNotFoundError as e:
            if e.name == fam:
                continue  # family not written yet
            raise
        for kind in mod.KINDS:
            gens[kind] = mod
    return gens


def main():
    gens = _generators()
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=sorted(gens))
    ap.add_argument("size")
    ap.add_argument("outdir")
    ap.add_argument("--dtype", default="f32", choices=("f32", "bf16", "f16"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--labels", default=None,
                    help="comma-separated id2label names for classifier heads")
    ap.add_argument("--layers", type=int, default=None, help="override the layer count")
    ap.add_argument("--head", default="seq", choices=("seq", "prm", "token1", "token2"),
                    help="qwen2/qwen3/llama: sequence classifier (default), Qwen2ForProcessRewardModel "
                         "(qwen2 only), or *ForTokenClassification with 1 or 2 labels")
    ap.add_argument("--step-tag-id", type=int, default=None,
                    help="prm/token heads: write step_tag_id into config.json")
    ap.add_argument("--act", default=None, help="clip: hidden_act, quick_gelu (default) or gelu")
    ap.add_argument("--legacy-config", action="store_true",
                    help="clip: old config layout (*_config_dict overrides, eos_token_id 2)")
    ap.add_argument("--names", default=None, choices=("hub", "v452"),
                    help="qwen2_vl/qwen2_5_vl: hub tensor names (default) or transformers >= 4.52's")
    ap.add_argument("--vlm-head", default=None, choices=("hpsv3", "editreward"),
                    help="qwen2_vl/qwen2_5_vl: add that reward model's head tensors and reward_head.json")
    args = ap.parse_args()
    os.makedirs(args.outdir, exist_ok=True)
    gens[args.kind].make(args.kind, args.size, args.outdir, args)


if __name__ == "__main__":
    main()
