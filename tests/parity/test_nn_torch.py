#!/usr/bin/python3
"""PyTorch parity for lib/nn: every op on random inputs (fixed seeds, odd sizes).

    test_nn_torch.py NN_HARNESS

For each case it draws inputs with torch, runs the C op through the harness
(tests/parity/nn_harness.c: raw float32 in, raw float32 out), computes the same
op with PyTorch (the oracle) and compares. It prints the worst absolute and
relative error per op and exits 1 if any op is above its tolerance, 77 (skip)
if torch is missing.

Error measure: |c - t| / max(1, |t|), i.e. absolute for values below 1 and
relative above. Inputs are scaled as in real models (PyTorch's default Linear
init, unit-scale activations) so outputs are O(1) and this is effectively a
relative error. Tolerances, and why:
  * 1e-5 for linear and attention (oracles in float64): float32 dot products of length <= 1024 (and
    the two GEMMs plus softmax of attention) carry ~sqrt(k) * 2^-24 relative
    rounding on each side, i.e. a few 1e-7 .. 1e-6; 1e-5 leaves room for the
    different summation orders of OpenBLAS and torch's kernels while still
    catching any wrong index, stride, mask or scale (those give errors ~1e-1).
  * 1e-5 for layernorm/rmsnorm/softmax: one reduction per row (we accumulate
    in double; torch in float) then one or two roundings per element. The
    layernorm and rmsnorm oracles run in float64 (torch's float32 layer_norm
    is itself ~1e-5 off the exact result at n=1, printed as "layernorm*").
  * 1e-5 for the activations: libm's and torch's erf/exp/tanh differ by an
    ulp or two; torch's 1 + erf(x) form loses bits for x << 0 but the
    absolute error there is < 1e-7.
  * 1e-5 for RoPE given the same inv_freq: the angle pos * inv_freq is the
    same float32 product on both sides; cos/sin differ by <= 1 ulp.
  * 1e-6 relative for inv_freq: torch's float32 pow kernel and libm's pow
    may differ by an ulp (6e-8); the llama3 blend adds a few roundings.
    (At position p an inv_freq ulp moves the angle by p * ulp; both sides
    carry that float32 limit, so RoPE itself is compared with one inv_freq.)
"""
import math
import subprocess
import sys

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:  # the oracle is missing: skip, saying why
    print(f"SKIP: PyTorch/numpy not importable by {sys.executable}: {e}")
    sys.exit(77)

SENTINEL = np.float32(12345.0)
HARNESS = sys.argv[1] if len(sys.argv) > 1 else None
if not HARNESS:
    print("usage: test_nn_torch.py NN_HARNESS")
    sys.exit(2)

torch.set_num_threads(1)
worst = {}   # op -> [max_norm_err, max_abs_err, max_rel_err(|t| >= 1e-2)]
TOL = {
    "linear": 1e-5, "layernorm": 1e-5, "rmsnorm": 1e-5, "softmax": 1e-5,
    "gelu_erf": 1e-5, "gelu_tanh": 1e-5, "quick_gelu": 1e-5, "silu": 1e-5,
    "relu": 1e-5, "swiglu": 1e-5, "attention": 1e-5, "rope": 1e-5,
    "inv_freq": 1e-6,
    # baselines printed for scale, not checked:
    "linear*": math.inf,     # ours against torch's float32 F.linear (same OpenBLAS sgemm)
    "layernorm*": math.inf,  # torch's float32 layer_norm against the float64 oracle
}
failures = []


_proc = None


