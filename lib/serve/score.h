/*
 * serve/score.h — the scoring of one request, as one pipeline, for every
 * endpoint (POST /v1/rewards and the drop-in routes alike).
 *
 *   validated items (serve/request.h)
 *     -> the request's "reward" override and its items' "group"/"group_size"
 *     -> submission to the model's batcher, or fan-out to every ensemble
 *        member's batcher and the join (reward/reward.h rwd_ensemble_combine)
 *     -> per item: a non-finite raw score fails the item (never a reward);
 *        transforms and aggregation into `reward` (the reward configuration)
 *     -> GRPO advantages: within the request, or across requests through a
 *        group table (reward/group.h)
 *     -> statistics (reward/stats.h series, serve/metrics.h histograms)
 *     -> one completion callback.
 *
 * The caller resolves and pins what the request runs on (the model, its
 * batcher, an ensemble's member batchers) and keeps them, the request and
 * the arena alive until done() has returned; the pipeline owns no model
 * and frees nothing: its memory comes from the arena.
 *
 * Threads: rwd_score_new/submit on the caller's thread; done() runs exactly
 * once, on the thread that finished the last piece of work (a batcher
 * worker, the group table's thread, a drain caller, or the submitting
 * thread itself), and the pipeline never touches anything after it. The
 * result accessors may be called from done() on, by one thread.
 */
#ifndef RWD_SERVE_SCORE_H
#define RWD_SERVE_SCORE_H

#include "core/arena.h"
#include "core/error.h"
#include "models/model.h"
#include "reward/group.h"
#include "reward/reward.h"
#include "reward/stats.h"
#include "serve/batcher.h"
#include "serve/metrics.h"
#include "serve/request.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rwd_score rwd_score;

/* Where a pipeline records statistics; every pointer is optional (NULL: not recorded). */
typedef struct rwd_score_sinks {
	rwd_reward_series *dim[RWD_MAX_DIMS];  /* per dimension index of the model */
	rwd_reward_series *reward, *adv;
	rwd_metric *h_dim[RWD_MAX_DIMS], *h_reward, *h_adv;
	rwd_metric *groups_open;              /* gauge: the group table's open groups */
} rwd_score_sinks;

/* What the request runs on, resolved and pinned by the caller (borrowed). */
typedef struct rwd_score_target {
	const char *name;                   /* the served name: cross-request group keys, messages */
	const rwd_model *model;             /* the model the items were validated against (dimensions) */
	rwd_batcher *batcher;               /* a single model's batcher; unused for an ensemble */
	const rwd_reward_config *reward;    /* required (rwd_reward_config_parse(NULL, ...) is the default) */
	const rwd_ensemble_config *ensemble;/* NULL or no members: a single model */
	/* an ensemble: each member's batcher, in ensemble->members order (the pinned versions) */
	rwd_batcher *members[RWD_ENSEMBLE_MAX_MEMBERS];
	const rwd_score_sinks *sinks;       /* NULL: no statistics */
} rwd_score_target;

typedef struct rwd_score_params {
	rwd_group_table *groups;      /* cross-request groups; NULL: such a group is refused (RWD_E_STATE) */
	uint64_t start_ns;            /* the request's arrival (rwd_now_ns): its deadline's base; 0 = now */
	void (*done)(rwd_score *sc, void *user); /* required */
	int (*gone)(void *user);      /* optional: non-zero when the requester went away */
	void *user;
} rwd_score_params;

/* No group table, start now, no callbacks (done must be set). */
rwd_score_params rwd_score_default_params(void);

/*
 * Set up the pipeline of req (parsed and validated against t->model) in
 * arena: the request's "reward" override (req->root) and its items'
 * "group" / "group_size". p and t are copied. Returns 0 with *out set, or
 * RWD_E_INVALID with err naming the field ("items[2].group_size",
 * "reward.mode"), RWD_E_NOMEM.
 */
int rwd_score_new(const rwd_score_params *p, const rwd_score_target *t, rwd_request *req,
	rwd_arena *arena, rwd_score **out, rwd_error *err);

/*
 * Queue the items (a single model's batcher, or every ensemble member's).
 * Returns 0: done() follows exactly once, maybe before this returns. Else
 * nothing was queued and no done() comes: RWD_E_FULL (retry later),
 * RWD_E_STATE (draining), RWD_E_INVALID (more items than the queue can
 * ever hold). An ensemble whose members refuse only in part is queued: the
 * refused members' errors fail the items. A request with no items calls
 * done() at once.
 */
int rwd_score_submit(rwd_score *sc);

/* One cross-request or in-request group, as answered. */
typedef struct rwd_score_group {
	const json_t *id;       /* the items' "group" (borrowed from the request) */
	size_t size;            /* declared group_size, or the count in this request */
	size_t arrived, counted;/* items arrived (all requests), of them with a reward */
	int complete;           /* 0: answered at its deadline, on drain, or refused */
	int failed;             /* the table refused it: RWD_E_FULL (too many open), RWD_E_STATE */
	double mean, std;       /* valid when counted > 0 and !failed */
	int zero_std;
} rwd_score_group;

/* One item's outcome (valid from done() on; pointers into the pipeline). */
typedef struct rwd_score_result {
	const rwd_item *item;      /* status, err, present[], raw scores[] (an ensemble's combined) */
	const double *values;      /* [model dims]: transformed scores, where item->present */
	int has_reward;            /* 0: no reward (failed item, or no term present) */
	double reward;
	const rwd_score_group *group; /* NULL: the item is in no group */
	double advantage;          /* NaN when none */
} rwd_score_result;

size_t rwd_score_n_items(const rwd_score *sc);
void rwd_score_result_of(const rwd_score *sc, size_t i, rwd_score_result *out);

/* Members of an ensemble (0 for a single model), and member k's item i (raw scores). */
size_t rwd_score_n_members(const rwd_score *sc);
const rwd_item *rwd_score_member_item(const rwd_score *sc, size_t k, size_t i);
/* The spread (population std) of the members' values of dimension d of item i. */
double rwd_score_spread(const rwd_score *sc, size_t i, size_t d);

typedef struct rwd_score_timing {
	uint64_t queue_ns_max;    /* longest an item waited (any member) */
	uint64_t compute_ns_max;  /* longest batch an item ran in */
	size_t batches;           /* batches the items ran in (summed over members) */
} rwd_score_timing;

void rwd_score_get_timing(const rwd_score *sc, rwd_score_timing *out);

#endif
