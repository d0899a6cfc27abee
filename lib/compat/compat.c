/* compat/compat.c — see compat.h. */
#include "compat/compat.h"

#include "serve/request.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fill err with field and message; returns code. */
static int field_err(rwd_error *err, int code, const char *field, const char *fmt, ...)
	RWD_PRINTF(4, 5);

static int field_err(rwd_error *err, int code, const char *field, const char *fmt, ...)
{
	if (!err)
		return code;
	char msg[RWD_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	rwd_errorf(err, code, "%s", msg);
	rwd_error_where(err, NULL, field ? field : "");
	return code;
}

const char *rwd_compat_text_field(const char *kind)
{
	if (!kind)
		return NULL;
	if (strcmp(kind, "seqcls") == 0)
		return "text";
	if (strcmp(kind, "rules") == 0)
		return "response";
	return NULL;
}

int rwd_compat_load(const char *body, size_t len, const rwd_compat_limits *lim, json_t **root,
	rwd_error *err)
{
	*root = NULL;
	int line = 0, col = 0;
	if (rwd_request_json_depth(body, len, lim->max_depth, &line, &col) > lim->max_depth) {
		rwd_error_at(err, line, col, -1);
		return rwd_errorf(err, RWD_E_INVALID, "JSON nested deeper than %zu levels", lim->max_depth);
	}
	json_error_t jerr;
	json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j) {
		rwd_error_at(err, jerr.line, jerr.column, jerr.position);
		return rwd_errorf(err, RWD_E_FORMAT, "invalid JSON: %s", jerr.text);
	}
	if (!json_is_object(j)) {
		json_decref(j);
		return rwd_errorf(err, RWD_E_INVALID, "the body must be a JSON object");
	}
	*root = j;
	return 0;
}

static int too_many(size_t n, const rwd_compat_limits *lim, const char *field, rwd_error *err)
{
	if (n <= lim->max_items)
		return 0;
	return field_err(err, RWD_E_LIMIT, field, "%zu items, more than the limit of %zu per request", n,
		lim->max_items);
}

static int no_text(const char *kind, rwd_error *err)
{
	return field_err(err, RWD_E_INVALID, NULL,
		"a model of kind '%.32s' does not score text alone; use POST /v1/rewards", kind ? kind : "?");
}

/* A label as the rules kind takes it: strings and arrays as sent, numbers as their JSON text. */
static json_t *label_value(json_t *v)
{
	if (json_is_number(v)) {
		char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
		json_t *out = s ? json_string(s) : NULL;
		free(s);
		return out;
	}
	return json_incref(v);
}

/* A per-item companion array (prompts, labels): absent or null, or one entry per query. */
static int companion(const json_t *root, const char *key, size_t n, json_t **out, rwd_error *err)
{
	json_t *v = json_object_get(root, key);
	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return field_err(err, RWD_E_INVALID, key, "\"%s\" must be an array (or null)", key);
	if (json_array_size(v) != n)
		return field_err(err, RWD_E_INVALID, key,
			"\"%s\" has %zu entries but \"query\" has %zu; they must be the same length", key,
			json_array_size(v), n);
	*out = v;
	return 0;
}

static int append(json_t *items, json_t *it, rwd_error *err)
{
	if (!it || json_array_append_new(items, it))
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	return 0;
}

int rwd_compat_get_reward(const json_t *root, const char *kind, const rwd_compat_limits *lim,
	json_t *items, rwd_error *err)
{
	const char *tf = rwd_compat_text_field(kind);
	if (!tf)
		return no_text(kind, err);
	json_t *q = json_object_get(root, "query");
	if (!q)
		return field_err(err, RWD_E_INVALID, "query", "missing \"query\" (an array of texts)");
	if (!json_is_array(q))
		return field_err(err, RWD_E_INVALID, "query", "\"query\" must be an array of texts");
	size_t n = json_array_size(q);
	int r;
	json_t *prompts, *labels;
	if ((r = too_many(n, lim, "query", err)) || (r = companion(root, "prompts", n, &prompts, err)) ||
	    (r = companion(root, "labels", n, &labels, err)))
		return r;
	int rules = strcmp(kind, "rules") == 0;
	for (size_t i = 0; i < n; i++) {
		json_t *t = json_array_get(q, i);
		char f[48];
		snprintf(f, sizeof(f), "query[%zu]", i);
		if (!json_is_string(t))
			return field_err(err, RWD_E_INVALID, f, "a query must be a string");
		json_t *it = json_pack("{sO}", tf, t);
		if (it && rules && prompts) {
			json_t *p = json_array_get(prompts, i);
			if (!json_is_null(p))
				json_object_set(it, "prompt", p);
		}
		if (it && rules && labels) {
			json_t *l = json_array_get(labels, i);
			if (!json_is_null(l))
				json_object_set_new(it, "label", label_value(l));
		}
		if ((r = append(items, it, err)))
			return r;
	}
	return 0;
}

