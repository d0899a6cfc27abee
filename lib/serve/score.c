/* serve/score.c — one request's scoring pipeline (see score.h). */
#include "serve/score.h"

#include "core/thread.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct score_group {
	rwd_score *sc;
	rwd_score_group pub;
	char *key;           /* cross-request: model name, unit separator, type tag, value */
	size_t count;        /* items of this request */
	size_t *items;       /* [count] item indices */
	int cross;           /* waits in the group table */
	double *r, *a;       /* [count] */
	rwd_group_part part;
} score_group;

struct rwd_score {
	rwd_score_params p;
	rwd_score_target t;
	rwd_request *req;
	const rwd_model_info *info;
	rwd_job job;
	rwd_reward_override ov;
	int norm;
	double scope_std;   /* std_scope request: the request's std (rwd_reward_scope_std) */
	size_t n, nd, m;     /* items, model dimensions, ensemble members */
	double *vals;        /* [n * nd] transformed scores */
	double *reward;      /* [n]; NaN: none */
	double *adv;         /* [n]; NaN: none */
	int *gidx;           /* [n]; -1: no group */
	score_group *groups;
	size_t n_groups;
	atomic_int pending;  /* scoring + cross groups still to answer */
	/* ensembles */
	rwd_job *mjobs;      /* [m] */
	rwd_item *mitems;    /* [m * n] */
	int mfail[RWD_ENSEMBLE_MAX_MEMBERS];
	double *spread;      /* [n * nd] */
	atomic_int mpending;
};

rwd_score_params rwd_score_default_params(void)
{
	rwd_score_params p;
	memset(&p, 0, sizeof(p));
	return p;
}

static int same_id(const json_t *a, const json_t *b)
{
	if (json_is_string(a) && json_is_string(b))
		return strcmp(json_string_value(a), json_string_value(b)) == 0;
	if (json_is_integer(a) && json_is_integer(b))
		return json_integer_value(a) == json_integer_value(b);
	return 0;
}

static int bad_item(rwd_error *err, size_t i, const char *key, const char *msg)
{
	char f[64];
	snprintf(f, sizeof(f), "items[%zu].%s", i, key);
	rwd_error_where(err, NULL, f);
	return rwd_errorf(err, RWD_E_INVALID, "%s", msg);
}

/* Items with equal "group" values, in first-appearance order. */
static int parse_groups(rwd_score *sc, rwd_arena *ar, const rwd_reward_adv_params *ap, rwd_error *err)
{
	for (size_t i = 0; i < sc->n; i++) {
		const json_t *it = sc->req->items[i].input;
		const json_t *g = json_object_get(it, "group");
		const json_t *gs = json_object_get(it, "group_size");
		sc->adv[i] = NAN;
		sc->gidx[i] = -1;
		if (!g) {
			if (gs)
				return bad_item(err, i, "group_size", "\"group_size\" needs a \"group\"");
			continue;
		}
		if (!(json_is_string(g) || json_is_integer(g)))
			return bad_item(err, i, "group", "\"group\" must be a string or an integer");
		size_t size = 0;
		if (gs) {
			if (!json_is_integer(gs) || json_integer_value(gs) < 1 ||
				(size_t)json_integer_value(gs) > ap->max_group_size) {
				char m[128];
				snprintf(m, sizeof(m), "\"group_size\" must be an integer 1..%zu", ap->max_group_size);
				return bad_item(err, i, "group_size", m);
			}
			size = (size_t)json_integer_value(gs);
		}
		size_t k;
		for (k = 0; k < sc->n_groups; k++)
			if (same_id(sc->groups[k].pub.id, g))
				break;
		score_group *gr = &sc->groups[k];
		if (k == sc->n_groups) {
			sc->n_groups++;
			gr->sc = sc;
			gr->pub.id = g;
			gr->pub.size = size;
		} else if (gr->pub.size != size) {
			return bad_item(err, i, "group_size",
				"items of one group must declare the same \"group_size\" (or none)");
		}
		gr->count++;
		sc->gidx[i] = (int)k;
	}
	for (size_t k = 0; k < sc->n_groups; k++) {
		score_group *gr = &sc->groups[k];
		if (gr->pub.size && gr->count > gr->pub.size) {
			size_t last = 0;
			for (size_t i = sc->n; i-- > 0;)
				if (sc->gidx[i] == (int)k) {
					last = i;
					break;
				}
			return bad_item(err, last, "group_size",
				"more items of this group in the request than its \"group_size\"");
		}
		gr->cross = gr->pub.size > gr->count;
		if (gr->cross && ap->scope == RWD_ADV_SCOPE_REQUEST && sc->norm == RWD_ADV_STD) {
			size_t first = 0;
			while (first < sc->n && sc->gidx[first] != (int)k)
				first++;
			return bad_item(err, first, "group_size",
				"the model's advantage.std_scope is \"request\" (flow_grpo's global_std): "
				"a group must be whole within its request");
		}
		if (!gr->pub.size)
			gr->pub.size = gr->count;
		gr->items = rwd_arena_calloc(ar, gr->count, sizeof(size_t));
		gr->r = rwd_arena_calloc(ar, gr->count, sizeof(double));
		gr->a = rwd_arena_calloc(ar, gr->count, sizeof(double));
		if (!gr->items || !gr->r || !gr->a)
			return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		if (gr->cross) {
			char key[400];
			if (json_is_string(gr->pub.id))
				snprintf(key, sizeof(key), "%.64s\x1fs:%.300s", sc->t.name, json_string_value(gr->pub.id));
			else
				snprintf(key, sizeof(key), "%.64s\x1fi:%lld", sc->t.name,
					(long long)json_integer_value(gr->pub.id));
			gr->key = rwd_arena_strndup(ar, key, strlen(key));
			if (!gr->key)
				return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		}
		gr->count = 0;
	}
	for (size_t i = 0; i < sc->n; i++)
		if (sc->gidx[i] >= 0) {
			score_group *gr = &sc->groups[sc->gidx[i]];
			gr->items[gr->count++] = i;
		}
	return 0;
}

