#!/usr/bin/python3
"""Parity of the seqcls kind (lib/models/seqcls.c) against seqcls_ref.py (PyTorch).

    test_seqcls_torch.py SEQCLS_HARNESS SOURCE_ROOT [CACHE_DIR] [--full]

For qwen2, qwen3 and llama checkpoints written by tools/make_tiny_models.py
(tiny, and Qwen3-0.6B-shaped with 2 layers; single- and multi-label heads;
F32, BF16 and F16 weights) it scores one batch of items of different lengths
(including trailing pad tokens, an all-pad item, a pad inside the sequence
and items longer than the 256-row attention block) through the C harness,
and the same ids through the PyTorch reference one sequence at a time.

Reference arithmetic: our C code widens BF16/F16 weights to float32 and
computes in float32, so the pass/fail reference is seqcls_ref.py in float32 on
the same (bf16-rounded) weights. For BF16 checkpoints the difference to a
pure-bf16 PyTorch run (what transformers computes with torch_dtype=bfloat16)
is printed for information only: bf16 arithmetic itself is off by ~1e-2.

Error measure per logit: |c - r| / max(|r|, rms(r over the model's logits)),
so logits near zero are judged on the model's scale. Pass: <= 1e-4.
Also checked: dimension names (id2label, "score" for a lone LABEL_0), the
batch split when max_batch_tokens is small, left truncation with
`truncate: true`, and a 422-class error for an item over max_tokens.

Generated checkpoints are cached in CACHE_DIR (default: a temp dir), keyed by
the generator's source and arguments (the 0.6b folders take 0.4-0.75 GB
each). --full adds the 0.6b shapes in the other dtype; SEQCLS_ONLY_TEXT=1 runs
only the text-input case (tokenizer + chat template, needs the shared fixture
and node) and the truncation checks. Exit 0 pass, 1 fail, 77 skip (no torch).
"""
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

try:
    import torch
except ImportError:
    print("SKIP: /usr/bin/python3 has no torch (Debian python3-torch)")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import seqcls_ref  # noqa: E402

TOL = 1e-4

# (kind, size, dtype, labels or None, layers or None)
CASES = [
    ("qwen2", "tiny", "f32", None, None),
    ("qwen2", "tiny", "bf16", "helpful,harmless,honest", None),
    ("qwen3", "tiny", "f32", "helpful,harmless,honest", None),
    ("qwen3", "tiny", "bf16", None, None),
    ("qwen3", "tiny", "f16", "a,b", 3),
    ("llama", "tiny", "f32", None, None),
    ("llama", "tiny", "bf16", "helpful,harmless,honest", None),
    ("qwen3", "0.6b", "bf16", "helpfulness,correctness", 2),
    ("qwen2", "0.6b", "bf16", None, 2),
    ("llama", "0.6b", "f32", "x,y,z", 2),
]
FULL_EXTRA = [
    ("qwen3", "0.6b", "f32", None, 2),
    ("qwen2", "0.6b", "f32", "x,y", 2),
    ("llama", "0.6b", "bf16", None, 2),
]


def make_model(src_root, cache, kind, size, dtype, labels, layers):
    gen = os.path.join(src_root, "tools", "make_tiny_models.py")
    h = hashlib.sha256()
    for f in ("make_tiny_models.py", "tiny_seqcls.py", "safetensors_io.py"):
        with open(os.path.join(src_root, "tools", f), "rb") as fh:
            h.update(fh.read())
    args = [kind, size, "--dtype", dtype, "--seed", "7"]
    if labels:
        args += ["--labels", labels]
    if layers:
        args += ["--layers", str(layers)]
    h.update(repr(args).encode())
    out = os.path.join(cache, f"{kind}-{size}-{dtype}-{h.hexdigest()[:12]}")
    if not os.path.exists(os.path.join(out, "done")):
        shutil.rmtree(out, ignore_errors=True)
        tmp = out + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run([sys.executable, gen, args[0], args[1], tmp] + args[2:], check=True)
        open(os.path.join(tmp, "done"), "w").close()
        os.rename(tmp, out)
    return out


