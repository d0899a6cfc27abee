/* models/vlm_head.c — see vlm_head.h. */
#include "models/vlm_head.h"

#include "nn/nn.h"
#include "tensor/safetensors.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum act { ACT_NONE, ACT_RELU, ACT_SILU };

struct layer {
	const float *w, *b;
	size_t out, in;
	enum act act;
};

struct head {
	const char *name;
	rwd_weights *weights;
	struct layer layers[RWD_VLM_MAX_LAYERS];
	size_t n_layers, out_dim;
};

struct rwd_vlm_heads {
	json_t *spec;
	struct head heads[RWD_VLM_MAX_HEADS];
	size_t n_heads;
	rwd_vlm_dim dims[64];
	size_t n_dims, max_width;
};

static int bad(rwd_error *err, const char *key, int code, const char *msg, const char *what)
{
	rwd_error_where(err, "reward_head.json", key);
	return rwd_errorf(err, code, "reward_head.json: %s%s%s", msg, what ? ": " : "", what ? what : "");
}

static int load_head(rwd_vlm_heads *h, const char *dir, const char *name, const json_t *spec,
	size_t hidden, rwd_error *err)
{
	struct head *hd = &h->heads[h->n_heads];
	const char *file = json_string_value(json_object_get(spec, "file"));
	const json_t *layers = json_object_get(spec, "layers");
	char path[PATH_MAX];
	int r;
	hd->name = name;
	if (!file || !file[0] || strchr(file, '/') || strstr(file, ".."))
		return bad(err, "file", RWD_E_INVALID, "a head's \"file\" must be a file name in the folder", name);
	if (!json_is_array(layers) || json_array_size(layers) == 0 ||
		json_array_size(layers) > RWD_VLM_MAX_LAYERS)
		return bad(err, "layers", RWD_E_INVALID, "a head's \"layers\" must be 1 to 8 layers", name);
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if ((r = rwd_weights_open(path, NULL, &hd->weights, err)))
		return r;
	h->n_heads++; /* owned from here: freed with the heads */
	size_t in = hidden;
	for (size_t i = 0; i < json_array_size(layers); i++) {
		const json_t *l = json_array_get(layers, i);
		struct layer *ly = &hd->layers[i];
		const char *wn = json_string_value(json_object_get(l, "weight"));
		const json_t *bj = json_object_get(l, "bias"), *aj = json_object_get(l, "activation");
		if (!wn)
			return bad(err, "weight", RWD_E_INVALID, "a layer needs a \"weight\" tensor name", name);
		const rwd_tensor *t = rwd_weights_find(hd->weights, wn);
		if (!t) {
			rwd_error_where(err, path, wn);
			return rwd_errorf(err, RWD_E_NOTFOUND, "head %s: tensor %s is missing from %s", name, wn, file);
		}
		if (t->ndim != 2 || t->shape[1] != (int64_t)in || t->shape[0] < 1 || t->shape[0] > 65536) {
			rwd_error_where(err, path, wn);
			return rwd_errorf(err, RWD_E_INVALID, "head %s: tensor %s must be [out, %zu]", name, wn, in);
		}
		ly->out = (size_t)t->shape[0];
		ly->in = in;
		if ((r = rwd_weights_get_f32(hd->weights, wn, 2, NULL, &ly->w, err)))
			return r;
		ly->b = NULL;
		if (bj && !json_is_null(bj)) {
			int64_t shape[1] = {(int64_t)ly->out};
			if (!json_is_string(bj))
				return bad(err, "bias", RWD_E_INVALID, "\"bias\" must be a tensor name or null", name);
			if ((r = rwd_weights_get_f32(hd->weights, json_string_value(bj), 1, shape, &ly->b, err)))
				return r;
		}
		ly->act = ACT_NONE;
		if (aj && !json_is_null(aj)) {
			const char *a = json_string_value(aj);
			if (a && strcmp(a, "relu") == 0)
				ly->act = ACT_RELU;
			else if (a && strcmp(a, "silu") == 0)
				ly->act = ACT_SILU;
			else
				return bad(err, "activation", RWD_E_UNSUPPORTED, "activation must be relu, silu or null", name);
		}
		if (ly->out > h->max_width)
			h->max_width = ly->out;
		in = ly->out;
	}
	hd->n_layers = json_array_size(layers);
	hd->out_dim = in;
	return 0;
}

