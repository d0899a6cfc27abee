"""GET / (the dashboard) in a real browser: Debian's headless Chromium driven
by playwright-core (node). The daemon serves two models and gets traffic;
then the page must show the same numbers as the API: the request and item
counts from /metrics, latency percentiles computed here from the histogram
buckets (Prometheus' histogram_quantile rule), the queue depth, and the model
list with states from /v1/models. A screenshot is saved in the build dir.

Usage: test_dashboard.py REWARDD [SCREENSHOT_DIR]
"""
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rwd_harness as H  # noqa: E402

EXE = sys.argv[1]
OUT = sys.argv[2] if len(sys.argv) > 2 else os.getcwd()
C = H.Checker("dashboard")
D_IN = 16


def quantile(q, buckets):
    """histogram_quantile over cumulative [(le, count)] (le sorted, +Inf last)."""
    total = buckets[-1][1]
    if total <= 0:
        return float("nan")
    rank = q * total
    lo, prev = 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if le == float("inf"):
                return lo
            return lo + (le - lo) * ((rank - prev) / (c - prev) if c > prev else 0.0)
        lo, prev = le, c
    return lo


def main():
    chromium = os.environ.get("RWD_CHROMIUM", "/usr/bin/chromium")
    node = shutil.which("node")
    pw = os.path.join(H.SRC, "node_modules", "playwright-core")
    if not os.path.exists(chromium):
        H.skip("Debian's chromium is not installed (%s; scripts/deps.sh installs it)" % chromium)
    if not node or not os.path.isdir(pw):
        H.skip("node or node_modules/playwright-core is missing (npm ci)")
    work = H.mkdtemp("rwd-dash-")
    H.make_mlp_head(os.path.join(work, "head"), d_in=D_IN)
    models = {"head": {"path": os.path.join(work, "head"),
                       "batching": {"max_batch_size": 8, "max_delay_us": 2000}},
              "rules": {"kind": "rules"}}  # built in: its load failing fails the test
    d = H.Daemon(EXE, {"models": models})
    try:
        r = d.request("GET", "/")
        C.check(r.status == 200 and r.header("Content-Type").startswith("text/html")
                and b"<canvas" in r.raw and b"http://" not in r.raw and b"https://" not in r.raw,
                "GET / is a self-contained HTML page (%d %s)" % (r.status, r.header("Content-Type")))
        # the page is open (polling every 300 ms) while 4 clients send batches
        # of 1..6 items, some invalid; then it must settle on the API's numbers
        shot = os.path.join(OUT, "dashboard.png")
        done = os.path.join(work, "traffic-done")
        browser = subprocess.Popen(
            [node, os.path.join(os.path.dirname(os.path.abspath(__file__)), "test_dashboard.js"),
             "http://127.0.0.1:%d/?poll=300" % d.port, shot, "2", done],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, RWD_SOURCE_ROOT=H.SRC))
        rng = random.Random(1)

        def client(ci):
            c = d.conn()
            for k in range(60):
                n = rng.randint(1, 6)
                body = {"model": "head", "items": [
                    {"embedding": [rng.uniform(-1, 1) for _ in range(D_IN)]} for _ in range(n)]}
                if k % 13 == 7:
                    body["items"][0]["embedding"] = [1.0]  # 400
                d.request("POST", "/v1/rewards", body, conn=c)
                if k % 5 == 0:
                    d.request("POST", "/v1/rewards", {"model": "rules", "items": [
                        {"response": "The answer is %d" % k, "label": str(k)}]}, conn=c)
                time.sleep(0.01)
            c.close()
        first = browser.stdout.readline()  # "polling": the page is up
        C.check(first.strip() == "polling", "the page started polling (%r)" % first)
        ts = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        open(done, "w").close()
        try:
            out, errs = browser.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            browser.kill()
            out, errs = browser.communicate()
        p = subprocess.CompletedProcess(browser.args, browser.returncode, out, errs)
        if p.returncode != 0:
            print(p.stderr[-3000:])
        C.check(p.returncode == 0, "the browser run succeeded")
        if p.returncode != 0:
            return
        shown = json.loads(p.stdout.strip().splitlines()[-1])
        print("page shows:", json.dumps(shown))
        print("screenshot:", shot)
        C.check(not shown["pageErrors"], "no JavaScript errors: %s" % shown["pageErrors"])

        m = d.metrics()
        raw = d.request("GET", "/metrics").raw.decode()
        num = lambda s: float(s.replace(",", "")) if s not in ("–", "") else float("nan")
        reqs = sum(v for (n, _), v in m.items() if n == "rewardd_requests_total")
        bad = sum(v for (n, l), v in m.items() if n == "rewardd_requests_total" and not dict(l)["code"].startswith("2"))
        items = sum(v for (n, l), v in m.items() if n == "rewardd_items_total" and dict(l)["outcome"] == "ok")
        qd = sum(v for (n, _), v in m.items() if n == "rewardd_queue_depth_items")
        C.check(reqs >= 240 and num(shown["requests"]) == reqs,
                "requests shown %s, /metrics says %d" % (shown["requests"], reqs))
        C.check(num(shown["errors"]) == bad and bad > 0, "non-2xx shown %s, /metrics %d" % (shown["errors"], bad))
        C.check(num(shown["items"]) == items, "items shown %s, /metrics %d" % (shown["items"], items))
        C.check(num(shown["queue"]) == qd == 0, "queue depth shown %s, /metrics %d" % (shown["queue"], qd))
        C.check(num(shown["rps"]) == 0.0, "no traffic during the last interval: rps %s" % shown["rps"])
        C.check(shown["maxRps"] > 0, "requests/s shown while the traffic ran (max %.1f)" % shown["maxRps"])

        bk = {}
        for line in raw.splitlines():
            if line.startswith("rewardd_request_duration_seconds_bucket{"):
                le = line.split('le="')[1].split('"')[0]
                le = float("inf") if le == "+Inf" else float(le)
                bk[le] = bk.get(le, 0.0) + float(line.rsplit(" ", 1)[1])
        buckets = sorted(bk.items())
        for q, key in ((0.5, "p50"), (0.9, "p90"), (0.99, "p99")):
            want = quantile(q, buckets) * 1000
            C.check(abs(num(shown[key]) - want) <= 0.006 + 1e-9 * want,
                    "%s shown %s ms, from the buckets %.4f ms" % (key, shown[key], want))

        api = d.request("GET", "/v1/models").json["models"]
        C.check(sorted((x["name"], x["state"]) for x in api) ==
                sorted((x["name"], x["state"]) for x in shown["models"]),
                "models and states shown %s, API %s" % (shown["models"], [(x["name"], x["state"]) for x in api]))
        C.check(all(s["dims"] == ", ".join(a["dimensions"]) for a in api for s in shown["models"]
                    if s["name"] == a["name"]), "dimensions shown match /v1/models")
        stats = d.request("GET", "/v1/stats", validate_route="/v1/stats") if "/v1/stats" in H.CONTRACT.doc["paths"] \
            else None
        if stats is None or stats.status == 404:
            C.check(shown["rewardsHidden"], "reward panel hidden without /v1/stats")
        else:
            C.check(not shown["rewardsHidden"] and shown["rewardCharts"] > 0,
                    "reward histograms drawn from /v1/stats (%d charts)" % shown["rewardCharts"])
        C.check(shown["batchInk"] > 100 and shown["latInk"] > 100, "charts drawn")
        C.check(os.path.getsize(shot) > 10000, "screenshot saved")
    finally:
        rc = d.stop()
        C.check(rc == 0, "exit status %d" % rc)
    C.done()


if __name__ == "__main__":
    main()
