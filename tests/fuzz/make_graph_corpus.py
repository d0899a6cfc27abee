#!/usr/bin/python3
"""Write the seed corpus of tests/fuzz/fuzz_graph.c: small graph.json files
over the fuzz target's constants (w [2,1,3,3], w2 [2,2,1,1], b/v [2], one
[1], m [6,6]) using every operator the interpreter knows, plus a few broken
ones. usage: make_graph_corpus.py OUT_DIR"""
import json
import os
import sys

out = sys.argv[1]
os.makedirs(out, exist_ok=True)


def g(nodes, ints=None, output=None, **kw):
    d = {"format": "rewardd-onnx-graph-1", "opset": kw.get("opset", 11), "input": "x",
         "output": output or nodes[-1][2], "nodes": [
             {"op": op, "inputs": ins, "outputs": [o], "attrs": a} for op, ins, o, a in nodes],
         "int_constants": ints or {}}
    return json.dumps(d)


seeds = {
    "conv_dw": g([("Conv", ["x", "w", "b"], "y", {"group": 2, "pads": [1, 1, 1, 1], "strides": [2, 2],
                                                 "kernel_shape": [3, 3], "dilations": [1, 1]})]),
    "conv_1x1_bn_act": g([("Conv", ["x", "w2"], "c", {"group": 1}),
                          ("BatchNormalization", ["c", "v", "b", "b", "v"], "n", {"epsilon": 1e-5}),
                          ("HardSigmoid", ["n"], "h", {"alpha": 0.2, "beta": 0.5}),
                          ("Clip", ["h"], "k", {"min": 0.0, "max": 6.0}),
                          ("Mul", ["k", "one"], "mm", {}), ("Div", ["mm", "one"], "d", {}),
                          ("Add", ["d", "x"], "a", {}), ("Sub", ["a", "one"], "s", {}),
                          ("Relu", ["s"], "r", {}), ("Sigmoid", ["r"], "sg", {}), ("Sqrt", ["sg"], "q", {}),
                          ("Pow", ["q", "one"], "p", {})]),
    "convt_resize_concat": g([("ConvTranspose", ["x", "w2", "b"], "t", {"strides": [2, 2], "kernel_shape": [1, 1]}),
                              ("Resize", ["x", "", "", "sz"], "rz", {"mode": "nearest", "coordinate_transformation_mode":
                                                                 "asymmetric", "nearest_mode": "floor"}),
                              ("Concat", ["t", "rz"], "cc", {"axis": 1}),
                              ("GlobalAveragePool", ["cc"], "gp", {}),
                              ("AveragePool", ["cc"], "ap", {"kernel_shape": [3, 2], "strides": [3, 2],
                                                             "pads": [0, 0, 0, 0], "count_include_pad": 0}),
                              ("Mul", ["ap", "gp"], "o", {})], output="o",
                             ints={"sz": {"shape": [4], "values": [1, 2, 11, 11]}}),
    "svtr_attention": g([("Shape", ["x"], "sh", {}), ("Cast", ["sh"], "sh32", {"to": 6}),
                         ("Slice", ["sh32"], "s01", {"axes": [0], "starts": [0], "ends": [2]}),
                         ("Concat", ["s01", "minus1"], "ns", {"axis": 0}),
                         ("Reshape", ["x", "ns"], "fl", {}),
                         ("Transpose", ["fl"], "tr", {"perm": [0, 2, 1]}),
                         ("ReduceMean", ["tr"], "mu", {"axes": [-1]}),
                         ("Sub", ["tr", "mu"], "cen", {}),
                         ("MatMul", ["cen", "cen2"], "mm", {}),
                         ("Softmax", ["mm"], "sm", {"axis": 2}),
                         ("Squeeze", ["sm"], "sq", {"axes": [0]}),
                         ("MatMul", ["sq", "sq"], "o", {})],
                        ints={"minus1": {"shape": [1], "values": [-1]}}, output="o", opset=9),
    "bad_unknown_op": g([("Gelu", ["x"], "y", {})]),
    "bad_cycle": g([("Relu", ["y"], "y", {})]),
    "bad_attr": g([("Conv", ["x", "w"], "y", {"strides": [0, 1]})]),
    "bad_shapes": g([("Conv", ["x", "w2"], "y", {"group": 2})]),
}
# "cen2": a transposed copy for the attention seed
seeds["svtr_attention"] = seeds["svtr_attention"].replace('"inputs": ["cen", "cen2"]', '"inputs": ["cen", "trT"]')
d = json.loads(seeds["svtr_attention"])
d["nodes"].insert(8, {"op": "Transpose", "inputs": ["cen"], "outputs": ["trT"], "attrs": {"perm": [0, 2, 1]}})
seeds["svtr_attention"] = json.dumps(d)
d["nodes"][0]["op"] = "Shape"
seeds["svtr_attention_opset13"] = json.dumps(dict(d, opset=13))
seeds["bad_json"] = '{"format": "rewardd-onnx-graph-1", "nodes": [ {'
for k, v in seeds.items():
    with open(os.path.join(out, k + ".json"), "w") as f:
        f.write(v)
print("%d seeds in %s" % (len(seeds), out))
