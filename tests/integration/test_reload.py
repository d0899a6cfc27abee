"""Reload and model management against the real daemon.

- SIGHUP under load: 4 clients score continuously while the config swaps the
  served head for another (new weights), adds a model and removes it; every
  request must get 200 with scores equal (to 1e-4) to PyTorch's for the old
  or the new head, none after the swap from the old one once the log says so.
- A config that fails validation on SIGHUP changes nothing (the log says why).
- Admin API: load/unload need the admin key (not an API key); a path
  outside admin.model_root is refused, and so is an option that names a file
  or folder outside it (400 naming the option, at any depth); a loaded model serves scores equal to
  PyTorch's after its warm-up; an unloaded one is gone.

Usage: test_reload.py REWARDD
"""
import json
import os
import random
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rwd_harness as H  # noqa: E402

EXE = sys.argv[1]
C = H.Checker("reload")
D_IN = 16
ADMIN = "admin-key-0123456789abcdef"
API = "api-key-abcdef"


def close(a, b, tol=1e-4):
    return all(abs(x - y) <= tol * max(1.0, abs(y)) for x, y in zip(a, b))


def wait_for(pred, timeout=30, what=""):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    C.check(False, "timed out waiting for " + what)
    return None


def write_cfg(d, cfg):
    cfg = dict(cfg)
    cfg["listen"] = "127.0.0.1:%d" % d.port
    tmp = d.cfg_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(cfg if isinstance(cfg, str) else json.dumps(cfg))
    os.replace(tmp, d.cfg_path)


def main():
    work = H.mkdtemp("rwd-reload-")
    root = os.path.join(work, "models")
    oa = H.make_mlp_head(os.path.join(root, "a"), d_in=D_IN, seed=0)
    ob = H.make_mlp_head(os.path.join(root, "b"), d_in=D_IN, seed=1)
    oc = H.make_mlp_head(os.path.join(root, "c"), d_in=D_IN, seed=2)
    H.make_mlp_head(os.path.join(work, "outside"), d_in=D_IN, seed=3)
    base = {"admin": {"model_root": root},
            "models": {"head": {"path": os.path.join(root, "a"),
                                "batching": {"max_batch_size": 8, "max_delay_us": 1000}}}}
    d = H.Daemon(EXE, base, env={"REWARDD_ADMIN_KEY": ADMIN, "REWARDD_API_KEYS": API})
    try:
        run(d, base, root, work, oa, ob, oc)
    finally:
        rc = d.stop()
        C.check(rc == 0, "exit status %d after SIGTERM" % rc)
    weights_modes(root, oa, ob)
    C.done()


def weights_modes(root, oa, ob):
    """"weights": "memory" reads the file (no mapping of it), the default maps it."""
    cfg = {"models": {"mapped": {"path": os.path.join(root, "a")},
                      "read": {"path": os.path.join(root, "b"), "weights": "memory"}}}
    d = H.Daemon(EXE, cfg, env={"REWARDD_API_KEYS": API})
    try:
        with open("/proc/%d/maps" % d.proc.pid) as f:
            maps = f.read()
        C.check(os.path.join(root, "a", "model.safetensors") in maps, "default: the weights are mmapped")
        C.check(os.path.join(root, "b", "model.safetensors") not in maps, "weights: memory: not mapped")
        xs = [[0.1 * i - 0.5 for i in range(D_IN)]]
        for name, o in (("mapped", oa), ("read", ob)):
            r = score(d, name, xs)
            C.check(r.status == 200 and close([r.json["results"][0]["scores"]["quality"],
                                               r.json["results"][0]["scores"]["safety"]], o(xs)[0]),
                    "%s scores like PyTorch" % name)
    finally:
        C.check(d.stop() == 0, "exit 0")


def score(d, model, xs, conn=None):
    return d.request("POST", "/v1/rewards", {"model": model, "items": [{"embedding": x} for x in xs]},
                     conn=conn, key=API)


