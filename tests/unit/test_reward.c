/*
 * tests/unit/test_reward.c — lib/reward: transforms, every aggregation mode
 * (with absent dimensions), config and request-override errors naming the
 * field, GRPO advantages, the cross-request group table (complete, deadline,
 * flush), ensemble combination and the statistics. Expected values are
 * hand-derived from the documented formulas (the integration test checks
 * the daemon against numpy/torch).
 */
#include "rwd_check.h"

#include "core/thread.h"
#include "reward/group.h"
#include "reward/reward.h"
#include "reward/stats.h"

#include <math.h>
#include <pthread.h>

static const char *const DIMS[] = {"a", "b", "c", "d"};

static rwd_reward_config *cfg(const char *txt)
{
	json_error_t je;
	json_t *j = json_loads(txt, 0, &je);
	ck_assert_msg(j != NULL, "bad test json: %s", je.text);
	rwd_reward_config *c = NULL;
	rwd_error err;
	rwd_error_clear(&err);
	int r = rwd_reward_config_parse(j, "models.m.reward", &c, &err);
	json_decref(j);
	ck_assert_msg(r == 0, "parse failed: %s: %s", err.object, err.msg);
	ck_assert_int_eq(rwd_reward_config_check_dims(c, "models.m.reward", DIMS, 4, &err), 0);
	return c;
}

static void cfg_err(const char *txt, const char *field)
{
	json_t *j = json_loads(txt, 0, NULL);
	ck_assert(j != NULL);
	rwd_reward_config *c = NULL;
	rwd_error err;
	rwd_error_clear(&err);
	int r = rwd_reward_config_parse(j, "models.m.reward", &c, &err);
	if (!r) {
		r = rwd_reward_config_check_dims(c, "models.m.reward", DIMS, 4, &err);
		rwd_reward_config_free(c);
	}
	json_decref(j);
	ck_assert_msg(r != 0, "accepted: %s", txt);
	ck_assert_msg(strcmp(err.object, field) == 0, "field '%s', wanted '%s' (%s)", err.object, field, err.msg);
}

/* Evaluate with scores a..d; present as given. */
static int ev(const rwd_reward_config *c, const rwd_reward_override *ov, const float *s,
	const uint8_t *p, double *reward)
{
	double out[4];
	int req[4] = {0, 1, 2, 3};
	return rwd_reward_eval(c, ov, DIMS, 4, s, p, req, 4, out, reward);
}

#define EPS 1e-12
static const float S[4] = {0.5f, 0.25f, 2.0f, -1.0f};
static const uint8_t ALL[4] = {1, 1, 1, 1};
static const uint8_t NO_B[4] = {1, 0, 1, 1};

START_TEST(transforms_chain)
{
	rwd_reward_config *c = cfg("{\"transforms\": {"
		"\"a\": [{\"affine\": {\"scale\": 4, \"shift\": -1}}, {\"clip\": {\"max\": 0.5}}],"
		"\"b\": [{\"sigmoid\": {\"scale\": 2, \"center\": 0.25}}],"
		"\"c\": [{\"rescale\": {\"from\": [1, 5]}}],"
		"\"d\": [{\"rescale\": {\"from\": [0, 4]}}]}}");
	double out[4], r;
	int req[2] = {0, 2};
	ck_assert_int_eq(rwd_reward_eval(c, NULL, DIMS, 4, S, ALL, req, 2, out, &r), 0);
	ck_assert_double_eq_tol(out[0], 0.5, EPS);          /* 4*0.5-1 = 1, clipped to 0.5 */
	ck_assert_double_eq_tol(out[1], 0.5, EPS);          /* sigmoid(0) */
	ck_assert_double_eq_tol(out[2], 0.25, EPS);         /* (2-1)/4 */
	ck_assert_double_eq_tol(out[3], 0.0, EPS);          /* below the range: clamped */
	ck_assert_double_eq_tol(r, (0.5 + 0.25) / 2, EPS);  /* default: mean of requested */
	ck_assert(rwd_reward_config_has_transforms(c));
	ck_assert(!rwd_reward_config_has_aggregate(c));
	/* absent stays absent */
	ck_assert_int_eq(rwd_reward_eval(c, NULL, DIMS, 4, S, NO_B, req, 2, out, &r), 0);
	ck_assert(isnan(out[1]));
	rwd_reward_config_free(c);
}
END_TEST

