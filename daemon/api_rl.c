/* daemon/api_rl.c — rewards for RL on the /v1/rewards path (see api_rl.h). */
#include "api_rl.h"

#include "api_internal.h"
#include "core/thread.h"
#include "reward/group.h"
#include "reward/reward.h"
#include "reward/stats.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RL_WINDOW 256

typedef struct rwd_rl {
	rwd_group_table *groups;
	rwd_reward_stats *st_reward, *st_dims, *st_adv;
	rwd_metric_family *f_reward, *f_dim, *f_adv;
	rwd_metric *groups_open;
} rwd_rl;

typedef struct rwd_rl_served {
	rwd_reward_config *own;        /* the default, when the entry has no "reward" */
	const rwd_reward_config *rc;
	rwd_served *members[RWD_ENSEMBLE_MAX_MEMBERS];
	size_t n_members;
	size_t n_dims;
	rwd_reward_series *s_dim[RWD_MAX_DIMS], *s_reward, *s_adv;
	rwd_metric *h_dim[RWD_MAX_DIMS], *h_reward, *h_adv;
} rwd_rl_served;

typedef struct rl_group {
	rwd_rl_req *q;
	const json_t *id;
	char *key;
	size_t size;         /* declared group_size, or the count in this request */
	size_t count;        /* items of this request */
	size_t *items;       /* [count] item indices */
	int cross;           /* waits in the group table */
	int failed;          /* the table refused it (too many open groups / draining) */
	double *r, *a;       /* [count] */
	rwd_group_part part; /* results (also filled for local groups) */
} rl_group;

struct rwd_rl_req {
	rwd_call *call;
	rwd_app *app;
	rwd_served *s;
	rwd_rl_served *rs;
	rwd_request *req;
	rwd_job *job;
	rwd_reward_override ov;
	int norm;
	size_t n, nd;
	double *vals;        /* [n * nd] transformed scores */
	double *reward;      /* [n]; NaN: none */
	double *adv;         /* [n]; NaN: none */
	int *gidx;           /* [n]; -1: no group */
	rl_group *groups;
	size_t n_groups;
	atomic_int pending;
	/* ensembles */
	rwd_served *mv[RWD_ENSEMBLE_MAX_MEMBERS]; /* the member versions the call pinned */
	rwd_job *mjobs;      /* [n_members] */
	rwd_item *mitems;    /* [n_members * n] */
	int mfail[RWD_ENSEMBLE_MAX_MEMBERS];
	double *spread;      /* [n * nd] */
	atomic_int mpending;
};

static void resume_if_last(rwd_rl_req *q)
{
	if (atomic_fetch_sub(&q->pending, 1) == 1)
		q->call->resume(q->call); /* last touch */
}

int rwd__rl_init(rwd_app *app)
{
	rwd_rl *rl = calloc(1, sizeof(*rl));
	if (!rl)
		return RWD_E_NOMEM;
	app->rl = rl;
	size_t nb;
	const double *b = rwd_reward_stats_default_bounds(&nb);
	rl->groups = rwd_group_table_new();
	rl->st_reward = rwd_reward_stats_new(b, nb, RL_WINDOW);
	rl->st_dims = rwd_reward_stats_new(b, nb, RL_WINDOW);
	rl->st_adv = rwd_reward_stats_new(b, nb, RL_WINDOW);
	if (!rl->groups || !rl->st_reward || !rl->st_dims || !rl->st_adv)
		return RWD_E_NOMEM;
	static const char *const l_model[] = {"model", NULL};
	static const char *const l_model_dim[] = {"model", "dimension", NULL};
	rl->f_reward = rwd_metrics_family(app->metrics, RWD_METRIC_HISTOGRAM, "rewardd_reward_value",
		"Combined reward of each scored item (after transforms and aggregation).", l_model, b, nb);
	rl->f_dim = rwd_metrics_family(app->metrics, RWD_METRIC_HISTOGRAM, "rewardd_reward_dimension_value",
		"Each returned dimension's score (after its transforms).", l_model_dim, b, nb);
	rl->f_adv = rwd_metrics_family(app->metrics, RWD_METRIC_HISTOGRAM, "rewardd_reward_advantage",
		"GRPO group advantage of each item that belonged to a group.", l_model, b, nb);
	rl->groups_open = rwd_metric_0(rwd_metrics_family(app->metrics, RWD_METRIC_GAUGE,
		"rewardd_reward_groups_open", "Cross-request GRPO groups waiting for members (sampled per request).",
		NULL, NULL, 0));
	return 0;
}

