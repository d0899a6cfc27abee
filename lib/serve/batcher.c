/*
 * serve/batcher.c — see batcher.h.
 *
 * Locking: one mutex (b->mu) guards the queue and node pool, the counters
 * (queued, running, finishing, st), next_deadline, draining/stopping,
 * batch_seq and every private field of a submitted job (remaining_, gone_,
 * probing_, mark_, slot_, next_) as well as the job's batcher-filled public
 * fields (queue_ns_max, compute_ns_max, batches). Outside the lock:
 *   - b->p and b->exec are written once in rwd_batcher_new, before any
 *     worker starts, and only read afterwards;
 *   - job->enqueue_ns is written by submit under the lock before the job's
 *     nodes are queued, and never again: a worker that picked a node under
 *     the lock may read it without the lock;
 *   - a picked item (rwd_item) belongs to the worker that picked it until
 *     that worker finishes it under the lock; run() writes it unlocked;
 *   - a worker's own arrays, scratch and arena are its alone;
 *   - job->gone() is called unlocked, only by the worker that set the job's
 *     probing_ flag (under the lock), so never by two threads at once; its
 *     answer is published to gone_ under the lock when that batch finishes.
 */
#include "serve/batcher.h"

#include "core/thread.h"

#include <stdint.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct qnode {
	struct qnode *prev, *next;
	rwd_job *job;
	size_t idx;
} qnode;

typedef struct qlist {
	qnode *head, *tail;
} qlist;

typedef struct worker {
	rwd_batcher *b;
	pthread_t thread;
	int started;
	void *scratch;
	rwd_arena *arena;
	rwd_item **batch;   /* [max_batch_size] picked items */
	rwd_job **jobs;     /* [max_batch_size] their jobs */
	rwd_item **run;     /* [max_batch_size] the ones actually run */
	uint8_t *ran;       /* [max_batch_size] 1 when batch[i] went to run() */
	size_t *probe_of;   /* [max_batch_size] slot + 1 in probe[] of batch[i]'s job, 0 = none */
	rwd_job **probe;    /* [max_batch_size] jobs whose gone() this worker asks */
	uint8_t *probe_gone; /* [max_batch_size] their answers */
	size_t n_probe;
	int index;
} worker;

struct rwd_batcher {
	rwd_batcher_params p;
	rwd_batch_exec exec;
	pthread_mutex_t mu;
	pthread_cond_t work_cv;  /* workers: new work, drain, stop */
	pthread_cond_t idle_cv;  /* drainers: queue and running reached 0 */
	qnode *pool;
	qnode *free_nodes;
	qlist q[RWD_PRIO_LEVELS];
	size_t queued, running;
	size_t finishing;        /* threads inside done() callbacks */
	uint64_t next_deadline;  /* earliest queued deadline (0 = none); a lower bound */
	int draining, stopping;
	uint64_t batch_seq;      /* batches picked so far: the id of the next (job->mark_) */
	int mu_ok, work_cv_ok, idle_cv_ok; /* what rwd_batcher_new initialised */
	worker *workers;
	rwd_batcher_stats st;
	char name[32];
};

rwd_batcher_params rwd_batcher_default_params(void)
{
	rwd_batcher_params p = {0};
	p.name = "batcher";
	p.max_batch_size = 32;
	p.max_batch_tokens = 16384;
	p.max_delay_us = 0; /* continuous batching; see daemon/config.c */
	p.max_queue_items = 1024;
	p.workers = 1;
	p.arena_limit = RWD_BATCHER_ARENA_LIMIT;
	return p;
}

static void list_push(qlist *l, qnode *n)
{
	n->next = NULL;
	n->prev = l->tail;
	if (l->tail)
		l->tail->next = n;
	else
		l->head = n;
	l->tail = n;
}

static void list_remove(qlist *l, qnode *n)
{
	if (n->prev)
		n->prev->next = n->next;
	else
		l->head = n->next;
	if (n->next)
		n->next->prev = n->prev;
	else
		l->tail = n->prev;
	n->prev = n->next = NULL;
}

