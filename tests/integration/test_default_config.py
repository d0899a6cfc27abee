#!/usr/bin/python3
"""The default configuration (config/default.json, what scripts/run serves)
answers the README's example requests correctly.

    test_default_config.py REWARDD_BINARY

Oracles run here: NLTK's sentence_bleu (method2, the rules kind's documented
smoothing and tokenisation) for bleu; Pillow + numpy for the image metrics
(luma as Pillow's convert("L"), Laplacian variance with mirrored borders,
Hasler-Suesstrunk colorfulness, unclipped share); the rescale-then-mean
reward of default.json computed from those raw values.
"""
import base64
import json
import os
import re
import sys
import unicodedata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rwd_harness as h  # noqa: E402

try:
    import numpy as np
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
    from PIL import Image
except ImportError as e:
    h.skip("numpy / nltk / Pillow missing: %s" % e)

EXE = sys.argv[1]
DATA = "/usr/lib/python3/dist-packages/skimage/data"
# checked before any check runs and before the daemon starts: a skip never
# hides a failure already recorded, and leaves no daemon behind
for _photo in ("coffee.png", "astronaut.png"):
    if not os.path.exists(os.path.join(DATA, _photo)):
        h.skip("scikit-image's sample photo %s is missing (python3-skimage)" % _photo)
with open(os.path.join(h.SRC, "config", "default.json")) as f:
    CONFIG = json.load(f)

c = h.Checker("default-config")
d = h.Daemon(EXE, CONFIG)

r = d.request("GET", "/v1/models")
names = sorted(m["name"] for m in r.json["models"])
c.check(names == ["image_metrics", "rules"], "default models: %s" % names)
c.check(d.request("GET", "/readyz").status == 200, "ready")

# --- rules: the README's example -------------------------------------------
body = {"model": "rules", "items": [
    {"id": "a", "response": "<think>6*7=42</think><answer>42</answer>", "label": "42"},
    {"id": "b", "response": "The answer is 41.", "label": "42", "reference": "The answer is 42."}]}
r = d.request("POST", "/v1/rewards", body)
c.check(r.status == 200, "rules status %d" % r.status)
a, b = r.json["results"]
c.check(a["scores"].get("format") == 1 and a["scores"].get("accuracy") == 1,
        "well-formed correct answer: %s" % a["scores"])
c.check("bleu" not in a["scores"], "no reference -> bleu absent")
c.check(b["scores"].get("format") == 0 and b["scores"].get("accuracy") == 0,
        "unformatted wrong answer: %s" % b["scores"])


def tokens(s):
    # the rules kind's documented tokenisation: NFC; runs of letters, marks,
    # digits, connector punctuation; every other non-space symbol alone
    s = unicodedata.normalize("NFC", s)
    return re.findall(r"[\w]+|[^\w\s]", s)


ref_bleu = sentence_bleu([tokens("The answer is 42.")], tokens("The answer is 41."),
                         smoothing_function=SmoothingFunction().method2)
c.check(abs(b["scores"]["bleu"] - ref_bleu) < 1e-6,
        "bleu %.9f vs NLTK %.9f" % (b["scores"]["bleu"], ref_bleu))
for res in (a, b):
    present = list(res["scores"].values())
    c.check(abs(res["reward"] - sum(present) / len(present)) < 1e-6,
            "rules reward = mean of present dims: %s" % res)
print("rules: bleu %.6f (NLTK %.6f)" % (b["scores"]["bleu"], ref_bleu))


# --- image_metrics ------------------------------------------------------------
def b64(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


def raw_metrics(path):
    img = Image.open(path).convert("RGB")
    rgb = np.asarray(img).astype(np.float64)
    luma = np.asarray(img.convert("L")).astype(np.float64)
    p = np.pad(luma, 1, mode="reflect")
    lap = p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4 * luma
    R, G, B = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg, yb = R - G, 0.5 * (R + G) - B
    colorfulness = np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())
    exposure = np.mean((luma > 0) & (luma < 255))
    return {"sharpness": lap.var(), "colorfulness": colorfulness, "exposure": exposure}


def rescaled(name, v):
    spans = {"psnr": (20, 50), "sharpness": (0, 1000), "colorfulness": (0, 100)}
    if name not in spans:
        return v
    lo, hi = spans[name]
    return min(1.0, max(0.0, (v - lo) / (hi - lo)))


coffee = os.path.join(DATA, "coffee.png")
r = d.request("POST", "/v1/rewards", {"model": "image_metrics", "items": [{"image": b64(coffee)}]})
c.check(r.status == 200, "image_metrics status %d" % r.status)
res = r.json["results"][0]
want = raw_metrics(coffee)
for k, v in want.items():
    got = res["raw_scores"][k]
    c.check(abs(got - v) <= 1e-4 * max(1, abs(v)), "%s %.6f vs numpy %.6f" % (k, got, v))
c.check("ssim" not in res["scores"] and "psnr" not in res["scores"], "no source -> no ssim/psnr")
exp_reward = np.mean([rescaled(k, v) for k, v in want.items()])
c.check(abs(res["reward"] - exp_reward) < 1e-5, "reward %.6f vs %.6f" % (res["reward"], exp_reward))
print("image_metrics coffee.png: reward %.6f (oracle %.6f)" % (res["reward"], exp_reward))

astro = b64(os.path.join(DATA, "astronaut.png"))
r = d.request("POST", "/v1/rewards", {"model": "image_metrics",
                                      "items": [{"image": astro, "source_image": astro}]})
res = r.json["results"][0]
c.check(res["raw_scores"].get("ssim") == 1.0 and res["raw_scores"].get("psnr") == 100.0,
        "identical images: ssim 1, psnr capped at 100: %s" % res["raw_scores"])

c.check(d.stop() == 0, "clean exit")
c.done()
