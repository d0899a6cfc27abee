"""An independent PyTorch reference for Hugging Face CLIPModel.

Written from the documented equations (shared/reference/models-and-formats.md
§2, transformers' modeling_clip.py as described there), not from our C code,
and without `transformers` (Debian has none):

config: class defaults <- text_config / vision_config <- *_config_dict
vision (pixels [B, 3, S, S], already preprocessed):
  p   = conv2d(pixels, patch_embedding, stride P, no bias) -> [B, (S/P)^2, H]
        (patches row by row)
  x   = [class_embedding; p] + position_embedding[0 .. (S/P)^2]
  x   = pre_layrnorm(x)
  per layer (pre-LN):  x += out_proj(attn(LN1(x)));  x += fc2(act(fc1(LN2(x))))
        attn: q, k, v with biases, softmax_f32(q k^T * head_dim^-0.5) v per head
  img = visual_projection(post_layernorm(x[:, 0]))
text (one unpadded sequence of ids at a time; with right padding and the
causal mask that is exactly what HF computes for the real tokens):
  x   = token_embedding[ids] + position_embedding[0 .. T)
  the same layers with a causal mask, final_layer_norm on every position
  pooled at: argmax(ids) when text eos_token_id == 2 (legacy configs),
             else the first position whose id == eos_token_id (0 if none)
  txt = text_projection(pooled)
act: quick_gelu x*sigmoid(1.702x) or gelu (erf); LayerNorm eps layer_norm_eps.
Dimensions (embeddings L2-normalised first):
  text_alignment  exp(logit_scale) * cos(txt, img)   (PickScore)
  clipscore       w * max(cos(txt, img), 0)          (CLIPScore)
  image_similarity cos(img_src, img)
  edit_direction  cos(img - img_src, txt_target - txt_source)

dtype: float64 by default (the oracle), or float32.
Run with Debian's /usr/bin/python3.
"""
import json
import mmap
import os
import struct
import warnings

import numpy as np
import torch
import torch.nn.functional as F

TEXT_DEFAULTS = {
    "vocab_size": 49408, "hidden_size": 512, "intermediate_size": 2048, "projection_dim": 512,
    "num_hidden_layers": 12, "num_attention_heads": 8, "max_position_embeddings": 77,
    "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "pad_token_id": 1,
    "bos_token_id": 49406, "eos_token_id": 49407,
}
VISION_DEFAULTS = {
    "hidden_size": 768, "intermediate_size": 3072, "projection_dim": 512,
    "num_hidden_layers": 12, "num_attention_heads": 12, "num_channels": 3,
    "image_size": 224, "patch_size": 32, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
}


def load_config(folder):
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    text = dict(TEXT_DEFAULTS)
    text.update(cfg.get("text_config") or {})
    text.update(cfg.get("text_config_dict") or {})
    vision = dict(VISION_DEFAULTS)
    vision.update(cfg.get("vision_config") or {})
    vision.update(cfg.get("vision_config_dict") or {})
    return cfg, text, vision


class _Weights:
    """Tensors of a safetensors file, mmapped; floats converted to `dtype` on
    first use (the token embedding is only ever indexed, so never converted
    whole). The format is parsed here, independently of our C loader."""

    _NP = {"F32": np.float32, "F16": np.float16, "BF16": np.int16, "I64": np.int64}

    def __init__(self, path, dtype):
        self.dt = dtype
        with open(path, "rb") as f:
            self.mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        n = struct.unpack("<Q", self.mm[:8])[0]
        self.header = {k: v for k, v in json.loads(self.mm[8:8 + n]).items() if k != "__metadata__"}
        self.base = 8 + n
        self.cache = {}

    def raw(self, name):
        info = self.header[name]
        npdt = self._NP[info["dtype"]]
        b, e = info["data_offsets"]
        a = np.frombuffer(self.mm, dtype=npdt, count=(e - b) // np.dtype(npdt).itemsize,
                          offset=self.base + b)
        with warnings.catch_warnings():  # read-only mmap: we never write to it
            warnings.simplefilter("ignore")
            t = torch.from_numpy(a.copy() if info["dtype"] == "BF16" else a)
        if info["dtype"] == "BF16":
            t = t.view(torch.bfloat16)
        return t.reshape(info["shape"])

    def __getitem__(self, name):
        if name not in self.cache:
            t = self.raw(name)
            self.cache[name] = t.to(self.dt) if t.is_floating_point() else t
        return self.cache[name]

    def get(self, name):
        return self[name] if name in self.header else None

    def rows(self, name, idx):
        return self.raw(name)[idx].to(self.dt)


