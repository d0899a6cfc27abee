/*
 * daemon/api_compat.c — drop-in endpoints for trainers that already speak
 * another server's protocol (see api_compat.h and README.dropin.md):
 *
 *   POST /get_reward      OpenRLHF's remote reward model
 *   POST /classify        vLLM's classify API (verl's reward-model path)
 *   POST /pooling         vLLM's pooling API
 *   POST /v1/embeddings   SGLang's embedding API for reward models
 *   /v2/...               KServe Open Inference Protocol v2 (REST)
 *
 * Every scoring body is translated into a native /v1/rewards body and goes
 * through rwd_request_parse() (the same limits, model lookup and per-kind
 * validation), the model's batcher and http.c's suspend/resume path; only
 * the reply is shaped for the trainer. These clients cannot take a partial
 * answer, so one failed item fails the whole request with that item's
 * error; a failure is never turned into a reward. Errors use the native
 * {"error": {code, message, field?}} body, except under /v2/, which uses
 * OIP's {"error": "<message>"}.
 *
 * Which text field a kind scores: `seqcls` takes the text as `text` (the
 * trainer already applied the chat template); `rules` takes it as
 * `response`, with `prompt` and `label` where the protocol carries them.
 * Other kinds take no text alone; `mlp` takes an FP32 tensor under /v2.
 */
#include "api_compat.h"

#include "api_internal.h"
#include "core/thread.h"
#include "reward/reward.h"
#include "serve/request.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

/* Most inputs one OIP tensor may hold (elements), before any allocation. */
#define MAX_TENSOR_ELEMS (1u << 24)
/* Outputs an OIP request may name. */
#define MAX_OUTPUTS (RWD_MAX_DIMS + 2)
enum { OUT_REWARDS = -1, OUT_REWARD = -2 };

typedef struct compat_job {
	rwd_job job;
	rwd_call *call;
	rwd_request req;
	int submitted;
	const char *name;      /* /v2/models/{name}: from the URL (arena) */
	int activation;        /* /classify: sigmoid (one class) or softmax */
	const json_t *oip_id;  /* /v2 infer: the request's "id" (borrowed) */
	int outputs[MAX_OUTPUTS];
	size_t n_outputs;
} compat_job;

static int is_v2(int route)
{
	return route >= RWD_ROUTE_V2_LIVE && route <= RWD_ROUTE_V2_INFER;
}

int rwd__api_compat_is(int route)
{
	return route >= RWD_ROUTE_GET_REWARD && route <= RWD_ROUTE_V2_INFER;
}

/*
 * /v2/models/{name}[/versions/{v}][/ready|/infer]: the name's span and the
 * route. Only version "1" exists (every model has one version).
 */
static int v2_model_route(const char *url, const char **name, size_t *name_len)
{
	const char *p = url + strlen("/v2/models/");
	const char *slash = strchr(p, '/');
	*name = p;
	*name_len = slash ? (size_t)(slash - p) : strlen(p);
	if (*name_len == 0)
		return RWD_ROUTE_NONE;
	if (!slash)
		return RWD_ROUTE_V2_MODEL;
	const char *rest = slash;
	if (strncmp(rest, "/versions/1", 11) == 0 && (rest[11] == '\0' || rest[11] == '/'))
		rest += 11;
	if (*rest == '\0')
		return RWD_ROUTE_V2_MODEL;
	if (strcmp(rest, "/ready") == 0)
		return RWD_ROUTE_V2_MODEL_READY;
	if (strcmp(rest, "/infer") == 0)
		return RWD_ROUTE_V2_INFER;
	return RWD_ROUTE_NONE;
}

int rwd__api_compat_route(const char *url)
{
	if (strcmp(url, "/get_reward") == 0)
		return RWD_ROUTE_GET_REWARD;
	if (strcmp(url, "/classify") == 0)
		return RWD_ROUTE_CLASSIFY;
	if (strcmp(url, "/pooling") == 0)
		return RWD_ROUTE_POOLING;
	if (strcmp(url, "/v1/embeddings") == 0)
		return RWD_ROUTE_EMBEDDINGS;
	if (strcmp(url, "/v2/health/live") == 0)
		return RWD_ROUTE_V2_LIVE;
	if (strcmp(url, "/v2/health/ready") == 0)
		return RWD_ROUTE_V2_READY;
	if (strncmp(url, "/v2/models/", 11) == 0) {
		const char *n;
		size_t len;
		return v2_model_route(url, &n, &len);
	}
	return RWD_ROUTE_NONE;
}

/* An error in the route's shape: OIP's {"error": "..."} under /v2/. */
static void fail(rwd_call *call, rwd_reply *r, int status, const char *code, const char *field,
	const char *fmt, ...) RWD_PRINTF(6, 7);

static void fail(rwd_call *call, rwd_reply *r, int status, const char *code, const char *field,
	const char *fmt, ...)
{
	char msg[RWD_ERROR_MSG_MAX + RWD_ERROR_OBJECT_MAX + 8];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!is_v2(call->route)) {
		rwd_api_error(r, status, code, msg, field, 0, 0);
		return;
	}
	char full[sizeof(msg) + RWD_ERROR_OBJECT_MAX + 4];
	if (field && *field)
		snprintf(full, sizeof(full), "%s: %s", field, msg);
	else
		snprintf(full, sizeof(full), "%s", msg);
	json_decref(r->json);
	r->json = json_pack("{ss}", "error", full);
	r->status = status;
}

/* An rwd_error as the route's error reply (status and code from err->code). */
static void fail_err(rwd_call *call, rwd_reply *r, const rwd_error *err)
{
	int code = err->code ? err->code : RWD_E_INTERNAL;
	if (!is_v2(call->route)) {
		rwd__api_error_from(r, err);
		return;
	}
	fail(call, r, rwd__api_http_status(code), rwd__api_error_code(code), err->object, "%s",
		err->msg[0] ? err->msg : rwd_strerror(code));
	if (code == RWD_E_FULL)
		r->retry_after_s = 1;
}

/* ---- the text field of each protocol, per kind ------------------------ */

