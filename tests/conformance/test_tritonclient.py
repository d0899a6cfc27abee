"""tritonclient.http's default infer() against rewardd's OIP v2, replayed with numpy.

Mirrors triton-inference-server/client (read at the source):
  src/python/library/tritonclient/http/_utils.py@03a0aac _get_inference_request:
    {"id", "inputs": [tensor], "parameters": {"binary_data_output": true}}
    when outputs is None; the JSON, then each input's raw bytes; the JSON's
    length goes in Inference-Header-Content-Length.
  _infer_input.py (trainer-paths.md @58a44ca): set_data_from_numpy defaults to
    binary_data=True, parameters.binary_data_size; BYTES serialised as a
    4-byte little-endian length then the bytes (serialize_byte_tensor).
  geventhttpclient transport: no Content-Type header.
  _infer_result.py@2a25fb3 InferResult: with Inference-Header-Content-Length
    the first header_length bytes are JSON and outputs with
    parameters.binary_data_size index the rest (np.frombuffer); without it
    the whole body is JSON and as_numpy is np.array(data, dtype).reshape(shape).
Oracle: the same items through POST /v1/rewards.
Usage: test_tritonclient.py REWARDD_EXE"""
import http.client
import json
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import rwd_harness as H  # noqa: E402

try:
    import numpy as np
except ImportError as e:
    H.skip("needs python3-numpy (%s)" % e)

EXE = sys.argv[1]
C = H.Checker("test_tritonclient")


def serialize_byte_tensor(arr):
    return b"".join(struct.pack("<I", len(s)) + s for s in arr.flatten())


def infer_body(inputs, request_id, outputs=None):
    """_get_inference_request with binary inputs; returns (body, json_size)."""
    req = {"id": request_id}
    req["inputs"] = [{"name": n, "shape": list(a.shape), "datatype": dt,
                      "parameters": {"binary_data_size": len(raw)}} for n, a, dt, raw in inputs]
    if outputs:
        req["outputs"] = outputs
    else:
        req["parameters"] = {"binary_data_output": True}
    j = json.dumps(req)
    return b"".join([j.encode()] + [raw for _, _, _, raw in inputs]), len(j)


def post(port, path, body, json_size):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.putrequest("POST", path)
    c.putheader("Content-Length", str(len(body)))
    c.putheader("Inference-Header-Content-Length", str(json_size))
    c.putheader("User-Agent", "python/gevent-http-client-2.0")
    c.endheaders()
    c.send(body)
    r = c.getresponse()
    raw, hl = r.read(), r.getheader("Inference-Header-Content-Length")
    c.close()
    # the JSON part (all of it, or the Inference-Header-Content-Length prefix) against the contract
    route = "/v2/models/{name}/infer" if path.endswith("/infer") else path
    H.CONTRACT.validate("POST", route, r.status, "application/json", raw[:int(hl)] if hl is not None else raw)
    return r.status, raw, hl


def as_numpy(raw, header_length, name):
    """InferResult + as_numpy, FP32 outputs."""
    if header_length is None:
        result, buf = json.loads(raw), b""
    else:
        hl = int(header_length)
        result, buf = json.loads(raw[:hl]), raw[hl:]
    index, pos = {}, 0
    for o in result["outputs"]:
        size = (o.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            index[o["name"]] = pos
            pos += size
    for o in result["outputs"]:
        if o["name"] == name:
            size = (o.get("parameters") or {}).get("binary_data_size")
            if size is not None:
                a = np.frombuffer(buf[index[name]:index[name] + size], dtype=np.float32)
            else:
                a = np.array(o["data"], dtype=np.float32)
            return result, a.reshape(o["shape"])
    return result, None


def main():
    d = H.Daemon(EXE, {"models": {"rm": {"kind": "rules", "compat": {"classify_dimension": "reward"}}}})
    try:
        texts = ["<think>a</think><answer>4</answer>", "<answer>5</answer>", "no tags at all"]
        labels = ["4", "4", "4"]
        t = np.array([s.encode() for s in texts], dtype=np.object_)
        lab = np.array([s.encode() for s in labels], dtype=np.object_)
        inputs = [("text", t, "BYTES", serialize_byte_tensor(t)), ("label", lab, "BYTES", serialize_byte_tensor(lab))]
        body, js = infer_body(inputs, "req-1")
        st, raw, hl = post(d.port, "/v2/models/rm/infer", body, js)
        C.check(st == 200, "binary request accepted: %d %s" % (st, raw[:300]))
        if st == 200:
            result, rewards = as_numpy(raw, hl, "rewards")
            # binary_data_output was asked: the reply is the JSON header plus raw FP32 (http.c sends the length)
            C.check(hl is not None and any("binary_data_size" in (o.get("parameters") or {})
                                           for o in result["outputs"]),
                    "binary outputs with Inference-Header-Content-Length: %r" % hl)
            C.check(result.get("id") == "req-1", "id echoed")
            r = d.request("POST", "/v1/rewards", body={"model": "rm", "items": [
                {"response": s, "label": l} for s, l in zip(texts, labels)]})
            want = np.array([[x["reward"]] for x in r.json["results"]], dtype=np.float32)
            C.check(rewards is not None and rewards.shape == (3, 1) and np.allclose(rewards, want),
                    "rewards %s = /v1/rewards %s" % (rewards, want))
        # outputs named, binary_data per output
        body, js = infer_body(inputs[:1], "req-2", outputs=[{"name": "format", "parameters": {"binary_data": True}}])
        st, raw, hl = post(d.port, "/v2/models/rm/infer", body, js)
        _, fmt = as_numpy(raw, hl, "format") if st == 200 else (None, None)
        C.check(fmt is not None and fmt.tolist() == [1.0, 0.0, 0.0], "format output: %s %s" % (st, raw[:200]))
        # untrusted framing: a length prefix past the tensor is a 400 naming the input
        bad = inputs[0][3][:-3]
        body, js = infer_body([("text", t, "BYTES", bad)], "req-3")
        st, raw, hl = post(d.port, "/v2/models/rm/infer", body, js)
        C.check(st == 400 and "inputs[0]" in json.loads(raw)["error"], "truncated BYTES: %d %s" % (st, raw[:200]))
        # server metadata and model config (tritonclient get_server_metadata / get_model_config)
        c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
        c.request("GET", "/v2")
        r = c.getresponse()
        raw = r.read()
        meta = H.CONTRACT.validate("GET", "/v2", r.status, r.getheader("Content-Type"), raw)
        C.check(r.status == 200 and "binary_tensor_data" in meta["extensions"], "GET /v2: %s" % meta)
        c.request("GET", "/v2/models/rm/config")
        r = c.getresponse()
        raw = r.read()
        cfg = H.CONTRACT.validate("GET", "/v2/models/{name}/config", r.status, r.getheader("Content-Type"), raw)
        C.check(r.status == 200 and cfg["name"] == "rm" and cfg["input"][0]["data_type"] == "TYPE_STRING",
                "GET config: %s" % cfg)
        c.close()
    finally:
        d.stop()
    C.done()


main()
