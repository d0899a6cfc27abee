/*
 * models/mlp.h — the `mlp` kind: a stack of linear layers over an embedding.
 *
 * Reward heads such as the LAION aesthetic predictor are small MLPs applied
 * to a CLIP embedding. A model is a .safetensors file, or a folder holding
 * model.safetensors and an optional config.json:
 *
 *   {"rewardd_kind": "mlp",
 *    "layers": ["layers.0", "layers.2", ...],   // tensor prefixes, in order
 *    "activation": "relu" | "gelu" | "quick_gelu" | "silu" | "none",
 *    "activations": ["relu", "none", ...],        // per layer, instead
 *    "outputs": ["aesthetic"] | "id2label": {"0": "aesthetic"},
 *    "normalize": false}                          // L2-normalise the input
 *
 * The same keys may come as the kind options of a configured model (they
 * win over config.json). Without "layers", the layers are the tensors named
 * `<prefix>.N.weight` / `.bias` sorted by N (e.g. `layers.0` … `layers.7`),
 * chained in that order; shapes must chain (out of one = in of the next).
 * The activation is applied after every layer but the last (default "none",
 * as the LAION "linearMSE" head, whose Dropout layers are identity at
 * inference). Outputs are named by "outputs"/"id2label", else "score" for a
 * single output, else "score_0" … "score_{n-1}".
 *
 * Items: {"embedding": [floats]} of exactly the input width, or
 * {"embedding_b64": "<base64 of little-endian float32>"} (vLLM's
 * encoding_format "base64"; rwd_model_vector_b64 in model.h), never both.
 */
#ifndef RWD_MODELS_MLP_H
#define RWD_MODELS_MLP_H

#include "models/model.h"

extern const rwd_model_ops rwd__mlp_ops;

typedef struct rwd_mlp rwd_mlp;

/*
 * Load an mlp head directly (used by the clip kind for heads on its image
 * embedding). Same semantics as the kind's load; free with rwd_mlp_free.
 */
int rwd_mlp_load(const char *path, const json_t *opts, size_t max_batch, rwd_mlp **out,
	rwd_error *err);
void rwd_mlp_free(rwd_mlp *m);
size_t rwd_mlp_input_dim(const rwd_mlp *m);
size_t rwd_mlp_output_dim(const rwd_mlp *m);
/* Output names, borrowed. */
const char *rwd_mlp_output_name(const rwd_mlp *m, size_t i);
/* Floats of scratch rwd_mlp_forward needs for n rows. */
size_t rwd_mlp_scratch_floats(const rwd_mlp *m, size_t n);
/*
 * y[n, out] = mlp(x[n, in]). scratch: rwd_mlp_scratch_floats(m, n) floats.
 * x is not modified. Thread-safe with distinct scratch.
 */
void rwd_mlp_forward(const rwd_mlp *m, const float *x, size_t n, float *y, float *scratch);

#endif
