"""The drop-in trainer endpoints end to end (daemon/api_compat.c, README.md, Drop-in endpoints).

Each trainer's request is built the way its client code builds it
(shared/reference/rl-clients.md): OpenRLHF's POST /get_reward body (query =
decoded prompt + response with the chat template and EOS, prompts, labels;
1-item and sharded batches, empty shards), verl's POST /classify (one
chat-templated text, "activation": false, reading data[-1].probs[-1]) plus
vLLM /pooling and SGLang /v1/embeddings, and a KServe v2 infer body (as
tritonclient.http sends with binary_data=False). Oracles run here: rules
values follow by construction from the documented rules (format 1 for a
well-formed <think>/<answer> response, accuracy 1 when the answer equals the
label, reward = their mean); mlp and seqcls scores come from PyTorch (the mlp
head computed by torch, seqcls by tests/parity/seqcls_ref.py on token ids:
ids sent as such, or text encoded by HF tokenizers through node with a small
byte-level BPE tokenizer.json trained here, add_special_tokens=False as
OpenRLHF's serve_rm).
Every response is validated against proto/openapi.yaml.
Usage: test_dropin.py REWARDD_EXE"""
import json
import math
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rwd_harness as H  # noqa: E402

try:
    import torch
except ImportError:
    H.skip("/usr/bin/python3 has no torch (Debian python3-torch)")

sys.path.insert(0, os.path.join(H.SRC, "tests", "parity"))
import seqcls_ref  # noqa: E402

EXE = sys.argv[1]
C = H.Checker("test_dropin")
D_IN = 16
KEY = "k-" + "%032x" % random.getrandbits(128)
JSON = {"Content-Type": "application/json"}

SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"


def chatml_prompt(question):
    """The prompt as OpenRLHF's apply_chat_template + decode leaves it (ChatML)."""
    return SYSTEM + "<|im_start|>user\n" + question + "<|im_end|>\n<|im_start|>assistant\n"


def make_samples(rng, n):
    """(query, prompt, label, format, accuracy, response): the oracle values by construction."""
    out = []
    for i in range(n):
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        truth = a + b
        prompt = chat = chatml_prompt("What is %d + %d? Think, then answer." % (a, b))
        style = i % 4
        given = truth if i % 3 != 1 else truth + rng.randint(1, 9)
        if style == 0:
            resp, fmt = "<think>\n%d plus %d\n</think>\n<answer>\n%d\n</answer>" % (a, b, given), 1.0
        elif style == 1:
            resp, fmt = "<think>adding</think><answer>%d</answer>" % given, 1.0
        elif style == 2:
            # no think block: not well formed; the answer block still gives the answer
            resp, fmt = "<answer>%d</answer>" % given, 0.0
        else:
            # stray text after the answer block: not well formed
            resp, fmt = "<think>x</think><answer>%d</answer> done" % given, 0.0
        eos = "<|im_end|>" if i % 2 == 0 else "<|im_end|><|endoftext|>"
        out.append((chat + resp + eos, prompt, str(truth), fmt, 1.0 if given == truth else 0.0, resp + eos))
    return out


def close(a, b, tol=1e-5):
    return a is not None and b is not None and abs(a - b) <= tol * max(1.0, abs(b))


def openrlhf_post(d, url, queries, prompts, labels, validate="/get_reward"):
    """remote_rm_utils.request_api_wrapper: requests.post(url, json=data, headers=JSON)."""
    data = {"query": queries, "prompts": prompts, "labels": labels}
    return d.request("POST", url, body=json.dumps(data).encode(), headers=JSON,
                     validate_route=validate)


def err_field(r):
    e = r.json.get("error") if isinstance(r.json, dict) else None
    return e.get("field") if isinstance(e, dict) else None