static void job_done(rwd_job *job);
static int job_gone(rwd_job *job);

static void release_mitems(void *p)
{
	rwd_score *sc = p;
	rwd_item_release(sc->mitems, sc->m * sc->req->n_items);
}

int rwd_score_new(const rwd_score_params *p, const rwd_score_target *t, rwd_request *req,
	rwd_arena *ar, rwd_score **out, rwd_error *err)
{
	*out = NULL;
	if (!p->done || !t->model || !t->reward)
		return rwd_errorf(err, RWD_E_INVALID, "the scoring pipeline needs a done callback, a model and a reward configuration");
	rwd_score *sc = rwd_arena_calloc(ar, 1, sizeof(*sc));
	if (!sc)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	sc->p = *p;
	sc->t = *t;
	sc->req = req;
	sc->info = rwd_model_get_info(t->model);
	sc->n = req->n_items;
	sc->nd = sc->info->n_dims;
	sc->m = t->ensemble ? t->ensemble->n_members : 0;
	if (sc->m > RWD_ENSEMBLE_MAX_MEMBERS)
		return rwd_errorf(err, RWD_E_INVALID, "too many ensemble members");
	for (size_t k = 0; k < sc->m; k++)
		if (!t->members[k])
			return rwd_errorf(err, RWD_E_STATE, "ensemble member '%s' is not available",
				t->ensemble->members[k]);
	if (!sc->m && !t->batcher)
		return rwd_errorf(err, RWD_E_STATE, "model '%s' has no batcher", t->name ? t->name : "");
	if (!sc->t.name)
		sc->t.name = sc->info->name;
	int r = rwd_reward_override_parse(t->reward, json_object_get(req->root, "reward"), &sc->ov, err);
	if (r)
		return r;
	const rwd_reward_adv_params *ap = rwd_reward_config_adv(t->reward);
	sc->norm = sc->ov.norm >= 0 ? sc->ov.norm : ap->norm;
	size_t n = sc->n ? sc->n : 1, nd = sc->nd ? sc->nd : 1;
	sc->vals = rwd_arena_calloc(ar, n * nd, sizeof(double));
	sc->spread = rwd_arena_calloc(ar, n * nd, sizeof(double));
	sc->reward = rwd_arena_calloc(ar, n, sizeof(double));
	sc->adv = rwd_arena_calloc(ar, n, sizeof(double));
	sc->gidx = rwd_arena_calloc(ar, n, sizeof(int));
	sc->groups = rwd_arena_calloc(ar, n, sizeof(score_group));
	if (!sc->vals || !sc->spread || !sc->reward || !sc->adv || !sc->gidx || !sc->groups)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		sc->reward[i] = sc->adv[i] = NAN;
	if ((r = parse_groups(sc, ar, ap, err)))
		return r;
	if (sc->m) {
		sc->mjobs = rwd_arena_calloc(ar, sc->m, sizeof(rwd_job));
		sc->mitems = rwd_arena_calloc(ar, sc->m * n, sizeof(rwd_item));
		if (!sc->mjobs || !sc->mitems)
			return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		/* what the members' forward() attach to their items (extra) goes with the arena */
		if (rwd_arena_add_cleanup(ar, release_mitems, sc))
			return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	}
	uint64_t t0 = p->start_ns ? p->start_ns : rwd_now_ns();
	sc->job.items = req->items;
	sc->job.n = req->n_items;
	sc->job.priority = req->priority;
	sc->job.deadline_ns = req->timeout_ms ? t0 + (uint64_t)req->timeout_ms * 1000000ull : 0;
	sc->job.done = job_done;
	sc->job.gone = job_gone;
	sc->job.user = sc;
	*out = sc;
	return 0;
}

