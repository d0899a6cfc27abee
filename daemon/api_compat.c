/*
 * daemon/api_compat.c — drop-in endpoints for trainers that already speak
 * another server's protocol (see api_compat.h and the Drop-in endpoints section of README.md):
 *
 *   POST /get_reward      OpenRLHF's remote reward model
 *   POST /classify        vLLM's classify API (verl's reward-model path), or
 *                         SGLang's native one when the body has "text"
 *   POST /v1/classify     the same, as SGLang/vLLM also serve it
 *   POST /pooling         vLLM's pooling API
 *   POST /v1/embeddings   SGLang's embedding API for reward models
 *   GET  /health          vLLM/SGLang liveness (200, empty body)
 *   /v2, /v2/...          KServe Open Inference Protocol v2 (REST), with the
 *                         binary tensor extension
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
 *
 * No reply carries null for a value (vLLM types probs and embeddings as
 * floats; OIP data elements are numbers): the model's compat
 * "classify_dimension" picks the one value /classify, /pooling,
 * /v1/embeddings and OIP `rewards` carry, otherwise every dimension is
 * carried and an item that lacks one fails with 422 naming it. /get_reward's
 * extra_logs has the same keys for every request of a model (lib/compat/
 * compat.h: the filler and "<dim>_present").
 */
#include "api_compat.h"

#include "compat/compat.h"
#include "core/base64.h"
#include "core/json.h"
#include "core/thread.h"
#include "rwd_config.h"
#include "scoring.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <errno.h>
#include <sys/random.h>
#include <time.h>

enum { OUT_REWARDS = RWD_COMPAT_OUT_REWARDS, OUT_REWARD = RWD_COMPAT_OUT_REWARD };

typedef struct compat_job {
	rwd_scoring s;         /* the request and its pipeline (scoring.h) */
	rwd_call *call;
	const char *name;      /* /v2/models/{name}: from the URL (arena) */
	rwd_compat_vllm_req vreq; /* /classify etc.: activation, base64, SGLang's shape */
	const rwd_compat_options *opts; /* the served model's "compat" (its config) */
	rwd_compat_oip oip;    /* /v2 infer: id, requested outputs */
	double *reward;        /* [n_items]: the configured reward, where has_reward */
	uint8_t *has_reward;
	const double **values; /* [n_items]: the transformed scores (rwd_score_result.values) */
} compat_job;

static int is_v2(int route)
{
	return (route >= RWD_ROUTE_V2_LIVE && route <= RWD_ROUTE_V2_INFER) || route == RWD_ROUTE_V2_SERVER ||
		route == RWD_ROUTE_V2_MODEL_CONFIG;
}

int rwd__api_compat_is(int route)
{
	return route >= RWD_ROUTE_GET_REWARD && route <= RWD_ROUTE_V2_MODEL_CONFIG;
}

/* The vLLM-shaped scoring routes. */
static int is_classify(int route)
{
	return route == RWD_ROUTE_CLASSIFY || route == RWD_ROUTE_V1_CLASSIFY;
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
	if (strcmp(rest, "/config") == 0)
		return RWD_ROUTE_V2_MODEL_CONFIG;
	return RWD_ROUTE_NONE;
}

int rwd__api_compat_route(const char *url)
{
	if (strcmp(url, "/get_reward") == 0)
		return RWD_ROUTE_GET_REWARD;
	if (strcmp(url, "/classify") == 0)
		return RWD_ROUTE_CLASSIFY;
	if (strcmp(url, "/v1/classify") == 0)
		return RWD_ROUTE_V1_CLASSIFY;
	if (strcmp(url, "/health") == 0)
		return RWD_ROUTE_HEALTH;
	if (strcmp(url, "/v2") == 0 || strcmp(url, "/v2/") == 0)
		return RWD_ROUTE_V2_SERVER;
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

/* An error reply (in OIP's shape under /v2/: rwd_reply.oip_errors). */
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
	(void)call;
	rwd_reply_error(r, status, code, msg, field, 0, 0);
}

