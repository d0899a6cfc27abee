/*
 * tests/fuzz/fuzz_safetensors_index.c — lib/tensor: the
 * model.safetensors.index.json parser (sharded checkpoints).
 *
 * A refusal must fill the error; an accepted index must list, for every
 * tensor, a plain shard file name (no path separators, not "." or "..") that
 * appears in the sorted, duplicate-free shard list.
 */
#include "tensor/safetensors_index.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	rwd_arena *a = rwd_arena_create(0, 0);
	if (!a)
		return 0;
	rwd__st_index ix;
	rwd_error err;
	rwd_error_clear(&err);
	int rc = rwd__st_index_parse(a, "index.json", (const char *)data, size, 64, &ix, &err);
	if (rc) {
		if (rc != err.code || !err.msg[0] || strcmp(err.file, "index.json") != 0)
			abort();
	} else {
		if (ix.n_shards > 64 || ix.n_shards > ix.n_tensors)
			abort();
		for (size_t i = 1; i < ix.n_shards; i++)
			if (strcmp(ix.shards[i - 1], ix.shards[i]) >= 0)
				abort();
		for (size_t i = 0; i < ix.n_tensors; i++) {
			const char *s = ix.shard[i];
			if (!ix.tensor[i] || !*s || strchr(s, '/') || strchr(s, '\\') ||
				!strcmp(s, ".") || !strcmp(s, ".."))
				abort();
			if (!bsearch(&s, ix.shards, ix.n_shards, sizeof(*ix.shards), cmp_str))
				abort();
		}
	}
	rwd_arena_destroy(a);
	return 0;
}