START_TEST(every_mode_with_and_without_absent)
{
	double r;
	rwd_reward_config *c;
	c = cfg("{\"aggregate\": {\"mode\": \"weighted_sum\", \"terms\": [\"a\", \"b\", \"c\"], \"weights\": {\"a\": 2, \"c\": 0.5}}}");
	ck_assert_int_eq(ev(c, NULL, S, ALL, &r), 0);
	ck_assert_double_eq_tol(r, 2 * 0.5 + 0.25 + 0.5 * 2.0, EPS);
	ck_assert_int_eq(ev(c, NULL, S, NO_B, &r), 0); /* skip: present terms only */
	ck_assert_double_eq_tol(r, 2 * 0.5 + 0.5 * 2.0, EPS);
	rwd_reward_config_free(c);

	c = cfg("{\"aggregate\": {\"mode\": \"mean\", \"terms\": [\"a\", \"b\", \"c\"], \"weights\": {\"a\": 2}}}");
	ck_assert_int_eq(ev(c, NULL, S, ALL, &r), 0);
	ck_assert_double_eq_tol(r, (2 * 0.5 + 0.25 + 2.0) / 4, EPS);
	ck_assert_int_eq(ev(c, NULL, S, NO_B, &r), 0); /* weights renormalised over present */
	ck_assert_double_eq_tol(r, (2 * 0.5 + 2.0) / 3, EPS);
	rwd_reward_config_free(c);

	c = cfg("{\"aggregate\": {\"mode\": \"mean\", \"terms\": [\"a\", \"b\"], \"absent\": \"null\"}}");
	ck_assert_int_eq(ev(c, NULL, S, NO_B, &r), RWD_E_NOTFOUND);
	rwd_reward_config_free(c);

	c = cfg("{\"aggregate\": {\"mode\": \"min\", \"terms\": [\"a\", \"b\", \"d\"]}}");
	ck_assert_int_eq(ev(c, NULL, S, ALL, &r), 0);
	ck_assert_double_eq_tol(r, -1.0, EPS);
	ck_assert_int_eq(ev(c, NULL, S, NO_B, &r), RWD_E_NOTFOUND); /* default null */
	rwd_reward_config_free(c);
	c = cfg("{\"aggregate\": {\"mode\": \"min\", \"terms\": [\"a\", \"b\", \"c\"], \"absent\": \"skip\"}}");
	ck_assert_int_eq(ev(c, NULL, S, NO_B, &r), 0);
	ck_assert_double_eq_tol(r, 0.5, EPS);
	rwd_reward_config_free(c);

	c = cfg("{\"aggregate\": {\"mode\": \"geometric_mean\", \"terms\": [\"a\", \"c\"]}}");
	ck_assert_int_eq(ev(c, NULL, S, ALL, &r), 0);
	ck_assert_double_eq_tol(r, sqrt(0.5 * 2.0), EPS);
	rwd_reward_config_free(c);
	c = cfg("{\"aggregate\": {\"mode\": \"geometric_mean\", \"terms\": [\"a\", \"c\"], \"weights\": {\"a\": 3}}}");
	ck_assert_int_eq(ev(c, NULL, S, ALL, &r), 0);
	ck_assert_double_eq_tol(r, pow(0.5, 0.75) * pow(2.0, 0.25), EPS);
	rwd_reward_config_free(c);
	c = cfg("{\"aggregate\": {\"mode\": \"geometric_mean\", \"terms\": [\"a\", \"d\"]}}");
	ck_assert_int_eq(ev(c, NULL, S, ALL, &r), RWD_E_INVALID); /* negative term */
	rwd_reward_config_free(c);

	c = cfg("{\"aggregate\": {\"mode\": \"product\", \"terms\": [\"a\", \"b\", \"c\"]}}");
	ck_assert_int_eq(ev(c, NULL, S, ALL, &r), 0);
	ck_assert_double_eq_tol(r, 0.5 * 0.25 * 2.0, EPS);
	ck_assert_int_eq(ev(c, NULL, S, NO_B, &r), RWD_E_NOTFOUND);
	rwd_reward_config_free(c);

	c = cfg("{\"aggregate\": {\"mode\": \"base_and_bonus\", \"terms\": [\"c\", \"a\"], \"a\": 0.6, \"b\": 0.4}}");
	ck_assert_int_eq(ev(c, NULL, S, ALL, &r), 0);
	ck_assert_double_eq_tol(r, 2.0 * (0.6 + 0.4 * 0.5), EPS);
	rwd_reward_config_free(c);
	c = cfg("{\"aggregate\": {\"mode\": \"base_and_bonus\", \"terms\": [\"c\", \"b\"]}}");
	ck_assert_int_eq(ev(c, NULL, S, NO_B, &r), RWD_E_NOTFOUND); /* bonus absent */
	rwd_reward_config_free(c);

	/* nothing present: no reward whatever the mode */
	static const uint8_t NONE[4] = {0, 0, 0, 0};
	c = cfg("{\"aggregate\": {\"mode\": \"weighted_sum\", \"terms\": [\"a\", \"b\"]}}");
	ck_assert_int_eq(ev(c, NULL, S, NONE, &r), RWD_E_NOTFOUND);
	rwd_reward_config_free(c);
}
END_TEST

