#!/usr/bin/python3
"""tests/parity/test_chat_templates.py — lib/text/chat against Jinja2.

    test_chat_templates.py CHAT_HARNESS SOURCE_ROOT

The oracle is Jinja2 configured as transformers' apply_chat_template does
(ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols,
raise_exception, tojson, strftime_now) rendering the real templates in
tests/data/chat_templates/ (the Qwen2, Qwen2.5, Qwen3 and Llama-3/3.1/3.2
templates that once had a hand-written fast path in lib/text/chat.c, and
Qwen1.5's). Every template goes through the Jinja engine; for each, and
for rewrites of it (re-indented tags, other quotes, x['k'] as x.k, CRLF
line ends, another default system prompt, a removed whitespace-control
`-`, changed text), many generated conversations (system / user /
assistant / tool mixes, empty content, Unicode, whitespace that `| trim`
removes, <think> blocks, reasoning_content, tool calls, tool responses)
must render to exactly the same string as Jinja2 renders, or be refused
by both. strftime_now reads the same fixed clock on both sides (and once
today's, for Llama-3.2's date).

Tokens too, when node, @anush008/tokenizers and ../shared/fixtures/
qwen2-tokenizer are there: every conversation rendered and encoded by us
(chat_harness tokens) must give the ids Hugging Face tokenizers gives for
the Jinja2 rendering, with a Qwen2 tokenizer.json carrying the chat
specials of Qwen2/Qwen3 and Llama-3.

Prints the counts and the number of mismatches (the worst error); exit 1
on any, 77 when Jinja2 is missing.
"""
import datetime
import glob
import json
import os
import random
import subprocess
import sys

try:
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment
except ImportError as e:
    print("SKIP: jinja2 not importable (Debian python3-jinja2):", e)
    sys.exit(77)

RWD_E_UNSUPPORTED = -6
harness, root = sys.argv[1], sys.argv[2]


NOW = None  # strftime_now's clock for the oracle (epoch seconds), None = now


def make_env():
    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: (datetime.datetime.now() if NOW is None else
                                               datetime.datetime.fromtimestamp(NOW)).strftime(fmt)
    return env


ENV = make_env()


_COMPILED = {}


def jinja_render(template, bos, messages, add_gen):
    if template not in _COMPILED:
        _COMPILED[template] = ENV.from_string(template)
    return _COMPILED[template].render(messages=messages, add_generation_prompt=add_gen,
                                            bos_token=bos, eos_token=None)


PIECES = [
    "Hello", "world", "What is 2+2?", "4", "", " ", "\n", "  padded  ", "\tTabbed\n",
    "你好，世界", "こんにちは", "emoji 😀🎉 👩‍💻", "e\u0301", "Ünïcödé", "\u00a0nbsp\u00a0",
    "\u3000ideographic\u3000", "\u2028line-sep\u2029", "<|im_start|>", "<|im_end|>",
    "<|eot_id|>", "{{ not jinja }}", "{% raw %}", "'quotes' and \"double\"", "back\\slash",
    "code:\n```python\nprint('x')\n```\n", "multi\n\nline\n", "\r\nCRLF\r\n", "x" * 300,
    "<think>", "</think>", "<tool_response>", "</tool_response>", "\u0085next-line",
]


def text(rng, max_pieces=4):
    n = rng.randint(0, max_pieces)
    return "".join(rng.choice(PIECES) + rng.choice(["", " ", "\n"]) for _ in range(n))


def assistant_content(rng):
    k = rng.random()
    if k < 0.25:
        return "<think>\n" + text(rng) + "\n</think>\n\n" + text(rng)
    if k < 0.35:
        return text(rng) + "</think>" + text(rng)
    if k < 0.42:
        return "<think>a</think>b<think>c</think>\n\nd"
    return text(rng)


def conversation(rng, roles):
    msgs = []
    if rng.random() < 0.5:
        msgs.append({"role": "system", "content": text(rng)})
    for _ in range(rng.randint(0 if msgs else 1, 6)):
        role = rng.choice(roles)
        if role == "assistant":
            m = {"role": "assistant", "content": assistant_content(rng)}
            if rng.random() < 0.08:
                # null content, tool calls
                m = {"role": "assistant", "content": rng.choice([None, "", text(rng)]),
                     "tool_calls": [{"type": "function", "function": {
                         "name": "f", "arguments": rng.choice([{"x": 1, "s": "é\n"}, '{"x": 2}'])}}]}
            r = rng.random()
            if r < 0.15:
                m["reasoning_content"] = text(rng)
            elif r < 0.2:
                m["reasoning_content"] = None
        elif role == "user" and rng.random() < 0.1:
            m = {"role": "user", "content": "<tool_response>" + text(rng) + "</tool_response>"}
        else:
            m = {"role": role, "content": text(rng)}
        msgs.append(m)
    return msgs


