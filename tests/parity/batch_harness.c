/*
 * tests/parity/batch_harness.c — batch invariance of any model kind, end to
 * end through the generic model API (check, prepare, forward), for
 * test_batch_invariance.py.
 *
 *   batch-harness KIND PATH OPTIONS ITEMS
 *     KIND     a model kind ("mlp", "clip", "seqcls", "image_metrics", ...)
 *     PATH     the model folder or file, "-" for a built-in kind
 *     OPTIONS  the kind options as JSON, or "null"
 *     ITEMS    a JSON file: an array of item objects
 *
 * The oracle is each item scored alone in a batch of one with one BLAS
 * thread. Then, with 1 and with 2 BLAS threads (the model reloaded, since
 * oneDNN fixes its threads at load), every item is scored inside batches of
 * 2, 3, 5, 8, 13 and all items, each size twice (forward and reversed
 * order, rotated), so it meets different neighbours at different positions.
 * Every score, presence flag and status must equal the oracle's bit for
 * bit, and per-item extras (a PRM's step rewards) their JSON with every
 * float printed exactly. Prints one line per thread count and batch size, and exits 1 on any
 * difference (2 on a usage or load error).
 */
#include "core/arena.h"
#include "models/model.h"
#include "nn/nn.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what, const rwd_error *err)
{
	char buf[1024];
	fprintf(stderr, "batch-harness: %s: %s\n", what, err ? rwd_error_format(err, buf, sizeof(buf)) : "");
	exit(2);
}

struct result {
	int status;
	uint8_t present[RWD_MAX_DIMS];
	float scores[RWD_MAX_DIMS];
	char *extra; /* item->extra (a PRM's step_rewards/step_probs) as JSON, every float exact */
};

struct run {
	rwd_model *m;
	void *scratch;
	rwd_arena *arena;
	json_t *items;
	rwd_item *its;
	rwd_item **ptrs;
};

/* Score items idx[0..k) as one batch (checked ones only, as the batcher does); results into out[idx[i]]. */
static void score(struct run *r, const size_t *idx, size_t k, struct result *out)
{
	size_t nb = 0;
	for (size_t i = 0; i < k; i++) {
		rwd_item *it = &r->its[i];
		memset(it, 0, sizeof(*it));
		it->input = json_array_get(r->items, idx[i]);
		it->index = i;
		size_t cost = 1;
		it->status = rwd_model_check(r->m, it->input, &cost, &it->err);
		it->cost = cost;
		if (!it->status)
			r->ptrs[nb++] = it;
	}
	rwd_arena_reset(r->arena);
	if (nb)
		rwd_model_run(r->m, r->scratch, r->ptrs, nb, r->arena);
	for (size_t i = 0; i < k; i++) {
		struct result *o = &out[idx[i]];
		free(o->extra);
		memset(o, 0, sizeof(*o));
		o->status = r->its[i].status;
		if (r->its[i].extra)
			o->extra = json_dumps(r->its[i].extra, JSON_SORT_KEYS | JSON_COMPACT |
				JSON_REAL_PRECISION(17));
		for (int d = 0; d < RWD_MAX_DIMS; d++) {
			o->present[d] = r->its[i].present[d];
			if (o->present[d])
				o->scores[d] = r->its[i].scores[d];
		}
	}
	rwd_item_release(r->its, k);
}

static void load(struct run *r, const char *kind, const char *path, const json_t *opts, size_t n)
{
	rwd_error err;
	rwd_error_clear(&err);
	rwd_model_params p = rwd_model_default_params();
	p.name = "batch";
	p.kind = kind;
	p.path = strcmp(path, "-") ? path : NULL;
	p.options = opts;
	p.limits.max_batch_size = n;
	p.limits.max_batch_tokens = n * p.limits.max_tokens;
	if (rwd_model_load(&p, &r->m, &err))
		die("load", &err);
	if (rwd_model_scratch_new(r->m, &r->scratch, &err))
		die("scratch", &err);
}

static void unload(struct run *r)
{
	rwd_model_scratch_free(r->m, r->scratch);
	rwd_model_free(r->m);
	r->m = NULL;
	r->scratch = NULL;
}

