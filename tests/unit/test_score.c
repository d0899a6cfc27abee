/*
 * tests/unit/test_score.c — serve/score: one request's pipeline without HTTP,
 * on real mlp heads written here (a linear layer, 4 inputs, 2 outputs) and
 * their real batchers. Every expected value is computed in the test from the
 * weights (y = W x + b in double), the reward rule (mean of the requested
 * dimensions), the GRPO formula ((r - mean) / (std + eps), unbiased std) and
 * the ensemble rules (mean, min, population std): never read from the code
 * under test.
 */
#include "rwd_check.h"
#include "core/thread.h"
#include "reward/group.h"
#include "reward/reward.h"
#include "reward/stats.h"
#include "serve/batcher.h"
#include "serve/request.h"
#include "serve/score.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct head {
	float w[2][4], b[2];
	rwd_model *model;
	rwd_batcher *batcher;
} head;

static void head_load(head *h, const char *name)
{
	static const char hdr[] =
		"{\"layers.0.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
		"\"layers.0.weight\":{\"dtype\":\"F32\",\"shape\":[2,4],\"data_offsets\":[8,40]}}";
	char path[96];
	snprintf(path, sizeof(path), "/tmp/rwd-test-score-%ld-%s.safetensors", (long)getpid(), name);
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
	fwrite(h->b, sizeof(float), 2, f);
	fwrite(h->w, sizeof(float), 8, f);
	fclose(f);
	rwd_model_params p = rwd_model_default_params();
	p.name = name;
	p.kind = "mlp";
	p.path = path;
	rwd_error err;
	rwd_error_clear(&err);
	int r = rwd_model_load(&p, &h->model, &err);
	unlink(path);
	ck_assert_msg(r == 0, "%s", err.msg);
	rwd_batcher_params bp = rwd_batcher_default_params();
	bp.name = name;
	bp.max_batch_size = 8;
	bp.max_queue_items = 16;
	bp.workers = 1;
	rwd_batch_exec ex = rwd_batcher_model_exec(h->model);
	ck_assert_int_eq(rwd_batcher_new(&bp, &ex, &h->batcher, &err), 0);
}

static void head_free(head *h)
{
	rwd_batcher_free(h->batcher);
	rwd_model_free(h->model);
}

/* The oracle: output d of head h for embedding x, in double. */
static double lin(const head *h, int d, const double *x)
{
	double y = h->b[d];
	for (int k = 0; k < 4; k++)
		y += (double)h->w[d][k] * x[k];
	return y;
}

static const rwd_model *find_ctx_model;

static const rwd_model *find(void *ctx, const char *name, void **user, rwd_error *err)
{
	(void)name;
	(void)err;
	*user = ctx;
	return find_ctx_model;
}

typedef struct waiter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int calls;
	rwd_score *sc;
} waiter;