static void set_depth(rwd_batcher *b)
{
	rwd_metric_set(b->p.metrics.queue_depth, (double)b->queued);
}

/*
 * Give item `idx` of `job` its final status (under mu). When it is the
 * job's last, the job goes on *done for done() outside the lock.
 */
static void finish_item_locked(rwd_job *job, size_t idx, int status, rwd_job **done)
{
	rwd_item *it = &job->items[idx];
	if (status && !it->status) {
		it->status = status;
		if (status == RWD_E_TIMEOUT)
			rwd_errorf(&it->err, status, "the request's deadline passed while the item was queued");
		else if (status == RWD_E_CANCELLED)
			rwd_errorf(&it->err, status, "the client went away");
		else if (status == RWD_E_STATE)
			rwd_errorf(&it->err, status, "the server is shutting down");
	}
	if (--job->remaining_ == 0) {
		job->next_ = *done;
		*done = job;
	}
}

/* Remove a queued node and finish its item with `status`. */
static void drop_node_locked(rwd_batcher *b, int prio, qnode *n, int status, rwd_job **done)
{
	list_remove(&b->q[prio], n);
	rwd_job *job = n->job;
	size_t idx = n->idx;
	n->next = b->free_nodes;
	b->free_nodes = n;
	b->queued--;
	finish_item_locked(job, idx, status, done);
}

/* Expire queued items whose deadline passed; recompute next_deadline. */
static void expire_locked(rwd_batcher *b, uint64_t now, rwd_job **done)
{
	if (!b->next_deadline || now < b->next_deadline)
		return;
	uint64_t next = 0;
	for (int pr = 0; pr < RWD_PRIO_LEVELS; pr++) {
		for (qnode *n = b->q[pr].head, *nx; n; n = nx) {
			nx = n->next;
			uint64_t d = n->job->deadline_ns;
			if (!d)
				continue;
			if (d <= now) {
				drop_node_locked(b, pr, n, RWD_E_TIMEOUT, done);
				b->st.expired++;
			} else if (!next || d < next) {
				next = d;
			}
		}
	}
	b->next_deadline = next;
	set_depth(b);
}

static void call_done(rwd_job *done)
{
	while (done) {
		rwd_job *nx = done->next_;
		done->done(done);
		done = nx;
	}
}

static int idle_locked(const rwd_batcher *b)
{
	return b->queued == 0 && b->running == 0 && b->finishing == 0;
}

/*
 * Call done() for the finished jobs outside the lock (entered and left
 * holding it). `finishing` keeps a drain from returning before every done()
 * has returned.
 */
static void finish_jobs_locked(rwd_batcher *b, rwd_job *done)
{
	if (done) {
		b->finishing++;
		pthread_mutex_unlock(&b->mu);
		call_done(done);
		pthread_mutex_lock(&b->mu);
		b->finishing--;
	}
	if (b->draining && idle_locked(b))
		pthread_cond_broadcast(&b->idle_cv);
}

/*
 * Walk the queue in pick order (high first, FIFO) and count what the next
 * batch would hold. Returns 1 when the batch is complete: max_batch_size
 * reached or the next item would pass the token budget.
 */
static int batch_complete_locked(const rwd_batcher *b)
{
	size_t k = 0, tokens = 0;
	for (int pr = RWD_PRIO_LEVELS - 1; pr >= 0; pr--) {
		for (const qnode *n = b->q[pr].head; n; n = n->next) {
			size_t c = n->job->items[n->idx].cost;
			if (k == b->p.max_batch_size)
				return 1;
			if (b->p.token_cost && b->p.max_batch_tokens && k > 0 &&
				tokens + c > b->p.max_batch_tokens)
				return 1;
			k++;
			tokens += c;
		}
	}
	return k == b->p.max_batch_size;
}

