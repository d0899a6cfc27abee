"""Shared pieces of the trainer conformance tests (tests/conformance/).

Each test replays one trainer's reward path against the real daemon on
127.0.0.1 (tests/integration/rwd_harness.py starts it). The oracles here are
independent of rewardd:
  - the rules expectations are computed in the test from the documented
    rules (lib/models/rules.h);
  - a tiny seqcls model (tools/make_tiny_models.py, real Qwen3 chat template)
    with a byte-level BPE tokenizer.json trained here; its reference score is
    what TRL's own reward-model path computes: the chat template rendered by
    Jinja2 as transformers renders it (ImmutableSandboxedEnvironment,
    trim_blocks, lstrip_blocks, loopcontrols, tojson, raise_exception), the
    text encoded by HF tokenizers (Rust, through node) without added special
    tokens, then the PyTorch forward of tests/parity/seqcls_ref.py, logits[0].
"""
import datetime
import json
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import rwd_harness as H  # noqa: E402

sys.path.insert(0, os.path.join(H.SRC, "deploy", "clients", "python"))
sys.path.insert(0, os.path.join(H.SRC, "tests", "parity"))

CLIENT_DIR = os.path.join(H.SRC, "deploy", "clients", "python")


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
    """A byte-level BPE tokenizer.json (Qwen2's pipeline: NFC, the Qwen split
    regex, ByteLevel) trained on corpus, with the ChatML specials at the top
    ids (<|endoftext|> = the tiny configs' pad id)."""
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

    def added(i, t):
        return {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                "normalized": False, "special": True}
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


def make_seqcls(work, name="cls", family="qwen3", seed=3, labels=None, corpus=""):
    """A tiny *ForSequenceClassification folder with a tokenizer; a single
    default label is transformers' LABEL_0, which rewardd names `score`."""
    out = os.path.join(work, name)
    cmd = ["/usr/bin/python3", os.path.join(H.SRC, "tools", "make_tiny_models.py"), family, "tiny", out,
           "--seed", str(seed)]
    if labels:
        cmd += ["--labels", ",".join(labels)]
    subprocess.run(cmd, check=True, capture_output=True)
    add_tokenizer(out, corpus + " Hello world, reward models. <think> </think> <answer> </answer>", 512)
    return out


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


def have_hf_tokenizers():
    return bool(shutil.which("node")) and os.path.isdir(
        os.path.join(H.SRC, "node_modules", "@anush008", "tokenizers"))


def hf_encode(tok_file, strings):
    """HF tokenizers (Rust, through node), add_special_tokens=False."""
    js = os.path.join(H.mkdtemp("rwd-conf-js-"), "enc.js")
    with open(js, "w") as f:
        f.write(NODE_ENCODE)
    p = subprocess.run([shutil.which("node"), js, H.SRC, tok_file], input=json.dumps(strings),
                       capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError("node encoder failed: " + p.stderr[:500])
    return json.loads(p.stdout)


def jinja_env():
    """transformers' chat-template environment (utils/chat_template_utils.py)."""
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.datetime.now().strftime(fmt)
    return env


class TrlRewardModelOracle:
    """TRL GRPOTrainer's own nn.Module reward path (grpo_trainer.py:1640-1652 @ f2cd577):
    apply_chat_template({"messages": prompt + completion}) (trl/data_utils.py:227-234:
    tokenizer.apply_chat_template(messages, tokenize=False)), then
    tokenizer(text, add_special_tokens=False), then logits[:, 0]."""

    def __init__(self, folder):
        import seqcls_ref
        with open(os.path.join(folder, "tokenizer_config.json")) as f:
            tc = json.load(f)
        self.template = jinja_env().from_string(tc["chat_template"])
        self.special = {"bos_token": tc.get("bos_token"), "eos_token": tc.get("eos_token")}
        self.tok_file = os.path.join(folder, "tokenizer.json")
        self.model = seqcls_ref.Model(folder)

    def render(self, messages):
        return self.template.render(messages=messages, add_generation_prompt=False, **self.special)

    def scores(self, conversations):
        texts = [self.render(m) for m in conversations]
        ids = hf_encode(self.tok_file, texts)
        return [float(self.model.score(x)[0]) for x in ids], texts


def close(a, b, tol=1e-4):
    return a is not None and b is not None and abs(a - b) <= tol * max(1.0, abs(b))


def readme_one_liner(trainer):
    """The first `code` of the README trainer table's row for `trainer` ("| TRL |")."""
    with open(os.path.join(H.SRC, "README.md")) as f:
        for line in f:
            if line.startswith("| %s |" % trainer):
                return line.split("`")[1]
    raise AssertionError("README.md has no trainer-table row for %s" % trainer)