static const char *text_field(const char *kind)
{
	if (strcmp(kind, "seqcls") == 0)
		return "text";
	if (strcmp(kind, "rules") == 0)
		return "response";
	return NULL;
}

/*
 * Rename a native field path ("items[3].label") to the protocol's
 * ("labels[3]" for /get_reward, "input[3]" for /classify, "label[3]" for an
 * OIP tensor), so the client sees the names it sent.
 */
static void remap_field(int route, char *object, size_t size)
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
	if (route == RWD_ROUTE_GET_REWARD) {
		name = strncmp(sub, "prompt", 6) == 0 ? "prompts" : strncmp(sub, "label", 5) == 0 ? "labels" :
			"query";
	} else if (is_v2(route)) {
		name = strncmp(sub, "prompt", 6) == 0 ? "prompt" : strncmp(sub, "label", 5) == 0 ? "label" :
			strncmp(sub, "embedding", 9) == 0 ? "embedding" : "text";
	} else {
		name = "input";
	}
	char out[RWD_ERROR_OBJECT_MAX];
	if (has_idx)
		snprintf(out, sizeof(out), "%s[%zu]", name, idx);
	else
		snprintf(out, sizeof(out), "%s", name);
	snprintf(object, size, "%s", out);
}

/* ---- GET routes -------------------------------------------------------- */

static rwd_served *served_by_name(rwd_app *app, const char *name)
{
	for (size_t i = 0; i < app->n_models; i++)
		if (strcmp(app->models[i].cfg->name, name) == 0)
			return &app->models[i];
	return NULL;
}

static int served_ready(rwd_served *s)
{
	return atomic_load_explicit(&s->state, memory_order_acquire) == RWD_SERVED_READY;
}

static json_t *tensor_meta(const char *name, const char *datatype, json_int_t d0, json_int_t d1)
{
	if (d1 == 0)
		return json_pack("{ss ss s[I]}", "name", name, "datatype", datatype, "shape", d0);
	return json_pack("{ss ss s[II]}", "name", name, "datatype", datatype, "shape", d0, d1);
}

/* OIP model metadata: inputs by kind; outputs rewards [-1, D], reward [-1], one per dimension. */
static void v2_model_metadata(rwd_call *call, rwd_served *s, rwd_reply *reply)
{
	const rwd_model_info *info = rwd_model_get_info(s->model);
	json_t *inputs = json_array();
	if (strcmp(info->kind, "mlp") == 0) {
		json_array_append_new(inputs, tensor_meta("embedding", "FP32", -1, -1));
	} else if (text_field(info->kind)) {
		json_array_append_new(inputs, tensor_meta("text", "BYTES", -1, 0));
		if (strcmp(info->kind, "rules") == 0) {
			json_array_append_new(inputs, tensor_meta("prompt", "BYTES", -1, 0));
			json_array_append_new(inputs, tensor_meta("label", "BYTES", -1, 0));
		}
	}
	json_t *outputs = json_array();
	json_array_append_new(outputs, tensor_meta("rewards", "FP32", -1, (json_int_t)info->n_dims));
	json_array_append_new(outputs, tensor_meta("reward", "FP32", -1, 0));
	for (size_t i = 0; i < info->n_dims; i++)
		if (strcmp(info->dims[i], "rewards") && strcmp(info->dims[i], "reward"))
			json_array_append_new(outputs, tensor_meta(info->dims[i], "FP32", -1, 0));
	char platform[64];
	snprintf(platform, sizeof(platform), "rewardd_%s", info->kind);
	(void)call;
	reply->status = 200;
	reply->json = json_pack("{ss s[s] ss so so}", "name", info->name, "versions", "1",
		"platform", platform, "inputs", inputs, "outputs", outputs);
}

static void answer_get(rwd_call *call, compat_job *cj, rwd_reply *reply)
{
	rwd_app *app = call->app;
	if (call->route == RWD_ROUTE_V2_LIVE) {
		reply->status = 200;
		reply->json = json_pack("{sb}", "live", 1);
		return;
	}
	if (call->route == RWD_ROUTE_V2_READY) {
		/* the same rule as /readyz: not draining, >= 1 model, all loaded */
		int ready = app->n_models > 0 && !atomic_load(&app->draining);
		for (size_t i = 0; i < app->n_models; i++)
			ready &= served_ready(&app->models[i]);
		reply->status = ready ? 200 : 400;
		reply->json = json_pack("{sb}", "ready", ready);
		return;
	}
	rwd_served *s = served_by_name(app, cj->name);
	if (!s) {
		fail(call, reply, 404, "not_found", NULL, "no model named '%.64s'", cj->name);
		return;
	}
	if (call->route == RWD_ROUTE_V2_MODEL_READY) {
		int ready = served_ready(s);
		reply->status = ready ? 200 : 400;
		reply->json = json_pack("{ss sb}", "name", s->cfg->name, "ready", ready);
		return;
	}
	if (!served_ready(s)) {
		fail(call, reply, 503, "unavailable", NULL, "model '%s' is not loaded", s->cfg->name);
		return;
	}
	v2_model_metadata(call, s, reply);
}

