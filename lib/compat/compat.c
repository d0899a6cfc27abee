/* compat/compat.c — see compat.h. */
#include "compat/compat.h"

#include "core/base64.h"
#include "core/json.h"
#include "serve/request.h"

#include <math.h>
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

/* ---- per-model options ------------------------------------------------- */

rwd_compat_options rwd_compat_default_options(void)
{
	rwd_compat_options o;
	memset(&o, 0, sizeof(o));
	snprintf(o.scores_from, sizeof(o.scores_from), "reward");
	o.scores_transform = RWD_COMPAT_T_IDENTITY;
	o.scores_min = 0.0;
	o.scores_max = 1.0;
	return o;
}

static int opt_err(rwd_error *err, const char *path, const char *field, const char *fmt, ...)
	RWD_PRINTF(4, 5);

static int opt_err(rwd_error *err, const char *path, const char *field, const char *fmt, ...)
{
	char msg[RWD_ERROR_MSG_MAX], where[RWD_ERROR_OBJECT_MAX + 64];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(where, sizeof(where), "%.80s.%.40s", path ? path : "compat", field);
	return field_err(err, RWD_E_INVALID, where, "%s", msg);
}

/* A dimension name option: a string of 1..RWD_COMPAT_NAME_MAX bytes. */
static int opt_name(const json_t *v, const char *path, const char *field, char *out, size_t size,
	rwd_error *err)
{
	const char *s = json_string_value(v);
	if (!s || !*s || strlen(s) >= size)
		return opt_err(err, path, field, "must be a dimension name (1 to %d bytes) or \"reward\"",
			RWD_COMPAT_NAME_MAX);
	snprintf(out, size, "%s", s);
	return 0;
}

static int opt_number(const json_t *v, const char *path, const char *field, double *out, rwd_error *err)
{
	if (!json_is_number(v) || !isfinite(json_number_value(v)))
		return opt_err(err, path, field, "must be a finite number");
	*out = json_number_value(v);
	return 0;
}

int rwd_compat_options_parse(const json_t *obj, const char *path, rwd_compat_options *o, rwd_error *err)
{
	*o = rwd_compat_default_options();
	if (!obj || json_is_null(obj))
		return 0;
	if (!json_is_object(obj))
		return field_err(err, RWD_E_INVALID, path, "must be an object");
	const char *k;
	json_t *v;
	int r;
	json_object_foreach((json_t *)obj, k, v) {
		if (strcmp(k, "classify_dimension") == 0) {
			if ((r = opt_name(v, path, k, o->classify_dimension, sizeof(o->classify_dimension), err)))
				return r;
		} else if (strcmp(k, "extra_logs_filler") == 0) {
			if ((r = opt_number(v, path, k, &o->logs_filler, err)))
				return r;
		} else if (strcmp(k, "scores") == 0) {
			if (!json_is_object(v))
				return opt_err(err, path, k, "must be an object {\"from\", \"transform\", \"min\", \"max\"}");
			const char *sk;
			json_t *sv;
			json_object_foreach(v, sk, sv) {
				char f[80];
				snprintf(f, sizeof(f), "scores.%.32s", sk);
				if (strcmp(sk, "from") == 0) {
					if ((r = opt_name(sv, path, f, o->scores_from, sizeof(o->scores_from), err)))
						return r;
				} else if (strcmp(sk, "transform") == 0) {
					const char *t = json_string_value(sv);
					if (t && strcmp(t, "identity") == 0)
						o->scores_transform = RWD_COMPAT_T_IDENTITY;
					else if (t && strcmp(t, "sigmoid") == 0)
						o->scores_transform = RWD_COMPAT_T_SIGMOID;
					else if (t && strcmp(t, "linear") == 0)
						o->scores_transform = RWD_COMPAT_T_LINEAR;
					else
						return opt_err(err, path, f, "must be \"identity\", \"sigmoid\" or \"linear\"");
				} else if (strcmp(sk, "min") == 0) {
					if ((r = opt_number(sv, path, f, &o->scores_min, err)))
						return r;
				} else if (strcmp(sk, "max") == 0) {
					if ((r = opt_number(sv, path, f, &o->scores_max, err)))
						return r;
				} else {
					return opt_err(err, path, f, "unknown field (expected from, transform, min, max)");
				}
			}
			if (o->scores_transform == RWD_COMPAT_T_LINEAR && !(o->scores_max > o->scores_min))
				return opt_err(err, path, "scores.max", "must be greater than scores.min");
		} else if (strcmp(k, "$comment") != 0) {
			return opt_err(err, path, k,
				"unknown field (expected classify_dimension, extra_logs_filler, scores)");
		}
	}
	return 0;
}