def run(op, args, *inputs):
    """One request to the harness process (started once): a text line, the raw inputs."""
    global _proc
    if _proc is None:
        _proc = subprocess.Popen([HARNESS], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    line = " ".join([op] + [str(a) for a in args]) + "\n"
    data = b"".join(np.ascontiguousarray(a).tobytes() for a in inputs)
    try:
        _proc.stdin.write(line.encode() + data)
        _proc.stdin.flush()
        head = _proc.stdout.readline().split()
    except BrokenPipeError:
        head = []
    if len(head) != 2 or head[0] != b"OK":
        raise SystemExit(f"harness failed on {line.strip()} (exit {_proc.wait()}; see stderr)")
    n = int(head[1])
    out = _proc.stdout.read(4 * n)
    return np.frombuffer(out, dtype="<f4").copy()


def compare(op, what, got, ref, rel=False):
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if got.shape != ref.shape:
        failures.append(f"{op} {what}: shape {got.shape} != {ref.shape}")
        return
    d = np.abs(got - ref)
    if not np.all(np.isfinite(got)):
        failures.append(f"{op} {what}: non-finite output")
        return
    norm = d / (np.abs(ref) if rel else np.maximum(1.0, np.abs(ref)))
    big = np.abs(ref) >= 1e-2
    relerr = (d[big] / np.abs(ref[big])).max() if big.any() else 0.0
    w = worst.setdefault(op, [0.0, 0.0, 0.0])
    w[0] = max(w[0], float(norm.max(initial=0.0)))
    w[1] = max(w[1], float(d.max(initial=0.0)))
    w[2] = max(w[2], float(relerr))
    if norm.max(initial=0.0) > TOL[op]:
        failures.append(f"{op} {what}: error {norm.max():.3g} > {TOL[op]:.0e}")


def rnd(*shape, scale=1.0):
    return (torch.rand(*shape, dtype=torch.float32) * 2 - 1) * scale


def check_padding(op, what, out, rows, width, ld):
    pad = out.reshape(rows, ld)[:, width:]
    if pad.size and not np.all(pad == SENTINEL):
        failures.append(f"{op} {what}: wrote into the padding of a strided view")


# ---- linear: F.linear, weights [out, in] as nn.Linear stores them
torch.manual_seed(1)
for (m, k, n) in [(1, 1, 1), (1, 768, 1024), (7, 13, 5), (33, 129, 65), (64, 257, 300), (5, 1024, 3)]:
    for bias in (0, 1):
        for pad in ((0, 0), (3, 5)):
            ldx, ldy = k + pad[0], n + pad[1]
            bound = 1 / math.sqrt(k)
            xw = rnd(m, ldx)
            w = rnd(n, k, scale=bound)
            b = rnd(n, scale=bound)
            ins = [xw.numpy(), w.numpy()] + ([b.numpy()] if bias else [])
            out = run("linear", [m, k, n, bias, ldx, ldy], *ins)
            what = f"m={m} k={k} n={n} bias={bias} ldx={ldx} ldy={ldy}"
            # oracle in float64: Debian's torch is built with BLAS_INFO=generic and
            # calls the same OpenBLAS sgemm, so its float32 F.linear is (and is
            # printed as "linear*") bit-identical to ours, checking only layout
            ref = F.linear(xw[:, :k].double(), w.double(), b.double() if bias else None)
            compare("linear", what, out.reshape(m, ldy)[:, :n], ref.numpy())
            f32 = F.linear(xw[:, :k], w, b if bias else None)
            compare("linear*", what, out.reshape(m, ldy)[:, :n], f32.numpy())
            check_padding("linear", what, out, m, n, ldy)

# ---- layernorm (F.layer_norm) and rmsnorm (formula in float64)
torch.manual_seed(2)
for (m, n) in [(1, 1), (3, 7), (5, 768), (2, 1023), (9, 4096)]:
    for affine in (0, 1):
        x = rnd(m, n, scale=3.0) + 0.5
        g = rnd(n) + 1.0
        b = rnd(n)
        extra = [g.numpy(), b.numpy()] if affine else []
        out = run("layernorm", [m, n, repr(1e-5), affine], x.numpy(), *extra)
        # oracle: F.layer_norm in float64 on the same float32 inputs. torch's own
        # float32 result is printed as a baseline: at n=1 its rounded mean leaves
        # x - mean ~ 1 ulp, amplified by 1/sqrt(eps), ~1e-5 off the exact 0.
        ref = F.layer_norm(x.double(), (n,), g.double() if affine else None,
                           b.double() if affine else None, eps=1e-5)
        compare("layernorm", f"m={m} n={n} affine={affine}", out.reshape(m, n), ref.numpy())
        f32 = F.layer_norm(x, (n,), g if affine else None, b if affine else None, eps=1e-5)
        compare("layernorm*", f"m={m} n={n} affine={affine}", f32.numpy(), ref.numpy())

        eps = 1e-6
        out = run("rmsnorm", [m, n, repr(eps), affine], x.numpy(), *([g.numpy()] if affine else []))
        xd = x.double()
        ref = xd / torch.sqrt(xd.pow(2).mean(-1, keepdim=True) + eps)
        if affine:
            ref = ref * g.double()
        compare("rmsnorm", f"m={m} n={n} weighted={affine}", out.reshape(m, n), ref.numpy())

# ---- softmax
torch.manual_seed(3)
for (m, n) in [(1, 1), (4, 5), (3, 1000), (16, 77), (2, 4097)]:
    x = rnd(m, n, scale=10.0)
    x[0, 0] += 500.0  # overflow unless the max is subtracted
    out = run("softmax", [m, n], x.numpy())
    compare("softmax", f"m={m} n={n}", out.reshape(m, n), F.softmax(x, dim=-1).numpy())

# ---- activations
torch.manual_seed(4)
acts = {
    "gelu_erf": lambda t: F.gelu(t),
    "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"),
    "quick_gelu": lambda t: t * torch.sigmoid(1.702 * t),
    "silu": F.silu,
    "relu": F.relu,
}
for n in (1, 7, 1000, 65537):
    x = rnd(n, scale=8.0)
    for name, fn in acts.items():
        out = run(name, [n], x.numpy())
        compare(name, f"n={n}", out, fn(x).numpy())
    up = rnd(n, scale=2.0)
    out = run("swiglu", [n], x.numpy(), up.numpy())
    compare("swiglu", f"n={n}", out, (F.silu(x) * up).numpy())