/* ---- GET routes -------------------------------------------------------- */

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
	} else if (rwd_compat_text_field(info->kind)) {
		json_array_append_new(inputs, tensor_meta("text", "BYTES", -1, 0));
		if (strcmp(info->kind, "rules") == 0) {
			json_array_append_new(inputs, tensor_meta("prompt", "BYTES", -1, 0));
			json_array_append_new(inputs, tensor_meta("label", "BYTES", -1, 0));
		}
	}
	json_t *outputs = json_array();
	json_array_append_new(outputs, tensor_meta("rewards", "FP32", -1,
		(json_int_t)(s->cfg->compat.classify_dimension[0] ? 1 : info->n_dims)));
	json_array_append_new(outputs, tensor_meta("reward", "FP32", -1, 0));
	for (size_t i = 0; i < info->n_dims; i++)
		if (strcmp(info->dims[i], "rewards") && strcmp(info->dims[i], "reward"))
			json_array_append_new(outputs, tensor_meta(info->dims[i], "FP32", -1, 0));
	char platform[64];
	snprintf(platform, sizeof(platform), "rewardd_%s", info->kind);
	(void)call;
	reply->status = 200;
	reply->json = json_pack("{ss s[s] ss so so}", "name", s->cfg->name, "versions", "1",
		"platform", platform, "inputs", inputs, "outputs", outputs);
}

/*
 * Triton's model configuration (GET /v2/models/{m}/config, tritonclient's
 * get_model_config): the same tensors as the metadata, in config terms
 * (TYPE_STRING / TYPE_FP32, dims without the batch dimension).
 */
static void v2_model_config(rwd_served *s, rwd_reply *reply)
{
	const rwd_model_info *info = rwd_model_get_info(s->model);
	json_t *in = json_array(), *out = json_array();
	if (strcmp(info->kind, "mlp") == 0) {
		json_array_append_new(in, json_pack("{ss ss s[i]}", "name", "embedding", "data_type", "TYPE_FP32",
			"dims", -1));
	} else if (rwd_compat_text_field(info->kind)) {
		static const char *const rules_in[] = {"text", "prompt", "label"};
		size_t n = strcmp(info->kind, "rules") == 0 ? 3 : 1;
		for (size_t i = 0; i < n; i++)
			json_array_append_new(in, json_pack("{ss ss s[i]}", "name", rules_in[i], "data_type",
				"TYPE_STRING", "dims", 1));
	}
	json_array_append_new(out, json_pack("{ss ss s[I]}", "name", "rewards", "data_type", "TYPE_FP32", "dims",
		(json_int_t)(s->cfg->compat.classify_dimension[0] ? 1 : info->n_dims)));
	json_array_append_new(out, json_pack("{ss ss s[i]}", "name", "reward", "data_type", "TYPE_FP32", "dims", 1));
	for (size_t i = 0; i < info->n_dims; i++)
		if (strcmp(info->dims[i], "rewards") && strcmp(info->dims[i], "reward"))
			json_array_append_new(out, json_pack("{ss ss s[i]}", "name", info->dims[i], "data_type",
				"TYPE_FP32", "dims", 1));
	char platform[64];
	snprintf(platform, sizeof(platform), "rewardd_%s", info->kind);
	reply->status = 200;
	reply->json = json_pack("{ss ss ss sI so so}", "name", s->cfg->name, "platform", platform,
		"backend", "rewardd", "max_batch_size", (json_int_t)s->cfg->batching.max_batch_size,
		"input", in, "output", out);
}

