/*
 * compat/pickle.h — a restricted pickle codec for the image-RL trainers'
 * reward-server protocols (flow_grpo, verl-omni, EditScore: pickle over
 * HTTP; /work/shared/reference/image-rl-protocols.md). It decodes what
 * those clients' pickle.dumps() emits into plain data and can never call,
 * import or construct anything.
 *
 * Decoded (protocols 2..5, FRAME accepted and ignored): None, bool, int
 * (up to 64 bits), float, str (valid UTF-8), bytes, bytearray, list, tuple,
 * dict, and the memo (MEMOIZE, BINPUT/LONG_BINPUT, BINGET/LONG_BINGET),
 * MARK, POP, POP_MARK, DUP. Beyond builtins, an explicit allow-list of
 * (module, name) pairs turned into data without constructing anything:
 *   _codecs.encode(str, "latin1")         protocol 2's bytes  → BYTES
 *   __builtin__/builtins.bytes()           protocol 2's b''    → BYTES
 *   __builtin__/builtins.bytearray(bytes)  protocols 2..4      → BYTES
 *   numpy[._]core.multiarray._reconstruct(numpy.ndarray, (0,), b'b') + BUILD
 *       (1, shape, dtype, fortran, raw)    protocols 2..4      → NDARRAY
 *   numpy[._]core.numeric._frombuffer(buf, dtype, shape, order)  5 → NDARRAY
 *   numpy.dtype(str, False, True) + BUILD (3, byteorder, None, None, None,
 *       elsize, alignment, flags)          a dtype, read as kind + itemsize
 *   PIL.Image.Image and the plugin ImageFile subclasses, NEWOBJ () + BUILD
 *       [info, mode, size, palette, data(, filename: Pillow >= 11)] → IMAGE
 *       (mode, width, height, palette, pixel bytes; `info` is walked and
 *       dropped)
 *   PIL.PngImagePlugin.iTXt, PIL.TiffImagePlugin.IFDRational,
 *       fractions.Fraction (metadata values inside an image's info)
 *       → OPAQUE: the arguments and state are parsed and dropped.
 * Everything else — GLOBAL/STACK_GLOBAL of any other name, REDUCE, NEWOBJ
 * or BUILD on anything but the above, INST, OBJ, PERSID, BINPERSID, EXT*,
 * NEXT_BUFFER, READONLY_BUFFER, sets, protocol 0/1 text opcodes, unknown
 * opcodes — is RWD_E_UNSUPPORTED with the opcode (and name) in the message
 * and its byte offset in err->offset. Nothing is ever called: the values
 * of the allow-listed names are built here from their arguments.
 *
 * Limits (rwd_pickle_limits), each checked before the memory is taken:
 * values created, items in one container, str/bytes length, memo index,
 * MARK nesting, container nesting (checked on the result: a cycle built
 * through the memo is refused), ndarray elements, image pixels. Errors:
 * RWD_E_FORMAT (truncated, bad lengths, stack underflow, invalid UTF-8, no
 * STOP), RWD_E_INVALID (wrong argument types to an allow-listed name),
 * RWD_E_LIMIT, RWD_E_UNSUPPORTED, RWD_E_NOMEM.
 *
 * Memory: values come from the caller's arena; str/bytes point into the
 * input where they can (the input must outlive the values), protocol 2's
 * latin-1 bytes are copied.
 *
 * The encoder writes a JSON value (objects, arrays, strings, numbers,
 * booleans, null) as a protocol 2 pickle (dict, list, str, float, int,
 * bool, None), which every Python 3 pickle.loads reads.
 *
 * Thread safety: re-entrant, no state.
 */
#ifndef RWD_COMPAT_PICKLE_H
#define RWD_COMPAT_PICKLE_H

#include "core/arena.h"
#include "core/error.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

