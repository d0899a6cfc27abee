#!/usr/bin/python3
"""Images/s of the ViT-B/32 image tower: rewardd's clip kind (FP32 and BF16) vs PyTorch and ONNX Runtime.

    /usr/bin/python3 bench/bench_clip_vision.py BUILD_DIR [--threads 2] [--iters N] [--write]

Both run the same random weights (tools/make_tiny_models.py clip base, cached
in tests/parity/.cache) on the same random preprocessed pixels, float32, with
the same thread count: ours through `bench-harness clip` (lib/models/clip.c
over OpenBLAS in FP32, and with options.precision "bf16" over oneDNN BF16
GEMMs with FP32 accumulation; threads set with rwd_nn_threading_init),
PyTorch (Debian
python3-torch) through tests/parity/clip_ref.py's functional CLIP in float32
under torch.inference_mode with torch.set_num_threads; ONNX Runtime (npm
onnxruntime-node, CPU execution provider, intraOpNumThreads = threads,
graph optimisation "all") on that same PyTorch graph exported with
torch.onnx.export (opset 14, cached beside the weights) through
bench/ort_clip_vision.js. The three are measured alternately per batch size
so they see the same machine load. Also measured:
this machine's sgemm GFLOP/s on the tower's largest GEMM shape at batch 32
(fc1: [32*50, 768] x [3072, 768]^T) and the FMA peak, to put the achieved
GFLOP/s in context (bench/roofline.py has the full roofline). --write replaces the "clip vision tower"
section of bench/RESULTS.md (other sections are left alone).
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "parity"))

import torch  # noqa: E402

import clip_ref  # noqa: E402
from test_clip_torch import base_model  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results_md import replace_section, start_load  # noqa: E402

BEGIN = "<!-- clip-vision:begin (bench/bench_clip_vision.py) -->"
END = "<!-- clip-vision:end -->"


def vit_flops(c, proj):
    """Multiply-adds x 2 of one image through the tower (GEMMs + attention)."""
    H, I, L, P, S = (c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"],
                     c["patch_size"], c["image_size"])
    npch = (S // P) ** 2
    T = npch + 1
    f = npch * 3 * P * P * H                       # patch embedding
    f += L * (4 * T * H * H + 2 * T * H * I + 2 * T * T * H)
    f += H * proj
    return 2.0 * f


def torch_bench(ref, batch, iters):
    S = ref.vision["image_size"]
    px = torch.randn(batch, 3, S, S)
    with torch.inference_mode():
        ref.image_embeds(px)  # warm-up
        t0 = time.perf_counter()
        for _ in range(iters):
            ref.image_embeds(px)
        return (time.perf_counter() - t0) / iters


def export_onnx(ref, model_dir):
    """The float32 image tower as ONNX (cached next to the weights), or None."""
    path = os.path.join(model_dir, "vision.onnx")
    if os.path.exists(path):
        return path

    class Tower(torch.nn.Module):
        def forward(self, x):
            return ref.image_embeds(x)

    S = ref.vision["image_size"]
    try:
        torch.onnx.export(Tower(), torch.randn(2, 3, S, S), path + ".tmp", input_names=["pixels"],
                          output_names=["image_embeds"], opset_version=14,
                          dynamic_axes={"pixels": {0: "batch"}, "image_embeds": {0: "batch"}})
    except Exception as e:  # pragma: no cover
        print("ONNX export failed:", e)
        return None
    os.replace(path + ".tmp", path)
    return path


def ort_bench(onnx_path, threads, batch, iters):
    if not onnx_path:
        return None
    script = os.path.join(HERE, "ort_clip_vision.js")
    try:
        out = subprocess.run(["node", script, onnx_path, str(threads), str(batch), str(iters)],
                             check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        print("ONNX Runtime run failed:", e)
        return None
    return json.loads(out.strip().splitlines()[-1])["images_per_s"]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build_dir")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    harness = os.path.join(args.build_dir, "bench", "bench-harness")
    model = base_model(ROOT)
    torch.set_num_threads(args.threads)
    ref = clip_ref.CLIPRef(model, dtype=torch.float32)
    flops = vit_flops(ref.vision, ref.w["visual_projection.weight"].shape[0])

    def run(*a):
        out = subprocess.run([harness, *a], check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    onnx_path = export_onnx(ref, model)
    rows = []
    blas = ""
    for b in [int(x) for x in args.batches.split(",")]:
        ours = run("clip", model, str(args.threads), str(b), str(args.iters), "fp32")
        blas = ours["blas"]
        try:
            bf = run("clip", model, str(args.threads), str(b), str(args.iters), "bf16")["images_per_s"]
        except subprocess.CalledProcessError as e:  # no AVX512_BF16: the engine refuses
            print("BF16 refused:", e.stderr.strip())
            bf = None
        t_torch = torch_bench(ref, b, args.iters)
        ort = ort_bench(onnx_path, args.threads, b, args.iters)
        rows.append((b, ours["images_per_s"], b / t_torch, ort, bf))
        print(f"batch {b:3d}: rewardd FP32 {ours['images_per_s']:8.2f} img/s "
              f"({ours['images_per_s'] * flops / 1e9:6.1f} GFLOP/s), BF16 {bf if bf is None else round(bf, 2)}, "
              f"PyTorch {b / t_torch:8.2f} img/s ({b / t_torch * flops / 1e9:6.1f} GFLOP/s), "
              f"ONNX Runtime {ort if ort is None else round(ort, 2)} img/s", flush=True)
    sg = run("gemm", str(args.threads), "1600", "3072", "768", "5")
    fma = run("fma")
    load = os.getloadavg()
    print(f"sgemm fc1 shape: {sg['sgemm_gflops']} GFLOP/s (oneDNN BF16 {sg['onednn_bf16_gflops']}); "
          f"FMA peak {fma['fma_gflops_per_core']} GFLOP/s/core; load average {load[0]:.1f}")
    if not args.write:
        return 0
    now = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        BEGIN,
        "## clip vision tower: ViT-B/32 images/s, rewardd FP32/BF16 vs ONNX Runtime and PyTorch",
        "",
        f"Generated by `bench/bench_clip_vision.py` on {now} ({platform.machine()}, "
        f"{os.cpu_count()} cores, load average {start_load()} at start and {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f} at the end; the sides were measured alternately per batch size).",
        "",
        f"- Model: random ViT-B/32 weights (hidden 768, 12 layers, patch 32, 224 px; "
        f"{flops / 1e9:.2f} GFLOP per image), float32, {args.threads} threads each, "
        f"mean of {args.iters} batches after a warm-up.",
        f"- rewardd FP32: lib/models/clip.c (im2col patch GEMM, the batch stacked into one "
        f"[B*50, 768] activation) over {blas}. rewardd BF16: the same model with "
        f"options.precision \"bf16\" (oneDNN BF16 matmuls, FP32 accumulation; isa {sg['bf16_isa']}).",
        "- PyTorch: Debian python3-torch " + torch.__version__ + ", tests/parity/clip_ref.py's "
        "functional CLIP (F.conv2d, matmul, F.layer_norm) in float32, torch.inference_mode.",
        f"- Context: sgemm on the fc1 shape [1600, 768] x [3072, 768]^T = {sg['sgemm_gflops']} GFLOP/s, "
        f"oneDNN BF16 {sg['onednn_bf16_gflops']} GFLOP/s "
        f"({args.threads} threads); FMA peak {fma['fma_gflops_per_core']} GFLOP/s per core "
        f"(AVX2 {fma['avx2_gflops_per_core']}, AVX-512 {fma['avx512_gflops_per_core']}; "
        f"all {fma['cores']} cores {fma['all_cores_gflops']}; 12 register-resident FMA chains), "
        "both measured in the same run.",
        "",
        "| batch | rewardd FP32 img/s | FP32 GFLOP/s | rewardd BF16 img/s | PyTorch img/s | "
        "ONNX Runtime img/s | FP32 vs ORT | BF16 vs ORT | FP32 vs PyTorch |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for b, ours, theirs, ort, bf in rows:
        o = f"{ort:.2f}" if ort else "n/a"
        vo = f"{ours / ort:.2f}x" if ort else "n/a"
        bo = f"{bf:.2f}" if bf else "n/a"
        vb = f"{bf / ort:.2f}x" if (bf and ort) else "n/a"
        lines.append(f"| {b} | {ours:.2f} | {ours * flops / 1e9:.1f} | {bo} | {theirs:.2f} | {o} | "
                     f"{vo} | {vb} | {ours / theirs:.2f}x |")
    lines += [
        "",
        "- ONNX Runtime: npm onnxruntime-node (CPU EP, MLAS kernels, fused graph), the same "
        "weights exported from the PyTorch graph.",
        "- End-to-end edit-reward requests/s: the \"clip end-to-end\" section (bench/bench_clip_e2e.py).",
        "",
        f"Rerun: `/usr/bin/python3 bench/bench_clip_vision.py {args.build_dir} --threads "
        f"{args.threads} --iters {args.iters} --write`",
        END,
    ]
    replace_section("\n".join(lines), BEGIN, END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
