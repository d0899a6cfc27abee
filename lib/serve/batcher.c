/* serve/batcher.c — see batcher.h. */
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

/* Take the next batch out of the queue into w->batch/jobs; returns its size. */
static size_t pick_locked(rwd_batcher *b, worker *w, size_t *tokens_out)
{
	size_t k = 0, tokens = 0;
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

static void run_batch(rwd_batcher *b, worker *w, size_t k, size_t tokens)
{
	uint64_t start = rwd_now_ns();
	/* Ask once per job whether its client is still there: a recv() peek per
	 * job is cheap next to a forward pass, and dropped work is pure gain. */
	size_t nrun = 0;
	for (size_t i = 0; i < k; i++) {
		rwd_job *job = w->jobs[i];
		if (job->gone && !atomic_load_explicit(&job->gone_, memory_order_acquire)) {
			int seen = 0;
			for (size_t j = 0; j < i; j++)
				seen |= w->jobs[j] == job;
			/* one prober at a time; another worker's answer is read below */
			if (!seen && !atomic_exchange_explicit(&job->probing_, 1, memory_order_acq_rel)) {
				if (job->gone(job))
					atomic_store_explicit(&job->gone_, 1, memory_order_release);
				atomic_store_explicit(&job->probing_, 0, memory_order_release);
			}
		}
		if (!atomic_load_explicit(&job->gone_, memory_order_acquire))
			w->run[nrun++] = w->batch[i];
		uint64_t q = start - job->enqueue_ns;
		rwd_metric_observe(b->p.metrics.queue_seconds, (double)q / 1e9);
	}
	uint64_t t0 = rwd_now_ns(), t1 = t0;
	if (nrun) {
		int rr = b->exec.run(b->exec.ctx, w->scratch, w->run, nrun, w->arena);
		/* a failed run fails every item it left without a status (batcher.h) */
		for (size_t i = 0; rr && i < nrun; i++) {
			if (!w->run[i]->status) {
				w->run[i]->status = rr;
				memset(w->run[i]->present, 0, sizeof(w->run[i]->present));
				rwd_errorf(&w->run[i]->err, rr, "the batch could not be scored: %s", rwd_strerror(rr));
			}
		}
		t1 = rwd_now_ns();
		rwd_metric_observe(b->p.metrics.batch_size, (double)nrun);
		rwd_metric_observe(b->p.metrics.batch_tokens, (double)tokens);
		rwd_metric_observe(b->p.metrics.compute_seconds, (double)(t1 - t0) / 1e9);
	}
	rwd_arena_reset(w->arena);

	rwd_job *done = NULL;
	pthread_mutex_lock(&b->mu);
	for (size_t i = 0; i < k; i++) {
		rwd_job *job = w->jobs[i];
		size_t idx = (size_t)(w->batch[i] - job->items);
		uint64_t q = start - job->enqueue_ns;
		if (q > job->queue_ns_max)
			job->queue_ns_max = q;
		if (atomic_load_explicit(&job->gone_, memory_order_acquire)) {
			b->st.cancelled++;
			finish_item_locked(job, idx, RWD_E_CANCELLED, &done);
			continue;
		}
		if (t1 - t0 > job->compute_ns_max)
			job->compute_ns_max = t1 - t0;
		/* count each batch once per job: only at the job's first item in it */
		int first = 1;
		for (size_t j = 0; j < i; j++)
			first &= w->jobs[j] != job;
		job->batches += (size_t)first;
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
	}
	free(b->workers);
	b->workers = NULL;
}

static void stop_and_join(rwd_batcher *b)
{
	pthread_mutex_lock(&b->mu);
	b->stopping = 1;
	b->draining = 1;
	pthread_cond_broadcast(&b->work_cv);
	pthread_mutex_unlock(&b->mu);
	for (int i = 0; b->workers && i < b->p.workers; i++)
		if (b->workers[i].started)
			pthread_join(b->workers[i].thread, NULL);
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
	pthread_mutex_init(&b->mu, NULL);
	rwd_cond_init_monotonic(&b->work_cv);
	rwd_cond_init_monotonic(&b->idle_cv);
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
		if (!w->arena || !w->batch || !w->jobs || !w->run) {
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
		int e = pthread_create(&b->workers[i].thread, NULL, worker_main, &b->workers[i]);
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
	workers_free(b);
	free(b->pool);
	pthread_cond_destroy(&b->work_cv);
	pthread_cond_destroy(&b->idle_cv);
	pthread_mutex_destroy(&b->mu);
	free(b);
	return r;
}

int rwd_batcher_submit(rwd_batcher *b, rwd_job *job)
{
	if (!job->n || job->n > b->p.max_queue_items || !job->done)
		return RWD_E_INVALID;
	int prio = job->priority == RWD_PRIO_HIGH ? RWD_PRIO_HIGH : RWD_PRIO_NORMAL;
	job->remaining_ = job->n;
	atomic_init(&job->gone_, 0);
	atomic_init(&job->probing_, 0);
	job->next_ = NULL;
	job->queue_ns_max = job->compute_ns_max = 0;
	job->batches = 0;
	pthread_mutex_lock(&b->mu);
	if (b->draining) {
		pthread_mutex_unlock(&b->mu);
		return RWD_E_STATE;
	}
	if (b->queued + job->n > b->p.max_queue_items) {
		pthread_mutex_unlock(&b->mu);
		return RWD_E_FULL;
	}
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
	workers_free(b);
	free(b->pool);
	pthread_cond_destroy(&b->work_cv);
	pthread_cond_destroy(&b->idle_cv);
	pthread_mutex_destroy(&b->mu);
	free(b);
}
