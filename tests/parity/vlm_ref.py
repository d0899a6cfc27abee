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


def get_rope_index(cfg, ids, grids, second_per_grid_ts=None):
    """transformers' get_rope_index for one unpadded sequence, as written there
    (vision_start-driven scan, text max + 1); ids: list of ints."""
    vc = cfg["vision_config"]
    merge = vc.get("spatial_merge_size", 2)
    q25 = cfg["model_type"] == "qwen2_5_vl"
    img, vid, vstart = cfg["image_token_id"], cfg["video_token_id"], cfg["vision_start_token_id"]
    starts = [i for i, t in enumerate(ids) if t == vstart]
    kinds = [ids[i + 1] for i in starts if i + 1 < len(ids)]
    n_img, n_vid = kinds.count(img), kinds.count(vid)
    parts, st, gi, vi = [], 0, 0, 0
    rem_i, rem_v = n_img, n_vid
    for _ in range(n_img + n_vid):
        ed_i = ids.index(img, st) if img in ids[st:] and rem_i > 0 else len(ids) + 1
        ed_v = ids.index(vid, st) if vid in ids[st:] and rem_v > 0 else len(ids) + 1
        t, h, w = grids[gi + vi]
        if ed_i < ed_v:
            sp, ed, rem_i = 0.0, ed_i, rem_i - 1
        else:
            sp = (second_per_grid_ts[vi] if second_per_grid_ts else 1.0)
            ed, rem_v = ed_v, rem_v - 1
        if ed_i < ed_v:
            gi += 1
        else:
            vi += 1
        lt, lh, lw = t, h // merge, w // merge
        st_idx = int(parts[-1].max()) + 1 if parts else 0
        parts.append(torch.arange(ed - st).view(1, -1).expand(3, -1) + st_idx)
        rng = torch.arange(lt).view(-1, 1).expand(-1, lh * lw)
        if q25:
            t_index = (rng * sp * vc.get("tokens_per_second", 2)).long().flatten()
        else:
            t_index = rng.flatten()
        h_index = torch.arange(lh).view(1, -1, 1).expand(lt, -1, lw).flatten()
        w_index = torch.arange(lw).view(1, 1, -1).expand(lt, lh, -1).flatten()
        parts.append(torch.stack([t_index, h_index, w_index]) + (ed - st) + st_idx)
        st = ed + lt * lh * lw
    if st < len(ids):
        st_idx = int(parts[-1].max()) + 1 if parts else 0
        parts.append(torch.arange(len(ids) - st).view(1, -1).expand(3, -1) + st_idx)
    return torch.cat(parts, 1)


def lm_forward(cfg, w, embeds, pos3):
    """The Qwen2 decoder with M-RoPE: embeds [n, H], pos3 [3, n] -> final-norm hidden [n, H]."""
    tc = cfg.get("text_config", cfg)
    p = "model.language_model." if "model.language_model.norm.weight" in w else "model."
    H, heads, kv = tc["hidden_size"], tc["num_attention_heads"], tc["num_key_value_heads"]
    hd = H // heads
    eps = tc.get("rms_norm_eps", 1e-6)
    sec = tc["rope_scaling"]["mrope_section"]
    n = embeds.shape[0]
    inv = 1.0 / (tc.get("rope_theta", 1e6) ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    freqs = pos3.double()[:, :, None] * inv  # [3, n, hd/2]
    emb = torch.cat([freqs, freqs], -1)      # [3, n, hd]
    cos, sin = emb.cos(), emb.sin()
    chunks = sec * 2
    cos = torch.cat([m[i % 3] for i, m in enumerate(cos.split(chunks, dim=-1))], -1)
    sin = torch.cat([m[i % 3] for i, m in enumerate(sin.split(chunks, dim=-1))], -1)
    cos, sin = cos.to(embeds.dtype), sin.to(embeds.dtype)
    mask = torch.full((n, n), float("-inf"), dtype=embeds.dtype).triu(1)
    x = embeds
    for i in range(tc["num_hidden_layers"]):
        b = f"{p}layers.{i}."
        h = rms(x, w[b + "input_layernorm.weight"], eps)
        q = (h @ w[b + "self_attn.q_proj.weight"].T + w[b + "self_attn.q_proj.bias"]).view(n, heads, hd).transpose(0, 1)
        k = (h @ w[b + "self_attn.k_proj.weight"].T + w[b + "self_attn.k_proj.bias"]).view(n, kv, hd).transpose(0, 1)
        v = (h @ w[b + "self_attn.v_proj.weight"].T + w[b + "self_attn.v_proj.bias"]).view(n, kv, hd).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(heads // kv, 0)
        v = v.repeat_interleave(heads // kv, 0)
        a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(hd) + mask, -1) @ v
        x = x + a.transpose(0, 1).reshape(n, H) @ w[b + "self_attn.o_proj.weight"].T
        h = rms(x, w[b + "post_attention_layernorm.weight"], eps)
        g = torch.nn.functional.silu(h @ w[b + "mlp.gate_proj.weight"].T) * (h @ w[b + "mlp.up_proj.weight"].T)
        x = x + g @ w[b + "mlp.down_proj.weight"].T
    return rms(x, w[p + "norm.weight"], eps)


def backbone(cfg, w, rows, grids, ids, mode):
    """inputs_embeds with placeholders replaced by the tower's rows, positions
    per mode ("seq": arange, as the reward models get without image_grid_thw;
    "mrope": get_rope_index), decoder, final norm."""
    p = "model.language_model." if "model.language_model.norm.weight" in w else "model."
    ids_t = torch.tensor(ids)
    x = w[p + "embed_tokens.weight"][ids_t].clone()
    if grids:
        vis = vision_forward(cfg, w, rows, grids)
        m = (ids_t == cfg["image_token_id"]) | (ids_t == cfg["video_token_id"])
        x[m] = vis.to(x.dtype)
    if mode == "mrope":
        pos3 = get_rope_index(cfg, ids, grids)
    else:
        pos3 = torch.arange(len(ids)).view(1, -1).expand(3, -1)
    return lm_forward(cfg, w, x, pos3)


def reward(cfg, w, spec, rows, grids, ids, mode):
    """The reward models' forward: backbone, then each dimension's head at its
    pool token (HPSv3/EditReward: the <|Reward|> token), mu = out[mu],
    sigma = exp(out[log_sigma])."""
    hid = backbone(cfg, w, rows, grids, ids, mode)
    res = {}
    for d in spec["dimensions"]:
        tid = spec["special_tokens"][d["pool"]]
        at = [i for i, t in enumerate(ids) if t == tid]
        assert len(at) == 1
        x = hid[at[0]]
        for layer in spec["heads"][d["head"]]["layers"]:
            x = x @ w[layer["weight"]].T + (w[layer["bias"]] if layer["bias"] else 0)
            if layer["activation"] == "relu":
                x = torch.relu(x)
        ls = d.get("log_sigma")
        res[d["name"]] = (float(x[d["mu"]]), math.exp(float(x[ls])) if ls is not None else float("nan"))
    return res