static void on_done(rwd_score *sc, void *user)
{
	waiter *w = user;
	pthread_mutex_lock(&w->mu);
	w->calls++;
	w->sc = sc;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static void waiter_init(waiter *w)
{
	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
}

static void waiter_wait(waiter *w)
{
	pthread_mutex_lock(&w->mu);
	uint64_t until = rwd_now_ns() + 20000000000ull;
	while (!w->calls && rwd_now_ns() < until) {
		pthread_mutex_unlock(&w->mu);
		usleep(1000);
		pthread_mutex_lock(&w->mu);
	}
	int calls = w->calls;
	pthread_mutex_unlock(&w->mu);
	ck_assert_int_eq(calls, 1);
}

static void parse(const rwd_model *m, const char *body, rwd_arena *ar, rwd_request *req)
{
	rwd_request_limits lim = rwd_request_default_limits();
	rwd_error err;
	rwd_error_clear(&err);
	find_ctx_model = m;
	int r = rwd_request_parse(body, strlen(body), &lim, find, NULL, ar, req, &err);
	ck_assert_msg(r == 0, "%s: %s", err.object, err.msg);
}

static rwd_reward_config *default_reward(void)
{
	rwd_reward_config *c = NULL;
	rwd_error err;
	rwd_error_clear(&err);
	ck_assert_int_eq(rwd_reward_config_parse(NULL, "", &c, &err), 0);
	return c;
}

/* The GRPO oracle: (r - mean) / (std + eps), std unbiased. */
static void grpo(const double *r, size_t n, double eps, double *a)
{
	double mean = 0, var = 0;
	for (size_t i = 0; i < n; i++)
		mean += r[i];
	mean /= (double)n;
	for (size_t i = 0; i < n; i++)
		var += (r[i] - mean) * (r[i] - mean);
	double sd = n > 1 ? sqrt(var / (double)(n - 1)) : 1.0;
	if (n == 1)
		mean = 0;
	for (size_t i = 0; i < n; i++)
		a[i] = (r[i] - mean) / (sd + eps);
}

static head A = {{{0.5f, -1.0f, 0.25f, 2.0f}, {1.5f, 0.0f, -0.75f, 0.125f}}, {0.1f, -0.2f}, NULL, NULL};
static head B = {{{-0.5f, 1.0f, 0.5f, 0.0f}, {0.25f, 0.25f, 0.25f, 0.25f}}, {0.3f, 0.0f}, NULL, NULL};

static const double X[4][4] = {{1, 2, 3, 4}, {0.5, -1, 2, 0}, {-2, 0.25, 1, 1}, {3, 3, -1, 0.5}};

START_TEST(single_model_rewards_groups_statistics)
{
	head_load(&A, "a");
	rwd_reward_config *rc = default_reward();
	rwd_arena *ar = rwd_arena_create(0, 0);
	rwd_request req;
	parse(A.model, "{\"items\":["
		"{\"embedding\":[1,2,3,4],\"group\":\"g\"},"
		"{\"embedding\":[0.5,-1,2,0]},"
		"{\"embedding\":[-2,0.25,1,1],\"group\":\"g\"},"
		"{\"embedding\":[3,3,-1,0.5],\"group\":7}]}", ar, &req);
	size_t nb;
	const double *bounds = rwd_reward_stats_default_bounds(&nb);
	rwd_reward_stats *st = rwd_reward_stats_new(bounds, nb, 16);
	rwd_score_sinks sinks;
	memset(&sinks, 0, sizeof(sinks));
	sinks.reward = rwd_reward_stats_series(st, "a", "reward");
	sinks.adv = rwd_reward_stats_series(st, "a", "advantage");
	sinks.dim[0] = rwd_reward_stats_series(st, "a", "score_0");
	rwd_score_target t;
	memset(&t, 0, sizeof(t));
	t.name = "a";
	t.model = A.model;
	t.batcher = A.batcher;
	t.reward = rc;
	t.sinks = &sinks;
	waiter w;
	waiter_init(&w);
	rwd_score_params p = rwd_score_default_params();
	p.done = on_done;
	p.user = &w;
	rwd_score *sc;
	rwd_error err;
	rwd_error_clear(&err);
	ck_assert_int_eq(rwd_score_new(&p, &t, &req, ar, &sc, &err), 0);
	ck_assert_int_eq(rwd_score_submit(sc), 0);
	waiter_wait(&w);
	ck_assert_ptr_eq(w.sc, sc);
	ck_assert_uint_eq(rwd_score_n_items(sc), 4);
	double r[4];
	for (size_t i = 0; i < 4; i++) {
		rwd_score_result res;
		rwd_score_result_of(sc, i, &res);
		ck_assert_int_eq(res.item->status, 0);
		ck_assert(res.has_reward);
		double y0 = lin(&A, 0, X[i]), y1 = lin(&A, 1, X[i]);
		ck_assert_double_eq_tol(res.values[0], y0, 1e-5);
		ck_assert_double_eq_tol(res.values[1], y1, 1e-5);
		r[i] = (y0 + y1) / 2;
		ck_assert_double_eq_tol(res.reward, r[i], 1e-5);
	}
	/* group "g" = items 0 and 2; group 7 = item 3 alone (verl: mean 0, std 1); item 1 none */
	double g2[2] = {r[0], r[2]}, a2[2], a1;
	grpo(g2, 2, 1e-6, a2);
	grpo(&r[3], 1, 1e-6, &a1);
	rwd_score_result res;
	rwd_score_result_of(sc, 0, &res);
	ck_assert_ptr_nonnull(res.group);
	ck_assert_double_eq_tol(res.advantage, a2[0], 1e-4);
	ck_assert_uint_eq(res.group->size, 2);
	ck_assert_int_eq(res.group->complete, 1);
	ck_assert_double_eq_tol(res.group->mean, (r[0] + r[2]) / 2, 1e-5);
	rwd_score_result_of(sc, 2, &res);
	ck_assert_double_eq_tol(res.advantage, a2[1], 1e-4);
	rwd_score_result_of(sc, 3, &res);
	ck_assert_double_eq_tol(res.advantage, a1, 1e-4);
	ck_assert_int_eq(json_integer_value(res.group->id), 7);
	rwd_score_result_of(sc, 1, &res);
	ck_assert_ptr_null(res.group);
	ck_assert(isnan(res.advantage));
	/* statistics: 4 rewards, 3 advantages, 4 values of score_0 */
	json_t *j = rwd_reward_stats_json(st, "a");
	json_t *ma = json_object_get(json_object_get(j, "models"), "a");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(ma, "reward"), "count")), 4);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(ma, "advantage"), "count")), 3);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(ma, "score_0"), "count")), 4);
	ck_assert_double_eq_tol(json_real_value(json_object_get(json_object_get(ma, "reward"), "mean")),
		(r[0] + r[1] + r[2] + r[3]) / 4, 1e-5);
	json_decref(j);
	rwd_score_timing tm;
	rwd_score_get_timing(sc, &tm);
	ck_assert_uint_ge(tm.batches, 1);
	rwd_reward_stats_free(st);
	rwd_arena_destroy(ar);
	rwd_reward_config_free(rc);
	head_free(&A);
}
END_TEST

