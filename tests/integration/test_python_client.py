"""deploy/clients/python (rewardd_client) against the real daemon on 127.0.0.1,
plus a scripted HTTP server for the retry paths.

  - sync calls (rewards, scores, models, stats, get_reward) agree with the
    daemon's own /v1/rewards answer; connection reuse: one socket (same local
    port) across calls;
  - retries: 503 then 200 and 429 then 200 honour Retry-After; no retry on
    400 (real daemon: one request counted); a failure (persistent 503, 500,
    connection refused, an item error) raises, never a reward;
  - the TRL reward_funcs factory (one function per dimension, named after
    it, None where a dimension is absent, one request per batch) and the
    verl compute_score (and verl_reward.py) against the `rules` built-in.
Usage: test_python_client.py REWARDD_EXE (Debian's /usr/bin/python3).
"""
import http.server
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rwd_harness as H  # noqa: E402

sys.path.insert(0, os.path.join(H.SRC, "deploy", "clients", "python"))
from rewardd_client import Client, ItemError, RewarddError  # noqa: E402
from rewardd_client.adapters import trl_reward_funcs, verl_compute_score  # noqa: E402

C = H.Checker("python-client")


class Scripted(http.server.BaseHTTPRequestHandler):
    """Answers from a script: a list of (status, headers, body) per path, then 200."""
    protocol_version = "HTTP/1.1"
    script = {}
    seen = []

    def log_message(self, *a):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        Scripted.seen.append((self.path, time.time(), json.loads(body) if body else None))
        steps = Scripted.script.get(self.path, [])
        status, hdrs, out = steps.pop(0) if steps else (200, {}, {"ok": True})
        raw = json.dumps(out).encode()
        self.send_response(status)
        for k, v in hdrs.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


def scripted_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def run_retries():
    srv = scripted_server()
    url = "http://127.0.0.1:%d" % srv.server_address[1]
    c = Client(url, retries=3, backoff=0.05, max_backoff=5.0)
    err = {"error": {"code": "x", "message": "busy"}}
    # 503 with Retry-After: 1, then 200
    Scripted.script = {"/v1/rewards": [(503, {"Retry-After": "1"}, err)]}
    Scripted.seen = []
    t0 = time.time()
    out = c.request("POST", "/v1/rewards", {"items": []})
    dt = time.time() - t0
    C.check(out == {"ok": True} and len(Scripted.seen) == 2, "503 then 200: retried once, 200's body returned")
    C.check(0.95 <= dt < 3.0, "Retry-After: 1 honoured (waited %.2f s)" % dt)
    # 429 with Retry-After: 0 then 200, twice
    Scripted.script = {"/v1/rewards": [(429, {"Retry-After": "0"}, err), (429, {"Retry-After": "0"}, err)]}
    Scripted.seen = []
    out = c.request("POST", "/v1/rewards", {"items": []})
    C.check(out == {"ok": True} and len(Scripted.seen) == 3, "429 twice then 200: two retries")
    # 400: no retry, raises with the field
    Scripted.script = {"/v1/rewards": [(400, {}, {"error": {"code": "invalid_request", "message": "no",
                                                            "field": "items[0]"}})]}
    Scripted.seen = []
    try:
        c.request("POST", "/v1/rewards", {"items": []})
        C.check(False, "400 raises")
    except RewarddError as e:
        C.check(e.status == 400 and e.field == "items[0]" and len(Scripted.seen) == 1, "400 raises at once, no retry")
    # 500: no retry
    Scripted.script = {"/v1/rewards": [(500, {}, err)]}
    Scripted.seen = []
    try:
        c.request("POST", "/v1/rewards", {"items": []})
        C.check(False, "500 raises")
    except RewarddError as e:
        C.check(e.status == 500 and len(Scripted.seen) == 1, "500 raises, not retried")
    # persistent 503: retries exhausted -> raises (never a reward)
    Scripted.script = {"/v1/rewards": [(503, {"Retry-After": "0"}, err)] * 4}
    Scripted.seen = []
    try:
        c.request("POST", "/v1/rewards", {"items": []})
        C.check(False, "persistent 503 raises")
    except RewarddError as e:
        C.check(e.status == 503 and len(Scripted.seen) == 4, "persistent 503: 1 + 3 retries, then raises")
    srv.shutdown()
    srv.server_close()
    # connection refused: retried, then raises with status 0
    port = H.free_port()
    c = Client("http://127.0.0.1:%d" % port, retries=2, backoff=0.01)
    try:
        c.rewards([{"response": "x"}])
        C.check(False, "connection refused raises")
    except RewarddError as e:
        C.check(e.status == 0 and e.code == "connection_error", "connection refused -> RewarddError(0, connection_error)")


