/*
 * compat/pickle.c — the restricted pickle decoder and the JSON → pickle
 * encoder (see pickle.h for what is accepted and why). The decoder is a
 * stack machine over the opcodes of CPython's Lib/pickle.py, restricted to
 * the ones the image-RL clients' payloads use; allow-listed globals are
 * resolved to a table entry, never to code.
 */
#include "compat/pickle.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

rwd_pickle_limits rwd_pickle_default_limits(void)
{
	rwd_pickle_limits l = {
		.max_values = 1u << 20,
		.max_items = 1u << 16,
		.max_bytes = 64u << 20,
		.max_memo = 1u << 20,
		.max_depth = 32,
		.max_pixels = 1u << 26,
	};
	return l;
}

/* ---- the allow-list -------------------------------------------------- */

enum {
	C_NONE,
	C_CODECS_ENCODE,
	C_BYTES,
	C_BYTEARRAY,
	C_NP_RECONSTRUCT,
	C_NP_NDARRAY,
	C_NP_DTYPE,
	C_NP_FROMBUFFER,
	C_PIL_IMAGE,
	C_ITXT,
	C_IFDRATIONAL,
	C_FRACTION,
};

static const struct {
	const char *module, *name;
	int cls;
} allow[] = {
	{"_codecs", "encode", C_CODECS_ENCODE},
	{"__builtin__", "bytes", C_BYTES},
	{"builtins", "bytes", C_BYTES},
	{"__builtin__", "bytearray", C_BYTEARRAY},
	{"builtins", "bytearray", C_BYTEARRAY},
	/* NumPy < 2 and >= 2 spell the private module differently */
	{"numpy.core.multiarray", "_reconstruct", C_NP_RECONSTRUCT},
	{"numpy._core.multiarray", "_reconstruct", C_NP_RECONSTRUCT},
	{"numpy", "ndarray", C_NP_NDARRAY},
	{"numpy", "dtype", C_NP_DTYPE},
	{"numpy.core.numeric", "_frombuffer", C_NP_FROMBUFFER},
	{"numpy._core.numeric", "_frombuffer", C_NP_FROMBUFFER},
	/* Image.__getstate__ is inherited by every plugin's ImageFile subclass;
	 * an image keeps its opener's class until it is converted */
	{"PIL.Image", "Image", C_PIL_IMAGE},
	{"PIL.PngImagePlugin", "PngImageFile", C_PIL_IMAGE},
	{"PIL.JpegImagePlugin", "JpegImageFile", C_PIL_IMAGE},
	{"PIL.MpoImagePlugin", "MpoImageFile", C_PIL_IMAGE},
	{"PIL.WebPImagePlugin", "WebPImageFile", C_PIL_IMAGE},
	{"PIL.GifImagePlugin", "GifImageFile", C_PIL_IMAGE},
	{"PIL.BmpImagePlugin", "BmpImageFile", C_PIL_IMAGE},
	{"PIL.TiffImagePlugin", "TiffImageFile", C_PIL_IMAGE},
	{"PIL.PpmImagePlugin", "PpmImageFile", C_PIL_IMAGE},
	/* metadata values inside an image's info dict: parsed, dropped */
	{"PIL.PngImagePlugin", "iTXt", C_ITXT},
	{"PIL.TiffImagePlugin", "IFDRational", C_IFDRATIONAL},
	{"fractions", "Fraction", C_FRACTION},
};

static const char *cls_name(int cls)
{
	for (size_t i = 0; i < sizeof(allow) / sizeof(allow[0]); i++)
		if (allow[i].cls == cls)
			return allow[i].name;
	return "?";
}

/* ---- opcodes ----------------------------------------------------------- */

static const char *op_name(uint8_t op)
{
	switch (op) {
	case '(': return "MARK";
	case '.': return "STOP";
	case '0': return "POP";
	case '1': return "POP_MARK";
	case '2': return "DUP";
	case 'F': return "FLOAT";
	case 'I': return "INT";
	case 'J': return "BININT";
	case 'K': return "BININT1";
	case 'L': return "LONG";
	case 'M': return "BININT2";
	case 'N': return "NONE";
	case 'P': return "PERSID";
	case 'Q': return "BINPERSID";
	case 'R': return "REDUCE";
	case 'S': return "STRING";
	case 'T': return "BINSTRING";
	case 'U': return "SHORT_BINSTRING";
	case 'V': return "UNICODE";
	case 'X': return "BINUNICODE";
	case 'a': return "APPEND";
	case 'b': return "BUILD";
	case 'c': return "GLOBAL";
	case 'd': return "DICT";
	case '}': return "EMPTY_DICT";
	case 'e': return "APPENDS";
	case 'g': return "GET";
	case 'h': return "BINGET";
	case 'i': return "INST";
	case 'j': return "LONG_BINGET";
	case 'l': return "LIST";
	case ']': return "EMPTY_LIST";
	case 'o': return "OBJ";
	case 'p': return "PUT";
	case 'q': return "BINPUT";
	case 'r': return "LONG_BINPUT";
	case 's': return "SETITEM";
	case 't': return "TUPLE";
	case ')': return "EMPTY_TUPLE";
	case 'u': return "SETITEMS";
	case 'G': return "BINFLOAT";
	case 'B': return "BINBYTES";
	case 'C': return "SHORT_BINBYTES";
	case 0x80: return "PROTO";
	case 0x81: return "NEWOBJ";
	case 0x82: return "EXT1";
	case 0x83: return "EXT2";
	case 0x84: return "EXT4";
	case 0x85: return "TUPLE1";
	case 0x86: return "TUPLE2";
	case 0x87: return "TUPLE3";
	case 0x88: return "NEWTRUE";
	case 0x89: return "NEWFALSE";
	case 0x8a: return "LONG1";
	case 0x8b: return "LONG4";
	case 0x8c: return "SHORT_BINUNICODE";
	case 0x8d: return "BINUNICODE8";
	case 0x8e: return "BINBYTES8";
	case 0x8f: return "EMPTY_SET";
	case 0x90: return "ADDITEMS";
	case 0x91: return "FROZENSET";
	case 0x92: return "NEWOBJ_EX";
	case 0x93: return "STACK_GLOBAL";
	case 0x94: return "MEMOIZE";
	case 0x95: return "FRAME";
	case 0x96: return "BYTEARRAY8";
	case 0x97: return "NEXT_BUFFER";
	case 0x98: return "READONLY_BUFFER";
	default: return NULL;
	}
}

/* ---- the machine ------------------------------------------------------- */

typedef struct pk {
	const uint8_t *buf;
	size_t len, pos;
	size_t op_at;          /* offset of the current opcode */
	uint8_t op;
	const rwd_pickle_limits *lim;
	rwd_arena *arena;
	rwd_error *err;
	rwd_pickle_value **stack;
	size_t sp, stack_cap;
	size_t *marks;
	size_t n_marks, marks_cap;
	rwd_pickle_value **memo;
	size_t memo_cap, memo_count;
	size_t n_values;
} pk;

