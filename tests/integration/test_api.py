"""rewardd's REST API end to end: correct scores (PyTorch oracle), the
bad-input corpus (each gets its status and JSON error, and the daemon keeps
answering), every error status where it applies, auth, models, readiness,
metrics, config refusal. Usage: test_api.py REWARDD_EXE"""
import base64
import io
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rwd_harness as H  # noqa: E402

EXE = sys.argv[1]
KEY = "k-" + "%032x" % random.getrandbits(128)
C = H.Checker("test_api")
D_IN = 16


def raw_request(port, data, read_timeout=5):
    """Send raw bytes, return (status, headers, body) of the first reply."""
    s = socket.create_connection(("127.0.0.1", port), timeout=read_timeout)
    try:
        s.sendall(data)
        buf = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            buf += chunk
            if b"\r\n\r\n" in buf:
                head, _, rest = buf.partition(b"\r\n\r\n")
                cl = [ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length:")]
                if cl and len(rest) >= int(cl[0].split(b":")[1]):
                    break
    finally:
        s.close()
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0] else 0
    hdrs = [tuple(x.decode().split(":", 1)) for x in lines[1:] if b":" in x]
    return status, [(k.strip(), v.strip()) for k, v in hdrs], body


def expect_error(d, status, body, code=None, field=None, ctype="application/json", what="",
                 route="/v1/rewards", key=KEY):
    if isinstance(body, str):
        body = body.encode()
    h = {"Content-Type": ctype} if ctype else {}
    r = d.request("POST", route, body=body, headers=h, key=key)
    ok = r.status == status and r.json is not None and "error" in r.json
    if ok and code:
        ok = r.json["error"]["code"] == code
    if ok and field is not None:
        ok = r.json["error"].get("field") == field
    C.check(ok, "%s: want %d %s %s, got %d %s" % (what, status, code or "", field or "",
                                                   r.status, r.raw[:200]))
    return r


def alive(d):
    r = d.request("GET", "/healthz")
    C.check(r.status == 200 and r.json["status"] == "ok", "healthz after bad input")


def main():
    work = H.mkdtemp("rwd-api-")
    oracle = H.make_mlp_head(os.path.join(work, "head"), d_in=D_IN)
    # rules and image_metrics are built in (lib/models): a load failure fails the start
    models = {"head": {"path": os.path.join(work, "head"),
                       "batching": {"max_batch_size": 8, "max_delay_us": 1000}},
              "rules": {"kind": "rules"},
              "image_metrics": {"kind": "image_metrics"}}
    cfg = {"http": {"max_body_bytes": 65536, "threads": 2},
           "requests": {"max_items": 64, "max_json_depth": 32},
           "models": models}
    d = H.Daemon(EXE, cfg, env={"REWARDD_API_KEYS": "other-key," + KEY})
    try:
        run_main(d, oracle)
    finally:
        rc = d.stop()
        C.check(rc == 0, "exit status after SIGTERM is %d" % rc)
    run_slow(work)
    run_empty()
    run_config_errors(work)
    C.done()


