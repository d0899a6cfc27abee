"""HTTPS: tls.cert_file / tls.key_file (and --tls-cert / --tls-key) serve TLS
through libmicrohttpd's GnuTLS support, and SIGHUP swaps the certificate.
Usage: test_tls.py REWARDD_EXE

Self-signed certificates are made here with openssl (the fingerprint oracle:
`openssl x509 -fingerprint -sha256`), the client is Python's ssl module.
- the rewards over HTTPS (verified against the certificate) equal the rewards
  of the same request over plain HTTP to a plain daemon;
- a plain-HTTP client on the TLS port gets no reward (no HTTP answer at all);
- the served certificate's SHA-256 is openssl's fingerprint of the file;
- after the files are replaced and SIGHUP sent, new handshakes get the new
  certificate, while a keep-alive connection opened before keeps working;
- a SIGHUP with a broken certificate file keeps the current certificate;
- the flags work too, and a key that does not belong to the certificate is
  refused at start-up (exit non-zero, naming tls.key_file);
- the drain works under TLS: 16 clients, a new HTTPS connection per request,
  SIGTERM mid-load; every connection that was accepted gets an HTTP answer
  (200, or 503 draining), and the daemon exits 0.
"""
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rwd_harness as H  # noqa: E402

EXE = sys.argv[1]
ROOT = os.environ.get("RWD_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
C = H.Checker("test_tls")
BODY = {"model": "rules", "items": [
    {"id": "a", "prompt": "What is 2+2?", "response": "The answer is 4.", "label": "4"},
    {"id": "b", "prompt": "Say hi", "response": "hello there", "reference": "hello there friend"},
]}


def openssl_cert(folder, name):
    cert, key = os.path.join(folder, name + ".pem"), os.path.join(folder, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", "/CN=rewardd-test-" + name,
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    out = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-fingerprint", "-sha256"],
                         check=True, capture_output=True, text=True).stdout
    fp = out.strip().split("=", 1)[1].replace(":", "").lower()
    return cert, key, fp


def served_fingerprint(port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s) as t:
            return hashlib.sha256(t.getpeercert(binary_form=True)).hexdigest()


def https(port, cafile, timeout=30):
    ctx = ssl.create_default_context(cafile=cafile)
    return http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=ctx)


