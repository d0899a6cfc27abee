/*
 * daemon/api_rl.h — the RL side of POST /v1/rewards (README.md, Rewards for RL):
 * the configured reward (transforms + aggregation, request overrides), GRPO
 * group advantages (within a request, and across requests through the
 * group table), ensembles fanned out to their members' batchers, and the
 * live statistics behind GET /v1/stats and the rewardd_reward_* histograms.
 *
 * Threads: rwd__rl_body/submit/item_json run on the HTTP thread of the
 * call; rwd__rl_scored on the thread that finished the scoring (a worker);
 * group answers on the group table's thread. The call is resumed exactly
 * once, when the scores and every group the request waits for are done.
 */
#ifndef RWD_DAEMON_API_RL_H
#define RWD_DAEMON_API_RL_H

#include "api.h"
#include "serve/batcher.h"
#include "serve/request.h"

typedef struct rwd_rl_req rwd_rl_req;

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

/* A model (or ensemble) is loaded: check its reward config against its dimensions, set up its series. */
int rwd__rl_model_ready(rwd_app *app, rwd_served *s, rwd_error *err);

/* Non-zero when s is an ensemble (it has no batcher of its own). */
int rwd__rl_is_ensemble(const rwd_served *s);

/*
 * The request parsed: read its "reward" override and the items' "group" /
 * "group_size". Returns 0 with *out set, or fills reply (400 naming the
 * field) and returns non-zero.
 */
int rwd__rl_body(rwd_call *call, rwd_served *s, rwd_request *req, rwd_job *job, rwd_rl_req **out,
	rwd_reply *reply);

/*
 * Queue the request's items: an ensemble submits them to each member's
 * batcher; a model to its own. Returns 0 (rwd__rl_scored will follow) or
 * the batcher's refusal (RWD_E_FULL, RWD_E_STATE, RWD_E_INVALID).
 */
int rwd__rl_submit(rwd_rl_req *q);

/* The scores are in (the request's job is done): rewards, statistics, groups; resumes the call. */
void rwd__rl_scored(rwd_rl_req *q);

/* Fill an item's result object o (scored item i): reward, scores, advantage, group, members. */
void rwd__rl_item_json(rwd_rl_req *q, size_t i, json_t *o);

/* GET /v1/stats. */
void rwd__api_stats(rwd_call *call, rwd_reply *reply);

#endif