/*
 * Account item `k` of the batch being picked: count the batch once per job
 * (job->batches), decide whether it runs (a job already known gone does
 * not), and claim the job's gone() probe for this worker if nobody else is
 * asking. O(1) per item: mark_ says whether this batch has seen the job.
 */
static void account_locked(rwd_batcher *b, worker *w, size_t k, rwd_job *job)
{
	if (job->mark_ != b->batch_seq) {
		job->mark_ = b->batch_seq;
		job->batches++;
		job->slot_ = 0;
		if (job->gone && !job->gone_ && !job->probing_) {
			job->probing_ = 1;
			w->probe[w->n_probe++] = job;
			job->slot_ = w->n_probe;
		}
	}
	w->ran[k] = !job->gone_;
	w->probe_of[k] = job->slot_;
}

/* Take the next batch out of the queue into w->batch/jobs; returns its size. */
static size_t pick_locked(rwd_batcher *b, worker *w, size_t *tokens_out)
{
	size_t k = 0, tokens = 0;
	b->batch_seq++;
	w->n_probe = 0;
	for (int pr = RWD_PRIO_LEVELS - 1; pr >= 0 && k < b->p.max_batch_size; pr--) {
		qnode *n;
		while ((n = b->q[pr].head) && k < b->p.max_batch_size) {
			size_t c = n->job->items[n->idx].cost;
			if (b->p.token_cost && b->p.max_batch_tokens && k > 0 &&
				tokens + c > b->p.max_batch_tokens)
				goto out;
			list_remove(&b->q[pr], n);
			w->batch[k] = &n->job->items[n->idx];
			w->jobs[k] = n->job;
			account_locked(b, w, k, n->job);
			k++;
			tokens += c;
			n->next = b->free_nodes;
			b->free_nodes = n;
			b->queued--;
		}
	}
out:
	*tokens_out = tokens;
	return k;
}

static uint64_t oldest_enqueue_locked(const rwd_batcher *b)
{
	uint64_t t = 0;
	for (int pr = 0; pr < RWD_PRIO_LEVELS; pr++) {
		const qnode *n = b->q[pr].head;
		if (n && (!t || n->job->enqueue_ns < t))
			t = n->job->enqueue_ns;
	}
	return t;
}

/*
 * After run(): an item run() left without a status was scored, unless run()
 * failed as a whole. Give every unscored item of a failed batch run()'s
 * status, and every failed item a message and no present[] dimension, so
 * nothing failed can be read as a score (nor as a 0).
 */
static void settle_failures(rwd_item *const *items, size_t n, int r)
{
	for (size_t i = 0; i < n; i++) {
		rwd_item *it = items[i];
		if (r && !it->status) {
			it->status = r;
			rwd_errorf(&it->err, r, "the batch failed: %s", rwd_strerror(r));
		}
		if (!it->status)
			continue;
		if (!it->err.msg[0])
			rwd_errorf(&it->err, it->status, "%s", rwd_strerror(it->status));
		memset(it->present, 0, sizeof(it->present));
	}
}

