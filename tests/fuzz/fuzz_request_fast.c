/*
 * tests/fuzz/fuzz_request_fast.c — differential: the float-array fast path
 * of lib/serve/request.c against jansson alone (limits.json_only).
 *
 * Every body is parsed both ways. They must agree on the return code and,
 * on refusal, on the whole error record (code, message, field, line,
 * column, offset); on success on the envelope (model, items, dimensions,
 * timeout, priority, costs) and, for each item of a vector kind, on the
 * float32 bits of its input, wherever each side read it from (the fast
 * path's item->vec, the base64 decode, or jansson's numbers cast to float).
 * Also rwd_request_json_depth (its memchr walk) against the plain
 * character walk below, for several stops.
 * Served models: fuzz_request_common.h.
 */
#include "fuzz_request_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Item i's input vector as the mlp kind would stack it (n floats into out). */
static void item_floats(const rwd_item *it, size_t n, float *out)
{
	if (it->vec) {
		memcpy(out, it->vec, n * sizeof(float));
		return;
	}
	const json_t *b = json_object_get(it->input, "embedding_b64");
	if (b) {
		rwd_error e;
		rwd_error_clear(&e);
		if (rwd_model_vector_b64(json_string_value(b), json_string_length(b), n, out, &e))
			abort(); /* check() accepted it */
		return;
	}
	const json_t *a = json_object_get(it->input, "embedding");
	for (size_t c = 0; c < n; c++)
		out[c] = (float)json_number_value(json_array_get(a, c));
}

/* Nesting depth, strings skipped character by character; stop + 1 once past stop. */
static size_t ref_depth(const char *b, size_t n, size_t stop)
{
	size_t depth = 0, max = 0;
	int in_str = 0, esc = 0;
	for (size_t i = 0; i < n; i++) {
		char c = b[i];
		if (in_str) {
			if (esc)
				esc = 0;
			else if (c == '\\')
				esc = 1;
			else if (c == '"')
				in_str = 0;
		} else if (c == '"') {
			in_str = 1;
		} else if (c == '[' || c == '{') {
			if (++depth > max)
				max = depth;
			if (max > stop)
				return stop + 1;
		} else if ((c == ']' || c == '}') && depth) {
			depth--;
		}
	}
	return max;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		init();
		ready = 1;
	}
	for (size_t stop = 1; stop <= 64; stop *= 4)
		if (rwd_request_json_depth((const char *)data, size, stop, NULL, NULL) !=
		    ref_depth((const char *)data, size, stop))
			abort();
	find_ctx fc = {size ? data[0] : 0};
	rwd_request_limits lim = rwd_request_default_limits();
	lim.max_items = 64;
	lim.max_string_bytes = 1 << 16;
	rwd_request_limits slow = lim;
	slow.json_only = 1;
	rwd_arena *fa = rwd_arena_create(0, 64u << 20), *sa = rwd_arena_create(0, 64u << 20);
	if (!fa || !sa) {
		rwd_arena_destroy(fa);
		rwd_arena_destroy(sa);
		return 0;
	}
	rwd_request fr, sr;
	rwd_error fe, se;
	rwd_error_clear(&fe);
	rwd_error_clear(&se);
	int a = rwd_request_parse((const char *)data, size, &lim, find, &fc, fa, &fr, &fe);
	int b = rwd_request_parse((const char *)data, size, &slow, find, &fc, sa, &sr, &se);
	if (a != b)
		abort();
	if (a) {
		if (fe.code != se.code || strcmp(fe.msg, se.msg) || strcmp(fe.object, se.object) ||
		    fe.line != se.line || fe.column != se.column || fe.offset != se.offset)
			abort();
	} else {
		if (fr.model != sr.model || fr.n_items != sr.n_items || fr.n_dims != sr.n_dims ||
		    memcmp(fr.dims, sr.dims, sizeof(fr.dims)) || fr.timeout_ms != sr.timeout_ms ||
		    fr.priority != sr.priority || fr.total_cost != sr.total_cost)
			abort();
		size_t n = rwd_model_get_info(fr.model)->vector_input;
		float *x = n ? malloc(2 * n * sizeof(float)) : NULL;
		for (size_t i = 0; i < fr.n_items; i++) {
			if (fr.items[i].cost != sr.items[i].cost)
				abort();
			if (x) {
				item_floats(&fr.items[i], n, x);
				item_floats(&sr.items[i], n, x + n);
				if (memcmp(x, x + n, n * sizeof(float)))
					abort();
			}
		}
		free(x);
	}
	rwd_arena_destroy(fa);
	rwd_arena_destroy(sa);
	return 0;
}
