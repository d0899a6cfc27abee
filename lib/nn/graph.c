/*
 * nn/graph.c — load, validate and interpret converted ONNX graphs (see
 * graph.h for the format, the operators and the limits).
 *
 * Load: graph.json is parsed with jansson (duplicate keys rejected), every
 * name is resolved through one hash table to a value slot (graph input,
 * float constant from the safetensors, int constant from the JSON, or a
 * node output), attributes are checked per operator, BatchNormalization is
 * folded into a per-channel scale/shift, and each value's last use is
 * recorded so the run can free intermediates early.
 * Run: one pass over the nodes in file order; each node allocates its
 * output after checking its shapes against the limits.
 */
#include "nn/graph.h"

#include <cblas.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_POW,
	OP_SQRT, OP_RELU, OP_SIGMOID, OP_HARDSIGMOID, OP_CLIP,
	OP_CONV, OP_CONVT, OP_BN, OP_GAP, OP_AVGPOOL, OP_RESIZE,
	OP_CONCAT, OP_SHAPE, OP_CAST, OP_SLICE, OP_SQUEEZE, OP_RESHAPE, OP_TRANSPOSE,
	OP_REDUCEMEAN, OP_MATMUL, OP_SOFTMAX,
	OP__N
};

static const struct opdesc {
	const char *name;
	int min_in, max_in;
	const char *attrs; /* allowed attribute names, space-separated */
} opdescs[OP__N] = {
	[OP_ADD] = {"Add", 2, 2, ""},
	[OP_SUB] = {"Sub", 2, 2, ""},
	[OP_MUL] = {"Mul", 2, 2, ""},
	[OP_DIV] = {"Div", 2, 2, ""},
	[OP_POW] = {"Pow", 2, 2, ""},
	[OP_SQRT] = {"Sqrt", 1, 1, ""},
	[OP_RELU] = {"Relu", 1, 1, ""},
	[OP_SIGMOID] = {"Sigmoid", 1, 1, ""},
	[OP_HARDSIGMOID] = {"HardSigmoid", 1, 1, "alpha beta"},
	[OP_CLIP] = {"Clip", 1, 3, "min max"},
	[OP_CONV] = {"Conv", 2, 3, "dilations group kernel_shape pads strides auto_pad"},
	[OP_CONVT] = {"ConvTranspose", 2, 3, "dilations group kernel_shape pads strides output_padding auto_pad"},
	[OP_BN] = {"BatchNormalization", 5, 5, "epsilon momentum spatial"},
	[OP_GAP] = {"GlobalAveragePool", 1, 1, ""},
	[OP_AVGPOOL] = {"AveragePool", 1, 1, "kernel_shape strides pads count_include_pad ceil_mode auto_pad"},
	[OP_RESIZE] = {"Resize", 2, 4, "mode coordinate_transformation_mode nearest_mode cubic_coeff_a exclude_outside"},
	[OP_CONCAT] = {"Concat", 1, RWD_GRAPH_MAX_INPUTS, "axis"},
	[OP_SHAPE] = {"Shape", 1, 1, ""},
	[OP_CAST] = {"Cast", 1, 1, "to"},
	[OP_SLICE] = {"Slice", 1, 5, "axes starts ends"},
	[OP_SQUEEZE] = {"Squeeze", 1, 2, "axes"},
	[OP_RESHAPE] = {"Reshape", 2, 2, "allowzero"},
	[OP_TRANSPOSE] = {"Transpose", 1, 1, "perm"},
	[OP_REDUCEMEAN] = {"ReduceMean", 1, 1, "axes keepdims"},
	[OP_MATMUL] = {"MatMul", 2, 2, ""},
	[OP_SOFTMAX] = {"Softmax", 1, 1, "axis"},
};

enum { V_INPUT, V_FCONST, V_ICONST, V_NODE };

typedef struct val {
	const char *name;   /* owned by the graph's name storage */
	int kind;
	int rank;           /* constants */
	int64_t dims[RWD_GRAPH_MAX_RANK];
	const float *f;     /* V_FCONST */
	int64_t *iv;        /* V_ICONST (owned) */
	int last_use;       /* index of the last node reading it, -1 if none */
} val;

typedef struct node {
	int op;
	int n_in;
	int in[RWD_GRAPH_MAX_INPUTS]; /* -1: an empty ("") optional input */
	int out;
	int64_t strides[2], pads[4], dil[2], kshape[2], opad[2];
	int has_kshape;
	int64_t group, axis, to;
	int has_axis;
	int64_t perm[RWD_GRAPH_MAX_RANK];
	int n_perm;
	int64_t axes[RWD_GRAPH_MAX_RANK];
	int n_axes, has_axes;
	int64_t starts[RWD_GRAPH_MAX_RANK], ends[RWD_GRAPH_MAX_RANK];
	int n_starts, n_ends;
	int count_include_pad, keepdims;
	float alpha, beta, clip_min, clip_max;
	int has_min, has_max;
	float *bn_scale, *bn_shift; /* owned, [bn_c] */
	int64_t bn_c;
} node;

struct rwd_graph {
	char *file;
	int opset;
	val *vals;
	size_t n_vals, cap_vals;
	node *nodes;
	size_t n_nodes;
	int input, output;
	/* name -> value index + 1 (0 = empty), open addressing */
	int *table;
	size_t table_cap;
	rwd_weights *owned_w;
	const rwd_weights *w;
	char **names; /* owned strings */
	size_t n_names;
	uint64_t weight_bytes;
	size_t int_values;
};

/* ---- errors ---- */

static int node_err(rwd_error *err, const rwd_graph *g, size_t ni, int code, const char *fmt, ...)
	RWD_PRINTF(5, 6);
