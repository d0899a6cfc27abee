"""systemd/: the rendered units pass `systemd-analyze verify`, their
exposure level (`systemd-analyze security --offline=true`) is printed and
bounded, their timings and address agree with the built daemon's real
defaults (`rewardd --check-config`), and the daemon speaks the protocols the
units rely on: sd_notify (READY=1 only once /readyz is 200, STOPPING=1 on
SIGTERM) and socket activation (a socket passed by systemd-socket-activate).

Usage: test_systemd_units.py RENDERED_SERVICE SOCKET SYSUSERS REWARDD_EXE INSTALLED_EXE
Skips (77) when systemd-analyze is absent.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rwd_harness as H  # noqa: E402

SERVICE, SOCKET, SYSUSERS, EXE, INSTALLED = sys.argv[1:6]
C = H.Checker("test_systemd_units")
EXPOSURE_MAX = 2.0  # "OK" is < 5.0 in systemd's scale; we hold the unit to far better


def units_dir():
    """The rendered units in a temp dir, ExecStart pointing at the build's binary."""
    d = H.mkdtemp("rwd-units-")
    with open(SERVICE) as f:
        text = f.read()
    C.check(text.count(INSTALLED) == 1, "the rendered ExecStart names %s exactly once" % INSTALLED)
    with open(os.path.join(d, "rewardd.service"), "w") as f:
        f.write(text.replace(INSTALLED, os.path.abspath(EXE)))
    shutil.copy(SOCKET, os.path.join(d, "rewardd.socket"))
    return d


def unit_keys(path):
    """{(section, key): [values]} of a unit file (no line continuations used)."""
    out, sec = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                sec = line.strip("[]")
                continue
            k, v = line.split("=", 1)
            out.setdefault((sec, k.strip()), []).append(v.strip())
    return out


def seconds(v):
    """A systemd time span as used here: 45s, 5min, 30s, 2s."""
    m = re.fullmatch(r"(\d+)\s*(s|min|ms)?", v)
    assert m, v
    n = int(m.group(1))
    return {"s": n, None: n, "min": 60 * n, "ms": n / 1000}[m.group(2)]


def verify_and_security(d):
    env = dict(os.environ, SYSTEMD_LOG_LEVEL="notice", SYSTEMD_PAGER="cat")
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", "./rewardd.service", "./rewardd.socket"],
                       cwd=d, env=env, capture_output=True, text=True, timeout=60)
    ours = [ln for ln in (r.stdout + r.stderr).splitlines() if "rewardd." in ln]
    print("systemd-analyze verify: exit %d, %d lines about our units" % (r.returncode, len(ours)))
    for ln in ours:
        print("  " + ln)
    C.check(r.returncode == 0, "systemd-analyze verify exits 0")
    C.check(not ours, "no warnings about rewardd.service / rewardd.socket")
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", "./rewardd.service"],
                       cwd=d, env=env, capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for rewardd\.service: ([0-9.]+) (\S+)", r.stdout)
    C.check(m is not None, "systemd-analyze security prints an overall exposure level")
    if m:
        print("systemd-analyze security --offline=true: exposure %s %s (bound %.1f)" % (
            m.group(1), m.group(2), EXPOSURE_MAX))
        for ln in r.stdout.splitlines():
            if ln.startswith("\u2717"):
                print("  " + " ".join(ln.split()))
        C.check(float(m.group(1)) <= EXPOSURE_MAX, "exposure %s <= %.1f" % (m.group(1), EXPOSURE_MAX))


def sysusers():
    if not shutil.which("systemd-sysusers"):
        # the same Debian package as systemd-analyze, which main() found
        C.check(False, "systemd-sysusers absent though systemd-analyze is there: sysusers entry not checked")
        return
    root = H.mkdtemp("rwd-sysusers-")
    r = subprocess.run(["systemd-sysusers", "--dry-run", "--root=" + root, os.path.abspath(SYSUSERS)],
                       capture_output=True, text=True, timeout=30)
    C.check(r.returncode == 0 and "Creating user 'rewardd'" in r.stdout + r.stderr,
            "systemd-sysusers --dry-run accepts rewardd.sysusers: %s" % (r.stdout + r.stderr).strip())


def agreement(d):
    """Timings and address in the units against the daemon's own defaults."""
    r = subprocess.run([EXE, "--check-config"], capture_output=True, text=True, timeout=30)
    C.check(r.returncode == 0, "rewardd --check-config exits 0")
    eff = json.loads(r.stdout)
    svc, sock = unit_keys(os.path.join(d, "rewardd.service")), unit_keys(os.path.join(d, "rewardd.socket"))
    S = lambda k: svc.get(("Service", k), [None])[-1]  # noqa: E731
    C.check(S("Type") == "notify" and S("NotifyAccess") == "main", "Type=notify, NotifyAccess=main")
    C.check(S("ExecReload") == "/bin/kill -HUP $MAINPID", "ExecReload sends SIGHUP")
    drain_s = eff["shutdown"]["drain_timeout_ms"] / 1000.0
    stop_s = seconds(S("TimeoutStopSec"))
    # the drain bound, then up to 2 s for the replies to go out (daemon/main.c), then a margin
    C.check(drain_s + 2 + 5 <= stop_s <= drain_s + 60,
            "TimeoutStopSec %ss covers the drain bound %ss + 2 s + a margin" % (stop_s, drain_s))
    C.check(seconds(S("WatchdogSec")) >= 10, "WatchdogSec leaves room for a slow batch")
    cfg_arg = S("ExecStart").split("--config", 1)[1].split()[0]
    C.check(cfg_arg == "/etc/" + S("ConfigurationDirectory") + "/config.json",
            "--config is inside ConfigurationDirectory")
    listen = sock.get(("Socket", "ListenStream"), [None])[-1]
    C.check(listen == eff["listen"], "rewardd.socket ListenStream %s == the daemon's default listen %s" % (
        listen, eff["listen"]))
    print("daemon defaults: listen %s, drain %.0f s; unit: TimeoutStopSec %ss, WatchdogSec %ss" % (
        eff["listen"], drain_s, stop_s, seconds(S("WatchdogSec"))))