/* application/json with optional parameters. */
static int is_json_type(const char *ct)
{
	size_t n = strlen("application/json");
	if (strncasecmp(ct, "application/json", n) != 0)
		return 0;
	return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

int rwd__api_compat_headers(rwd_call *call, long long content_length, rwd_reply *reply)
{
	rwd_app *app = call->app;
	compat_job *cj = rwd_arena_calloc(call->arena, 1, sizeof(*cj));
	if (!cj) {
		fail(call, reply, 503, "out_of_memory", NULL, "out of memory");
		return RWD_API_REPLY;
	}
	cj->call = call;
	call->state = cj;
	if (call->route >= RWD_ROUTE_V2_MODEL) {
		const char *n;
		size_t len;
		v2_model_route(call->url, &n, &len);
		cj->name = rwd_arena_strndup(call->arena, n, len);
		if (!cj->name) {
			fail(call, reply, 503, "out_of_memory", NULL, "out of memory");
			return RWD_API_REPLY;
		}
	}
	int post = call->route == RWD_ROUTE_GET_REWARD || call->route == RWD_ROUTE_CLASSIFY ||
		call->route == RWD_ROUTE_POOLING || call->route == RWD_ROUTE_EMBEDDINGS ||
		call->route == RWD_ROUTE_V2_INFER;
	if (strcmp(call->method, post ? "POST" : "GET") != 0) {
		fail(call, reply, 405, "method_not_allowed", NULL,
			post ? "this endpoint takes POST" : "this endpoint takes GET");
		reply->allow = post ? "POST" : "GET";
		return RWD_API_REPLY;
	}
	int open = call->route == RWD_ROUTE_V2_LIVE || call->route == RWD_ROUTE_V2_READY;
	if (!open && !rwd_app_authorized(app, call->authorization)) {
		fail(call, reply, 401, "unauthorized", NULL, "%s",
			call->authorization ? "the API key is not valid" :
			"an API key is required (Authorization: Bearer <key>)");
		reply->www_authenticate = 1;
		return RWD_API_REPLY;
	}
	if (!post) {
		answer_get(call, cj, reply);
		return RWD_API_REPLY;
	}
	if (call->content_type && !is_json_type(call->content_type)) {
		fail(call, reply, 415, "unsupported_media_type", NULL,
			"the body must be JSON (Content-Type: application/json)");
		return RWD_API_REPLY;
	}
	if (content_length >= 0 && (unsigned long long)content_length > app->cfg->max_body_bytes) {
		fail(call, reply, 413, "too_large", NULL, "the body is larger than the limit of %zu bytes",
			app->cfg->max_body_bytes);
		return RWD_API_REPLY;
	}
	if (atomic_load(&app->draining)) {
		fail(call, reply, 503, "draining", NULL, "the server is shutting down");
		return RWD_API_REPLY;
	}
	return RWD_API_READ_BODY;
}

/* ---- bodies: compat JSON -> native items ----------------------------- */

static void decref_cleanup(void *p)
{
	json_decref(p);
}

/* Parse the compat body (depth checked first, duplicate keys refused). */
static json_t *load_body(rwd_call *call, rwd_reply *reply)
{
	const rwd_request_limits *lim = &call->app->cfg->requests;
	int line = 0, col = 0;
	if (rwd_request_json_depth(call->body, call->body_len, lim->max_depth, &line, &col) > lim->max_depth) {
		fail(call, reply, 400, "invalid_request", NULL, "JSON nested deeper than %zu levels (line %d)",
			lim->max_depth, line);
		return NULL;
	}
	json_error_t jerr;
	json_t *root = json_loadb(call->body, call->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		if (is_v2(call->route))
			fail(call, reply, 400, "invalid_json", NULL, "invalid JSON at line %d column %d: %s",
				jerr.line, jerr.column, jerr.text);
		else
			rwd_api_error(reply, 400, "invalid_json", jerr.text, NULL, jerr.line, jerr.column);
		return NULL;
	}
	if (rwd_arena_add_cleanup(call->arena, decref_cleanup, root)) {
		json_decref(root);
		fail(call, reply, 503, "out_of_memory", NULL, "out of memory");
		return NULL;
	}
	if (!json_is_object(root)) {
		fail(call, reply, 400, "invalid_request", NULL, "the body must be a JSON object");
		return NULL;
	}
	return root;
}

/*
 * The served model a name refers to. /classify, /pooling and /v1/embeddings
 * also match a model by its configured path (or the path's last component),
 * since verl sends its reward_model.model.path as "model".
 */
static const rwd_model *find_model(rwd_call *call, const char *name, int by_path, rwd_error *err)
{
	void *user = NULL;
	const rwd_model *m = rwd_app_find_model(call->app, name, &user, err);
	if (m || !by_path || !name || err->code != RWD_E_NOTFOUND)
		return m;
	rwd_app *app = call->app;
	size_t nlen = strlen(name);
	while (nlen > 1 && name[nlen - 1] == '/')
		nlen--;
	const char *base = name;
	for (size_t i = 0; i < nlen; i++)
		if (name[i] == '/')
			base = name + i + 1;
	size_t blen = nlen - (size_t)(base - name);
	for (size_t i = 0; i < app->n_models; i++) {
		const rwd_model_config *c = app->models[i].cfg;
		int hit = blen == strlen(c->name) && strncmp(base, c->name, blen) == 0;
		if (c->path) {
			size_t plen = strlen(c->path);
			while (plen > 1 && c->path[plen - 1] == '/')
				plen--;
			hit |= plen == nlen && strncmp(c->path, name, nlen) == 0;
		}
		if (hit) {
			rwd_error_clear(err);
			return rwd_app_find_model(app, c->name, &user, err);
		}
	}
	return NULL;
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

/* Refuse more items than a request may hold before building any of them. */
static int too_many(rwd_call *call, rwd_reply *reply, size_t n, const char *field)
{
	size_t max = call->app->cfg->requests.max_items;
	if (n <= max)
		return 0;
	fail(call, reply, 413, "too_large", field, "%zu items, more than the limit of %zu per request", n, max);
	return 1;
}

/* A per-item companion array (prompts, labels): absent or null, or one entry per query. */
static int companion(rwd_call *call, rwd_reply *reply, json_t *root, const char *key, size_t n,
	json_t **out)
{
	json_t *v = json_object_get(root, key);
	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v)) {
		fail(call, reply, 400, "invalid_request", key, "\"%s\" must be an array (or null)", key);
		return -1;
	}
	if (json_array_size(v) != n) {
		fail(call, reply, 400, "invalid_request", key,
			"\"%s\" has %zu entries but \"query\" has %zu; they must be the same length", key,
			json_array_size(v), n);
		return -1;
	}
	*out = v;
	return 0;
}

