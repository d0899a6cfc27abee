/* daemon/admin.c — reloads, the admin API and model installs (see admin.h). */
#include "admin.h"

#include "config.h"
#include "core/thread.h"
#include "log.h"
#include "sd.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

enum { OP_RELOAD, OP_INSTALL, OP_UNLOAD };

typedef struct admin_op {
	int type;
	char name[72];
	rwd_model_config *mc;   /* OP_INSTALL: owned by the op until installed */
	struct admin_op *next;
} admin_op;

/* A configuration a slot's cfg points into: kept until exit. */
typedef struct kept_cfg {
	rwd_config *cfg;          /* a whole reloaded config, or */
	rwd_model_config *mc;     /* one admin-loaded model config */
	struct kept_cfg *next;
} kept_cfg;

struct rwd_admin {
	pthread_mutex_t qmu;      /* the operation queue */
	pthread_cond_t qcv;
	admin_op *head, *tail;
	int stop;
	atomic_int started;
	pthread_t thread;
	const char **model_args;
	size_t n_model_args;
	size_t cap;               /* slots app->models can hold */
	json_t **cfg_json;        /* per slot: the model config it was loaded with */
	long long *stamp;         /* per slot: its weights' mtime/size stamp */
	kept_cfg *kept;
	/* watchdog: per slot, items finished at the last look and when that changed */
	uint64_t *wd_done, *wd_since;
	uint64_t stall_ns;
};

/* ---- the registry ------------------------------------------------------------- */

/* Drop the slot's reference to a version it no longer serves (no waiting). */
static void retire(rwd_app *app, rwd_served *v, const char *name)
{
	if (!v)
		return;
	long held = atomic_load(&v->refs) - 1;
	if (held > 0)
		rwd_log(RWD_LOG_INFO, "model %s: old version freed when its %ld pinning requests complete",
			name, held);
	rwd_app_version_unref(app, v);
}

/* The live ensemble (READY or loading) listing `name` as a member, or NULL (registry lock held). */
static rwd_served *ensemble_using(rwd_app *app, const char *name)
{
	size_t n = __atomic_load_n(&app->n_models, __ATOMIC_ACQUIRE);
	for (size_t i = 0; i < n; i++) {
		rwd_served *e = &app->models[i];
		int st = atomic_load(&e->state);
		if (st == RWD_SERVED_REMOVED || st == RWD_SERVED_FAILED || !rwd_app_is_ensemble(e))
			continue;
		for (size_t k = 0; k < e->cfg->ensemble.n_members; k++)
			if (strcmp(e->cfg->ensemble.members[k], name) == 0)
				return e;
	}
	return NULL;
}

/* ---- slots -------------------------------------------------------------------- */

static rwd_served *slot_find(rwd_app *app, const char *name, size_t *idx)
{
	size_t n = __atomic_load_n(&app->n_models, __ATOMIC_ACQUIRE);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(app->models[i].cfg->name, name) == 0) {
			if (idx)
				*idx = i;
			return &app->models[i];
		}
	}
	return NULL;
}

/* The per-model metric series (the families exist: main.c made them). */
static void slot_metrics(rwd_app *app, rwd_served *s)
{
	rwd_metrics *m = app->metrics;
	const char *n = s->cfg->name;
	s->request_seconds = rwd_metric_1(rwd_metrics_family(m, RWD_METRIC_HISTOGRAM,
		"rewardd_request_duration_seconds", NULL, NULL, NULL, 0), n);
	s->queue_seconds = rwd_metric_1(rwd_metrics_family(m, RWD_METRIC_HISTOGRAM,
		"rewardd_queue_duration_seconds", NULL, NULL, NULL, 0), n);
	s->compute_seconds = rwd_metric_1(rwd_metrics_family(m, RWD_METRIC_HISTOGRAM,
		"rewardd_compute_duration_seconds", NULL, NULL, NULL, 0), n);
	s->batch_size = rwd_metric_1(rwd_metrics_family(m, RWD_METRIC_HISTOGRAM,
		"rewardd_batch_size_items", NULL, NULL, NULL, 0), n);
	s->batch_tokens = rwd_metric_1(rwd_metrics_family(m, RWD_METRIC_HISTOGRAM,
		"rewardd_batch_size_tokens", NULL, NULL, NULL, 0), n);
	s->queue_depth = rwd_metric_1(rwd_metrics_family(m, RWD_METRIC_GAUGE,
		"rewardd_queue_depth_items", NULL, NULL, NULL, 0), n);
	s->weight_bytes = rwd_metric_1(rwd_metrics_family(m, RWD_METRIC_GAUGE,
		"rewardd_model_weight_bytes", NULL, NULL, NULL, 0), n);
	s->loaded = rwd_metric_1(rwd_metrics_family(m, RWD_METRIC_GAUGE,
		"rewardd_model_loaded", NULL, NULL, NULL, 0), n);
}

/* mtime and size of the model's files (the folder's entries, or the file). */
static long long weights_stamp(const char *path)
{
	struct stat st;
	if (!path || stat(path, &st) != 0)
		return 0;
	/* unsigned: a hash that may wrap */
	unsigned long long h = (unsigned long long)st.st_mtim.tv_sec * 1000000000ull +
		(unsigned long long)st.st_mtim.tv_nsec + (unsigned long long)st.st_size;
	if (!S_ISDIR(st.st_mode))
		return (long long)h;
	DIR *d = opendir(path);
	if (!d)
		return (long long)h;
	struct dirent *e;
	while ((e = readdir(d))) {
		char p[PATH_MAX];
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
		if (stat(p, &st) == 0)
			h += ((unsigned long long)st.st_mtim.tv_sec * 1000000000ull +
				(unsigned long long)st.st_mtim.tv_nsec) * 31u + (unsigned long long)st.st_size;
	}
	closedir(d);
	return (long long)h;
}

