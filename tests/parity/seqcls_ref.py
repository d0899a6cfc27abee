"""An independent PyTorch reference for Qwen2/Qwen3/Llama *ForSequenceClassification.

Written from the documented equations (shared/reference/models-and-formats.md
§3.1, transformers' modeling_qwen2/qwen3/llama as described there), not from
our C code, and without `transformers` (Debian has none):

  x    = embed_tokens[ids]                                   [T, H]
  per layer:
    n  = RMSNorm(x)            variance in float32, cast back, then * weight
    q  = n Wq^T (+bq), k = n Wk^T (+bk), v = n Wv^T (+bv)     (biases: Qwen2)
    q, k per head: RMSNorm over head_dim (Qwen3 q_norm/k_norm), BEFORE RoPE
    RoPE half-split (rotate_half), inv_freq = theta^(-2i/d) (+ llama3 scaling),
         angles = float32 positions * inv_freq, cos/sin cast to the compute dtype
    GQA: kv head j serves query heads j*G..j*G+G-1 (repeat_interleave)
    a  = softmax_f32(q k^T * hd^-0.5 + causal) v ; x += a Wo^T
    n  = RMSNorm(x); x += (silu(n Wg^T) * (n Wu^T)) Wd^T
  x = RMSNorm(x); logits = x score^T                         [T, num_labels]
  pooled at the rightmost token whose id != pad_token_id (HF's current rule;
  position 0 when every token is pad).

Each item is run on its own, unpadded, with positions arange(T): exactly what
HF computes for a single sequence (and for a padded batch's real tokens).

dtype: torch.float32 (the parity reference: weights as stored, BF16/F16
widened to float32, all math float32, which is what our C code does), or
torch.bfloat16 (HF's own arithmetic when a model runs with
torch_dtype=bfloat16: every matmul in bf16, RMSNorm's statistic and softmax in
float32 then cast back), reported for information only.

Run with Debian's /usr/bin/python3.
"""
import json
import math
import mmap
import os
import struct

import numpy as np
import torch

_NP = {"F32": (np.float32, None), "F16": (np.float16, None), "BF16": (np.int16, torch.bfloat16)}