/* ---- after scoring ---------------------------------------------------------- */

static void finish_if_last(rwd_score *sc)
{
	if (atomic_fetch_sub(&sc->pending, 1) == 1)
		sc->p.done(sc, sc->p.user); /* last touch */
}

static void record(rwd_reward_series *se, rwd_metric *h, double v)
{
	if (!isfinite(v))
		return;
	if (se)
		rwd_reward_series_add(se, v);
	if (h)
		rwd_metric_observe(h, v);
}

static void record_adv(rwd_score *sc, double a)
{
	if (sc->t.sinks)
		record(sc->t.sinks->adv, sc->t.sinks->h_adv, a);
}

static void part_done(rwd_group_part *p)
{
	score_group *gr = p->user;
	rwd_score *sc = gr->sc;
	gr->pub.complete = p->complete;
	gr->pub.arrived = p->arrived;
	gr->pub.counted = p->counted;
	gr->pub.mean = p->mean;
	gr->pub.std = p->std;
	gr->pub.zero_std = p->zero_std;
	for (size_t k = 0; k < gr->count; k++) {
		sc->adv[gr->items[k]] = gr->a[k];
		record_adv(sc, gr->a[k]);
	}
	finish_if_last(sc);
}

/* A present requested raw score that is not finite fails its item: it never becomes a reward. */
static int check_finite(rwd_score *sc, rwd_item *it)
{
	for (size_t k = 0; k < sc->req->n_dims; k++) {
		int d = sc->req->dims[k];
		if (it->present[d] && !isfinite(it->scores[d])) {
			it->status = RWD_E_INTERNAL;
			rwd_errorf(&it->err, RWD_E_INTERNAL, "the model produced a non-finite '%s' score",
				sc->info->dims[d]);
			return 1;
		}
	}
	return 0;
}

/* Within the request: the same computation the group table does. */
static void local_group(rwd_score *sc, score_group *gr, const rwd_reward_adv_params *ap)
{
	size_t c = 0;
	for (size_t k = 0; k < gr->count; k++)
		if (isfinite(gr->r[k]))
			gr->a[c++] = gr->r[k];
	double *res = malloc((c ? c : 1) * sizeof(double));
	gr->pub.complete = 1;
	gr->pub.arrived = gr->count;
	gr->pub.counted = res ? c : 0;
	if (res && c) {
		rwd_reward_adv_spec sp = rwd_reward_adv_spec_of(ap, sc->norm);
		if (ap->scope == RWD_ADV_SCOPE_REQUEST) {
			sp.scoped = 1;
			sp.scope_std = sc->scope_std;
		}
		gr->pub.zero_std = rwd_reward_group_advantages(gr->a, c, &sp, res, &gr->pub.mean, &gr->pub.std);
	}
	c = 0;
	for (size_t k = 0; k < gr->count; k++)
		gr->a[k] = isfinite(gr->r[k]) && res ? res[c++] : NAN;
	if (!res)
		gr->pub.failed = RWD_E_NOMEM; /* no advantages: said so, never NaN without a word */
	free(res);
	for (size_t k = 0; k < gr->count; k++) {
		sc->adv[gr->items[k]] = gr->a[k];
		record_adv(sc, gr->a[k]);
	}
}