def builtin_config(port):
    d = H.mkdtemp("rwd-sd-")
    p = os.path.join(d, "config.json")
    with open(p, "w") as f:
        json.dump({"listen": "127.0.0.1:%d" % port, "models": {"rules": {"kind": "rules"}}}, f)
    return p


def get(port, path, timeout=2):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
        return r.status, r.read()


def notify_protocol():
    """READY=1 only after /readyz says 200; STOPPING=1 after SIGTERM."""
    mgr = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = "\0rwd-test-notify-%d" % os.getpid()
    mgr.bind(name)
    port = H.free_port()
    # a 400 ms watchdog: pings every ~200 ms once ready
    env = dict(os.environ, NOTIFY_SOCKET="@" + name[1:], WATCHDOG_USEC="400000")
    env.pop("WATCHDOG_PID", None)
    env.pop("REWARDD_API_KEYS", None)
    proc = subprocess.Popen([EXE, "--config", builtin_config(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    msgs, ready_seen_at, readyz_at = [], None, None
    t0 = time.time()
    try:
        mgr.settimeout(0.05)
        while time.time() - t0 < 20 and ready_seen_at is None:
            try:
                m = mgr.recv(4096).decode()
                msgs.append(m)
                if "READY=1" in m.split("\n"):
                    ready_seen_at = time.time()
                    try:
                        st, _ = get(port, "/readyz")
                    except OSError as e:
                        st = repr(e)
                    C.check(st == 200, "when READY=1 arrives /readyz is 200 (got %s)" % st)
            except socket.timeout:
                if readyz_at is None:
                    try:
                        if get(port, "/readyz")[0] == 200:
                            readyz_at = time.time()
                    except OSError:
                        pass
                elif time.time() - readyz_at > 3:
                    break
        if ready_seen_at is None:
            C.check(False, "READY=1 within 3 s of /readyz = 200 (rewardd sent %d notifications: %r)"
                    % (len(msgs), msgs[:5]))
            return
        print("notifications before ready: %r" % msgs)
        pings, t1 = 0, time.time()
        mgr.settimeout(0.1)
        while time.time() - t1 < 1.2:
            try:
                m = mgr.recv(4096).decode()
            except socket.timeout:
                continue
            pings += m.split("\n").count("WATCHDOG=1")
        print("watchdog: %d WATCHDOG=1 pings in 1.2 s with WATCHDOG_USEC=400000" % pings)
        C.check(3 <= pings <= 8, "WATCHDOG=1 about every WatchdogSec/2 while the batchers are alive")
        proc.send_signal(signal.SIGTERM)
        stop = None
        t1 = time.time()
        mgr.settimeout(1)
        while time.time() - t1 < 10:
            try:
                m = mgr.recv(4096).decode()
            except socket.timeout:
                if proc.poll() is not None:
                    break
                continue
            msgs.append(m)
            if "STOPPING=1" in m.split("\n"):
                stop = m
                break
        C.check(stop is not None, "STOPPING=1 after SIGTERM (got %r)" % msgs)
        C.check(proc.wait(30) == 0, "exit 0 after the drain")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        mgr.close()


def socket_activation():
    if not shutil.which("systemd-socket-activate"):
        C.check(False, "systemd-socket-activate absent though systemd-analyze is there (both Debian "
                "package systemd): socket activation not exercised")
        return
    port, other = H.free_port(), H.free_port()
    # the config names another port: an activated daemon must serve on the passed socket
    proc = subprocess.Popen(["systemd-socket-activate", "-l", "127.0.0.1:%d" % port, EXE,
                             "--config", builtin_config(other)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        t0 = time.time()
        st = None
        while time.time() - t0 < 6:
            try:
                st, body = get(port, "/healthz", timeout=5)
                break
            except OSError:
                # before systemd-socket-activate listens: refused; a daemon that
                # ignores fd 3 leaves the connection in the backlog (timeout)
                time.sleep(0.1)
        if st is None:
            C.check(False, "an answer on the socket systemd-socket-activate passed, within 6 s")
            return
        C.check(st == 200, "/healthz on the activated socket")
        try:
            get(other, "/healthz", timeout=1)
            C.check(False, "an activated daemon does not also listen on its configured port")
        except OSError:
            pass
        print("socket activation: served /healthz on the passed socket 127.0.0.1:%d" % port)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main():
    if not shutil.which("systemd-analyze"):
        H.skip("systemd-analyze not installed (Debian package systemd)")
    d = units_dir()
    verify_and_security(d)
    sysusers()
    agreement(d)
    notify_protocol()
    socket_activation()
    C.done()


main()
