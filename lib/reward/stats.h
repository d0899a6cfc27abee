/*
 * reward/stats.h — live reward statistics per (model, dimension), what a
 * dashboard plots to see reward drift and reward hacking during training.
 *
 * A series keeps: count, mean and std (Welford's online update; std is the
 * population std of everything seen), min, max, a fixed-bucket histogram
 * (the same bounds for every series; cumulative counts like Prometheus) and
 * a recent window (ring buffer of the last `window` values, oldest first in
 * the JSON, with their mean and std).
 *
 * Thread safety: every function may be called from any thread; each series
 * has its own lock (an update is a few arithmetic operations under it).
 */
#ifndef RWD_REWARD_STATS_H
#define RWD_REWARD_STATS_H

#include <jansson.h>
#include <stddef.h>

typedef struct rwd_reward_stats rwd_reward_stats;
typedef struct rwd_reward_series rwd_reward_series;

#define RWD_STATS_MAX_BUCKETS 40
#define RWD_STATS_MAX_WINDOW 65536

/* The default histogram bounds (nb = *n); static storage. */
const double *rwd_reward_stats_default_bounds(size_t *n);

/*
 * bounds: nb strictly increasing upper bounds (<= 40; +Inf implicit);
 * window: recent values kept per series (1..65536). NULL on bad arguments
 * or OOM.
 */
rwd_reward_stats *rwd_reward_stats_new(const double *bounds, size_t nb, size_t window);
void rwd_reward_stats_free(rwd_reward_stats *s); /* accepts NULL */

/* The series of (model, dim), created on first use. NULL on OOM. */
rwd_reward_series *rwd_reward_stats_series(rwd_reward_stats *s, const char *model, const char *dim);

/* Record one value (non-finite values are ignored). */
void rwd_reward_series_add(rwd_reward_series *se, double v);

/*
 * Snapshot as JSON (new reference):
 * {"window": N, "buckets": [b...],
 *  "models": {model: {dim: {"count", "mean", "std", "min", "max",
 *     "histogram": {"le": [b..., "+Inf"], "counts": [cumulative...]},
 *     "recent": {"n", "mean", "std", "values": [...]}}}}}
 * `model` NULL: all models; else only that one.
 */
json_t *rwd_reward_stats_json(rwd_reward_stats *s, const char *model);

#endif
