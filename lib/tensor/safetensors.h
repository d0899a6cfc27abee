/*
 * tensor/safetensors.h — the weights of a model: safetensors files, mapped
 * read-only and validated as strictly as the reference reader.
 *
 * A checkpoint is opened from
 *   (a) a .safetensors file,
 *   (b) a folder holding model.safetensors, or
 *   (c) a folder holding model.safetensors.index.json (sharded checkpoints:
 *       {"metadata": {...}, "weight_map": {"tensor": "shard file", ...}}),
 *       or that index file itself.
 * In a folder, model.safetensors wins over the index, as in transformers.
 * For (c) every tensor named by weight_map must be in the shard the map names,
 * and only those tensors are visible; shard names must be plain file names in
 * the same folder ("a/b", "..", "." are rejected). Each shard is validated in full.
 *
 * Validation (reference/models-and-formats.md §1): 8-byte little-endian
 * header length N, N <= 100,000,000 (RWD_E_LIMIT) and 8+N within the file;
 * the header is one JSON object (leading/trailing JSON whitespace allowed,
 * duplicate keys rejected); each entry has a known "dtype" string, a "shape"
 * of non-negative integers whose element count (and byte count) does not
 * overflow (RWD_E_OVERFLOW), "data_offsets" [BEGIN, END] with BEGIN <= END;
 * sorted by offset the tensors start at 0 and follow each other with neither
 * holes nor overlaps; END-BEGIN == element count x dtype size; the last END
 * is exactly the end of the file; "__metadata__" maps strings to strings.
 * Other keys inside an entry are ignored, as the reference reader does.
 * Failures return RWD_E_FORMAT (or the code above) and fill the rwd_error
 * with the file, the tensor (or "__metadata__"/"weight_map" key) and what is
 * wrong; JSON syntax errors carry the header's line and column.
 *
 * Memory: files are mmapped read-only by default (a file truncated by someone
 * else while mapped raises SIGBUS: do not rewrite checkpoints in place), or
 * read into memory with params.use_mmap = false (network filesystems). F16
 * and BF16 tensors are converted to float32 at open into memory the handle
 * owns, unless params.convert_half is false. A tensor whose bytes are not
 * aligned to its element size in the file (foreign writers) is copied to
 * aligned memory, so `data` is always naturally aligned and `f32` always
 * 4-byte aligned (copies and conversions are 64-byte aligned).
 *
 * Threads: rwd_weights_open/parse build the handle on the calling thread;
 * afterwards the handle and every rwd_tensor it returns are immutable, and all
 * const functions below may be called from any number of threads at once.
 */
#ifndef RWD_TENSOR_SAFETENSORS_H
#define RWD_TENSOR_SAFETENSORS_H

#include "core/error.h"
#include "tensor/dtype.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The reference reader's MAX_HEADER_SIZE. */
#define RWD_SAFETENSORS_MAX_HEADER 100000000u
/* Tensors of higher rank are refused with RWD_E_LIMIT. */
#define RWD_TENSOR_MAX_DIMS 64

typedef struct rwd_weights rwd_weights;

/* One tensor; valid (and unchanging) until rwd_weights_free. */
typedef struct rwd_tensor {
	const char *name;
	rwd_dtype dtype;       /* as stored in the file */
	int ndim;              /* 0 for a scalar */
	const int64_t *shape;  /* [ndim], row-major (never NULL) */
	int64_t numel;         /* product of shape; 1 for a scalar, 0 for a zero-size tensor */
	const float *f32;      /* [numel] float32 view for F32 and (converted) F16/BF16; else NULL */
	const void *data;      /* the stored bytes, little-endian, aligned to the element size */
	size_t nbytes;         /* stored byte count */
	const char *file;      /* the file it came from (a shard, for sharded checkpoints) */
} rwd_tensor;

typedef struct rwd_weights_params {
	bool use_mmap;          /* true: mmap read-only; false: read() into memory */
	bool convert_half;      /* true: F16/BF16 -> F32 at open; false: f32 stays NULL */
	size_t max_header_bytes; /* capped at RWD_SAFETENSORS_MAX_HEADER */
	size_t max_index_bytes;  /* model.safetensors.index.json size limit */
	size_t max_shards;       /* distinct shard files in an index */
} rwd_weights_params;

/* use_mmap, convert_half, 100,000,000-byte header, 64 MiB index, 4096 shards. */
rwd_weights_params rwd_weights_default_params(void);

/*
 * Open a checkpoint (file, model folder, or index file; see above). params
 * may be NULL for the defaults. On success *out owns everything (free with
 * rwd_weights_free) and 0 is returned; on failure *out is set to NULL and a
 * negative RWD_E_* code is returned with err (optional) filled.
 */
int rwd_weights_open(const char *path, const rwd_weights_params *params, rwd_weights **out,
	rwd_error *err) RWD_WARN_UNUSED;

/*
 * Parse a whole safetensors file held in memory (the fuzz target's entry).
 * The handle BORROWS buf: it must stay valid and unchanged until
 * rwd_weights_free. `name` is used in errors and rwd_tensor.file (NULL:
 * "<memory>"). params->use_mmap is ignored. Same validation and returns as
 * rwd_weights_open.
 */
int rwd_safetensors_parse(const void *buf, size_t len, const char *name,
	const rwd_weights_params *params, rwd_weights **out, rwd_error *err) RWD_WARN_UNUSED;

/* Unmap and free everything. Accepts NULL. */
void rwd_weights_free(rwd_weights *w);

/* The tensor called `name`, or NULL. O(log n). */
const rwd_tensor *rwd_weights_find(const rwd_weights *w, const char *name);

/*
 * Look up `name` and check its rank and shape: ndim < 0 accepts any rank;
 * shape may be NULL (any shape of that rank) and an entry of -1 accepts any
 * size in that dimension. Returns 0 with *out set, RWD_E_NOTFOUND when the
 * tensor is missing, RWD_E_INVALID when rank or shape differ (err gives both
 * shapes); *out is untouched on failure.
 */
int rwd_weights_get(const rwd_weights *w, const char *name, int ndim, const int64_t *shape,
	const rwd_tensor **out, rwd_error *err);

/*
 * As rwd_weights_get, and the tensor must have a float32 view: *out points to
 * numel floats. RWD_E_UNSUPPORTED for other dtypes (or F16/BF16 opened with
 * convert_half = false).
 */
int rwd_weights_get_f32(const rwd_weights *w, const char *name, int ndim, const int64_t *shape,
	const float **out, rwd_error *err);

/* Number of tensors, and the i-th in name order (NULL when i >= count). */
size_t rwd_weights_count(const rwd_weights *w);
const rwd_tensor *rwd_weights_at(const rwd_weights *w, size_t i);

/* Sum of the stored tensor bytes (as in the files). */
uint64_t rwd_weights_total_bytes(const rwd_weights *w);

/* Bytes of memory the handle holds beyond the mapped/read files (conversions, aligned copies). */
uint64_t rwd_weights_owned_bytes(const rwd_weights *w);

/*
 * A "__metadata__" value (e.g. "format" -> "pt"), or NULL. For sharded
 * checkpoints the shards' metadata are merged; the first shard (in name
 * order) wins on conflicting keys.
 */
const char *rwd_weights_metadata(const rwd_weights *w, const char *key);

/* The path given to rwd_weights_open (or the name given to parse). */
const char *rwd_weights_path(const rwd_weights *w);

/* Format a shape as "[768, 1024]" ("[]" for a scalar; -1 prints "*") into buf; returns buf. */
const char *rwd_tensor_shape_str(int ndim, const int64_t *shape, char *buf, size_t size);

#endif
