/*
 * tests/fuzz/fuzz_rules.c — the `rules` kind on arbitrary text: check() and
 * every dimension (format regex, answer extraction and normalisation,
 * \boxed brace matching, number parsing, BLEU, length, repetition, tool-call
 * discovery and JSON parsing of the response and label).
 *
 * Input: one flags byte, then NUL-separated fields: response, label,
 * reference 1, reference 2, ... Flags: bit 0 parses the label as JSON when
 * it can (tool-call objects, numbers); bit 1 picks the second model (custom
 * regex, searched, low match limit; method1; order 2; chars); bit 2 sends
 * references as an array even when there is one. Invariants: an item either
 * fails with a status and an error record, or its present scores are finite
 * and in [0, 1].
 */
#include "core/arena.h"
#include "models/model.h"
#include "models/rules.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static rwd_model *models[2];
static void *scratch[2];

static void init(void)
{
	static const char *const opts[2] = {
		"{}",
		"{\"format_regex\": \"(?:<(\\\\w+)>.*?</\\\\1>\\\\s*)+\", \"format_anchor\": \"search\", "
		"\"format_match_limit\": 20000, \"bleu_smoothing\": \"method1\", \"bleu_order\": 2, "
		"\"length_unit\": \"chars\", \"length_max\": 50, \"length_scale\": 10, "
		"\"length_decay\": \"exponential\", \"repetition_ngram\": 1, "
		"\"accuracy_case_sensitive\": true, \"max_response_bytes\": 4096}",
	};
	for (int i = 0; i < 2; i++) {
		rwd_model_params p = rwd_model_default_params();
		json_t *o = json_loads(opts[i], 0, NULL);
		p.name = "fuzz";
		p.kind = "rules";
		p.options = o;
		rwd_error err;
		if (!o || rwd_model_load(&p, &models[i], &err) ||
			rwd_model_scratch_new(models[i], &scratch[i], &err))
			abort();
		json_decref(o);
	}
}

static json_t *text(const char *s, size_t n)
{
	json_t *v = json_stringn(s, n);
	return v ? v : json_stringn_nocheck(s, n); /* invalid UTF-8 reaches check() */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!models[0])
		init();
	if (size < 1 || size > 1 << 16)
		return 0;
	unsigned flags = data[0];
	const char *p = (const char *)data + 1, *end = (const char *)data + size;
	const char *field[8];
	size_t len[8];
	int nf = 0;
	while (nf < 8) {
		const char *z = memchr(p, 0, (size_t)(end - p));
		field[nf] = p;
		len[nf] = z ? (size_t)(z - p) : (size_t)(end - p);
		nf++;
		if (!z)
			break;
		p = z + 1;
	}

	json_t *item = json_object();
	json_object_set_new(item, "response", text(field[0], len[0]));
	if (nf > 1) {
		json_t *label = NULL;
		if (flags & 1)
			label = json_loadb(field[1], len[1], JSON_DECODE_ANY, NULL);
		json_object_set_new(item, "label", label ? label : text(field[1], len[1]));
	}
	if (nf == 3 && !(flags & 4)) {
		json_object_set_new(item, "reference", text(field[2], len[2]));
	} else if (nf > 2) {
		json_t *refs = json_array();
		for (int i = 2; i < nf; i++)
			json_array_append_new(refs, text(field[i], len[i]));
		json_object_set_new(item, "reference", refs);

		/* the double-precision entry point on the raw bytes (may be invalid UTF-8) */
		const char *rs[6];
		size_t rl[6];
		for (int i = 2; i < nf; i++) {
			rs[i - 2] = field[i];
			rl[i - 2] = len[i];
		}
		rwd_rules_bleu_params bp = rwd_rules_bleu_default_params();
		bp.smoothing = (rwd_rules_smoothing)((flags >> 4) % 5);
		double d = -1;
		int r = rwd_rules_bleu(field[0], len[0], rs, rl, (size_t)(nf - 2), &bp, &d);
		if (r == 0 && !(d >= 0 && d <= 1))
			abort();
	}

	int which = (flags >> 1) & 1;
	rwd_model *m = models[which];
	size_t cost;
	rwd_error err;
	rwd_error_clear(&err);
	if (rwd_model_check(m, item, &cost, &err) == 0) {
		rwd_arena *arena = rwd_arena_create(0, 0);
		rwd_item it;
		memset(&it, 0, sizeof(it));
		it.input = item;
		rwd_item *items[1] = {&it};
		if (!arena || rwd_model_run(m, scratch[which], items, 1, arena) != 0)
			abort();
		const rwd_model_info *info = rwd_model_get_info(m);
		if (it.status) {
			if (it.status > 0 || !it.err.msg[0])
				abort();
		} else {
			for (size_t i = 0; i < info->n_dims; i++)
				if (it.present[i] && !(it.scores[i] >= 0.0f && it.scores[i] <= 1.0f))
					abort();
		}
		rwd_arena_destroy(arena);
	} else if (!err.msg[0] || !err.object[0]) {
		abort();
	}
	json_decref(item);
	return 0;
}