def items_for(model, rng, size):
    V, pad = model.cfg["vocab_size"], model.pad
    lens = [1, 2, 9, 31, 64, 100, 300] if size == "tiny" else [1, 5, 48, 130, 270]
    items = []
    for n in lens:
        items.append([rng.randrange(V) for _ in range(n)])
    if pad is not None:
        items.append([rng.randrange(V) for _ in range(12)] + [pad] * 3)   # trailing pad
        items.append([pad] * 4)                                          # all pad: position 0
        mid = [rng.randrange(V) for _ in range(20)]
        mid[7] = pad
        items.append(mid)                                                # pad inside
    return items


def run_harness(harness, folder, items, extra=()):
    inp = "".join(json.dumps(x) + "\n" for x in items)
    p = subprocess.run([harness, folder] + list(extra), input=inp, capture_output=True,
                       text=True)
    if p.returncode != 0:
        raise RuntimeError(f"harness failed ({p.returncode}): {p.stderr}")
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    return lines[0]["dims"], lines[1:]


def rel_errors(c, r, scale):
    return [abs(a - b) / max(abs(b), scale) for a, b in zip(c, r)]


NODE_ENCODE = r"""
const fs = require('fs');
const path = require('path');
const [root, fixdir, out] = process.argv.slice(2);
const { Tokenizer } = require(path.join(root, 'node_modules', '@anush008', 'tokenizers'));
const vocab = JSON.parse(fs.readFileSync(path.join(fixdir, 'vocab.json'), 'utf8'));
const merges = fs.readFileSync(path.join(fixdir, 'merges.txt'), 'utf8').split(/\r?\n/)
  .filter((l) => l.length && !l.startsWith('#version')).map((l) => l.split(' '));
const RX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const added = (id, content) => ({ id, content, single_word: false, lstrip: false, rstrip: false,
  normalized: false, special: true });
const bl = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
fs.writeFileSync(out, JSON.stringify({
  version: '1.0', truncation: null, padding: null,
  added_tokens: [added(151643, '<|endoftext|>'), added(151644, '<|im_start|>'), added(151645, '<|im_end|>')],
  normalizer: { type: 'NFC' },
  pre_tokenizer: { type: 'Sequence', pretokenizers: [
    { type: 'Split', pattern: { Regex: RX }, behavior: 'Isolated', invert: false }, bl] },
  post_processor: bl, decoder: bl,
  model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '',
    end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges },
}));
const strings = JSON.parse(fs.readFileSync(0, 'utf8'));
Tokenizer.fromFile(out).encodeBatch(strings, { addSpecialTokens: true }).then((enc) => {
  console.log(JSON.stringify(enc.map((e) => Array.from(e.getIds()))));
});
"""