def main():
    exe = sys.argv[1]
    run_retries()
    d = H.Daemon(exe, {"models": {"rules": {"kind": "rules"}}})
    try:
        run_daemon(d)
        run_async(d)
    finally:
        rc = d.stop()
    C.check(rc == 0, "daemon exits 0")
    C.done()


def run_async(d):
    """AsyncClient (needs aiohttp: Debian python3-aiohttp) against the same daemon."""
    try:
        import asyncio

        import aiohttp  # noqa: F401
    except ImportError:
        print("SKIP part: aiohttp missing, AsyncClient not exercised")
        return
    from rewardd_client import AsyncClient, RewarddError as Err
    direct = d.request("POST", "/v1/rewards", {"model": "rules", "items": ITEMS}).json

    async def go():
        c = AsyncClient("http://127.0.0.1:%d" % d.port, retries=2, backoff=0.05)
        try:
            outs = await asyncio.gather(*[c.rewards(ITEMS, model="rules") for _ in range(4)])
            C.check(all(o["results"] == direct["results"] for o in outs),
                    "AsyncClient.rewards (4 concurrent) returns the daemon's answer")
            gr = await c.get_reward([ITEMS[0]["response"]], labels=["42"])
            C.check(gr["rewards"] == [direct["results"][0]["reward"]], "AsyncClient.get_reward: %s" % gr)
            try:
                await c.rewards(ITEMS, model="no-such-model")
                C.check(False, "AsyncClient: unknown model must raise")
            except Err as e:
                C.check(e.status == 404, "AsyncClient: 404 raised at once, not retried (%s)" % e)
        finally:
            await c.close()
    asyncio.run(go())


ITEMS = [
    {"response": "<think>6*7</think><answer>42</answer>", "label": "42"},
    {"response": "<think>hmm</think><answer>41</answer>", "label": "42"},
    {"response": "no tags, the answer is 42"},
]


def settled_delta(d, base, name, **labels):
    """How far a counter moved from `base`. The daemon counts a request when
    libmicrohttpd reports it complete, which can be just after the client has
    read the reply: wait (up to 5 s) for the count to move, then a little
    longer so a second, unexpected request would show too."""
    t0 = time.time()
    v = H.metric(d.metrics(), name, **labels)
    while v == base and time.time() - t0 < 5:
        time.sleep(0.02)
        v = H.metric(d.metrics(), name, **labels)
    time.sleep(0.2)
    return H.metric(d.metrics(), name, **labels) - base