void rwd__rl_drain(rwd_app *app)
{
	if (app->rl)
		rwd_group_table_flush(app->rl->groups);
}

void rwd__rl_free(rwd_app *app)
{
	for (size_t i = 0; app->models && i < app->n_models; i++) {
		rwd_rl_served *rs = app->models[i].rl;
		if (rs)
			rwd_reward_config_free(rs->own);
		free(rs);
		app->models[i].rl = NULL;
		if (rwd__rl_is_ensemble(&app->models[i]))
			app->models[i].model = NULL; /* borrowed from the first member */
	}
	rwd_rl *rl = app->rl;
	if (!rl)
		return;
	rwd_group_table_free(rl->groups);
	rwd_reward_stats_free(rl->st_reward);
	rwd_reward_stats_free(rl->st_dims);
	rwd_reward_stats_free(rl->st_adv);
	free(rl);
	app->rl = NULL;
}

int rwd__rl_is_ensemble(const rwd_served *s)
{
	return s->cfg->ensemble.n_members > 0;
}

static rwd_served *served_by_name(rwd_app *app, const char *name)
{
	for (size_t i = 0; i < app->n_models; i++)
		if (strcmp(app->models[i].cfg->name, name) == 0)
			return &app->models[i];
	return NULL;
}

int rwd__rl_load_ensemble(rwd_app *app, rwd_served *s, rwd_error *err)
{
	if (!app)
		return 0;
	const rwd_ensemble_config *e = &s->cfg->ensemble;
	const rwd_model_info *first = NULL;
	for (size_t k = 0; k < e->n_members; k++) {
		char f[RWD_ERROR_OBJECT_MAX];
		snprintf(f, sizeof(f), "models.%.64s.members[%zu]", s->cfg->name, k % 100);
		rwd_served *m = served_by_name(app, e->members[k]);
		if (!m || atomic_load_explicit(&m->state, memory_order_acquire) != RWD_SERVED_READY) {
			rwd_error_where(err, NULL, f);
			return rwd_errorf(err, RWD_E_STATE, "member '%s' is not loaded", e->members[k]);
		}
		const rwd_model_info *info = rwd_model_get_info(m->model);
		if (!first) {
			first = info;
			continue;
		}
		int same = info->n_dims == first->n_dims;
		for (size_t d = 0; same && d < info->n_dims; d++)
			same = strcmp(info->dims[d], first->dims[d]) == 0;
		if (!same) {
			rwd_error_where(err, NULL, f);
			return rwd_errorf(err, RWD_E_INVALID,
				"member '%s' has other dimensions than '%s' (members must share them, in order)",
				e->members[k], e->members[0]);
		}
	}
	/* the first member's model validates items and names dimensions; borrowed */
	s->model = served_by_name(app, e->members[0])->model;
	return 0;
}

