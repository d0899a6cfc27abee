/*
 * daemon/app.c — the served-model registry's core (the lock, versions and
 * their reference counts, lookup and pins), the API-key check and process
 * gauges (see app.h). It depends on nothing else of daemon/ but config and
 * log: the RL state is reached through app->hooks.
 */
#include "app.h"

#include "log.h"
#include "mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

struct rwd_pin {
	rwd_served *v;
	rwd_pin *next;
};

int rwd_app_registry_init(rwd_app *app)
{
	if (app->registry_ready)
		return 0;
	if (pthread_mutex_init(&app->registry_mu, NULL) != 0)
		return RWD_E_NOMEM;
	app->registry_ready = 1;
	return 0;
}

void rwd_app_registry_free(rwd_app *app)
{
	if (app->registry_ready)
		pthread_mutex_destroy(&app->registry_mu);
	app->registry_ready = 0;
}

void rwd_app_lock(rwd_app *app)
{
	if (app->registry_ready)
		pthread_mutex_lock(&app->registry_mu);
}

void rwd_app_unlock(rwd_app *app)
{
	if (app->registry_ready)
		pthread_mutex_unlock(&app->registry_mu);
}

int rwd_app_is_ensemble(const rwd_served *s)
{
	return s->cfg->ensemble.n_members > 0;
}

rwd_served *rwd_app_current(rwd_app *app, rwd_served *s)
{
	(void)app;
	/* an ensemble runs on its members' versions: it has none of its own */
	if (s->cur || !s->model || rwd_app_is_ensemble(s))
		return s->cur;
	/* a start-up load (main.c): adopt its model and batcher as the first version */
	rwd_served *v = calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	*v = *s;
	v->cur = NULL;
	atomic_init(&v->state, RWD_SERVED_READY);
	atomic_init(&v->refs, 1); /* the slot's reference */
	s->cur = v;
	return v;
}

/*
 * The last reference to a version is gone (its slot replaced or unloaded it,
 * and every request that pinned it has rendered its reply): nothing can reach
 * it, so drain its (idle) batcher and free it, on the dropping thread.
 */
static void version_free(rwd_app *app, rwd_served *v)
{
	rwd_batcher_free(v->batcher);
	rwd_model_free(v->model);
	if (v->rl && app->hooks.version_free)
		app->hooks.version_free(v);
	rwd_log(RWD_LOG_INFO, "model %s: previous version released", v->cfg->name);
	free(v);
}

void rwd_app_version_unref(rwd_app *app, rwd_served *v)
{
	if (v && atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) == 1)
		version_free(app, v);
}

void rwd_app_unpin(rwd_app *app, rwd_pins *pins)
{
	rwd_pin *p = pins->head;
	pins->head = NULL;
	/* the last pin of a replaced version frees it here */
	for (; p; p = p->next)
		rwd_app_version_unref(app, p->v);
}

rwd_served *rwd_app_pinned(const rwd_pins *pins, const char *name)
{
	for (rwd_pin *p = pins ? pins->head : NULL; p; p = p->next)
		if (strcmp(p->v->cfg->name, name) == 0)
			return p->v;
	return NULL;
}

/* Pin v (registry lock held). */
static int pin(rwd_pins *pins, rwd_served *v)
{
	rwd_pin *p = rwd_arena_alloc(pins->arena, sizeof(*p));
	if (!p)
		return RWD_E_NOMEM;
	atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
	p->v = v;
	p->next = pins->head;
	pins->head = p;
	return 0;
}

size_t rwd_app_n_models(const rwd_app *app)
{
	return __atomic_load_n(&app->n_models, __ATOMIC_ACQUIRE);
}

rwd_served *rwd_app_slot(rwd_app *app, const char *name)
{
	size_t n = rwd_app_n_models(app);
	for (size_t i = 0; i < n; i++)
		if (strcmp(app->models[i].cfg->name, name) == 0)
			return &app->models[i];
	return NULL;
}

static const char *unavailable_why(int st)
{
	switch (st) {
	case RWD_SERVED_LOADING:
		return "still loading";
	case RWD_SERVED_WARMING:
		return "warming up";
	case RWD_SERVED_DRAINING:
		return "being unloaded";
	default:
		return "not available";
	}
}