int rwd_compat_vllm(const json_t *root, const char *kind, const rwd_compat_limits *lim,
	json_t *items, int *activation, rwd_error *err)
{
	const char *tf = rwd_compat_text_field(kind);
	if (!tf)
		return no_text(kind, err);
	/* vLLM's default applies the activation; verl sends false (raw scores) */
	json_t *a = json_object_get(root, "use_activation");
	const char *aname = "use_activation";
	if (!a || json_is_null(a)) {
		a = json_object_get(root, "activation");
		aname = "activation";
	}
	if (a && !json_is_null(a) && !json_is_boolean(a))
		return field_err(err, RWD_E_INVALID, aname, "must be true or false");
	*activation = !a || json_is_null(a) || json_is_true(a);

	json_t *in = json_object_get(root, "input");
	if (!in)
		return field_err(err, RWD_E_INVALID, "input", "missing \"input\" (a text or an array of texts)");
	int seqcls = strcmp(kind, "seqcls") == 0;
	if (json_is_string(in))
		return append(items, json_pack("{sO}", tf, in), err);
	if (!json_is_array(in))
		return field_err(err, RWD_E_INVALID, "input", "\"input\" must be a text or an array");
	int r = too_many(json_array_size(in), lim, "input", err);
	if (r)
		return r;
	/* a flat array of integers is one tokenised input */
	if (json_array_size(in) > 0 && json_is_integer(json_array_get(in, 0))) {
		if (!seqcls)
			return field_err(err, RWD_E_INVALID, "input", "token ids need a seqcls model");
		return append(items, json_pack("{sO}", "input_ids", in), err);
	}
	size_t i;
	json_t *v;
	json_array_foreach(in, i, v) {
		char f[48];
		snprintf(f, sizeof(f), "input[%zu]", i);
		if (json_is_string(v))
			r = append(items, json_pack("{sO}", tf, v), err);
		else if (json_is_array(v) && seqcls)
			r = append(items, json_pack("{sO}", "input_ids", v), err);
		else
			r = field_err(err, RWD_E_INVALID, f, seqcls ?
				"an input must be a text or an array of token ids" : "an input must be a text");
		if (r)
			return r;
	}
	return 0;
}

/* ---- OIP tensors ------------------------------------------------------- */

/* Append the leaves of a (possibly nested) data array to out, up to max. */
static int flatten(const json_t *v, json_t *out, size_t max, int depth)
{
	if (!json_is_array(v))
		return json_array_size(out) >= max ? -1 : json_array_append(out, (json_t *)v);
	if (depth > 8)
		return -1;
	size_t i;
	const json_t *e;
	json_array_foreach(v, i, e)
		if (flatten(e, out, max, depth + 1))
			return -1;
	return 0;
}

typedef struct oip_tensor {
	const char *name;
	int fp32;
	size_t rows, cols;   /* shape [rows] (cols 1) or [rows, cols] */
	json_t *flat;        /* owned */
} oip_tensor;