static void run_ensemble(int combine, double k)
{
	head_load(&A, "a");
	head_load(&B, "b");
	rwd_reward_config *rc = default_reward();
	rwd_ensemble_config e;
	char *names[2] = {"a", "b"};
	e.members = names;
	e.n_members = 2;
	e.combine = combine;
	e.k = k;
	rwd_arena *ar = rwd_arena_create(0, 0);
	rwd_request req;
	parse(A.model, "{\"items\":[{\"embedding\":[1,2,3,4]},{\"embedding\":[0.5,-1,2,0]}]}", ar, &req);
	rwd_score_target t;
	memset(&t, 0, sizeof(t));
	t.name = "ens";
	t.model = A.model;
	t.reward = rc;
	t.ensemble = &e;
	t.members[0] = A.batcher;
	t.members[1] = B.batcher;
	waiter w;
	waiter_init(&w);
	rwd_score_params p = rwd_score_default_params();
	p.done = on_done;
	p.user = &w;
	rwd_score *sc;
	rwd_error err;
	rwd_error_clear(&err);
	ck_assert_int_eq(rwd_score_new(&p, &t, &req, ar, &sc, &err), 0);
	ck_assert_int_eq(rwd_score_submit(sc), 0);
	waiter_wait(&w);
	ck_assert_uint_eq(rwd_score_n_members(sc), 2);
	for (size_t i = 0; i < 2; i++) {
		rwd_score_result res;
		rwd_score_result_of(sc, i, &res);
		ck_assert_int_eq(res.item->status, 0);
		double sum = 0;
		for (int d = 0; d < 2; d++) {
			double va = lin(&A, d, X[i]), vb = lin(&B, d, X[i]);
			double mean = (va + vb) / 2, sd = fabs(va - vb) / 2; /* population std of two */
			double want = combine == RWD_ENSEMBLE_MIN ? fmin(va, vb) :
				combine == RWD_ENSEMBLE_MEAN_MINUS_KSTD ? mean - k * sd : mean;
			ck_assert_double_eq_tol(res.values[d], want, 1e-5);
			ck_assert_double_eq_tol(rwd_score_spread(sc, i, (size_t)d), sd, 1e-5);
			ck_assert_double_eq_tol(rwd_score_member_item(sc, 0, i)->scores[d], va, 1e-5);
			ck_assert_double_eq_tol(rwd_score_member_item(sc, 1, i)->scores[d], vb, 1e-5);
			sum += want;
		}
		ck_assert_double_eq_tol(res.reward, sum / 2, 1e-5);
	}
	rwd_arena_destroy(ar);
	rwd_reward_config_free(rc);
	head_free(&A);
	head_free(&B);
}