static json_t *model_cfg_json(const rwd_model_config *mc)
{
	return json_pack("{s:s? s:s? s:O? s{sI sI sI sI si} sI sI sb}", "kind", mc->kind, "path", mc->path,
		"options", mc->options, "batching", "max_batch_size", (json_int_t)mc->batching.max_batch_size,
		"max_batch_tokens", (json_int_t)mc->batching.max_batch_tokens,
		"max_delay_us", (json_int_t)mc->batching.max_delay_us,
		"max_queue_items", (json_int_t)mc->batching.max_queue_items, "workers", mc->batching.workers,
		"max_tokens", (json_int_t)mc->max_tokens, "max_image_pixels", (json_int_t)mc->max_image_pixels,
		"weights_in_memory", mc->weights_in_memory);
}

/* ---- warm-up ------------------------------------------------------------------ */

typedef struct warm_job {
	rwd_job job;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;
} warm_job;

static void warm_done(rwd_job *job)
{
	warm_job *w = job->user;
	pthread_mutex_lock(&w->mu);
	w->done = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/* A 16x16 RGB PNG for image kinds. */
static const char warm_png[] =
	"iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAIAAACQkWg2AAAAHUlEQVR4nGNkYGgQYGAgHrEwCDCQBEY1jGoYOhoAHgoCnuSqbggAAAAASUVORK5CYII=";

/* One synthetic item the model accepts: the first candidate its check() takes. */
static json_t *warm_item(const rwd_model *m, size_t *cost, rwd_error *err)
{
	const char *own = rwd_model_get_info(m)->warm_item;
	json_t *cands[] = {
		/* the model's own (a process reward model needs its step separator) */
		own ? json_loads(own, 0, NULL) : NULL,
		/* a text model whose max_tokens is below any rendered chat: keep its last max_tokens */
		json_pack("{ss si}", "text", "Hello, how are you?", "truncate_prompt_tokens", -1),
		json_pack("{ss ss ss}", "prompt", "What is 2 + 2?", "response", "The answer is 4.", "label", "4"),
		/* a quoted target: the ocr kind scores the text between the first quotes */
		json_pack("{ss ss}", "image", warm_png, "prompt", "a sign that reads \"OK\""),
		json_pack("{ss}", "image", warm_png),
		json_pack("{ss}", "text", "Hello, how are you?"),
		json_pack("{s[]}", "embedding"),
	};
	size_t nc = sizeof(cands) / sizeof(cands[0]);
	json_t *found = NULL;
	for (size_t i = 0; i < nc && !found; i++) {
		rwd_error_clear(err);
		if (cands[i] && rwd_model_check(m, cands[i], cost, err) == 0) {
			found = json_incref(cands[i]);
			break;
		}
		/* an embedding head says how many numbers it wants */
		const char *p = strstr(err->msg, "array of ");
		size_t want = 0;
		if (i == nc - 1 && p && sscanf(p, "array of %zu", &want) == 1 && want > 0 && want <= 1u << 20) {
			json_t *arr = json_object_get(cands[i], "embedding");
			for (size_t k = 0; k < want; k++)
				json_array_append_new(arr, json_real(0.01 * (double)(k % 7)));
			rwd_error_clear(err);
			if (rwd_model_check(m, cands[i], cost, err) == 0)
				found = json_incref(cands[i]);
		}
	}
	for (size_t i = 0; i < nc; i++)
		json_decref(cands[i]);
	if (!found)
		rwd_errorf(err, RWD_E_UNSUPPORTED, "no synthetic warm-up item fits this model (last: %s)",
			err->msg);
	return found;
}

/* One synthetic item through the real batcher and workers. */
int rwd__admin_warm_up(const rwd_model *m, rwd_batcher *b, rwd_error *err)
{
	size_t cost = 1;
	json_t *in = warm_item(m, &cost, err);
	if (!in)
		return RWD_E_UNSUPPORTED;
	warm_job *w = calloc(1, sizeof(*w));
	rwd_item *it = calloc(1, sizeof(*it));
	if (!w || !it) {
		free(w);
		free(it);
		json_decref(in);
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	}
	it->input = in;
	it->cost = cost;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->job.items = it;
	w->job.n = 1;
	w->job.done = warm_done;
	w->job.user = w;
	int r = rwd_batcher_submit(b, &w->job);
	if (r) {
		rwd_errorf(err, r, "the warm-up item was refused: %s", rwd_strerror(r));
		goto out;
	}
	pthread_mutex_lock(&w->mu);
	uint64_t until = rwd_now_ns() + 300000000000ull;
	while (!w->done && rwd_now_ns() < until) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&w->cv, &w->mu, &ts);
	}
	int done = w->done;
	pthread_mutex_unlock(&w->mu);
	if (!done) {
		/* the batcher still owns the job: leak it rather than free it under a worker */
		return rwd_errorf(err, RWD_E_TIMEOUT, "the warm-up batch did not finish in 300 s");
	}
	if (it->status)
		r = rwd_errorf(err, it->status, "the warm-up item failed: %s",
			it->err.msg[0] ? it->err.msg : rwd_strerror(it->status));
out:
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	rwd_item_release(it, 1); /* what forward() attached (a PRM's step_rewards) */
	json_decref(in);
	free(it);
	free(w);
	return r;
}

/* ---- operations ----------------------------------------------------------------- */

static void set_pending(rwd_app *app, rwd_served *s, int fresh, const char *what, int state)
{
	rwd_app_lock(app);
	if (fresh)
		atomic_store_explicit(&s->state, state, memory_order_release);
	else
		s->pending = what;
	rwd_app_unlock(app);
}

