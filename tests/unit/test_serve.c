/*
 * tests/unit/test_serve.c — lib/serve: the batcher (ordering, priorities,
 * batch limits, deadlines, full queue, cancelled clients, drain) against a
 * fake executor that records what it ran, and the metrics exposition.
 */
#include "rwd_check.h"

#include "core/thread.h"
#include "serve/batcher.h"
#include "serve/metrics.h"
#include "serve/request.h"
#include "core/base64.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The fake model: records every item it runs (job tag, item index) and each
 * batch's size, and can hold the first batch until released. */
typedef struct fake {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int hold;           /* block run() while set */
	int in_run;         /* a run() is blocked */
	int order[1024];    /* tag * 100 + index, in run order */
	size_t n_order;
	size_t sizes[256];
	size_t n_batches;
	int scratch_made;
} fake;

typedef struct tjob {
	rwd_job job;
	rwd_item items[16];
	int tag;
	atomic_int done;
	int gone;
} tjob;

static void fake_init(fake *f)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
}

static int fake_scratch_new(void *ctx, void **scratch, rwd_error *err)
{
	fake *f = ctx;
	f->scratch_made++;
	*scratch = f;
	return 0;
}

static int fake_run(void *ctx, void *scratch, rwd_item *const *items, size_t n, rwd_arena *arena)
{
	fake *f = ctx;
	ck_assert_ptr_eq(scratch, f);
	ck_assert_ptr_nonnull(rwd_arena_alloc(arena, 1000));
	pthread_mutex_lock(&f->mu);
	f->in_run = 1;
	pthread_cond_broadcast(&f->cv);
	while (f->hold)
		pthread_cond_wait(&f->cv, &f->mu);
	f->in_run = 0;
	for (size_t i = 0; i < n; i++) {
		tjob *tj = (tjob *)((char *)(items[i] - items[i]->index) - offsetof(tjob, items));
		f->order[f->n_order++] = tj->tag * 100 + (int)items[i]->index;
		items[i]->scores[0] = (float)(tj->tag * 100 + (int)items[i]->index);
		items[i]->present[0] = 1;
	}
	f->sizes[f->n_batches++] = n;
	pthread_mutex_unlock(&f->mu);
	return 0;
}

