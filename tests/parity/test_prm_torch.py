#!/usr/bin/python3
"""Parity of seqcls's process-reward heads (lib/models/seqcls.c) against PyTorch.

    test_prm_torch.py SEQCLS_HARNESS SOURCE_ROOT [CACHE_DIR]

Checkpoints in the HF layout from tools/make_tiny_models.py --head:
  Qwen2ForProcessRewardModel (score.0 / ReLU / score.2 to 2 classes), F32 and BF16;
  Qwen3ForTokenClassification with 1 label (the head's value);
  LlamaForTokenClassification with 2 labels;
  a Qwen2ForProcessRewardModel with Qwen's real vocabulary size and no step_tag_id,
  so the documented default separator 151651 ("<extra_0>") applies.
The oracle is seqcls_ref.Model.step_rewards: the HF head definitions and the
Qwen2.5-Math-PRM model card's make_step_rewards (softmax, mask to separators,
positive class), one sequence at a time. Each model's items (random ids with
1-7 separators at random places, items past the 256-row attention block,
tokens after the last separator) are scored in one mixed batch and again split
into small chunks. Checked: step_rewards, step_probs, and prm_min / prm_mean /
prm_last / prm_product computed here from the oracle's step rewards; an item
without a separator is a 422-class error, not a reward.

With the shared Qwen tokenizer fixture, node + HF tokenizers and Jinja2 it also
checks the `prompt` + `steps` form (and `messages`): Jinja2 renders the model
card's conversation (system, user, assistant "<extra_0>".join(steps) +
"<extra_0>") with the Qwen2.5 template, HF tokenizers encodes it, and the
oracle scores those ids. Error measure: absolute, on probabilities in [0, 1]
(and |c - r| / max(1, |r|) for 1-label values). Pass: <= 1e-5.
Exit 0 pass, 1 fail, 77 skip (no torch).
"""
import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import zlib

try:
    import torch  # noqa: F401
except ImportError:
    print("SKIP: /usr/bin/python3 has no torch (Debian python3-torch)")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import seqcls_ref  # noqa: E402
from test_seqcls_torch import NODE_ENCODE, run_harness  # noqa: E402

TOL = 1e-5
STEP = 500
# (kind, size, dtype, head, step_tag_id written to config.json or None)
CASES = [
    ("qwen2", "tiny", "f32", "prm", STEP),
    ("qwen2", "tiny", "bf16", "prm", STEP),
    ("qwen3", "tiny", "f32", "token1", STEP),
    ("llama", "tiny", "f32", "token2", STEP),
    ("qwen2", "tinyvocab", "f32", "prm", None),
]
# Qwen2.5-Math-PRM's added tokens up to its separator: "<extra_0>" is id 151651. Both
# HF and we give an added token absent from vocab.json the next free id, whatever
# the file says, so the ids in between must be there too (as in the real tokenizer).
ADDED = [("<|endoftext|>", 151643), ("<|im_start|>", 151644), ("<|im_end|>", 151645),
         ("<|object_ref_start|>", 151646), ("<|object_ref_end|>", 151647), ("<|box_start|>", 151648),
         ("<|box_end|>", 151649), ("<|quad_start|>", 151650), ("<extra_0>", 151651)]
QWEN_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."


def make_model(src_root, cache, kind, size, dtype, head, step):
    gen = os.path.join(src_root, "tools", "make_tiny_models.py")
    h = hashlib.sha256()
    for f in ("make_tiny_models.py", "tiny_seqcls.py", "safetensors_io.py"):
        with open(os.path.join(src_root, "tools", f), "rb") as fh:
            h.update(fh.read())
    args = [kind, size, "--dtype", dtype, "--seed", "11", "--head", head]
    if step is not None:
        args += ["--step-tag-id", str(step)]
    h.update(repr(args).encode())
    out = os.path.join(cache, f"prm-{kind}-{size}-{dtype}-{head}-{h.hexdigest()[:12]}")
    if not os.path.exists(os.path.join(out, "done")):
        shutil.rmtree(out, ignore_errors=True)
        tmp = out + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run([sys.executable, gen, args[0], args[1], tmp] + args[2:], check=True)
        open(os.path.join(tmp, "done"), "w").close()
        os.rename(tmp, out)
    return out


