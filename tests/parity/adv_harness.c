/*
 * tests/parity/adv_harness.c — drives lib/reward's group advantages for
 * test_adv_conventions.py.
 *
 * Usage: adv-harness cases.json
 * cases.json: [{"advantage": {...}, "rewards": [number], "groups": [str]}, ...]
 * where "advantage" is a model's reward.advantage object (parsed by
 * rwd_reward_config_parse, so the presets are the parser's) and
 * groups[i] is item i's group key.
 * Prints a JSON array with, per case, {"request": [adv|null], "table":
 * [adv|null] | null, "error": str?}:
 *   request: the groups formed within one request, as the pipeline does: per
 *            key, rwd_reward_group_advantages over the group's rewards, with
 *            std_scope request the divisor rwd_reward_scope_std over every
 *            reward of the request;
 *   table:   the same groups sent through rwd_group_table as cross-request
 *            groups, each split into two parts (first half, rest) that arrive
 *            separately; null under std_scope request (no such thing across
 *            requests).
 * Doubles are printed with 17 significant digits. Exit 1 on any error.
 */
#include "reward/group.h"
#include "reward/reward.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct part_box {
	rwd_group_part part;
	int calls;
} part_box;

static void on_done(rwd_group_part *p)
{
	((part_box *)p->user)->calls++;
}

static json_t *num(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

/* item indices of each distinct key, in first-appearance order */
static size_t group_items(const json_t *groups, size_t n, size_t *order, size_t *start, size_t *count)
{
	size_t ng = 0, k = 0;
	char *seen = calloc(n ? n : 1, 1);
	for (size_t i = 0; i < n; i++) {
		if (seen[i])
			continue;
		const char *key = json_string_value(json_array_get(groups, i));
		start[ng] = k;
		count[ng] = 0;
		for (size_t j = i; j < n; j++)
			if (!seen[j] && strcmp(key, json_string_value(json_array_get(groups, j))) == 0) {
				seen[j] = 1;
				order[k++] = j;
				count[ng]++;
			}
		ng++;
	}
	free(seen);
	return ng;
}

static json_t *run_case(const json_t *c)
{
	const json_t *rj = json_object_get(c, "rewards"), *gj = json_object_get(c, "groups");
	size_t n = json_array_size(rj);
	if (!n || json_array_size(gj) != n)
		return NULL;
	json_t *cfg = json_pack("{sO}", "advantage", json_object_get(c, "advantage"));
	rwd_reward_config *rc = NULL;
	rwd_error err;
	rwd_error_clear(&err);
	if (rwd_reward_config_parse(cfg, "reward", &rc, &err)) {
		json_decref(cfg);
		return json_pack("{ss++}", "error", err.object, ": ", err.msg);
	}
	json_decref(cfg);
	const rwd_reward_adv_params *ap = rwd_reward_config_adv(rc);
	double *r = calloc(n, sizeof(double)), *tmp = calloc(n, sizeof(double)), *adv = calloc(n, sizeof(double));
	size_t *order = calloc(n, sizeof(size_t)), *start = calloc(n, sizeof(size_t)), *count = calloc(n, sizeof(size_t));
	for (size_t i = 0; i < n; i++)
		r[i] = json_number_value(json_array_get(rj, i));
	size_t ng = group_items(gj, n, order, start, count);

	/* within one request */
	rwd_reward_adv_spec sp = rwd_reward_adv_spec_of(ap, -1);
	if (ap->scope == RWD_ADV_SCOPE_REQUEST) {
		sp.scoped = 1;
		sp.scope_std = rwd_reward_scope_std(r, n, ap->std_kind);
	}
	for (size_t g = 0; g < ng; g++) {
		double *gr = calloc(count[g], sizeof(double)), *ga = calloc(count[g], sizeof(double));
		for (size_t k = 0; k < count[g]; k++)
			gr[k] = r[order[start[g] + k]];
		rwd_reward_group_advantages(gr, count[g], &sp, ga, NULL, NULL);
		for (size_t k = 0; k < count[g]; k++)
			adv[order[start[g] + k]] = ga[k];
		free(gr);
		free(ga);
	}
	json_t *req = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(req, num(adv[i]));

	/* through the group table, two parts per group */
	json_t *tab = json_null();
	if (ap->scope == RWD_ADV_SCOPE_GROUP) {
		rwd_group_table *t = rwd_group_table_new();
		part_box *boxes = calloc(2 * ng, sizeof(part_box));
		for (size_t i = 0; i < n; i++)
			tmp[i] = r[order[i]]; /* rewards in group order */
		int bad = 0;
		for (size_t g = 0; g < ng && !bad; g++) {
			size_t h = count[g] / 2, sizes[2] = {h, count[g] - h}, off = start[g];
			for (int p = 0; p < 2; p++) {
				if (!sizes[p])
					continue;
				rwd_group_part *pt = &boxes[2 * g + p].part;
				pt->n = sizes[p];
				pt->rewards = tmp + off;
				pt->adv = adv + off; /* group order; mapped back below */
				pt->norm = ap->norm;
				pt->std_kind = ap->std_kind;
				pt->singleton = ap->singleton;
				pt->eps = ap->eps;
				pt->zero_std_tol = ap->zero_std_tol;
				pt->done = on_done;
				pt->user = &boxes[2 * g + p];
				char key[32];
				snprintf(key, sizeof(key), "g%zu", g);
				if (rwd_group_table_add(t, key, count[g], 60000000000ull, 1u << 20, pt))
					bad = 1;
				off += sizes[p];
			}
		}
		for (size_t g = 0; g < ng; g++)
			for (int p = 0; p < 2; p++)
				if (boxes[2 * g + p].part.n && (boxes[2 * g + p].calls != 1 || !boxes[2 * g + p].part.complete))
					bad = 1;
		rwd_group_table_free(t);
		free(boxes);
		if (bad) {
			fprintf(stderr, "group table: a part was not answered once, complete\n");
			exit(1);
		}
		double *back = calloc(n, sizeof(double));
		for (size_t i = 0; i < n; i++)
			back[order[i]] = adv[i];
		tab = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(tab, num(back[i]));
		free(back);
	}
	free(r);
	free(tmp);
	free(adv);
	free(order);
	free(start);
	free(count);
	rwd_reward_config_free(rc);
	return json_pack("{soso}", "request", req, "table", tab);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: adv-harness cases.json\n");
		return 2;
	}
	json_error_t je;
	json_t *cases = json_load_file(argv[1], 0, &je);
	if (!json_is_array(cases)) {
		fprintf(stderr, "%s: %s\n", argv[1], je.text);
		return 1;
	}
	json_t *out = json_array();
	size_t i;
	json_t *c;
	json_array_foreach(cases, i, c) {
		json_t *o = run_case(c);
		if (!o) {
			fprintf(stderr, "case %zu: rewards/groups malformed\n", i);
			return 1;
		}
		json_array_append_new(out, o);
	}
	char *s = json_dumps(out, JSON_REAL_PRECISION(17) | JSON_COMPACT);
	puts(s);
	free(s);
	json_decref(out);
	json_decref(cases);
	return 0;
}
