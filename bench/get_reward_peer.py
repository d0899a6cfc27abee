"""The Python peer for bench/bench_get_reward.py: OpenRLHF's POST /get_reward
answered by a stdlib ThreadingHTTPServer + PyTorch, what a quick "reward
server in Python" looks like (OpenRLHF's own serve_rm is FastAPI +
transformers; neither is installed here).

    /usr/bin/python3 get_reward_peer.py PORT MODEL_DIR TOKENIZER_JSON THREADS

Per request: json.loads, tokenise every query with HF tokenizers (the Rust
library, through bench/hf_tokenize.js running as a node sidecar;
add_special_tokens=False as serve_rm), then score each query with
tests/parity/seqcls_ref.py (float32, one unpadded forward per query, pooled at
the last non-pad token), reply {"rewards", "scores", "extra_logs"}. One
forward at a time (a lock; torch.set_num_threads(THREADS)): concurrent
requests queue, none is batched with another."""
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "parity"))
import seqcls_ref  # noqa: E402

PORT, FOLDER, TOK_JSON, THREADS = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
torch.set_num_threads(THREADS)
MODEL = seqcls_ref.Model(FOLDER)
TOK = subprocess.Popen(["node", os.path.join(HERE, "hf_tokenize.js"), ROOT, TOK_JSON],
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
TOK_LOCK = threading.Lock()
MODEL_LOCK = threading.Lock()


def tokenize(strings):
    with TOK_LOCK:
        TOK.stdin.write(json.dumps(strings) + "\n")
        TOK.stdin.flush()
        return json.loads(TOK.stdout.readline())


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else headers and body wait on delayed ACKs (~40 ms)

    def log_message(self, *a):
        pass

    def reply(self, code, obj):
        out = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path.split("?")[0] != "/get_reward":
            self.reply(404, {"error": "not found"})
            return
        ids = tokenize(body["query"]) if body["query"] else []
        with MODEL_LOCK:
            rewards = [float(MODEL.score(x)[0]) for x in ids]
        self.reply(200, {"rewards": rewards, "scores": rewards, "extra_logs": {"score": rewards}})


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # wrk closes its connections at the end of a run while requests are still queued
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


Server(("127.0.0.1", PORT), Handler).serve_forever()