START_TEST(editscore_and_firm_shapes)
{
	/* EditScore: sqrt(min(pf, cons) * quality), as a nested node */
	rwd_reward_config *c = cfg("{\"aggregate\": {\"mode\": \"geometric_mean\", \"terms\": ["
		"{\"name\": \"sc\", \"mode\": \"min\", \"terms\": [\"a\", \"b\"]}, \"c\"]}}");
	double r;
	ck_assert_int_eq(ev(c, NULL, S, ALL, &r), 0);
	ck_assert_double_eq_tol(r, sqrt(fmin(0.5, 0.25) * 2.0), EPS);
	ck_assert_int_eq(ev(c, NULL, S, NO_B, &r), RWD_E_NOTFOUND);
	rwd_reward_config_free(c);
	/* FIRM CME: exec * (0.6 + 0.4 cons) on (s-1)/4-normalised 1..5 scores */
	c = cfg("{\"transforms\": {\"a\": [{\"rescale\": {\"from\": [1, 5]}}], \"c\": [{\"rescale\": {\"from\": [1, 5]}}]},"
		"\"aggregate\": {\"mode\": \"base_and_bonus\", \"terms\": [\"c\", \"a\"], \"a\": 0.6, \"b\": 0.4}}");
	const float s2[4] = {4.0f, 0, 3.0f, 0};
	ck_assert_int_eq(ev(c, NULL, s2, ALL, &r), 0);
	ck_assert_double_eq_tol(r, 0.5 * (0.6 + 0.4 * 0.75), EPS);
	rwd_reward_config_free(c);
}
END_TEST

START_TEST(config_errors_name_the_field)
{
	cfg_err("{\"aggregate\": {\"mode\": \"median\", \"terms\": [\"a\"]}}", "models.m.reward.aggregate.mode");
	cfg_err("{\"aggregate\": {\"mode\": \"mean\", \"terms\": []}}", "models.m.reward.aggregate.terms");
	cfg_err("{\"aggregate\": {\"mode\": \"mean\", \"terms\": [\"a\", \"zz\"]}}", "models.m.reward.aggregate.terms[1]");
	cfg_err("{\"aggregate\": {\"mode\": \"mean\", \"terms\": [\"a\", {\"mode\": \"x\", \"terms\": [\"b\"]}]}}",
		"models.m.reward.aggregate.terms[1].mode");
	cfg_err("{\"aggregate\": {\"mode\": \"mean\", \"terms\": [\"a\"], \"weights\": {\"b\": 1}}}",
		"models.m.reward.aggregate.weights.b");
	cfg_err("{\"aggregate\": {\"mode\": \"mean\", \"terms\": [\"a\"], \"weights\": {\"a\": -1}}}",
		"models.m.reward.aggregate.weights.a");
	cfg_err("{\"aggregate\": {\"mode\": \"base_and_bonus\", \"terms\": [\"a\"]}}", "models.m.reward.aggregate.terms");
	cfg_err("{\"aggregate\": {\"mode\": \"mean\", \"terms\": [\"a\"], \"a\": 1}}", "models.m.reward.aggregate.a");
	cfg_err("{\"aggregate\": {\"mode\": \"base_and_bonus\", \"terms\": [\"a\", \"b\"], \"absent\": \"skip\"}}",
		"models.m.reward.aggregate.absent");
	cfg_err("{\"transforms\": {\"a\": [{\"clip\": {\"min\": 2, \"max\": 1}}]}}", "models.m.reward.transforms.a[0].clip.max");
	cfg_err("{\"transforms\": {\"a\": [{\"rescale\": {\"from\": [1, 1]}}]}}", "models.m.reward.transforms.a[0].rescale.from");
	cfg_err("{\"transforms\": {\"a\": [{\"log\": {}}]}}", "models.m.reward.transforms.a[0].log");
	cfg_err("{\"transforms\": {\"q\": []}}", "models.m.reward.transforms.q");
	cfg_err("{\"transforms\": {\"a\": [{\"affine\": {\"scale\": \"2\"}}]}}", "models.m.reward.transforms.a[0].affine.scale");
	cfg_err("{\"aggregat\": {}}", "models.m.reward.aggregat");
	cfg_err("{\"overrides\": {\"modes\": [\"mean\"]}}", "models.m.reward.overrides");
	cfg_err("{\"aggregate\": {\"mode\": \"mean\", \"terms\": [\"a\"]}, \"overrides\": {\"modes\": [\"nope\"]}}",
		"models.m.reward.overrides.modes[0]");
	cfg_err("{\"aggregate\": {\"mode\": \"mean\", \"terms\": [\"a\"]}, \"overrides\": {\"weights\": {\"min\": 2, \"max\": 1}}}",
		"models.m.reward.overrides.weights.max");
	cfg_err("{\"advantage\": {\"normalize\": \"z\"}}", "models.m.reward.advantage.normalize");
	cfg_err("{\"advantage\": {\"eps\": -1}}", "models.m.reward.advantage.eps");
	cfg_err("{\"advantage\": {\"group_timeout_ms\": 0}}", "models.m.reward.advantage.group_timeout_ms");
	cfg_err("{\"aggregate\": {\"mode\": \"mean\", \"terms\": [{\"mode\": \"mean\", \"terms\": [{\"mode\": \"mean\", "
		"\"terms\": [{\"mode\": \"mean\", \"terms\": [{\"mode\": \"mean\", \"terms\": [\"a\"]}]}]}]}]}}",
		"models.m.reward.aggregate.terms[0].terms[0].terms[0].terms[0]");
}
END_TEST