/* /get_reward: {"query": [str], "prompts"?: [str|null]|null, "labels"?: [..]|null}. */
static int build_get_reward(rwd_call *call, rwd_reply *reply, json_t *root, const char *kind,
	json_t *items)
{
	json_t *q = json_object_get(root, "query");
	if (!q) {
		fail(call, reply, 400, "invalid_request", "query", "missing \"query\" (an array of texts)");
		return -1;
	}
	if (!json_is_array(q)) {
		fail(call, reply, 400, "invalid_request", "query", "\"query\" must be an array of texts");
		return -1;
	}
	size_t n = json_array_size(q);
	if (too_many(call, reply, n, "query"))
		return -1;
	json_t *prompts, *labels;
	if (companion(call, reply, root, "prompts", n, &prompts) ||
	    companion(call, reply, root, "labels", n, &labels))
		return -1;
	const char *tf = text_field(kind);
	int rules = strcmp(kind, "rules") == 0;
	for (size_t i = 0; i < n; i++) {
		json_t *t = json_array_get(q, i);
		char f[48];
		snprintf(f, sizeof(f), "query[%zu]", i);
		if (!json_is_string(t)) {
			fail(call, reply, 400, "invalid_request", f, "a query must be a string");
			return -1;
		}
		json_t *it = json_pack("{sO}", tf, t);
		if (rules && prompts) {
			json_t *p = json_array_get(prompts, i);
			if (!json_is_null(p))
				json_object_set(it, "prompt", p);
		}
		if (rules && labels) {
			json_t *l = json_array_get(labels, i);
			if (!json_is_null(l))
				json_object_set_new(it, "label", label_value(l));
		}
		json_array_append_new(items, it);
	}
	return 0;
}