/* Validate one OIP input tensor against what the kind takes. */
static int parse_tensor(const json_t *t, size_t idx, const char *kind, oip_tensor *out, rwd_error *err)
{
	char f[64];
	snprintf(f, sizeof(f), "inputs[%zu]", idx);
	if (!json_is_object(t))
		return field_err(err, RWD_E_INVALID, f, "an input must be a tensor object");
	const char *name = json_string_value(json_object_get(t, "name"));
	const char *dt = json_string_value(json_object_get(t, "datatype"));
	json_t *shape = json_object_get(t, "shape");
	json_t *data = json_object_get(t, "data");
	if (!name || !dt || !json_is_array(shape) || !data)
		return field_err(err, RWD_E_INVALID, f, "a tensor needs \"name\", \"datatype\", \"shape\" and \"data\"");
	if (strlen(name) > 64)
		return field_err(err, RWD_E_INVALID, f, "a tensor name longer than 64 bytes");
	json_t *params = json_object_get(t, "parameters");
	if (params && json_object_get(params, "binary_data_size"))
		return field_err(err, RWD_E_INVALID, name,
			"binary tensor data is not supported; send the values in \"data\"");
	int mlp = strcmp(kind, "mlp") == 0;
	int rules = strcmp(kind, "rules") == 0;
	int known = mlp ? strcmp(name, "embedding") == 0 :
		strcmp(name, "text") == 0 || (rules && (strcmp(name, "prompt") == 0 || strcmp(name, "label") == 0));
	if (!known)
		return field_err(err, RWD_E_INVALID, name, "the model takes no input tensor of this name (%s)",
			mlp ? "expected \"embedding\"" : rules ? "expected \"text\", \"prompt\", \"label\"" :
			"expected \"text\"");
	const char *want = mlp ? "FP32" : "BYTES";
	if (strcmp(dt, want) != 0)
		return field_err(err, RWD_E_INVALID, name, "datatype %.16s, expected %s", dt, want);
	size_t nd = json_array_size(shape);
	json_int_t d[2] = {0, 1};
	for (size_t i = 0; i < nd && i < 2; i++) {
		json_t *e = json_array_get(shape, i);
		d[i] = json_is_integer(e) ? json_integer_value(e) : -1;
	}
	int ok = mlp ? nd == 2 && d[1] >= 1 : nd == 1 || (nd == 2 && d[1] == 1);
	/* each bound first, so the product cannot wrap */
	if (!ok || d[0] < 0 || d[1] < 0 || d[0] > RWD_COMPAT_MAX_TENSOR_ELEMS ||
	    d[1] > RWD_COMPAT_MAX_TENSOR_ELEMS ||
	    (uint64_t)d[0] * (uint64_t)d[1] > RWD_COMPAT_MAX_TENSOR_ELEMS)
		return field_err(err, RWD_E_INVALID, name, "shape must be %s of non-negative integers "
			"(at most %u elements)", mlp ? "[N, D]" : "[N] or [N, 1]", RWD_COMPAT_MAX_TENSOR_ELEMS);
	out->name = name;
	out->fp32 = mlp;
	out->rows = (size_t)d[0];
	out->cols = (size_t)d[1];
	size_t want_n = out->rows * out->cols;
	out->flat = json_array();
	if (!out->flat)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	if (flatten(data, out->flat, want_n + 1, 0) || json_array_size(out->flat) != want_n)
		return field_err(err, RWD_E_INVALID, name,
			"\"data\" must hold exactly %zu values (the product of the shape)", want_n);
	size_t i;
	json_t *v;
	json_array_foreach(out->flat, i, v) {
		if (mlp ? !json_is_number(v) : !json_is_string(v))
			return field_err(err, RWD_E_INVALID, name, "data[%zu] is not %s", i,
				mlp ? "a number" : "a string");
	}
	return 0;
}

static int parse_outputs(const json_t *outs, const char *const *dims, size_t n_dims, rwd_compat_oip *out,
	rwd_error *err)
{
	out->n_outputs = 0;
	if (!outs) {
		out->outputs[out->n_outputs++] = RWD_COMPAT_OUT_REWARDS;
		return 0;
	}
	if (!json_is_array(outs) || json_array_size(outs) == 0 || json_array_size(outs) > RWD_COMPAT_MAX_OUTPUTS)
		return field_err(err, RWD_E_INVALID, "outputs",
			"\"outputs\" must be a non-empty array of at most %d {\"name\"} objects", RWD_COMPAT_MAX_OUTPUTS);
	size_t i;
	json_t *o;
	json_array_foreach(outs, i, o) {
		const char *name = json_string_value(json_object_get(o, "name"));
		if (!name)
			return field_err(err, RWD_E_INVALID, "outputs", "outputs[%zu] needs a \"name\"", i);
		int k = 0, found = 1;
		if (strcmp(name, "rewards") == 0) {
			k = RWD_COMPAT_OUT_REWARDS;
		} else if (strcmp(name, "reward") == 0) {
			k = RWD_COMPAT_OUT_REWARD;
		} else {
			found = 0;
			for (size_t d = 0; d < n_dims && !found; d++)
				if (dims[d] && strcmp(dims[d], name) == 0) {
					k = (int)d;
					found = 1;
				}
		}
		if (!found)
			return field_err(err, RWD_E_INVALID, "outputs",
				"no output named '%.64s' (rewards, reward, or a dimension)", name);
		out->outputs[out->n_outputs++] = k;
	}
	return 0;
}

