"""Trainer adapters: TRL reward_funcs and verl compute_score over rewardd.

TRL (GRPOTrainer)::

    from rewardd_client import Client
    from rewardd_client.adapters import trl_reward_funcs
    funcs = trl_reward_funcs(Client("http://127.0.0.1:8080"), model="rules",
                             dimensions=["format", "accuracy"], label_column="solution")
    trainer = GRPOTrainer(..., reward_funcs=funcs)

  One function per dimension (named after it, so TRL logs rewards/<dim>/mean
  and can weight each); they share one request per batch: the first call
  scores every dimension and the others reuse the answer. A dimension that
  does not apply to an item (e.g. accuracy without a label) is None, which
  TRL turns into NaN (ignored by its nansum/nanmean). A failed item raises:
  a failure never becomes a reward. asynchronous=True gives `async def`
  functions (TRL awaits them together on its own event loop).

  What is sent for one sample (see build_item):
    - a model that takes chat `messages` (seqcls) gets, for conversational
      data, `messages` = prompt + completion messages (and nothing else: it
      takes one input form), for standard data `prompt` + `response`;
    - any other model (rules) gets `prompt`/`response` text; a parsed
      conversational completion (TRL's parse_response: `content`,
      `reasoning_content` or `thinking`, `tool_calls`) is turned back into
      the text the model wrote: <think>…</think>, the content, then each
      call as <tool_call>{"name", "arguments"}</tool_call> (Qwen's layout);
    - the label column's value as its JSON value (string, number, list,
      dict; numpy arrays and scalars become lists and numbers).

verl (custom_reward_function.path=<this package's folder>/verl_reward.py)::

  VerlScorer(client, model, dimensions): a picklable callable
  compute_score(data_source, solution_str, ground_truth, extra_info=None)
  returning {"score": reward, "rewardd/<dim>": value, …} (NaN for an absent
  dimension, so every sample has the same keys); .acall (async) and .batch
  (the legacy `batch` manager's compute_score(data_sources=, solution_strs=,
  ground_truths=, extra_infos=)) do the same.

OpenRLHF needs no adapter: --reward.remote_url http://HOST:8080/get_reward
"""
import asyncio
import functools
import hashlib
import json
import math
import threading

from .client import ItemError, RewarddError

# ---------------------------------------------------------------------------
# values and messages


def to_json_value(x, where="label"):
    """x as plain JSON data: numpy arrays -> lists, numpy scalars -> numbers,
    tuples -> lists, mappings -> dicts with string keys. NaN, infinities and
    anything else that JSON cannot carry raise ValueError/TypeError naming
    `where` (a NaN label is a data bug, not "no label")."""
    if x is None or isinstance(x, (str, bool, int)):
        return x
    if isinstance(x, float):
        if not math.isfinite(x):
            raise ValueError("%s: %r is not a JSON number" % (where, x))
        return x
    if hasattr(x, "dtype") and hasattr(x, "tolist"):  # numpy ndarray or scalar (duck-typed: numpy is optional)
        return to_json_value(x.tolist(), where)
    if isinstance(x, (list, tuple)):
        return [to_json_value(v, "%s[%d]" % (where, i)) for i, v in enumerate(x)]
    if isinstance(x, dict) or (hasattr(x, "keys") and hasattr(x, "items")):
        return {str(k): to_json_value(v, "%s.%s" % (where, k)) for k, v in x.items()}
    raise TypeError("%s: a %s cannot be sent as JSON" % (where, type(x).__name__))