static void install_failed(rwd_app *app, rwd_served *s, int fresh, const char *what, const rwd_error *err)
{
	char buf[512];
	rwd_error_format(err, buf, sizeof(buf));
	rwd_app_lock(app);
	snprintf(s->reason, sizeof(s->reason), "%s%.24s: %.160s", fresh ? "" : "reload failed (the old version serves): ",
		what, buf);
	s->pending = NULL;
	if (fresh)
		atomic_store_explicit(&s->state, RWD_SERVED_FAILED, memory_order_release);
	rwd_app_unlock(app);
	rwd_log(RWD_LOG_ERROR, "model %s: %s", s->cfg->name, s->reason);
}

/*
 * Load mc beside whatever serves its name, warm it up, swap it in, release
 * the old version. mc must stay valid for the process's life (kept configs).
 * Returns 0 when the new version serves.
 */
static int install(rwd_app *app, rwd_model_config *mc)
{
	rwd_admin *a = app->admin;
	size_t idx = 0;
	rwd_served *s = slot_find(app, mc->name, &idx);
	int fresh = !s || atomic_load(&s->state) != RWD_SERVED_READY;
	if (!s) {
		size_t n = app->n_models;
		if (n >= a->cap) {
			rwd_log(RWD_LOG_ERROR, "model %s: cannot add it: %zu models is the most one process serves",
				mc->name, a->cap);
			return RWD_E_LIMIT;
		}
		s = &app->models[n];
		memset(s, 0, sizeof(*s));
		s->cfg = mc;
		atomic_init(&s->state, RWD_SERVED_LOADING);
		atomic_init(&s->refs, 0);
		slot_metrics(app, s);
		idx = n;
		__atomic_store_n(&app->n_models, n + 1, __ATOMIC_RELEASE);
	} else if (fresh) {
		/* a failed or removed slot of that name is reused */
		rwd_app_lock(app);
		s->cfg = mc;
		s->reason[0] = '\0';
		atomic_store_explicit(&s->state, RWD_SERVED_LOADING, memory_order_release);
		rwd_app_unlock(app);
	}
	set_pending(app, s, fresh, "loading", RWD_SERVED_LOADING);
	rwd_log(RWD_LOG_INFO, "model %s: loading %s%s", mc->name, mc->path ? mc->path : mc->kind,
		fresh ? "" : " beside the serving version");

	rwd_error err;
	rwd_error_clear(&err);
	rwd_model_params mp = rwd_model_default_params();
	mp.name = mc->name;
	mp.kind = mc->kind;
	mp.path = mc->path;
	mp.options = mc->options;
	mp.limits.max_batch_size = mc->batching.max_batch_size;
	mp.limits.max_batch_tokens = mc->batching.max_batch_tokens;
	mp.limits.max_tokens = mc->max_tokens;
	mp.limits.max_image_pixels = mc->max_image_pixels;
	mp.limits.weights_in_memory = mc->weights_in_memory;
	rwd_model *model = NULL;
	rwd_batcher *batcher = NULL;
	long long stamp = weights_stamp(mc->path);
	int r = rwd_model_load(&mp, &model, &err);
	if (r) {
		install_failed(app, s, fresh, "cannot load", &err);
		return r;
	}
	const rwd_model_info *info = rwd_model_get_info(model);
	rwd_batcher_params bp = rwd_app_batcher_params(mc, s, model);
	rwd_batch_exec ex = rwd_batcher_model_exec(model);
	r = rwd_batcher_new(&bp, &ex, &batcher, &err);
	if (r) {
		rwd_model_free(model);
		install_failed(app, s, fresh, "cannot start its batcher", &err);
		return r;
	}
	set_pending(app, s, fresh, "warming", RWD_SERVED_WARMING);
	uint64_t t0 = rwd_now_ns();
	r = rwd__admin_warm_up(model, batcher, &err);
	if (r) {
		if (r != RWD_E_TIMEOUT) {
			rwd_batcher_free(batcher);
			rwd_model_free(model);
		}
		install_failed(app, s, fresh, "warm-up failed", &err);
		return r;
	}
	double warm_s = (double)(rwd_now_ns() - t0) / 1e9;

	rwd_served *v = calloc(1, sizeof(*v));
	if (v) {
		rwd_app_lock(app);
		*v = *s;
		rwd_app_unlock(app);
		v->cur = NULL;
		v->cfg = mc;
		v->model = model;
		v->batcher = batcher;
		v->rl = NULL;
		v->pending = NULL;
		v->reason[0] = '\0';
		atomic_init(&v->state, RWD_SERVED_READY);
		atomic_init(&v->refs, 1); /* the slot's reference */
	}
	/* api_rl.c: this version's reward config against its dimensions, its series */
	if (!v || (app->hooks.model_ready && (r = app->hooks.model_ready(app, v, &err)))) {
		free(v);
		rwd_batcher_free(batcher);
		rwd_model_free(model);
		if (!v)
			rwd_errorf(&err, RWD_E_NOMEM, "out of memory");
		install_failed(app, s, fresh, "cannot install", &err);
		return v ? r : RWD_E_NOMEM;
	}
	rwd_app_lock(app);
	/* a member of a live ensemble must keep the ensemble's dimensions, in order */
	rwd_served *ens = ensemble_using(app, mc->name);
	if (ens && ens->model) {
		const rwd_model_info *ei = rwd_model_get_info(ens->model);
		int same = ei->n_dims == info->n_dims;
		for (size_t d = 0; same && d < info->n_dims; d++)
			same = strcmp(ei->dims[d], info->dims[d]) == 0;
		if (!same) {
			rwd_app_unlock(app);
			rwd_app_version_unref(app, v); /* frees the new batcher and model */
			rwd_errorf(&err, RWD_E_INVALID, "its dimensions differ from those of ensemble '%s'",
				ens->cfg->name);
			install_failed(app, s, fresh, "cannot install", &err);
			return RWD_E_INVALID;
		}
	}
	rwd_served *old = rwd_app_current(app, s);
	/* ensembles led by this member name dimensions with its new model */
	size_t n_all = __atomic_load_n(&app->n_models, __ATOMIC_ACQUIRE);
	for (size_t i = 0; i < n_all; i++) {
		rwd_served *e = &app->models[i];
		if (rwd_app_is_ensemble(e) && e->model && strcmp(e->cfg->ensemble.members[0], mc->name) == 0)
			e->model = model;
	}
	s->cur = v;
	s->cfg = mc;
	s->model = model;
	s->batcher = batcher;
	s->rl = v->rl;
	s->pending = NULL;
	s->reason[0] = '\0';
	atomic_store_explicit(&s->state, RWD_SERVED_READY, memory_order_release);
	json_decref(a->cfg_json[idx]);
	a->cfg_json[idx] = model_cfg_json(mc);
	a->stamp[idx] = stamp;
	rwd_app_unlock(app);
	rwd_metric_set(s->weight_bytes, (double)info->weight_bytes);
	rwd_metric_set(s->loaded, 1);
	rwd_log(RWD_LOG_INFO, "model %s: kind %s, %zu dimensions, %zu weight bytes, loaded in %.3f s, "
		"warmed up in %.3f s; %s", mc->name, info->kind, info->n_dims, info->weight_bytes,
		info->load_seconds, warm_s, old ? "swapped in" : "serving");
	retire(app, old, mc->name);
	return 0;
}