int rwd__rl_model_ready(rwd_app *app, rwd_served *s, rwd_error *err)
{
	const rwd_model_info *info = rwd_model_get_info(s->model);
	char path[RWD_ERROR_OBJECT_MAX];
	snprintf(path, sizeof(path), "models.%.64s.reward", s->cfg->name);
	if (s->cfg->reward) {
		int r = rwd_reward_config_check_dims(s->cfg->reward, path, info->dims, info->n_dims, err);
		if (r)
			return r;
	}
	if (!app || !app->rl)
		return 0;
	rwd_rl_served *rs = calloc(1, sizeof(*rs));
	if (!rs)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	s->rl = rs;
	rs->n_dims = info->n_dims;
	if (s->cfg->reward) {
		rs->rc = s->cfg->reward;
	} else {
		int r = rwd_reward_config_parse(NULL, "", &rs->own, err);
		if (r)
			return r;
		rs->rc = rs->own;
	}
	for (size_t k = 0; k < s->cfg->ensemble.n_members; k++)
		rs->members[rs->n_members++] = served_by_name(app, s->cfg->ensemble.members[k]);
	rwd_rl *rl = app->rl;
	const char *name = s->cfg->name;
	for (size_t d = 0; d < info->n_dims; d++) {
		const char *lab[2] = {name, info->dims[d]};
		rs->s_dim[d] = rwd_reward_stats_series(rl->st_dims, name, info->dims[d]);
		rs->h_dim[d] = rwd_metric_with(rl->f_dim, lab);
	}
	rs->s_reward = rwd_reward_stats_series(rl->st_reward, name, "reward");
	rs->s_adv = rwd_reward_stats_series(rl->st_adv, name, "advantage");
	rs->h_reward = rwd_metric_1(rl->f_reward, name);
	rs->h_adv = rwd_metric_1(rl->f_adv, name);
	return 0;
}

/* ---- request ------------------------------------------------------------ */

static int bad(rwd_reply *reply, const char *field, const char *msg)
{
	rwd_api_error(reply, 400, "invalid_request", msg, field, 0, 0);
	return 1;
}

static int same_id(const json_t *a, const json_t *b)
{
	if (json_is_string(a) && json_is_string(b))
		return strcmp(json_string_value(a), json_string_value(b)) == 0;
	if (json_is_integer(a) && json_is_integer(b))
		return json_integer_value(a) == json_integer_value(b);
	return 0;
}

