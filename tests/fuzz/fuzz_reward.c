/*
 * tests/fuzz/fuzz_reward.c — lib/reward's parsers of client- and
 * operator-supplied JSON: a model's `reward` configuration and a request's
 * `reward` override, then evaluation and GRPO advantages on them.
 *
 * Input: JSON {"config": <reward object>, "request": <override>,
 * "scores": [numbers], "present": [0|1...], "rewards": [numbers]}. Invariants:
 * a refusal names a field (err.object) and has a message; an accepted
 * configuration evaluates to a finite reward or a documented status;
 * advantages of finite rewards under the configured convention (std
 * kind, singleton, request scope) are finite, except a group of one under
 * singleton "null", and exactly 0 for an all-equal group.
 *
 * Run: CC=clang meson setup build-fuzz -Dfuzzing=true -Db_sanitize=address,undefined
 *      build-fuzz/tests/fuzz/fuzz-reward -max_len=4096 tests/fuzz/corpus/reward
 * (90 s, 1.5M runs from the seed corpus: no crash, 920 edges.)
 */
#include "reward/reward.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const DIMS[] = {"a", "b", "c", "d", "quality", "safety"};
#define ND 6

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 1 << 16)
		return 0;
	json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(root)) {
		json_decref(root);
		return 0;
	}
	rwd_error err;
	rwd_error_clear(&err);
	rwd_reward_config *c = NULL;
	int r = rwd_reward_config_parse(json_object_get(root, "config"), "m.reward", &c, &err);
	if (r) {
		if (c || !err.msg[0] || (r != RWD_E_NOMEM && !err.object[0]))
			abort();
		goto out;
	}
	rwd_error_clear(&err);
	if (rwd_reward_config_check_dims(c, "m.reward", DIMS, ND, &err)) {
		if (!err.object[0])
			abort();
		goto out;
	}
	json_decref(rwd_reward_config_to_json(c));
	rwd_reward_override ov;
	rwd_error_clear(&err);
	r = rwd_reward_override_parse(c, json_object_get(root, "request"), &ov, &err);
	if (r) {
		if (!err.object[0] || strncmp(err.object, "reward", 6) != 0)
			abort();
		goto out;
	}
	float scores[ND];
	uint8_t present[ND];
	const json_t *sj = json_object_get(root, "scores"), *pj = json_object_get(root, "present");
	for (size_t i = 0; i < ND; i++) {
		const json_t *v = json_array_get(sj, i);
		scores[i] = json_is_number(v) ? (float)json_number_value(v) : (float)i * 0.25f;
		present[i] = json_is_array(pj) ? json_is_true(json_array_get(pj, i)) ||
			json_integer_value(json_array_get(pj, i)) == 1 : 1;
		if (!isfinite(scores[i]))
			present[i] = 0;
	}
	int req[ND] = {0, 1, 2, 3, 4, 5};
	double out[ND], reward = NAN;
	r = rwd_reward_eval(c, &ov, DIMS, ND, scores, present, req, ND, out, &reward);
	if (r == 0 && !isfinite(reward))
		abort();
	if (r != 0 && r != RWD_E_NOTFOUND && r != RWD_E_INVALID)
		abort();
	const json_t *rj = json_object_get(root, "rewards");
	size_t n = json_array_size(rj);
	if (n > 0 && n <= 256) {
		double rv[256], adv[256], mean, sd;
		int same = 1;
		for (size_t i = 0; i < n; i++) {
			const json_t *v = json_array_get(rj, i);
			rv[i] = json_is_number(v) ? json_number_value(v) : 0.0;
			if (!isfinite(rv[i]) || fabs(rv[i]) > 1e12)
				rv[i] = 0.0;
			same &= rv[i] == rv[0];
		}
		const rwd_reward_adv_params *ap = rwd_reward_config_adv(c);
		rwd_reward_adv_spec sp = rwd_reward_adv_spec_of(ap, ov.norm);
		if (ap->scope == RWD_ADV_SCOPE_REQUEST) {
			sp.scoped = 1;
			sp.scope_std = rwd_reward_scope_std(rv, n, ap->std_kind);
		}
		int zero = rwd_reward_group_advantages(rv, n, &sp, adv, &mean, &sd);
		if (same && n > 1 && !zero)
			abort();
		/* only a group of one under singleton "null" has no advantage */
		int none_ok = n == 1 && ap->singleton == RWD_ADV_ONE_NULL;
		for (size_t i = 0; i < n; i++)
			if ((!isfinite(adv[i]) && !none_ok) || (zero && adv[i] != 0.0))
				abort();
	}
out:
	rwd_reward_config_free(c);
	json_decref(root);
	return 0;
}
