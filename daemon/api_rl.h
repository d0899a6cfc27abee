/*
 * daemon/api_rl.h — the RL state of the served models (README.md, Rewards for
 * RL): each model's reward configuration (transforms + aggregation) checked
 * against its dimensions, its statistics series and histograms, ensembles'
 * members, the process's GRPO group table; and GET /v1/stats. The scoring
 * itself is lib/serve/score.h's pipeline: rwd__rl_target() hands it what a
 * request runs on.
 *
 * Threads: init/free/load from main() or the model manager; target and
 * stats on HTTP threads.
 */
#ifndef RWD_DAEMON_API_RL_H
#define RWD_DAEMON_API_RL_H

#include "call.h"
#include "serve/score.h"

/* App-wide state (after setup of the metrics registry); 0 or RWD_E_NOMEM. */
int rwd__rl_init(rwd_app *app);
/* Answer every waiting group now (drain). */
void rwd__rl_drain(rwd_app *app);
/* Free everything rl (after the batchers are freed). Accepts a never-initialised app. */
void rwd__rl_free(rwd_app *app);

/*
 * Make an ensemble entry ready: its members (listed before it, config.c
 * checks) must be READY with the same dimensions. app NULL (config check):
 * nothing to do. err names "models.<name>.members[i]".
 */
int rwd__rl_load_ensemble(rwd_app *app, rwd_served *s, rwd_error *err);

/* A model (or ensemble) is loaded: check its reward config against its dimensions, set up its
 * series (app->hooks.model_ready; app NULL: the check only). */
int rwd__rl_model_ready(rwd_app *app, rwd_served *s, rwd_error *err);

/* A version is freed: its RL state goes with it (app->hooks.version_free). */
void rwd__rl_version_free(rwd_served *v);

/*
 * The pipeline target of a request on served model s (a version, or an
 * ensemble's slot) whose items were validated against `model`: its batcher
 * or its members' pinned batchers, its reward configuration, its statistics
 * sinks; p->groups gets the group table. 0, or RWD_E_STATE with err set
 * (a member not pinned by this call).
 */
int rwd__rl_target(rwd_call *call, rwd_served *s, const rwd_model *model, rwd_score_target *t,
	rwd_score_params *p, rwd_error *err);

/* Non-zero when s's reward configuration transforms some dimension (replies add raw_scores). */
int rwd__rl_has_transforms(const rwd_served *s);

/* GET /v1/stats. */
void rwd__api_stats(rwd_call *call, rwd_reply *reply);

#endif
