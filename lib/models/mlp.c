/* models/mlp.c — the `mlp` kind; see mlp.h for the model format. */
#include "models/mlp.h"

#include "nn/nn.h"
#include "tensor/safetensors.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MLP_MAX_LAYERS 64
#define MLP_MAX_WIDTH (1u << 20)

enum act { ACT_NONE, ACT_RELU, ACT_GELU, ACT_GELU_TANH, ACT_QUICK_GELU, ACT_SILU };

struct layer {
	const float *w; /* [out, in], borrowed from the weights */
	const float *b; /* [out] or NULL */
	size_t in, out;
	enum act act;   /* applied after this layer */
};

struct rwd_mlp {
	rwd_weights *weights;
	struct layer layers[MLP_MAX_LAYERS];
	size_t n_layers;
	size_t max_width;
	size_t max_batch;
	int normalize;
	char *names[RWD_MAX_DIMS];
	size_t weight_bytes;
};

static const char *const mlp_inputs[] = {"embedding", "embedding_b64", NULL};

static int parse_act(const char *s, enum act *out)
{
	static const struct { const char *name; enum act a; } t[] = {
		{"none", ACT_NONE}, {"identity", ACT_NONE}, {"linear", ACT_NONE},
		{"relu", ACT_RELU}, {"gelu", ACT_GELU}, {"gelu_pytorch_tanh", ACT_GELU_TANH},
		{"gelu_new", ACT_GELU_TANH}, {"quick_gelu", ACT_QUICK_GELU}, {"silu", ACT_SILU},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (strcmp(s, t[i].name) == 0) {
			*out = t[i].a;
			return 0;
		}
	return -1;
}

/* Option `key`: from opts when present there, else from the config file. */
static json_t *opt(const json_t *opts, const json_t *cfg, const char *key)
{
	json_t *v = opts ? json_object_get(opts, key) : NULL;
	return v ? v : (cfg ? json_object_get(cfg, key) : NULL);
}

/*
 * Find layer prefixes from tensor names "<prefix>.<N>.weight": the common
 * prefix must be one name (e.g. "layers"), and N sorts numerically.
 */
static int infer_layers(const rwd_weights *w, char prefixes[][128], size_t *n, rwd_error *err)
{
	long idx[MLP_MAX_LAYERS];
	char stem[96] = "";
	*n = 0;
	size_t count = rwd_weights_count(w);
	for (size_t i = 0; i < count; i++) {
		const char *name = rwd_weights_at(w, i)->name;
		size_t len = strlen(name);
		if (len < 8 || strcmp(name + len - 7, ".weight") != 0)
			continue;
		/* split "<stem>.<N>.weight" */
		const char *end = name + len - 7;
		const char *p = end;
		while (p > name && isdigit((unsigned char)p[-1]))
			p--;
		if (p == end || p == name || p[-1] != '.')
			return rwd_errorf(err, RWD_E_INVALID,
				"cannot infer the layer order from tensor '%s' (expected <name>.<N>.weight; list \"layers\" in config.json)",
				name);
		size_t stem_len = (size_t)(p - 1 - name);
		if (stem_len >= sizeof(stem))
			return rwd_errorf(err, RWD_E_LIMIT, "tensor name '%s' is too long", name);
		if (!stem[0]) {
			memcpy(stem, name, stem_len);
			stem[stem_len] = '\0';
		} else if (strlen(stem) != stem_len || strncmp(stem, name, stem_len) != 0) {
			return rwd_errorf(err, RWD_E_INVALID,
				"tensors '%s.*' and '%.*s.*' mix two layer stacks (list \"layers\" in config.json)",
				stem, (int)stem_len, name);
		}
		if (*n >= MLP_MAX_LAYERS)
			return rwd_errorf(err, RWD_E_LIMIT, "more than %d layers", MLP_MAX_LAYERS);
		long k = strtol(p, NULL, 10);
		/* insertion sort by index */
		size_t j = *n;
		while (j > 0 && idx[j - 1] > k) {
			idx[j] = idx[j - 1];
			memcpy(prefixes[j], prefixes[j - 1], 128);
			j--;
		}
		if (j > 0 && idx[j - 1] == k)
			return rwd_errorf(err, RWD_E_INVALID, "layer %ld appears twice", k);
		idx[j] = k;
		snprintf(prefixes[j], 128, "%s.%ld", stem, k);
		(*n)++;
	}
	if (*n == 0)
		return rwd_errorf(err, RWD_E_NOTFOUND, "no '<name>.<N>.weight' tensors: not an mlp head");
	return 0;
}

static int load_config(const char *path, json_t **cfg, char *st_path, size_t st_size, rwd_error *err)
{
	struct stat sb;
	*cfg = NULL;
	if (stat(path, &sb) != 0) {
		rwd_error_where(err, path, NULL);
		return rwd_errorf(err, RWD_E_NOTFOUND, "no such file or folder");
	}
	if (!S_ISDIR(sb.st_mode)) {
		snprintf(st_path, st_size, "%s", path);
		return 0;
	}
	snprintf(st_path, st_size, "%s", path); /* the weights loader handles folders */
	char cfg_path[PATH_MAX];
	snprintf(cfg_path, sizeof(cfg_path), "%s/config.json", path);
	if (access(cfg_path, F_OK) != 0)
		return 0;
	json_error_t jerr;
	*cfg = json_load_file(cfg_path, JSON_REJECT_DUPLICATES, &jerr);
	if (!*cfg || !json_is_object(*cfg)) {
		rwd_error_where(err, cfg_path, NULL);
		rwd_error_at(err, jerr.line, jerr.column, jerr.position);
		json_decref(*cfg);
		*cfg = NULL;
		return rwd_errorf(err, RWD_E_FORMAT, "%s", *jerr.text ? jerr.text : "config.json is not an object");
	}
	return 0;
}

static int set_names(rwd_mlp *m, const json_t *opts, const json_t *cfg, rwd_error *err)
{
	size_t n_out = m->layers[m->n_layers - 1].out;
	if (n_out > RWD_MAX_DIMS)
		return rwd_errorf(err, RWD_E_LIMIT, "%zu outputs, more than %d", n_out, RWD_MAX_DIMS);
	json_t *outputs = opt(opts, cfg, "outputs");
	json_t *id2label = opt(opts, cfg, "id2label");
	for (size_t i = 0; i < n_out; i++) {
		const char *name = NULL;
		char buf[32];
		if (outputs) {
			if (!json_is_array(outputs) || json_array_size(outputs) != n_out) {
				rwd_error_where(err, NULL, "outputs");
				return rwd_errorf(err, RWD_E_INVALID, "\"outputs\" must list %zu names", n_out);
			}
			name = json_string_value(json_array_get(outputs, i));
		} else if (id2label) {
			snprintf(buf, sizeof(buf), "%zu", i);
			name = json_string_value(json_object_get(id2label, buf));
			if (!name) {
				rwd_error_where(err, NULL, "id2label");
				return rwd_errorf(err, RWD_E_INVALID, "id2label has no string for \"%zu\"", i);
			}
		} else if (n_out == 1) {
			name = "score";
		} else {
			snprintf(buf, sizeof(buf), "score_%zu", i);
			name = buf;
		}
		if (!name || !name[0] || strlen(name) > 64) {
			rwd_error_where(err, NULL, outputs ? "outputs" : "id2label");
			return rwd_errorf(err, RWD_E_INVALID, "output %zu needs a name of 1 to 64 bytes", i);
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(m->names[j], name) == 0)
				return rwd_errorf(err, RWD_E_INVALID, "output name '%s' appears twice", name);
		if (!(m->names[i] = strdup(name)))
			return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	}
	return 0;
}

static int mlp_load(const char *path, const json_t *opts, size_t max_batch, int in_memory,
	rwd_mlp **out, rwd_error *err)
{
	char st_path[PATH_MAX];
	char prefixes[MLP_MAX_LAYERS][128];
	json_t *cfg = NULL;
	rwd_mlp *m = NULL;
	size_t n = 0;
	int r;

	if (!path)
		return rwd_errorf(err, RWD_E_INVALID, "an mlp model needs a path");
	/* FP32 only: a head's GEMMs are too small for BF16 to gain (README) */
	const json_t *prec = opts ? json_object_get(opts, "precision") : NULL;
	if (prec && !(json_is_string(prec) && strcmp(json_string_value(prec), "fp32") == 0)) {
		rwd_error_where(err, NULL, "precision");
		return rwd_errorf(err, RWD_E_INVALID, "the mlp kind runs in fp32 only (precision \"bf16\" "
			"is offered by clip and seqcls; a head's GEMMs are too small to gain from it)");
	}
	r = load_config(path, &cfg, st_path, sizeof(st_path), err);
	if (r)
		return r;
	m = calloc(1, sizeof(*m));
	if (!m) {
		r = rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		goto fail;
	}
	m->max_batch = max_batch ? max_batch : 1;
	rwd_weights_params wp = rwd_weights_default_params();
	wp.use_mmap = !in_memory;
	r = rwd_weights_open(st_path, &wp, &m->weights, err);
	if (r)
		goto fail;
	m->weight_bytes = (size_t)rwd_weights_total_bytes(m->weights);

	json_t *layers = opt(opts, cfg, "layers");
	if (layers) {
		if (!json_is_array(layers) || json_array_size(layers) == 0 ||
		    json_array_size(layers) > MLP_MAX_LAYERS) {
			rwd_error_where(err, NULL, "layers");
			r = rwd_errorf(err, RWD_E_INVALID, "\"layers\" must list 1 to %d tensor prefixes", MLP_MAX_LAYERS);
			goto fail;
		}
		size_t i;
		json_t *v;
		json_array_foreach(layers, i, v) {
			if (!json_is_string(v) || json_string_length(v) >= 120) {
				rwd_error_where(err, NULL, "layers");
				r = rwd_errorf(err, RWD_E_INVALID, "layers[%zu] must be a tensor prefix string", i);
				goto fail;
			}
			snprintf(prefixes[i], 128, "%s", json_string_value(v));
		}
		n = json_array_size(layers);
	} else {
		r = infer_layers(m->weights, prefixes, &n, err);
		if (r) {
			rwd_error_where(err, path, NULL);
			goto fail;
		}
	}

	/* activations: one for all hidden layers, or one per layer */
	enum act hidden_act = ACT_NONE;
	json_t *act = opt(opts, cfg, "activation");
	json_t *acts = opt(opts, cfg, "activations");
	if (act && (!json_is_string(act) || parse_act(json_string_value(act), &hidden_act))) {
		rwd_error_where(err, NULL, "activation");
		r = rwd_errorf(err, RWD_E_INVALID, "unknown activation (relu, gelu, gelu_pytorch_tanh, quick_gelu, silu, none)");
		goto fail;
	}
	if (acts && (!json_is_array(acts) || json_array_size(acts) != n)) {
		rwd_error_where(err, NULL, "activations");
		r = rwd_errorf(err, RWD_E_INVALID, "\"activations\" must list one activation per layer (%zu)", n);
		goto fail;
	}

	for (size_t i = 0; i < n; i++) {
		struct layer *L = &m->layers[i];
		char name[160];
		const rwd_tensor *t;
		snprintf(name, sizeof(name), "%s.weight", prefixes[i]);
		t = rwd_weights_find(m->weights, name);
		if (!t || t->ndim != 2) {
			rwd_error_where(err, path, name);
			r = rwd_errorf(err, t ? RWD_E_INVALID : RWD_E_NOTFOUND,
				t ? "a layer weight must be 2-D [out, in]" : "tensor not found");
			goto fail;
		}
		L->out = (size_t)t->shape[0];
		L->in = (size_t)t->shape[1];
		if (L->in == 0 || L->out == 0 || L->in > MLP_MAX_WIDTH || L->out > MLP_MAX_WIDTH) {
			rwd_error_where(err, path, name);
			r = rwd_errorf(err, RWD_E_LIMIT, "layer shape [%zu, %zu] is empty or wider than %u",
				L->out, L->in, MLP_MAX_WIDTH);
			goto fail;
		}
		int64_t wshape[2] = {(int64_t)L->out, (int64_t)L->in};
		r = rwd_weights_get_f32(m->weights, name, 2, wshape, &L->w, err);
		if (r)
			goto fail;
		snprintf(name, sizeof(name), "%s.bias", prefixes[i]);
		if (rwd_weights_find(m->weights, name)) {
			int64_t bshape[1] = {(int64_t)L->out};
			r = rwd_weights_get_f32(m->weights, name, 1, bshape, &L->b, err);
			if (r)
				goto fail;
		}
		if (i > 0 && m->layers[i - 1].out != L->in) {
			rwd_error_where(err, path, prefixes[i]);
			r = rwd_errorf(err, RWD_E_INVALID, "takes %zu inputs but the previous layer gives %zu",
				L->in, m->layers[i - 1].out);
			goto fail;
		}
		L->act = i + 1 < n ? hidden_act : ACT_NONE;
		if (acts) {
			json_t *a = json_array_get(acts, i);
			if (!json_is_string(a) || parse_act(json_string_value(a), &L->act)) {
				rwd_error_where(err, NULL, "activations");
				r = rwd_errorf(err, RWD_E_INVALID, "activations[%zu] is not a known activation", i);
				goto fail;
			}
		}
		if (L->in > m->max_width)
			m->max_width = L->in;
		if (L->out > m->max_width)
			m->max_width = L->out;
	}
	m->n_layers = n;
	json_t *norm = opt(opts, cfg, "normalize");
	if (norm && !json_is_boolean(norm)) {
		rwd_error_where(err, NULL, "normalize");
		r = rwd_errorf(err, RWD_E_INVALID, "\"normalize\" must be true or false");
		goto fail;
	}
	m->normalize = json_is_true(norm);
	r = set_names(m, opts, cfg, err);
	if (r)
		goto fail;
	json_decref(cfg);
	*out = m;
	return 0;
fail:
	json_decref(cfg);
	rwd_mlp_free(m);
	return r;
}

void rwd_mlp_free(rwd_mlp *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < RWD_MAX_DIMS; i++)
		free(m->names[i]);
	rwd_weights_free(m->weights);
	free(m);
}

