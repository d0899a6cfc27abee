/*
 * compat/compat.h — other servers' request bodies (OpenRLHF's /get_reward,
 * vLLM's /classify and /pooling, SGLang's /v1/embeddings, the Open
 * Inference Protocol v2 infer body) translated into native /v1/rewards
 * items, without HTTP or a loaded model, so the translation can be fuzzed.
 * daemon/api_compat.c serves the routes.
 *
 * What a model kind takes (rwd_compat_text_field): `seqcls` scores a text
 * as `text`, `rules` as `response` (with `prompt` and `label` where the
 * protocol carries them), `mlp` takes an OIP FP32 `embedding` [N, D];
 * other kinds take none of these bodies.
 *
 * Limits, each checked before anything is built: the JSON nesting depth
 * (scanned before parsing), items per request, elements per OIP tensor
 * (RWD_COMPAT_MAX_TENSOR_ELEMS, and each shape dimension separately so the
 * product cannot wrap). Strings and per-item checks are left to
 * rwd_request_parse() and the kind's check(), which the daemon runs on the
 * translated body.
 *
 * Errors: RWD_E_FORMAT (JSON syntax, line/column set), RWD_E_INVALID (types,
 * lengths, names), RWD_E_LIMIT (over a limit), with err->object naming the
 * field as the client sent it ("query[3]", "labels", "input[0]", "text").
 *
 * OIP binary tensor extension (rwd_compat_oip_binary): the body is a JSON
 * header followed by raw tensor bytes, split at Inference-Header-Content-
 * Length (or, when the client sent no such header, where the JSON value
 * ends). Limits: the header within the body, each binary_data_size within
 * what is left, the shape product within RWD_COMPAT_MAX_TENSOR_ELEMS, each
 * BYTES element's 4-byte little-endian length within its tensor's bytes, no
 * byte left over; FP32 values finite; BYTES valid UTF-8 (the items are JSON).
 *
 * Per-model options (rwd_compat_options, the model's "compat" config
 * object): which value /classify, /pooling, /v1/embeddings and OIP outputs
 * carry, and how /get_reward fills extra_logs and scores.
 *
 * Thread safety: re-entrant, no state.
 */
#ifndef RWD_COMPAT_COMPAT_H
#define RWD_COMPAT_COMPAT_H

#include "core/error.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define RWD_COMPAT_MAX_TENSOR_ELEMS (1u << 24)
/* OIP outputs a request may name: rewards, reward and one per dimension. */
#define RWD_COMPAT_MAX_OUTPUTS 66
enum { RWD_COMPAT_OUT_REWARDS = -1, RWD_COMPAT_OUT_REWARD = -2 };

enum rwd_compat_proto { RWD_COMPAT_GET_REWARD, RWD_COMPAT_VLLM, RWD_COMPAT_OIP };

#define RWD_COMPAT_NAME_MAX 64
/* BYTES elements per binary tensor, and bytes of one element. */
#define RWD_COMPAT_MAX_BYTES_ELEMS 65536u
#define RWD_COMPAT_MAX_ELEM_BYTES (64u << 20)

enum rwd_compat_transform { RWD_COMPAT_T_IDENTITY, RWD_COMPAT_T_SIGMOID, RWD_COMPAT_T_LINEAR };

/*
 * A served model's "compat" config object (all optional):
 *   "classify_dimension": "<dimension>" | "reward"
 *       /classify, /pooling, /v1/embeddings and the OIP `rewards` tensor carry
 *       exactly this one value per item (verl reads data[-1].probs[-1]).
 *       Unset: every dimension, in the model's order; an item that lacks
 *       one gets 422 naming it (never null).
 *   "extra_logs_filler": number (default 0)
 *       /get_reward: extra_logs value of a dimension an item lacks; the
 *       "<dim>_present" array says which values are real.
 *   "scores": {"from": "reward" | "<dimension>", "transform": "identity" |
 *       "sigmoid" | "linear", "min": a, "max": b}
 *       /get_reward `scores` (OpenRLHF's dynamic filtering reads them):
 *       default the reward itself; linear maps [min, max] to [0, 1], clipped.
 * Dimension names are checked against the model when a request uses them.
 */
typedef struct rwd_compat_options {
	char classify_dimension[RWD_COMPAT_NAME_MAX + 1]; /* "" when unset */
	double logs_filler;
	char scores_from[RWD_COMPAT_NAME_MAX + 1];        /* "reward" by default */
	int scores_transform;                             /* enum rwd_compat_transform */
	double scores_min, scores_max;
} rwd_compat_options;

rwd_compat_options rwd_compat_default_options(void);

/*
 * Parse the "compat" object (NULL: the defaults) into *o. path names the
 * object in errors ("models.rm.compat"). RWD_E_INVALID naming the field.
 */