static int node_err(rwd_error *err, const rwd_graph *g, size_t ni, int code, const char *fmt, ...)
{
	char msg[RWD_ERROR_MSG_MAX], obj[RWD_ERROR_OBJECT_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (g->nodes && ni < g->n_nodes && g->nodes[ni].op >= 0 && g->nodes[ni].op < OP__N)
		snprintf(obj, sizeof(obj), "nodes[%zu] (%s)", ni, opdescs[g->nodes[ni].op].name);
	else
		snprintf(obj, sizeof(obj), "nodes[%zu]", ni);
	rwd_errorf(err, code, "%s", msg);
	rwd_error_where(err, g->file, obj);
	return code;
}

/* ---- name table ---- */

static uint64_t hash_name(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static int find_val(const rwd_graph *g, const char *name)
{
	if (!g->table_cap)
		return -1;
	size_t mask = g->table_cap - 1;
	for (size_t i = hash_name(name) & mask;; i = (i + 1) & mask) {
		int v = g->table[i];
		if (!v)
			return -1;
		if (strcmp(g->vals[v - 1].name, name) == 0)
			return v - 1;
	}
}

static int table_put(rwd_graph *g, int idx)
{
	if ((g->n_vals + 1) * 2 > g->table_cap) {
		size_t cap = g->table_cap ? g->table_cap * 2 : 1024;
		int *t = calloc(cap, sizeof(*t));
		if (!t)
			return RWD_E_NOMEM;
		for (size_t i = 0; i < g->table_cap; i++) {
			int v = g->table[i];
			if (!v)
				continue;
			size_t j = hash_name(g->vals[v - 1].name) & (cap - 1);
			while (t[j])
				j = (j + 1) & (cap - 1);
			t[j] = v;
		}
		free(g->table);
		g->table = t;
		g->table_cap = cap;
	}
	size_t j = hash_name(g->vals[idx].name) & (g->table_cap - 1);
	while (g->table[j])
		j = (j + 1) & (g->table_cap - 1);
	g->table[j] = idx + 1;
	return 0;
}

/* Add a value named `name` (copied); returns its index or a negative code. */
static int add_val(rwd_graph *g, const char *name, int kind)
{
	if (g->n_vals == g->cap_vals) {
		size_t cap = g->cap_vals ? g->cap_vals * 2 : 256;
		val *v = realloc(g->vals, cap * sizeof(*v));
		char **nm = realloc(g->names, cap * sizeof(*nm));
		if (v)
			g->vals = v;
		if (nm)
			g->names = nm;
		if (!v || !nm)
			return RWD_E_NOMEM;
		g->cap_vals = cap;
	}
	char *s = strdup(name);
	if (!s)
		return RWD_E_NOMEM;
	g->names[g->n_names++] = s;
	val *v = &g->vals[g->n_vals];
	memset(v, 0, sizeof(*v));
	v->name = s;
	v->kind = kind;
	v->last_use = -1;
	int r = table_put(g, (int)g->n_vals);
	if (r)
		return r;
	return (int)g->n_vals++;
}

static int check_name(const char *s, size_t len)
{
	if (len == 0 || len > RWD_GRAPH_MAX_NAME)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

/* ---- attributes ---- */

static int attr_allowed(int op, const char *key)
{
	const char *a = opdescs[op].attrs;
	size_t kl = strlen(key);
	while (*a) {
		const char *e = strchr(a, ' ');
		size_t l = e ? (size_t)(e - a) : strlen(a);
		if (l == kl && memcmp(a, key, l) == 0)
			return 1;
		if (!e)
			break;
		a = e + 1;
	}
	return 0;
}

static int get_int(const json_t *v, int64_t lo, int64_t hi, int64_t *out)
{
	if (!json_is_integer(v))
		return 0;
	json_int_t x = json_integer_value(v);
	if (x < lo || x > hi)
		return 0;
	*out = x;
	return 1;
}

static int get_ints(const json_t *v, size_t min_n, size_t max_n, int64_t lo, int64_t hi, int64_t *out,
	int *n)
{
	if (!json_is_array(v) || json_array_size(v) < min_n || json_array_size(v) > max_n)
		return 0;
	for (size_t i = 0; i < json_array_size(v); i++)
		if (!get_int(json_array_get(v, i), lo, hi, &out[i]))
			return 0;
	*n = (int)json_array_size(v);
	return 1;
}

static int get_float(const json_t *v, float *out)
{
	if (!json_is_number(v))
		return 0;
	double d = json_number_value(v);
	if (!isfinite(d) || fabs(d) > 3.0e38)
		return 0;
	*out = (float)d;
	return 1;
}

#define BIGDIM ((int64_t)1 << 40)

static int parse_attrs(rwd_graph *g, size_t ni, node *n, const json_t *attrs, rwd_error *err)
{
	/* defaults */
	for (int i = 0; i < 2; i++) {
		n->strides[i] = 1;
		n->dil[i] = 1;
		n->opad[i] = 0;
	}
	for (int i = 0; i < 4; i++)
		n->pads[i] = 0;
	n->group = 1;
	n->axis = (n->op == OP_SOFTMAX && g->opset >= 13) ? -1 : (n->op == OP_CONCAT ? 0 : 1);
	n->alpha = 0.2f;
	n->beta = 0.5f;
	n->keepdims = 1;
	n->to = -1;
	float eps = 1e-5f;
	if (attrs && !json_is_object(attrs))
		return node_err(err, g, ni, RWD_E_INVALID, "\"attrs\" must be an object");
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)attrs, key, v) {
		int ok = 1, cnt = 0;
		if (!attr_allowed(n->op, key))
			return node_err(err, g, ni, RWD_E_UNSUPPORTED, "attribute \"%s\" is not supported for %s",
				key, opdescs[n->op].name);
		if (!strcmp(key, "strides") || !strcmp(key, "dilations")) {
			int64_t *dst = key[0] == 's' ? n->strides : n->dil;
			ok = get_ints(v, 2, 2, 1, 64, dst, &cnt);
		} else if (!strcmp(key, "kernel_shape")) {
			ok = get_ints(v, 2, 2, 1, 64, n->kshape, &cnt);
			n->has_kshape = 1;
		} else if (!strcmp(key, "pads")) {
			ok = get_ints(v, 4, 4, 0, 64, n->pads, &cnt);
		} else if (!strcmp(key, "output_padding")) {
			ok = get_ints(v, 2, 2, 0, 64, n->opad, &cnt);
		} else if (!strcmp(key, "auto_pad")) {
			ok = json_is_string(v) && !strcmp(json_string_value(v), "NOTSET");
		} else if (!strcmp(key, "group")) {
			ok = get_int(v, 1, 1 << 20, &n->group);
		} else if (!strcmp(key, "axis")) {
			ok = get_int(v, -RWD_GRAPH_MAX_RANK, RWD_GRAPH_MAX_RANK - 1, &n->axis);
			n->has_axis = 1;
		} else if (!strcmp(key, "perm")) {
			ok = get_ints(v, 1, RWD_GRAPH_MAX_RANK, 0, RWD_GRAPH_MAX_RANK - 1, n->perm, &n->n_perm);
			for (int i = 0; ok && i < n->n_perm; i++)
				for (int j = 0; j < i; j++)
					if (n->perm[i] == n->perm[j] || n->perm[i] >= n->n_perm)
						ok = 0;
			if (ok && n->n_perm && n->perm[0] >= n->n_perm)
				ok = 0;
		} else if (!strcmp(key, "axes")) {
			ok = get_ints(v, 1, RWD_GRAPH_MAX_RANK, -RWD_GRAPH_MAX_RANK, RWD_GRAPH_MAX_RANK - 1, n->axes,
				&n->n_axes);
			n->has_axes = 1;
		} else if (!strcmp(key, "starts")) {
			ok = get_ints(v, 1, RWD_GRAPH_MAX_RANK, -BIGDIM, INT64_MAX, n->starts, &n->n_starts);
		} else if (!strcmp(key, "ends")) {
			ok = get_ints(v, 1, RWD_GRAPH_MAX_RANK, -BIGDIM, INT64_MAX, n->ends, &n->n_ends);
		} else if (!strcmp(key, "to")) {
			ok = get_int(v, 0, 64, &n->to) && (n->to == 1 || n->to == 6 || n->to == 7);
		} else if (!strcmp(key, "count_include_pad")) {
			int64_t x = 0;
			ok = get_int(v, 0, 1, &x);
			n->count_include_pad = (int)x;
		} else if (!strcmp(key, "ceil_mode") || !strcmp(key, "exclude_outside") || !strcmp(key, "allowzero")) {
			int64_t x = 0;
			ok = get_int(v, 0, 0, &x); /* only the default 0 */
		} else if (!strcmp(key, "spatial")) {
			int64_t x = 0;
			ok = get_int(v, 1, 1, &x);
		} else if (!strcmp(key, "keepdims")) {
			int64_t x = 0;
			ok = get_int(v, 0, 1, &x);
			n->keepdims = (int)x;
		} else if (!strcmp(key, "alpha")) {
			ok = get_float(v, &n->alpha);
		} else if (!strcmp(key, "beta")) {
			ok = get_float(v, &n->beta);
		} else if (!strcmp(key, "epsilon")) {
			ok = get_float(v, &eps) && eps >= 0;
		} else if (!strcmp(key, "momentum") || !strcmp(key, "cubic_coeff_a")) {
			float x = 0;
			ok = get_float(v, &x);
		} else if (!strcmp(key, "min")) {
			ok = get_float(v, &n->clip_min);
			n->has_min = 1;
		} else if (!strcmp(key, "max")) {
			ok = get_float(v, &n->clip_max);
			n->has_max = 1;
		} else if (!strcmp(key, "mode")) {
			ok = json_is_string(v) && !strcmp(json_string_value(v), "nearest");
		} else if (!strcmp(key, "coordinate_transformation_mode")) {
			ok = json_is_string(v) && !strcmp(json_string_value(v), "asymmetric");
		} else if (!strcmp(key, "nearest_mode")) {
			ok = json_is_string(v) && !strcmp(json_string_value(v), "floor");
		}
		if (!ok)
			return node_err(err, g, ni, RWD_E_UNSUPPORTED,
				"attribute \"%s\": wrong type or unsupported value", key);
	}
	if (n->op == OP_RESIZE) {
		/* nearest/asymmetric/floor must be explicit: the defaults of other opsets differ */
		const char *need[] = {"mode", "coordinate_transformation_mode", "nearest_mode"};
		for (int i = 0; i < 3; i++)
			if (!json_object_get(attrs, need[i]))
				return node_err(err, g, ni, RWD_E_UNSUPPORTED,
					"Resize needs \"%s\" (only nearest / asymmetric / floor is supported)", need[i]);
	}
	if (n->op == OP_CAST && n->to < 0)
		return node_err(err, g, ni, RWD_E_INVALID, "Cast needs \"to\"");
	if (n->op == OP_SLICE && n->n_in == 1 && (n->n_starts == 0 || n->n_starts != n->n_ends ||
		(n->has_axes && n->n_axes != n->n_starts)))
		return node_err(err, g, ni, RWD_E_INVALID, "Slice needs \"starts\" and \"ends\" (and \"axes\") of one length");
	if (n->op == OP_TRANSPOSE && n->n_perm) {
		for (int i = 0; i < n->n_perm; i++)
			if (n->perm[i] >= n->n_perm)
				return node_err(err, g, ni, RWD_E_INVALID, "\"perm\" is not a permutation");
	}
	if (n->op == OP_BN) {
		/* fold the four constant [C] parameters into scale/shift */
		const float *p[4];
		int64_t c = -1;
		for (int i = 0; i < 4; i++) {
			int vi = n->in[1 + i];
			if (vi < 0 || g->vals[vi].kind != V_FCONST || g->vals[vi].rank != 1)
				return node_err(err, g, ni, RWD_E_UNSUPPORTED,
					"BatchNormalization parameter %d must be a constant float vector", i + 1);
			if (c >= 0 && g->vals[vi].dims[0] != c)
				return node_err(err, g, ni, RWD_E_INVALID,
					"BatchNormalization parameters differ in length");
			c = g->vals[vi].dims[0];
			p[i] = g->vals[vi].f;
		}
		n->bn_c = c;
		n->bn_scale = malloc((size_t)(c ? c : 1) * sizeof(float));
		n->bn_shift = malloc((size_t)(c ? c : 1) * sizeof(float));
		if (!n->bn_scale || !n->bn_shift)
			return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		for (int64_t i = 0; i < c; i++) {
			if (p[3][i] + eps <= 0)
				return node_err(err, g, ni, RWD_E_INVALID, "BatchNormalization variance + epsilon <= 0");
			float s = p[0][i] / sqrtf(p[3][i] + eps);
			n->bn_scale[i] = s;
			n->bn_shift[i] = p[1][i] - p[2][i] * s;
		}
	}
	return 0;
}

/* ---- load ---- */

static int resolve_input(rwd_graph *g, size_t ni, const char *name, int *out, rwd_error *err)
{
	int v = find_val(g, name);
	if (v >= 0) {
		*out = v;
		return 0;
	}
	const rwd_tensor *t = g->w ? rwd_weights_find(g->w, name) : NULL;
	if (!t)
		return node_err(err, g, ni, RWD_E_INVALID,
			"input \"%.80s\" is not defined before this node (not the graph input, a constant or an earlier output)",
			name);
	if (t->dtype != RWD_DTYPE_F32 || !t->f32)
		return node_err(err, g, ni, RWD_E_UNSUPPORTED, "constant \"%.80s\" is not float32", name);
	if (t->ndim > RWD_GRAPH_MAX_RANK)
		return node_err(err, g, ni, RWD_E_LIMIT, "constant \"%.80s\" has rank %d, more than %d", name,
			t->ndim, RWD_GRAPH_MAX_RANK);
	v = add_val(g, name, V_FCONST);
	if (v < 0)
		return rwd_errorf(err, v, "out of memory");
	g->vals[v].rank = t->ndim;
	for (int i = 0; i < t->ndim; i++)
		g->vals[v].dims[i] = t->shape[i];
	g->vals[v].f = t->f32;
	g->weight_bytes += t->nbytes;
	*out = v;
	return 0;
}

static int parse_int_constants(rwd_graph *g, const json_t *ic, rwd_error *err)
{
	if (!ic)
		return 0;
	if (!json_is_object(ic)) {
		rwd_error_where(err, g->file, "int_constants");
		return rwd_errorf(err, RWD_E_INVALID, "\"int_constants\" must be an object");
	}
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)ic, key, v) {
		char obj[RWD_ERROR_OBJECT_MAX];
		snprintf(obj, sizeof(obj), "int_constants.%.100s", key);
		if (!check_name(key, strlen(key))) {
			rwd_error_where(err, g->file, obj);
			return rwd_errorf(err, RWD_E_INVALID, "bad constant name (1..%d printable bytes)", RWD_GRAPH_MAX_NAME);
		}
		if (find_val(g, key) >= 0) {
			rwd_error_where(err, g->file, obj);
			return rwd_errorf(err, RWD_E_INVALID, "defined twice");
		}
		const json_t *shape = json_object_get(v, "shape"), *vals = json_object_get(v, "values");
		int64_t dims[RWD_GRAPH_MAX_RANK];
		int rank = 0;
		if (!json_is_array(shape) || !json_is_array(vals) ||
			(json_array_size(shape) && !get_ints(shape, 1, RWD_GRAPH_MAX_RANK, 0, RWD_GRAPH_MAX_INT_VALUES, dims, &rank))) {
			rwd_error_where(err, g->file, obj);
			return rwd_errorf(err, RWD_E_INVALID,
				"needs \"shape\" (up to %d sizes) and \"values\" (an array of integers)", RWD_GRAPH_MAX_RANK);
		}
		uint64_t n = 1;
		for (int i = 0; i < rank; i++)
			n *= (uint64_t)dims[i]; /* each <= 65536, rank <= 6: may exceed; checked below */
		size_t nv = json_array_size(vals);
		if (g->int_values + nv > RWD_GRAPH_MAX_INT_VALUES) {
			rwd_error_where(err, g->file, obj);
			return rwd_errorf(err, RWD_E_LIMIT, "more than %d integer constant values", RWD_GRAPH_MAX_INT_VALUES);
		}
		if (n != nv) {
			rwd_error_where(err, g->file, obj);
			return rwd_errorf(err, RWD_E_INVALID, "%zu values for a shape of %llu elements", nv,
				(unsigned long long)n);
		}
		int idx = add_val(g, key, V_ICONST);
		if (idx < 0)
			return rwd_errorf(err, idx, "out of memory");
		val *cv = &g->vals[idx];
		cv->rank = rank;
		memcpy(cv->dims, dims, sizeof(int64_t) * (size_t)rank);
		cv->iv = malloc((nv ? nv : 1) * sizeof(int64_t));
		if (!cv->iv)
			return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		for (size_t i = 0; i < nv; i++) {
			if (!json_is_integer(json_array_get(vals, i))) {
				rwd_error_where(err, g->file, obj);
				return rwd_errorf(err, RWD_E_INVALID, "values[%zu] is not an integer", i);
			}
			cv->iv[i] = json_integer_value(json_array_get(vals, i));
		}
		g->int_values += nv;
	}
	return 0;
}