START_TEST(ensemble_fan_out_and_join)
{
	run_ensemble(RWD_ENSEMBLE_MEAN, 0);
	run_ensemble(RWD_ENSEMBLE_MIN, 0);
	run_ensemble(RWD_ENSEMBLE_MEAN_MINUS_KSTD, 1.5);
}
END_TEST

/* Two requests of one group of 4, through a group table: answered when the 4th arrives. */
START_TEST(cross_request_group)
{
	head_load(&A, "a");
	rwd_reward_config *rc = default_reward();
	rwd_group_table *gt = rwd_group_table_new();
	ck_assert_ptr_nonnull(gt);
	rwd_arena *ar1 = rwd_arena_create(0, 0), *ar2 = rwd_arena_create(0, 0);
	rwd_request q1, q2;
	parse(A.model, "{\"items\":[{\"embedding\":[1,2,3,4],\"group\":\"p\",\"group_size\":4},"
		"{\"embedding\":[0.5,-1,2,0],\"group\":\"p\",\"group_size\":4}]}", ar1, &q1);
	parse(A.model, "{\"items\":[{\"embedding\":[-2,0.25,1,1],\"group\":\"p\",\"group_size\":4},"
		"{\"embedding\":[3,3,-1,0.5],\"group\":\"p\",\"group_size\":4}]}", ar2, &q2);
	rwd_score_target t;
	memset(&t, 0, sizeof(t));
	t.name = "a";
	t.model = A.model;
	t.batcher = A.batcher;
	t.reward = rc;
	waiter w1, w2;
	waiter_init(&w1);
	waiter_init(&w2);
	rwd_score_params p = rwd_score_default_params();
	p.done = on_done;
	p.groups = gt;
	p.user = &w1;
	rwd_score *s1, *s2;
	rwd_error err;
	rwd_error_clear(&err);
	ck_assert_int_eq(rwd_score_new(&p, &t, &q1, ar1, &s1, &err), 0);
	p.user = &w2;
	ck_assert_int_eq(rwd_score_new(&p, &t, &q2, ar2, &s2, &err), 0);
	ck_assert_int_eq(rwd_score_submit(s1), 0);
	usleep(50000);
	ck_assert_int_eq(w1.calls, 0); /* waits for the rest of its group */
	ck_assert_int_eq(rwd_group_table_open(gt), 1);
	ck_assert_int_eq(rwd_score_submit(s2), 0);
	waiter_wait(&w1);
	waiter_wait(&w2);
	double r[4], a[4];
	for (int i = 0; i < 4; i++)
		r[i] = (lin(&A, 0, X[i]) + lin(&A, 1, X[i])) / 2;
	grpo(r, 4, 1e-6, a);
	for (size_t i = 0; i < 4; i++) {
		rwd_score_result res;
		rwd_score_result_of(i < 2 ? s1 : s2, i % 2, &res);
		ck_assert_double_eq_tol(res.advantage, a[i], 1e-4);
		ck_assert_int_eq(res.group->complete, 1);
		ck_assert_uint_eq(res.group->arrived, 4);
		ck_assert_uint_eq(res.group->size, 4);
	}
	/* without a table, a cross-request group is refused, the rewards still come */
	rwd_arena *ar3 = rwd_arena_create(0, 0);
	rwd_request q3;
	parse(A.model, "{\"items\":[{\"embedding\":[1,2,3,4],\"group\":\"p\",\"group_size\":4}]}", ar3, &q3);
	waiter w3;
	waiter_init(&w3);
	p.groups = NULL;
	p.user = &w3;
	rwd_score *s3;
	ck_assert_int_eq(rwd_score_new(&p, &t, &q3, ar3, &s3, &err), 0);
	ck_assert_int_eq(rwd_score_submit(s3), 0);
	waiter_wait(&w3);
	rwd_score_result res;
	rwd_score_result_of(s3, 0, &res);
	ck_assert(res.has_reward);
	ck_assert_int_eq(res.group->failed, RWD_E_STATE);
	ck_assert(isnan(res.advantage));
	rwd_arena_destroy(ar1);
	rwd_arena_destroy(ar2);
	rwd_arena_destroy(ar3);
	rwd_group_table_free(gt);
	rwd_reward_config_free(rc);
	head_free(&A);
}
END_TEST

