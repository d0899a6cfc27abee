#!/usr/bin/python3
"""BLAS thread count against daemon throughput, through the real daemon (issue 13 item 1).

    /usr/bin/python3 bench/threads_daemon.py build/daemon/rewardd [seconds] [blas_threads ...]

One daemon per BLAS setting (compute.blas_threads 1, 2, ... and 0 = the
default rule) serving three models at once, as a real configuration does
(RWD_BENCH_CLIP_WORKERS sets the CLIP model's compute workers, default 1;
RWD_BENCH_HEAD_C the head's connections, default 16):
`rules` (no BLAS), the LAION aesthetic head (`mlp`, GEMMs under 1M
multiply-adds per item) and a ViT-B/32-shaped CLIP (random weights, cached in
tests/parity/.cache as bench/bench_clip_e2e.py builds it). Loads, each for
`seconds` with wrk: 1-item head requests at c=16, 1-item edit rewards
(instruction + two 512x512 JPEGs) at c=16, then both at once. Prints req/s,
p50/p99 and the 1-minute load average before each run. Not a test and not
a result for bench/RESULTS.md: on shared cores the figures are rough.
"""
import json
import os
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "parity"))

import run_bench  # noqa: E402
from bench_clip_e2e import jpeg_b64  # noqa: E402
from test_clip_torch import base_model  # noqa: E402


def load1():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def main():
    exe = os.path.abspath(sys.argv[1])
    secs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    settings = [int(x) for x in sys.argv[3:]] or [1, 2, 0]
    work = tempfile.mkdtemp(prefix="rwd-threads-")
    head = os.path.join(ROOT, "..", "..", "shared", "fixtures", "aesthetic",
                        "aesthetic-linearMSE.safetensors")
    if not os.path.exists(head):
        head = "/work/shared/fixtures/aesthetic/aesthetic-linearMSE.safetensors"
    clip = os.environ.get("RWD_BENCH_CLIP") or base_model(ROOT)
    clip_workers = int(os.environ.get("RWD_BENCH_CLIP_WORKERS", "1"))
    conns = {"head": int(os.environ.get("RWD_BENCH_HEAD_C", "16")), "clip": 16}
    import random
    rnd = random.Random(0)
    bodies = {}
    bodies["head"] = os.path.join(work, "head.json")
    with open(bodies["head"], "w") as f:
        json.dump({"model": "head", "items": [{"embedding": [round(rnd.uniform(-1, 1), 6)
                                                             for _ in range(768)]}]}, f)
    bodies["clip"] = os.path.join(work, "clip.json")
    with open(bodies["clip"], "w") as f:
        json.dump({"model": "clip", "items": [{"instruction": "make it snowy", "image": jpeg_b64(1),
                                               "source_image": jpeg_b64(2)}]}, f)
    for blas in settings:
        port = run_bench.free_port()
        cfg = {"listen": "127.0.0.1:%d" % port, "log_level": "info",
               "http": {"per_ip_connection_limit": 512},
               "compute": {"blas_threads": blas},
               "models": {"rules": {"kind": "rules"},
                          "head": {"kind": "mlp", "path": os.path.abspath(head)},
                          "clip": {"kind": "clip", "path": clip,
                                   "batching": {"max_batch_size": 16,
                                                "workers": clip_workers}}}}
        p = os.path.join(work, "cfg.json")
        with open(p, "w") as f:
            json.dump(cfg, f)
        log = open(os.path.join(work, "log-%d.txt" % blas), "w")
        proc = subprocess.Popen([exe, "--config", p], stdout=log, stderr=log)
        try:
            run_bench.BODY = bodies["clip"]
            run_bench.wait_ready(port, proc, timeout=120)
            run_bench.BODY = bodies["head"]
            run_bench.wait_ready(port, proc)
            with open(log.name) as f:
                start = [ln.strip() for ln in f if "OpenBLAS" in ln]
            print("blas_threads %d: %s" % (blas, start[0] if start else "?"))
            for name in ("head", "clip"):
                la = load1()
                r = run_bench.run_wrk(port, conns[name], secs, body=bodies[name], timeout_s=10)
                print("  %-4s alone  c=%2d: %8.1f req/s  p50 %7.2f ms  p99 %7.2f ms  (load %s)"
                      % (name, conns[name], r["rps"], r["p50"], r["p99"], la))
            la = load1()
            res = {}

            def go(n):
                res[n] = run_bench.run_wrk(port, conns[n], secs, body=bodies[n], timeout_s=10)
            ts = [threading.Thread(target=go, args=(n,)) for n in ("head", "clip")]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            for n in ("head", "clip"):
                r = res[n]
                print("  %-4s mixed  c=%2d: %8.1f req/s  p50 %7.2f ms  p99 %7.2f ms  (load %s)"
                      % (n, conns[n], r["rps"], r["p50"], r["p99"], la))
        finally:
            proc.terminate()
            proc.wait()
            log.close()


if __name__ == "__main__":
    main()
