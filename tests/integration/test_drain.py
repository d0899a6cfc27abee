"""SIGTERM in the middle of load: every connection the daemon accepted gets an
HTTP answer. Usage: test_drain.py REWARDD_EXE

Each round starts the daemon, runs 32 clients that open a new connection per
request with urllib (as OpenRLHF HEAD does with a new aiohttp session per
sample), 8 http.client clients that keep one connection alive, clients whose
body is still uploading and clients that connect and send their request only
after the signal, then sends SIGTERM mid-load.

Every outcome is classified, and nothing is excused:
- 200 with the right scores (checked against a PyTorch oracle run here);
- 503 `draining` with `Connection: close` (a request the daemon did not take);
- connection refused at connect (the listener was already closed: the
  daemon never accepted the connection, the client knows nothing was sent);
- anything else is LOST: a reset, a close without a status line, a timeout,
  a truncated reply. A connection that was accepted and got no HTTP answer
  is lost, whatever the reason.
The daemon must exit 0 within the drain bound, in every round.
"""
import http.client
import json
import os
import random
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rwd_harness as H  # noqa: E402

EXE = sys.argv[1]
ROUNDS = int(os.environ.get("RWD_DRAIN_ROUNDS", "4"))
CLIENTS = 32
UPLOADERS = 4     # bodies still uploading at the signal
LATE = 4          # connected before the signal, request sent after it
KEEPALIVE = 8     # http.client clients reusing one connection
D_IN = 32
C = H.Checker("test_drain")
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def is_refused(e):
    r = getattr(e, "reason", e)
    return isinstance(r, ConnectionRefusedError)


def check_draining(status, headers, raw, where):
    """A 503 must be the documented draining answer, closing the connection."""
    doc = H.CONTRACT.validate("POST", "/v1/rewards", status, headers.get("Content-Type", ""), raw)
    ok = doc["error"]["code"] == "draining" and (headers.get("Connection") or "").lower() == "close"
    return ok or "%s: 503 but %r (Connection: %r)" % (where, doc, headers.get("Connection"))