/* A non-finite requested score fails its item; an unrequested one does not matter. */
START_TEST(non_finite_score_is_an_item_error)
{
	head inf = {{{INFINITY, 0, 0, 0}, {1, 1, 0, 0}}, {0, 0}, NULL, NULL};
	head_load(&inf, "inf");
	rwd_reward_config *rc = default_reward();
	const char *bodies[2] = {
		"{\"items\":[{\"embedding\":[1,2,3,4]}]}",
		"{\"items\":[{\"embedding\":[1,2,3,4]}],\"dimensions\":[\"score_1\"]}",
	};
	for (int c = 0; c < 2; c++) {
		rwd_arena *ar = rwd_arena_create(0, 0);
		rwd_request req;
		parse(inf.model, bodies[c], ar, &req);
		rwd_score_target t;
		memset(&t, 0, sizeof(t));
		t.model = inf.model;
		t.batcher = inf.batcher;
		t.reward = rc;
		waiter w;
		waiter_init(&w);
		rwd_score_params p = rwd_score_default_params();
		p.done = on_done;
		p.user = &w;
		rwd_score *sc;
		rwd_error err;
		rwd_error_clear(&err);
		ck_assert_int_eq(rwd_score_new(&p, &t, &req, ar, &sc, &err), 0);
		ck_assert_int_eq(rwd_score_submit(sc), 0);
		waiter_wait(&w);
		rwd_score_result res;
		rwd_score_result_of(sc, 0, &res);
		if (c == 0) {
			ck_assert_int_eq(res.item->status, RWD_E_INTERNAL);
			ck_assert(!res.has_reward);
			ck_assert_ptr_nonnull(strstr(res.item->err.msg, "non-finite 'score_0'"));
		} else {
			ck_assert_int_eq(res.item->status, 0);
			ck_assert(res.has_reward);
			ck_assert_double_eq_tol(res.reward, 3.0, 1e-6); /* 1*1 + 1*2 */
		}
		rwd_arena_destroy(ar);
	}
	rwd_reward_config_free(rc);
	head_free(&inf);
}
END_TEST

