"""Conformance: TRL GRPOTrainer's reward-function path through rewardd_client.adapters.

Mirrors huggingface/trl at f2cd577 (2026-07-24):
  - grpo_trainer.py:1612-1700 `_calculate_rewards`: every dataset column but
    prompt/completion/completion_ids as a list kwarg, plus trainer_state,
    log_extra, log_metric; sync functions called in order, `async def` ones
    (inspect.iscoroutinefunction) gathered with asyncio.gather on the
    trainer's daemon loop (utils.py:1239 start_event_loop_in_daemon,
    run_coroutine_threadsafe); None -> NaN (line 1663);
  - grpo_trainer.py:2676-2690 and 2741-2760: unscorable rows (all NaN),
    rewards = (rewards_per_func * reward_weights).nansum(1), group
    nanmean/nanstd (utils.py:857 nanstd), advantages, nan_to_num, and the
    logged rewards/<name>/mean = nanmean;
  - grpo_trainer.py:2175-2189 + chat_template_utils.py:219-248 (qwen3_schema)
    and 1143-1208 (parse_response): conversational completions arrive parsed
    into reasoning_content / content / tool_calls; reproduced here by running
    the schema's own regexes on the generated text;
  - grpo_trainer.py:1640-1652 + data_utils.py:227-234: TRL's own reward-model
    path (the oracle for seqcls: Jinja2 chat template, HF tokenizers, PyTorch).
Oracles: the generated text itself through POST /v1/rewards (what the model
wrote, not our reassembly), and rule expectations computed here (format by
the documented regex in Python's re; accuracy and tool scores by
construction). Usage: test_trl_grpo.py REWARDD_EXE
"""
import asyncio
import inspect
import json
import math
import os
import re
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import conformance_lib as L  # noqa: E402

H = L.H
try:
    import numpy as np
    import torch
except ImportError:
    H.skip("/usr/bin/python3 has no torch/numpy (Debian python3-torch, python3-numpy)")

from rewardd_client import Client, RewarddError  # noqa: E402
from rewardd_client.adapters import trl_reward_funcs  # noqa: E402

EXE = sys.argv[1]
C = H.Checker("conformance-trl-grpo")

# trl/chat_template_utils.py:220 and :228 (qwen3_schema x-regex, tool_calls x-regex-iterator) @ f2cd577
QWEN3_RX = (r"^(?:<think>\n?(?:(?P<reasoning_content>.*?\S.*?)\n?|[\s]*)</think>\s*)?(?P<content>(?:(?!<tool_call>)"
            r"[\s\S])*?)(?:\n(?=<tool_call>))?(?=(?:<tool_call>|<\|im_end\|>|$))(?P<tool_calls>(?:<tool_call>"
            r"(?:(?!</tool_call>)[\s\S])+</tool_call>\s*)+)?\s*(?:<\|im_end\|>|$)")
QWEN3_TOOL_ITER = r"<tool_call>\s*(.+?)\s*</tool_call>"
# lib/models/rules.h: the default format regex, full anchoring. Written with a
# plain `*` for the documented possessive `*+`: Debian's Python 3.11.2 mis-matches
# a possessive group holding a lookahead, and here both match the same strings
# (the group cannot consume the closing tag that must follow it).
FORMAT_RX = (r"\s*<think>(?:(?!</?think>|</?answer>).)*</think>\s*"
             r"<answer>(?:(?!</?think>|</?answer>).)*</answer>\s*")


def parse_response(text, eos="<|im_end|>"):
    """trl parse_response over transformers' schema parser for qwen3_schema:
    the regex's named groups, tool calls JSON-parsed into {type: function,
    function: @}, content without a trailing EOS and "" when empty, no-arg
    calls given {} (chat_template_utils.py:1189-1208)."""
    m = re.match(QWEN3_RX, text, re.DOTALL)
    if m is None:
        return {"role": "assistant", "content": text}
    out = {"role": "assistant"}
    if m.group("reasoning_content") is not None:
        out["reasoning_content"] = m.group("reasoning_content")
    out["content"] = (m.group("content") or "").removesuffix(eos) or ""
    if m.group("tool_calls"):
        calls = []
        for s in re.findall(QWEN3_TOOL_ITER, m.group("tool_calls"), re.DOTALL):
            fn = json.loads(s)
            if fn.get("arguments") is None:
                fn["arguments"] = {}
            calls.append({"type": "function", "function": fn})
        out["tool_calls"] = calls
    return out


