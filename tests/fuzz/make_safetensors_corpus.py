#!/usr/bin/python3
"""Write the seed corpora of tests/fuzz/fuzz_safetensors.c and
fuzz_safetensors_index.c (run once; the files are committed).

    /usr/bin/python3 tests/fuzz/make_safetensors_corpus.py [corpusdir]

Valid files come from tools/safetensors_io.py (the reference writer's layout,
values from torch) plus hand-laid variants the writer never produces
(whitespace-padded headers, misaligned data, zero-size and rank-0 tensors,
every dtype name). Broken files cover each refusal class: truncations,
oversized and lying header lengths, lying offsets, holes, overlaps, trailing
bytes, size mismatches, overflowing shapes, duplicate keys, non-object
headers, bad metadata. Each file is a few hundred bytes at most.
The index corpus holds valid weight maps and each refusal (traversal,
separators, non-string values, duplicates, wrong types).
"""
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus")
OUT = os.path.join(CORPUS, "safetensors")
OUT_INDEX = os.path.join(CORPUS, "safetensors_index")
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))


def raw(header_text, data=b"", length=None):
    h = header_text.encode() if isinstance(header_text, str) else header_text
    n = len(h) if length is None else length
    return struct.pack("<Q", n) + h + data


def entry(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def hdr(obj):
    return json.dumps(obj, separators=(",", ":"))


files = {}

# --- valid, from the Python writer (torch values) ---
try:
    import torch
    import safetensors_io as st

    g = torch.Generator().manual_seed(0)
    tensors = {
        "w": torch.randn(3, 4, generator=g),
        "h": torch.randn(5, generator=g).half(),
        "b": torch.randn(2, 3, generator=g).bfloat16(),
        "pos": torch.arange(6, dtype=torch.int64).reshape(1, 6),
        "scale": torch.tensor(2.5),
        "empty": torch.zeros(0, 4),
        "m": torch.tensor([1, 0, 1], dtype=torch.uint8),
        "i": torch.tensor([-1, 7], dtype=torch.int32),
    }
    tmp = os.path.join(OUT, ".tmp.safetensors")
    os.makedirs(OUT, exist_ok=True)
    st.save(tensors, tmp, metadata={"format": "pt"})
    with open(tmp, "rb") as f:
        files["valid_torch_mixed"] = f.read()
    st.save({"layers.0.weight": torch.randn(2, 3, generator=g),
             "layers.0.bias": torch.randn(2, generator=g)}, tmp)
    with open(tmp, "rb") as f:
        files["valid_torch_linear"] = f.read()
    os.unlink(tmp)
except ImportError:
    print("torch not available: writing only the hand-laid files", file=sys.stderr)

f32 = struct.pack("<4f", 1.0, -2.0, 0.5, 3.0)

# --- valid, hand-laid ---
files["valid_empty"] = raw("{}      ")
files["valid_metadata_only"] = raw(hdr({"__metadata__": {"format": "pt", "k": ""}}))
files["valid_ws_padded"] = raw(" \n\t{\"a\":" + json.dumps(entry("F32", [2, 2], 0, 16)) + "}\r\n\t ", f32)
files["valid_misaligned"] = raw(hdr({"u": entry("U8", [1], 0, 1), "f": entry("F32", [4], 1, 17),
                                     "l": entry("I64", [1], 17, 25)}),
                                b"\x07" + f32 + struct.pack("<q", -3))
files["valid_f16_specials"] = raw(hdr({"h": entry("F16", [6], 0, 12)}),
                                  struct.pack("<6H", 0x0001, 0x03FF, 0x7C00, 0xFC00, 0x7E01, 0x8000))
files["valid_bf16_specials"] = raw(hdr({"b": entry("BF16", [4], 0, 8)}),
                                   struct.pack("<4H", 0x7F80, 0xFF81, 0x0001, 0x3F80))
files["valid_zero_size_shared"] = raw(hdr({"z0": entry("F32", [0], 0, 0), "z1": entry("BF16", [3, 0], 0, 0),
                                           "s": entry("F32", [], 0, 4)}), f32[:4])
every = {}
off = 0
for name, bits in [("BOOL", 8), ("F4", 4), ("F6_E2M3", 6), ("F6_E3M2", 6), ("U8", 8), ("I8", 8),
                   ("F8_E5M2", 8), ("F8_E4M3", 8), ("F8_E8M0", 8), ("F8_E4M3FNUZ", 8),
                   ("F8_E5M2FNUZ", 8), ("I16", 16), ("U16", 16), ("F16", 16), ("BF16", 16),
                   ("I32", 32), ("U32", 32), ("F32", 32), ("C64", 64), ("F64", 64), ("I64", 64),
                   ("U64", 64)]:
    n = 4
    nb = n * bits // 8
    every["t_" + name] = entry(name, [n], off, off + nb)
    off += nb
files["valid_every_dtype"] = raw(hdr(every), bytes(range(256)) * (off // 256) + bytes(range(off % 256)))

# --- broken ---
good = files["valid_ws_padded"]
files["trunc_len_only"] = good[:5]
files["trunc_header"] = good[:20]
files["trunc_data"] = good[:-3]
files["header_len_too_big"] = struct.pack("<Q", 100_000_001) + b"{}"
files["header_len_huge"] = struct.pack("<Q", 2**64 - 1) + b"{}"
files["header_len_past_eof"] = raw("{}", length=40)
files["lying_offsets"] = raw(hdr({"a": entry("F32", [4], 0, 12)}), f32[:12])
files["hole"] = raw(hdr({"a": entry("F32", [1], 0, 4), "b": entry("F32", [1], 8, 12)}), f32[:12])
files["overlap"] = raw(hdr({"a": entry("F32", [2], 0, 8), "b": entry("F32", [2], 4, 12)}), f32[:12])
files["end_before_begin"] = raw(hdr({"a": entry("U8", [0], 8, 4)}), bytes(8))
files["trailing_bytes"] = raw(hdr({"a": entry("F32", [3], 0, 12)}), f32)
files["dtype_size_mismatch"] = raw(hdr({"a": entry("F16", [4], 0, 16)}), f32)
files["huge_shape_overflow"] = raw(hdr({"a": entry("F32", [2**32, 2**32], 0, 4)}), f32[:4])
files["huge_shape_bits"] = raw(hdr({"a": entry("F64", [2**61], 0, 8)}), bytes(8))
files["huge_shape_lying"] = raw(hdr({"a": entry("F32", [2**40], 0, 4)}), f32[:4])
files["huge_offsets"] = raw(hdr({"a": entry("U8", [1], 2**62, 2**62 + 1)}), b"\0")
files["negative_dim"] = raw(hdr({"a": entry("F32", [-1], 0, 4)}), f32[:4])
files["dup_keys"] = raw('{"a":' + json.dumps(entry("F32", [1], 0, 4)) + ',"a":' +
                        json.dumps(entry("F32", [1], 4, 8)) + "}", f32[:8])
files["dup_field"] = raw('{"a":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}', f32[:4])
files["non_object_array"] = raw("[1,2,3]")
files["non_object_string"] = raw('"x"')
files["bad_metadata_int"] = raw(hdr({"__metadata__": {"n": 1}}))
files["bad_metadata_nested"] = raw(hdr({"__metadata__": {"n": {"x": "y"}}}))
files["unknown_dtype"] = raw(hdr({"a": entry("F33", [1], 0, 4)}), f32[:4])
files["f4_odd_count"] = raw(hdr({"a": entry("F4", [3], 0, 2)}), b"\0\0")
files["bad_utf8"] = raw(b'{"\xff\xfe":{}}')
files["nul_padding"] = raw(b"{}\0\0\0\0\0\0")
files["deep_nesting"] = raw("{\"a\":" + "[" * 300 + "]" * 300 + "}")

os.makedirs(OUT, exist_ok=True)
for name, blob in sorted(files.items()):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(blob)
print(f"{len(files)} files in {OUT}")

index = {
    "valid_two_shards": {"metadata": {"total_size": 28},
                         "weight_map": {"a.weight": "model-00001-of-00002.safetensors",
                                        "a.bias": "model-00001-of-00002.safetensors",
                                        "b.weight": "model-00002-of-00002.safetensors"}},
    "valid_no_metadata": {"weight_map": {"x": "m.safetensors"}},
    "valid_null_metadata": {"metadata": None, "weight_map": {}},
    "traversal": {"weight_map": {"a": "../m.safetensors"}},
    "absolute": {"weight_map": {"a": "/etc/passwd"}},
    "subdir": {"weight_map": {"a": "sub/m.safetensors"}},
    "backslash": {"weight_map": {"a": "..\\m"}},
    "dotdot": {"weight_map": {"a": ".."}},
    "empty_name": {"weight_map": {"a": ""}},
    "non_string": {"weight_map": {"a": 3}},
    "map_array": {"weight_map": ["a"]},
    "no_map": {"metadata": {}},
    "metadata_string": {"metadata": "x", "weight_map": {}},
    "array": [],
}
os.makedirs(OUT_INDEX, exist_ok=True)
for name, obj in sorted(index.items()):
    with open(os.path.join(OUT_INDEX, name), "w") as f:
        json.dump(obj, f)
for name, text in [("dup_tensor", '{"weight_map": {"a": "x", "a": "y"}}'),
                   ("truncated", '{"weight_map": {"a": "x"'),
                   ("many_shards", json.dumps({"weight_map": {f"t{i}": f"s{i}" for i in range(80)}}))]:
    with open(os.path.join(OUT_INDEX, name), "w") as f:
        f.write(text)
print(f"{len(index) + 3} files in {OUT_INDEX}")