/* /classify, /pooling, /v1/embeddings: "input": str | [str] | [int] | [[int]]. */
static int build_input(rwd_call *call, rwd_reply *reply, json_t *root, const char *kind, json_t *items)
{
	json_t *in = json_object_get(root, "input");
	if (!in) {
		fail(call, reply, 400, "invalid_request", "input", "missing \"input\" (a text or an array of texts)");
		return -1;
	}
	const char *tf = text_field(kind);
	int seqcls = strcmp(kind, "seqcls") == 0;
	if (json_is_string(in)) {
		json_array_append_new(items, json_pack("{sO}", tf, in));
		return 0;
	}
	if (!json_is_array(in)) {
		fail(call, reply, 400, "invalid_request", "input", "\"input\" must be a text or an array");
		return -1;
	}
	if (too_many(call, reply, json_array_size(in), "input"))
		return -1;
	/* a flat array of integers is one tokenised input */
	if (json_array_size(in) > 0 && json_is_integer(json_array_get(in, 0))) {
		if (!seqcls) {
			fail(call, reply, 400, "invalid_request", "input", "token ids need a seqcls model");
			return -1;
		}
		json_array_append_new(items, json_pack("{sO}", "input_ids", in));
		return 0;
	}
	size_t i;
	json_t *v;
	json_array_foreach(in, i, v) {
		char f[48];
		snprintf(f, sizeof(f), "input[%zu]", i);
		if (json_is_string(v)) {
			json_array_append_new(items, json_pack("{sO}", tf, v));
		} else if (json_is_array(v) && seqcls) {
			json_array_append_new(items, json_pack("{sO}", "input_ids", v));
		} else {
			fail(call, reply, 400, "invalid_request", f, seqcls ?
				"an input must be a text or an array of token ids" : "an input must be a text");
			return -1;
		}
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
static int parse_tensor(rwd_call *call, rwd_reply *reply, json_t *t, size_t idx, const char *kind,
	oip_tensor *out)
{
	char f[64];
	snprintf(f, sizeof(f), "inputs[%zu]", idx);
	if (!json_is_object(t)) {
		fail(call, reply, 400, "invalid_request", f, "an input must be a tensor object");
		return -1;
	}
	const char *name = json_string_value(json_object_get(t, "name"));
	const char *dt = json_string_value(json_object_get(t, "datatype"));
	json_t *shape = json_object_get(t, "shape");
	json_t *data = json_object_get(t, "data");
	if (!name || !dt || !json_is_array(shape) || !data) {
		fail(call, reply, 400, "invalid_request", f,
			"a tensor needs \"name\", \"datatype\", \"shape\" and \"data\"");
		return -1;
	}
	json_t *params = json_object_get(t, "parameters");
	if (params && json_object_get(params, "binary_data_size")) {
		fail(call, reply, 400, "invalid_request", name,
			"binary tensor data is not supported; send the values in \"data\"");
		return -1;
	}
	int mlp = strcmp(kind, "mlp") == 0;
	int rules = strcmp(kind, "rules") == 0;
	int known = mlp ? strcmp(name, "embedding") == 0 :
		strcmp(name, "text") == 0 || (rules && (strcmp(name, "prompt") == 0 || strcmp(name, "label") == 0));
	if (!known) {
		fail(call, reply, 400, "invalid_request", name, "the model takes no input tensor of this name (%s)",
			mlp ? "expected \"embedding\"" : rules ? "expected \"text\", \"prompt\", \"label\"" :
			"expected \"text\"");
		return -1;
	}
	const char *want = mlp ? "FP32" : "BYTES";
	if (strcmp(dt, want) != 0) {
		fail(call, reply, 400, "invalid_request", name, "datatype %.16s, expected %s", dt, want);
		return -1;
	}
	size_t nd = json_array_size(shape);
	json_int_t d[2] = {0, 1};
	for (size_t i = 0; i < nd && i < 2; i++) {
		json_t *e = json_array_get(shape, i);
		d[i] = json_is_integer(e) ? json_integer_value(e) : -1;
	}
	int ok = mlp ? nd == 2 && d[1] >= 1 : nd == 1 || (nd == 2 && d[1] == 1);
	/* each bound first, so the product cannot wrap */
	if (!ok || d[0] < 0 || d[1] < 0 || d[0] > MAX_TENSOR_ELEMS || d[1] > MAX_TENSOR_ELEMS ||
	    (uint64_t)d[0] * (uint64_t)d[1] > MAX_TENSOR_ELEMS) {
		fail(call, reply, 400, "invalid_request", name, "shape must be %s of non-negative integers "
			"(at most %u elements)", mlp ? "[N, D]" : "[N] or [N, 1]", MAX_TENSOR_ELEMS);
		return -1;
	}
	out->name = name;
	out->fp32 = mlp;
	out->rows = (size_t)d[0];
	out->cols = (size_t)d[1];
	size_t want_n = out->rows * out->cols;
	out->flat = json_array();
	if (!out->flat || flatten(data, out->flat, want_n + 1, 0) || json_array_size(out->flat) != want_n) {
		fail(call, reply, 400, "invalid_request", name,
			"\"data\" must hold exactly %zu values (the product of the shape)", want_n);
		return -1;
	}
	size_t i;
	json_t *v;
	json_array_foreach(out->flat, i, v) {
		if (mlp ? !json_is_number(v) : !json_is_string(v)) {
			fail(call, reply, 400, "invalid_request", name, "data[%zu] is not %s", i,
				mlp ? "a number" : "a string");
			return -1;
		}
	}
	return 0;
}

static int parse_outputs(rwd_call *call, compat_job *cj, rwd_reply *reply, json_t *outs,
	const rwd_model *m)
{
	if (!outs) {
		cj->outputs[0] = OUT_REWARDS;
		cj->n_outputs = 1;
		return 0;
	}
	if (!json_is_array(outs) || json_array_size(outs) == 0 || json_array_size(outs) > MAX_OUTPUTS) {
		fail(call, reply, 400, "invalid_request", "outputs",
			"\"outputs\" must be a non-empty array of at most %d {\"name\"} objects", MAX_OUTPUTS);
		return -1;
	}
	size_t i;
	json_t *o;
	json_array_foreach(outs, i, o) {
		const char *name = json_string_value(json_object_get(o, "name"));
		if (!name) {
			fail(call, reply, 400, "invalid_request", "outputs", "outputs[%zu] needs a \"name\"", i);
			return -1;
		}
		int k = strcmp(name, "rewards") == 0 ? OUT_REWARDS : strcmp(name, "reward") == 0 ? OUT_REWARD :
			rwd_model_dim_index(m, name);
		if (k == -1 && strcmp(name, "rewards") != 0) {
			fail(call, reply, 400, "invalid_request", "outputs",
				"no output named '%.64s' (rewards, reward, or a dimension)", name);
			return -1;
		}
		cj->outputs[cj->n_outputs++] = k;
	}
	return 0;
}

/* /v2/models/{m}/infer: {"id"?, "parameters"?, "inputs": [...], "outputs"?: [...]}. */
static int build_oip(rwd_call *call, compat_job *cj, rwd_reply *reply, json_t *root, const rwd_model *m,
	json_t *items)
{
	const char *kind = rwd_model_get_info(m)->kind;
	json_t *id = json_object_get(root, "id");
	if (id && !json_is_string(id)) {
		fail(call, reply, 400, "invalid_request", "id", "\"id\" must be a string");
		return -1;
	}
	cj->oip_id = id;
	json_t *ins = json_object_get(root, "inputs");
	if (!json_is_array(ins) || json_array_size(ins) == 0 || json_array_size(ins) > 3) {
		fail(call, reply, 400, "invalid_request", "inputs", "\"inputs\" must be an array of 1 to 3 tensors");
		return -1;
	}
	if (!text_field(kind) && strcmp(kind, "mlp") != 0) {
		fail(call, reply, 400, "invalid_request", NULL,
			"model kind '%s' takes no tensor input here; use POST /v1/rewards", kind);
		return -1;
	}
	if (parse_outputs(call, cj, reply, json_object_get(root, "outputs"), m))
		return -1;
	oip_tensor t[3];
	memset(t, 0, sizeof(t));
	size_t nt = json_array_size(ins);
	int r = -1;
	for (size_t i = 0; i < nt; i++) {
		if (parse_tensor(call, reply, json_array_get(ins, i), i, kind, &t[i]))
			goto done;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(t[i].name, t[j].name) == 0) {
				fail(call, reply, 400, "invalid_request", t[i].name, "the tensor is given twice");
				goto done;
			}
		}
		if (t[i].rows != t[0].rows) {
			fail(call, reply, 400, "invalid_request", t[i].name,
				"%zu rows, but '%s' has %zu; every input needs one row per item", t[i].rows, t[0].name,
				t[0].rows);
			goto done;
		}
	}
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
	if (!main_t) {
		fail(call, reply, 400, "invalid_request", "inputs", "missing the \"%s\" input tensor", main_name);
		goto done;
	}
	if (too_many(call, reply, main_t->rows, main_name))
		goto done;
	for (size_t row = 0; row < main_t->rows; row++) {
		json_t *it;
		if (main_t->fp32) {
			json_t *e = json_array();
			for (size_t c = 0; c < main_t->cols; c++)
				json_array_append(e, json_array_get(main_t->flat, row * main_t->cols + c));
			it = json_pack("{so}", "embedding", e);
		} else {
			it = json_pack("{sO}", text_field(kind), json_array_get(main_t->flat, row));
		}
		if (prompt)
			json_object_set(it, "prompt", json_array_get(prompt->flat, row));
		if (label)
			json_object_set(it, "label", json_array_get(label->flat, row));
		json_array_append_new(items, it);
	}
	r = 0;
done:
	for (size_t i = 0; i < nt; i++)
		json_decref(t[i].flat);
	return r;
}

/* ---- the scoring path ------------------------------------------------- */

static void job_done(rwd_job *job)
{
	compat_job *cj = job->user;
	/* last touch: after resume the HTTP thread may complete and free the call */
	cj->call->resume(cj->call);
}

static int job_gone(rwd_job *job)
{
	compat_job *cj = job->user;
	return cj->call->gone ? cj->call->gone(cj->call) : 0;
}

static void reply_empty(rwd_call *call, compat_job *cj, rwd_reply *reply);