static int unload(rwd_app *app, const char *name)
{
	rwd_served *s = slot_find(app, name, NULL);
	if (!s || atomic_load(&s->state) == RWD_SERVED_REMOVED)
		return RWD_E_NOTFOUND;
	if (rwd_app_is_ensemble(s)) {
		rwd_log(RWD_LOG_WARN, "model %s: an ensemble is not unloaded at run time (restart)", name);
		return RWD_E_UNSUPPORTED;
	}
	rwd_app_lock(app);
	rwd_served *ens = ensemble_using(app, name);
	if (ens) {
		rwd_app_unlock(app);
		rwd_log(RWD_LOG_WARN, "model %s: not unloaded: a member of the live ensemble %s", name,
			ens->cfg->name);
		return RWD_E_STATE;
	}
	int was = atomic_load(&s->state);
	rwd_served *old = was == RWD_SERVED_READY ? rwd_app_current(app, s) : NULL;
	/* new requests get 503 from now; the ones that pinned `old` finish on it */
	s->cur = NULL;
	s->model = NULL;
	s->batcher = NULL;
	s->rl = NULL;         /* the version's: freed with it */
	s->pending = NULL;
	atomic_store_explicit(&s->state, RWD_SERVED_REMOVED, memory_order_release);
	rwd_app_unlock(app);
	rwd_metric_set(s->loaded, 0);
	rwd_metric_set(s->weight_bytes, 0);
	rwd_log(RWD_LOG_INFO, "model %s: unloaded (requests holding it finish on it)", name);
	retire(app, old, name);
	return 0;
}

static void keep(rwd_admin *a, rwd_config *cfg, rwd_model_config *mc)
{
	kept_cfg *k = calloc(1, sizeof(*k));
	if (!k)
		return; /* a leak is better than a dangling slot->cfg */
	k->cfg = cfg;
	k->mc = mc;
	k->next = a->kept;
	a->kept = k;
}

static void reload(rwd_app *app)
{
	rwd_admin *a = app->admin;
	const rwd_config *cur = app->cfg;
	rwd_sd_reloading("reloading the configuration");
	rwd_log(RWD_LOG_INFO, "SIGHUP: reloading %s", cur->file ? cur->file : "the --model flags");
	rwd_config *nc = calloc(1, sizeof(*nc));
	rwd_error err;
	rwd_error_clear(&err);
	int r = nc ? 0 : RWD_E_NOMEM;
	if (nc) {
		rwd_config_defaults(nc);
		if (cur->file)
			r = rwd_config_load_file(nc, cur->file, &err);
		for (size_t i = 0; !r && i < a->n_model_args; i++)
			r = rwd_config_add_model_arg(nc, a->model_args[i], &err);
		if (!r)
			r = rwd_config_validate(nc, &err);
	}
	if (r) {
		char buf[1024];
		rwd_log(RWD_LOG_ERROR, "reload refused, nothing changed: %s", rwd_error_format(&err, buf, sizeof(buf)));
		if (nc)
			rwd_config_free(nc);
		free(nc);
		rwd_sd_ready("reload refused (invalid configuration); serving as before");
		return;
	}
	if (strcmp(nc->listen_host, cur->listen_host) != 0 || nc->listen_port != cur->listen_port ||
		nc->http_threads != cur->http_threads || nc->max_body_bytes != cur->max_body_bytes)
		rwd_log(RWD_LOG_WARN, "reload: listen/http changes take effect at the next restart");
	keep(a, nc, NULL);
	size_t installed = 0, failed = 0, removed = 0, same = 0;
	for (size_t i = 0; i < nc->n_models; i++) {
		rwd_model_config *mc = &nc->models[i];
		size_t idx;
		rwd_served *s = slot_find(app, mc->name, &idx);
		if (mc->ensemble.n_members) {
			rwd_log(RWD_LOG_WARN, "reload: ensemble %s is not reloaded (restart to change it)", mc->name);
			continue;
		}
		if (s && atomic_load(&s->state) == RWD_SERVED_READY) {
			json_t *j = model_cfg_json(mc);
			int eq = json_equal(j, a->cfg_json[idx]) && weights_stamp(mc->path) == a->stamp[idx];
			json_decref(j);
			if (eq) {
				same++;
				continue;
			}
		}
		if (install(app, mc))
			failed++;
		else
			installed++;
	}
	size_t n = __atomic_load_n(&app->n_models, __ATOMIC_ACQUIRE);
	for (size_t i = 0; i < n; i++) {
		rwd_served *s = &app->models[i];
		int st = atomic_load(&s->state);
		if (st == RWD_SERVED_REMOVED || st == RWD_SERVED_DRAINING)
			continue;
		int found = 0;
		for (size_t k = 0; k < nc->n_models && !found; k++)
			found = strcmp(nc->models[k].name, s->cfg->name) == 0;
		if (!found && unload(app, s->cfg->name) == 0)
			removed++;
	}
	char st[256];
	snprintf(st, sizeof(st), "reloaded: %zu models (re)loaded, %zu unchanged, %zu removed, %zu failed",
		installed, same, removed, failed);
	rwd_log(failed ? RWD_LOG_WARN : RWD_LOG_INFO, "%s", st);
	rwd_sd_ready(st);
}

