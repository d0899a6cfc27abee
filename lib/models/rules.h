/*
 * models/rules.h — the built-in `rules` kind: verifiable rewards for text,
 * no weights. Registered in lib/models/model.c as kind "rules".
 *
 * Item fields: `response` (string, required), `prompt` (string, optional),
 * `label` (string, number, array of those, or tool-call object, optional), `reference`
 * (string or array of strings, optional). Other fields are left to the
 * serving layer.
 *
 * Before scoring, the response is trimmed for OpenRLHF-style text (its
 * `query` is prompt + response + end-of-sequence marker): with
 * `strip_prompt` (default true) a `prompt` that the response starts with,
 * byte-exact, is removed; then any of `strip_suffixes` (default <|im_end|>,
 * <|endoftext|>, <|eot_id|>, <|end|>, </s>, DeepSeek's
 * <｜end▁of▁sentence｜>) is removed from the end, repeatedly. Every
 * dimension sees the trimmed response.
 *
 * Dimensions (all in [0, 1], higher is better; the `dims` option picks which):
 *
 * format      1 when the response matches `format_regex`, else 0. Default
 *             regex (PCRE2, compiled with UTF | UCP | DOTALL):
 *               \s*<think>(?:(?!</?think>|</?answer>).)*+</think>\s*
 *               <answer>(?:(?!</?think>|</?answer>).)*+</answer>\s*
 *             and `format_anchor` "full": one <think> block then one
 *             <answer> block, nothing but whitespace around or between them
 *             (none required), no nested or repeated tags, empty blocks
 *             allowed. That is the R1/open-r1 `format_reward`
 *             (^<think>\n.*?\n</think>\n<answer>\n.*?\n</answer>$ with
 *             DOTALL) made whitespace-tolerant and strict about stray tags.
 *             "start" anchoring is Python's re.match, "search" re.search.
 *             A response that drives the regex past its match/depth/heap
 *             limits fails the item (RWD_E_LIMIT), it is not scored 0.
 * accuracy    Present only when the item has a non-tool-call `label`.
 *             Answer = the content of the last <answer>…</answer> block,
 *             else the last complete \boxed{…} (or \fbox{…}; nested braces
 *             and escaped \{ \} handled), else the last number in the
 *             response; a \boxed{} inside the <answer> content wins over the
 *             surrounding text. The label is reduced the same way: its last
 *             \boxed{} if any, else the text after its last "####" (GSM8K).
 *             Both are normalised: whitespace (any Unicode Z* / controls)
 *             removed, `$`, \( \) \[ \], \left \right, \! \, \; \: removed,
 *             \text{} \textbf{} \textrm{} \textit{} \mathrm{} \mathbf{}
 *             \mathit{} \mbox{} \operatorname{} unwrapped, \dfrac \tfrac ->
 *             \frac, \% -> %, {,} -> ",", U+2212 -> "-", degrees (°, ^\circ,
 *             ^{\circ}) removed, trailing "." removed, then NFC and (unless
 *             `accuracy_case_sensitive`) Unicode case folding.
 *             A normalised string is a number when it is, whole:
 *             [+-] then a decimal (1234, 1,234,567 with exact 3-digit groups,
 *             1.50, .5, 1e-3) or a/b of two decimals or \frac{a}{b} /
 *             \frac12, then an optional %. Two numbers match when both are
 *             plain integers with equal digits (exact, any size), else when
 *             |a-b| <= max(abs_tol, rel_tol*max(|a|,|b|)); a percentage on
 *             one side only also matches its value/100 (50% = 0.5 = 50).
 *             When the label is a number but the extracted answer is not,
 *             the last number inside the answer is used ("x = 42" -> 42).
 *             Otherwise the normalised strings must be equal. 1 or 0.
 *             A `label` array (1..16 strings/numbers) lists acceptable
 *             answers: 1 when any matches. An empty or whitespace-only
 *             label (every one, for an array) leaves accuracy absent.
 * bleu        Present only when the item has a `reference`. Sentence BLEU
 *             (order `bleu_order`, uniform weights) against all references,
 *             equal to NLTK 3.8 nltk.translate.bleu_score.sentence_bleu with
 *             SmoothingFunction().<bleu_smoothing> on the same tokens.
 *             Default smoothing "method2" (Chen & Cherry's method 2: add one
 *             to numerator and denominator for n >= 2), the Lin & Och add-one
 *             smoothing that BLEUBERI uses (through HF evaluate's
 *             bleu(smooth=True), which also smooths unigrams and uses the
 *             shortest reference for the brevity penalty; NLTK's closest
 *             reference length is used here). Tokens: the text is NFC
 *             normalised; separators are code points of category Z* or Cc;
 *             a token is a maximal run of L*, M*, N* or Pc code points, and
 *             every other code point (punctuation, symbols, Cf, Co, Cn) is a
 *             token of its own. Case is kept.
 * length      1 when `length_min` <= L <= `length_max`, where L counts
 *             `length_unit`s: "words" (runs of non-separator code points,
 *             separators as for bleu), "chars" (code points) or "bytes".
 *             Outside by d units: "linear" max(0, 1 - d/length_scale), or
 *             "exponential" exp(-d/length_scale).
 * repetition  1 - (repeated share of word n-grams) = distinct / total
 *             n-grams, n = `repetition_ngram`, words as for `length` after
 *             Unicode case folding; 1 when there are fewer than n words.
 *             open-r1's repetition penalty reward equals
 *             max_penalty * (1 - repetition) (max_penalty < 0).
 * tool_name   Present only when the label is a tool call: a JSON object (or
 * tool_args   a string holding one) with a string "name" and optional
 *             "arguments" (or "parameters"): an object or a string holding
 *             one; an OpenAI-style {"function": {...}} wrapper is unwrapped.
 *             The response's call is the first <tool_call>…</tool_call> block
 *             (as Qwen emits), else the first balanced {…} in the response
 *             that parses as an object with a string "name" (at most 32
 *             candidates, each at most `max_tool_call_bytes`, depth <= 64).
 *             tool_name: 1 when the names are byte-equal. tool_args: matched
 *             keys / |label keys ∪ response keys| (1 when both are empty),
 *             a key matching when both values are JSON-equal (numbers by
 *             value: 1 == 1.0). No call found, or malformed: both 0.
 *
 * Options (the kind options object; unknown keys are rejected):
 *   dims                 array of dimension names (default: all seven)
 *   format_regex         string (default above), max 4096 bytes
 *   format_anchor        "full" (default) | "start" | "search"
 *   format_match_limit   integer, PCRE2 match limit (default 10000000)
 *   accuracy_rel_tol     number >= 0 (default 1e-6)
 *   accuracy_abs_tol     number >= 0 (default 1e-9)
 *   accuracy_case_sensitive  boolean (default false)
 *   bleu_order           1..4 (default 4)
 *   bleu_smoothing       "none" | "method1" | "method2" | "method3" |
 *                        "method4" (default "method2")
 *   bleu_epsilon         > 0, method1's epsilon (default 0.1)
 *   bleu_k               > 0, method4's k (default 5)
 *   length_unit          "words" (default) | "chars" | "bytes"
 *   length_min, length_max  integers, 0 <= min <= max (default 0, 1024)
 *   length_scale         > 0 (default 1024)
 *   length_decay         "linear" (default) | "exponential"
 *   repetition_ngram     1..16 (default 3)
 *   max_response_bytes, max_prompt_bytes, max_label_bytes,
 *   max_reference_bytes  1..16 MiB each (default 1 MiB for response and prompt:
 *                        long chain-of-thought; 64 KiB for label and reference)
 *   max_references       1..256 (default 16)
 *   max_tool_call_bytes  1..1 MiB (default 16 KiB)
 *   strip_prompt         boolean (default true)
 *   strip_suffixes       array of <= 16 strings of 1..64 bytes (default above;
 *                        [] keeps the response's end as it is)
 *
 * Errors from check(): RWD_E_INVALID (wrong type, missing response, bad
 * label object), RWD_E_LIMIT (over a max_* option), RWD_E_FORMAT (invalid
 * UTF-8), each with err->object naming the field ("reference[2]").
 */