int rwd__api_compat_body(rwd_call *call, rwd_reply *reply)
{
	rwd_app *app = call->app;
	compat_job *cj = call->state;
	if (atomic_load(&app->draining)) {
		fail(call, reply, 503, "draining", NULL, "the server is shutting down");
		return RWD_API_REPLY;
	}
	json_t *root = load_body(call, reply);
	if (!root)
		return RWD_API_REPLY;

	/* the model: ?model= (or the only one), the body's "model", the URL's */
	const char *name = NULL;
	int by_path = 0;
	if (call->route == RWD_ROUTE_GET_REWARD) {
		name = call->query_model;
	} else if (is_v2(call->route)) {
		name = cj->name;
	} else {
		json_t *mj = json_object_get(root, "model");
		if (mj && !json_is_string(mj) && !json_is_null(mj)) {
			fail(call, reply, 400, "invalid_request", "model", "\"model\" must be a string");
			return RWD_API_REPLY;
		}
		name = mj && json_is_string(mj) ? json_string_value(mj) : call->query_model;
		by_path = 1;
	}
	rwd_error err;
	rwd_error_clear(&err);
	const rwd_model *m = find_model(call, name, by_path, &err);
	if (!m) {
		if (!err.code)
			rwd_errorf(&err, RWD_E_NOTFOUND, "no such model");
		if (name && err.code == RWD_E_NOTFOUND)
			rwd_error_where(&err, NULL, "model");
		fail_err(call, reply, &err);
		if (!is_v2(call->route) && err.code == RWD_E_NOTFOUND)
			json_object_set_new(json_object_get(reply->json, "error"), "code", json_string("unknown_model"));
		return RWD_API_REPLY;
	}
	const rwd_model_info *info = rwd_model_get_info(m);
	if (!is_v2(call->route) && !text_field(info->kind)) {
		fail(call, reply, 400, "invalid_request", NULL,
			"model '%s' is of kind '%s', which does not score text alone; use POST /v1/rewards",
			info->name, info->kind);
		return RWD_API_REPLY;
	}
	if (call->route == RWD_ROUTE_CLASSIFY) {
		/* vLLM's default applies the activation; verl sends false (raw scores) */
		json_t *a = json_object_get(root, "use_activation");
		if (!a || json_is_null(a))
			a = json_object_get(root, "activation");
		if (a && !json_is_null(a) && !json_is_boolean(a)) {
			fail(call, reply, 400, "invalid_request", "activation", "must be true or false");
			return RWD_API_REPLY;
		}
		cj->activation = !a || json_is_null(a) || json_is_true(a);
	}

	json_t *items = json_array();
	json_t *native = json_pack("{ss so}", "model", info->name, "items", items);
	if (!native) {
		fail(call, reply, 503, "out_of_memory", NULL, "out of memory");
		return RWD_API_REPLY;
	}
	int r = call->route == RWD_ROUTE_GET_REWARD ? build_get_reward(call, reply, root, info->kind, items) :
		is_v2(call->route) ? build_oip(call, cj, reply, root, m, items) :
		build_input(call, reply, root, info->kind, items);
	char *text = r ? NULL : json_dumps(native, JSON_COMPACT);
	json_decref(native);
	if (r)
		return RWD_API_REPLY;
	if (!text) {
		fail(call, reply, 503, "out_of_memory", NULL, "out of memory");
		return RWD_API_REPLY;
	}
	r = rwd_request_parse(text, strlen(text), &app->cfg->requests, rwd_app_find_model, app, call->arena,
		&cj->req, &err);
	free(text);
	if (r) {
		if (!err.code)
			rwd_errorf(&err, r, "%s", rwd_strerror(r));
		remap_field(call->route, err.object, sizeof(err.object));
		err.line = err.column = 0;
		fail_err(call, reply, &err);
		return RWD_API_REPLY;
	}
	if (cj->req.n_items == 0) {
		reply_empty(call, cj, reply);
		return RWD_API_REPLY;
	}
	cj->job.items = cj->req.items;
	cj->job.n = cj->req.n_items;
	cj->job.priority = cj->req.priority;
	cj->job.deadline_ns = cj->req.timeout_ms ? call->start_ns + (uint64_t)cj->req.timeout_ms * 1000000ull : 0;
	cj->job.done = job_done;
	cj->job.gone = job_gone;
	cj->job.user = cj;
	return RWD_API_SUSPEND;
}

int rwd__api_compat_submit(rwd_call *call, rwd_reply *reply)
{
	compat_job *cj = call->state;
	rwd_app *app = call->app;
	rwd_served *served = cj->req.model_user;
	atomic_fetch_add(&app->inflight, 1);
	cj->submitted = 1;
	int r = rwd_batcher_submit(served->batcher, &cj->job);
	if (!r)
		return 0;
	cj->submitted = 0;
	atomic_fetch_sub(&app->inflight, 1);
	if (r == RWD_E_FULL) {
		fail(call, reply, 429, "queue_full", NULL,
			"the model's queue is full; retry after the Retry-After delay");
		reply->retry_after_s = 1;
	} else if (r == RWD_E_STATE) {
		fail(call, reply, 503, "draining", NULL, "the server is shutting down");
	} else {
		fail(call, reply, 413, "too_large", NULL, "more items than the model's queue can ever hold");
	}
	const char *lab[2] = {cj->req.model_name, r == RWD_E_FULL ? "rejected" : "unavailable"};
	rwd_metric_add(rwd_metric_with(app->f_items, lab), (double)cj->req.n_items);
	return 1;
}

/* ---- replies ----------------------------------------------------------- */

static json_t *vllm_envelope(rwd_call *call, const char *prefix, const rwd_model_info *info, json_t *data,
	size_t tokens)
{
	unsigned char rnd[12];
	if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd)) {
		uint64_t t = rwd_now_ns() ^ (uint64_t)(uintptr_t)call;
		memcpy(rnd, &t, sizeof(t));
		memset(rnd + sizeof(t), 0, sizeof(rnd) - sizeof(t));
	}
	char id[64];
	int n = snprintf(id, sizeof(id), "%s-", prefix);
	for (size_t i = 0; i < sizeof(rnd); i++)
		n += snprintf(id + n, sizeof(id) - (size_t)n, "%02x", rnd[i]);
	return json_pack("{ss ss sI ss so s{sI sI sI}}", "id", id, "object", "list",
		"created", (json_int_t)time(NULL), "model", info->name, "data", data,
		"usage", "prompt_tokens", (json_int_t)tokens, "total_tokens", (json_int_t)tokens,
		"completion_tokens", (json_int_t)0);
}

