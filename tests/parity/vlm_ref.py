"""An independent PyTorch reference for the `vlm` kind (Qwen2-VL / Qwen2.5-VL
towers, the Qwen2 decoder with M-RoPE, reward heads), written from the
architecture as transformers' modeling_qwen2_vl.py / modeling_qwen2_5_vl.py
(commit 00b676f8) describe it, with no transformers import.

Everything runs in float64 by default (dtype argument) so the reference's own
rounding stays far below the 1e-4 bound the C float32 path is held to.
"""
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import safetensors_io  # noqa: E402


def load_folder(folder, dtype=torch.float64):
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    w = safetensors_io.load(os.path.join(folder, "model.safetensors"))
    w = {k: v.to(dtype) for k, v in w.items()}
    return cfg, w


def vision_prefix(w):
    return "model.visual" if "model.visual.patch_embed.proj.weight" in w else "visual"


def act_fn(name):
    return {"quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
            "gelu": lambda x: torch.nn.functional.gelu(x),
            "gelu_pytorch_tanh": lambda x: torch.nn.functional.gelu(x, approximate="tanh"),
            "silu": torch.nn.functional.silu}[name]


def rms(x, g, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * g


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def vision_positions(grids, merge):
    """(row, col) of every patch in the processor's merge-cell order."""
    out = []
    for t, h, w in grids:
        rows = torch.arange(h).view(h // merge, merge, 1, 1).expand(h // merge, merge, w // merge, merge)
        cols = torch.arange(w).view(1, 1, w // merge, merge).expand(h // merge, merge, w // merge, merge)
        rows = rows.permute(0, 2, 1, 3).reshape(-1)
        cols = cols.permute(0, 2, 1, 3).reshape(-1)
        out.append(torch.stack([rows, cols], -1).repeat(t, 1))
    return torch.cat(out)


def window_order(grids, merge, win):
    """Merged-cell order of Qwen2.5-VL's windows and the window lengths (in patches)."""
    order, lens, base = [], [], 0
    for t, h, w in grids:
        lh, lw = h // merge, w // merge
        idx = torch.arange(t * lh * lw).view(t, lh, lw) + base
        for f in range(t):
            for wy in range(0, lh, win):
                for wx in range(0, lw, win):
                    cells = idx[f, wy:wy + win, wx:wx + win].reshape(-1)
                    order.append(cells)
                    lens.append(cells.numel() * merge * merge)
        base += t * lh * lw
    return torch.cat(order), lens


def vision_forward(cfg, w, rows, grids):
    """rows: [N, 3*T*P*P] processor output; grids: [(t, h, w)] -> [N/4, out]."""
    vc = cfg["vision_config"]
    q25 = cfg["model_type"] == "qwen2_5_vl"
    p = vision_prefix(w) + "."
    E = vc["hidden_size"] if q25 else vc["embed_dim"]
    heads = vc["num_heads"]
    hd = E // heads
    merge = vc.get("spatial_merge_size", 2)
    unit = merge * merge
    act = act_fn(vc.get("hidden_act", "silu" if q25 else "quick_gelu"))
    dt = w[p + "patch_embed.proj.weight"].dtype
    x = rows.to(dt)
    # Conv3d with kernel == stride over each row viewed [3, T, P, P]
    T, P = vc.get("temporal_patch_size", 2), vc.get("patch_size", 14)
    x = torch.nn.functional.conv3d(x.view(-1, 3, T, P, P), w[p + "patch_embed.proj.weight"],
                                   stride=(T, P, P)).view(-1, E)
    N = x.shape[0]
    pos = vision_positions(grids, merge)
    inv = 1.0 / (10000.0 ** (torch.arange(0, hd // 2, 2, dtype=torch.float64) / (hd // 2)))
    ang = torch.cat([pos[:, :1].double() * inv, pos[:, 1:].double() * inv], -1)  # [N, hd/2]
    frame_lens = [h * ww for t, h, ww in grids for _ in range(t)]
    if q25:
        order, win_lens = window_order(grids, merge, vc.get("window_size", 112) // merge // P)
        pidx = (order.view(-1, 1) * unit + torch.arange(unit)).reshape(-1)
        x = x[pidx]
        ang = ang[pidx]
    emb = torch.cat([ang, ang], -1)
    cos, sin = emb.cos().to(dt), emb.sin().to(dt)
    full = set(vc.get("fullatt_block_indexes", []))

    def attn(h, b, lens):
        qkv = h @ w[b + "attn.qkv.weight"].T + w[b + "attn.qkv.bias"]
        q, k, v = qkv.view(N, 3, heads, hd).unbind(1)
        q = q * cos[:, None] + rotate_half(q) * sin[:, None]
        k = k * cos[:, None] + rotate_half(k) * sin[:, None]
        outs, s = [], 0
        for n in lens:
            qq, kk, vv = (z[s:s + n].transpose(0, 1) for z in (q, k, v))
            a = torch.softmax(qq @ kk.transpose(1, 2) / math.sqrt(hd), -1) @ vv
            outs.append(a.transpose(0, 1).reshape(n, E))
            s += n
        o = torch.cat(outs)
        return o @ w[b + "attn.proj.weight"].T + w[b + "attn.proj.bias"]

    def lin(b, name, h):
        return h @ w[b + name + ".weight"].T + w[b + name + ".bias"]

    for i in range(vc["depth"]):
        b = f"{p}blocks.{i}."
        if q25:
            lens = frame_lens if i in full else win_lens
            x = x + attn(rms(x, w[b + "norm1.weight"]), b, lens)
            h = rms(x, w[b + "norm2.weight"])
            x = x + lin(b, "mlp.down_proj", act(lin(b, "mlp.gate_proj", h)) * lin(b, "mlp.up_proj", h))
        else:
            ln = lambda z, n: torch.nn.functional.layer_norm(z, (E,), w[b + n + ".weight"], w[b + n + ".bias"], 1e-6)
            x = x + attn(ln(x, "norm1"), b, frame_lens)
            x = x + lin(b, "mlp.fc2", act(lin(b, "mlp.fc1", ln(x, "norm2"))))
    m = p + "merger."
    if q25:
        h = rms(x, w[m + "ln_q.weight"])
    else:
        h = torch.nn.functional.layer_norm(x, (E,), w[m + "ln_q.weight"], w[m + "ln_q.bias"], 1e-6)
    h = h.reshape(-1, E * unit)
    h = torch.nn.functional.gelu(lin(m, "mlp.0", h))
    h = lin(m, "mlp.2", h)
    if q25:
        h = h[torch.argsort(order)]
    return h