#ifndef RWD_MODELS_RULES_H
#define RWD_MODELS_RULES_H

#include "models/model.h"

#include <stddef.h>

extern const rwd_model_ops rwd__rules_ops;

typedef enum rwd_rules_smoothing {
	RWD_RULES_SMOOTH_NONE,    /* NLTK method0 */
	RWD_RULES_SMOOTH_METHOD1, /* epsilon for zero counts */
	RWD_RULES_SMOOTH_METHOD2, /* add one for n >= 2 */
	RWD_RULES_SMOOTH_METHOD3, /* NIST geometric 1/2^k */
	RWD_RULES_SMOOTH_METHOD4, /* k / ln(hyp_len) scaled */
} rwd_rules_smoothing;

typedef struct rwd_rules_bleu_params {
	int order;                     /* 1..4, uniform weights 1/order */
	rwd_rules_smoothing smoothing;
	double epsilon;                /* method1 */
	double k;                      /* method4 */
} rwd_rules_bleu_params;

/* order 4, method2, epsilon 0.1, k 5. */
rwd_rules_bleu_params rwd_rules_bleu_default_params(void);

/*
 * Sentence BLEU of `hyp` against n_refs >= 1 references (UTF-8 byte strings
 * with explicit lengths; NUL bytes allowed), tokenised as documented above,
 * into *out (double precision, the value the `bleu` dimension rounds to
 * float). Returns 0, RWD_E_FORMAT for invalid UTF-8, RWD_E_INVALID for bad
 * params or n_refs == 0, RWD_E_NOMEM. Re-entrant; allocates its own memory.
 */
int rwd_rules_bleu(const char *hyp, size_t hyp_len, const char *const *refs,
	const size_t *ref_lens, size_t n_refs, const rwd_rules_bleu_params *p, double *out);

#endif