static int ov_parse(const rwd_reward_config *c, const char *txt, rwd_reward_override *ov, rwd_error *err)
{
	json_t *j = json_loads(txt, 0, NULL);
	ck_assert(j != NULL);
	rwd_error_clear(err);
	int r = rwd_reward_override_parse(c, j, ov, err);
	json_decref(j);
	return r;
}

START_TEST(request_overrides_within_bounds)
{
	rwd_reward_config *c = cfg("{\"aggregate\": {\"mode\": \"weighted_sum\", \"terms\": [\"a\", \"c\"]},"
		"\"overrides\": {\"modes\": [\"mean\", \"min\"], \"weights\": {\"min\": 0, \"max\": 2}}}");
	rwd_reward_override ov;
	rwd_error err;
	double r;
	ck_assert_int_eq(ov_parse(c, "{\"mode\": \"min\"}", &ov, &err), 0);
	ck_assert_int_eq(ev(c, &ov, S, ALL, &r), 0);
	ck_assert_double_eq_tol(r, 0.5, EPS);
	ck_assert_int_eq(ov_parse(c, "{\"weights\": {\"c\": 0.5}}", &ov, &err), 0);
	ck_assert_int_eq(ev(c, &ov, S, ALL, &r), 0);
	ck_assert_double_eq_tol(r, 0.5 + 0.5 * 2.0, EPS);
	ck_assert_int_eq(ov_parse(c, "{\"mode\": \"weighted_sum\"}", &ov, &err), 0); /* the configured mode */
	ck_assert_int_ne(ov_parse(c, "{\"mode\": \"product\"}", &ov, &err), 0);
	ck_assert_str_eq(err.object, "reward.mode");
	ck_assert_int_ne(ov_parse(c, "{\"weights\": {\"c\": 2.5}}", &ov, &err), 0);
	ck_assert_str_eq(err.object, "reward.weights.c");
	ck_assert_int_ne(ov_parse(c, "{\"weights\": {\"b\": 1}}", &ov, &err), 0);
	ck_assert_str_eq(err.object, "reward.weights.b");
	ck_assert_int_ne(ov_parse(c, "{\"advantage\": \"mean_only\"}", &ov, &err), 0);
	ck_assert_str_eq(err.object, "reward.advantage");
	ck_assert_int_ne(ov_parse(c, "{\"bogus\": 1}", &ov, &err), 0);
	ck_assert_str_eq(err.object, "reward.bogus");
	rwd_reward_config_free(c);
	/* no overrides configured: any change is refused */
	c = cfg("{}");
	ck_assert_int_ne(ov_parse(c, "{\"mode\": \"mean\"}", &ov, &err), 0);
	ck_assert_str_eq(err.object, "reward.mode");
	rwd_reward_config_free(c);
}
END_TEST

START_TEST(advantages_formulas)
{
	double r[4] = {1, 2, 3, 6}, a[4], m, sd;
	ck_assert_int_eq(rwd_reward_advantages(r, 4, RWD_ADV_STD, 1e-6, 0.0, a, &m, &sd), 0);
	/* mean 3, unbiased var = (4+1+0+9)/3 */
	double esd = sqrt(14.0 / 3.0);
	ck_assert_double_eq_tol(m, 3.0, EPS);
	ck_assert_double_eq_tol(sd, esd, EPS);
	for (int i = 0; i < 4; i++)
		ck_assert_double_eq_tol(a[i], (r[i] - 3.0) / (esd + 1e-6), EPS);
	rwd_reward_advantages(r, 4, RWD_ADV_MEAN_ONLY, 1e-6, 0.0, a, NULL, NULL);
	ck_assert_double_eq_tol(a[3], 3.0, EPS);
	double one = 0.7;
	rwd_reward_advantages(&one, 1, RWD_ADV_STD, 1e-6, 0.0, a, &m, &sd); /* verl: mean 0, std 1 */
	ck_assert_double_eq_tol(a[0], 0.7 / (1 + 1e-6), EPS);
	ck_assert_double_eq_tol(sd, 1.0, EPS);
	double same[3] = {0.1, 0.1, 0.1};
	ck_assert_int_eq(rwd_reward_advantages(same, 3, RWD_ADV_STD, 1e-6, 0.0, a, NULL, &sd), 1);
	ck_assert(a[0] == 0.0 && a[1] == 0.0 && a[2] == 0.0 && sd == 0.0);
	/* float residue within the tolerance counts as zero variance; beyond it, not */
	double near[2] = {0.5, 0.5 + 1e-9};
	ck_assert_int_eq(rwd_reward_advantages(near, 2, RWD_ADV_STD, 1e-6, 1e-6, a, NULL, NULL), 1);
	ck_assert(a[0] == 0.0 && a[1] == 0.0);
	ck_assert_int_eq(rwd_reward_advantages(near, 2, RWD_ADV_STD, 1e-6, 0.0, a, NULL, NULL), 0);
	ck_assert(fabs(a[0]) > 1e-4);
}
END_TEST

/*
 * The trainer conventions: the parser's presets and overrides, and the
 * formulas written out by hand (flow_grpo stat_tracking.py:25-31: population
 * std + 1e-4, global_std over the request; DanceGRPO train_grpo_flux.py:
 * 540-544: unbiased std + 1e-8, NaN for a group of one). The numpy/torch
 * oracles are tests/parity/test_adv_conventions.py.
 */
