"""Memory stays bounded under hostile load, and goes back after it.
Usage: test_memory_budget.py REWARDD_EXE

The default configuration (config/default.json) with a smaller memory budget
(limits.memory_budget_bytes = 256 MiB, so 200 bodies cannot all fit): 200
connections each send a 14 MiB body slowly (a valid scoring request padded
with JSON whitespace, under http.max_body_bytes = 16 MiB). The daemon's RSS
is read from /proc/PID/status (VmRSS, VmHWM) while they send and after they
close. Before the budget (commit debf34e) this load pushed RSS to 2.6 GiB and
RSS stayed there.

- VmHWM stays within budget + the RSS of the idle, loaded daemon (the models)
  + every connection's libmicrohttpd buffer (connection_memory_limit_bytes)
  + 48 MiB of slack (thread stacks, allocator rounding);
- requests the budget cannot hold get 503 `overloaded` with Retry-After (the
  JSON error shape; they read it after sending their whole body, as urllib
  does), and the ones it admits are scored (200);
- more than one request is admitted and more than one refused;
- after the clients close, RSS falls back to within 64 MiB of the idle RSS
  (malloc_trim after the burst, large buffers mapped and unmapped);
- a request after the burst is served.
The figures are printed. Then, with a 2 MiB budget held by an upload in
progress: a chunked body is refused (503) as it grows past the rest, and
`Expect: 100-continue` is refused before any upload; a request that parses to
more than limits.request_arena_bytes is 413.
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rwd_harness as H  # noqa: E402

EXE = sys.argv[1]
ROOT = os.environ.get("RWD_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
C = H.Checker("test_memory_budget")
MIB = 1 << 20
BUDGET = 256 * MIB
N_CONN = 200
BODY = 14 * MIB
CHUNK = 256 * 1024
PAUSE = 0.02  # per chunk: ~1.2 s of sending per body at the least


def sanitized(exe):
    """An ASan build: its allocator keeps a quarantine of freed memory and
    ignores malloc_trim, so RSS says nothing about our bounds there."""
    try:
        out = subprocess.run(["ldd", exe], capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return False
    return "libasan" in out


def status_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def body():
    head = json.dumps({"model": "rules", "items": [{"id": "x", "response": "The answer is 4."}]}).encode()
    return head + b" " * (BODY - len(head))


def client(port, payload, out, i, start):
    start.wait()
    s = socket.create_connection(("127.0.0.1", port), timeout=120)
    try:
        s.sendall(b"POST /v1/rewards HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(payload))
        view = memoryview(payload)
        for off in range(0, len(payload), CHUNK):
            s.sendall(view[off:off + CHUNK])
            time.sleep(PAUSE)
        raw = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            raw += b
        out[i] = raw
    except OSError as e:
        out[i] = e
    finally:
        s.close()


def parse(raw):
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = dict((k.strip().lower(), v.strip()) for k, v in (ln.split(":", 1) for ln in lines[1:]))
    return status, hdrs, rest


def recv_all(s):
    raw = b""
    while True:
        try:
            b = s.recv(65536)
        except OSError:
            break
        if not b:
            break
        raw += b
    return raw


def small_budget():
    """A 2 MiB budget held by one 1.5 MiB upload in progress: a chunked body
    is refused as it grows past the rest, `Expect: 100-continue` is refused
    before any byte is sent; once the upload ends, both fit. And
    limits.request_arena_bytes: a request that parses to more is 413."""
    cfg = {"http": {"max_body_bytes": 2 * MIB}, "limits": {"memory_budget_bytes": 2 * MIB,
                                                          "request_arena_bytes": 64 * 1024},
           "models": {"rules": {"kind": "rules"}}}
    d = H.Daemon(EXE, cfg)
    try:
        head = json.dumps({"items": [{"id": "h", "response": "held"}]}).encode()
        held = head + b" " * (3 * MIB // 2 - len(head))
        h = socket.create_connection(("127.0.0.1", d.port), timeout=30)
        h.sendall(b"POST /v1/rewards HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(held) + held[:1000])
        time.sleep(0.3)
        # chunked: 1 MiB in 64 KiB chunks, past the 0.5 MiB left
        c = socket.create_connection(("127.0.0.1", d.port), timeout=30)
        c.sendall(b"POST /v1/rewards HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        body = head + b" " * (MIB - len(head))
        try:
            for off in range(0, len(body), 65536):
                part = body[off:off + 65536]
                c.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
            c.sendall(b"0\r\n\r\n")
        except OSError:
            pass
        status, hdrs, rest = parse(recv_all(c))
        c.close()
        C.check(status == 503 and b"overloaded" in rest and hdrs.get("retry-after", "").isdigit(),
                "a chunked body growing past the budget: 503 overloaded + Retry-After (got %d %r)"
                % (status, rest[:120]))
        # 100-continue: refused before the upload
        e = socket.create_connection(("127.0.0.1", d.port), timeout=30)
        e.sendall(b"POST /v1/rewards HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % MIB)
        status, hdrs, rest = parse(recv_all(e))
        e.close()
        C.check(status == 503 and b"overloaded" in rest and hdrs.get("retry-after", "").isdigit(),
                "Expect: 100-continue past the budget: 503 + Retry-After before any upload (got %d)" % status)
        # the held upload completes and is scored; then the budget is free again
        h.sendall(held[1000:])
        status, _, rest = parse(recv_all_until_reply(h))
        h.close()
        C.check(status == 200, "the upload that held the budget is scored (got %d %r)" % (status, rest[:120]))
        # its charge is released when libmicrohttpd completes it, just after the client read it
        t0 = time.time()
        while True:
            r = d.request("POST", "/v1/rewards", head + b" " * (MIB - len(head)),
                          headers={"Content-Type": "application/json"})
            if r.status == 200 or time.time() - t0 > 3:
                break
            time.sleep(0.05)
        C.check(r.status == 200, "after it, a 1 MiB body fits the budget (got %d)" % r.status)
        # the arena's cap: 256 items parse to more than 64 KiB
        items = [{"id": "i%d" % i, "response": "x" * 200} for i in range(256)]
        r = d.request("POST", "/v1/rewards", {"items": items})
        C.check(r.status == 413 and r.json["error"]["code"] == "too_large" and
                "request_arena_bytes" in r.json["error"]["message"],
                "a request past limits.request_arena_bytes: 413 naming it (got %d %r)" % (r.status, r.json))
        r = d.request("POST", "/v1/rewards", {"items": items[:3]})
        C.check(r.status == 200, "a small request under the same cap: 200 (got %d)" % r.status)
    finally:
        C.check(d.stop() == 0, "small-budget daemon exits 0")


def recv_all_until_reply(s):
    """Read one reply on a kept-alive connection (headers + Content-Length)."""
    raw = b""
    while b"\r\n\r\n" not in raw:
        b = s.recv(65536)
        if not b:
            return raw
        raw += b
    head, _, rest = raw.partition(b"\r\n\r\n")
    n = 0
    for ln in head.split(b"\r\n")[1:]:
        k, _, v = ln.partition(b":")
        if k.strip().lower() == b"content-length":
            n = int(v.strip())
    while len(rest) < n:
        b = s.recv(65536)
        if not b:
            break
        rest += b
    return head + b"\r\n\r\n" + rest


def main():
    small_budget()
    with open(os.path.join(ROOT, "config", "default.json")) as f:
        cfg = json.load(f)
    cfg["limits"] = {"memory_budget_bytes": BUDGET}
    d = H.Daemon(EXE, cfg)
    try:
        pid = d.proc.pid
        r = d.request("POST", "/v1/rewards", {"model": "rules", "items": [{"id": "w", "response": "warm"}]})
        C.check(r.status == 200, "a small request before the burst (got %d)" % r.status)
        idle = status_kb(pid, "VmRSS")
        payload = body()
        out = [None] * N_CONN
        start = threading.Event()
        ts = [threading.Thread(target=client, args=(d.port, payload, out, i, start)) for i in range(N_CONN)]
        for t in ts:
            t.start()
        t0 = time.time()
        start.set()
        peak_sampled = 0
        while any(t.is_alive() for t in ts):
            peak_sampled = max(peak_sampled, status_kb(pid, "VmRSS"))
            time.sleep(0.05)
        for t in ts:
            t.join()
        took = time.time() - t0
        hwm = status_kb(pid, "VmHWM")
        conn_buf = 128 * 1024  # http.connection_memory_limit_bytes (the default)
        bound_kb = (BUDGET + N_CONN * conn_buf + 48 * MIB) // 1024 + idle
        ok = refused = other = 0
        bad = []
        for raw in out:
            if isinstance(raw, Exception) or not raw:
                other += 1
                bad.append(repr(raw)[:120])
                continue
            status, hdrs, rest = parse(raw)
            if status == 200:
                ok += 1
            elif status == 503:
                try:
                    doc = H.CONTRACT.validate("POST", "/v1/rewards", status, hdrs.get("content-type", ""), rest)
                    good = doc["error"]["code"] == "overloaded" and hdrs.get("retry-after", "").isdigit()
                except Exception as e:  # noqa: BLE001
                    good = False
                    bad.append(repr(e)[:120])
                if good:
                    refused += 1
                else:
                    other += 1
                    bad.append(raw[:200])
            else:
                other += 1
                bad.append(raw[:200])
        # after the clients close: memory back
        time.sleep(1.0)
        after = status_kb(pid, "VmRSS")
        print("memory budget %d MiB, %d connections x %d MiB bodies in %.1f s: %d scored, %d refused 503, "
              "%d other; RSS idle %.1f MiB, sampled peak %.1f MiB, VmHWM %.1f MiB (bound %.1f MiB), "
              "after close %.1f MiB" % (BUDGET // MIB, N_CONN, BODY // MIB, took, ok, refused, other,
                                       idle / 1024, peak_sampled / 1024, hwm / 1024, bound_kb / 1024,
                                       after / 1024))
        asan = sanitized(EXE)
        if asan:
            print("AddressSanitizer build: the RSS bounds are not checked (its allocator keeps a "
                  "quarantine and ignores malloc_trim); the 503s and the scoring are")
        else:
            C.check(hwm <= bound_kb, "VmHWM %.1f MiB within budget + idle + connection buffers + slack "
                    "(%.1f MiB)" % (hwm / 1024, bound_kb / 1024))
        C.check(ok > 1 and refused > 1, "some bodies admitted (%d), some refused (%d)" % (ok, refused))
        C.check(other == 0, "every connection got 200 or 503 overloaded + Retry-After (%d others: %r)"
                % (other, bad[:3]))
        if not asan:
            C.check(after <= idle + 64 * 1024, "RSS after the burst %.1f MiB within 64 MiB of idle %.1f MiB"
                    % (after / 1024, idle / 1024))
        r = d.request("POST", "/v1/rewards", {"model": "rules", "items": [{"id": "a", "response": "after"}]})
        C.check(r.status == 200, "served after the burst (got %d)" % r.status)
    finally:
        rc = d.stop()
        C.check(rc == 0, "exit 0 after SIGTERM (got %s)" % rc)
        if C.failed:
            print(d.logs()[-3000:])
    C.done()


if __name__ == "__main__":
    main()