static int build_rows(const char *kind, const oip_tensor *t, size_t nt, json_t *items, rwd_error *err)
{
	const char *main_name = strcmp(kind, "mlp") == 0 ? "embedding" : "text";
	const oip_tensor *main_t = NULL, *prompt = NULL, *label = NULL;
	for (size_t i = 0; i < nt; i++) {
		if (strcmp(t[i].name, main_name) == 0)
			main_t = &t[i];
		else if (strcmp(t[i].name, "prompt") == 0)
			prompt = &t[i];
		else if (strcmp(t[i].name, "label") == 0)
			label = &t[i];
	}
	if (!main_t)
		return field_err(err, RWD_E_INVALID, "inputs", "missing the \"%s\" input tensor", main_name);
	for (size_t row = 0; row < main_t->rows; row++) {
		json_t *it;
		if (main_t->fp32) {
			json_t *e = json_array();
			for (size_t c = 0; e && c < main_t->cols; c++)
				json_array_append(e, json_array_get(main_t->flat, row * main_t->cols + c));
			it = json_pack("{so}", "embedding", e);
		} else {
			it = json_pack("{sO}", rwd_compat_text_field(kind), json_array_get(main_t->flat, row));
		}
		if (it && prompt)
			json_object_set(it, "prompt", json_array_get(prompt->flat, row));
		if (it && label)
			json_object_set(it, "label", json_array_get(label->flat, row));
		int r = append(items, it, err);
		if (r)
			return r;
	}
	return 0;
}

int rwd_compat_oip_infer(const json_t *root, const char *kind, const char *const *dims, size_t n_dims,
	const rwd_compat_limits *lim, json_t *items, rwd_compat_oip *out, rwd_error *err)
{
	memset(out, 0, sizeof(*out));
	json_t *id = json_object_get(root, "id");
	if (id && !json_is_string(id))
		return field_err(err, RWD_E_INVALID, "id", "\"id\" must be a string");
	out->id = id;
	if (!rwd_compat_text_field(kind) && !(kind && strcmp(kind, "mlp") == 0))
		return field_err(err, RWD_E_INVALID, NULL,
			"model kind '%.32s' takes no tensor input here; use POST /v1/rewards", kind ? kind : "?");
	json_t *ins = json_object_get(root, "inputs");
	if (!json_is_array(ins) || json_array_size(ins) == 0 || json_array_size(ins) > 3)
		return field_err(err, RWD_E_INVALID, "inputs", "\"inputs\" must be an array of 1 to 3 tensors");
	int r = parse_outputs(json_object_get(root, "outputs"), dims, n_dims, out, err);
	if (r)
		return r;
	oip_tensor t[3];
	memset(t, 0, sizeof(t));
	size_t nt = json_array_size(ins);
	for (size_t i = 0; i < nt && !r; i++) {
		r = parse_tensor(json_array_get(ins, i), i, kind, &t[i], err);
		for (size_t j = 0; j < i && !r; j++)
			if (strcmp(t[i].name, t[j].name) == 0)
				r = field_err(err, RWD_E_INVALID, t[i].name, "the tensor is given twice");
		if (!r && t[i].rows != t[0].rows)
			r = field_err(err, RWD_E_INVALID, t[i].name,
				"%zu rows, but '%s' has %zu; every input needs one row per item", t[i].rows,
				t[0].name, t[0].rows);
		if (!r)
			r = too_many(t[i].rows, lim, t[i].name, err);
	}
	if (!r)
		r = build_rows(kind, t, nt, items, err);
	for (size_t i = 0; i < nt; i++)
		json_decref(t[i].flat);
	return r;
}

void rwd_compat_remap_field(int proto, char *object, size_t size)
{
	if (strncmp(object, "items", 5) != 0)
		return;
	const char *rest = object + 5;
	size_t idx = 0;
	int has_idx = 0;
	const char *sub = "";
	if (rest[0] == '[') {
		char *end;
		idx = strtoul(rest + 1, &end, 10);
		if (*end != ']')
			return;
		has_idx = 1;
		sub = end + 1;
		if (*sub == '.')
			sub++;
	} else if (rest[0] != '\0') {
		return;
	}
	const char *name;
	if (proto == RWD_COMPAT_GET_REWARD)
		name = strncmp(sub, "prompt", 6) == 0 ? "prompts" : strncmp(sub, "label", 5) == 0 ? "labels" :
			"query";
	else if (proto == RWD_COMPAT_OIP)
		name = strncmp(sub, "prompt", 6) == 0 ? "prompt" : strncmp(sub, "label", 5) == 0 ? "label" :
			strncmp(sub, "embedding", 9) == 0 ? "embedding" : "text";
	else
		name = "input";
	char out[RWD_ERROR_OBJECT_MAX];
	if (has_idx)
		snprintf(out, sizeof(out), "%s[%zu]", name, idx);
	else
		snprintf(out, sizeof(out), "%s", name);
	snprintf(object, size, "%s", out);
}