double rwd_compat_scores_value(const rwd_compat_options *o, double v)
{
	switch (o->scores_transform) {
	case RWD_COMPAT_T_SIGMOID:
		return 1.0 / (1.0 + exp(-v));
	case RWD_COMPAT_T_LINEAR: {
		double t = (v - o->scores_min) / (o->scores_max - o->scores_min);
		return t < 0.0 ? 0.0 : t > 1.0 ? 1.0 : t;
	}
	default:
		return v;
	}
}

const char *rwd_compat_log_key(const char *dim, char *buf, size_t size)
{
	/*
	 * The info keys OpenRLHF sets itself before it copies extra_logs into
	 * the same dict (samples_generator.py: reward, score, response_length,
	 * total_length, response_clip_ratio, truncated; distill_mask), so ours
	 * would overwrite them.
	 */
	static const char *const taken[] = {"reward", "score", "response_length", "total_length",
		"response_clip_ratio", "truncated", "completion_length", "distill", "distill_mask", NULL};
	for (size_t i = 0; taken[i]; i++)
		if (strcmp(dim, taken[i]) == 0) {
			snprintf(buf, size, "rm_%s", dim);
			return buf;
		}
	snprintf(buf, size, "%s", dim);
	return buf;
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
		char *s = rwd_json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
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
	/*
	 * OpenRLHF's serve_rm (cli/serve_rm.py tokenize_fn @3c3be623) tokenizes
	 * with truncation=True, max_length=max_len: a HF tokenizer's default
	 * side, "right", keeps the first tokens. A query over the model's
	 * max_tokens gets the same here unless the model's "truncate" option
	 * says otherwise (a 422 would be retried 5 times and leave the reward
	 * None in OpenRLHF HEAD).
	 */
	int seqcls = strcmp(kind, "seqcls") == 0;
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
		if (it && seqcls)
			json_object_set_new(it, "truncation_side", json_string("right"));
		if (it && rules && labels) {
			/* OpenRLHF sends "" when the dataset has no --label_key: no label */
			json_t *l = json_array_get(labels, i);
			if (!json_is_null(l) && !(json_is_string(l) && json_string_length(l) == 0))
				json_object_set_new(it, "label", label_value(l));
		}
		if ((r = append(items, it, err)))
			return r;
	}
	return 0;
}

/* The per-item tokenisation options of a vLLM body (seqcls items only). */
typedef struct vllm_opts {
	const json_t *add_special;   /* bool or NULL */
	const json_t *truncate;      /* integer or NULL */
	int seqcls;
} vllm_opts;

/* One item {field: v}, with the tokenisation options for seqcls. */
static int vllm_item(json_t *items, const char *field, json_t *v, const vllm_opts *o, rwd_error *err)
{
	json_t *it = json_pack("{sO}", field, v);
	if (it && o->seqcls && o->add_special)
		json_object_set(it, "add_special_tokens", (json_t *)o->add_special);
	if (it && o->seqcls && o->truncate)
		json_object_set(it, "truncate_prompt_tokens", (json_t *)o->truncate);
	return append(items, it, err);
}

