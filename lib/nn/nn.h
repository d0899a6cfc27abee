/*
 * nn/nn.h — the numeric ops every model kind is built from, over cblas_sgemm.
 *
 * Conventions (as PyTorch stores things, so checkpoints are used in place):
 *   - activations are row-major float32 matrices [rows, cols] with a leading
 *     dimension (row stride, in floats) where a view into a wider buffer is
 *     useful (e.g. q/k/v slices of a fused projection);
 *   - a linear layer's weight is [out, in] (nn.Linear.weight), used through
 *     a transposed GEMM, never copied transposed;
 *   - ops write into caller-provided buffers and never allocate: models
 *     reserve their scratch at load for the largest batch.
 *
 * Threading: these functions are re-entrant. How many BLAS threads run under
 * them is a process-wide OpenBLAS setting chosen once at start-up; see
 * rwd_nn_threading_init() below for the model and its reasoning.
 */
#ifndef RWD_NN_NN_H
#define RWD_NN_NN_H

#include <stddef.h>
#include <stdint.h>

/* y[m, n] = x[m, k] · w[n, k]^T (+ b[n] when b != NULL). ldx/ldy: row strides (0 = dense).
 * Batch-invariant: row i's bits depend only on x's row i, w, b, n and k — never on m, the
 * row's position or the BLAS thread count (the kernel is chosen from (n, k); nn.c). */
void rwd_nn_linear(const float *x, size_t m, size_t k, size_t ldx,
	const float *w, const float *b, size_t n, float *y, size_t ldy);

/* Row-wise LayerNorm over n columns: y = (x - mean) / sqrt(var + eps) * g + b. In place allowed.
 * g NULL = 1, b NULL = 0; var is the biased variance, as torch. */
void rwd_nn_layernorm(const float *x, size_t m, size_t n, const float *g, const float *b,
	float eps, float *y);

/* Row-wise RMSNorm: y = x / sqrt(mean(x^2) + eps) * w (Llama/Qwen; w NULL = 1). In place allowed. */
void rwd_nn_rmsnorm(const float *x, size_t m, size_t n, const float *w, float eps, float *y);

/* Row-wise softmax in place over n columns (max-subtracted). */
void rwd_nn_softmax(float *x, size_t m, size_t n);

/* Activations in place over n floats. */
void rwd_nn_gelu_erf(float *x, size_t n);   /* 0.5 x (1 + erf(x/sqrt2)), torch "gelu" */
void rwd_nn_gelu_tanh(float *x, size_t n);  /* torch gelu(approximate="tanh"), "gelu_new"/"gelu_pytorch_tanh" */
void rwd_nn_quick_gelu(float *x, size_t n); /* x * sigmoid(1.702 x), OpenAI CLIP */
void rwd_nn_silu(float *x, size_t n);       /* x * sigmoid(x) */
void rwd_nn_relu(float *x, size_t n);
/* gate[i] = silu(gate[i]) * up[i]: the SwiGLU MLP's elementwise step. */
void rwd_nn_swiglu(float *gate, const float *up, size_t n);

/*
 * Multi-head scaled dot-product attention for one sequence of t tokens.
 *   q: [t, n_heads * head_dim] with row stride ldq
 *   k, v: [t, n_kv_heads * head_dim] with row strides ldk, ldv
 *   out: [t, n_heads * head_dim] with row stride ldo
 * Grouped-query: head h reads kv head h / (n_heads / n_kv_heads), as
 * repeat_interleave does. causal != 0 masks keys after the query position.
 * scale is usually 1/sqrt(head_dim). scratch holds rwd_nn_attention_scratch()
 * floats (t * t: one head's scores at a time).
 * A leading dimension of 0 means dense; n_kv_heads 0 means n_heads. n_heads
 * must be a multiple of n_kv_heads, all sizes below INT_MAX (cblas ints).
 * out must not overlap q, k or v. Causal masking is for self-attention
 * (query i sees keys 0..i). Uses sgemm per head for QK^T and PV.
 */
typedef struct rwd_nn_attn {
	size_t t, n_heads, n_kv_heads, head_dim;
	size_t ldq, ldk, ldv, ldo;
	int causal;
	float scale;
} rwd_nn_attn;

size_t rwd_nn_attention_scratch(const rwd_nn_attn *p);
void rwd_nn_attention(const rwd_nn_attn *p, const float *q, const float *k, const float *v,
	float *out, float *scratch);

/*
 * Rotary embeddings, "half-split" layout (HF rotate_half): for each head,
 * x[i] and x[i + d/2] rotate by angle pos * inv_freq[i].
 * rwd_nn_rope_inv_freq fills inv_freq[head_dim/2] from theta and optional
 * Llama-3 scaling (factor <= 0 disables it).
 */
typedef struct rwd_nn_rope_scaling {
	float factor, low_freq_factor, high_freq_factor;
	int original_max_position;
} rwd_nn_rope_scaling;

void rwd_nn_rope_inv_freq(float theta, size_t head_dim, const rwd_nn_rope_scaling *scaling,
	float *inv_freq);