static int parse_node(rwd_graph *g, size_t ni, const json_t *jn, rwd_error *err)
{
	node *n = &g->nodes[ni];
	n->op = -1;
	if (!json_is_object(jn))
		return node_err(err, g, ni, RWD_E_INVALID, "a node must be an object");
	const char *op = json_string_value(json_object_get(jn, "op"));
	if (!op)
		return node_err(err, g, ni, RWD_E_INVALID, "\"op\" must be a string");
	for (int i = 0; i < OP__N; i++)
		if (!strcmp(opdescs[i].name, op))
			n->op = i;
	if (n->op < 0)
		return node_err(err, g, ni, RWD_E_UNSUPPORTED, "operator \"%.60s\" is not supported", op);
	const char *k;
	json_t *x;
	json_object_foreach((json_t *)jn, k, x) {
		if (strcmp(k, "op") && strcmp(k, "inputs") && strcmp(k, "outputs") && strcmp(k, "attrs"))
			return node_err(err, g, ni, RWD_E_INVALID, "unknown key \"%.60s\"", k);
	}
	const json_t *ins = json_object_get(jn, "inputs"), *outs = json_object_get(jn, "outputs");
	if (!json_is_array(ins) || !json_is_array(outs))
		return node_err(err, g, ni, RWD_E_INVALID, "\"inputs\" and \"outputs\" must be arrays");
	size_t nin = json_array_size(ins);
	if (nin < (size_t)opdescs[n->op].min_in || nin > (size_t)opdescs[n->op].max_in)
		return node_err(err, g, ni, RWD_E_INVALID, "%zu inputs (%s takes %d to %d)", nin, op,
			opdescs[n->op].min_in, opdescs[n->op].max_in);
	if (json_array_size(outs) != 1)
		return node_err(err, g, ni, RWD_E_UNSUPPORTED, "%zu outputs (exactly one is supported)",
			json_array_size(outs));
	n->n_in = (int)nin;
	for (size_t i = 0; i < nin; i++) {
		const json_t *s = json_array_get(ins, i);
		if (!json_is_string(s))
			return node_err(err, g, ni, RWD_E_INVALID, "inputs[%zu] is not a string", i);
		size_t l = json_string_length(s);
		if (l == 0 && i > 0 && (n->op == OP_RESIZE || n->op == OP_CLIP || n->op == OP_SLICE || n->op == OP_CONV ||
			n->op == OP_CONVT)) {
			n->in[i] = -1; /* an omitted optional input */
			continue;
		}
		if (!check_name(json_string_value(s), l) || strlen(json_string_value(s)) != l)
			return node_err(err, g, ni, RWD_E_INVALID, "inputs[%zu]: bad name (1..%d printable bytes)", i,
				RWD_GRAPH_MAX_NAME);
		int r = resolve_input(g, ni, json_string_value(s), &n->in[i], err);
		if (r)
			return r;
	}
	if (n->in[0] < 0)
		return node_err(err, g, ni, RWD_E_INVALID, "inputs[0] is empty");
	const json_t *s = json_array_get(outs, 0);
	if (!json_is_string(s) || !check_name(json_string_value(s), json_string_length(s)) ||
		strlen(json_string_value(s)) != json_string_length(s))
		return node_err(err, g, ni, RWD_E_INVALID, "outputs[0]: bad name (1..%d printable bytes)",
			RWD_GRAPH_MAX_NAME);
	const char *oname = json_string_value(s);
	if (find_val(g, oname) >= 0 || (g->w && rwd_weights_find(g->w, oname)))
		return node_err(err, g, ni, RWD_E_INVALID, "output \"%.80s\" is defined twice", oname);
	int r = parse_attrs(g, ni, n, json_object_get(jn, "attrs"), err);
	if (r)
		return r;
	int o = add_val(g, oname, V_NODE);
	if (o < 0)
		return rwd_errorf(err, o, "out of memory");
	n->out = o;
	for (int i = 0; i < n->n_in; i++)
		if (n->in[i] >= 0)
			g->vals[n->in[i]].last_use = (int)ni;
	return 0;
}

int rwd_graph_parse(const char *json, size_t len, const rwd_weights *w, const char *name,
	rwd_graph **out, rwd_error *err)
{
	*out = NULL;
	if (!name)
		name = "<memory>";
	if (len > RWD_GRAPH_MAX_JSON_BYTES) {
		rwd_error_where(err, name, NULL);
		return rwd_errorf(err, RWD_E_LIMIT, "graph description of %zu bytes, more than %u", len,
			RWD_GRAPH_MAX_JSON_BYTES);
	}
	json_error_t jerr;
	json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		rwd_error_where(err, name, NULL);
		rwd_error_at(err, jerr.line, jerr.column, jerr.position);
		return rwd_errorf(err, RWD_E_FORMAT, "%s", jerr.text);
	}
	int r = 0;
	rwd_graph *g = calloc(1, sizeof(*g));
	if (!g || !(g->file = strdup(name))) {
		r = rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		goto fail;
	}
	g->w = w;
	g->input = g->output = -1;
	const char *fmt = json_string_value(json_object_get(root, "format"));
	if (!json_is_object(root) || !fmt || strcmp(fmt, "rewardd-onnx-graph-1")) {
		rwd_error_where(err, name, "format");
		r = rwd_errorf(err, RWD_E_UNSUPPORTED, "not a \"rewardd-onnx-graph-1\" graph description");
		goto fail;
	}
	int64_t opset;
	if (!get_int(json_object_get(root, "opset"), 1, 30, &opset)) {
		rwd_error_where(err, name, "opset");
		r = rwd_errorf(err, RWD_E_INVALID, "\"opset\" must be an integer in 1..30");
		goto fail;
	}
	g->opset = (int)opset;
	const json_t *jin = json_object_get(root, "input"), *jout = json_object_get(root, "output");
	if (!json_is_string(jin) || !check_name(json_string_value(jin), json_string_length(jin)) ||
		!json_is_string(jout) || !check_name(json_string_value(jout), json_string_length(jout))) {
		rwd_error_where(err, name, "input");
		r = rwd_errorf(err, RWD_E_INVALID, "\"input\" and \"output\" must be value names");
		goto fail;
	}
	if (g->w && rwd_weights_find(g->w, json_string_value(jin))) {
		rwd_error_where(err, name, "input");
		r = rwd_errorf(err, RWD_E_INVALID, "the graph input is also a constant");
		goto fail;
	}
	g->input = add_val(g, json_string_value(jin), V_INPUT);
	if (g->input < 0) {
		r = rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		goto fail;
	}
	r = parse_int_constants(g, json_object_get(root, "int_constants"), err);
	if (r)
		goto fail;
	const json_t *nodes = json_object_get(root, "nodes");
	if (!json_is_array(nodes) || json_array_size(nodes) == 0) {
		rwd_error_where(err, name, "nodes");
		r = rwd_errorf(err, RWD_E_INVALID, "\"nodes\" must be a non-empty array");
		goto fail;
	}
	if (json_array_size(nodes) > RWD_GRAPH_MAX_NODES) {
		rwd_error_where(err, name, "nodes");
		r = rwd_errorf(err, RWD_E_LIMIT, "%zu nodes, more than %d", json_array_size(nodes), RWD_GRAPH_MAX_NODES);
		goto fail;
	}
	g->nodes = calloc(json_array_size(nodes), sizeof(node));
	if (!g->nodes) {
		r = rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < json_array_size(nodes); i++) {
		g->n_nodes = i + 1;
		r = parse_node(g, i, json_array_get(nodes, i), err);
		if (r)
			goto fail;
	}
	g->output = find_val(g, json_string_value(jout));
	if (g->output < 0 || g->vals[g->output].kind != V_NODE) {
		rwd_error_where(err, name, "output");
		r = rwd_errorf(err, RWD_E_INVALID, "the graph output \"%.80s\" is not a node output", json_string_value(jout));
		goto fail;
	}
	g->vals[g->output].last_use = INT_MAX; /* never freed by the run */
	json_decref(root);
	*out = g;
	return 0;
fail:
	json_decref(root);
	rwd_graph_free(g);
	return r;
}

