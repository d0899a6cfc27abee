/*
 * daemon/app.h — the state one rewardd process serves from: configuration,
 * served models with their batchers, metrics, API keys, lifecycle flags.
 *
 * Lifecycle: main() creates the app with every configured model in state
 * LOADING, starts HTTP (so /healthz answers and /readyz says 503 while
 * loading), loads the models one by one (each becomes READY by a release
 * store of its state; readers acquire it before touching model/batcher),
 * and on SIGTERM/SIGINT sets `draining` and drains (see main.c).
 */
#ifndef RWD_DAEMON_APP_H
#define RWD_DAEMON_APP_H

#include "config.h"
#include "models/model.h"
#include "serve/batcher.h"
#include "serve/metrics.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* WARMING..REMOVED: models loaded, reloaded or unloaded while running (daemon/admin.c). */
enum rwd_served_state { RWD_SERVED_LOADING, RWD_SERVED_READY, RWD_SERVED_FAILED,
	RWD_SERVED_WARMING, RWD_SERVED_DRAINING, RWD_SERVED_REMOVED };

/* Slots app->models[] may grow by at run time (admin loads of new names). */
#define RWD_APP_SPARE_MODELS 64

typedef struct rwd_served {
	const rwd_model_config *cfg;
	rwd_model *model;           /* valid once state is READY */
	rwd_batcher *batcher;       /* valid once state is READY */
	atomic_int state;
	/* per-model series */
	rwd_metric *request_seconds;
	rwd_metric *queue_depth, *batch_size, *batch_tokens, *queue_seconds, *compute_seconds;
	rwd_metric *weight_bytes;
	rwd_metric *loaded;
	struct rwd_rl_served *rl;   /* api_rl.c: reward config, statistics, ensemble members */
	/*
	 * daemon/admin.c. app->models[i] is a slot (one per name); its model and
	 * batcher mirror `cur`, the reference-counted version now serving. A
	 * request pins the version it resolved (rwd_app_find_model) until it
	 * completes, so a reload's swap never changes the model under it.
	 */
	struct rwd_served *cur;     /* slot: the serving version (NULL until adopted) */
	atomic_long refs;           /* version: its slot (1 while serving) + requests pinning it;
	                             * freed by the drop to 0 (rwd__admin_version_unref) */
	char reason[256];           /* slot: why it failed / the last reload failed */
	const char *pending;        /* slot: "loading"/"warming" while a new version loads, or NULL */
} rwd_served;

typedef struct rwd_app {
	rwd_config *cfg;
	rwd_metrics *metrics;
	rwd_served *models;
	size_t n_models;
	atomic_int draining;
	atomic_int loading;         /* models still loading */
	atomic_long inflight;       /* scoring requests accepted, not yet answered */
	char **keys;                /* API keys; none = auth off */
	size_t *key_lens;
	size_t n_keys;
	uint64_t start_ns;
	double start_unix;
	int blas_threads;
	char blas_desc[256];
	/* metric families with per-request labels */
	rwd_metric_family *f_requests;   /* {model, code} */
	rwd_metric_family *f_items;      /* {model, outcome} */
	rwd_metric_family *f_http;       /* {route, code} */
	rwd_metric *rss_bytes, *threads, *ready, *connections, *inflight_gauge;
	struct rwd_rl *rl;          /* api_rl.c: group table, reward statistics */
	struct rwd_admin *admin;    /* daemon/admin.c: reload, admin API (NULL before it starts) */
	char *admin_key;            /* the admin API's Bearer key; NULL = admin API off */
	size_t admin_key_len;
	int listen_fd;              /* socket activation: the passed listener, or -1 (main.c, http.c) */
} rwd_app;

/* Slots in app->models now (an acquire load: admin loads append slots at run time). */
size_t rwd_app_n_models(const rwd_app *app);
/* The slot named `name` (any state), or NULL. */
rwd_served *rwd_app_slot(rwd_app *app, const char *name);

/* Find a served model by name (NULL name: the only one). For request.h. */
const rwd_model *rwd_app_find_model(void *app, const char *name, void **user, rwd_error *err);

/*
 * Release what rwd_app_find_model() pinned for `call` (a struct rwd_call *):
 * api.c calls it when a request completes. Any thread.
 */
void rwd_app_unpin(void *call);
/* The version named `name` that `call` pinned, or NULL. */
struct rwd_served *rwd_app_pinned(void *call, const char *name);
/* The call whose body is being parsed on this thread (pins go to it); NULL after. */
void rwd_app_pin_to(void *call);

/* Constant-time check of an "Authorization" header value against the keys. */
int rwd_app_authorized(const rwd_app *app, const char *authorization);

/*
 * The batcher settings of a served model: its configured batching, the
 * model's token cost, and the slot's metrics. Used at start-up and by
 * reloads, so both build batchers the same way.
 */
rwd_batcher_params rwd_app_batcher_params(const rwd_model_config *mc, const rwd_served *s,
	const rwd_model *model);

/* Refresh process gauges (RSS, threads) before a scrape. */
void rwd_app_update_process_metrics(rwd_app *app);

#endif