# ---- attention: SDPA semantics; grouped-query via repeat_interleave
def torch_attention(q, k, v, causal, scale):
    """q [1, nh, t, d]; k, v [1, nh, t, d] (already repeated). float64 oracle."""
    if hasattr(F, "scaled_dot_product_attention"):  # torch >= 2.0
        return F.scaled_dot_product_attention(q, k, v, is_causal=bool(causal), scale=scale)
    # torch 1.13 (Debian 12) has no SDPA: the same definition, written out in float64
    qd, kd, vd = q.double(), k.double(), v.double()
    s = qd @ kd.transpose(-1, -2) * scale
    if causal:
        t = s.shape[-1]
        s = s.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
    return torch.softmax(s, dim=-1) @ vd


torch.manual_seed(5)
for (t, nh, nkv, d) in [(1, 1, 1, 1), (5, 2, 2, 3), (17, 4, 2, 8), (33, 6, 1, 16),
                        (77, 4, 4, 64), (40, 8, 2, 32), (129, 2, 1, 24), (300, 4, 2, 32)]:
    for causal in (0, 1):
        ld = (nh + 2 * nkv) * d + 1
        ldo = nh * d + 2
        qkv = rnd(t, ld, scale=2.0)
        scale = 1.0 / math.sqrt(d)
        out = run("attention", [t, nh, nkv, d, causal, repr(scale)], qkv.numpy())
        q = qkv[:, : nh * d].reshape(t, nh, d).transpose(0, 1)[None]
        k = qkv[:, nh * d:(nh + nkv) * d].reshape(t, nkv, d).transpose(0, 1)[None]
        v = qkv[:, (nh + nkv) * d:(nh + 2 * nkv) * d].reshape(t, nkv, d).transpose(0, 1)[None]
        k = k.repeat_interleave(nh // nkv, dim=1)
        v = v.repeat_interleave(nh // nkv, dim=1)
        ref = torch_attention(q, k, v, causal, scale)[0].transpose(0, 1).reshape(t, nh * d)
        what = f"t={t} heads={nh} kv={nkv} d={d} causal={causal}"
        compare("attention", what, out.reshape(t, ldo)[:, : nh * d], ref.numpy())
        check_padding("attention", what, out, t, nh * d, ldo)


# ---- rotary embeddings: inv_freq (default and llama3) and HF's rotate_half application
def default_inv_freq(theta, dim):
    # as transformers' default RoPE: float32 exponents, float32 pow
    return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


def llama3_inv_freq(theta, dim, factor, low, high, orig):
    """Llama 3.1 frequency scaling, written here from its definition:
    wavelengths above orig/low are slowed by `factor`, below orig/high kept,
    in between interpolated with s = (orig / wavelen - low) / (high - low)."""
    f = default_inv_freq(theta, dim)
    out = f.clone()
    for i in range(f.shape[0]):
        fi = float(f[i])
        wl = 2 * math.pi / fi
        if wl < orig / high:
            out[i] = fi
        elif wl > orig / low:
            out[i] = fi / factor
        else:
            s = (orig / wl - low) / (high - low)
            out[i] = (1 - s) * fi / factor + s * fi
    return out


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


for (d, theta, sc) in [(64, 10000.0, None), (128, 500000.0, (8.0, 1.0, 4.0, 8192)),
                       (64, 500000.0, (32.0, 1.0, 4.0, 8192)), (128, 1000000.0, None),
                       (80, 10000.0, (8.0, 1.0, 4.0, 8192))]:
    args = [d, repr(theta)] + (list(map(repr, sc[:3])) + [sc[3]] if sc else ["0.0", "1.0", "4.0", "8192"])
    got = run("inv_freq", args)
    ref = llama3_inv_freq(theta, d, *sc) if sc else default_inv_freq(theta, d)
    compare("inv_freq", f"d={d} theta={theta} scaling={sc}", got, ref.numpy(), rel=True)

torch.manual_seed(6)
for (t, nh, d, theta, pad) in [(1, 1, 2, 10000.0, 0), (9, 3, 8, 10000.0, 4), (20, 4, 64, 10000.0, 0),
                               (33, 2, 128, 500000.0, 3), (5, 2, 256, 1000000.0, 0)]:
    ldx = nh * d + pad
    x = rnd(t, ldx)
    pos = torch.randint(0, 4096, (t,), dtype=torch.int32)
    pos[0] = 0
    inv = default_inv_freq(theta, d)
    out = run("rope", [t, nh, d, ldx], x.numpy(), pos.numpy(), inv.numpy())
    # HF: freqs = inv_freq @ positions in float32, emb = cat(freqs, freqs), q*cos + rotate_half(q)*sin
    freqs = pos.float()[:, None] * inv[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]
    xh = x[:, : nh * d].reshape(t, nh, d)
    ref = (xh * cos + rotate_half(xh) * sin).reshape(t, nh * d)
    o = out.reshape(t, ldx)
    what = f"t={t} heads={nh} d={d} theta={theta} ldx={ldx}"
    compare("rope", what, o[:, : nh * d], ref.numpy())
    if pad and not np.array_equal(o[:, nh * d:], x[:, nh * d:].numpy()):
        failures.append(f"rope {what}: wrote into the padding of a strided view")

_proc.stdin.close()
if _proc.wait() != 0:
    failures.append(f"harness exited with status {_proc.returncode}")

print(f"{'op':<12} {'worst |err|/max(1,|ref|)':>26} {'worst abs':>11} {'worst rel (|ref|>=1e-2)':>25} {'tol':>7}")
for op, (n, a, r) in worst.items():
    print(f"{op:<12} {n:>26.3g} {a:>11.3g} {r:>25.3g} {TOL[op]:>7.0e}")
if failures:
    print("FAIL:")
    for f in failures:
        print("  " + f)
    sys.exit(1)
print("(linear* = ours against torch's float32 F.linear, which calls the same OpenBLAS sgemm;")
print(" layernorm* = torch's own float32 F.layer_norm against the float64 oracle; both for scale)")
print(f"nn-torch: all {len(worst) - 2} ops within tolerance (torch {torch.__version__})")