int rwd_graph_load(const char *dir, const char *net, rwd_graph **out, rwd_error *err)
{
	char path[4096];
	rwd_weights *w = NULL;
	char *buf = NULL;
	FILE *f = NULL;
	int r;
	*out = NULL;
	snprintf(path, sizeof(path), "%s/%s.safetensors", dir, net);
	r = rwd_weights_open(path, NULL, &w, err);
	if (r)
		return r;
	snprintf(path, sizeof(path), "%s/%s.graph.json", dir, net);
	f = fopen(path, "rb");
	if (!f) {
		rwd_error_where(err, path, NULL);
		r = rwd_errorf(err, RWD_E_IO, "cannot open: %s", strerror(errno));
		goto fail;
	}
	size_t cap = 1 << 20, len = 0;
	buf = malloc(cap);
	if (!buf) {
		r = rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		goto fail;
	}
	for (;;) {
		size_t got = fread(buf + len, 1, cap - len, f);
		len += got;
		if (len < cap)
			break;
		if (cap > RWD_GRAPH_MAX_JSON_BYTES) {
			rwd_error_where(err, path, NULL);
			r = rwd_errorf(err, RWD_E_LIMIT, "larger than %u bytes", RWD_GRAPH_MAX_JSON_BYTES);
			goto fail;
		}
		char *nb = realloc(buf, cap * 2);
		if (!nb) {
			r = rwd_errorf(err, RWD_E_NOMEM, "out of memory");
			goto fail;
		}
		buf = nb;
		cap *= 2;
	}
	if (ferror(f)) {
		rwd_error_where(err, path, NULL);
		r = rwd_errorf(err, RWD_E_IO, "read failed");
		goto fail;
	}
	r = rwd_graph_parse(buf, len, w, path, out, err);
	if (r)
		goto fail;
	(*out)->owned_w = w;
	fclose(f);
	free(buf);
	return 0;
fail:
	if (f)
		fclose(f);
	free(buf);
	rwd_weights_free(w);
	return r;
}

void rwd_graph_free(rwd_graph *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->n_vals; i++)
		free(g->vals[i].iv);
	for (size_t i = 0; i < g->n_names; i++)
		free(g->names[i]);
	for (size_t i = 0; i < g->n_nodes; i++) {
		free(g->nodes[i].bn_scale);
		free(g->nodes[i].bn_shift);
	}
	free(g->names);
	free(g->vals);
	free(g->nodes);
	free(g->table);
	free(g->file);
	rwd_weights_free(g->owned_w);
	free(g);
}

size_t rwd_graph_node_count(const rwd_graph *g)
{
	return g->n_nodes;
}

uint64_t rwd_graph_weight_bytes(const rwd_graph *g)
{
	return g->weight_bytes;
}

rwd_graph_limits rwd_graph_default_limits(void)
{
	rwd_graph_limits l = {.max_elems = (uint64_t)1 << 28};
	return l;
}

/* ---- run ---- */

typedef struct rt {
	int is_int;
	int rank;
	int64_t dims[RWD_GRAPH_MAX_RANK];
	float *f;
	int64_t *i;
	int owned;
	uint64_t n;
} rt;

typedef struct ctx {
	const rwd_graph *g;
	rt *s;
	uint64_t max_elems;
	rwd_error *err;
	size_t ni;
} ctx;

#define FAIL(c, code, ...) node_err((c)->err, (c)->g, (c)->ni, (code), __VA_ARGS__)

static int count_elems(ctx *c, int rank, const int64_t *dims, uint64_t *n)
{
	uint64_t x = 1;
	for (int i = 0; i < rank; i++) {
		if (dims[i] < 0)
			return FAIL(c, RWD_E_INVALID, "negative dimension %lld", (long long)dims[i]);
		if (dims[i] && x > c->max_elems / (uint64_t)dims[i])
			return FAIL(c, RWD_E_LIMIT, "a tensor of more than %llu elements",
				(unsigned long long)c->max_elems);
		x *= (uint64_t)dims[i];
	}
	if (x > c->max_elems)
		return FAIL(c, RWD_E_LIMIT, "a tensor of %llu elements, more than %llu", (unsigned long long)x,
			(unsigned long long)c->max_elems);
	*n = x;
	return 0;
}

/* Allocate the node's output slot. */
static int alloc_out(ctx *c, int is_int, int rank, const int64_t *dims, rt **out)
{
	if (rank > RWD_GRAPH_MAX_RANK)
		return FAIL(c, RWD_E_LIMIT, "output rank %d, more than %d", rank, RWD_GRAPH_MAX_RANK);
	rt *o = &c->s[c->g->nodes[c->ni].out];
	uint64_t n;
	int r = count_elems(c, rank, dims, &n);
	if (r)
		return r;
	o->is_int = is_int;
	o->rank = rank;
	memcpy(o->dims, dims, sizeof(int64_t) * (size_t)rank);
	o->n = n;
	o->owned = 1;
	size_t bytes = (size_t)(n ? n : 1) * (is_int ? sizeof(int64_t) : sizeof(float));
	void *p = malloc(bytes);
	if (!p)
		return FAIL(c, RWD_E_NOMEM, "out of memory (%zu bytes)", bytes);
	if (is_int)
		o->i = p;
	else
		o->f = p;
	*out = o;
	return 0;
}

static const rt *in_f(ctx *c, int k, int *ok)
{
	const rt *t = &c->s[c->g->nodes[c->ni].in[k]];
	if (t->is_int) {
		FAIL(c, RWD_E_INVALID, "input %d is an integer tensor where float is needed", k);
		*ok = 0;
	}
	return t;
}

static const rt *in_i(ctx *c, int k, int *ok)
{
	const rt *t = &c->s[c->g->nodes[c->ni].in[k]];
	if (!t->is_int) {
		FAIL(c, RWD_E_INVALID, "input %d is a float tensor where integers are needed", k);
		*ok = 0;
	}
	return t;
}

static int norm_axis(ctx *c, int64_t axis, int rank, int allow_end, int *out)
{
	int64_t a = axis < 0 ? axis + rank + allow_end : axis;
	if (a < 0 || a >= rank + allow_end)
		return FAIL(c, RWD_E_INVALID, "axis %lld out of range for rank %d", (long long)axis, rank);
	*out = (int)a;
	return 0;
}

static void dense_strides(int rank, const int64_t *dims, int64_t *st)
{
	int64_t s = 1;
	for (int i = rank - 1; i >= 0; i--) {
		st[i] = s;
		s *= dims[i];
	}
}

/* dst[dense over odims] = src[base + sum idx_k * sst_k]; elsize 4 or 8. */
static void gather(const void *src, size_t es, int rank, const int64_t *odims, const int64_t *sst,
	int64_t base, void *dst)
{
	int64_t idx[RWD_GRAPH_MAX_RANK] = {0};
	uint64_t total = 1;
	for (int i = 0; i < rank; i++)
		total *= (uint64_t)odims[i];
	if (total == 0)
		return;
	if (rank == 0) {
		memcpy(dst, (const char *)src + base * (int64_t)es, es);
		return;
	}
	int64_t inner = odims[rank - 1], ist = sst[rank - 1];
	char *d = dst;
	for (uint64_t done = 0; done < total; done += (uint64_t)inner) {
		int64_t off = base;
		for (int i = 0; i < rank - 1; i++)
			off += idx[i] * sst[i];
		const char *s = (const char *)src + off * (int64_t)es;
		if (ist == 1) {
			memcpy(d, s, (size_t)inner * es);
		} else if (es == 4) {
			for (int64_t j = 0; j < inner; j++)
				memcpy(d + j * 4, s + j * ist * 4, 4);
		} else {
			for (int64_t j = 0; j < inner; j++)
				memcpy(d + j * 8, s + j * ist * 8, 8);
		}
		d += inner * (int64_t)es;
		for (int i = rank - 2; i >= 0; i--) {
			if (++idx[i] < odims[i])
				break;
			idx[i] = 0;
		}
	}
}

static int op_binary(ctx *c, int op)
{
	int ok = 1;
	const rt *a = in_f(c, 0, &ok), *b = ok ? in_f(c, 1, &ok) : NULL;
	if (!ok)
		return c->err ? c->err->code : RWD_E_INVALID;
	int rank = a->rank > b->rank ? a->rank : b->rank;
	int64_t od[RWD_GRAPH_MAX_RANK] = {0}, sa[RWD_GRAPH_MAX_RANK] = {0}, sb[RWD_GRAPH_MAX_RANK] = {0};
	int64_t ast[RWD_GRAPH_MAX_RANK], bst[RWD_GRAPH_MAX_RANK];
	dense_strides(a->rank, a->dims, ast);
	dense_strides(b->rank, b->dims, bst);
	for (int i = 0; i < rank; i++) {
		int ia = i - (rank - a->rank), ib = i - (rank - b->rank);
		int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
		if (da != db && da != 1 && db != 1)
			return FAIL(c, RWD_E_INVALID, "shapes do not broadcast (axis %d: %lld vs %lld)", i,
				(long long)da, (long long)db);
		od[i] = da == 1 ? db : da;
		sa[i] = (da == 1) ? 0 : ast[ia];
		sb[i] = (db == 1) ? 0 : bst[ib];
	}
	rt *o;
	int r = alloc_out(c, 0, rank, od, &o);
	if (r)
		return r;
	/* coalesce dims: merge i into i+1 when both operands are contiguous across them */
	int64_t cd[RWD_GRAPH_MAX_RANK], ca[RWD_GRAPH_MAX_RANK], cb[RWD_GRAPH_MAX_RANK];
	int cr = 0;
	for (int i = 0; i < rank; i++) {
		if (od[i] == 1)
			continue;
		if (cr > 0 && ca[cr - 1] == sa[i] * od[i] && cb[cr - 1] == sb[i] * od[i]) {
			cd[cr - 1] *= od[i];
			ca[cr - 1] = sa[i];
			cb[cr - 1] = sb[i];
			continue;
		}
		cd[cr] = od[i];
		ca[cr] = sa[i];
		cb[cr] = sb[i];
		cr++;
	}
	if (cr == 0) {
		cd[0] = 1;
		ca[0] = cb[0] = 0;
		cr = 1;
	}
	if (o->n == 0)
		return 0;
	int64_t inner = cd[cr - 1], ia = ca[cr - 1], ib = cb[cr - 1];
	int64_t idx[RWD_GRAPH_MAX_RANK] = {0};
	float *y = o->f;
	/* Pow's exponent 2 is x*x, as ONNX Runtime special-cases it */
	int pow2 = op == OP_POW && b->n == 1 && b->f[0] == 2.0f;
	for (uint64_t done = 0; done < o->n; done += (uint64_t)inner) {
		int64_t oa = 0, ob = 0;
		for (int i = 0; i < cr - 1; i++) {
			oa += idx[i] * ca[i];
			ob += idx[i] * cb[i];
		}
		const float *x0 = a->f + oa, *x1 = b->f + ob;
#define LOOP(expr) \
	do { \
		if (ia == 1 && ib == 1) \
			for (int64_t j = 0; j < inner; j++) { float p = x0[j], q = x1[j]; y[j] = (expr); } \
		else if (ia == 1) \
			for (int64_t j = 0; j < inner; j++) { float p = x0[j], q = x1[0]; y[j] = (expr); } \
		else \
			for (int64_t j = 0; j < inner; j++) { float p = x0[j * ia], q = x1[j * ib]; y[j] = (expr); } \
	} while (0)
		switch (op) {
		case OP_ADD: LOOP(p + q); break;
		case OP_SUB: LOOP(p - q); break;
		case OP_MUL: LOOP(p * q); break;
		case OP_DIV: LOOP(p / q); break;
		default:
			if (pow2)
				LOOP(((void)q, p * p));
			else
				LOOP(powf(p, q));
			break;
		}
#undef LOOP
		y += inner;
		for (int i = cr - 2; i >= 0; i--) {
			if (++idx[i] < cd[i])
				break;
			idx[i] = 0;
		}
	}
	return 0;
}