def content_text(content):
    """A message's content as text: a string, or the text parts of a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        return "".join(p.get("text", "") for p in content
                       if isinstance(p, dict) and p.get("type") == "text")
    raise TypeError("message content must be a string or a list of parts, got %s" % type(content).__name__)


def _tool_call_json(tc):
    """One TRL tool call ({"type": "function", "function": {name, arguments}} or
    flat {name, arguments}) as the JSON a model writes inside <tool_call>."""
    fn = tc.get("function") if isinstance(tc.get("function"), dict) else tc
    args = fn.get("arguments")
    if args is None:
        args = {}
    return json.dumps({"name": fn.get("name"), "arguments": to_json_value(args, "tool_calls.arguments")},
                      ensure_ascii=False)


def message_text(m):
    """Rebuild the text an assistant wrote from a parsed message.

    TRL's parse_response splits a completion into `reasoning_content` (or
    `thinking`, the gpt-oss and LFM2.5 schemas), `content` and `tool_calls`
    (trl/chat_template_utils.py at f2cd577). The rules kind reads the raw
    text, so it is put back together the way Qwen's chat template renders
    an assistant turn: "<think>\\n{reasoning}\\n</think>\\n\\n" + content, then
    each call as "\\n<tool_call>\\n{json}\\n</tool_call>" (no newline before
    the first call when there is no content).
    """
    if isinstance(m, str):
        return m
    text = content_text(m.get("content"))
    reasoning = m.get("reasoning_content")
    if reasoning is None:
        reasoning = m.get("thinking")
    if isinstance(reasoning, str):
        text = "<think>\n" + reasoning.strip("\n") + "\n</think>\n\n" + text.lstrip("\n")
    for i, tc in enumerate(m.get("tool_calls") or []):
        if i or text:
            text += "\n"
        text += "<tool_call>\n" + _tool_call_json(tc) + "\n</tool_call>"
    return text


def completion_text(completion):
    """A TRL completion as the text the model produced: a string as it is; a
    list of messages (one assistant turn, or assistant/tool/assistant… after
    TRL's tool loop) as its assistant turns rebuilt by message_text and joined
    with "\\n"; tool results (role "tool") are not the model's text and are
    left out."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return message_text(completion)
    if isinstance(completion, (list, tuple)):
        return "\n".join(message_text(m) for m in completion
                         if isinstance(m, str) or m.get("role", "assistant") == "assistant")
    raise TypeError("a completion must be a string or a list of chat messages, got %s" % type(completion).__name__)


def prompt_text(prompt):
    """A prompt as text: a string, or the last message's text (the rules kind
    uses the prompt only to strip it from the front of a response)."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, (list, tuple)):
        return content_text(prompt[-1].get("content")) if prompt else ""
    if isinstance(prompt, dict):
        return content_text(prompt.get("content"))
    raise TypeError("a prompt must be a string or a list of chat messages, got %s" % type(prompt).__name__)


def chat_messages(messages, where="messages"):
    """Messages as JSON for a chat model: every value native JSON, a content
    list of text parts joined into one string. A non-text part (an image)
    raises: rewardd's chat models read text only."""
    out = []
    for i, m in enumerate(messages):
        m = to_json_value(m, "%s[%d]" % (where, i))
        c = m.get("content")
        if isinstance(c, list):
            if any(not (isinstance(p, dict) and p.get("type") == "text") for p in c):
                raise ValueError("%s[%d].content: a non-text part; rewardd's chat models read text only" % (where, i))
            m["content"] = content_text(c)
        elif c is None:
            m["content"] = ""
        out.append(m)
    return out


def _is_conversational(x):
    return isinstance(x, (list, tuple)) and len(x) > 0 and isinstance(x[0], dict)


def build_item(prompt, completion, label=None, reference=None, chat=False, takes=()):
    """The rewardd item for one sample.

    chat: the model takes `messages` (seqcls; from GET /v1/models/{m} inputs).
    takes: the model's inputs; `label` and `reference` are sent only when it
    takes them. Conversational data for a chat model is sent as `messages`
    only (a seqcls item has exactly one input form).
    """
    if chat:
        if _is_conversational(prompt) or _is_conversational(completion):
            p = list(prompt) if _is_conversational(prompt) else [{"role": "user", "content": prompt_text(prompt)}]
            c = list(completion) if _is_conversational(completion) else [
                {"role": "assistant", "content": completion_text(completion)}]
            item = {"messages": chat_messages(p + c)}
        else:
            item = {"prompt": prompt_text(prompt), "response": completion_text(completion)}
    else:
        item = {"response": completion_text(completion)}
        if prompt is not None:
            item["prompt"] = prompt_text(prompt)
    if label is not None and (not takes or "label" in takes):
        item["label"] = to_json_value(label, "label")
    if reference is not None and (not takes or "reference" in takes):
        item["reference"] = to_json_value(reference, "reference")
    return item


def default_item(prompt, completion, label=None, reference=None):
    """Kept for callers of the first version: the item for a rules-like model."""
    return build_item(prompt, completion, label, reference)


class _ModelInfo:
    """What the adapters need from GET /v1/models/{m}: dimensions, inputs, kind."""

    def __init__(self, doc):
        self.name = doc.get("name")
        self.kind = doc.get("kind", "")
        self.dimensions = list(doc.get("dimensions") or [])
        self.inputs = tuple(doc.get("inputs") or ())
        self.chat = "messages" in self.inputs


def _model_info(client, model):
    doc = client.model(model) if model else client.models()["models"][0]
    return _ModelInfo(doc)


# ---------------------------------------------------------------------------
# TRL


def trl_reward_funcs(client, model=None, dimensions=None, label_column=None,
                     reference_column=None, item_builder=None, include_reward=False,
                     asynchronous=False, async_client=None, chat=None):
    """Build TRL reward functions, one per dimension (plus "reward" if asked).

    client: a rewardd_client.Client (asked for the model's dimensions and
    inputs here, at construction, unless both `dimensions` and `chat` are
    given). label_column / reference_column: dataset columns (TRL passes
    every column as a keyword argument); a named column missing from a batch
    raises KeyError. include_reward: add a function "reward" returning the
    model's configured reward (give the dimensions weight 0 in
    GRPOConfig.reward_weights to train on it alone). asynchronous: `async
    def` functions, run through async_client (an AsyncClient) when given,
    else through `client` in the event loop's default thread pool; the
    functions TRL gathers together share one request. chat: override whether
    the model takes chat messages. item_builder(prompt, completion, label,
    reference) -> item replaces build_item.
    """
    info = None
    if dimensions is None or chat is None:
        info = _model_info(client, model)
    dimensions = list(dimensions) if dimensions is not None else info.dimensions
    is_chat = chat if chat is not None else info.chat
    takes = info.inputs if info is not None else ()
    build = item_builder or functools.partial(_build_default, chat=is_chat, takes=takes)

    def batch_items(prompts, completions, kwargs):
        labels = _column(kwargs, label_column)
        refs = _column(kwargs, reference_column)
        items = [build(p, c, labels[i] if labels is not None else None,
                       refs[i] if refs is not None else None)
                 for i, (p, c) in enumerate(zip(prompts, completions))]
        if len(items) != len(prompts) or len(prompts) != len(completions):
            raise ValueError("prompts (%d) and completions (%d) differ in length" % (len(prompts), len(completions)))
        key = hashlib.sha256(json.dumps(items, sort_keys=True, allow_nan=False).encode()).hexdigest()
        return items, key

    def pick(results, dim):
        if dim == "reward":
            return [r.get("reward") for r in results]
        return [r["scores"].get(dim) for r in results]

    names = dimensions + (["reward"] if include_reward else [])
    if asynchronous:
        state = {"key": None, "future": None, "loop": None}

        async def score_async(prompts, completions, kwargs):
            items, key = batch_items(prompts, completions, kwargs)
            loop = asyncio.get_running_loop()
            if state["key"] != key or state["loop"] is not loop:
                if async_client is not None:
                    coro = async_client.scores(items, model=model, dimensions=dimensions)
                else:
                    coro = loop.run_in_executor(None, functools.partial(
                        client.scores, items, model=model, dimensions=dimensions))
                state.update(key=key, loop=loop, future=asyncio.ensure_future(coro))
            fut = state["future"]
            try:
                return await asyncio.shield(fut)
            except BaseException:
                if state["future"] is fut:  # a later batch may retry; this one is lost either way
                    state.update(key=None, future=None)
                raise

        def make_async(dim):
            async def reward_func(prompts, completions, **kwargs):
                return pick(await score_async(prompts, completions, kwargs), dim)
            reward_func.__name__ = reward_func.__qualname__ = dim
            return reward_func
        return [make_async(d) for d in names]

    lock = threading.Lock()
    cache = {"key": None, "results": None}

    def score(prompts, completions, kwargs):
        items, key = batch_items(prompts, completions, kwargs)
        with lock:
            if cache["key"] == key:
                return cache["results"]
        results = client.scores(items, model=model, dimensions=dimensions)
        with lock:
            cache["key"], cache["results"] = key, results
        return results

    def make(dim):
        def reward_func(prompts, completions, **kwargs):
            return pick(score(prompts, completions, kwargs), dim)
        reward_func.__name__ = reward_func.__qualname__ = dim
        return reward_func
    return [make(d) for d in names]


def _build_default(prompt, completion, label, reference, chat, takes):
    return build_item(prompt, completion, label, reference, chat=chat, takes=takes)


def _column(kwargs, name):
    if not name:
        return None
    if name not in kwargs:
        cols = sorted(k for k in kwargs if k not in ("trainer_state", "log_extra", "log_metric",
                                                     "environments", "completion_ids"))
        raise KeyError("the batch has no column %r (dataset columns passed by TRL: %s)" % (name, cols))
    return kwargs[name]


# ---------------------------------------------------------------------------
# verl

PROMPT_KEYS = ("prompt", "question")


class VerlScorer:
    """verl's compute_score over rewardd; picklable (plain pickle and Ray's).

    VerlScorer(client, model=None, dimensions=None, prefix="rewardd/",
               prompt_keys=("prompt", "question"), max_items=256)

    Returns {"score": reward, prefix + dim: value, …}. verl trains on
    "score", the model's configured reward; the dimensions come under
    `prefix` so that none (seqcls' single head is called "score") can
    overwrite it, and an absent one is NaN so every sample has the same keys
    (verl's compute_rm_score indexes every sample with the first one's keys).
    An empty prefix is refused when a dimension is named "score".

    verl passes compute_score no prompt (data_source, solution_str = the
    response, ground_truth, extra_info). The prompt is read from
    extra_info[k] for the first k of prompt_keys present: a string, or a
    list of chat messages (verl's own `prompt` column layout). A model that
    takes chat messages (seqcls) needs it and raises ValueError, naming the
    keys, when none is there; the rules kind does not.

    Errors raise (RewarddError, ItemError, ValueError): the trainer step
    fails rather than training on a made-up number. An item with no reward
    (none of its dimensions applies) raises RewarddError("no_reward").
    """

    def __init__(self, client, model=None, dimensions=None, prefix="rewardd/",
                 prompt_keys=PROMPT_KEYS, max_items=256, async_client=None):
        self.client, self.model = client, model
        self.dimensions = list(dimensions) if dimensions else None
        self.prefix = prefix
        self.prompt_keys = tuple(prompt_keys)
        self.max_items = max_items
        self.async_client = async_client
        self._info = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_info"] = None  # asked again in the new process
        return state

    # -- pieces ------------------------------------------------------------
    def info(self):
        if self._info is None:
            info = _model_info(self.client, self.model)
            dims = self.dimensions or info.dimensions
            if not self.prefix and "score" in dims:
                raise ValueError("prefix '' would let the dimension 'score' overwrite verl's \"score\" "
                                 "(the reward verl trains on); keep a prefix such as 'rewardd/'")
            self._info = info
        return self._info

    def _prompt(self, extra_info):
        if extra_info is None:
            return None
        get = extra_info.get if hasattr(extra_info, "get") else None
        for k in self.prompt_keys if get else ():
            v = get(k)
            if v is not None and (isinstance(v, str) or hasattr(v, "__len__")):
                return to_json_value(v, "extra_info.%s" % k)
        return None

    def item(self, solution_str, ground_truth, extra_info):
        info = self.info()
        prompt = self._prompt(extra_info)
        if info.chat and prompt is None:
            raise ValueError(
                "rewardd model %r (kind %s) scores the prompt with the response, and verl passes "
                "compute_score no prompt: put it in the dataset's extra_info under one of %s (a string, "
                "or the chat messages as in verl's `prompt` column), or set REWARDD_PROMPT_KEY to the "
                "extra_info key that holds it" % (info.name, info.kind, list(self.prompt_keys)))
        label = None if ground_truth is None else to_json_value(ground_truth, "ground_truth")
        return build_item(prompt, solution_str, label, None, chat=info.chat, takes=info.inputs)

    def result(self, r, dims):
        if "error" in r:
            e = r["error"]
            raise ItemError(200, e.get("code", "item_error"), e.get("message", ""), e.get("field"), r)
        if r.get("reward") is None:
            # no dimension of the reward applies (e.g. accuracy without a label):
            # verl needs a number, and a made-up one would train on a fake reward
            raise RewarddError(200, "no_reward", "the item has no reward (no requested dimension applies)",
                               None, r)
        res = {"score": r["reward"]}
        for d in dims:
            v = r["scores"].get(d)
            res[self.prefix + d] = float("nan") if v is None else v
        return res

    def _request(self, items):
        return self.client.rewards(items, model=self.model, dimensions=self.dimensions)

    # -- verl's three call forms ---------------------------------------------
    def __call__(self, data_source=None, solution_str=None, ground_truth=None, extra_info=None, **kwargs):
        """naive / remote / rate_limited managers: one sample."""
        out = self._request([self.item(solution_str, ground_truth, extra_info)])
        return self.result(out["results"][0], out["dimensions"])

    async def acall(self, data_source=None, solution_str=None, ground_truth=None, extra_info=None, **kwargs):
        """The async form (verl awaits an `async def` compute_score on its reward loop)."""
        loop = asyncio.get_running_loop()
        if self._info is None:
            await loop.run_in_executor(None, self.info)
        item = self.item(solution_str, ground_truth, extra_info)
        if self.async_client is not None:
            out = await self.async_client.rewards([item], model=self.model, dimensions=self.dimensions)
        else:
            out = await loop.run_in_executor(None, self._request, [item])
        return self.result(out["results"][0], out["dimensions"])

    def batch(self, data_sources=None, solution_strs=None, ground_truths=None, extra_infos=None, **kwargs):
        """The legacy `batch` manager (verl/workers/reward_manager/batch.py): a list, one dict per sample."""
        n = len(solution_strs)
        gts = list(ground_truths) if ground_truths is not None else [None] * n
        extras = list(extra_infos) if extra_infos is not None else [None] * n
        if len(gts) != n or len(extras) != n:
            raise ValueError("solution_strs (%d), ground_truths (%d) and extra_infos (%d) differ in length"
                             % (n, len(gts), len(extras)))
        items = [self.item(s, g, e) for s, g, e in zip(solution_strs, gts, extras)]
        res = []
        for i in range(0, n, self.max_items):  # requests.max_items (256 by default) per request
            out = self._request(items[i:i + self.max_items])
            res.extend(self.result(r, out["dimensions"]) for r in out["results"])
        return res


def verl_compute_score(client, model=None, dimensions=None, **kw):
    """A verl compute_score (a picklable VerlScorer); see VerlScorer."""
    return VerlScorer(client, model=model, dimensions=dimensions, **kw)


_SCORERS = {}
_SCORERS_LOCK = threading.Lock()


def verl_scorer_from_config(cfg):
    """The process's VerlScorer for a config dict of strings (verl_reward.py's
    environment, captured when verl loaded it): url, api_key, model,
    dimensions (comma-separated), prefix, prompt_keys (comma-separated),
    timeout, retries. One per config per process."""
    key = tuple(sorted(cfg.items()))
    with _SCORERS_LOCK:
        s = _SCORERS.get(key)
        if s is None:
            from .client import Client
            c = Client(cfg.get("url") or "http://127.0.0.1:8080", api_key=cfg.get("api_key") or None,
                       timeout=float(cfg.get("timeout") or 120), retries=int(cfg.get("retries") or 5))
            dims = cfg.get("dimensions")
            keys = cfg.get("prompt_keys")
            s = VerlScorer(c, model=cfg.get("model") or None,
                           dimensions=[d for d in dims.split(",") if d] if dims else None,
                           prefix=cfg["prefix"] if cfg.get("prefix") is not None else "rewardd/",
                           prompt_keys=[k for k in keys.split(",") if k] if keys else PROMPT_KEYS)
            _SCORERS[key] = s
        return s