static void scored(rwd_score *sc)
{
	const rwd_score_sinks *sk = sc->t.sinks;
	const rwd_model_info *info = sc->info;
	atomic_store(&sc->pending, 1);
	for (size_t i = 0; i < sc->n; i++) {
		rwd_item *it = &sc->req->items[i];
		double *v = &sc->vals[i * sc->nd];
		sc->reward[i] = NAN;
		if (it->status || check_finite(sc, it))
			continue;
		double r;
		int st = rwd_reward_eval(sc->t.reward, &sc->ov, info->dims, info->n_dims, it->scores, it->present,
			sc->req->dims, sc->req->n_dims, v, &r);
		if (!st)
			sc->reward[i] = r;
		if (!sk)
			continue;
		for (size_t k = 0; k < sc->req->n_dims; k++) {
			int d = sc->req->dims[k];
			if (it->present[d])
				record(sk->dim[d], sk->h_dim[d], v[d]);
		}
		if (!st)
			record(sk->reward, sk->h_reward, r);
	}
	const rwd_reward_adv_params *ap = rwd_reward_config_adv(sc->t.reward);
	if (ap->scope == RWD_ADV_SCOPE_REQUEST) {
		/* flow_grpo's global_std: one std over every grouped reward of the request */
		double *all = malloc((sc->n ? sc->n : 1) * sizeof(double));
		size_t k = 0;
		for (size_t i = 0; all && i < sc->n; i++)
			if (sc->gidx[i] >= 0)
				all[k++] = sc->reward[i];
		sc->scope_std = all ? rwd_reward_scope_std(all, k, ap->std_kind) : NAN;
		free(all);
	}
	for (size_t g = 0; g < sc->n_groups; g++) {
		score_group *gr = &sc->groups[g];
		for (size_t k = 0; k < gr->count; k++)
			gr->r[k] = sc->reward[gr->items[k]];
		if (!gr->cross) {
			local_group(sc, gr, ap);
			continue;
		}
		rwd_group_part *p = &gr->part;
		p->n = gr->count;
		p->rewards = gr->r;
		p->adv = gr->a;
		p->norm = sc->norm;
		p->std_kind = ap->std_kind;
		p->singleton = ap->singleton;
		p->eps = ap->eps;
		p->zero_std_tol = ap->zero_std_tol;
		p->done = part_done;
		p->user = gr;
		atomic_fetch_add(&sc->pending, 1);
		int r = sc->p.groups ? rwd_group_table_add(sc->p.groups, gr->key, gr->pub.size,
			(uint64_t)ap->group_timeout_ms * 1000000ull, ap->max_open_groups, p) : RWD_E_STATE;
		if (!r)
			continue;
		gr->pub.failed = r;
		atomic_fetch_sub(&sc->pending, 1);
		for (size_t k = 0; k < gr->count; k++)
			gr->a[k] = NAN;
	}
	if (sk && sk->groups_open && sc->p.groups)
		rwd_metric_set(sk->groups_open, (double)rwd_group_table_open(sc->p.groups));
	finish_if_last(sc);
}

static void job_done(rwd_job *job)
{
	scored(job->user);
}

static int job_gone(rwd_job *job)
{
	rwd_score *sc = job->user;
	return sc->p.gone ? sc->p.gone(sc->p.user) : 0;
}

/* ---- ensembles ------------------------------------------------------------ */

static void ensemble_join(rwd_score *sc)
{
	size_t m = sc->m, n = sc->n;
	const rwd_ensemble_config *e = sc->t.ensemble;
	for (size_t k = 0; k < m; k++) {
		rwd_job *j = &sc->mjobs[k];
		if (sc->mfail[k])
			continue;
		if (j->queue_ns_max > sc->job.queue_ns_max)
			sc->job.queue_ns_max = j->queue_ns_max;
		if (j->compute_ns_max > sc->job.compute_ns_max)
			sc->job.compute_ns_max = j->compute_ns_max;
		sc->job.batches += j->batches;
	}
	for (size_t i = 0; i < n; i++) {
		rwd_item *it = &sc->req->items[i];
		memset(it->present, 0, sizeof(it->present));
		for (size_t k = 0; k < m && !it->status; k++) {
			if (sc->mfail[k]) {
				it->status = sc->mfail[k];
				rwd_errorf(&it->err, sc->mfail[k], "ensemble member '%s' could not take the item",
					e->members[k]);
			} else if (sc->mitems[k * n + i].status) {
				it->status = sc->mitems[k * n + i].status;
				it->err = sc->mitems[k * n + i].err;
			}
		}
		if (it->status)
			continue;
		for (size_t d = 0; d < sc->nd; d++) {
			double v[RWD_ENSEMBLE_MAX_MEMBERS];
			size_t c = 0;
			for (size_t k = 0; k < m; k++)
				if (sc->mitems[k * n + i].present[d])
					v[c++] = (double)sc->mitems[k * n + i].scores[d];
			/* a dimension is present when every member produced it */
			if (c != m)
				continue;
			double sp;
			it->scores[d] = (float)rwd_ensemble_combine(e->combine, e->k, v, m, &sp);
			it->present[d] = 1;
			sc->spread[i * sc->nd + d] = sp;
		}
	}
}

