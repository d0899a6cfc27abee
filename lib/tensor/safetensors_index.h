/*
 * tensor/safetensors_index.h — internal: the model.safetensors.index.json
 * parser, split out of safetensors.c so the fuzz target can reach it. Not
 * part of the public API; rwd_weights_open() is the way to load a checkpoint.
 */
#ifndef RWD_TENSOR_SAFETENSORS_INDEX_H
#define RWD_TENSOR_SAFETENSORS_INDEX_H

#include "core/arena.h"
#include "core/error.h"

#include <stddef.h>

/* A parsed index; every string lives in the arena. */
typedef struct rwd__st_index {
	size_t n_tensors;
	const char **tensor;   /* [n_tensors] weight_map keys, in file order */
	const char **shard;    /* [n_tensors] the shard file each is in */
	size_t n_shards;
	const char **shards;   /* [n_shards] distinct shard names, sorted */
} rwd__st_index;

/*
 * Parse and validate index JSON `text` (len bytes; `file` names it in
 * errors): an object, "metadata" absent/null/object, "weight_map" an object
 * of tensor -> plain shard file name (no '/', '\\', "." or ".."; duplicate
 * keys refused), at most max_shards distinct shards. Returns 0 or
 * RWD_E_FORMAT/RWD_E_INVALID/RWD_E_LIMIT/RWD_E_NOMEM with err naming the tensor.
 */
int rwd__st_index_parse(rwd_arena *arena, const char *file, const char *text, size_t len,
	size_t max_shards, rwd__st_index *out, rwd_error *err);

#endif