START_TEST(advantage_conventions)
{
	rwd_reward_config *c = cfg("{}");
	const rwd_reward_adv_params *p = rwd_reward_config_adv(c);
	ck_assert_int_eq(p->convention, RWD_ADV_CONV_VERL);
	ck_assert_int_eq(p->std_kind, RWD_ADV_STD_UNBIASED);
	ck_assert_int_eq(p->singleton, RWD_ADV_ONE_UNIT);
	ck_assert_int_eq(p->scope, RWD_ADV_SCOPE_GROUP);
	ck_assert(p->eps == 1e-6);
	rwd_reward_config_free(c);

	c = cfg("{\"advantage\": {\"convention\": \"flow_grpo\"}}");
	p = rwd_reward_config_adv(c);
	ck_assert(p->std_kind == RWD_ADV_STD_POPULATION && p->singleton == RWD_ADV_ONE_ZERO &&
		p->scope == RWD_ADV_SCOPE_GROUP && p->eps == 1e-4 && p->norm == RWD_ADV_STD);
	json_t *js = rwd_reward_config_to_json(c);
	json_t *aj = json_object_get(js, "advantage");
	ck_assert_str_eq(json_string_value(json_object_get(aj, "convention")), "flow_grpo");
	ck_assert_str_eq(json_string_value(json_object_get(aj, "std")), "population");
	ck_assert_str_eq(json_string_value(json_object_get(aj, "singleton")), "zero");
	ck_assert_str_eq(json_string_value(json_object_get(aj, "std_scope")), "group");
	ck_assert(json_real_value(json_object_get(aj, "eps")) == 1e-4);
	json_decref(js);
	rwd_reward_config_free(c);

	c = cfg("{\"advantage\": {\"convention\": \"flow_grpo_global_std\"}}");
	ck_assert_int_eq(rwd_reward_config_adv(c)->scope, RWD_ADV_SCOPE_REQUEST);
	rwd_reward_config_free(c);
	c = cfg("{\"advantage\": {\"convention\": \"dancegrpo\"}}");
	p = rwd_reward_config_adv(c);
	ck_assert(p->std_kind == RWD_ADV_STD_UNBIASED && p->singleton == RWD_ADV_ONE_NULL && p->eps == 1e-8);
	rwd_reward_config_free(c);
	/* explicit fields override the preset, in any key order */
	c = cfg("{\"advantage\": {\"eps\": 1e-3, \"convention\": \"dancegrpo\", \"singleton\": \"unit\"}}");
	p = rwd_reward_config_adv(c);
	ck_assert(p->eps == 1e-3 && p->singleton == RWD_ADV_ONE_UNIT && p->convention == RWD_ADV_CONV_DANCEGRPO);
	rwd_reward_config_free(c);
	/* std population alone implies singleton zero; unbiased alone gives unit back */
	c = cfg("{\"advantage\": {\"std\": \"population\"}}");
	ck_assert_int_eq(rwd_reward_config_adv(c)->singleton, RWD_ADV_ONE_ZERO);
	rwd_reward_config_free(c);
	c = cfg("{\"advantage\": {\"convention\": \"flow_grpo\", \"std\": \"unbiased\"}}");
	ck_assert_int_eq(rwd_reward_config_adv(c)->singleton, RWD_ADV_ONE_UNIT);
	rwd_reward_config_free(c);

	cfg_err("{\"advantage\": {\"convention\": \"grpo\"}}", "models.m.reward.advantage.convention");
	cfg_err("{\"advantage\": {\"std\": \"sample\"}}", "models.m.reward.advantage.std");
	cfg_err("{\"advantage\": {\"singleton\": 0}}", "models.m.reward.advantage.singleton");
	cfg_err("{\"advantage\": {\"std_scope\": \"batch\"}}", "models.m.reward.advantage.std_scope");
	cfg_err("{\"advantage\": {\"convention\": \"flow_grpo_global_std\", \"normalize\": \"mean_only\"}}",
		"models.m.reward.advantage.std_scope");

	/* population std: r = {1, 2, 3, 6}, mean 3, var 14/4 */
	double r[4] = {1, 2, 3, 6}, a[8], m, sd;
	rwd_reward_adv_spec fg = {.norm = RWD_ADV_STD, .std_kind = RWD_ADV_STD_POPULATION,
		.singleton = RWD_ADV_ONE_ZERO, .eps = 1e-4, .zero_std_tol = 1e-6};
	ck_assert_int_eq(rwd_reward_group_advantages(r, 4, &fg, a, &m, &sd), 0);
	ck_assert_double_eq_tol(sd, sqrt(14.0 / 4.0), EPS);
	for (int i = 0; i < 4; i++)
		ck_assert_double_eq_tol(a[i], (r[i] - 3.0) / (sqrt(3.5) + 1e-4), EPS);
	/* a group of one: 0 (population), null (DanceGRPO), r/(1+eps) (verl) */
	double one = 0.7;
	ck_assert_int_eq(rwd_reward_group_advantages(&one, 1, &fg, a, &m, &sd), 1);
	ck_assert(a[0] == 0.0 && m == 0.7 && sd == 0.0);
	rwd_reward_adv_spec dg = {.norm = RWD_ADV_STD, .std_kind = RWD_ADV_STD_UNBIASED,
		.singleton = RWD_ADV_ONE_NULL, .eps = 1e-8, .zero_std_tol = 1e-6};
	ck_assert_int_eq(rwd_reward_group_advantages(&one, 1, &dg, a, &m, &sd), 0);
	ck_assert(isnan(a[0]) && isnan(sd));
	ck_assert_int_eq(rwd_reward_group_advantages(r, 4, &dg, a, NULL, &sd), 0);
	ck_assert_double_eq_tol(a[3], 3.0 / (sqrt(14.0 / 3.0) + 1e-8), EPS);
	/* eps 1e-8 on equal rewards: exactly 0, not a residue over 1e-8 */
	double same[8] = {0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7};
	ck_assert_int_eq(rwd_reward_group_advantages(same, 8, &dg, a, NULL, NULL), 1);
	for (int i = 0; i < 8; i++)
		ck_assert(a[i] == 0.0);
	/* request scope: the divisor is the request's std, the mean the group's */
	double all[6] = {1, 2, 3, 6, 10, 12};
	double gs = rwd_reward_scope_std(all, 6, RWD_ADV_STD_POPULATION);
	double mu = 34.0 / 6.0, ss = 0;
	for (int i = 0; i < 6; i++)
		ss += (all[i] - mu) * (all[i] - mu);
	ck_assert_double_eq_tol(gs, sqrt(ss / 6.0), EPS);
	fg.scoped = 1;
	fg.scope_std = gs;
	rwd_reward_group_advantages(all + 4, 2, &fg, a, &m, &sd);
	ck_assert_double_eq_tol(m, 11.0, EPS);
	ck_assert_double_eq_tol(sd, gs, EPS);
	ck_assert_double_eq_tol(a[0], -1.0 / (gs + 1e-4), EPS);
	ck_assert(rwd_reward_group_advantages(&one, 1, &fg, a, NULL, NULL) == 1 && a[0] == 0.0);
	/* NaN and single values for the scope */
	double holes[3] = {NAN, 4.0, NAN};
	ck_assert(rwd_reward_scope_std(holes, 3, RWD_ADV_STD_POPULATION) == 0.0);
	ck_assert(isnan(rwd_reward_scope_std(holes, 3, RWD_ADV_STD_UNBIASED)));
	/* the old entry point is verl's convention */
	double b[4];
	rwd_reward_adv_spec vl = rwd_reward_adv_spec_of(rwd_reward_config_adv(c = cfg("{}")), -1);
	rwd_reward_group_advantages(r, 4, &vl, a, NULL, NULL);
	rwd_reward_advantages(r, 4, RWD_ADV_STD, 1e-6, 1e-6, b, NULL, NULL);
	for (int i = 0; i < 4; i++)
		ck_assert(a[i] == b[i]);
	rwd_reward_config_free(c);
}
END_TEST

