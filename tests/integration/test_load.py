"""64 concurrent clients sending 1-item requests to the mlp model: every
answer matches PyTorch, and the batch-size histogram shows batches larger
than one (dynamic batching works across connections).
Usage: test_load.py REWARDD_EXE"""
import http.client
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rwd_harness as H  # noqa: E402

EXE = sys.argv[1]
CLIENTS = 64
PER_CLIENT = 12
D_IN = 32
C = H.Checker("test_load")


def main():
    work = H.mkdtemp("rwd-load-")
    oracle = H.make_mlp_head(os.path.join(work, "head"), d_in=D_IN, d_hidden=64, seed=3)
    cfg = {"models": {"head": {"path": os.path.join(work, "head"),
                               "batching": {"max_batch_size": 32, "max_delay_us": 2000}}}}
    d = H.Daemon(EXE, cfg)
    rnd = random.Random(7)
    xs = [[rnd.uniform(-1, 1) for _ in range(D_IN)] for _ in range(CLIENTS * PER_CLIENT)]
    want = oracle(xs)
    got = [None] * len(xs)
    errors = []

    def client(ci):
        conn = d.conn()
        try:
            for k in range(PER_CLIENT):
                i = ci * PER_CLIENT + k
                r = d.request("POST", "/v1/rewards", {"items": [{"id": i, "embedding": xs[i]}]}, conn=conn)
                if r.status != 200:
                    errors.append((i, r.status, r.raw[:200]))
                    continue
                got[i] = r.json["results"][0]
        except Exception as e:  # noqa: BLE001
            errors.append((ci, repr(e)))
        finally:
            conn.close()

    t0 = time.time()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.time() - t0
    n = len(xs)
    print("%d requests from %d clients in %.2f s (%.0f req/s)" % (n, CLIENTS, dt, n / dt))
    C.check(not errors, "errors: %r" % errors[:5])
    worst = 0.0
    for i in range(n):
        if got[i] is None:
            continue
        C.check(got[i].get("id") == i, "id %d echoed" % i) if got[i].get("id") != i else None
        for k, dim in enumerate(["quality", "safety"]):
            worst = max(worst, abs(got[i]["scores"][dim] - want[i][k]))
    print("worst abs error vs PyTorch over %d answers: %.3g" % (n, worst))
    C.check(all(g is not None for g in got), "every request answered")
    C.check(worst < 1e-4, "answers match PyTorch")
    # requests and their latency are counted when libmicrohttpd reports a reply
    # complete, which can be just after the client has read it: let them settle
    # (the latency histogram is updated last)
    m = d.metrics()
    t_end = time.time() + 5
    while H.metric(m, "rewardd_request_duration_seconds_count", model="head") < n and time.time() < t_end:
        time.sleep(0.02)
        m = d.metrics()
    count = H.metric(m, "rewardd_batch_size_items_count", model="head")
    ones = H.metric(m, "rewardd_batch_size_items_bucket", model="head", le="1")
    items = H.metric(m, "rewardd_batch_size_items_sum", model="head")
    print("batches: %d, of one item: %d, mean batch size %.2f" % (count, ones, items / max(count, 1)))
    # start-up warms the model with one synthetic item through its real batcher (daemon/admin.c)
    C.check(items == n + 1, "every item ran once, plus the one warm-up item (%d for %d)" % (items, n))
    C.check(count - ones > 0, "some batches larger than one")
    C.check(H.metric(m, "rewardd_requests_total", model="head", code="200") == n, "requests counted")
    C.check(H.metric(m, "rewardd_queue_depth_items", model="head") == 0, "queue empty at the end")
    C.check(H.metric(m, "rewardd_request_duration_seconds_count", model="head") == n, "latency histogram")
    C.check(d.stop() == 0, "exit 0")
    C.done()


if __name__ == "__main__":
    main()