def fmt_oracle(text):
    return 1.0 if re.fullmatch(FORMAT_RX, text, re.DOTALL) else 0.0


class Trainer:
    """The parts of GRPOTrainer that call reward functions and read the answer."""

    def __init__(self, reward_funcs, reward_weights=None, num_generations=2):
        self.reward_funcs = reward_funcs
        self.names = [f.__name__ for f in reward_funcs]  # get_callable_name (utils.py:224)
        self.reward_weights = torch.tensor(reward_weights or [1.0] * len(reward_funcs))
        self.num_generations = num_generations
        self.metrics = {}
        self.async_loop = None
        if any(inspect.iscoroutinefunction(f) for f in reward_funcs):  # grpo_trainer.py:704-711
            self.async_loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run():
                asyncio.set_event_loop(self.async_loop)
                ready.set()
                self.async_loop.run_forever()
            threading.Thread(target=run, daemon=True).start()
            ready.wait()

    def calculate_rewards(self, inputs, prompts, completions, completion_ids):
        rpf = torch.zeros(len(prompts), len(self.reward_funcs))
        keys = [k for k in inputs[0] if k not in ["prompt", "completion", "completion_ids"]]
        kw = {k: [ex[k] for ex in inputs] for k in keys}
        kw["trainer_state"] = object()
        kw["log_extra"] = lambda *a, **k: None
        kw["log_metric"] = lambda *a, **k: None
        async_funcs = []
        for i, f in enumerate(self.reward_funcs):
            if inspect.iscoroutinefunction(f):
                async_funcs.append((i, f))
            else:
                out = f(prompts=prompts, completions=completions, completion_ids=completion_ids, **kw)
                out = [r if r is not None else torch.nan for r in out]
                rpf[:, i] = torch.tensor(out, dtype=torch.float32)
        if async_funcs:
            async def invoke(i, f):
                out = await f(prompts=prompts, completions=completions, completion_ids=completion_ids, **kw)
                return i, [r if r is not None else torch.nan for r in out]

            async def run_all():
                return await asyncio.gather(*[invoke(i, f) for i, f in async_funcs])
            for i, out in asyncio.run_coroutine_threadsafe(run_all(), self.async_loop).result():
                rpf[:, i] = torch.tensor(out, dtype=torch.float32)
        return rpf

    def advantages(self, rpf):
        """sum_then_normalize with scale_rewards='group'."""
        unscorable = torch.isnan(rpf).all(dim=1)
        rewards = (rpf * self.reward_weights.unsqueeze(0)).nansum(dim=1)
        rewards[unscorable] = torch.nan
        g = self.num_generations
        mean = torch.nanmean(rewards.view(-1, g), dim=1).repeat_interleave(g, dim=0)
        std = nanstd(rewards.view(-1, g), dim=1).repeat_interleave(g, dim=0)
        adv = torch.nan_to_num((rewards - mean) / (std + 1e-4), nan=0.0)
        for i, n in enumerate(self.names):
            self.metrics["rewards/%s/mean" % n] = torch.nanmean(rpf[:, i]).item()
        return rewards, adv


def nanstd(t, dim):
    mean = torch.nanmean(t, dim=dim, keepdim=True)
    var = torch.nanmean((t - mean) ** 2, dim=dim, keepdim=True)
    count = torch.sum(~torch.isnan(t), dim=dim, keepdim=True)
    corr = torch.where(count > 1, count / (count - 1), torch.full_like(count / 1.0, float("nan")))
    return torch.sqrt(var * corr).squeeze(dim)


