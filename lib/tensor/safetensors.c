/* tensor/safetensors.c — see safetensors.h. */
#include "tensor/safetensors.h"

#include "core/arena.h"
#include "tensor/safetensors_index.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define INDEX_NAME "model.safetensors.index.json"
#define SINGLE_NAME "model.safetensors"

/* One file's bytes: a whole-file mapping, a read() copy of its data section, or borrowed memory. */
struct st_file {
	const char *path;
	const unsigned char *data; /* start of the byte buffer (after the header) */
	uint64_t data_len;
	void *map;                 /* mmap of the whole file, or NULL */
	size_t map_len;
	void *heap;                /* aligned read() copy of the data section, or NULL */
};

/* A validated header entry, before it becomes an rwd_tensor. */
struct st_entry {
	const char *name;
	rwd_dtype dtype;
	int ndim;
	int64_t *shape;
	int64_t numel;
	uint64_t begin, end;       /* relative to the file's byte buffer */
	size_t file;               /* index into rwd_weights.files */
};

struct meta_kv {
	const char *key, *value;
	size_t seq;                /* arrival order: the first of equal keys wins */
};

struct rwd_weights {
	const char *path;
	rwd_arena *arena;          /* names, shapes, tables, converted and aligned copies */
	bool convert_half;
	struct st_file *files;     /* malloc'd, n_files */
	size_t n_files;
	rwd_tensor *tensors;       /* sorted by name */
	size_t n_tensors;
	struct meta_kv *meta;      /* malloc'd; sorted by key and unique after finalize */
	size_t n_meta, cap_meta;
	uint64_t total_bytes, owned_bytes;
};

/* A float for zero-size F16/BF16 tensors' f32 pointer: valid, never read. */
static const float empty_f32[1];

rwd_weights_params rwd_weights_default_params(void)
{
	rwd_weights_params p = {
		.use_mmap = true,
		.convert_half = true,
		.max_header_bytes = RWD_SAFETENSORS_MAX_HEADER,
		.max_index_bytes = 64u << 20,
		.max_shards = 4096,
	};
	return p;
}

RWD_PRINTF(5, 0)
static int vfail(rwd_error *err, int code, const char *file, const char *object,
	const char *fmt, va_list ap)
{
	if (!err)
		return code;
	char msg[RWD_ERROR_MSG_MAX];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	rwd_errorf(err, code, "%s", msg);
	rwd_error_where(err, file ? file : "", object ? object : "");
	return code;
}

/* Record code + message + where, return code. */
RWD_PRINTF(5, 6)
static int fail(rwd_error *err, int code, const char *file, const char *object, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfail(err, code, file, object, fmt, ap);
	va_end(ap);
	return code;
}

static int fail_nomem(rwd_error *err, const char *file)
{
	return fail(err, RWD_E_NOMEM, file, NULL, "out of memory");
}