START_TEST(errors_and_refusals)
{
	head_load(&A, "a");
	rwd_reward_config *rc = default_reward();
	rwd_score_target t;
	memset(&t, 0, sizeof(t));
	t.model = A.model;
	t.batcher = A.batcher;
	t.reward = rc;
	rwd_score_params p = rwd_score_default_params();
	waiter w;
	waiter_init(&w);
	p.done = on_done;
	p.user = &w;
	static const struct {
		const char *body;
		const char *field;
	} cases[] = {
		{"{\"items\":[{\"embedding\":[1,2,3,4],\"group_size\":2}]}", "items[0].group_size"},
		{"{\"items\":[{\"embedding\":[1,2,3,4],\"group\":1.5}]}", "items[0].group"},
		{"{\"items\":[{\"embedding\":[1,2,3,4],\"group\":1,\"group_size\":2},"
			"{\"embedding\":[1,2,3,4],\"group\":1}]}", "items[1].group_size"},
		{"{\"items\":[{\"embedding\":[1,2,3,4],\"group\":1,\"group_size\":1},"
			"{\"embedding\":[1,2,3,4],\"group\":1,\"group_size\":1}]}", "items[1].group_size"},
		{"{\"items\":[{\"embedding\":[1,2,3,4]}],\"reward\":{\"mode\":\"min\"}}", "reward.mode"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rwd_arena *ar = rwd_arena_create(0, 0);
		rwd_request req;
		parse(A.model, cases[i].body, ar, &req);
		rwd_score *sc = NULL;
		rwd_error err;
		rwd_error_clear(&err);
		int r = rwd_score_new(&p, &t, &req, ar, &sc, &err);
		ck_assert_msg(r == RWD_E_INVALID, "case %zu: %d", i, r);
		ck_assert_str_eq(err.object, cases[i].field);
		ck_assert(err.msg[0]);
		ck_assert_ptr_null(sc);
		rwd_arena_destroy(ar);
	}
	/* a draining batcher refuses: nothing queued, no done() */
	rwd_arena *ar = rwd_arena_create(0, 0);
	rwd_request req;
	parse(A.model, "{\"items\":[{\"embedding\":[1,2,3,4]}]}", ar, &req);
	rwd_score *sc;
	rwd_error err;
	rwd_error_clear(&err);
	ck_assert_int_eq(rwd_score_new(&p, &t, &req, ar, &sc, &err), 0);
	rwd_batcher_drain(A.batcher, 1000000000ull);
	ck_assert_int_eq(rwd_score_submit(sc), RWD_E_STATE);
	usleep(20000);
	ck_assert_int_eq(w.calls, 0);
	/* an ensemble whose every member refuses is refused the same way */
	rwd_ensemble_config e;
	char *names[2] = {"a", "a2"};
	e.members = names;
	e.n_members = 2;
	e.combine = RWD_ENSEMBLE_MEAN;
	e.k = 0;
	t.ensemble = &e;
	t.members[0] = A.batcher;
	t.members[1] = A.batcher;
	ck_assert_int_eq(rwd_score_new(&p, &t, &req, ar, &sc, &err), 0);
	ck_assert_int_eq(rwd_score_submit(sc), RWD_E_STATE);
	usleep(20000);
	ck_assert_int_eq(w.calls, 0);
	/* a missing member batcher is refused at set-up */
	t.members[1] = NULL;
	ck_assert_int_eq(rwd_score_new(&p, &t, &req, ar, &sc, &err), RWD_E_STATE);
	rwd_arena_destroy(ar);
	rwd_reward_config_free(rc);
	head_free(&A);
}
END_TEST

static Suite *score_suite(void)
{
	Suite *s = suite_create("score");
	TCase *tc = tcase_create("pipeline");
	tcase_add_test(tc, single_model_rewards_groups_statistics);
	tcase_add_test(tc, ensemble_fan_out_and_join);
	tcase_add_test(tc, cross_request_group);
	tcase_add_test(tc, non_finite_score_is_an_item_error);
	tcase_add_test(tc, errors_and_refusals);
	suite_add_tcase(s, tc);
	return s;
}

RWD_CHECK_MAIN(score_suite)
