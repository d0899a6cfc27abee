"""Old (pre-restructure) OpenRLHF's remote-RM path, replayed with its shards.

Mirrors (read at the source, OpenRLHF/OpenRLHF@591b148c, the parent of the
restructure 62987083):
  openrlhf/utils/remote_rm_utils.py request_api_wrapper: requests.post(url,
    json=data, headers={"Content-Type": "application/json"}, timeout=180),
    raise_for_status(), response.json(); 5 tries with time.sleep(1) on any
    error, then `raise Exception` (the job dies).
  remote_rm_utils.py RemoteRewardModel.get_rewards: the whole rollout batch
    split into one contiguous shard per server, batch_size =
    ceil(len / num_servers), each posted as {"query", "prompts", "labels"}
    (remote_rm_fn_ray; a thread stands in for ray.remote), ray.get in order.
  openrlhf/trainer/ppo_utils/experience_maker.py update_samples_with_rewards:
    torch.cat of every shard's "rewards" (and "scores" if shard 0 has them),
    split by the micro-batch lengths; extra_logs: for shard 0's keys,
    torch.cat(logs[key] for every shard), which raises KeyError if shards
    differ, then split the same way.

Traffic: 10,000 samples over 2 servers (shards of 5,000), mixed labels
("" without --label_key), a tenth of them ~8 KiB chain-of-thought. Both
servers run the committed config/openrlhf-sharded.json (the README's
documented configuration), with only the listen port changed. The same shard
against config/default.json is refused with a 4xx naming the limit (OpenRLHF
would retry 5 times, then die), which is why the configuration exists.
Oracle: values by construction of the rules (lib/models/rules.h: accuracy 1
iff the <answer> equals the label, format 1 for a well-formed response), and
the same items one by one through POST /v1/rewards.
Usage: test_openrlhf_sharded.py REWARDD_EXE"""
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import rwd_harness as H  # noqa: E402

try:
    import requests
    import torch
except ImportError as e:
    H.skip("needs python3-requests and python3-torch (%s)" % e)

EXE = sys.argv[1]
C = H.Checker("test_openrlhf_sharded")
SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
N = 10000
MICRO = 8  # micro_rollout_batch_size: samples_len of each Experience


def request_api_wrapper(url, data, try_max_times=5, log=None):
    headers = {"Content-Type": "application/json"}
    for _ in range(try_max_times):
        try:
            response = requests.post(url=url, json=data, headers=headers, timeout=180)
            response.raise_for_status()
            return response.json()
        except requests.RequestException as e:
            if log is not None:
                log.append(str(e)[:200])
        except Exception as e:  # noqa: BLE001 - as the client does
            if log is not None:
                log.append(repr(e)[:200])
        time.sleep(1)
    raise Exception("Request error for %d times, returning None. Please check the API server." % try_max_times)


def get_rewards(urls, queries, prompts, labels, log):
    """RemoteRewardModel.get_rewards without a custom reward func."""
    n = len(urls)
    bs = (len(queries) + n - 1) // n
    out = [None] * n
    errs = [None] * n

    def one(i):
        s, e = i * bs, min((i + 1) * bs, len(queries))
        try:
            out[i] = request_api_wrapper(urls[i], {"query": queries[s:e], "prompts": prompts[s:e],
                                                   "labels": labels[s:e]}, log=log)
        except Exception as ex:  # noqa: BLE001 - ray.get re-raises it
            errs[i] = ex

    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for e in errs:
        if e is not None:
            raise e
    return out


def update_samples_with_rewards(rewards_info, samples_len):
    rewards_list = torch.cat([torch.as_tensor(info["rewards"]) for info in rewards_info], dim=0).split(samples_len)
    if "scores" in rewards_info[0]:
        scores_list = torch.cat([torch.as_tensor(info["scores"]) for info in rewards_info], dim=0).split(samples_len)
    else:
        scores_list = rewards_list
    merged = {}
    if "extra_logs" in rewards_info[0]:
        merged = {key: torch.cat([torch.as_tensor(logs[key]) for logs in [info["extra_logs"] for info in
                                                                          rewards_info]], dim=0).split(samples_len)
                  for key in rewards_info[0]["extra_logs"].keys()}
    return rewards_list, scores_list, merged