def test_openrlhf(d, rng):
    samples = make_samples(rng, 12)
    q = [s[0] for s in samples]
    p = [s[1] for s in samples]
    lab = [s[2] for s in samples]
    # older OpenRLHF: one large shard per server per step
    r = openrlhf_post(d, "/get_reward?model=rm", q, p, lab)
    C.check(r.status == 200, "get_reward batch: %d %s" % (r.status, r.raw[:300]))
    if r.status == 200:
        j = r.json
        fmt = [s[3] for s in samples]
        acc = [s[4] for s in samples]
        want = [(f + a) / 2 for f, a in zip(fmt, acc)]
        C.check(len(j["rewards"]) == len(q) and len(j["scores"]) == len(q), "get_reward lengths")
        C.check(all(close(x, y) for x, y in zip(j["rewards"], want)),
                "get_reward rewards %s vs oracle %s" % (j["rewards"], want))
        C.check(j["scores"] == j["rewards"], "scores = rewards")
        # one key set per model: every dimension plus <dim>_present (lib/compat/compat.h)
        C.check(set(j["extra_logs"]) == {"format", "accuracy", "format_present", "accuracy_present"},
                "extra_logs keys %s" % list(j["extra_logs"]))
        C.check(j["extra_logs"].get("format") == fmt, "extra_logs format %s vs %s" % (j["extra_logs"].get("format"), fmt))
        C.check(j["extra_logs"].get("accuracy") == acc, "extra_logs accuracy")
        # what the pre-restructure trainer does with it
        t = torch.cat([torch.as_tensor(j["rewards"])])
        C.check(t.shape == (len(q),), "torch.cat of rewards")
    # OpenRLHF HEAD: one item per request, many in flight; other endpoints get empty lists
    s = samples[0]
    r = openrlhf_post(d, "/get_reward?model=rm", [s[0]], [s[1]], [s[2]])
    C.check(r.status == 200 and close(r.json["rewards"][0], (s[3] + s[4]) / 2),
            "get_reward 1 item: %s" % r.raw[:200])
    r = openrlhf_post(d, "/get_reward?model=rm", [], [], [])
    C.check(r.status == 200 and r.json["rewards"] == [] and r.json["scores"] == [] and
            all(v == [] for v in r.json["extra_logs"].values()), "empty query: %s" % r.raw[:200])
    # labels from a dataset without label_key: null -> accuracy absent (filler 0, accuracy_present 0)
    r = openrlhf_post(d, "/get_reward?model=rm", q[:4], p[:4], [None] * 4)
    C.check(r.status == 200 and r.json["rewards"] == [s[3] for s in samples[:4]] and
            r.json["extra_logs"]["accuracy_present"] == [0.0] * 4 and
            r.json["extra_logs"]["accuracy"] == [0.0] * 4, "labels null: %s" % r.raw[:300])
    # the 2024 body (query only): the prompt is not stripped, so nothing is well formed
    r = d.request("POST", "/get_reward?model=rm", body={"query": q[:3]}, validate_route="/get_reward")
    C.check(r.status == 200 and r.json["extra_logs"]["format"] == [0.0, 0.0, 0.0] and
            r.json["extra_logs"]["accuracy_present"] == [0.0] * 3, "query only: %s" % r.raw[:300])
    # errors: a whole-request JSON error, never a partial answer
    r = openrlhf_post(d, "/get_reward?model=rm", q[:3], p[:3], lab[:2])
    C.check(r.status == 400 and err_field(r) == "labels", "labels length: %s" % r.raw[:200])
    r = openrlhf_post(d, "/get_reward?model=rm", q[:3], p[:2], lab[:3])
    C.check(r.status == 400 and err_field(r) == "prompts", "prompts length: %s" % r.raw[:200])
    r = openrlhf_post(d, "/get_reward?model=rm", [q[0], 7], None, None)
    C.check(r.status == 400 and err_field(r) == "query[1]", "query[1] not a string: %s" % r.raw[:200])
    r = d.request("POST", "/get_reward?model=rm", body={"prompts": []}, validate_route="/get_reward")
    C.check(r.status == 400 and err_field(r) == "query", "missing query: %s" % r.raw[:200])
    r = openrlhf_post(d, "/get_reward?model=rm", q[:2], p[:2], [lab[0], {"x": 1}])
    C.check(r.status == 400 and err_field(r) == "labels[1]", "bad label: %s" % r.raw[:200])
    big = q[0] + "x" * ((1 << 20) + (6 << 10))   # past the rules kind's 1 MiB response default
    r = openrlhf_post(d, "/get_reward?model=rm", [q[0], q[1], big], p[:3], lab[:3])
    C.check(r.status == 413 and err_field(r) == "query[2]", "oversize query: %s" % r.raw[:200])
    r = openrlhf_post(d, "/get_reward?model=rm", ["x"] * 300, None, None)
    C.check(r.status == 413 and err_field(r) == "query", "over max_items: %s" % r.raw[:200])
    r = openrlhf_post(d, "/get_reward?model=nope", q[:1], p[:1], lab[:1])
    C.check(r.status == 404 and r.json["error"]["code"] == "unknown_model", "unknown model: %s" % r.raw[:200])
    r = openrlhf_post(d, "/get_reward", q[:1], p[:1], lab[:1])
    C.check(r.status == 400 and err_field(r) == "model", "several models, none named: %s" % r.raw[:200])
    r = openrlhf_post(d, "/get_reward?model=head", q[:1], p[:1], lab[:1])
    C.check(r.status == 400, "mlp takes no text: %s" % r.raw[:200])
    r = d.request("POST", "/get_reward?model=rm", body=b"{\"query\": [", headers=JSON,
                  validate_route="/get_reward")
    C.check(r.status == 400 and r.json["error"]["code"] == "invalid_json", "bad JSON")
    r = d.request("GET", "/get_reward", validate_route="/get_reward")
    C.check(r.status == 405 and r.header("Allow") == "POST", "GET /get_reward")


