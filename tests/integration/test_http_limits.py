"""Past a limit, the client reads an HTTP answer instead of a reset.
Usage: test_http_limits.py REWARDD_EXE

- Lingering 413: urllib and http.client send a body 110 MiB past
  http.max_body_bytes (Content-Length known, and chunked) and write it all
  before reading, as they do; they must read the JSON 413, not get a broken
  pipe or a reset.
- `Expect: 100-continue` with an oversize Content-Length gets the 413 before
  any byte of the body is sent (and no `100 Continue`).
- The linger bound holds: with http.linger_max_bytes small, a client that
  keeps sending is cut off (it gets no 413; the bound is what is tested).
- http.per_ip_connection_limit: the same, counted per client address
  (127.0.0.2 is served while 127.0.0.1 is at its limit).
- http.connection_limit: a connection past it is answered 503 `overloaded`
  with Retry-After and Connection: close.
- MHD's own hard limit (connection_limit + connection_limit/8 + 64): a
  connection past it is not reset; it waits in the kernel's backlog and is
  answered once a slot frees (measured and printed).
"""
import http.client
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rwd_harness as H  # noqa: E402

EXE = sys.argv[1]
C = H.Checker("test_http_limits")
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
LIMIT = 1 << 20
OVER = 110 << 20


def check_413(status, raw, what):
    ok = status == 413
    if not ok:
        C.check(False, "%s: the JSON 413 is read (got %r %r)" % (what, status, raw[:200]))
        return
    try:
        doc = H.CONTRACT.validate("POST", "/v1/rewards", status, "application/json", raw)
        ok = ok and doc["error"]["code"] == "too_large"
    except Exception as e:  # noqa: BLE001
        ok = False
        raw = b"%r %r" % (e, raw[:200])
    C.check(ok, "%s: the JSON 413 is read (got %r %r)" % (what, status, raw[:200]))


