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


byte_map, add_tokenizer = H.byte_map, H.add_tokenizer  # one copy, in rwd_harness


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