def verl_classify(d, model, text, key="activation"):
    """reward_loop.py compute_score_disrm (vLLM backend): POST /classify, read data[-1].probs[-1]."""
    r = d.request("POST", "/classify", body={"model": model, "input": text, key: False},
                  validate_route="/classify")
    return r, (r.json["data"][-1]["probs"][-1] if r.status == 200 else None)


def test_verl_rules(d, rng):
    samples = make_samples(rng, 4)
    for s in samples:
        # verl renders raw_prompt + the response with the RM's template and strips a
        # BOS; /classify carries no prompt, so rules sees the template in the text
        # and (full anchoring, documented) nothing is well formed
        r, score = verl_classify(d, "/checkpoints/fmt/", s[0])
        C.check(r.status == 200 and score == 0.0 and r.json["model"] == "fmt" and
                r.json["data"][0]["num_classes"] == 1 and r.json["data"][0]["label"] == "format",
                "verl classify (path match): %s" % r.raw[:300])
        # the response alone is scored by the documented rule
        r, score = verl_classify(d, "/checkpoints/fmt/", s[5])
        C.check(score == s[3], "classify response text: %s vs format %s" % (r.raw[:300], s[3]))
    r, score = verl_classify(d, "fmt", samples[0][5], key="use_activation")
    C.check(score == samples[0][3], "use_activation false: %s" % r.raw[:200])
    # vLLM's default activation: sigmoid for one class
    r = d.request("POST", "/classify", body={"model": "fmt", "input": [s[5] for s in samples]})
    C.check(r.status == 200 and [e["index"] for e in r.json["data"]] == [0, 1, 2, 3] and
            all(close(e["probs"][0], 1 / (1 + math.exp(-s[3]))) and e["logits"][0] == s[3]
                for e, s in zip(r.json["data"], samples)), "classify sigmoid: %s" % r.raw[:300])
    r = d.request("POST", "/classify", body={"model": "nope", "input": "x"})
    C.check(r.status == 404 and r.json["error"]["code"] == "unknown_model", "classify unknown model")
    r = d.request("POST", "/classify", body={"model": "fmt", "input": ["ok", 3]})
    C.check(r.status == 400 and err_field(r) == "input[1]", "classify bad input: %s" % r.raw[:200])
    r = d.request("POST", "/classify", body={"model": "fmt"})
    C.check(r.status == 400 and err_field(r) == "input", "classify no input")
    r = d.request("POST", "/classify", body={"model": "fmt", "input": [], "activation": False})
    C.check(r.status == 200 and r.json["data"] == [], "classify empty input")
    r = d.request("POST", "/pooling", body={"model": "fmt", "input": samples[0][5]})
    C.check(r.status == 200 and r.json["data"][0]["object"] == "pooling" and
            r.json["data"][0]["data"] == [samples[0][3]], "pooling rules: %s" % r.raw[:200])
    # a dimension a text lacks is never null (vLLM types data as floats): 422 naming it
    r = d.request("POST", "/pooling", body={"model": "rm", "input": [samples[0][0]]})
    C.check(r.status == 422 and err_field(r) == "input[0]" and "accuracy" in r.json["error"]["message"],
            "pooling absent dim is a 422: %s" % r.raw[:300])