typedef struct waiter {
	rwd_group_part part;
	double rewards[4], adv[4];
	int calls;
} waiter;

static void part_done(rwd_group_part *p)
{
	/* release: the main thread polls calls with an acquire load */
	__atomic_add_fetch(&((waiter *)p->user)->calls, 1, __ATOMIC_RELEASE);
}

static void waiter_init(waiter *w, size_t n, const double *r)
{
	memset(w, 0, sizeof(*w));
	memcpy(w->rewards, r, n * sizeof(double));
	w->part.n = n;
	w->part.rewards = w->rewards;
	w->part.adv = w->adv;
	w->part.norm = RWD_ADV_STD;
	w->part.eps = 1e-6;
	w->part.zero_std_tol = 0.0;
	w->part.done = part_done;
	w->part.user = w;
}

START_TEST(group_table_complete_deadline_flush)
{
	rwd_group_table *t = rwd_group_table_new();
	ck_assert(t != NULL);
	waiter w1, w2, w3;
	const double r1[2] = {1, 2}, r2[2] = {3, NAN}, r3[1] = {5};
	waiter_init(&w1, 2, r1);
	waiter_init(&w2, 2, r2);
	ck_assert_int_eq(rwd_group_table_add(t, "m\x1fg1", 4, 5000000000ull, 16, &w1.part), 0);
	ck_assert_int_eq(w1.calls, 0);
	ck_assert_uint_eq(rwd_group_table_open(t), 1);
	ck_assert_int_eq(rwd_group_table_add(t, "m\x1fg1", 4, 5000000000ull, 16, &w2.part), 0);
	ck_assert_int_eq(w1.calls, 1);
	ck_assert_int_eq(w2.calls, 1);
	ck_assert(w1.part.complete && w2.part.complete);
	ck_assert_uint_eq(w1.part.arrived, 4);
	ck_assert_uint_eq(w1.part.counted, 3); /* NaN not counted */
	double a[3], all[3] = {1, 2, 3};
	rwd_reward_advantages(all, 3, RWD_ADV_STD, 1e-6, 0.0, a, NULL, NULL);
	ck_assert_double_eq_tol(w1.adv[0], a[0], EPS);
	ck_assert_double_eq_tol(w1.adv[1], a[1], EPS);
	ck_assert_double_eq_tol(w2.adv[0], a[2], EPS);
	ck_assert(isnan(w2.adv[1]));
	ck_assert_uint_eq(rwd_group_table_open(t), 0);
	/* deadline: answered incomplete by the table's thread */
	waiter_init(&w3, 1, r3);
	uint64_t t0 = rwd_now_ns();
	ck_assert_int_eq(rwd_group_table_add(t, "m\x1fg2", 8, 50000000ull, 16, &w3.part), 0);
	while (!__atomic_load_n(&w3.calls, __ATOMIC_ACQUIRE) && rwd_now_ns() - t0 < 5000000000ull)
		usleep(1000);
	ck_assert_int_eq(w3.calls, 1);
	ck_assert_uint_ge(rwd_now_ns() - t0, 50000000ull);
	ck_assert_int_eq(w3.part.complete, 0);
	ck_assert_double_eq_tol(w3.adv[0], 5.0 / (1 + 1e-6), EPS); /* a group of one */
	/* max open groups, then flush answers what is open */
	waiter_init(&w1, 1, r3);
	waiter_init(&w2, 1, r3);
	ck_assert_int_eq(rwd_group_table_add(t, "x", 3, 5000000000ull, 1, &w1.part), 0);
	ck_assert_int_eq(rwd_group_table_add(t, "y", 3, 5000000000ull, 1, &w2.part), RWD_E_FULL);
	rwd_group_table_flush(t);
	ck_assert_int_eq(w1.calls, 1);
	ck_assert_int_eq(rwd_group_table_add(t, "y", 3, 5000000000ull, 1, &w2.part), RWD_E_STATE);
	rwd_group_table_free(t);
}
END_TEST

