/*
 * tests/parity/seqcls_harness.c — score token-id sequences with a seqcls
 * model folder, for test_seqcls_torch.py and bench/bench_seqcls.py.
 *
 *   seqcls_harness MODEL_DIR [--max-batch-tokens N] [--max-batch-size N]
 *                  [--max-tokens N] [--truncate] [--repeat N] [--threads N]
 *                  [--precision fp32|bf16]
 *
 * stdin: one item per line, a JSON array of ids or an item object
 * ({"input_ids": [...]}). All lines are scored as ONE batch through
 * rwd_model_check + rwd_model_run (so packing and chunking are exercised).
 * stdout: {"dims": [...]} then one line per item, {"scores": [...]} or
 * {"error": {"code": ..., "message": ...}}; with --repeat N the batch runs N
 * more times and {"seconds": [...], "tokens": T} is printed last (timing of
 * the forward passes only, for the benchmark).
 */
#include "core/arena.h"
#include "core/thread.h"
#include "models/model.h"
#include "nn/nn.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_err(const rwd_error *e)
{
	char buf[1024];
	json_t *o = json_pack("{s:{s:s,s:s}}", "error", "code", rwd_strerror(e->code), "message",
		rwd_error_format(e, buf, sizeof(buf)));
	char *s = json_dumps(o, JSON_COMPACT);
	printf("%s\n", s);
	free(s);
	json_decref(o);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s MODEL_DIR [options] < items.jsonl\n", argv[0]);
		return 2;
	}
	rwd_model_params mp = rwd_model_default_params();
	json_t *opts = json_object();
	int repeat = 0, threads = 0;
	mp.name = "seqcls";
	mp.path = argv[1];
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--truncate") == 0)
			json_object_set_new(opts, "truncate", json_true());
		else if (i + 1 < argc && strcmp(argv[i], "--max-batch-tokens") == 0)
			mp.limits.max_batch_tokens = strtoull(argv[++i], NULL, 10);
		else if (i + 1 < argc && strcmp(argv[i], "--max-batch-size") == 0)
			mp.limits.max_batch_size = strtoull(argv[++i], NULL, 10);
		else if (i + 1 < argc && strcmp(argv[i], "--max-tokens") == 0)
			mp.limits.max_tokens = strtoull(argv[++i], NULL, 10);
		else if (i + 1 < argc && strcmp(argv[i], "--repeat") == 0)
			repeat = atoi(argv[++i]);
		else if (i + 1 < argc && strcmp(argv[i], "--threads") == 0)
			threads = atoi(argv[++i]);
		else if (i + 1 < argc && strcmp(argv[i], "--precision") == 0)
			json_object_set_new(opts, "precision", json_string(argv[++i]));
		else if (i + 1 < argc && strcmp(argv[i], "--option") == 0) {
			/* KEY=JSON, e.g. step_tag_id=5 or system_prompt=null */
			char *kv = argv[++i], *eq = strchr(kv, '=');
			json_t *v = eq ? json_loads(eq + 1, JSON_DECODE_ANY, NULL) : NULL;
			if (!v) {
				fprintf(stderr, "--option wants KEY=JSON, got %s\n", kv);
				return 2;
			}
			*eq = 0;
			json_object_set_new(opts, kv, v);
		}
		else {
			fprintf(stderr, "unknown option %s\n", argv[i]);
			return 2;
		}
	}
	mp.options = opts;
	rwd_nn_threading_init(threads, NULL, 0);

	/* read all items first: the batch size decides the limits */
	json_t *lines = json_array();
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	while ((len = getline(&line, &cap, stdin)) > 0) {
		if (len <= 1)
			continue;
		json_error_t jerr;
		json_t *v = json_loads(line, 0, &jerr);
		if (!v) {
			fprintf(stderr, "bad input line: %s\n", jerr.text);
			return 2;
		}
		if (json_is_array(v)) {
			json_t *o = json_pack("{s:o}", "input_ids", v);
			v = o;
		}
		json_array_append_new(lines, v);
	}
	free(line);
	size_t n = json_array_size(lines);
	if (mp.limits.max_batch_size < n)
		mp.limits.max_batch_size = n ? n : 1;

	rwd_error err = {0};
	rwd_model *m = NULL;
	if (rwd_model_load(&mp, &m, &err)) {
		char buf[1024];
		fprintf(stderr, "load: %s\n", rwd_error_format(&err, buf, sizeof(buf)));
		return 1;
	}
	const rwd_model_info *info = rwd_model_get_info(m);
	json_t *dims = json_array();
	for (size_t d = 0; d < info->n_dims; d++)
		json_array_append_new(dims, json_string(info->dims[d]));
	json_t *head = json_pack("{s:o}", "dims", dims);
	char *hs = json_dumps(head, JSON_COMPACT);
	printf("%s\n", hs);
	free(hs);
	json_decref(head);

	void *scratch = NULL;
	if (rwd_model_scratch_new(m, &scratch, &err)) {
		char buf[1024];
		fprintf(stderr, "scratch: %s\n", rwd_error_format(&err, buf, sizeof(buf)));
		return 1;
	}
	rwd_item *items = calloc(n ? n : 1, sizeof(*items));
	rwd_item **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
	rwd_item **ok = calloc(n ? n : 1, sizeof(*ok));
	size_t n_ok = 0, tokens = 0;
	for (size_t i = 0; i < n; i++) {
		items[i].input = json_array_get(lines, i);
		items[i].index = i;
		ptrs[i] = &items[i];
		rwd_error_clear(&items[i].err);
		items[i].status = rwd_model_check(m, items[i].input, &items[i].cost, &items[i].err);
		if (!items[i].status) {
			ok[n_ok++] = &items[i];
			tokens += items[i].cost;
		}
	}
	rwd_arena *arena = rwd_arena_create(0, 0);
	int r = rwd_model_run(m, scratch, ok, n_ok, arena);
	if (r)
		fprintf(stderr, "forward: %s\n", rwd_strerror(r));
	for (size_t i = 0; i < n; i++) {
		if (items[i].status) {
			print_err(&items[i].err);
			continue;
		}
		printf("{\"scores\":[");
		for (size_t d = 0; d < info->n_dims; d++)
			printf("%s%.9g", d ? "," : "", (double)items[i].scores[d]);
		printf("]");
		if (items[i].extra) {
			/* the kind's per-item outputs (PRM step rewards), at full float precision */
			char *x = json_dumps(items[i].extra, JSON_COMPACT | JSON_REAL_PRECISION(9));
			printf(",\"extra\":%s", x ? x : "null");
			free(x);
		}
		printf("}\n");
	}
	if (repeat > 0) {
		json_t *secs = json_array();
		for (int k = 0; k < repeat; k++) {
			rwd_arena_reset(arena);
			for (size_t i = 0; i < n_ok; i++)
				ok[i]->status = 0;
			uint64_t t0 = rwd_now_ns();
			rwd_model_run(m, scratch, ok, n_ok, arena);
			json_array_append_new(secs, json_real((double)(rwd_now_ns() - t0) / 1e9));
		}
		json_t *o = json_pack("{s:o,s:I}", "seconds", secs, "tokens", (json_int_t)tokens);
		char *s = json_dumps(o, JSON_COMPACT);
		printf("%s\n", s);
		free(s);
		json_decref(o);
	}
	rwd_arena_destroy(arena);
	rwd_item_release(items, n);
	free(items);
	free(ptrs);
	free(ok);
	rwd_model_scratch_free(m, scratch);
	rwd_model_free(m);
	json_decref(lines);
	json_decref(opts);
	return r ? 1 : 0;
}
