#!/usr/bin/python3
"""Parity of the `mlp` kind with PyTorch, through `rewardd score`.

    test_mlp_torch.py REWARDD_BINARY SOURCE_ROOT

1. The LAION aesthetic head fixture (../shared/fixtures/aesthetic): 1,000
   random unit vectors, scored by rewardd and by a torch.nn.Linear stack
   built in this script from the same file; worst errors printed.
2. Heads written here with random weights: a folder with config.json
   (activations, id2label names, several outputs) in F32 and BF16.
Exit 0 pass, 1 fail, 77 skip (torch missing).
"""
import json
import os
import subprocess
import sys
import tempfile

try:
    import torch
except ImportError:
    print("SKIP: PyTorch (Debian python3-torch) is not installed")
    sys.exit(77)

REWARDD, ROOT = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(ROOT, "tools"))
import safetensors_io  # noqa: E402

# |ours - ref| <= ATOL + RTOL * |ref|: float32 GEMMs summed in another order
# differ by a few ulps of the largest partial sums, so outputs near zero need
# an absolute floor; the outputs here are O(1).
RTOL, ATOL = 1e-5, 1e-5
failures = []


def run_scorer(model, vectors, options=None, batch=64, expect_rc=0):
    lines = "".join(json.dumps({"id": i, "embedding": v.tolist()}) + "\n"
                    for i, v in enumerate(vectors))
    cmd = [REWARDD, "score", "--model", model, "--batch", str(batch)]
    if options:
        cmd += ["--options", json.dumps(options)]
    out = subprocess.run(cmd, input=lines, capture_output=True, text=True, timeout=300)
    if out.returncode != expect_rc:
        raise SystemExit(f"rewardd score failed ({out.returncode}): {out.stderr}")
    rows = [json.loads(l) for l in out.stdout.splitlines()]
    assert [r["id"] for r in rows] == list(range(len(vectors))), "ids out of order"
    return rows


def compare(name, ours, ref):
    ours = torch.tensor(ours, dtype=torch.float64)
    ref = ref.double()
    abs_err = (ours - ref).abs().max().item()
    rel_err = ((ours - ref).abs() / ref.abs().clamp_min(1e-30)).max().item()
    excess = ((ours - ref).abs() - (ATOL + RTOL * ref.abs())).max().item()
    print(f"{name}: n={ref.shape[0]} worst abs error {abs_err:.3g}, worst rel error {rel_err:.3g}")
    if excess > 0:
        failures.append(f"{name}: error exceeds {ATOL} + {RTOL}*|ref| by {excess:.3g}")


def linear_stack(tensors, prefixes, acts):
    def f(x):
        for p, a in zip(prefixes, acts):
            w = tensors[p + ".weight"].float()
            b = tensors.get(p + ".bias")
            x = torch.nn.functional.linear(x, w, None if b is None else b.float())
            x = {"none": lambda t: t, "relu": torch.relu,
                 "gelu": torch.nn.functional.gelu, "silu": torch.nn.functional.silu}[a](x)
        return x
    return f


torch.manual_seed(1234)

# 1. the real aesthetic head
fixture = os.path.join(ROOT, "..", "shared", "fixtures", "aesthetic",
                       "aesthetic-linearMSE.safetensors")
if os.path.exists(fixture):
    t = safetensors_io.load(fixture)
    prefixes = ["layers.0", "layers.2", "layers.4", "layers.6", "layers.7"]
    head = linear_stack(t, prefixes, ["none"] * 5)
    x = torch.randn(1000, 768)
    x = x / x.norm(dim=1, keepdim=True)
    with torch.no_grad():
        ref = head(x)[:, 0]
    rows = run_scorer(fixture, x)
    compare("aesthetic head, 1000 unit vectors", [r["scores"]["score"] for r in rows], ref)
else:
    print("SKIP part 1: ../shared/fixtures/aesthetic is absent")

# 2. random heads in a folder with config.json
with tempfile.TemporaryDirectory() as d:
    for dtype in (torch.float32, torch.bfloat16):
        folder = os.path.join(d, str(dtype).split(".")[1])
        os.makedirs(folder)
        dims = [37, 64, 33, 3]
        tensors = {}
        for i in range(3):
            tensors[f"head.{i}.weight"] = (torch.randn(dims[i + 1], dims[i]) / dims[i] ** 0.5).to(dtype)
            tensors[f"head.{i}.bias"] = torch.randn(dims[i + 1]).to(dtype)
        safetensors_io.save(tensors, os.path.join(folder, "model.safetensors"), {"format": "pt"})
        labels = ["helpful", "correct", "safe"]
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump({"rewardd_kind": "mlp", "activations": ["relu", "gelu", "none"],
                       "id2label": {str(i): l for i, l in enumerate(labels)}}, f)
        # the reference computes in float32 on the stored (possibly bf16-rounded) weights
        head = linear_stack(tensors, ["head.0", "head.1", "head.2"], ["relu", "gelu", "none"])
        x = torch.randn(300, 37)
        with torch.no_grad():
            ref = head(x)
        for batch in (1, 7, 64):
            rows = run_scorer(folder, x, batch=batch)
            for j, l in enumerate(labels):
                compare(f"random head {folder.split('/')[-1]} batch {batch} '{l}'",
                        [r["scores"][l] for r in rows], ref[:, j])

    # a wrong-length item is an error line, never a score
    rows = run_scorer(os.path.join(d, "float32"), [torch.zeros(5)], expect_rc=3)
    if "error" not in rows[0] or "scores" in rows[0]:
        failures.append(f"wrong-length embedding was not an error: {rows[0]}")
    else:
        print("wrong-length embedding ->", rows[0]["error"]["message"])

if failures:
    print("FAIL:\n  " + "\n  ".join(failures))
    sys.exit(1)
print("PASS")
