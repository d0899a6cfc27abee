"""Ensemble members reloaded and unloaded while ensemble requests flow (issue 14).

Before: an ensemble borrowed its members' model pointers at load and pinned
nothing, so reloading a member through the admin API freed a model that
ensemble requests still used (heap-use-after-free under ASan, the daemon
aborted), and unloading a member left the ensemble with a NULL batcher.

Now every ensemble request pins its members' serving versions (daemon/app.c)
and submits to those versions' batchers (daemon/api_rl.c):
- 4 clients score an ensemble of two mlp heads continuously while member h1
  is reloaded through POST /v1/models/h1/load, alternating between two
  weight files, several times: every request gets 200, and every answer's
  member scores equal (to 1e-4) PyTorch's for the old or the new h1 head and
  for h2, with the ensemble's mean equal to their mean;
- POST /v1/models/h2/unload is refused with 409 naming the ensemble, and the
  ensemble keeps serving;
- a reload whose dimensions differ from the ensemble's is refused (the model
  listing says why) and changes nothing;
- the daemon exits 0 after SIGTERM (under ASan, any use-after-free aborts it).

Usage: test_ensemble_reload.py REWARDD
"""
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rwd_harness as H  # noqa: E402

EXE = sys.argv[1]
C = H.Checker("ensemble-reload")
D_IN = 16
ADMIN = "admin-key-0123456789abcdef"
DIMS = ("quality", "safety")


def close(a, b, tol=1e-4):
    return all(abs(x - y) <= tol * max(1.0, abs(y)) for x, y in zip(a, b))


def wait_for(pred, timeout=60, what=""):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    C.check(False, "timed out waiting for " + what)
    return None


def main():
    work = H.mkdtemp("rwd-ens-reload-")
    root = os.path.join(work, "models")
    oracles = {
        "a": H.make_mlp_head(os.path.join(root, "a"), d_in=D_IN, seed=10),
        "b": H.make_mlp_head(os.path.join(root, "b"), d_in=D_IN, seed=11),
        "h2": H.make_mlp_head(os.path.join(root, "h2"), d_in=D_IN, seed=12),
    }
    H.make_mlp_head(os.path.join(root, "other"), d_in=D_IN, seed=13, outputs=("x",))
    cfg = {"admin": {"model_root": root},
           "models": {"h1": {"path": os.path.join(root, "a"),
                             "batching": {"max_batch_size": 8, "max_delay_us": 500}},
                      "h2": {"path": os.path.join(root, "h2"),
                             "batching": {"max_batch_size": 8, "max_delay_us": 500}},
                      "ens": {"members": ["h1", "h2"], "combine": "mean"}}}
    d = H.Daemon(EXE, cfg, env={"REWARDD_ADMIN_KEY": ADMIN})
    try:
        run(d, oracles)
    finally:
        rc = d.stop()
        C.check(rc == 0, "exit status %d after SIGTERM" % rc)
    C.done()


def run(d, oracles):
    stop = threading.Event()
    stats = {"ok": 0, "bad": [], "a": 0, "b": 0}
    lock = threading.Lock()

    def check_answer(xs, r):
        if r.status != 200:
            return "status %d %s" % (r.status, r.raw[:200])
        h2 = oracles["h2"](xs)
        ya, yb = oracles["a"](xs), oracles["b"](xs)
        seen = None
        for x, w2, wa, wb in zip(r.json["results"], h2, ya, yb):
            if "members" not in x or "reward" not in x:
                return "no members/reward in %r" % (x,)
            m1 = [x["members"]["h1"][k] for k in DIMS]
            m2 = [x["members"]["h2"][k] for k in DIMS]
            if not close(m2, w2):
                return "h2 scores %r, torch %r" % (m2, w2)
            which = "a" if close(m1, wa) else "b" if close(m1, wb) else None
            if which is None:
                return "h1 scores %r match neither head (a %r, b %r)" % (m1, wa, wb)
            if seen and which != seen:
                return "one request mixed two versions of h1"
            seen = which
            mean = [(p + q) / 2 for p, q in zip(m1, m2)]
            if not close([x["scores"][k] for k in DIMS], mean):
                return "ensemble scores %r, mean of members %r" % (x["scores"], mean)
        with lock:
            stats[seen] += 1
        return None

    def client(ci):
        c = d.conn()
        rng = random.Random(ci)
        while not stop.is_set():
            xs = [[rng.uniform(-1, 1) for _ in range(D_IN)] for _ in range(rng.randint(1, 4))]
            try:
                r = d.request("POST", "/v1/rewards", {"model": "ens", "items": [{"embedding": x} for x in xs]},
                              conn=c)
            except Exception as e:  # a dropped connection is a failure too
                with lock:
                    stats["bad"].append("exception %r" % e)
                c.close()
                c = d.conn()
                continue
            why = check_answer(xs, r)
            with lock:
                if why:
                    stats["bad"].append(why)
                else:
                    stats["ok"] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        reloads = 0
        for path in ("b", "a", "b", "a", "b"):
            r = d.request("POST", "/v1/models/h1/load", {"path": path}, key=ADMIN)
            C.check(r.status == 202, "reload h1 <- %s accepted: %d %s" % (path, r.status, r.raw[:200]))
            wait_for(lambda: d.request("GET", "/v1/models/h1").json.get("state") == "ready" and
                     not d.request("GET", "/v1/models/h1").json.get("next_version"), what="h1 ready")
            reloads += 1
            time.sleep(0.3)
        # unloading a member of a live ensemble: 409 naming the ensemble
        r = d.request("POST", "/v1/models/h2/unload", key=ADMIN)
        C.check(r.status == 409 and "ens" in r.json["error"]["message"],
                "member unload refused with 409 naming the ensemble: %d %s" % (r.status, r.raw[:200]))
        # a member reload with other dimensions is refused; h1 keeps serving head b
        r = d.request("POST", "/v1/models/h1/load", {"path": "other"}, key=ADMIN)
        C.check(r.status == 202, "reload h1 <- other accepted for loading: %d" % r.status)
        wait_for(lambda: "dimensions differ" in d.request("GET", "/v1/models/h1").json.get("reason", ""),
                 what="the refused reload's reason")
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    print("ensemble requests: %d ok (h1 head a: %d, b: %d), %d bad over %d reloads" % (
        stats["ok"], stats["a"], stats["b"], len(stats["bad"]), reloads))
    C.check(not stats["bad"], "every ensemble request answered correctly: %r" % stats["bad"][:5])
    C.check(stats["ok"] >= 20, "enough requests flowed (%d)" % stats["ok"])
    C.check(stats["a"] > 0 and stats["b"] > 0, "both h1 heads were seen serving")
    # after the refused reload, h1 still serves head b and the ensemble its mean
    xs = [[0.05 * i - 0.4 for i in range(D_IN)]]
    r = d.request("POST", "/v1/rewards", {"model": "ens", "items": [{"embedding": x} for x in xs]})
    C.check(r.status == 200 and close([r.json["results"][0]["members"]["h1"][k] for k in DIMS],
                                      oracles["b"](xs)[0]),
            "h1 still serves head b after the refused reload")
    C.check(d.request("GET", "/readyz").status == 200, "still ready")


if __name__ == "__main__":
    main()
