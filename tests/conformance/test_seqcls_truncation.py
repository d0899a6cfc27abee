"""seqcls inputs longer than max_tokens, per endpoint: the documented defaults.

What each client's reference server does with an over-long input, and so what
rewardd does by default (README "Long inputs"):
  POST /get_reward   OpenRLHF's serve_rm (openrlhf/cli/serve_rm.py tokenize_fn
                     @3c3be623): tokenizer(texts, add_special_tokens=False,
                     max_length=max_len, truncation=True), and a HF
                     tokenizer's default truncation_side "right" keeps the
                     FIRST max_len tokens. rewardd keeps the first max_tokens.
  POST /classify     vLLM refuses a prompt over the model's length unless the
                     request has truncate_prompt_tokens, which keeps the LAST k
                     tokens. rewardd: 422 naming the count; truncate_prompt_tokens
                     keeps the last k.
  POST /v1/rewards   422 naming the item and the count, unless the model's options.truncate.
The model's options.truncate ("left", "right", false) overrides every
endpoint's default; an item's truncate_prompt_tokens overrides the model.
Oracle: HF tokenizers (Rust, through node) encode the text without added
specials; the PyTorch reference (tests/parity/seqcls_ref.py) scores the kept
ids.
Usage: test_seqcls_truncation.py REWARDD_EXE"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import conformance_lib as L  # noqa: E402

H = L.H
try:
    import torch  # noqa: F401
except ImportError as e:
    H.skip("needs python3-torch (%s)" % e)
if not L.have_hf_tokenizers():
    H.skip("needs node and node_modules/@anush008/tokenizers (npm ci)")

EXE = sys.argv[1]
C = H.Checker("test_seqcls_truncation")
CAP = 24


def main():
    import seqcls_ref
    work = H.mkdtemp("rwd-trunc-")
    folder = L.make_seqcls(work, corpus="the quick brown fox jumps over the lazy dog " * 4)
    ref = seqcls_ref.Model(folder)
    text = " ".join("the quick brown fox jumps over the lazy dog number %d" % i for i in range(12))
    short = "the quick brown fox"
    ids = L.hf_encode(os.path.join(folder, "tokenizer.json"), [text, short])
    full, sids = ids[0], ids[1]
    C.check(len(full) > 2 * CAP, "the long text is over the cap: %d tokens" % len(full))
    first = float(ref.score(full[:CAP])[0])
    last = float(ref.score(full[-CAP:])[0])
    s_short = float(ref.score(sids)[0])

    def serve(opts):
        m = {"kind": "seqcls", "path": folder, "max_tokens": CAP}
        if opts is not None:
            m["options"] = opts
        return H.Daemon(EXE, {"models": {"rm": m}})

    d = serve(None)
    try:
        r = d.request("POST", "/get_reward", body={"query": [text, short]}, validate_route="/get_reward")
        got = r.json.get("rewards") if r.status == 200 else None
        C.check(got is not None and L.close(got[0], first) and L.close(got[1], s_short),
                "/get_reward keeps the first %d tokens as serve_rm: %s vs %s" % (CAP, got, [first, s_short]))
        r = d.request("POST", "/classify", body={"model": "rm", "input": text}, validate_route="/classify")
        C.check(r.status == 422 and b"max_tokens" in r.raw, "/classify refuses over-long input: %d %s" % (r.status, r.raw[:160]))
        r = d.request("POST", "/classify", body={"model": "rm", "input": text, "truncate_prompt_tokens": CAP, "use_activation": False},
                      validate_route="/classify")
        got = r.json["data"][0]["probs"][-1] if r.status == 200 else None
        C.check(L.close(got, last), "/classify truncate_prompt_tokens keeps the last %d: %s vs %s" % (CAP, got, last))
        r = d.request("POST", "/v1/rewards", body={"model": "rm", "items": [{"text": text}]})
        err = r.json.get("error", {}) if r.status == 422 else {}
        C.check("max_tokens" in err.get("message", "") and err.get("field") == "items[0].text",
                "/v1/rewards refuses it with 422 naming the item and max_tokens: %s" % r.raw[:200])
    finally:
        d.stop()
    d = serve({"truncate": "left"})
    try:
        r = d.request("POST", "/get_reward", body={"query": [text]}, validate_route="/get_reward")
        got = r.json.get("rewards") if r.status == 200 else None
        C.check(got is not None and L.close(got[0], last), "options.truncate left wins at /get_reward: %s vs %s" % (got, last))
        r = d.request("POST", "/v1/rewards", body={"model": "rm", "items": [{"text": text}]})
        got = r.json["results"][0].get("reward") if r.status == 200 else None
        C.check(L.close(got, last), "options.truncate left at /v1/rewards: %s vs %s" % (got, last))
    finally:
        d.stop()
    d = serve({"truncate": False})
    try:
        r = d.request("POST", "/get_reward", body={"query": [text]}, validate_route="/get_reward")
        C.check(400 <= r.status < 500 and b"max_tokens" in r.raw,
                "options.truncate false refuses at /get_reward too: %d %s" % (r.status, r.raw[:160]))
    finally:
        d.stop()
    C.done()


main()