def random_items(rng, vocab, step, pad):
    items = []
    for n in (3, 10, 40, 120, 300, 7, 64):
        ids = [rng.randrange(vocab - 4) for _ in range(n)]
        ids = [t if t not in (step, pad) else t + 1 for t in ids]
        k = rng.randrange(1, 8)
        for p in sorted(rng.sample(range(n), min(k, n))):
            ids[p] = step
        items.append(ids)
    items.append([step])                       # a lone separator
    items.append([1, 2, step, step, 5])        # adjacent separators
    return items


def compare(label, out, ref_steps, ref_probs, one_label, failures):
    """Worst error of one item's outputs against the oracle."""
    if "scores" not in out or "extra" not in out:
        failures.append(f"{label}: no result: {out}")
        return 0.0
    ex = out["extra"]
    c = ex.get("step_rewards", [])
    if len(c) != len(ref_steps):
        failures.append(f"{label}: {len(c)} step rewards, oracle {len(ref_steps)}")
        return 0.0

    def err(a, b):
        return abs(a - b) / (max(1.0, abs(b)) if one_label else 1.0)
    worst = max(err(a, b) for a, b in zip(c, ref_steps))
    if ref_probs is not None:
        cp = ex.get("step_probs")
        if not cp or len(cp) != len(ref_probs):
            failures.append(f"{label}: step_probs {cp!r:.80}")
        else:
            worst = max(worst, max(abs(a - b) for r1, r2 in zip(cp, ref_probs) for a, b in zip(r1, r2)))
    elif "step_probs" in ex:
        failures.append(f"{label}: step_probs on a 1-label head")
    v = [float(x) for x in ref_steps]
    dims = [min(v), sum(v) / len(v), v[-1], math.prod(v)]
    for a, b in zip(out["scores"][:3], dims[:3]):
        worst = max(worst, abs(a - b) / max(1.0, abs(b)))
    # the product of up to 7 factors, each within ~1e-7 relative: judged relative to itself
    a, b = out["scores"][3], dims[3]
    if abs(a - b) > 1e-4 * abs(b) + 1e-30:
        failures.append(f"{label}: prm_product {a} vs {b}")
    return worst


def ids_case(harness, src_root, cache, case, failures):
    kind, size, dtype, head, step = case
    folder = make_model(src_root, cache, kind, size, dtype, head, step)
    model = seqcls_ref.Model(folder)
    sid = step if step is not None else 151651
    rng = random.Random(zlib.crc32(repr(case).encode()))
    items = random_items(rng, model.cfg["vocab_size"], sid, model.pad)
    lines = [{"input_ids": x} for x in items] + [{"input_ids": [1, 2, 3]}]
    refs = [model.step_rewards(x, sid) for x in items]
    worst = 0.0
    dims, out = run_harness(harness, folder, lines)
    if dims != ["prm_min", "prm_mean", "prm_last", "prm_product"]:
        failures.append(f"{case}: dims {dims}")
    _, out2 = run_harness(harness, folder, lines, ["--max-batch-tokens", "128", "--max-batch-size", "3"])
    for name, o in (("one batch", out), ("chunks", out2)):
        for i, (r, (rs, rp)) in enumerate(zip(o, refs)):
            worst = max(worst, compare(f"{case} {name} item {i}", r, rs, rp, head == "token1", failures))
        last = o[-1]
        if "error" not in last or last["error"]["code"] != "unprocessable":
            failures.append(f"{case} {name}: an item without a separator gave {last}")
    print(f"{kind} {size} {dtype} {head} (separator {sid}): {len(items)} items, "
          f"{sum(map(len, items))} tokens, {sum(len(r[0]) for r in refs)} steps: worst err {worst:.2e}")
    if worst > TOL:
        failures.append(f"{case}: worst err {worst:.2e} > {TOL}")