const char *rwd_tensor_shape_str(int ndim, const int64_t *shape, char *buf, size_t size)
{
	if (!buf || size == 0)
		return "";
	size_t n = 0;
	buf[0] = '\0';
	for (int i = -1; i <= ndim && n < size; i++) {
		int k;
		if (i < 0)
			k = snprintf(buf + n, size - n, "[");
		else if (i == ndim)
			k = snprintf(buf + n, size - n, "]");
		else if (shape[i] < 0)
			k = snprintf(buf + n, size - n, "%s*", i ? ", " : "");
		else
			k = snprintf(buf + n, size - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
		if (k < 0)
			break;
		n += (size_t)k;
	}
	return buf;
}

/* ---- JSON errors ---------------------------------------------------------- */

/* Decode the JSON string literal text[a..b] (both quotes included) into out. */
static int decode_literal(const char *text, size_t a, size_t b, char *out, size_t size)
{
	json_t *s = json_loadb(text + a, b - a + 1, JSON_DECODE_ANY, NULL);
	int ok = json_is_string(s);
	if (ok)
		snprintf(out, size, "%s", json_string_value(s));
	json_decref(s);
	return ok;
}

/*
 * jansson reports a duplicate key without naming it, at the position just
 * past the key. The text before that position is valid JSON, so a forward
 * scan (strings, nesting) finds the key (the last complete string literal),
 * its depth, and the last top-level key before it: for a field repeated inside
 * a tensor entry, the tensor's name. Returns 0 if the text does not fit.
 */
static int duplicate_key_where(const char *text, size_t len, size_t pos, char *key, size_t ksize,
	char *outer, size_t osize, int *in_entry)
{
	size_t depth = 0, last_a = SIZE_MAX, last_b = 0, top_a = SIZE_MAX, top_b = 0;
	if (pos > len)
		pos = len;
	for (size_t i = 0; i < pos; i++) {
		char c = text[i];
		if (c == '"') {
			size_t a = i;
			for (i++; i < pos && text[i] != '"'; i++)
				if (text[i] == '\\')
					i++;
			if (i >= pos)
				break;
			last_a = a;
			last_b = i;
			size_t j = i + 1;
			while (j < pos && (text[j] == ' ' || text[j] == '\t' || text[j] == '\n' ||
				text[j] == '\r'))
				j++;
			if (depth == 1 && j < pos && text[j] == ':') {
				top_a = a;
				top_b = i;
			}
		} else if (c == '{' || c == '[') {
			depth++;
		} else if ((c == '}' || c == ']') && depth > 0) {
			depth--;
		}
	}
	if (last_a == SIZE_MAX || !decode_literal(text, last_a, last_b, key, ksize))
		return 0;
	*in_entry = depth > 1 && top_a != SIZE_MAX && decode_literal(text, top_a, top_b, outer, osize);
	return 1;
}

/*
 * A jansson load error on `text` (which starts at file offset `base`). In a
 * header, a key repeated inside an entry is reported against the tensor.
 */
static int json_fail(rwd_error *err, const char *file, const char *what, const char *text,
	size_t len, const json_error_t *je, int64_t base)
{
	char key[RWD_ERROR_OBJECT_MAX], outer[RWD_ERROR_OBJECT_MAX];
	int in_entry;
	int header = strcmp(what, "header") == 0;
	if (json_error_code(je) == json_error_duplicate_key &&
		duplicate_key_where(text, len, (size_t)je->position, key, sizeof(key), outer,
			sizeof(outer), &in_entry)) {
		if (header && in_entry)
			fail(err, RWD_E_FORMAT, file, outer, "duplicate key \"%s\" inside \"%s\"", key,
				outer);
		else
			fail(err, RWD_E_FORMAT, file, key, "duplicate key \"%s\" in the %s", key, what);
	} else {
		fail(err, RWD_E_FORMAT, file, NULL, "the %s is not valid JSON: %s", what, je->text);
	}
	rwd_error_at(err, je->line, je->column, base + (int64_t)je->position);
	return RWD_E_FORMAT;
}

/* "an object", "a string", ... for messages. */
static const char *json_kind(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "a value";
}

/* ---- header -------------------------------------------------------------- */

static int meta_push(rwd_weights *w, const char *key, const char *value)
{
	if (w->n_meta == w->cap_meta) {
		size_t cap = w->cap_meta ? 2 * w->cap_meta : 8;
		struct meta_kv *m = realloc(w->meta, cap * sizeof(*m));
		if (!m)
			return RWD_E_NOMEM;
		w->meta = m;
		w->cap_meta = cap;
	}
	const char *k = rwd_arena_strdup(w->arena, key);
	const char *v = rwd_arena_strdup(w->arena, value);
	if (!k || !v)
		return RWD_E_NOMEM;
	w->meta[w->n_meta] = (struct meta_kv){ k, v, w->n_meta };
	w->n_meta++;
	return 0;
}

static int parse_metadata(rwd_weights *w, const char *file, json_t *obj, rwd_error *err)
{
	if (!json_is_object(obj))
		return fail(err, RWD_E_FORMAT, file, "__metadata__",
			"\"__metadata__\" must map strings to strings, not be %s", json_kind(obj));
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v) {
		if (!json_is_string(v))
			return fail(err, RWD_E_FORMAT, file, "__metadata__",
				"\"__metadata__\" value of \"%.60s\" is %s, not a string", k, json_kind(v));
		if (meta_push(w, k, json_string_value(v)))
			return fail_nomem(err, file);
	}
	return 0;
}

/* A JSON integer in [0, INT64_MAX], or -1. */
static int64_t json_uint(const json_t *j)
{
	if (!json_is_integer(j))
		return -1;
	json_int_t v = json_integer_value(j);
	return v < 0 ? -1 : (int64_t)v;
}

static int parse_entry(rwd_weights *w, const char *file, const char *name, json_t *val,
	struct st_entry *e, rwd_error *err)
{
	if (!json_is_object(val))
		return fail(err, RWD_E_FORMAT, file, name, "tensor entry is %s, not an object",
			json_kind(val));
	json_t *jd = json_object_get(val, "dtype");
	json_t *js = json_object_get(val, "shape");
	json_t *jo = json_object_get(val, "data_offsets");
	if (!json_is_string(jd))
		return fail(err, RWD_E_FORMAT, file, name, "\"dtype\" is %s, not a string",
			jd ? json_kind(jd) : "missing");
	if (!json_is_array(js))
		return fail(err, RWD_E_FORMAT, file, name, "\"shape\" is %s, not an array",
			js ? json_kind(js) : "missing");
	if (!json_is_array(jo))
		return fail(err, RWD_E_FORMAT, file, name, "\"data_offsets\" is %s, not an array",
			jo ? json_kind(jo) : "missing");

	e->dtype = rwd_dtype_from_name(json_string_value(jd));
	if (e->dtype == RWD_DTYPE_INVALID)
		return fail(err, RWD_E_FORMAT, file, name, "unknown dtype \"%.40s\"",
			json_string_value(jd));

