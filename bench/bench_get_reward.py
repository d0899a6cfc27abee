#!/usr/bin/python3
"""p50/p99 latency of OpenRLHF's POST /get_reward on a Qwen3-0.6B-shaped classifier,
rewardd against a Python peer, at 1 and 32 connections.

    /usr/bin/python3 bench/bench_get_reward.py REWARDD_EXE [--queries 2] [--min-len 128]
        [--max-len 512] [--secs1 30] [--secs32 120] [--layers 4] [--threads 2]
        [--model DIR] [--write]

Model: tools/make_tiny_models.py qwen3 0.6b --layers L --dtype bf16 (random
weights, Qwen3-0.6B's shape, Qwen's real vocabulary size), with Qwen2's real
BPE tokenizer from the shared fixture (vocab.json + merges.txt +
added_tokens.json beside the weights, as tests/parity/test_seqcls_torch.py
does; the peer gets the same tokenizer as a tokenizer.json).
Body: one OpenRLHF request {"query", "prompts", "labels"} with --queries
chat-templated (Qwen ChatML, <think> block, <|im_end|>) prompt + response
texts whose lengths are spread evenly from --min-len to --max-len tokens.
Servers, one after the other, each started here on a free 127.0.0.1 port:
  - rewardd: kind seqcls, dynamic batching (--max-batch-tokens, default 16384),
    compute.blas_threads --threads;
  - bench/get_reward_peer.py: ThreadingHTTPServer, HF tokenizers (Rust, node
    sidecar), tests/parity/seqcls_ref.py forward per query in float32,
    torch threads --threads, one forward at a time.
Both tokenise the text; their rewards for the body are compared before the
load (same tokenizer and weights: they must agree). Load: wrk with
bench/post_rewards.lua (the body file in REWARDD_BENCH_BODY),
-c 1 for --secs1 and -c 32 for --secs32 seconds, --timeout 600s. wrk only
counts requests that finish inside the window, so each row also gives the
number completed. --write replaces this script's section of bench/RESULTS.md.
Not a test: numbers depend on the machine.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results_md import replace_section  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BEGIN = "<!-- bench_get_reward.py: begin -->"
END = "<!-- bench_get_reward.py: end -->"
QWEN2_RX = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
            "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
SPECIALS = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645}
WORDS = ("the a of to and in is that for it as with was on be by this are from at or an which "
         "number sum total answer first second step then we so value each equal more less than "
         "apples train hours distance speed price cost half twice three four seven eleven "
         "because therefore compute check result multiply divide add subtract remaining "
         "problem question given find how many much per every left right new old").split()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def post(port, body, timeout=600):
    req = urllib.request.Request("http://127.0.0.1:%d/get_reward" % port, method="POST", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def wait_ready(port, proc, body, timeout=300):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError("server exited with %d" % proc.returncode)
        try:
            return post(port, body)
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("server not ready")


def to_ms(v, unit):
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def run_wrk(port, conns, secs, body_file):
    cmd = ["wrk", "-t%d" % min(conns, 2), "-c%d" % conns, "-d%ds" % secs, "--timeout", "600s",
           "--latency", "-s", os.path.join(HERE, "post_rewards.lua"),
           "http://127.0.0.1:%d/get_reward" % port]
    out = subprocess.run(cmd, capture_output=True, text=True,
                         env=dict(os.environ, REWARDD_BENCH_BODY=body_file)).stdout
    n = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    res = {"n": int(n.group(1)), "window_s": to_ms(n.group(2), n.group(3)) / 1e3, "raw": out}
    for pct in ("50", "99"):
        m = re.search(r"\s%s%%\s+([\d.]+)(us|ms|s|m)\b" % pct, out)
        res["p" + pct] = to_ms(m.group(1), m.group(2)) if m else float("nan")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    res["non2xx"] = int(bad.group(1)) if bad else 0
    errs = re.search(r"Socket errors:.*", out)
    res["socket_errors"] = errs.group(0) if errs else ""
    return res


def qwen2_tokenizer_json(fixdir, path):
    """The Qwen2 tokenizer.json structure (reference/models-and-formats.md §4.7) on the fixture."""
    vocab = json.load(open(os.path.join(fixdir, "vocab.json"), encoding="utf-8"))
    merges = [ln.split(" ") for ln in open(os.path.join(fixdir, "merges.txt"), encoding="utf-8")
              .read().splitlines() if ln and not ln.startswith("#version")]
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    tj = {"version": "1.0", "truncation": None, "padding": None,
          "added_tokens": [{"id": i, "content": c, "single_word": False, "lstrip": False,
                            "rstrip": False, "normalized": False, "special": True}
                           for c, i in SPECIALS.items()],
          "normalizer": {"type": "NFC"},
          "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
              {"type": "Split", "pattern": {"Regex": QWEN2_RX}, "behavior": "Isolated",
               "invert": False}, bl]},
          "post_processor": bl, "decoder": bl,
          "model": {"type": "BPE", "dropout": None, "unk_token": None,
                    "continuing_subword_prefix": "", "end_of_word_suffix": "", "fuse_unk": False,
                    "byte_fallback": False, "ignore_merges": False, "vocab": vocab,
                    "merges": merges}}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False)


def hf_count(tok_json, strings):
    p = subprocess.run(["node", os.path.join(HERE, "hf_tokenize.js"), ROOT, tok_json],
                       input=json.dumps(strings) + "\n", capture_output=True, text=True, check=True)
    return [len(x) for x in json.loads(p.stdout)]


def sample(rng, words):
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    prompt_text = "A shop sells %d boxes with %d apples each. %s How many apples in total?" % (
        a, b, " ".join(rng.choice(WORDS) for _ in range(12)).capitalize() + ".")
    prompt = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
              "<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n" % prompt_text)
    think = " ".join(rng.choice(WORDS) for _ in range(words))
    resp = "<think>\n%s\n</think>\n\nThe answer is %d.<|im_end|>" % (think, a * b)
    return prompt + resp, prompt, str(a * b)


def make_body(n, lo, hi, tok_json, seed=7):
    """n OpenRLHF queries of lo..hi tokens (chat template and EOS included)."""
    targets = [lo + (hi - lo) * i // max(1, n - 1) for i in range(n)]
    words = [max(1, t - 60) for t in targets]
    for _ in range(4):
        out = [sample(random.Random(seed + i), w) for i, w in enumerate(words)]
        lens = hf_count(tok_json, [o[0] for o in out])
        if all(abs(x - t) <= 2 for x, t in zip(lens, targets)):
            break
        words = [max(1, w + t - x) for w, t, x in zip(words, targets, lens)]
    body = {"query": [o[0] for o in out], "prompts": [o[1] for o in out],
            "labels": [o[2] for o in out]}
    return body, lens


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("rewardd")
    ap.add_argument("--queries", type=int, default=2)
    ap.add_argument("--min-len", type=int, default=128)
    ap.add_argument("--max-len", type=int, default=512)
    ap.add_argument("--secs1", type=int, default=30)
    ap.add_argument("--secs32", type=int, default=120)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-batch-tokens", type=int, default=16384, help="rewardd's batching")
    ap.add_argument("--model", default=None, help="model folder to create or reuse")
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = ap.parse_args()
    exe = os.path.abspath(args.rewardd)
    fixdir = os.environ.get("RWD_FIXTURES") or os.path.join(ROOT, "..", "shared", "fixtures")
    fixdir = os.path.join(fixdir, "qwen2-tokenizer")
    for need, why in ((shutil.which("wrk"), "wrk not found (apt-get install wrk)"),
                      (shutil.which("node"), "node not found"),
                      (os.path.isdir(os.path.join(ROOT, "node_modules", "@anush008", "tokenizers")),
                       "node_modules/@anush008/tokenizers missing"),
                      (os.path.exists(os.path.join(fixdir, "vocab.json")), fixdir + " missing")):
        if not need:
            sys.exit(why)
    work = tempfile.mkdtemp(prefix="rwd-bench-getreward-")
    folder = os.path.abspath(args.model or os.path.join(work, "model"))
    if not os.path.exists(os.path.join(folder, "model.safetensors")):
        subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_tiny_models.py"), "qwen3",
                        "0.6b", folder, "--layers", str(args.layers), "--dtype", "bf16",
                        "--seed", "3"], check=True)
    for f in ("vocab.json", "merges.txt"):
        shutil.copy(os.path.join(fixdir, f), folder)
    with open(os.path.join(folder, "added_tokens.json"), "w") as f:
        json.dump(SPECIALS, f)
    tok_json = os.path.join(work, "tokenizer.json")
    qwen2_tokenizer_json(fixdir, tok_json)
    body, lens = make_body(args.queries, args.min_len, args.max_len, tok_json)
    body_file = os.path.join(work, "body.json")
    raw = json.dumps(body).encode()
    with open(body_file, "wb") as f:
        f.write(raw)
    print("queries:", len(lens), "tokens:", lens, "body bytes:", len(raw), flush=True)

    cfg = {"listen": "", "log_level": "warn",
           "http": {"per_ip_connection_limit": 512},
           "compute": {"blas_threads": args.threads},
           "requests": {"default_timeout_ms": 600000, "max_timeout_ms": 600000},
           "models": {"rm": {"kind": "seqcls", "path": folder,
                             "batching": {"max_batch_size": 64, "max_batch_tokens": args.max_batch_tokens,
                                          "max_queue_items": 4096}}}}
    servers = [("rewardd", None)] + ([] if args.skip_peer else [("peer", None)])
    rows, rewards = [], {}
    load0 = " ".join(open("/proc/loadavg").read().split()[:3])
    try:
        for name, _ in servers:
            port = free_port()
            if name == "rewardd":
                cfg["listen"] = "127.0.0.1:%d" % port
                cp = os.path.join(work, "rewardd.json")
                with open(cp, "w") as f:
                    json.dump(cfg, f)
                cmd = [exe, "--config", cp]
            else:
                cmd = [sys.executable, os.path.join(HERE, "get_reward_peer.py"), str(port), folder,
                       tok_json, str(args.threads)]
            errf = open(os.path.join(work, name + ".stderr"), "w")
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errf)
            try:
                rewards[name] = wait_ready(port, proc, raw)["rewards"]
                print(name, "rewards", rewards[name], flush=True)
                for c, secs in ((1, args.secs1), (32, args.secs32)):
                    r = run_wrk(port, c, secs, body_file)
                    r.update(server=name, conns=c, secs=secs)
                    print(name, "c=%d" % c, {k: v for k, v in r.items() if k != "raw"}, flush=True)
                    rows.append(r)
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                errf.close()
                err = open(errf.name).read().strip()
                if err:
                    print(name, "stderr:", err[-1500:])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    diff = None
    if "peer" in rewards:
        diff = max(abs(a - b) / max(1.0, abs(b)) for a, b in zip(rewards["rewardd"], rewards["peer"]))
        print("max rel reward diff rewardd vs peer: %.2e" % diff)
        if diff > 1e-3:
            sys.exit("rewardd and the peer disagree: not the same work")
    ntok = sum(lens)
    lines = [
        BEGIN,
        "## seqcls: p50/p99 latency through OpenRLHF's POST /get_reward, rewardd vs a Python peer",
        "",
        "Generated by `bench/bench_get_reward.py` on %s (%d cores, load average %s at start; the "
        "cores were shared with other builds and tests, and wrk ran on them too)." % (
            time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.cpu_count(), load0),
        "",
        "- Model: random Qwen3ForSequenceClassification, Qwen3-0.6B's shape (hidden 1024, "
        "intermediate 3072, 16/8 heads, head_dim 128, vocab 151936) with **%d layers** (of 28), "
        "BF16 weights (both sides compute in float32), 1 label; Qwen2's real BPE vocabulary "
        "and merges (shared fixture)." % args.layers,
        "- Body (every request the same): OpenRLHF's `{\"query\", \"prompts\", \"labels\"}` with "
        "**N = %d queries**, each a ChatML-templated system + user prompt and a `<think>` response "
        "ending in `<|im_end|>`, of %s tokens (%d tokens, %d bytes per request)." % (
            len(lens), ", ".join(map(str, lens)), ntok, len(raw)),
        "- rewardd: kind seqcls, text `query` tokenised by lib/text, dynamic batching "
        "(max_batch_tokens %d: concurrent requests share forward passes), "
        "compute.blas_threads %d." % (args.max_batch_tokens, args.threads),
        "- Peer: `bench/get_reward_peer.py`, Python ThreadingHTTPServer; HF tokenizers (Rust, "
        "through a node sidecar, bench/hf_tokenize.js); tests/parity/seqcls_ref.py forward "
        "(PyTorch eager float32, one unpadded sequence at a time, full-square attention); "
        "torch threads %d; one forward at a time, no batching across requests." % args.threads,
        "- Same work: both tokenise the same text with the same vocabulary and score with the "
        "same weights; their rewards for the body agree to %s (max relative difference)." % (
            "%.1e" % diff if diff is not None else "(peer skipped)"),
        "- Load: `wrk -t min(c,2) -c c -d SECS --timeout 600s --latency -s bench/post_rewards.lua "
        "http://127.0.0.1:PORT/get_reward`. wrk counts only requests that complete inside the "
        "window, so at 32 connections, when a request takes longer than the window allows, the "
        "percentiles describe the first completions (`completed` column) and are a lower bound.",
        "",
        "| server | connections | seconds | completed | requests/s | tokens/s | p50 ms | p99 ms | non-2xx |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        rps = r["n"] / r["window_s"] if r["window_s"] else 0.0
        pct = ("%.0f" % r["p50"], "%.0f" % r["p99"]) if r["n"] else ("none", "none")
        lines.append("| %s | %d | %d | %d | %.2f | %.0f | %s | %s | %d |" % (
            "rewardd" if r["server"] == "rewardd" else "Python peer", r["conns"], r["secs"],
            r["n"], rps, rps * ntok, pct[0], pct[1], r["non2xx"]))
    by = {(r["server"], r["conns"]): r for r in rows}
    notes = []
    for name, label in (("rewardd", "rewardd"), ("peer", "the peer")):
        r1, r32 = by.get((name, 1)), by.get((name, 32))
        if r1 and r32 and r1["n"] and r32["n"]:
            notes.append("%s %.2fx (a closed loop's latency at 32 connections is then about 32 / "
                         "requests/s = %.0f s)" % (label, (r32["n"] / r32["window_s"]) /
                                                   (r1["n"] / r1["window_s"]),
                                                   32 * r32["window_s"] / r32["n"]))
    if notes:
        lines += ["", "- Requests/s at 32 connections over 1 connection: " + "; ".join(notes) +
                  ". At 32 connections a request waits for those ahead of it, so latency there "
                  "is set by throughput: rewardd's dynamic batching runs concurrent requests' "
                  "queries in shared forward passes (up to max_batch_tokens, so a request can "
                  "also wait for a whole batch in progress); the peer runs the forwards one "
                  "after another and overlaps only HTTP, JSON and tokenising. On these shared "
                  "cores the load from other jobs changes within a run: compare runs' ratios "
                  "with care."]
    lines += [
        "",
        "Rerun: `/usr/bin/python3 bench/bench_get_reward.py build/daemon/rewardd --queries %d "
        "--min-len %d --max-len %d --secs1 %d --secs32 %d --layers %d --threads %d "
        "--max-batch-tokens %d --write`" % (
            args.queries, args.min_len, args.max_len, args.secs1, args.secs32, args.layers,
            args.threads, args.max_batch_tokens),
        END,
    ]
    section = "\n".join(lines)
    print()
    print(section)
    if args.write:
        replace_section(section, BEGIN, END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
