"""Rewards for RL against the real daemon on 127.0.0.1 (README.md, Rewards for RL).

mlp heads written here with torch weights; PyTorch/numpy compute every
expected value in this process (the heads, the transforms, the aggregation,
the GRPO advantages, the ensemble combination, the statistics):
  - configured transforms + aggregation, request overrides in and out of bounds;
  - the EditScore and FIRM reward objects of config/editscore.json and
    config/firm.json on heads whose outputs carry the clip kind's dimension names;
  - groups within a request (incl. a singleton and a zero-variance group),
    groups spanning requests (complete, and at the deadline);
  - ensembles of two heads (mean, min, mean - k*std; members and spread);
  - /v1/stats and the rewardd_reward_* Prometheus histograms vs what was sent.
Usage: test_rewards_rl.py REWARDD_EXE (Debian's /usr/bin/python3).
"""
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rwd_harness as H  # noqa: E402

try:
    import numpy as np
    import torch
except ImportError as e:  # pragma: no cover
    H.skip("torch/numpy missing: %s" % e)

C = H.Checker("rewards-rl")
D_IN = 8
TOL = 2e-5
EPS = 1e-6


def close(a, b, tol=TOL):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= tol * max(1.0, abs(b))


def tf_apply(chain, x):
    """The documented transforms, in numpy terms."""
    for t in chain:
        (k, p), = t.items()
        if k == "affine":
            x = p.get("scale", 1.0) * x + p.get("shift", 0.0)
        elif k == "clip":
            x = float(np.clip(x, p.get("min", -np.inf), p.get("max", np.inf)))
        elif k == "sigmoid":
            x = float(torch.sigmoid(torch.tensor(p.get("scale", 1.0) * (x - p.get("center", 0.0)),
                                                 dtype=torch.float64)))
        elif k == "rescale":
            lo, hi = p["from"]
            x = float(np.clip((x - lo) / (hi - lo), 0.0, 1.0))
    return x


def grpo(r, norm="std"):
    """verl's compute_grpo_outcome_advantage on one group (torch.std: unbiased)."""
    t = torch.tensor(r, dtype=torch.float64)
    if len(r) == 1:
        mean, std = torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    else:
        mean, std = t.mean(), t.std()
    if norm == "mean_only":
        return (t - mean).tolist()
    return ((t - mean) / (std + EPS)).tolist()


def make_ranged_head(folder, outputs, ranges, seed, d_hidden=16):
    """An mlp head (relu) whose outputs spread over the given ranges (a little beyond,
    so the rescale clamps are exercised too); returns a torch oracle."""
    import safetensors_io
    torch.manual_seed(seed)
    os.makedirs(folder, exist_ok=True)
    w0 = torch.randn(d_hidden, D_IN) * 0.3
    b0 = torch.randn(d_hidden) * 0.1
    w1 = torch.randn(len(outputs), d_hidden) * 0.3
    lo = torch.tensor([r[0] for r in ranges])
    hi = torch.tensor([r[1] for r in ranges])
    # scale rows so each output's spread is about a third of its range, centred in it
    with torch.no_grad():
        x = torch.randn(256, D_IN)
        y = torch.relu(x @ w0.T + b0) @ w1.T
        w1 = w1 * ((hi - lo) / 3 / y.std(0)).unsqueeze(1)
        y = torch.relu(x @ w0.T + b0) @ w1.T
        b1 = (lo + hi) / 2 - y.mean(0)
    safetensors_io.save({"layers.0.weight": w0, "layers.0.bias": b0,
                         "layers.2.weight": w1.contiguous(), "layers.2.bias": b1.contiguous()},
                        os.path.join(folder, "model.safetensors"))
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump({"rewardd_kind": "mlp", "activation": "relu", "outputs": list(outputs)}, f)

    def oracle(xs):
        t = torch.tensor(xs, dtype=torch.float32)
        with torch.no_grad():
            return (torch.relu(t @ w0.T + b0) @ w1.T + b1).tolist()
    return oracle


