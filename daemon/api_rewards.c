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
#include "api_internal.h"
#include "api_rl.h"

#include "core/thread.h"
#include "reward/reward.h"
#include "serve/request.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct rewards_job {
	rwd_job job;
	rwd_call *call;
	rwd_request req;
	rwd_served *served;
	int submitted;
	size_t n_ok;
	rwd_rl_req *rl;  /* api_rl.c: reward config, groups, ensembles */
} rewards_job;

static void job_done(rwd_job *job)
{
	rewards_job *rj = job->user;
	/* rewards, statistics and groups; the call is resumed when its groups are answered */
	rwd__rl_scored(rj->rl);
}

static int job_gone(rwd_job *job)
{
	rewards_job *rj = job->user;
	return rj->call->gone ? rj->call->gone(rj->call) : 0;
}

static json_t *results_json(rewards_job *rj, const rwd_model_info *info);

static void reply_empty(rwd_call *call, rewards_job *rj, rwd_reply *reply)
{
	const rwd_model_info *info = rwd_model_get_info(rj->req.model);
	reply->status = 200;
	json_t *dims = json_array();
	for (size_t i = 0; i < rj->req.n_dims; i++)
		json_array_append_new(dims, json_string(info->dims[rj->req.dims[i]]));
	reply->json = json_pack("{ss so s[] s{si si si sI sI} s{sf sf sf}}",
		"model", rj->req.model_name ? rj->req.model_name : info->name, "dimensions", dims, "results",
		"usage", "items", 0, "items_ok", 0, "items_failed", 0, "cost", (json_int_t)0, "batches", (json_int_t)0,
		"timing", "queue_ms", 0.0, "compute_ms", 0.0,
		"total_ms", (double)(rwd_now_ns() - call->start_ns) / 1e6);
}

int rwd__api_rewards_body(rwd_call *call, rwd_reply *reply)
{
	rwd_app *app = call->app;
	if (atomic_load(&app->draining)) {
		rwd_api_error(reply, 503, "draining", "the server is shutting down", NULL, 0, 0);
		return RWD_API_REPLY;
	}
	rewards_job *rj = rwd_arena_calloc(call->arena, 1, sizeof(*rj));
	if (!rj) {
		rwd_api_error(reply, 503, "out_of_memory", "out of memory", NULL, 0, 0);
		return RWD_API_REPLY;
	}
	rj->call = call;
	call->state = rj;
	rwd_error err;
	rwd_error_clear(&err);
	int r = rwd_request_parse(call->body, call->body_len, &app->cfg->requests, rwd_app_find_model,
		app, call->arena, &rj->req, &err);
	if (r) {
		if (!err.code)
			rwd_errorf(&err, r, "%s", rwd_strerror(r));
		rwd__api_error_from(reply, &err);
		if (r == RWD_E_NOTFOUND && strcmp(err.object, "model") == 0)
			json_object_set_new(json_object_get(reply->json, "error"), "code", json_string("unknown_model"));
		if (r == RWD_E_STATE && app->n_models == 0)
			json_object_set_new(json_object_get(reply->json, "error"), "code", json_string("no_model"));
		return RWD_API_REPLY;
	}
	rj->served = rj->req.model_user;
	if (rj->req.n_items == 0) {
		reply_empty(call, rj, reply);
		return RWD_API_REPLY;
	}
	if (rwd__rl_body(call, rj->served, &rj->req, &rj->job, &rj->rl, reply))
		return RWD_API_REPLY;
	rj->job.items = rj->req.items;
	rj->job.n = rj->req.n_items;
	rj->job.priority = rj->req.priority;
	rj->job.deadline_ns = rj->req.timeout_ms ? call->start_ns + (uint64_t)rj->req.timeout_ms * 1000000ull : 0;
	rj->job.done = job_done;
	rj->job.gone = job_gone;
	rj->job.user = rj;
	return RWD_API_SUSPEND;
}

