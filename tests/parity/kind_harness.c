/*
 * tests/parity/kind_harness.c — score items with any model kind through the
 * generic model API a worker uses (load, check, prepare, forward), and print
 * what a renderer would see, for oracle tests written in Python
 * (test_sql_sqlite.py, test_long_inputs.py).
 *
 *   kind-harness KIND PATH OPTIONS ITEMS [LIMITS]
 *     KIND     a model kind ("sql", "rules", "seqcls", ...), or "auto" to
 *              detect it from the folder as --model NAME=DIR does
 *     PATH     the model folder or file, "-" for a built-in kind
 *     OPTIONS  the kind options as JSON, or "null"
 *     ITEMS    a JSON file: an array of item objects
 *     LIMITS   optional JSON {"max_tokens": n, "max_batch_size": n}
 *
 * Items are scored in batches of max_batch_size (default 16), in order.
 * stdout: one JSON array, per item either
 *   {"scores": {dim: value, ...}, "extra": {...}?}
 * or {"error": {"code": int, "stage": "check"|"run", "field": str|null, "message": str}}.
 * Exit 2 on a usage or load error (with the reason on stderr).
 */
#include "core/arena.h"
#include "models/model.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what, const rwd_error *err)
{
	char buf[1024];
	fprintf(stderr, "kind-harness: %s: %s\n", what, err ? rwd_error_format(err, buf, sizeof(buf)) : "");
	exit(2);
}

static json_t *error_json(const rwd_error *err, int code, const char *stage)
{
	return json_pack("{s:{s:i, s:s, s:s?, s:s}}", "error", "code", code, "stage", stage, "field",
		err->object[0] ? err->object : NULL, "message", err->msg);
}

int main(int argc, char **argv)
{
	if (argc != 5 && argc != 6) {
		fprintf(stderr, "usage: kind-harness KIND PATH OPTIONS ITEMS [LIMITS]\n");
		return 2;
	}
	json_error_t je;
	json_t *opts = json_loads(argv[3], JSON_DECODE_ANY, &je);
	json_t *items = json_load_file(argv[4], 0, &je);
	json_t *lim = argc == 6 ? json_loads(argv[5], 0, &je) : NULL;
	if (!opts || !json_is_array(items) || (argc == 6 && !json_is_object(lim))) {
		fprintf(stderr, "kind-harness: bad OPTIONS, ITEMS or LIMITS: %s\n", je.text);
		return 2;
	}
	rwd_error err;
	rwd_error_clear(&err);
	rwd_model_params p = rwd_model_default_params();
	p.name = "harness";
	p.kind = strcmp(argv[1], "auto") ? argv[1] : NULL;
	p.path = strcmp(argv[2], "-") ? argv[2] : NULL;
	p.options = json_is_null(opts) ? NULL : opts;
	size_t bs = 16;
	if (lim && json_is_integer(json_object_get(lim, "max_batch_size")))
		bs = (size_t)json_integer_value(json_object_get(lim, "max_batch_size"));
	if (lim && json_is_integer(json_object_get(lim, "max_tokens")))
		p.limits.max_tokens = (size_t)json_integer_value(json_object_get(lim, "max_tokens"));
	p.limits.max_batch_size = bs;
	p.limits.max_batch_tokens = bs * p.limits.max_tokens;
	rwd_model *m = NULL;
	void *scratch = NULL;
	if (rwd_model_load(&p, &m, &err))
		die("load", &err);
	if (rwd_model_scratch_new(m, &scratch, &err))
		die("scratch", &err);
	const rwd_model_info *info = rwd_model_get_info(m);
	rwd_arena *arena = rwd_arena_create(0, 0);
	size_t n = json_array_size(items);
	rwd_item *its = calloc(bs, sizeof(*its));
	rwd_item **ptrs = calloc(bs, sizeof(*ptrs));
	json_t *out = json_array();
	if (!arena || !its || !ptrs || !out)
		die("out of memory", NULL);
	for (size_t b = 0; b < n; b += bs) {
		size_t k = n - b < bs ? n - b : bs, nb = 0;
		for (size_t i = 0; i < k; i++) {
			rwd_item *it = &its[i];
			memset(it, 0, sizeof(*it));
			it->input = json_array_get(items, b + i);
			it->index = i;
			size_t cost = 1;
			rwd_error_clear(&it->err);
			it->status = rwd_model_check(m, it->input, &cost, &it->err);
			it->cost = cost;
			if (!it->status)
				ptrs[nb++] = it;
		}
		rwd_arena_reset(arena);
		if (nb && rwd_model_run(m, scratch, ptrs, nb, arena))
			fprintf(stderr, "kind-harness: a batch failed as a whole (items carry the error)\n");
		size_t c = 0;
		for (size_t i = 0; i < k; i++) {
			rwd_item *it = &its[i];
			int checked = c < nb && ptrs[c] == it;
			if (checked)
				c++;
			if (it->status) {
				json_array_append_new(out, error_json(&it->err, it->status, checked ? "run" : "check"));
				continue;
			}
			json_t *sc = json_object(), *o = json_pack("{s:o}", "scores", sc);
			for (size_t d = 0; d < info->n_dims; d++)
				if (it->present[d])
					json_object_set_new(sc, info->dims[d], json_real(it->scores[d]));
			if (it->extra)
				json_object_set(o, "extra", it->extra);
			json_array_append_new(out, o);
		}
		rwd_item_release(its, k);
	}
	char *s = json_dumps(out, JSON_COMPACT);
	puts(s);
	free(s);
	json_decref(out);
	free(its);
	free(ptrs);
	rwd_arena_destroy(arena);
	rwd_model_scratch_free(m, scratch);
	rwd_model_free(m);
	json_decref(opts);
	json_decref(items);
	json_decref(lim);
	return 0;
}