int rwd__rl_body(rwd_call *call, rwd_served *s, rwd_request *req, rwd_job *job, rwd_rl_req **out,
	rwd_reply *reply)
{
	rwd_arena *ar = call->arena;
	rwd_rl_req *q = rwd_arena_calloc(ar, 1, sizeof(*q));
	if (!q)
		return bad(reply, NULL, "out of memory");
	q->call = call;
	q->app = call->app;
	q->s = s;
	q->rs = s->rl;
	q->req = req;
	q->job = job;
	q->n = req->n_items;
	q->nd = q->rs->n_dims;
	req->model_name = s->cfg->name; /* an ensemble answers under its own name */
	const rwd_reward_config *rc = q->rs->rc;
	rwd_error err;
	rwd_error_clear(&err);
	if (rwd_reward_override_parse(rc, json_object_get(req->root, "reward"), &q->ov, &err))
		return bad(reply, err.object, err.msg);
	const rwd_reward_adv_params *ap = rwd_reward_config_adv(rc);
	q->norm = q->ov.norm >= 0 ? q->ov.norm : ap->norm;
	size_t n = q->n ? q->n : 1;
	q->vals = rwd_arena_calloc(ar, n * (q->nd ? q->nd : 1), sizeof(double));
	q->spread = rwd_arena_calloc(ar, n * (q->nd ? q->nd : 1), sizeof(double));
	q->reward = rwd_arena_calloc(ar, n, sizeof(double));
	q->adv = rwd_arena_calloc(ar, n, sizeof(double));
	q->gidx = rwd_arena_calloc(ar, n, sizeof(int));
	q->groups = rwd_arena_calloc(ar, n, sizeof(rl_group));
	if (!q->vals || !q->spread || !q->reward || !q->adv || !q->gidx || !q->groups)
		return bad(reply, NULL, "out of memory");
	/* groups: items with equal "group" values, in first-appearance order */
	for (size_t i = 0; i < q->n; i++) {
		const json_t *it = req->items[i].input;
		const json_t *g = json_object_get(it, "group");
		const json_t *gs = json_object_get(it, "group_size");
		char f[64];
		q->adv[i] = NAN;
		q->gidx[i] = -1;
		if (!g) {
			if (gs) {
				snprintf(f, sizeof(f), "items[%zu].group_size", i);
				return bad(reply, f, "\"group_size\" needs a \"group\"");
			}
			continue;
		}
		if (!(json_is_string(g) || json_is_integer(g))) {
			snprintf(f, sizeof(f), "items[%zu].group", i);
			return bad(reply, f, "\"group\" must be a string or an integer");
		}
		size_t size = 0;
		if (gs) {
			snprintf(f, sizeof(f), "items[%zu].group_size", i);
			if (!json_is_integer(gs) || json_integer_value(gs) < 1 ||
				(size_t)json_integer_value(gs) > ap->max_group_size) {
				char m[128];
				snprintf(m, sizeof(m), "\"group_size\" must be an integer 1..%zu", ap->max_group_size);
				return bad(reply, f, m);
			}
			size = (size_t)json_integer_value(gs);
		}
		size_t k;
		for (k = 0; k < q->n_groups; k++)
			if (same_id(q->groups[k].id, g))
				break;
		rl_group *gr = &q->groups[k];
		if (k == q->n_groups) {
			q->n_groups++;
			gr->q = q;
			gr->id = g;
			gr->size = size;
		} else if (gr->size != size) {
			snprintf(f, sizeof(f), "items[%zu].group_size", i);
			return bad(reply, f, "items of one group must declare the same \"group_size\" (or none)");
		}
		gr->count++;
		q->gidx[i] = (int)k;
	}
	for (size_t k = 0; k < q->n_groups; k++) {
		rl_group *gr = &q->groups[k];
		if (gr->size && gr->count > gr->size) {
			char f[64];
			for (size_t i = q->n; i-- > 0;)
				if (q->gidx[i] == (int)k) {
					snprintf(f, sizeof(f), "items[%zu].group_size", i);
					break;
				}
			return bad(reply, f, "more items of this group in the request than its \"group_size\"");
		}
		gr->cross = gr->size > gr->count;
		if (!gr->size)
			gr->size = gr->count;
		gr->items = rwd_arena_calloc(ar, gr->count, sizeof(size_t));
		gr->r = rwd_arena_calloc(ar, gr->count, sizeof(double));
		gr->a = rwd_arena_calloc(ar, gr->count, sizeof(double));
		if (!gr->items || !gr->r || !gr->a)
			return bad(reply, NULL, "out of memory");
		if (gr->cross) {
			/* model name, unit separator, type tag, value */
			char key[400];
			if (json_is_string(gr->id))
				snprintf(key, sizeof(key), "%.64s\x1fs:%.300s", s->cfg->name, json_string_value(gr->id));
			else
				snprintf(key, sizeof(key), "%.64s\x1fi:%lld", s->cfg->name,
					(long long)json_integer_value(gr->id));
			gr->key = rwd_arena_alloc(ar, strlen(key) + 1);
			if (!gr->key)
				return bad(reply, NULL, "out of memory");
			memcpy(gr->key, key, strlen(key) + 1);
		}
		gr->count = 0;
	}
	for (size_t i = 0; i < q->n; i++)
		if (q->gidx[i] >= 0) {
			rl_group *gr = &q->groups[q->gidx[i]];
			gr->items[gr->count++] = i;
		}
	/* ensembles: per-member copies of the items and jobs */
	if (q->rs->n_members) {
		size_t m = q->rs->n_members;
		q->mjobs = rwd_arena_calloc(ar, m, sizeof(rwd_job));
		q->mitems = rwd_arena_calloc(ar, m * n, sizeof(rwd_item));
		if (!q->mjobs || !q->mitems)
			return bad(reply, NULL, "out of memory");
		/* the members' versions pinned with the ensemble (app.c): a reload of a
		 * member swaps the slot, never what this request runs on */
		for (size_t k = 0; k < m; k++) {
			q->mv[k] = rwd_app_pinned(call, s->cfg->ensemble.members[k]);
			if (!q->mv[k] || !q->mv[k]->batcher) {
				rwd_api_error(reply, 503, "unavailable", "an ensemble member is not available", NULL, 0, 0);
				return 1;
			}
		}
	}
	*out = q;
	return 0;
}

/* ---- ensembles ------------------------------------------------------------ */