static float scalar_of(const rt *t)
{
	return t->is_int ? (float)t->i[0] : t->f[0];
}

static int op_unary(ctx *c, int op)
{
	const node *n = &c->g->nodes[c->ni];
	int ok = 1;
	const rt *a = in_f(c, 0, &ok);
	if (!ok)
		return c->err->code;
	float lo = -INFINITY, hi = INFINITY;
	if (op == OP_CLIP) {
		if (n->has_min)
			lo = n->clip_min;
		if (n->has_max)
			hi = n->clip_max;
		for (int k = 1; k < n->n_in; k++) {
			if (n->in[k] < 0)
				continue;
			const rt *t = &c->s[n->in[k]];
			if (t->n != 1)
				return FAIL(c, RWD_E_INVALID, "Clip bound %d is not a scalar", k);
			if (k == 1)
				lo = scalar_of(t);
			else
				hi = scalar_of(t);
		}
	}
	rt *o;
	int r = alloc_out(c, 0, a->rank, a->dims, &o);
	if (r)
		return r;
	const float *x = a->f;
	float *y = o->f;
	uint64_t m = a->n;
	switch (op) {
	case OP_SQRT: for (uint64_t i = 0; i < m; i++) y[i] = sqrtf(x[i]); break;
	case OP_RELU: for (uint64_t i = 0; i < m; i++) y[i] = x[i] > 0 ? x[i] : 0.0f; break;
	case OP_SIGMOID: for (uint64_t i = 0; i < m; i++) y[i] = 1.0f / (1.0f + expf(-x[i])); break;
	case OP_HARDSIGMOID: {
		float al = n->alpha, be = n->beta;
		for (uint64_t i = 0; i < m; i++) {
			float v = al * x[i] + be;
			y[i] = v < 0 ? 0.0f : (v > 1 ? 1.0f : v);
		}
		break;
	}
	default:
		for (uint64_t i = 0; i < m; i++) {
			float v = x[i];
			y[i] = v < lo ? lo : (v > hi ? hi : v);
		}
		break;
	}
	return 0;
}

static int op_bn(ctx *c)
{
	const node *n = &c->g->nodes[c->ni];
	int ok = 1;
	const rt *a = in_f(c, 0, &ok);
	if (!ok)
		return c->err->code;
	if (a->rank < 2 || a->dims[1] != n->bn_c)
		return FAIL(c, RWD_E_INVALID, "input has %lld channels, the parameters %lld",
			a->rank >= 2 ? (long long)a->dims[1] : -1LL, (long long)n->bn_c);
	rt *o;
	int r = alloc_out(c, 0, a->rank, a->dims, &o);
	if (r)
		return r;
	uint64_t inner = 1;
	for (int i = 2; i < a->rank; i++)
		inner *= (uint64_t)a->dims[i];
	uint64_t outer = (uint64_t)a->dims[0];
	for (uint64_t b = 0; b < outer; b++)
		for (int64_t ch = 0; ch < n->bn_c; ch++) {
			const float *x = a->f + (b * (uint64_t)n->bn_c + (uint64_t)ch) * inner;
			float *y = o->f + (b * (uint64_t)n->bn_c + (uint64_t)ch) * inner;
			float s = n->bn_scale[ch], t = n->bn_shift[ch];
			for (uint64_t i = 0; i < inner; i++)
				y[i] = x[i] * s + t;
		}
	return 0;
}

static int conv_dims(ctx *c, int64_t in, int64_t k, int64_t s, int64_t d, int64_t p0, int64_t p1, int64_t *out)
{
	int64_t eff = d * (k - 1) + 1;
	if (in + p0 + p1 < eff)
		return FAIL(c, RWD_E_INVALID, "input of %lld (padded %lld) is smaller than the kernel's %lld",
			(long long)in, (long long)(in + p0 + p1), (long long)eff);
	*out = (in + p0 + p1 - eff) / s + 1;
	return 0;
}

static int op_conv(ctx *c)
{
	const node *n = &c->g->nodes[c->ni];
	int ok = 1;
	const rt *x = in_f(c, 0, &ok), *w = ok ? in_f(c, 1, &ok) : NULL;
	const rt *b = (ok && n->n_in > 2 && n->in[2] >= 0) ? in_f(c, 2, &ok) : NULL;
	if (!ok)
		return c->err->code;
	if (x->rank != 4 || w->rank != 4)
		return FAIL(c, RWD_E_UNSUPPORTED, "only 2-D convolution (rank-4 input and weight) is supported");
	int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
	int64_t M = w->dims[0], G = n->group, kh = w->dims[2], kw = w->dims[3];
	if (n->has_kshape && (n->kshape[0] != kh || n->kshape[1] != kw))
		return FAIL(c, RWD_E_INVALID, "kernel_shape differs from the weight's");
	if (C % G || M % G || w->dims[1] != C / G)
		return FAIL(c, RWD_E_INVALID, "input channels %lld, weight [%lld, %lld, ...], group %lld do not agree",
			(long long)C, (long long)M, (long long)w->dims[1], (long long)G);
	if (b && (b->rank != 1 || b->dims[0] != M))
		return FAIL(c, RWD_E_INVALID, "bias is not [%lld]", (long long)M);
	int64_t sh = n->strides[0], sw = n->strides[1], dh = n->dil[0], dw = n->dil[1];
	int64_t pt = n->pads[0], pl = n->pads[1], pb = n->pads[2], pr = n->pads[3];
	int64_t OH = 0, OW = 0;
	int r = conv_dims(c, H, kh, sh, dh, pt, pb, &OH);
	if (!r)
		r = conv_dims(c, W, kw, sw, dw, pl, pr, &OW);
	if (r)
		return r;
	int64_t od[4] = {N, M, OH, OW};
	rt *o;
	r = alloc_out(c, 0, 4, od, &o);
	if (r)
		return r;
	int64_t Cg = C / G, Mg = M / G, OHW = OH * OW, HW = H * W, K = Cg * kh * kw;
	if (o->n == 0)
		return 0;
	if (K > INT_MAX || OHW > INT_MAX || Mg > INT_MAX)
		return FAIL(c, RWD_E_LIMIT, "convolution too large for BLAS");
	for (int64_t i = 0; i < N * M; i++) {
		float bv = b ? b->f[i % M] : 0.0f;
		float *y = o->f + i * OHW;
		for (int64_t j = 0; j < OHW; j++)
			y[j] = bv;
	}
	if (Cg == 1 && Mg == 1) { /* depthwise: direct loops */
		for (int64_t bi = 0; bi < N; bi++)
			for (int64_t ch = 0; ch < C; ch++) {
				const float *in = x->f + (bi * C + ch) * HW, *wk = w->f + ch * kh * kw;
				float *out = o->f + (bi * M + ch) * OHW;
				for (int64_t oh = 0; oh < OH; oh++) {
					float *orow = out + oh * OW;
					for (int64_t ki = 0; ki < kh; ki++) {
						int64_t ih = oh * sh - pt + ki * dh;
						if (ih < 0 || ih >= H)
							continue;
						const float *irow = in + ih * W;
						for (int64_t kj = 0; kj < kw; kj++) {
							float wv = wk[ki * kw + kj];
							int64_t off = kj * dw - pl;
							int64_t ow0 = off < 0 ? (-off + sw - 1) / sw : 0;
							int64_t ow1 = W - 1 - off >= 0 ? (W - 1 - off) / sw + 1 : 0;
							if (ow1 > OW)
								ow1 = OW;
							if (sw == 1)
								for (int64_t ow = ow0; ow < ow1; ow++)
									orow[ow] += wv * irow[ow + off];
							else
								for (int64_t ow = ow0; ow < ow1; ow++)
									orow[ow] += wv * irow[ow * sw + off];
						}
					}
				}
			}
		return 0;
	}
	int direct = kh == 1 && kw == 1 && sh == 1 && sw == 1 && pt == 0 && pl == 0 && pb == 0 && pr == 0;
	float *col = NULL;
	if (!direct) {
		uint64_t ncol;
		int64_t cd[2] = {K, OHW};
		r = count_elems(c, 2, cd, &ncol);
		if (r)
			return r;
		col = malloc((size_t)ncol * sizeof(float));
		if (!col)
			return FAIL(c, RWD_E_NOMEM, "out of memory (im2col)");
	}
	for (int64_t bi = 0; bi < N; bi++)
		for (int64_t gi = 0; gi < G; gi++) {
			const float *in = x->f + (bi * C + gi * Cg) * HW;
			const float *src = in;
			if (!direct) {
				for (int64_t ci = 0; ci < Cg; ci++)
					for (int64_t ki = 0; ki < kh; ki++)
						for (int64_t kj = 0; kj < kw; kj++) {
							float *d = col + ((ci * kh + ki) * kw + kj) * OHW;
							const float *ich = in + ci * HW;
							int64_t off = kj * dw - pl;
							int64_t ow0 = off < 0 ? (-off + sw - 1) / sw : 0;
							int64_t ow1 = W - 1 - off >= 0 ? (W - 1 - off) / sw + 1 : 0;
							if (ow1 > OW)
								ow1 = OW;
							if (ow0 > ow1)
								ow0 = ow1;
							for (int64_t oh = 0; oh < OH; oh++, d += OW) {
								int64_t ih = oh * sh - pt + ki * dh;
								if (ih < 0 || ih >= H) {
									memset(d, 0, (size_t)OW * sizeof(float));
									continue;
								}
								const float *irow = ich + ih * W;
								for (int64_t ow = 0; ow < ow0; ow++)
									d[ow] = 0;
								for (int64_t ow = ow0; ow < ow1; ow++)
									d[ow] = irow[ow * sw + off];
								for (int64_t ow = ow1; ow < OW; ow++)
									d[ow] = 0;
							}
						}
				src = col;
			}
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Mg, (int)OHW, (int)K, 1.0f,
				w->f + gi * Mg * K, (int)K, src, (int)OHW, 1.0f, o->f + (bi * M + gi * Mg) * OHW, (int)OHW);
		}
	free(col);
	return 0;
}