	size_t ndim = json_array_size(js);
	if (ndim > RWD_TENSOR_MAX_DIMS)
		return fail(err, RWD_E_LIMIT, file, name, "rank %zu exceeds the limit of %d dimensions",
			ndim, RWD_TENSOR_MAX_DIMS);
	e->ndim = (int)ndim;
	e->shape = rwd_arena_alloc(w->arena, (ndim ? ndim : 1) * sizeof(int64_t));
	if (!e->shape)
		return fail_nomem(err, file);
	/* Multiply in order with a check at each step, as the reference reader
	 * does: [2^40, 2^40, 0] is an overflow, not an empty tensor. */
	int64_t numel = 1;
	for (size_t i = 0; i < ndim; i++) {
		int64_t d = json_uint(json_array_get(js, i));
		if (d < 0)
			return fail(err, RWD_E_FORMAT, file, name,
				"shape[%zu] is not a non-negative integer", i);
		e->shape[i] = d;
		if (d != 0 && numel > INT64_MAX / d)
			return fail(err, RWD_E_OVERFLOW, file, name,
				"shape overflows: the element count exceeds 2^63 at dimension %zu", i);
		numel *= d;
	}
	e->numel = numel;
	unsigned bits = rwd_dtype_bits(e->dtype);
	if ((uint64_t)numel > UINT64_MAX / bits)
		return fail(err, RWD_E_OVERFLOW, file, name,
			"shape overflows: %lld elements of %s exceed 2^64 bits", (long long)numel,
			rwd_dtype_name(e->dtype));
	uint64_t nbits = (uint64_t)numel * bits;
	if (nbits % 8)
		return fail(err, RWD_E_FORMAT, file, name,
			"%lld elements of %s are not a whole number of bytes", (long long)numel,
			rwd_dtype_name(e->dtype));

	if (json_array_size(jo) != 2)
		return fail(err, RWD_E_FORMAT, file, name,
			"\"data_offsets\" has %zu items, not [begin, end]", json_array_size(jo));
	int64_t b = json_uint(json_array_get(jo, 0));
	int64_t en = json_uint(json_array_get(jo, 1));
	if (b < 0 || en < 0)
		return fail(err, RWD_E_FORMAT, file, name,
			"\"data_offsets\" are not non-negative integers");
	if (en < b)
		return fail(err, RWD_E_FORMAT, file, name,
			"data_offsets [%lld, %lld] end before they begin", (long long)b, (long long)en);
	char sh[128];
	if ((uint64_t)(en - b) != nbits / 8)
		return fail(err, RWD_E_FORMAT, file, name,
			"data_offsets [%lld, %lld] hold %lld bytes but shape %s of %s needs %llu",
			(long long)b, (long long)en, (long long)(en - b),
			rwd_tensor_shape_str(e->ndim, e->shape, sh, sizeof(sh)),
			rwd_dtype_name(e->dtype), (unsigned long long)(nbits / 8));
	e->begin = (uint64_t)b;
	e->end = (uint64_t)en;
	e->name = rwd_arena_strdup(w->arena, name);
	if (!e->name)
		return fail_nomem(err, file);
	return 0;
}

static int cmp_entry_offsets(const void *pa, const void *pb)
{
	const struct st_entry *a = pa, *b = pb;
	if (a->begin != b->begin)
		return a->begin < b->begin ? -1 : 1;
	if (a->end != b->end)
		return a->end < b->end ? -1 : 1;
	return strcmp(a->name, b->name);
}

static int cmp_entry_names(const void *pa, const void *pb)
{
	const struct st_entry *a = pa, *b = pb;
	return strcmp(a->name, b->name);
}

/*
 * Parse and validate the header `hdr` (n bytes) of file `fi`, whose byte
 * buffer holds data_len bytes. On success *out (arena) holds *count entries
 * sorted by offset.
 */