const rwd_model *rwd_app_find_model(void *ctx, const char *name, void **user, rwd_error *err)
{
	rwd_app_finder *f = ctx;
	rwd_app *app = f->app;
	rwd_pins *pins = f->pins;
	rwd_served *s = NULL;
	size_t n = __atomic_load_n(&app->n_models, __ATOMIC_ACQUIRE), live = 0;
	rwd_app_lock(app);
	for (size_t i = 0; i < n; i++) {
		rwd_served *c = &app->models[i];
		if (atomic_load_explicit(&c->state, memory_order_acquire) == RWD_SERVED_REMOVED)
			continue;
		live++;
		if (name ? strcmp(c->cfg->name, name) == 0 : !s)
			s = c;
	}
	const char *fail = NULL;
	int code = RWD_E_STATE;
	if (!name && live == 0) {
		fail = "no model is served";
	} else if (!name && live > 1) {
		rwd_error_where(err, NULL, "model");
		code = RWD_E_INVALID;
		fail = "\"model\" is required: several models are served (see GET /v1/models)";
	} else if (!s) {
		code = RWD_E_NOTFOUND;
		fail = "no model of that name (see GET /v1/models)";
	}
	if (fail) {
		rwd_app_unlock(app);
		if (code == RWD_E_NOTFOUND)
			return (void)rwd_errorf(err, code, "no model named '%.64s' (see GET /v1/models)", name), NULL;
		return (void)rwd_errorf(err, code, "%s", fail), NULL;
	}
	int st = atomic_load_explicit(&s->state, memory_order_acquire);
	if (st != RWD_SERVED_READY) {
		rwd_app_unlock(app);
		return (void)rwd_errorf(err, RWD_E_STATE, "model '%s' is %s", s->cfg->name,
			unavailable_why(st)), NULL;
	}
	/* pin the serving version until the request's reply is rendered (see app.h);
	 * an ensemble pins every member's serving version, all under the lock */
	if (rwd_app_is_ensemble(s)) {
		const rwd_ensemble_config *e = &s->cfg->ensemble;
		rwd_served *first = NULL;
		for (size_t k = 0; k < e->n_members; k++) {
			rwd_served *m = NULL;
			for (size_t i = 0; i < n && !m; i++) {
				rwd_served *c = &app->models[i];
				if (atomic_load_explicit(&c->state, memory_order_acquire) == RWD_SERVED_READY &&
					strcmp(c->cfg->name, e->members[k]) == 0)
					m = c;
			}
			rwd_served *mv = m && app->admin ? rwd_app_current(app, m) : NULL;
			if (!mv) {
				rwd_app_unlock(app);
				return (void)rwd_errorf(err, RWD_E_STATE, "ensemble '%s': member '%s' is not available",
					s->cfg->name, e->members[k]), NULL;
			}
			if (pins && !rwd_app_pinned(pins, mv->cfg->name) && pin(pins, mv)) {
				rwd_app_unlock(app);
				return (void)rwd_errorf(err, RWD_E_NOMEM, "out of memory"), NULL;
			}
			if (!first)
				first = pins ? rwd_app_pinned(pins, mv->cfg->name) : mv;
		}
		rwd_app_unlock(app);
		*user = s;
		/* the first member's pinned model validates items and names dimensions */
		return first->model;
	}
	rwd_served *v = app->admin ? rwd_app_current(app, s) : NULL;
	if (v && pins) {
		rwd_served *had = rwd_app_pinned(pins, v->cfg->name);
		if (had) {
			v = had; /* resolved twice (a drop-in route): one pin */
		} else if (pin(pins, v)) {
			rwd_app_unlock(app);
			return (void)rwd_errorf(err, RWD_E_NOMEM, "out of memory"), NULL;
		}
	}
	rwd_app_unlock(app);
	*user = v ? v : s;
	return v ? v->model : s->model;
}

/* Equal in time that depends only on the key's length, not on where they differ. */
static int ct_equal(const char *given, size_t glen, const char *key, size_t klen)
{
	unsigned char d = (unsigned char)(glen != klen);
	for (size_t i = 0; i < klen; i++)
		d |= (unsigned char)((i < glen ? (unsigned char)given[i] : 0) ^ (unsigned char)key[i]);
	return d == 0;
}

int rwd_app_authorized(const rwd_app *app, const char *authorization)
{
	if (app->n_keys == 0)
		return 1;
	if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
		return 0;
	const char *tok = authorization + 7;
	while (*tok == ' ')
		tok++;
	size_t tlen = strlen(tok);
	while (tlen && (tok[tlen - 1] == ' ' || tok[tlen - 1] == '\t'))
		tlen--;
	int ok = 0;
	/* every key is compared, so the time does not tell which one matched */
	for (size_t i = 0; i < app->n_keys; i++)
		ok |= ct_equal(tok, tlen, app->keys[i], app->key_lens[i]);
	return ok;
}

void rwd_app_update_process_metrics(rwd_app *app)
{
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		unsigned long size, resident;
		if (fscanf(f, "%lu %lu", &size, &resident) == 2)
			rwd_metric_set(app->rss_bytes, (double)resident * (double)sysconf(_SC_PAGESIZE));
		fclose(f);
	}
	f = fopen("/proc/self/status", "r");
	if (f) {
		char line[256];
		while (fgets(line, sizeof(line), f)) {
			int n;
			if (sscanf(line, "Threads: %d", &n) == 1) {
				rwd_metric_set(app->threads, n);
				break;
			}
		}
		fclose(f);
	}
	rwd_metric_set(app->inflight_gauge, (double)atomic_load(&app->inflight));
	if (app->budget_used && rwd_mem_budget())
		rwd_metric_set(app->budget_used, (double)rwd_budget_used(rwd_mem_budget()));
}

rwd_batcher_params rwd_app_batcher_params(const rwd_model_config *mc, const rwd_served *s,
	const rwd_model *model)
{
	rwd_batcher_params bp = rwd_batcher_default_params();
	bp.name = mc->name;
	bp.max_batch_size = mc->batching.max_batch_size;
	bp.max_batch_tokens = mc->batching.max_batch_tokens;
	bp.token_cost = rwd_model_get_info(model)->token_cost;
	bp.max_delay_us = mc->batching.max_delay_us;
	bp.max_queue_items = mc->batching.max_queue_items;
	bp.workers = mc->batching.workers;
	bp.metrics.queue_depth = s->queue_depth;
	bp.metrics.batch_size = s->batch_size;
	bp.metrics.batch_tokens = s->batch_tokens;
	bp.metrics.queue_seconds = s->queue_seconds;
	bp.metrics.compute_seconds = s->compute_seconds;
	return bp;
}