USER = [{"role": "user", "content": "What is 6 * 7? Think, then answer."}]
TOOL_USER = [{"role": "user", "content": "Weather in Paris for 3 days?"}]
CALL = {"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}

# (prompt, generated text, label, accuracy, tool) with expectations by construction
ROWS = [
    (USER, "<think>\n6 times 7 is 42\n</think>\n\n<answer>42</answer><|im_end|>", "42", 1.0, None),
    (USER, "<think>\nmultiply\n</think>\n\n<answer>42</answer>", ["forty-two", "42"], 1.0, None),
    (USER, "<think>\nsix sevens\n</think>\n\n<answer>42</answer>", 42, 1.0, None),
    (USER, "<think>\nhmm\n</think>\n\n<answer>41</answer>", np.int64(42), 0.0, None),
    (USER, "<think>\nlist\n</think>\n\n<answer>42</answer>", np.array(["42", "xlii"]), 1.0, None),
    (USER, "The answer is 42.", None, None, None),
    (TOOL_USER, "<think>\nI need the weather tool\n</think>\n\n<tool_call>\n" + json.dumps(CALL) +
     "\n</tool_call><|im_end|>", CALL, None, (1.0, 1.0)),
    (TOOL_USER, "<think>\nguess\n</think>\n\n<tool_call>\n" +
     json.dumps({"name": "get_weather", "arguments": {"city": "Paris", "days": 5}}) + "\n</tool_call>",
     CALL, None, (1.0, 0.5)),
]
DIMS = ["format", "accuracy", "tool_name", "tool_args"]


def direct(d, items, model, dimensions=None):
    body = {"model": model, "items": items}
    if dimensions:
        body["dimensions"] = dimensions
    r = d.request("POST", "/v1/rewards", body)
    assert r.status == 200, r.raw[:300]
    return r.json["results"]


def label_json(x):
    return x.tolist() if hasattr(x, "tolist") else x


def test_rules(d, client, asynchronous, async_client=None):
    tag = "async" if asynchronous else "sync"
    prompts = [r[0] for r in ROWS]
    completions = [[parse_response(r[1])] for r in ROWS]  # grpo_trainer.py:2181-2184
    C.check(completions[0][0].get("reasoning_content") == "6 times 7 is 42" and
            completions[6][0]["tool_calls"][0]["function"] == CALL and completions[6][0]["content"] == "",
            "parse_response emulation splits think and tool calls: %r" % (completions[6],))
    inputs = [{"prompt": p, "solution": r[2], "task": "math"} for p, r in zip(prompts, ROWS)]
    funcs = trl_reward_funcs(client, model="rules", dimensions=DIMS, label_column="solution",
                             include_reward=True, asynchronous=asynchronous, async_client=async_client)
    C.check(all(inspect.iscoroutinefunction(f) == asynchronous for f in funcs),
            "%s: functions are %s" % (tag, "async def" if asynchronous else "plain"))
    tr = Trainer(funcs, reward_weights=[1.0, 1.0, 1.0, 1.0, 0.0])
    n0 = H.metric(d.metrics(), "rewardd_requests_total", model="rules", code="200")
    rpf = tr.calculate_rewards(inputs, prompts, completions, [[1, 2]] * len(ROWS))
    n1 = H.metric(d.metrics(), "rewardd_requests_total", model="rules", code="200")
    C.check(n1 - n0 == 1, "%s: %d functions share one request (%g)" % (tag, len(funcs), n1 - n0))
    # oracle 1: the generated text as the model wrote it, through /v1/rewards
    raw = direct(d, [dict({"prompt": r[0][-1]["content"], "response": r[1]},
                          **({"label": label_json(r[2])} if r[2] is not None else {})) for r in ROWS], "rules", DIMS)
    for i, r in enumerate(ROWS):
        want = [raw[i]["scores"].get(k) for k in DIMS] + [raw[i]["reward"]]
        got = [None if math.isnan(v) else v for v in rpf[i].tolist()]
        C.check(all((a is None and b is None) or L.close(a, b, 1e-6) for a, b in zip(got, want)),
                "%s row %d: adapter %r == the generated text through /v1/rewards %r" % (tag, i, got, want))
        # oracle 2: expectations computed here
        fmt = fmt_oracle(r[1].removesuffix("<|im_end|>"))
        C.check(got[0] == fmt, "%s row %d: format %r (regex oracle %r)" % (tag, i, got[0], fmt))
        C.check(got[1] == r[3], "%s row %d: accuracy %r, want %r (label %r)" % (tag, i, got[1], r[3], r[2]))
        C.check((got[2], got[3]) == (r[4] or (None, None)), "%s row %d: tool %r want %r" % (tag, i, got[2:4], r[4]))
    C.check(rpf[0, 0] == 1.0 and rpf[6, 0] == 0.0, "%s: a think block survives reassembly (format 1)" % tag)
    # the downstream step: nansum over the functions, group normalisation
    rewards, adv = tr.advantages(rpf)
    want_r = [sum(v for v in [raw[i]["scores"].get(k) for k in DIMS] if v is not None) for i in range(len(ROWS))]
    C.check(all(L.close(a, b, 1e-6) for a, b in zip(rewards.tolist(), want_r)),
            "%s: nansum rewards %r == %r" % (tag, rewards.tolist(), want_r))
    C.check(not torch.isnan(adv).any() and
            L.close(tr.metrics["rewards/accuracy/mean"], float(np.nanmean([r[3] if r[3] is not None else np.nan
                                                                          for r in ROWS])), 1e-6),
            "%s: advantages finite, rewards/accuracy/mean is the nanmean over labelled rows" % tag)
    # training on the configured reward alone: weights 0 on the dimensions
    tr2 = Trainer(funcs, reward_weights=[0.0, 0.0, 0.0, 0.0, 1.0])
    r2, _ = tr2.advantages(tr2.calculate_rewards(inputs, prompts, completions, [[1]] * len(ROWS)))
    C.check(all(L.close(a, x["reward"], 1e-6) for a, x in zip(r2.tolist(), raw)),
            "%s: include_reward gives the model's reward" % tag)
    # standard (text) format: completions are strings (grpo_trainer.py:2189)
    std_prompts = [r[0][-1]["content"] for r in ROWS[:3]]
    std = tr.calculate_rewards(inputs[:3], std_prompts, [r[1] for r in ROWS[:3]], [[1]] * 3)
    C.check(std[:, :2].tolist() == [[1.0, 1.0]] * 3, "%s: standard-format completions %r" % (tag, std.tolist()))
    # a bad label: the daemon's 400 raises out of the trainer step, no reward is made up
    bad = [dict(inputs[0], solution={"not": "a tool call"})]
    try:
        out = tr.calculate_rewards(bad, prompts[:1], completions[:1], [[1]])
        C.check(False, "%s: a refused label must raise, got %r" % (tag, out))
    except RewarddError as e:
        C.check(e.status == 400 and (e.field or "").endswith("label"), "%s: refused label raises %s" % (tag, e))
    try:
        tr.calculate_rewards([dict(inputs[0], solution=float("nan"))], prompts[:1], completions[:1], [[1]])
        C.check(False, "%s: a NaN label must raise" % tag)
    except ValueError as e:
        C.check("label" in str(e), "%s: NaN label raises before sending: %s" % (tag, e))
    try:
        trl_reward_funcs(client, model="rules", dimensions=DIMS, label_column="answer")[0](
            prompts=prompts[:1], completions=completions[:1], completion_ids=[[1]], solution=["42"])
        C.check(False, "%s: a missing label column must raise" % tag)
    except KeyError as e:
        C.check("answer" in str(e) and "solution" in str(e), "%s: missing column named: %s" % (tag, e))


def test_seqcls(d, client, folder):
    texts = ["<think>\nadd them\n</think>\n\nIt is 4.", "<think>\nsum\n</think>\n\n5", "Four."]
    prompts = [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 + 2?"}]] * 3
    completions = [[parse_response(t)] for t in texts]
    C.check("reasoning_content" in completions[0][0] and "reasoning_content" not in completions[2][0],
            "seqcls completions parsed: %r" % (completions,))
    inputs = [{"prompt": p, "solution": "4"} for p in prompts]
    funcs = trl_reward_funcs(client, model="cls", label_column="solution", include_reward=True)
    C.check([f.__name__ for f in funcs] == ["score", "reward"], "seqcls functions %r" % [f.__name__ for f in funcs])
    tr = Trainer(funcs, reward_weights=[1.0, 0.0])
    try:
        rpf = tr.calculate_rewards(inputs, prompts, completions, [[1]] * 3)
    except RewarddError as e:
        C.check(False, "seqcls conversational call failed: %s" % e)
        return
    if L.have_hf_tokenizers():
        want, rendered = L.TrlRewardModelOracle(folder).scores([p + c for p, c in zip(prompts, completions)])
        print("seqcls: TRL's own RM path (Jinja2 + HF tokenizers + torch) %r vs rewardd %r" % (
            want, rpf[:, 0].tolist()))
        C.check("<think>\nadd them\n</think>" in rendered[0], "the oracle's rendering keeps the think block")
        C.check(all(L.close(a, b, 1e-4) for a, b in zip(rpf[:, 0].tolist(), want)),
                "seqcls conversational == TRL's own reward-model path")
    else:
        print("SKIP part: node or node_modules/@anush008/tokenizers missing: TRL's RM-path oracle not run")
    dr = direct(d, [{"messages": p + c} for p, c in zip(prompts, completions)], "cls")
    C.check(rpf[:, 0].tolist() == [torch.tensor(x["scores"]["score"]).item() for x in dr],
            "seqcls via adapter == messages through /v1/rewards")
    # a parsed tool call is rendered by the chat template engine, as TRL's own RM path renders it
    tc = [[parse_response("<tool_call>\n" + json.dumps(CALL) + "\n</tool_call>")]]
    try:
        out = tr.calculate_rewards(inputs[:1], prompts[:1], tc, [[1]])
    except RewarddError as e:
        C.check(False, "seqcls with tool_calls failed: %s" % e)
        return
    got = out[0, 0].item()
    C.check(got == got, "seqcls with tool_calls gives a reward: %r" % got)
    if L.have_hf_tokenizers():
        want, rendered = L.TrlRewardModelOracle(folder).scores([prompts[0] + tc[0]])
        print("seqcls tool call: TRL's RM path %r vs rewardd %r" % (want[0], got))
        C.check("<tool_call>" in rendered[0], "the oracle's rendering has the tool call")
        C.check(L.close(got, want[0], 1e-4), "seqcls with a tool call == TRL's own reward-model path")


def test_readme(d):
    """README.md's trainer-table one-liner for TRL, executed as written (the URL pointed at this daemon)."""
    line = L.readme_one_liner("TRL")
    C.check(line.startswith("reward_funcs=trl_reward_funcs(") and "http://127.0.0.1:8080" in line,
            "README TRL one-liner: %s" % line)
    ns = {}
    exec("from rewardd_client import Client\nfrom rewardd_client.adapters import trl_reward_funcs\n" +
         line.replace("http://127.0.0.1:8080", "http://127.0.0.1:%d" % d.port), ns)
    funcs = ns["reward_funcs"]
    tr = Trainer(funcs)
    inputs = [{"prompt": USER, "solution": "42"}]
    rpf = tr.calculate_rewards(inputs, [USER], [[parse_response(ROWS[0][1])]], [[1]])
    want = direct(d, [{"prompt": USER[0]["content"], "response": ROWS[0][1], "label": "42"}], "rules")[0]
    got = dict(zip(tr.names, rpf[0].tolist()))
    dims = d.request("GET", "/v1/models/rules").json["dimensions"]
    C.check(tr.names == dims and all(got[k] == v for k, v in want["scores"].items()) and
            all(math.isnan(got[k]) for k in dims if k not in want["scores"]),
            "README TRL one-liner scores like /v1/rewards: %r vs %r" % (got, want["scores"]))


def main():
    work = H.mkdtemp("rwd-conf-trl-")
    with open(os.path.join(H.SRC, "config", "default.json")) as f:
        rules = json.load(f)["models"]["rules"]
    models = {"rules": rules}
    folder = L.make_seqcls(work, "cls", "qwen3", seed=5, corpus="What is 2 + 2? It is 4. Be brief. add them sum Four.")
    models["cls"] = {"path": folder}
    d = H.Daemon(EXE, {"models": models})
    try:
        client = Client("http://127.0.0.1:%d" % d.port, retries=2, backoff=0.05)
        test_rules(d, client, asynchronous=False)
        test_rules(d, client, asynchronous=True)
        try:
            import aiohttp  # noqa: F401
            from rewardd_client import AsyncClient
            test_rules(d, client, asynchronous=True,
                       async_client=AsyncClient("http://127.0.0.1:%d" % d.port, retries=2, backoff=0.05))
        except ImportError:
            print("SKIP part: aiohttp missing (Debian python3-aiohttp): AsyncClient path not run")
        test_seqcls(d, client, folder)
        test_readme(d)
    finally:
        C.check(d.stop() == 0, "daemon exits 0")
    C.done()


if __name__ == "__main__":
    main()