/* One member's job (or the submitter's own count) is settled; the last joins. */
static void member_settled(rwd_score *sc)
{
	if (atomic_fetch_sub(&sc->mpending, 1) == 1) {
		ensemble_join(sc);
		scored(sc);
	}
}

static void member_done(rwd_job *job)
{
	member_settled(job->user);
}

static int submit_ensemble(rwd_score *sc)
{
	size_t m = sc->m, n = sc->n;
	int first_err = 0;
	size_t ok = 0;
	atomic_store(&sc->mpending, (int)m + 1);
	for (size_t k = 0; k < m; k++) {
		for (size_t i = 0; i < n; i++) {
			rwd_item *src = &sc->req->items[i], *dst = &sc->mitems[k * n + i];
			dst->input = src->input;
			dst->vec = src->vec; /* a decoded "embedding" / "embedding_b64" (request.c) */
			dst->vec_n = src->vec_n;
			dst->index = src->index;
			dst->cost = src->cost;
			rwd_error_clear(&dst->err);
		}
		rwd_job *j = &sc->mjobs[k];
		j->items = &sc->mitems[k * n];
		j->n = n;
		j->priority = sc->job.priority;
		j->deadline_ns = sc->job.deadline_ns;
		j->done = member_done;
		j->gone = job_gone;
		j->user = sc;
		int r = rwd_batcher_submit(sc->t.members[k], j);
		if (r) {
			sc->mfail[k] = r;
			if (!first_err)
				first_err = r;
			atomic_fetch_sub(&sc->mpending, 1);
		} else {
			ok++;
		}
	}
	if (!ok)
		return first_err; /* nothing queued: no done() will come */
	member_settled(sc); /* the submitter's own count */
	return 0;
}

int rwd_score_submit(rwd_score *sc)
{
	if (sc->n == 0) {
		scored(sc);
		return 0;
	}
	if (sc->m)
		return submit_ensemble(sc);
	return rwd_batcher_submit(sc->t.batcher, &sc->job);
}

/* ---- results ---------------------------------------------------------------- */

size_t rwd_score_n_items(const rwd_score *sc)
{
	return sc->n;
}

void rwd_score_result_of(const rwd_score *sc, size_t i, rwd_score_result *out)
{
	memset(out, 0, sizeof(*out));
	out->item = &sc->req->items[i];
	out->values = &sc->vals[i * sc->nd];
	out->has_reward = !out->item->status && isfinite(sc->reward[i]);
	out->reward = out->has_reward ? sc->reward[i] : NAN;
	out->advantage = NAN;
	if (sc->gidx[i] >= 0) {
		out->group = &sc->groups[sc->gidx[i]].pub;
		out->advantage = sc->adv[i];
	}
}

size_t rwd_score_n_members(const rwd_score *sc)
{
	return sc->m;
}

const rwd_item *rwd_score_member_item(const rwd_score *sc, size_t k, size_t i)
{
	return k < sc->m && i < sc->n ? &sc->mitems[k * sc->n + i] : NULL;
}

double rwd_score_spread(const rwd_score *sc, size_t i, size_t d)
{
	return sc->m && i < sc->n && d < sc->nd ? sc->spread[i * sc->nd + d] : 0.0;
}

void rwd_score_get_timing(const rwd_score *sc, rwd_score_timing *out)
{
	out->queue_ns_max = sc->job.queue_ns_max;
	out->compute_ns_max = sc->job.compute_ns_max;
	out->batches = sc->job.batches;
}