def run(d, base, root, work, oa, ob, oc):
    rng = random.Random(5)
    stop = threading.Event()
    stats = {"ok": 0, "a": 0, "b": 0, "bad": [], "b_seen_at": None}
    lock = threading.Lock()

    def client(ci):
        c = d.conn()
        r_rng = random.Random(ci)
        while not stop.is_set():
            xs = [[r_rng.uniform(-1, 1) for _ in range(D_IN)] for _ in range(r_rng.randint(1, 4))]
            sent = time.time()
            try:
                r = score(d, "head", xs, conn=c)
            except Exception as e:  # a dropped connection is a failure too
                with lock:
                    stats["bad"].append("exception %r" % e)
                c.close()
                c = d.conn()
                continue
            with lock:
                if r.status != 200:
                    stats["bad"].append("%d %s" % (r.status, r.raw[:200]))
                    continue
                got = [[res["scores"]["quality"], res["scores"]["safety"]] for res in r.json["results"]]
                if all(close(g, w) for g, w in zip(got, oa(xs))):
                    stats["a"] += 1
                    # A request already holding the old version when the
                    # swap happened finishes on it (that is the point of the
                    # reference count); one SENT after a new-head answer came
                    # back must not reach the old head.
                    if stats["b_seen_at"] is not None and sent > stats["b_seen_at"]:
                        stats["bad"].append("old head answered a request sent after the new one answered")
                elif all(close(g, w) for g, w in zip(got, ob(xs))):
                    stats["b"] += 1
                    if stats["b_seen_at"] is None:
                        stats["b_seen_at"] = time.time()
                else:
                    stats["bad"].append("scores match neither head: %s" % got[:1])
                stats["ok"] += 1
        c.close()

    ts = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    time.sleep(0.5)
    # 1. the head's weights change (another folder): loaded beside, swapped in
    cfg = json.loads(json.dumps(base))
    cfg["models"]["head"]["path"] = os.path.join(root, "b")
    write_cfg(d, cfg)
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "swapped in" in d.logs() and "previous version released" in d.logs(), what="the swap")
    time.sleep(0.5)
    # 2. a model is added, then removed, while the head keeps serving
    cfg["models"]["extra"] = {"path": os.path.join(root, "c")}
    write_cfg(d, cfg)
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: any(m["name"] == "extra" and m["state"] == "ready"
                         for m in d.request("GET", "/v1/models", key=API).json["models"]), what="extra ready")
    xs = [[rng.uniform(-1, 1) for _ in range(D_IN)] for _ in range(3)]
    r = score(d, "extra", xs)
    C.check(r.status == 200 and all(close([x["scores"]["quality"], x["scores"]["safety"]], w)
                                    for x, w in zip(r.json["results"], oc(xs))),
            "a model added by SIGHUP scores like PyTorch: %s" % r.raw[:200])
    C.check("1 unchanged" in d.logs() or "unchanged" in d.logs(), "the unchanged head was not reloaded")
    del cfg["models"]["extra"]
    write_cfg(d, cfg)
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: d.request("GET", "/v1/models/extra", key=API).status == 404, what="extra removed")
    r = score(d, "extra", xs)
    C.check(r.status == 404 and r.json["error"]["code"] == "unknown_model", "a removed model is unknown: %d" % r.status)
    time.sleep(0.5)
    stop.set()
    for t in ts:
        t.join()
    print("under load: %d requests ok (%d old head, %d new head), %d failed" % (
        stats["ok"], stats["a"], stats["b"], len(stats["bad"])))
    C.check(not stats["bad"], "no request failed or dropped across 3 reloads: %s" % stats["bad"][:3])
    C.check(stats["a"] > 0 and stats["b"] > 0, "both heads served (%d, %d)" % (stats["a"], stats["b"]))

    # 3. a bad config changes nothing
    before = d.request("GET", "/v1/models", key=API).json
    n_refused = d.logs().count("reload refused")
    for bad in ('{"models": {"head": {"path": 3}}}', '{"models": ', '{"modles": {}}'):
        with open(d.cfg_path, "w") as f:
            f.write(bad)
        d.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: d.logs().count("reload refused") > n_refused, what="refusal logged")
        n_refused = d.logs().count("reload refused")
    after = d.request("GET", "/v1/models", key=API).json
    C.check([(m["name"], m["state"], m.get("path")) for m in before["models"]] ==
            [(m["name"], m["state"], m.get("path")) for m in after["models"]], "bad configs changed nothing")
    log = d.logs()
    C.check("models.head.path" in log and "unknown field" in log, "the log says why: %s" % [
        ln for ln in log.splitlines() if "refused" in ln][-3:])
    xs = [[rng.uniform(-1, 1) for _ in range(D_IN)] for _ in range(2)]
    r = score(d, "head", xs)
    C.check(r.status == 200 and close([r.json["results"][0]["scores"]["quality"],
                                       r.json["results"][0]["scores"]["safety"]], ob(xs)[0]),
            "still serving the new head")
    write_cfg(d, cfg)

    # 4. the admin API
    load = "/v1/models/third/load"
    body = {"path": "c"}
    r = d.request("POST", load, body)
    C.check(r.status == 401, "load without a key: %d" % r.status)
    r = d.request("POST", load, body, key=API)
    C.check(r.status == 401, "load with an API key (not the admin key): %d" % r.status)
    r = d.request("POST", load, body, key=ADMIN[:-1] + "x")
    C.check(r.status == 401, "load with a wrong admin key: %d" % r.status)
    r = d.request("GET", load, key=ADMIN)
    C.check(r.status == 405, "GET on load: %d" % r.status)
    for p in (os.path.join(work, "outside"), "../outside", "/etc"):
        r = d.request("POST", load, {"path": p}, key=ADMIN)
        C.check(r.status == 403 and r.json["error"]["field"] == "path", "path outside the root %s: %d %s" % (
            p, r.status, r.raw[:150]))
    os.symlink(os.path.join(work, "outside"), os.path.join(root, "link"))
    r = d.request("POST", load, {"path": "link"}, key=ADMIN)
    C.check(r.status == 403, "a symlink out of the root is refused: %d" % r.status)
    r = d.request("POST", load, {"path": "nope"}, key=ADMIN)
    C.check(r.status == 404, "a missing path: %d" % r.status)
    r = d.request("POST", load, {"path": "c", "colour": 1}, key=ADMIN)
    C.check(r.status == 400, "unknown field: %d" % r.status)
    # options that name files are held to the same root (CLIP's heads[].path, sql's database_root, ...)
    outside_head = os.path.join(work, "outside", "model.safetensors")
    for opts, field in (
            ({"heads": [{"name": "h", "path": outside_head}]}, "options.heads[0].path"),
            ({"heads": [{"name": "ok", "path": "c"}, {"name": "h", "path": "../outside"}]},
             "options.heads[1].path"),
            ({"database_root": "/etc"}, "options.database_root"),
            ({"tokenizer": "link"}, "options.tokenizer"),
            ({"extra": {"vocab_file": "/etc/passwd"}}, "options.extra.vocab_file"),
            ({"data_files": ["c", "/etc/hostname"]}, "options.data_files[1]"),
            ({"heads": [{"name": "h", "path": "nope"}]}, "options.heads[0].path")):
        r = d.request("POST", "/v1/models/opt/load", {"path": "c", "options": opts}, key=ADMIN)
        C.check(r.status == 400 and r.json["error"]["field"] == field and
                "admin.model_root" in r.json["error"]["message"],
                "option naming a file outside the root refused, naming %s: %d %s" % (field, r.status, r.raw[:200]))
    C.check(d.request("GET", "/v1/models/opt", key=API).status == 404, "a refused load adds no model")
    r = d.request("POST", load, body, key=ADMIN)
    C.check(r.status == 202 and r.json["state"] == "loading", "load accepted: %d %s" % (r.status, r.raw[:200]))
    wait_for(lambda: d.request("GET", "/v1/models/third", key=API).json.get("state") == "ready",
             what="third ready")
    C.check("warmed up" in d.logs(), "a warm-up batch ran before ready")
    xs = [[rng.uniform(-1, 1) for _ in range(D_IN)] for _ in range(3)]
    r = score(d, "third", xs)
    C.check(r.status == 200 and all(close([x["scores"]["quality"], x["scores"]["safety"]], w)
                                    for x, w in zip(r.json["results"], oc(xs))),
            "the admin-loaded model scores like PyTorch")
    m = d.metrics()
    C.check(H.metric(m, "rewardd_model_loaded", model="third") == 1, "rewardd_model_loaded{third} = 1")
    # a broken model: failed with a reason, nothing else changes
    os.makedirs(os.path.join(root, "broken"))
    with open(os.path.join(root, "broken", "config.json"), "w") as f:
        f.write('{"rewardd_kind": "mlp"}')
    r = d.request("POST", "/v1/models/broken/load", {"path": "broken"}, key=ADMIN)
    C.check(r.status == 202, "broken accepted (%d)" % r.status)
    st = wait_for(lambda: (lambda j: j if j.get("state") == "failed" else None)(
        d.request("GET", "/v1/models/broken", key=API).json), what="broken failed")
    C.check(st and st.get("reason"), "failed with a reason: %s" % (st or {}).get("reason"))
    C.check(d.request("GET", "/readyz").status == 200, "a failed admin load keeps the replica ready")
    r = d.request("POST", "/v1/models/third/unload", key=API)
    C.check(r.status == 401, "unload with an API key: %d" % r.status)
    r = d.request("POST", "/v1/models/third/unload", key=ADMIN)
    C.check(r.status == 202 and r.json["state"] == "draining", "unload accepted: %d" % r.status)
    wait_for(lambda: d.request("GET", "/v1/models/third", key=API).status == 404, what="third gone")
    r = score(d, "third", xs)
    C.check(r.status == 404, "an unloaded model is unknown: %d" % r.status)
    r = d.request("POST", "/v1/models/third/unload", key=ADMIN)
    C.check(r.status == 404, "unloading it again: %d" % r.status)
    C.check(H.metric(d.metrics(), "rewardd_model_loaded", model="third") == 0, "rewardd_model_loaded{third} = 0")


if __name__ == "__main__":
    main()