int rwd_compat_options_parse(const json_t *obj, const char *path, rwd_compat_options *o, rwd_error *err);

/* The configured scores transform applied to v. */
double rwd_compat_scores_value(const rwd_compat_options *o, double v);

/*
 * The extra_logs key of dimension dim, written to buf: the name itself, or
 * "rm_<name>" when OpenRLHF keeps its own info entry of that name (reward,
 * score, response_length, ... would be overwritten by ours).
 */
const char *rwd_compat_log_key(const char *dim, char *buf, size_t size);

typedef struct rwd_compat_limits {
	size_t max_items;   /* items per request */
	size_t max_depth;   /* JSON nesting */
} rwd_compat_limits;

/* The item field a kind scores text as ("text", "response"), or NULL. */
const char *rwd_compat_text_field(const char *kind);

/*
 * Parse body[0..len) into a JSON object (*root owned by the caller):
 * depth pre-scan, duplicate keys refused, an object required.
 */
int rwd_compat_load(const char *body, size_t len, const rwd_compat_limits *lim, json_t **root,
	rwd_error *err);

/*
 * OpenRLHF: {"query": [str], "prompts"?: [str|null]|null, "labels"?: [...]|null};
 * other fields ignored. Appends one item per query to `items`.
 */
int rwd_compat_get_reward(const json_t *root, const char *kind, const rwd_compat_limits *lim,
	json_t *items, rwd_error *err);

/* What a vLLM/SGLang body asks about its reply. */
typedef struct rwd_compat_vllm_req {
	int activation;   /* /classify: apply vLLM's activation (default 1) */
	int base64;       /* encoding_format "base64": float32 little-endian, base64 */
	int sglang;       /* SGLang's native body ("text"/"input_ids", no "input") */
	int single;       /* SGLang: "text" was one string, so the reply is one object */
} rwd_compat_vllm_req;

/*
 * vLLM/SGLang. Completion form "input": str | [str] | [int] | [[int]]
 * (token ids: seqcls only); chat form "messages": [{role, content}] (one
 * conversation, one item: seqcls renders it with the model's chat template;
 * rules scores the last message's content as the response, with the last
 * user message before it as the prompt). "add_special_tokens" (bool) and
 * "truncate_prompt_tokens" (-1 or >= 1) go to each seqcls item. With
 * sglang_ok (SGLang's native /classify), a body with "text" (str | [str])
 * or "input_ids" and no "input"/"messages" is SGLang's. *activation from
 * "use_activation" or else "activation" (default 1). "model" is left to the
 * caller.
 */
int rwd_compat_vllm(const json_t *root, const char *kind, const rwd_compat_limits *lim, int sglang_ok,
	json_t *items, rwd_compat_vllm_req *req, rwd_error *err);

typedef struct rwd_compat_oip {
	const json_t *id;     /* the request's "id" (borrowed from root) or NULL */
	int outputs[RWD_COMPAT_MAX_OUTPUTS]; /* RWD_COMPAT_OUT_* or a dimension index */
	uint8_t binary[RWD_COMPAT_MAX_OUTPUTS]; /* 1: the client asked for this output in binary */
	size_t n_outputs;
} rwd_compat_oip;

/*
 * Decode an OIP body that may carry binary tensors: body[0..header_len) is
 * the JSON header (header_len < 0: no Inference-Header-Content-Length, so
 * the JSON ends where its value ends), the rest the tensors' raw bytes in
 * input order. On success *root (owned by the caller) is the header with
 * each binary input's bytes turned into its "data" array (BYTES as strings,
 * FP32 as numbers) and its binary_data_size removed, ready for
 * rwd_compat_oip_infer. A body without binary data is plain rwd_compat_load.
 * Errors name the input ("inputs[1]") or "Inference-Header-Content-Length".
 */
int rwd_compat_oip_binary(const char *body, size_t len, long long header_len, const rwd_compat_limits *lim,
	json_t **root, rwd_error *err);

/*
 * OIP v2 infer: {"id"?, "parameters"?, "inputs": [tensor], "outputs"?: [{"name"}]}.
 * dims: the model's dimension names (outputs may name them). Binary tensor
 * data must have been decoded by rwd_compat_oip_binary (binary_data_size
 * left in an input is refused). out->binary[k] is set for an output with
 * "parameters": {"binary_data": true}, or for every output when the
 * request's "parameters" has "binary_data_output": true and the output does
 * not say binary_data false.
 */
int rwd_compat_oip_infer(const json_t *root, const char *kind, const char *const *dims, size_t n_dims,
	const rwd_compat_limits *lim, json_t *items, rwd_compat_oip *out, rwd_error *err);

/*
 * Rename a native field path ("items[3].label") to the one the client sent
 * ("labels[3]", "input[3]", "label[3]"), in place.
 */
void rwd_compat_remap_field(int proto, char *object, size_t size);

#endif