def make_seqcls(work):
    out = os.path.join(work, "cls")
    gen = os.path.join(H.SRC, "tools", "make_tiny_models.py")
    subprocess.run(["/usr/bin/python3", gen, "qwen2", "tiny", out, "--seed", "3",
                    "--labels", "helpful,harmless"], check=True, capture_output=True)
    return out


byte_map, add_tokenizer = H.byte_map, H.add_tokenizer  # shared with tests/conformance


NODE_ENCODE = r"""
const path = require('path');
const fs = require('fs');
const [root, file] = process.argv.slice(2);
const { Tokenizer } = require(path.join(root, 'node_modules', '@anush008', 'tokenizers'));
const strings = JSON.parse(fs.readFileSync(0, 'utf8'));
Tokenizer.fromFile(file).encodeBatch(strings, { addSpecialTokens: false }).then((enc) => {
  console.log(JSON.stringify(enc.map((e) => Array.from(e.getIds()))));
});
"""


def hf_encode(tok_file, strings):
    """HF tokenizers (the Rust library through node), add_special_tokens=False as serve_rm."""
    import shutil
    node = shutil.which("node")
    if not node or not os.path.isdir(os.path.join(H.SRC, "node_modules", "@anush008", "tokenizers")):
        return None
    js = os.path.join(H.mkdtemp("rwd-dropin-js-"), "enc.js")
    with open(js, "w") as f:
        f.write(NODE_ENCODE)
    p = subprocess.run([node, js, H.SRC, tok_file], input=json.dumps(strings), capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError("node encoder failed: " + p.stderr[:500])
    return json.loads(p.stdout)


def test_openrlhf_seqcls(d, folder, tok_file, rng):
    """OpenRLHF's body on a sequence classifier: query scored as text, as sent."""
    samples = make_samples(rng, 6)
    q = [s[0] for s in samples]
    ids = hf_encode(tok_file, q)
    if ids is None:
        print("SKIP seqcls text: node or node_modules/@anush008/tokenizers missing")
        return
    ref = seqcls_ref.Model(folder)
    want = [list(map(float, ref.score(x))) for x in ids]
    r = openrlhf_post(d, "/get_reward?model=cls", q, [s[1] for s in samples], [s[2] for s in samples])
    worst = 0.0
    # every dimension, plus its <dim>_present 0/1 array (the key set depends on the model only)
    ok = r.status == 200 and set(r.json["extra_logs"]) == {"helpful", "harmless", "helpful_present",
                                                          "harmless_present"}
    ok = ok and all(v == [1.0] * len(q) for k, v in r.json["extra_logs"].items() if k.endswith("_present"))
    if ok:
        for i, w in enumerate(want):
            scale = max(abs(v) for v in w) + 1e-6
            got = [r.json["extra_logs"]["helpful"][i], r.json["extra_logs"]["harmless"][i]]
            worst = max([worst] + [abs(a - b) / max(abs(b), scale) for a, b in zip(got, w)])
            ok = ok and close(r.json["rewards"][i], (w[0] + w[1]) / 2, 1e-4)
        ok = ok and worst <= 1e-4 and r.json["scores"] == r.json["rewards"]
    print("seqcls /get_reward (HF tokenizers ids, %d tokens) vs seqcls_ref.py: worst rel err %.3g" % (
        sum(map(len, ids)), worst))
    C.check(ok, "get_reward seqcls vs torch: %s" % r.raw[:300])
    # verl's exact /classify body: one chat-templated text, activation false, data[-1].probs[-1]
    r, score = verl_classify(d, folder, q[2])
    C.check(r.status == 200 and close(score, want[2][-1], 1e-4),
            "verl classify seqcls text: %s vs %s" % (r.raw[:300], want[2]))
    # KServe v2 with a BYTES text tensor [N, 1]
    body = {"inputs": [{"name": "text", "shape": [len(q), 1], "datatype": "BYTES", "data": [[x] for x in q]}]}
    r = v2(d, "POST", "/v2/models/cls/infer", body, "/v2/models/{name}/infer")
    C.check(r.status == 200 and r.json["outputs"][0]["shape"] == [len(q), 2] and
            all(close(a, b, 1e-4) for a, b in zip(r.json["outputs"][0]["data"], [v for w in want for v in w])),
            "v2 infer seqcls text vs torch: %s" % r.raw[:300])


def test_verl_seqcls(d, folder, rng):
    ref = seqcls_ref.Model(folder)
    vocab = ref.cfg["vocab_size"]
    pad = ref.cfg.get("pad_token_id")
    ids = [[rng.randrange(vocab) for _ in range(n)] for n in (5, 17, 40)]
    ids = [[t if t != pad else 1 for t in x] for x in ids]
    want = [list(map(float, ref.score(x))) for x in ids]
    worst = 0.0
    r = d.request("POST", "/classify", body={"model": folder, "input": ids, "activation": False})
    ok = r.status == 200
    if ok:
        for e, w in zip(r.json["data"], want):
            scale = max(abs(v) for v in w) + 1e-6
            for got, ref_v in zip(e["probs"], w):
                worst = max(worst, abs(got - ref_v) / max(abs(ref_v), scale))
        ok = worst <= 1e-4 and [e["num_classes"] for e in r.json["data"]] == [2, 2, 2]
    print("seqcls /classify (token ids) vs seqcls_ref.py: worst rel err %.3g" % worst)
    C.check(ok, "classify seqcls vs torch: %s" % r.raw[:300])
    r = d.request("POST", "/classify", body={"model": "cls", "input": ids[0]})
    sm = torch.softmax(torch.tensor(want[0], dtype=torch.float64), 0).tolist()
    C.check(r.status == 200 and all(close(a, b, 1e-4) for a, b in zip(r.json["data"][0]["probs"], sm)) and
            r.json["data"][0]["label"] == ("helpful" if want[0][0] >= want[0][1] else "harmless"),
            "classify softmax vs torch: %s vs %s" % (r.raw[:300], sm))
    r = d.request("POST", "/pooling", body={"model": "cls", "input": ids})
    C.check(r.status == 200 and all(close(a, b, 1e-4) for e, w in zip(r.json["data"], want)
                                    for a, b in zip(e["data"], w)), "pooling seqcls vs torch")
    # SGLang's path: POST /v1/embeddings, verl reads data[-1].embedding[-1]
    r = d.request("POST", "/v1/embeddings", body={"model": "cls", "input": ids})
    C.check(r.status == 200 and close(r.json["data"][-1]["embedding"][-1], want[-1][-1], 1e-4),
            "embeddings seqcls vs torch: %s" % r.raw[:200])
    r = d.request("POST", "/classify", body={"model": "cls", "input": [[vocab + 5]]})
    C.check(r.status == 400 and err_field(r) == "input[0]", "classify id out of vocab: %s" % r.raw[:200])


def v2(d, method, path, body=None, route=None):
    name_route = route or path
    return d.request(method, path, body=body, validate_route=name_route)


def test_oip(d, oracle, rng):
    r = v2(d, "GET", "/v2/health/live")
    C.check(r.status == 200 and r.json == {"live": True}, "v2 live")
    r = v2(d, "GET", "/v2/health/ready")
    C.check(r.status == 200 and r.json == {"ready": True}, "v2 ready")
    r = v2(d, "GET", "/v2/models/head", route="/v2/models/{name}")
    ok = r.status == 200 and r.json["name"] == "head"
    if ok:
        outs = {o["name"]: o for o in r.json["outputs"]}
        ok = r.json["inputs"] == [{"name": "embedding", "datatype": "FP32", "shape": [-1, -1]}] and \
            outs["rewards"]["shape"] == [-1, 2] and [o["name"] for o in r.json["outputs"]][2:] == ["quality", "safety"]
    C.check(ok, "v2 metadata mlp: %s" % r.raw[:400])
    r = v2(d, "GET", "/v2/models/head/versions/1", route="/v2/models/{name}")
    C.check(r.status == 200 and r.json["versions"] == ["1"], "v2 metadata versions/1")
    r = v2(d, "GET", "/v2/models/head/ready", route="/v2/models/{name}/ready")
    C.check(r.status == 200 and r.json == {"name": "head", "ready": True}, "v2 model ready")
    r = v2(d, "GET", "/v2/models/nope/ready", route="/v2/models/{name}/ready")
    C.check(r.status == 404 and isinstance(r.json["error"], str), "v2 unknown model ready")
    r = v2(d, "GET", "/v2/models/nope", route="/v2/models/{name}")
    C.check(r.status == 404 and isinstance(r.json["error"], str), "v2 unknown model metadata")

    infer = "/v2/models/{name}/infer"
    x = [[rng.uniform(-2, 2) for _ in range(D_IN)] for _ in range(5)]
    want = oracle(x)
    flat = [v for row in x for v in row]
    # tritonclient.http with binary_data=False: flat data, outputs with binary_data false
    body = {"id": "req-7", "inputs": [{"name": "embedding", "shape": [5, D_IN], "datatype": "FP32",
                                       "data": flat}],
            "outputs": [{"name": "rewards", "parameters": {"binary_data": False}}]}
    r = v2(d, "POST", "/v2/models/head/infer", body, infer)
    worst = 0.0
    ok = r.status == 200 and r.json["id"] == "req-7" and r.json["model_name"] == "head"
    if ok:
        o = r.json["outputs"][0]
        ok = o["name"] == "rewards" and o["shape"] == [5, 2] and o["datatype"] == "FP32"
        got = [o["data"][i * 2:(i + 1) * 2] for i in range(5)]
        for g, w in zip(got, want):
            for a, b in zip(g, w):
                worst = max(worst, abs(a - b) / max(1.0, abs(b)))
        ok = ok and worst <= 1e-5
    print("v2 infer mlp vs PyTorch: worst error %.3g" % worst)
    C.check(ok, "v2 infer mlp: %s" % r.raw[:300])
    # nested data, per-dimension and combined outputs
    body = {"inputs": [{"name": "embedding", "shape": [5, D_IN], "datatype": "FP32", "data": x}],
            "outputs": [{"name": "safety"}, {"name": "reward"}]}
    r = v2(d, "POST", "/v2/models/head/infer", body, infer)
    C.check(r.status == 200 and "id" not in r.json and
            all(close(a, w[1]) for a, w in zip(r.json["outputs"][0]["data"], want)) and
            all(close(a, (w[0] + w[1]) / 2) for a, w in zip(r.json["outputs"][1]["data"], want)) and
            r.json["outputs"][0]["shape"] == [5], "v2 per-dimension outputs: %s" % r.raw[:300])

    def bad(body, status, what, model="head"):
        r = v2(d, "POST", "/v2/models/%s/infer" % model, body, infer)
        C.check(r.status == status and isinstance(r.json.get("error"), str),
                "%s: want %d, got %d %s" % (what, status, r.status, r.raw[:200]))
        return r
    emb = lambda **kw: {"inputs": [dict({"name": "embedding", "shape": [1, D_IN], "datatype": "FP32",  # noqa: E731
                                         "data": flat[:D_IN]}, **kw)]}
    bad(emb(datatype="FP64"), 400, "FP64 tensor")
    bad(emb(shape=[2, D_IN]), 400, "data shorter than the shape")
    bad(emb(shape=[D_IN]), 400, "1-D embedding")
    bad(emb(shape=[1 << 32, 1 << 32]), 400, "a shape whose product wraps 64 bits")
    bad(emb(shape=[1, -1]), 400, "negative dimension")
    bad(emb(data=[[[[[[[[[[[1.0]]]]]]]]]]]), 400, "data nested too deep")
    bad(emb(data=["a"] * D_IN), 400, "strings in FP32")
    r = bad(emb(shape=[1, D_IN - 1], data=flat[:D_IN - 1]), 400, "wrong embedding width")
    C.check("embedding" in r.json.get("error", ""), "width error names the tensor: %s" % r.raw[:200])
    bad(emb(parameters={"binary_data_size": 64}), 400, "binary data")
    bad(emb(name="text"), 400, "wrong input name")
    bad({"inputs": []}, 400, "no inputs")
    bad(dict(emb(), outputs=[{"name": "nope"}]), 400, "unknown output")
    bad(emb(), 404, "unknown model", model="nope")
    r = d.request("POST", "/v2/models/head/infer", body=b"{", headers=JSON, validate_route=infer)
    C.check(r.status == 400 and isinstance(r.json.get("error"), str), "v2 bad JSON")
    r = v2(d, "POST", "/v2/models/head/infer",
           {"inputs": [{"name": "embedding", "shape": [0, D_IN], "datatype": "FP32", "data": []}]}, infer)
    C.check(r.status == 200 and r.json["outputs"][0]["shape"] == [0, 2], "empty batch: %s" % r.raw[:200])

    # rules over OIP: BYTES text (+ label), rewards [N, D] in dimension order
    samples = make_samples(rng, 4)
    body = {"inputs": [{"name": "text", "shape": [4], "datatype": "BYTES", "data": [s[0] for s in samples]},
                       {"name": "prompt", "shape": [4], "datatype": "BYTES", "data": [s[1] for s in samples]},
                       {"name": "label", "shape": [4, 1], "datatype": "BYTES", "data": [[s[2]] for s in samples]}],
            "outputs": [{"name": "rewards"}, {"name": "reward"}]}
    r = v2(d, "POST", "/v2/models/rm/infer", body, infer)
    want_rows = [[s[3], s[4]] for s in samples]
    C.check(r.status == 200 and r.json["outputs"][0]["shape"] == [4, 2] and
            r.json["outputs"][0]["data"] == [v for row in want_rows for v in row] and
            r.json["outputs"][1]["data"] == [(a + b) / 2 for a, b in want_rows],
            "v2 infer rules: %s vs %s" % (r.raw[:400], want_rows))
    body = {"inputs": [body["inputs"][0]], "outputs": [{"name": "accuracy"}]}
    bad(body, 422, "a dimension the items lack", model="rm")
    body["outputs"] = [{"name": "rewards"}]
    r = v2(d, "POST", "/v2/models/rm/infer", body, infer)
    C.check(r.status == 422 and "accuracy" in r.json["error"], "absent dimension is a 422: %s" % r.raw[:300])
    bad({"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]},
                    {"name": "label", "shape": [3], "datatype": "BYTES", "data": ["1", "2", "3"]}]},
        400, "row counts differ", model="rm")
    bad({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [1]}]},
        400, "number in BYTES", model="rm")


