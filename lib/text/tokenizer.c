/*
 * text/tokenizer.c — see tokenizer.h.
 *
 * Everything the tokenizer owns lives in one rwd_arena (tables, strings)
 * plus the compiled PCRE2 patterns, which are freed through arena cleanups,
 * so rwd_tokenizer_free() is one call. Encoding state lives in `struct enc`
 * on the caller's stack and in the caller's arena.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "text/tokenizer.h"

#include <errno.h>
#include <jansson.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>
#include <zlib.h>

/* Regexes of reference/models-and-formats.md §4.4 and §4.6. */
#define RX_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define RX_QWEN2 "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RX_LLAMA3 "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RX_CLIP "'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+"
#define RX_WHITESPACE "\\w+|[^\\w\\s]+"

/* Backtracking budget of one regex search: generous for real patterns on
 * long inputs, a bound for hostile ones from an untrusted tokenizer.json. */
#define RX_MATCH_LIMIT 50000000u
#define RX_HEAP_LIMIT_KIB 16384u

rwd_tokenizer_params rwd_tokenizer_default_params(void)
{
	rwd_tokenizer_params p = {
		.max_file_bytes = 64u << 20,
		.max_vocab = 1u << 20,
		.max_merges = 1u << 20,
		.max_token_bytes = 1024,
		.max_added_tokens = 65536,
		.max_pattern_bytes = 4096,
		.max_steps = 32,
		.max_id = 1 << 24,
	};
	return p;
}

rwd_encode_params rwd_encode_default_params(void)
{
	rwd_encode_params p = { .add_special_tokens = 1, .max_length = 0, .truncate_left = 0 };
	return p;
}

/* ---------------------------------------------------------------- types */

struct rx {
	pcre2_code *code;
};

enum norm_kind { N_NFC, N_NFD, N_NFKC, N_NFKD, N_LOWER, N_STRIP, N_REPLACE, N_PREPEND };

struct norm {
	enum norm_kind kind;
	bool left, right;        /* Strip */
	struct rx rx;            /* Replace: compiled pattern (literal or regex) */
	const char *str;         /* Replace content / Prepend string */
	size_t str_len;
};

enum split_behavior { B_REMOVED, B_ISOLATED, B_MERGED_PREV, B_MERGED_NEXT, B_CONTIGUOUS };
enum pre_kind { P_SPLIT, P_BYTELEVEL, P_WS_SPLIT };

struct pre {
	enum pre_kind kind;
	struct rx rx;            /* Split pattern; ByteLevel: GPT-2 regex or none */
	enum split_behavior behavior;
	bool invert;
	bool add_prefix_space;   /* ByteLevel */
};

struct added {
	const char *match;       /* raw content, or its normalised form */
	uint32_t match_len;
	const char *content;     /* as in the file */
	int32_t id;
	bool single_word, lstrip, rstrip, normalized, special;
};

/* Added tokens of one kind, sorted by first byte then longest first. */
struct added_set {
	struct added **tok;
	size_t n;
	uint32_t first[257];     /* tok[first[b] .. first[b+1]) start with byte b */
};

struct ventry {
	uint32_t off, len;
	int32_t id;
};

struct mslot {
	uint64_t key;            /* (a << 32) | b; UINT64_MAX = empty */
	uint32_t rank;
	int32_t new_id;
};

struct rwd_tokenizer {
	rwd_arena *arena;
	/* model vocab */
	char *blob;
	struct ventry *ve;
	size_t n_vocab;
	uint32_t *vslot;         /* entry index + 1, 0 = empty */
	size_t vmask;
	int32_t *id_entry;       /* id -> vocab entry, -1 */
	size_t id_cap;
	/* merges */
	struct mslot *ms;
	size_t mmask, n_merges;
	/* BPE options */
	bool ignore_merges, fuse_unk, byte_fallback;
	int32_t unk_id;
	const char *prefix, *suffix;
	size_t prefix_len, suffix_len;
	/* added tokens */
	struct added *added;
	size_t n_added;
	struct added_set raw, normd;
	/* pipeline */
	struct norm *norm;
	size_t n_norm;
	struct pre *pre;
	size_t n_pre;
	bool byte_level;
	int32_t *pre_ids, *post_ids;
	size_t n_pre_ids, n_post_ids;
	size_t trunc_len;
	size_t vocab_size;
	pcre2_match_context *mctx;
	uint32_t byte_cp[256];   /* GPT-2 bytes_to_unicode */
};

/* ---------------------------------------------------------------- UTF-8 */

/* Length of the valid UTF-8 sequence at s (Rust str rules), 0 if invalid. */
static size_t utf8_valid_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
	if (c >= 0xE0 && c <= 0xEF) {
		if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
			return 0;
		if (c == 0xE0 && s[1] < 0xA0)
			return 0; /* overlong */
		if (c == 0xED && s[1] >= 0xA0)
			return 0; /* surrogate */
		return 3;
	}
	if (c >= 0xF0 && c <= 0xF4) {
		if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
			return 0;
		if (c == 0xF0 && s[1] < 0x90)
			return 0;
		if (c == 0xF4 && s[1] >= 0x90)
			return 0;
		return 4;
	}
	return 0;
}

/* Offset of the first invalid byte, or n if s is valid UTF-8. */
static size_t utf8_check(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		if (u[i] < 0x80) {
			i++;
			continue;
		}
		size_t l = utf8_valid_len(u + i, n - i);
		if (!l)
			return i;
		i += l;
	}
	return n;
}

/* Decode one code point of valid UTF-8; *len gets its byte length. */
static int32_t utf8_dec(const char *s, size_t *len)
{
	const unsigned char *u = (const unsigned char *)s;
	if (u[0] < 0x80) {
		*len = 1;
		return u[0];
	}
	if (u[0] < 0xE0) {
		*len = 2;
		return ((u[0] & 0x1F) << 6) | (u[1] & 0x3F);
	}
	if (u[0] < 0xF0) {
		*len = 3;
		return ((u[0] & 0x0F) << 12) | ((u[1] & 0x3F) << 6) | (u[2] & 0x3F);
	}
	*len = 4;
	return ((u[0] & 0x07) << 18) | ((u[1] & 0x3F) << 12) | ((u[2] & 0x3F) << 6) | (u[3] & 0x3F);
}

/* Code point ending at s[end] (exclusive), valid UTF-8 assumed. */
static int32_t utf8_dec_back(const char *s, size_t end)
{
	size_t st = end - 1, len;
	while (st > 0 && ((unsigned char)s[st] & 0xC0) == 0x80)
		st--;
	return utf8_dec(s + st, &len);
}