static void run_batch(rwd_batcher *b, worker *w, size_t k, size_t tokens)
{
	uint64_t start = rwd_now_ns();
	/* Ask each job this worker claimed (pick_locked) whether its client is
	 * still there: a recv() peek per job is cheap next to a forward pass,
	 * and dropped work is pure gain. Unlocked: probing_ keeps any other
	 * worker from calling the same job's gone() meanwhile. */
	for (size_t i = 0; i < w->n_probe; i++)
		w->probe_gone[i] = w->probe[i]->gone(w->probe[i]) != 0;
	size_t nrun = 0;
	for (size_t i = 0; i < k; i++) {
		if (w->ran[i] && w->probe_of[i] && w->probe_gone[w->probe_of[i] - 1])
			w->ran[i] = 0;
		if (w->ran[i])
			w->run[nrun++] = w->batch[i];
		/* enqueue_ns is read-only after submit (see the top of the file) */
		uint64_t q = start - w->jobs[i]->enqueue_ns;
		rwd_metric_observe(b->p.metrics.queue_seconds, (double)q / 1e9);
	}
	uint64_t t0 = rwd_now_ns(), t1 = t0;
	if (nrun) {
		int r = b->exec.run(b->exec.ctx, w->scratch, w->run, nrun, w->arena);
		t1 = rwd_now_ns();
		settle_failures(w->run, nrun, r);
		rwd_metric_observe(b->p.metrics.batch_size, (double)nrun);
		rwd_metric_observe(b->p.metrics.batch_tokens, (double)tokens);
		rwd_metric_observe(b->p.metrics.compute_seconds, (double)(t1 - t0) / 1e9);
	}
	rwd_arena_reset(w->arena);

	rwd_job *done = NULL;
	pthread_mutex_lock(&b->mu);
	for (size_t i = 0; i < w->n_probe; i++) {
		w->probe[i]->probing_ = 0;
		if (w->probe_gone[i])
			w->probe[i]->gone_ = 1;
	}
	for (size_t i = 0; i < k; i++) {
		rwd_job *job = w->jobs[i];
		size_t idx = (size_t)(w->batch[i] - job->items);
		uint64_t q = start - job->enqueue_ns;
		if (q > job->queue_ns_max)
			job->queue_ns_max = q;
		if (!w->ran[i]) {
			b->st.cancelled++;
			finish_item_locked(job, idx, RWD_E_CANCELLED, &done);
			continue;
		}
		if (t1 - t0 > job->compute_ns_max)
			job->compute_ns_max = t1 - t0;
		finish_item_locked(job, idx, 0, &done);
	}
	b->running -= k;
	if (nrun) {
		b->st.batches++;
		b->st.items_run += nrun;
	}
	finish_jobs_locked(b, done);
	pthread_mutex_unlock(&b->mu);
}