def lingering(d):
    url = "http://127.0.0.1:%d/v1/rewards" % d.port
    body = b'{"items": [{"embedding": [' + b"0," * ((LIMIT + OVER) // 2) + b'0]}]}'
    # urllib, Content-Length known (the 413 is decided from the headers)
    t0 = time.time()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with OPENER.open(req, timeout=60) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except Exception as e:  # noqa: BLE001
        status, raw = None, repr(e).encode()
    print("urllib, %d MiB body, Content-Length: %r in %.2f s" % (len(body) >> 20, status, time.time() - t0))
    check_413(status, raw, "urllib with Content-Length")

    # http.client, chunked (the 413 is decided when the running total passes the limit)
    def chunks():
        step = 1 << 20
        yield body[:step]
        for k in range(step, len(body), step):
            yield body[k:k + step]
    t0 = time.time()
    c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=60)
    try:
        c.request("POST", "/v1/rewards", body=chunks(), encode_chunked=True,
                  headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        r = c.getresponse()
        status, raw = r.status, r.read()
    except Exception as e:  # noqa: BLE001
        status, raw = None, repr(e).encode()
    c.close()
    print("http.client, chunked: %r in %.2f s" % (status, time.time() - t0))
    check_413(status, raw, "http.client chunked")

    # Expect: 100-continue: the answer comes before any byte of the body
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    s.sendall(("POST /v1/rewards HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               "Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % (LIMIT + OVER)).encode())
    t0 = time.time()
    try:
        resp = http.client.HTTPResponse(s)
        resp.begin()
        status, raw = resp.status, resp.read()
    except Exception as e:  # noqa: BLE001
        status, raw = None, repr(e).encode()
    s.close()
    print("Expect: 100-continue, no body sent: %r after %.3f s" % (status, time.time() - t0))
    check_413(status, raw, "Expect: 100-continue before the upload")

    # still serving
    C.check(d.request("GET", "/healthz").status == 200, "healthz after the 413s")


def linger_bound(exe):
    d = H.Daemon(exe, {"http": {"max_body_bytes": LIMIT, "linger_max_bytes": 4 << 20},
                       "models": {"rules": {"kind": "rules"}}})
    try:
        c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
        status = None
        try:
            def chunks():
                for _ in range(64):
                    yield b"0" * (1 << 20)
            c.request("POST", "/v1/rewards", body=chunks(), encode_chunked=True,
                      headers={"Content-Type": "application/json"})
            status = c.getresponse().status
        except (ConnectionError, OSError, http.client.HTTPException) as e:
            print("linger bound: cut off as configured: %r" % e)
        c.close()
        C.check(status is None, "a client sending past http.linger_max_bytes is cut off (got %r)" % status)
        C.check("linger_max_bytes" in d.logs(), "the cut-off is logged")
    finally:
        C.check(d.stop() == 0, "exit 0")


def connection_limits(exe):
    lim = 8
    hard = lim + lim // 8 + 64
    d = H.Daemon(exe, {"http": {"connection_limit": lim, "per_ip_connection_limit": 0, "threads": 1,
                                "connection_timeout_s": 30},
                       "models": {"rules": {"kind": "rules"}}})
    try:
        idle = [socket.create_connection(("127.0.0.1", d.port)) for _ in range(lim)]
        time.sleep(0.3)
        c = d.conn(timeout=5)
        c.request("GET", "/healthz")
        r = c.getresponse()
        doc = json.loads(r.read())
        c.close()
        C.check(r.status == 503 and doc["error"]["code"] == "overloaded" and
                r.getheader("Retry-After") == "1" and r.getheader("Connection") == "close",
                "past http.connection_limit: 503 overloaded + Retry-After + close (got %d %r)"
                % (r.status, doc))
        # fill MHD's own limit, then one more: it waits in the backlog, not reset
        idle += [socket.create_connection(("127.0.0.1", d.port)) for _ in range(hard - lim)]
        time.sleep(0.3)
        s = socket.create_connection(("127.0.0.1", d.port), timeout=0.5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        waited = None
        try:
            got = s.recv(1)
            waited = "answered at once: %r" % got
        except socket.timeout:
            waited = "waiting"
        except OSError as e:
            waited = "reset: %r" % e
        print("past MHD's hard limit (%d): %s" % (hard, waited))
        C.check(waited == "waiting", "past MHD's hard limit a connection waits in the backlog (%s)" % waited)
        t0 = time.time()
        for k in range(10):
            idle.pop().close()
        s.settimeout(10)
        try:
            resp = http.client.HTTPResponse(s)
            resp.begin()
            raw = resp.read()
            status = resp.status
        except Exception as e:  # noqa: BLE001
            status, raw = None, repr(e).encode()
        print("  then answered %r %r %.3f s after 10 slots freed" % (status, raw[:120], time.time() - t0))
        C.check(status == 503 and b"overloaded" in raw,
                "the waiting connection is answered once a slot frees (%r)" % status)
        s.close()
        for x in idle:
            x.close()
        time.sleep(0.3)
        C.check(d.request("GET", "/healthz").status == 200, "served again below the limit")
    finally:
        C.check(d.stop() == 0, "exit 0")


def per_ip(exe):
    d = H.Daemon(exe, {"http": {"connection_limit": 100, "per_ip_connection_limit": 4, "threads": 1},
                       "models": {"rules": {"kind": "rules"}}})
    try:
        idle = [socket.create_connection(("127.0.0.1", d.port)) for _ in range(4)]
        time.sleep(0.3)
        c = d.conn(timeout=5)
        c.request("GET", "/healthz")
        r = c.getresponse()
        doc = json.loads(r.read())
        c.close()
        C.check(r.status == 503 and doc["error"]["code"] == "overloaded" and
                "per_ip" in doc["error"]["message"] and r.getheader("Retry-After") == "1",
                "past the per-IP limit: 503 overloaded + Retry-After (got %d %r)" % (r.status, doc))
        # another client address on the loopback is not counted with 127.0.0.1
        c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=5, source_address=("127.0.0.2", 0))
        c.request("GET", "/healthz")
        r = c.getresponse()
        r.read()
        c.close()
        C.check(r.status == 200, "another address is served (got %d)" % r.status)
        for x in idle:
            x.close()
        time.sleep(0.3)
        C.check(d.request("GET", "/healthz").status == 200, "127.0.0.1 served again below its limit")
    finally:
        C.check(d.stop() == 0, "exit 0")


def main():
    d = H.Daemon(EXE, {"http": {"max_body_bytes": LIMIT}, "models": {"rules": {"kind": "rules"}}})
    try:
        lingering(d)
    finally:
        C.check(d.stop() == 0, "exit 0")
    linger_bound(EXE)
    connection_limits(EXE)
    per_ip(EXE)
    C.done()


if __name__ == "__main__":
    main()
