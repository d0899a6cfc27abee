/* serve/exec.c — the batcher's executor for served models (rwd_model_run). */
#include "serve/batcher.h"

#include <stdint.h>

static int model_scratch_new(void *ctx, void **scratch, rwd_error *err)
{
	return rwd_model_scratch_new(ctx, scratch, err);
}

static void model_scratch_free(void *ctx, void *scratch)
{
	rwd_model_scratch_free(ctx, scratch);
}

static int model_run(void *ctx, void *scratch, rwd_item *const *items, size_t n, rwd_arena *arena)
{
	return rwd_model_run(ctx, scratch, items, n, arena);
}

rwd_batch_exec rwd_batcher_model_exec(const rwd_model *model)
{
	rwd_batch_exec e = {0};
	/* the model is read-only; the exec API takes a plain context pointer */
	e.ctx = (void *)(uintptr_t)model;
	e.scratch_new = model_scratch_new;
	e.scratch_free = model_scratch_free;
	e.run = model_run;
	return e;
}