/* vLLM's chat form: one conversation. rules scores its last message. */
static int vllm_chat(const json_t *msgs, const char *kind, const vllm_opts *o, json_t *items, rwd_error *err)
{
	if (!json_is_array(msgs) || json_array_size(msgs) == 0)
		return field_err(err, RWD_E_INVALID, "messages", "\"messages\" must be a non-empty array of "
			"{\"role\", \"content\"} objects (one conversation)");
	if (o->seqcls)
		return vllm_item(items, "messages", (json_t *)msgs, o, err);
	if (strcmp(kind, "rules") != 0)
		return no_text(kind, err);
	size_t n = json_array_size(msgs);
	json_t *last = json_array_get(msgs, n - 1);
	json_t *content = json_object_get(last, "content");
	if (!json_is_string(content)) {
		char f[48];
		snprintf(f, sizeof(f), "messages[%zu]", n - 1);
		return field_err(err, RWD_E_INVALID, f, "the last message's \"content\" must be a string (the response)");
	}
	json_t *it = json_pack("{sO}", "response", content);
	for (size_t i = n - 1; it && i-- > 0;) {
		json_t *m = json_array_get(msgs, i);
		const char *role = json_string_value(json_object_get(m, "role"));
		json_t *c = json_object_get(m, "content");
		if (role && strcmp(role, "user") == 0 && json_is_string(c)) {
			json_object_set(it, "prompt", c);
			break;
		}
	}
	return append(items, it, err);
}

/* A list of texts or token-id lists (vLLM "input", SGLang "text"/"input_ids"). */
static int vllm_list(const json_t *in, const char *name, const char *tf, const vllm_opts *o,
	const rwd_compat_limits *lim, json_t *items, rwd_error *err)
{
	int r = too_many(json_array_size(in), lim, name, err);
	if (r)
		return r;
	/* a flat array of integers is one tokenised input */
	if (json_array_size(in) > 0 && json_is_integer(json_array_get(in, 0))) {
		if (!o->seqcls)
			return field_err(err, RWD_E_INVALID, name, "token ids need a seqcls model");
		return vllm_item(items, "input_ids", (json_t *)in, o, err);
	}
	size_t i;
	json_t *v;
	json_array_foreach(in, i, v) {
		char f[48];
		snprintf(f, sizeof(f), "%s[%zu]", name, i);
		if (json_is_string(v))
			r = vllm_item(items, tf, v, o, err);
		else if (json_is_array(v) && o->seqcls)
			r = vllm_item(items, "input_ids", v, o, err);
		else
			r = field_err(err, RWD_E_INVALID, f, o->seqcls ?
				"an input must be a text or an array of token ids" : "an input must be a text");
		if (r)
			return r;
	}
	return 0;
}

int rwd_compat_vllm(const json_t *root, const char *kind, const rwd_compat_limits *lim, int sglang_ok,
	json_t *items, rwd_compat_vllm_req *req, rwd_error *err)
{
	memset(req, 0, sizeof(*req));
	req->activation = 1;
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
	req->activation = !a || json_is_null(a) || json_is_true(a);

	json_t *ef = json_object_get(root, "encoding_format");
	if (ef && !json_is_null(ef)) {
		const char *e = json_string_value(ef);
		if (!e || (strcmp(e, "float") && strcmp(e, "base64")))
			return field_err(err, RWD_E_INVALID, "encoding_format", "must be \"float\" or \"base64\"");
		req->base64 = strcmp(e, "base64") == 0;
	}
	vllm_opts o = {NULL, NULL, strcmp(kind, "seqcls") == 0};
	json_t *ast = json_object_get(root, "add_special_tokens");
	if (ast && !json_is_null(ast)) {
		if (!json_is_boolean(ast))
			return field_err(err, RWD_E_INVALID, "add_special_tokens", "must be true or false");
		o.add_special = ast;
	}
	json_t *tpt = json_object_get(root, "truncate_prompt_tokens");
	if (tpt && !json_is_null(tpt)) {
		json_int_t k = json_is_integer(tpt) ? json_integer_value(tpt) : 0;
		if (k != -1 && (k < 1 || k > (1 << 24)))
			return field_err(err, RWD_E_INVALID, "truncate_prompt_tokens",
				"must be -1 (the model's max_tokens) or a number of tokens >= 1");
		o.truncate = tpt;
	}

	json_t *in = json_object_get(root, "input");
	json_t *msgs = json_object_get(root, "messages");
	if (in && msgs)
		return field_err(err, RWD_E_INVALID, "messages",
			"send either \"input\" (completion form) or \"messages\" (chat form), not both");
	if (msgs)
		return vllm_chat(msgs, kind, &o, items, err);
	if (!in && sglang_ok && (json_object_get(root, "text") || json_object_get(root, "input_ids"))) {
		/* SGLang's native /classify (EmbeddingReqInput): "text" or "input_ids" */
		req->sglang = 1;
		json_t *t = json_object_get(root, "text");
		const char *name = t ? "text" : "input_ids";
		if (!t)
			t = json_object_get(root, "input_ids");
		if (json_is_string(t) && strcmp(name, "text") == 0) {
			req->single = 1;
			return vllm_item(items, tf, t, &o, err);
		}
		if (!json_is_array(t))
			return field_err(err, RWD_E_INVALID, name, strcmp(name, "text") == 0 ?
				"\"text\" must be a text or an array of texts" :
				"\"input_ids\" must be an array of token ids or of token-id arrays");
		req->single = json_array_size(t) > 0 && json_is_integer(json_array_get(t, 0));
		if (strcmp(name, "text") == 0 && req->single)
			return field_err(err, RWD_E_INVALID, "text", "\"text\" must be a text or an array of texts");
		return vllm_list(t, name, tf, &o, lim, items, err);
	}
	if (!in)
		return field_err(err, RWD_E_INVALID, "input",
			"missing \"input\" (a text or an array of texts) or \"messages\" (a conversation)");
	if (json_is_string(in))
		return vllm_item(items, tf, in, &o, err);
	if (!json_is_array(in))
		return field_err(err, RWD_E_INVALID, "input", "\"input\" must be a text or an array");
	return vllm_list(in, "input", tf, &o, lim, items, err);
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
			"binary tensor data that was not decoded (binary_data_size inside the JSON alone)");
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

