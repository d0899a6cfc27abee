/*
 * nn/bf16.h — the opt-in BF16 GEMM engine: linear layers on oneDNN matmul
 * primitives with BF16 inputs, FP32 accumulation and FP32 output.
 *
 * What it computes: y[m, n] = act(bf16(x)[m, k] · bf16(w)[n, k]^T + b[n]),
 * where bf16() rounds float32 to bfloat16 to nearest, ties to even (the
 * rounding torch's .to(torch.bfloat16) does), products and sums are FP32 and
 * b, act and y are FP32. A BF16 checkpoint widened to F32 at load rounds back
 * to exactly its stored values, so its weights are used as stored. The exact
 * oracle is a double-precision loop over the BF16-rounded inputs
 * (tests/unit/test_bf16.c); only FP32 accumulation error separates the two.
 * Normalisation, softmax and attention stay in FP32 (nn.h).
 *
 * Objects:
 *   rwd_bf16         one model's engine: the oneDNN CPU engine, the matmul
 *                    primitives of each shape class (k, n, bias?, act), and
 *                    every linear's weights reordered ONCE into the
 *                    primitive's preferred (blocked) layout. Built at model
 *                    load by one thread, then shared read-only by workers.
 *   rwd_bf16_linear  one weight matrix inside it (a borrowed handle).
 *   rwd_bf16_scratch one per worker: its oneDNN stream, the primitives'
 *                    scratchpad, the BF16 copy of the activations and a
 *                    padded output block. Never shared between threads.
 *
 * Shape classes and rows: a primitive with a fixed row count gets oneDNN's
 * brgemm kernels (a runtime row count falls back to a slower plain-layout
 * GEMM), so each class gets primitives for the row buckets 1, 2, 4, 8, 16,
 * 32, 64, 96, ..., 256 at load. A call runs its rows in blocks of 256 and
 * pads the last block up to the next bucket (< 32 padded rows). The weight
 * layout oneDNN prefers does not depend on the row count (checked at load:
 * a class whose buckets disagree is refused).
 *
 * Batch invariance: a row's result does not depend on the call's row count,
 * the row's position or the thread count (oneDNN 2.6's brgemm sums k in the
 * same blocked order in every bucket, and its threads split rows and
 * columns, never k). Measured, not promised by oneDNN: test_bf16.c
 * (linear_rows_are_batch_invariant) checks it bit for bit.
 *
 * Threads (the rule; see bf16.c for the reasoning): the oneDNN OpenMP team
 * of a GEMM has `threads` threads, by default the OpenBLAS thread count in
 * force (rwd_nn_threading_init), so the daemon's one rule covers both pools:
 * one compute worker -> every core for whichever library runs the current
 * op; K > 1 workers -> 1 thread each. A worker issues one op at a time, so
 * the two pools never compute at once. Threads are fixed when the
 * primitives are created (oneDNN bakes its work split in), i.e. at load.
 *
 * CPU support: BF16 needs AVX512_BF16 (Zen 4, Cooper Lake, Sapphire Rapids)
 * or AMX. Without it rwd_bf16_new refuses with RWD_E_UNSUPPORTED and a
 * message naming the ISA oneDNN found; the caller (model load) fails, and
 * the daemon logs why. No silent FP32 fallback: a precision the operator
 * asked for is either delivered or refused. DNNL_MAX_CPU_ISA (oneDNN's own
 * environment variable) caps the ISA, which is how the refusal is tested.
 */
#ifndef RWD_NN_BF16_H
#define RWD_NN_BF16_H

#include "core/error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct rwd_bf16 rwd_bf16;
typedef struct rwd_bf16_linear rwd_bf16_linear;
typedef struct rwd_bf16_scratch rwd_bf16_scratch;

/* Fused epilogue after the bias (oneDNN eltwise post-op). */
typedef enum rwd_bf16_act {
	RWD_BF16_ACT_NONE = 0,
	RWD_BF16_ACT_GELU_ERF,   /* torch "gelu" */
	RWD_BF16_ACT_GELU_TANH,  /* gelu(approximate="tanh") */
	RWD_BF16_ACT_QUICK_GELU, /* x * sigmoid(1.702 x): oneDNN swish, alpha 1.702 */
	RWD_BF16_ACT_SILU,       /* x * sigmoid(x): swish, alpha 1 */
} rwd_bf16_act;

typedef struct rwd_bf16_params {
	int threads; /* OpenMP threads per GEMM; <= 0: openblas_get_num_threads() */
} rwd_bf16_params;

rwd_bf16_params rwd_bf16_default_params(void);

/* 0 if this CPU (as oneDNN sees it, DNNL_MAX_CPU_ISA included) runs BF16
 * GEMMs natively, else RWD_E_UNSUPPORTED with the reason in err. */
int rwd_bf16_supported(rwd_error *err);

/* The ISA oneDNN dispatches to, e.g. "avx512_core_bf16" (static string). */
const char *rwd_bf16_isa_name(void);

/*
 * Create an empty engine (no linears yet). Refuses on a CPU without BF16
 * (see rwd_bf16_supported). *out owns it; free with rwd_bf16_free.
 */
int rwd_bf16_new(const rwd_bf16_params *p, rwd_bf16 **out, rwd_error *err);
void rwd_bf16_free(rwd_bf16 *b); /* accepts NULL */

/*
 * Add a linear layer: w [n, k] row-major float32 (nn.Linear.weight), bias
 * [n] or NULL, act the fused epilogue. w is rounded to BF16 and reordered
 * into the engine's own memory; w and bias are not kept (both may be freed
 * after the call). Creates the shape class's primitives the first time the
 * class (k, n, bias != NULL, act) is seen. *out stays valid until
 * rwd_bf16_free. Load time only: not thread-safe, and every linear must be
 * added before the first rwd_bf16_scratch_new.
 */
int rwd_bf16_add_linear(rwd_bf16 *b, const float *w, const float *bias, size_t n, size_t k,
	rwd_bf16_act act, const rwd_bf16_linear **out, rwd_error *err);

/* Counts, for describe()/logs: linears, shape classes, bytes of reordered weights. */
size_t rwd_bf16_num_linears(const rwd_bf16 *b);
size_t rwd_bf16_num_classes(const rwd_bf16 *b);
size_t rwd_bf16_weight_bytes(const rwd_bf16 *b);

/* A worker's scratch for every linear of b (b must outlive it). */
int rwd_bf16_scratch_new(const rwd_bf16 *b, rwd_bf16_scratch **out, rwd_error *err);
void rwd_bf16_scratch_free(rwd_bf16_scratch *s); /* accepts NULL */

/*
 * y[m, n] = act(x[m, k] · w^T + bias), rows with strides ldx, ldy (0 =
 * dense). x and y must not overlap. s is the calling worker's scratch.
 * Returns 0, or a negative RWD_E_* code (oneDNN failed: a bug or no
 * memory), which is also remembered in s (rwd_bf16_scratch_status) so
 * void model code can check once per forward pass.
 */
int rwd_bf16_linear_run(const rwd_bf16_linear *l, rwd_bf16_scratch *s, const float *x,
	size_t m, size_t ldx, float *y, size_t ldy);

/* First error of any run since the last call (0 if none), and clear it. */
int rwd_bf16_scratch_status(rwd_bf16_scratch *s);

/* Round to bfloat16, nearest-even (NaN stays NaN), and widen back. */
uint16_t rwd_bf16_from_float(float f);
float rwd_bf16_to_float(uint16_t h);

#endif
