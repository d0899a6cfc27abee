/*
 * serve/metrics.h — a small Prometheus metrics registry.
 *
 * Families (counter, gauge, histogram) are registered once at start-up with
 * up to RWD_METRIC_MAX_LABELS label names; a series is one set of label
 * values, created on first use by rwd_metric_with() and kept until the
 * registry is freed. Updating a series is lock-free (atomics), so workers
 * and HTTP threads record without contention; registering and rendering take
 * the registry's mutex.
 *
 * Exposition follows the Prometheus text format 0.0.4: `# HELP`, `# TYPE`,
 * one line per series, histograms as cumulative `_bucket{le=...}`, `_sum`,
 * `_count`. Label values are escaped (backslash, quote, newline).
 *
 * Thread safety: every function may be called from any thread.
 */
#ifndef RWD_SERVE_METRICS_H
#define RWD_SERVE_METRICS_H

#include <stddef.h>

#define RWD_METRIC_MAX_LABELS 3
#define RWD_METRIC_MAX_BUCKETS 40

typedef struct rwd_metrics rwd_metrics;
typedef struct rwd_metric_family rwd_metric_family;
typedef struct rwd_metric rwd_metric;

typedef enum rwd_metric_type {
	RWD_METRIC_COUNTER,
	RWD_METRIC_GAUGE,
	RWD_METRIC_HISTOGRAM,
} rwd_metric_type;

rwd_metrics *rwd_metrics_new(void); /* NULL on OOM */
void rwd_metrics_free(rwd_metrics *m); /* accepts NULL */

/*
 * Register a family. `labels` is a NULL-terminated list of label names (or
 * NULL for none). Histograms take `nb` strictly increasing upper bounds
 * (+Inf is implicit). Returns the family (owned by the registry), or NULL on
 * OOM or bad arguments. Registering an existing name returns that family.
 */
rwd_metric_family *rwd_metrics_family(rwd_metrics *m, rwd_metric_type type, const char *name,
	const char *help, const char *const *labels, const double *bounds, size_t nb);

/*
 * The series of `fam` with the given label values (as many as the family
 * has label names), created if new. NULL on OOM or a NULL family, and every
 * update function below accepts NULL as a no-op, so callers need no checks.
 */
rwd_metric *rwd_metric_with(rwd_metric_family *fam, const char *const *values);
/* Shorthands for 0 and 1 labels. */
rwd_metric *rwd_metric_0(rwd_metric_family *fam);
rwd_metric *rwd_metric_1(rwd_metric_family *fam, const char *v);

void rwd_metric_add(rwd_metric *s, double v);     /* counter or gauge */
void rwd_metric_set(rwd_metric *s, double v);     /* gauge */
void rwd_metric_observe(rwd_metric *s, double v); /* histogram */
double rwd_metric_value(const rwd_metric *s);     /* counter/gauge value, histogram sum */
unsigned long long rwd_metric_count(const rwd_metric *s); /* histogram count */

/*
 * Cumulative count of a histogram's observations <= bounds[i]; i == nb
 * gives the total. For tests and the stats endpoint.
 */
unsigned long long rwd_metric_bucket(const rwd_metric *s, size_t i);

/* Geometric bounds: start, start*factor, ... (n values) into out. */
void rwd_metric_exp_bounds(double start, double factor, size_t n, double *out);

/* The whole registry as Prometheus text; malloc'd, *len set. NULL on OOM. */
char *rwd_metrics_render(rwd_metrics *m, size_t *len);

#endif