static void answer_get(rwd_call *call, compat_job *cj, rwd_reply *reply)
{
	rwd_app *app = call->app;
	if (call->route == RWD_ROUTE_HEALTH) {
		/* vLLM and SGLang answer 200 with an empty body; so do we while not draining */
		int up = !atomic_load(&app->draining);
		reply->status = up ? 200 : 503;
		reply->text = strdup("");
		reply->text_len = 0;
		reply->content_type = "text/plain";
		return;
	}
	if (call->route == RWD_ROUTE_V2_SERVER) {
		reply->status = 200;
		reply->json = json_pack("{ss ss s[ss]}", "name", "rewardd", "version", RWD_VERSION, "extensions",
			"binary_tensor_data", "model_configuration");
		return;
	}
	if (call->route == RWD_ROUTE_V2_LIVE) {
		reply->status = 200;
		reply->json = json_pack("{sb}", "live", 1);
		return;
	}
	if (call->route == RWD_ROUTE_V2_READY) {
		/* the same rule as /readyz: not draining, >= 1 model, all loaded */
		size_t nm = rwd_app_n_models(app);
		int ready = nm > 0 && !atomic_load(&app->draining);
		for (size_t i = 0; i < nm; i++)
			ready &= served_ready(&app->models[i]);
		reply->status = ready ? 200 : 400;
		reply->json = json_pack("{sb}", "ready", ready);
		return;
	}
	rwd_served *s = rwd_app_slot(app, cj->name);
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
	if (call->route == RWD_ROUTE_V2_MODEL_CONFIG)
		v2_model_config(s, reply);
	else
		v2_model_metadata(call, s, reply);
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
	cj->s.call = call;
	call->state = cj;
	reply->oip_errors = is_v2(call->route);
	if (call->route == RWD_ROUTE_V2_MODEL || call->route == RWD_ROUTE_V2_MODEL_READY ||
	    call->route == RWD_ROUTE_V2_INFER || call->route == RWD_ROUTE_V2_MODEL_CONFIG) {
		const char *n;
		size_t len;
		v2_model_route(call->url, &n, &len);
		cj->name = rwd_arena_strndup(call->arena, n, len);
		if (!cj->name) {
			fail(call, reply, 503, "out_of_memory", NULL, "out of memory");
			return RWD_API_REPLY;
		}
	}
	int post = call->route == RWD_ROUTE_GET_REWARD || is_classify(call->route) ||
		call->route == RWD_ROUTE_POOLING || call->route == RWD_ROUTE_EMBEDDINGS ||
		call->route == RWD_ROUTE_V2_INFER;
	if (strcmp(call->method, post ? "POST" : "GET") != 0) {
		fail(call, reply, 405, "method_not_allowed", NULL,
			post ? "this endpoint takes POST" : "this endpoint takes GET");
		reply->allow = post ? "POST" : "GET";
		return RWD_API_REPLY;
	}
	int open = call->route == RWD_ROUTE_V2_LIVE || call->route == RWD_ROUTE_V2_READY ||
		call->route == RWD_ROUTE_HEALTH || call->route == RWD_ROUTE_V2_SERVER;
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
	/* OIP binary bodies: tritonclient sends no Content-Type, KServe application/octet-stream */
	int octet = call->route == RWD_ROUTE_V2_INFER && call->content_type &&
		strncasecmp(call->content_type, "application/octet-stream", 24) == 0;
	if (call->content_type && !rwd_call_is_json_type(call->content_type) && !octet) {
		fail(call, reply, 415, "unsupported_media_type", NULL, "%s",
			call->route == RWD_ROUTE_V2_INFER ?
			"the body must be JSON (Content-Type: application/json) or OIP binary "
			"(application/octet-stream with Inference-Header-Content-Length)" :
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

/* ---- bodies ---------------------------------------------------------- */

static int proto_of(int route)
{
	return route == RWD_ROUTE_GET_REWARD ? RWD_COMPAT_GET_REWARD : is_v2(route) ? RWD_COMPAT_OIP :
		RWD_COMPAT_VLLM;
}

static void decref_cleanup(void *p)
{
	json_decref(p);
}

/*
 * The served model a name refers to. /classify, /pooling and /v1/embeddings
 * also match a model by its configured path (or the path's last component),
 * since verl sends its reward_model.model.path as "model".
 */
static const rwd_model *find_model(rwd_call *call, const char *name, int by_path, void **user,
	rwd_error *err)
{
	rwd_app_finder f = rwd_call_finder(call);
	const rwd_model *m = rwd_app_find_model(&f, name, user, err);
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
	for (size_t i = 0; i < rwd_app_n_models(app); i++) {
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
			return rwd_app_find_model(&f, c->name, user, err);
		}
	}
	return NULL;
}


/* ---- the scoring path ------------------------------------------------- */

static void reply_empty(rwd_call *call, compat_job *cj, rwd_reply *reply);

int rwd__api_compat_body(rwd_call *call, rwd_reply *reply)
{
	rwd_app *app = call->app;
	compat_job *cj = call->state;
	if (atomic_load(&app->draining)) {
		fail(call, reply, 503, "draining", NULL, "the server is shutting down");
		return RWD_API_REPLY;
	}
	int proto = proto_of(call->route);
	rwd_compat_limits lim = {app->cfg->requests.max_items, app->cfg->requests.max_depth};
	rwd_error err;
	rwd_error_clear(&err);
	json_t *root;
	long long header_len = -1;
	if (call->route == RWD_ROUTE_V2_INFER && call->infer_header) {
		char *end;
		errno = 0;
		header_len = strtoll(call->infer_header, &end, 10);
		if (errno || end == call->infer_header || *end || header_len < 0) {
			fail(call, reply, 400, "invalid_request", "Inference-Header-Content-Length",
				"must be the byte length of the JSON header");
			return RWD_API_REPLY;
		}
	}
	int lr = call->route == RWD_ROUTE_V2_INFER ?
		rwd_compat_oip_binary(call->body, call->body_len, header_len, &lim, &root, &err) :
		rwd_compat_load(call->body, call->body_len, &lim, &root, &err);
	if (lr) {
		rwd_reply_error_from(reply, &err);
		return RWD_API_REPLY;
	}
	if (rwd_arena_add_cleanup(call->arena, decref_cleanup, root)) {
		json_decref(root);
		fail(call, reply, 503, "out_of_memory", NULL, "out of memory");
		return RWD_API_REPLY;
	}

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
	void *user = NULL;
	const rwd_model *m = find_model(call, name, by_path, &user, &err);
	if (!m) {
		if (!err.code)
			rwd_errorf(&err, RWD_E_NOTFOUND, "no such model");
		if (name && err.code == RWD_E_NOTFOUND)
			rwd_error_where(&err, NULL, "model");
		rwd_reply_error_from(reply, &err);
		if (!is_v2(call->route) && err.code == RWD_E_NOTFOUND)
			json_object_set_new(json_object_get(reply->json, "error"), "code", json_string("unknown_model"));
		return RWD_API_REPLY;
	}
	const rwd_model_info *info = rwd_model_get_info(m);
	cj->opts = &((rwd_served *)user)->cfg->compat;
	json_t *items = json_array();
	/* by the served name: an ensemble's model is its first member's */
	const char *served_name = ((rwd_served *)user)->cfg->name;
	json_t *native = json_pack("{ss so}", "model", served_name, "items", items);
	if (!native) {
		fail(call, reply, 503, "out_of_memory", NULL, "out of memory");
		return RWD_API_REPLY;
	}
	int r = proto == RWD_COMPAT_GET_REWARD ? rwd_compat_get_reward(root, info->kind, &lim, items, &err) :
		proto == RWD_COMPAT_OIP ? rwd_compat_oip_infer(root, info->kind, info->dims, info->n_dims, &lim,
			items, &cj->oip, &err) :
		rwd_compat_vllm(root, info->kind, &lim, call->route == RWD_ROUTE_CLASSIFY, items, &cj->vreq, &err);
	char *text = r ? NULL : rwd_json_dumps(native, JSON_COMPACT);
	json_decref(native);
	if (r) {
		if (!is_v2(call->route) && r == RWD_E_INVALID && !err.object[0])
			/* the kind takes no such input: name the model in the message */
			rwd_errorf(&err, r, "model '%s' is of kind '%s', which does not take this input; "
				"use POST /v1/rewards", served_name, info->kind);
		rwd_reply_error_from(reply, &err);
		return RWD_API_REPLY;
	}
	if (!text) {
		fail(call, reply, 503, "out_of_memory", NULL, "out of memory");
		return RWD_API_REPLY;
	}
	rwd_app_finder finder = rwd_call_finder(call);
	r = rwd_request_parse(text, strlen(text), &app->cfg->requests, rwd_app_find_model, &finder, call->arena,
		&cj->s.req, &err);
	free(text);
	if (r) {
		if (!err.code)
			rwd_errorf(&err, r, "%s", rwd_strerror(r));
		rwd_compat_remap_field(proto_of(call->route), err.object, sizeof(err.object));
		err.line = err.column = 0;
		rwd_reply_error_from(reply, &err);
		return RWD_API_REPLY;
	}
	cj->s.req.model_name = served_name;
	if (cj->s.req.n_items == 0) {
		reply_empty(call, cj, reply);
		return RWD_API_REPLY;
	}
	if (rwd_scoring_start(&cj->s, call, &err)) {
		rwd_compat_remap_field(proto_of(call->route), err.object, sizeof(err.object));
		rwd_reply_error_from(reply, &err);
		return RWD_API_REPLY;
	}
	return RWD_API_SUSPEND;
}

int rwd__api_compat_submit(rwd_call *call, rwd_reply *reply)
{
	compat_job *cj = call->state;
	return rwd_scoring_submit(&cj->s, reply);
}

/* ---- replies ----------------------------------------------------------- */

static json_t *vllm_envelope(rwd_call *call, const char *prefix, const char *name, json_t *data,
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
		"created", (json_int_t)time(NULL), "model", name, "data", data,
		"usage", "prompt_tokens", (json_int_t)tokens, "total_tokens", (json_int_t)tokens,
		"completion_tokens", (json_int_t)0);
}

static void render(rwd_call *call, compat_job *cj, const rwd_model_info *info, rwd_reply *reply);

/* A request with no items: the same shapes and keys, empty. */
static void reply_empty(rwd_call *call, compat_job *cj, rwd_reply *reply)
{
	static double none;
	static uint8_t no;
	cj->reward = &none;
	cj->has_reward = &no;
	render(call, cj, rwd_model_get_info(cj->s.req.model), reply);
}

/*
 * The configured reward and the transformed scores (the pipeline's results)
 * of each item. A present value that is not finite after its transforms
 * fails its item: these replies carry no null.
 */
static void apply_reward(compat_job *cj, const rwd_model_info *info)
{
	size_t n = cj->s.req.n_items;
	cj->reward = rwd_arena_calloc(cj->call->arena, n ? n : 1, sizeof(*cj->reward));
	cj->has_reward = rwd_arena_calloc(cj->call->arena, n ? n : 1, sizeof(*cj->has_reward));
	cj->values = rwd_arena_calloc(cj->call->arena, n ? n : 1, sizeof(*cj->values));
	for (size_t i = 0; i < n; i++) {
		rwd_item *it = &cj->s.req.items[i];
		if (it->status)
			continue;
		if (!cj->reward || !cj->has_reward || !cj->values) {
			it->status = RWD_E_NOMEM;
			rwd_errorf(&it->err, RWD_E_NOMEM, "out of memory");
			continue;
		}
		rwd_score_result res;
		rwd_score_result_of(cj->s.sc, i, &res);
		cj->reward[i] = res.reward;
		cj->has_reward[i] = (uint8_t)res.has_reward;
		cj->values[i] = res.values;
		for (size_t d = 0; d < info->n_dims; d++) {
			if (it->present[d] && !isfinite(res.values[d])) {
				it->status = RWD_E_INTERNAL;
				rwd_errorf(&it->err, RWD_E_INTERNAL, "the '%s' score is not finite after its transforms",
					info->dims[d]);
				break;
			}
		}
	}
}

/* The first failed item fails the request (the pipeline failed non-finite raw scores). */
static int first_failure(compat_job *cj)
{
	for (size_t i = 0; i < cj->s.req.n_items; i++)
		if (cj->s.req.items[i].status)
			return (int)i;
	return -1;
}

static void fail_item(rwd_call *call, rwd_reply *reply, const rwd_item *it)
{
	rwd_error e;
	rwd_scoring_item_error(it, &e);
	rwd_compat_remap_field(proto_of(call->route), e.object, sizeof(e.object));
	rwd_reply_error_from(reply, &e);
}

/* ---- rendering -------------------------------------------------------- */

/* The field naming item i in this route's body. */
static void item_field(rwd_call *call, compat_job *cj, size_t i, char *f, size_t size)
{
	const char *name = call->route == RWD_ROUTE_GET_REWARD ? "query" : is_v2(call->route) ? "text" :
		cj->vreq.sglang ? "text" : "input";
	snprintf(f, size, "%s[%zu]", name, i);
}

/* Item i's value of selector k (a dimension index, or OUT_REWARD), if it has one. */
static int value_of(const compat_job *cj, size_t i, int k, double *v)
{
	const rwd_item *it = &cj->s.req.items[i];
	if (k == OUT_REWARD) {
		*v = cj->reward[i];
		return cj->has_reward[i];
	}
	*v = cj->values && cj->values[i] ? cj->values[i][k] : (double)it->scores[k];
	return it->present[k];
}

static const char *sel_name(const rwd_model_info *info, int k)
{
	return k == OUT_REWARD ? "reward" : info->dims[k];
}

/* A configured name ("reward" or a dimension) as a selector, or -3 when the model has no such dimension. */
static int selector(const rwd_model_info *info, const char *name)
{
	if (!name[0] || strcmp(name, "reward") == 0)
		return OUT_REWARD;
	for (size_t d = 0; d < info->n_dims; d++)
		if (strcmp(info->dims[d], name) == 0)
			return (int)d;
	return -3;
}

/*
 * The values a vector route (/classify, /pooling, /v1/embeddings, OIP
 * `rewards`) carries: compat.classify_dimension alone, or every dimension.
 * Every item must have each of them (never null): otherwise 422 naming the
 * item and the dimension. Returns the count, or 0 with *reply filled.
 */
static size_t vector_sel(rwd_call *call, compat_job *cj, const rwd_model_info *info, int *sel,
	rwd_reply *reply)
{
	size_t n = 0;
	const char *cd = cj->opts ? cj->opts->classify_dimension : "";
	if (cd[0]) {
		sel[0] = selector(info, cd);
		if (sel[0] == -3) {
			fail(call, reply, 500, "config", NULL, "the model's compat.classify_dimension '%.64s' is not "
				"one of its dimensions (or \"reward\")", cd);
			return 0;
		}
		n = 1;
	} else {
		for (size_t d = 0; d < info->n_dims; d++)
			sel[n++] = (int)d;
	}
	for (size_t i = 0; i < cj->s.req.n_items; i++)
		for (size_t k = 0; k < n; k++) {
			double v;
			if (!value_of(cj, i, sel[k], &v)) {
				char f[48];
				item_field(call, cj, i, f, sizeof(f));
				fail(call, reply, 422, "unprocessable", f, "the item has no '%s' value, and this endpoint "
					"carries no null; set the model's compat.classify_dimension to one value every item "
					"has (e.g. \"reward\")", sel_name(info, sel[k]));
				return 0;
			}
		}
	return n;
}

/* OpenRLHF: rewards exact, scores as configured, extra_logs with one key set per model. */
static void finish_get_reward(rwd_call *call, compat_job *cj, const rwd_model_info *info, rwd_reply *reply)
{
	size_t n = cj->s.req.n_items;
	rwd_compat_options dflt = rwd_compat_default_options();
	const rwd_compat_options *o = cj->opts ? cj->opts : &dflt;
	int ks = selector(info, o->scores_from);
	if (ks == -3) {
		fail(call, reply, 500, "config", NULL, "the model's compat.scores.from '%.64s' is not one of its "
			"dimensions (or \"reward\")", o->scores_from);
		return;
	}
	json_t *rewards = json_array(), *scores = json_array(), *logs = json_object();
	for (size_t i = 0; i < n; i++) {
		char f[48];
		snprintf(f, sizeof(f), "query[%zu]", i);
		double sv;
		if (!cj->has_reward[i] || !value_of(cj, i, ks, &sv)) {
			json_decref(rewards);
			json_decref(scores);
			json_decref(logs);
			if (!cj->has_reward[i])
				fail(call, reply, 422, "unprocessable", f,
					"the item has none of the model's dimensions, so it has no reward");
			else
				fail(call, reply, 422, "unprocessable", f,
					"the item has no '%s' value, which the model's compat.scores reads", sel_name(info, ks));
			return;
		}
		json_array_append_new(rewards, json_real(cj->reward[i]));
		json_array_append_new(scores, json_real(rwd_compat_scores_value(o, sv)));
	}
	/* every dimension, every request: the filler where an item lacks it, and <key>_present */
	for (size_t d = 0; d < info->n_dims; d++) {
		char key[RWD_COMPAT_NAME_MAX + 8], pkey[RWD_COMPAT_NAME_MAX + 24];
		rwd_compat_log_key(info->dims[d], key, sizeof(key));
		snprintf(pkey, sizeof(pkey), "%s_present", key);
		json_t *col = json_array(), *pres = json_array();
		for (size_t i = 0; i < n; i++) {
			const rwd_item *it = &cj->s.req.items[i];
			json_array_append_new(col, json_real(it->present[d] ? (double)it->scores[d] : o->logs_filler));
			json_array_append_new(pres, json_real(it->present[d] ? 1.0 : 0.0));
		}
		json_object_set_new(logs, key, col);
		json_object_set_new(logs, pkey, pres);
	}
	reply->status = 200;
	reply->json = json_pack("{so so so}", "rewards", rewards, "scores", scores, "extra_logs", logs);
}

/* vLLM's classify activation over the carried values: sigmoid for one, softmax otherwise. */
static void activate(const double *x, size_t n, double *p)
{
	if (n == 1) {
		p[0] = 1.0 / (1.0 + exp(-x[0]));
		return;
	}
	double mx = -INFINITY, sum = 0.0;
	for (size_t k = 0; k < n; k++)
		mx = x[k] > mx ? x[k] : mx;
	for (size_t k = 0; k < n; k++)
		sum += p[k] = exp(x[k] - mx);
	for (size_t k = 0; k < n; k++)
		p[k] /= sum;
}

/* The carried values of item i as floats: a JSON array, or float32 little-endian in base64. */
static json_t *vector_json(const compat_job *cj, size_t i, const int *sel, size_t n, int base64)
{
	if (!base64) {
		json_t *v = json_array();
		for (size_t k = 0; k < n; k++) {
			double x;
			value_of(cj, i, sel[k], &x);
			json_array_append_new(v, json_real(x));
		}
		return v;
	}
	uint8_t raw[4 * (RWD_MAX_DIMS + 1)];
	for (size_t k = 0; k < n; k++) {
		double x;
		value_of(cj, i, sel[k], &x);
		float f = (float)x;
		uint32_t u;
		memcpy(&u, &f, sizeof(u));
		for (int b = 0; b < 4; b++)
			raw[4 * k + (size_t)b] = (uint8_t)(u >> (8 * b));
	}
	char out[4 * (4 * (RWD_MAX_DIMS + 1)) / 3 + 8];
	size_t len = rwd_base64_encode(raw, 4 * n, 0, out);
	return json_stringn(out, len);
}

static json_t *classify_data(compat_job *cj, const rwd_model_info *info, const int *sel, size_t n)
{
	json_t *data = json_array();
	for (size_t i = 0; i < cj->s.req.n_items; i++) {
		double x[RWD_MAX_DIMS + 1], p[RWD_MAX_DIMS + 1];
		json_t *probs = json_array(), *logits = json_array();
		size_t best = 0;
		for (size_t k = 0; k < n; k++) {
			value_of(cj, i, sel[k], &x[k]);
			best = x[k] > x[best] ? k : best;
		}
		if (cj->vreq.activation)
			activate(x, n, p);
		for (size_t k = 0; k < n; k++) {
			json_array_append_new(probs, json_real(cj->vreq.activation ? p[k] : x[k]));
			json_array_append_new(logits, json_real(x[k]));
		}
		json_t *o = json_pack("{sI so sO sI so}", "index", (json_int_t)i,
			"label", n ? json_string(sel_name(info, sel[best])) : json_null(),
			"probs", probs, "num_classes", (json_int_t)n, "logits", logits);
		json_object_set_new(o, "probabilities", probs);
		json_array_append_new(data, o);
	}
	return data;
}

/*
 * A process reward model's per-step output as vLLM's STEP pooler gives it
 * for Qwen2ForProcessRewardModel (token_classify: the softmax over both
 * classes at each step_tag_id token, [[p0, p1], ...]; a 1-label head: its
 * value, [[v], ...]), from what seqcls attached (item->extra); NULL for
 * other models.
 */
static json_t *step_data(const rwd_item *it)
{
	json_t *probs = it->extra ? json_object_get(it->extra, "step_probs") : NULL;
	if (probs)
		return json_deep_copy(probs);
	json_t *steps = it->extra ? json_object_get(it->extra, "step_rewards") : NULL;
	if (!json_is_array(steps))
		return NULL;
	json_t *out = json_array();
	size_t j;
	json_t *v;
	json_array_foreach(steps, j, v)
		json_array_append_new(out, json_pack("[O]", v));
	return out;
}

static json_t *pooling_data(compat_job *cj, const int *sel, size_t n, int embeddings)
{
	json_t *data = json_array();
	for (size_t i = 0; i < cj->s.req.n_items; i++) {
		json_t *v = embeddings ? NULL : step_data(&cj->s.req.items[i]);
		json_array_append_new(data, json_pack("{sI ss so}", "index", (json_int_t)i,
			"object", embeddings ? "embedding" : "pooling", embeddings ? "embedding" : "data",
			v ? v : vector_json(cj, i, sel, n, cj->vreq.base64)));
	}
	return data;
}

/* SGLang's native /classify: [{"embedding": [scores], "meta_info": {...}}], one object for one text. */
static json_t *sglang_data(compat_job *cj, const int *sel, size_t n)
{
	json_t *list = json_array();
	for (size_t i = 0; i < cj->s.req.n_items; i++) {
		char id[32];
		snprintf(id, sizeof(id), "%zu", i);
		json_array_append_new(list, json_pack("{so s{ss sI}}", "embedding", vector_json(cj, i, sel, n, 0),
			"meta_info", "id", id, "prompt_tokens", (json_int_t)cj->s.req.items[i].cost));
	}
	if (cj->vreq.single && json_array_size(list) == 1) {
		json_t *one = json_incref(json_array_get(list, 0));
		json_decref(list);
		return one;
	}
	return list;
}

/*
 * OIP outputs. An output the client asked for in binary (and http.c can
 * send Inference-Header-Content-Length) is "parameters": {"binary_data_size"}
 * with its FP32 values, little-endian, after the JSON header, in output order.
 */
static void finish_oip(rwd_call *call, compat_job *cj, const rwd_model_info *info, rwd_reply *reply)
{
	size_t n = cj->s.req.n_items;
	int vsel[RWD_MAX_DIMS + 1];
	size_t nv = 0;
	for (size_t k = 0; k < cj->oip.n_outputs; k++)
		if (cj->oip.outputs[k] == OUT_REWARDS && !(nv = vector_sel(call, cj, info, vsel, reply)))
			return;
	json_t *outs = json_array();
	float *raw = NULL;
	size_t n_raw = 0, cap = 0;
	for (size_t k = 0; k < cj->oip.n_outputs; k++) {
		int o = cj->oip.outputs[k];
		const char *oname = o == OUT_REWARDS ? "rewards" : sel_name(info, o);
		const int *sel = o == OUT_REWARDS ? vsel : &o;
		size_t w = o == OUT_REWARDS ? nv : 1;
		int bin = cj->oip.binary[k] && call->binary_replies;
		json_t *data = bin ? NULL : json_array();
		if (bin && n * w > cap - n_raw) {
			cap = n_raw + n * w;
			float *nr = realloc(raw, (cap ? cap : 1) * sizeof(*raw));
			if (!nr) {
				free(raw);
				json_decref(outs);
				fail(call, reply, 503, "out_of_memory", NULL, "out of memory");
				return;
			}
			raw = nr;
		}
		for (size_t i = 0; i < n; i++)
			for (size_t c = 0; c < w; c++) {
				double v;
				if (!value_of(cj, i, sel[c], &v)) {
					char f[48];
					item_field(call, cj, i, f, sizeof(f));
					free(raw);
					json_decref(data);
					json_decref(outs);
					fail(call, reply, 422, "unprocessable", f, "the item has no '%s' value", oname);
					return;
				}
				if (bin)
					raw[n_raw++] = (float)v;
				else
					json_array_append_new(data, json_real(v));
			}
		json_t *t = o == OUT_REWARDS ?
			json_pack("{ss s[II] ss}", "name", oname, "shape", (json_int_t)n, (json_int_t)w, "datatype", "FP32") :
			json_pack("{ss s[I] ss}", "name", oname, "shape", (json_int_t)n, "datatype", "FP32");
		if (bin)
			json_object_set_new(t, "parameters", json_pack("{sI}", "binary_data_size",
				(json_int_t)(n * w * sizeof(float))));
		else
			json_object_set_new(t, "data", data);
		json_array_append_new(outs, t);
	}
	json_t *root = json_pack("{ss ss so}", "model_name", cj->s.req.model_name, "model_version", "1",
		"outputs", outs);
	if (cj->oip.id)
		json_object_set(root, "id", (json_t *)cj->oip.id);
	reply->status = 200;
	if (!raw) {
		reply->json = root;
		return;
	}
	char *head = rwd_json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(9));
	json_decref(root);
	size_t hl = head ? strlen(head) : 0;
	char *body = head ? malloc(hl + n_raw * 4 + 1) : NULL;
	if (!body) {
		free(head);
		free(raw);
		fail(call, reply, 503, "out_of_memory", NULL, "out of memory");
		return;
	}
	memcpy(body, head, hl);
	for (size_t j = 0; j < n_raw; j++) {
		uint32_t u;
		memcpy(&u, &raw[j], sizeof(u));
		for (int b = 0; b < 4; b++)
			body[hl + 4 * j + (size_t)b] = (char)(uint8_t)(u >> (8 * b));
	}
	free(head);
	free(raw);
	reply->text = body;
	reply->text_len = hl + n_raw * 4;
	reply->content_type = "application/octet-stream";
	reply->infer_header_length = hl;
}