size_t rwd_mlp_input_dim(const rwd_mlp *m)
{
	return m->layers[0].in;
}

size_t rwd_mlp_output_dim(const rwd_mlp *m)
{
	return m->layers[m->n_layers - 1].out;
}

const char *rwd_mlp_output_name(const rwd_mlp *m, size_t i)
{
	return m->names[i];
}

size_t rwd_mlp_scratch_floats(const rwd_mlp *m, size_t n)
{
	/* two ping-pong activation buffers of the widest layer */
	return 2 * n * m->max_width;
}

static void apply_act(enum act a, float *x, size_t n)
{
	switch (a) {
	case ACT_NONE: break;
	case ACT_RELU: rwd_nn_relu(x, n); break;
	case ACT_GELU: rwd_nn_gelu_erf(x, n); break;
	case ACT_GELU_TANH: rwd_nn_gelu_tanh(x, n); break;
	case ACT_QUICK_GELU: rwd_nn_quick_gelu(x, n); break;
	case ACT_SILU: rwd_nn_silu(x, n); break;
	}
}

void rwd_mlp_forward(const rwd_mlp *m, const float *x, size_t n, float *y, float *scratch)
{
	float *buf[2] = {scratch, scratch + n * m->max_width};
	const float *in = x;
	size_t in_dim = m->layers[0].in;
	if (m->normalize) {
		/* x / ||x||, as the aesthetic predictor's caller does; a zero row stays zero */
		for (size_t r = 0; r < n; r++) {
			double ss = 0;
			for (size_t c = 0; c < in_dim; c++)
				ss += (double)x[r * in_dim + c] * x[r * in_dim + c];
			float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.f;
			for (size_t c = 0; c < in_dim; c++)
				buf[1][r * in_dim + c] = x[r * in_dim + c] * inv;
		}
		in = buf[1];
	}
	for (size_t i = 0; i < m->n_layers; i++) {
		const struct layer *L = &m->layers[i];
		/* [n, in] -> [n, out] */
		float *dst = i + 1 == m->n_layers ? y : buf[i & 1];
		rwd_nn_linear(in, n, L->in, 0, L->w, L->b, L->out, dst, 0);
		apply_act(L->act, dst, n * L->out);
		in = dst;
	}
}

