"""rwd_ocr_reward (lib/models/ocr) against flow_grpo's ocr_score arithmetic
(flow_grpo/ocr.py) run here with python3-levenshtein, on random pairs of
recognised text and prompts: mixed case, spaces, substrings, accented and
non-Latin letters, targets longer and shorter than the text, empty text. A
prompt without '"' or with an empty target must be an error naming "prompt".

usage: test_ocr_reward.py HARNESS   (exit 77 without python3-levenshtein)
"""
import json
import random
import subprocess
import sys
import tempfile

try:
    from Levenshtein import distance
except ImportError:
    print("SKIP: python3-levenshtein is not installed")
    sys.exit(77)

harness = sys.argv[1]
rng = random.Random(12)
alphabet = list("abcXYZ  019-.") + ["é", "É", "ß", "Ω", "ω", "中", "文", "Ä"]


def rnd(n):
    return "".join(rng.choice(alphabet) for _ in range(n))


pairs = []
for i in range(600):
    target = rnd(rng.randint(1, 12))
    kind = i % 4
    if kind == 0:
        text = rnd(rng.randint(0, 20))
    elif kind == 1:  # target inside, with case and space changes
        text = rnd(rng.randint(0, 5)) + target.upper().replace(" ", "") + rnd(rng.randint(0, 5))
    elif kind == 2:  # a few edits
        t = list(target)
        for _ in range(rng.randint(1, 3)):
            if t and rng.random() < 0.5:
                del t[rng.randrange(len(t))]
            else:
                t.insert(rng.randrange(len(t) + 1), rng.choice(alphabet))
        text = "".join(t)
    else:
        text = ""
    pairs.append([text, 'a picture of "%s" written%s' % (target, rng.choice(["", ' and "more"']))])
pairs += [["x", "no quote here"], ["x", 'empty target "  "'], ["x", 'empty target ""'], ["x", 'one quote "abc']]


def oracle(text, prompt):
    if '"' not in prompt:
        return None
    p = prompt.split('"')[1].replace(" ", "").lower()
    if not p:
        return None  # flow_grpo divides by zero
    t = text.replace(" ", "").lower()
    d = 0 if p in t else distance(t, p)
    return 1 - min(d, len(p)) / len(p), d


with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
    json.dump(pairs, f)
got = json.loads(subprocess.run([harness, "--reward", f.name], capture_output=True, text=True, check=True).stdout)
fails, worst = 0, 0.0
for (text, prompt), g in zip(pairs, got):
    w = oracle(text, prompt)
    if w is None:
        ok = isinstance(g, dict) and g.get("field") == "prompt"
    else:
        ok = isinstance(g, list) and abs(g[0] - w[0]) <= 1e-12 and g[1] == w[1]
        if ok:
            worst = max(worst, abs(g[0] - w[0]))
    if not ok:
        fails += 1
        if fails < 10:
            print("FAIL %r %r: ours %r, flow_grpo %r" % (text, prompt, g, w))
print("%d pairs, %d failures, worst |reward diff| %g" % (len(pairs), fails, worst))
print("FAIL" if fails else "OK")
sys.exit(1 if fails else 0)