static void fake_release(fake *f)
{
	pthread_mutex_lock(&f->mu);
	f->hold = 0;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

static void fake_wait_in_run(fake *f)
{
	pthread_mutex_lock(&f->mu);
	while (!f->in_run)
		pthread_cond_wait(&f->cv, &f->mu);
	pthread_mutex_unlock(&f->mu);
}

static void tjob_done(rwd_job *job)
{
	tjob *tj = (tjob *)job;
	atomic_store(&tj->done, 1);
}

static int tjob_gone(rwd_job *job)
{
	return ((tjob *)job)->gone;
}

static void tjob_init(tjob *tj, int tag, size_t n, int prio, size_t cost)
{
	memset(tj, 0, sizeof(*tj));
	tj->tag = tag;
	tj->job.items = tj->items;
	tj->job.n = n;
	tj->job.priority = prio;
	tj->job.done = tjob_done;
	tj->job.gone = tjob_gone;
	for (size_t i = 0; i < n; i++) {
		tj->items[i].index = i;
		tj->items[i].cost = cost;
	}
}

static void wait_done(tjob *tj)
{
	for (int i = 0; i < 5000 && !atomic_load(&tj->done); i++)
		usleep(1000);
	ck_assert_int_eq(atomic_load(&tj->done), 1);
}

static rwd_batcher *start(fake *f, rwd_batcher_params p)
{
	rwd_batch_exec e = {0};
	e.ctx = f;
	e.scratch_new = fake_scratch_new;
	e.run = fake_run;
	rwd_batcher *b = NULL;
	rwd_error err;
	rwd_error_clear(&err);
	ck_assert_int_eq(rwd_batcher_new(&p, &e, &b, &err), 0);
	return b;
}

START_TEST(fifo_order_and_item_order_kept)
{
	fake f;
	fake_init(&f);
	rwd_batcher_params p = rwd_batcher_default_params();
	p.max_batch_size = 4;
	p.max_delay_us = 0;
	rwd_batcher *b = start(&f, p);
	ck_assert_int_eq(f.scratch_made, 1);
	static tjob j[5];
	for (int i = 0; i < 5; i++) {
		tjob_init(&j[i], i, 3, RWD_PRIO_NORMAL, 1);
		ck_assert_int_eq(rwd_batcher_submit(b, &j[i].job), 0);
	}
	for (int i = 0; i < 5; i++) {
		wait_done(&j[i]);
		for (int k = 0; k < 3; k++) {
			ck_assert_int_eq(j[i].items[k].status, 0);
			ck_assert(j[i].items[k].scores[0] == (float)(i * 100 + k));
		}
	}
	rwd_batcher_free(b);
	/* one worker, FIFO: the run order is exactly submission order */
	ck_assert_uint_eq(f.n_order, 15);
	for (size_t i = 0; i < 15; i++)
		ck_assert_int_eq(f.order[i], (int)(i / 3) * 100 + (int)(i % 3));
	for (size_t i = 0; i < f.n_batches; i++)
		ck_assert_uint_le(f.sizes[i], 4);
}
END_TEST

START_TEST(high_priority_runs_first)
{
	fake f;
	fake_init(&f);
	f.hold = 1;
	rwd_batcher_params p = rwd_batcher_default_params();
	p.max_batch_size = 2;
	p.max_delay_us = 0;
	rwd_batcher *b = start(&f, p);
	static tjob blocker, n1, n2, h1;
	tjob_init(&blocker, 9, 1, RWD_PRIO_NORMAL, 1);
	ck_assert_int_eq(rwd_batcher_submit(b, &blocker.job), 0);
	fake_wait_in_run(&f);
	tjob_init(&n1, 1, 2, RWD_PRIO_NORMAL, 1);
	tjob_init(&n2, 2, 2, RWD_PRIO_NORMAL, 1);
	tjob_init(&h1, 3, 2, RWD_PRIO_HIGH, 1);
	ck_assert_int_eq(rwd_batcher_submit(b, &n1.job), 0);
	ck_assert_int_eq(rwd_batcher_submit(b, &n2.job), 0);
	ck_assert_int_eq(rwd_batcher_submit(b, &h1.job), 0);
	fake_release(&f);
	wait_done(&n1);
	wait_done(&n2);
	wait_done(&h1);
	rwd_batcher_free(b);
	int want[] = {900, 300, 301, 100, 101, 200, 201};
	ck_assert_uint_eq(f.n_order, 7);
	for (size_t i = 0; i < 7; i++)
		ck_assert_int_eq(f.order[i], want[i]);
}
END_TEST

START_TEST(batches_fill_up_to_size_and_tokens)
{
	fake f;
	fake_init(&f);
	f.hold = 1;
	rwd_batcher_params p = rwd_batcher_default_params();
	p.max_batch_size = 4;
	p.max_delay_us = 0;
	p.token_cost = 1;
	p.max_batch_tokens = 10;
	rwd_batcher *b = start(&f, p);
	static tjob blocker, j[6];
	tjob_init(&blocker, 9, 1, RWD_PRIO_NORMAL, 1);
	ck_assert_int_eq(rwd_batcher_submit(b, &blocker.job), 0);
	fake_wait_in_run(&f);
	/* costs 4,4,4,1,1,1: budget 10 gives [4,4] [4,1,1,1] */
	size_t cost[6] = {4, 4, 4, 1, 1, 1};
	for (int i = 0; i < 6; i++) {
		tjob_init(&j[i], i, 1, RWD_PRIO_NORMAL, cost[i]);
		ck_assert_int_eq(rwd_batcher_submit(b, &j[i].job), 0);
	}
	fake_release(&f);
	for (int i = 0; i < 6; i++)
		wait_done(&j[i]);
	rwd_batcher_free(b);
	ck_assert_uint_eq(f.n_batches, 3);
	ck_assert_uint_eq(f.sizes[0], 1);
	ck_assert_uint_eq(f.sizes[1], 2);
	ck_assert_uint_eq(f.sizes[2], 4);
}
END_TEST

START_TEST(delay_collects_a_batch)
{
	fake f;
	fake_init(&f);
	rwd_batcher_params p = rwd_batcher_default_params();
	p.max_batch_size = 8;
	p.max_delay_us = 200000; /* long enough that 5 quick submits share a batch */
	rwd_batcher *b = start(&f, p);
	static tjob j[5];
	uint64_t t0 = rwd_now_ns();
	for (int i = 0; i < 5; i++) {
		tjob_init(&j[i], i, 1, RWD_PRIO_NORMAL, 1);
		ck_assert_int_eq(rwd_batcher_submit(b, &j[i].job), 0);
	}
	for (int i = 0; i < 5; i++)
		wait_done(&j[i]);
	uint64_t waited = rwd_now_ns() - t0;
	rwd_batcher_free(b);
	ck_assert_uint_eq(f.n_batches, 1);
	ck_assert_uint_eq(f.sizes[0], 5);
	/* a partial batch waits for the delay, not longer than a few times it */
	ck_assert_uint_ge(waited, 150000000ull);
	ck_assert_uint_lt(waited, 2000000000ull);
	/* a full batch does not wait */
	fake_init(&f);
	p.max_batch_size = 2;
	p.max_delay_us = 5000000;
	b = start(&f, p);
	t0 = rwd_now_ns();
	tjob_init(&j[0], 0, 2, RWD_PRIO_NORMAL, 1);
	ck_assert_int_eq(rwd_batcher_submit(b, &j[0].job), 0);
	wait_done(&j[0]);
	ck_assert_uint_lt(rwd_now_ns() - t0, 1000000000ull);
	rwd_batcher_free(b);
}
END_TEST

START_TEST(deadline_expires_queued_items)
{
	fake f;
	fake_init(&f);
	f.hold = 1;
	rwd_batcher_params p = rwd_batcher_default_params();
	p.max_batch_size = 1;
	p.max_delay_us = 0;
	p.workers = 1;
	rwd_batcher *b = start(&f, p);
	static tjob blocker, late, ok;
	tjob_init(&blocker, 9, 1, RWD_PRIO_NORMAL, 1);
	ck_assert_int_eq(rwd_batcher_submit(b, &blocker.job), 0);
	fake_wait_in_run(&f);
	tjob_init(&late, 1, 2, RWD_PRIO_NORMAL, 1);
	late.job.deadline_ns = rwd_now_ns() + 30000000ull;
	tjob_init(&ok, 2, 1, RWD_PRIO_NORMAL, 1);
	ck_assert_int_eq(rwd_batcher_submit(b, &late.job), 0);
	ck_assert_int_eq(rwd_batcher_submit(b, &ok.job), 0);
	usleep(60000);
	fake_release(&f);
	wait_done(&late);
	wait_done(&ok);
	ck_assert_int_eq(late.items[0].status, RWD_E_TIMEOUT);
	ck_assert_int_eq(late.items[1].status, RWD_E_TIMEOUT);
	ck_assert_int_eq(late.items[0].err.code, RWD_E_TIMEOUT);
	ck_assert_int_eq(ok.items[0].status, 0);
	rwd_batcher_stats st;
	rwd_batcher_get_stats(b, &st);
	ck_assert_uint_eq(st.expired, 2);
	rwd_batcher_free(b);
	ck_assert_uint_eq(f.n_order, 2); /* blocker and ok; the expired never ran */
}
END_TEST

START_TEST(idle_worker_expires_at_the_deadline)
{
	fake f;
	fake_init(&f);
	rwd_batcher_params p = rwd_batcher_default_params();
	p.max_batch_size = 8;
	p.max_delay_us = 10000000; /* 10 s: only the deadline can end the wait */
	rwd_batcher *b = start(&f, p);
	static tjob j;
	tjob_init(&j, 1, 1, RWD_PRIO_NORMAL, 1);
	uint64_t t0 = rwd_now_ns();
	j.job.deadline_ns = t0 + 50000000ull;
	ck_assert_int_eq(rwd_batcher_submit(b, &j.job), 0);
	wait_done(&j);
	ck_assert_uint_lt(rwd_now_ns() - t0, 1000000000ull);
	ck_assert_int_eq(j.items[0].status, RWD_E_TIMEOUT);
	rwd_batcher_free(b);
}
END_TEST

START_TEST(full_queue_is_refused_whole)
{
	fake f;
	fake_init(&f);
	f.hold = 1;
	rwd_batcher_params p = rwd_batcher_default_params();
	p.max_batch_size = 1;
	p.max_delay_us = 0;
	p.max_queue_items = 4;
	rwd_batcher *b = start(&f, p);
	static tjob blocker, a, c, big, empty;
	tjob_init(&blocker, 9, 1, RWD_PRIO_NORMAL, 1);
	ck_assert_int_eq(rwd_batcher_submit(b, &blocker.job), 0);
	fake_wait_in_run(&f);
	tjob_init(&a, 1, 3, RWD_PRIO_NORMAL, 1);
	tjob_init(&c, 2, 2, RWD_PRIO_HIGH, 1);
	tjob_init(&big, 3, 5, RWD_PRIO_NORMAL, 1);
	tjob_init(&empty, 4, 0, RWD_PRIO_NORMAL, 1);
	ck_assert_int_eq(rwd_batcher_submit(b, &a.job), 0);
	ck_assert_int_eq(rwd_batcher_submit(b, &c.job), RWD_E_FULL);
	ck_assert_int_eq(rwd_batcher_submit(b, &big.job), RWD_E_INVALID);
	ck_assert_int_eq(rwd_batcher_submit(b, &empty.job), RWD_E_INVALID);
	rwd_batcher_stats st;
	rwd_batcher_get_stats(b, &st);
	ck_assert_uint_eq(st.queued, 3);
	fake_release(&f);
	wait_done(&a);
	/* room again once the queue drained */
	ck_assert_int_eq(rwd_batcher_submit(b, &c.job), 0);
	wait_done(&c);
	rwd_batcher_free(b);
	ck_assert_int_eq(atomic_load(&big.done), 0);
}
END_TEST

START_TEST(gone_clients_are_dropped)
{
	fake f;
	fake_init(&f);
	f.hold = 1;
	rwd_batcher_params p = rwd_batcher_default_params();
	p.max_delay_us = 0;
	rwd_batcher *b = start(&f, p);
	static tjob blocker, g, ok;
	tjob_init(&blocker, 9, 1, RWD_PRIO_NORMAL, 1);
	ck_assert_int_eq(rwd_batcher_submit(b, &blocker.job), 0);
	fake_wait_in_run(&f);
	tjob_init(&g, 1, 3, RWD_PRIO_NORMAL, 1);
	g.gone = 1;
	tjob_init(&ok, 2, 1, RWD_PRIO_NORMAL, 1);
	ck_assert_int_eq(rwd_batcher_submit(b, &g.job), 0);
	ck_assert_int_eq(rwd_batcher_submit(b, &ok.job), 0);
	fake_release(&f);
	wait_done(&g);
	wait_done(&ok);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(g.items[i].status, RWD_E_CANCELLED);
	ck_assert_int_eq(ok.items[0].status, 0);
	rwd_batcher_stats st;
	rwd_batcher_get_stats(b, &st);
	ck_assert_uint_eq(st.cancelled, 3);
	rwd_batcher_free(b);
	ck_assert_uint_eq(f.n_order, 2);
}
END_TEST

START_TEST(drain_finishes_everything_then_refuses)
{
	fake f;
	fake_init(&f);
	rwd_batcher_params p = rwd_batcher_default_params();
	p.max_batch_size = 4;
	p.max_delay_us = 10000000; /* draining must not wait for batches to fill */
	p.workers = 2;
	rwd_batcher *b = start(&f, p);
	ck_assert_int_eq(f.scratch_made, 2);
	static tjob j[6];
	for (int i = 0; i < 6; i++) {
		tjob_init(&j[i], i, 2, i % 2, 1);
		ck_assert_int_eq(rwd_batcher_submit(b, &j[i].job), 0);
	}
	uint64_t t0 = rwd_now_ns();
	ck_assert_int_eq(rwd_batcher_drain(b, 5000000000ull), 0);
	ck_assert_uint_lt(rwd_now_ns() - t0, 2000000000ull);
	for (int i = 0; i < 6; i++) {
		ck_assert_int_eq(atomic_load(&j[i].done), 1);
		ck_assert_int_eq(j[i].items[0].status, 0);
		ck_assert_int_eq(j[i].items[1].status, 0);
	}
	static tjob late;
	tjob_init(&late, 7, 1, RWD_PRIO_NORMAL, 1);
	ck_assert_int_eq(rwd_batcher_submit(b, &late.job), RWD_E_STATE);
	rwd_batcher_stats st;
	rwd_batcher_get_stats(b, &st);
	ck_assert_int_eq(st.draining, 1);
	ck_assert_uint_eq(st.items_run, 12);
	rwd_batcher_free(b);
}
END_TEST

static void *release_later(void *arg)
{
	usleep(200000);
	fake_release(arg);
	return NULL;
}

START_TEST(drain_bound_answers_the_queued)
{
	fake f;
	fake_init(&f);
	f.hold = 1;
	rwd_batcher_params p = rwd_batcher_default_params();
	p.max_batch_size = 1;
	p.max_delay_us = 0;
	rwd_batcher *b = start(&f, p);
	static tjob blocker, q;
	tjob_init(&blocker, 9, 1, RWD_PRIO_NORMAL, 1);
	ck_assert_int_eq(rwd_batcher_submit(b, &blocker.job), 0);
	fake_wait_in_run(&f);
	tjob_init(&q, 1, 2, RWD_PRIO_NORMAL, 1);
	ck_assert_int_eq(rwd_batcher_submit(b, &q.job), 0);
	pthread_t t;
	pthread_create(&t, NULL, release_later, &f);
	/* bound of 50 ms: the queued job is answered "shutting down", the
	 * running batch is still waited for */
	ck_assert_int_eq(rwd_batcher_drain(b, 50000000ull), RWD_E_TIMEOUT);
	ck_assert_int_eq(atomic_load(&q.done), 1);
	ck_assert_int_eq(q.items[0].status, RWD_E_STATE);
	ck_assert_int_eq(atomic_load(&blocker.done), 1);
	ck_assert_int_eq(blocker.items[0].status, 0);
	pthread_join(t, NULL);
	rwd_batcher_free(b);
}
END_TEST

START_TEST(metrics_render_prometheus_text)
{
	rwd_metrics *m = rwd_metrics_new();
	const char *lab[] = {"model", "code", NULL};
	rwd_metric_family *c = rwd_metrics_family(m, RWD_METRIC_COUNTER, "rewardd_requests_total",
		"Requests.", lab, NULL, 0);
	ck_assert_ptr_eq(rwd_metrics_family(m, RWD_METRIC_COUNTER, "rewardd_requests_total", "x",
		lab, NULL, 0), c);
	const char *v1[] = {"m\"1", "200"};
	rwd_metric *s = rwd_metric_with(c, v1);
	ck_assert_ptr_eq(rwd_metric_with(c, v1), s);
	rwd_metric_add(s, 2);
	rwd_metric_add(s, 1);
	ck_assert(rwd_metric_value(s) == 3.0);
	double bounds[3];
	rwd_metric_exp_bounds(1, 2, 3, bounds);
	ck_assert(bounds[2] == 4.0);
	const char *ml[] = {"model", NULL};
	rwd_metric_family *h = rwd_metrics_family(m, RWD_METRIC_HISTOGRAM, "rewardd_batch_size_items",
		"Items per batch.", ml, bounds, 3);
	rwd_metric *hs = rwd_metric_1(h, "a");
	rwd_metric_observe(hs, 1);
	rwd_metric_observe(hs, 3);
	rwd_metric_observe(hs, 100);
	ck_assert_uint_eq(rwd_metric_count(hs), 3);
	ck_assert_uint_eq(rwd_metric_bucket(hs, 0), 1);
	ck_assert_uint_eq(rwd_metric_bucket(hs, 2), 2);
	ck_assert_uint_eq(rwd_metric_bucket(hs, 3), 3);
	rwd_metric *g = rwd_metric_0(rwd_metrics_family(m, RWD_METRIC_GAUGE, "rewardd_up", "Up.",
		NULL, NULL, 0));
	rwd_metric_set(g, 1);
	/* bad bounds are refused; NULL series are no-ops */
	double bad[2] = {2, 1};
	ck_assert_ptr_null(rwd_metrics_family(m, RWD_METRIC_HISTOGRAM, "x", "", NULL, bad, 2));
	rwd_metric_add(NULL, 1);
	rwd_metric_observe(rwd_metric_0(NULL), 1);
	size_t len;
	char *txt = rwd_metrics_render(m, &len);
	ck_assert_ptr_nonnull(txt);
	ck_assert_uint_eq(strlen(txt), len);
	ck_assert_ptr_nonnull(strstr(txt, "# TYPE rewardd_requests_total counter\n"));
	ck_assert_ptr_nonnull(strstr(txt, "rewardd_requests_total{model=\"m\\\"1\",code=\"200\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(txt, "rewardd_batch_size_items_bucket{model=\"a\",le=\"1\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(txt, "rewardd_batch_size_items_bucket{model=\"a\",le=\"4\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(txt, "rewardd_batch_size_items_bucket{model=\"a\",le=\"+Inf\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(txt, "rewardd_batch_size_items_sum{model=\"a\"} 104\n"));
	ck_assert_ptr_nonnull(strstr(txt, "rewardd_batch_size_items_count{model=\"a\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(txt, "rewardd_up 1\n"));
	/* families in registration order */
	ck_assert(strstr(txt, "rewardd_requests_total") < strstr(txt, "rewardd_up"));
	free(txt);
	rwd_metrics_free(m);
}
END_TEST

/* ---- request validation, against a real mlp head written here ---- */

static rwd_model *head_model;

/* layers.0: weight [2, 4], bias [2] (F32): a 4-in, 2-out mlp head. */
static rwd_model *load_head(void)
{
	static const char hdr[] =
		"{\"layers.0.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
		"\"layers.0.weight\":{\"dtype\":\"F32\",\"shape\":[2,4],\"data_offsets\":[8,40]}}";
	char path[64];
	snprintf(path, sizeof(path), "/tmp/rwd-test-serve-%ld.safetensors", (long)getpid());
	FILE *f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	size_t hlen = sizeof(hdr) - 1, padded = (hlen + 7) & ~(size_t)7;
	unsigned char le[8];
	for (int i = 0; i < 8; i++)
		le[i] = (unsigned char)((uint64_t)padded >> (8 * i));
	fwrite(le, 1, 8, f);
	fwrite(hdr, 1, hlen, f);
	for (size_t i = hlen; i < padded; i++)
		fputc(' ', f);
	float w[10] = {0};
	fwrite(w, sizeof(float), 10, f);
	fclose(f);
	rwd_model_params p = rwd_model_default_params();
	p.name = "head";
	p.kind = "mlp";
	p.path = path;
	rwd_model *m = NULL;
	rwd_error err;
	rwd_error_clear(&err);
	int r = rwd_model_load(&p, &m, &err);
	unlink(path);
	ck_assert_msg(r == 0, "%s", err.msg);
	return m;
}

static const rwd_model *find_head(void *ctx, const char *name, void **user, rwd_error *err)
{
	if (name && strcmp(name, "head") != 0)
		return (void)rwd_errorf(err, RWD_E_NOTFOUND, "no model named '%s'", name), NULL;
	*user = ctx;
	return head_model;
}

static int parse(const char *body, rwd_request *req, rwd_error *err)
{
	static rwd_arena *arena;
	if (!arena)
		arena = rwd_arena_create(0, 0);
	rwd_request_limits lim = rwd_request_default_limits();
	lim.max_items = 3;
	lim.max_depth = 8;
	lim.max_string_bytes = 64;
	lim.default_timeout_ms = 1000;
	lim.max_timeout_ms = 5000;
	rwd_error_clear(err);
	return rwd_request_parse(body, strlen(body), &lim, find_head, &head_model, arena, req, err);
}

START_TEST(request_valid_defaults_and_caps)
{
	head_model = load_head();
	rwd_request req;
	rwd_error err;
	ck_assert_int_eq(parse("{\"items\":[{\"id\":\"a\",\"embedding\":[1,2,3,4]},{\"id\":5,\"embedding\":[0,0,0,0]}]}",
		&req, &err), 0);
	ck_assert_uint_eq(req.n_items, 2);
	ck_assert_uint_eq(req.n_dims, 2); /* all of the model's, in order */
	ck_assert_int_eq(req.dims[0], 0);
	ck_assert_int_eq(req.dims[1], 1);
	ck_assert_uint_eq(req.timeout_ms, 1000);
	ck_assert_int_eq(req.priority, RWD_PRIO_NORMAL);
	ck_assert_str_eq(json_string_value(req.ids[0]), "a");
	ck_assert_int_eq(json_integer_value(req.ids[1]), 5);
	ck_assert_uint_eq(req.items[1].index, 1);
	ck_assert_uint_eq(req.total_cost, 2);
	ck_assert_ptr_eq(req.model_user, &head_model);
	ck_assert_int_eq(parse("{\"model\":\"head\",\"items\":[],\"dimensions\":[\"score_1\"],"
		"\"timeout_ms\":999999,\"priority\":\"high\"}", &req, &err), 0);
	ck_assert_uint_eq(req.timeout_ms, 5000); /* capped */
	ck_assert_int_eq(req.priority, RWD_PRIO_HIGH);
	ck_assert_uint_eq(req.n_dims, 1);
	ck_assert_int_eq(req.dims[0], 1);
	rwd_model_free(head_model);
}
END_TEST

static int parse_with(const char *body, int json_only, rwd_request *req, rwd_error *err)
{
	static rwd_arena *arena;
	if (!arena)
		arena = rwd_arena_create(0, 0);
	rwd_request_limits lim = rwd_request_default_limits();
	lim.max_items = 3;
	lim.json_only = json_only;
	rwd_error_clear(err);
	return rwd_request_parse(body, strlen(body), &lim, find_head, &head_model, arena, req, err);
}

/* The fast path reads "embedding" arrays into item->vec: the floats strtod
 * gives, cast; jansson alone (json_only) leaves vec NULL, and both refuse
 * what they refuse with the same record. */
START_TEST(request_fast_path_reads_vectors)
{
	head_model = load_head();
	const char *nums[] = {"0.10000000149011612", "-1.2345678901234567e-05", "-0", "3e-45"};
	char body[256];
	snprintf(body, sizeof(body), "{\"items\":[{\"embedding\":[%s,\n%s , %s,%s]},{\"embedding\":[1,2,3,4]}]}",
		nums[0], nums[1], nums[2], nums[3]);
	rwd_request req;
	rwd_error err;
	ck_assert_int_eq(parse_with(body, 0, &req, &err), 0);
	ck_assert_ptr_nonnull(req.items[0].vec);
	ck_assert_uint_eq(req.items[0].vec_n, 4);
	for (int i = 0; i < 4; i++) {
		float want = i == 2 ? 0.0f : (float)strtod(nums[i], NULL); /* "-0" is jansson's integer 0 */
		ck_assert_msg(memcmp(&req.items[0].vec[i], &want, 4) == 0, "element %d", i);
	}
	ck_assert_ptr_nonnull(req.items[1].vec);
	ck_assert(req.items[1].vec[3] == 4.0f);
	ck_assert_int_eq(parse_with(body, 1, &req, &err), 0);
	ck_assert_ptr_null(req.items[0].vec);
	static const char *const bad[] = {
		"{\"items\":[{\"embedding\":[1,2,3]}]}",
		"{\"items\":[{\"embedding\":[1,2,3,4],\"embedding\":[1,2,3,4]}]}",
		"{\"items\":[{\"embedding\":[1,2,3,4]}],\n \"x\": }",
		"{\"items\":[{\"embedding\":[1,2,3,1e39]}]}",
		"{\"items\":[{\"embedding\":[1,2,3,,4]}]}",
		"{\"items\":[{\"embedding\":[1,2,3,4]},{\"embedding\":[1]}]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rwd_error e2;
		int a = parse_with(bad[i], 0, &req, &err), b = parse_with(bad[i], 1, &req, &e2);
		ck_assert_msg(a != 0 && a == b, "case %zu: %d %d", i, a, b);
		ck_assert_str_eq(err.msg, e2.msg);
		ck_assert_str_eq(err.object, e2.object);
		ck_assert_int_eq(err.line, e2.line);
		ck_assert_int_eq(err.column, e2.column);
	}
	rwd_model_free(head_model);
}
END_TEST

/* "embedding_b64": base64 of little-endian float32, decoded into item->vec;
 * every refusal names items[i].embedding_b64. */
START_TEST(request_embedding_b64)
{
	head_model = load_head();
	const float x[4] = {0.5f, -1.25f, 3e-39f, 1e30f};
	uint8_t le[16];
	for (int i = 0; i < 4; i++) {
		uint32_t u;
		memcpy(&u, &x[i], 4);
		for (int k = 0; k < 4; k++)
			le[4 * i + k] = (uint8_t)(u >> (8 * k));
	}
	char enc[64], body[256];
	rwd_base64_encode(le, 16, 0, enc);
	snprintf(body, sizeof(body), "{\"items\":[{\"embedding_b64\":\"%s\"}]}", enc);
	rwd_request req;
	rwd_error err;
	ck_assert_int_eq(parse_with(body, 0, &req, &err), 0);
	ck_assert_ptr_nonnull(req.items[0].vec);
	ck_assert_int_eq(memcmp(req.items[0].vec, x, sizeof(x)), 0);
	ck_assert_int_eq(parse_with(body, 1, &req, &err), 0); /* b64 is not the fast path's */
	ck_assert_ptr_nonnull(req.items[0].vec);

	const uint32_t nan_bits[4] = {0, 0x7fc00000u, 0, 0};
	char nan_enc[64], three[64], odd[64];
	rwd_base64_encode((const uint8_t *)nan_bits, 16, 0, nan_enc);
	rwd_base64_encode(le, 12, 0, three);
	rwd_base64_encode(le, 15, 0, odd);
	char cases[6][256];
	snprintf(cases[0], 256, "{\"items\":[{\"embedding_b64\":\"%s\"}]}", nan_enc);
	snprintf(cases[1], 256, "{\"items\":[{\"embedding_b64\":\"%s\"}]}", three);
	snprintf(cases[2], 256, "{\"items\":[{\"embedding_b64\":\"%s\"}]}", odd);
	snprintf(cases[3], 256, "{\"items\":[{\"embedding_b64\":\"%s\",\"embedding\":[1,2,3,4]}]}", enc);
	snprintf(cases[4], 256, "{\"items\":[{\"embedding_b64\":7}]}");
	snprintf(cases[5], 256, "{\"items\":[{\"embedding\":[1,2,3,4]},{\"embedding_b64\":\"AAAA*AAA\"}]}");
	const int codes[6] = {RWD_E_INVALID, RWD_E_INVALID, RWD_E_INVALID, RWD_E_INVALID, RWD_E_INVALID,
		RWD_E_FORMAT};
	const char *needles[6] = {"element 1 is NaN", "holds 3 float32", "15 bytes", "not both", "must be a string",
		""};
	for (int i = 0; i < 6; i++) {
		int r = parse_with(cases[i], 0, &req, &err);
		ck_assert_msg(r == codes[i], "case %d: %d (%s)", i, r, err.msg);
		ck_assert_str_eq(err.object, i == 5 ? "items[1].embedding_b64" : "items[0].embedding_b64");
		ck_assert_msg(strstr(err.msg, needles[i]), "case %d: %s", i, err.msg);
		rwd_error e2;
		ck_assert_int_eq(parse_with(cases[i], 1, &req, &e2), r);
		ck_assert_str_eq(err.msg, e2.msg);
	}
	rwd_model_free(head_model);
}
END_TEST

START_TEST(request_errors_name_the_field)
{
	head_model = load_head();
	static const struct {
		const char *body;
		int code;
		const char *field;
	} cases[] = {
		{"{\"items\":[{\"embedding\":[1,2]}]}", RWD_E_INVALID, "items[0].embedding"},
		{"{\"items\":[{\"embedding\":[1,2,3,4]}],\"dimensions\":[\"x\"]}", RWD_E_UNPROCESSABLE, "dimensions[0]"},
		{"{\"items\":[{},{},{},{}]}", RWD_E_LIMIT, "items"},
		{"{\"model\":\"other\",\"items\":[]}", RWD_E_NOTFOUND, "model"},
		{"{\"items\":[],\"extra\":1}", RWD_E_INVALID, "extra"},
		{"{\"items\":[{\"id\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}]}",
			RWD_E_LIMIT, "items[0].id"},
		{"{\"items\":[],\"timeout_ms\":0}", RWD_E_INVALID, "timeout_ms"},
		{"{\"items\":[[[[[[[[[[]]]]]]]]]]}", RWD_E_INVALID, ""},
		{"{\"items\":[],\"items\":[]}", RWD_E_FORMAT, ""},
		{"{\"items\":[1e999]}", RWD_E_FORMAT, ""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rwd_request req;
		rwd_error err;
		int r = parse(cases[i].body, &req, &err);
		ck_assert_msg(r == cases[i].code, "case %zu: %d (%s)", i, r, err.msg);
		ck_assert_int_eq(err.code, r);
		ck_assert_str_eq(err.object, cases[i].field);
		ck_assert(err.msg[0] != '\0');
	}
	/* a JSON syntax error carries its position */
	rwd_request req;
	rwd_error err;
	ck_assert_int_eq(parse("{\n \"items\": [,]}", &req, &err), RWD_E_FORMAT);
	ck_assert_int_eq(err.line, 2);
	rwd_model_free(head_model);
}
END_TEST

/* ---- failures and concurrency: nothing failed reads as a score ---- */

/* A run() that fails the whole batch: writes a score and present[] into
 * every item (as a half-done forward pass might), then returns `fail_with`;
 * item 1 of each batch is also given a status without a message. */
static int fail_with;
static int failing_run(void *ctx, void *scratch, rwd_item *const *items, size_t n, rwd_arena *arena)
{
	for (size_t i = 0; i < n; i++) {
		items[i]->scores[0] = 0.0f;
		items[i]->present[0] = 1;
	}
	if (n > 1)
		items[1]->status = RWD_E_FORMAT;
	return fail_with;
}

START_TEST(failed_run_fails_every_item)
{
	rwd_batcher_params p = rwd_batcher_default_params();
	p.max_batch_size = 4;
	rwd_batch_exec e = {0};
	e.run = failing_run;
	fail_with = RWD_E_NOMEM;
	rwd_batcher *b = NULL;
	rwd_error err;
	rwd_error_clear(&err);
	ck_assert_int_eq(rwd_batcher_new(&p, &e, &b, &err), 0);
	static tjob j;
	tjob_init(&j, 1, 4, RWD_PRIO_NORMAL, 1);
	j.job.gone = NULL;
	ck_assert_int_eq(rwd_batcher_submit(b, &j.job), 0);
	wait_done(&j);
	for (int i = 0; i < 4; i++) {
		rwd_item *it = &j.items[i];
		ck_assert_msg(it->status != 0, "item %d finished with status 0 after a failed run()", i);
		ck_assert_int_eq(it->status, i == 1 ? RWD_E_FORMAT : RWD_E_NOMEM);
		ck_assert_msg(it->err.msg[0] != '\0', "item %d has no message", i);
		ck_assert_msg(it->present[0] == 0, "item %d of a failed batch has a present score", i);
	}
	rwd_batcher_free(b);
}
END_TEST

/* rwd_model_run on a batch whose pointer array cannot be allocated (the
 * arena is over its limit): every item gets a status and a message. Through
 * the batcher with the model's real exec, as the daemon runs it. */
static rwd_model *load_head(void);
START_TEST(model_run_out_of_arena_fails_every_item)
{
	rwd_model *m = load_head();
	enum { N = 100 }; /* > 64: the pointer array comes from the arena */
	static rwd_item items[N];
	static rwd_item *ptrs[N];
	json_t *in = json_pack("{s:[f,f,f,f]}", "embedding", 1.0, 2.0, 3.0, 4.0);
	for (size_t i = 0; i < N; i++) {
		memset(&items[i], 0, sizeof(items[i]));
		items[i].input = in;
		items[i].index = i;
		items[i].cost = 1;
		ptrs[i] = &items[i];
	}
	rwd_arena *a = rwd_arena_create(64, 64);
	ck_assert_ptr_nonnull(rwd_arena_alloc(a, 64)); /* fill it */
	int r = rwd_model_run(m, NULL, ptrs, N, a);
	ck_assert_int_ne(r, 0);
	for (size_t i = 0; i < N; i++) {
		ck_assert_msg(items[i].status != 0, "item %zu has status 0 after run() returned %d", i, r);
		ck_assert_msg(items[i].err.msg[0] != '\0', "item %zu has no message", i);
	}
	rwd_arena_destroy(a);

	/* the same through a batcher whose arena limit is too small for the batch */
	rwd_batcher_params p = rwd_batcher_default_params();
	p.max_batch_size = N;
	p.max_delay_us = 2000000; /* one batch of all N */
	p.arena_block = 64;
	p.arena_limit = 64;
	rwd_batch_exec e = rwd_batcher_model_exec(m);
	rwd_batcher *b = NULL;
	rwd_error err;
	rwd_error_clear(&err);
	ck_assert_int_eq(rwd_batcher_new(&p, &e, &b, &err), 0);
	static rwd_item jitems[N];
	static tjob j; /* only for done/tag; its items are jitems */
	tjob_init(&j, 1, 0, RWD_PRIO_NORMAL, 1);
	for (size_t i = 0; i < N; i++) {
		memset(&jitems[i], 0, sizeof(jitems[i]));
		jitems[i].input = in;
		jitems[i].index = i;
		jitems[i].cost = 1;
	}
	j.job.items = jitems;
	j.job.n = N;
	j.job.gone = NULL;
	ck_assert_int_eq(rwd_batcher_submit(b, &j.job), 0);
	wait_done(&j);
	for (size_t i = 0; i < N; i++) {
		ck_assert_msg(jitems[i].status != 0, "item %zu finished with status 0", i);
		ck_assert_msg(jitems[i].err.msg[0] != '\0', "item %zu has no message", i);
		for (int d = 0; d < RWD_MAX_DIMS; d++)
			ck_assert_int_eq(jitems[i].present[d], 0);
	}
	rwd_batcher_free(b);
	json_decref(in);
	rwd_model_free(m);
}
END_TEST

START_TEST(batch_arena_has_a_limit)
{
	rwd_batcher_params p = rwd_batcher_default_params();
	ck_assert_uint_eq(p.arena_limit, RWD_BATCHER_ARENA_LIMIT);
	ck_assert_uint_gt(p.arena_limit, 0);
}
END_TEST

/* gone() is a socket peek on the requester's connection: two workers must
 * never call it for one job at the same time. Each item of one job runs in
 * its own batch on one of 4 workers; the callback counts how many threads
 * are inside it. */
static atomic_int gone_inside, gone_max, gone_calls;
static int slow_gone(rwd_job *job)
{
	int now = atomic_fetch_add(&gone_inside, 1) + 1;
	int m = atomic_load(&gone_max);
	while (now > m && !atomic_compare_exchange_weak(&gone_max, &m, now))
		;
	atomic_fetch_add(&gone_calls, 1);
	usleep(20000);
	atomic_fetch_sub(&gone_inside, 1);
	return 0;
}

static int slow_run(void *ctx, void *scratch, rwd_item *const *items, size_t n, rwd_arena *arena)
{
	usleep(5000);
	for (size_t i = 0; i < n; i++)
		items[i]->present[0] = 1;
	return 0;
}

START_TEST(gone_is_never_asked_twice_at_once)
{
	rwd_batcher_params p = rwd_batcher_default_params();
	p.max_batch_size = 1;
	p.workers = 4;
	rwd_batch_exec e = {0};
	e.run = slow_run;
	rwd_batcher *b = NULL;
	rwd_error err;
	rwd_error_clear(&err);
	ck_assert_int_eq(rwd_batcher_new(&p, &e, &b, &err), 0);
	static tjob j;
	tjob_init(&j, 1, 16, RWD_PRIO_NORMAL, 1);
	j.job.gone = slow_gone;
	ck_assert_int_eq(rwd_batcher_submit(b, &j.job), 0);
	wait_done(&j);
	rwd_batcher_free(b);
	ck_assert_int_gt(atomic_load(&gone_calls), 0);
	ck_assert_msg(atomic_load(&gone_max) == 1, "gone() ran on %d threads at once",
		atomic_load(&gone_max));
	for (int i = 0; i < 16; i++)
		ck_assert_int_eq(j.items[i].status, 0);
	ck_assert_uint_eq(j.job.batches, 16);
}
END_TEST

/* A job found gone by one worker: its items still queued are cancelled,
 * and none of them is counted as run. */
static int gone_after_first(rwd_job *job)
{
	return atomic_fetch_add(&gone_calls, 1) >= 1;
}

START_TEST(gone_seen_by_one_worker_cancels_the_rest)
{
	atomic_store(&gone_calls, 0);
	rwd_batcher_params p = rwd_batcher_default_params();
	p.max_batch_size = 1;
	p.workers = 2;
	rwd_batch_exec e = {0};
	e.run = slow_run;
	rwd_batcher *b = NULL;
	rwd_error err;
	rwd_error_clear(&err);
	ck_assert_int_eq(rwd_batcher_new(&p, &e, &b, &err), 0);
	static tjob j;
	tjob_init(&j, 1, 12, RWD_PRIO_NORMAL, 1);
	j.job.gone = gone_after_first;
	ck_assert_int_eq(rwd_batcher_submit(b, &j.job), 0);
	wait_done(&j);
	rwd_batcher_stats st;
	rwd_batcher_get_stats(b, &st);
	rwd_batcher_free(b);
	size_t ok = 0, cancelled = 0;
	for (int i = 0; i < 12; i++) {
		if (j.items[i].status == 0)
			ok++;
		else if (j.items[i].status == RWD_E_CANCELLED)
			cancelled++;
	}
	ck_assert_uint_eq(ok + cancelled, 12);
	ck_assert_uint_ge(ok, 1);
	ck_assert_uint_ge(cancelled, 1);
	ck_assert_uint_eq(st.items_run, ok);
	ck_assert_uint_eq(st.cancelled, cancelled);
}
END_TEST

static Suite *serve_suite(void)
{
	Suite *s = suite_create("serve");
	TCase *tc = tcase_create("batcher");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, fifo_order_and_item_order_kept);
	tcase_add_test(tc, high_priority_runs_first);
	tcase_add_test(tc, batches_fill_up_to_size_and_tokens);
	tcase_add_test(tc, delay_collects_a_batch);
	tcase_add_test(tc, deadline_expires_queued_items);
	tcase_add_test(tc, idle_worker_expires_at_the_deadline);
	tcase_add_test(tc, full_queue_is_refused_whole);
	tcase_add_test(tc, gone_clients_are_dropped);
	tcase_add_test(tc, drain_finishes_everything_then_refuses);
	tcase_add_test(tc, drain_bound_answers_the_queued);
	suite_add_tcase(s, tc);
	TCase *tr = tcase_create("request");
	tcase_add_test(tr, request_valid_defaults_and_caps);
	tcase_add_test(tr, request_errors_name_the_field);
	tcase_add_test(tr, request_fast_path_reads_vectors);
	tcase_add_test(tr, request_embedding_b64);
	suite_add_tcase(s, tr);
	TCase *tm = tcase_create("metrics");
	tcase_add_test(tm, metrics_render_prometheus_text);
	suite_add_tcase(s, tm);
	TCase *tf = tcase_create("failures");
	tcase_set_timeout(tf, 30);
	tcase_add_test(tf, failed_run_fails_every_item);
	tcase_add_test(tf, model_run_out_of_arena_fails_every_item);
	tcase_add_test(tf, batch_arena_has_a_limit);
	tcase_add_test(tf, gone_is_never_asked_twice_at_once);
	tcase_add_test(tf, gone_seen_by_one_worker_cancels_the_rest);
	suite_add_tcase(s, tf);
	return s;
}

RWD_CHECK_MAIN(serve_suite)
