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
#include "core/arena.h"
#include "models/model.h"
#include "serve/batcher.h"
#include "serve/metrics.h"

#include <pthread.h>
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
	struct rwd_rl_served *rl;   /* api_rl.c (through the app's hooks): reward config, statistics */
	/*
	 * daemon/admin.c. app->models[i] is a slot (one per name); its model and
	 * batcher mirror `cur`, the reference-counted version now serving. A
	 * request pins the version it resolved (rwd_app_find_model) until it
	 * completes, so a reload's swap never changes the model under it.
	 * Written under the registry lock (rwd_app_lock).
	 */
	struct rwd_served *cur;     /* slot: the serving version (NULL until adopted) */
	atomic_long refs;           /* version: its slot (1 while serving) + requests pinning it;
	                             * freed by the drop to 0 (rwd_app_version_unref) */
	char reason[256];           /* slot: why it failed / the last reload failed */
	const char *pending;        /* slot: "loading"/"warming" while a new version loads, or NULL */
} rwd_served;

typedef struct rwd_app rwd_app;

/*
 * What the RL layer (api_rl.c) attaches to versions, called by the registry
 * through hooks that main() sets, so the registry depends on nothing above it.
 */
typedef struct rwd_app_hooks {
	/* a version (or an ensemble slot) is loaded: check and attach its RL state */
	int (*model_ready)(rwd_app *app, struct rwd_served *v, rwd_error *err);
	/* a version is being freed: release its RL state */
	void (*version_free)(struct rwd_served *v);
} rwd_app_hooks;

struct rwd_app {
	rwd_config *cfg;
	rwd_metrics *metrics;
	rwd_served *models;
	_Atomic size_t n_models;    /* grows while HTTP threads read it (admin install) */
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
	rwd_metric *budget_used;    /* limits.memory_budget_bytes in use (mem.c), sampled like RSS */
	struct rwd_rl *rl;          /* api_rl.c: group table, reward statistics */
	struct rwd_admin *admin;    /* daemon/admin.c: reload, admin API (NULL before it starts) */
	char *admin_key;            /* the admin API's Bearer key; NULL = admin API off */
	size_t admin_key_len;
	int listen_fd;              /* socket activation: the passed listener, or -1 (main.c, http.c) */
	rwd_app_hooks hooks;
	/* the registry lock: slots' cur/model/batcher/cfg/state/pending (rwd_app_lock) */
	pthread_mutex_t registry_mu;
	int registry_ready;
};

/* Slots in app->models now (an acquire load: admin loads append slots at run time). */
size_t rwd_app_n_models(const rwd_app *app);
/* The slot named `name` (any state), or NULL. */
rwd_served *rwd_app_slot(rwd_app *app, const char *name);

/* The registry lock (a no-op before rwd_app_registry_init). */
int rwd_app_registry_init(rwd_app *app);
void rwd_app_registry_free(rwd_app *app);
void rwd_app_lock(rwd_app *app);
void rwd_app_unlock(rwd_app *app);

/* Non-zero when s is an ensemble (it has no model or batcher of its own). */
int rwd_app_is_ensemble(const rwd_served *s);

/* The version serving a READY slot, created from the slot's model on first use (lock held); NULL for ensembles. */
rwd_served *rwd_app_current(rwd_app *app, rwd_served *slot);
/* Drop one reference to a version; the last one frees it (any thread but its own workers). */
void rwd_app_version_unref(rwd_app *app, rwd_served *v);

/* The versions one request pinned (its arena holds the list). */
typedef struct rwd_pin rwd_pin;
typedef struct rwd_pins {
	rwd_arena *arena;
	rwd_pin *head;
} rwd_pins;

/* What rwd_app_find_model() resolves against: the app, and the pins of the request. */
typedef struct rwd_app_finder {
	rwd_app *app;
	rwd_pins *pins;             /* NULL: nothing pinned (a version may then change under the caller) */
} rwd_app_finder;

/*
 * Find a served model by name (NULL name: the only one), for request.h;
 * ctx is an rwd_app_finder. The serving version is pinned to finder->pins
 * (an ensemble pins each member's), *user is that version (an ensemble: its
 * slot), and the model returned is the pinned one (an ensemble: its first
 * member's) until rwd_app_unpin.
 */
const rwd_model *rwd_app_find_model(void *finder, const char *name, void **user, rwd_error *err);

/* Release every pin (when the request completes, after its last read of them). Any thread. */
void rwd_app_unpin(rwd_app *app, rwd_pins *pins);
/* The pinned version named `name`, or NULL. */
struct rwd_served *rwd_app_pinned(const rwd_pins *pins, const char *name);

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