enum rwd_pickle_type {
	RWD_PICKLE_NONE,
	RWD_PICKLE_BOOL,
	RWD_PICKLE_INT,
	RWD_PICKLE_FLOAT,
	RWD_PICKLE_STR,     /* data/len: UTF-8 */
	RWD_PICKLE_BYTES,   /* data/len (bytes and bytearray) */
	RWD_PICKLE_LIST,    /* items[0..n) */
	RWD_PICKLE_TUPLE,   /* items[0..n) */
	RWD_PICKLE_DICT,    /* items[2k] key, items[2k+1] value, k < n */
	RWD_PICKLE_NDARRAY, /* dtype_kind/itemsize/byteorder, ndim/shape, data/len (C order) */
	RWD_PICKLE_IMAGE,   /* mode, width, height, palette (or NULL), data/len */
	RWD_PICKLE_OPAQUE,  /* an allow-listed metadata object, not decoded (cls names it) */
	RWD_PICKLE_CLASS_,  /* internal: a resolved global, before REDUCE/NEWOBJ */
	RWD_PICKLE_DTYPE_,  /* internal: a numpy dtype */
};

#define RWD_PICKLE_MAX_NDIM 8

typedef struct rwd_pickle_value rwd_pickle_value;
struct rwd_pickle_value {
	int type;              /* enum rwd_pickle_type */
	int64_t i;             /* BOOL, INT */
	double f;              /* FLOAT */
	const uint8_t *data;   /* STR, BYTES, NDARRAY, IMAGE */
	size_t len;
	rwd_pickle_value **items;
	size_t n;              /* items (pairs for a DICT) */
	size_t cap;
	/* NDARRAY / DTYPE_ */
	char dtype_kind;       /* 'U', 'S', 'u', 'i', 'f', 'b' */
	char byteorder;        /* '<', '>', '|' */
	size_t itemsize;
	size_t ndim;
	size_t shape[RWD_PICKLE_MAX_NDIM];
	/* IMAGE */
	char mode[8];          /* "RGB", "RGBA", "L", "LA", "P", ... as sent */
	uint32_t width, height;
	const rwd_pickle_value *palette; /* P: list of ints (flat R, G, B), or NULL */
	/* CLASS_ / OPAQUE: the allow-list entry, and internal state */
	int cls;
	int pending;           /* an object waiting for its BUILD */
	int mark;              /* walk colour (cycle check) */
	size_t nest;           /* containers nested at and below this value (after the walk) */
};

typedef struct rwd_pickle_limits {
	size_t max_values;     /* values created in one pickle */
	size_t max_items;      /* items of one list/tuple/dict */
	size_t max_bytes;      /* one str, bytes or ndarray buffer */
	size_t max_memo;       /* memo index + 1 */
	size_t max_depth;      /* container nesting, and MARKs open at once */
	size_t max_pixels;     /* one image's width * height */
} rwd_pickle_limits;

rwd_pickle_limits rwd_pickle_default_limits(void);

/*
 * Decode buf[0..len) into *out (allocated from arena; strings may point
 * into buf). The whole input must be one pickle: bytes after STOP are
 * refused. err->offset is the failing opcode's offset.
 */
int rwd_pickle_load(const uint8_t *buf, size_t len, const rwd_pickle_limits *lim, rwd_arena *arena,
	rwd_pickle_value **out, rwd_error *err);

/* The type's name as Python spells it ("dict", "numpy.ndarray", "PIL.Image.Image"). */
const char *rwd_pickle_type_name(const rwd_pickle_value *v);

/* d[key] of a DICT with str keys, or NULL. */
const rwd_pickle_value *rwd_pickle_dict_get(const rwd_pickle_value *d, const char *key);

/*
 * Element i of a 1-D numpy '<U' / '>U' array as UTF-8 into out (size
 * bytes, NUL-terminated), trailing NULs stripped as NumPy does. Returns the
 * length, or a negative RWD_E_* (RWD_E_INVALID: not a str array, a code
 * point beyond U+10FFFF or a surrogate; RWD_E_LIMIT: out too small).
 */
long rwd_pickle_ndarray_str(const rwd_pickle_value *a, size_t i, char *out, size_t size);

/*
 * Encode a JSON value as a protocol 2 pickle into a malloc'd buffer (*out,
 * *len; free()). Reals are BINFLOAT, integers BININT or LONG1, strings
 * BINUNICODE. RWD_E_INVALID for a non-finite real, RWD_E_NOMEM.
 */
int rwd_pickle_dump_json(const json_t *v, uint8_t **out, size_t *len, rwd_error *err);

#endif
