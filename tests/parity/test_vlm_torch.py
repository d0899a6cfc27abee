#!/usr/bin/python3
"""Parity: the `vlm` kind's layers (lib/models/qwen_vision, ...) against
vlm_ref.py, an independent PyTorch reference written from the architecture,
on random tiny checkpoints in the exact HF layouts (tools/make_tiny_models.py
qwen2_vl / qwen2_5_vl, hub and transformers >= 4.52 tensor names).

    /usr/bin/python3 test_vlm_torch.py HARNESS SRCDIR WORKDIR

Vision towers: several inputs in one call (images and a 2-frame video, grids
with partial Qwen2.5-VL windows at the bottom/right and exact multiples),
compared as max |c - ref| / max |ref| <= 1e-4 over every output.
Exit 0 pass, 1 fail, 77 skip (torch missing).
"""
import os
import subprocess
import sys

try:
    import numpy as np
    import torch
except ImportError as e:  # pragma: no cover
    print(f"SKIP: oracle missing ({e}); needs Debian python3-torch and python3-numpy")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vlm_ref  # noqa: E402

TOL = 1e-4


def make(src, kind, out, *extra):
    if os.path.exists(os.path.join(out, "model.safetensors")):
        return
    os.makedirs(out, exist_ok=True)
    subprocess.run([sys.executable, os.path.join(src, "tools", "make_tiny_models.py"), kind, "tiny", out,
                    *extra], check=True)


def rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def check_vision(harness, folder, grids, work, tag):
    cfg, w = vlm_ref.load_folder(folder)
    vc = cfg["vision_config"]
    in_dim = 3 * vc.get("temporal_patch_size", 2) * vc.get("patch_size", 14) ** 2
    n = sum(t * h * ww for t, h, ww in grids)
    rng = np.random.default_rng(len(grids) * 7 + n)
    rows = rng.standard_normal((n, in_dim)).astype(np.float32)
    rp, op = os.path.join(work, tag + ".rows"), os.path.join(work, tag + ".out")
    rows.tofile(rp)
    args = [harness, "vision", folder, rp, op] + [str(v) for g in grids for v in g]
    res = subprocess.run(args, capture_output=True, text=True)
    if res.returncode:
        print(f"FAIL {tag}: harness: {res.stderr.strip()}")
        return 1
    ref = vlm_ref.vision_forward(cfg, w, torch.from_numpy(rows).double(), grids).numpy()
    got = np.fromfile(op, dtype=np.float32).reshape(ref.shape)
    e = rel(got, ref)
    ok = e <= TOL
    print(f"{'ok  ' if ok else 'FAIL'} vision {tag}: grids {grids} -> {ref.shape}, rel err {e:.2e}")
    return 0 if ok else 1


