"""systemd protocols against the real daemon, with a fake manager:

- sd_notify: NOTIFY_SOCKET names a datagram socket this test reads. Start-up
  sends STATUS= lines while models load and READY=1 only when /readyz is 200;
  SIGHUP sends RELOADING=1 (with MONOTONIC_USEC) then READY=1 with a STATUS;
  a refused reload still ends in READY=1; SIGTERM sends STOPPING=1 and the
  process exits 0 after the drain. WATCHDOG=1 arrives every WATCHDOG_USEC/2.
- socket activation: the test creates the listening socket, passes it as fd 3
  with LISTEN_FDS=1 and LISTEN_PID set to the daemon's pid (a `sh -c ... exec`
  wrapper), and the daemon serves on it, not on its configured port.

Usage: test_sd_notify.py REWARDD
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rwd_harness as H  # noqa: E402

EXE = sys.argv[1]
C = H.Checker("sd-notify")


def get(port, path, timeout=2):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def config(work, port, models):
    p = os.path.join(work, "config.json")
    with open(p, "w") as f:
        json.dump({"listen": "127.0.0.1:%d" % port, "models": models}, f)
    return p


class Manager:
    def __init__(self, work):
        self.path = os.path.join(work, "notify.sock")
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.bind(self.path)
        self.msgs = []

    def wait(self, pred, timeout, on_msg=None):
        t0 = time.time()
        while time.time() - t0 < timeout:
            self.s.settimeout(0.1)
            try:
                m = self.s.recv(4096).decode()
            except socket.timeout:
                continue
            lines = m.split("\n")
            self.msgs.append(lines)
            if on_msg:
                on_msg(lines)
            if pred(lines):
                return lines
        return None


def notify(work):
    port = H.free_port()
    H.make_mlp_head(os.path.join(work, "head"), d_in=8)
    cfg = config(work, port, {"head": {"path": os.path.join(work, "head")}, "rules": {"kind": "rules"}})
    mgr = Manager(work)
    env = dict(os.environ, NOTIFY_SOCKET=mgr.path, WATCHDOG_USEC="600000")
    env.pop("WATCHDOG_PID", None)
    env.pop("REWARDD_API_KEYS", None)
    log = open(os.path.join(work, "notify.log"), "w")
    proc = subprocess.Popen([EXE, "--config", cfg], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        readyz = {}

        def at_ready(lines):
            if "READY=1" in lines:
                readyz["status"] = get(port, "/readyz")
        ready = mgr.wait(lambda ln: "READY=1" in ln, 20, at_ready)
        C.check(ready is not None, "READY=1 sent")
        C.check(readyz.get("status") == 200, "/readyz is 200 when READY=1 arrives (%s)" % readyz)
        statuses = [ln for m in mgr.msgs for ln in m if ln.startswith("STATUS=")]
        print("start-up notifications:", mgr.msgs)
        C.check(any("loading model head" in s for s in statuses) and
                any("loading model rules" in s for s in statuses), "STATUS= while each model loads")
        C.check(ready and any(ln.startswith("STATUS=serving 2 models") for ln in ready),
                "READY=1 carries a STATUS: %s" % ready)
        # watchdog pings while the batchers are alive
        pings = []
        mgr.wait(lambda ln: False, 1.5, lambda ln: pings.append(1) if "WATCHDOG=1" in ln else None)
        print("watchdog: %d pings in 1.5 s with WATCHDOG_USEC=600000" % len(pings))
        C.check(3 <= len(pings) <= 8, "WATCHDOG=1 about every 300 ms (%d)" % len(pings))
        # SIGHUP: RELOADING=1 ... READY=1
        mgr.msgs = []
        proc.send_signal(signal.SIGHUP)
        rel = mgr.wait(lambda ln: "RELOADING=1" in ln, 10)
        C.check(rel is not None and any(ln.startswith("MONOTONIC_USEC=") for ln in rel),
                "RELOADING=1 with MONOTONIC_USEC on SIGHUP: %s" % rel)
        back = mgr.wait(lambda ln: "READY=1" in ln, 20)
        C.check(back is not None and any(ln.startswith("STATUS=reloaded") for ln in back),
                "READY=1 after the reload: %s" % back)
        # a refused reload also ends in READY=1
        with open(cfg, "w") as f:
            f.write("{ not json")
        mgr.msgs = []
        proc.send_signal(signal.SIGHUP)
        C.check(mgr.wait(lambda ln: "RELOADING=1" in ln, 10) is not None, "RELOADING=1 (bad config)")
        back = mgr.wait(lambda ln: "READY=1" in ln, 10)
        C.check(back is not None and any("refused" in ln for ln in back), "READY=1 + refusal STATUS: %s" % back)
        C.check(get(port, "/readyz") == 200, "still ready after a refused reload")
        # SIGTERM: STOPPING=1, exit 0
        proc.send_signal(signal.SIGTERM)
        stop = mgr.wait(lambda ln: "STOPPING=1" in ln, 10)
        C.check(stop is not None, "STOPPING=1 on SIGTERM")
        C.check(proc.wait(30) == 0, "exit 0 after the drain")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        mgr.s.close()
        if C.failed:
            with open(os.path.join(work, "notify.log")) as f:
                print("daemon log:\n" + f.read()[-3000:])


def activation(work):
    other = H.free_port()
    cfg = config(work, other, {"rules": {"kind": "rules"}})
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    port = ls.getsockname()[1]
    fd = ls.fileno()
    env = dict(os.environ)
    for k in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "REWARDD_API_KEYS"):
        env.pop(k, None)
    # fd 3 in the daemon, LISTEN_PID = the pid that execs it
    wrapper = 'exec 3<&%d; LISTEN_FDS=1 LISTEN_PID=$$ exec "$0" "$@"' % fd
    log = open(os.path.join(work, "activation.log"), "w")
    proc = subprocess.Popen(["sh", "-c", wrapper, EXE, "--config", cfg], pass_fds=(fd,), env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    ls.close()  # only the daemon holds the listener now
    try:
        st = None
        t0 = time.time()
        while time.time() - t0 < 20 and st != 200:
            try:
                st = get(port, "/readyz")
            except OSError:
                time.sleep(0.1)
        C.check(st == 200, "served /readyz on the passed socket (%s)" % st)
        try:
            get(other, "/healthz", timeout=1)
            C.check(False, "the configured port is not listened on when activated")
        except OSError:
            pass
        r = urllib.request.Request("http://127.0.0.1:%d/v1/rewards" % port, method="POST",
                                   data=json.dumps({"items": [{"response": "4", "label": "4"}]}).encode(),
                                   headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(r, timeout=5) as resp:
            C.check(resp.status == 200, "scoring on the activated socket")
        proc.send_signal(signal.SIGTERM)
        C.check(proc.wait(30) == 0, "exit 0")
        with open(os.path.join(work, "activation.log")) as f:
            text = f.read()
        C.check("socket-activated" in text, "the log names the activated socket")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def main():
    work = H.mkdtemp("rwd-sd-")
    notify(work)
    activation(work)
    C.done()


if __name__ == "__main__":
    main()