def steps_case(harness, src_root, cache, failures):
    fix = os.environ.get("RWD_FIXTURES") or os.path.join(src_root, "..", "shared", "fixtures")
    fixdir = os.path.join(fix, "qwen2-tokenizer")
    node = shutil.which("node")
    why = None
    if not os.path.exists(os.path.join(fixdir, "vocab.json")):
        why = f"fixture {fixdir} is absent"
    elif not node or not os.path.isdir(os.path.join(src_root, "node_modules", "@anush008", "tokenizers")):
        why = "node or node_modules/@anush008/tokenizers missing"
    try:
        import jinja2
    except ImportError:
        why = "python3-jinja2 missing"
    if why:
        print(f"SKIP steps form: {why}")
        return False
    base = os.path.abspath(make_model(src_root, cache, "qwen2", "tinyvocab", "f32", "prm", None))
    folder = base + "-tok"
    if not os.path.exists(os.path.join(folder, "done")):
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        for f in ("config.json", "model.safetensors", "tokenizer_config.json"):
            os.symlink(os.path.join(base, f), os.path.join(folder, f))
        for f in ("vocab.json", "merges.txt"):
            shutil.copy(os.path.join(fixdir, f), folder)
        with open(os.path.join(folder, "added_tokens.json"), "w") as fh:
            json.dump(dict(ADDED), fh)
        open(os.path.join(folder, "done"), "w").close()
    with open(os.path.join(folder, "tokenizer_config.json")) as fh:
        tmpl = json.load(fh)["chat_template"]
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True,
                             extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = lambda x, **k: json.dumps(x, **k)
    template = env.from_string(tmpl)
    probs = [
        ("Sue has 3 apples and buys 4 more. How many?",
         ["Sue starts with 3 apples.", "She buys 4 more, so 3 + 4 = 7.", "The answer is \\boxed{7}."]),
        ("Übersetze 'café' 🙂", ["'café' ist Kaffee — コーヒー.", "Fertig ✓"]),
        ("1+1?", ["2"]),
    ]
    items, strings = [], []
    for q, steps in probs:
        body = "<extra_0>".join(steps) + "<extra_0>"
        for system in (QWEN_SYSTEM, None, "Be terse."):
            msgs = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": q}, {"role": "assistant", "content": body}]
            it = {"prompt": q, "steps": steps}
            if system is None:
                it["system"] = None
            elif system != QWEN_SYSTEM:
                it["system"] = system
            items.append(it)
            strings.append(template.render(messages=msgs, add_generation_prompt=False, bos_token=None))
        items.append({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": body}]})
        strings.append(template.render(messages=items[-1]["messages"], add_generation_prompt=False,
                                       bos_token=None))
    with tempfile.TemporaryDirectory() as td:
        js = os.path.join(td, "enc.js")
        with open(js, "w") as fh:
            # the Qwen2 tokenizer of test_seqcls_torch, plus Qwen2.5-Math-PRM's "<extra_0>"
            enc = NODE_ENCODE.replace("added(151645, '<|im_end|>')]", "added(151645, '<|im_end|>'), " + ", ".join(
                "added(%d, %s)" % (i, json.dumps(t)) for t, i in ADDED[3:]) + "]")
            assert enc != NODE_ENCODE
            fh.write(enc)
        tj = os.path.join(td, "tokenizer.json")
        p = subprocess.run([node, js, os.path.abspath(src_root), folder, tj],
                           input=json.dumps(strings), capture_output=True, text=True)
        if p.returncode:
            failures.append(f"steps form: node encoder failed: {p.stderr[:500]}")
            return False
        ids = json.loads(p.stdout)
    model = seqcls_ref.Model(folder)
    refs = [model.step_rewards(x, 151651) for x in ids]
    items.append({"prompt": "q", "steps": ["a <extra_0> b"]})  # a step holding the separator
    _, out = run_harness(harness, folder, items)
    worst = 0.0
    for i, (o, (rs, rp)) in enumerate(zip(out, refs)):
        worst = max(worst, compare(f"steps item {i} {json.dumps(items[i])[:60]}", o, rs, rp, False, failures))
    if "error" not in out[-1] or out[-1]["error"]["code"] != "unprocessable":
        failures.append(f"steps form: a step holding the separator gave {out[-1]}")
    print(f"steps form (Qwen2.5 template via Jinja2, HF tokenizers ids, {len(refs)} items: prompt+steps "
          f"with the card's, no and another system prompt; messages): worst err {worst:.2e}")
    if worst > TOL:
        failures.append(f"steps form: worst err {worst:.2e} > {TOL}")
    return True


def main():
    argv = sys.argv[1:]
    harness, src_root = argv[0], argv[1]
    cache = argv[2] if len(argv) > 2 else tempfile.mkdtemp(prefix="prm-models-")
    os.makedirs(cache, exist_ok=True)
    failures = []
    for case in CASES:
        ids_case(harness, src_root, cache, case, failures)
    ran = steps_case(harness, src_root, cache, failures)
    for f in failures:
        print("FAIL:", f)
    if failures:
        return 1
    print("prm-torch: all passed" + ("" if ran else " (steps form skipped, see above)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