static void reply_empty(rwd_call *call, compat_job *cj, rwd_reply *reply)
{
	const rwd_model_info *info = rwd_model_get_info(cj->req.model);
	reply->status = 200;
	switch (call->route) {
	case RWD_ROUTE_GET_REWARD: {
		json_t *logs = json_object();
		for (size_t i = 0; i < info->n_dims; i++)
			json_object_set_new(logs, info->dims[i], json_array());
		reply->json = json_pack("{s[] s[] so}", "rewards", "scores", "extra_logs", logs);
		return;
	}
	case RWD_ROUTE_V2_INFER: {
		json_t *outs = json_array();
		for (size_t k = 0; k < cj->n_outputs; k++) {
			int o = cj->outputs[k];
			json_t *t = o == OUT_REWARDS ?
				json_pack("{ss s[ii] ss s[]}", "name", "rewards", "shape", 0, (int)info->n_dims,
					"datatype", "FP32", "data") :
				json_pack("{ss s[i] ss s[]}", "name", o == OUT_REWARD ? "reward" : info->dims[o],
					"shape", 0, "datatype", "FP32", "data");
			json_array_append_new(outs, t);
		}
		reply->json = json_pack("{ss ss so}", "model_name", info->name, "model_version", "1",
			"outputs", outs);
		if (cj->oip_id)
			json_object_set(reply->json, "id", (json_t *)cj->oip_id);
		return;
	}
	default:
		reply->json = vllm_envelope(call, call->route == RWD_ROUTE_CLASSIFY ? "classify" :
			call->route == RWD_ROUTE_POOLING ? "pool" : "embd", info, json_array(), 0);
		return;
	}
}

/* The first failed item fails the request; a non-finite score is a failure. */
static int first_failure(compat_job *cj, const rwd_model_info *info)
{
	for (size_t i = 0; i < cj->req.n_items; i++) {
		rwd_item *it = &cj->req.items[i];
		for (size_t d = 0; d < info->n_dims && !it->status; d++) {
			if (it->present[d] && !isfinite(it->scores[d])) {
				it->status = RWD_E_INTERNAL;
				rwd_errorf(&it->err, RWD_E_INTERNAL, "the model produced a non-finite '%s' score",
					info->dims[d]);
			}
		}
		if (it->status)
			return (int)i;
	}
	return -1;
}

static void fail_item(rwd_call *call, rwd_reply *reply, const rwd_item *it)
{
	rwd_error e = it->err;
	e.code = it->status;
	if (!e.msg[0])
		snprintf(e.msg, sizeof(e.msg), "%s", rwd_strerror(it->status));
	char f[RWD_ERROR_OBJECT_MAX + 32];
	snprintf(f, sizeof(f), "items[%zu]%s%.*s", it->index, e.object[0] ? "." : "",
		RWD_ERROR_OBJECT_MAX, e.object);
	size_t fl = strlen(f) < sizeof(e.object) ? strlen(f) : sizeof(e.object) - 1;
	memcpy(e.object, f, fl);
	e.object[fl] = '\0';
	remap_field(call->route, e.object, sizeof(e.object));
	e.line = e.column = 0;
	fail_err(call, reply, &e);
}

static json_t *score_or_null(const rwd_item *it, size_t d)
{
	return it->present[d] ? json_real((double)it->scores[d]) : json_null();
}

static void finish_get_reward(rwd_call *call, compat_job *cj, const rwd_model_info *info, rwd_reply *reply)
{
	size_t n = cj->req.n_items;
	json_t *rewards = json_array(), *logs = json_object();
	for (size_t i = 0; i < n; i++) {
		double v;
		const rwd_item *it = &cj->req.items[i];
		if (rwd_reward_combine(it, cj->req.dims, cj->req.n_dims, &v)) {
			char f[48];
			snprintf(f, sizeof(f), "query[%zu]", i);
			json_decref(rewards);
			json_decref(logs);
			fail(call, reply, 422, "unprocessable", f,
				"the item has none of the model's dimensions, so it has no reward");
			return;
		}
		json_array_append_new(rewards, json_real(v));
	}
	/* a dimension goes to extra_logs only when every item has it (no filler values) */
	for (size_t d = 0; d < info->n_dims; d++) {
		json_t *col = json_array();
		for (size_t i = 0; i < n && col; i++) {
			if (!cj->req.items[i].present[d]) {
				json_decref(col);
				col = NULL;
			} else {
				json_array_append_new(col, json_real((double)cj->req.items[i].scores[d]));
			}
		}
		if (col)
			json_object_set_new(logs, info->dims[d], col);
	}
	reply->status = 200;
	reply->json = json_pack("{sO so so}", "rewards", rewards, "scores", rewards, "extra_logs", logs);
	json_decref(rewards);
}

/* vLLM's classify activation: sigmoid for one class, softmax over the present classes otherwise. */
static void activate(const rwd_item *it, size_t nd, double *p)
{
	double mx = -INFINITY, sum = 0.0;
	for (size_t d = 0; d < nd; d++)
		if (it->present[d] && it->scores[d] > mx)
			mx = it->scores[d];
	for (size_t d = 0; d < nd; d++) {
		if (!it->present[d])
			continue;
		if (nd == 1) {
			p[d] = 1.0 / (1.0 + exp(-(double)it->scores[d]));
		} else {
			p[d] = exp((double)it->scores[d] - mx);
			sum += p[d];
		}
	}
	if (nd > 1)
		for (size_t d = 0; d < nd; d++)
			if (it->present[d])
				p[d] /= sum;
}

static json_t *classify_data(compat_job *cj, const rwd_model_info *info)
{
	json_t *data = json_array();
	for (size_t i = 0; i < cj->req.n_items; i++) {
		const rwd_item *it = &cj->req.items[i];
		double p[RWD_MAX_DIMS];
		if (cj->activation)
			activate(it, info->n_dims, p);
		json_t *probs = json_array(), *logits = json_array();
		int best = -1;
		for (size_t d = 0; d < info->n_dims; d++) {
			json_array_append_new(logits, score_or_null(it, d));
			if (!it->present[d]) {
				json_array_append_new(probs, json_null());
				continue;
			}
			json_array_append_new(probs, json_real(cj->activation ? p[d] : (double)it->scores[d]));
			if (best < 0 || it->scores[d] > it->scores[best])
				best = (int)d;
		}
		json_t *o = json_pack("{sI so sO sI so}", "index", (json_int_t)i,
			"label", best >= 0 ? json_string(info->dims[best]) : json_null(),
			"probs", probs, "num_classes", (json_int_t)info->n_dims, "logits", logits);
		json_object_set_new(o, "probabilities", probs);
		json_array_append_new(data, o);
	}
	return data;
}

