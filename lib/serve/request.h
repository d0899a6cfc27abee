/*
 * serve/request.h — parse and validate a POST /v1/rewards body into items
 * ready for the batcher, without any HTTP library (so it can be fuzzed).
 *
 * Body: {"model"?: str, "items": [{"id"?: str|int, ...inputs}],
 *        "dimensions"?: [str], "timeout_ms"?: int, "priority"?: "normal"|"high"}
 *
 * Checks, in order, each failing with a precise rwd_error (field path in
 * err->object, JSON line/column when the text itself is bad):
 *   - nesting depth (scanned before parsing, so deep input costs nothing)
 *     → RWD_E_INVALID;
 *   - JSON syntax, UTF-8, duplicate keys, numbers jansson cannot represent
 *     (1e999, huge integers), NUL in strings → RWD_E_FORMAT;
 *   - any string longer than max_string_bytes → RWD_E_LIMIT;
 *   - unknown top-level fields, wrong types → RWD_E_INVALID;
 *   - more items than max_items → RWD_E_LIMIT;
 *   - an unknown model → RWD_E_NOTFOUND; no model given while several (or
 *     none) are served → RWD_E_INVALID (or RWD_E_STATE when none);
 *   - an unknown dimension → RWD_E_UNPROCESSABLE;
 *   - each item through rwd_model_check() (the kind's validation; its error
 *     code is kept, the field becomes "items[i].<field>");
 *   - an item whose cost exceeds the model's max_batch_tokens (token-cost
 *     models) → RWD_E_UNPROCESSABLE, instead of a batch that can never form.
 *
 * Vector kinds (rwd_model_info.vector_input, e.g. mlp): an item's
 * "embedding" array is read from the body bytes without a JSON node per
 * number (the fast path, request.c; same floats and same errors as jansson,
 * which parses everything else), and "embedding_b64" (base64 of
 * little-endian float32) is decoded once into the arena (rwd_model_vector_b64
 * errors, field "items[i].embedding_b64"); both land in item->vec.
 *
 * Thread safety: re-entrant; the find callback must be safe to call from
 * the calling thread.
 */
#ifndef RWD_SERVE_REQUEST_H
#define RWD_SERVE_REQUEST_H

#include "core/arena.h"
#include "core/error.h"
#include "models/model.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rwd_request_limits {
	size_t max_items;          /* items per request */
	size_t max_depth;          /* JSON nesting (objects + arrays) */
	size_t max_string_bytes;   /* any one JSON string, in bytes */
	size_t max_id_bytes;       /* an item's "id" string */
	uint32_t default_timeout_ms; /* when the request gives none (0 = no deadline) */
	uint32_t max_timeout_ms;   /* requested timeouts are capped to this */
	int json_only;             /* 1: no float-array fast path (jansson parses everything) */
} rwd_request_limits;

rwd_request_limits rwd_request_default_limits(void);

/*
 * Resolve a model name (NULL: the request named none) to a served model.
 * Returns the model and sets *user, or NULL with err filled (NOTFOUND for an
 * unknown name, INVALID when a name is needed, STATE when none is served).
 */
typedef const rwd_model *(*rwd_request_find_fn)(void *ctx, const char *name, void **user,
	rwd_error *err);

typedef struct rwd_request {
	json_t *root;            /* the parsed body; released by the arena */
	const rwd_model *model;
	void *model_user;        /* what find() returned in *user */
	const char *model_name;  /* the model's own name (borrowed from the model) */
	size_t n_items;
	rwd_item *items;         /* [n_items], from the arena, cost set, status 0 */
	const json_t **ids;      /* [n_items], borrowed from root; NULL where absent */
	int dims[RWD_MAX_DIMS];  /* requested dimension indices, in request order */
	size_t n_dims;
	uint32_t timeout_ms;     /* effective, after default and cap (0 = none) */
	int priority;            /* RWD_PRIO_* of serve/batcher.h: 0 normal, 1 high */
	size_t total_cost;
} rwd_request;

/*
 * Parse body[0..len) into *out (memory from arena; the JSON tree is
 * released when the arena is). Returns 0 or an RWD_E_* code with err set.
 */
int rwd_request_parse(const char *body, size_t len, const rwd_request_limits *lim,
	rwd_request_find_fn find, void *find_ctx, rwd_arena *arena, rwd_request *out,
	rwd_error *err);

/*
 * Depth of the deepest [ / { nesting in body, ignoring brackets inside
 * strings; stops counting once past `stop` (returns stop + 1 then), and
 * reports the line/column (1-based) where it passed `stop`.
 */
size_t rwd_request_json_depth(const char *body, size_t len, size_t stop, int *line, int *column);

#endif
