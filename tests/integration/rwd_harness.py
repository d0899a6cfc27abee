"""Shared helpers for rewardd's integration tests.

Starts the real daemon on 127.0.0.1 on a free port, speaks HTTP to it with
http.client, and validates every response against proto/openapi.yaml (JSON
Schema 2020-12 via python3-jsonschema). Reference scores come from PyTorch
run here (never typed in). Run with Debian's /usr/bin/python3.
"""
import re
import atexit
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import shutil
import tempfile
import time

_TEMP = []


def mkdtemp(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    _TEMP.append(d)
    return d


@atexit.register
def _cleanup():
    for d in _TEMP:
        shutil.rmtree(d, ignore_errors=True)

SKIP = 77


def skip(why):
    print("SKIP:", why)
    sys.exit(SKIP)


try:
    import jsonschema
    import yaml
except ImportError as e:  # pragma: no cover
    skip("python3-jsonschema / python3-yaml missing: %s" % e)

SRC = os.environ.get("RWD_SOURCE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tools"))


class Contract:
    """Looks up the schema of (method, route, status) in the OpenAPI file."""

    def __init__(self):
        with open(os.path.join(SRC, "proto", "openapi.yaml")) as f:
            self.doc = yaml.safe_load(f)
        self.resolver = jsonschema.RefResolver.from_schema(self.doc)
        self.checked = 0

    def _deref(self, obj):
        while isinstance(obj, dict) and "$ref" in obj:
            obj = self.resolver.resolve(obj["$ref"])[1]
        return obj

    def validate(self, method, route, status, ctype, body):
        path = self.doc["paths"].get(route)
        op = path.get(method.lower()) if path else None
        if op is None:
            # unknown routes answer 404, other methods of a known route 405,
            # both with the common error body
            assert status == (405 if path else 404), (method, route, status)
            assert ctype == "application/json", (method, route, status, ctype)
            schema = {"$ref": "#/components/schemas/Error"}
        else:
            resp = op["responses"].get(str(status))
            assert resp is not None, "status %d not in the contract for %s %s: %r" % (
                status, method, route, body[:300])
            resp = self._deref(resp)
            content = resp.get("content", {})
            if ctype.startswith("text/"):
                assert ctype.split(";")[0] in content, (method, route, status, ctype)
                self.checked += 1
                return None
            assert ctype == "application/json", (method, route, status, ctype)
            schema = content["application/json"]["schema"]
        doc = json.loads(body)
        jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator,
                            resolver=self.resolver)
        self.checked += 1
        return doc


CONTRACT = Contract()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Reply:
    def __init__(self, status, headers, raw, doc):
        self.status, self.headers, self.raw, self.json = status, headers, raw, doc

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


class Daemon:
    """A rewardd process with a config written to a temp dir."""

    def __init__(self, exe, config, env=None, args=()):
        self.exe = exe
        self.dir = mkdtemp(prefix="rwd-it-")
        self.port = free_port()
        self.cfg_path = os.path.join(self.dir, "config.json")
        config = dict(config)
        config["listen"] = "127.0.0.1:%d" % self.port
        with open(self.cfg_path, "w") as f:
            json.dump(config, f)
        e = dict(os.environ)
        e.pop("REWARDD_API_KEYS", None)
        e.update(env or {})
        self.log_path = os.path.join(self.dir, "rewardd.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([exe, "--config", self.cfg_path] + list(args),
                                     stdout=self.log, stderr=subprocess.STDOUT, env=e)
        self.wait_up()

    def wait_up(self, timeout=20):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError("rewardd exited with %d:\n%s" % (self.proc.returncode, self.logs()))
            try:
                r = self.request("GET", "/readyz", validate_route="/readyz")
                if r.status == 200 or r.json.get("status") == "no_models":
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("rewardd did not become ready:\n" + self.logs())

    def logs(self):
        if not self.log.closed:  # stop() closes it; the file stays readable
            self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def conn(self, timeout=30):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, conn=None,
                validate_route=None, key=None):
        """One request; validates the reply against the contract."""
        own = conn is None
        c = conn or self.conn()
        h = dict(headers or {})
        if key:
            h["Authorization"] = "Bearer " + key
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        try:
            c.request(method, path, body=body, headers=h)
            resp = c.getresponse()
            raw = resp.read()
            hdrs = resp.getheaders()
        finally:
            if own:
                c.close()
        ctype = dict((k.lower(), v) for k, v in hdrs).get("content-type", "")
        route = validate_route or route_of(path)
        doc = CONTRACT.validate(method, route, resp.status, ctype, raw)
        return Reply(resp.status, hdrs, raw, doc)

    def metrics(self, key=None):
        r = self.request("GET", "/metrics", key=key)
        assert r.status == 200, r.raw
        return parse_metrics(r.raw.decode())

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Signals the daemon and waits; its exit status, made non-zero if
        its log holds a sanitizer report (printed here)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("rewardd did not exit within %ss" % timeout)
        rc = self.proc.returncode
        if sanitizer_reports(self.logs()) and rc == 0:
            rc = SANITIZER_EXIT
        self.log.close()
        return rc


# What TSan exits with after a report; stop() reports the same for any sanitizer
SANITIZER_EXIT = 66
_SANITIZER_START = re.compile(r"^(==\d+==ERROR: (Address|Leak)Sanitizer|WARNING: ThreadSanitizer|"
                              r".*: runtime error: )")