static void *worker_main(void *arg)
{
	worker *w = arg;
	rwd_batcher *b = w->b;
	char tname[48];
	snprintf(tname, sizeof(tname), "w%d-%s", w->index, b->name);
	rwd_thread_set_name(tname);

	pthread_mutex_lock(&b->mu);
	for (;;) {
		uint64_t now = rwd_now_ns();
		rwd_job *done = NULL;
		expire_locked(b, now, &done);
		if (done) {
			finish_jobs_locked(b, done);
			continue;
		}
		if (b->queued == 0) {
			if (b->stopping)
				break;
			pthread_cond_wait(&b->work_cv, &b->mu);
			continue;
		}
		if (!b->draining && !batch_complete_locked(b)) {
			uint64_t until = oldest_enqueue_locked(b) + b->p.max_delay_us * 1000ull;
			if (now < until) {
				if (b->next_deadline && b->next_deadline < until)
					until = b->next_deadline;
				rwd_cond_wait_until(&b->work_cv, &b->mu, until);
				continue;
			}
		}
		size_t tokens;
		size_t k = pick_locked(b, w, &tokens);
		b->running += k;
		set_depth(b);
		/* more may be left for another idle worker */
		if (b->queued)
			pthread_cond_signal(&b->work_cv);
		pthread_mutex_unlock(&b->mu);
		run_batch(b, w, k, tokens);
		pthread_mutex_lock(&b->mu);
	}
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

static void workers_free(rwd_batcher *b)
{
	if (!b->workers)
		return;
	for (int i = 0; i < b->p.workers; i++) {
		worker *w = &b->workers[i];
		if (b->exec.scratch_free && w->scratch)
			b->exec.scratch_free(b->exec.ctx, w->scratch);
		rwd_arena_destroy(w->arena);
		free(w->batch);
		free(w->jobs);
		free(w->run);
		free(w->ran);
		free(w->probe_of);
		free(w->probe);
		free(w->probe_gone);
	}
	free(b->workers);
	b->workers = NULL;
}

static void stop_and_join(rwd_batcher *b)
{
	if (!b->mu_ok || !b->work_cv_ok)
		return; /* no worker was started */
	pthread_mutex_lock(&b->mu);
	b->stopping = 1;
	b->draining = 1;
	pthread_cond_broadcast(&b->work_cv);
	pthread_mutex_unlock(&b->mu);
	for (int i = 0; b->workers && i < b->p.workers; i++)
		if (b->workers[i].started)
			pthread_join(b->workers[i].thread, NULL);
}

/* Free what rwd_batcher_new made (the workers already joined). */
static void destroy(rwd_batcher *b)
{
	workers_free(b);
	free(b->pool);
	if (b->work_cv_ok)
		pthread_cond_destroy(&b->work_cv);
	if (b->idle_cv_ok)
		pthread_cond_destroy(&b->idle_cv);
	if (b->mu_ok)
		pthread_mutex_destroy(&b->mu);
	free(b);
}

int rwd_batcher_new(const rwd_batcher_params *p, const rwd_batch_exec *exec,
	rwd_batcher **out, rwd_error *err)
{
	if (!p->max_batch_size || !p->max_queue_items || p->workers < 1 || p->workers > 256 || !exec->run)
		return rwd_errorf(err, RWD_E_INVALID,
			"batcher needs max_batch_size, max_queue_items and 1..256 workers");
	int r = 0;
	rwd_batcher *b = calloc(1, sizeof(*b));
	if (!b)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	b->p = *p;
	b->exec = *exec;
	snprintf(b->name, sizeof(b->name), "%s", p->name ? p->name : "batcher");
	b->p.name = b->name;
	int e = pthread_mutex_init(&b->mu, NULL);
	if (e) {
		r = rwd_errorf(err, RWD_E_NOMEM, "cannot create the batcher's mutex: %s", strerror(e));
		goto fail;
	}
	b->mu_ok = 1;
	if ((e = rwd_cond_init_monotonic(&b->work_cv))) {
		r = rwd_errorf(err, RWD_E_NOMEM, "cannot create a condition variable: %s", strerror(-e));
		goto fail;
	}
	b->work_cv_ok = 1;
	if ((e = rwd_cond_init_monotonic(&b->idle_cv))) {
		r = rwd_errorf(err, RWD_E_NOMEM, "cannot create a condition variable: %s", strerror(-e));
		goto fail;
	}
	b->idle_cv_ok = 1;
	b->pool = calloc(p->max_queue_items, sizeof(*b->pool));
	b->workers = calloc((size_t)p->workers, sizeof(*b->workers));
	if (!b->pool || !b->workers) {
		r = rwd_errorf(err, RWD_E_NOMEM, "out of memory for a queue of %zu items", p->max_queue_items);
		goto fail;
	}
	for (size_t i = 0; i < p->max_queue_items; i++) {
		b->pool[i].next = b->free_nodes;
		b->free_nodes = &b->pool[i];
	}
	for (int i = 0; i < p->workers; i++) {
		worker *w = &b->workers[i];
		w->b = b;
		w->index = i;
		w->arena = rwd_arena_create(p->arena_block, p->arena_limit);
		w->batch = calloc(p->max_batch_size, sizeof(*w->batch));
		w->jobs = calloc(p->max_batch_size, sizeof(*w->jobs));
		w->run = calloc(p->max_batch_size, sizeof(*w->run));
		w->ran = calloc(p->max_batch_size, sizeof(*w->ran));
		w->probe_of = calloc(p->max_batch_size, sizeof(*w->probe_of));
		w->probe = calloc(p->max_batch_size, sizeof(*w->probe));
		w->probe_gone = calloc(p->max_batch_size, sizeof(*w->probe_gone));
		if (!w->arena || !w->batch || !w->jobs || !w->run || !w->ran || !w->probe_of ||
			!w->probe || !w->probe_gone) {
			r = rwd_errorf(err, RWD_E_NOMEM, "out of memory for worker %d", i);
			goto fail;
		}
		if (exec->scratch_new) {
			r = exec->scratch_new(exec->ctx, &w->scratch, err);
			if (r)
				goto fail;
		}
	}
	for (int i = 0; i < p->workers; i++) {
		e = pthread_create(&b->workers[i].thread, NULL, worker_main, &b->workers[i]);
		if (e) {
			r = rwd_errorf(err, RWD_E_NOMEM, "cannot start a worker thread: %s", strerror(e));
			goto fail;
		}
		b->workers[i].started = 1;
	}
	*out = b;
	return 0;
fail:
	stop_and_join(b);
	destroy(b);
	return r;
}

int rwd_batcher_submit(rwd_batcher *b, rwd_job *job)
{
	if (!job->n || job->n > b->p.max_queue_items || !job->done)
		return RWD_E_INVALID;
	int prio = job->priority == RWD_PRIO_HIGH ? RWD_PRIO_HIGH : RWD_PRIO_NORMAL;
	pthread_mutex_lock(&b->mu);
	if (b->draining) {
		pthread_mutex_unlock(&b->mu);
		return RWD_E_STATE;
	}
	if (b->queued + job->n > b->p.max_queue_items) {
		pthread_mutex_unlock(&b->mu);
		return RWD_E_FULL;
	}
	/* the job is not shared until its nodes are queued; set its private
	 * fields under the lock all the same, so every access is */
	job->remaining_ = job->n;
	job->gone_ = job->probing_ = 0;
	job->mark_ = 0;
	job->slot_ = 0;
	job->next_ = NULL;
	job->queue_ns_max = job->compute_ns_max = 0;
	job->batches = 0;
	job->enqueue_ns = rwd_now_ns();
	for (size_t i = 0; i < job->n; i++) {
		qnode *n = b->free_nodes;
		b->free_nodes = n->next;
		n->job = job;
		n->idx = i;
		list_push(&b->q[prio], n);
	}
	b->queued += job->n;
	if (job->deadline_ns && (!b->next_deadline || job->deadline_ns < b->next_deadline))
		b->next_deadline = job->deadline_ns;
	set_depth(b);
	pthread_cond_signal(&b->work_cv);
	pthread_mutex_unlock(&b->mu);
	return 0;
}

int rwd_batcher_drain(rwd_batcher *b, uint64_t timeout_ns)
{
	int r = 0;
	uint64_t until = rwd_now_ns() + timeout_ns;
	if (until < timeout_ns)
		until = UINT64_MAX;
	pthread_mutex_lock(&b->mu);
	b->draining = 1;
	pthread_cond_broadcast(&b->work_cv);
	while (!idle_locked(b)) {
		if (b->queued && rwd_cond_wait_until(&b->idle_cv, &b->mu, until) == ETIMEDOUT &&
			b->queued) {
			/* The bound passed: answer what never started, then wait only
			 * for the batches already running. */
			rwd_job *done = NULL;
			for (int pr = 0; pr < RWD_PRIO_LEVELS; pr++)
				while (b->q[pr].head)
					drop_node_locked(b, pr, b->q[pr].head, RWD_E_STATE, &done);
			set_depth(b);
			r = RWD_E_TIMEOUT;
			finish_jobs_locked(b, done);
		} else if (!b->queued && !idle_locked(b)) {
			pthread_cond_wait(&b->idle_cv, &b->mu);
		}
	}
	pthread_mutex_unlock(&b->mu);
	return r;
}

void rwd_batcher_get_stats(rwd_batcher *b, rwd_batcher_stats *st)
{
	pthread_mutex_lock(&b->mu);
	*st = b->st;
	st->queued = b->queued;
	st->running = b->running;
	st->draining = b->draining;
	pthread_mutex_unlock(&b->mu);
}

const rwd_batcher_params *rwd_batcher_get_params(const rwd_batcher *b)
{
	return &b->p;
}

void rwd_batcher_free(rwd_batcher *b)
{
	if (!b)
		return;
	rwd_batcher_drain(b, UINT64_MAX);
	stop_and_join(b);
	destroy(b);
}
