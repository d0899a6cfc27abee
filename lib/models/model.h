/*
 * models/model.h — the interface every model kind implements, and the
 * generic model handle the serving layer and the offline scorer use.
 *
 * A served model is a name + a kind + a folder (none for built-ins) + kind
 * options. Loading yields an immutable rwd_model, shared read-only by every
 * worker; each worker owns its own scratch (rwd_model_scratch_new), sized at
 * load for the largest batch, so thread safety is obvious: concurrent calls
 * on one model are safe as long as each thread passes its own scratch.
 *
 * One item's life (see lib/serve/ for the threads):
 *   HTTP thread:  rwd_model_check()     structural validation of the item's
 *                                       JSON, cheap, no decoding; gives the
 *                                       batching cost (tokens or 1)
 *   worker:       rwd_model_prepare()   decode images / tokenise into memory
 *                                       from the worker's batch arena
 *   worker:       rwd_model_forward()   one batched forward pass over the
 *                                       prepared items; per-dimension scores
 *
 * An item that fails (bad image, too many tokens) gets status != 0 and an
 * error record; it is never reported as a reward of 0. A dimension that does
 * not apply to an item (e.g. `accuracy` without a `label`) is marked absent
 * in item->present, which is different from a score of 0.
 */
#ifndef RWD_MODELS_MODEL_H
#define RWD_MODELS_MODEL_H

#include "core/arena.h"
#include "core/error.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define RWD_MAX_DIMS 64

typedef struct rwd_model rwd_model;

/* Batch limits a model must be ready for (scratch is reserved for these). */
typedef struct rwd_batch_limits {
	size_t max_batch_size;   /* items per forward pass */
	size_t max_batch_tokens; /* text models: tokens per forward pass */
	size_t max_tokens;       /* text models: tokens per item */
	uint64_t max_image_pixels; /* width * height per decoded image */
	/* Not a limit, but given to load() with them: 1 = read the weights into
	 * memory instead of mmapping them (slow network filesystems). */
	int weights_in_memory;
} rwd_batch_limits;

/* One item as it flows through the batcher. Owned by the serving layer. */
typedef struct rwd_item {
	const json_t *input;   /* borrowed: the item object (already check()ed) */
	/* The item's float vector (kinds with rwd_model_info.vector_input), decoded
	 * by the request layer from "embedding" or "embedding_b64" and already
	 * validated (vec_n == vector_input, every value finite), or NULL: the kind
	 * reads item->input. Borrowed (the request arena). */
	const float *vec;
	size_t vec_n;
	size_t index;          /* position in its request, for error messages */
	void *prep;            /* set by prepare(): kind-private, in the batch arena */
	size_t cost;           /* set by check(): tokens for text models, else 1 */
	float scores[RWD_MAX_DIMS];    /* written by forward() */
	uint8_t present[RWD_MAX_DIMS]; /* 1 where scores[i] was produced */
	int status;            /* 0, or the RWD_E_* code that failed this item */
	rwd_error err;         /* details when status != 0 */
	/*
	 * Per-item outputs beside the dimensions, set by forward() of kinds that
	 * have them (seqcls process reward models: {"step_rewards": [...],
	 * "step_probs": [[...], ...]}); NULL otherwise. Owned by the item: the
	 * owner of an item array releases it with rwd_item_release(). A
	 * renderer copies its keys into the item's result.
	 */
	json_t *extra;
} rwd_item;

/* Release what forward() attached to items[0..n) (extra); accepts NULL. Idempotent. */
void rwd_item_release(rwd_item *items, size_t n);

/* What a loaded model reports about itself (borrowed from the model). */
typedef struct rwd_model_info {
	const char *name;
	const char *kind;              /* "mlp", "rules", "image_metrics", "clip", "seqcls" */
	const char *path;              /* folder or file, "" for built-ins */
	size_t n_dims;
	const char *dims[RWD_MAX_DIMS];
	const char *const *inputs;     /* accepted item fields, NULL-terminated */
	size_t weight_bytes;
	/* A JSON item this model scores, for warm-ups when generic candidates do
	 * not fit (a PRM needs its separator); NULL = none. */
	const char *warm_item;
	int token_cost;                /* 1 if cost is in tokens (max_batch_tokens applies) */
	/* Width of the float vector the kind takes as "embedding" (a JSON array)
	 * or "embedding_b64" (base64 float32), and nothing else; 0 for other kinds. */
	size_t vector_input;
	double load_seconds;
} rwd_model_info;

/*
 * The kind's functions. `state` is the kind's loaded, read-only model;
 * `scratch` a per-worker workspace. All but load/free must be safe to call
 * concurrently on one state with distinct scratch.
 */