/* parameters.binary_data(_output): absent or null is dflt, otherwise a bool. */
static int binary_param(const json_t *params, const char *key, int dflt, const char *field, int *out,
	rwd_error *err)
{
	json_t *v = params ? json_object_get(params, key) : NULL;
	if (params && !json_is_object(params))
		return field_err(err, RWD_E_INVALID, field, "\"parameters\" must be an object");
	if (!v || json_is_null(v)) {
		*out = dflt;
		return 0;
	}
	if (!json_is_boolean(v))
		return field_err(err, RWD_E_INVALID, field, "\"%s\" must be true or false", key);
	*out = json_is_true(v);
	return 0;
}

static int parse_outputs(const json_t *root, const char *const *dims, size_t n_dims, rwd_compat_oip *out,
	rwd_error *err)
{
	const json_t *outs = json_object_get(root, "outputs");
	int all_binary;
	int r = binary_param(json_object_get(root, "parameters"), "binary_data_output", 0, "parameters",
		&all_binary, err);
	if (r)
		return r;
	out->n_outputs = 0;
	if (!outs) {
		out->binary[out->n_outputs] = (uint8_t)all_binary;
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
		int bin;
		if ((r = binary_param(json_object_get(o, "parameters"), "binary_data", all_binary, "outputs", &bin,
			err)))
			return r;
		out->binary[out->n_outputs] = (uint8_t)bin;
		out->outputs[out->n_outputs++] = k;
	}
	return 0;
}

/* ---- OIP binary tensor extension -------------------------------------- */