static void ensemble_join(rwd_rl_req *q)
{
	size_t m = q->rs->n_members, n = q->n;
	for (size_t k = 0; k < m; k++) {
		rwd_job *j = &q->mjobs[k];
		if (q->mfail[k])
			continue;
		if (j->queue_ns_max > q->job->queue_ns_max)
			q->job->queue_ns_max = j->queue_ns_max;
		if (j->compute_ns_max > q->job->compute_ns_max)
			q->job->compute_ns_max = j->compute_ns_max;
		q->job->batches += j->batches;
	}
	for (size_t i = 0; i < n; i++) {
		rwd_item *it = &q->req->items[i];
		memset(it->present, 0, sizeof(it->present));
		for (size_t k = 0; k < m && !it->status; k++) {
			if (q->mfail[k]) {
				it->status = q->mfail[k];
				rwd_errorf(&it->err, q->mfail[k], "ensemble member '%s' could not take the item",
					q->s->cfg->ensemble.members[k]);
			} else if (q->mitems[k * n + i].status) {
				it->status = q->mitems[k * n + i].status;
				it->err = q->mitems[k * n + i].err;
			}
		}
		if (it->status)
			continue;
		for (size_t d = 0; d < q->nd; d++) {
			double v[RWD_ENSEMBLE_MAX_MEMBERS];
			size_t c = 0;
			for (size_t k = 0; k < m; k++)
				if (q->mitems[k * n + i].present[d])
					v[c++] = (double)q->mitems[k * n + i].scores[d];
			/* a dimension is present when every member produced it */
			if (c != m)
				continue;
			double sp;
			it->scores[d] = (float)rwd_ensemble_combine(q->s->cfg->ensemble.combine, q->s->cfg->ensemble.k,
				v, m, &sp);
			it->present[d] = 1;
			q->spread[i * q->nd + d] = sp;
		}
	}
}

static void member_done(rwd_job *job)
{
	rwd_rl_req *q = job->user;
	if (atomic_fetch_sub(&q->mpending, 1) == 1) {
		ensemble_join(q);
		rwd__rl_scored(q);
	}
}

static int member_gone(rwd_job *job)
{
	rwd_rl_req *q = job->user;
	return q->call->gone ? q->call->gone(q->call) : 0;
}

int rwd__rl_submit(rwd_rl_req *q)
{
	if (!q->rs->n_members)
		return rwd_batcher_submit(q->s->batcher, q->job);
	size_t m = q->rs->n_members, n = q->n;
	int first_err = 0;
	size_t ok = 0;
	atomic_store(&q->mpending, (int)m + 1);
	for (size_t k = 0; k < m; k++) {
		for (size_t i = 0; i < n; i++) {
			rwd_item *src = &q->req->items[i], *dst = &q->mitems[k * n + i];
			dst->input = src->input;
			dst->vec = src->vec; /* a decoded "embedding" / "embedding_b64" (request.c) */
			dst->vec_n = src->vec_n;
			dst->index = src->index;
			dst->cost = src->cost;
			rwd_error_clear(&dst->err);
		}
		rwd_job *j = &q->mjobs[k];
		j->items = &q->mitems[k * n];
		j->n = n;
		j->priority = q->job->priority;
		j->deadline_ns = q->job->deadline_ns;
		j->done = member_done;
		j->gone = member_gone;
		j->user = q;
		int r = rwd_batcher_submit(q->mv[k]->batcher, j);
		if (r) {
			q->mfail[k] = r;
			if (!first_err)
				first_err = r;
			atomic_fetch_sub(&q->mpending, 1);
		} else {
			ok++;
		}
	}
	if (!ok)
		return first_err; /* nothing queued: no done() will come */
	if (atomic_fetch_sub(&q->mpending, 1) == 1) {
		ensemble_join(q);
		rwd__rl_scored(q);
	}
	return 0;
}

/* ---- after scoring ---------------------------------------------------------- */

static void record_adv(rwd_rl_req *q, double a)
{
	if (isfinite(a)) {
		rwd_reward_series_add(q->rs->s_adv, a);
		rwd_metric_observe(q->rs->h_adv, a);
	}
}

static void part_done(rwd_group_part *p)
{
	rl_group *gr = p->user;
	rwd_rl_req *q = gr->q;
	for (size_t k = 0; k < gr->count; k++) {
		q->adv[gr->items[k]] = gr->a[k];
		record_adv(q, gr->a[k]);
	}
	resume_if_last(q);
}

