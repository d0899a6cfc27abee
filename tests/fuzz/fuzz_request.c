/*
 * tests/fuzz/fuzz_request.c — POST /v1/rewards bodies → validated items.
 *
 * Drives lib/serve/request.c (depth pre-scan, jansson with duplicate
 * rejection, limits, envelope checks, model lookup, dimensions) and each
 * served kind's check() on the items, exactly as the daemon does before
 * queueing, with the float-array fast path and "embedding_b64" decoding.
 * The served set: fuzz_request_common.h. The first byte picks which model
 * an unnamed request resolves to, so the single-model path is covered too.
 */
#include "fuzz_request_common.h"
#include "reward/reward.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		init();
		ready = 1;
	}
	find_ctx fc = {size ? data[0] : 0};
	rwd_request_limits lim = rwd_request_default_limits();
	lim.max_items = 64;
	lim.max_string_bytes = 1 << 16;
	rwd_arena *arena = rwd_arena_create(0, 64u << 20);
	if (!arena)
		return 0;
	rwd_request req;
	rwd_error err;
	rwd_error_clear(&err);
	int r = rwd_request_parse((const char *)data, size, &lim, find, &fc, arena, &req, &err);
	if (r == 0) {
		/* the validated request is internally consistent */
		const rwd_model_info *info = rwd_model_get_info(req.model);
		if (req.n_dims == 0 || req.n_dims > info->n_dims)
			abort();
		for (size_t i = 0; i < req.n_items; i++) {
			if (req.items[i].cost == 0 || req.items[i].index != i || req.items[i].input == NULL)
				abort();
			if (req.items[i].vec && req.items[i].vec_n != info->vector_input)
				abort();
			double reward;
			memset(req.items[i].present, 0, sizeof(req.items[i].present));
			if (rwd_reward_combine(&req.items[i], req.dims, req.n_dims, &reward) != RWD_E_NOTFOUND)
				abort();
		}
	} else if (err.code != r || !err.msg[0]) {
		/* every refusal says why */
		abort();
	}
	rwd_arena_destroy(arena);
	return 0;
}
