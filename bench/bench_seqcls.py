#!/usr/bin/python3
"""Tokens/s of the seqcls kind (FP32 and BF16) vs PyTorch on a Qwen3-0.6B-shaped classifier.

    /usr/bin/python3 bench/bench_seqcls.py BUILD_DIR [--layers 28] [--threads 2]
        [--lengths 128,512,2048] [--batch-tokens 2048] [--repeat 2] [--model DIR]

Writes (or reuses, with --model) a random Qwen3ForSequenceClassification with
Qwen3-0.6B's shape (hidden 1024, intermediate 3072, 16 heads, 8 kv heads,
head_dim 128, vocab 151936) but only --layers layers, F32 weights. For each
sequence length L it scores a batch of batch_tokens / L items of L random
tokens:
  - rewardd: BUILD_DIR/tests/parity/seqcls-harness (rwd_model_run: packed
    batch, OpenBLAS with --threads threads), best of --repeat runs, in FP32
    and with --precision bf16 (oneDNN BF16 GEMMs, FP32 accumulation);
  - PyTorch (Debian python3-torch, torch.set_num_threads(--threads)): a
    batched float32 forward [B, L, H] with transformers' eager arithmetic
    (every layer over every token, softmax over the masked square), the same
    weights, best of --repeat runs.
Both compute in float32. Prints one line per length and a markdown table;
--write also puts the table into its own marked section of bench/RESULTS.md
(other sections are left alone).
The harness also prints its logits, compared here with PyTorch's (the FP32
column; BF16 has its own bound, tests/parity/test_bf16_torch.py) so the
timing compares equal work. Achieved GFLOP/s counts the work PyTorch does
(every layer over every token), set beside the sgemm and oneDNN BF16 rates
of the model's largest GEMM (bench-harness gemm) measured in the same run.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "parity"))
import seqcls_ref  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results_md import replace_section, start_load  # noqa: E402

BEGIN = "<!-- bench_seqcls.py: begin -->"
END = "<!-- bench_seqcls.py: end -->"


def torch_forward(m, ids, rope):
    """Batched eager forward, [B, L] ids of equal length -> [B, num_labels] (last token)."""
    w = m.w
    B, T = ids.shape
    cos, sin = rope
    x = w["model.embed_tokens.weight"][ids]                     # [B, T, H]
    mask = torch.full((T, T), float("-inf")).triu(1)
    G = m.nH // m.nKV

    def rms(t, name):
        var = t.pow(2).mean(-1, keepdim=True)
        return w[name] * (t * torch.rsqrt(var + m.eps))

    def rot(t):
        h = t.shape[-1] // 2
        return torch.cat((-t[..., h:], t[..., :h]), dim=-1)

    for li in range(m.L):
        p = f"model.layers.{li}."
        n = rms(x, p + "input_layernorm.weight")
        q = (n @ w[p + "self_attn.q_proj.weight"].t()).view(B, T, m.nH, m.hd)
        k = (n @ w[p + "self_attn.k_proj.weight"].t()).view(B, T, m.nKV, m.hd)
        v = (n @ w[p + "self_attn.v_proj.weight"].t()).view(B, T, m.nKV, m.hd)
        q = rms(q, p + "self_attn.q_norm.weight").transpose(1, 2)
        k = rms(k, p + "self_attn.k_norm.weight").transpose(1, 2)
        v = v.transpose(1, 2)
        q = q * cos + rot(q) * sin
        k = k * cos + rot(k) * sin
        k = k.repeat_interleave(G, dim=1)
        v = v.repeat_interleave(G, dim=1)
        s = (q @ k.transpose(2, 3)) * (m.hd ** -0.5) + mask
        a = torch.softmax(s, dim=-1)
        o = (a @ v).transpose(1, 2).reshape(B, T, m.nH * m.hd)
        x = x + o @ w[p + "self_attn.o_proj.weight"].t()
        n = rms(x, p + "post_attention_layernorm.weight")
        g = n @ w[p + "mlp.gate_proj.weight"].t()
        u = n @ w[p + "mlp.up_proj.weight"].t()
        x = x + (torch.nn.functional.silu(g) * u) @ w[p + "mlp.down_proj.weight"].t()
    x = rms(x, "model.norm.weight")
    return x[:, -1] @ w["score.weight"].t()


def fwd_flops(m, L):
    """FLOPs of one L-token sequence through every layer (PyTorch's work): the
    projections (2 per weight per token) and the attention square."""
    H, I, hd = m.H, m.cfg["intermediate_size"], m.hd
    proj = H * m.nH * hd + 2 * H * m.nKV * hd + m.nH * hd * H + 3 * H * I
    attn = 2 * L * m.nH * hd  # QK^T and AV per token, over all L keys
    return m.L * L * 2.0 * (proj + attn)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build_dir")
    ap.add_argument("--layers", type=int, default=28)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lengths", default="128,512,2048")
    ap.add_argument("--batch-tokens", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--model", default=None, help="reuse this model folder")
    ap.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = ap.parse_args()
    harness = os.path.join(args.build_dir, "tests", "parity", "seqcls-harness")
    tmp = None
    folder = args.model
    if folder is None or not os.path.exists(os.path.join(folder, "config.json")):
        if folder is None:
            tmp = tempfile.TemporaryDirectory(prefix="bench-seqcls-")
            folder = tmp.name
        subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_tiny_models.py"),
                        "qwen3", "0.6b", folder, "--layers", str(args.layers), "--seed", "3"],
                       check=True)
    torch.set_num_threads(args.threads)
    m = seqcls_ref.Model(folder)
    assert m.L == args.layers, f"{folder} has {m.L} layers, not {args.layers}"
    gen = torch.Generator().manual_seed(5)
    rows = []
    for L in [int(x) for x in args.lengths.split(",")]:
        B = max(1, args.batch_tokens // L)
        # below every special id (pad 151643): no item ends in pad
        ids = torch.randint(0, 150000, (B, L), generator=gen)
        # ours, FP32 then BF16
        inp = "".join(json.dumps(r) + "\n" for r in ids.tolist())

        def ours_run(precision):
            p = subprocess.run([harness, folder, "--threads", str(args.threads),
                                "--repeat", str(args.repeat), "--max-batch-tokens", str(B * L),
                                "--max-tokens", str(max(L, 4096)), "--precision", precision],
                               input=inp, capture_output=True, text=True)
            if p.returncode:
                if precision == "bf16":
                    print("BF16 refused:", p.stderr.strip()[-300:])
                    return None, None
                sys.exit(f"harness failed: {p.stderr}")
            lines = [json.loads(x) for x in p.stdout.splitlines()]
            return [x["scores"] for x in lines[1:-1]], min(lines[-1]["seconds"])

        ours, t_ours = ours_run("fp32")
        ours_bf, t_bf = ours_run("bf16")
        # PyTorch
        pos = torch.arange(L, dtype=torch.float32)
        fr = pos[:, None] * m.inv_freq[None, :]
        emb = torch.cat((fr, fr), dim=-1)
        rope = (emb.cos(), emb.sin())
        times = []
        with torch.no_grad():
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                ref = torch_forward(m, ids, rope)
                times.append(time.perf_counter() - t0)
        t_torch = min(times)
        ref = ref.tolist()
        flat = [v for r in ref for v in r]
        scale = math.sqrt(sum(v * v for v in flat) / len(flat))
        err = max(abs(a - b) / max(abs(b), scale) for o, r in zip(ours, ref) for a, b in zip(o, r))
        flops = B * fwd_flops(m, L)
        row = (L, B, B * L / t_ours, B * L / t_torch, t_torch / t_ours, err,
               (B * L / t_bf) if t_bf else None, flops / t_ours / 1e9)
        rows.append(row)
        print(f"L={L:5d} B={B:3d}: rewardd FP32 {row[2]:8.0f} tok/s ({row[7]:.1f} GFLOP/s), BF16 "
              f"{'n/a' if t_bf is None else '%.0f' % row[6]} tok/s, PyTorch {row[3]:8.0f} tok/s, "
              f"ratio {row[4]:.2f}x, max rel diff {err:.1e}", flush=True)
    gemm = json.loads(subprocess.run(
        [os.path.join(args.build_dir, "bench", "bench-harness"), "gemm", str(args.threads),
         str(min(args.batch_tokens, 2048)), str(m.cfg["intermediate_size"]), str(m.H), "3"],
        check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    load_end = " ".join(open("/proc/loadavg").read().split()[:3])
    lines = [
        BEGIN,
        "## seqcls: Qwen3-0.6B-shaped sequence classifier, tokens/s vs PyTorch",
        "",
        f"Generated by `bench/bench_seqcls.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
        f"({os.cpu_count()} cores, load average {start_load()} at start, {load_end} at the end).",
        "",
        f"- Model: random Qwen3ForSequenceClassification with Qwen3-0.6B's shape (hidden 1024, "
        f"intermediate 3072, 16 heads / 8 kv heads, head_dim 128, vocab 151936) but "
        f"**{args.layers} layers** (of 28), F32 weights, 1 label.",
        f"- Batch: {args.batch_tokens} tokens per forward pass (batch_tokens / L items of L random "
        f"tokens), best of {args.repeat}; {args.threads} threads on both sides.",
        "- rewardd: `seqcls-harness` (rwd_model_run: packed batch, OpenBLAS). It drops work "
        "PyTorch does: the last layer computes queries/attention/MLP only for the pooled "
        "token, and causal attention skips the masked key blocks.",
        "- PyTorch: Debian python3-torch "
        f"{torch.__version__}, batched eager float32 forward with transformers' arithmetic "
        "(every token through every layer, masked full-square softmax); the same weights. "
        "Logits agree to the 'max rel diff' column.",
        f"- Roofline on the same cores, the gate/up GEMM [{min(args.batch_tokens, 2048)}x{m.H}]·"
        f"[{m.H}x{m.cfg['intermediate_size']}]: sgemm {gemm['sgemm_gflops']} GFLOP/s, oneDNN BF16 {gemm['onednn_bf16_gflops']} "
        "GFLOP/s. 'FP32 GFLOP/s' counts PyTorch's work (every token through every layer, the full "
        "attention square) over rewardd's FP32 time, so skipped work shows as a higher rate.",
        "",
        "| seq len | items/batch | rewardd FP32 tok/s | FP32 GFLOP/s | % of sgemm | rewardd BF16 tok/s | "
        "PyTorch FP32 tok/s | FP32 / PyTorch | BF16 / PyTorch | FP32 max rel diff |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        bf = "n/a" if r[6] is None else f"{r[6]:.0f}"
        vb = "n/a" if r[6] is None else f"{r[6] / r[3]:.2f}x"
        lines.append(f"| {r[0]} | {r[1]} | {r[2]:.0f} | {r[7]:.1f} | "
                     f"{100 * r[7] / gemm['sgemm_gflops']:.0f}% | {bf} | {r[3]:.0f} | {r[4]:.2f}x | {vb} | {r[5]:.1e} |")
    lines += [
        "",
        "p50/p99 latency through `/get_reward` at concurrency 1 and 32: the bench_get_reward.py section below.",
        "",
        f"Rerun: `/usr/bin/python3 bench/bench_seqcls.py BUILD_DIR --layers {args.layers} "
        f"--threads {args.threads} --batch-tokens {args.batch_tokens} --repeat {args.repeat} --write`",
        END,
    ]
    print()
    print("\n".join(lines))
    if args.write:
        replace_section("\n".join(lines), BEGIN, END)
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
