/*
 * daemon/api_imgrl.c — the image-RL trainers' reward-server protocols as
 * drop-in endpoints (lib/compat/imgrl.h has the protocols and citations):
 *
 *   POST /          a pickled body (flow_grpo's DeQA / GenEval /
 *                   UnifiedReward clients, verl-omni's http_scorer_client,
 *                   EditScore's proxy and worker hops), told apart by its
 *                   keys; the reply is pickled. GET / stays the dashboard.
 *   POST /compute   Flow-Factory's RemoteRewardClient (JSON). Its
 *                   GET /health is api_compat.c's (200 while not draining).
 *
 * The pickle is decoded by lib/compat/pickle (nothing is ever imported,
 * called or constructed), translated into native items and sent through
 * rwd_request_parse() and the scoring pipeline (scoring.h, lib/serve/score)
 * exactly as api_compat.c does: the same limits, per-kind validation,
 * batcher, reward configuration, group advantages and statistics. The model is the only one served or `?model=` (the clients
 * post to the URL the user gives, so `http://host:port/?model=pick` works).
 * The deadline is the client's own timeout (rwd_imgrl_client_timeout_ms),
 * capped by requests.max_timeout_ms, since the bodies carry none.
 *
 * Every pickle reply, errors included, is a pickle: {"error": message} with
 * a 4xx for a bad body (flow_grpo retries a 500 up to 1000 times, so a
 * permanent error is never a 500), 429/503/504 for load. One failed item
 * fails the request (these clients take no partial answer) and nothing is
 * ever turned into a 0 reward.
 */
#include "api_imgrl.h"

#include "scoring.h"
#include "compat/compat.h"
#include "compat/imgrl.h"
#include "compat/pickle.h"
#include "core/json.h"
#include "core/thread.h"
#include "serve/request.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct imgrl_job {
	rwd_scoring s;        /* the request and its pipeline (scoring.h) */
	rwd_call *call;
	rwd_imgrl_req ir;
} imgrl_job;

int rwd__api_imgrl_route(const char *method, const char *url)
{
	if (strcmp(url, "/") == 0 && strcmp(method, "POST") == 0)
		return RWD_ROUTE_IMGRL;
	if (strcmp(url, "/compute") == 0)
		return RWD_ROUTE_COMPUTE;
	return RWD_ROUTE_NONE;
}

int rwd__api_imgrl_is(int route)
{
	return route == RWD_ROUTE_IMGRL || route == RWD_ROUTE_COMPUTE;
}

/* The protocol's error: a pickled {"error"} under POST /, the native JSON error under /compute. */
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
	if (call->route != RWD_ROUTE_IMGRL) {
		rwd_reply_error(r, status, code, msg, field, 0, 0);
		return;
	}
	char full[sizeof(msg) + RWD_ERROR_OBJECT_MAX + 4];
	snprintf(full, sizeof(full), "%s%s%s", field && *field ? field : "", field && *field ? ": " : "", msg);
	json_t *e = rwd_imgrl_error_body(full);
	uint8_t *body = NULL;
	size_t len = 0;
	json_decref(r->json);
	r->json = NULL;
	free(r->text);
	r->text = NULL;
	if (!e || rwd_pickle_dump_json(e, &body, &len, NULL)) {
		/* no memory for a pickle: a plain-text 503 */
		json_decref(e);
		r->status = 503;
		r->text = strdup("out of memory");
		r->text_len = r->text ? strlen(r->text) : 0;
		r->content_type = "text/plain";
		return;
	}
	json_decref(e);
	r->status = status;
	r->text = (char *)body;
	r->text_len = len;
	r->content_type = "application/octet-stream";
}

static void fail_err(rwd_call *call, rwd_reply *r, const rwd_error *err)
{
	if (call->route != RWD_ROUTE_IMGRL) {
		rwd_reply_error_from(r, err);
		return;
	}
	char at[48] = "";
	if (err->offset >= 0 && strstr(err->msg, "offset") == NULL)
		snprintf(at, sizeof(at), " (byte %lld)", (long long)err->offset);
	int code = err->code ? err->code : RWD_E_INTERNAL;
	fail(call, r, rwd_reply_status_of(err), rwd_reply_code_of(err), err->object, "%s%s",
		err->msg[0] ? err->msg : rwd_strerror(code), at);
	if (code == RWD_E_FULL)
		r->retry_after_s = 1;
}

