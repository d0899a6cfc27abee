"""GRPO advantage conventions: lib/reward's advantages against each image
trainer's own formula, computed here with the library the trainer uses.

Usage: test_adv_conventions.py path/to/adv-harness

Oracles (formulas read at their source, written here independently):
  * flow_grpo, yifan123/flow_grpo@ac4c86e flow_grpo/stat_tracking.py:11-31,
    PerPromptStatTracker.update(prompts, rewards, type='grpo') on a fresh
    tracker (scripts/train_sd3.py:761 calls it once per epoch with the
    gathered rewards, 780 clears it): rewards as float64 numpy, per prompt
    mean, std = np.std (population) + 1e-4 over the prompt's rewards, or with
    global_std (config/base.py:52, the default) over every reward of the
    call; the rewards arrive as the trainer's [N, T] array (the per-sample
    reward repeated over T timesteps, train_sd3.py:753) and advantages are
    compared on every column.
  * DanceGRPO, XueZeyue/DanceGRPO@15cc71d fastvideo/train_grpo_flux.py:
    533-544 (the same loop in train_grpo_sd.py:537-547 and the others):
    float32 torch tensors, contiguous chunks of num_generations, (r - mean) /
    (std + 1e-8), torch's default (unbiased) std.
Checks, per convention, the request path (rwd_reward_group_advantages) and
the cross-request path (rwd_group_table, each group in two parts):
  * flow_grpo: within 1e-12 relative of numpy (both float64), on groups of
    1..16 with rewards in PickScore/aesthetic/DeQA-like ranges; a group of one
    gets 0 as numpy does; a zero-variance group gets exactly 0 where numpy
    leaves a ~1e-13 residue of its mean.
  * DanceGRPO: within 1e-12 of the same formula in float64 torch, and within
    1e-5 of the trainer's float32 arithmetic, on groups with variance; a
    group of one is null where torch gives NaN; a zero-variance group is 0,
    where the trainer's float32 formula is not (printed: its mean's rounding
    residue divided by 1e-8).
Exit 77 when numpy or torch is missing.
"""
import json
import os
import random
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
except ImportError as e:  # pragma: no cover
    print(f"SKIP: numpy/torch not importable ({e}); install Debian python3-numpy python3-torch")
    sys.exit(77)


def flow_grpo_update(prompts, rewards, global_std):
    """stat_tracking.py:11-31 (type 'grpo') on a fresh tracker."""
    prompts = np.array(prompts)
    rewards = np.array(rewards, dtype=np.float64)
    adv = np.empty_like(rewards) * 0.0
    stats = {}
    for p in np.unique(prompts):
        stats[p] = list(rewards[prompts == p])
    for p in np.unique(prompts):
        hist = np.stack(stats[p])
        mine = rewards[prompts == p]
        mean = np.mean(hist, axis=0, keepdims=True)
        if global_std:
            std = np.std(rewards, axis=0, keepdims=True) + 1e-4
        else:
            std = np.std(hist, axis=0, keepdims=True) + 1e-4
        adv[prompts == p] = (mine - mean) / std
    return adv