int rwd__api_rewards_submit(rwd_call *call, rwd_reply *reply)
{
	rewards_job *rj = call->state;
	rwd_app *app = call->app;
	atomic_fetch_add(&app->inflight, 1);
	rj->submitted = 1;
	int r = rwd__rl_submit(rj->rl);
	if (!r)
		return 0;
	rj->submitted = 0;
	atomic_fetch_sub(&app->inflight, 1);
	if (r == RWD_E_FULL) {
		rwd_api_error(reply, 429, "queue_full",
			"the model's queue is full; retry after the Retry-After delay", NULL, 0, 0);
		reply->retry_after_s = 1;
	} else if (r == RWD_E_STATE) {
		rwd_api_error(reply, 503, "draining", "the server is shutting down", NULL, 0, 0);
	} else {
		rwd_api_error(reply, 413, "too_large", "more items than the model's queue can ever hold",
			"items", 0, 0);
	}
	const char *lab[2] = {rj->req.model_name, r == RWD_E_FULL ? "rejected" : "unavailable"};
	rwd_metric_add(rwd_metric_with(app->f_items, lab), (double)rj->req.n_items);
	return 1;
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

static json_t *item_error_json(const rwd_item *it)
{
	int code = it->status ? it->status : RWD_E_INTERNAL;
	json_t *e = json_pack("{ss ss si}", "code", rwd__api_error_code(code),
		"message", it->err.msg[0] ? it->err.msg : rwd_strerror(code),
		"status", rwd__api_http_status(code));
	char f[RWD_ERROR_OBJECT_MAX + 32];
	snprintf(f, sizeof(f), "items[%zu]%s%.*s", it->index, it->err.object[0] ? "." : "",
		RWD_ERROR_OBJECT_MAX, it->err.object);
	json_object_set_new(e, "field", json_string(f));
	return e;
}

/* A present requested score that is not finite fails its item: never emit NaN. */
static void check_finite(rewards_job *rj, rwd_item *it, const rwd_model_info *info)
{
	for (size_t k = 0; k < rj->req.n_dims && !it->status; k++) {
		int d = rj->req.dims[k];
		if (it->present[d] && !isfinite(it->scores[d])) {
			it->status = RWD_E_INTERNAL;
			rwd_errorf(&it->err, RWD_E_INTERNAL, "the model produced a non-finite '%s' score",
				info->dims[d]);
		}
	}
}

static json_t *results_json(rewards_job *rj, const rwd_model_info *info)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < rj->req.n_items; i++) {
		rwd_item *it = &rj->req.items[i];
		check_finite(rj, it, info);
		json_t *o = json_object();
		if (rj->req.ids[i])
			json_object_set(o, "id", (json_t *)rj->req.ids[i]);
		if (it->status) {
			json_object_set_new(o, "error", item_error_json(it));
		} else {
			rwd__rl_item_json(rj->rl, i, o);
			rj->n_ok++;
		}
		json_array_append_new(arr, o);
	}
	return arr;
}

void rwd__api_rewards_finish(rwd_call *call, rwd_reply *reply)
{
	rewards_job *rj = call->state;
	rwd_app *app = call->app;
	const rwd_model_info *info = rwd_model_get_info(rj->req.model);
	json_t *results = results_json(rj, info);

	size_t n = rj->req.n_items;
	for (size_t i = 0; i < n; i++) {
		const char *lab[2] = {rj->req.model_name, outcome_of(rj->req.items[i].status)};
		rwd_metric_add(rwd_metric_with(app->f_items, lab), 1);
	}
	double queue_ms = (double)rj->job.queue_ns_max / 1e6;
	double compute_ms = (double)rj->job.compute_ns_max / 1e6;
	double total_ms = (double)(rwd_now_ns() - call->start_ns) / 1e6;
	snprintf(reply->timing, sizeof(reply->timing), "queue;dur=%.3f, compute;dur=%.3f, total;dur=%.3f",
		queue_ms, compute_ms, total_ms);
	if (rj->n_ok == 0) {
		/* nothing scored: the request fails with its first item's error */
		const rwd_item *it = &rj->req.items[0];
		json_t *e = item_error_json(it);
		json_object_del(e, "status");
		int code = it->status ? it->status : RWD_E_INTERNAL;
		reply->status = rwd__api_http_status(code);
		reply->json = json_pack("{so}", "error", e);
		json_decref(results);
		return;
	}
	json_t *dims = json_array();
	for (size_t i = 0; i < rj->req.n_dims; i++)
		json_array_append_new(dims, json_string(info->dims[rj->req.dims[i]]));
	reply->status = 200;
	reply->json = json_pack("{ss so so s{sI sI sI sI sI} s{sf sf sf}}",
		"model", rj->req.model_name, "dimensions", dims, "results", results,
		"usage", "items", (json_int_t)n, "items_ok", (json_int_t)rj->n_ok,
		"items_failed", (json_int_t)(n - rj->n_ok), "cost", (json_int_t)rj->req.total_cost,
		"batches", (json_int_t)rj->job.batches,
		"timing", "queue_ms", queue_ms, "compute_ms", compute_ms, "total_ms", total_ms);
}

void rwd__api_rewards_completed(rwd_call *call, int status)
{
	rewards_job *rj = call->state;
	rwd_app *app = call->app;
	/* refused before a model was resolved: counted by rewardd_http_requests_total only */
	if (!rj || !rj->req.model)
		return;
	char code[8];
	snprintf(code, sizeof(code), "%d", status);
	const char *lab[2] = {rj->req.model_name, code};
	rwd_metric_add(rwd_metric_with(app->f_requests, lab), 1);
	rwd_served *served = rj->req.model_user;
	rwd_metric_observe(served->request_seconds, (double)(rwd_now_ns() - call->start_ns) / 1e9);
	if (rj->submitted) {
		rj->submitted = 0;
		atomic_fetch_sub(&app->inflight, 1);
	}
}