static void *manager(void *arg)
{
	rwd_app *app = arg;
	rwd_admin *a = app->admin;
	rwd_thread_set_name("rwd-admin");
	for (;;) {
		pthread_mutex_lock(&a->qmu);
		while (!a->head && !a->stop)
			pthread_cond_wait(&a->qcv, &a->qmu);
		admin_op *op = a->stop ? NULL : a->head;
		if (op) {
			a->head = op->next;
			if (!a->head)
				a->tail = NULL;
		}
		pthread_mutex_unlock(&a->qmu);
		if (!op)
			break;
		if (op->type == OP_RELOAD) {
			reload(app);
		} else if (op->type == OP_INSTALL) {
			keep(a, NULL, op->mc);
			install(app, op->mc);
			op->mc = NULL;
		} else {
			unload(app, op->name);
		}
		free(op);
	}
	return NULL;
}

static void enqueue(rwd_app *app, admin_op *op)
{
	rwd_admin *a = app->admin;
	pthread_mutex_lock(&a->qmu);
	if (a->tail)
		a->tail->next = op;
	else
		a->head = op;
	a->tail = op;
	pthread_cond_signal(&a->qcv);
	pthread_mutex_unlock(&a->qmu);
}

void rwd_admin_reload(rwd_app *app)
{
	if (!app->admin || !app->admin->started)
		return;
	admin_op *op = calloc(1, sizeof(*op));
	if (!op)
		return;
	op->type = OP_RELOAD;
	enqueue(app, op);
}

/* ---- life cycle ------------------------------------------------------------------ */

static int read_admin_key(rwd_app *app, rwd_error *err)
{
	const rwd_config *c = app->cfg;
	char buf[1024] = "";
	if (c->admin_key_file) {
		FILE *f = fopen(c->admin_key_file, "r");
		if (!f) {
			rwd_error_where(err, c->admin_key_file, "admin.key_file");
			return rwd_errorf(err, RWD_E_IO, "cannot read the admin key: %s", strerror(errno));
		}
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = '\0';
		fclose(f);
	} else if (c->admin_key_env && getenv(c->admin_key_env)) {
		snprintf(buf, sizeof(buf), "%s", getenv(c->admin_key_env));
	}
	size_t n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		buf[--n] = '\0';
	if (n == 0)
		return 0;
	if (n < 16) {
		rwd_error_where(err, c->admin_key_file, c->admin_key_file ? "admin.key_file" : "admin.key_env");
		return rwd_errorf(err, RWD_E_INVALID, "the admin key is too short (16 characters at least)");
	}
	app->admin_key = strdup(buf);
	app->admin_key_len = n;
	return app->admin_key ? 0 : rwd_errorf(err, RWD_E_NOMEM, "out of memory");
}

int rwd_admin_init(rwd_app *app, const char **model_args, size_t n_model_args, rwd_error *err)
{
	rwd_admin *a = calloc(1, sizeof(*a));
	if (!a)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	a->cap = app->n_models + RWD_APP_SPARE_MODELS;
	a->cfg_json = calloc(a->cap, sizeof(*a->cfg_json));
	a->stamp = calloc(a->cap, sizeof(*a->stamp));
	a->wd_done = calloc(a->cap, sizeof(*a->wd_done));
	a->wd_since = calloc(a->cap, sizeof(*a->wd_since));
	uint64_t wd = rwd_sd_watchdog_usec() * 2000ull;
	a->stall_ns = wd > 30000000000ull ? wd : 30000000000ull;
	if (!a->cfg_json || !a->stamp || !a->wd_done || !a->wd_since) {
		free(a->wd_done);
		free(a->wd_since);
		free(a->cfg_json);
		free(a->stamp);
		free(a);
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	}
	if (rwd_app_registry_init(app)) {
		free(a->wd_done);
		free(a->wd_since);
		free(a->cfg_json);
		free(a->stamp);
		free(a);
		return rwd_errorf(err, RWD_E_NOMEM, "cannot create the registry lock");
	}
	pthread_mutex_init(&a->qmu, NULL);
	pthread_cond_init(&a->qcv, NULL);
	a->model_args = model_args;
	a->n_model_args = n_model_args;
	for (size_t i = 0; i < app->n_models; i++) {
		a->cfg_json[i] = model_cfg_json(app->models[i].cfg);
		a->stamp[i] = weights_stamp(app->models[i].cfg->path);
		atomic_init(&app->models[i].refs, 0);
	}
	app->admin = a;
	return read_admin_key(app, err);
}