/* POST / takes pickle: no Content-Type (requests), application/octet-stream (aiohttp, EditScore). */
static int pickle_type_ok(const char *ct)
{
	static const char *const ok[] = {"application/octet-stream", "application/x-python-pickle",
		"application/python-pickle"};
	if (!ct)
		return 1;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		size_t n = strlen(ok[i]);
		if (strncasecmp(ct, ok[i], n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' '))
			return 1;
	}
	return 0;
}

static int json_type_ok(const char *ct)
{
	size_t n = strlen("application/json");
	return !ct || (strncasecmp(ct, "application/json", n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' '));
}

int rwd__api_imgrl_headers(rwd_call *call, long long content_length, rwd_reply *reply)
{
	rwd_app *app = call->app;
	imgrl_job *ij = rwd_arena_calloc(call->arena, 1, sizeof(*ij));
	if (!ij) {
		fail(call, reply, 503, "out_of_memory", NULL, "out of memory");
		return RWD_API_REPLY;
	}
	ij->call = call;
	call->state = ij;
	if (strcmp(call->method, "POST") != 0) {
		fail(call, reply, 405, "method_not_allowed", NULL, "this endpoint takes POST");
		reply->allow = "POST";
		return RWD_API_REPLY;
	}
	if (!rwd_app_authorized(app, call->authorization)) {
		fail(call, reply, 401, "unauthorized", NULL, "%s", call->authorization ? "the API key is not valid" :
			"an API key is required (Authorization: Bearer <key>)");
		reply->www_authenticate = 1;
		return RWD_API_REPLY;
	}
	int pickled = call->route == RWD_ROUTE_IMGRL;
	if (pickled ? !pickle_type_ok(call->content_type) : !json_type_ok(call->content_type)) {
		fail(call, reply, 415, "unsupported_media_type", NULL, "%s", pickled ?
			"POST / takes a pickled body (no Content-Type, or application/octet-stream); "
			"the native API is POST /v1/rewards" : "the body must be JSON (Content-Type: application/json)");
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

static void req_cleanup(void *p)
{
	rwd_imgrl_req_clear(p);
}

static void decref_cleanup(void *p)
{
	json_decref(p);
}

static void finish_empty(rwd_call *call, imgrl_job *ij, rwd_reply *reply);

int rwd__api_imgrl_body(rwd_call *call, rwd_reply *reply)
{
	rwd_app *app = call->app;
	imgrl_job *ij = call->state;
	rwd_error err;
	rwd_error_clear(&err);
	if (atomic_load(&app->draining)) {
		fail(call, reply, 503, "draining", NULL, "the server is shutting down");
		return RWD_API_REPLY;
	}
	if (rwd_arena_add_cleanup(call->arena, req_cleanup, &ij->ir)) {
		fail(call, reply, 503, "out_of_memory", NULL, "out of memory");
		return RWD_API_REPLY;
	}
	rwd_pickle_value *pv = NULL;
	json_t *root = NULL;
	if (call->route == RWD_ROUTE_IMGRL) {
		rwd_pickle_limits pl = rwd_pickle_default_limits();
		pl.max_items = app->cfg->requests.max_items > pl.max_items ? app->cfg->requests.max_items : pl.max_items;
		pl.max_depth = app->cfg->requests.max_depth;
		pl.max_bytes = app->cfg->requests.max_string_bytes;
		if (rwd_pickle_load((const uint8_t *)call->body, call->body_len, &pl, call->arena, &pv, &err)) {
			/* a refused opcode or global is a bad body (400), not a media type */
			if (err.code == RWD_E_UNSUPPORTED)
				err.code = RWD_E_INVALID;
			fail_err(call, reply, &err);
			return RWD_API_REPLY;
		}
	} else {
		rwd_compat_limits cl = {app->cfg->requests.max_items, app->cfg->requests.max_depth};
		if (rwd_compat_load(call->body, call->body_len, &cl, &root, &err)) {
			fail_err(call, reply, &err);
			return RWD_API_REPLY;
		}
		if (rwd_arena_add_cleanup(call->arena, decref_cleanup, root)) {
			json_decref(root);
			fail(call, reply, 503, "out_of_memory", NULL, "out of memory");
			return RWD_API_REPLY;
		}
	}
	void *user = NULL;
	rwd_app_finder finder = rwd_call_finder(call);
	const rwd_model *m = rwd_app_find_model(&finder, call->query_model, &user, &err);
	if (!m) {
		if (!err.code)
			rwd_errorf(&err, RWD_E_NOTFOUND, "no such model");
		if (err.code == RWD_E_INVALID)
			rwd_errorf(&err, RWD_E_INVALID, "several models are served: name one in the URL (?model=<name>)");
		rwd_error_where(&err, NULL, "model");
		fail_err(call, reply, &err);
		return RWD_API_REPLY;
	}
	const rwd_model_info *info = rwd_model_get_info(m);
	const char *served_name = ((rwd_served *)user)->cfg->name;
	rwd_imgrl_limits il = {app->cfg->requests.max_items, app->cfg->requests.max_string_bytes,
		app->cfg->requests.max_depth};
	json_t *items = json_array();
	json_t *native = items ? json_pack("{ss so}", "model", served_name, "items", items) : NULL;
	if (!native) {
		fail(call, reply, 503, "out_of_memory", NULL, "out of memory");
		return RWD_API_REPLY;
	}
	int r = pv ? rwd_imgrl_from_pickle(pv, info->kind, &il, items, &ij->ir, &err) :
		rwd_imgrl_from_compute(root, info->kind, &il, items, &ij->ir, &err);
	/* the client's own timeout as the deadline (rwd_request_parse caps it by requests.max_timeout_ms) */
	if (!r && json_object_set_new(native, "timeout_ms", json_integer(rwd_imgrl_client_timeout_ms(ij->ir.proto))))
		r = rwd_errorf(&err, RWD_E_NOMEM, "out of memory");
	char *text = r ? NULL : rwd_json_dumps(native, JSON_COMPACT);
	json_decref(native);
	if (r) {
		fail_err(call, reply, &err);
		return RWD_API_REPLY;
	}
	if (!text) {
		fail(call, reply, 503, "out_of_memory", NULL, "out of memory");
		return RWD_API_REPLY;
	}
	r = rwd_request_parse(text, strlen(text), &app->cfg->requests, rwd_app_find_model, &finder, call->arena,
		&ij->s.req, &err);
	free(text);
	if (r) {
		if (!err.code)
			rwd_errorf(&err, r, "%s", rwd_strerror(r));
		rwd_imgrl_remap_field(&ij->ir, err.object, sizeof(err.object));
		err.line = err.column = 0;
		err.offset = -1;
		fail_err(call, reply, &err);
		return RWD_API_REPLY;
	}
	ij->s.req.model_name = served_name;
	if (ij->s.req.n_items == 0) {
		finish_empty(call, ij, reply);
		return RWD_API_REPLY;
	}
	if (rwd_scoring_start(&ij->s, call, &err)) {
		rwd_imgrl_remap_field(&ij->ir, err.object, sizeof(err.object));
		err.line = err.column = 0;
		err.offset = -1;
		fail_err(call, reply, &err);
		return RWD_API_REPLY;
	}
	return RWD_API_SUSPEND;
}

int rwd__api_imgrl_submit(rwd_call *call, rwd_reply *reply)
{
	imgrl_job *ij = call->state;
	if (!rwd_scoring_submit(&ij->s, reply))
		return 0;
	rwd__api_imgrl_reshape(call, reply); /* the refusal (429/503/413) in the protocol's shape */
	return 1;
}

void rwd__api_imgrl_reshape(rwd_call *call, rwd_reply *reply)
{
	if (call->route != RWD_ROUTE_IMGRL || !reply->json)
		return; /* /compute answers the native JSON error already */
	json_t *e = json_object_get(reply->json, "error");
	const char *msg = json_string_value(json_object_get(e, "message"));
	const char *code = json_string_value(json_object_get(e, "code"));
	unsigned retry = reply->retry_after_s;
	char cbuf[32];
	snprintf(cbuf, sizeof(cbuf), "%s", code ? code : "unavailable");
	char mbuf[RWD_ERROR_MSG_MAX];
	snprintf(mbuf, sizeof(mbuf), "%s", msg ? msg : "unavailable");
	fail(call, reply, reply->status, cbuf, NULL, "%s", mbuf);
	reply->retry_after_s = retry;
}

/* The reply body: pickled under POST /, JSON under /compute. */
static void send(rwd_call *call, json_t *body, rwd_reply *reply)
{
	if (!body) {
		fail(call, reply, 503, "out_of_memory", NULL, "out of memory");
		return;
	}
	if (call->route != RWD_ROUTE_IMGRL) {
		reply->status = 200;
		reply->json = body;
		return;
	}
	uint8_t *p;
	size_t len;
	rwd_error err;
	rwd_error_clear(&err);
	int r = rwd_pickle_dump_json(body, &p, &len, &err);
	json_decref(body);
	if (r) {
		fail_err(call, reply, &err);
		return;
	}
	reply->status = 200;
	reply->text = (char *)p;
	reply->text_len = len;
	reply->content_type = "application/octet-stream";
}

static void finish_empty(rwd_call *call, imgrl_job *ij, rwd_reply *reply)
{
	static const double none = 0.0;
	ij->ir.n = 0;
	send(call, rwd_imgrl_reply(&ij->ir, &none, NULL), reply);
}

static void fail_item(rwd_call *call, imgrl_job *ij, rwd_reply *reply, const rwd_item *it)
{
	rwd_error e = it->err;
	e.code = it->status;
	if (!e.msg[0])
		snprintf(e.msg, sizeof(e.msg), "%s", rwd_strerror(it->status));
	char f[RWD_ERROR_OBJECT_MAX + 32];
	snprintf(f, sizeof(f), "items[%zu]%s%.*s", it->index, e.object[0] ? "." : "", RWD_ERROR_OBJECT_MAX - 40,
		e.object);
	size_t fl = strlen(f) < sizeof(e.object) ? strlen(f) : sizeof(e.object) - 1;
	memcpy(e.object, f, fl);
	e.object[fl] = '\0';
	rwd_imgrl_remap_field(&ij->ir, e.object, sizeof(e.object));
	e.line = e.column = 0;
	e.offset = -1;
	fail_err(call, reply, &e);
}

void rwd__api_imgrl_finish(rwd_call *call, rwd_reply *reply)
{
	imgrl_job *ij = call->state;
	size_t n = ij->s.req.n_items;
	const rwd_model_info *info = rwd_model_get_info(ij->s.req.model);
	double *reward = rwd_arena_calloc(call->arena, n, sizeof(*reward));
	json_t **scores = rwd_arena_calloc(call->arena, n, sizeof(*scores));
	int bad = -1;
	rwd_scoring_finish(&ij->s, reply);
	if (!reward || !scores) {
		fail(call, reply, 503, "out_of_memory", NULL, "out of memory");
		return;
	}
	for (size_t i = 0; i < n && bad < 0; i++) {
		rwd_item *it = &ij->s.req.items[i];
		if (it->status) {
			bad = (int)i;
			break;
		}
		json_t *o = json_object();
		if (!o || rwd_arena_add_cleanup(call->arena, decref_cleanup, o)) {
			json_decref(o);
			fail(call, reply, 503, "out_of_memory", NULL, "out of memory");
			return;
		}
		/* the configured reward and scores (api_rl.c), as POST /v1/rewards reports them */
		rwd_scoring_item_json(&ij->s, i, o);
		json_t *rv = json_object_get(o, "reward");
		scores[i] = json_object_get(o, "scores");
		if (!json_is_number(rv) || !isfinite(json_number_value(rv))) {
			char f[48];
			snprintf(f, sizeof(f), "items[%zu]", i);
			rwd_imgrl_remap_field(&ij->ir, f, sizeof(f));
			fail(call, reply, 422, "unprocessable", f, "the item has no reward from model '%s' (none of its "
				"dimensions %s applies to this input%s)", ij->s.req.model_name, info->n_dims ? info->dims[0] : "",
				info->n_dims > 1 ? ", ..." : "");
			return;
		}
		reward[i] = json_number_value(rv);
	}
	if (bad >= 0) {
		fail_item(call, ij, reply, &ij->s.req.items[bad]);
		return;
	}
	send(call, rwd_imgrl_reply(&ij->ir, reward, scores), reply);
}

void rwd__api_imgrl_completed(rwd_call *call, int status)
{
	imgrl_job *ij = call->state;
	rwd_scoring_completed(ij ? &ij->s : NULL, status);
}