int rwd_vlm_heads_load(const char *dir, json_t *spec, size_t hidden, rwd_vlm_heads **out,
	rwd_error *err)
{
	rwd_vlm_heads *h = calloc(1, sizeof(*h));
	int r;
	if (!h)
		return RWD_E_NOMEM;
	h->spec = json_incref(spec);
	const json_t *heads = json_object_get(spec, "heads"), *dims = json_object_get(spec, "dimensions");
	const char *name;
	json_t *hv;
	if (!json_is_object(heads) || json_object_size(heads) == 0 ||
		json_object_size(heads) > RWD_VLM_MAX_HEADS) {
		r = bad(err, "heads", RWD_E_INVALID, "\"heads\" must be an object of 1 to 16 heads", NULL);
		goto fail;
	}
	json_object_foreach((json_t *)heads, name, hv) {
		if ((r = load_head(h, dir, name, hv, hidden, err)))
			goto fail;
	}
	if (!json_is_array(dims) || json_array_size(dims) == 0 || json_array_size(dims) > 64) {
		r = bad(err, "dimensions", RWD_E_INVALID, "\"dimensions\" must be an array of 1 to 64", NULL);
		goto fail;
	}
	for (size_t i = 0; i < json_array_size(dims); i++) {
		const json_t *d = json_array_get(dims, i);
		rwd_vlm_dim *dm = &h->dims[i];
		dm->name = json_string_value(json_object_get(d, "name"));
		dm->prompt = json_string_value(json_object_get(d, "prompt"));
		dm->pool = json_string_value(json_object_get(d, "pool"));
		const char *hn = json_string_value(json_object_get(d, "head"));
		const json_t *mu = json_object_get(d, "mu"), *ls = json_object_get(d, "log_sigma");
		if (!dm->name || !dm->name[0] || !dm->prompt || !dm->pool || !dm->pool[0] || !hn) {
			r = bad(err, "dimensions", RWD_E_INVALID,
				"each dimension needs \"name\", \"prompt\", \"pool\" and \"head\" strings", NULL);
			goto fail;
		}
		size_t k = 0;
		while (k < h->n_heads && strcmp(h->heads[k].name, hn))
			k++;
		if (k == h->n_heads) {
			r = bad(err, "head", RWD_E_INVALID, "a dimension names an unknown head", hn);
			goto fail;
		}
		dm->head = k;
		size_t od = h->heads[k].out_dim;
		if (!json_is_integer(mu) || json_integer_value(mu) < 0 || (size_t)json_integer_value(mu) >= od) {
			r = bad(err, "mu", RWD_E_INVALID, "\"mu\" must index the head's output", dm->name);
			goto fail;
		}
		dm->mu = (size_t)json_integer_value(mu);
		dm->log_sigma = -1;
		if (ls && !json_is_null(ls)) {
			if (!json_is_integer(ls) || json_integer_value(ls) < 0 || (size_t)json_integer_value(ls) >= od) {
				r = bad(err, "log_sigma", RWD_E_INVALID, "\"log_sigma\" must index the head's output or be null",
					dm->name);
				goto fail;
			}
			dm->log_sigma = (int)json_integer_value(ls);
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(h->dims[j].name, dm->name) == 0) {
				r = bad(err, "name", RWD_E_INVALID, "two dimensions share a name", dm->name);
				goto fail;
			}
		h->n_dims++;
	}
	*out = h;
	return 0;
fail:
	rwd_vlm_heads_free(h);
	return r;
}

void rwd_vlm_heads_free(rwd_vlm_heads *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->n_heads; i++)
		rwd_weights_free(h->heads[i].weights);
	json_decref(h->spec);
	free(h);
}

size_t rwd_vlm_heads_n_dims(const rwd_vlm_heads *h) { return h->n_dims; }
const rwd_vlm_dim *rwd_vlm_heads_dim(const rwd_vlm_heads *h, size_t i) { return &h->dims[i]; }
size_t rwd_vlm_heads_n_heads(const rwd_vlm_heads *h) { return h->n_heads; }
size_t rwd_vlm_heads_out_dim(const rwd_vlm_heads *h, size_t head) { return h->heads[head].out_dim; }
size_t rwd_vlm_heads_scratch(const rwd_vlm_heads *h) { return 2 * h->max_width; }

void rwd_vlm_head_run(const rwd_vlm_heads *h, size_t head, const float *x, float *out,
	float *scratch)
{
	const struct head *hd = &h->heads[head];
	const float *in = x;
	for (size_t i = 0; i < hd->n_layers; i++) {
		const struct layer *ly = &hd->layers[i];
		float *y = i + 1 == hd->n_layers ? out : scratch + (i % 2) * h->max_width;
		rwd_nn_linear(in, 1, ly->in, 0, ly->w, ly->b, ly->out, y, 0);
		if (ly->act == ACT_RELU)
			rwd_nn_relu(y, ly->out);
		else if (ly->act == ACT_SILU)
			rwd_nn_silu(y, ly->out);
		in = y;
	}
}

void rwd_vlm_dim_values(const rwd_vlm_heads *h, size_t i, const float *head_out, float *mu,
	float *sigma)
{
	const rwd_vlm_dim *d = &h->dims[i];
	*mu = head_out[d->mu];
	*sigma = d->log_sigma >= 0 ? expf(head_out[d->log_sigma]) : NAN;
}