int rwd_admin_start(rwd_app *app, rwd_error *err)
{
	rwd_admin *a = app->admin;
	if (!a || a->started)
		return 0;
	if (pthread_create(&a->thread, NULL, manager, app) != 0)
		return rwd_errorf(err, RWD_E_IO, "cannot start the model manager thread");
	a->started = 1;
	return 0;
}

int rwd_admin_alive(void *vapp)
{
	rwd_app *app = vapp;
	rwd_admin *a = app->admin;
	if (!a)
		return 1;
	uint64_t now = rwd_now_ns();
	int alive = 1;
	rwd_app_lock(app);
	size_t n = __atomic_load_n(&app->n_models, __ATOMIC_ACQUIRE);
	for (size_t i = 0; i < n && i < a->cap; i++) {
		rwd_served *s = &app->models[i];
		if (atomic_load(&s->state) != RWD_SERVED_READY || !s->batcher)
			continue;
		rwd_batcher_stats st;
		rwd_batcher_get_stats(s->batcher, &st);
		uint64_t done = st.items_run + st.expired + st.cancelled;
		if (done != a->wd_done[i] || (st.queued == 0 && st.running == 0) || !a->wd_since[i]) {
			a->wd_done[i] = done;
			a->wd_since[i] = now;
		} else if (now - a->wd_since[i] > a->stall_ns) {
			if (alive)
				rwd_log(RWD_LOG_ERROR, "model %s: %zu items waiting and none finished for %.0f s: "
					"withholding the systemd watchdog ping", s->cfg->name, st.queued + st.running,
					(double)(now - a->wd_since[i]) / 1e9);
			alive = 0;
		}
	}
	rwd_app_unlock(app);
	return alive;
}

int rwd_admin_running(const rwd_app *app)
{
	return app->admin && app->admin->started;
}

void rwd_admin_stop(rwd_app *app)
{
	rwd_admin *a = app->admin;
	if (!a || !a->started)
		return;
	pthread_mutex_lock(&a->qmu);
	a->stop = 1;
	pthread_cond_signal(&a->qcv);
	pthread_mutex_unlock(&a->qmu);
	pthread_join(a->thread, NULL);
	a->started = 0;
}

void rwd_admin_free(rwd_app *app)
{
	rwd_admin *a = app->admin;
	free(app->admin_key);
	app->admin_key = NULL;
	if (!a)
		return;
	rwd_admin_stop(app);
	/* main() freed each slot's model and batcher (the current version's) */
	for (size_t i = 0; i < app->n_models; i++) {
		free(app->models[i].cur);
		app->models[i].cur = NULL;
		json_decref(a->cfg_json[i]);
	}
	while (a->head) {
		admin_op *op = a->head;
		a->head = op->next;
		if (op->mc) {
			rwd_config tmp;
			memset(&tmp, 0, sizeof(tmp));
			tmp.models = op->mc;
			tmp.n_models = 1;
			rwd_config_free(&tmp);
		}
		free(op);
	}
	while (a->kept) {
		kept_cfg *k = a->kept;
		a->kept = k->next;
		if (k->cfg) {
			rwd_config_free(k->cfg);
			free(k->cfg);
		}
		if (k->mc) {
			rwd_config tmp;
			memset(&tmp, 0, sizeof(tmp));
			tmp.models = k->mc;
			tmp.n_models = 1;
			rwd_config_free(&tmp);
		}
		free(k);
	}
	free(a->cfg_json);
	free(a->stamp);
	free(a->wd_done);
	free(a->wd_since);
	pthread_mutex_destroy(&a->qmu);
	pthread_cond_destroy(&a->qcv);
	free(a);
	app->admin = NULL;
	rwd_app_registry_free(app);
}

/* ---- the admin API ------------------------------------------------------------- */

int rwd_admin_authorized(const rwd_app *app, const char *authorization)
{
	if (!app->admin_key || !authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
		return 0;
	const char *tok = authorization + 7;
	while (*tok == ' ')
		tok++;
	size_t tlen = strlen(tok);
	while (tlen && (tok[tlen - 1] == ' ' || tok[tlen - 1] == '\t'))
		tlen--;
	/* time depends on the key's length only */
	unsigned char d = (unsigned char)(tlen != app->admin_key_len);
	for (size_t i = 0; i < app->admin_key_len; i++)
		d |= (unsigned char)((i < tlen ? (unsigned char)tok[i] : 0) ^ (unsigned char)app->admin_key[i]);
	return d == 0;
}

static int valid_name(const char *s, size_t n)
{
	if (n == 0 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
			ch == '-' || ch == '_' || ch == '.'))
			return 0;
	}
	return 1;
}

enum { ROOT_OK, ROOT_UNRESOLVED, ROOT_MISSING, ROOT_OUTSIDE };

/* path (relative: to the root) resolved through symlinks into real[PATH_MAX], and checked under the root. */
static int under_root(const rwd_app *app, const char *path, char *real)
{
	char root[PATH_MAX], want[PATH_MAX];
	if (!realpath(app->cfg->admin_model_root, root))
		return ROOT_UNRESOLVED;
	int wn = path[0] == '/' ? snprintf(want, sizeof(want), "%s", path) :
		snprintf(want, sizeof(want), "%s/%s", root, path);
	if (wn < 0 || (size_t)wn >= sizeof(want) || !realpath(want, real))
		return ROOT_MISSING;
	size_t n = strlen(root);
	if (n > 1 && (strncmp(real, root, n) != 0 || (real[n] != '/' && real[n] != '\0')))
		return ROOT_OUTSIDE;
	return ROOT_OK;
}

