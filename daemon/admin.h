/*
 * daemon/admin.h — model management while serving: SIGHUP configuration
 * reloads and the admin API (POST /v1/models/{name}/load|unload).
 *
 * One manager thread applies every change in order (reloads and admin
 * operations queue up behind each other). Installing a model (new, changed
 * on reload, or loaded through the API) loads it beside whatever serves
 * that name, runs a warm-up batch (one synthetic item through the model's
 * real batcher and workers), then swaps it in under the registry lock; the
 * old version is released once every request that pinned it has completed
 * (rwd_app_find_model pins, rwd_app_unpin releases; app.c), so no request is
 * dropped or failed by a reload. A model that fails to load or warm up
 * changes nothing: the old version keeps serving and the reason is logged
 * and shown in GET /v1/models. Removing a model (gone from the config, or
 * unloaded) makes it refuse new requests (503), finishes what it holds,
 * then frees it.
 *
 * A reload re-reads the configuration file (plus the --model flags); one
 * that fails validation changes nothing and the log says why. Only the
 * "models" section is applied; other fields (listen, http, auth, requests)
 * need a restart, which the log says when they differ.
 *
 * Threads: rwd_admin_reload and the routes may be called from any thread;
 * init/start/stop/free from main() only.
 */
#ifndef RWD_DAEMON_ADMIN_H
#define RWD_DAEMON_ADMIN_H

#include "app.h"
#include "call.h"
#include "core/error.h"

typedef struct rwd_admin rwd_admin;

/* Before HTTP starts: the registry lock and state; the admin key from
 * admin.key_file / $admin.key_env. model_args are the --model flags (borrowed
 * for the process's life), re-applied on every reload. */
int rwd_admin_init(rwd_app *app, const char **model_args, size_t n_model_args, rwd_error *err);

/* After the start-up loads: start the manager thread. */
int rwd_admin_start(rwd_app *app, rwd_error *err);

/* Is the manager running (start-up loads are over)? */
int rwd_admin_running(const rwd_app *app);

/*
 * For the systemd watchdog thread (sd.h's alive callback, user = the app):
 * 0 when a model has had work queued or running with no item finishing for
 * longer than the stall bound (max(30 s, 2 x $WATCHDOG_USEC)): its workers
 * are stuck, so no WATCHDOG=1 is sent and systemd restarts the service.
 */
int rwd_admin_alive(void *app);

/* Queue a configuration reload (SIGHUP). */
void rwd_admin_reload(rwd_app *app);

/* Stop the manager (finishing the operation under way), before the drain. */
void rwd_admin_stop(rwd_app *app);

/* After main() freed the slots' models and batchers: the rest. Accepts an app without admin. */
void rwd_admin_free(rwd_app *app);

/* Constant-time check of an Authorization header against the admin key (0 when none is set). */
int rwd_admin_authorized(const rwd_app *app, const char *authorization);

/* POST /v1/models/{name}/load|unload with its body read (api.c). */
void rwd__api_admin(rwd_call *call, rwd_reply *reply);

/* One synthetic item through the model's real batcher (start-up and install share it). */
int rwd__admin_warm_up(const rwd_model *m, rwd_batcher *b, rwd_error *err);

#endif