static int fail(pk *p, int code, const char *fmt, ...) RWD_PRINTF(3, 4);

static int fail(pk *p, int code, const char *fmt, ...)
{
	char msg[RWD_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	const char *n = op_name(p->op);
	if (n)
		rwd_errorf(p->err, code, "pickle opcode %s at offset %zu: %s", n, p->op_at, msg);
	else
		rwd_errorf(p->err, code, "pickle byte 0x%02x at offset %zu: %s", p->op, p->op_at, msg);
	rwd_error_at(p->err, 0, 0, (int64_t)p->op_at);
	return code;
}

static rwd_pickle_value *new_value(pk *p, int type)
{
	if (p->n_values >= p->lim->max_values) {
		fail(p, RWD_E_LIMIT, "more than %zu values", p->lim->max_values);
		return NULL;
	}
	rwd_pickle_value *v = rwd_arena_calloc(p->arena, 1, sizeof(*v));
	if (!v) {
		fail(p, RWD_E_NOMEM, "out of memory");
		return NULL;
	}
	p->n_values++;
	v->type = type;
	return v;
}

static int push(pk *p, rwd_pickle_value *v)
{
	if (!v)
		return p->err && p->err->code ? p->err->code : RWD_E_NOMEM;
	if (p->sp == p->stack_cap) {
		size_t nc = p->stack_cap ? 2 * p->stack_cap : 64;
		rwd_pickle_value **ns = realloc(p->stack, nc * sizeof(*ns));
		if (!ns)
			return fail(p, RWD_E_NOMEM, "out of memory");
		p->stack = ns;
		p->stack_cap = nc;
	}
	p->stack[p->sp++] = v;
	return 0;
}

/* The bottom of the current frame: the last MARK, or 0. */
static size_t frame_base(const pk *p)
{
	return p->n_marks ? p->marks[p->n_marks - 1] : 0;
}

static int pop(pk *p, rwd_pickle_value **v)
{
	if (p->sp <= frame_base(p))
		return fail(p, RWD_E_FORMAT, "the stack is empty");
	*v = p->stack[--p->sp];
	return 0;
}

static int top(pk *p, rwd_pickle_value **v)
{
	if (p->sp <= frame_base(p))
		return fail(p, RWD_E_FORMAT, "the stack is empty");
	*v = p->stack[p->sp - 1];
	return 0;
}

/* Pop to the last MARK: *base is where the marked items start on the stack. */
static int pop_mark(pk *p, size_t *base)
{
	if (!p->n_marks)
		return fail(p, RWD_E_FORMAT, "no MARK to pop to");
	*base = p->marks[--p->n_marks];
	return 0;
}

static int need(pk *p, size_t n)
{
	if (p->len - p->pos < n)
		return fail(p, RWD_E_FORMAT, "truncated: needs %zu more bytes, %zu left", n, p->len - p->pos);
	return 0;
}

static uint64_t le(const uint8_t *b, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

/* Storage: items[] grows by doubling inside the arena. slots = entries (2 per dict pair). */
static int reserve(pk *p, rwd_pickle_value *c, size_t slots)
{
	size_t have = c->type == RWD_PICKLE_DICT ? 2 * c->n : c->n;
	if (have + slots <= c->cap)
		return 0;
	size_t nc = c->cap ? c->cap : 8;
	while (nc < have + slots)
		nc *= 2;
	rwd_pickle_value **ni = rwd_arena_calloc(p->arena, nc, sizeof(*ni));
	if (!ni)
		return fail(p, RWD_E_NOMEM, "out of memory");
	if (have)
		memcpy(ni, c->items, have * sizeof(*ni));
	c->items = ni;
	c->cap = nc;
	return 0;
}

static int list_append(pk *p, rwd_pickle_value *l, rwd_pickle_value *v)
{
	if (l->n >= p->lim->max_items)
		return fail(p, RWD_E_LIMIT, "a %s with more than %zu items",
			l->type == RWD_PICKLE_TUPLE ? "tuple" : "list", p->lim->max_items);
	int r = reserve(p, l, 1);
	if (r)
		return r;
	l->items[l->n++] = v;
	return 0;
}

static int dict_set(pk *p, rwd_pickle_value *d, rwd_pickle_value *k, rwd_pickle_value *v)
{
	if (d->n >= p->lim->max_items)
		return fail(p, RWD_E_LIMIT, "a dict with more than %zu items", p->lim->max_items);
	int r = reserve(p, d, 2);
	if (r)
		return r;
	d->items[2 * d->n] = k;
	d->items[2 * d->n + 1] = v;
	d->n++;
	return 0;
}

/* Strict UTF-8 (no surrogates, no overlongs), as Python's str always is. */
static int utf8_ok(const uint8_t *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t k;
		uint32_t cp;
		if (c >= 0xc2 && c <= 0xdf) {
			k = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			k = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			k = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (n - i <= k)
			return 0;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + j] & 0x3f);
		}
		if ((k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return 0;
		i += k + 1;
	}
	return 1;
}

static int push_blob(pk *p, int type, size_t n)
{
	if (n > p->lim->max_bytes)
		return fail(p, RWD_E_LIMIT, "a %s of %zu bytes, over the limit of %zu",
			type == RWD_PICKLE_STR ? "str" : "bytes", n, p->lim->max_bytes);
	int r = need(p, n);
	if (r)
		return r;
	const uint8_t *d = p->buf + p->pos;
	if (type == RWD_PICKLE_STR && !utf8_ok(d, n))
		return fail(p, RWD_E_FORMAT, "a str that is not valid UTF-8");
	p->pos += n;
	rwd_pickle_value *v = new_value(p, type);
	if (!v)
		return p->err->code;
	v->data = d;
	v->len = n;
	return push(p, v);
}

static int push_int(pk *p, int64_t i)
{
	rwd_pickle_value *v = new_value(p, RWD_PICKLE_INT);
	if (!v)
		return p->err->code;
	v->i = i;
	return push(p, v);
}

static int is_str(const rwd_pickle_value *v, const char *s)
{
	return v->type == RWD_PICKLE_STR && v->len == strlen(s) && memcmp(v->data, s, v->len) == 0;
}

static int resolve_global(pk *p, const uint8_t *mod, size_t ml, const uint8_t *name, size_t nl)
{
	for (size_t i = 0; i < sizeof(allow) / sizeof(allow[0]); i++) {
		if (strlen(allow[i].module) == ml && memcmp(allow[i].module, mod, ml) == 0 &&
		    strlen(allow[i].name) == nl && memcmp(allow[i].name, name, nl) == 0) {
			rwd_pickle_value *v = new_value(p, RWD_PICKLE_CLASS_);
			if (!v)
				return p->err->code;
			v->cls = allow[i].cls;
			return push(p, v);
		}
	}
	char m[80], n[80];
	size_t a = ml < sizeof(m) - 1 ? ml : sizeof(m) - 1, b = nl < sizeof(n) - 1 ? nl : sizeof(n) - 1;
	for (size_t i = 0; i < a; i++)
		m[i] = mod[i] >= 0x20 && mod[i] < 0x7f ? (char)mod[i] : '?';
	for (size_t i = 0; i < b; i++)
		n[i] = name[i] >= 0x20 && name[i] < 0x7f ? (char)name[i] : '?';
	m[a] = n[b] = '\0';
	return fail(p, RWD_E_UNSUPPORTED, "'%s.%s' is not an allowed global (only builtin values, numpy arrays "
		"and PIL images are decoded; nothing is ever imported or called)", m, n);
}

/* latin-1 text (UTF-8 in the pickle) → bytes, each code point <= 0xff. */
static int latin1_bytes(pk *p, const rwd_pickle_value *s, rwd_pickle_value **out)
{
	uint8_t *b = rwd_arena_alloc(p->arena, s->len ? s->len : 1);
	if (!b)
		return fail(p, RWD_E_NOMEM, "out of memory");
	size_t n = 0;
	for (size_t i = 0; i < s->len;) {
		uint8_t c = s->data[i];
		if (c < 0x80) {
			b[n++] = c;
			i++;
		} else if ((c == 0xc2 || c == 0xc3) && i + 1 < s->len) {
			b[n++] = (uint8_t)(((c & 0x1f) << 6) | (s->data[i + 1] & 0x3f));
			i += 2;
		} else {
			return fail(p, RWD_E_INVALID, "_codecs.encode: a character beyond U+00FF in latin-1 text");
		}
	}
	rwd_pickle_value *v = new_value(p, RWD_PICKLE_BYTES);
	if (!v)
		return p->err->code;
	v->data = b;
	v->len = n;
	*out = v;
	return 0;
}

static int is_latin1_name(const rwd_pickle_value *v)
{
	return is_str(v, "latin1") || is_str(v, "latin-1");
}

/* dtype spec "U7", "<f4", "u1", ... → kind and itemsize (byte order from BUILD). */
static int parse_dtype(pk *p, const rwd_pickle_value *spec, rwd_pickle_value *d)
{
	const uint8_t *s = spec->data;
	size_t n = spec->len;
	if (n && (s[0] == '<' || s[0] == '>' || s[0] == '|' || s[0] == '=')) {
		d->byteorder = s[0] == '=' ? '<' : (char)s[0];
		s++;
		n--;
	}
	if (n < 2 || !strchr("USuifb", s[0]))
		return fail(p, RWD_E_UNSUPPORTED, "numpy dtype '%.*s': only U, S, u, i, f and b dtypes are decoded",
			(int)(spec->len < 32 ? spec->len : 32), spec->data);
	size_t k = 0;
	for (size_t i = 1; i < n; i++) {
		if (s[i] < '0' || s[i] > '9' || k > 100000000)
			return fail(p, RWD_E_INVALID, "numpy dtype '%.*s' is malformed",
				(int)(spec->len < 32 ? spec->len : 32), spec->data);
		k = 10 * k + (size_t)(s[i] - '0');
	}
	d->dtype_kind = (char)s[0];
	d->itemsize = s[0] == 'U' ? 4 * k : k;
	if (!d->itemsize && s[0] != 'U' && s[0] != 'S')
		return fail(p, RWD_E_INVALID, "numpy dtype of itemsize 0");
	if (!d->byteorder)
		d->byteorder = d->itemsize > 1 && s[0] != 'S' ? '<' : '|';
	return 0;
}

/* shape tuple → ndarray dims; the element count times itemsize must be nbytes. */
static int set_shape(pk *p, rwd_pickle_value *a, const rwd_pickle_value *shape, size_t nbytes)
{
	if (shape->type != RWD_PICKLE_TUPLE)
		return fail(p, RWD_E_INVALID, "numpy array shape must be a tuple");
	if (shape->n > RWD_PICKLE_MAX_NDIM)
		return fail(p, RWD_E_UNSUPPORTED, "numpy array of %zu dimensions (at most %d)", shape->n,
			RWD_PICKLE_MAX_NDIM);
	size_t count = 1;
	for (size_t i = 0; i < shape->n; i++) {
		const rwd_pickle_value *d = shape->items[i];
		if (d->type != RWD_PICKLE_INT || d->i < 0 || (uint64_t)d->i > p->lim->max_bytes)
			return fail(p, RWD_E_INVALID, "numpy array dimension %zu is not a size", i);
		if (d->i && count > p->lim->max_bytes / (size_t)d->i)
			return fail(p, RWD_E_LIMIT, "numpy array over %zu elements", p->lim->max_bytes);
		count *= (size_t)d->i;
		a->shape[i] = (size_t)d->i;
	}
	a->ndim = shape->n;
	if (a->itemsize && count > SIZE_MAX / a->itemsize)
		return fail(p, RWD_E_LIMIT, "numpy array too large");
	if (count * a->itemsize != nbytes)
		return fail(p, RWD_E_INVALID, "numpy array of %zu elements of %zu bytes carries %zu bytes", count,
			a->itemsize, nbytes);
	return 0;
}

static int op_reduce(pk *p)
{
	rwd_pickle_value *args = NULL, *fn = NULL;
	int r = pop(p, &args);
	if (!r)
		r = pop(p, &fn);
	if (r)
		return r;
	if (fn->type != RWD_PICKLE_CLASS_)
		return fail(p, RWD_E_UNSUPPORTED, "calling a %s is not allowed", rwd_pickle_type_name(fn));
	if (args->type != RWD_PICKLE_TUPLE)
		return fail(p, RWD_E_FORMAT, "the arguments are not a tuple");
	rwd_pickle_value **a = args->items;
	size_t n = args->n;
	rwd_pickle_value *v = NULL;
	switch (fn->cls) {
	case C_CODECS_ENCODE:
		if (n != 2 || a[0]->type != RWD_PICKLE_STR || !is_latin1_name(a[1]))
			return fail(p, RWD_E_INVALID, "_codecs.encode takes (str, 'latin1') only");
		if ((r = latin1_bytes(p, a[0], &v)))
			return r;
		return push(p, v);
	case C_BYTES:
	case C_BYTEARRAY:
		if (n == 0) {
			v = new_value(p, RWD_PICKLE_BYTES);
			if (v)
				v->data = (const uint8_t *)"";
			return push(p, v);
		}
		if (n == 1 && a[0]->type == RWD_PICKLE_BYTES)
			return push(p, a[0]);
		if (n == 2 && a[0]->type == RWD_PICKLE_STR && is_latin1_name(a[1])) {
			if ((r = latin1_bytes(p, a[0], &v)))
				return r;
			return push(p, v);
		}
		return fail(p, RWD_E_INVALID, "%s takes (), (bytes,) or (str, 'latin-1') only", cls_name(fn->cls));
	case C_NP_RECONSTRUCT:
		if (n != 3 || a[0]->type != RWD_PICKLE_CLASS_ || a[0]->cls != C_NP_NDARRAY ||
		    a[1]->type != RWD_PICKLE_TUPLE || a[2]->type != RWD_PICKLE_BYTES)
			return fail(p, RWD_E_INVALID, "numpy _reconstruct takes (numpy.ndarray, shape, bytes) only");
		v = new_value(p, RWD_PICKLE_NDARRAY);
		if (v)
			v->pending = 1;
		return push(p, v);
	case C_NP_DTYPE:
		if (n != 3 || a[0]->type != RWD_PICKLE_STR || a[1]->type != RWD_PICKLE_BOOL ||
		    a[2]->type != RWD_PICKLE_BOOL)
			return fail(p, RWD_E_INVALID, "numpy.dtype takes (str, bool, bool) only");
		v = new_value(p, RWD_PICKLE_DTYPE_);
		if (!v)
			return p->err->code;
		if ((r = parse_dtype(p, a[0], v)))
			return r;
		v->pending = 1;
		return push(p, v);
	case C_NP_FROMBUFFER: {
		if (n != 4 || a[0]->type != RWD_PICKLE_BYTES || a[1]->type != RWD_PICKLE_DTYPE_ ||
		    a[2]->type != RWD_PICKLE_TUPLE || a[3]->type != RWD_PICKLE_STR)
			return fail(p, RWD_E_INVALID, "numpy _frombuffer takes (bytes, dtype, shape, order) only");
		int fortran = is_str(a[3], "F");
		if (!fortran && !is_str(a[3], "C"))
			return fail(p, RWD_E_INVALID, "numpy _frombuffer order must be 'C' or 'F'");
		v = new_value(p, RWD_PICKLE_NDARRAY);
		if (!v)
			return p->err->code;
		v->dtype_kind = a[1]->dtype_kind;
		v->byteorder = a[1]->byteorder;
		v->itemsize = a[1]->itemsize;
		if ((r = set_shape(p, v, a[2], a[0]->len)))
			return r;
		if (fortran && v->ndim > 1)
			return fail(p, RWD_E_UNSUPPORTED, "a Fortran-ordered numpy array of %zu dimensions", v->ndim);
		v->data = a[0]->data;
		v->len = a[0]->len;
		return push(p, v);
	}
	case C_FRACTION:
		v = new_value(p, RWD_PICKLE_OPAQUE);
		if (v)
			v->cls = fn->cls;
		return push(p, v);
	default:
		return fail(p, RWD_E_UNSUPPORTED, "calling '%s' is not allowed", cls_name(fn->cls));
	}
}

static int op_newobj(pk *p)
{
	rwd_pickle_value *args = NULL, *cls = NULL;
	int r = pop(p, &args);
	if (!r)
		r = pop(p, &cls);
	if (r)
		return r;
	if (cls->type != RWD_PICKLE_CLASS_)
		return fail(p, RWD_E_UNSUPPORTED, "constructing a %s is not allowed", rwd_pickle_type_name(cls));
	if (args->type != RWD_PICKLE_TUPLE)
		return fail(p, RWD_E_FORMAT, "the arguments are not a tuple");
	rwd_pickle_value *v;
	switch (cls->cls) {
	case C_PIL_IMAGE:
		if (args->n)
			return fail(p, RWD_E_INVALID, "PIL.Image.Image.__new__ takes no arguments");
		v = new_value(p, RWD_PICKLE_IMAGE);
		break;
	case C_ITXT:
	case C_IFDRATIONAL:
		v = new_value(p, RWD_PICKLE_OPAQUE);
		break;
	default:
		return fail(p, RWD_E_UNSUPPORTED, "constructing '%s' is not allowed", cls_name(cls->cls));
	}
	if (!v)
		return p->err->code;
	v->cls = cls->cls;
	v->pending = 1;
	return push(p, v);
}

static int int_of(const rwd_pickle_value *v, int64_t lo, int64_t hi, int64_t *out)
{
	if (v->type != RWD_PICKLE_INT || v->i < lo || v->i > hi)
		return 0;
	*out = v->i;
	return 1;
}

static int build_dtype(pk *p, rwd_pickle_value *d, const rwd_pickle_value *st)
{
	if (st->type != RWD_PICKLE_TUPLE || st->n < 8 || st->items[1]->type != RWD_PICKLE_STR ||
	    st->items[1]->len != 1)
		return fail(p, RWD_E_INVALID, "numpy dtype state must be (version, byteorder, ...)");
	for (size_t k = 2; k <= 4; k++)
		if (st->items[k]->type != RWD_PICKLE_NONE)
			return fail(p, RWD_E_UNSUPPORTED, "structured or sub-array numpy dtypes are not decoded");
	char bo = (char)st->items[1]->data[0];
	if (bo == '=')
		bo = '<';
	if (!strchr("<>|", bo))
		return fail(p, RWD_E_INVALID, "numpy dtype byte order '%c'", bo);
	int64_t el;
	if (int_of(st->items[5], 0, 1 << 30, &el) && el > 0 && (size_t)el != d->itemsize)
		return fail(p, RWD_E_INVALID, "numpy dtype itemsize %lld does not match its spec",
			(long long)el);
	d->byteorder = d->itemsize == 1 && bo != '|' ? '|' : bo;
	return 0;
}

static int build_ndarray(pk *p, rwd_pickle_value *a, const rwd_pickle_value *st)
{
	int64_t ver;
	if (st->type != RWD_PICKLE_TUPLE || st->n != 5 || !int_of(st->items[0], 1, 1, &ver) ||
	    st->items[2]->type != RWD_PICKLE_DTYPE_ || st->items[3]->type != RWD_PICKLE_BOOL)
		return fail(p, RWD_E_INVALID, "numpy array state must be (1, shape, dtype, is_fortran, data)");
	const rwd_pickle_value *dt = st->items[2], *raw = st->items[4];
	if (raw->type != RWD_PICKLE_BYTES)
		return fail(p, RWD_E_UNSUPPORTED, "a numpy array whose data is a %s (object arrays are not decoded)",
			rwd_pickle_type_name(raw));
	a->dtype_kind = dt->dtype_kind;
	a->byteorder = dt->byteorder;
	a->itemsize = dt->itemsize;
	int r = set_shape(p, a, st->items[1], raw->len);
	if (r)
		return r;
	if (st->items[3]->i && a->ndim > 1)
		return fail(p, RWD_E_UNSUPPORTED, "a Fortran-ordered numpy array of %zu dimensions", a->ndim);
	a->data = raw->data;
	a->len = raw->len;
	return 0;
}

static size_t mode_bpp(const char *m)
{
	static const struct { const char *mode; size_t bpp; } t[] = {
		{"L", 1}, {"P", 1}, {"LA", 2}, {"PA", 2}, {"La", 2}, {"RGB", 3}, {"RGBA", 4}, {"RGBX", 4},
		{"RGBa", 4}, {"CMYK", 4}, {"YCbCr", 3}, {"LAB", 3}, {"HSV", 3}, {"I", 4}, {"F", 4},
		{"I;16", 2}, {"I;16L", 2}, {"I;16B", 2},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (strcmp(t[i].mode, m) == 0)
			return t[i].bpp;
	return 0;
}

static int build_image(pk *p, rwd_pickle_value *im, const rwd_pickle_value *st)
{
	if ((st->type != RWD_PICKLE_LIST && st->type != RWD_PICKLE_TUPLE) || st->n < 5)
		return fail(p, RWD_E_INVALID, "PIL image state must be [info, mode, size, palette, data, ...]");
	rwd_pickle_value *const *s = st->items;
	if (s[0]->type != RWD_PICKLE_DICT)
		return fail(p, RWD_E_INVALID, "PIL image info is a %s, not a dict", rwd_pickle_type_name(s[0]));
	if (s[1]->type != RWD_PICKLE_STR || s[1]->len == 0 || s[1]->len >= sizeof(im->mode))
		return fail(p, RWD_E_INVALID, "PIL image mode must be a short str");
	memcpy(im->mode, s[1]->data, s[1]->len);
	im->mode[s[1]->len] = '\0';
	int64_t w, h;
	if (s[2]->type != RWD_PICKLE_TUPLE || s[2]->n != 2 || !int_of(s[2]->items[0], 0, 1 << 30, &w) ||
	    !int_of(s[2]->items[1], 0, 1 << 30, &h))
		return fail(p, RWD_E_INVALID, "PIL image size must be (width, height)");
	if (w && (uint64_t)h > p->lim->max_pixels / (uint64_t)w)
		return fail(p, RWD_E_LIMIT, "a PIL image of %lld x %lld pixels, over the limit of %zu",
			(long long)w, (long long)h, p->lim->max_pixels);
	if (s[3]->type != RWD_PICKLE_NONE) {
		if (s[3]->type != RWD_PICKLE_LIST || s[3]->n > 4 * 256)
			return fail(p, RWD_E_INVALID, "PIL image palette must be a list of at most 1024 ints, or None");
		for (size_t i = 0; i < s[3]->n; i++) {
			int64_t c;
			if (!int_of(s[3]->items[i], 0, 255, &c))
				return fail(p, RWD_E_INVALID, "PIL image palette entry %zu is not an int in 0..255", i);
		}
		im->palette = s[3];
	}
	if (s[4]->type != RWD_PICKLE_BYTES)
		return fail(p, RWD_E_INVALID, "PIL image data is a %s, not bytes", rwd_pickle_type_name(s[4]));
	size_t row;
	if (strcmp(im->mode, "1") == 0) {
		row = ((size_t)w + 7) / 8;
	} else {
		size_t bpp = mode_bpp(im->mode);
		if (!bpp)
			return fail(p, RWD_E_UNSUPPORTED, "PIL image mode '%s'", im->mode);
		row = (size_t)w * bpp;
	}
	if (s[4]->len != row * (size_t)h)
		return fail(p, RWD_E_INVALID, "PIL image %s %lld x %lld carries %zu bytes of pixels, not %zu",
			im->mode, (long long)w, (long long)h, s[4]->len, row * (size_t)h);
	im->width = (uint32_t)w;
	im->height = (uint32_t)h;
	im->data = s[4]->data;
	im->len = s[4]->len;
	return 0;
}

static int op_build(pk *p)
{
	rwd_pickle_value *st = NULL, *obj = NULL;
	int r = pop(p, &st);
	if (!r)
		r = top(p, &obj);
	if (r)
		return r;
	if (!obj->pending)
		return fail(p, RWD_E_UNSUPPORTED, "setting the state of a %s is not allowed", rwd_pickle_type_name(obj));
	obj->pending = 0;
	switch (obj->type) {
	case RWD_PICKLE_DTYPE_:
		return build_dtype(p, obj, st);
	case RWD_PICKLE_NDARRAY:
		return build_ndarray(p, obj, st);
	case RWD_PICKLE_IMAGE:
		return build_image(p, obj, st);
	default: /* OPAQUE: the state is parsed data, dropped */
		return 0;
	}
}

static int memo_put(pk *p, uint64_t idx)
{
	rwd_pickle_value *v;
	int r = top(p, &v);
	if (r)
		return r;
	if (idx >= p->lim->max_memo)
		return fail(p, RWD_E_LIMIT, "memo index %llu over the limit of %zu", (unsigned long long)idx,
			p->lim->max_memo);
	if (idx >= p->memo_cap) {
		size_t nc = p->memo_cap ? p->memo_cap : 64;
		while (nc <= idx)
			nc *= 2;
		rwd_pickle_value **nm = realloc(p->memo, nc * sizeof(*nm));
		if (!nm)
			return fail(p, RWD_E_NOMEM, "out of memory");
		memset(nm + p->memo_cap, 0, (nc - p->memo_cap) * sizeof(*nm));
		p->memo = nm;
		p->memo_cap = nc;
	}
	if (!p->memo[idx])
		p->memo_count++;
	p->memo[idx] = v;
	return 0;
}

static int memo_get(pk *p, uint64_t idx)
{
	if (idx >= p->memo_cap || !p->memo[idx])
		return fail(p, RWD_E_FORMAT, "memo entry %llu was never stored", (unsigned long long)idx);
	return push(p, p->memo[idx]);
}

static int make_tuple(pk *p, size_t base)
{
	size_t n = p->sp - base;
	if (n > p->lim->max_items)
		return fail(p, RWD_E_LIMIT, "a tuple with more than %zu items", p->lim->max_items);
	rwd_pickle_value *t = new_value(p, RWD_PICKLE_TUPLE);
	if (!t)
		return p->err->code;
	if (n) {
		t->items = rwd_arena_calloc(p->arena, n, sizeof(*t->items));
		if (!t->items)
			return fail(p, RWD_E_NOMEM, "out of memory");
		memcpy(t->items, p->stack + base, n * sizeof(*t->items));
		t->n = t->cap = n;
	}
	p->sp = base;
	return push(p, t);
}

/* The value under the marked items must be the container c (list or dict). */
static int container_below(pk *p, size_t base, int type, rwd_pickle_value **c)
{
	if (base == 0 || base <= (p->n_marks ? p->marks[p->n_marks - 1] : 0))
		return fail(p, RWD_E_FORMAT, "no container below the MARK");
	*c = p->stack[base - 1];
	if ((*c)->type != type)
		return fail(p, RWD_E_UNSUPPORTED, "adding items to a %s is not allowed", rwd_pickle_type_name(*c));
	return 0;
}

/*
 * Every value reachable from v: no cycle, nothing internal or unfinished,
 * and nesting within max_depth. The memo makes the values a DAG, so the
 * nesting is the longest path: each value's height is computed once.
 */
static int walk(pk *p, rwd_pickle_value *v, size_t depth)
{
	if (v->mark == 2) {
		if (depth + v->nest > p->lim->max_depth)
			return fail(p, RWD_E_LIMIT, "containers nested deeper than %zu", p->lim->max_depth);
		return 0;
	}
	if (v->mark == 1)
		return fail(p, RWD_E_INVALID, "a container that contains itself");
	if (v->type == RWD_PICKLE_CLASS_ || v->type == RWD_PICKLE_DTYPE_)
		return fail(p, RWD_E_UNSUPPORTED, "a %s as a value", rwd_pickle_type_name(v));
	if (v->pending && (v->type == RWD_PICKLE_NDARRAY || v->type == RWD_PICKLE_IMAGE))
		return fail(p, RWD_E_INVALID, "a %s that was never given its state (BUILD)", rwd_pickle_type_name(v));
	if (v->type != RWD_PICKLE_LIST && v->type != RWD_PICKLE_TUPLE && v->type != RWD_PICKLE_DICT) {
		v->mark = 2;
		return 0;
	}
	if (depth + 1 > p->lim->max_depth) /* bounds the recursion too */
		return fail(p, RWD_E_LIMIT, "containers nested deeper than %zu", p->lim->max_depth);
	v->mark = 1;
	size_t slots = v->type == RWD_PICKLE_DICT ? 2 * v->n : v->n, h = 0;
	for (size_t i = 0; i < slots; i++) {
		int r = walk(p, v->items[i], depth + 1);
		if (r)
			return r;
		h = v->items[i]->nest > h ? v->items[i]->nest : h;
	}
	v->nest = h + 1;
	v->mark = 2;
	return 0;
}

static int step(pk *p, int *stop)
{
	int r;
	rwd_pickle_value *v = NULL, *c = NULL;
	size_t base = 0, n;
	uint64_t u;
	p->op_at = p->pos;
	p->op = p->buf[p->pos++];
	switch (p->op) {
	case 0x80: /* PROTO */
		if ((r = need(p, 1)))
			return r;
		if (p->op_at != 0)
			return fail(p, RWD_E_FORMAT, "PROTO after the start");
		if (p->buf[p->pos] < 2 || p->buf[p->pos] > 5)
			return fail(p, RWD_E_UNSUPPORTED, "protocol %u (2..5 are decoded)", p->buf[p->pos]);
		p->pos++;
		return 0;
	case 0x95: /* FRAME: the length is checked, framing itself is not needed */
		if ((r = need(p, 8)))
			return r;
		u = le(p->buf + p->pos, 8);
		p->pos += 8;
		if (u > p->len - p->pos)
			return fail(p, RWD_E_FORMAT, "a frame of %llu bytes, %zu left", (unsigned long long)u,
				p->len - p->pos);
		return 0;
	case '.':
		*stop = 1;
		return 0;
	case '(':
		if (p->n_marks >= p->lim->max_depth)
			return fail(p, RWD_E_LIMIT, "more than %zu MARKs open", p->lim->max_depth);
		if (p->n_marks == p->marks_cap) {
			size_t nc = p->marks_cap ? 2 * p->marks_cap : 16;
			size_t *nm = realloc(p->marks, nc * sizeof(*nm));
			if (!nm)
				return fail(p, RWD_E_NOMEM, "out of memory");
			p->marks = nm;
			p->marks_cap = nc;
		}
		p->marks[p->n_marks++] = p->sp;
		return 0;
	case '0':
		return pop(p, &v);
	case '1':
		if ((r = pop_mark(p, &base)))
			return r;
		p->sp = base;
		return 0;
	case '2':
		if ((r = top(p, &v)))
			return r;
		return push(p, v);
	case 'N':
		return push(p, new_value(p, RWD_PICKLE_NONE));
	case 0x88:
	case 0x89:
		v = new_value(p, RWD_PICKLE_BOOL);
		if (v)
			v->i = p->op == 0x88;
		return push(p, v);
	case 'J':
		if ((r = need(p, 4)))
			return r;
		u = le(p->buf + p->pos, 4);
		p->pos += 4;
		return push_int(p, (int32_t)(uint32_t)u);
	case 'K':
		if ((r = need(p, 1)))
			return r;
		return push_int(p, p->buf[p->pos++]);
	case 'M':
		if ((r = need(p, 2)))
			return r;
		u = le(p->buf + p->pos, 2);
		p->pos += 2;
		return push_int(p, (int64_t)u);
	case 0x8a:
	case 0x8b: /* LONG1 / LONG4: two's complement, little-endian */
		if ((r = need(p, p->op == 0x8a ? 1 : 4)))
			return r;
		n = p->op == 0x8a ? p->buf[p->pos] : (size_t)le(p->buf + p->pos, 4);
		p->pos += p->op == 0x8a ? 1 : 4;
		if (n > 8)
			return fail(p, RWD_E_UNSUPPORTED, "an integer of %zu bytes (64 bits at most)", n);
		if ((r = need(p, n)))
			return r;
		u = le(p->buf + p->pos, n);
		if (n && n < 8 && (p->buf[p->pos + n - 1] & 0x80))
			u |= ~0ull << (8 * n);
		p->pos += n;
		return push_int(p, (int64_t)u);
	case 'G': {
		if ((r = need(p, 8)))
			return r;
		u = 0;
		for (int i = 0; i < 8; i++)
			u = (u << 8) | p->buf[p->pos + (size_t)i];
		p->pos += 8;
		double d;
		memcpy(&d, &u, sizeof(d));
		v = new_value(p, RWD_PICKLE_FLOAT);
		if (v)
			v->f = d;
		return push(p, v);
	}
	case 0x8c:
	case 'C':
		if ((r = need(p, 1)))
			return r;
		n = p->buf[p->pos++];
		return push_blob(p, p->op == 'C' ? RWD_PICKLE_BYTES : RWD_PICKLE_STR, n);
	case 'X':
	case 'B':
		if ((r = need(p, 4)))
			return r;
		n = (size_t)le(p->buf + p->pos, 4);
		p->pos += 4;
		return push_blob(p, p->op == 'B' ? RWD_PICKLE_BYTES : RWD_PICKLE_STR, n);
	case 0x8d:
	case 0x8e:
	case 0x96:
		if ((r = need(p, 8)))
			return r;
		u = le(p->buf + p->pos, 8);
		p->pos += 8;
		if (u > p->lim->max_bytes)
			return fail(p, RWD_E_LIMIT, "%llu bytes, over the limit of %zu", (unsigned long long)u,
				p->lim->max_bytes);
		return push_blob(p, p->op == 0x8d ? RWD_PICKLE_STR : RWD_PICKLE_BYTES, (size_t)u);
	case ']':
		return push(p, new_value(p, RWD_PICKLE_LIST));
	case '}':
		return push(p, new_value(p, RWD_PICKLE_DICT));
	case ')':
		return push(p, new_value(p, RWD_PICKLE_TUPLE));
	case 'l':
	case 'd':
		if ((r = pop_mark(p, &base)))
			return r;
		v = new_value(p, p->op == 'l' ? RWD_PICKLE_LIST : RWD_PICKLE_DICT);
		if (!v)
			return p->err->code;
		if (p->op == 'd' && (p->sp - base) % 2)
			return fail(p, RWD_E_FORMAT, "an odd number of items for a dict");
		for (size_t i = base; i < p->sp && !r; i += p->op == 'l' ? 1 : 2)
			r = p->op == 'l' ? list_append(p, v, p->stack[i]) : dict_set(p, v, p->stack[i], p->stack[i + 1]);
		if (r)
			return r;
		p->sp = base;
		return push(p, v);
	case 't':
		if ((r = pop_mark(p, &base)))
			return r;
		return make_tuple(p, base);
	case 0x85:
	case 0x86:
	case 0x87:
		n = (size_t)(p->op - 0x84);
		if (p->sp - frame_base(p) < n)
			return fail(p, RWD_E_FORMAT, "the stack holds fewer than %zu items", n);
		return make_tuple(p, p->sp - n);
	case 'a':
		if ((r = pop(p, &v)) || (r = top(p, &c)))
			return r;
		if (c->type != RWD_PICKLE_LIST)
			return fail(p, RWD_E_UNSUPPORTED, "appending to a %s is not allowed", rwd_pickle_type_name(c));
		return list_append(p, c, v);
	case 'e':
		if ((r = pop_mark(p, &base)) || (r = container_below(p, base, RWD_PICKLE_LIST, &c)))
			return r;
		for (size_t i = base; i < p->sp && !r; i++)
			r = list_append(p, c, p->stack[i]);
		p->sp = base;
		return r;
	case 's': {
		rwd_pickle_value *k = NULL;
		if ((r = pop(p, &v)) || (r = pop(p, &k)) || (r = top(p, &c)))
			return r;
		if (c->type != RWD_PICKLE_DICT)
			return fail(p, RWD_E_UNSUPPORTED, "setting an item of a %s is not allowed", rwd_pickle_type_name(c));
		return dict_set(p, c, k, v);
	}
	case 'u':
		if ((r = pop_mark(p, &base)) || (r = container_below(p, base, RWD_PICKLE_DICT, &c)))
			return r;
		if ((p->sp - base) % 2)
			return fail(p, RWD_E_FORMAT, "an odd number of items for SETITEMS");
		for (size_t i = base; i < p->sp && !r; i += 2)
			r = dict_set(p, c, p->stack[i], p->stack[i + 1]);
		p->sp = base;
		return r;
	case 0x94:
		return memo_put(p, p->memo_count);
	case 'q':
		if ((r = need(p, 1)))
			return r;
		return memo_put(p, p->buf[p->pos++]);
	case 'r':
		if ((r = need(p, 4)))
			return r;
		u = le(p->buf + p->pos, 4);
		p->pos += 4;
		return memo_put(p, u);
	case 'h':
		if ((r = need(p, 1)))
			return r;
		return memo_get(p, p->buf[p->pos++]);
	case 'j':
		if ((r = need(p, 4)))
			return r;
		u = le(p->buf + p->pos, 4);
		p->pos += 4;
		return memo_get(p, u);
	case 'c': { /* GLOBAL "module\nname\n" (protocols 2 and 3) */
		const uint8_t *m = p->buf + p->pos, *e = p->buf + p->len;
		const uint8_t *nl = memchr(m, '\n', (size_t)(e - m));
		if (!nl || (size_t)(nl - m) > 256)
			return fail(p, RWD_E_FORMAT, "GLOBAL module name not terminated");
		const uint8_t *nm = nl + 1;
		const uint8_t *nl2 = memchr(nm, '\n', (size_t)(e - nm));
		if (!nl2 || (size_t)(nl2 - nm) > 256)
			return fail(p, RWD_E_FORMAT, "GLOBAL name not terminated");
		p->pos = (size_t)(nl2 + 1 - p->buf);
		return resolve_global(p, m, (size_t)(nl - m), nm, (size_t)(nl2 - nm));
	}
	case 0x93: { /* STACK_GLOBAL */
		rwd_pickle_value *mod = NULL, *name = NULL;
		if ((r = pop(p, &name)) || (r = pop(p, &mod)))
			return r;
		if (mod->type != RWD_PICKLE_STR || name->type != RWD_PICKLE_STR)
			return fail(p, RWD_E_FORMAT, "module and name must be str");
		return resolve_global(p, mod->data, mod->len, name->data, name->len);
	}
	case 'R':
		return op_reduce(p);
	case 0x81:
		return op_newobj(p);
	case 'b':
		return op_build(p);
	default:
		if (op_name(p->op))
			return fail(p, RWD_E_UNSUPPORTED, "this opcode is not decoded (only the opcodes of builtin values, "
				"numpy arrays and PIL images are; nothing is ever called)");
		return fail(p, RWD_E_UNSUPPORTED, "unknown opcode");
	}
}

int rwd_pickle_load(const uint8_t *buf, size_t len, const rwd_pickle_limits *lim, rwd_arena *arena,
	rwd_pickle_value **out, rwd_error *err)
{
	rwd_error local;
	if (!err) {
		rwd_error_clear(&local);
		err = &local;
	}
	pk p = {.buf = buf, .len = len, .lim = lim, .arena = arena, .err = err};
	int r = 0, stop = 0;
	*out = NULL;
	if (len < 2 || buf[0] != 0x80) {
		r = rwd_errorf(err, len && buf[0] == 0x80 ? RWD_E_FORMAT : RWD_E_UNSUPPORTED,
			"not a pickle of protocol 2..5 (it must start with the PROTO opcode 0x80)");
		rwd_error_at(err, 0, 0, 0);
		goto fail;
	}
	while (!stop) {
		if (p.pos >= len) {
			p.op_at = len;
			p.op = '.';
			r = fail(&p, RWD_E_FORMAT, "the pickle ends without STOP");
			goto fail;
		}
		if ((r = step(&p, &stop)))
			goto fail;
	}
	if (p.pos != len) {
		r = fail(&p, RWD_E_FORMAT, "%zu bytes after STOP", len - p.pos);
		goto fail;
	}
	if (p.n_marks || p.sp != 1) {
		r = fail(&p, RWD_E_FORMAT, "STOP with %zu values and %zu MARKs on the stack (one value expected)",
			p.sp, p.n_marks);
		goto fail;
	}
	if ((r = walk(&p, p.stack[0], 0)))
		goto fail;
	*out = p.stack[0];
fail:
	free(p.stack);
	free(p.marks);
	free(p.memo);
	return r;
}

const char *rwd_pickle_type_name(const rwd_pickle_value *v)
{
	switch (v->type) {
	case RWD_PICKLE_NONE: return "None";
	case RWD_PICKLE_BOOL: return "bool";
	case RWD_PICKLE_INT: return "int";
	case RWD_PICKLE_FLOAT: return "float";
	case RWD_PICKLE_STR: return "str";
	case RWD_PICKLE_BYTES: return "bytes";
	case RWD_PICKLE_LIST: return "list";
	case RWD_PICKLE_TUPLE: return "tuple";
	case RWD_PICKLE_DICT: return "dict";
	case RWD_PICKLE_NDARRAY: return "numpy.ndarray";
	case RWD_PICKLE_IMAGE: return "PIL.Image.Image";
	case RWD_PICKLE_OPAQUE: return "image metadata object";
	case RWD_PICKLE_DTYPE_: return "numpy.dtype";
	default: return "class";
	}
}

const rwd_pickle_value *rwd_pickle_dict_get(const rwd_pickle_value *d, const char *key)
{
	if (!d || d->type != RWD_PICKLE_DICT)
		return NULL;
	/* the last assignment wins, as in Python */
	for (size_t i = d->n; i-- > 0;)
		if (is_str(d->items[2 * i], key))
			return d->items[2 * i + 1];
	return NULL;
}

long rwd_pickle_ndarray_str(const rwd_pickle_value *a, size_t i, char *out, size_t size)
{
	if (a->type != RWD_PICKLE_NDARRAY || a->dtype_kind != 'U' || a->ndim != 1 || i >= a->shape[0] || !size)
		return RWD_E_INVALID;
	size_t chars = a->itemsize / 4;
	const uint8_t *e = a->data + i * a->itemsize;
	while (chars > 0) {
		const uint8_t *q = e + 4 * (chars - 1);
		uint32_t cp = a->byteorder == '>' ? (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3] :
			(uint32_t)le(q, 4);
		if (cp)
			break;
		chars--;
	}
	size_t n = 0;
	for (size_t k = 0; k < chars; k++) {
		const uint8_t *q = e + 4 * k;
		uint32_t cp = a->byteorder == '>' ? (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3] :
			(uint32_t)le(q, 4);
		if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp == 0)
			return RWD_E_INVALID;
		uint8_t b[4];
		size_t m;
		if (cp < 0x80) {
			b[0] = (uint8_t)cp;
			m = 1;
		} else if (cp < 0x800) {
			b[0] = (uint8_t)(0xc0 | (cp >> 6));
			b[1] = (uint8_t)(0x80 | (cp & 0x3f));
			m = 2;
		} else if (cp < 0x10000) {
			b[0] = (uint8_t)(0xe0 | (cp >> 12));
			b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
			b[2] = (uint8_t)(0x80 | (cp & 0x3f));
			m = 3;
		} else {
			b[0] = (uint8_t)(0xf0 | (cp >> 18));
			b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
			b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
			b[3] = (uint8_t)(0x80 | (cp & 0x3f));
			m = 4;
		}
		if (n + m >= size)
			return RWD_E_LIMIT;
		memcpy(out + n, b, m);
		n += m;
	}
	out[n] = '\0';
	return (long)n;
}

/* ---- the encoder ------------------------------------------------------- */

typedef struct wbuf {
	uint8_t *b;
	size_t n, cap;
	int oom;
} wbuf;

static void put(wbuf *w, const void *d, size_t n)
{
	if (w->oom)
		return;
	if (n > w->cap - w->n) {
		size_t nc = w->cap ? w->cap : 256;
		while (nc - w->n < n)
			nc *= 2;
		uint8_t *nb = realloc(w->b, nc);
		if (!nb) {
			w->oom = 1;
			return;
		}
		w->b = nb;
		w->cap = nc;
	}
	memcpy(w->b + w->n, d, n);
	w->n += n;
}

static void put1(wbuf *w, uint8_t c)
{
	put(w, &c, 1);
}

static void put_le(wbuf *w, uint64_t v, size_t n)
{
	uint8_t b[8];
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	put(w, b, n);
}

static int dump(wbuf *w, const json_t *v, size_t depth, rwd_error *err)
{
	if (depth > 64)
		return rwd_errorf(err, RWD_E_LIMIT, "reply nested deeper than 64");
	switch (json_typeof(v)) {
	case JSON_NULL:
		put1(w, 'N');
		return 0;
	case JSON_TRUE:
		put1(w, 0x88);
		return 0;
	case JSON_FALSE:
		put1(w, 0x89);
		return 0;
	case JSON_INTEGER: {
		json_int_t i = json_integer_value(v);
		if (i >= INT32_MIN && i <= INT32_MAX) {
			put1(w, 'J');
			put_le(w, (uint64_t)(uint32_t)(int32_t)i, 4);
		} else {
			put1(w, 0x8a);
			put1(w, 8);
			put_le(w, (uint64_t)i, 8);
		}
		return 0;
	}
	case JSON_REAL: {
		double d = json_real_value(v);
		if (!isfinite(d))
			return rwd_errorf(err, RWD_E_INVALID, "a non-finite number in the reply");
		uint64_t u;
		memcpy(&u, &d, sizeof(u));
		uint8_t b[9] = {'G'};
		for (int k = 0; k < 8; k++)
			b[1 + k] = (uint8_t)(u >> (56 - 8 * k));
		put(w, b, 9);
		return 0;
	}
	case JSON_STRING: {
		size_t n = json_string_length(v);
		if (n > UINT32_MAX)
			return rwd_errorf(err, RWD_E_LIMIT, "a reply string over 4 GiB");
		put1(w, 'X');
		put_le(w, n, 4);
		put(w, json_string_value(v), n);
		return 0;
	}
	case JSON_ARRAY: {
		put1(w, ']');
		size_t n = json_array_size(v);
		if (!n)
			return 0;
		put1(w, '(');
		for (size_t i = 0; i < n; i++) {
			int r = dump(w, json_array_get(v, i), depth + 1, err);
			if (r)
				return r;
		}
		put1(w, 'e');
		return 0;
	}
	case JSON_OBJECT: {
		put1(w, '}');
		if (!json_object_size(v))
			return 0;
		put1(w, '(');
		const char *k;
		json_t *val;
		json_object_foreach((json_t *)v, k, val) {
			size_t kl = strlen(k);
			put1(w, 'X');
			put_le(w, kl, 4);
			put(w, k, kl);
			int r = dump(w, val, depth + 1, err);
			if (r)
				return r;
		}
		put1(w, 'u');
		return 0;
	}
	}
	return rwd_errorf(err, RWD_E_INTERNAL, "unknown JSON type");
}

int rwd_pickle_dump_json(const json_t *v, uint8_t **out, size_t *len, rwd_error *err)
{
	wbuf w = {0};
	*out = NULL;
	*len = 0;
	put1(&w, 0x80);
	put1(&w, 2);
	int r = dump(&w, v, 0, err);
	put1(&w, '.');
	if (!r && w.oom)
		r = rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	if (r) {
		free(w.b);
		return r;
	}
	*out = w.b;
	*len = w.n;
	return 0;
}