/* ---- the kind ---------------------------------------------------------- */

struct scratch {
	float *x, *y, *tmp;
};

int rwd_mlp_load(const char *path, const json_t *opts, size_t max_batch, rwd_mlp **out,
	rwd_error *err)
{
	return mlp_load(path, opts, max_batch, 0, out, err);
}

static int kind_load(const char *path, const json_t *opts, const rwd_batch_limits *lim,
	void **state, rwd_error *err)
{
	return mlp_load(path, opts, lim->max_batch_size, lim->weights_in_memory, (rwd_mlp **)state, err);
}

static void kind_free(void *state)
{
	rwd_mlp_free(state);
}

static void kind_describe(const void *state, rwd_model_info *info)
{
	const rwd_mlp *m = state;
	info->n_dims = rwd_mlp_output_dim(m);
	for (size_t i = 0; i < info->n_dims && i < RWD_MAX_DIMS; i++)
		info->dims[i] = m->names[i];
	info->weight_bytes = m->weight_bytes;
	info->token_cost = 0;
	info->vector_input = rwd_mlp_input_dim(m);
}

static int kind_check(const void *state, const json_t *item, size_t *cost, rwd_error *err)
{
	const rwd_mlp *m = state;
	json_t *e = json_object_get(item, "embedding");
	json_t *b = json_object_get(item, "embedding_b64");
	size_t want = rwd_mlp_input_dim(m);
	*cost = 1;
	if (b) {
		rwd_error_where(err, NULL, "embedding_b64");
		if (e)
			return rwd_errorf(err, RWD_E_INVALID, "send either \"embedding\" or \"embedding_b64\", not both");
		if (!json_is_string(b))
			return rwd_errorf(err, RWD_E_INVALID,
				"\"embedding_b64\" must be a string: base64 of %zu little-endian float32", want);
		float *tmp = malloc(want * sizeof(float));
		if (!tmp)
			return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		int r = rwd_model_vector_b64(json_string_value(b), json_string_length(b), want, tmp, err);
		free(tmp);
		return r;
	}
	rwd_error_where(err, NULL, "embedding");
	if (!e)
		return rwd_errorf(err, RWD_E_INVALID,
			"missing \"embedding\" (an array of %zu numbers, or \"embedding_b64\": base64 float32)", want);
	if (!json_is_array(e) || json_array_size(e) != want)
		return rwd_errorf(err, RWD_E_INVALID, "\"embedding\" must be an array of %zu numbers, got %s%zu",
			want, json_is_array(e) ? "" : "a non-array; size ", json_is_array(e) ? json_array_size(e) : 0);
	size_t i;
	json_t *v;
	json_array_foreach(e, i, v) {
		if (!json_is_number(v))
			return rwd_errorf(err, RWD_E_INVALID, "embedding[%zu] is not a number", i);
		double d = json_number_value(v);
		if (!isfinite(d) || fabs(d) > 3.4e38)
			return rwd_errorf(err, RWD_E_INVALID, "embedding[%zu] is out of float range", i);
	}
	rwd_error_where(err, NULL, "");
	return 0;
}