def run_harness(requests):
    inp = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in requests)
    p = subprocess.run([harness, "render"], input=inp.encode(), capture_output=True, timeout=300)
    if p.returncode != 0:
        print(p.stderr.decode(errors="replace"))
        sys.exit(1)
    return [json.loads(line) for line in p.stdout.decode().split("\n") if line]


QWEN2_RX = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
            "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
CHAT_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<tool_response>",
                 "</tool_response>", "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
HF_ENCODE_JS = r"""
const fs = require('fs');
const [mod, tokfile, infile, outfile] = process.argv.slice(1);
const { Tokenizer } = require(mod);
(async () => {
  const tok = Tokenizer.fromFile(tokfile);
  const strings = JSON.parse(fs.readFileSync(infile, 'utf8'));
  const enc = await tok.encodeBatch(strings, { addSpecialTokens: false });
  fs.writeFileSync(outfile, JSON.stringify(enc.map((e) => Array.from(e.getIds()))));
})().catch((e) => { console.error(e); process.exit(1); });
"""


def token_check(requests, meta):
    """Returns (compared, mismatches) or None with a printed reason."""
    import shutil
    import tempfile
    node = shutil.which("node")
    mod = os.path.join(root, "node_modules", "@anush008", "tokenizers")
    fix = os.environ.get("RWD_FIXTURES") or os.path.join(root, "..", "shared", "fixtures")
    fix = os.path.join(fix, "qwen2-tokenizer")
    why = ("node not found" if not node else "@anush008/tokenizers not installed" if not os.path.isdir(mod)
           else "fixture %s is absent" % fix if not os.path.exists(os.path.join(fix, "vocab.json")) else None)
    if why:
        print("tokens: skipped (%s)" % why)
        return None
    vocab = json.load(open(os.path.join(fix, "vocab.json"), encoding="utf-8"))
    merges = [l.split(" ") for l in open(os.path.join(fix, "merges.txt"), encoding="utf-8").read().split("\n")
              if l and not l.startswith("#version")]
    base = len(vocab)
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    tj = {"version": "1.0", "truncation": None, "padding": None,
          "added_tokens": [{"id": base + i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
                            "normalized": False, "special": not c.startswith(("<think", "</think", "<tool", "</tool"))}
                           for i, c in enumerate(CHAT_SPECIALS)],
          "normalizer": {"type": "NFC"},
          "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
              {"type": "Split", "pattern": {"Regex": QWEN2_RX}, "behavior": "Isolated", "invert": False}, bl]},
          "post_processor": bl, "decoder": bl,
          "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                    "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                    "vocab": vocab, "merges": merges}}
    with tempfile.TemporaryDirectory(prefix="rwd-chat-") as d:
        tokfile = os.path.join(d, "tokenizer.json")
        json.dump(tj, open(tokfile, "w", encoding="utf-8"), ensure_ascii=False)
        texts, ours = [], []
        reqs = [(r, m) for r, m in zip(requests, meta) if m[3] and "+" not in m[0]]
        inp = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r, _ in reqs)
        p = subprocess.run([harness, "tokens", tokfile], input=inp.encode(), capture_output=True, timeout=600)
        if p.returncode != 0:
            print("FAIL: chat_harness tokens:", p.stderr.decode(errors="replace"))
            return (0, 1)
        res = [json.loads(l) for l in p.stdout.decode().split("\n") if l]
        for (r, m), out in zip(reqs, res):
            for c, ids in zip(r["cases"], out["outputs"]):
                try:
                    texts.append(jinja_render(m[1], m[2], c["messages"], c["add_generation_prompt"]))
                except Exception:
                    if isinstance(ids, dict):
                        continue  # refused by both (compared in main)
                    raise
                ours.append(ids)
        json.dump(texts, open(os.path.join(d, "in.json"), "w", encoding="utf-8"), ensure_ascii=False)
        q = subprocess.run([node, "-e", HF_ENCODE_JS, mod, tokfile, os.path.join(d, "in.json"),
                            os.path.join(d, "out.json")], capture_output=True, timeout=600)
        if q.returncode != 0:
            print("FAIL: HF tokenizers:", q.stderr.decode(errors="replace"))
            return (0, 1)
        ref = json.load(open(os.path.join(d, "out.json")))
    bad = 0
    for t, a, b in zip(texts, ours, ref):
        if a != b:
            bad += 1
            if bad == 1:
                print("first token mismatch: text=%r\n ours=%r\n hf  =%r" % (t, a, b))
    ntok = sum(len(b) for b in ref)
    print("tokens: %d rendered conversations (%d HF ids) encoded, mismatches %d" % (len(texts), ntok, bad))
    return (len(texts), bad)