def rand_items(n, seed):
    g = np.random.default_rng(seed)
    return [[float(v) for v in g.normal(size=D_IN)] for _ in range(n)]


def post(d, body):
    return d.request("POST", "/v1/rewards", body)


H1_REWARD = {
    "transforms": {
        "quality": [{"sigmoid": {"scale": 2.0, "center": 0.1}}],
        "safety": [{"affine": {"scale": 0.5, "shift": 0.25}}, {"clip": {"min": 0.0, "max": 0.8}}],
    },
    "aggregate": {"mode": "weighted_sum", "terms": ["quality", "safety"],
                  "weights": {"quality": 0.7, "safety": 0.3}},
    "overrides": {"modes": ["mean", "min"], "weights": {"min": 0, "max": 2}, "advantage": True},
    "advantage": {"normalize": "std", "eps": EPS, "group_timeout_ms": 1500},
}


def h1_expected(raw, mode="weighted_sum", weights=None):
    q = tf_apply(H1_REWARD["transforms"]["quality"], raw[0])
    s = tf_apply(H1_REWARD["transforms"]["safety"], raw[1])
    w = {"quality": 0.7, "safety": 0.3}
    w.update(weights or {})
    if mode == "weighted_sum":
        r = w["quality"] * q + w["safety"] * s
    elif mode == "mean":
        r = (w["quality"] * q + w["safety"] * s) / (w["quality"] + w["safety"])
    else:
        r = min(q, s)
    return {"quality": q, "safety": s}, r


def main():
    exe = sys.argv[1]
    work = H.mkdtemp(prefix="rwd-rl-")
    o1 = H.make_mlp_head(os.path.join(work, "h1"), d_in=D_IN, outputs=("quality", "safety"), seed=1)
    o2 = H.make_mlp_head(os.path.join(work, "h2"), d_in=D_IN, outputs=("quality", "safety"), seed=2)
    with open(os.path.join(H.SRC, "config", "editscore.json")) as f:
        es_reward = json.load(f)["models"]["editscore"]["reward"]
    with open(os.path.join(H.SRC, "config", "firm.json")) as f:
        firm = json.load(f)["models"]
    # heads whose outputs carry the clip kind's dimension names, spread over the
    # ranges the example configs rescale from
    dims3 = ("text_alignment", "image_similarity", "aesthetic")
    es_t = es_reward["transforms"]
    o3 = make_ranged_head(os.path.join(work, "es"), dims3, [es_t[k][0]["rescale"]["from"] for k in dims3], 3)
    fe_t = firm["firm_edit"]["reward"]["transforms"]
    o4 = make_ranged_head(os.path.join(work, "fe"), dims3[:2], [fe_t[k][0]["rescale"]["from"] for k in dims3[:2]], 4)
    cfg = {
        "requests": {"max_items": 64},
        "batching": {"max_queue_items": 256, "max_delay_us": 500},
        "models": {
            "h1": {"path": os.path.join(work, "h1"), "reward": H1_REWARD},
            "h2": {"path": os.path.join(work, "h2")},
            "es": {"path": os.path.join(work, "es"), "reward": es_reward},
            "fe": {"path": os.path.join(work, "fe"), "reward": firm["firm_edit"]["reward"]},
            "ens": {"members": ["h1", "h2"], "combine": {"mode": "mean_minus_kstd", "k": 0.5}},
            "ens_min": {"members": ["h1", "h2"], "combine": "min"},
            "h2_fg": {"path": os.path.join(work, "h2"), "reward": {"advantage": {"convention": "flow_grpo_global_std"}}},
            "h2_fp": {"path": os.path.join(work, "h2"), "reward": {"advantage": {"convention": "flow_grpo"}}},
            "h2_dg": {"path": os.path.join(work, "h2"), "reward": {"advantage": {"convention": "dancegrpo"}}},
        },
    }
    d = H.Daemon(exe, cfg)
    try:
        sent = run(d, o1, o2, o3, o4, es_reward, firm)
        run_conventions(d)
        check_stats(d, sent)
    finally:
        rc = d.stop()
    C.check(rc == 0, "daemon exits 0 after SIGTERM (%s)" % rc)
    run_config_errors(exe, work)
    C.done()