def run_daemon(d):
    url = "http://127.0.0.1:%d" % d.port
    c = Client(url, retries=2, backoff=0.05)
    direct = d.request("POST", "/v1/rewards", {"model": "rules", "items": ITEMS}).json
    out = c.rewards(ITEMS, model="rules")
    C.check(out["results"] == direct["results"] and out["dimensions"] == direct["dimensions"],
            "Client.rewards returns the daemon's answer")
    port0 = c._local.conn.sock.getsockname()[1]
    res = c.scores(ITEMS, model="rules", dimensions=["format", "accuracy"])
    C.check(res[0]["scores"] == {"format": 1.0, "accuracy": 1.0} and res[1]["scores"]["accuracy"] == 0.0 and
            "accuracy" not in res[2]["scores"], "Client.scores: accuracy by construction, absent without a label")
    c.rewards(ITEMS[:1], model="rules")
    port1 = c._local.conn.sock.getsockname()[1]
    C.check(port0 == port1, "one keep-alive connection across scoring calls (local port %d == %d)" % (port0, port1))
    # (GET replies come with Connection: close from this daemon; the client then reconnects)
    m = c.models()
    st = c.stats()
    C.check(m["models"][0]["name"] == "rules" and "rules" in st["models"], "models() and stats()")
    # no retry on 400 against the daemon: one request counted
    before = H.metric(d.metrics(), "rewardd_http_requests_total", route="/v1/rewards", code="400")
    try:
        c.rewards([{"response": 5}], model="rules")
        C.check(False, "a 400 raises")
    except RewarddError as e:
        delta = settled_delta(d, before, "rewardd_http_requests_total", route="/v1/rewards", code="400")
        C.check(e.status == 400 and e.field == "items[0].response" and delta == 1,
                "400 from the daemon raises naming %s, sent once (%g)" % (e.field, delta))
    # an unknown model: 404 raises, no reward
    try:
        c.rewards(ITEMS, model="nope")
        C.check(False, "404 raises")
    except RewarddError as e:
        C.check(e.status == 404, "unknown model raises 404")
    # TRL factory: one function per dimension, one request per batch, None when absent
    funcs = trl_reward_funcs(c, model="rules", dimensions=["format", "accuracy"], label_column="solution",
                             include_reward=True)
    C.check([f.__name__ for f in funcs] == ["format", "accuracy", "reward"], "TRL functions named after dimensions")
    prompts = ["q1", "q2", "q3"]
    completions = [it["response"] for it in ITEMS]
    sol = [ITEMS[0]["label"], ITEMS[1]["label"], None]
    n0 = H.metric(d.metrics(), "rewardd_requests_total", model="rules", code="200")
    outs = [f(prompts, completions, solution=sol) for f in funcs]
    n_batch = settled_delta(d, n0, "rewardd_requests_total", model="rules", code="200")
    want = d.request("POST", "/v1/rewards", {"model": "rules", "dimensions": ["format", "accuracy"],
                                             "items": [{"prompt": p, "response": r, **({"label": s} if s else {})}
                                                       for p, r, s in zip(prompts, completions, sol)]}).json
    C.check(outs[0] == [x["scores"]["format"] for x in want["results"]], "TRL format values = the daemon's")
    C.check(outs[1] == [1.0, 0.0, None], "TRL accuracy: None where absent (%r)" % (outs[1],))
    C.check(outs[2] == [x["reward"] for x in want["results"]], "TRL reward = the daemon's reward")
    C.check(n_batch == 1, "the TRL functions share one request per batch (%g)" % n_batch)
    # chat-format completions
    f_fmt = trl_reward_funcs(c, model="rules", dimensions=["format"])[0]
    v = f_fmt([[{"role": "user", "content": "q"}]],
              [[{"role": "assistant", "content": ITEMS[0]["response"]}]])
    C.check(v == [1.0], "TRL conversational completions")
    # verl compute_score
    cs = verl_compute_score(c, model="rules", dimensions=["format", "accuracy"])
    r0 = cs("gsm8k", ITEMS[0]["response"], "42")
    r1 = cs("gsm8k", ITEMS[1]["response"], "42")
    C.check(r0 == {"score": 1.0, "rewardd/format": 1.0, "rewardd/accuracy": 1.0},
            "verl compute_score dict, dimensions under rewardd/ (%r)" % (r0,))
    C.check(r1["rewardd/accuracy"] == 0.0 and r1["score"] == 0.5, "verl: score is the daemon's reward (mean) (%r)" % (r1,))
    try:
        v = verl_compute_score(c, model="rules", dimensions=["accuracy"])("x", ITEMS[2]["response"], None)
        C.check(False, "verl: no reward raises (%r)" % (v,))
    except RewarddError as e:
        C.check(e.code == "no_reward", "verl: an item with no reward raises no_reward, never a number")
    os.environ.update({"REWARDD_URL": url, "REWARDD_MODEL": "rules", "REWARDD_DIMENSIONS": "accuracy"})
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "verl_reward", os.path.join(H.SRC, "deploy", "clients", "python", "verl_reward.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    C.check(mod.compute_score("x", ITEMS[0]["response"], "42") == {"score": 1.0, "rewardd/accuracy": 1.0},
            "verl_reward.py compute_score from the environment")
    # an item failure raises in scores() and verl, never a reward
    big = {"response": "x" * 10, "label": {"name": 1}}
    try:
        r = c.rewards([big], model="rules")
        C.check(False, "a bad item is refused (%r)" % (r,))
    except RewarddError as e:
        C.check(e.status == 400, "an invalid item raises %d" % e.status)
    C.check(issubclass(ItemError, RewarddError), "ItemError is a RewarddError")
    # OpenRLHF /get_reward through the client
    try:
        g = c.get_reward([it["response"] for it in ITEMS], labels=[it.get("label") for it in ITEMS])
        C.check(len(g["rewards"]) == 3, "get_reward answers one reward per query")
    except RewarddError as e:
        C.check(e.status == 404, "get_reward: route absent in this build (%d)" % e.status)


if __name__ == "__main__":
    main()