void rwd__rl_scored(rwd_rl_req *q)
{
	rwd_rl_served *rs = q->rs;
	const rwd_model_info *info = rwd_model_get_info(q->req->model); /* pinned */
	atomic_store(&q->pending, 1);
	for (size_t i = 0; i < q->n; i++) {
		rwd_item *it = &q->req->items[i];
		double *v = &q->vals[i * q->nd];
		q->reward[i] = NAN;
		if (it->status)
			continue;
		int bad_score = 0;
		for (size_t k = 0; k < q->req->n_dims; k++) {
			int d = q->req->dims[k];
			if (it->present[d] && !isfinite(it->scores[d]))
				bad_score = 1;
		}
		if (bad_score)
			continue; /* api_rewards fails the item */
		double r;
		int st = rwd_reward_eval(rs->rc, &q->ov, info->dims, info->n_dims, it->scores, it->present,
			q->req->dims, q->req->n_dims, v, &r);
		if (!st)
			q->reward[i] = r;
		for (size_t k = 0; k < q->req->n_dims; k++) {
			int d = q->req->dims[k];
			if (it->present[d] && isfinite(v[d])) {
				rwd_reward_series_add(rs->s_dim[d], v[d]);
				rwd_metric_observe(rs->h_dim[d], v[d]);
			}
		}
		if (!st) {
			rwd_reward_series_add(rs->s_reward, r);
			rwd_metric_observe(rs->h_reward, r);
		}
	}
	const rwd_reward_adv_params *ap = rwd_reward_config_adv(rs->rc);
	for (size_t g = 0; g < q->n_groups; g++) {
		rl_group *gr = &q->groups[g];
		for (size_t k = 0; k < gr->count; k++)
			gr->r[k] = q->reward[gr->items[k]];
		rwd_group_part *p = &gr->part;
		p->n = gr->count;
		p->rewards = gr->r;
		p->adv = gr->a;
		p->norm = q->norm;
		p->eps = ap->eps;
		p->zero_std_tol = ap->zero_std_tol;
		p->done = part_done;
		p->user = gr;
		if (gr->cross) {
			atomic_fetch_add(&q->pending, 1);
			int r = rwd_group_table_add(q->app->rl->groups, gr->key, gr->size,
				(uint64_t)ap->group_timeout_ms * 1000000ull, ap->max_open_groups, p);
			if (!r)
				continue;
			gr->failed = r;
			atomic_fetch_sub(&q->pending, 1);
			for (size_t k = 0; k < gr->count; k++)
				gr->a[k] = NAN;
			continue;
		}
		/* within the request: the same computation the table does */
		size_t c = 0;
		for (size_t k = 0; k < gr->count; k++)
			if (isfinite(gr->r[k]))
				gr->a[c++] = gr->r[k];
		double *tmp = gr->a;
		double *res = malloc((c ? c : 1) * sizeof(double));
		p->complete = 1;
		p->arrived = gr->count;
		p->counted = c;
		if (res && c)
			p->zero_std = rwd_reward_advantages(tmp, c, q->norm, ap->eps, ap->zero_std_tol, res, &p->mean, &p->std);
		c = 0;
		for (size_t k = 0; k < gr->count; k++)
			gr->a[k] = isfinite(gr->r[k]) && res ? res[c++] : NAN;
		free(res);
		for (size_t k = 0; k < gr->count; k++) {
			q->adv[gr->items[k]] = gr->a[k];
			record_adv(q, gr->a[k]);
		}
	}
	rwd_metric_set(q->app->rl->groups_open, (double)rwd_group_table_open(q->app->rl->groups));
	resume_if_last(q);
}