def test_configured_reward(d, oracle, oracle2, rng):
    """The model's reward config (README.md, Rewards for RL) and ensembles apply as in /v1/rewards."""
    samples = make_samples(rng, 8)
    r = openrlhf_post(d, "/get_reward?model=wrm", [s[0] for s in samples], [s[1] for s in samples],
                      [s[2] for s in samples])
    want = [0.25 * s[3] + 0.75 * s[4] for s in samples]
    C.check(r.status == 200 and all(close(a, b) for a, b in zip(r.json["rewards"], want)) and
            r.json["scores"] == r.json["rewards"], "configured weighted_sum: %s vs %s" % (r.raw[:300], want))
    r = d.request("POST", "/pooling", body={"model": "ens", "input": "x"})
    C.check(r.status == 400, "an ensemble of mlp heads takes no text: %s" % r.raw[:200])
    x = [[rng.uniform(-2, 2) for _ in range(D_IN)] for _ in range(3)]
    a, b = oracle(x), oracle2(x)
    mean = [[(u + v) / 2 for u, v in zip(ra, rb)] for ra, rb in zip(a, b)]
    body = {"inputs": [{"name": "embedding", "shape": [3, D_IN], "datatype": "FP32", "data": x}],
            "outputs": [{"name": "rewards"}, {"name": "reward"}]}
    r = v2(d, "POST", "/v2/models/ens/infer", body, "/v2/models/{name}/infer")
    C.check(r.status == 200 and r.json["model_name"] == "ens" and
            all(close(g, w) for g, w in zip(r.json["outputs"][0]["data"],
                                                                [v for row in mean for v in row])) and
            all(close(g, (w[0] + w[1]) / 2) for g, w in zip(r.json["outputs"][1]["data"], mean)),
            "ensemble (mean of two heads) vs PyTorch: %s vs %s (head %s)" % (r.raw[:300], mean, a))