def main():
    global NOW
    files = sorted(glob.glob(os.path.join(root, "tests", "data", "chat_templates", "*.json")))
    if not files:
        print("FAIL: no templates in tests/data/chat_templates")
        return 1
    rng = random.Random(20261126)
    NOW = 1764000000 + rng.randint(0, 10**8)  # a fixed day, the same for both sides
    requests = []
    meta = []   # (label, template, bos, real: the template as published)
    for f in files:
        d = json.load(open(f, encoding="utf-8"))
        name = os.path.basename(f)[:-5]
        tpl, bos = d["chat_template"], d.get("bos_token")
        variants = [(name, tpl, True)]
        v = tpl.replace("{{- ", "{{-   ").replace(" %}", "\n   %}").replace("{%- ", "{%-\t")
        variants.append((name + "+spaces", v, False))
        v = tpl.replace("message['role']", "message.role").replace("message['content']", "message.content")
        v = v.replace("messages[0]['role']", 'messages[0]["role"]')
        variants.append((name + "+attrs", v, False))
        v = tpl.replace("'<|im_end|>'", '"<|im_end|>"').replace("'<|eot_id|>'", '"<|eot_id|>"')
        variants.append((name + "+quotes", v, False))
        variants.append((name + "+comment", "{# a comment #}\n" + tpl + "\n", False))
        variants.append((name + "+crlf", tpl.replace("\n", "\r\n"), False))
        for s_ in ("You are a helpful assistant.", "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."):
            if s_ in tpl:
                variants.append((name + "+sysprompt", tpl.replace(s_, "Tu es un assistant 🤖 «utile»."), False))
        # rewrites that change what Jinja2 renders (once the fast path's traps)
        for a, b in (("{{- '<|im_start|>' + message.role + '\\n' + message.content", "{{ '<|im_start|>' + message.role + '\\n' + message.content"),
                     ("'<|im_end|>' + '\\n'", "'<|im_end|>' + ' \\n'"),
                     ("{{- '<|im_start|>' + message.role + '\\n' + content", "{{ '<|im_start|>' + message.role + '\\n' + content"),
                     ("message['content'] | trim", "message['content']"),
                     ("'<|eot_id|>'", "'<|eot_id|>\\n'"),
                     ("Today Date: ", "Date: ")):
            if a in tpl:
                variants.append((name + "-changed", tpl.replace(a, b, 1), False))
        for label, t, real in variants:
            roles = ["user", "assistant", "system", "tool"]
            cases = []
            for _ in range(300 if real else 60):
                cases.append({"messages": conversation(rng, roles), "add_generation_prompt": rng.random() < 0.3})
            cases.append({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
                          "add_generation_prompt": False})
            requests.append({"template": t, "bos_token": bos, "now": NOW, "cases": cases})
            meta.append((label, t, bos, real))
    results = run_harness(requests)
    n_render = n_refused = mismatches = 0
    first_diff = None
    for (label, t, bos, real), req, res in zip(meta, requests, results):
        if "error" in res:
            mismatches += 1
            print("FAIL: %s refused: %s" % (label, res["message"]))
            continue
        for c, got in zip(req["cases"], res["outputs"]):
            try:
                want = jinja_render(t, bos, c["messages"], c["add_generation_prompt"])
            except Exception as e:
                want = e
            n_render += 1
            if isinstance(want, Exception):
                n_refused += 1
                if not isinstance(got, dict):
                    mismatches += 1
                    first_diff = first_diff or (label, c, repr(want), got)
            elif isinstance(got, dict) or got != want:
                mismatches += 1
                if first_diff is None:
                    first_diff = (label, c, want, got)
    tc = token_check(requests, meta)
    if tc:
        mismatches += tc[1]
    # Llama-3.2 with today's date from our clock (now null) against Jinja2's
    NOW = None
    for label, t, bos, real in meta:
        if label == "llama3.2-instruct":
            msgs = [{"role": "user", "content": "What day is it?"}]
            before = jinja_render(t, bos, msgs, True)
            res = run_harness([{"template": t, "bos_token": bos, "now": None,
                                "cases": [{"messages": msgs, "add_generation_prompt": True}]}])[0]
            after = jinja_render(t, bos, msgs, True)
            n_render += 1
            if res.get("outputs", [None])[0] not in (before, after):
                mismatches += 1
                first_diff = first_diff or (label + " (today)", msgs, before, res)
    print("chat templates: %d templates and rewrites, %d renders through the engine compared with Jinja2 "
          "(%d refused by both), mismatches %d" % (len(meta), n_render, n_refused, mismatches))
    if first_diff:
        label, c, want, got = first_diff
        print("first mismatch in %s:\n messages=%r\n jinja2=%r\n ours  =%r" % (label, c, want, got))
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