static size_t compare(const struct result *a, const struct result *ref, size_t n, size_t *items_bad)
{
	size_t bad = 0;
	for (size_t i = 0; i < n; i++) {
		size_t d0 = bad;
		if (a[i].status != ref[i].status)
			bad++;
		if (!a[i].extra != !ref[i].extra || (a[i].extra && strcmp(a[i].extra, ref[i].extra))) {
			bad++;
			(*items_bad)++;
			if (*items_bad <= 3)
				fprintf(stderr, "  item %zu extra: %.200s vs %.200s alone\n", i,
					a[i].extra ? a[i].extra : "(none)", ref[i].extra ? ref[i].extra : "(none)");
			continue;
		}
		for (int d = 0; d < RWD_MAX_DIMS; d++) {
			if (a[i].present[d] != ref[i].present[d])
				bad++;
			else if (a[i].present[d] && memcmp(&a[i].scores[d], &ref[i].scores[d], sizeof(float)))
				bad++;
		}
		if (bad != d0) {
			(*items_bad)++;
			if (*items_bad <= 3)
				for (int d = 0; d < RWD_MAX_DIMS; d++)
					if (a[i].present[d] && ref[i].present[d] && a[i].scores[d] != ref[i].scores[d])
						fprintf(stderr, "  item %zu dim %d: %.9g vs %.9g alone\n", i, d,
							(double)a[i].scores[d], (double)ref[i].scores[d]);
		}
	}
	return bad;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: batch-harness KIND PATH OPTIONS ITEMS\n");
		return 2;
	}
	json_error_t jerr;
	json_t *opts = json_loads(argv[3], JSON_DECODE_ANY, &jerr);
	if (!opts)
		die("OPTIONS is not JSON", NULL);
	struct run r = {0};
	r.items = json_load_file(argv[4], 0, &jerr);
	if (!r.items || !json_is_array(r.items) || json_array_size(r.items) == 0)
		die("ITEMS must be a non-empty JSON array", NULL);
	const size_t n = json_array_size(r.items);
	r.its = calloc(n, sizeof(*r.its));
	r.ptrs = calloc(n, sizeof(*r.ptrs));
	r.arena = rwd_arena_create(0, 0);
	struct result *ref = calloc(n, sizeof(*ref)), *got = calloc(n, sizeof(*got));
	size_t *idx = calloc(n, sizeof(*idx)), *order = calloc(n, sizeof(*order));
	if (!r.its || !r.ptrs || !r.arena || !ref || !got || !idx || !order)
		die("out of memory", NULL);
	const json_t *o = json_is_null(opts) ? NULL : opts;

	static const size_t sizes[] = { 1, 2, 3, 5, 8, 13, 0 };
	size_t total_bad = 0, scored = 0;
	for (int threads = 1; threads <= 2; threads++) {
		rwd_nn_threading_init(threads, NULL, 0);
		load(&r, argv[1], argv[2], o, n);
		if (threads == 1) {
			for (size_t i = 0; i < n; i++) {
				score(&r, &i, 1, ref);
				if (ref[i].status) {
					char buf[512];
					printf("%s: item %zu fails alone: %s\n", argv[1], i,
						rwd_error_format(&r.its[0].err, buf, sizeof(buf)));
				}
			}
		}
		for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
			const size_t bs = sizes[si] && sizes[si] < n ? sizes[si] : n;
			size_t bad = 0, items_bad = 0;
			for (int pass = 0; pass < 2; pass++) {
				/* rotated, and reversed on the second pass */
				const size_t rot = (bs * 7 + (size_t)pass * 3 + (size_t)threads) % n;
				for (size_t i = 0; i < n; i++)
					order[i] = pass ? (n - 1 - (i + rot) % n) : (i + rot) % n;
				for (size_t b0 = 0; b0 < n; b0 += bs) {
					const size_t k = n - b0 < bs ? n - b0 : bs;
					memcpy(idx, order + b0, k * sizeof(*idx));
					score(&r, idx, k, got);
				}
				bad += compare(got, ref, n, &items_bad);
				scored += n;
			}
			printf("%s: %d BLAS thread(s), batches of %zu: %zu of %zu item results differ from "
				"the item alone (%zu values)\n", argv[1], threads, bs, items_bad, 2 * n, bad);
			total_bad += bad;
		}
		unload(&r);
	}
	size_t ok = 0, extras = 0;
	for (size_t i = 0; i < n; i++) {
		ok += ref[i].status == 0;
		extras += ref[i].extra != NULL;
	}
	if (extras)
		printf("%s: %zu items carry per-item extras (compared as exact JSON)\n", argv[1], extras);
	for (size_t i = 0; i < n; i++) {
		free(ref[i].extra);
		free(got[i].extra);
	}
	printf("%s: %zu items (%zu scored, %zu failed alike), %zu scorings: %s\n", argv[1], n, ok,
		n - ok, scored, total_bad ? "NOT batch-invariant" : "bit-identical");
	rwd_arena_destroy(r.arena);
	free(ref);
	free(got);
	free(idx);
	free(order);
	free(r.its);
	free(r.ptrs);
	json_decref(r.items);
	json_decref(opts);
	return total_bad ? 1 : 0;
}