def sanitizer_reports(text):
    """The sanitizer reports (ASan, LSan, TSan, UBSan) in a daemon log, each
    printed to stdout with up to 40 lines; returns how many there were."""
    lines = text.splitlines()
    n = 0
    for i, line in enumerate(lines):
        if _SANITIZER_START.match(line):
            n += 1
            if n <= 5:
                print("SANITIZER REPORT in rewardd's log:")
                print("\n".join("  " + x for x in lines[i:i + 40]))
    if n:
        print("%d sanitizer reports in rewardd's log" % n)
    return n


def route_of(path):
    p = path.split("?")[0]
    if p.startswith("/v1/models/"):
        if p.endswith("/load") or p.endswith("/unload"):
            return "/v1/models/{name}/" + p.rsplit("/", 1)[1]
        return "/v1/models/{name}"
    return p


def parse_metrics(text):
    """{(name, frozenset(labels)): value} from Prometheus text."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, value = line.rsplit(" ", 1)
        if "{" in name_labels:
            name, rest = name_labels.split("{", 1)
            labels = []
            for part in rest.rstrip("}").split('",'):
                if not part:
                    continue
                k, v = part.split("=", 1)
                labels.append((k, v.strip('"')))
            key = (name, frozenset(labels))
        else:
            key = (name_labels, frozenset())
        out[key] = float(value)
    return out


def metric(m, name, **labels):
    return m.get((name, frozenset(labels.items())), 0.0)


def make_mlp_head(folder, d_in=16, d_hidden=32, outputs=("quality", "safety"), seed=0):
    """A random 2-layer relu mlp head as a model folder; returns a torch oracle."""
    import torch
    import safetensors_io
    torch.manual_seed(seed)
    os.makedirs(folder, exist_ok=True)
    w0 = torch.randn(d_hidden, d_in) * 0.3
    b0 = torch.randn(d_hidden) * 0.1
    w1 = torch.randn(len(outputs), d_hidden) * 0.3
    b1 = torch.randn(len(outputs)) * 0.1
    safetensors_io.save({"layers.0.weight": w0, "layers.0.bias": b0,
                         "layers.2.weight": w1, "layers.2.bias": b1},
                        os.path.join(folder, "model.safetensors"))
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump({"rewardd_kind": "mlp", "activation": "relu", "outputs": list(outputs)}, f)

    def oracle(x):
        t = torch.tensor(x, dtype=torch.float32)
        with torch.no_grad():
            y = torch.relu(t @ w0.T + b0) @ w1.T + b1
        return y.tolist()
    return oracle


class Checker:
    """Counts checks and failures; prints a summary line."""

    def __init__(self, name):
        self.name, self.n, self.failed = name, 0, []

    def check(self, cond, what):
        self.n += 1
        if not cond:
            self.failed.append(what)
            print("FAIL:", what)

    def done(self):
        print("%s: %d checks, %d failed, %d responses validated against proto/openapi.yaml" % (
            self.name, self.n, len(self.failed), CONTRACT.checked))
        sys.exit(1 if self.failed else 0)


def byte_map():
    """GPT-2's byte -> printable character map (byte-level BPE)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def add_tokenizer(folder, corpus, vocab_size):
    """A small byte-level BPE tokenizer.json (Qwen2's pipeline: NFC, the Qwen split
    regex, ByteLevel) trained here on corpus, with ChatML specials at the top ids
    (<|endoftext|> = the tiny config's pad id)."""
    bm = byte_map()
    vocab = {bm[b]: i for i, b in enumerate(sorted(bm))}
    words = {}
    for w in re.findall(r" ?\w+| ?[^\w\s]+|\s+", corpus):
        key = tuple(bm[b] for b in w.encode())
        words[key] = words.get(key, 0) + 1
    merges = []
    while len(vocab) < vocab_size - 3:
        pairs = {}
        for w, c in words.items():
            for x, y in zip(w, w[1:]):
                pairs[(x, y)] = pairs.get((x, y), 0) + c
        if not pairs:
            break
        best = max(sorted(pairs), key=lambda k: pairs[k])
        merges.append(best[0] + " " + best[1])
        vocab[best[0] + best[1]] = len(vocab)
        nw = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            nw[tuple(out)] = nw.get(tuple(out), 0) + c
        words = nw
    added = lambda i, t: {"id": i, "content": t, "single_word": False, "lstrip": False,  # noqa: E731
                          "rstrip": False, "normalized": False, "special": True}
    rx = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
          "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    tok = {"version": "1.0", "truncation": None, "padding": None,
           "added_tokens": [added(vocab_size - 3, "<|im_start|>"), added(vocab_size - 2, "<|im_end|>"),
                            added(vocab_size - 1, "<|endoftext|>")],
           "normalizer": {"type": "NFC"},
           "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
               {"type": "Split", "pattern": {"Regex": rx}, "behavior": "Isolated", "invert": False}, bl]},
           "post_processor": bl, "decoder": bl,
           "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                     "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
                     "ignore_merges": False, "vocab": vocab, "merges": merges}}
    path = os.path.join(folder, "tokenizer.json")
    with open(path, "w") as f:
        json.dump(tok, f)
    return path