def check_full(harness, folder, blocks, mode, work, tag):
    """blocks: list of ("text", n) | ("image", (t, h, w)) | ("video", (t, h, w))."""
    cfg, w = vlm_ref.load_folder(folder)
    vc = cfg["vision_config"]
    merge = vc.get("spatial_merge_size", 2)
    in_dim = 3 * vc.get("temporal_patch_size", 2) * vc.get("patch_size", 14) ** 2
    rng = np.random.default_rng(abs(hash(tag)) % (1 << 32))
    ids, grids = [], []
    for kind, val in blocks:
        if kind == "text":
            ids += rng.integers(0, 400, val).tolist()
        else:
            t, h, ww = val
            tok = cfg["image_token_id"] if kind == "image" else cfg["video_token_id"]
            ids += [cfg["vision_start_token_id"]] + [tok] * (t * h * ww // merge // merge) + [cfg["vision_end_token_id"]]
            grids.append(val)
    n = sum(t * h * ww for t, h, ww in grids)
    rows = rng.standard_normal((n, in_dim)).astype(np.float32)
    rp, ip, op = (os.path.join(work, tag + s) for s in (".rows", ".ids", ".out"))
    rows.tofile(rp)
    np.array(ids, dtype=np.int32).tofile(ip)
    res = subprocess.run([harness, "full", folder, rp, ip, mode, op] + [str(v) for g in grids for v in g],
                         capture_output=True, text=True)
    if res.returncode:
        print(f"FAIL {tag}: harness: {res.stderr.strip()}")
        return 1
    ref = vlm_ref.backbone(cfg, w, torch.from_numpy(rows).double(), grids, ids, mode).numpy()
    got = np.fromfile(op, dtype=np.float32).reshape(ref.shape)
    e = rel(got, ref)
    ok = e <= TOL
    print(f"{'ok  ' if ok else 'FAIL'} backbone {tag} ({mode}): {len(ids)} tokens, grids {grids}, rel err {e:.2e}")
    return 0 if ok else 1


def check_reward(harness, folder, work, tag):
    """HPSv3 / EditReward layout: image(s) + prompt ending in <|Reward|>, sequential positions."""
    import json
    cfg, w = vlm_ref.load_folder(folder)
    with open(os.path.join(folder, "reward_head.json")) as f:
        spec = json.load(f)
    merge = cfg["vision_config"].get("spatial_merge_size", 2)
    rng = np.random.default_rng(11)
    grids = [(1, 6, 8), (1, 4, 10)]
    ids = rng.integers(0, 400, 6).tolist()
    for g in grids:
        ids += [cfg["vision_start_token_id"]] + [cfg["image_token_id"]] * (g[1] * g[2] // merge // merge) + \
               [cfg["vision_end_token_id"]]
    ids += rng.integers(0, 400, 5).tolist() + [spec["special_tokens"]["<|Reward|>"]] + rng.integers(0, 400, 3).tolist()
    rows = rng.standard_normal((sum(g[1] * g[2] for g in grids), 1176)).astype(np.float32)
    rp, ip, op = (os.path.join(work, tag + s) for s in (".rows", ".ids", ".out"))
    rows.tofile(rp)
    np.array(ids, dtype=np.int32).tofile(ip)
    res = subprocess.run([harness, "reward", folder, rp, ip, "seq", op] + [str(v) for g in grids for v in g],
                         capture_output=True, text=True)
    if res.returncode:
        print(f"FAIL {tag}: harness: {res.stderr.strip()}")
        return 1
    got = {l.split()[1]: (float(l.split()[2]), float(l.split()[3])) for l in res.stdout.splitlines()
           if l.startswith("dim ")}
    ref = vlm_ref.reward(cfg, w, spec, torch.from_numpy(rows).double(), grids, ids, "seq")
    fails = 0
    for name, (mu, sg) in ref.items():
        if name not in got:
            print(f"FAIL {tag}: no dimension {name}")
            fails += 1
            continue
        e = max(abs(got[name][0] - mu) / max(abs(mu), 1e-3), abs(got[name][1] - sg) / sg)
        ok = e <= TOL
        fails += not ok
        print(f"{'ok  ' if ok else 'FAIL'} reward {tag} {name}: mu {got[name][0]:.6f} (ref {mu:.6f}), "
              f"sigma {got[name][1]:.6f} (ref {sg:.6f}), rel err {e:.2e}")
    return fails


def main():
    harness, src, work = sys.argv[1], sys.argv[2], sys.argv[3]
    os.makedirs(work, exist_ok=True)
    fails = 0
    models = {
        "q2": ("qwen2_vl", []),
        "q25": ("qwen2_5_vl", []),
        "q25-v452": ("qwen2_5_vl", ["--names", "v452", "--seed", "3"]),
    }
    for tag, (kind, extra) in models.items():
        make(src, kind, os.path.join(work, tag), *extra)
    grid_sets = [[(1, 4, 6)],
                 [(1, 18, 20), (2, 10, 6), (1, 16, 8)],  # partial windows, a video, exact windows
                 [(1, 2, 2), (1, 34, 2)]]
    for tag in models:
        for i, grids in enumerate(grid_sets):
            fails += check_vision(harness, os.path.join(work, tag), grids, work, f"{tag}-{i}")
    seqs = [[("text", 5), ("image", (1, 6, 8)), ("text", 9)],
            [("text", 3), ("image", (1, 4, 4)), ("image", (1, 10, 6)), ("text", 7)],  # source + edited
            [("text", 4), ("video", (2, 4, 6)), ("text", 6)],                          # frames
            [("text", 12)]]
    for tag in models:
        for i, blocks in enumerate(seqs):
            for mode in ("seq", "mrope"):
                fails += check_full(harness, os.path.join(work, tag), blocks, mode, work, f"{tag}-full{i}-{mode}")
    for tag, kind, style in (("hpsv3", "qwen2_vl", "hpsv3"), ("editreward", "qwen2_5_vl", "editreward")):
        make(src, kind, os.path.join(work, tag), "--vlm-head", style, "--seed", "5")
        fails += check_reward(harness, os.path.join(work, tag), work, tag)
    print("vlm torch parity:", "FAIL" if fails else "pass")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