def run(d, o1, o2, o3, o4, es_reward, firm):
    sent = {"h1": [], "h2": []}   # rewards the daemon returned (checked against torch)
    # --- configured transforms and aggregation ----------------------------------
    xs = rand_items(6, 10)
    r = post(d, {"model": "h1", "items": [{"id": i, "embedding": x} for i, x in enumerate(xs)]})
    C.check(r.status == 200, "h1 scored: %s" % r.raw[:200])
    worst = 0.0
    for x, res in zip(xs, r.json["results"]):
        raw = o1([x])[0]
        sc, rew = h1_expected(raw)
        for k in ("quality", "safety"):
            worst = max(worst, abs(res["scores"][k] - sc[k]), abs(res["raw_scores"][k] - raw[("quality", "safety").index(k)]))
        worst = max(worst, abs(res["reward"] - rew))
        sent["h1"].append(res["reward"])
    print("transforms + weighted_sum vs torch: worst abs error %.3g" % worst)
    C.check(worst < TOL, "h1 transforms/aggregation within %g (worst %.3g)" % (TOL, worst))

    # --- overrides in and out of bounds -------------------------------------------
    for ov, mode, w in (({"mode": "mean"}, "mean", None), ({"mode": "min"}, "min", None),
                        ({"weights": {"safety": 2.0}}, "weighted_sum", {"safety": 2.0}),
                        ({"mode": "mean", "weights": {"quality": 0.0, "safety": 1.5}}, "mean",
                         {"quality": 0.0, "safety": 1.5})):
        r = post(d, {"model": "h1", "reward": ov, "items": [{"embedding": x} for x in xs[:3]]})
        ok = r.status == 200
        for x, res in zip(xs, r.json.get("results", []) if ok else []):
            _, rew = h1_expected(o1([x])[0], mode, w)
            ok = ok and close(res["reward"], rew)
            sent["h1"].append(res["reward"])
        C.check(ok, "override %s gives the torch value" % json.dumps(ov))
    for ov, field in (({"mode": "product"}, "reward.mode"), ({"weights": {"safety": 2.5}}, "reward.weights.safety"),
                      ({"weights": {"safety": -0.1}}, "reward.weights.safety"),
                      ({"weights": {"bogus": 1}}, "reward.weights.bogus"), ({"mode": "nope"}, "reward.mode"),
                      ({"advantage": "zscore"}, "reward.advantage"), ({"x": 1}, "reward.x"), (3, "reward")):
        r = post(d, {"model": "h1", "reward": ov, "items": [{"embedding": xs[0]}]})
        C.check(r.status == 400 and r.json["error"].get("field") == field,
                "override %s refused with 400 naming %s (got %d %s)" % (json.dumps(ov), field, r.status, r.raw[:160]))
    r = post(d, {"model": "h2", "reward": {"mode": "min"}, "items": [{"embedding": xs[0]}]})
    C.check(r.status == 400 and r.json["error"].get("field") == "reward.mode",
            "no overrides configured: a mode is refused")

    # --- default reward (h2: mean of requested dims) ----------------------------------
    r = post(d, {"model": "h2", "items": [{"embedding": x} for x in xs], "dimensions": ["safety"]})
    ok = r.status == 200
    for x, res in zip(xs, r.json["results"]):
        ok = ok and close(res["reward"], o2([x])[0][1]) and "raw_scores" not in res
        sent["h2"].append(res["reward"])
    C.check(ok, "default reward = mean of the requested dimensions")

    # --- EditScore and FIRM formulas --------------------------------------------------------
    tfs = es_reward["transforms"]
    ys = rand_items(12, 11)
    r = post(d, {"model": "es", "items": [{"embedding": y} for y in ys]})
    worst, inside = 0.0, 0
    for y, res in zip(ys, r.json["results"]):
        raw = o3([y])[0]
        pf = tf_apply(tfs["text_alignment"], raw[0])
        cons = tf_apply(tfs["image_similarity"], raw[1])
        q = tf_apply(tfs["aesthetic"], raw[2])
        want = float(np.sqrt(min(pf, cons) * q))
        worst = max(worst, abs(res["reward"] - want))
        inside += 0 < want < 1
    print("EditScore sqrt(min(pf, cons) * quality): worst abs error %.3g" % worst)
    C.check(r.status == 200 and worst < TOL and inside >= 6,
            "config/editscore.json gives EditScore's formula (worst %.3g, %d of 12 strictly inside (0,1))" % (worst, inside))
    fe = firm["firm_edit"]["reward"]
    r = post(d, {"model": "fe", "items": [{"embedding": y} for y in ys]})
    worst = 0.0
    for y, res in zip(ys, r.json["results"]):
        raw = o4([y])[0]
        ex = tf_apply(fe["transforms"]["text_alignment"], raw[0])
        cons = tf_apply(fe["transforms"]["image_similarity"], raw[1])
        w1, w2 = 0.6, 0.4
        want = ex * (w1 + w2 * cons) / (w1 + w2)   # FIRM's CME as written in rewards.py
        worst = max(worst, abs(res["reward"] - want))
    print("FIRM exec * (w1 + w2 * cons) / (w1 + w2): worst abs error %.3g" % worst)
    C.check(r.status == 200 and worst < TOL, "config/firm.json gives FIRM's CME formula (worst %.3g)" % worst)

    # --- groups within one request ------------------------------------------------------------
    zs = rand_items(7, 12)
    items = ([{"embedding": z, "group": "a"} for z in zs[:3]] + [{"embedding": z, "group": 7} for z in zs[3:5]] +
             [{"embedding": zs[5], "group": "single"}] + [{"embedding": zs[6]}] +
             [{"embedding": zs[0], "group": "same"}, {"embedding": zs[0], "group": "same"}])
    r = post(d, {"model": "h1", "items": items})
    res = r.json["results"]
    rew = [h1_expected(o1([it["embedding"]])[0])[1] for it in items]
    sent["h1"].extend(x["reward"] for x in res)
    worst = 0.0
    for grp, idx in (("a", [0, 1, 2]), (7, [3, 4]), ("single", [5]), ("same", [7, 8])):
        want = grpo([rew[i] for i in idx])
        for i, w in zip(idx, want):
            worst = max(worst, abs(res[i]["advantage"] - w))
            C.check(res[i]["group"]["id"] == grp and res[i]["group"]["complete"] and
                    res[i]["group"]["size"] == len(idx), "group %r info" % (grp,))
    print("in-request GRPO advantages vs torch (unbiased std, eps 1e-6): worst abs error %.3g" % worst)
    C.check(worst < 1e-4, "in-request advantages match torch (worst %.3g)" % worst)
    C.check("advantage" not in res[6] and "group" not in res[6], "an item without a group has no advantage")
    C.check(res[7]["advantage"] == 0.0 and res[8]["advantage"] == 0.0 and res[7]["group"]["zero_std"],
            "a zero-variance group gets advantage 0 exactly")
    C.check(close(res[5]["advantage"], rew[5] / (1 + EPS)), "a group of one: mean 0, std 1 (verl)")
    r = post(d, {"model": "h1", "reward": {"advantage": "mean_only"},
                 "items": [{"embedding": z, "group": "m"} for z in zs[:4]]})
    want = grpo([h1_expected(o1([z])[0])[1] for z in zs[:4]], "mean_only")
    C.check(r.status == 200 and all(close(x["advantage"], w) for x, w in zip(r.json["results"], want)),
            "mean_only advantages (Dr.GRPO) match")
    sent["h1"].extend(x["reward"] for x in r.json["results"])
    for items, field in (([{"embedding": zs[0], "group": 1.5}], "items[0].group"),
                         ([{"embedding": zs[0], "group_size": 2}], "items[0].group_size"),
                         ([{"embedding": zs[0], "group": "g", "group_size": 2},
                           {"embedding": zs[1], "group": "g", "group_size": 3}], "items[1].group_size"),
                         ([{"embedding": z, "group": "g", "group_size": 2} for z in zs[:3]], "items[2].group_size"),
                         ([{"embedding": zs[0], "group": "g", "group_size": 0}], "items[0].group_size")):
        r = post(d, {"model": "h1", "items": items})
        C.check(r.status == 400 and r.json["error"].get("field") == field,
                "bad group refused naming %s (got %d %s)" % (field, r.status, r.raw[:160]))

    # --- groups spanning requests: complete -----------------------------------------------------
    parts = [zs[:2], zs[2:3], zs[3:5]]
    replies = [None] * len(parts)

    def send(k):
        replies[k] = post(d, {"model": "h1", "items": [{"embedding": z, "group": "span", "group_size": 5}
                                                       for z in parts[k]]})
    t0 = time.time()
    ths = [threading.Thread(target=send, args=(k,)) for k in range(len(parts))]
    for t in ths:
        t.start()
        time.sleep(0.05)
    for t in ths:
        t.join()
    took = time.time() - t0
    allr = [h1_expected(o1([z])[0])[1] for p in parts for z in p]
    want = grpo(allr)
    got = [x["advantage"] for rep in replies for x in rep.json["results"]]
    worst = max(abs(a - b) for a, b in zip(got, want))
    print("cross-request group of 5 over 3 requests: worst abs error %.3g, answered in %.3f s" % (worst, took))
    C.check(all(rep.status == 200 for rep in replies) and worst < 1e-4 and took < 1.4,
            "a group spanning 3 requests is answered when complete, with torch's advantages")
    C.check(all(x["group"]["complete"] and x["group"]["arrived"] == 5 for rep in replies for x in rep.json["results"]),
            "complete group info")
    for rep in replies:
        sent["h1"].extend(x["reward"] for x in rep.json["results"])

    # --- groups spanning requests: the deadline -----------------------------------------------------
    t0 = time.time()
    r = post(d, {"model": "h1", "items": [{"embedding": z, "group": "late", "group_size": 4} for z in zs[:2]]})
    took = time.time() - t0
    want = grpo([h1_expected(o1([z])[0])[1] for z in zs[:2]])
    C.check(r.status == 200 and 1.4 <= took < 5.0, "a partial group is answered at its deadline (%.3f s)" % took)
    C.check(all(not x["group"]["complete"] and x["group"]["arrived"] == 2 and close(x["advantage"], w, 1e-4)
                for x, w in zip(r.json["results"], want)),
            "at the deadline the advantages use the members that arrived")
    sent["h1"].extend(x["reward"] for x in r.json["results"])

    # --- ensembles --------------------------------------------------------------------------------------
    es_ = rand_items(5, 13)
    for name, comb, k in (("ens", "mean_minus_kstd", 0.5), ("ens_min", "min", 0)):
        r = post(d, {"model": name, "items": [{"embedding": e} for e in es_]})
        C.check(r.status == 200 and r.json["model"] == name, "%s scored under its own name" % name)
        worst = 0.0
        for e, res in zip(es_, r.json["results"]):
            a = torch.tensor([o1([e])[0], o2([e])[0]], dtype=torch.float64)   # [members, dims]
            sd = a.std(dim=0, unbiased=False)
            comb_v = a.mean(0) - k * sd if comb == "mean_minus_kstd" else a.min(0).values
            for j, dim in enumerate(("quality", "safety")):
                worst = max(worst, abs(res["scores"][dim] - float(comb_v[j])),
                            abs(res["spread"][dim] - float(sd[j])),
                            abs(res["members"]["h1"][dim] - float(a[0, j])),
                            abs(res["members"]["h2"][dim] - float(a[1, j])))
            worst = max(worst, abs(res["reward"] - float(comb_v.mean())))
        print("ensemble %s vs torch: worst abs error %.3g" % (comb, worst))
        C.check(worst < TOL, "ensemble %s: members, spread, combination and reward (worst %.3g)" % (comb, worst))
    r = d.request("GET", "/v1/models/ens")
    C.check(r.status == 200 and r.json["kind"] == "ensemble" and r.json["members"] == ["h1", "h2"],
            "GET /v1/models/ens describes the ensemble")
    return sent


