/*
 * nn/graph.h — a small interpreter for ONNX-style graphs converted by
 * tools/convert_checkpoint.py ocr (<net>.graph.json + <net>.safetensors).
 *
 * Why an interpreter and not fixed code per architecture: the PP-OCR exports
 * (PP-LCNetV3 + RSE-FPN + DB head for detection; SVTR-LCNet + CTC head for
 * recognition) are ~330 and ~440 nodes of 26 operator types. Running them
 * node for node computes what ONNX Runtime computes on the same file, and
 * any PP-OCR det/rec pair in this format (en_PP-OCRv3 det, en_PP-OCRv4 rec,
 * the ch_ pair) loads without code per variant.
 *
 * graph.json (format "rewardd-onnx-graph-1"): {"format", "opset", "input",
 * "output", "nodes": [{"op", "inputs", "outputs", "attrs"}], "int_constants":
 * {name: {"shape", "values"}}}; float constants are the safetensors tensors
 * named by the value they define. Validation at load is strict:
 *   - at most RWD_GRAPH_MAX_NODES nodes, RWD_GRAPH_MAX_INPUTS inputs and
 *     exactly one output per node, names 1..RWD_GRAPH_MAX_NAME bytes,
 *     every value defined once (graph input, constant or node output) and
 *     before its use (the node list must be topological), the graph output
 *     defined by a node;
 *   - ops from the list below only, each with its input count and only the
 *     attributes it knows (wrong types, out-of-range values and unsupported
 *     modes are refused, e.g. Resize other than nearest/asymmetric/floor);
 *   - int constants: rank <= RWD_GRAPH_MAX_RANK, values matching the shape,
 *     at most RWD_GRAPH_MAX_INT_VALUES numbers in all; float constants F32;
 *   - BatchNormalization's four parameters must be constant [C] tensors:
 *     they are folded at load into one per-channel scale and shift
 *     (scale = w / sqrt(var + eps), shift = b - mean * scale), which is the
 *     arithmetic ONNX Runtime's Conv+BN fusion performs too.
 * Errors are RWD_E_FORMAT (malformed JSON: line/column), RWD_E_INVALID,
 * RWD_E_UNSUPPORTED or RWD_E_LIMIT, with err->object naming the node
 * ("nodes[12] (Conv)") or constant, and the field.
 *
 * Operators: Add Sub Mul Div Pow (numpy broadcasting, float), Sqrt Relu
 * Sigmoid HardSigmoid Clip, Conv (groups, dilation, asymmetric pads;
 * depthwise runs direct loops, 1x1 one sgemm, others im2col + sgemm),
 * ConvTranspose (group 1; sgemm + col2im), BatchNormalization,
 * GlobalAveragePool, AveragePool (2-D, no ceil_mode), Resize (nearest,
 * asymmetric, floor: the DB head's upsampling), Concat, Shape, Cast (int
 * <-> int, float -> float, int -> float), Slice, Squeeze, Reshape,
 * Transpose, ReduceMean (last axis), MatMul (batched, broadcast), Softmax
 * (opset < 13: over the flattened trailing axes from `axis`; >= 13 the last
 * axis only). Integer tensors (shape arithmetic) are held as int64.
 *
 * Running: shapes are inferred at run time from the input (detection
 * inputs vary with the image), every shape is checked (mismatch is
 * RWD_E_INVALID naming the node, a tensor past limits->max_elems is
 * RWD_E_LIMIT) and each intermediate is freed after its last use. The
 * graph is immutable after load: rwd_graph_run may be called from any number
 * of threads at once.
 */
#ifndef RWD_NN_GRAPH_H
#define RWD_NN_GRAPH_H

#include "core/error.h"
#include "tensor/safetensors.h"

#include <stddef.h>
#include <stdint.h>

#define RWD_GRAPH_MAX_NODES 4096
#define RWD_GRAPH_MAX_INPUTS 16
#define RWD_GRAPH_MAX_NAME 256
#define RWD_GRAPH_MAX_RANK 6
#define RWD_GRAPH_MAX_INT_VALUES 65536
#define RWD_GRAPH_MAX_JSON_BYTES (64u << 20)

typedef struct rwd_graph rwd_graph;

/* A dense float32 tensor; data is malloc'd by rwd_graph_run (free() it). */
typedef struct rwd_graph_tensor {
	int rank;
	int64_t dims[RWD_GRAPH_MAX_RANK];
	float *data;
} rwd_graph_tensor;

typedef struct rwd_graph_limits {
	uint64_t max_elems; /* elements of any one tensor (input, intermediate, output) */
} rwd_graph_limits;

/* max_elems 2^28 (1 GiB of floats). */
rwd_graph_limits rwd_graph_default_limits(void);

/*
 * Parse graph.json text (len bytes, need not be terminated) against the
 * float constants in `w` (may be NULL: then no float constant exists). The
 * graph BORROWS w: keep it open until rwd_graph_free. `name` is used in
 * errors (the file). Returns 0 with *out set, or a negative RWD_E_* code with
 * *out NULL and err filled.
 */
int rwd_graph_parse(const char *json, size_t len, const rwd_weights *w, const char *name,
	rwd_graph **out, rwd_error *err);

/*
 * Load <dir>/<net>.graph.json and <dir>/<net>.safetensors (the converter's
 * layout); the graph owns the weights. Same returns as rwd_graph_parse.
 */
int rwd_graph_load(const char *dir, const char *net, rwd_graph **out, rwd_error *err);

void rwd_graph_free(rwd_graph *g); /* accepts NULL */

/* Node count, and the bytes of float weights it uses (for describe()). */
size_t rwd_graph_node_count(const rwd_graph *g);
uint64_t rwd_graph_weight_bytes(const rwd_graph *g);

/*
 * Run the graph on one float32 input of `rank` dims (row-major, e.g. NCHW).
 * On success *out holds the graph output (caller frees out->data) and 0 is
 * returned; otherwise a negative RWD_E_* code, out->data NULL, err names the
 * node that failed and why. lim may be NULL (defaults). Thread-safe.
 */
int rwd_graph_run(const rwd_graph *g, const float *x, int rank, const int64_t *dims,
	const rwd_graph_limits *lim, rwd_graph_tensor *out, rwd_error *err);

#endif