/* The element count of a shape, each dimension bounded first so the product cannot wrap. */
static int shape_elems(const json_t *shape, const char *f, size_t *n, rwd_error *err)
{
	if (!json_is_array(shape) || json_array_size(shape) > 8)
		return field_err(err, RWD_E_INVALID, f, "\"shape\" must be an array of at most 8 integers");
	uint64_t p = 1;
	size_t i;
	json_t *d;
	json_array_foreach(shape, i, d) {
		json_int_t v = json_is_integer(d) ? json_integer_value(d) : -1;
		if (v < 0 || v > RWD_COMPAT_MAX_TENSOR_ELEMS)
			return field_err(err, RWD_E_INVALID, f, "shape[%zu] must be an integer in [0, %u]", i,
				RWD_COMPAT_MAX_TENSOR_ELEMS);
		p *= (uint64_t)v;
		if (p > RWD_COMPAT_MAX_TENSOR_ELEMS)
			return field_err(err, RWD_E_LIMIT, f, "the shape has more than %u elements",
				RWD_COMPAT_MAX_TENSOR_ELEMS);
	}
	*n = (size_t)p;
	return 0;
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* One binary input's bytes b[0..size) as a "data" array (*out owned by the caller). */
static int decode_tensor(const json_t *t, const char *f, const unsigned char *b, size_t size, json_t **out,
	rwd_error *err)
{
	*out = NULL;
	const char *dt = json_string_value(json_object_get(t, "datatype"));
	size_t n = 0;
	int r = shape_elems(json_object_get(t, "shape"), f, &n, err);
	if (r)
		return r;
	if (!dt)
		return field_err(err, RWD_E_INVALID, f, "a tensor needs a \"datatype\"");
	int fp32 = strcmp(dt, "FP32") == 0;
	if (!fp32 && strcmp(dt, "BYTES") != 0)
		return field_err(err, RWD_E_INVALID, f,
			"binary data of datatype %.16s is not supported (BYTES or FP32)", dt);
	if (fp32 && size != n * 4)
		return field_err(err, RWD_E_INVALID, f,
			"an FP32 tensor of %zu elements is %zu bytes, but binary_data_size is %zu", n, n * 4, size);
	if (!fp32 && n > RWD_COMPAT_MAX_BYTES_ELEMS)
		return field_err(err, RWD_E_LIMIT, f, "%zu BYTES elements, more than the limit of %u", n,
			RWD_COMPAT_MAX_BYTES_ELEMS);
	json_t *data = json_array();
	if (!data)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	size_t off = 0;
	for (size_t i = 0; i < n; i++) {
		json_t *v;
		if (fp32) {
			uint32_t u = le32(b + 4 * i);
			float x;
			memcpy(&x, &u, sizeof(x));
			if (!isfinite(x)) {
				json_decref(data);
				return field_err(err, RWD_E_INVALID, f, "element %zu is not a finite number", i);
			}
			v = json_real((double)x);
		} else {
			/* Triton's BYTES serialisation: a 4-byte little-endian length, then the bytes */
			if (size - off < 4) {
				json_decref(data);
				return field_err(err, RWD_E_INVALID, f,
					"element %zu: its 4-byte length prefix is past binary_data_size %zu", i, size);
			}
			uint32_t len = le32(b + off);
			off += 4;
			if (len > size - off || len > RWD_COMPAT_MAX_ELEM_BYTES) {
				json_decref(data);
				return field_err(err, RWD_E_INVALID, f,
					"element %zu is %u bytes, but only %zu of binary_data_size are left", i, len,
					size - off);
			}
			v = json_stringn((const char *)b + off, len);
			if (!v) {
				json_decref(data);
				return field_err(err, RWD_E_INVALID, f, "element %zu is not valid UTF-8 text", i);
			}
			off += len;
		}
		if (!v || json_array_append_new(data, v)) {
			json_decref(data);
			return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		}
	}
	if (!fp32 && off != size) {
		json_decref(data);
		return field_err(err, RWD_E_INVALID, f,
			"%zu bytes of binary_data_size %zu are left after the %zu elements of the shape", size - off,
			size, n);
	}
	*out = data;
	return 0;
}

int rwd_compat_oip_binary(const char *body, size_t len, long long header_len, const rwd_compat_limits *lim,
	json_t **root, rwd_error *err)
{
	static const char *const hdr = "Inference-Header-Content-Length";
	*root = NULL;
	size_t hl;
	if (header_len >= 0) {
		if (header_len == 0 || (unsigned long long)header_len > len)
			return field_err(err, RWD_E_INVALID, hdr, "%lld, but the body has %zu bytes (the JSON "
				"header must be 1 to %zu bytes)", header_len, len, len);
		hl = (size_t)header_len;
	} else {
		/* no header: the JSON ends where its value ends (jansson caps its nesting at 2048) */
		json_error_t jerr;
		json_t *j = json_loadb(body, len, JSON_DISABLE_EOF_CHECK, &jerr);
		if (!j) {
			rwd_error_at(err, jerr.line, jerr.column, jerr.position);
			return rwd_errorf(err, RWD_E_FORMAT, "invalid JSON: %s", jerr.text);
		}
		json_decref(j);
		hl = jerr.position > 0 && (size_t)jerr.position <= len ? (size_t)jerr.position : len;
		/* JSON followed only by whitespace is all JSON (curl -d with a newline) */
		size_t k = hl;
		while (k < len && (body[k] == ' ' || body[k] == '\n' || body[k] == '\r' || body[k] == '\t'))
			k++;
		if (k == len)
			hl = len;
	}
	int r = rwd_compat_load(body, hl, lim, root, err);
	if (r)
		return r;
	const unsigned char *b = (const unsigned char *)body;
	size_t off = hl;
	json_t *ins = json_object_get(*root, "inputs");
	size_t i;
	json_t *t;
	json_array_foreach(ins, i, t) {
		char f[48];
		snprintf(f, sizeof(f), "inputs[%zu]", i);
		json_t *params = json_object_get(t, "parameters");
		json_t *bds = json_is_object(params) ? json_object_get(params, "binary_data_size") : NULL;
		if (!bds)
			continue;
		json_int_t sz = json_is_integer(bds) ? json_integer_value(bds) : -1;
		if (sz < 0)
			r = field_err(err, RWD_E_INVALID, f, "\"binary_data_size\" must be a non-negative integer");
		else if (json_object_get(t, "data"))
			r = field_err(err, RWD_E_INVALID, f, "a tensor has either \"data\" or binary_data_size, not both");
		else if ((unsigned long long)sz > len - off)
			r = field_err(err, RWD_E_INVALID, f,
				"binary_data_size %lld, but only %zu bytes of the body are left", (long long)sz, len - off);
		json_t *data = NULL;
		if (!r)
			r = decode_tensor(t, f, b + off, (size_t)sz, &data, err);
		if (!r && (json_object_set_new(t, "data", data) || json_object_del(params, "binary_data_size")))
			r = rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		if (r) {
			json_decref(*root);
			*root = NULL;
			return r;
		}
		off += (size_t)sz;
	}
	if (off != len) {
		json_decref(*root);
		*root = NULL;
		return field_err(err, RWD_E_INVALID, header_len >= 0 ? hdr : "inputs",
			"%zu bytes after the JSON header are not claimed by any input's binary_data_size", len - off);
	}
	return 0;
}

/*
 * An FP32 row as {"embedding_b64": base64 of its little-endian float32}: the
 * native body is then rendered and re-parsed without a decimal per number
 * (the floats are those the JSON array would give: (float) of each double,
 * which the array's 17-digit rendering round-trips). NULL when a value is
 * outside float range, so the array form keeps its error message.
 */
static json_t *b64_row(const json_t *flat, size_t off, size_t cols)
{
	size_t nb = cols * 4;
	uint8_t *bytes = malloc(nb ? nb : 1);
	char *text = malloc(rwd_base64_encoded_len(nb, 0) + 1);
	json_t *it = NULL;
	if (!bytes || !text)
		goto out;
	for (size_t c = 0; c < cols; c++) {
		double d = json_number_value(json_array_get(flat, off + c));
		if (!isfinite(d) || fabs(d) > 3.4e38)
			goto out;
		float f = (float)d;
		uint32_t u;
		memcpy(&u, &f, 4);
		for (int k = 0; k < 4; k++)
			bytes[4 * c + (size_t)k] = (uint8_t)(u >> (8 * k));
	}
	size_t n = rwd_base64_encode(bytes, nb, 0, text);
	it = json_pack("{s:s%}", "embedding_b64", text, n);
out:
	free(bytes);
	free(text);
	return it;
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
		if (main_t->fp32 && (it = b64_row(main_t->flat, row * main_t->cols, main_t->cols))) {
			/* the row as base64 float32 */
		} else if (main_t->fp32) {
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
	int r = parse_outputs(root, dims, n_dims, out, err);
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
