"""Batch invariance through the real daemon: native and image-RL routes, concurrent requests.

A tiny random CLIP (tools/make_tiny_models.py clip tiny, CLIP BPE from the
shared fixture) is served beside `rules` and an mlp head (the start-up log
must show the default BLAS rule giving every core to the one worker that may
run threaded GEMMs), with dynamic batching (max_batch_size 8,
max_delay_us 3000, so concurrent requests share forward batches). Every item
is first scored alone (one request, one item, nothing else in flight); then
the same items go in requests of 3, 5 and all items, and in 6 concurrent
requests of mixed sizes, on POST /v1/rewards (every dimension and the
reward) and on Flow-Factory's POST /compute (the image-RL translation,
compat/imgrl). Every value must equal the item-alone value exactly: the
daemon renders float32 with enough digits to round-trip, so equal JSON
numbers are equal bits. The oracle is the item alone (the same model with
nothing else in its batch).

Usage: test_batch_invariance_daemon.py REWARDD
"""
import base64
import io
import json
import os
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rwd_harness as H  # noqa: E402

EXE = sys.argv[1]
SRC = os.environ.get("RWD_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
C = H.Checker("batch-invariance-daemon")

try:
    import numpy as np
    from PIL import Image
except ImportError as e:
    H.skip("needs python3-numpy and python3-pil (%s)" % e)


def png(rng, w, h):
    a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def main():
    fx = os.environ.get("RWD_FIXTURES") or os.path.join(SRC, "..", "..", "shared", "fixtures")
    if not os.path.exists(os.path.join(fx, "clip-bpe", "bpe_simple_vocab_16e6.txt.gz")):
        fx = os.path.join(SRC, "..", "shared", "fixtures")
    if not os.path.exists(os.path.join(fx, "clip-bpe", "bpe_simple_vocab_16e6.txt.gz")):
        H.skip("no CLIP BPE fixture (RWD_FIXTURES/clip-bpe): the text tower needs tokenizer files")
    work = H.mkdtemp("rwd-bi-")
    model = os.path.join(work, "clip")
    subprocess.run([sys.executable, os.path.join(SRC, "tools", "make_tiny_models.py"), "clip", "tiny",
                    model, "--seed", "7"], check=True, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, RWD_FIXTURES=os.path.abspath(fx)))
    rng = np.random.default_rng(11)
    imgs = [png(rng, w, h) for w, h in [(40, 40), (64, 48), (33, 70), (90, 90), (50, 50), (48, 64)]]
    prompts = ["a cat", "make it snowy", "a dog in the snow", "", "turn the sky red", "a red car"]
    native = []
    for i in range(12):
        it = {"image": imgs[i % 6], "prompt": prompts[(i * 5) % 6]}
        if i % 3:
            it["source_image"] = imgs[(i + 2) % 6]
            it["instruction"] = prompts[(i + 1) % 6]
        native.append(it)
    native.append(dict(native[4]))
    flow = [(prompts[i % 6], imgs[(i * 5) % 6], [imgs[(i + 1) % 6]] if i % 2 else None) for i in range(12)]

    head = os.path.join(work, "head")
    H.make_mlp_head(head)
    # rules and an mlp head beside CLIP, as real configurations have: they run no threaded GEMM,
    # so the default BLAS rule (compute.blas_threads 0) still gives CLIP every core
    d = H.Daemon(EXE, {"models": {"rules": {"kind": "rules"}, "head": {"kind": "mlp", "path": head},
                                  "clip": {"kind": "clip", "path": model,
                                           "batching": {"max_batch_size": 8, "max_delay_us": 3000}}}})
    try:
        start = [ln for ln in d.logs().splitlines() if "compute workers" in ln]
        cores = len(os.sched_getaffinity(0))  # as rwd_cpu_count
        C.check(start and "3 compute workers (1 may run threaded GEMMs)" in start[0] and
                start[0].endswith("threads %d" % cores),
                "default BLAS threads = %d cores with rules + head + clip: %s" % (cores, start))
        def post_native(idx):
            r = d.request("POST", "/v1/rewards", {"model": "clip", "items": [native[i] for i in idx]})
            C.check(r.status == 200, "native %s: %d %s" % (idx, r.status, r.raw[:200]))
            res = r.json.get("results", []) if r.status == 200 else []
            return {i: (x.get("reward"), x.get("scores")) for i, x in zip(idx, res)}

        def post_flow(idx):
            cond = [flow[i][2] for i in idx]
            body = {"prompt": [flow[i][0] for i in idx], "image": [flow[i][1] for i in idx], "video": None,
                    "condition_images": cond if all(c for c in cond) else None}
            if body["condition_images"] is None and any(cond):
                return {}
            r = d.request("POST", "/compute?model=clip", body)
            C.check(r.status == 200, "/compute %s: %d %s" % (idx, r.status, r.raw[:200]))
            return dict(zip(idx, r.json.get("rewards", []))) if r.status == 200 else {}

        alone_n = {}
        for i in range(len(native)):
            alone_n.update(post_native([i]))
        alone_f = {}
        for i in range(len(flow)):
            alone_f.update(post_flow([i]))
        C.check(len(alone_n) == len(native) and all(v[1] for v in alone_n.values()),
                "every native item scored alone")
        C.check(len(alone_f) == len(flow), "every /compute item scored alone")

        def compare(label, got, alone):
            bad = [i for i, v in got.items() if v != alone.get(i)]
            C.check(not bad, "%s: items %s differ from the item alone (e.g. %r vs %r)" % (
                label, bad[:4], got.get(bad[0]) if bad else None, alone.get(bad[0]) if bad else None))
            return len(got)

        n = len(native)
        for size in (3, 5, n):
            order = list(range(n))[::-1] if size == 5 else list(range(n))
            got = {}
            for b in range(0, n, size):
                got.update(post_native(order[b:b + size]))
            compare("native, requests of %d" % size, got, alone_n)
        # /compute takes condition images for all or none of a request's items
        evens, odds = list(range(0, 12, 2)), list(range(1, 12, 2))
        for grp in (evens, odds, evens[::-1], odds[:3], odds[3:]):
            compare("/compute %s" % grp, post_flow(grp), alone_f)

        # concurrent requests of mixed sizes: the batcher merges them into shared batches
        results, lock = [], threading.Lock()
        jobs = [("n", [0, 1, 2]), ("n", list(range(3, 13))), ("f", evens), ("n", [7]), ("f", odds),
                ("n", [12, 4, 9, 1])]

        def go(kind, idx):
            for _ in range(3):
                r = post_native(idx) if kind == "n" else post_flow(idx)
                with lock:
                    results.append((kind, r))
        nb0 = H.metric(d.metrics(), "rewardd_batch_size_items_count", model="clip")
        ts = [threading.Thread(target=go, args=j) for j in jobs]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        # the mix really shared batches: alone, its requests take 7 batches per round (21)
        nb = H.metric(d.metrics(), "rewardd_batch_size_items_count", model="clip") - nb0
        C.check(0 < nb < 21, "concurrent requests shared forward batches (%d batches for 21 "
                "request-batches)" % nb)
        total = 0
        for kind, r in results:
            total += compare("concurrent %s" % kind, r, alone_n if kind == "n" else alone_f)
        print("batch-invariance-daemon: %d native and %d /compute items alone; %d item results in "
              "concurrent mixed requests compared" % (len(alone_n), len(alone_f), total))
    finally:
        C.check(d.stop() == 0, "daemon exits cleanly")
    C.done()


if __name__ == "__main__":
    main()
