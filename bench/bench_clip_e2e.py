#!/usr/bin/python3
"""End-to-end edit rewards through POST /v1/rewards: rewardd FP32 and BF16 vs a FastAPI + PyTorch peer.

    /usr/bin/python3 bench/bench_clip_e2e.py build/daemon/rewardd [seconds] [--write]

Each request is one instruction-guided edit: {"instruction", "image",
"source_image"} with two different 512x512 JPEGs (base64), scored by a
ViT-B/32-shaped CLIP (random weights from tools/make_tiny_models.py, cached in
tests/parity/.cache; CLIP BPE tokenizer files from the shared fixture):
decode + Pillow-exact preprocessing of both images, both towers, the
image_similarity and edit_direction dimensions. Load: wrk with
bench/post_rewards.lua at 1 and 16 connections. Servers, one after the other
on the same body: rewardd with the daemon's default threading and dynamic
batching (max_batch_size 16), the same with options.precision "bf16", and
bench/fastapi_clip_peer.py (FastAPI + uvicorn + PyTorch float32, one forward
per request, the same threads). --write replaces the "clip end-to-end"
section of bench/RESULTS.md. Not a test: numbers depend on the machine.
"""
import base64
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "parity"))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import run_bench  # noqa: E402  (free_port, run_wrk, wait_ready)
from test_clip_torch import base_model  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results_md import replace_section, start_load  # noqa: E402

BEGIN = "<!-- clip-e2e:begin (bench/bench_clip_e2e.py) -->"
END = "<!-- clip-e2e:end -->"


def jpeg_b64(seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:512, 0:512]
    a = np.stack([xx // 2, yy // 2, (xx + yy) // 4], axis=-1).astype(np.int16)
    a = np.clip(a + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a, "RGB").save(buf, format="JPEG", quality=90)
    return base64.b64encode(buf.getvalue()).decode()


def tokenize_ids(exe, model, work, texts):
    """CLIP ids of `texts` with rewardd's tokenizer (clip-harness tokenize), for the peer."""
    harness = os.path.join(os.path.dirname(os.path.dirname(exe)), "tests", "parity", "clip-harness")
    tf, tof = os.path.join(work, "texts.json"), os.path.join(work, "ids.json")
    with open(tf, "w") as f:
        json.dump(texts, f)
    subprocess.run([harness, "tokenize", model, tf, tof], check=True)
    ids = json.load(open(tof))
    out = os.path.join(work, "peer_ids.json")
    with open(out, "w") as f:
        json.dump(dict(zip(texts, ids)), f)
    return out


def serve(argv, port, work, name):
    err = open(os.path.join(work, name + ".stderr"), "w")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
    run_bench.wait_ready(port, proc, timeout=180)
    return proc


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def main():
    exe = os.path.abspath(sys.argv[1])
    secs = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2].isdigit() else 5
    write = "--write" in sys.argv
    if not shutil.which("wrk"):
        sys.exit("wrk not found (apt-get install wrk)")
    model = base_model(ROOT)
    work = tempfile.mkdtemp(prefix="rwd-bench-clip-")
    body = os.path.join(work, "body.json")
    instruction = "make it snowy"
    with open(body, "w") as f:
        json.dump({"items": [{"instruction": instruction, "image": jpeg_b64(1),
                              "source_image": jpeg_b64(2)}]}, f)
    run_bench.BODY = body
    threads = os.cpu_count()
    servers = []
    for label, precision in (("rewardd FP32 (default threading)", None), ("rewardd BF16", "bf16")):
        opts = {"dimensions": ["image_similarity", "edit_direction"]}
        if precision:
            opts["precision"] = precision
        servers.append((label, "rewardd", opts))
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
        servers.append(("FastAPI + PyTorch peer", "peer", None))
    except ImportError:
        print("no FastAPI peer: apt-get install python3-fastapi python3-uvicorn")
    rows = []
    try:
        ids = tokenize_ids(exe, model, work, ["", instruction])
        for label, what, opts in servers:
            port = run_bench.free_port()
            if what == "rewardd":
                cfg = {"listen": "127.0.0.1:%d" % port, "log_level": "warn",
                       "models": {"edit": {"kind": "clip", "path": model, "options": opts,
                                           "batching": {"max_batch_size": 16, "max_delay_us": 2000}}}}
                cp = os.path.join(work, "bench.json")
                with open(cp, "w") as f:
                    json.dump(cfg, f)
                argv = [exe, "--config", cp]
            else:
                argv = [sys.executable, os.path.join(HERE, "fastapi_clip_peer.py"), str(port), model,
                        str(threads), ids]
            try:
                proc = serve(argv, port, work, what)
            except RuntimeError as e:
                print(label, "did not start:", e, open(os.path.join(work, what + ".stderr")).read()[-800:])
                continue
            try:
                for c in (1, 16):
                    r = run_bench.run_wrk(port, c, secs, timeout_s=120)
                    print(label, "connections", c, r, flush=True)
                    rows.append((label, c, r))
            finally:
                stop(proc)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_end = " ".join(open("/proc/loadavg").read().split()[:3])
    peer = {c: r for label, c, r in rows if label.startswith("FastAPI")}
    lines = [BEGIN, "## clip end-to-end: edit rewards through /v1/rewards, rewardd vs FastAPI + PyTorch", "",
             "Generated by `bench/bench_clip_e2e.py` on %s (%d cores, load average %s at start, %s at "
             "the end)." % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.cpu_count(),
                            start_load(), load_end),
             "",
             "- Request: one item {instruction, image, source_image}, two different 512x512 "
             "JPEGs (base64, ~60 KB each); dimensions image_similarity and edit_direction.",
             "- Model: ViT-B/32-shaped CLIP, random weights (tools/make_tiny_models.py clip base), "
             "CLIP BPE tokenizer.",
             "- rewardd: the daemon's default threading; batching max_batch_size 16, max_delay_us 2000; "
             "BF16 = options.precision \"bf16\".",
             "- Per request: 2 JPEG decodes + Pillow-exact resize/crop, 2 image-tower and 2 "
             "text-tower passes (instruction, empty source caption), deduplicated across the batch.",
             "- Peer: bench/fastapi_clip_peer.py, FastAPI 0.92 + uvicorn (1 worker) + PyTorch float32 "
             "(%d threads), Pillow decode, CLIPImageProcessor arithmetic in numpy, one forward per "
             "request; token ids looked up, not computed (favours the peer)." % threads,
             "- Load: `wrk -t min(c,2) -c c -d %ds --latency -s bench/post_rewards.lua`; the "
             "servers run one after another on the same cores." % secs,
             "",
             "| server | connections | items/s | p50 ms | p99 ms | non-2xx | items/s vs peer | p99 vs peer |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label, c, r in rows:
        p = peer.get(c)
        vs = "%.2fx" % (r["rps"] / p["rps"]) if p and p["rps"] else "n/a"
        vp = "%.2fx" % (r["p99"] / p["p99"]) if p and p["p99"] else "n/a"
        lines.append("| %s | %d | %.2f | %.0f | %.0f | %d | %s | %s |" % (
            label, c, r["rps"], r["p50"], r["p99"], r["non2xx"], vs, vp))
    lines += ["", "Rerun: `/usr/bin/python3 bench/bench_clip_e2e.py build/daemon/rewardd %d --write`"
              % secs, END]
    print("\n".join(lines))
    if write:
        replace_section("\n".join(lines), BEGIN, END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