class CLIPRef:
    def __init__(self, folder, dtype=torch.float64):
        self.cfg, self.text, self.vision = load_config(folder)
        self.dt = dtype
        self.w = _Weights(os.path.join(folder, "model.safetensors"), dtype)

    # --- building blocks ---
    def _act(self, x, name):
        if name == "quick_gelu":
            return x * torch.sigmoid(1.702 * x)
        if name == "gelu":
            return F.gelu(x)
        raise ValueError(f"hidden_act {name}")

    def _ln(self, x, prefix, eps):
        w, b = self.w[prefix + ".weight"], self.w[prefix + ".bias"]
        return F.layer_norm(x, (w.shape[0],), w, b, eps)

    def _lin(self, x, prefix, bias=True):
        y = x @ self.w[prefix + ".weight"].t()
        if bias:
            y = y + self.w[prefix + ".bias"]
        return y

    def _encoder(self, x, prefix, c, causal):
        """x [B, T, H] through every layer of one tower."""
        B, T, H = x.shape
        nH = c["num_attention_heads"]
        hd = H // nH
        eps = c["layer_norm_eps"]
        mask = None
        if causal:
            mask = torch.full((T, T), float("-inf"), dtype=self.dt).triu(1)
        for li in range(c["num_hidden_layers"]):
            p = f"{prefix}.encoder.layers.{li}."
            h = self._ln(x, p + "layer_norm1", eps)
            q = self._lin(h, p + "self_attn.q_proj").view(B, T, nH, hd).transpose(1, 2)
            k = self._lin(h, p + "self_attn.k_proj").view(B, T, nH, hd).transpose(1, 2)
            v = self._lin(h, p + "self_attn.v_proj").view(B, T, nH, hd).transpose(1, 2)
            s = (q @ k.transpose(-1, -2)) * hd ** -0.5
            if mask is not None:
                s = s + mask
            a = torch.softmax(s, dim=-1) @ v  # [B, nH, T, hd]
            a = a.transpose(1, 2).reshape(B, T, H)
            x = x + self._lin(a, p + "self_attn.out_proj")
            h = self._ln(x, p + "layer_norm2", eps)
            h = self._lin(self._act(self._lin(h, p + "mlp.fc1"), c["hidden_act"]), p + "mlp.fc2")
            x = x + h
        return x

    # --- towers ---
    @torch.no_grad()
    def image_embeds(self, pixels):
        """pixels [B, 3, S, S] (preprocessed) -> projected image embeddings [B, proj]."""
        c = self.vision
        P = c["patch_size"]
        px = pixels.to(self.dt)
        pe = F.conv2d(px, self.w["vision_model.embeddings.patch_embedding.weight"], stride=P)
        B, H = pe.shape[0], pe.shape[1]
        pe = pe.flatten(2).transpose(1, 2)  # [B, patches, H], row-major patch order
        cls = self.w["vision_model.embeddings.class_embedding"].view(1, 1, H).expand(B, 1, H)
        x = torch.cat([cls, pe], dim=1)
        x = x + self.w["vision_model.embeddings.position_embedding.weight"][: x.shape[1]]
        x = self._ln(x, "vision_model.pre_layrnorm", c["layer_norm_eps"])
        x = self._encoder(x, "vision_model", c, causal=False)
        pooled = self._ln(x[:, 0], "vision_model.post_layernorm", c["layer_norm_eps"])
        return pooled @ self.w["visual_projection.weight"].t()

    def pool_index(self, ids):
        eos = self.text["eos_token_id"]
        if eos == 2:
            return max(range(len(ids)), key=lambda i: (ids[i], -i))  # first maximum
        for i, t in enumerate(ids):
            if t == eos:
                return i
        return 0

    @torch.no_grad()
    def text_embeds(self, id_lists):
        """[[ids], ...] (each unpadded) -> projected text embeddings [B, proj]."""
        c = self.text
        out = []
        for ids in id_lists:
            t = torch.tensor(ids, dtype=torch.long)
            x = self.w.rows("text_model.embeddings.token_embedding.weight", t)
            x = x + self.w["text_model.embeddings.position_embedding.weight"][: len(ids)]
            x = self._encoder(x[None], "text_model", c, causal=True)[0]
            x = self._ln(x, "text_model.final_layer_norm", c["layer_norm_eps"])
            out.append(x[self.pool_index(ids)] @ self.w["text_projection.weight"].t())
        return torch.stack(out)

    # --- dimensions ---
    def logit_scale(self):
        return float(self.w["logit_scale"].double().exp())

    @staticmethod
    def cos(a, b):
        a = a.double()
        b = b.double()
        return float((a / a.norm()) @ (b / b.norm()))

    def text_alignment(self, img, txt):
        return self.logit_scale() * self.cos(txt, img)

    def clipscore(self, img, txt, w=2.5):
        return w * max(self.cos(txt, img), 0.0)

    def image_similarity(self, img_src, img):
        return self.cos(img_src, img)

    def edit_direction(self, img_src, img, txt_src, txt_tgt):
        n = lambda v: v.double() / v.double().norm()  # noqa: E731
        return self.cos(n(img) - n(img_src), n(txt_tgt) - n(txt_src))