typedef struct racer {
	rwd_group_table *t;
	int id;
	waiter w[50];
} racer;

static void *race_adds(void *arg)
{
	racer *rc = arg;
	for (int g = 0; g < 50; g++) {
		char key[32];
		snprintf(key, sizeof(key), "g%d", g);
		const double r[1] = {(double)rc->id};
		waiter_init(&rc->w[g], 1, r);
		ck_assert_int_eq(rwd_group_table_add(rc->t, key, 8, 10000000000ull, 1000, &rc->w[g].part), 0);
	}
	return NULL;
}

START_TEST(group_table_concurrent_parts)
{
	/* 8 threads each add one item to each of 50 groups of size 8: every group
	 * completes exactly once with all 8 members, whatever the interleaving */
	rwd_group_table *t = rwd_group_table_new();
	static racer rc[8];
	pthread_t th[8];
	for (int i = 0; i < 8; i++) {
		rc[i].t = t;
		rc[i].id = i;
		pthread_create(&th[i], NULL, race_adds, &rc[i]);
	}
	for (int i = 0; i < 8; i++)
		pthread_join(th[i], NULL);
	ck_assert_uint_eq(rwd_group_table_open(t), 0);
	double all[8] = {0, 1, 2, 3, 4, 5, 6, 7}, a[8];
	rwd_reward_advantages(all, 8, RWD_ADV_STD, 1e-6, 0.0, a, NULL, NULL);
	for (int i = 0; i < 8; i++)
		for (int g = 0; g < 50; g++) {
			ck_assert_int_eq(rc[i].w[g].calls, 1);
			ck_assert(rc[i].w[g].part.complete);
			ck_assert_uint_eq(rc[i].w[g].part.arrived, 8);
			ck_assert_double_eq_tol(rc[i].w[g].adv[0], a[i], EPS);
		}
	rwd_group_table_free(t);
}
END_TEST

START_TEST(ensemble_parse_and_combine)
{
	json_t *m = json_loads("[\"h1\", \"h2\", \"h3\"]", 0, NULL);
	json_t *cb = json_loads("{\"mode\": \"mean_minus_kstd\", \"k\": 0.5}", 0, NULL);
	rwd_ensemble_config e;
	rwd_error err;
	rwd_error_clear(&err);
	ck_assert_int_eq(rwd_ensemble_config_parse(m, cb, "models.e", &e, &err), 0);
	ck_assert_uint_eq(e.n_members, 3);
	ck_assert_int_eq(e.combine, RWD_ENSEMBLE_MEAN_MINUS_KSTD);
	double v[3] = {1, 2, 6}, sp;
	double sd = sqrt(((1 - 3.0) * (1 - 3.0) + 1 + 9) / 3.0);
	ck_assert_double_eq_tol(rwd_ensemble_combine(e.combine, e.k, v, 3, &sp), 3.0 - 0.5 * sd, EPS);
	ck_assert_double_eq_tol(sp, sd, EPS);
	ck_assert_double_eq_tol(rwd_ensemble_combine(RWD_ENSEMBLE_MIN, 0, v, 3, NULL), 1.0, EPS);
	ck_assert_double_eq_tol(rwd_ensemble_combine(RWD_ENSEMBLE_MEAN, 0, v, 3, NULL), 3.0, EPS);
	rwd_ensemble_config_clear(&e);
	json_decref(cb);
	cb = json_string("median");
	ck_assert_int_ne(rwd_ensemble_config_parse(m, cb, "models.e", &e, &err), 0);
	ck_assert_str_eq(err.object, "models.e.combine");
	json_decref(cb);
	json_decref(m);
	m = json_loads("[\"h1\", \"h1\"]", 0, NULL);
	ck_assert_int_ne(rwd_ensemble_config_parse(m, NULL, "models.e", &e, &err), 0);
	ck_assert_str_eq(err.object, "models.e.members[1]");
	json_decref(m);
	m = json_loads("[\"h1\"]", 0, NULL);
	ck_assert_int_ne(rwd_ensemble_config_parse(m, NULL, "models.e", &e, &err), 0);
	ck_assert_str_eq(err.object, "models.e.members");
	json_decref(m);
}
END_TEST

