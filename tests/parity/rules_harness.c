/*
 * tests/parity/rules_harness.c — drives the `rules` kind's BLEU for
 * test_rules_bleu.py.
 *
 * Usage: rules-harness cases.json
 * cases.json: [{"hyp": str, "refs": [str, …], "smoothing": "method2",
 *               "order": 4}, …]
 * Prints a JSON array with, per case, [bleu, dim]: `bleu` from
 * rwd_rules_bleu() (double, printed with 17 digits) and `dim` the float the
 * model's `bleu` dimension reports for the same item through
 * rwd_model_check() + rwd_model_run(). Exit 1 on any error.
 */
#include "core/arena.h"
#include "models/model.h"
#include "models/rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MODELS 32

static const char *const smooth_names[] = {"none", "method1", "method2", "method3", "method4", NULL};

typedef struct cached {
	int smoothing, order;
	rwd_model *m;
	void *scratch;
} cached;

static cached models[MAX_MODELS];
static int n_models;

static cached *model_for(int smoothing, int order)
{
	for (int i = 0; i < n_models; i++)
		if (models[i].smoothing == smoothing && models[i].order == order)
			return &models[i];
	if (n_models == MAX_MODELS)
		return NULL;
	json_t *opts = json_pack("{s:[s], s:s, s:i, s:i}", "dims", "bleu", "bleu_smoothing",
		smooth_names[smoothing], "bleu_order", order, "max_references", 256);
	rwd_model_params p = rwd_model_default_params();
	p.name = "rules";
	p.kind = "rules";
	p.options = opts;
	rwd_error err;
	rwd_error_clear(&err);
	cached *c = &models[n_models];
	int r = rwd_model_load(&p, &c->m, &err);
	json_decref(opts);
	if (r || rwd_model_scratch_new(c->m, &c->scratch, &err)) {
		fprintf(stderr, "load: %s: %s\n", err.object, err.msg);
		return NULL;
	}
	c->smoothing = smoothing;
	c->order = order;
	n_models++;
	return c;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s cases.json\n", argv[0]);
		return 2;
	}
	json_error_t je;
	json_t *cases = json_load_file(argv[1], 0, &je);
	if (!json_is_array(cases)) {
		fprintf(stderr, "%s: %s (line %d)\n", argv[1], je.text, je.line);
		return 1;
	}
	rwd_arena *arena = rwd_arena_create(0, 0);
	int bad = 0;
	printf("[");
	size_t i;
	json_t *c;
	json_array_foreach(cases, i, c) {
		const json_t *hyp = json_object_get(c, "hyp"), *refs = json_object_get(c, "refs");
		const char *sm = json_string_value(json_object_get(c, "smoothing"));
		int order = (int)json_integer_value(json_object_get(c, "order"));
		int smoothing = -1;
		for (int k = 0; sm && smooth_names[k]; k++)
			if (strcmp(sm, smooth_names[k]) == 0)
				smoothing = k;
		size_t nr = json_array_size(refs);
		if (!json_is_string(hyp) || nr == 0 || smoothing < 0) {
			fprintf(stderr, "case %zu: bad fields\n", i);
			bad = 1;
			break;
		}
		const char **rs = calloc(nr, sizeof(*rs));
		size_t *rl = calloc(nr, sizeof(*rl));
		for (size_t k = 0; k < nr; k++) {
			rs[k] = json_string_value(json_array_get(refs, k));
			rl[k] = json_string_length(json_array_get(refs, k));
		}
		rwd_rules_bleu_params p = rwd_rules_bleu_default_params();
		p.order = order;
		p.smoothing = (rwd_rules_smoothing)smoothing;
		double d = -1;
		int r = rwd_rules_bleu(json_string_value(hyp), json_string_length(hyp), rs, rl, nr, &p, &d);
		free(rs);
		free(rl);
		if (r) {
			fprintf(stderr, "case %zu: rwd_rules_bleu failed: %d\n", i, r);
			bad = 1;
			break;
		}

		cached *mc = model_for(smoothing, order);
		if (!mc) {
			bad = 1;
			break;
		}
		json_t *item = json_pack("{s:O, s:O}", "response", hyp, "reference", refs);
		rwd_error err;
		size_t cost;
		rwd_error_clear(&err);
		rwd_item it;
		memset(&it, 0, sizeof(it));
		it.input = item;
		rwd_item *items[1] = {&it};
		if (rwd_model_check(mc->m, item, &cost, &err) ||
			rwd_model_run(mc->m, mc->scratch, items, 1, arena) || it.status || !it.present[0]) {
			fprintf(stderr, "case %zu: model path failed: %s %s\n", i, err.msg, it.err.msg);
			json_decref(item);
			bad = 1;
			break;
		}
		json_decref(item);
		rwd_arena_reset(arena);
		printf("%s[%.17g, %.9g]", i ? ",\n" : "", d, (double)it.scores[0]);
	}
	printf("]\n");
	for (int k = 0; k < n_models; k++) {
		rwd_model_scratch_free(models[k].m, models[k].scratch);
		rwd_model_free(models[k].m);
	}
	rwd_arena_destroy(arena);
	json_decref(cases);
	return bad;
}