/* path resolved under the model root, or NULL with reply filled. */
static char *resolve_under_root(rwd_app *app, const char *path, rwd_reply *reply)
{
	char real[PATH_MAX];
	switch (under_root(app, path, real)) {
	case ROOT_UNRESOLVED:
		rwd_reply_error(reply, 503, "unavailable", "admin.model_root does not resolve", NULL, 0, 0);
		return NULL;
	case ROOT_MISSING:
		rwd_reply_error(reply, 404, "not_found", "no such model folder or file under the model root",
			"path", 0, 0);
		return NULL;
	case ROOT_OUTSIDE:
		rwd_reply_error(reply, 403, "forbidden", "the path is outside admin.model_root", "path", 0, 0);
		return NULL;
	default:
		return strdup(real);
	}
}

/*
 * An option key that names a file or folder: path, file, dir, directory,
 * root, folder, tokenizer, or one ending in _path, _file, _dir, _directory,
 * _root, _folder (and their plurals).
 */
static int path_key(const char *k)
{
	static const char *const whole[] = {"path", "file", "dir", "directory", "root", "folder", "tokenizer",
		"paths", "files", "dirs", "directories", "roots", "folders"};
	static const char *const tails[] = {"_path", "_file", "_dir", "_directory", "_root", "_folder",
		"_paths", "_files", "_dirs", "_directories", "_roots", "_folders"};
	for (size_t i = 0; i < sizeof(whole) / sizeof(whole[0]); i++)
		if (strcmp(k, whole[i]) == 0)
			return 1;
	size_t n = strlen(k);
	for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
		size_t t = strlen(tails[i]);
		if (n > t && strcmp(k + n - t, tails[i]) == 0)
			return 1;
	}
	return 0;
}

/* One path-valued option: resolved, refused (400 naming it) unless under the root, rewritten to its real path. */
static int confine_one(rwd_app *app, json_t *parent, const char *key, size_t idx, json_t *v,
	const char *field, rwd_reply *reply)
{
	char real[PATH_MAX], msg[160];
	if (!json_is_string(v) || json_string_length(v) == 0)
		return 0; /* the kind checks its own types */
	int w = under_root(app, json_string_value(v), real);
	if (w == ROOT_UNRESOLVED) {
		rwd_reply_error(reply, 503, "unavailable", "admin.model_root does not resolve", NULL, 0, 0);
		return 1;
	}
	if (w != ROOT_OK) {
		snprintf(msg, sizeof(msg), "%s", w == ROOT_MISSING ?
			"the option names a file or folder that does not exist under admin.model_root" :
			"the option names a file or folder outside admin.model_root");
		rwd_reply_error(reply, 400, "invalid_request", msg, field, 0, 0);
		return 1;
	}
	/* the kind opens exactly what was checked */
	int r = key ? json_object_set_new(parent, key, json_string(real)) :
		json_array_set_new(parent, idx, json_string(real));
	if (r) {
		rwd_reply_error(reply, 503, "out_of_memory", "out of memory", NULL, 0, 0);
		return 1;
	}
	return 0;
}

/*
 * Walk admin-loaded options (a deep copy the load keeps): every path-valued
 * option, at any depth (CLIP's heads[].path), must resolve under
 * admin.model_root. Returns 0, or 1 with reply filled.
 */
static int confine_options(rwd_app *app, json_t *o, const char *at, int depth, rwd_reply *reply)
{
	char field[RWD_ERROR_OBJECT_MAX];
	if (depth > 16) {
		rwd_reply_error(reply, 400, "invalid_request", "options nest too deeply", at, 0, 0);
		return 1;
	}
	if (json_is_object(o)) {
		const char *k;
		json_t *v;
		void *tmp;
		json_object_foreach_safe(o, tmp, k, v) {
			snprintf(field, sizeof(field), "%s.%s", at, k);
			if (path_key(k)) {
				if (json_is_array(v)) {
					for (size_t i = 0; i < json_array_size(v); i++) {
						char f2[RWD_ERROR_OBJECT_MAX];
						snprintf(f2, sizeof(f2), "%.*s[%zu]", (int)sizeof(field) - 24, field, i);
						if (confine_one(app, v, NULL, i, json_array_get(v, i), f2, reply))
							return 1;
					}
				} else if (confine_one(app, o, k, 0, v, field, reply)) {
					return 1;
				}
				continue;
			}
			if (confine_options(app, v, field, depth + 1, reply))
				return 1;
		}
	} else if (json_is_array(o)) {
		for (size_t i = 0; i < json_array_size(o); i++) {
			snprintf(field, sizeof(field), "%.*s[%zu]", (int)sizeof(field) - 24, at, i);
			if (confine_options(app, json_array_get(o, i), field, depth + 1, reply))
				return 1;
		}
	}
	return 0;
}