static int parse_header(rwd_weights *w, size_t fi, const char *hdr, size_t n,
	struct st_entry **out, size_t *count, rwd_error *err)
{
	const char *file = w->files[fi].path;
	uint64_t data_len = w->files[fi].data_len;
	json_error_t je;
	json_t *root = json_loadb(hdr, n, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return json_fail(err, file, "header", hdr, n, &je, 8);
	int rc = 0;
	struct st_entry *es = NULL;
	size_t ne = 0;
	if (!json_is_object(root)) {
		rc = fail(err, RWD_E_FORMAT, file, NULL, "the header is %s, not an object",
			json_kind(root));
		goto fail;
	}
	size_t cap = json_object_size(root);
	es = rwd_arena_alloc(w->arena, (cap ? cap : 1) * sizeof(*es));
	if (!es) {
		rc = fail_nomem(err, file);
		goto fail;
	}
	const char *key;
	json_t *val;
	json_object_foreach(root, key, val) {
		if (strcmp(key, "__metadata__") == 0) {
			rc = parse_metadata(w, file, val, err);
		} else {
			es[ne].file = fi;
			rc = parse_entry(w, file, key, val, &es[ne], err);
			ne++;
		}
		if (rc)
			goto fail;
	}

	/* The byte buffer must be covered exactly, in offset order: no holes,
	 * no overlaps, nothing after the last tensor. */
	qsort(es, ne, sizeof(*es), cmp_entry_offsets);
	uint64_t at = 0;
	for (size_t i = 0; i < ne; i++) {
		const struct st_entry *e = &es[i];
		if (e->begin > at)
			rc = fail(err, RWD_E_FORMAT, file, e->name,
				"data_offsets [%llu, %llu] leave a hole: the previous tensor ends at %llu",
				(unsigned long long)e->begin, (unsigned long long)e->end,
				(unsigned long long)at);
		else if (e->begin < at)
			rc = fail(err, RWD_E_FORMAT, file, e->name,
				"data_offsets [%llu, %llu] overlap the previous tensor, which ends at %llu",
				(unsigned long long)e->begin, (unsigned long long)e->end,
				(unsigned long long)at);
		else if (e->end > data_len)
			rc = fail(err, RWD_E_FORMAT, file, e->name,
				"data_offsets [%llu, %llu] run past the end of the file's %llu data bytes",
				(unsigned long long)e->begin, (unsigned long long)e->end,
				(unsigned long long)data_len);
		if (rc)
			goto fail;
		at = e->end;
	}
	if (at != data_len) {
		rc = fail(err, RWD_E_FORMAT, file, ne ? es[ne - 1].name : NULL,
			"%llu trailing bytes after the last tensor's data (the data section is %llu bytes, the tensors cover %llu)",
			(unsigned long long)(data_len - at), (unsigned long long)data_len,
			(unsigned long long)at);
		goto fail;
	}
	json_decref(root);
	*out = es;
	*count = ne;
	return 0;
fail:
	json_decref(root);
	return rc;
}

/* ---- files --------------------------------------------------------------- */

static uint64_t read_le64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* Check the 8-byte length against the limits and the file size; *n = header length. */
static int check_header_len(const char *file, const unsigned char *first8, uint64_t size,
	const rwd_weights_params *p, uint64_t *n, rwd_error *err)
{
	*n = read_le64(first8);
	size_t limit = p->max_header_bytes < RWD_SAFETENSORS_MAX_HEADER ?
		p->max_header_bytes : RWD_SAFETENSORS_MAX_HEADER;
	if (*n > limit)
		return fail(err, RWD_E_LIMIT, file, NULL,
			"header length %llu exceeds the limit of %zu bytes", (unsigned long long)*n, limit);
	if (*n > size - 8)
		return fail(err, RWD_E_FORMAT, file, NULL,
			"header length %llu runs past the end of the %llu-byte file",
			(unsigned long long)*n, (unsigned long long)size);
	return 0;
}

/* pread exactly len bytes at off. */
static int read_full(int fd, void *buf, size_t len, uint64_t off, const char *file, rwd_error *err)
{
	unsigned char *p = buf;
	while (len) {
		ssize_t r = pread(fd, p, len, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return fail(err, RWD_E_IO, file, NULL, "read failed: %s", strerror(errno));
		if (r == 0)
			return fail(err, RWD_E_IO, file, NULL, "file shrank while being read");
		p += r;
		off += (uint64_t)r;
		len -= (size_t)r;
	}
	return 0;
}

static int errno_code(int e)
{
	return e == ENOENT || e == ENOTDIR ? RWD_E_NOTFOUND : RWD_E_IO;
}

/* Add an empty file slot; returns its index or a negative code. */
static int add_file(rwd_weights *w, const char *path, rwd_error *err)
{
	struct st_file *f = realloc(w->files, (w->n_files + 1) * sizeof(*f));
	if (!f)
		return fail_nomem(err, path);
	w->files = f;
	memset(&f[w->n_files], 0, sizeof(*f));
	f[w->n_files].path = rwd_arena_strdup(w->arena, path);
	if (!f[w->n_files].path)
		return fail_nomem(err, path);
	return (int)w->n_files++;
}

/* Open, map or read, and parse one safetensors file. */
static int load_file(rwd_weights *w, const char *path, const rwd_weights_params *p,
	struct st_entry **es, size_t *ne, rwd_error *err)
{
	int fi = add_file(w, path, err);
	if (fi < 0)
		return fi;
	struct st_file *f = &w->files[fi];
	const char *file = f->path;
	char *hdr_copy = NULL;
	int rc = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(err, errno_code(errno), file, NULL, "cannot open: %s", strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0) {
		rc = fail(err, RWD_E_IO, file, NULL, "cannot stat: %s", strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = fail(err, RWD_E_INVALID, file, NULL, "not a regular file");
		goto fail;
	}
	uint64_t size = (uint64_t)st.st_size;
	if (size < 8) {
		rc = fail(err, RWD_E_FORMAT, file, NULL,
			"the file is %llu bytes, too short for the 8-byte header length",
			(unsigned long long)size);
		goto fail;
	}
	uint64_t n;
	const char *hdr;
	if (p->use_mmap) {
		void *m = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (m == MAP_FAILED) {
			rc = fail(err, RWD_E_IO, file, NULL, "mmap failed: %s", strerror(errno));
			goto fail;
		}
		f->map = m;
		f->map_len = (size_t)size;
		if ((rc = check_header_len(file, m, size, p, &n, err)))
			goto fail;
		hdr = (const char *)m + 8;
		f->data = (const unsigned char *)m + 8 + n;
	} else {
		unsigned char first8[8];
		if ((rc = read_full(fd, first8, 8, 0, file, err)) ||
			(rc = check_header_len(file, first8, size, p, &n, err)))
			goto fail;
		hdr_copy = malloc(n ? (size_t)n : 1);
		uint64_t dl = size - 8 - n;
		/* the data section gets its own 64-byte aligned buffer, so the
		 * tensors' alignment is that of their offsets */
		f->heap = aligned_alloc(64, (size_t)((dl + 64) & ~(uint64_t)63));
		if (!hdr_copy || !f->heap) {
			rc = fail_nomem(err, file);
			goto fail;
		}
		if ((rc = read_full(fd, hdr_copy, (size_t)n, 8, file, err)) ||
			(rc = read_full(fd, f->heap, (size_t)dl, 8 + n, file, err)))
			goto fail;
		hdr = hdr_copy;
		f->data = f->heap;
	}
	close(fd);
	fd = -1;
	f->data_len = size - 8 - n;
	rc = parse_header(w, (size_t)fi, hdr, (size_t)n, es, ne, err);
fail:
	if (fd >= 0)
		close(fd);
	free(hdr_copy);
	return rc;
}

/* ---- sharded checkpoints ------------------------------------------------- */

static int check_shard_name(const char *index, const char *tensor, const char *s, rwd_error *err)
{
	if (!*s || strcmp(s, ".") == 0 || strcmp(s, "..") == 0 || strchr(s, '/') || strchr(s, '\\'))
		return fail(err, RWD_E_INVALID, index, tensor,
			"shard \"%.80s\" is not a plain file name in the model folder", s);
	if (strlen(s) > NAME_MAX)
		return fail(err, RWD_E_LIMIT, index, tensor, "shard file name longer than %d bytes",
			NAME_MAX);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int read_small_file(const char *path, size_t limit, char **out, size_t *len, rwd_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(err, errno_code(errno), path, NULL, "cannot open: %s", strerror(errno));
	int rc = 0;
	char *buf = NULL;
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = fail(err, RWD_E_IO, path, NULL, "not a readable regular file");
		goto fail;
	}
	if ((uint64_t)st.st_size > limit) {
		rc = fail(err, RWD_E_LIMIT, path, NULL, "%lld bytes exceed the limit of %zu",
			(long long)st.st_size, limit);
		goto fail;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		rc = fail_nomem(err, path);
		goto fail;
	}
	if ((rc = read_full(fd, buf, (size_t)st.st_size, 0, path, err)))
		goto fail;
	close(fd);
	*out = buf;
	*len = (size_t)st.st_size;
	return 0;
fail:
	close(fd);
	free(buf);
	return rc;
}

int rwd__st_index_parse(rwd_arena *arena, const char *file, const char *text, size_t len,
	size_t max_shards, rwd__st_index *out, rwd_error *err)
{
	json_error_t je;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return json_fail(err, file, "index", text, len, &je, 0);
	int rc = 0;
	if (!json_is_object(root)) {
		rc = fail(err, RWD_E_FORMAT, file, NULL, "the index is %s, not an object",
			json_kind(root));
		goto fail;
	}
	json_t *meta = json_object_get(root, "metadata");
	if (meta && !json_is_object(meta) && !json_is_null(meta)) {
		rc = fail(err, RWD_E_FORMAT, file, "metadata", "\"metadata\" is %s, not an object",
			json_kind(meta));
		goto fail;
	}
	json_t *wm = json_object_get(root, "weight_map");
	if (!json_is_object(wm)) {
		rc = fail(err, RWD_E_FORMAT, file, "weight_map", "\"weight_map\" is %s, not an object",
			wm ? json_kind(wm) : "missing");
		goto fail;
	}

	size_t nt = json_object_size(wm);
	const char **tname = rwd_arena_alloc(arena, (nt + 1) * sizeof(*tname));
	const char **tshard = rwd_arena_alloc(arena, (nt + 1) * sizeof(*tshard));
	const char **shards = rwd_arena_alloc(arena, (nt + 1) * sizeof(*shards));
	if (!tname || !tshard || !shards) {
		rc = fail_nomem(err, file);
		goto fail;
	}
	size_t i = 0;
	const char *key;
	json_t *val;
	json_object_foreach(wm, key, val) {
		if (!json_is_string(val)) {
			rc = fail(err, RWD_E_FORMAT, file, key,
				"weight_map value is %s, not a shard file name", json_kind(val));
			goto fail;
		}
		if ((rc = check_shard_name(file, key, json_string_value(val), err)))
			goto fail;
		tname[i] = rwd_arena_strdup(arena, key);
		tshard[i] = rwd_arena_strdup(arena, json_string_value(val));
		if (!tname[i] || !tshard[i]) {
			rc = fail_nomem(err, file);
			goto fail;
		}
		shards[i] = tshard[i];
		i++;
	}

	/* distinct shards, in name order */
	qsort(shards, nt, sizeof(*shards), cmp_str);
	size_t ns = 0;
	for (i = 0; i < nt; i++)
		if (ns == 0 || strcmp(shards[ns - 1], shards[i]) != 0)
			shards[ns++] = shards[i];
	if (ns > max_shards) {
		rc = fail(err, RWD_E_LIMIT, file, NULL,
			"the index names %zu shard files, more than the limit of %zu", ns, max_shards);
		goto fail;
	}
	*out = (rwd__st_index){ .n_tensors = nt, .tensor = tname, .shard = tshard,
		.n_shards = ns, .shards = shards };
fail:
	json_decref(root);
	return rc;
}

/*
 * Load every shard the index names, then pick each weight_map tensor from
 * its shard. Sets *sel (arena) / *nsel to the chosen entries.
 */
static int load_index(rwd_weights *w, const char *dir, const char *index_path,
	const rwd_weights_params *p, struct st_entry ***sel, size_t *nsel, rwd_error *err)
{
	char *text = NULL;
	size_t len = 0;
	int rc = read_small_file(index_path, p->max_index_bytes, &text, &len, err);
	if (rc)
		return rc;
	rwd__st_index ix;
	rc = rwd__st_index_parse(w->arena, index_path, text, len, p->max_shards, &ix, err);
	free(text);
	if (rc)
		return rc;

	size_t ns = ix.n_shards;
	struct st_entry **ses = rwd_arena_alloc(w->arena, (ns + 1) * sizeof(*ses));
	size_t *sne = rwd_arena_alloc(w->arena, (ns + 1) * sizeof(*sne));
	const char **spath = rwd_arena_alloc(w->arena, (ns + 1) * sizeof(*spath));
	*sel = rwd_arena_alloc(w->arena, (ix.n_tensors + 1) * sizeof(**sel));
	if (!ses || !sne || !spath || !*sel)
		return fail_nomem(err, index_path);
	for (size_t s = 0; s < ns; s++) {
		char *sp = rwd_arena_sprintf(w->arena, "%s/%s", dir, ix.shards[s]);
		if (!sp)
			return fail_nomem(err, index_path);
		spath[s] = sp;
		if ((rc = load_file(w, sp, p, &ses[s], &sne[s], err)))
			return rc;
		qsort(ses[s], sne[s], sizeof(*ses[s]), cmp_entry_names);
	}
	for (size_t i = 0; i < ix.n_tensors; i++) {
		const char **sh = bsearch(&ix.shard[i], ix.shards, ns, sizeof(*ix.shards), cmp_str);
		size_t s = (size_t)(sh - ix.shards);
		struct st_entry probe = { .name = ix.tensor[i] };
		struct st_entry *e = bsearch(&probe, ses[s], sne[s], sizeof(probe), cmp_entry_names);
		if (!e)
			return fail(err, RWD_E_NOTFOUND, spath[s], ix.tensor[i],
				"tensor listed in %s is missing from this shard", INDEX_NAME);
		(*sel)[i] = e;
	}
	*nsel = ix.n_tensors;
	return 0;
}

/* ---- the handle ---------------------------------------------------------- */

static rwd_weights *weights_new(const char *path, const rwd_weights_params *p)
{
	rwd_weights *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->arena = rwd_arena_create(64 * 1024, 0);
	w->path = w->arena ? rwd_arena_strdup(w->arena, path) : NULL;
	if (!w->path) {
		rwd_weights_free(w);
		return NULL;
	}
	w->convert_half = p->convert_half;
	return w;
}

void rwd_weights_free(rwd_weights *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->n_files; i++) {
		if (w->files[i].map)
			munmap(w->files[i].map, w->files[i].map_len);
		free(w->files[i].heap);
	}
	free(w->files);
	free(w->meta);
	rwd_arena_destroy(w->arena);
	free(w);
}

static int cmp_tensor_names(const void *pa, const void *pb)
{
	const rwd_tensor *a = pa, *b = pb;
	return strcmp(a->name, b->name);
}

static int cmp_meta(const void *pa, const void *pb)
{
	const struct meta_kv *a = pa, *b = pb;
	int c = strcmp(a->key, b->key);
	if (c)
		return c;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/*
 * Turn the selected entries into the tensor table: naturally aligned data
 * (copying what a foreign writer left misaligned), float32 views, name order.
 */
static int finalize(rwd_weights *w, struct st_entry *const *sel, size_t n, rwd_error *err)
{
	w->tensors = rwd_arena_alloc(w->arena, (n ? n : 1) * sizeof(*w->tensors));
	if (!w->tensors)
		return fail_nomem(err, w->path);
	for (size_t i = 0; i < n; i++) {
		const struct st_entry *e = sel[i];
		const struct st_file *f = &w->files[e->file];
		rwd_tensor *t = &w->tensors[i];
		size_t nbytes = (size_t)(e->end - e->begin);
		const unsigned char *raw = f->data + e->begin;
		size_t esz = rwd_dtype_size(e->dtype);
		size_t align = esz == 0 ? 1 : esz > 8 ? 8 : esz;
		*t = (rwd_tensor){
			.name = e->name, .dtype = e->dtype, .ndim = e->ndim, .shape = e->shape,
			.numel = e->numel, .data = raw, .nbytes = nbytes, .file = f->path,
		};
		if ((uintptr_t)raw % align) {
			void *copy = rwd_arena_alloc(w->arena, nbytes);
			if (!copy)
				return fail(err, RWD_E_NOMEM, f->path, e->name,
					"out of memory copying %zu misaligned bytes", nbytes);
			memcpy(copy, raw, nbytes);
			t->data = copy;
			w->owned_bytes += nbytes;
		}
		if (e->dtype == RWD_DTYPE_F32) {
			t->f32 = t->data;
		} else if ((e->dtype == RWD_DTYPE_F16 || e->dtype == RWD_DTYPE_BF16) &&
			w->convert_half) {
			size_t numel = (size_t)e->numel;
			float *dst = numel ? rwd_arena_alloc(w->arena, numel * sizeof(float)) :
				(float *)empty_f32;
			if (!dst)
				return fail(err, RWD_E_NOMEM, f->path, e->name,
					"out of memory converting %zu %s values to F32", numel,
					rwd_dtype_name(e->dtype));
			if (e->dtype == RWD_DTYPE_F16)
				rwd_dtype_f16_to_f32_row(t->data, dst, numel);
			else
				rwd_dtype_bf16_to_f32_row(t->data, dst, numel);
			t->f32 = dst;
			w->owned_bytes += numel * sizeof(float);
		}
		w->total_bytes += nbytes;
	}
	qsort(w->tensors, n, sizeof(*w->tensors), cmp_tensor_names);
	w->n_tensors = n;

	if (w->n_meta)
		qsort(w->meta, w->n_meta, sizeof(*w->meta), cmp_meta);
	size_t m = 0;
	for (size_t i = 0; i < w->n_meta; i++)
		if (m == 0 || strcmp(w->meta[m - 1].key, w->meta[i].key) != 0)
			w->meta[m++] = w->meta[i];
	w->n_meta = m;
	return 0;
}

/* Pointers to every entry of a single file, for finalize(). */
static struct st_entry **select_all(rwd_weights *w, struct st_entry *es, size_t n)
{
	struct st_entry **sel = rwd_arena_alloc(w->arena, (n ? n : 1) * sizeof(*sel));
	if (sel)
		for (size_t i = 0; i < n; i++)
			sel[i] = &es[i];
	return sel;
}

static int is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

int rwd_weights_open(const char *path, const rwd_weights_params *params, rwd_weights **out,
	rwd_error *err)
{
	rwd_error_clear(err);
	if (!out)
		return rwd_errorf(err, RWD_E_INVALID, "no output handle");
	*out = NULL;
	if (!path || !*path)
		return rwd_errorf(err, RWD_E_INVALID, "no weights path");
	rwd_weights_params p = params ? *params : rwd_weights_default_params();
	struct stat st;
	if (stat(path, &st) != 0)
		return fail(err, errno_code(errno), path, NULL, "cannot open: %s", strerror(errno));
	rwd_weights *w = weights_new(path, &p);
	if (!w)
		return fail_nomem(err, path);

	int rc;
	struct st_entry **sel = NULL;
	size_t nsel = 0;
	if (S_ISDIR(st.st_mode)) {
		char *single = rwd_arena_sprintf(w->arena, "%s/%s", path, SINGLE_NAME);
		char *index = rwd_arena_sprintf(w->arena, "%s/%s", path, INDEX_NAME);
		struct stat s2;
		if (!single || !index) {
			rc = fail_nomem(err, path);
			goto fail;
		}
		if (stat(single, &s2) == 0) {
			struct st_entry *es;
			if ((rc = load_file(w, single, &p, &es, &nsel, err)))
				goto fail;
			sel = select_all(w, es, nsel);
		} else if (stat(index, &s2) == 0) {
			if ((rc = load_index(w, path, index, &p, &sel, &nsel, err)))
				goto fail;
		} else {
			rc = fail(err, RWD_E_NOTFOUND, path, NULL,
				"the folder holds neither " SINGLE_NAME " nor " INDEX_NAME);
			goto fail;
		}
	} else if (ends_with(path, ".index.json")) {
		const char *slash = strrchr(path, '/');
		char *dir = slash ? rwd_arena_strndup(w->arena, path, (size_t)(slash - path)) :
			rwd_arena_strdup(w->arena, ".");
		if (dir && !*dir)
			dir = rwd_arena_strdup(w->arena, "/");
		if (!dir) {
			rc = fail_nomem(err, path);
			goto fail;
		}
		if (!is_dir(dir)) {
			rc = fail(err, RWD_E_NOTFOUND, path, NULL, "cannot find the index's folder");
			goto fail;
		}
		if ((rc = load_index(w, dir, path, &p, &sel, &nsel, err)))
			goto fail;
	} else {
		struct st_entry *es;
		if ((rc = load_file(w, path, &p, &es, &nsel, err)))
			goto fail;
		sel = select_all(w, es, nsel);
	}
	if (!sel) {
		rc = fail_nomem(err, path);
		goto fail;
	}
	if ((rc = finalize(w, sel, nsel, err)))
		goto fail;
	*out = w;
	return 0;
fail:
	rwd_weights_free(w);
	return rc;
}

int rwd_safetensors_parse(const void *buf, size_t len, const char *name,
	const rwd_weights_params *params, rwd_weights **out, rwd_error *err)
{
	rwd_error_clear(err);
	if (!out)
		return rwd_errorf(err, RWD_E_INVALID, "no output handle");
	*out = NULL;
	if (!name)
		name = "<memory>";
	if (!buf && len)
		return rwd_errorf(err, RWD_E_INVALID, "no buffer");
	rwd_weights_params p = params ? *params : rwd_weights_default_params();
	rwd_weights *w = weights_new(name, &p);
	if (!w)
		return fail_nomem(err, name);
	int rc;
	int fi = add_file(w, name, err);
	if (fi < 0) {
		rc = fi;
		goto fail;
	}
	if (len < 8) {
		rc = fail(err, RWD_E_FORMAT, name, NULL,
			"the file is %zu bytes, too short for the 8-byte header length", len);
		goto fail;
	}
	uint64_t n;
	if ((rc = check_header_len(name, buf, len, &p, &n, err)))
		goto fail;
	w->files[fi].data = (const unsigned char *)buf + 8 + n;
	w->files[fi].data_len = len - 8 - n;
	struct st_entry *es;
	size_t ne;
	if ((rc = parse_header(w, (size_t)fi, (const char *)buf + 8, (size_t)n, &es, &ne, err)))
		goto fail;
	struct st_entry **sel = select_all(w, es, ne);
	if (!sel) {
		rc = fail_nomem(err, name);
		goto fail;
	}
	if ((rc = finalize(w, sel, ne, err)))
		goto fail;
	*out = w;
	return 0;
fail:
	rwd_weights_free(w);
	return rc;
}

/* ---- queries ------------------------------------------------------------- */

const rwd_tensor *rwd_weights_find(const rwd_weights *w, const char *name)
{
	if (!w || !name)
		return NULL;
	rwd_tensor probe = { .name = name };
	return bsearch(&probe, w->tensors, w->n_tensors, sizeof(probe), cmp_tensor_names);
}

int rwd_weights_get(const rwd_weights *w, const char *name, int ndim, const int64_t *shape,
	const rwd_tensor **out, rwd_error *err)
{
	if (!w || !name || !out)
		return rwd_errorf(err, RWD_E_INVALID, "no weights or tensor name");
	const rwd_tensor *t = rwd_weights_find(w, name);
	if (!t)
		return fail(err, RWD_E_NOTFOUND, w->path, name, "tensor not found");
	int ok = ndim < 0 || t->ndim == ndim;
	for (int i = 0; ok && shape && i < ndim; i++)
		ok = shape[i] < 0 || shape[i] == t->shape[i];
	if (!ok) {
		char have[160], want[160];
		rwd_tensor_shape_str(t->ndim, t->shape, have, sizeof(have));
		if (shape)
			rwd_tensor_shape_str(ndim, shape, want, sizeof(want));
		else
			snprintf(want, sizeof(want), "rank %d", ndim);
		return fail(err, RWD_E_INVALID, t->file, name, "shape is %s, expected %s", have, want);
	}
	*out = t;
	return 0;
}

int rwd_weights_get_f32(const rwd_weights *w, const char *name, int ndim, const int64_t *shape,
	const float **out, rwd_error *err)
{
	const rwd_tensor *t;
	int rc = rwd_weights_get(w, name, ndim, shape, &t, err);
	if (rc)
		return rc;
	if (!out)
		return rwd_errorf(err, RWD_E_INVALID, "no output pointer");
	if (!t->f32) {
		if (rwd_dtype_is_f32_convertible(t->dtype))
			return fail(err, RWD_E_UNSUPPORTED, t->file, name,
				"stored as %s and the weights were opened without half->F32 conversion",
				rwd_dtype_name(t->dtype));
		return fail(err, RWD_E_UNSUPPORTED, t->file, name,
			"stored as %s, which cannot be read as float32", rwd_dtype_name(t->dtype));
	}
	*out = t->f32;
	return 0;
}

size_t rwd_weights_count(const rwd_weights *w)
{
	return w ? w->n_tensors : 0;
}

const rwd_tensor *rwd_weights_at(const rwd_weights *w, size_t i)
{
	return w && i < w->n_tensors ? &w->tensors[i] : NULL;
}

uint64_t rwd_weights_total_bytes(const rwd_weights *w)
{
	return w ? w->total_bytes : 0;
}

uint64_t rwd_weights_owned_bytes(const rwd_weights *w)
{
	return w ? w->owned_bytes : 0;
}

const char *rwd_weights_metadata(const rwd_weights *w, const char *key)
{
	if (!w || !key)
		return NULL;
	for (size_t lo = 0, hi = w->n_meta; lo < hi;) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(key, w->meta[mid].key);
		if (c == 0)
			return w->meta[mid].value;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

const char *rwd_weights_path(const rwd_weights *w)
{
	return w ? w->path : NULL;
}