def post(conn, body):
    conn.request("POST", "/v1/rewards", body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    raw = r.read()
    doc = H.CONTRACT.validate("POST", "/v1/rewards", r.status, r.getheader("Content-Type", ""), raw)
    return r.status, doc, r


def rewards(doc):
    return [(x.get("id"), x.get("reward"), x.get("scores")) for x in doc.get("results", [])]


def wait_log(d, text, timeout=10):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if text in d.logs():
            return True
        time.sleep(0.05)
    return False


class TlsDaemon(H.Daemon):
    """H.Daemon, with /readyz polled over HTTPS."""

    def __init__(self, exe, config, cafile, args=()):
        self.cafile = cafile
        super().__init__(exe, config, args=args)

    def wait_up(self, timeout=20):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError("rewardd exited with %d:\n%s" % (self.proc.returncode, self.logs()))
            try:
                c = https(self.port, self.cafile, timeout=5)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    c.close()
                    return
                c.close()
            except (OSError, ssl.SSLError):
                pass
            time.sleep(0.05)
        raise RuntimeError("rewardd did not become ready:\n" + self.logs())


def plain_client_gets_nothing(port):
    """http.client speaking plain HTTP to the TLS port."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("POST", "/v1/rewards", body=json.dumps(BODY), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        raw = r.read()
        return b"reward" not in raw, "got HTTP %d %r" % (r.status, raw[:100])
    except (OSError, http.client.HTTPException) as e:
        return True, repr(e)
    finally:
        c.close()


def drain_under_tls(port, cafile, d):
    lost, answered, refused, draining = [], [0], [0], [0]
    mu = threading.Lock()

    def client():
        # until the daemon refuses: a 503 draining, or the listener closed
        t_end = time.time() + 30
        while time.time() < t_end:
            try:
                c = https(port, cafile, timeout=30)
                c.connect()
            except ConnectionRefusedError:
                with mu:
                    refused[0] += 1
                return
            except (OSError, ssl.SSLError) as e:
                # the TCP connection was taken (or not) and the handshake failed
                with mu:
                    lost.append("handshake: %r" % e)
                return
            try:
                status, doc, r = post(c, BODY)
                with mu:
                    answered[0] += 1
                if status == 503:
                    with mu:
                        draining[0] += 1
                    if doc["error"]["code"] != "draining":
                        with mu:
                            lost.append("503 but %r" % doc)
                    return
                if status != 200:
                    with mu:
                        lost.append("status %d %r" % (status, doc))
            except Exception as e:  # noqa: BLE001
                with mu:
                    lost.append(repr(e))
                return
            finally:
                c.close()

    ts = [threading.Thread(target=client) for _ in range(16)]
    for t in ts:
        t.start()
    time.sleep(1.0)
    d.proc.send_signal(signal.SIGTERM)
    for t in ts:
        t.join(60)
    rc = d.proc.wait(60)
    print("drain under TLS: %d answered (%d of them 503 draining), %d refused at connect, %d lost"
          % (answered[0], draining[0], refused[0], len(lost)))
    C.check(not lost, "drain under TLS: every accepted connection answered (lost: %r)" % lost[:3])
    C.check(answered[0] > 16, "drain under TLS: load was flowing (%d answered)" % answered[0])
    C.check(rc == 0, "drain under TLS: exit 0 (got %s)" % rc)


def main():
    if not shutil.which("openssl"):
        H.skip("openssl is not installed (scripts/deps.sh installs it)")
    work = H.mkdtemp("rwd-tls-")
    cert_a, key_a, fp_a = openssl_cert(work, "a")
    cert_b, key_b, fp_b = openssl_cert(work, "b")
    live_cert, live_key = os.path.join(work, "live.pem"), os.path.join(work, "live.key")
    shutil.copy(cert_a, live_cert)
    shutil.copy(key_a, live_key)
    with open(os.path.join(ROOT, "config", "default.json")) as f:
        base = json.load(f)

    plain = H.Daemon(EXE, base)
    try:
        status, doc, _ = post(plain.conn(), BODY)
        C.check(status == 200, "plain HTTP: 200 (got %d %r)" % (status, doc))
        want = rewards(doc)
    finally:
        plain.stop()

    cfg = dict(base)
    cfg["tls"] = {"cert_file": live_cert, "key_file": live_key}
    d = TlsDaemon(EXE, cfg, cert_a)
    try:
        c = https(d.port, cert_a)
        status, doc, _ = post(c, BODY)
        C.check(status == 200 and rewards(doc) == want and len(want) == 2,
                "HTTPS rewards equal the plain-HTTP rewards (%r vs %r)" % (rewards(doc), want))
        ok, what = plain_client_gets_nothing(d.port)
        C.check(ok, "a plain-HTTP client on the TLS port gets no reward (%s)" % what)
        got = served_fingerprint(d.port)
        C.check(got == fp_a, "served certificate is openssl's A (%s vs %s)" % (got, fp_a))

        # SIGHUP with new files: new handshakes get B; the open connection lives on
        shutil.copy(cert_b, live_cert)
        shutil.copy(key_b, live_key)
        d.proc.send_signal(signal.SIGHUP)
        C.check(wait_log(d, "certificate reloaded"), "SIGHUP: the daemon says it reloaded the certificate")
        got = served_fingerprint(d.port)
        C.check(got == fp_b, "after SIGHUP the served certificate is openssl's B (%s vs %s)" % (got, fp_b))
        status, doc, _ = post(c, BODY)
        C.check(status == 200 and rewards(doc) == want,
                "a keep-alive HTTPS connection from before the SIGHUP still serves (%d)" % status)
        c.close()
        status, doc, _ = post(https(d.port, cert_b), BODY)
        C.check(status == 200 and rewards(doc) == want, "a new connection verified against B serves")

        # a broken certificate file: the current one stays
        with open(live_cert, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        d.proc.send_signal(signal.SIGHUP)
        C.check(wait_log(d, "was not reloaded"), "SIGHUP with a broken certificate: an error is logged")
        got = served_fingerprint(d.port)
        C.check(got == fp_b and d.proc.poll() is None,
                "after a failed reload B is still served (%s)" % got)
        shutil.copy(cert_b, live_cert)
        drain_under_tls(d.port, cert_b, d)
    finally:
        if d.proc.poll() is None:
            d.stop()
        else:
            d.log.close()
        if C.failed:
            with open(d.log_path) as f:
                print(f.read()[-3000:])

    # the flags, with the files of A
    f = TlsDaemon(EXE, base, cert_a, args=["--tls-cert", cert_a, "--tls-key", key_a])
    try:
        C.check(served_fingerprint(f.port) == fp_a, "--tls-cert/--tls-key serve A")
        status, doc, _ = post(https(f.port, cert_a), BODY)
        C.check(status == 200 and rewards(doc) == want, "--tls-cert/--tls-key: rewards equal")
    finally:
        C.check(f.stop() == 0, "flags daemon exits 0")

    # a key that is not the certificate's
    p = subprocess.run([EXE, "--listen", "127.0.0.1:%d" % H.free_port(), "--config",
                        os.path.join(ROOT, "config", "default.json"), "--tls-cert", cert_a,
                        "--tls-key", key_b], capture_output=True, text=True, timeout=30)
    C.check(p.returncode != 0 and "tls.key_file" in p.stdout + p.stderr,
            "a key that does not match the certificate is refused at start (rc %d: %r)"
            % (p.returncode, (p.stdout + p.stderr)[-300:]))
    # only one of the two
    p = subprocess.run([EXE, "--check-config", "--tls-cert", cert_a], capture_output=True, text=True,
                       timeout=30)
    C.check(p.returncode != 0 and "tls" in p.stdout + p.stderr,
            "--tls-cert without --tls-key is refused (rc %d)" % p.returncode)
    C.done()


if __name__ == "__main__":
    main()
