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
 * Thread safety: re-entrant, no state.
 */
#ifndef RWD_COMPAT_COMPAT_H
#define RWD_COMPAT_COMPAT_H

#include "core/error.h"

#include <jansson.h>
#include <stddef.h>

#define RWD_COMPAT_MAX_TENSOR_ELEMS (1u << 24)
/* OIP outputs a request may name: rewards, reward and one per dimension. */
#define RWD_COMPAT_MAX_OUTPUTS 66
enum { RWD_COMPAT_OUT_REWARDS = -1, RWD_COMPAT_OUT_REWARD = -2 };

enum rwd_compat_proto { RWD_COMPAT_GET_REWARD, RWD_COMPAT_VLLM, RWD_COMPAT_OIP };

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

/*
 * vLLM/SGLang: "input": str | [str] | [int] | [[int]] (token ids: seqcls
 * only); *activation from "use_activation" or else "activation" (default 1).
 * "model" is left to the caller.
 */
int rwd_compat_vllm(const json_t *root, const char *kind, const rwd_compat_limits *lim,
	json_t *items, int *activation, rwd_error *err);

typedef struct rwd_compat_oip {
	const json_t *id;     /* the request's "id" (borrowed from root) or NULL */
	int outputs[RWD_COMPAT_MAX_OUTPUTS]; /* RWD_COMPAT_OUT_* or a dimension index */
	size_t n_outputs;
} rwd_compat_oip;

/*
 * OIP v2 infer: {"id"?, "parameters"?, "inputs": [tensor], "outputs"?: [{"name"}]}.
 * dims: the model's dimension names (outputs may name them). Binary tensor
 * data is refused.
 */
int rwd_compat_oip_infer(const json_t *root, const char *kind, const char *const *dims, size_t n_dims,
	const rwd_compat_limits *lim, json_t *items, rwd_compat_oip *out, rwd_error *err);

/*
 * Rename a native field path ("items[3].label") to the one the client sent
 * ("labels[3]", "input[3]", "label[3]"), in place.
 */
void rwd_compat_remap_field(int proto, char *object, size_t size);

#endif