def test_single_model(exe, rng):
    """One model served: no ?model needed; an API key guards everything but health."""
    d = H.Daemon(exe, {"models": {"only": {"kind": "rules", "options": {"dims": ["format", "accuracy"]},
                                           "compat": {"classify_dimension": "format"}}}},
                 env={"REWARDD_API_KEYS": KEY})
    try:
        s = make_samples(rng, 2)
        r = openrlhf_post(d, "/get_reward", [x[0] for x in s], [x[1] for x in s], [x[2] for x in s])
        C.check(r.status == 401 and r.header("WWW-Authenticate") == "Bearer", "get_reward needs the key")
        r = d.request("POST", "/get_reward", body={"query": [x[0] for x in s], "prompts": [x[1] for x in s]},
                      key=KEY, validate_route="/get_reward")
        C.check(r.status == 200 and r.json["extra_logs"]["format"] == [x[3] for x in s],
                "the only model by default: %s" % r.raw[:200])
        r = d.request("POST", "/classify", body={"input": s[0][5], "activation": False}, key=KEY)
        # compat.classify_dimension: the one value carried, so verl's probs[-1] is it
        C.check(r.status == 200 and r.json["data"][0]["probs"] == [s[0][3]] and
                r.json["data"][0]["num_classes"] == 1, "classify default model: %s" % r.raw[:300])
        r = v2(d, "GET", "/v2/health/live")
        C.check(r.status == 200, "v2 live is open")
        r = v2(d, "GET", "/v2/models/only", route="/v2/models/{name}")
        C.check(r.status == 401 and isinstance(r.json["error"], str), "v2 metadata needs the key")
        m = d.metrics(key=KEY)
        C.check(H.metric(m, "rewardd_http_requests_total", route="/get_reward", code="200") >= 1 and
                H.metric(m, "rewardd_requests_total", model="only", code="200") >= 2,
                "metrics count the drop-in routes")
    finally:
        C.check(d.stop() == 0, "clean exit")


