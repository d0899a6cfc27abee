/*
 * models/vlm_head.h — the reward heads of the `vlm` kind, as reward_head.json
 * (beside the weights; schema in ../shared/reference/vlm-reward-models.md)
 * describes them, and the per-dimension μ / σ they give.
 *
 *   "heads": {NAME: {"file": F, "layers": [{"weight": W, "bias": B | null,
 *             "activation": "relu" | "silu" | null}, ...]}}
 *   "dimensions": [{"name", "prompt", "pool": "last" | TOKEN, "head": NAME,
 *                   "mu": i, "log_sigma": j | null}, ...]
 *
 * A head is a chain of Linear layers (weight [out, in], optional bias) with
 * an optional activation after each, applied to the final-norm hidden state
 * at the pooled token: HPSv3's rm_head = Sequential(Linear(H, 1024), ReLU,
 * Dropout, Linear(1024, 16), ReLU, Linear(16, 2)) is layers rm_head.0
 * (relu), rm_head.3 (relu), rm_head.5; EditReward's rm_heads.head_K the
 * same; VideoAlign's rm_head one Linear without bias. Dimension d's μ is
 * out[mu]; σ = exp(out[log_sigma]) when log_sigma is given.
 * F is a safetensors file in the model folder (no '/' or ".."). Every layer's
 * input width must be the previous one's output (the first: the LLM width);
 * a missing or misshaped tensor, an index beyond the head's output, an
 * unknown head, key or activation is refused at load, naming it.
 *
 * Thread safety: read-only after load; rwd_vlm_head_run is re-entrant.
 */
#ifndef RWD_MODELS_VLM_HEAD_H
#define RWD_MODELS_VLM_HEAD_H

#include "core/error.h"

#include <jansson.h>
#include <stddef.h>

#define RWD_VLM_MAX_HEADS 16
#define RWD_VLM_MAX_LAYERS 8

typedef struct rwd_vlm_heads rwd_vlm_heads;

typedef struct rwd_vlm_dim {
	const char *name, *prompt, *pool; /* borrowed from the spec's JSON (kept by the heads) */
	size_t head;                      /* index into the heads */
	size_t mu;
	int log_sigma;                    /* -1: none */
} rwd_vlm_dim;

/*
 * Load the heads and dimensions of `spec` (reward_head.json's root; a
 * reference is kept) with weights from files in `dir`, for an LLM of width
 * `hidden`. Returns 0, RWD_E_INVALID / RWD_E_UNSUPPORTED (spec; err->object
 * names the key), RWD_E_NOTFOUND (a tensor or file, named) or RWD_E_NOMEM.
 */
int rwd_vlm_heads_load(const char *dir, json_t *spec, size_t hidden, rwd_vlm_heads **out,
	rwd_error *err);
void rwd_vlm_heads_free(rwd_vlm_heads *h); /* accepts NULL */

size_t rwd_vlm_heads_n_dims(const rwd_vlm_heads *h);
const rwd_vlm_dim *rwd_vlm_heads_dim(const rwd_vlm_heads *h, size_t i);
size_t rwd_vlm_heads_n_heads(const rwd_vlm_heads *h);
size_t rwd_vlm_heads_out_dim(const rwd_vlm_heads *h, size_t head);
/* Floats of scratch rwd_vlm_head_run needs (for one row). */
size_t rwd_vlm_heads_scratch(const rwd_vlm_heads *h);

/* out[0 .. out_dim) = head(x[0 .. hidden)). */
void rwd_vlm_head_run(const rwd_vlm_heads *h, size_t head, const float *x, float *out,
	float *scratch);

/* Dimension i's μ and σ (NaN when it has no log_sigma) from its head's output. */
void rwd_vlm_dim_values(const rwd_vlm_heads *h, size_t i, const float *head_out, float *mu,
	float *sigma);

#endif
