/*
 * serve/batcher.h — per-model dynamic batching: a bounded queue, a batch
 * former and worker threads.
 *
 * A request's items are submitted together as one rwd_job. Items wait in a
 * queue with two priority levels (high before normal, FIFO within a level).
 * A worker forms a batch of up to max_batch_size items and, for token-cost
 * models, up to max_batch_tokens of summed item cost (a single item larger
 * than the budget still runs alone, so nothing can hang; admission rejects
 * such items beforehand). It waits at most max_delay_us after the oldest
 * queued item arrived before running a partial batch, and never waits while
 * draining. Items of one job may run in different batches.
 *
 * Deadlines: a job may carry a deadline; its items still queued when it
 * passes are finished with RWD_E_TIMEOUT without running (an idle worker
 * wakes up for the earliest deadline; a busy one expires them when it next
 * forms a batch). A job whose `gone` callback reports that the requester
 * went away has its queued items finished with RWD_E_CANCELLED.
 *
 * Each worker owns a scratch (exec.scratch_new) and a batch arena that is
 * reset after every batch, so input preparation memory never outlives its
 * batch. The arena is capped at arena_limit bytes (default
 * RWD_BATCHER_ARENA_LIMIT): an item whose preparation would pass the cap
 * fails alone with RWD_E_LIMIT, so a batch of hostile inputs (a small PNG
 * that decodes to 4096 x 4096 pixels) cannot grow a worker without bound.
 *
 * Failures: an item never finishes with status 0 unless run() scored it.
 * When run() returns non-zero, every item of the batch that has no status
 * yet gets that status, a message, and no present[] dimension; an item with
 * a status but no message gets one. When the last item of a job has a final status, the batcher calls
 * job->done(job) on the thread that finished it (a worker, or the caller of
 * rwd_batcher_drain()/rwd_batcher_free()), exactly once, outside its lock,
 * and never touches the job afterwards.
 *
 * Thread safety: submit/drain/stats may be called from any thread. Every
 * field the batcher shares between threads (its queue, counters, flags, and
 * the private fields of a submitted rwd_job) is read and written under the
 * batcher's one mutex; the exceptions are written in batcher.c beside the
 * struct. A job's gone() callback is called outside the lock, by at most one
 * thread at a time per job.
 */
#ifndef RWD_SERVE_BATCHER_H
#define RWD_SERVE_BATCHER_H

#include "core/arena.h"
#include "core/error.h"
#include "models/model.h"
#include "serve/metrics.h"

#include <stddef.h>
#include <stdint.h>

typedef struct rwd_batcher rwd_batcher;

enum { RWD_PRIO_NORMAL = 0, RWD_PRIO_HIGH = 1, RWD_PRIO_LEVELS = 2 };

/* How a batch is executed: rwd_model_run() for served models, a fake in tests. */
typedef struct rwd_batch_exec {
	void *ctx;
	/* optional; called once per worker at start. */
	int (*scratch_new)(void *ctx, void **scratch, rwd_error *err);
	void (*scratch_free)(void *ctx, void *scratch);
	/* Prepare + score n items; per-item failures in items[i]->status. */
	int (*run)(void *ctx, void *scratch, rwd_item *const *items, size_t n, rwd_arena *arena);
} rwd_batch_exec;

/* Optional metric series the batcher records into (NULL = not recorded). */
typedef struct rwd_batcher_metrics {
	rwd_metric *queue_depth;     /* gauge: items queued */
	rwd_metric *batch_size;      /* histogram: items per batch */
	rwd_metric *batch_tokens;    /* histogram: summed cost per batch */
	rwd_metric *queue_seconds;   /* histogram: per item, enqueue -> batch start */
	rwd_metric *compute_seconds; /* histogram: per batch, run() duration */
} rwd_batcher_metrics;

typedef struct rwd_batcher_params {
	const char *name;          /* for thread names */
	size_t max_batch_size;     /* items per batch (>= 1) */
	size_t max_batch_tokens;   /* summed cost per batch when token_cost (0 = no cap) */
	int token_cost;            /* item cost counts against max_batch_tokens */
	uint64_t max_delay_us;     /* wait after the oldest queued item; 0 = run at once */
	size_t max_queue_items;    /* queue capacity in items (>= 1) */
	int workers;               /* threads (>= 1) */
	size_t arena_block;        /* batch arena block size (0 = default) */
	size_t arena_limit;        /* batch arena cap in bytes, per worker (0 = none;
	                              default RWD_BATCHER_ARENA_LIMIT) */
	rwd_batcher_metrics metrics;
} rwd_batcher_params;