def text_inputs_case(harness, src_root, cache, failures):
    """`text`, `messages`, `prompt`+`response` on a Qwen3-0.6B-shaped model with Qwen's
    real vocabulary (shared fixture) and the real Qwen3 chat template. Oracles: Jinja2
    renders the template (as transformers' apply_chat_template), HF tokenizers (the Rust
    library via node) encodes, seqcls_ref.py scores. Returns the worst error or None (skip)."""
    fix = os.environ.get("RWD_FIXTURES") or os.path.join(src_root, "..", "shared", "fixtures")
    fixdir = os.path.join(fix, "qwen2-tokenizer")
    tmpl_file = os.path.join(src_root, "tests", "data", "chat_templates", "qwen3-0.6b.json")
    node = shutil.which("node")
    why = None
    if not os.path.exists(os.path.join(fixdir, "vocab.json")):
        why = f"fixture {fixdir} is absent"
    elif not node or not os.path.isdir(os.path.join(src_root, "node_modules", "@anush008", "tokenizers")):
        why = "node or node_modules/@anush008/tokenizers missing"
    elif not os.path.exists(tmpl_file):
        why = f"{tmpl_file} missing"
    try:
        import jinja2
    except ImportError:
        why = "python3-jinja2 missing"
    if why:
        print(f"SKIP text inputs: {why}")
        return None
    base = make_model(src_root, cache, "qwen3", "0.6b", "bf16", "helpfulness,correctness", 2)
    folder = base + "-tok"
    if not os.path.exists(os.path.join(folder, "done")):
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        for f in ("config.json", "model.safetensors"):
            os.symlink(os.path.join(base, f), os.path.join(folder, f))
        for f in ("vocab.json", "merges.txt"):
            shutil.copy(os.path.join(fixdir, f), folder)
        with open(os.path.join(folder, "added_tokens.json"), "w") as fh:
            json.dump({"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645}, fh)
        with open(tmpl_file) as fh:
            tmpl = json.load(fh)["chat_template"]
        with open(os.path.join(folder, "tokenizer_config.json"), "w") as fh:
            json.dump({"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
                       "chat_template": tmpl}, fh)
        open(os.path.join(folder, "done"), "w").close()
    with open(os.path.join(folder, "tokenizer_config.json")) as fh:
        tmpl = json.load(fh)["chat_template"]
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True,
                             extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = lambda x, **k: json.dumps(x, **k)
    template = env.from_string(tmpl)
    convs = [
        ("What is 2+2?", "4"),
        ("Write a haiku about reward models.",
         "Scores in the dark\nlogits whisper which is best\ngradient follows"),
        ("Übersetze: 'café' — 日本語で？ 🙂", "カフェ (kafe) — café, naïve résumé… ✓\n\n```py\nprint(1)\n```"),
    ]
    items, strings = [], []
    for q, a in convs:
        msgs = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        rendered = template.render(messages=msgs, add_generation_prompt=False, bos_token=None)
        items += [{"prompt": q, "response": a}, {"messages": msgs}, {"text": rendered}]
        strings += [rendered, rendered, rendered]
    items.append({"text": "Hello world"})
    strings.append("Hello world")
    with tempfile.TemporaryDirectory() as td:
        js = os.path.join(td, "enc.js")
        with open(js, "w") as fh:
            fh.write(NODE_ENCODE)
        p = subprocess.run([node, js, os.path.abspath(src_root), fixdir, os.path.join(td, "tokenizer.json")],
                           input=json.dumps(strings), capture_output=True, text=True)
        if p.returncode:
            failures.append(f"text inputs: node encoder failed: {p.stderr[:500]}")
            return None
        ids = json.loads(p.stdout)
    model = seqcls_ref.Model(folder)
    ref = [model.score(x) for x in ids]
    flat = [v for r in ref for v in r]
    scale = max((sum(v * v for v in flat) / len(flat)) ** 0.5, 1e-6)
    _, out = run_harness(harness, folder, items)
    worst = 0.0
    for i, (o, r) in enumerate(zip(out, ref)):
        if "scores" not in o:
            failures.append(f"text inputs: item {i} ({list(items[i])}) failed: {o}")
            continue
        e = max(rel_errors(o["scores"], r, scale))
        worst = max(worst, e)
        if e > TOL:
            failures.append(f"text inputs: item {i} ({list(items[i])}) rel err {e:.2e}")
    print(f"text inputs (Qwen3 template via Jinja2, HF tokenizers ids, {len(items)} items: "
          f"prompt+response, messages, text; {sum(map(len, ids))} tokens): worst rel err {worst:.2e}")
    return worst


def main():
    argv = [a for a in sys.argv[1:] if not a.startswith("--")]
    full = "--full" in sys.argv
    if len(argv) < 2:
        print(__doc__)
        return 2
    harness, src_root = argv[0], argv[1]
    cache = argv[2] if len(argv) > 2 else None
    tmpdir = None
    if cache is None:
        tmpdir = tempfile.mkdtemp(prefix="seqcls-parity-")
        cache = tmpdir
    os.makedirs(cache, exist_ok=True)
    torch.manual_seed(0)
    rng = random.Random(1234)
    failures = []
    worst = (0.0, "")
    cases = CASES + (FULL_EXTRA if full else [])
    if os.environ.get("SEQCLS_ONLY_TEXT"):
        cases = []
    t_start = time.time()
    try:
        for kind, size, dtype, labels, layers in cases:
            t0 = time.time()
            folder = make_model(src_root, cache, kind, size, dtype, labels, layers)
            model = seqcls_ref.Model(folder)
            items = items_for(model, rng, size)
            ref = [model.score(ids) for ids in items]
            flat = [v for r in ref for v in r]
            scale = max((sum(v * v for v in flat) / len(flat)) ** 0.5, 1e-6)
            name = f"{kind}/{size}/{dtype}/{len(model.labels)}-label/{model.L}L"

            # dimension names
            dims, out = run_harness(harness, folder, items)
            want = list(model.labels)
            if want == ["LABEL_0"]:
                want = ["score"]
            if dims != want:
                failures.append(f"{name}: dims {dims} != {want}")

            # one batch, all items packed
            errs = []
            for i, (o, r) in enumerate(zip(out, ref)):
                if "scores" not in o:
                    failures.append(f"{name}: item {i} failed: {o}")
                    continue
                for j, e in enumerate(rel_errors(o["scores"], r, scale)):
                    errs.append((e, i, j, o["scores"][j], r[j]))
            e_max = max(errs)
            if e_max[0] > TOL:
                failures.append(f"{name}: item {e_max[1]} logit {e_max[2]}: C {e_max[3]:.7g} "
                                f"torch {e_max[4]:.7g} rel {e_max[0]:.2e}")
            if e_max[0] > worst[0]:
                worst = (e_max[0], name)
            msg = (f"{name}: {len(items)} items, {sum(map(len, items))} tokens, "
                   f"worst rel err {e_max[0]:.2e} (item {e_max[1]}, C {e_max[3]:.6g} "
                   f"vs torch {e_max[4]:.6g}; logit rms {scale:.3g})")
            if dtype == "bf16" and size == "tiny":
                bf = [model.score(ids, torch.bfloat16) for ids in items]
                eb = max(max(rel_errors(o["scores"], r, scale)) for o, r in zip(out, bf)
                         if "scores" in o)
                msg += f"; vs pure-bf16 torch {eb:.2e} (info)"

            # batch split: max_batch_tokens smaller than the batch
            if size == "tiny":
                _, out2 = run_harness(harness, folder, items,
                                      ["--max-batch-tokens", "320", "--max-tokens", "320"])
                e2 = max(max(rel_errors(o["scores"], r, scale)) for o, r in zip(out2, ref))
                if e2 > TOL:
                    failures.append(f"{name}: split batch rel err {e2:.2e}")
                msg += f"; split batches {e2:.2e}"
            print(msg + f" [{time.time() - t0:.1f}s]", flush=True)

        # truncation and the over-long item, on the tiny qwen3
        folder = make_model(src_root, cache, "qwen3", "tiny", "f32", "helpful,harmless,honest", None)
        model = seqcls_ref.Model(folder)
        V = model.cfg["vocab_size"] - 3
        long_item = [rng.randrange(V) for _ in range(80)]
        _, out = run_harness(harness, folder, [long_item, long_item[:10]],
                             ["--max-tokens", "50", "--truncate"])
        r = model.score(long_item[-50:])
        e = max(rel_errors(out[0]["scores"], r, 0.1))
        print(f"truncate: 80 ids -> last 50, rel err {e:.2e}")
        if e > TOL:
            failures.append(f"truncate: rel err {e:.2e}")
        _, out = run_harness(harness, folder, [long_item, long_item[:10]], ["--max-tokens", "50"])
        err0 = out[0].get("error", {})
        print(f"over max_tokens: {err0}")
        if err0.get("code") is None or "80 tokens" not in err0.get("message", "") \
                or "scores" not in out[1]:
            failures.append(f"over max_tokens: expected an error naming 80 tokens, got {out}")
        e = text_inputs_case(harness, src_root, cache, failures)
        if e is not None and e > worst[0]:
            worst = (e, "text inputs")
    finally:
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)

    print(f"worst relative error over all cases: {worst[0]:.2e} ({worst[1]}); "
          f"tolerance {TOL:g}; {time.time() - t_start:.1f}s")
    if failures:
        print("FAIL:\n  " + "\n  ".join(failures))
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
