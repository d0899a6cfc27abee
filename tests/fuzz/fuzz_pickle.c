/*
 * tests/fuzz/fuzz_pickle.c — the restricted pickle decoder (lib/compat/pickle).
 *
 * Decodes the input with small limits. A failure must carry a code and an
 * offset within the input; a success must be one value whose containers
 * are finite and acyclic (each visited once with the decoder's marks reset
 * here), whose str/bytes/array/image bytes lie inside the input or the
 * arena, and whose numpy '<U' elements convert or fail cleanly. A decoded
 * value then goes through the image-RL translation (lib/compat/imgrl) as a
 * clip and as an image_metrics model would take it, and the reply is built
 * and pickled: every failure carries a code, every success one item per
 * reward.
 */
#include "compat/imgrl.h"
#include "compat/pickle.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Shared values (the memo) make a DAG: *budget caps the visits. */
static void visit(const rwd_pickle_value *v, size_t depth, unsigned *sum, long *budget)
{
	if (--*budget < 0)
		return;
	if (depth > 16)
		abort(); /* the decoder bounds container nesting at max_depth (16 here) */
	for (size_t i = 0; i < v->len && v->data; i += 97)
		*sum += v->data[i];
	if (v->type == RWD_PICKLE_NDARRAY && v->dtype_kind == 'U' && v->ndim == 1) {
		char buf[256];
		for (size_t i = 0; i < v->shape[0] && i < 8; i++)
			(void)rwd_pickle_ndarray_str(v, i, buf, sizeof(buf));
	}
	if (v->type != RWD_PICKLE_LIST && v->type != RWD_PICKLE_TUPLE && v->type != RWD_PICKLE_DICT)
		return;
	size_t slots = v->type == RWD_PICKLE_DICT ? 2 * v->n : v->n;
	for (size_t i = 0; i < slots && *budget > 0; i++)
		visit(v->items[i], depth + 1, sum, budget);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	rwd_pickle_limits lim = rwd_pickle_default_limits();
	lim.max_values = 4096;
	lim.max_items = 512;
	lim.max_bytes = 1 << 16;
	lim.max_memo = 1024;
	lim.max_depth = 16;
	lim.max_pixels = 1 << 14;
	rwd_arena *a = rwd_arena_create(0, 16u << 20);
	if (!a)
		return 0;
	rwd_error err;
	rwd_error_clear(&err);
	rwd_pickle_value *v = NULL;
	int r = rwd_pickle_load(data, size, &lim, a, &v, &err);
	if (r) {
		if (!err.code || err.code != r || !err.msg[0] || err.offset < 0 || (size_t)err.offset > size)
			abort();
	} else {
		unsigned sum = 0;
		long budget = 100000;
		if (!v)
			abort();
		visit(v, 0, &sum, &budget);
		(void)sum;
		static const char *const kinds[] = {"clip", "image_metrics"};
		rwd_imgrl_limits il = {64, 4096, 16};
		for (int k = 0; k < 2; k++) {
			json_t *items = json_array();
			rwd_imgrl_req req;
			rwd_error e2;
			rwd_error_clear(&e2);
			r = rwd_imgrl_from_pickle(v, kinds[k], &il, items, &req, &e2);
			if (r && !e2.code)
				abort();
			if (!r) {
				if (req.n != json_array_size(items))
					abort();
				double rw[64] = {0};
				json_t *reply = rwd_imgrl_reply(&req, rw, NULL);
				uint8_t *out = NULL;
				size_t len = 0;
				if (reply && rwd_pickle_dump_json(reply, &out, &len, NULL) == 0)
					free(out);
				json_decref(reply);
			} else {
				char f[RWD_ERROR_OBJECT_MAX];
				snprintf(f, sizeof(f), "items[3].source_image");
				rwd_imgrl_remap_field(&req, f, sizeof(f));
			}
			rwd_imgrl_req_clear(&req);
			json_decref(items);
		}
	}
	rwd_arena_destroy(a);
	return 0;
}