static int op_convt(ctx *c)
{
	const node *n = &c->g->nodes[c->ni];
	int ok = 1;
	const rt *x = in_f(c, 0, &ok), *w = ok ? in_f(c, 1, &ok) : NULL;
	const rt *b = (ok && n->n_in > 2 && n->in[2] >= 0) ? in_f(c, 2, &ok) : NULL;
	if (!ok)
		return c->err->code;
	if (x->rank != 4 || w->rank != 4)
		return FAIL(c, RWD_E_UNSUPPORTED, "only 2-D transposed convolution is supported");
	if (n->group != 1)
		return FAIL(c, RWD_E_UNSUPPORTED, "ConvTranspose with group %lld (only 1)", (long long)n->group);
	int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
	int64_t M = w->dims[1], kh = w->dims[2], kw = w->dims[3];
	if (w->dims[0] != C)
		return FAIL(c, RWD_E_INVALID, "input has %lld channels, the weight %lld", (long long)C,
			(long long)w->dims[0]);
	if (n->has_kshape && (n->kshape[0] != kh || n->kshape[1] != kw))
		return FAIL(c, RWD_E_INVALID, "kernel_shape differs from the weight's");
	if (b && (b->rank != 1 || b->dims[0] != M))
		return FAIL(c, RWD_E_INVALID, "bias is not [%lld]", (long long)M);
	int64_t sh = n->strides[0], sw = n->strides[1], dh = n->dil[0], dw = n->dil[1];
	int64_t pt = n->pads[0], pl = n->pads[1], pb = n->pads[2], pr = n->pads[3];
	int64_t OH = sh * (H - 1) + n->opad[0] + (kh - 1) * dh + 1 - pt - pb;
	int64_t OW = sw * (W - 1) + n->opad[1] + (kw - 1) * dw + 1 - pl - pr;
	if (H < 1 || W < 1 || OH < 1 || OW < 1)
		return FAIL(c, RWD_E_INVALID, "empty input or output");
	int64_t od[4] = {N, M, OH, OW};
	rt *o;
	int r = alloc_out(c, 0, 4, od, &o);
	if (r)
		return r;
	int64_t R = M * kh * kw, HW = H * W, OHW = OH * OW;
	if (R > INT_MAX || HW > INT_MAX || C > INT_MAX)
		return FAIL(c, RWD_E_LIMIT, "transposed convolution too large for BLAS");
	uint64_t ncol;
	int64_t cd[2] = {R, HW};
	r = count_elems(c, 2, cd, &ncol);
	if (r)
		return r;
	float *col = malloc((size_t)(ncol ? ncol : 1) * sizeof(float));
	if (!col)
		return FAIL(c, RWD_E_NOMEM, "out of memory (col2im)");
	for (int64_t bi = 0; bi < N; bi++) {
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)R, (int)HW, (int)C, 1.0f, w->f, (int)R,
			x->f + bi * C * HW, (int)HW, 0.0f, col, (int)HW);
		for (int64_t m = 0; m < M; m++) {
			float *y = o->f + (bi * M + m) * OHW;
			float bv = b ? b->f[m] : 0.0f;
			for (int64_t j = 0; j < OHW; j++)
				y[j] = bv;
			for (int64_t ki = 0; ki < kh; ki++)
				for (int64_t kj = 0; kj < kw; kj++) {
					const float *src = col + ((m * kh + ki) * kw + kj) * HW;
					for (int64_t ih = 0; ih < H; ih++) {
						int64_t oh = ih * sh - pt + ki * dh;
						if (oh < 0 || oh >= OH)
							continue;
						for (int64_t iw = 0; iw < W; iw++) {
							int64_t ow = iw * sw - pl + kj * dw;
							if (ow >= 0 && ow < OW)
								y[oh * OW + ow] += src[ih * W + iw];
						}
					}
				}
		}
	}
	free(col);
	return 0;
}

static int op_pool(ctx *c, int global)
{
	const node *n = &c->g->nodes[c->ni];
	int ok = 1;
	const rt *x = in_f(c, 0, &ok);
	if (!ok)
		return c->err->code;
	if (x->rank != 4)
		return FAIL(c, RWD_E_UNSUPPORTED, "only rank-4 (NCHW) pooling is supported");
	int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
	int64_t kh = global ? H : n->kshape[0], kw = global ? W : n->kshape[1];
	if (!global && !n->has_kshape)
		return FAIL(c, RWD_E_INVALID, "AveragePool needs kernel_shape");
	int64_t sh = global ? 1 : n->strides[0], sw = global ? 1 : n->strides[1];
	int64_t pt = global ? 0 : n->pads[0], pl = global ? 0 : n->pads[1];
	int64_t pb = global ? 0 : n->pads[2], pr = global ? 0 : n->pads[3];
	if (global && (H < 1 || W < 1))
		return FAIL(c, RWD_E_INVALID, "empty input");
	int64_t OH = 0, OW = 0;
	int r = conv_dims(c, H, kh, sh, 1, pt, pb, &OH);
	if (!r)
		r = conv_dims(c, W, kw, sw, 1, pl, pr, &OW);
	if (r)
		return r;
	int64_t od[4] = {N, C, OH, OW};
	rt *o;
	r = alloc_out(c, 0, 4, od, &o);
	if (r)
		return r;
	for (int64_t p = 0; p < N * C; p++) {
		const float *in = x->f + p * H * W;
		float *y = o->f + p * OH * OW;
		for (int64_t oh = 0; oh < OH; oh++)
			for (int64_t ow = 0; ow < OW; ow++) {
				int64_t h0 = oh * sh - pt, w0 = ow * sw - pl;
				int64_t h1 = h0 + kh, w1 = w0 + kw;
				int64_t cnt = (h1 - h0) * (w1 - w0);
				if (h0 < 0) h0 = 0;
				if (w0 < 0) w0 = 0;
				if (h1 > H) h1 = H;
				if (w1 > W) w1 = W;
				float s = 0;
				for (int64_t i = h0; i < h1; i++)
					for (int64_t j = w0; j < w1; j++)
						s += in[i * W + j];
				if (!n->count_include_pad || global)
					cnt = (h1 - h0) * (w1 - w0);
				y[oh * OW + ow] = cnt > 0 ? s / (float)cnt : 0.0f;
			}
	}
	return 0;
}

static int op_resize(ctx *c)
{
	const node *n = &c->g->nodes[c->ni];
	int ok = 1;
	const rt *x = in_f(c, 0, &ok);
	if (!ok)
		return c->err->code;
	const rt *scales = NULL, *sizes = NULL;
	if (n->n_in == 2)
		scales = &c->s[n->in[1]];
	if (n->n_in >= 3 && n->in[2] >= 0 && c->s[n->in[2]].n > 0)
		scales = &c->s[n->in[2]];
	if (n->n_in >= 4 && n->in[3] >= 0 && c->s[n->in[3]].n > 0)
		sizes = &c->s[n->in[3]];
	if ((!scales) == (!sizes))
		return FAIL(c, RWD_E_INVALID, "Resize needs exactly one of scales and sizes");
	const rt *t = scales ? scales : sizes;
	if (t->rank != 1 || t->n != (uint64_t)x->rank || (scales && scales->is_int) || (sizes && !sizes->is_int))
		return FAIL(c, RWD_E_INVALID, "Resize scales/sizes must be a vector of the input's rank (%d)", x->rank);
	int64_t od[RWD_GRAPH_MAX_RANK] = {0};
	float sc[RWD_GRAPH_MAX_RANK];
	for (int i = 0; i < x->rank; i++) {
		if (scales) {
			sc[i] = scales->f[i];
			if (!(sc[i] > 0) || sc[i] > 1024)
				return FAIL(c, RWD_E_INVALID, "Resize scale %g out of (0, 1024]", (double)sc[i]);
			od[i] = (int64_t)floor((double)x->dims[i] * (double)sc[i]);
		} else {
			od[i] = sizes->i[i];
			if (od[i] < 0 || od[i] > BIGDIM)
				return FAIL(c, RWD_E_INVALID, "Resize size %lld out of range", (long long)od[i]);
			sc[i] = x->dims[i] ? (float)od[i] / (float)x->dims[i] : 1.0f;
		}
		if (od[i] > 0 && x->dims[i] == 0)
			return FAIL(c, RWD_E_INVALID, "Resize of an empty axis");
	}
	rt *o;
	int r = alloc_out(c, 0, x->rank, od, &o);
	if (r)
		return r;
	if (o->n == 0)
		return 0;
	int64_t ist[RWD_GRAPH_MAX_RANK], idx[RWD_GRAPH_MAX_RANK] = {0};
	dense_strides(x->rank, x->dims, ist);
	/* src index per output index, per axis: floor(o / scale), clamped */
	int64_t *map[RWD_GRAPH_MAX_RANK] = {0};
	for (int i = 0; i < x->rank; i++) {
		map[i] = malloc((size_t)(od[i] ? od[i] : 1) * sizeof(int64_t));
		if (!map[i]) {
			for (int j = 0; j < i; j++)
				free(map[j]);
			return FAIL(c, RWD_E_NOMEM, "out of memory");
		}
		for (int64_t k = 0; k < od[i]; k++) {
			int64_t s = (int64_t)floorf((float)k / sc[i]);
			map[i][k] = s < 0 ? 0 : (s >= x->dims[i] ? x->dims[i] - 1 : s);
		}
	}
	for (uint64_t p = 0; p < o->n; p++) {
		int64_t off = 0;
		for (int i = 0; i < x->rank; i++)
			off += map[i][idx[i]] * ist[i];
		o->f[p] = x->f[off];
		for (int i = x->rank - 1; i >= 0; i--) {
			if (++idx[i] < od[i])
				break;
			idx[i] = 0;
		}
	}
	for (int i = 0; i < x->rank; i++)
		free(map[i]);
	return 0;
}

