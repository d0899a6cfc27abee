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
MAX_LOAD=${RWD_BENCH_MAX_LOAD:-2.0}
load1() { cut -d' ' -f1 /proc/loadavg; }
above() { awk -v l="$1" -v m="$MAX_LOAD" 'BEGIN { exit !(l > m) }'; }
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
# Figures from busy cores are not results: refuse to start above the limit
# (each script also checks at its own start and before it writes).
if above "$(load1)"; then
	echo "refusing to run: 1-minute load average $(load1) > $MAX_LOAD (RWD_BENCH_MAX_LOAD); bench/RESULTS.md untouched"
	exit 3
fi
rc=0
# Every step logs the load average before and after it; a step that ends
# above the limit is reported as failed (its script refused to write).
step() {
	local before; before=$(load1)
	echo "=== $* (load $before)"
	"$@" || { echo "FAILED ($?): $*"; rc=1; }
	local after; after=$(load1)
	echo "--- load before $before, after $after (limit $MAX_LOAD)"
	if above "$after"; then echo "LOAD ABOVE $MAX_LOAD after: $*"; rc=1; fi
}
step /usr/bin/python3 bench/roofline.py "$B" --write
step /usr/bin/python3 bench/bench_clip_vision.py "$B" --threads "$(nproc)" --iters 3 --write
step /usr/bin/python3 bench/bench_clip_e2e.py "$B/daemon/rewardd" 15 --write
step /usr/bin/python3 bench/bench_seqcls.py "$B" --layers 28 --threads "$(nproc)" --write
step /usr/bin/python3 bench/bench_ocr.py "$B" --images 16 --repeat 3 --threads "$(nproc)" --write
step /usr/bin/python3 bench/run_bench.py "$B/daemon/rewardd" 5
[ -f bench/threads.py ] && step /usr/bin/python3 bench/threads.py "$B" --write
exit $rc
