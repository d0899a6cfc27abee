"""Shared pieces of the image-RL trainer conformance tests (test_flow_grpo.py,
test_editscore.py, test_verl_omni.py, test_flow_factory.py).

The served model is a tiny random CLIPModel in Hugging Face's layout
(tools/make_tiny_models.py clip tiny) with an MLP head on the image embedding
(the LAION aesthetic predictor's place), so image-only protocols (flow_grpo's
DeQA) have a dimension too. The oracle is independent of rewardd:
  - pixels: Pillow decodes the bytes the client sent (Image.open(...)
    .convert("RGB")), transformers' CLIPImageProcessor arithmetic
    (tests/parity/test_clip_preprocess.hf_preprocess);
  - towers, heads, scores: the PyTorch reference tests/parity/clip_ref.py
    (float64), written from the architecture;
  - token ids: the model's own tokenizer through clip-harness, as
    tests/parity/test_clip_torch.py does (their parity with Hugging Face
    tokenizers is tests/parity/test_tokenizer_clip.js's job);
  - the reward: the mean of the item's present dimensions (README, "the mean
    of its dimensions when it has none").
"""
import io
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import rwd_harness as H  # noqa: E402

try:
    import numpy as np
    import torch
    from PIL import Image
except ImportError as e:  # pragma: no cover
    H.skip(f"oracle missing ({e}); needs Debian python3-torch, python3-numpy, python3-pil")

sys.path.insert(0, os.path.join(H.SRC, "tests", "parity"))
import clip_ref  # noqa: E402
from test_clip_preprocess import cfg_of, hf_preprocess  # noqa: E402

TOL = 1e-4


def prep_cfg(folder):
    with open(os.path.join(folder, "preprocessor_config.json")) as f:
        pc = json.load(f)
    size, crop = pc.get("size", 224), pc.get("crop_size", 224)
    shortest = size if isinstance(size, int) else size["shortest_edge"]
    ch, cw = (crop, crop) if isinstance(crop, int) else (crop["height"], crop["width"])
    return cfg_of(shortest=shortest, crop_h=ch, crop_w=cw, resample=pc.get("resample", 3),
                  factor=pc.get("rescale_factor", 1 / 255), mean=pc["image_mean"], std=pc["image_std"])


class TinyClip:
    """A tiny CLIP folder + head, and its PyTorch oracle."""

    def __init__(self, clip_harness, seed=5):
        self.harness = clip_harness
        self.dir = H.mkdtemp("rwd-imgrl-")
        self.folder = os.path.join(self.dir, "clip")
        subprocess.run(["/usr/bin/python3", os.path.join(H.SRC, "tools", "make_tiny_models.py"), "clip", "tiny",
                        self.folder, "--seed", str(seed)], check=True, capture_output=True)
        if not os.path.exists(os.path.join(self.folder, "vocab.json")):
            H.skip("no CLIP tokenizer files: the fixture ../shared/fixtures/clip-bpe/bpe_simple_vocab_16e6.txt.gz "
                   "is absent")
        self.ref = clip_ref.CLIPRef(self.folder)
        self.cfg = prep_cfg(self.folder)
        D = self.ref.w["visual_projection.weight"].shape[0]
        gen = torch.Generator().manual_seed(seed)
        sys.path.insert(0, os.path.join(H.SRC, "tools"))
        import safetensors_io
        w = {"layers.0.weight": torch.randn(8, D, generator=gen) / D ** 0.5,
             "layers.0.bias": 0.1 * torch.randn(8, generator=gen),
             "layers.2.weight": torch.randn(1, 8, generator=gen) / 8 ** 0.5,
             "layers.2.bias": 0.1 * torch.randn(1, generator=gen)}
        self.head_path = os.path.join(self.dir, "aesthetic.safetensors")
        safetensors_io.save(w, self.head_path, metadata={"format": "pt"})
        self.head = {k: v.double() for k, v in w.items()}

    def model_config(self):
        return {"kind": "clip", "path": self.folder,
                "options": {"heads": [{"name": "aesthetic", "path": self.head_path}]}}

    def _tokens(self, texts):
        tf, tof = os.path.join(self.dir, "texts.json"), os.path.join(self.dir, "tok.json")
        with open(tf, "w") as f:
            json.dump(texts, f)
        subprocess.run([self.harness, "tokenize", self.folder, tf, tof], check=True)
        with open(tof) as f:
            return json.load(f)

    def _img(self, data):
        if isinstance(data, Image.Image):
            im = data.convert("RGB")
        else:
            im = Image.open(io.BytesIO(data)).convert("RGB")
        px = torch.from_numpy(hf_preprocess(im, self.cfg))
        return self.ref.image_embeds(px[None])[0]

    def expect(self, image, prompt=None, source=None, instruction=None):
        """The item's dimensions and reward as rewardd's clip kind defines them."""
        e = self._img(image)
        out = {}
        texts = [t for t in (prompt, instruction) if t is not None] + [""]
        tok = dict(zip(texts, self.ref.text_embeds(self._tokens(texts))))
        if prompt is not None:
            out["text_alignment"] = float(self.ref.text_alignment(e, tok[prompt]))
        if source is not None:
            s = self._img(source)
            out["image_similarity"] = float(self.ref.image_similarity(s, e))
            if instruction is not None:
                out["edit_direction"] = float(self.ref.edit_direction(s, e, tok[""], tok[instruction]))
        x = e.double() / e.double().norm()
        hcur = x @ self.head["layers.0.weight"].t() + self.head["layers.0.bias"]
        out["aesthetic"] = float(hcur @ self.head["layers.2.weight"].t() + self.head["layers.2.bias"])
        return out, float(np.mean(list(out.values())))


def check_close(failures, label, got, want):
    if len(got) != len(want):
        failures.append(f"{label}: {len(got)} values, expected {len(want)}")
        return 0.0
    worst = 0.0
    for i, (g, w) in enumerate(zip(got, want)):
        e = abs(float(g) - w) / max(abs(w), 1.0)
        worst = max(worst, e)
        if not e <= TOL:
            failures.append(f"{label}[{i}]: {g} vs oracle {w} (rel {e:.3g})")
    return worst


def trainer_images(n, h=40, w=48, seed=0):
    """The VAE output a trainer holds: float NCHW in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    base = torch.linspace(0, 1, w)[None, None, None, :].expand(n, 3, h, w)
    return (0.6 * base + 0.4 * torch.rand(n, 3, h, w, generator=g)).clamp(0, 1)