def load_safetensors(path):
    """{name: torch tensor in the file's dtype}; read through mmap + numpy (fast for 0.6B)."""
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    n = struct.unpack("<Q", mm[:8])[0]
    header = json.loads(mm[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        npdt, tdt = _NP[info["dtype"]]
        b, e = info["data_offsets"]
        arr = np.frombuffer(mm, dtype=npdt, count=(e - b) // np.dtype(npdt).itemsize,
                            offset=base + b).copy()
        t = torch.from_numpy(arr)
        if tdt is not None:
            t = t.view(torch.int16).view(tdt)
        out[name] = t.reshape(info["shape"])
    return out


class Model:
    def __init__(self, folder):
        with open(os.path.join(folder, "config.json")) as f:
            self.cfg = json.load(f)
        self.w = load_safetensors(os.path.join(folder, "model.safetensors"))
        c = self.cfg
        self.kind = c["model_type"]
        self.H = c["hidden_size"]
        self.nH = c["num_attention_heads"]
        self.nKV = c.get("num_key_value_heads") or self.nH
        self.hd = c.get("head_dim") or self.H // self.nH
        self.L = c["num_hidden_layers"]
        self.eps = c["rms_norm_eps"]
        self.pad = c.get("pad_token_id")
        self.labels = [c["id2label"][str(i)] for i in range(len(c["id2label"]))]
        self.inv_freq = self._inv_freq()
        self._conv = {}

    def _wt(self, name, dt):
        """Weight `name` in dtype dt, converted once."""
        key = (name, dt)
        if key not in self._conv:
            self._conv[key] = self.w[name].to(dt)
        return self._conv[key]

    def _inv_freq(self):
        # float32 like transformers' default rope init
        c = self.cfg
        theta = float(c.get("rope_theta", 10000.0))
        d = self.hd
        inv = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
        rs = c.get("rope_scaling")
        if rs and (rs.get("rope_type") or rs.get("type")) == "llama3":
            factor = rs["factor"]
            lo = rs["low_freq_factor"]
            hi = rs["high_freq_factor"]
            old = rs["original_max_position_embeddings"]
            low_wl = old / lo
            high_wl = old / hi
            wl = 2 * math.pi / inv
            scaled = torch.where(wl > low_wl, inv / factor, inv)
            smooth = (old / wl - lo) / (hi - lo)
            smoothed = (1 - smooth) * scaled / factor + smooth * scaled
            medium = ~(wl < high_wl) & ~(wl > low_wl)
            inv = torch.where(medium, smoothed, scaled)
        elif rs:
            raise ValueError(f"unsupported rope_scaling {rs}")
        return inv

    def _rms(self, x, name, dt):
        weight = self._wt(name, dt)
        xf = x.to(torch.float32)
        var = xf.pow(2).mean(-1, keepdim=True)
        xf = xf * torch.rsqrt(var + self.eps)
        return weight.to(dt) * xf.to(dt)

    @staticmethod
    def _rot_half(x):
        h = x.shape[-1] // 2
        return torch.cat((-x[..., h:], x[..., :h]), dim=-1)

    def _lin(self, x, name, dt):
        y = x @ self._wt(name + ".weight", dt).t()
        if name + ".bias" in self.w:
            y = y + self._wt(name + ".bias", dt)
        return y

    @torch.no_grad()
    def hidden(self, ids, dt=torch.float32):
        """Final-normed hidden states [T, H] for one unpadded sequence."""
        T = len(ids)
        w = self.w
        x = w["model.embed_tokens.weight"][torch.tensor(ids, dtype=torch.long)].to(dt)
        pos = torch.arange(T, dtype=torch.float32)
        freqs = pos[:, None] * self.inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos().to(dt), emb.sin().to(dt)
        G = self.nH // self.nKV
        causal = torch.full((T, T), float("-inf")).triu(1)
        for li in range(self.L):
            p = f"model.layers.{li}."
            n = self._rms(x, p + "input_layernorm.weight", dt)
            q = self._lin(n, p + "self_attn.q_proj", dt).view(T, self.nH, self.hd)
            k = self._lin(n, p + "self_attn.k_proj", dt).view(T, self.nKV, self.hd)
            v = self._lin(n, p + "self_attn.v_proj", dt).view(T, self.nKV, self.hd)
            if p + "self_attn.q_norm.weight" in w:
                q = self._rms(q, p + "self_attn.q_norm.weight", dt)
                k = self._rms(k, p + "self_attn.k_norm.weight", dt)
            q = q.transpose(0, 1)  # [nH, T, hd]
            k = k.transpose(0, 1)
            v = v.transpose(0, 1)
            q = q * cos + self._rot_half(q) * sin
            k = k * cos + self._rot_half(k) * sin
            k = k.repeat_interleave(G, dim=0)
            v = v.repeat_interleave(G, dim=0)
            s = (q @ k.transpose(1, 2)) * (self.hd ** -0.5) + causal.to(dt)
            a = torch.softmax(s, dim=-1, dtype=torch.float32).to(dt)
            o = (a @ v).transpose(0, 1).reshape(T, self.nH * self.hd)
            x = x + self._lin(o, p + "self_attn.o_proj", dt)
            n = self._rms(x, p + "post_attention_layernorm.weight", dt)
            g = self._lin(n, p + "mlp.gate_proj", dt)
            u = self._lin(n, p + "mlp.up_proj", dt)
            x = x + self._lin(torch.nn.functional.silu(g) * u, p + "mlp.down_proj", dt)
        return self._rms(x, "model.norm.weight", dt)

    def pool_index(self, ids):
        if self.pad is None:
            return len(ids) - 1
        nonpad = [i for i, t in enumerate(ids) if t != self.pad]
        return nonpad[-1] if nonpad else 0

    @torch.no_grad()
    def score(self, ids, dt=torch.float32):
        """Pooled logits [num_labels] (float64 numpy) for one sequence."""
        h = self.hidden(ids, dt)
        logits = h @ self._wt("score.weight", dt).t()
        return logits[self.pool_index(ids)].to(torch.float64).numpy()


    @torch.no_grad()
    def step_rewards(self, ids, step_id, dt=torch.float32):
        """Per-step rewards (float64 numpy) of a process reward model, from the HF
        definitions (not our C code):
          Qwen2ForProcessRewardModel: score = Sequential(Linear(H, H), ReLU(), Linear(H, 2))
            over every token's final hidden state, then the Qwen2.5-Math-PRM model card's
            make_step_rewards: softmax over the 2 classes, masked to the step-separator
            tokens, the positive class (column 1) per separator;
          *ForTokenClassification: score = Linear(H, num_labels) (+ bias); 2 labels as
            above, 1 label: the head's value at each separator.
        Also returns the 2-class probabilities per separator (vLLM's token_classify
        data) or None."""
        h = self.hidden(ids, dt)
        arch = self.cfg["architectures"][0]
        if arch == "Qwen2ForProcessRewardModel":
            z = torch.relu(self._lin(h, "score.0", dt))
            logits = self._lin(z, "score.2", dt)
        else:
            logits = self._lin(h, "score", dt)
        mask = torch.tensor([t == step_id for t in ids])
        if logits.shape[-1] == 2:
            probs = torch.softmax(logits.to(torch.float32), dim=-1)
            masked = probs * mask.unsqueeze(-1)
            pos = masked[mask]  # the card: sample[sample != 0].view(-1, 2), by mask here
            return pos[:, 1].to(torch.float64).numpy(), pos.to(torch.float64).numpy()
        return logits[mask][:, 0].to(torch.float64).numpy(), None


if __name__ == "__main__":
    import sys
    m = Model(sys.argv[1])
    for line in sys.stdin:
        ids = json.loads(line)
        print(json.dumps(m.score(ids).tolist()))
