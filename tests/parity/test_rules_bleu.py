"""BLEU parity: the `rules` kind's `bleu` dimension against NLTK.

Usage: test_rules_bleu.py path/to/rules-harness

Builds random candidate/reference sets (random words, punctuation, Unicode
letters, combining marks, emoji, odd whitespace, empty and < 4-token
candidates, 1-6 references), tokenises them in Python with the rule documented
in lib/models/rules.h (an independent implementation of the documented rule,
not a port of the C code), scores them with NLTK's sentence_bleu for every
smoothing method and several orders, and compares with the harness's output:
the double from rwd_rules_bleu() within 1e-9, the float dimension within 1e-6.
Prints the worst errors. Exit 77 when NLTK is missing.
"""
import json
import os
import random
import subprocess
import sys
import tempfile
import unicodedata
import warnings

try:
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
except ImportError as e:  # pragma: no cover
    print(f"SKIP: NLTK not importable ({e}); install Debian python3-nltk")
    sys.exit(77)


def tokenize(text):
    """rules.h: NFC; separators are Z* and Cc; runs of L*/M*/N*/Pc form a
    token; any other code point is a token by itself."""
    toks, cur = [], []
    for ch in unicodedata.normalize("NFC", text):
        cat = unicodedata.category(ch)
        if cat[0] == "Z" or cat == "Cc":
            if cur:
                toks.append("".join(cur))
                cur = []
        elif cat[0] in "LMN" or cat == "Pc":
            cur.append(ch)
        else:
            if cur:
                toks.append("".join(cur))
                cur = []
            toks.append(ch)
    if cur:
        toks.append("".join(cur))
    return toks


# Characters from long-stable Unicode blocks, so Python's tables and
# utf8proc's agree on categories and composition.
WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "to", "it", "is", "of",
         "and", "in", "Paris", "paris", "42", "3.14", "x_y", "don't", "e-mail"]
UNI = ["café", "cafe\u0301", "naïve", "straße", "Ελλάδα", "мир", "日本語", "中文",
       "한국어", "🎉", "👍🏽", "x²", "½", "Ⅻ", "‿", "١٢٣", "ﬁ", "Å", "A\u030a"]
PUNCT = list(".,;:!?()[]{}\"'-–—…/\\@#$%^&*+=<>|~`") + ["«", "»", "“", "”", "€", "©", "\u200d"]
SPACES = [" ", " ", " ", "  ", "\t", "\n", "\u00a0", "\u2009", "\u3000", "\r\n"]


def rand_text(rng, n_words):
    parts = []
    for _ in range(n_words):
        r = rng.random()
        if r < 0.6:
            w = rng.choice(WORDS)
        elif r < 0.8:
            w = rng.choice(UNI)
        else:
            w = rng.choice(PUNCT)
        if rng.random() < 0.15:
            w += rng.choice(PUNCT)  # glued punctuation
        parts.append(w)
        parts.append(rng.choice(SPACES) if rng.random() < 0.9 else "")
    return "".join(parts)


def mutate(rng, text):
    """A candidate that overlaps a reference: drop, swap and insert words."""
    words = text.split()
    out = []
    for w in words:
        r = rng.random()
        if r < 0.15:
            continue
        if r < 0.25:
            out.append(rng.choice(WORDS + UNI))
            continue
        out.append(w)
        if rng.random() < 0.1:
            out.append(rng.choice(PUNCT))
    if out and rng.random() < 0.2:
        i = rng.randrange(len(out))
        j = rng.randrange(len(out))
        out[i], out[j] = out[j], out[i]
    return rng.choice([" ", "\n", "  "]).join(out)


def make_sets(rng, n):
    sets = []
    for k in range(n):
        n_refs = rng.choice([1, 1, 1, 2, 3, 4, 6])
        refs = [rand_text(rng, rng.randint(0 if k % 50 == 7 else 1, 40)) for _ in range(n_refs)]
        kind = k % 10
        if kind == 0:
            hyp = rand_text(rng, rng.randint(1, 3))  # short: < 4 tokens
        elif kind == 1:
            hyp = rng.choice(["", " ", "\n\t"]) if k % 20 == 1 else rng.choice(refs)  # empty or exact
        elif kind == 2:
            hyp = rand_text(rng, rng.randint(1, 40))  # unrelated
        elif kind == 3:
            hyp = " ".join(rng.choice(refs).split()[:rng.randint(1, 4)])  # short prefix
        else:
            hyp = mutate(rng, rng.choice(refs))
        sets.append((hyp, refs))
    return sets


SMOOTHINGS = ["none", "method1", "method2", "method3", "method4"]


def nltk_bleu(hyp, refs, smoothing, order):
    sf = SmoothingFunction()
    fn = {"none": sf.method0, "method1": sf.method1, "method2": sf.method2,
          "method3": sf.method3, "method4": sf.method4}[smoothing]
    weights = tuple([1.0 / order] * order)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(sentence_bleu([tokenize(r) for r in refs], tokenize(hyp),
                                   weights=weights, smoothing_function=fn))


def main():
    if len(sys.argv) != 2:
        print("usage: test_rules_bleu.py rules-harness", file=sys.stderr)
        return 2
    harness = sys.argv[1]
    rng = random.Random(20261126)
    sets = make_sets(rng, 600)
    cases = []
    for i, (hyp, refs) in enumerate(sets):
        for sm in SMOOTHINGS:
            cases.append({"hyp": hyp, "refs": refs, "smoothing": sm, "order": 4})
        order = 1 + i % 3  # orders 1..3 too, with the default smoothing
        cases.append({"hyp": hyp, "refs": refs, "smoothing": "method2", "order": order})
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "cases.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(cases, f, ensure_ascii=False)
        out = subprocess.run([harness, path], capture_output=True, text=True)
    if out.returncode != 0:
        print(out.stderr)
        print(f"FAIL: harness exited {out.returncode}")
        return 1
    got = json.loads(out.stdout)
    if len(got) != len(cases):
        print(f"FAIL: {len(got)} results for {len(cases)} cases")
        return 1

    worst_d = (0.0, None)
    worst_f = (0.0, None)
    short = zero = nonzero = 0
    failures = 0
    for case, (d, f) in zip(cases, got):
        ref = nltk_bleu(case["hyp"], case["refs"], case["smoothing"], case["order"])
        ed, ef = abs(d - ref), abs(f - ref)
        if ed > worst_d[0]:
            worst_d = (ed, case, ref, d)
        if ef > worst_f[0]:
            worst_f = (ef, case, ref, f)
        if ed > 1e-9 or ef > 1e-6:
            failures += 1
            if failures <= 5:
                print(f"MISMATCH nltk={ref!r} c={d!r} dim={f!r} case={json.dumps(case, ensure_ascii=False)}")
                print(f"  hyp tokens: {tokenize(case['hyp'])}")
        short += len(tokenize(case["hyp"])) < 4
        zero += ref == 0
        nonzero += 0 < ref < 1
    print(f"{len(sets)} candidate/reference sets, {len(cases)} cases "
          f"({short} with < 4 candidate tokens, {zero} scoring 0, {nonzero} strictly between 0 and 1)")
    print(f"worst |c - nltk|   (double): {worst_d[0]:.3e}")
    print(f"worst |dim - nltk| (float):  {worst_f[0]:.3e}")
    if failures:
        print(f"FAIL: {failures} cases over tolerance (1e-9 double, 1e-6 float)")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