static json_t *num_or_null(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

void rwd__rl_item_json(rwd_rl_req *q, size_t i, json_t *o)
{
	const rwd_model_info *info = rwd_model_get_info(q->req->model); /* pinned */
	const rwd_item *it = &q->req->items[i];
	const double *v = &q->vals[i * q->nd];
	json_object_set_new(o, "reward", num_or_null(q->reward[i]));
	json_t *scores = json_object();
	for (size_t k = 0; k < q->req->n_dims; k++) {
		int d = q->req->dims[k];
		if (it->present[d])
			json_object_set_new(scores, info->dims[d], num_or_null(v[d]));
	}
	json_object_set_new(o, "scores", scores);
	if (rwd_reward_config_has_transforms(q->rs->rc)) {
		json_t *raw = json_object();
		for (size_t k = 0; k < q->req->n_dims; k++) {
			int d = q->req->dims[k];
			if (it->present[d])
				json_object_set_new(raw, info->dims[d], json_real((double)it->scores[d]));
		}
		json_object_set_new(o, "raw_scores", raw);
	}
	if (q->gidx[i] >= 0) {
		const rl_group *gr = &q->groups[q->gidx[i]];
		const rwd_group_part *p = &gr->part;
		json_object_set_new(o, "advantage", num_or_null(q->adv[i]));
		json_t *g = json_pack("{sO sI sI sI sb}", "id", (json_t *)gr->id, "size", (json_int_t)gr->size,
			"arrived", (json_int_t)p->arrived, "counted", (json_int_t)p->counted,
			"complete", gr->failed ? 0 : p->complete);
		if (gr->failed) {
			json_object_set_new(g, "error", json_string(gr->failed == RWD_E_FULL ?
				"too many open groups (advantage.max_open_groups)" : "the server is draining"));
		} else if (p->counted) {
			json_object_set_new(g, "mean", json_real(p->mean));
			json_object_set_new(g, "std", json_real(p->std));
			json_object_set_new(g, "zero_std", json_boolean(p->zero_std));
		}
		json_object_set_new(o, "group", g);
	}
	if (q->rs->n_members) {
		json_t *mem = json_object(), *spread = json_object();
		for (size_t k = 0; k < q->rs->n_members; k++) {
			const rwd_item *mi = &q->mitems[k * q->n + i];
			json_t *ms = json_object();
			for (size_t c = 0; c < q->req->n_dims; c++) {
				int d = q->req->dims[c];
				if (mi->present[d])
					json_object_set_new(ms, info->dims[d], num_or_null((double)mi->scores[d]));
			}
			json_object_set_new(mem, q->s->cfg->ensemble.members[k], ms);
		}
		for (size_t c = 0; c < q->req->n_dims; c++) {
			int d = q->req->dims[c];
			if (it->present[d])
				json_object_set_new(spread, info->dims[d], json_real(q->spread[i * q->nd + d]));
		}
		json_object_set_new(o, "members", mem);
		json_object_set_new(o, "spread", spread);
	}
}

/* ---- GET /v1/stats ------------------------------------------------------------ */

void rwd__api_stats(rwd_call *call, rwd_reply *reply)
{
	rwd_app *app = call->app;
	rwd_rl *rl = app->rl;
	if (!rl) {
		rwd_api_error(reply, 503, "unavailable", "statistics are not set up", NULL, 0, 0);
		return;
	}
	json_t *models = json_object();
	json_t *jr = rwd_reward_stats_json(rl->st_reward, NULL);
	json_t *jd = rwd_reward_stats_json(rl->st_dims, NULL);
	json_t *ja = rwd_reward_stats_json(rl->st_adv, NULL);
	for (size_t i = 0; i < app->n_models; i++) {
		const char *name = app->models[i].cfg->name;
		if (!app->models[i].rl)
			continue;
		json_t *mr = json_object_get(json_object_get(json_object_get(jr, "models"), name), "reward");
		json_t *ma = json_object_get(json_object_get(json_object_get(ja, "models"), name), "advantage");
		json_t *md = json_object_get(json_object_get(jd, "models"), name);
		json_object_set_new(models, name, json_pack("{sO? sO? so}", "reward", mr, "advantage", ma,
			"dimensions", md ? json_incref(md) : json_object()));
	}
	reply->status = 200;
	reply->json = json_pack("{sI sO sI so}", "window", (json_int_t)RL_WINDOW,
		"buckets", json_object_get(jr, "buckets"),
		"groups_open", (json_int_t)rwd_group_table_open(rl->groups), "models", models);
	json_decref(jr);
	json_decref(jd);
	json_decref(ja);
}
