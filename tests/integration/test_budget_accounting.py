"""The memory budget's count returns to its idle value after traffic on every route.

limits.memory_budget_bytes counts request bodies, their parse, arenas and
replies being built (daemon/mem.c). A charge without its release is a leak
that never shows in RSS but fills the budget: before rwd_json_dumps, every
JSON reply's text was charged and freed by libmicrohttpd with plain free(),
about 1 KiB per request, so a long training run would end with every request
refused 503. This test reads rewardd_memory_budget_used_bytes from /metrics
while idle, sends a few hundred requests over each route family (native
/v1/rewards, OpenRLHF /get_reward, vLLM /pooling and /classify, OIP infer,
a pickled POST / as flow_grpo sends it, Flow-Factory /compute, and refused
bodies: bad JSON, a bad pickle, 404, 413), and requires the idle value again,
to the byte.

Usage: test_budget_accounting.py REWARDD
"""
import base64
import io
import json
import os
import pickle
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rwd_harness as H  # noqa: E402

EXE = sys.argv[1]
SRC = os.environ.get("RWD_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
C = H.Checker("budget-accounting")
N = 150


def used(d):
    r = d.request("GET", "/metrics")
    text = r.raw.decode() if isinstance(r.raw, bytes) else r.raw
    m = re.search(r"^rewardd_memory_budget_used_bytes (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def post_raw(d, path, body, ctype=None):
    conn = d.conn()
    h = {"Content-Type": ctype} if ctype else {}
    conn.request("POST", path, body=body, headers=h)
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp.status


def main():
    from PIL import Image
    cfg = json.load(open(os.path.join(SRC, "config", "default.json")))
    cfg.setdefault("limits", {})["memory_budget_bytes"] = 64 << 20
    cfg.setdefault("http", {})["max_body_bytes"] = 1 << 20
    img = Image.new("RGB", (64, 48), (120, 30, 200))
    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    jpeg = buf.getvalue()
    png = io.BytesIO()
    img.save(png, format="PNG")
    png_b64 = base64.b64encode(png.getvalue()).decode()
    d = H.Daemon(EXE, cfg)
    try:
        u0 = used(d)
        C.check(u0 is not None, "/metrics has rewardd_memory_budget_used_bytes")
        routes = {
            "/v1/rewards": lambda: d.request("POST", "/v1/rewards", {"model": "rules", "items": [
                {"prompt": "2+2?", "response": "The answer is 4. " * 40, "label": "4"}] * 6}).status,
            "/get_reward": lambda: d.request("POST", "/get_reward?model=rules", {
                "query": ["q: 2+2? a: 4"] * 4, "prompts": ["q: 2+2? a:"] * 4, "labels": ["4"] * 4}).status,
            "/pooling (refused)": lambda: d.request("POST", "/pooling", {"model": "image_metrics", "input": [
                {"image": png_b64}]}).status,
            "POST / pickle": lambda: post_raw(d, "/?model=image_metrics", pickle.dumps({"images": [jpeg] * 3})),
            "/compute": lambda: d.request("POST", "/compute?model=image_metrics", {
                "prompt": ["x"], "image": [png_b64]}).status,
            "/classify": lambda: d.request("POST", "/classify", {"model": "rules", "input": [
                "The answer is 4."] * 3}).status,
            "bad JSON": lambda: post_raw(d, "/v1/rewards", b'{"items": [', "application/json"),
            "bad pickle": lambda: post_raw(d, "/", b"\x80\x04\x95garbage"),
            "404": lambda: post_raw(d, "/nope", b"{}", "application/json"),
            "413": lambda: post_raw(d, "/v1/rewards", b"x" * (2 << 20), "application/json"),
        }
        for name, fn in routes.items():
            statuses = {}
            for _ in range(N):
                s = fn()
                statuses[s] = statuses.get(s, 0) + 1
            # idle means every connection closed: a 413's lingering close may still be reading
            u, t_end = used(d), time.time() + 5
            while u != u0 and time.time() < t_end:
                time.sleep(0.1)
                u = used(d)
            C.check(u == u0, "%s x %d (statuses %s): budget in use %s bytes, idle %s" % (name, N, statuses, u, u0))
            print("%-14s statuses %s, budget in use after: %s (idle %s)" % (name, statuses, u, u0))
    finally:
        C.check(d.stop() == 0, "exit 0 after SIGTERM")
    C.done()


main()
