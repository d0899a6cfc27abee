/*
 * daemon/api_rewards.c — POST /v1/rewards.
 *
 * Per-item failures (documented in proto/openapi.yaml and the README):
 *   - validation (types, lengths, unknown dimension, oversize item) happens
 *     before anything is queued and fails the whole request with the
 *     offending field ("items[3].embedding");
 *   - failures while scoring (undecodable image, deadline passed in queue,
 *     shutdown) are per item: with other items scored, the reply is 200 and
 *     results[i] = {"id"?, "error": {code, message, status}} with no reward;
 *     when no item could be scored, the reply takes the first failed item's
 *     status and error. A failed item never becomes a reward of 0.
 */
#include "api_rewards.h"
#include "scoring.h"

#include "core/thread.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void reply_empty(rwd_call *call, rwd_scoring *rs, rwd_reply *reply)
{
	const rwd_model_info *info = rwd_model_get_info(rs->req.model);
	reply->status = 200;
	json_t *dims = json_array();
	for (size_t i = 0; i < rs->req.n_dims; i++)
		json_array_append_new(dims, json_string(info->dims[rs->req.dims[i]]));
	reply->json = json_pack("{ss so s[] s{si si si sI sI} s{sf sf sf}}",
		"model", rs->req.model_name, "dimensions", dims, "results",
		"usage", "items", 0, "items_ok", 0, "items_failed", 0, "cost", (json_int_t)0, "batches", (json_int_t)0,
		"timing", "queue_ms", 0.0, "compute_ms", 0.0,
		"total_ms", (double)(rwd_now_ns() - call->start_ns) / 1e6);
}

int rwd__api_rewards_body(rwd_call *call, rwd_reply *reply)
{
	rwd_app *app = call->app;
	if (atomic_load(&app->draining)) {
		rwd_reply_error(reply, 503, "draining", "the server is shutting down", NULL, 0, 0);
		return RWD_API_REPLY;
	}
	rwd_scoring *rs = rwd_arena_calloc(call->arena, 1, sizeof(*rs));
	if (!rs) {
		rwd_reply_error(reply, 503, "out_of_memory", "out of memory", NULL, 0, 0);
		return RWD_API_REPLY;
	}
	rs->call = call;
	call->state = rs;
	rwd_error err;
	rwd_error_clear(&err);
	rwd_app_finder finder = rwd_call_finder(call);
	int r = rwd_request_parse(call->body, call->body_len, &app->cfg->requests, rwd_app_find_model,
		&finder, call->arena, &rs->req, &err);
	if (r) {
		if (!err.code)
			rwd_errorf(&err, r, "%s", rwd_strerror(r));
		rwd_reply_error_from(reply, &err);
		if (r == RWD_E_NOTFOUND && strcmp(err.object, "model") == 0)
			json_object_set_new(json_object_get(reply->json, "error"), "code", json_string("unknown_model"));
		if (r == RWD_E_STATE && rwd_app_n_models(app) == 0)
			json_object_set_new(json_object_get(reply->json, "error"), "code", json_string("no_model"));
		return RWD_API_REPLY;
	}
	/* an ensemble answers under its own name */
	rs->req.model_name = ((rwd_served *)rs->req.model_user)->cfg->name;
	if (rs->req.n_items == 0) {
		reply_empty(call, rs, reply);
		return RWD_API_REPLY;
	}
	if ((r = rwd_scoring_start(rs, call, &err))) {
		rwd_reply_error_from(reply, &err);
		return RWD_API_REPLY;
	}
	return RWD_API_SUSPEND;
}

int rwd__api_rewards_submit(rwd_call *call, rwd_reply *reply)
{
	return rwd_scoring_submit(call->state, reply);
}

static json_t *item_error_json(const rwd_item *it)
{
	rwd_error e;
	rwd_scoring_item_error(it, &e);
	return json_pack("{ss ss si ss}", "code", rwd_reply_code_of(&e), "message", e.msg,
		"status", rwd_reply_status_of(&e), "field", e.object);
}

void rwd__api_rewards_finish(rwd_call *call, rwd_reply *reply)
{
	rwd_scoring *rs = call->state;
	const rwd_model_info *info = rwd_model_get_info(rs->req.model);
	rwd_scoring_finish(rs, reply);
	size_t n = rs->req.n_items, n_ok = 0;
	json_t *results = json_array();
	for (size_t i = 0; i < n; i++) {
		rwd_item *it = &rs->req.items[i];
		json_t *o = json_object();
		if (rs->req.ids[i])
			json_object_set(o, "id", (json_t *)rs->req.ids[i]);
		if (it->status) {
			json_object_set_new(o, "error", item_error_json(it));
		} else {
			rwd_scoring_item_json(rs, i, o);
			n_ok++;
		}
		json_array_append_new(results, o);
	}
	if (n_ok == 0) {
		/* nothing scored: the request fails with its first item's error */
		json_decref(results);
		rwd_error e;
		rwd_scoring_item_error(&rs->req.items[0], &e);
		rwd_reply_error_from(reply, &e);
		return;
	}
	rwd_score_timing tm;
	rwd_score_get_timing(rs->sc, &tm);
	json_t *dims = json_array();
	for (size_t i = 0; i < rs->req.n_dims; i++)
		json_array_append_new(dims, json_string(info->dims[rs->req.dims[i]]));
	reply->status = 200;
	reply->json = json_pack("{ss so so s{sI sI sI sI sI} s{sf sf sf}}",
		"model", rs->req.model_name, "dimensions", dims, "results", results,
		"usage", "items", (json_int_t)n, "items_ok", (json_int_t)n_ok,
		"items_failed", (json_int_t)(n - n_ok), "cost", (json_int_t)rs->req.total_cost,
		"batches", (json_int_t)tm.batches,
		"timing", "queue_ms", (double)tm.queue_ns_max / 1e6, "compute_ms", (double)tm.compute_ns_max / 1e6,
		"total_ms", (double)(rwd_now_ns() - call->start_ns) / 1e6);
}

void rwd__api_rewards_completed(rwd_call *call, int status)
{
	rwd_scoring_completed(call->state, status);
}