def flow_grpo_tracker(prompts, rewards, global_std):
    """yifan123/flow_grpo@ac4c86e flow_grpo/stat_tracking.py:11-31 (type 'grpo',
    a fresh tracker: train_sd3.py clears it every epoch), numpy float64."""
    prompts = np.array(prompts)
    rewards = np.array(rewards, dtype=np.float64)
    adv = np.zeros_like(rewards)
    for p in np.unique(prompts):
        mine = rewards[prompts == p]
        std = (np.std(rewards) if global_std else np.std(mine)) + 1e-4
        adv[prompts == p] = (mine - np.mean(mine)) / std
    return adv


def run_conventions(d):
    """advantage.convention through /v1/rewards: the daemon's own rewards
    fed to each trainer's formula (numpy for flow_grpo, torch for DanceGRPO).
    The rewards come back rounded to the reply's digits, so the bound is 1e-6
    (tests/parity/test_adv_conventions.py compares the exact doubles)."""
    zs = rand_items(11, 21)
    prompts = ["a cat"] * 4 + ["a dog \U0001F436"] * 4 + ["a red cube"] * 2 + ["once"]
    for model, global_std in (("h2_fg", True), ("h2_fp", False)):
        r = post(d, {"model": model, "items": [{"embedding": z, "group": p} for z, p in zip(zs, prompts)]})
        C.check(r.status == 200, "%s scored: %s" % (model, r.raw[:200]))
        res = r.json["results"]
        want = flow_grpo_tracker(prompts, [x["reward"] for x in res], global_std)
        worst = max(abs(x["advantage"] - w) for x, w in zip(res, want))
        print("%s vs flow_grpo's PerPromptStatTracker(global_std=%s): worst abs error %.3g" % (model, global_std, worst))
        C.check(worst < 1e-6, "%s advantages equal flow_grpo's tracker (worst %.3g)" % (model, worst))
        C.check(res[10]["advantage"] == 0.0, "%s: a prompt with one sample gets 0, as np.std gives" % model)
    r = post(d, {"model": "h2_fg", "items": [{"embedding": z, "group": "p", "group_size": 4} for z in zs[:2]]})
    C.check(r.status == 400 and r.json["error"].get("field") == "items[0].group_size",
            "std_scope request refuses a cross-request group: %s %s" % (r.status, r.raw[:200]))
    # DanceGRPO: contiguous chunks of num_generations, float32 torch in the trainer
    import torch
    groups = ["c0"] * 4 + ["c1"] * 4 + ["c2"] * 2 + ["lone"]
    r = post(d, {"model": "h2_dg", "items": [{"embedding": z, "group": g} for z, g in zip(zs, groups)]})
    res = r.json["results"]
    rw = torch.tensor([x["reward"] for x in res], dtype=torch.float64)
    worst = 0.0
    for a, b in ((0, 4), (4, 8), (8, 10)):
        g = rw[a:b]
        want = ((g - g.mean()) / (g.std() + 1e-8)).tolist()   # train_grpo_flux.py:540-544
        worst = max([worst] + [abs(res[a + i]["advantage"] - w) for i, w in enumerate(want)])
    print("h2_dg vs DanceGRPO's group loop (float64 torch): worst abs error %.3g" % worst)
    C.check(r.status == 200 and worst < 1e-6, "dancegrpo advantages equal DanceGRPO's (worst %.3g)" % worst)
    C.check(res[10]["advantage"] is None, "dancegrpo: a group of one is null (torch.std of one is NaN)")