typedef struct rwd_model_ops {
	const char *kind;
	const char *const *inputs;     /* accepted item fields, NULL-terminated */
	/* 1: forward() never runs a multi-threaded GEMM (no GEMMs at all, or
	 * all inside rwd_nn_serial_begin), so its workers need no BLAS pool. */
	int serial_blas;
	/* path: folder or file (NULL for built-ins); opts: kind options object or NULL. */
	int (*load)(const char *path, const json_t *opts, const rwd_batch_limits *lim,
		void **state, rwd_error *err);
	void (*free)(void *state);
	/* Dimension names (borrowed), weight bytes, token_cost. */
	void (*describe)(const void *state, rwd_model_info *info);
	/* Validate one item's JSON; set *cost. err->object names the field. */
	int (*check)(const void *state, const json_t *item, size_t *cost, rwd_error *err);
	int (*scratch_new)(const void *state, void **scratch, rwd_error *err); /* optional */
	void (*scratch_free)(void *scratch);                                   /* optional */
	/* Decode/tokenise item->input into item->prep (memory from arena). optional */
	int (*prepare)(const void *state, void *scratch, rwd_item *item, rwd_arena *arena,
		rwd_error *err);
	/* Score n prepared items (n <= max_batch_size); per-item failures go in
	 * items[i]->status. Returns non-zero only if the whole batch failed. */
	int (*forward)(const void *state, void *scratch, rwd_item *const *items, size_t n,
		rwd_arena *arena);
} rwd_model_ops;

typedef struct rwd_model_params {
	const char *name;        /* required */
	const char *kind;        /* NULL: from config.json "architectures" / "rewardd_kind" */
	const char *path;        /* model folder or file; NULL for built-ins */
	const json_t *options;   /* kind options (borrowed, may be NULL) */
	rwd_batch_limits limits;
} rwd_model_params;

rwd_model_params rwd_model_default_params(void);

/*
 * Load a model. On success *out owns it (free with rwd_model_free). On
 * failure *out is untouched and err says which file/tensor/field and why.
 * Not thread-safe with respect to the same params; otherwise re-entrant.
 */
int rwd_model_load(const rwd_model_params *params, rwd_model **out, rwd_error *err);
void rwd_model_free(rwd_model *m); /* accepts NULL */

/* Borrowed view of the model's description, valid until rwd_model_free. */
const rwd_model_info *rwd_model_get_info(const rwd_model *m);
const rwd_batch_limits *rwd_model_limits(const rwd_model *m);

/* Index of dimension `name`, or -1. */
int rwd_model_dim_index(const rwd_model *m, const char *name);

/* The wrappers below forward to the kind's ops; see rwd_model_ops. */
int rwd_model_check(const rwd_model *m, const json_t *item, size_t *cost, rwd_error *err);
/*
 * rwd_model_check for an item the request layer built: when item->vec is
 * set, the vector was validated where it was decoded and only its width is
 * checked against info.vector_input (a vector kind takes nothing else);
 * otherwise rwd_model_check(m, item->input, ...).
 */
int rwd_model_check_item(const rwd_model *m, const rwd_item *item, size_t *cost, rwd_error *err);

/*
 * Decode "embedding_b64" text s[0..n): base64 (RFC 4648 standard alphabet,
 * padded, whitespace skipped, as Python's base64.b64encode and vLLM's
 * encoding_format "base64" write it) of little-endian float32, into
 * out[0..dim). Errors name the field in err->object ("embedding_b64"):
 * RWD_E_FORMAT for bad base64 (err->offset = the character), RWD_E_INVALID
 * when the bytes are not a whole number of float32, when their count is not
 * dim, or when a value is NaN or infinite. Nothing is written past out[dim).
 */
int rwd_model_vector_b64(const char *s, size_t n, size_t dim, float *out, rwd_error *err);
int rwd_model_scratch_new(const rwd_model *m, void **scratch, rwd_error *err);
void rwd_model_scratch_free(const rwd_model *m, void *scratch);
/*
 * Prepare and score a batch in one call: prepare() each item (failures are
 * recorded per item and the item is left out of the forward pass), then
 * forward() the rest. Items must have status 0 on entry. Returns 0, or the
 * error that failed the whole batch; either way every item that was not
 * scored has a status and a message on return (never status 0 without a
 * score), and a failed item has no present[] dimension.
 */
int rwd_model_run(const rwd_model *m, void *scratch, rwd_item *const *items, size_t n,
	rwd_arena *arena);

/* Kind lookup, for the registry and `--help`. NULL if unknown. */
const rwd_model_ops *rwd_model_kind(const char *kind);
/*
 * 1 if workers of `kind` may run multi-threaded GEMMs (the BLAS thread
 * rule, nn.h rwd_nn_blas_threads_for, counts them); 0 for serial kinds
 * (rules, image_metrics, sql, mlp). NULL (kind detected at load) or an
 * unknown kind: 1.
 */
int rwd_model_kind_threaded(const char *kind);
/* NULL-terminated list of kind names. */
const char *const *rwd_model_kinds(void);

#endif