static json_t *pooling_data(compat_job *cj, const rwd_model_info *info, int embeddings)
{
	json_t *data = json_array();
	for (size_t i = 0; i < cj->req.n_items; i++) {
		const rwd_item *it = &cj->req.items[i];
		json_t *v = json_array();
		for (size_t d = 0; d < info->n_dims; d++)
			json_array_append_new(v, score_or_null(it, d));
		json_array_append_new(data, json_pack("{sI ss so}", "index", (json_int_t)i,
			"object", embeddings ? "embedding" : "pooling", embeddings ? "embedding" : "data", v));
	}
	return data;
}

static void finish_oip(rwd_call *call, compat_job *cj, const rwd_model_info *info, rwd_reply *reply)
{
	size_t n = cj->req.n_items;
	json_t *outs = json_array();
	for (size_t k = 0; k < cj->n_outputs; k++) {
		int o = cj->outputs[k];
		json_t *data = json_array();
		const char *oname = o == OUT_REWARDS ? "rewards" : o == OUT_REWARD ? "reward" : info->dims[o];
		for (size_t i = 0; i < n; i++) {
			const rwd_item *it = &cj->req.items[i];
			if (o == OUT_REWARDS) {
				for (size_t d = 0; d < info->n_dims; d++)
					json_array_append_new(data, score_or_null(it, d));
				continue;
			}
			double v;
			int ok = o == OUT_REWARD ? rwd_reward_combine(it, cj->req.dims, cj->req.n_dims, &v) == 0 :
				it->present[o];
			if (!ok) {
				char f[80];
				snprintf(f, sizeof(f), "text[%zu]", i);
				json_decref(data);
				json_decref(outs);
				fail(call, reply, 422, "unprocessable", f, "the item has no '%s' value", oname);
				return;
			}
			json_array_append_new(data, json_real(o == OUT_REWARD ? v : (double)it->scores[o]));
		}
		json_t *t = o == OUT_REWARDS ?
			json_pack("{ss s[II] ss so}", "name", oname, "shape", (json_int_t)n, (json_int_t)info->n_dims,
				"datatype", "FP32", "data", data) :
			json_pack("{ss s[I] ss so}", "name", oname, "shape", (json_int_t)n, "datatype", "FP32",
				"data", data);
		json_array_append_new(outs, t);
	}
	reply->status = 200;
	reply->json = json_pack("{ss ss so}", "model_name", info->name, "model_version", "1",
		"outputs", outs);
	if (cj->oip_id)
		json_object_set(reply->json, "id", (json_t *)cj->oip_id);
}

static const char *outcome_of(int status)
{
	switch (status) {
	case 0:
		return "ok";
	case RWD_E_TIMEOUT:
		return "timeout";
	case RWD_E_CANCELLED:
		return "cancelled";
	case RWD_E_STATE:
		return "unavailable";
	case RWD_E_FORMAT:
	case RWD_E_INVALID:
	case RWD_E_LIMIT:
	case RWD_E_UNSUPPORTED:
	case RWD_E_UNPROCESSABLE:
	case RWD_E_NOTFOUND:
		return "invalid";
	default:
		return "failed";
	}
}

void rwd__api_compat_finish(rwd_call *call, rwd_reply *reply)
{
	compat_job *cj = call->state;
	rwd_app *app = call->app;
	const rwd_model_info *info = rwd_model_get_info(cj->req.model);
	int bad = first_failure(cj, info);
	for (size_t i = 0; i < cj->req.n_items; i++) {
		const char *lab[2] = {info->name, outcome_of(cj->req.items[i].status)};
		rwd_metric_add(rwd_metric_with(app->f_items, lab), 1);
	}
	double queue_ms = (double)cj->job.queue_ns_max / 1e6;
	double compute_ms = (double)cj->job.compute_ns_max / 1e6;
	double total_ms = (double)(rwd_now_ns() - call->start_ns) / 1e6;
	snprintf(reply->timing, sizeof(reply->timing), "queue;dur=%.3f, compute;dur=%.3f, total;dur=%.3f",
		queue_ms, compute_ms, total_ms);
	if (bad >= 0) {
		fail_item(call, reply, &cj->req.items[bad]);
		return;
	}
	switch (call->route) {
	case RWD_ROUTE_GET_REWARD:
		finish_get_reward(call, cj, info, reply);
		return;
	case RWD_ROUTE_V2_INFER:
		finish_oip(call, cj, info, reply);
		return;
	case RWD_ROUTE_CLASSIFY:
		reply->json = vllm_envelope(call, "classify", info, classify_data(cj, info), cj->req.total_cost);
		break;
	default:
		reply->json = vllm_envelope(call, call->route == RWD_ROUTE_POOLING ? "pool" : "embd", info,
			pooling_data(cj, info, call->route == RWD_ROUTE_EMBEDDINGS), cj->req.total_cost);
		break;
	}
	reply->status = 200;
}

void rwd__api_compat_completed(rwd_call *call, int status)
{
	compat_job *cj = call->state;
	rwd_app *app = call->app;
	if (!cj || !cj->req.model)
		return;
	char code[8];
	snprintf(code, sizeof(code), "%d", status);
	const char *lab[2] = {cj->req.model_name, code};
	rwd_metric_add(rwd_metric_with(app->f_requests, lab), 1);
	rwd_served *served = cj->req.model_user;
	rwd_metric_observe(served->request_seconds, (double)(rwd_now_ns() - call->start_ns) / 1e9);
	if (cj->submitted) {
		cj->submitted = 0;
		atomic_fetch_sub(&app->inflight, 1);
	}
}