def main():
    rng = random.Random(1234)
    work = H.mkdtemp("rwd-dropin-")
    oracle = H.make_mlp_head(os.path.join(work, "head"), d_in=D_IN)
    cls = make_seqcls(work)
    corpus = " ".join(x[0] for x in make_samples(random.Random(99), 40)) + " Hello world, reward models."
    tok_file = add_tokenizer(cls, corpus, 512)
    oracle2 = H.make_mlp_head(os.path.join(work, "head2"), d_in=D_IN, seed=1)
    models = {
        "rm": {"kind": "rules", "options": {"dims": ["format", "accuracy"]}},
        "wrm": {"kind": "rules", "options": {"dims": ["format", "accuracy"]},
                "reward": {"aggregate": {"mode": "weighted_sum", "terms": ["format", "accuracy"],
                                         "weights": {"format": 0.25, "accuracy": 0.75}}}},
        "fmt": {"kind": "rules", "options": {"dims": ["format"]}},
        "head": {"path": os.path.join(work, "head")},
        "head2": {"path": os.path.join(work, "head2")},
        "ens": {"members": ["head", "head2"], "combine": "mean"},
        "cls": {"path": cls},
    }
    d = H.Daemon(EXE, {"models": models})
    try:
        test_openrlhf(d, rng)
        test_verl_rules(d, rng)
        test_verl_seqcls(d, cls, rng)
        test_openrlhf_seqcls(d, cls, tok_file, rng)
        test_oip(d, oracle, rng)
        test_configured_reward(d, oracle, oracle2, rng)
        r = d.request("GET", "/healthz")
        C.check(r.status == 200, "alive after everything")
    finally:
        C.check(d.stop() == 0, "clean exit")
    test_single_model(EXE, rng)
    C.done()


if __name__ == "__main__":
    main()