/*
 * Default batch arena cap per worker: 512 MiB. It holds a batch's prepared
 * inputs: decoded RGB images (3 bytes per pixel, at most 48 MiB each at the
 * default max_image_pixels of 4096 x 4096, two per item for source_image
 * kinds), token ids and the kinds' small per-item records. A realistic batch
 * (32 images of 1024 x 1024: 96 MiB) fits several times; five items with
 * two maximal images each fill it, and the sixth fails with RWD_E_LIMIT.
 * Worst case per model: workers x arena_limit.
 */
#define RWD_BATCHER_ARENA_LIMIT ((size_t)512 << 20)

rwd_batcher_params rwd_batcher_default_params(void);

/*
 * One request's work. The caller owns the memory (typically the request's
 * arena) and must keep it alive until done() has been called. Fill the
 * public fields, then submit.
 */
typedef struct rwd_job rwd_job;
struct rwd_job {
	rwd_item *items;           /* n items, cost set, status 0 */
	size_t n;
	int priority;              /* RWD_PRIO_NORMAL or RWD_PRIO_HIGH */
	uint64_t deadline_ns;      /* rwd_now_ns() clock; 0 = none */
	void (*done)(rwd_job *job); /* required */
	int (*gone)(rwd_job *job); /* optional: non-zero when the requester went away */
	void *user;
	/* Filled by the batcher (under its mutex), valid in done(): */
	uint64_t enqueue_ns;       /* set once by submit, read-only afterwards */
	uint64_t queue_ns_max;     /* longest an item of this job waited */
	uint64_t compute_ns_max;   /* longest batch an item of this job ran in */
	size_t batches;            /* batches the job's items ran in */
	/* private: read and written only under the batcher's mutex */
	size_t remaining_;         /* items without a final status */
	int gone_;                 /* gone() reported the requester left */
	int probing_;              /* a worker is calling gone() right now */
	uint64_t mark_;            /* the last batch that counted this job */
	size_t slot_;              /* that batch's probe slot + 1 (0 = none) */
	rwd_job *next_;            /* the finished-jobs list */
};

/*
 * Create and start the workers. exec is copied. Returns 0, or an error
 * (e.g. a worker's scratch could not be created) with nothing left running.
 */
int rwd_batcher_new(const rwd_batcher_params *p, const rwd_batch_exec *exec,
	rwd_batcher **out, rwd_error *err);

/*
 * Queue all of job's items, or none: RWD_E_FULL when they do not fit in the
 * queue now (retry later), RWD_E_STATE when draining, RWD_E_INVALID for an
 * empty job or one larger than the queue could ever hold. On success the
 * job belongs to the batcher until done() is called (which may happen
 * before this returns, on another thread).
 */
int rwd_batcher_submit(rwd_batcher *b, rwd_job *job);

/*
 * Stop accepting work, let workers finish every queued and running item
 * (without waiting for batches to fill), and wait up to timeout_ns. Items
 * still queued at the bound are finished with RWD_E_STATE so every job gets
 * its done(). Returns 0 when everything ran, RWD_E_TIMEOUT when the bound cut
 * it short. Running batches are always waited for (a forward pass cannot be
 * interrupted). Idempotent.
 */
int rwd_batcher_drain(rwd_batcher *b, uint64_t timeout_ns);

typedef struct rwd_batcher_stats {
	size_t queued;        /* items waiting */
	size_t running;       /* items in batches being run */
	uint64_t batches;     /* batches run so far */
	uint64_t items_run;   /* items that went through run() */
	uint64_t expired;     /* items finished with RWD_E_TIMEOUT */
	uint64_t cancelled;   /* items finished with RWD_E_CANCELLED */
	int draining;
} rwd_batcher_stats;

void rwd_batcher_get_stats(rwd_batcher *b, rwd_batcher_stats *st);
const rwd_batcher_params *rwd_batcher_get_params(const rwd_batcher *b);

/* Drain (with no bound beyond running batches), join the workers, free. Accepts NULL. */
void rwd_batcher_free(rwd_batcher *b);

/* An exec that runs rwd_model_run() on `model` with rwd_model_scratch_new(). */
rwd_batch_exec rwd_batcher_model_exec(const rwd_model *model);

#endif