/* The route's reply for the scored (or no) items. */
static void render(rwd_call *call, compat_job *cj, const rwd_model_info *info, rwd_reply *reply)
{
	if (call->route == RWD_ROUTE_GET_REWARD) {
		finish_get_reward(call, cj, info, reply);
		return;
	}
	if (call->route == RWD_ROUTE_V2_INFER) {
		finish_oip(call, cj, info, reply);
		return;
	}
	int sel[RWD_MAX_DIMS + 1];
	size_t n = vector_sel(call, cj, info, sel, reply);
	if (!n)
		return;
	if (cj->vreq.sglang)
		reply->json = sglang_data(cj, sel, n);
	else if (is_classify(call->route))
		reply->json = vllm_envelope(call, "classify", cj->s.req.model_name, classify_data(cj, info, sel, n),
			cj->s.req.total_cost);
	else
		reply->json = vllm_envelope(call, call->route == RWD_ROUTE_POOLING ? "pool" : "embd", cj->s.req.model_name,
			pooling_data(cj, sel, n, call->route == RWD_ROUTE_EMBEDDINGS), cj->s.req.total_cost);
	reply->status = 200;
}

void rwd__api_compat_finish(rwd_call *call, rwd_reply *reply)
{
	compat_job *cj = call->state;
	const rwd_model_info *info = rwd_model_get_info(cj->s.req.model);
	apply_reward(cj, info);
	rwd_scoring_finish(&cj->s, reply);
	int bad = first_failure(cj);
	if (bad >= 0) {
		fail_item(call, reply, &cj->s.req.items[bad]);
		return;
	}
	render(call, cj, info, reply);
}

void rwd__api_compat_completed(rwd_call *call, int status)
{
	compat_job *cj = call->state;
	rwd_scoring_completed(cj ? &cj->s : NULL, status);
}