def check_stats(d, sent):
    r = d.request("GET", "/v1/stats")
    C.check(r.status == 200, "GET /v1/stats answers")
    st = r.json
    bounds = st["buckets"]
    prom = d.metrics()
    for model in ("h1", "h2"):
        vals = np.array(sent[model], dtype=np.float64)
        s = st["models"][model]["reward"]
        C.check(s["count"] == len(vals), "%s reward count %d == sent %d" % (model, s["count"], len(vals)))
        C.check(close(s["mean"], float(vals.mean()), 1e-6) and close(s["std"], float(vals.std()), 1e-6),
                "%s reward mean/std match numpy (%.6g/%.6g vs %.6g/%.6g)" % (model, s["mean"], s["std"],
                                                                            vals.mean(), vals.std()))
        want = [int((vals <= b).sum()) for b in bounds] + [len(vals)]
        C.check(s["histogram"]["counts"] == want, "%s reward histogram matches numpy" % model)
        n = min(len(vals), st["window"])
        C.check(np.allclose(s["recent"]["values"], vals[-n:], atol=1e-9), "%s recent window = last values" % model)
        C.check(H.metric(prom, "rewardd_reward_value_count", model=model) == len(vals),
                "%s Prometheus rewardd_reward_value_count" % model)
        C.check(close(H.metric(prom, "rewardd_reward_value_sum", model=model), float(vals.sum()), 1e-6),
                "%s Prometheus rewardd_reward_value_sum" % model)
        ok = True
        for b, w in zip(bounds, want):
            le = ("%.17g" % b)
            got = None
            for (name, labels), v in prom.items():
                lab = dict(labels)
                if name == "rewardd_reward_value_bucket" and lab.get("model") == model and \
                        lab.get("le") not in (None, "+Inf") and abs(float(lab["le"]) - b) < 1e-12:
                    got = v
            ok = ok and got == w
            _ = le
        C.check(ok, "%s Prometheus rewardd_reward_value buckets match numpy" % model)
    h2 = st["models"]["h2"]["dimensions"]["safety"]
    C.check(h2["count"] == len(sent["h2"]), "h2 per-dimension series counts the returned dimension")
    C.check(H.metric(prom, "rewardd_reward_dimension_value_count", model="h2", dimension="safety") == len(sent["h2"]),
            "Prometheus rewardd_reward_dimension_value{model,dimension}")
    C.check(st["models"]["h1"]["advantage"]["count"] > 0 and
            H.metric(prom, "rewardd_reward_advantage_count", model="h1") == st["models"]["h1"]["advantage"]["count"],
            "advantages recorded in /v1/stats and rewardd_reward_advantage")