def one_round(rnd_no, work, oracle, pool, want):
    cfg = {"shutdown": {"drain_timeout_ms": 10000},
           "models": {"head": {"path": os.path.join(work, "head"),
                               # a 20 ms batching delay keeps items queued at the signal
                               "batching": {"max_batch_size": 256, "max_delay_us": 20000}}}}
    d = H.Daemon(EXE, cfg)
    url = "http://127.0.0.1:%d/v1/rewards" % d.port
    stop = threading.Event()
    signalled = threading.Event()
    lock = threading.Lock()
    st = {"ok": 0, "draining": 0, "refused": 0, "refused_s": [], "lost": [], "bad": []}

    def lost(why):
        with lock:
            st["lost"].append(why)

    def bad(why):
        with lock:
            st["bad"].append(why)

    def client(ci):
        r_ = random.Random(rnd_no * 1000 + ci)
        while not stop.is_set():
            i = r_.randrange(len(pool))
            body = json.dumps({"items": [{"id": i, "embedding": pool[i]}]}).encode()
            req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
            t_try = time.time()
            try:
                with OPENER.open(req, timeout=20) as resp:
                    status, hdrs, raw = resp.status, resp.headers, resp.read()
            except urllib.error.HTTPError as e:
                status, hdrs, raw = e.code, e.headers, e.read()
            except Exception as e:  # noqa: BLE001 -- classified below
                if is_refused(e):
                    with lock:
                        st["refused"] += 1
                        # >= 1 s: the SYN was dropped by the daemon's filter and retried
                        st["refused_s"].append(time.time() - t_try)
                    return  # the listener is closed: the drain is over
                lost("client %d: %r" % (ci, e))
                continue
            if status == 200:
                res = json.loads(raw)["results"][0]
                err = max(abs(res["scores"]["quality"] - want[i][0]),
                          abs(res["scores"]["safety"] - want[i][1]))
                if res.get("id") != i or err > 1e-4:
                    bad("wrong answer for %d (err %g)" % (i, err))
                with lock:
                    st["ok"] += 1
            elif status == 503:
                c = check_draining(status, hdrs, raw, "client %d" % ci)
                if c is not True:
                    bad(c)
                with lock:
                    st["draining"] += 1
            else:
                bad("status %d %r" % (status, raw[:200]))

    def keepalive(ki):
        # one connection for many requests; a new one after Connection: close
        r_ = random.Random(rnd_no * 1000 + 500 + ki)
        conn = None
        while not stop.is_set():
            i = r_.randrange(len(pool))
            body = json.dumps({"items": [{"id": i, "embedding": pool[i]}]}).encode()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=20)
                conn.request("POST", "/v1/rewards", body=body, headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                raw = resp.read()
            except Exception as e:  # noqa: BLE001
                if conn:
                    conn.close()
                conn = None
                if is_refused(e):
                    with lock:
                        st["refused"] += 1
                    return
                lost("keep-alive %d: %r" % (ki, e))
                continue
            hdrs = {k: v for k, v in resp.getheaders()}
            if resp.status == 200:
                with lock:
                    st["ok"] += 1
            elif resp.status == 503:
                c = check_draining(503, hdrs, raw, "keep-alive %d" % ki)
                if c is not True:
                    bad(c)
                with lock:
                    st["draining"] += 1
            else:
                bad("keep-alive %d: status %d %r" % (ki, resp.status, raw[:200]))
            if (hdrs.get("Connection") or "").lower() == "close":
                conn.close()
                conn = None

    def send_and_read(sock, where, pieces):
        """Send pieces (with pauses), then read the whole answer."""
        try:
            for p, pause in pieces:
                sock.sendall(p)
                time.sleep(pause)
            resp = http.client.HTTPResponse(sock)
            resp.begin()
            raw = resp.read()
        except Exception as e:  # noqa: BLE001
            if is_refused(e):
                with lock:
                    st["refused"] += 1
                return
            lost("%s: %r" % (where, e))
            return
        finally:
            sock.close()
        hdrs = {k: v for k, v in resp.getheaders()}
        if resp.status == 503:
            c = check_draining(503, hdrs, raw, where)
            if c is not True:
                bad(c)
            with lock:
                st["draining"] += 1
        elif resp.status == 200:
            with lock:
                st["ok"] += 1
        else:
            bad("%s: status %d %r" % (where, resp.status, raw[:200]))

    def uploader(ui):
        # headers and part of the body before the signal, the rest after it
        i = ui
        body = json.dumps({"items": [{"id": i, "embedding": pool[i]}]}).encode()
        head = ("POST /v1/rewards HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n" % len(body)).encode()
        try:
            s = socket.create_connection(("127.0.0.1", d.port), timeout=20)
        except OSError as e:
            lost("uploader %d: connect before the signal failed: %r" % (ui, e))
            return
        half = len(body) // 2
        s.sendall(head + body[:half])
        signalled.wait(10)
        rest = body[half:]
        n = max(1, len(rest) // 5)
        send_and_read(s, "uploader %d" % ui, [(rest[k:k + n], 0.05) for k in range(0, len(rest), n)])

    def late(li):
        # connected before the signal; the request goes out after it
        try:
            s = socket.create_connection(("127.0.0.1", d.port), timeout=20)
        except OSError as e:
            lost("late %d: connect before the signal failed: %r" % (li, e))
            return
        signalled.wait(10)
        time.sleep(0.01 * li)
        i = 100 + li
        body = json.dumps({"items": [{"id": i, "embedding": pool[i]}]}).encode()
        head = ("POST /v1/rewards HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n" % len(body)).encode()
        send_and_read(s, "late %d" % li, [(head + body, 0)])

    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    threads += [threading.Thread(target=keepalive, args=(k,)) for k in range(KEEPALIVE)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    extra = [threading.Thread(target=uploader, args=(u,)) for u in range(UPLOADERS)]
    extra += [threading.Thread(target=late, args=(k,)) for k in range(LATE)]
    for t in extra:
        t.start()
    time.sleep(0.2)
    with lock:
        before = st["ok"]
    t_sig = time.time()
    d.proc.send_signal(signal.SIGTERM)
    signalled.set()
    try:
        rc = d.proc.wait(30)
    except Exception:  # noqa: BLE001
        d.proc.kill()
        rc = d.proc.wait()
    took = time.time() - t_sig
    stop.set()
    for t in threads + extra:
        t.join(60)
    logs = d.logs()
    d.log.close()
    C.check(not H.sanitizer_reports(logs), "round %d: no sanitizer report in the daemon's log" % rnd_no)
    print("round %d: before SIGTERM %d answered; ok %d, draining %d, refused %d, LOST %d, bad %d; "
          "exit %d after %.2f s" % (rnd_no, before, st["ok"], st["draining"], st["refused"],
                                     len(st["lost"]), len(st["bad"]), rc, took))
    slow = [t for t in st["refused_s"] if t >= 0.9]
    print("  refused connects: %d, %d of them after >= 0.9 s (a SYN dropped while the listener "
          "closed, then retried)" % (len(st["refused_s"]), len(slow)))
    for line in logs.splitlines():
        if "listener" in line or "drained" in line or "drain" in line:
            print("  daemon:", line)
    C.check(before > 0, "round %d: load was running" % rnd_no)
    C.check(rc == 0, "round %d: exit 0 after SIGTERM (got %d)" % (rnd_no, rc))
    C.check(took < 10 + 2, "round %d: exited within the drain bound (%.2f s)" % (rnd_no, took))
    C.check(not st["lost"], "round %d: every accepted connection got an HTTP answer; lost %d: %r"
            % (rnd_no, len(st["lost"]), st["lost"][:5]))
    C.check(not st["bad"], "round %d: every answer is right: %r" % (rnd_no, st["bad"][:5]))
    C.check("(0 requests unanswered)" in logs, "round %d: the daemon reports no unanswered request" % rnd_no)
    return len(st["lost"]), st["ok"] + st["draining"] + st["refused"] + len(st["lost"])


def main():
    work = H.mkdtemp("rwd-drain-")
    oracle = H.make_mlp_head(os.path.join(work, "head"), d_in=D_IN, d_hidden=64, seed=5)
    rnd = random.Random(11)
    pool = [[rnd.uniform(-1, 1) for _ in range(D_IN)] for _ in range(256)]
    want = oracle(pool)
    total_lost = total = 0
    for k in range(ROUNDS):
        lo, n = one_round(k, work, oracle, pool, want)
        total_lost += lo
        total += n
    print("lost %d of %d requests over %d rounds" % (total_lost, total, ROUNDS))
    C.done()


if __name__ == "__main__":
    main()