def samples():
    qs, ps, ls, want = [], [], [], []
    for i in range(N):
        a, b = i % 97, (i * 7) % 89
        p = SYSTEM + "<|im_start|>user\nWhat is %d + %d?<|im_end|>\n<|im_start|>assistant\n" % (a, b)
        think = "add the two numbers. " * (400 if i % 10 == 0 else 2)
        correct = i % 3 != 0
        ans = a + b if correct else a + b + 1
        r = "<think>%s</think><answer>%d</answer>" % (think, ans)
        lab = "" if i % 5 == 4 else str(a + b)
        qs.append(p + r + "<|im_end|>")
        ps.append(p)
        ls.append(lab)
        want.append((lab != "", correct))
    return qs, ps, ls, want


def main():
    with open(os.path.join(H.SRC, "config", "openrlhf-sharded.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(H.SRC, "config", "default.json")) as f:
        dflt = json.load(f)
    ds = [H.Daemon(EXE, cfg) for _ in range(2)]
    d0 = H.Daemon(EXE, dflt)
    try:
        qs, ps, ls, want = samples()
        body_mib = len(json.dumps({"query": qs[:N // 2], "prompts": ps[:N // 2], "labels": ls[:N // 2]})) / 2**20
        urls = ["http://127.0.0.1:%d/get_reward?model=rules" % d.port for d in ds]
        log = []
        t0 = time.time()
        info = get_rewards(urls, qs, ps, ls, log)
        dt = time.time() - t0
        print("2 shards of %d (%.1f MiB each) answered in %.2f s; retries: %s" % (N // 2, body_mib, dt, log[:3]))
        C.check(not log, "no try failed: %s" % log[:3])
        C.check([len(x["rewards"]) for x in info] == [N // 2, N // 2], "each shard answered whole")
        C.check(set(info[0]["extra_logs"]) == set(info[1]["extra_logs"]), "both shards carry the same keys")
        samples_len = [MICRO] * (N // MICRO)
        try:
            rewards, scores, logs = update_samples_with_rewards(info, samples_len)
            ok = True
        except (KeyError, RuntimeError) as e:
            ok = False
            log.append(repr(e))
        C.check(ok, "update_samples_with_rewards concatenates and splits: %s" % log[-1:])
        if ok:
            flat_acc = torch.cat(logs["accuracy"]).tolist()
            flat_pres = torch.cat(logs["accuracy_present"]).tolist()
            flat_fmt = torch.cat(logs["format"]).tolist()
            bad = [i for i, (has, corr) in enumerate(want)
                   if flat_pres[i] != (1.0 if has else 0.0) or (has and flat_acc[i] != (1.0 if corr else 0.0))
                   or flat_fmt[i] != 1.0]
            C.check(not bad, "accuracy/format by construction for all %d samples (first bad: %s)" % (N, bad[:5]))
            flat_r = torch.cat(rewards).tolist()
            d = ds[0]
            for i in range(0, N, 97):  # the same items one by one through /v1/rewards
                item = {"response": qs[i], "prompt": ps[i]}
                if ls[i] != "":
                    item["label"] = ls[i]
                r = d.request("POST", "/v1/rewards", body={"model": "rules", "items": [item]})
                w = r.json["results"][0].get("reward") if r.status == 200 else None
                C.check(w is not None and abs(flat_r[i] - w) < 1e-6, "sample %d: %s = /v1/rewards %s" % (i, flat_r[i], w))
        # the same shard against the default configuration: refused, with the limit named
        r = requests.post("http://127.0.0.1:%d/get_reward?model=rules" % d0.port,
                          json={"query": qs[:N // 2], "prompts": ps[:N // 2], "labels": ls[:N // 2]}, timeout=180)
        C.check(400 <= r.status_code < 500, "default config refuses a 5,000-query shard with a 4xx: %d" % r.status_code)
        C.check("max_items" in r.text or "max_body_bytes" in r.text or r.status_code == 413,
                "the refusal names the limit: %s" % r.text[:200])
    finally:
        for d in ds + [d0]:
            d.stop()
    C.done()


main()
