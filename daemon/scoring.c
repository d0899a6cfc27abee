/* daemon/scoring.c — one scoring request on the lib pipeline (see scoring.h). */
#include "scoring.h"

#include "api_rl.h"
#include "core/thread.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void on_done(rwd_score *sc, void *user)
{
	(void)sc;
	rwd_call *call = user;
	call->resume(call); /* the last touch */
}

static int on_gone(void *user)
{
	rwd_call *call = user;
	return call->gone ? call->gone(call) : 0;
}

int rwd_scoring_start(rwd_scoring *s, rwd_call *call, rwd_error *err)
{
	s->call = call;
	rwd_served *served = s->req.model_user;
	rwd_score_target t;
	rwd_score_params p = rwd_score_default_params();
	int r = rwd__rl_target(call, served, s->req.model, &t, &p, err);
	if (r)
		return r;
	s->has_transforms = rwd__rl_has_transforms(served);
	p.start_ns = call->start_ns;
	p.done = on_done;
	p.gone = on_gone;
	p.user = call;
	return rwd_score_new(&p, &t, &s->req, call->arena, &s->sc, err);
}

int rwd_scoring_submit(rwd_scoring *s, rwd_reply *reply)
{
	rwd_app *app = s->call->app;
	atomic_fetch_add(&app->inflight, 1);
	s->submitted = 1;
	int r = rwd_score_submit(s->sc);
	if (!r)
		return 0;
	s->submitted = 0;
	atomic_fetch_sub(&app->inflight, 1);
	if (r == RWD_E_FULL) {
		rwd_reply_error(reply, 429, "queue_full",
			"the model's queue is full; retry after the Retry-After delay", NULL, 0, 0);
		reply->retry_after_s = 1;
	} else if (r == RWD_E_STATE) {
		rwd_reply_error(reply, 503, "draining", "the server is shutting down", NULL, 0, 0);
	} else {
		rwd_reply_error(reply, 413, "too_large", "more items than the model's queue can ever hold",
			"items", 0, 0);
	}
	const char *lab[2] = {s->req.model_name, r == RWD_E_FULL ? "rejected" : "unavailable"};
	rwd_metric_add(rwd_metric_with(app->f_items, lab), (double)s->req.n_items);
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

void rwd_scoring_finish(rwd_scoring *s, rwd_reply *reply)
{
	rwd_app *app = s->call->app;
	for (size_t i = 0; i < s->req.n_items; i++) {
		const char *lab[2] = {s->req.model_name, outcome_of(s->req.items[i].status)};
		rwd_metric_add(rwd_metric_with(app->f_items, lab), 1);
	}
	rwd_score_timing tm;
	rwd_score_get_timing(s->sc, &tm);
	snprintf(reply->timing, sizeof(reply->timing), "queue;dur=%.3f, compute;dur=%.3f, total;dur=%.3f",
		(double)tm.queue_ns_max / 1e6, (double)tm.compute_ns_max / 1e6,
		(double)(rwd_now_ns() - s->call->start_ns) / 1e6);
}

void rwd_scoring_completed(rwd_scoring *s, int status)
{
	/* refused before a model was resolved: counted by rewardd_http_requests_total only */
	if (!s || !s->req.model)
		return;
	rwd_app *app = s->call->app;
	char code[8];
	snprintf(code, sizeof(code), "%d", status);
	const char *lab[2] = {s->req.model_name, code};
	rwd_metric_add(rwd_metric_with(app->f_requests, lab), 1);
	rwd_served *served = s->req.model_user;
	rwd_metric_observe(served->request_seconds, (double)(rwd_now_ns() - s->call->start_ns) / 1e9);
	if (s->submitted) {
		s->submitted = 0;
		atomic_fetch_sub(&app->inflight, 1);
	}
}

void rwd_scoring_item_error(const rwd_item *it, rwd_error *out)
{
	*out = it->err;
	out->code = it->status ? it->status : RWD_E_INTERNAL;
	if (!out->msg[0])
		snprintf(out->msg, sizeof(out->msg), "%s", rwd_strerror(out->code));
	char f[RWD_ERROR_OBJECT_MAX + 32];
	snprintf(f, sizeof(f), "items[%zu]%s%.*s", it->index, it->err.object[0] ? "." : "",
		RWD_ERROR_OBJECT_MAX, it->err.object);
	snprintf(out->object, sizeof(out->object), "%.*s", (int)sizeof(out->object) - 1, f);
	out->line = out->column = 0;
}

static json_t *num_or_null(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

void rwd_scoring_item_json(rwd_scoring *rs, size_t i, json_t *o)
{
	const rwd_model_info *info = rwd_model_get_info(rs->req.model); /* pinned */
	rwd_score_result res;
	rwd_score_result_of(rs->sc, i, &res);
	const rwd_item *it = res.item;
	json_object_set_new(o, "reward", num_or_null(res.reward));
	json_t *scores = json_object();
	for (size_t k = 0; k < rs->req.n_dims; k++) {
		int d = rs->req.dims[k];
		if (it->present[d])
			json_object_set_new(scores, info->dims[d], num_or_null(res.values[d]));
	}
	json_object_set_new(o, "scores", scores);
	if (rs->has_transforms) {
		json_t *raw = json_object();
		for (size_t k = 0; k < rs->req.n_dims; k++) {
			int d = rs->req.dims[k];
			if (it->present[d])
				json_object_set_new(raw, info->dims[d], json_real((double)it->scores[d]));
		}
		json_object_set_new(o, "raw_scores", raw);
	}
	if (res.group) {
		const rwd_score_group *g = res.group;
		json_object_set_new(o, "advantage", num_or_null(res.advantage));
		json_t *gj = json_pack("{sO sI sI sI sb}", "id", (json_t *)g->id, "size", (json_int_t)g->size,
			"arrived", (json_int_t)g->arrived, "counted", (json_int_t)g->counted,
			"complete", g->failed ? 0 : g->complete);
		if (g->failed) {
			json_object_set_new(gj, "error", json_string(g->failed == RWD_E_FULL ?
				"too many open groups (advantage.max_open_groups)" : g->failed == RWD_E_NOMEM ?
				"out of memory" : "the server is draining"));
		} else if (g->counted) {
			json_object_set_new(gj, "mean", json_real(g->mean));
			json_object_set_new(gj, "std", json_real(g->std));
			json_object_set_new(gj, "zero_std", json_boolean(g->zero_std));
		}
		json_object_set_new(o, "group", gj);
	}
	size_t m = rwd_score_n_members(rs->sc);
	if (m) {
		const rwd_served *served = rs->req.model_user;
		json_t *mem = json_object(), *spread = json_object();
		for (size_t k = 0; k < m; k++) {
			const rwd_item *mi = rwd_score_member_item(rs->sc, k, i);
			json_t *ms = json_object();
			for (size_t c = 0; c < rs->req.n_dims; c++) {
				int d = rs->req.dims[c];
				if (mi->present[d])
					json_object_set_new(ms, info->dims[d], num_or_null((double)mi->scores[d]));
			}
			json_object_set_new(mem, served->cfg->ensemble.members[k], ms);
		}
		for (size_t c = 0; c < rs->req.n_dims; c++) {
			int d = rs->req.dims[c];
			if (it->present[d])
				json_object_set_new(spread, info->dims[d], json_real(rwd_score_spread(rs->sc, i, (size_t)d)));
		}
		json_object_set_new(o, "members", mem);
		json_object_set_new(o, "spread", spread);
	}
	/* what the kind attached (a PRM's step_rewards, OCR's text and lines); never
	 * over the keys above */
	if (it->extra) {
		const char *k;
		json_t *v;
		json_object_foreach(it->extra, k, v)
			if (!json_object_get(o, k))
				json_object_set(o, k, v);
	}
}

