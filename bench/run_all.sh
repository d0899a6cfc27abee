#!/usr/bin/env bash
# bench/run_all.sh — every benchmark, one after another, side by side with its
# peer, writing bench/RESULTS.md. Run on quiet cores: each script refuses to
# write when the 1-minute load average is above RWD_BENCH_MAX_LOAD (default 2)
# at its start or end (bench/results_md.py). Needs a built build/ (scripts/test
# or scripts/run), wrk, node + npm packages, python3-torch, python3-fastapi.
#   bench/run_all.sh            about 25 minutes on 2 cores
set -uo pipefail
cd "$(dirname "$0")/.."
B=build
ninja -C "$B" >/dev/null || exit 1
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
rc=0
step() { echo "=== $*"; "$@" || { echo "FAILED ($?): $*"; rc=1; }; }
step /usr/bin/python3 bench/roofline.py "$B" --write
step /usr/bin/python3 bench/bench_clip_vision.py "$B" --threads "$(nproc)" --iters 3 --write
step /usr/bin/python3 bench/bench_clip_e2e.py "$B/daemon/rewardd" 15 --write
step /usr/bin/python3 bench/bench_seqcls.py "$B" --layers 28 --threads "$(nproc)" --write
step /usr/bin/python3 bench/bench_ocr.py "$B" --images 16 --repeat 3 --threads "$(nproc)" --write
step /usr/bin/python3 bench/run_bench.py "$B/daemon/rewardd" 5
[ -f bench/threads.py ] && step /usr/bin/python3 bench/threads.py "$B" --write
exit $rc