void rwd__api_admin(rwd_call *call, rwd_reply *reply)
{
	rwd_app *app = call->app;
	const char *name = call->url + strlen("/v1/models/");
	const char *slash = strrchr(name, '/');
	size_t nlen = slash ? (size_t)(slash - name) : 0;
	int is_unload = slash && strcmp(slash, "/unload") == 0;
	char nm[72];
	if (!slash || !valid_name(name, nlen)) {
		rwd_reply_error(reply, 400, "invalid_request", "a model name is 1 to 64 of [A-Za-z0-9._-]", "name", 0, 0);
		return;
	}
	snprintf(nm, sizeof(nm), "%.*s", (int)nlen, name);
	if (!app->admin || !app->admin->started) {
		rwd_reply_error(reply, 503, "unavailable", "the server is starting or stopping", NULL, 0, 0);
		return;
	}
	json_t *body = NULL;
	if (call->body_len) {
		json_error_t je;
		body = json_loadb(call->body, call->body_len, JSON_REJECT_DUPLICATES, &je);
		if (!json_is_object(body)) {
			json_decref(body);
			rwd_reply_error(reply, 400, "invalid_json", body ? "the body must be a JSON object" : je.text,
				NULL, je.line, je.column);
			return;
		}
	}
	admin_op *op = calloc(1, sizeof(*op));
	if (!op) {
		json_decref(body);
		rwd_reply_error(reply, 503, "out_of_memory", "out of memory", NULL, 0, 0);
		return;
	}
	snprintf(op->name, sizeof(op->name), "%s", nm);
	if (is_unload) {
		rwd_served *s = slot_find(app, nm, NULL);
		int st = s ? atomic_load(&s->state) : RWD_SERVED_REMOVED;
		json_decref(body);
		if (st != RWD_SERVED_REMOVED && rwd_app_is_ensemble(s)) {
			free(op);
			rwd_reply_error(reply, 400, "invalid_request", "an ensemble is changed by a restart, not unloaded",
				"name", 0, 0);
			return;
		}
		if (st == RWD_SERVED_REMOVED) {
			free(op);
			rwd_reply_error(reply, 404, "not_found", "no model of that name (see GET /v1/models)", "name", 0, 0);
			return;
		}
		rwd_app_lock(app);
		rwd_served *ens = ensemble_using(app, nm);
		char msg[200];
		if (ens)
			snprintf(msg, sizeof(msg), "model '%s' is a member of the live ensemble '%s'; it cannot be unloaded "
				"while the ensemble serves", nm, ens->cfg->name);
		rwd_app_unlock(app);
		if (ens) {
			free(op);
			rwd_reply_error(reply, 409, "conflict", msg, "name", 0, 0);
			return;
		}
		op->type = OP_UNLOAD;
		enqueue(app, op);
		reply->status = 202;
		reply->json = json_pack("{ss ss}", "name", nm, "state", "draining");
		return;
	}
	/* load: {"path", "kind"?, "options"?} */
	const char *fail = NULL, *field = NULL;
	const json_t *jp = json_object_get(body, "path"), *jk = json_object_get(body, "kind"),
		*jo = json_object_get(body, "options");
	const char *k;
	json_t *v;
	json_object_foreach(body, k, v) {
		if (strcmp(k, "path") && strcmp(k, "kind") && strcmp(k, "options")) {
			fail = "unknown field (expected path, kind, options)";
			field = k;
		}
	}
	if (!fail && (!json_is_string(jp) || json_string_length(jp) == 0 || json_string_length(jp) > 4096)) {
		fail = "\"path\" (a model folder or file under admin.model_root) is required";
		field = "path";
	} else if (!fail && jk && !(json_is_string(jk) && rwd_model_kind(json_string_value(jk)))) {
		fail = "\"kind\" must name a model kind";
		field = "kind";
	} else if (!fail && jo && !json_is_object(jo)) {
		fail = "\"options\" must be an object";
		field = "options";
	}
	if (fail) {
		rwd_reply_error(reply, 400, "invalid_request", fail, field, 0, 0);
		goto bad;
	}
	if (!app->cfg->admin_model_root) {
		rwd_reply_error(reply, 403, "forbidden", "loading models through the API is off (set admin.model_root)",
			NULL, 0, 0);
		goto bad;
	}
	char *real = resolve_under_root(app, json_string_value(jp), reply);
	if (!real)
		goto bad;
	/* the options may name files too (CLIP's heads[].path, sql's database_root): the same root */
	json_t *opts = jo ? json_deep_copy(jo) : NULL;
	if (jo && (!opts || confine_options(app, opts, "options", 0, reply))) {
		if (!opts)
			rwd_reply_error(reply, 503, "out_of_memory", "out of memory", NULL, 0, 0);
		json_decref(opts);
		free(real);
		goto bad;
	}
	rwd_model_config *mc = calloc(1, sizeof(*mc));
	if (!mc) {
		json_decref(opts);
		free(real);
		rwd_reply_error(reply, 503, "out_of_memory", "out of memory", NULL, 0, 0);
		goto bad;
	}
	mc->name = strdup(nm);
	mc->path = real;
	mc->kind = jk ? strdup(json_string_value(jk)) : NULL;
	mc->options = opts;
	mc->batching = app->cfg->batching;
	mc->max_tokens = app->cfg->model_max_tokens;
	mc->max_image_pixels = app->cfg->model_max_image_pixels;
	rwd_served *s = slot_find(app, nm, NULL);
	if (s && atomic_load(&s->state) != RWD_SERVED_REMOVED && rwd_app_is_ensemble(s)) {
		rwd_config tmp;
		memset(&tmp, 0, sizeof(tmp));
		tmp.models = mc;
		tmp.n_models = 1;
		rwd_config_free(&tmp);
		rwd_reply_error(reply, 400, "invalid_request", "that name is an ensemble (change it by a restart)",
			"name", 0, 0);
		goto bad;
	}
	if (s && s->cfg) {
		/* a served name keeps its batching and limits */
		mc->batching = s->cfg->batching;
		mc->max_tokens = s->cfg->max_tokens;
		mc->max_image_pixels = s->cfg->max_image_pixels;
		mc->weights_in_memory = s->cfg->weights_in_memory;
	}
	op->type = OP_INSTALL;
	op->mc = mc;
	enqueue(app, op);
	json_decref(body);
	reply->status = 202;
	reply->json = json_pack("{ss ss ss}", "name", nm, "state", s && atomic_load(&s->state) == RWD_SERVED_READY ?
		"ready" : "loading", "path", real);
	return;
bad:
	json_decref(body);
	free(op);
}