def run_config_errors(exe, work):
    import subprocess
    head = os.path.join(work, "h1")
    cases = [
        ({"m": {"path": head, "reward": {"aggregate": {"mode": "avg", "terms": ["quality"]}}}},
         "models.m.reward.aggregate.mode"),
        ({"m": {"path": head, "reward": {"aggregate": {"mode": "mean", "terms": ["nope"]}}}},
         "models.m.reward.aggregate.terms[0]"),
        ({"m": {"path": head, "reward": {"transforms": {"quality": [{"clip": {}}]}}}},
         "models.m.reward.transforms.quality[0].clip"),
        ({"m": {"path": head}, "e": {"members": ["m", "zz"]}}, "models.e.members[1]"),
        ({"m": {"path": head}, "e": {"members": ["m", "m2"], "combine": "median"}}, "models.e.combine"),
        ({"m": {"path": head}, "e": {"members": ["m"]}}, "models.e.members"),
    ]
    for models, field in cases:
        p = os.path.join(work, "bad.json")
        with open(p, "w") as f:
            json.dump({"models": models}, f)
        r = subprocess.run([exe, "--config", p, "--check-config"], capture_output=True, text=True)
        C.check(r.returncode != 0 and field in r.stderr,
                "bad reward config refused naming %s (rc %d: %s)" % (field, r.returncode, r.stderr.strip()[:200]))


if __name__ == "__main__":
    main()