static int kind_scratch_new(const void *state, void **out, rwd_error *err)
{
	const rwd_mlp *m = state;
	size_t nb = m->max_batch;
	struct scratch *s = calloc(1, sizeof(*s));
	if (!s)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	/* reserved once for the largest batch: nothing is allocated per request */
	s->x = malloc(nb * rwd_mlp_input_dim(m) * sizeof(float));
	s->y = malloc(nb * rwd_mlp_output_dim(m) * sizeof(float));
	s->tmp = malloc(rwd_mlp_scratch_floats(m, nb) * sizeof(float));
	if (!s->x || !s->y || !s->tmp) {
		free(s->x);
		free(s->y);
		free(s->tmp);
		free(s);
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory for the batch scratch");
	}
	*out = s;
	return 0;
}

static void kind_scratch_free(void *p)
{
	struct scratch *s = p;
	if (!s)
		return;
	free(s->x);
	free(s->y);
	free(s->tmp);
	free(s);
}

static int kind_forward(const void *state, void *scr, rwd_item *const *items, size_t n,
	rwd_arena *arena)
{
	const rwd_mlp *m = state;
	struct scratch *s = scr;
	size_t in = rwd_mlp_input_dim(m), out = rwd_mlp_output_dim(m);
	(void)arena;
	if (n > m->max_batch)
		return RWD_E_LIMIT;
	/* stack the batch: x [n, in]. The request layer decoded most vectors
	 * already (item->vec); other callers' items are read from their JSON. */
	for (size_t r = 0; r < n; r++) {
		rwd_item *it = items[r];
		float *row = s->x + r * in;
		const json_t *b64 = it->vec ? NULL : json_object_get(it->input, "embedding_b64");
		if (it->vec && it->vec_n == in) {
			memcpy(row, it->vec, in * sizeof(float));
		} else if (it->vec) {
			it->status = rwd_errorf(&it->err, RWD_E_INTERNAL, "a vector of %zu floats for a head of %zu",
				it->vec_n, in);
		} else if (b64) {
			it->status = rwd_model_vector_b64(json_string_value(b64), json_string_length(b64), in, row,
				&it->err);
		} else {
			json_t *e = json_object_get(it->input, "embedding");
			for (size_t c = 0; c < in; c++)
				row[c] = (float)json_number_value(json_array_get(e, c));
		}
		if (it->status)
			memset(row, 0, in * sizeof(float));
	}
	/* serial GEMMs: a head gains nothing from BLAS threads (nn.h) */
	const int saved = rwd_nn_serial_begin();
	rwd_mlp_forward(m, s->x, n, s->y, s->tmp);
	rwd_nn_serial_end(saved);
	for (size_t r = 0; r < n; r++) {
		if (items[r]->status)
			continue;
		for (size_t c = 0; c < out; c++) {
			items[r]->scores[c] = s->y[r * out + c];
			items[r]->present[c] = 1;
		}
	}
	return 0;
}

const rwd_model_ops rwd__mlp_ops = {
	.kind = "mlp",
	.serial_blas = 1,
	.inputs = mlp_inputs,
	.load = kind_load,
	.free = kind_free,
	.describe = kind_describe,
	.check = kind_check,
	.scratch_new = kind_scratch_new,
	.scratch_free = kind_scratch_free,
	.prepare = NULL,
	.forward = kind_forward,
};