static int op_concat(ctx *c)
{
	const node *n = &c->g->nodes[c->ni];
	const rt *a = &c->s[n->in[0]];
	int ax = 0;
	int r = norm_axis(c, n->axis, a->rank, 0, &ax);
	if (r)
		return r;
	int64_t od[RWD_GRAPH_MAX_RANK] = {0};
	memcpy(od, a->dims, sizeof(od));
	od[ax] = 0;
	for (int k = 0; k < n->n_in; k++) {
		const rt *t = &c->s[n->in[k]];
		if (t->is_int != a->is_int || t->rank != a->rank)
			return FAIL(c, RWD_E_INVALID, "input %d differs in type or rank", k);
		for (int i = 0; i < a->rank; i++)
			if (i != ax && t->dims[i] != a->dims[i])
				return FAIL(c, RWD_E_INVALID, "input %d differs in dimension %d", k, i);
		od[ax] += t->dims[ax];
	}
	rt *o;
	r = alloc_out(c, a->is_int, a->rank, od, &o);
	if (r)
		return r;
	size_t es = a->is_int ? 8 : 4;
	uint64_t outer = 1, inner = 1;
	for (int i = 0; i < ax; i++)
		outer *= (uint64_t)od[i];
	for (int i = ax + 1; i < a->rank; i++)
		inner *= (uint64_t)od[i];
	char *dst = o->is_int ? (char *)o->i : (char *)o->f;
	for (uint64_t p = 0; p < outer; p++)
		for (int k = 0; k < n->n_in; k++) {
			const rt *t = &c->s[n->in[k]];
			size_t chunk = (size_t)((uint64_t)t->dims[ax] * inner) * es;
			const char *src = (t->is_int ? (const char *)t->i : (const char *)t->f) + p * chunk;
			memcpy(dst, src, chunk);
			dst += chunk;
		}
	return 0;
}

static int copy_as(ctx *c, const rt *a, int rank, const int64_t *dims)
{
	rt *o;
	int r = alloc_out(c, a->is_int, rank, dims, &o);
	if (r)
		return r;
	if (o->n != a->n)
		return FAIL(c, RWD_E_INVALID, "element count changes (%llu -> %llu)", (unsigned long long)a->n,
			(unsigned long long)o->n);
	if (a->is_int)
		memcpy(o->i, a->i, (size_t)a->n * 8);
	else
		memcpy(o->f, a->f, (size_t)a->n * 4);
	return 0;
}

static int op_shape(ctx *c)
{
	const rt *a = &c->s[c->g->nodes[c->ni].in[0]];
	int64_t d = a->rank;
	rt *o;
	int r = alloc_out(c, 1, 1, &d, &o);
	if (r)
		return r;
	for (int i = 0; i < a->rank; i++)
		o->i[i] = a->dims[i];
	return 0;
}

static int op_cast(ctx *c)
{
	const node *n = &c->g->nodes[c->ni];
	const rt *a = &c->s[n->in[0]];
	int to_int = n->to != 1;
	if (!a->is_int && to_int)
		return FAIL(c, RWD_E_UNSUPPORTED, "Cast from float to integers is not supported");
	rt *o;
	int r = alloc_out(c, to_int, a->rank, a->dims, &o);
	if (r)
		return r;
	for (uint64_t i = 0; i < a->n; i++) {
		if (!to_int)
			o->f[i] = a->is_int ? (float)a->i[i] : a->f[i];
		else if (n->to == 6)
			o->i[i] = (int32_t)a->i[i]; /* wraps as ONNX's int64 -> int32 cast */
		else
			o->i[i] = a->i[i];
	}
	return 0;
}

/* Read an int vector input (Slice/Squeeze/Reshape operands). */
static int int_list(ctx *c, int k, int64_t *out, int *cnt, int max)
{
	int ok = 1;
	const rt *t = in_i(c, k, &ok);
	if (!ok)
		return c->err->code;
	if (t->rank > 1 || t->n > (uint64_t)max)
		return FAIL(c, RWD_E_INVALID, "input %d must be a vector of at most %d integers", k, max);
	for (uint64_t i = 0; i < t->n; i++)
		out[i] = t->i[i];
	*cnt = (int)t->n;
	return 0;
}

static int op_slice(ctx *c)
{
	const node *n = &c->g->nodes[c->ni];
	const rt *a = &c->s[n->in[0]];
	int64_t st[RWD_GRAPH_MAX_RANK], en[RWD_GRAPH_MAX_RANK], ax[RWD_GRAPH_MAX_RANK], sp[RWD_GRAPH_MAX_RANK];
	int ns, ne, na = 0, nsp = 0, r;
	if (n->n_in == 1) {
		ns = n->n_starts;
		ne = n->n_ends;
		memcpy(st, n->starts, sizeof(st));
		memcpy(en, n->ends, sizeof(en));
		if (n->has_axes) {
			na = n->n_axes;
			memcpy(ax, n->axes, sizeof(ax));
		}
	} else {
		if (n->n_in < 3)
			return FAIL(c, RWD_E_INVALID, "Slice needs starts and ends inputs");
		if ((r = int_list(c, 1, st, &ns, RWD_GRAPH_MAX_RANK)) || (r = int_list(c, 2, en, &ne, RWD_GRAPH_MAX_RANK)))
			return r;
		if (n->n_in > 3 && n->in[3] >= 0 && (r = int_list(c, 3, ax, &na, RWD_GRAPH_MAX_RANK)))
			return r;
		if (n->n_in > 4 && n->in[4] >= 0 && (r = int_list(c, 4, sp, &nsp, RWD_GRAPH_MAX_RANK)))
			return r;
		if (ns != ne || (na && na != ns) || (nsp && nsp != ns))
			return FAIL(c, RWD_E_INVALID, "Slice operands differ in length");
		for (int i = 0; i < nsp; i++)
			if (sp[i] != 1)
				return FAIL(c, RWD_E_UNSUPPORTED, "Slice steps other than 1");
	}
	if (!na) {
		na = ns;
		for (int i = 0; i < ns; i++)
			ax[i] = i;
	}
	int64_t od[RWD_GRAPH_MAX_RANK] = {0}, lo[RWD_GRAPH_MAX_RANK] = {0};
	memcpy(od, a->dims, sizeof(od));
	int seen = 0;
	for (int k = 0; k < ns; k++) {
		int axn = 0;
		if ((r = norm_axis(c, ax[k], a->rank, 0, &axn)))
			return r;
		if (seen & (1 << axn))
			return FAIL(c, RWD_E_INVALID, "Slice axis %d repeated", axn);
		seen |= 1 << axn;
		int64_t d = a->dims[axn], s = st[k], e = en[k];
		if (s < 0)
			s += d;
		if (e < 0)
			e += d;
		s = s < 0 ? 0 : (s > d ? d : s);
		e = e < 0 ? 0 : (e > d ? d : e);
		lo[axn] = s;
		od[axn] = e > s ? e - s : 0;
	}
	rt *o;
	if ((r = alloc_out(c, a->is_int, a->rank, od, &o)))
		return r;
	int64_t sst[RWD_GRAPH_MAX_RANK], base = 0;
	dense_strides(a->rank, a->dims, sst);
	for (int i = 0; i < a->rank; i++)
		base += lo[i] * sst[i];
	gather(a->is_int ? (const void *)a->i : (const void *)a->f, a->is_int ? 8 : 4, a->rank, od, sst, base,
		a->is_int ? (void *)o->i : (void *)o->f);
	return 0;
}

static int op_squeeze(ctx *c)
{
	const node *n = &c->g->nodes[c->ni];
	const rt *a = &c->s[n->in[0]];
	int64_t axes[RWD_GRAPH_MAX_RANK];
	int na = 0, r;
	if (n->n_in == 2) {
		if ((r = int_list(c, 1, axes, &na, RWD_GRAPH_MAX_RANK)))
			return r;
	} else if (n->has_axes) {
		na = n->n_axes;
		memcpy(axes, n->axes, sizeof(axes));
	}
	int drop = 0;
	for (int k = 0; k < na; k++) {
		int axn = 0;
		if ((r = norm_axis(c, axes[k], a->rank, 0, &axn)))
			return r;
		if (a->dims[axn] != 1)
			return FAIL(c, RWD_E_INVALID, "Squeeze of axis %d of size %lld", axn, (long long)a->dims[axn]);
		drop |= 1 << axn;
	}
	if (!na)
		for (int i = 0; i < a->rank; i++)
			if (a->dims[i] == 1)
				drop |= 1 << i;
	int64_t od[RWD_GRAPH_MAX_RANK] = {0};
	int rank = 0;
	for (int i = 0; i < a->rank; i++)
		if (!(drop & (1 << i)))
			od[rank++] = a->dims[i];
	return copy_as(c, a, rank, od);
}

static int op_reshape(ctx *c)
{
	const node *n = &c->g->nodes[c->ni];
	const rt *a = &c->s[n->in[0]];
	int64_t sh[RWD_GRAPH_MAX_RANK];
	int ns, r;
	if ((r = int_list(c, 1, sh, &ns, RWD_GRAPH_MAX_RANK)))
		return r;
	int infer = -1;
	uint64_t known = 1;
	for (int i = 0; i < ns; i++) {
		if (sh[i] == 0) {
			if (i >= a->rank)
				return FAIL(c, RWD_E_INVALID, "Reshape copies dimension %d the input lacks", i);
			sh[i] = a->dims[i];
		}
		if (sh[i] == -1) {
			if (infer >= 0)
				return FAIL(c, RWD_E_INVALID, "Reshape with two -1");
			infer = i;
			continue;
		}
		if (sh[i] < 0 || sh[i] > BIGDIM)
			return FAIL(c, RWD_E_INVALID, "Reshape to dimension %lld", (long long)sh[i]);
		known *= (uint64_t)sh[i];
		if (known > c->max_elems)
			return FAIL(c, RWD_E_LIMIT, "Reshape to more than %llu elements", (unsigned long long)c->max_elems);
	}
	if (infer >= 0) {
		if (known == 0 || a->n % known)
			return FAIL(c, RWD_E_INVALID, "Reshape cannot infer -1 (%llu elements into %llu)",
				(unsigned long long)a->n, (unsigned long long)known);
		sh[infer] = (int64_t)(a->n / known);
	}
	return copy_as(c, a, ns, sh);
}

static int op_transpose(ctx *c)
{
	const node *n = &c->g->nodes[c->ni];
	const rt *a = &c->s[n->in[0]];
	int64_t perm[RWD_GRAPH_MAX_RANK];
	if (n->n_perm) {
		if (n->n_perm != a->rank)
			return FAIL(c, RWD_E_INVALID, "perm of %d axes for rank %d", n->n_perm, a->rank);
		memcpy(perm, n->perm, sizeof(perm));
	} else {
		for (int i = 0; i < a->rank; i++)
			perm[i] = a->rank - 1 - i;
	}
	int64_t od[RWD_GRAPH_MAX_RANK] = {0}, ist[RWD_GRAPH_MAX_RANK] = {0}, sst[RWD_GRAPH_MAX_RANK] = {0};
	dense_strides(a->rank, a->dims, ist);
	for (int i = 0; i < a->rank; i++) {
		od[i] = a->dims[perm[i]];
		sst[i] = ist[perm[i]];
	}
	rt *o;
	int r = alloc_out(c, a->is_int, a->rank, od, &o);
	if (r)
		return r;
	gather(a->is_int ? (const void *)a->i : (const void *)a->f, a->is_int ? 8 : 4, a->rank, od, sst, 0,
		a->is_int ? (void *)o->i : (void *)o->f);
	return 0;
}