static size_t utf8_enc(int32_t cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* Unicode White_Space (Rust char::is_whitespace, regex \s). */
static bool is_white_space(int32_t c)
{
	if (c <= 0x20)
		return c == 0x20 || (c >= 0x09 && c <= 0x0D);
	if (c < 0x85)
		return false;
	return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
		c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Rust regex \w: alphabetic, marks, decimal digits, connector punctuation,
 * join controls (letters and letter numbers stand in for Alphabetic). */
static bool is_word_char(int32_t c)
{
	if (c < 0x80)
		return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
	if (c == 0x200C || c == 0x200D)
		return true;
	switch (utf8proc_category(c)) {
	case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
	case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_NL:
	case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
	case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_PC:
		return true;
	default:
		return false;
	}
}

/* ---------------------------------------------------------------- hashing */

static uint64_t hash_bytes(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
	return h ^ (h >> 29);
}

static uint64_t hash_pair(uint64_t k)
{
	k *= 0x9E3779B97F4A7C15ull;
	return k ^ (k >> 31);
}

/* Vocab entry index of a token string, or -1. */
static int64_t vocab_find(const rwd_tokenizer *t, const char *s, size_t n)
{
	if (!t->vslot)
		return -1;
	size_t i = hash_bytes(s, n) & t->vmask;
	for (;;) {
		uint32_t e = t->vslot[i];
		if (!e)
			return -1;
		const struct ventry *v = &t->ve[e - 1];
		if (v->len == n && memcmp(t->blob + v->off, s, n) == 0)
			return e - 1;
		i = (i + 1) & t->vmask;
	}
}

static int32_t vocab_id(const rwd_tokenizer *t, const char *s, size_t n)
{
	int64_t e = vocab_find(t, s, n);
	return e < 0 ? -1 : t->ve[e].id;
}

static const struct mslot *merge_find(const rwd_tokenizer *t, int32_t a, int32_t b)
{
	if (!t->ms)
		return NULL;
	uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
	size_t i = hash_pair(key) & t->mmask;
	for (;;) {
		const struct mslot *m = &t->ms[i];
		if (m->key == key)
			return m;
		if (m->key == UINT64_MAX)
			return NULL;
		i = (i + 1) & t->mmask;
	}
}

/* ---------------------------------------------------------------- regex */

static void *rx_arena_alloc(PCRE2_SIZE n, void *a)
{
	return rwd_arena_alloc(a, n);
}

static void rx_arena_free(void *p, void *a)
{
	(void)p;
	(void)a;
}

static void rx_code_free(void *p)
{
	pcre2_code_free(p);
}

/*
 * Next match of `r` in s[0..n) at or after `from`, with the iteration rule
 * of Oniguruma's and Rust regex's find_iter: an empty match right where
 * the previous match ended is skipped. Returns 1 (match [*ms, *me)),
 * 0 (none) or a negative RWD_E_* code.
 */
static int rx_next(const struct rx *r, const pcre2_match_context *mctx, pcre2_match_data *md,
	const char *s, size_t n, size_t *from, size_t *last_end, size_t *ms, size_t *me)
{
	size_t pos = *from;
	while (pos <= n) {
		int rc = pcre2_match(r->code, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, md,
			(pcre2_match_context *)mctx);
		if (rc == PCRE2_ERROR_NOMATCH)
			return 0;
		if (rc < 0) {
			if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT ||
			    rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_JIT_STACKLIMIT)
				return RWD_E_LIMIT;
			if (rc == PCRE2_ERROR_NOMEMORY)
				return RWD_E_NOMEM;
			return RWD_E_INTERNAL;
		}
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
		size_t b = ov[0], e = ov[1];
		if (e < b)
			return RWD_E_INTERNAL; /* \K tricks: never from a sane pattern */
		if (b == e && *last_end == e) {
			if (e >= n)
				return 0;
			size_t l;
			utf8_dec(s + e, &l);
			pos = e + l;
			continue;
		}
		*ms = b;
		*me = e;
		*last_end = e;
		*from = e;
		return 1;
	}
	return 0;
}

/* ---------------------------------------------------------------- loader */

struct loader {
	const char *name;
	const rwd_tokenizer_params *p;
	rwd_error *err;
	rwd_tokenizer *tok;
};

static int lerr(struct loader *L, int code, const char *path, const char *fmt, ...) RWD_PRINTF(4, 5);

static int lerr(struct loader *L, int code, const char *path, const char *fmt, ...)
{
	char buf[RWD_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	rwd_errorf(L->err, code, "%s", buf);
	rwd_error_where(L->err, L->name, path);
	return code;
}

/* Optional member: NULL when absent or JSON null; type-checked otherwise. */
static int member(struct loader *L, json_t *obj, const char *path, const char *key,
	json_type type, bool required, json_t **out)
{
	json_t *v = json_object_get(obj, key);
	*out = NULL;
	char p[RWD_ERROR_OBJECT_MAX];
	snprintf(p, sizeof(p), "%s%s%s", path, path[0] ? "." : "", key);
	if (!v || json_is_null(v)) {
		if (required)
			return lerr(L, RWD_E_INVALID, p, "required field is missing");
		return 0;
	}
	bool ok = json_typeof(v) == type || (type == JSON_TRUE && json_is_boolean(v)) ||
		(type == JSON_INTEGER && json_is_integer(v));
	if (!ok) {
		static const char *const names[] = {
			[JSON_OBJECT] = "an object", [JSON_ARRAY] = "an array", [JSON_STRING] = "a string",
			[JSON_INTEGER] = "an integer", [JSON_REAL] = "a number", [JSON_TRUE] = "a boolean",
			[JSON_FALSE] = "a boolean", [JSON_NULL] = "null",
		};
		return lerr(L, RWD_E_INVALID, p, "must be %s", names[type]);
	}
	*out = v;
	return 0;
}

static int get_bool(struct loader *L, json_t *obj, const char *path, const char *key, bool dflt, bool *out)
{
	json_t *v;
	int rc = member(L, obj, path, key, JSON_TRUE, false, &v);
	if (rc)
		return rc;
	*out = v ? json_is_true(v) : dflt;
	return 0;
}

/* A string member (may be NULL when optional), length-limited, no NUL. */
static int get_str(struct loader *L, json_t *obj, const char *path, const char *key, bool required,
	size_t max, const char **out, size_t *len)
{
	json_t *v;
	int rc = member(L, obj, path, key, JSON_STRING, required, &v);
	*out = NULL;
	if (len)
		*len = 0;
	if (rc || !v)
		return rc;
	size_t n = json_string_length(v);
	if (n > max) {
		char p[RWD_ERROR_OBJECT_MAX];
		snprintf(p, sizeof(p), "%s.%s", path, key);
		return lerr(L, RWD_E_LIMIT, p, "string of %zu bytes exceeds the limit of %zu", n, max);
	}
	*out = json_string_value(v);
	if (len)
		*len = n;
	return 0;
}

static int token_id_value(struct loader *L, json_t *v, const char *path, int32_t *out)
{
	if (!json_is_integer(v))
		return lerr(L, RWD_E_INVALID, path, "token id must be an integer");
	json_int_t id = json_integer_value(v);
	if (id < 0 || id > L->p->max_id)
		return lerr(L, RWD_E_LIMIT, path, "token id %lld is outside 0..%d", (long long)id, (int)L->p->max_id);
	*out = (int32_t)id;
	return 0;
}

static int compile_rx(struct loader *L, struct rx *r, const char *pat, size_t len, bool literal, const char *path)
{
	if (len > L->p->max_pattern_bytes)
		return lerr(L, RWD_E_LIMIT, path, "pattern of %zu bytes exceeds the limit of %zu", len, L->p->max_pattern_bytes);
	int ec;
	PCRE2_SIZE eo;
	uint32_t opts = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
	pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
	if (!cc)
		return lerr(L, RWD_E_NOMEM, path, "out of memory");
	/* Bound nesting so a hostile pattern cannot exhaust the compiler. */
	pcre2_set_parens_nest_limit(cc, 64);
	r->code = pcre2_compile((PCRE2_SPTR)pat, len, opts, &ec, &eo, cc);
	pcre2_compile_context_free(cc);
	if (!r->code) {
		PCRE2_UCHAR msg[160];
		pcre2_get_error_message(ec, msg, sizeof(msg));
		return lerr(L, RWD_E_UNSUPPORTED, path, "regex does not compile at offset %zu: %s", (size_t)eo, (char *)msg);
	}
	if (rwd_arena_add_cleanup(L->tok->arena, rx_code_free, r->code)) {
		pcre2_code_free(r->code);
		r->code = NULL;
		return lerr(L, RWD_E_NOMEM, path, "out of memory");
	}
	/* JIT when available; the interpreter otherwise (same results). */
	(void)pcre2_jit_compile(r->code, PCRE2_JIT_COMPLETE);
	return 0;
}

/* {"String": s} or {"Regex": s} */
static int parse_pattern(struct loader *L, json_t *obj, const char *path, struct rx *r)
{
	json_t *pat;
	int rc = member(L, obj, path, "pattern", JSON_OBJECT, true, &pat);
	if (rc)
		return rc;
	char p[RWD_ERROR_OBJECT_MAX];
	snprintf(p, sizeof(p), "%s.pattern", path);
	json_t *s = json_object_get(pat, "String"), *x = json_object_get(pat, "Regex");
	if ((s != NULL) == (x != NULL) || !json_is_string(s ? s : x))
		return lerr(L, RWD_E_INVALID, p, "must be {\"String\": ...} or {\"Regex\": ...}");
	json_t *v = s ? s : x;
	return compile_rx(L, r, json_string_value(v), json_string_length(v), s != NULL, p);
}

static int parse_normalizer(struct loader *L, json_t *j, const char *path, int depth)
{
	rwd_tokenizer *t = L->tok;
	if (!json_is_object(j))
		return lerr(L, RWD_E_INVALID, path, "must be an object");
	const char *type;
	int rc = get_str(L, j, path, "type", true, 64, &type, NULL);
	if (rc)
		return rc;
	if (strcmp(type, "Sequence") == 0) {
		if (depth >= 4)
			return lerr(L, RWD_E_LIMIT, path, "Sequence nested too deeply");
		json_t *arr;
		if ((rc = member(L, j, path, "normalizers", JSON_ARRAY, true, &arr)))
			return rc;
		for (size_t i = 0; i < json_array_size(arr); i++) {
			char p[RWD_ERROR_OBJECT_MAX];
			snprintf(p, sizeof(p), "%s.normalizers[%zu]", path, i);
			if ((rc = parse_normalizer(L, json_array_get(arr, i), p, depth + 1)))
				return rc;
		}
		return 0;
	}
	if (t->n_norm >= L->p->max_steps)
		return lerr(L, RWD_E_LIMIT, path, "more than %zu normalizer steps", L->p->max_steps);
	struct norm *n = &t->norm[t->n_norm];
	memset(n, 0, sizeof(*n));
	if (strcmp(type, "NFC") == 0)
		n->kind = N_NFC;
	else if (strcmp(type, "NFD") == 0)
		n->kind = N_NFD;
	else if (strcmp(type, "NFKC") == 0)
		n->kind = N_NFKC;
	else if (strcmp(type, "NFKD") == 0)
		n->kind = N_NFKD;
	else if (strcmp(type, "Lowercase") == 0)
		n->kind = N_LOWER;
	else if (strcmp(type, "Strip") == 0) {
		n->kind = N_STRIP;
		if ((rc = get_bool(L, j, path, "strip_left", true, &n->left)) ||
		    (rc = get_bool(L, j, path, "strip_right", true, &n->right)))
			return rc;
	} else if (strcmp(type, "Replace") == 0) {
		n->kind = N_REPLACE;
		if ((rc = parse_pattern(L, j, path, &n->rx)) ||
		    (rc = get_str(L, j, path, "content", true, L->p->max_pattern_bytes, &n->str, &n->str_len)))
			return rc;
	} else if (strcmp(type, "Prepend") == 0) {
		n->kind = N_PREPEND;
		if ((rc = get_str(L, j, path, "prepend", true, L->p->max_pattern_bytes, &n->str, &n->str_len)))
			return rc;
	} else {
		return lerr(L, RWD_E_UNSUPPORTED, path, "normalizer type \"%s\" is not supported", type);
	}
	if (n->str) {
		char *c = rwd_arena_strndup(t->arena, n->str, n->str_len);
		if (!c)
			return lerr(L, RWD_E_NOMEM, path, "out of memory");
		n->str = c;
	}
	t->n_norm++;
	return 0;
}

static int parse_pretok(struct loader *L, json_t *j, const char *path, int depth)
{
	rwd_tokenizer *t = L->tok;
	if (!json_is_object(j))
		return lerr(L, RWD_E_INVALID, path, "must be an object");
	const char *type;
	int rc = get_str(L, j, path, "type", true, 64, &type, NULL);
	if (rc)
		return rc;
	if (strcmp(type, "Sequence") == 0) {
		if (depth >= 4)
			return lerr(L, RWD_E_LIMIT, path, "Sequence nested too deeply");
		json_t *arr;
		if ((rc = member(L, j, path, "pretokenizers", JSON_ARRAY, true, &arr)))
			return rc;
		for (size_t i = 0; i < json_array_size(arr); i++) {
			char p[RWD_ERROR_OBJECT_MAX];
			snprintf(p, sizeof(p), "%s.pretokenizers[%zu]", path, i);
			if ((rc = parse_pretok(L, json_array_get(arr, i), p, depth + 1)))
				return rc;
		}
		return 0;
	}
	if (t->n_pre >= L->p->max_steps)
		return lerr(L, RWD_E_LIMIT, path, "more than %zu pre-tokenizer steps", L->p->max_steps);
	if (t->byte_level)
		return lerr(L, RWD_E_UNSUPPORTED, path, "a pre-tokenizer after ByteLevel is not supported");
	struct pre *s = &t->pre[t->n_pre];
	memset(s, 0, sizeof(*s));
	if (strcmp(type, "Split") == 0) {
		s->kind = P_SPLIT;
		const char *beh;
		if ((rc = parse_pattern(L, j, path, &s->rx)) ||
		    (rc = get_str(L, j, path, "behavior", true, 64, &beh, NULL)) ||
		    (rc = get_bool(L, j, path, "invert", false, &s->invert)))
			return rc;
		if (strcmp(beh, "Removed") == 0)
			s->behavior = B_REMOVED;
		else if (strcmp(beh, "Isolated") == 0)
			s->behavior = B_ISOLATED;
		else if (strcmp(beh, "MergedWithPrevious") == 0)
			s->behavior = B_MERGED_PREV;
		else if (strcmp(beh, "MergedWithNext") == 0)
			s->behavior = B_MERGED_NEXT;
		else if (strcmp(beh, "Contiguous") == 0)
			s->behavior = B_CONTIGUOUS;
		else {
			char p[RWD_ERROR_OBJECT_MAX];
			snprintf(p, sizeof(p), "%s.behavior", path);
			return lerr(L, RWD_E_INVALID, p, "unknown split behavior \"%s\"", beh);
		}
	} else if (strcmp(type, "ByteLevel") == 0) {
		bool use_regex;
		s->kind = P_BYTELEVEL;
		if ((rc = get_bool(L, j, path, "add_prefix_space", true, &s->add_prefix_space)) ||
		    (rc = get_bool(L, j, path, "use_regex", true, &use_regex)))
			return rc;
		if (use_regex && (rc = compile_rx(L, &s->rx, RX_GPT2, strlen(RX_GPT2), false, path)))
			return rc;
		s->behavior = B_ISOLATED;
		t->byte_level = true;
	} else if (strcmp(type, "WhitespaceSplit") == 0) {
		s->kind = P_WS_SPLIT;
	} else if (strcmp(type, "Whitespace") == 0) {
		s->kind = P_SPLIT;
		s->behavior = B_REMOVED;
		s->invert = true;
		if ((rc = compile_rx(L, &s->rx, RX_WHITESPACE, strlen(RX_WHITESPACE), false, path)))
			return rc;
	} else {
		return lerr(L, RWD_E_UNSUPPORTED, path, "pre-tokenizer type \"%s\" is not supported", type);
	}
	t->n_pre++;
	return 0;
}

/* Appends ids to a growing list held in the loader's scratch. */
struct idlist {
	int32_t v[64];
	size_t n;
};

static int idlist_push(struct loader *L, struct idlist *l, int32_t id, const char *path)
{
	if (l->n >= sizeof(l->v) / sizeof(l->v[0]))
		return lerr(L, RWD_E_LIMIT, path, "more than 64 special tokens around a sequence");
	l->v[l->n++] = id;
	return 0;
}

/* ["<s>", 0] of RobertaProcessing / BertProcessing */
static int parse_str_id(struct loader *L, json_t *j, const char *path, const char *key, int32_t *id)
{
	json_t *v;
	int rc = member(L, j, path, key, JSON_ARRAY, true, &v);
	if (rc)
		return rc;
	char p[RWD_ERROR_OBJECT_MAX];
	snprintf(p, sizeof(p), "%s.%s", path, key);
	if (json_array_size(v) != 2 || !json_is_string(json_array_get(v, 0)))
		return lerr(L, RWD_E_INVALID, p, "must be [token, id]");
	return token_id_value(L, json_array_get(v, 1), p, id);
}

static int parse_processor(struct loader *L, json_t *j, const char *path, int depth,
	struct idlist *pre, struct idlist *post)
{
	if (!json_is_object(j))
		return lerr(L, RWD_E_INVALID, path, "must be an object");
	const char *type;
	int rc = get_str(L, j, path, "type", true, 64, &type, NULL);
	if (rc)
		return rc;
	struct idlist a = { .n = 0 }, b = { .n = 0 };
	if (strcmp(type, "Sequence") == 0) {
		if (depth >= 4)
			return lerr(L, RWD_E_LIMIT, path, "Sequence nested too deeply");
		json_t *arr;
		if ((rc = member(L, j, path, "processors", JSON_ARRAY, true, &arr)))
			return rc;
		if (json_array_size(arr) > L->p->max_steps)
			return lerr(L, RWD_E_LIMIT, path, "more than %zu processors", L->p->max_steps);
		for (size_t i = 0; i < json_array_size(arr); i++) {
			char p[RWD_ERROR_OBJECT_MAX];
			snprintf(p, sizeof(p), "%s.processors[%zu]", path, i);
			if ((rc = parse_processor(L, json_array_get(arr, i), p, depth + 1, pre, post)))
				return rc;
		}
		return 0;
	}
	if (strcmp(type, "ByteLevel") == 0)
		return 0; /* offsets only */
	if (strcmp(type, "RobertaProcessing") == 0 || strcmp(type, "BertProcessing") == 0) {
		int32_t cls, sep;
		if ((rc = parse_str_id(L, j, path, "cls", &cls)) || (rc = parse_str_id(L, j, path, "sep", &sep)))
			return rc;
		if ((rc = idlist_push(L, &a, cls, path)) || (rc = idlist_push(L, &b, sep, path)))
			return rc;
	} else if (strcmp(type, "TemplateProcessing") == 0) {
		json_t *single, *specials;
		if ((rc = member(L, j, path, "single", JSON_ARRAY, true, &single)) ||
		    (rc = member(L, j, path, "special_tokens", JSON_OBJECT, false, &specials)))
			return rc;
		bool seen_a = false;
		for (size_t i = 0; i < json_array_size(single); i++) {
			char p[RWD_ERROR_OBJECT_MAX];
			snprintf(p, sizeof(p), "%s.single[%zu]", path, i);
			json_t *it = json_array_get(single, i), *sp, *sq;
			sp = json_object_get(it, "SpecialToken");
			sq = json_object_get(it, "Sequence");
			if (json_is_object(sq)) {
				json_t *sid = json_object_get(sq, "id");
				if (!json_is_string(sid) || strcmp(json_string_value(sid), "A") != 0 || seen_a)
					return lerr(L, RWD_E_UNSUPPORTED, p, "single template must hold sequence A once");
				seen_a = true;
				continue;
			}
			json_t *sid = json_object_get(sp, "id");
			if (!json_is_object(sp) || !json_is_string(sid))
				return lerr(L, RWD_E_INVALID, p, "must be {\"SpecialToken\": {\"id\": ...}} or {\"Sequence\": ...}");
			json_t *def = json_object_get(specials, json_string_value(sid));
			json_t *ids = json_object_get(def, "ids");
			if (!json_is_array(ids))
				return lerr(L, RWD_E_INVALID, p, "special token \"%s\" is not in special_tokens",
					json_string_value(sid));
			for (size_t k = 0; k < json_array_size(ids); k++) {
				int32_t id;
				if ((rc = token_id_value(L, json_array_get(ids, k), p, &id)) ||
				    (rc = idlist_push(L, seen_a ? &b : &a, id, p)))
					return rc;
			}
		}
		if (!seen_a)
			return lerr(L, RWD_E_INVALID, path, "single template has no sequence A");
	} else {
		return lerr(L, RWD_E_UNSUPPORTED, path, "post-processor type \"%s\" is not supported", type);
	}
	/* This processor wraps what the previous ones produced. */
	struct idlist np = a;
	for (size_t i = 0; i < pre->n; i++)
		if ((rc = idlist_push(L, &np, pre->v[i], path)))
			return rc;
	*pre = np;
	for (size_t i = 0; i < b.n; i++)
		if ((rc = idlist_push(L, post, b.v[i], path)))
			return rc;
	return 0;
}

static size_t pow2_at_least(size_t n)
{
	size_t c = 16;
	while (c < n)
		c <<= 1;
	return c;
}

static int parse_vocab(struct loader *L, json_t *vocab, const char *path)
{
	rwd_tokenizer *t = L->tok;
	size_t n = json_object_size(vocab);
	if (n > L->p->max_vocab)
		return lerr(L, RWD_E_LIMIT, path, "%zu entries exceed the limit of %zu", n, L->p->max_vocab);
	size_t blob = 0;
	const char *key;
	json_t *val;
	json_object_foreach(vocab, key, val) {
		size_t kl = strlen(key);
		if (kl > L->p->max_token_bytes) {
			char p[RWD_ERROR_OBJECT_MAX];
			snprintf(p, sizeof(p), "%s[\"%.40s...\"]", path, key);
			return lerr(L, RWD_E_LIMIT, p, "token of %zu bytes exceeds the limit of %zu", kl, L->p->max_token_bytes);
		}
		blob += kl + 1;
	}
	if (blob > UINT32_MAX)
		return lerr(L, RWD_E_LIMIT, path, "vocabulary strings too large");
	t->blob = rwd_arena_alloc(t->arena, blob ? blob : 1);
	t->ve = rwd_arena_alloc(t->arena, (n ? n : 1) * sizeof(*t->ve));
	size_t cap = pow2_at_least(2 * n);
	t->vslot = rwd_arena_calloc(t->arena, cap, sizeof(*t->vslot));
	if (!t->blob || !t->ve || !t->vslot)
		return lerr(L, RWD_E_NOMEM, path, "out of memory");
	t->vmask = cap - 1;
	size_t off = 0, i = 0;
	int32_t max_id = -1;
	json_object_foreach(vocab, key, val) {
		char p[RWD_ERROR_OBJECT_MAX];
		snprintf(p, sizeof(p), "%s[\"%.60s\"]", path, key);
		int32_t id;
		int rc = token_id_value(L, val, p, &id);
		if (rc)
			return rc;
		size_t kl = strlen(key);
		memcpy(t->blob + off, key, kl + 1);
		t->ve[i] = (struct ventry){ .off = (uint32_t)off, .len = (uint32_t)kl, .id = id };
		/* Keys are unique (the JSON was parsed with duplicates rejected). */
		size_t h = hash_bytes(key, kl) & t->vmask;
		while (t->vslot[h])
			h = (h + 1) & t->vmask;
		t->vslot[h] = (uint32_t)(i + 1);
		off += kl + 1;
		i++;
		if (id > max_id)
			max_id = id;
	}
	t->n_vocab = n;
	t->id_cap = (size_t)(max_id + 1);
	t->id_entry = rwd_arena_alloc(t->arena, (t->id_cap ? t->id_cap : 1) * sizeof(int32_t));
	if (!t->id_entry)
		return lerr(L, RWD_E_NOMEM, path, "out of memory");
	memset(t->id_entry, 0xff, t->id_cap * sizeof(int32_t));
	for (size_t k = 0; k < n; k++)
		if (t->id_entry[t->ve[k].id] < 0)
			t->id_entry[t->ve[k].id] = (int32_t)k;
	t->vocab_size = t->id_cap;
	return 0;
}

static int parse_merges(struct loader *L, json_t *merges, const char *path)
{
	rwd_tokenizer *t = L->tok;
	size_t n = json_array_size(merges);
	if (n > L->p->max_merges)
		return lerr(L, RWD_E_LIMIT, path, "%zu merges exceed the limit of %zu", n, L->p->max_merges);
	size_t cap = pow2_at_least(2 * n);
	t->ms = rwd_arena_alloc(t->arena, cap * sizeof(*t->ms));
	if (!t->ms)
		return lerr(L, RWD_E_NOMEM, path, "out of memory");
	for (size_t i = 0; i < cap; i++)
		t->ms[i].key = UINT64_MAX;
	t->mmask = cap - 1;
	size_t maxt = L->p->max_token_bytes;
	char *buf = malloc(2 * maxt + 2);
	if (!buf)
		return lerr(L, RWD_E_NOMEM, path, "out of memory");
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		char p[RWD_ERROR_OBJECT_MAX];
		snprintf(p, sizeof(p), "%s[%zu]", path, i);
		json_t *m = json_array_get(merges, i);
		const char *a, *b;
		size_t al, bl;
		if (json_is_string(m)) {
			/* legacy "a b": exactly one separating space */
			const char *s = json_string_value(m);
			size_t sl = json_string_length(m);
			const char *sp = memchr(s, ' ', sl);
			if (!sp || memchr(sp + 1, ' ', sl - (size_t)(sp + 1 - s))) {
				rc = lerr(L, RWD_E_INVALID, p, "merge \"%.60s\" is not two tokens separated by one space", s);
				break;
			}
			a = s;
			al = (size_t)(sp - s);
			b = sp + 1;
			bl = sl - al - 1;
		} else if (json_is_array(m) && json_array_size(m) == 2 &&
			   json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
			a = json_string_value(json_array_get(m, 0));
			al = json_string_length(json_array_get(m, 0));
			b = json_string_value(json_array_get(m, 1));
			bl = json_string_length(json_array_get(m, 1));
		} else {
			rc = lerr(L, RWD_E_INVALID, p, "merge must be \"a b\" or [\"a\", \"b\"]");
			break;
		}
		if (al > maxt || bl > maxt) {
			rc = lerr(L, RWD_E_LIMIT, p, "merge token exceeds the limit of %zu bytes", maxt);
			break;
		}
		int32_t ia = vocab_id(t, a, al), ib = vocab_id(t, b, bl);
		if (ia < 0 || ib < 0) {
			rc = lerr(L, RWD_E_INVALID, p, "merge token \"%.60s\" is not in the vocabulary", ia < 0 ? a : b);
			break;
		}
		/* new token = a + b without b's continuing_subword_prefix */
		size_t skip = 0;
		if (t->prefix_len && bl >= t->prefix_len && memcmp(b, t->prefix, t->prefix_len) == 0)
			skip = t->prefix_len;
		memcpy(buf, a, al);
		memcpy(buf + al, b + skip, bl - skip);
		int32_t nid = vocab_id(t, buf, al + bl - skip);
		if (nid < 0) {
			rc = lerr(L, RWD_E_INVALID, p, "merged token \"%.*s\" is not in the vocabulary",
				(int)(al + bl - skip > 60 ? 60 : al + bl - skip), buf);
			break;
		}
		uint64_t key = ((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib;
		size_t h = hash_pair(key) & t->mmask;
		while (t->ms[h].key != UINT64_MAX && t->ms[h].key != key)
			h = (h + 1) & t->mmask;
		if (t->ms[h].key == UINT64_MAX)
			t->n_merges++;
		/* a repeated pair keeps the later rank, as HF's HashMap collect does */
		t->ms[h] = (struct mslot){ .key = key, .rank = (uint32_t)i, .new_id = nid };
	}
	free(buf);
	return rc;
}

static int parse_model(struct loader *L, json_t *m)
{
	rwd_tokenizer *t = L->tok;
	const char *path = "model";
	int rc;
	if (!json_is_object(m))
		return lerr(L, RWD_E_INVALID, path, "must be an object");
	const char *type;
	if ((rc = get_str(L, m, path, "type", false, 64, &type, NULL)))
		return rc;
	if (type && strcmp(type, "BPE") != 0)
		return lerr(L, RWD_E_UNSUPPORTED, "model.type", "model type \"%s\" is not supported (BPE only)", type);
	json_t *drop = json_object_get(m, "dropout");
	if (drop && !json_is_null(drop) && !(json_is_number(drop) && json_number_value(drop) == 0.0))
		return lerr(L, RWD_E_UNSUPPORTED, "model.dropout", "BPE dropout is not supported");
	const char *unk;
	size_t maxt = L->p->max_token_bytes;
	if ((rc = get_str(L, m, path, "unk_token", false, maxt, &unk, NULL)) ||
	    (rc = get_str(L, m, path, "continuing_subword_prefix", false, maxt, &t->prefix, &t->prefix_len)) ||
	    (rc = get_str(L, m, path, "end_of_word_suffix", false, maxt, &t->suffix, &t->suffix_len)) ||
	    (rc = get_bool(L, m, path, "fuse_unk", false, &t->fuse_unk)) ||
	    (rc = get_bool(L, m, path, "byte_fallback", false, &t->byte_fallback)) ||
	    (rc = get_bool(L, m, path, "ignore_merges", false, &t->ignore_merges)))
		return rc;
	if (t->prefix && !(t->prefix = rwd_arena_strndup(t->arena, t->prefix, t->prefix_len)))
		return lerr(L, RWD_E_NOMEM, path, "out of memory");
	if (t->suffix && !(t->suffix = rwd_arena_strndup(t->arena, t->suffix, t->suffix_len)))
		return lerr(L, RWD_E_NOMEM, path, "out of memory");
	json_t *vocab, *merges;
	if ((rc = member(L, m, path, "vocab", JSON_OBJECT, true, &vocab)) ||
	    (rc = member(L, m, path, "merges", JSON_ARRAY, false, &merges)))
		return rc;
	if ((rc = parse_vocab(L, vocab, "model.vocab")))
		return rc;
	t->unk_id = -1;
	if (unk) {
		t->unk_id = vocab_id(t, unk, strlen(unk));
		if (t->unk_id < 0)
			return lerr(L, RWD_E_INVALID, "model.unk_token", "unk token \"%.60s\" is not in the vocabulary", unk);
	}
	if (merges && (rc = parse_merges(L, merges, "model.merges")))
		return rc;
	return 0;
}

static int cmp_added(const void *x, const void *y)
{
	const struct added *a = *(struct added *const *)x, *b = *(struct added *const *)y;
	unsigned char fa = (unsigned char)a->match[0], fb = (unsigned char)b->match[0];
	if (fa != fb)
		return fa < fb ? -1 : 1;
	if (a->match_len != b->match_len)
		return a->match_len > b->match_len ? -1 : 1;
	return a < b ? -1 : (a > b); /* first listed wins among equal strings */
}

static int build_set(struct loader *L, struct added_set *s, bool normalized)
{
	rwd_tokenizer *t = L->tok;
	s->tok = rwd_arena_alloc(t->arena, (t->n_added ? t->n_added : 1) * sizeof(*s->tok));
	if (!s->tok)
		return lerr(L, RWD_E_NOMEM, "added_tokens", "out of memory");
	s->n = 0;
	for (size_t i = 0; i < t->n_added; i++)
		if (t->added[i].normalized == normalized && t->added[i].match_len > 0)
			s->tok[s->n++] = &t->added[i];
	qsort(s->tok, s->n, sizeof(*s->tok), cmp_added);
	size_t k = 0;
	for (unsigned b = 0; b <= 256; b++) {
		while (k < s->n && (unsigned char)s->tok[k]->match[0] < b)
			k++;
		s->first[b] = (uint32_t)k;
	}
	return 0;
}

/* encode-time machinery used by the loader to normalise added tokens */
struct enc;
static int normalize(struct enc *e, const char *s, size_t n, const char **out, size_t *out_len);
static int enc_init(struct enc *e, const rwd_tokenizer *t, rwd_arena *a, rwd_error *err);

static int parse_added(struct loader *L, json_t *arr)
{
	rwd_tokenizer *t = L->tok;
	size_t n = json_array_size(arr);
	if (n > L->p->max_added_tokens)
		return lerr(L, RWD_E_LIMIT, "added_tokens", "%zu tokens exceed the limit of %zu", n, L->p->max_added_tokens);
	t->added = rwd_arena_calloc(t->arena, n ? n : 1, sizeof(*t->added));
	if (!t->added)
		return lerr(L, RWD_E_NOMEM, "added_tokens", "out of memory");
	int rc = 0;
	int64_t max_added = -1;
	for (size_t i = 0; i < n; i++) {
		char p[RWD_ERROR_OBJECT_MAX];
		snprintf(p, sizeof(p), "added_tokens[%zu]", i);
		json_t *o = json_array_get(arr, i), *idv;
		if (!json_is_object(o))
			return lerr(L, RWD_E_INVALID, p, "must be an object");
		struct added *a = &t->added[t->n_added];
		const char *content;
		size_t clen;
		if ((rc = get_str(L, o, p, "content", true, L->p->max_token_bytes, &content, &clen)) ||
		    (rc = member(L, o, p, "id", JSON_INTEGER, true, &idv)) ||
		    (rc = get_bool(L, o, p, "single_word", false, &a->single_word)) ||
		    (rc = get_bool(L, o, p, "lstrip", false, &a->lstrip)) ||
		    (rc = get_bool(L, o, p, "rstrip", false, &a->rstrip)) ||
		    (rc = get_bool(L, o, p, "special", false, &a->special)) ||
		    (rc = get_bool(L, o, p, "normalized", !a->special, &a->normalized)))
			return rc;
		char pid[RWD_ERROR_OBJECT_MAX + 8];
		snprintf(pid, sizeof(pid), "%s.id", p);
		if ((rc = token_id_value(L, idv, pid, &a->id)))
			return rc;
		if (clen == 0)
			continue; /* HF ignores empty tokens */
		/* HF keeps one entry per content: a repeated content is ignored */
		bool dup = false;
		for (size_t k = 0; k < t->n_added && !dup; k++)
			dup = strcmp(t->added[k].content, content) == 0;
		if (dup)
			continue;
		/* HF (AddedVocabulary::add_tokens) does not trust the file's id:
		 * a token in the model vocab takes that id, any other the next
		 * id after the model vocab and the added tokens so far. For every
		 * consistent file this is the id written beside it. */
		int32_t vid = vocab_id(t, content, clen);
		if (vid >= 0)
			a->id = vid;
		else if (t->n_added == 0)
			a->id = (int32_t)t->n_vocab;
		else
			a->id = max_added >= (int64_t)t->n_vocab || t->n_vocab == 0 ? (int32_t)(max_added + 1) :
				(int32_t)t->n_vocab;
		if (a->id > L->p->max_id)
			return lerr(L, RWD_E_LIMIT, pid, "token id %d is outside 0..%d", (int)a->id, (int)L->p->max_id);
		if (a->id > max_added)
			max_added = a->id;
		if (!(a->content = rwd_arena_strndup(t->arena, content, clen)))
			return lerr(L, RWD_E_NOMEM, p, "out of memory");
		a->match = a->content;
		a->match_len = (uint32_t)clen;
		if ((size_t)a->id + 1 > t->vocab_size)
			t->vocab_size = (size_t)a->id + 1;
		t->n_added++;
	}
	/* normalised tokens match their normalised form (HF refresh_added_tokens) */
	rwd_arena *scratch = NULL;
	for (size_t i = 0; i < t->n_added; i++) {
		struct added *a = &t->added[i];
		if (!a->normalized || t->n_norm == 0)
			continue;
		if (!scratch && !(scratch = rwd_arena_create(0, 0)))
			return lerr(L, RWD_E_NOMEM, "added_tokens", "out of memory");
		struct enc *e = rwd_arena_alloc(scratch, 4096);
		const char *o;
		size_t ol;
		if (!e || enc_init(e, t, scratch, L->err) || normalize(e, a->content, a->match_len, &o, &ol)) {
			rwd_arena_destroy(scratch);
			char p[RWD_ERROR_OBJECT_MAX];
			snprintf(p, sizeof(p), "added_tokens[%zu]", i);
			return lerr(L, RWD_E_INVALID, p, "cannot normalise the token's content");
		}
		char *c = rwd_arena_strndup(t->arena, o, ol);
		if (!c) {
			rwd_arena_destroy(scratch);
			return lerr(L, RWD_E_NOMEM, "added_tokens", "out of memory");
		}
		a->match = c;
		a->match_len = (uint32_t)strlen(c);
	}
	rwd_arena_destroy(scratch);
	if ((rc = build_set(L, &t->raw, false)) || (rc = build_set(L, &t->normd, true)))
		return rc;
	return 0;
}

static void init_byte_map(rwd_tokenizer *t)
{
	int32_t n = 0;
	for (int b = 0; b < 256; b++) {
		bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
		t->byte_cp[b] = keep ? (uint32_t)b : (uint32_t)(256 + n++);
	}
}

static rwd_tokenizer *tok_new(void)
{
	rwd_arena *a = rwd_arena_create(1 << 20, 0);
	if (!a)
		return NULL;
	rwd_tokenizer *t = rwd_arena_calloc(a, 1, sizeof(*t));
	if (!t) {
		rwd_arena_destroy(a);
		return NULL;
	}
	t->arena = a;
	t->unk_id = -1;
	init_byte_map(t);
	return t;
}

void rwd_tokenizer_free(rwd_tokenizer *tok)
{
	if (!tok)
		return;
	pcre2_match_context_free(tok->mctx);
	rwd_arena_destroy(tok->arena); /* frees tok itself and the patterns */
}

static int load_root(json_t *root, const char *name, const rwd_tokenizer_params *params,
	rwd_tokenizer **out, rwd_error *err)
{
	rwd_tokenizer_params dp = rwd_tokenizer_default_params();
	struct loader L = { .name = name, .p = params ? params : &dp, .err = err };
	int rc;
	*out = NULL;
	if (!json_is_object(root)) {
		rwd_errorf(err, RWD_E_INVALID, "tokenizer.json must hold an object");
		rwd_error_where(err, name, NULL);
		return RWD_E_INVALID;
	}
	rwd_tokenizer *t = L.tok = tok_new();
	if (!t)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	size_t steps = L.p->max_steps ? L.p->max_steps : 1;
	t->norm = rwd_arena_calloc(t->arena, steps, sizeof(*t->norm));
	t->pre = rwd_arena_calloc(t->arena, steps, sizeof(*t->pre));
	t->mctx = pcre2_match_context_create(NULL);
	if (!t->norm || !t->pre || !t->mctx) {
		rc = lerr(&L, RWD_E_NOMEM, "", "out of memory");
		goto fail;
	}
	pcre2_set_match_limit(t->mctx, RX_MATCH_LIMIT);
	pcre2_set_heap_limit(t->mctx, RX_HEAP_LIMIT_KIB);
	json_t *model, *normalizer, *pretok, *post, *added, *trunc;
	if ((rc = member(&L, root, "", "model", JSON_OBJECT, true, &model)) ||
	    (rc = member(&L, root, "", "normalizer", JSON_OBJECT, false, &normalizer)) ||
	    (rc = member(&L, root, "", "pre_tokenizer", JSON_OBJECT, false, &pretok)) ||
	    (rc = member(&L, root, "", "post_processor", JSON_OBJECT, false, &post)) ||
	    (rc = member(&L, root, "", "added_tokens", JSON_ARRAY, false, &added)) ||
	    (rc = member(&L, root, "", "truncation", JSON_OBJECT, false, &trunc)))
		goto fail;
	if ((rc = parse_model(&L, model)))
		goto fail;
	if (normalizer && (rc = parse_normalizer(&L, normalizer, "normalizer", 0)))
		goto fail;
	if (added && (rc = parse_added(&L, added)))
		goto fail;
	if (!added && ((rc = build_set(&L, &t->raw, false)) || (rc = build_set(&L, &t->normd, true))))
		goto fail;
	if (pretok && (rc = parse_pretok(&L, pretok, "pre_tokenizer", 0)))
		goto fail;
	if (post) {
		struct idlist pre = { .n = 0 }, suf = { .n = 0 };
		if ((rc = parse_processor(&L, post, "post_processor", 0, &pre, &suf)))
			goto fail;
		t->pre_ids = rwd_arena_alloc(t->arena, (pre.n + 1) * sizeof(int32_t));
		t->post_ids = rwd_arena_alloc(t->arena, (suf.n + 1) * sizeof(int32_t));
		if (!t->pre_ids || !t->post_ids) {
			rc = lerr(&L, RWD_E_NOMEM, "post_processor", "out of memory");
			goto fail;
		}
		memcpy(t->pre_ids, pre.v, pre.n * sizeof(int32_t));
		memcpy(t->post_ids, suf.v, suf.n * sizeof(int32_t));
		t->n_pre_ids = pre.n;
		t->n_post_ids = suf.n;
	}
	if (trunc) {
		json_t *ml = json_object_get(trunc, "max_length");
		if (!json_is_integer(ml) || json_integer_value(ml) < 0) {
			rc = lerr(&L, RWD_E_INVALID, "truncation.max_length", "must be a non-negative integer");
			goto fail;
		}
		t->trunc_len = (size_t)json_integer_value(ml);
	}
	*out = t;
	return 0;
fail:
	rwd_tokenizer_free(t);
	return rc;
}

/* Read a whole file (limit-checked) into a malloc'd NUL-terminated buffer. */
static int read_file(const char *path, size_t max, char **out, size_t *len, rwd_error *err)
{
	*out = NULL;
	FILE *f = fopen(path, "rb");
	if (!f) {
		int code = errno == ENOENT ? RWD_E_NOTFOUND : RWD_E_IO;
		rwd_errorf(err, code, "cannot open: %s", strerror(errno));
		rwd_error_where(err, path, NULL);
		return code;
	}
	struct stat st;
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
		fclose(f);
		rwd_errorf(err, RWD_E_IO, "not a regular file");
		rwd_error_where(err, path, NULL);
		return RWD_E_IO;
	}
	if ((uint64_t)st.st_size > max) {
		fclose(f);
		rwd_errorf(err, RWD_E_LIMIT, "file of %lld bytes exceeds the limit of %zu",
			(long long)st.st_size, max);
		rwd_error_where(err, path, NULL);
		return RWD_E_LIMIT;
	}
	size_t n = (size_t)st.st_size;
	char *buf = malloc(n + 1);
	if (!buf) {
		fclose(f);
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	}
	if (fread(buf, 1, n, f) != n) {
		fclose(f);
		free(buf);
		rwd_errorf(err, RWD_E_IO, "read failed");
		rwd_error_where(err, path, NULL);
		return RWD_E_IO;
	}
	fclose(f);
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

static int parse_json(const char *data, size_t len, const char *name, json_t **out, rwd_error *err)
{
	json_error_t je;
	*out = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
	if (!*out) {
		rwd_errorf(err, RWD_E_FORMAT, "invalid JSON: %s", je.text);
		rwd_error_where(err, name, NULL);
		rwd_error_at(err, je.line, je.column, je.position);
		return RWD_E_FORMAT;
	}
	return 0;
}

int rwd_tokenizer_load_json_bytes(const char *data, size_t len, const char *name,
	const rwd_tokenizer_params *params, rwd_tokenizer **out, rwd_error *err)
{
	rwd_tokenizer_params dp = rwd_tokenizer_default_params();
	const rwd_tokenizer_params *p = params ? params : &dp;
	*out = NULL;
	if (len > p->max_file_bytes) {
		rwd_errorf(err, RWD_E_LIMIT, "%zu bytes exceed the limit of %zu", len, p->max_file_bytes);
		rwd_error_where(err, name, NULL);
		return RWD_E_LIMIT;
	}
	json_t *root;
	int rc = parse_json(data, len, name, &root, err);
	if (rc)
		return rc;
	rc = load_root(root, name, p, out, err);
	json_decref(root);
	return rc;
}

int rwd_tokenizer_load_json(const char *path, const rwd_tokenizer_params *params,
	rwd_tokenizer **out, rwd_error *err)
{
	rwd_tokenizer_params dp = rwd_tokenizer_default_params();
	const rwd_tokenizer_params *p = params ? params : &dp;
	char *buf;
	size_t len;
	*out = NULL;
	int rc = read_file(path, p->max_file_bytes, &buf, &len, err);
	if (rc)
		return rc;
	rc = rwd_tokenizer_load_json_bytes(buf, len, path, p, out, err);
	free(buf);
	return rc;
}

/* ---------------------------------------------------------------- encode */

struct piece {
	const char *p;
	size_t len;
};

struct span {
	size_t s, e;
	bool m;
};

struct sym {
	int32_t id, prev, next;
	uint32_t len;
};

struct hent {
	uint32_t rank, pos;
	int32_t new_id;
};

struct enc {
	const rwd_tokenizer *t;
	rwd_arena *a;
	rwd_error *err;
	pcre2_match_data *md;
	int32_t *ids;
	size_t n, cap;
	struct piece *pa, *pb;   /* pre-tokenizer piece lists */
	size_t pcap;
	struct span *sp;
	size_t spcap;
	struct sym *sym;
	size_t symcap;
	struct hent *heap;
	size_t heapcap;
	char *wbuf;
	size_t wcap;
	char *cbuf;
	size_t ccap;
};

static int enc_fail(struct enc *e, int code)
{
	if (code == RWD_E_NOMEM && rwd_arena_over_limit(e->a))
		code = RWD_E_LIMIT;
	if (code == RWD_E_LIMIT && rwd_arena_over_limit(e->a))
		return rwd_errorf(e->err, code, "tokenisation needs more memory than the arena allows");
	if (code == RWD_E_NOMEM)
		return rwd_errorf(e->err, code, "out of memory while tokenising");
	if (code == RWD_E_LIMIT)
		return rwd_errorf(e->err, code, "pre-tokenizer regex exceeded its backtracking limit");
	return rwd_errorf(e->err, code, "internal regex error");
}

/* Make *buf hold at least `need` elements of `size` bytes (arena, doubling). */
static int grow(struct enc *e, void **buf, size_t *cap, size_t need, size_t size, size_t keep)
{
	if (need <= *cap)
		return 0;
	size_t nc = *cap ? *cap : 64;
	while (nc < need) {
		if (nc > SIZE_MAX / 4 / size)
			return enc_fail(e, RWD_E_NOMEM);
		nc *= 2;
	}
	void *nb = rwd_arena_alloc(e->a, nc * size);
	if (!nb)
		return enc_fail(e, RWD_E_NOMEM);
	if (keep)
		memcpy(nb, *buf, keep * size);
	*buf = nb;
	*cap = nc;
	return 0;
}

static int enc_init(struct enc *e, const rwd_tokenizer *t, rwd_arena *a, rwd_error *err)
{
	memset(e, 0, sizeof(*e));
	e->t = t;
	e->a = a;
	e->err = err;
	pcre2_general_context *g = pcre2_general_context_create(rx_arena_alloc, rx_arena_free, a);
	if (!g || !(e->md = pcre2_match_data_create(1, g)))
		return enc_fail(e, RWD_E_NOMEM);
	return 0;
}

static int emit(struct enc *e, int32_t id)
{
	if (e->n == e->cap) {
		int rc = grow(e, (void **)&e->ids, &e->cap, e->n + 1, sizeof(int32_t), e->n);
		if (rc)
			return rc;
	}
	e->ids[e->n++] = id;
	return 0;
}

/* --- normalizers */

static int norm_unicode(struct enc *e, enum norm_kind k, const char *s, size_t n, const char **o, size_t *ol)
{
	size_t i = 0;
	while (i < n && (unsigned char)s[i] < 0x80)
		i++;
	if (i == n) { /* ASCII is invariant under every normal form */
		*o = s;
		*ol = n;
		return 0;
	}
	utf8proc_option_t opt = UTF8PROC_STABLE;
	if (k == N_NFC || k == N_NFKC)
		opt |= UTF8PROC_COMPOSE;
	else
		opt |= UTF8PROC_DECOMPOSE;
	if (k == N_NFKC || k == N_NFKD)
		opt |= UTF8PROC_COMPAT;
	size_t cap = n + 16;
	for (;;) {
		utf8proc_int32_t *buf = rwd_arena_alloc(e->a, cap * sizeof(utf8proc_int32_t));
		if (!buf)
			return enc_fail(e, RWD_E_NOMEM);
		utf8proc_ssize_t r = utf8proc_decompose((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n,
			buf, (utf8proc_ssize_t)cap, opt);
		if (r < 0)
			return rwd_errorf(e->err, RWD_E_INVALID, "text is not valid UTF-8");
		if ((size_t)r > cap) {
			cap = (size_t)r;
			continue;
		}
		r = utf8proc_reencode(buf, r, opt);
		if (r < 0)
			return rwd_errorf(e->err, RWD_E_INVALID, "text is not valid UTF-8");
		*o = (const char *)buf;
		*ol = (size_t)r;
		return 0;
	}
}

static int norm_lower(struct enc *e, const char *s, size_t n, const char **o, size_t *ol)
{
	char *out = rwd_arena_alloc(e->a, 2 * n + 4);
	if (!out)
		return enc_fail(e, RWD_E_NOMEM);
	size_t w = 0;
	for (size_t i = 0; i < n;) {
		size_t l;
		int32_t c = utf8_dec(s + i, &l);
		i += l;
		if (c < 0x80) {
			out[w++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
		} else if (c == 0x130) {
			/* the one unconditional multi-char lowercase (SpecialCasing) */
			out[w++] = 'i';
			w += utf8_enc(0x307, out + w);
		} else {
			w += utf8_enc(utf8proc_tolower(c), out + w);
		}
	}
	*o = out;
	*ol = w;
	return 0;
}

static int norm_strip(struct enc *e, const struct norm *nm, const char *s, size_t n, const char **o, size_t *ol)
{
	(void)e;
	size_t b = 0, end = n;
	if (nm->left) {
		while (b < end) {
			size_t l;
			if (!is_white_space(utf8_dec(s + b, &l)))
				break;
			b += l;
		}
	}
	if (nm->right) {
		while (end > b) {
			int32_t c = utf8_dec_back(s, end);
			if (!is_white_space(c))
				break;
			char tmp[4];
			end -= utf8_enc(c, tmp);
		}
	}
	*o = s + b;
	*ol = end - b;
	return 0;
}

static int norm_replace(struct enc *e, const struct norm *nm, const char *s, size_t n, const char **o, size_t *ol)
{
	char *out = NULL;
	size_t cap = 0, w = 0, from = 0, last_end = SIZE_MAX, ms, me, prev = 0;
	for (;;) {
		int rc = rx_next(&nm->rx, e->t->mctx, e->md, s, n, &from, &last_end, &ms, &me);
		if (rc < 0)
			return enc_fail(e, rc);
		size_t copy = rc ? ms - prev : n - prev;
		size_t need = w + copy + (rc ? nm->str_len : 0) + 1;
		if (need > cap && grow(e, (void **)&out, &cap, need, 1, w))
			return RWD_E_NOMEM;
		memcpy(out + w, s + prev, copy);
		w += copy;
		if (!rc)
			break;
		memcpy(out + w, nm->str, nm->str_len);
		w += nm->str_len;
		prev = me;
		if (me == ms) { /* an empty match: step over one character */
			if (me >= n)
				break;
			size_t l;
			utf8_dec(s + me, &l);
			if (w + l + 1 > cap && grow(e, (void **)&out, &cap, w + l + 1, 1, w))
				return RWD_E_NOMEM;
			memcpy(out + w, s + me, l);
			w += l;
			prev = from = me + l;
		}
	}
	*o = out ? out : s;
	*ol = w;
	return 0;
}

static int normalize(struct enc *e, const char *s, size_t n, const char **out, size_t *out_len)
{
	const rwd_tokenizer *t = e->t;
	for (size_t i = 0; i < t->n_norm && n > 0; i++) {
		const struct norm *nm = &t->norm[i];
		int rc = 0;
		switch (nm->kind) {
		case N_NFC: case N_NFD: case N_NFKC: case N_NFKD:
			rc = norm_unicode(e, nm->kind, s, n, &s, &n);
			break;
		case N_LOWER:
			rc = norm_lower(e, s, n, &s, &n);
			break;
		case N_STRIP:
			rc = norm_strip(e, nm, s, n, &s, &n);
			break;
		case N_REPLACE:
			rc = norm_replace(e, nm, s, n, &s, &n);
			break;
		case N_PREPEND: {
			char *o = rwd_arena_alloc(e->a, n + nm->str_len);
			if (!o)
				return enc_fail(e, RWD_E_NOMEM);
			memcpy(o, nm->str, nm->str_len);
			memcpy(o + nm->str_len, s, n);
			s = o;
			n += nm->str_len;
			break;
		}
		}
		if (rc)
			return rc;
	}
	*out = s;
	*out_len = n;
	return 0;
}

/* --- BPE */

static void heap_push(struct hent *h, size_t *n, struct hent x)
{
	size_t i = (*n)++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (h[p].rank < x.rank || (h[p].rank == x.rank && h[p].pos <= x.pos))
			break;
		h[i] = h[p];
		i = p;
	}
	h[i] = x;
}

static struct hent heap_pop(struct hent *h, size_t *n)
{
	struct hent top = h[0], x = h[--*n];
	size_t i = 0, m = *n;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= m)
			break;
		if (c + 1 < m && (h[c + 1].rank < h[c].rank || (h[c + 1].rank == h[c].rank && h[c + 1].pos < h[c].pos)))
			c++;
		if (x.rank < h[c].rank || (x.rank == h[c].rank && x.pos <= h[c].pos))
			break;
		h[i] = h[c];
		i = c;
	}
	h[i] = x;
	return top;
}

static void sym_add(struct sym *sym, size_t *n, int32_t id, uint32_t len)
{
	size_t i = (*n)++;
	sym[i] = (struct sym){ .id = id, .prev = (int32_t)i - 1, .next = -1, .len = len };
	if (i > 0)
		sym[i - 1].next = (int32_t)i;
}

/* One pre-token through the model (HF BPE tokenize + merge_word + merge_all). */
static int bpe_word(struct enc *e, const char *s, size_t n)
{
	const rwd_tokenizer *t = e->t;
	int rc;
	if (n == 0)
		return 0;
	if (t->byte_level) {
		if ((rc = grow(e, (void **)&e->wbuf, &e->wcap, 2 * n, 1, 0)))
			return rc;
		size_t w = 0;
		for (size_t i = 0; i < n; i++)
			w += utf8_enc((int32_t)t->byte_cp[(unsigned char)s[i]], e->wbuf + w);
		s = e->wbuf;
		n = w;
	}
	if (t->ignore_merges) {
		int32_t id = vocab_id(t, s, n);
		if (id >= 0)
			return emit(e, id);
	}
	if ((rc = grow(e, (void **)&e->sym, &e->symcap, n, sizeof(struct sym), 0)) ||
	    (rc = grow(e, (void **)&e->heap, &e->heapcap, 3 * n + 1, sizeof(struct hent), 0)) ||
	    (rc = grow(e, (void **)&e->cbuf, &e->ccap, t->prefix_len + t->suffix_len + 8, 1, 0)))
		return rc;
	struct sym *sym = e->sym;
	size_t ns = 0;
	int32_t unk = -1;
	uint32_t unk_len = 0;
	for (size_t i = 0; i < n;) {
		size_t l;
		utf8_dec(s + i, &l);
		bool first = i == 0, last = i + l == n;
		size_t cl = 0;
		if (!first && t->prefix) {
			memcpy(e->cbuf, t->prefix, t->prefix_len);
			cl = t->prefix_len;
		}
		memcpy(e->cbuf + cl, s + i, l);
		cl += l;
		if (last && t->suffix) {
			memcpy(e->cbuf + cl, t->suffix, t->suffix_len);
			cl += t->suffix_len;
		}
		int32_t id = vocab_id(t, e->cbuf, cl);
		if (id >= 0) {
			if (unk >= 0) {
				sym_add(sym, &ns, unk, unk_len);
				unk = -1;
			}
			sym_add(sym, &ns, id, (uint32_t)l);
		} else {
			bool done = false;
			if (t->byte_fallback) {
				/* <0xXX> for every byte of the (prefixed/suffixed) character */
				int32_t bid[64];
				size_t k;
				for (k = 0; k < cl && k < 64; k++) {
					char code[8];
					snprintf(code, sizeof(code), "<0x%02X>", (unsigned char)e->cbuf[k]);
					if ((bid[k] = vocab_id(t, code, 6)) < 0)
						break;
				}
				if (k == cl) {
					if ((rc = grow(e, (void **)&e->sym, &e->symcap, ns + cl + n - i, sizeof(struct sym), ns)) ||
					    (rc = grow(e, (void **)&e->heap, &e->heapcap, 3 * (ns + cl + n - i) + 1,
						    sizeof(struct hent), 0)))
						return rc;
					sym = e->sym;
					for (k = 0; k < cl; k++)
						sym_add(sym, &ns, bid[k], 1);
					done = true;
				}
			}
			if (!done && t->unk_id >= 0) {
				if (unk >= 0 && t->fuse_unk) {
					unk_len += (uint32_t)l;
				} else {
					if (unk >= 0)
						sym_add(sym, &ns, unk, unk_len);
					unk = t->unk_id;
					unk_len = (uint32_t)l;
				}
			}
		}
		i += l;
	}
	if (unk >= 0)
		sym_add(sym, &ns, unk, unk_len);
	struct hent *heap = e->heap;
	size_t nh = 0;
	for (size_t i = 0; i + 1 < ns; i++) {
		const struct mslot *m = merge_find(t, sym[i].id, sym[i + 1].id);
		if (m)
			heap_push(heap, &nh, (struct hent){ m->rank, (uint32_t)i, m->new_id });
	}
	while (nh) {
		struct hent top = heap_pop(heap, &nh);
		struct sym *cur = &sym[top.pos];
		if (cur->len == 0 || cur->next < 0)
			continue;
		struct sym *right = &sym[cur->next];
		const struct mslot *m = merge_find(t, cur->id, right->id);
		if (!m || m->new_id != top.new_id)
			continue; /* stale entry: the pair at pos changed since */
		cur->id = top.new_id;
		cur->len += right->len;
		cur->next = right->next;
		right->len = 0;
		if (cur->next >= 0)
			sym[cur->next].prev = (int32_t)top.pos;
		if (cur->prev >= 0 && (m = merge_find(t, sym[cur->prev].id, cur->id)))
			heap_push(heap, &nh, (struct hent){ m->rank, (uint32_t)cur->prev, m->new_id });
		if (cur->next >= 0 && (m = merge_find(t, cur->id, sym[cur->next].id)))
			heap_push(heap, &nh, (struct hent){ m->rank, top.pos, m->new_id });
	}
	for (size_t i = 0; i < ns; i++)
		if (sym[i].len && (rc = emit(e, sym[i].id)))
			return rc;
	return 0;
}

/* --- pre-tokenizers */

/* Split one piece by a regex step into `out` (HF NormalizedString::split). */
static int split_piece(struct enc *e, const struct pre *st, struct piece in, struct piece **out,
	size_t *nout, size_t *outcap)
{
	int rc;
	size_t ns = 0, from = 0, last_end = SIZE_MAX, ms, me, prev = 0;
	const char *s = in.p;
	size_t n = in.len;
	/* find_matches: gaps and matches covering the piece */
	for (;;) {
		if ((rc = grow(e, (void **)&e->sp, &e->spcap, ns + 2, sizeof(struct span), ns)))
			return rc;
		int r = rx_next(&st->rx, e->t->mctx, e->md, s, n, &from, &last_end, &ms, &me);
		if (r < 0)
			return enc_fail(e, r);
		if (!r)
			break;
		if (prev != ms)
			e->sp[ns++] = (struct span){ prev, ms, false };
		e->sp[ns++] = (struct span){ ms, me, true };
		prev = me;
	}
	if (prev != n) {
		if ((rc = grow(e, (void **)&e->sp, &e->spcap, ns + 1, sizeof(struct span), ns)))
			return rc;
		e->sp[ns++] = (struct span){ prev, n, false };
	}
	struct span *sp = e->sp;
	if (st->invert)
		for (size_t i = 0; i < ns; i++)
			sp[i].m = !sp[i].m;
	/* behaviour: compute kept spans in place (m = "remove") */
	size_t k = 0;
	bool prevm = false;
	switch (st->behavior) {
	case B_REMOVED:
		k = ns;
		break;
	case B_ISOLATED:
		for (size_t i = 0; i < ns; i++)
			sp[i].m = false;
		k = ns;
		break;
	case B_MERGED_PREV:
		for (size_t i = 0; i < ns; i++) {
			bool im = sp[i].m;
			if (im && !prevm && k > 0)
				sp[k - 1].e = sp[i].e;
			else
				sp[k++] = (struct span){ sp[i].s, sp[i].e, false };
			prevm = im;
		}
		break;
	case B_MERGED_NEXT:
		/* fold from the right, then the kept spans are in reverse order */
		for (size_t i = ns; i-- > 0;) {
			bool im = sp[i].m;
			if (im && !prevm && k > 0)
				sp[ns - k].s = sp[i].s;
			else {
				struct span x = { sp[i].s, sp[i].e, false };
				k++;
				sp[ns - k] = x;
			}
			prevm = im;
		}
		memmove(sp, sp + (ns - k), k * sizeof(*sp));
		break;
	case B_CONTIGUOUS:
		for (size_t i = 0; i < ns; i++) {
			bool im = sp[i].m;
			if (im == prevm && k > 0)
				sp[k - 1].e = sp[i].e;
			else
				sp[k++] = (struct span){ sp[i].s, sp[i].e, false };
			prevm = im;
		}
		break;
	}
	if ((rc = grow(e, (void **)out, outcap, *nout + k, sizeof(struct piece), *nout)))
		return rc;
	for (size_t i = 0; i < k; i++)
		if (!sp[i].m && sp[i].e > sp[i].s)
			(*out)[(*nout)++] = (struct piece){ s + sp[i].s, sp[i].e - sp[i].s };
	return 0;
}

/* WhitespaceSplit: split on char::is_whitespace, removing it. */
static int ws_split_piece(struct enc *e, struct piece in, struct piece **out, size_t *nout, size_t *outcap)
{
	int rc;
	size_t start = 0;
	for (size_t i = 0; i <= in.len;) {
		size_t l = 1;
		bool ws = i < in.len && is_white_space(utf8_dec(in.p + i, &l));
		if (i == in.len || ws) {
			if (i > start) {
				if ((rc = grow(e, (void **)out, outcap, *nout + 1, sizeof(struct piece), *nout)))
					return rc;
				(*out)[(*nout)++] = (struct piece){ in.p + start, i - start };
			}
			start = i + l;
		}
		i += l;
	}
	return 0;
}

/* Pre-tokenise one normalised piece and run every pre-token through BPE. */
static int pretok_and_model(struct enc *e, const char *s, size_t n)
{
	const rwd_tokenizer *t = e->t;
	int rc;
	if (n == 0)
		return 0;
	struct piece *cur = NULL, *nxt = NULL;
	size_t ncur = 0, cap_cur = 0, nnxt = 0, cap_nxt = 0;
	if ((rc = grow(e, (void **)&e->pa, &e->pcap, 1, sizeof(struct piece), 0)))
		return rc;
	cur = e->pa;
	cap_cur = e->pcap;
	cur[ncur++] = (struct piece){ s, n };
	nxt = e->pb;
	cap_nxt = nxt ? e->pcap : 0;
	if (!nxt)
		cap_nxt = 0;
	for (size_t k = 0; k < t->n_pre; k++) {
		const struct pre *st = &t->pre[k];
		nnxt = 0;
		for (size_t i = 0; i < ncur; i++) {
			struct piece pc = cur[i];
			if (st->kind == P_BYTELEVEL && st->add_prefix_space && pc.p[0] != ' ') {
				char *b = rwd_arena_alloc(e->a, pc.len + 1);
				if (!b)
					return enc_fail(e, RWD_E_NOMEM);
				b[0] = ' ';
				memcpy(b + 1, pc.p, pc.len);
				pc = (struct piece){ b, pc.len + 1 };
			}
			if (st->kind == P_WS_SPLIT)
				rc = ws_split_piece(e, pc, &nxt, &nnxt, &cap_nxt);
			else if (st->rx.code)
				rc = split_piece(e, st, pc, &nxt, &nnxt, &cap_nxt);
			else {
				rc = grow(e, (void **)&nxt, &cap_nxt, nnxt + 1, sizeof(struct piece), nnxt);
				if (!rc)
					nxt[nnxt++] = pc;
			}
			if (rc)
				return rc;
		}
		struct piece *tp = cur;
		size_t tc = cap_cur;
		cur = nxt;
		cap_cur = cap_nxt;
		ncur = nnxt;
		nxt = tp;
		cap_nxt = tc;
	}
	/* keep the grown buffers for the next piece */
	e->pa = cur;
	e->pb = nxt;
	e->pcap = cap_cur < cap_nxt ? cap_cur : cap_nxt;
	for (size_t i = 0; i < ncur; i++)
		if ((rc = bpe_word(e, cur[i].p, cur[i].len)))
			return rc;
	return 0;
}

/* --- added tokens (HF AddedVocabulary::find_matches) */

static bool ends_with_word(const char *s, size_t end)
{
	return end > 0 && is_word_char(utf8_dec_back(s, end));
}

static bool starts_with_word(const char *s, size_t start, size_t n)
{
	size_t l;
	return start < n && is_word_char(utf8_dec(s + start, &l));
}

/* Leftmost-longest match at or after `from`: returns its start or n. */
static size_t added_find(const struct added_set *set, const char *s, size_t n, size_t from,
	const struct added **hit)
{
	for (size_t i = from; i < n; i++) {
		unsigned b = (unsigned char)s[i];
		for (uint32_t k = set->first[b]; k < set->first[b + 1]; k++) {
			const struct added *a = set->tok[k];
			if (a->match_len <= n - i && memcmp(s + i, a->match, a->match_len) == 0) {
				*hit = a;
				return i;
			}
		}
	}
	return n;
}

typedef int (*gap_fn)(struct enc *e, const char *s, size_t n);

static int split_added(struct enc *e, const struct added_set *set, const char *s, size_t n, gap_fn gap)
{
	int rc;
	if (set->n == 0)
		return gap(e, s, n);
	size_t start_off = 0, from = 0;
	for (;;) {
		const struct added *a = NULL;
		size_t ms = added_find(set, s, n, from, &a);
		if (ms >= n)
			break;
		size_t start = ms, stop = ms + a->match_len;
		from = stop; /* the automaton resumes after the match, even a rejected one */
		if (a->single_word) {
			bool sspace = start == 0 || !ends_with_word(s, start);
			bool espace = stop == n || !starts_with_word(s, stop, n);
			if (!sspace || !espace)
				continue;
		}
		if (a->lstrip) {
			size_t ns = start;
			while (ns > 0) {
				int32_t c = utf8_dec_back(s, ns);
				if (!is_white_space(c))
					break;
				char tmp[4];
				ns -= utf8_enc(c, tmp);
			}
			start = ns > start_off ? ns : start_off;
		}
		if (a->rstrip) {
			while (stop < n) {
				size_t l;
				if (!is_white_space(utf8_dec(s + stop, &l)))
					break;
				stop += l;
			}
		}
		if (start_off < start && (rc = gap(e, s + start_off, start - start_off)))
			return rc;
		if ((rc = emit(e, a->id)))
			return rc;
		start_off = stop;
	}
	if (start_off < n)
		return gap(e, s + start_off, n - start_off);
	return 0;
}

static int normalized_piece(struct enc *e, const char *s, size_t n)
{
	const char *o;
	size_t ol;
	int rc = normalize(e, s, n, &o, &ol);
	if (rc)
		return rc;
	return split_added(e, &e->t->normd, o, ol, pretok_and_model);
}

int rwd_tokenizer_encode(const rwd_tokenizer *tok, const char *text, size_t len,
	const rwd_encode_params *p, rwd_arena *arena, rwd_token_ids *out, rwd_error *err)
{
	rwd_encode_params dp = rwd_encode_default_params();
	if (!p)
		p = &dp;
	memset(out, 0, sizeof(*out));
	size_t bad = utf8_check(text, len);
	if (bad != len) {
		rwd_errorf(err, RWD_E_INVALID, "text is not valid UTF-8 at byte %zu", bad);
		rwd_error_at(err, 0, 0, (int64_t)bad);
		return RWD_E_INVALID;
	}
	struct enc e;
	int rc = enc_init(&e, tok, arena, err);
	if (rc)
		return rc;
	if ((rc = split_added(&e, &tok->raw, text, len, normalized_piece)))
		return rc;
	size_t added = p->add_special_tokens ? tok->n_pre_ids + tok->n_post_ids : 0;
	size_t body = e.n, skip = 0;
	out->n_full = body + added;
	if (p->max_length && body + added > p->max_length) {
		if (p->max_length < added) {
			return rwd_errorf(err, RWD_E_INVALID,
				"max_length %zu is smaller than the %zu special tokens", p->max_length, added);
		}
		size_t keep = p->max_length - added;
		if (p->truncate_left)
			skip = body - keep;
		body = keep;
	}
	int32_t *ids = rwd_arena_alloc(arena, (body + added + 1) * sizeof(int32_t));
	if (!ids)
		return enc_fail(&e, RWD_E_NOMEM);
	size_t w = 0;
	if (p->add_special_tokens)
		for (size_t i = 0; i < tok->n_pre_ids; i++)
			ids[w++] = tok->pre_ids[i];
	if (body)
		memcpy(ids + w, e.ids + skip, body * sizeof(int32_t));
	w += body;
	if (p->add_special_tokens)
		for (size_t i = 0; i < tok->n_post_ids; i++)
			ids[w++] = tok->post_ids[i];
	out->ids = ids;
	out->n = w;
	return 0;
}

int32_t rwd_tokenizer_token_to_id(const rwd_tokenizer *tok, const char *token)
{
	for (size_t i = 0; i < tok->n_added; i++)
		if (strcmp(tok->added[i].content, token) == 0)
			return tok->added[i].id;
	return vocab_id(tok, token, strlen(token));
}

const char *rwd_tokenizer_id_to_token(const rwd_tokenizer *tok, int32_t id)
{
	for (size_t i = 0; i < tok->n_added; i++)
		if (tok->added[i].id == id)
			return tok->added[i].content;
	if (id < 0 || (size_t)id >= tok->id_cap || tok->id_entry[id] < 0)
		return NULL;
	return tok->blob + tok->ve[tok->id_entry[id]].off;
}

size_t rwd_tokenizer_vocab_size(const rwd_tokenizer *tok)
{
	return tok->vocab_size;
}

size_t rwd_tokenizer_truncation_length(const rwd_tokenizer *tok)
{
	return tok->trunc_len;
}

size_t rwd_tokenizer_num_special_added(const rwd_tokenizer *tok)
{
	return tok->n_pre_ids + tok->n_post_ids;
}

/* ---------------------------------------------------------------- other files */

/*
 * The other formats are turned into the tokenizer.json document HF's
 * converters would write, and loaded through the same validated path.
 */

static json_t *jregex(const char *rx)
{
	return json_pack("{s:s}", "Regex", rx);
}

/* Wrap a BPE model object in `preset`'s pipeline; steals `model` and `added`. */
static json_t *preset_doc(rwd_tokenizer_preset preset, json_t *model, json_t *added)
{
	json_t *norm = json_null(), *pre = NULL, *post = json_null();
	switch (preset) {
	case RWD_TOKENIZER_QWEN2:
	case RWD_TOKENIZER_LLAMA3:
		if (preset == RWD_TOKENIZER_QWEN2)
			norm = json_pack("{s:s}", "type", "NFC");
		else
			json_object_set_new(model, "ignore_merges", json_true());
		pre = json_pack("{s:s, s:[{s:s, s:o, s:s, s:b}, {s:s, s:b, s:b, s:b}]}",
			"type", "Sequence", "pretokenizers",
			"type", "Split", "pattern", jregex(preset == RWD_TOKENIZER_QWEN2 ? RX_QWEN2 : RX_LLAMA3),
			"behavior", "Isolated", "invert", 0,
			"type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 0, "use_regex", 0);
		break;
	case RWD_TOKENIZER_GPT2:
		pre = json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 0,
			"trim_offsets", 1, "use_regex", 1);
		break;
	case RWD_TOKENIZER_CLIP:
		norm = json_pack("{s:s, s:[{s:s}, {s:s, s:o, s:s}, {s:s}]}", "type", "Sequence", "normalizers",
			"type", "NFC", "type", "Replace", "pattern", jregex("\\s+"), "content", " ",
			"type", "Lowercase");
		pre = json_pack("{s:s, s:[{s:s, s:o, s:s, s:b}, {s:s, s:b, s:b, s:b}]}",
			"type", "Sequence", "pretokenizers",
			"type", "Split", "pattern", jregex(RX_CLIP), "behavior", "Removed", "invert", 1,
			"type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 1, "use_regex", 0);
		json_object_set_new(model, "continuing_subword_prefix", json_string(""));
		json_object_set_new(model, "end_of_word_suffix", json_string("</w>"));
		json_object_set_new(model, "unk_token", json_string("<|endoftext|>"));
		post = json_pack("{s:s, s:[s,i], s:[s,i], s:b, s:b}", "type", "RobertaProcessing",
			"sep", "<|endoftext|>", 49407, "cls", "<|startoftext|>", 49406,
			"trim_offsets", 0, "add_prefix_space", 0);
		break;
	}
	json_object_set_new(model, "type", json_string("BPE"));
	return json_pack("{s:s, s:o, s:o, s:o, s:o, s:o}", "version", "1.0", "added_tokens", added,
		"normalizer", norm, "pre_tokenizer", pre ? pre : json_null(), "post_processor", post,
		"model", model);
}

static json_t *added_entry(const char *content, json_int_t id, bool normalized)
{
	return json_pack("{s:I, s:s, s:b, s:b, s:b, s:b, s:b}", "id", id, "content", content,
		"single_word", 0, "lstrip", 0, "rstrip", 0, "normalized", normalized, "special", 1);
}

/* merges.txt lines -> JSON array of "a b" strings (#version lines skipped). */
static int merges_lines(const char *buf, size_t len, size_t first, size_t count, const char *name,
	const rwd_tokenizer_params *p, json_t **out, rwd_error *err)
{
	json_t *arr = json_array();
	if (!arr)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	size_t line = 0, pos = 0;
	while (pos < len && json_array_size(arr) < count) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - buf) : len;
		size_t l = end - pos;
		if (l && buf[pos + l - 1] == '\r')
			l--;
		bool skip = line < first || (l >= 8 && memcmp(buf + pos, "#version", 8) == 0) ||
			(l == 0 && !nl);
		if (!skip) {
			if (json_array_size(arr) >= p->max_merges) {
				json_decref(arr);
				rwd_errorf(err, RWD_E_LIMIT, "more than %zu merges", p->max_merges);
				rwd_error_where(err, name, NULL);
				return RWD_E_LIMIT;
			}
			json_t *s = json_stringn_nocheck(buf + pos, l);
			if (!s || json_array_append_new(arr, s)) {
				json_decref(arr);
				return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
			}
		}
		line++;
		pos = end + 1;
	}
	*out = arr;
	return 0;
}

static int load_doc(json_t *doc, const char *name, const rwd_tokenizer_params *p, rwd_tokenizer **out, rwd_error *err)
{
	if (!doc)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	int rc = load_root(doc, name, p, out, err);
	json_decref(doc);
	return rc;
}

int rwd_tokenizer_load_vocab_merges(const char *vocab_path, const char *merges_path,
	const char *added_tokens_path, rwd_tokenizer_preset preset,
	const rwd_tokenizer_params *params, rwd_tokenizer **out, rwd_error *err)
{
	rwd_tokenizer_params dp = rwd_tokenizer_default_params();
	const rwd_tokenizer_params *p = params ? params : &dp;
	char *buf = NULL;
	size_t len;
	json_t *vocab = NULL, *merges = NULL, *added = NULL, *at = NULL;
	*out = NULL;
	if (preset < RWD_TOKENIZER_QWEN2 || preset > RWD_TOKENIZER_CLIP)
		return rwd_errorf(err, RWD_E_INVALID, "unknown tokenizer preset %d", (int)preset);
	int rc = read_file(vocab_path, p->max_file_bytes, &buf, &len, err);
	if (rc)
		return rc;
	rc = parse_json(buf, len, vocab_path, &vocab, err);
	free(buf);
	if (rc)
		goto fail;
	if (!json_is_object(vocab)) {
		rc = rwd_errorf(err, RWD_E_INVALID, "vocab.json must hold an object");
		rwd_error_where(err, vocab_path, NULL);
		goto fail;
	}
	if ((rc = read_file(merges_path, p->max_file_bytes, &buf, &len, err)))
		goto fail;
	rc = merges_lines(buf, len, 0, SIZE_MAX, merges_path, p, &merges, err);
	free(buf);
	if (rc)
		goto fail;
	added = json_array();
	if (!added) {
		rc = rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		goto fail;
	}
	if (preset == RWD_TOKENIZER_CLIP) {
		static const char *const sp[] = { "<|startoftext|>", "<|endoftext|>" };
		for (int i = 0; i < 2; i++) {
			json_t *id = json_object_get(vocab, sp[i]);
			if (!json_is_integer(id)) {
				rc = rwd_errorf(err, RWD_E_INVALID, "CLIP vocabulary lacks %s", sp[i]);
				rwd_error_where(err, vocab_path, NULL);
				goto fail;
			}
			json_array_append_new(added, added_entry(sp[i], json_integer_value(id), true));
		}
	}
	if (added_tokens_path) {
		if ((rc = read_file(added_tokens_path, p->max_file_bytes, &buf, &len, err)))
			goto fail;
		rc = parse_json(buf, len, added_tokens_path, &at, err);
		free(buf);
		if (rc)
			goto fail;
		if (!json_is_object(at) || json_object_size(at) > p->max_added_tokens) {
			rc = rwd_errorf(err, RWD_E_INVALID, "must be an object of at most %zu tokens", p->max_added_tokens);
			rwd_error_where(err, added_tokens_path, NULL);
			goto fail;
		}
		const char *k;
		json_t *v;
		json_object_foreach(at, k, v) {
			if (!json_is_integer(v)) {
				rc = rwd_errorf(err, RWD_E_INVALID, "token id must be an integer");
				rwd_error_where(err, added_tokens_path, k);
				goto fail;
			}
			json_array_append_new(added, added_entry(k, json_integer_value(v), false));
		}
	} else if (preset == RWD_TOKENIZER_LLAMA3) {
		/* nothing: Llama-3 specials live in tokenizer.json only */
	}
	json_t *model = json_pack("{s:o, s:o}", "vocab", vocab, "merges", merges);
	vocab = merges = NULL;
	json_t *doc = model ? preset_doc(preset, model, added) : NULL;
	added = NULL;
	if (doc && preset == RWD_TOKENIZER_LLAMA3) {
		json_t *bos = json_object_get(json_object_get(json_object_get(doc, "model"), "vocab"), "<|begin_of_text|>");
		if (json_is_integer(bos)) {
			json_object_set_new(doc, "post_processor", json_pack("{s:s, s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}], s:{s:{s:s, s:[I], s:[s]}}}",
				"type", "TemplateProcessing", "single",
				"SpecialToken", "id", "<|begin_of_text|>", "type_id", 0,
				"Sequence", "id", "A", "type_id", 0,
				"special_tokens", "<|begin_of_text|>", "id", "<|begin_of_text|>", "ids",
				json_integer_value(bos), "tokens", "<|begin_of_text|>"));
		}
	}
	rc = load_doc(doc, merges_path, p, out, err);
fail:
	json_decref(vocab);
	json_decref(merges);
	json_decref(added);
	json_decref(at);
	return rc;
}

/* gunzip a whole file (output limit-checked). */
static int gunzip_file(const char *path, size_t max, char **out, size_t *out_len, rwd_error *err)
{
	*out = NULL;
	gzFile gz = gzopen(path, "rb");
	if (!gz) {
		int code = errno == ENOENT ? RWD_E_NOTFOUND : RWD_E_IO;
		rwd_errorf(err, code, "cannot open: %s", strerror(errno ? errno : EIO));
		rwd_error_where(err, path, NULL);
		return code;
	}
	size_t cap = 1 << 20, n = 0;
	char *buf = malloc(cap + 1);
	int rc = 0;
	for (;;) {
		if (!buf) {
			rc = rwd_errorf(err, RWD_E_NOMEM, "out of memory");
			break;
		}
		if (n == cap) {
			if (cap >= max) {
				rc = rwd_errorf(err, RWD_E_LIMIT, "decompressed size exceeds the limit of %zu", max);
				rwd_error_where(err, path, NULL);
				break;
			}
			cap = cap * 2 > max ? max : cap * 2;
			char *nb = realloc(buf, cap + 1);
			if (!nb) {
				rc = rwd_errorf(err, RWD_E_NOMEM, "out of memory");
				break;
			}
			buf = nb;
		}
		size_t want = cap - n > (1u << 30) ? (1u << 30) : cap - n;
		int r = gzread(gz, buf + n, (unsigned)want);
		if (r < 0) {
			int ze;
			rc = rwd_errorf(err, RWD_E_FORMAT, "gzip: %s", gzerror(gz, &ze));
			rwd_error_where(err, path, NULL);
			break;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	gzclose(gz);
	if (rc) {
		free(buf);
		return rc;
	}
	buf[n] = '\0';
	*out = buf;
	*out_len = n;
	return 0;
}

int rwd_tokenizer_load_clip_bpe_gz(const char *path, const rwd_tokenizer_params *params,
	rwd_tokenizer **out, rwd_error *err)
{
	rwd_tokenizer_params dp = rwd_tokenizer_default_params();
	const rwd_tokenizer_params *p = params ? params : &dp;
	/* openai/CLIP simple_tokenizer: merges = lines[1 : 49152-256-2+1] */
	const size_t n_merges = 49152 - 256 - 2;
	char *buf;
	size_t len;
	json_t *merges = NULL, *vocab = NULL;
	*out = NULL;
	int rc = gunzip_file(path, p->max_file_bytes, &buf, &len, err);
	if (rc)
		return rc;
	if (utf8_check(buf, len) != len) {
		free(buf);
		rwd_errorf(err, RWD_E_FORMAT, "merges are not valid UTF-8");
		rwd_error_where(err, path, NULL);
		return RWD_E_FORMAT;
	}
	rc = merges_lines(buf, len, 1, n_merges, path, p, &merges, err);
	free(buf);
	if (rc)
		return rc;
	if (json_array_size(merges) != n_merges) {
		json_decref(merges);
		rwd_errorf(err, RWD_E_FORMAT, "%zu merges, CLIP needs %zu", json_array_size(merges), n_merges);
		rwd_error_where(err, path, NULL);
		return RWD_E_FORMAT;
	}
	/* vocab: 256 byte chars in bytes_to_unicode order, the same + </w>,
	 * one token per merge, then the two specials */
	vocab = json_object();
	rwd_tokenizer tmp;
	init_byte_map(&tmp);
	int order[256], k = 0;
	for (int b = 0; b < 256; b++)
		if (tmp.byte_cp[b] == (uint32_t)b)
			order[k++] = b;
	for (int b = 0; b < 256; b++)
		if (tmp.byte_cp[b] != (uint32_t)b)
			order[k++] = b;
	json_int_t id = 0;
	for (int pass = 0; pass < 2 && vocab; pass++) {
		for (int i = 0; i < 256; i++) {
			char s[16];
			size_t l = utf8_enc((int32_t)tmp.byte_cp[order[i]], s);
			if (pass)
				memcpy(s + l, "</w>", 4), l += 4;
			s[l] = '\0';
			json_object_set_new(vocab, s, json_integer(id++));
		}
	}
	for (size_t i = 0; i < n_merges && vocab; i++) {
		const char *m = json_string_value(json_array_get(merges, i));
		const char *sp = strchr(m, ' ');
		if (!sp) {
			json_decref(vocab);
			json_decref(merges);
			rwd_errorf(err, RWD_E_FORMAT, "merge line %zu is not two tokens", i + 2);
			rwd_error_where(err, path, NULL);
			return RWD_E_FORMAT;
		}
		char joined[512];
		snprintf(joined, sizeof(joined), "%.*s%s", (int)(sp - m), m, sp + 1);
		json_object_set_new(vocab, joined, json_integer(id++));
	}
	if (vocab) {
		json_object_set_new(vocab, "<|startoftext|>", json_integer(id++));
		json_object_set_new(vocab, "<|endoftext|>", json_integer(id++));
	}
	json_t *added = json_pack("[o,o]", added_entry("<|startoftext|>", 49406, true),
		added_entry("<|endoftext|>", 49407, true));
	json_t *model = vocab ? json_pack("{s:o, s:o}", "vocab", vocab, "merges", merges) : NULL;
	if (!model) {
		json_decref(merges);
		json_decref(added);
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	}
	return load_doc(preset_doc(RWD_TOKENIZER_CLIP, model, added), path, p, out, err);
}

static bool file_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int rwd_tokenizer_load_dir(const char *dir, rwd_tokenizer_preset preset,
	const rwd_tokenizer_params *params, rwd_tokenizer **out, rwd_error *err)
{
	char a[4096], b[4096], c[4096];
	*out = NULL;
	snprintf(a, sizeof(a), "%s/tokenizer.json", dir);
	if (file_exists(a))
		return rwd_tokenizer_load_json(a, params, out, err);
	snprintf(a, sizeof(a), "%s/vocab.json", dir);
	snprintf(b, sizeof(b), "%s/merges.txt", dir);
	snprintf(c, sizeof(c), "%s/added_tokens.json", dir);
	if (file_exists(a) && file_exists(b))
		return rwd_tokenizer_load_vocab_merges(a, b, file_exists(c) ? c : NULL, preset, params, out, err);
	snprintf(a, sizeof(a), "%s/bpe_simple_vocab_16e6.txt.gz", dir);
	if (file_exists(a))
		return rwd_tokenizer_load_clip_bpe_gz(a, params, out, err);
	rwd_errorf(err, RWD_E_NOTFOUND, "no tokenizer.json, vocab.json + merges.txt or bpe_simple_vocab_16e6.txt.gz");
	rwd_error_where(err, dir, NULL);
	return RWD_E_NOTFOUND;
}