def run_main(d, oracle):
    rnd = random.Random(1)
    # --- correct answers, item order, ids, dimensions
    xs = [[rnd.uniform(-2, 2) for _ in range(D_IN)] for _ in range(5)]
    want = oracle(xs)
    items = [{"id": "i%d" % i, "embedding": x} for i, x in enumerate(xs)]
    items[3]["id"] = 3
    r = d.request("POST", "/v1/rewards", {"model": "head", "items": items}, key=KEY)
    C.check(r.status == 200, "score 5 items: %d %s" % (r.status, r.raw[:300]))
    worst = 0.0
    if r.status == 200:
        C.check(r.json["dimensions"] == ["quality", "safety"], "dimensions %r" % r.json["dimensions"])
        for i, res in enumerate(r.json["results"]):
            C.check(res.get("id") == items[i]["id"], "id echoed in order")
            for k, dim in enumerate(["quality", "safety"]):
                worst = max(worst, abs(res["scores"][dim] - want[i][k]))
            mean = (want[i][0] + want[i][1]) / 2
            C.check(abs(res["reward"] - mean) < 1e-4, "reward is the mean of the dimensions")
        C.check(r.header("Server-Timing") is not None, "Server-Timing header")
    print("mlp head vs PyTorch: worst abs error %.3g" % worst)
    C.check(worst < 1e-4, "scores match PyTorch (worst %.3g)" % worst)
    # one dimension requested: reward = that score
    r = d.request("POST", "/v1/rewards", {"model": "head", "items": items[:1], "dimensions": ["safety"],
                                          "priority": "high", "timeout_ms": 5000}, key=KEY)
    C.check(r.status == 200 and list(r.json["results"][0]["scores"]) == ["safety"] and
            abs(r.json["results"][0]["reward"] - want[0][1]) < 1e-4, "dimensions selects and combines")
    # empty items: 200 with nothing
    r = d.request("POST", "/v1/rewards", {"model": "head", "items": []}, key=KEY)
    C.check(r.status == 200 and r.json["results"] == [], "empty items")

    # --- models, health, readiness, metrics
    r = d.request("GET", "/v1/models", key=KEY)
    names = [m["name"] for m in r.json["models"]] if r.status == 200 else []
    C.check("head" in names, "GET /v1/models lists head")
    r = d.request("GET", "/v1/models/head", key=KEY)
    C.check(r.status == 200 and r.json["kind"] == "mlp" and r.json["inputs"] == ["embedding", "embedding_b64"] and
            r.json["weight_bytes"] > 0, "GET /v1/models/head")
    r = d.request("GET", "/v1/models/nope", key=KEY)
    C.check(r.status == 404, "unknown model 404 on /v1/models/{name}")
    r = d.request("GET", "/readyz")
    C.check(r.status == 200 and r.json["status"] == "ready", "readyz 200")
    r = d.request("GET", "/metrics")
    C.check(r.status == 200 and b"rewardd_batch_size_items_bucket" in r.raw, "metrics open by default")

    # --- 401
    r = d.request("POST", "/v1/rewards", {"model": "head", "items": items[:1]})
    C.check(r.status == 401 and r.json["error"]["code"] == "unauthorized" and
            r.header("WWW-Authenticate") == "Bearer", "missing key 401")
    r = d.request("POST", "/v1/rewards", {"model": "head", "items": items[:1]}, key=KEY[:-1] + "x")
    C.check(r.status == 401, "wrong key 401")
    r = d.request("GET", "/v1/models")
    C.check(r.status == 401, "models need the key")
    r = d.request("POST", "/v1/rewards", {"model": "head", "items": items[:1]}, key="other-key")
    C.check(r.status == 200, "second key accepted")
    C.check(d.request("GET", "/healthz").status == 200, "healthz open")

    # --- 404 / 405
    r = d.request("GET", "/nope", key=KEY)
    C.check(r.status == 404 and r.json["error"]["code"] == "not_found", "unknown route 404")
    r = d.request("GET", "/v1/rewards", key=KEY)
    C.check(r.status == 405 and r.header("Allow") == "POST", "GET /v1/rewards 405 with Allow")
    r = d.request("DELETE", "/v1/models", key=KEY)
    C.check(r.status == 405 and r.header("Allow") == "GET", "DELETE /v1/models 405")
    expect_error(d, 404, json.dumps({"model": "nope", "items": items[:1]}), "unknown_model", "model",
                 what="unknown model")

    # --- the bad-input corpus: status, JSON error, daemon still answering
    emb = json.dumps(xs[0])
    corpus = [
        ("malformed JSON", '{"items": [', 400, "invalid_json", None),
        ("trailing garbage", '{"items": []} x', 400, "invalid_json", None),
        ("not an object", '[1,2]', 400, "invalid_request", None),
        ("empty body", '', 400, "invalid_json", None),
        ("items not an array", '{"model":"head","items":{}}', 400, "invalid_request", "items"),
        ("missing items", '{"model":"head"}', 400, "invalid_request", "items"),
        ("item not an object", '{"model":"head","items":[1]}', 400, "invalid_request", "items[0]"),
        ("embedding a string", '{"model":"head","items":[{"embedding":"x"}]}', 400, "invalid_request",
         "items[0].embedding"),
        ("wrong embedding length", '{"model":"head","items":[{"embedding":[1,2,3]}]}', 400,
         "invalid_request", "items[0].embedding"),
        ("embedding element a string", '{"model":"head","items":[{"embedding":["a"%s]}]}' % (",1" * (D_IN - 1)),
         400, "invalid_request", "items[0].embedding"),
        ("model not a string", '{"model":5,"items":[]}', 400, "invalid_request", "model"),
        ("timeout not an integer", '{"model":"head","items":[],"timeout_ms":"x"}', 400,
         "invalid_request", "timeout_ms"),
        ("negative timeout", '{"model":"head","items":[],"timeout_ms":-1}', 400, "invalid_request",
         "timeout_ms"),
        ("bad priority", '{"model":"head","items":[],"priority":"urgent"}', 400, "invalid_request",
         "priority"),
        ("unknown field", '{"model":"head","items":[],"dimension":["x"]}', 400, "invalid_request",
         "dimension"),
        ("id an object", '{"model":"head","items":[{"id":{},"embedding":%s}]}' % emb, 400,
         "invalid_request", "items[0].id"),
        ("duplicate keys", '{"model":"head","model":"head","items":[]}', 400, "invalid_json", None),
        ("duplicate keys in an item", '{"model":"head","items":[{"embedding":%s,"embedding":%s}]}' % (emb, emb),
         400, "invalid_json", None),
        ("huge real", '{"model":"head","items":[{"embedding":[1e999%s]}]}' % (",1" * (D_IN - 1)), 400,
         "invalid_json", None),
        ("huge integer", '{"model":"head","items":[],"timeout_ms":123456789012345678901234567890}', 400,
         "invalid_json", None),
        ("out of float range", '{"model":"head","items":[{"embedding":[1e300%s]}]}' % (",1" * (D_IN - 1)),
         400, "invalid_request", "items[0].embedding"),
        ("NaN", '{"model":"head","items":[{"embedding":[NaN%s]}]}' % (",1" * (D_IN - 1)), 400,
         "invalid_json", None),
        ("Infinity", '{"model":"head","items":[{"embedding":[Infinity]}]}', 400, "invalid_json", None),
        ("deep nesting", '{"model":"head","items":[' + "[" * 100 + "]" * 100 + "]}", 400,
         "invalid_request", None),
        ("very deep nesting", "[" * 60000, 400, "invalid_request", None),
        ("NUL escape", '{"model":"he\\u0000ad","items":[]}', 400, "invalid_json", None),
    ]
    for what, body, status, code, field in corpus:
        expect_error(d, status, body, code, field, what=what)
    # JSON syntax errors carry a line/column
    r = expect_error(d, 400, '{\n  "items": [,]\n}', "invalid_json", what="line/column")
    C.check(r.json["error"].get("line") == 2, "syntax error line: %r" % r.json)
    # invalid UTF-8 (raw bytes)
    expect_error(d, 400, b'{"model":"head","items":[{"id":"\xff\xfe","embedding":[]}]}', "invalid_json",
                 what="invalid UTF-8")
    expect_error(d, 400, b'{"model":"head","items":[{"id":"\xc0\xaf"}]}', "invalid_json",
                 what="overlong UTF-8")
    # 413: Content-Length over the cap, a chunked body over the cap, too many items, a long id
    big = json.dumps({"model": "head", "items": [{"embedding": xs[0]}] * 400})
    expect_error(d, 413, big, "too_large", what="body over max_body_bytes")
    chunk = b'{"model":"head","items":[' + b'{"embedding":[1]},' * 4000
    req = (b"POST /v1/rewards HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() +
           b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    for i in range(0, len(chunk), 8000):
        part = chunk[i:i + 8000]
        req += b"%x\r\n" % len(part) + part + b"\r\n"
    req += b"0\r\n\r\n"
    st, hd, body = raw_request(d.port, req)
    ctype = dict((k.lower(), v) for k, v in hd).get("content-type", "")
    C.check(st == 413, "chunked body over the cap: %d" % st)
    if st == 413:
        H.CONTRACT.validate("POST", "/v1/rewards", st, ctype, body)
    expect_error(d, 413, json.dumps({"model": "head", "items": [{"embedding": [0]}] * 65}), "too_large",
                 "items", what="too many items")
    expect_error(d, 413, json.dumps({"model": "head", "items": [{"id": "x" * 300, "embedding": xs[0]}]}),
                 "too_large", "items[0].id", what="long id")
    # 415: not JSON
    expect_error(d, 415, json.dumps({"model": "head", "items": []}), "unsupported_media_type",
                 ctype="text/plain", what="text/plain body")
    expect_error(d, 415, "a=b", "unsupported_media_type", ctype="application/x-www-form-urlencoded",
                 what="form body")
    # 422: a dimension the model does not have
    expect_error(d, 422, json.dumps({"model": "head", "items": [{"embedding": xs[0]}],
                                     "dimensions": ["nope"]}), "unprocessable", "dimensions[0]",
                 what="unknown dimension")
    expect_error(d, 400, json.dumps({"model": "head", "items": [{"embedding": xs[0]}],
                                     "dimensions": ["safety", "safety"]}), "invalid_request",
                 "dimensions[1]", what="repeated dimension")
    # model required when several are served
    expect_error(d, 400, json.dumps({"items": []}), "invalid_request", "model",
                 what="model omitted with several served")
    run_images(d)
    r = d.request("POST", "/v1/rewards", {"model": "rules", "items": [
        {"id": 1, "response": "The answer is 42", "label": "42"}, {"response": "no label"}]}, key=KEY)
    C.check(r.status == 200 and len(r.json["results"]) == 2, "rules scores: %s" % r.raw[:300])
    # slow-loris style: headers never finished, connection dropped; a request
    # whose client hangs up right after sending; garbage request line
    for junk in [b"GET /healthz HTTP/1.1\r\nHost", b"\x00\x01\x02garbage\r\n\r\n",
                 b"POST /v1/rewards HTTP/1.1\r\nContent-Length: 100\r\n\r\n{"]:
        s = socket.create_connection(("127.0.0.1", d.port))
        s.sendall(junk)
        s.close()
    alive(d)
    # the daemon answered everything above and is still up
    m = d.metrics()
    ok = H.metric(m, "rewardd_items_total", model="head", outcome="ok")
    C.check(ok >= 7, "items ok counted (%s)" % ok)
    C.check(H.metric(m, "rewardd_http_requests_total", route="/v1/rewards", code="400") >= len(corpus) - 5,
            "400s counted")
    C.check(H.metric(m, "rewardd_process_resident_memory_bytes") > 0, "rss gauge")


def run_images(d):
    """415 and 422-class failures that come from the image_metrics kind."""
    try:
        from PIL import Image
    except ImportError:
        print("PIL missing: image checks skipped")
        return
    def b64(fmt, size=(16, 16)):
        buf = io.BytesIO()
        Image.new("RGB", size, (120, 30, 200)).save(buf, fmt)
        return base64.b64encode(buf.getvalue()).decode()
    png = b64("PNG")
    r = d.request("POST", "/v1/rewards", {"model": "image_metrics", "items": [{"image": png}]}, key=KEY)
    C.check(r.status == 200, "image_metrics scores a PNG: %d %s" % (r.status, r.raw[:300]))
    gif = b64("GIF")
    r = d.request("POST", "/v1/rewards", {"model": "image_metrics", "items": [{"image": gif}]}, key=KEY)
    C.check(r.status == 415 and r.json["error"]["code"] == "unsupported_media_type",
            "GIF image 415: %d %s" % (r.status, r.raw[:300]))
    # mixed: one good, one unsupported -> 200 with a per-item error, no reward
    r = d.request("POST", "/v1/rewards", {"model": "image_metrics", "items": [
        {"id": "ok", "image": png}, {"id": "bad", "image": gif}]}, key=KEY)
    good = r.status == 200 and "reward" in r.json["results"][0] and \
        "error" in r.json["results"][1] and "reward" not in r.json["results"][1] and \
        r.json["results"][1]["error"]["status"] == 415 and r.json["usage"]["items_failed"] == 1
    C.check(good, "mixed batch: per-item error, never a fake reward: %s" % r.raw[:400])


def run_slow(work):
    """429 (queue full, Retry-After) and 504 (deadline in queue) on a model
    whose batches wait 3 s to fill; 413 for a request larger than the queue."""
    cfg = {"requests": {"max_items": 4},
           "models": {"slow": {"path": os.path.join(work, "head"),
                               "batching": {"max_batch_size": 64, "max_delay_us": 3000000,
                                            "max_queue_items": 4}},
                      "gone": {"path": os.path.join(work, "head"),
                               "batching": {"max_batch_size": 64, "max_delay_us": 400000,
                                            "max_queue_items": 4}}}}
    d = H.Daemon(EXE, cfg)
    try:
        x = [0.5] * D_IN
        # a client that hangs up while its item waits: the work is dropped
        body = json.dumps({"model": "gone", "items": [{"embedding": x}] * 2}).encode()
        # start-up ran one warm-up batch through the real batcher before /readyz turned 200
        warm_batches = H.metric(d.metrics(), "rewardd_batch_size_items_count", model="gone")
        C.check(warm_batches == 1, "start-up warmed the model with one batch (got %s)" % warm_batches)
        s = socket.create_connection(("127.0.0.1", d.port))
        s.sendall(b"POST /v1/rewards HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body)
        time.sleep(0.1)
        s.close()
        t0 = time.time()
        while time.time() - t0 < 5:
            m = d.metrics()
            if H.metric(m, "rewardd_items_total", model="gone", outcome="cancelled") >= 2:
                break
            time.sleep(0.1)
        C.check(H.metric(m, "rewardd_items_total", model="gone", outcome="cancelled") == 2,
                "a gone client's items are dropped, not run")
        C.check(H.metric(m, "rewardd_batch_size_items_count", model="gone") == warm_batches,
                "no batch ran for them")
        # 4 items fill the queue (the batch waits for more); their deadline is 300 ms
        import threading
        res = {}

        def first():
            res["a"] = d.request("POST", "/v1/rewards", {"model": "slow", "items": [{"embedding": x}] * 4,
                                                        "timeout_ms": 1500})
        t = threading.Thread(target=first)
        t.start()
        t0 = time.time()
        while time.time() - t0 < 1.4:
            if d.request("GET", "/v1/models/slow").json["queue"]["queued"] == 4:
                break
            time.sleep(0.02)
        r = d.request("POST", "/v1/rewards", {"model": "slow", "items": [{"embedding": x}]})
        C.check(r.status == 429 and r.json["error"]["code"] == "queue_full" and
                r.header("Retry-After") == "1", "queue full 429 + Retry-After: %d %s" % (r.status, r.raw[:200]))
        t.join()
        a = res["a"]
        C.check(a.status == 504 and a.json["error"]["code"] == "deadline_exceeded",
                "deadline in queue 504: %d %s" % (a.status, a.raw[:200]))
        # timeout_ms is capped by config, and requests over the item cap are refused whole
        r = d.request("POST", "/v1/rewards", {"model": "slow", "items": [{"embedding": x}] * 5})
        C.check(r.status == 413, "more items than allowed: %d" % r.status)
        m = d.metrics()
        C.check(H.metric(m, "rewardd_items_total", model="slow", outcome="timeout") == 4, "timeouts counted")
        C.check(H.metric(m, "rewardd_items_total", model="slow", outcome="rejected") == 1, "rejections counted")
        C.check(H.metric(m, "rewardd_requests_total", model="slow", code="429") == 1, "429 counted")
    finally:
        C.check(d.stop() == 0, "slow daemon exit 0")


def run_empty():
    """No model: the daemon starts, /readyz is 503, scoring is 503; /metrics
    behind a key when configured so."""
    # One HTTP thread, so the connections are accepted in order (two pool threads
    # can accept the 3rd idle one and the 4th at once, and either is refused), and
    # a timeout well above the 0.2 s wait, so that a test starved of CPU on a
    # loaded machine does not see the idle ones already closed.
    d = H.Daemon(EXE, {"auth": {"metrics_requires_key": True},
                       "http": {"per_ip_connection_limit": 3, "connection_timeout_s": 2,
                                "threads": 1}},
                 env={"REWARDD_API_KEYS": KEY})
    try:
        r = d.request("GET", "/readyz")
        C.check(r.status == 503 and r.json["status"] == "no_models", "readyz 503 with no model")
        r = d.request("POST", "/v1/rewards", {"items": [{"embedding": [1]}]}, key=KEY)
        C.check(r.status == 503 and r.json["error"]["code"] == "no_model", "score with no model 503")
        C.check(d.request("GET", "/healthz").status == 200, "healthz 200 with no model")
        C.check(d.request("GET", "/metrics").status == 401, "metrics need the key when configured")
        # per-IP connection limit: a 4th concurrent connection from 127.0.0.1 is
        # answered 503 overloaded + Retry-After and closed (not reset); idle ones
        # are closed after connection_timeout_s, freeing slots
        idle = [socket.create_connection(("127.0.0.1", d.port)) for _ in range(3)]
        time.sleep(0.2)
        c4 = d.conn(timeout=5)
        c4.request("GET", "/healthz")
        r4 = c4.getresponse()
        b4 = json.loads(r4.read())
        c4.close()
        C.check(r4.status == 503 and b4["error"]["code"] == "overloaded" and
                r4.getheader("Retry-After") == "1" and r4.getheader("Connection") == "close",
                "per-IP connection limit: the 4th connection gets 503 overloaded + Retry-After "
                "(got %d %r %r)" % (r4.status, b4, r4.getheaders()))
        time.sleep(3.0)
        closed = 0
        for s_ in idle:
            s_.settimeout(1)
            try:
                closed += s_.recv(1) == b""
            except OSError:
                closed += 1
            s_.close()
        C.check(closed == 3, "idle connections closed after connection_timeout_s (%d of 3)" % closed)
        C.check(d.request("GET", "/healthz").status == 200, "slots free again")
        C.check(d.request("GET", "/metrics", key=KEY).status == 200, "metrics with the key")
    finally:
        C.check(d.stop(sig=2) == 0, "SIGINT exit 0")


def run_config_errors(work):
    """A bad config is refused naming the file, the field and the reason."""
    cases = [
        ({"http": {"connection_limit": 0}}, "http.connection_limit"),
        ({"htp": {}}, "htp"),
        ({"models": {"m": {"kind": "rules", "batching": {"max_batch_size": "8"}}}},
         "models.m.batching.max_batch_size"),
        ({"models": {"bad name!": {"kind": "rules"}}}, "models.bad name!"),
        ({"listen": "nowhere"}, "listen"),
        ({"models": {"m": {"path": os.path.join(work, "missing")}}}, "models.m"),
    ]
    for cfg, field in cases:
        p = os.path.join(work, "bad.json")
        with open(p, "w") as f:
            json.dump(cfg, f)
        r = subprocess.run([EXE, "--config", p, "--check-config"], capture_output=True, text=True)
        C.check(r.returncode != 0 and p in r.stderr and field in r.stderr,
                "bad config %r refused naming %s: rc=%d %s" % (cfg, field, r.returncode, r.stderr.strip()))
    p = os.path.join(work, "syntax.json")
    with open(p, "w") as f:
        f.write('{\n "listen": \n}')
    r = subprocess.run([EXE, "--config", p], capture_output=True, text=True)
    C.check(r.returncode != 0 and p in r.stderr and "line 3" in r.stderr, "syntax error: %s" % r.stderr)
    r = subprocess.run([EXE, "--version"], capture_output=True, text=True)
    C.check(r.returncode == 0 and r.stdout.startswith("rewardd "), "--version")
    r = subprocess.run([EXE, "--help"], capture_output=True, text=True)
    C.check(r.returncode == 0 and "--check-config" in r.stdout, "--help")
    r = subprocess.run([EXE, "--model", "h=" + os.path.join(work, "head"), "--check-config"],
                       capture_output=True, text=True)
    C.check(r.returncode == 0 and json.loads(r.stdout)["models"]["h"]["path"].endswith("head"),
            "--model + --check-config: %s" % r.stderr)


if __name__ == "__main__":
    main()
