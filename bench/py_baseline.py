"""The Python peer for bench/run_bench.py: a stdlib ThreadingHTTPServer
that answers POST /v1/rewards for one mlp head with PyTorch (one forward per
request, no batching) — what a quick "reward server in Python" looks like.
Usage: py_baseline.py PORT MODEL.safetensors"""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import safetensors_io  # noqa: E402

torch.set_num_threads(1)
W = safetensors_io.load(sys.argv[2])
LAYERS = sorted({k.rsplit(".", 1)[0] for k in W}, key=lambda s: int(s.split(".")[1]))


def forward(x):
    with torch.no_grad():
        for name in LAYERS:
            x = x @ W[name + ".weight"].T + W[name + ".bias"]
    return x


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else headers and body wait on delayed ACKs (~40 ms)

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        xs = torch.tensor([it["embedding"] for it in body["items"]], dtype=torch.float32)
        ys = forward(xs).tolist()
        out = json.dumps({"results": [{"reward": y[0], "scores": {"score": y[0]}} for y in ys]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
