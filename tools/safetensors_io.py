"""Minimal safetensors writer/reader for the test and tool scripts.

Debian 12 packages no `safetensors` module, so the Python side of the tests
writes checkpoints with this file, following the format as the reference
writer lays it out (huggingface/safetensors `tensor.rs` prepare()): tensors
sorted by descending dtype alignment then name, back to back, the JSON
header padded with spaces to a multiple of 8. Values come from torch tensors;
this module only serialises them.

Run with Debian's /usr/bin/python3 (needs torch).
"""
import json
import struct

import torch

_DTYPES = {
    torch.float32: ("F32", 4),
    torch.float16: ("F16", 2),
    torch.bfloat16: ("BF16", 2),
    torch.int64: ("I64", 8),
    torch.int32: ("I32", 4),
    torch.uint8: ("U8", 1),
}
_FROM_NAME = {v[0]: k for k, v in _DTYPES.items()}
# the reference writer's "increasing alignment order" rank, for sorting
_RANK = {"U8": 4, "I32": 15, "F16": 13, "BF16": 14, "F32": 17, "I64": 20}


def _raw_bytes(t):
    t = t.detach().contiguous().cpu()
    # view as bytes through an integer type of the same width: works for bf16 too
    width = _DTYPES[t.dtype][1]
    as_int = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[width]
    return t.view(as_int).numpy().tobytes() if t.numel() else b""


def save(tensors, path, metadata=None):
    """Write {name: torch.Tensor} to `path` as the reference writer would."""
    items = sorted(tensors.items(),
                   key=lambda kv: (-_RANK[_DTYPES[kv[1].dtype][0]], kv[0]))
    header, blobs, off = {}, [], 0
    for name, t in items:
        dname, _ = _DTYPES[t.dtype]
        b = _raw_bytes(t)
        header[name] = {"dtype": dname, "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load(path):
    """Read a safetensors file into {name: torch.Tensor} (for checks)."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = _FROM_NAME[info["dtype"]]
        b, e = info["data_offsets"]
        buf = bytearray(data[base + b:base + e])
        width = _DTYPES[dt][1]
        as_int = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[width]
        t = torch.frombuffer(buf, dtype=as_int) if buf else torch.empty(0, dtype=as_int)
        out[name] = t.view(dt).reshape(info["shape"])
    return out