def dancegrpo_advantages(rewards, num_generations, dtype):
    """train_grpo_flux.py:533-544 (use_group)."""
    r = torch.tensor(rewards, dtype=dtype)
    adv = torch.zeros_like(r)
    for i in range(len(r) // num_generations):
        g = r[i * num_generations:(i + 1) * num_generations]
        adv[i * num_generations:(i + 1) * num_generations] = (g - g.mean()) / (g.std() + 1e-8)
    return adv.numpy().astype(np.float64)


def f32(x):
    return float(np.float32(x))


def flow_case(rng, sizes, lo, hi, equal=()):
    prompts, rewards = [], []
    for gi, n in enumerate(sizes):
        p = f"a photo of thing {gi}" if gi % 3 else f"prompt {gi} with an emoji \U0001F600"
        if gi in equal:
            v = f32(rng.uniform(lo, hi))
            vals = [v] * n
        else:
            vals = [f32(rng.uniform(lo, hi)) for _ in range(n)]
        prompts += [p] * n
        rewards += vals
    # the trainer interleaves prompts across GPUs: shuffle the order
    idx = list(range(len(prompts)))
    rng.shuffle(idx)
    return [prompts[i] for i in idx], [rewards[i] for i in idx]


def main():
    harness = sys.argv[1]
    rng = random.Random(1234)
    cases, checks = [], []

    # flow_grpo, per-prompt std and global std
    T = 3  # timesteps the trainer repeats the reward over
    for global_std in (False, True):
        for lo, hi in ((0.75, 0.9), (4.0, 7.0), (0.0, 1.0)):
            sizes = [rng.choice([2, 4, 8, 16]) for _ in range(6)] + [1, 1, 4, 8]
            prompts, rewards = flow_case(rng, sizes, lo, hi, equal=(2, 8))
            conv = "flow_grpo_global_std" if global_std else "flow_grpo"
            ref2d = flow_grpo_update(prompts, np.repeat(np.array(rewards, np.float32)[:, None], T, 1), global_std)
            for t in range(1, T):
                assert np.array_equal(ref2d[:, t], ref2d[:, 0])
            cases.append({"advantage": {"convention": conv}, "rewards": rewards, "groups": prompts})
            checks.append(("flow_grpo" + (" global_std" if global_std else ""), ref2d[:, 0], None, prompts, rewards))
    # the same through explicit fields instead of the preset
    prompts, rewards = flow_case(rng, [4, 4, 1, 8], 0.0, 1.0)
    cases.append({"advantage": {"std": "population", "eps": 1e-4}, "rewards": rewards, "groups": prompts})
    checks.append(("std population + eps 1e-4", flow_grpo_update(prompts, rewards, False), None, prompts, rewards))

    # DanceGRPO: contiguous groups of num_generations
    for ng in (2, 4, 12):
        n_groups = 6
        rewards, groups = [], []
        for g in range(n_groups):
            base = rng.uniform(0.2, 0.35)  # HPSv2-like
            if g == 1:
                vals = [f32(0.7)] * ng
            else:
                vals = [f32(base + rng.gauss(0, 0.02)) for _ in range(ng)]
            rewards += vals
            groups += [f"chunk{g}"] * ng
        cases.append({"advantage": {"convention": "dancegrpo"}, "rewards": rewards, "groups": groups})
        checks.append((f"dancegrpo G={ng}", dancegrpo_advantages(rewards, ng, torch.float64),
                       dancegrpo_advantages(rewards, ng, torch.float32), groups, rewards))
    # a group of one: torch.std is NaN
    rewards = [f32(rng.uniform(0, 1)) for _ in range(3)]
    groups = ["a", "b", "c"]
    with np.errstate(all="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            one64 = dancegrpo_advantages(rewards, 1, torch.float64)
            one32 = dancegrpo_advantages(rewards, 1, torch.float32)
    cases.append({"advantage": {"convention": "dancegrpo"}, "rewards": rewards, "groups": groups})
    checks.append(("dancegrpo G=1", one64, one32, groups, rewards))

    # negative control: verl's default (unbiased std, eps 1e-6) on a flow_grpo
    # case must NOT match numpy's tracker, so the comparison can fail
    prompts, rewards = flow_case(rng, [4, 4, 8], 0.0, 1.0)
    cases.append({"advantage": {}, "rewards": rewards, "groups": prompts})
    control = (len(cases) - 1, flow_grpo_update(prompts, rewards, False))

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "cases.json")
        with open(path, "w") as f:
            json.dump(cases, f)
        out = json.loads(subprocess.run([harness, path], check=True, capture_output=True, text=True).stdout)

    fails = 0
    ci, cref = control
    cerr = max(abs(g - r) / max(1.0, abs(r)) for g, r in zip(out[ci]["request"], cref))
    print(f"control: verl's default against flow_grpo's tracker differs by up to {cerr:.3f} (relative)")
    if cerr < 1e-3:
        print("FAIL control: the default convention matched flow_grpo's formula")
        fails += 1
    worst = {}
    for (name, ref, ref32, groups, rewards), res in zip(checks, out):
        if "error" in res:
            print(f"FAIL {name}: harness refused the config: {res['error']}")
            fails += 1
            continue
        keys = {g: [i for i, x in enumerate(groups) if x == g] for g in groups}
        zero_var = {i for g, ix in keys.items() if len(ix) > 1 and len({rewards[i] for i in ix}) == 1 for i in ix}
        for path_name in ("request", "table"):
            got = res[path_name]
            if got is None:
                if "global_std" not in name:
                    print(f"FAIL {name}: no {path_name} result")
                    fails += 1
                continue
            for i, (g, r) in enumerate(zip(got, ref)):
                if np.isnan(r):
                    if g is not None:
                        print(f"FAIL {name} [{path_name}] item {i}: {g}, the trainer gives NaN")
                        fails += 1
                    continue
                if g is None:
                    print(f"FAIL {name} [{path_name}] item {i}: null, the trainer gives {r}")
                    fails += 1
                    continue
                if i in zero_var:
                    # exactly 0 here; the trainer's float64 formula leaves its mean's residue
                    if g != 0.0 or abs(r) > 1e-6:
                        print(f"FAIL {name} [{path_name}] item {i}: zero-variance group: {g} vs {r}")
                        fails += 1
                    continue
                err = abs(g - r) / max(1.0, abs(r))
                worst[name] = max(worst.get(name, 0.0), err)
                if err > 1e-12:
                    print(f"FAIL {name} [{path_name}] item {i}: {g!r} vs {r!r} (rel {err:.2e})")
                    fails += 1
                if ref32 is not None:
                    e32 = abs(g - ref32[i]) / max(1.0, abs(ref32[i]))
                    worst[name + " vs float32"] = max(worst.get(name + " vs float32", 0.0), e32)
                    if e32 > 1e-5:
                        print(f"FAIL {name} [{path_name}] item {i}: {g!r} vs float32 {ref32[i]!r}")
                        fails += 1
        if ref32 is not None and zero_var:
            blow = max(abs(ref32[i]) for i in zero_var)
            print(f"{name}: a zero-variance group: rewardd 0, the trainer's float32 formula |adv| up to {blow:.3f}")
        if name.endswith("G=1"):
            print(f"{name}: torch gives {ref32.tolist()}, rewardd null")
        if "flow_grpo" in name:
            ones = [i for g, ix in keys.items() if len(ix) == 1 for i in ix]
            print(f"{name}: {len(ones)} singleton items: numpy {[ref[i] for i in ones]}, rewardd {[res['request'][i] for i in ones]}")
    for k, v in sorted(worst.items()):
        print(f"worst relative error {k}: {v:.3e}")
    n_items = sum(len(c["rewards"]) for c in cases)
    print(f"{len(cases)} cases, {n_items} items, {fails} failures")
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