/* x: [t, n_heads * head_dim] with row stride ldx (0 = dense); pos: [t] positions. */
void rwd_nn_rope(float *x, size_t t, size_t n_heads, size_t head_dim, size_t ldx,
	const int32_t *pos, const float *inv_freq);

/*
 * The same rotation split in two, for models with many layers: the cos/sin
 * table depends only on the positions, so fill it once per forward pass and
 * apply it to q and k of every layer (sin/cos cost ~20x the rotation).
 * cs: [t, head_dim] floats, cos in columns [0, head_dim/2), sin in
 * [head_dim/2, head_dim). rwd_nn_rope_apply gives bit-identical results to
 * rwd_nn_rope.
 */
void rwd_nn_rope_table(size_t t, size_t head_dim, const int32_t *pos, const float *inv_freq,
	float *cs);
void rwd_nn_rope_apply(float *x, size_t t, size_t n_heads, size_t head_dim, size_t ldx,
	const float *cs);

/*
 * The compute threading model (measurements and full reasoning in nn.c).
 * OpenBLAS's pthread build has one process-wide thread count, and runs
 * multi-threaded GEMMs from different caller threads one at a time (a global
 * lock), so the choice is:
 *   (i) default: ONE compute worker per model owns the stacked batch, with
 *       BLAS threads = cores. Best latency, and best throughput on the large
 *       batched GEMMs that batching produces (measured in nn.c).
 *   (ii) K compute workers (K <= cores) with BLAS threads = 1: when several
 *       models compute concurrently, when every GEMM is tiny (< ~262k
 *       multiply-adds, which OpenBLAS runs single-threaded anyway), or when
 *       the cores are shared with other busy processes (BLAS's spinning
 *       pool threads then stall; measured in nn.c).
 *   Never K > 1 workers with BLAS threads > 1.
 * Under (i), GEMMs issued through this module below 16M multiply-adds run
 * on one BLAS thread (the count is lowered around the call and restored),
 * so models made of small GEMMs never wake OpenBLAS's pool, whose idle
 * threads spin on the cores the HTTP threads need; see nn.c. Results do
 * not depend on the thread count (rows are batch- and thread-invariant).
 *
 * The daemon's default rule (compute.blas_threads 0): count the compute
 * workers of models that may run threaded GEMMs (clip, imagereward,
 * seqcls, ocr, and a model whose kind is detected at load); rules,
 * image_metrics, sql (no GEMMs) and mlp (serial, rwd_nn_serial_begin) do
 * not count. At most one such worker: BLAS threads = cores; more: 1.
 * Measured through the daemon (bench/threads_daemon.py, 2 shared cores,
 * load average 4-8, rough): rules + aesthetic head + ViT-B/32 CLIP, one
 * worker each, 1-item edit rewards at c=16 went 9.5 -> 19.5 req/s with 2
 * BLAS threads (3.8 -> 6.7 at load 8) and the head's 1-item requests were
 * not slower (5460 -> 8009 req/s at c=16); head batches above 16M
 * multiply-adds on 2 threads halved the head's rate at load 8 (8849 ->
 * 4169 req/s at c=64), hence mlp runs serially; one CLIP model with 2
 * workers and 2 BLAS threads fell to 3.3 req/s and stalled when mixed,
 * hence never two threaded workers.
 *
 * rwd_nn_threading_init sets OpenBLAS's process-wide thread count once at
 * start-up, before any worker runs and never while a thread is inside BLAS
 * (blas_threads <= 0: the usable cores). Returns the BLAS thread count in
 * force. Fills `desc` (if non-NULL) with a one-line summary for the daemon's
 * start-up log: "<openblas_get_config()>; core <corename>; parallel
 * <sequential|pthread|openmp>; threads <n>".
 */
int rwd_nn_threading_init(int blas_threads, char *desc, size_t desc_size);

/*
 * The BLAS thread count for `compute_workers` concurrent compute workers
 * that may run threaded GEMMs: the usable cores for at most one (model i),
 * 1 for more (model ii). Workers of kinds that run all their GEMMs serially
 * (rwd_nn_serial_begin: the mlp kind) and of kinds without GEMMs (rules,
 * image_metrics, sql) are not counted: they never use BLAS's pool.
 */
int rwd_nn_blas_threads_for(int compute_workers);

/*
 * Run the calling thread's GEMMs on one BLAS thread until
 * rwd_nn_serial_end(returned value): OpenBLAS's process-wide count is
 * lowered to 1 and restored after. For models whose GEMMs gain no
 * throughput from threads (MLP heads: at most ~60M multiply-adds per
 * batch), so they never wake OpenBLAS's spinning pool beside a heavy
 * model's worker or the HTTP threads. Nesting is harmless (an inner begin
 * sees 1 and its end does nothing). Concurrent use by several workers is
 * benign: only 1 and the configured count are ever written, every thread
 * that writes 1 writes the count back, and a GEMM reads the count once at
 * its start, so another worker's GEMM at worst runs on one thread for the
 * duration; results do not depend on the thread count.
 */
int rwd_nn_serial_begin(void);
void rwd_nn_serial_end(int saved);

#endif