static int op_reducemean(ctx *c)
{
	const node *n = &c->g->nodes[c->ni];
	int ok = 1;
	const rt *a = in_f(c, 0, &ok);
	if (!ok)
		return c->err->code;
	int axn = -1, r;
	if (!n->has_axes || n->n_axes != 1 || (r = norm_axis(c, n->axes[0], a->rank, 0, &axn)) ||
		axn != a->rank - 1)
		return FAIL(c, RWD_E_UNSUPPORTED, "ReduceMean over the last axis only");
	int64_t od[RWD_GRAPH_MAX_RANK] = {0};
	memcpy(od, a->dims, sizeof(od));
	int rank = a->rank;
	if (n->keepdims)
		od[rank - 1] = 1;
	else
		rank--;
	int64_t k = a->dims[a->rank - 1];
	if (k == 0)
		return FAIL(c, RWD_E_INVALID, "ReduceMean over an empty axis");
	rt *o;
	if ((r = alloc_out(c, 0, rank, od, &o)))
		return r;
	for (uint64_t i = 0; i < o->n; i++) {
		const float *x = a->f + i * (uint64_t)k;
		float s = 0;
		for (int64_t j = 0; j < k; j++)
			s += x[j];
		o->f[i] = s / (float)k;
	}
	return 0;
}

static int op_matmul(ctx *c)
{
	int ok = 1;
	const rt *a = in_f(c, 0, &ok), *b = ok ? in_f(c, 1, &ok) : NULL;
	if (!ok)
		return c->err->code;
	if (a->rank < 2 || b->rank < 2)
		return FAIL(c, RWD_E_UNSUPPORTED, "MatMul of vectors (rank < 2)");
	int64_t M = a->dims[a->rank - 2], K = a->dims[a->rank - 1], N = b->dims[b->rank - 1];
	if (b->dims[b->rank - 2] != K)
		return FAIL(c, RWD_E_INVALID, "MatMul inner dimensions %lld and %lld differ", (long long)K,
			(long long)b->dims[b->rank - 2]);
	int br = (a->rank > b->rank ? a->rank : b->rank) - 2;
	int64_t od[RWD_GRAPH_MAX_RANK] = {0}, bd[RWD_GRAPH_MAX_RANK] = {0}, sa[RWD_GRAPH_MAX_RANK] = {0},
		sb[RWD_GRAPH_MAX_RANK] = {0};
	int64_t an = 1, bn = 1;
	for (int i = br - 1; i >= 0; i--) {
		int ia = i - (br - (a->rank - 2)), ib = i - (br - (b->rank - 2));
		int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
		if (da != db && da != 1 && db != 1)
			return FAIL(c, RWD_E_INVALID, "MatMul batch dimensions do not broadcast");
		bd[i] = da == 1 ? db : da;
		sa[i] = da == 1 ? 0 : an;
		sb[i] = db == 1 ? 0 : bn;
		an *= da;
		bn *= db;
	}
	memcpy(od, bd, sizeof(int64_t) * (size_t)br);
	od[br] = M;
	od[br + 1] = N;
	rt *o;
	int r = alloc_out(c, 0, br + 2, od, &o);
	if (r)
		return r;
	if (o->n == 0)
		return 0;
	if (K == 0) {
		memset(o->f, 0, (size_t)o->n * 4);
		return 0;
	}
	if (b->rank == 2) { /* fold a's batch into rows */
		int64_t rows = (int64_t)(a->n / (uint64_t)K);
		if (rows > INT_MAX || K > INT_MAX || N > INT_MAX)
			return FAIL(c, RWD_E_LIMIT, "MatMul too large for BLAS");
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)N, (int)K, 1.0f, a->f, (int)K,
			b->f, (int)N, 0.0f, o->f, (int)N);
		return 0;
	}
	if (M > INT_MAX || K > INT_MAX || N > INT_MAX)
		return FAIL(c, RWD_E_LIMIT, "MatMul too large for BLAS");
	int64_t idx[RWD_GRAPH_MAX_RANK] = {0};
	uint64_t nb = o->n / (uint64_t)(M * N);
	for (uint64_t p = 0; p < nb; p++) {
		int64_t oa = 0, ob = 0;
		for (int i = 0; i < br; i++) {
			oa += idx[i] * sa[i];
			ob += idx[i] * sb[i];
		}
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, a->f + oa * M * K,
			(int)K, b->f + ob * K * N, (int)N, 0.0f, o->f + p * (uint64_t)(M * N), (int)N);
		for (int i = br - 1; i >= 0; i--) {
			if (++idx[i] < bd[i])
				break;
			idx[i] = 0;
		}
	}
	return 0;
}

static int op_softmax(ctx *c)
{
	const node *n = &c->g->nodes[c->ni];
	int ok = 1;
	const rt *a = in_f(c, 0, &ok);
	if (!ok)
		return c->err->code;
	int ax = 0, r;
	if ((r = norm_axis(c, n->axis, a->rank, 0, &ax)))
		return r;
	if (c->g->opset >= 13 && ax != a->rank - 1)
		return FAIL(c, RWD_E_UNSUPPORTED, "Softmax (opset >= 13) over an axis other than the last");
	uint64_t cols = 1;
	for (int i = ax; i < a->rank; i++)
		cols *= (uint64_t)a->dims[i];
	rt *o;
	if ((r = alloc_out(c, 0, a->rank, a->dims, &o)))
		return r;
	if (cols == 0)
		return 0;
	for (uint64_t row = 0; row < a->n / cols; row++) {
		const float *x = a->f + row * cols;
		float *y = o->f + row * cols;
		float mx = x[0];
		for (uint64_t j = 1; j < cols; j++)
			mx = x[j] > mx ? x[j] : mx;
		float s = 0;
		for (uint64_t j = 0; j < cols; j++) {
			y[j] = expf(x[j] - mx);
			s += y[j];
		}
		for (uint64_t j = 0; j < cols; j++)
			y[j] /= s;
	}
	return 0;
}

static int run_node(ctx *c)
{
	int op = c->g->nodes[c->ni].op;
	switch (op) {
	case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: case OP_POW: return op_binary(c, op);
	case OP_SQRT: case OP_RELU: case OP_SIGMOID: case OP_HARDSIGMOID: case OP_CLIP: return op_unary(c, op);
	case OP_CONV: return op_conv(c);
	case OP_CONVT: return op_convt(c);
	case OP_BN: return op_bn(c);
	case OP_GAP: return op_pool(c, 1);
	case OP_AVGPOOL: return op_pool(c, 0);
	case OP_RESIZE: return op_resize(c);
	case OP_CONCAT: return op_concat(c);
	case OP_SHAPE: return op_shape(c);
	case OP_CAST: return op_cast(c);
	case OP_SLICE: return op_slice(c);
	case OP_SQUEEZE: return op_squeeze(c);
	case OP_RESHAPE: return op_reshape(c);
	case OP_TRANSPOSE: return op_transpose(c);
	case OP_REDUCEMEAN: return op_reducemean(c);
	case OP_MATMUL: return op_matmul(c);
	case OP_SOFTMAX: return op_softmax(c);
	}
	return FAIL(c, RWD_E_INTERNAL, "unknown operator");
}

int rwd_graph_run(const rwd_graph *g, const float *x, int rank, const int64_t *dims,
	const rwd_graph_limits *lim, rwd_graph_tensor *out, rwd_error *err)
{
	rwd_graph_limits dl = rwd_graph_default_limits();
	rwd_error local;
	if (!err)
		err = &local; /* FAIL reads err->code */
	rwd_error_clear(err);
	out->data = NULL;
	out->rank = 0;
	if (!lim)
		lim = &dl;
	if (rank < 0 || rank > RWD_GRAPH_MAX_RANK) {
		rwd_error_where(err, g->file, "input");
		return rwd_errorf(err, RWD_E_INVALID, "input rank %d outside 0..%d", rank, RWD_GRAPH_MAX_RANK);
	}
	ctx c = {.g = g, .max_elems = lim->max_elems, .err = err, .ni = 0};
	c.s = calloc(g->n_vals ? g->n_vals : 1, sizeof(rt));
	if (!c.s)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	int r = 0;
	for (size_t i = 0; i < g->n_vals; i++) {
		const val *v = &g->vals[i];
		rt *s = &c.s[i];
		if (v->kind == V_FCONST || v->kind == V_ICONST) {
			s->is_int = v->kind == V_ICONST;
			s->rank = v->rank;
			memcpy(s->dims, v->dims, sizeof(s->dims));
			s->f = (float *)v->f;
			s->i = v->iv;
			s->n = 1;
			for (int k = 0; k < v->rank; k++)
				s->n *= (uint64_t)v->dims[k];
		}
	}
	{
		rt *s = &c.s[g->input];
		s->rank = rank;
		memcpy(s->dims, dims, sizeof(int64_t) * (size_t)rank);
		s->f = (float *)x;
		c.ni = SIZE_MAX;
		uint64_t n = 1;
		for (int k = 0; k < rank; k++) {
			if (dims[k] < 0 || (dims[k] && n > lim->max_elems / (uint64_t)dims[k])) {
				rwd_error_where(err, g->file, "input");
				r = rwd_errorf(err, RWD_E_LIMIT, "input shape out of range or over %llu elements",
					(unsigned long long)lim->max_elems);
				goto done;
			}
			n *= (uint64_t)dims[k];
		}
		s->n = n;
	}
	for (size_t i = 0; i < g->n_nodes; i++) {
		c.ni = i;
		r = run_node(&c);
		if (r)
			goto done;
		const node *nd = &g->nodes[i];
		for (int k = 0; k < nd->n_in; k++) {
			int vi = nd->in[k];
			if (vi < 0 || g->vals[vi].last_use != (int)i || !c.s[vi].owned)
				continue;
			free(c.s[vi].f);
			free(c.s[vi].i);
			c.s[vi].f = NULL;
			c.s[vi].i = NULL;
			c.s[vi].owned = 0;
		}
	}
	{
		rt *o = &c.s[g->output];
		if (o->is_int) {
			rwd_error_where(err, g->file, "output");
			r = rwd_errorf(err, RWD_E_INVALID, "the graph output is an integer tensor");
			goto done;
		}
		out->rank = o->rank;
		memcpy(out->dims, o->dims, sizeof(out->dims));
		out->data = o->f;
		o->f = NULL;
		o->owned = 0;
	}
done:
	for (size_t i = 0; i < g->n_vals; i++)
		if (c.s[i].owned) {
			free(c.s[i].f);
			free(c.s[i].i);
		}
	free(c.s);
	return r;
}