static void *adder(void *arg)
{
	rwd_reward_series *se = arg;
	for (int i = 0; i < 1000; i++)
		rwd_reward_series_add(se, (double)(i % 10) / 10.0);
	return NULL;
}

START_TEST(stats_welford_histogram_window)
{
	size_t nb;
	const double *b = rwd_reward_stats_default_bounds(&nb);
	rwd_reward_stats *s = rwd_reward_stats_new(b, nb, 4);
	ck_assert(s != NULL);
	rwd_reward_series *se = rwd_reward_stats_series(s, "m", "reward");
	ck_assert(se == rwd_reward_stats_series(s, "m", "reward"));
	const double v[6] = {1, 2, 3, 4, 5, 6};
	for (int i = 0; i < 6; i++)
		rwd_reward_series_add(se, v[i]);
	rwd_reward_series_add(se, NAN);
	json_t *j = rwd_reward_stats_json(s, NULL);
	json_t *o = json_object_get(json_object_get(json_object_get(j, "models"), "m"), "reward");
	ck_assert_int_eq(json_integer_value(json_object_get(o, "count")), 6);
	ck_assert_double_eq_tol(json_real_value(json_object_get(o, "mean")), 3.5, EPS);
	ck_assert_double_eq_tol(json_real_value(json_object_get(o, "std")), sqrt(17.5 / 6), 1e-12);
	json_t *rec = json_object_get(o, "recent");
	ck_assert_int_eq(json_integer_value(json_object_get(rec, "n")), 4);
	ck_assert_double_eq_tol(json_real_value(json_array_get(json_object_get(rec, "values"), 0)), 3.0, EPS);
	ck_assert_double_eq_tol(json_real_value(json_object_get(rec, "mean")), 4.5, EPS);
	json_t *counts = json_object_get(json_object_get(o, "histogram"), "counts");
	ck_assert_uint_eq(json_array_size(counts), nb + 1);
	/* bounds ... 1, 2, 5, 10: <=1: 1, <=2: 2, <=5: 5, <=10: 6 */
	for (size_t i = 0; i < nb; i++) {
		size_t want = 0;
		for (int q = 0; q < 6; q++)
			want += v[q] <= b[i];
		ck_assert_int_eq(json_integer_value(json_array_get(counts, i)), (json_int_t)want);
	}
	ck_assert_int_eq(json_integer_value(json_array_get(counts, nb)), 6);
	json_decref(j);
	/* concurrent adders: count is exact */
	rwd_reward_series *s2 = rwd_reward_stats_series(s, "m", "x");
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, adder, s2);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	j = rwd_reward_stats_json(s, "m");
	o = json_object_get(json_object_get(json_object_get(j, "models"), "m"), "x");
	ck_assert_int_eq(json_integer_value(json_object_get(o, "count")), 4000);
	ck_assert_double_eq_tol(json_real_value(json_object_get(o, "mean")), 0.45, 1e-12);
	json_decref(j);
	rwd_reward_stats_free(s);
	ck_assert(rwd_reward_stats_new(b, 2, 0) == NULL);
}
END_TEST

static Suite *reward_suite(void)
{
	Suite *s = suite_create("reward");
	TCase *tc = tcase_create("reward");
	tcase_add_test(tc, transforms_chain);
	tcase_add_test(tc, every_mode_with_and_without_absent);
	tcase_add_test(tc, editscore_and_firm_shapes);
	tcase_add_test(tc, config_errors_name_the_field);
	tcase_add_test(tc, request_overrides_within_bounds);
	tcase_add_test(tc, advantages_formulas);
	tcase_add_test(tc, advantage_conventions);
	tcase_add_test(tc, group_table_complete_deadline_flush);
	tcase_add_test(tc, group_table_concurrent_parts);
	tcase_add_test(tc, ensemble_parse_and_combine);
	tcase_add_test(tc, stats_welford_histogram_window);
	suite_add_tcase(s, tc);
	return s;
}

RWD_CHECK_MAIN(reward_suite)
