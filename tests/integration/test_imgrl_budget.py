"""POST / when the memory budget is full: a pickled 503 + Retry-After, which
flow_grpo's own client retries, then reads the answer.

Usage: test_imgrl_budget.py REWARDD_EXE

The client is flow_grpo's deqa_score_remote as it is at yifan123/flow_grpo@ac4c86e
flow_grpo/rewards.py:111-158: requests.Session() with HTTPAdapter(max_retries=
Retry(total=1000, backoff_factor=1, status_forcelist=[500],
allowed_methods=False)) (121-125), per image Image.fromarray(img).save(buf,
"JPEG") (137-142), sess.post(url, data=pickle.dumps({"images": [...]}),
timeout=120) and pickle.loads(response.content) whatever the status, then
response_data["outputs"] (151-154). status_forcelist holds only 500, yet
urllib3's Retry also retries a 413/429/503 that carries Retry-After
(respect_retry_after_status, RETRY_AFTER_STATUS_CODES) after sleeping the
given seconds: so the budget's 503 must carry Retry-After for flow_grpo to
wait instead of failing, and its body must unpickle (a JSON body would make
pickle.loads raise).

A 4 MiB budget (limits.memory_budget_bytes) is held by one 3.75 MiB upload in
progress; a 0.5 MiB pickle body cannot be charged:
  - a raw POST / gets 503 with Retry-After and a body that pickle.loads to
    {"error": "...memory budget..."} (the protocol's error shape);
  - a chunked POST / that grows past the budget gets the same;
  - flow_grpo's client posts while the budget is held; the held upload is
    released 1.5 s later; the client's retry (after Retry-After) is scored
    and its "outputs" equal the same call made on an idle server.
"""
import io
import os
import pickle
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rwd_harness as H  # noqa: E402

try:
    import numpy as np
    import requests
    from PIL import Image
    from requests.adapters import HTTPAdapter, Retry
except ImportError as e:  # pragma: no cover
    H.skip(f"python3-requests / numpy / PIL missing ({e})")

EXE = sys.argv[1]
MIB = 1 << 20
C = H.Checker("test_imgrl_budget")


def session():
    """rewards.py:121-125."""
    sess = requests.Session()
    retries = Retry(total=1000, backoff_factor=1, status_forcelist=[500], allowed_methods=False)
    sess.mount("http://", HTTPAdapter(max_retries=retries))
    return sess


def deqa_score_remote(url):
    """rewards.py:111-158 (its batch of <= 64 images is one POST)."""
    sess = session()

    def _fn(images):
        data = []
        for img in images:
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="JPEG")
            data.append(buf.getvalue())
        response = sess.post(url, data=pickle.dumps({"images": data}), timeout=120)
        response_data = pickle.loads(response.content)
        return response_data["outputs"], response.status_code
    return _fn


def recv_all(s):
    out = b""
    while True:
        try:
            b = s.recv(65536)
        except OSError:
            break
        if not b:
            break
        out += b
    return out


def parse(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(b":")
        hdrs[k.strip().lower().decode()] = v.strip().decode()
    return status, hdrs, body


def check_pickled_503(status, hdrs, body, what):
    try:
        obj = pickle.loads(body)
    except Exception as e:  # noqa: BLE001
        obj = "not a pickle: %r (%r)" % (e, body[:80])
    C.check(status == 503 and hdrs.get("retry-after", "").isdigit() and
            hdrs.get("content-type", "").startswith("application/octet-stream") and
            isinstance(obj, dict) and "memory budget" in str(obj.get("error", "")),
            "%s: pickled 503 {'error'} + Retry-After (got %d %r %r)" % (what, status, hdrs.get("retry-after"), obj))


def main():
    cfg = {"http": {"max_body_bytes": 4 * MIB}, "limits": {"memory_budget_bytes": 4 * MIB},
           "models": {"im": {"kind": "image_metrics"}}}
    d = H.Daemon(EXE, cfg)
    url = "http://127.0.0.1:%d" % d.port
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8) for _ in range(1)]
    try:
        idle, st = deqa_score_remote(url)(images)
        C.check(st == 200 and len(idle) == 1 and all(isinstance(x, float) for x in idle),
                "flow_grpo's client on an idle server: 1 output (%s %r)" % (st, idle))
        # a batch of 0.37 MiB of pickle, scored below once the budget is free. (Scored
        # here first, before the budget is held, it leaves the budget under-counting:
        # the 0.5 MiB body below is then admitted; README, Memory: a known defect.)
        many = [rng.integers(0, 256, size=(160, 160, 3), dtype=np.uint8) for _ in range(24)]
        # hold 3.75 MiB of the 4 MiB budget with an upload in progress
        head = b'{"model": "im", "items": []}'
        held = head + b" " * (15 * MIB // 4 - len(head))
        h = socket.create_connection(("127.0.0.1", d.port), timeout=30)
        h.sendall(b"POST /v1/rewards HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(held) + held[:1000])
        time.sleep(0.5)
        big = pickle.dumps({"images": [b"\xff" * (MIB // 2)]})
        s = socket.create_connection(("127.0.0.1", d.port), timeout=30)
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(big))
        try:
            s.sendall(big)
        except OSError:
            pass
        check_pickled_503(*parse(recv_all(s)), what="Content-Length past the budget")
        s.close()
        c = socket.create_connection(("127.0.0.1", d.port), timeout=30)
        c.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        try:
            for off in range(0, len(big), 65536):
                part = big[off:off + 65536]
                c.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
            c.sendall(b"0\r\n\r\n")
        except OSError:
            pass
        check_pickled_503(*parse(recv_all(c)), what="a chunked body growing past the budget")
        c.close()
        # flow_grpo's client while the budget is held: the batch is larger than the rest
        out = {}

        def run():
            t0 = time.monotonic()
            out["res"] = deqa_score_remote(url)(many)
            out["t"] = time.monotonic() - t0
        t = threading.Thread(target=run)
        t.start()
        time.sleep(1.5)
        h.sendall(held[1000:])
        recv_all_reply(h)
        h.close()
        t.join(30)
        C.check(not t.is_alive(), "flow_grpo's client returned once the budget was free")
        res, st = out.get("res", (None, None))
        ref, st2 = deqa_score_remote(url)(many)
        print("flow_grpo's client under a full budget: answered %s after %.2f s (503 + Retry-After, retried)"
              % (st, out.get("t", -1)))
        C.check(st == 200 and res == ref and st2 == 200 and out.get("t", 0) >= 1.0,
                "flow_grpo's client waits out the 503 (Retry-After) and reads the same outputs "
                "(%s after %.2f s)" % (st, out.get("t", -1)))
    finally:
        rc = d.stop()
    C.check(rc == 0, "daemon exits 0 after SIGTERM (%s)" % rc)
    C.done()


def recv_all_reply(s):
    s.settimeout(30)
    data = b""
    while b"\r\n\r\n" not in data:
        b = s.recv(65536)
        if not b:
            break
        data += b
    return data


if __name__ == "__main__":
    main()
