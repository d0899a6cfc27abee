/*
 * text/wordpiece.c — see wordpiece.h.
 *
 * The vocabulary is one string pool + an open-addressing hash table from
 * token bytes to id. Encoding works on code points in the caller's arena:
 * raw text -> special-token split -> BertNormalizer -> words -> WordPiece.
 *
 * Character classes. tokenizers' BertNormalizer and BertPreTokenizer take
 * "other" (Cc/Cf/Co/Cs), "nonspacing mark" (Mn) and "punctuation" (P*)
 * from the unicode_categories crate (tokenizers/src/normalizers/bert.rs,
 * pre_tokenizers/bert.rs), whose tables are Unicode 8.0, while utf8proc is
 * newer (15.0). A code point assigned after 8.0 is unassigned (Cn) in those
 * tables, so it is none of the three: newer_than_unicode8() lists every
 * code point that utf8proc calls Cf, Mn or P* and that Unicode 8.0 had not
 * assigned (tools/gen_wordpiece_unicode8.py prints it, from Perl's
 * Unicode::UCD prop_invlist("In=8.0") and utf8proc), and six characters whose
 * category changed since keep their 8.0 one. The parity test checks every
 * scalar value against the Rust library (9.0 tables left 159 apart, these
 * none). White_Space, NFD and lowercase follow current Unicode, as Rust's
 * std and unicode-normalization do.
 */
#include "text/wordpiece.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>

rwd_wordpiece_params rwd_wordpiece_default_params(void)
{
	rwd_wordpiece_params p = {
		.max_file_bytes = 16u << 20,
		.max_vocab = 1u << 20,
		.max_token_bytes = 512,
		.max_added_tokens = 1024,
		.lowercase = 1,
	};
	return p;
}

rwd_wordpiece_encode_params rwd_wordpiece_encode_default_params(void)
{
	rwd_wordpiece_encode_params p = { .add_special_tokens = 1, .max_length = 0, .pad_to_max_length = 0 };
	return p;
}

struct special {
	char *s;
	size_t len;
	int32_t id;
};

struct rwd_wordpiece {
	rwd_wordpiece_params lim;
	char *pool;          /* token strings, back to back */
	size_t pool_len, pool_cap;
	struct ent { size_t off; uint32_t len; int32_t id; } *ents;
	size_t n_ents, ents_cap;
	uint32_t *slots;     /* ent index + 1, 0 = empty */
	size_t mask;
	struct special *sp;
	size_t n_sp;
	int32_t max_id;
	int32_t unk, cls, sep, pad;
	char prefix[32];
	size_t prefix_len;
	size_t max_chars;
	bool clean_text, chinese, strip_accents, lowercase;
};

/* ---------------------------------------------------------------- unicode */

static const struct { int32_t lo, hi; } unicode8_new[] = {
	{0x061D, 0x061D}, {0x07FD, 0x07FD}, {0x0890, 0x0891}, {0x0898, 0x089F}, {0x08CA, 0x08E2},
	{0x09FD, 0x09FE}, {0x0A76, 0x0A76}, {0x0AFA, 0x0AFF}, {0x0B55, 0x0B55}, {0x0C04, 0x0C04},
	{0x0C3C, 0x0C3C}, {0x0C77, 0x0C77}, {0x0C84, 0x0C84}, {0x0D00, 0x0D00}, {0x0D3B, 0x0D3C},
	{0x0D81, 0x0D81}, {0x0EBA, 0x0EBA}, {0x0ECE, 0x0ECE}, {0x180F, 0x180F}, {0x1ABF, 0x1ACE},
	{0x1B7D, 0x1B7E}, {0x1DF6, 0x1DFB}, {0x2E43, 0x2E4F}, {0x2E52, 0x2E5D}, {0xA82C, 0xA82C},
	{0xA8C5, 0xA8C5}, {0xA8FF, 0xA8FF}, {0x10D24, 0x10D27}, {0x10EAB, 0x10EAD}, {0x10EFD, 0x10EFF},
	{0x10F46, 0x10F50}, {0x10F55, 0x10F59}, {0x10F82, 0x10F89}, {0x11070, 0x11070},
	{0x11073, 0x11074}, {0x110C2, 0x110C2}, {0x110CD, 0x110CD}, {0x111CF, 0x111CF},
	{0x1123E, 0x1123E}, {0x11241, 0x11241}, {0x1133B, 0x1133B}, {0x11438, 0x1143F},
	{0x11442, 0x11444}, {0x11446, 0x11446}, {0x1144B, 0x1144F}, {0x1145A, 0x1145B},
	{0x1145D, 0x1145E}, {0x11660, 0x1166C}, {0x116B9, 0x116B9}, {0x1182F, 0x11837},
	{0x11839, 0x1183B}, {0x1193B, 0x1193C}, {0x1193E, 0x1193E}, {0x11943, 0x11946},
	{0x119D4, 0x119D7}, {0x119DA, 0x119DB}, {0x119E0, 0x119E0}, {0x119E2, 0x119E2},
	{0x11A01, 0x11A0A}, {0x11A33, 0x11A38}, {0x11A3B, 0x11A47}, {0x11A51, 0x11A56},
	{0x11A59, 0x11A5B}, {0x11A8A, 0x11A96}, {0x11A98, 0x11A9C}, {0x11A9E, 0x11AA2},
	{0x11B00, 0x11B09}, {0x11C30, 0x11C36}, {0x11C38, 0x11C3D}, {0x11C3F, 0x11C3F},
	{0x11C41, 0x11C45}, {0x11C70, 0x11C71}, {0x11C92, 0x11CA7}, {0x11CAA, 0x11CB0},
	{0x11CB2, 0x11CB3}, {0x11CB5, 0x11CB6}, {0x11D31, 0x11D36}, {0x11D3A, 0x11D3A},
	{0x11D3C, 0x11D3D}, {0x11D3F, 0x11D45}, {0x11D47, 0x11D47}, {0x11D90, 0x11D91},
	{0x11D95, 0x11D95}, {0x11D97, 0x11D97}, {0x11EF3, 0x11EF4}, {0x11EF7, 0x11EF8},
	{0x11F00, 0x11F01}, {0x11F36, 0x11F3A}, {0x11F40, 0x11F40}, {0x11F42, 0x11F4F},
	{0x11FFF, 0x11FFF}, {0x12FF1, 0x12FF2}, {0x13430, 0x13440}, {0x13447, 0x13455},
	{0x16E97, 0x16E9A}, {0x16F4F, 0x16F4F}, {0x16FE2, 0x16FE2}, {0x16FE4, 0x16FE4},
	{0x1CF00, 0x1CF2D}, {0x1CF30, 0x1CF46}, {0x1E000, 0x1E006}, {0x1E008, 0x1E018},
	{0x1E01B, 0x1E021}, {0x1E023, 0x1E024}, {0x1E026, 0x1E02A}, {0x1E08F, 0x1E08F},
	{0x1E130, 0x1E136}, {0x1E2AE, 0x1E2AE}, {0x1E2EC, 0x1E2EF}, {0x1E4EC, 0x1E4EF},
	{0x1E944, 0x1E94A}, {0x1E95E, 0x1E95F},
};

static bool newer_than_unicode8(int32_t c)
{
	size_t lo = 0, hi = sizeof(unicode8_new) / sizeof(unicode8_new[0]);
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (c < unicode8_new[mid].lo)
			hi = mid;
		else if (c > unicode8_new[mid].hi)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

/* Unicode White_Space (Rust char::is_whitespace). */
static bool is_white_space(int32_t c)
{
	if (c <= 0x20)
		return c == 0x20 || (c >= 0x09 && c <= 0x0D);
	if (c < 0x85)
		return false;
	return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
		c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* bert.rs is_control: Cc/Cf/Co/Cs ("other" less Cn), \t \n \r excepted. */
static bool is_control(int32_t c)
{
	if (c == '\t' || c == '\n' || c == '\r')
		return false;
	switch (utf8proc_category(c)) {
	case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CO: case UTF8PROC_CATEGORY_CS:
		return true;
	case UTF8PROC_CATEGORY_CF:
		return !newer_than_unicode8(c);
	default:
		return false;
	}
}

static bool is_chinese(int32_t c)
{
	return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
		(c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
		(c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
		(c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Characters whose category changed after Unicode 8.0 (their 8.0 one counts). */
static bool was_mn_in_unicode8(int32_t c, bool *known)
{
	*known = true;
	if (c == 0x1734) /* Mn in 8.0, Mc since */
		return true;
	if (c == 0x1885 || c == 0x1886 || c == 0xA9BD || c == 0x111C9) /* Lo/Mc/Po in 8.0, Mn since */
		return false;
	*known = false;
	return false;
}

static bool is_mn(int32_t c)
{
	bool known;
	bool old = was_mn_in_unicode8(c, &known);
	if (known)
		return old;
	return utf8proc_category(c) == UTF8PROC_CATEGORY_MN && !newer_than_unicode8(c);
}

/* BertPreTokenizer: ASCII punctuation or Unicode P*. */
static bool is_punct(int32_t c)
{
	if (c < 0x80)
		return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) ||
			(c >= 0x5B && c <= 0x60) || (c >= 0x7B && c <= 0x7E);
	if (c == 0x166D || c == 0x111C9) /* Po in 8.0, So / Mn since */
		return true;
	switch (utf8proc_category(c)) {
	case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS:
	case UTF8PROC_CATEGORY_PE: case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
	case UTF8PROC_CATEGORY_PO:
		return !newer_than_unicode8(c);
	default:
		return false;
	}
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

/* 1 if s[0..n) is valid UTF-8 (no surrogates, no overlongs). */
static bool utf8_valid(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		utf8proc_int32_t c;
		utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &c);
		if (l <= 0)
			return false;
		i += (size_t)l;
	}
	return true;
}

/* ---------------------------------------------------------------- vocab */

static uint64_t hash_bytes(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
	return h ^ (h >> 29);
}

static int64_t vocab_slot(const rwd_wordpiece *t, const char *s, size_t n)
{
	if (!t->slots)
		return -1;
	size_t i = hash_bytes(s, n) & t->mask;
	for (;;) {
		uint32_t e = t->slots[i];
		if (!e)
			return -(int64_t)i - 2;
		const struct ent *en = &t->ents[e - 1];
		if (en->len == n && memcmp(t->pool + en->off, s, n) == 0)
			return (int64_t)(e - 1);
		i = (i + 1) & t->mask;
	}
}

static int32_t vocab_find(const rwd_wordpiece *t, const char *s, size_t n)
{
	int64_t e = vocab_slot(t, s, n);
	return e >= 0 ? t->ents[e].id : -1;
}

static int rehash(rwd_wordpiece *t, size_t cap)
{
	uint32_t *slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return RWD_E_NOMEM;
	free(t->slots);
	t->slots = slots;
	t->mask = cap - 1;
	for (size_t k = 0; k < t->n_ents; k++) {
		const struct ent *en = &t->ents[k];
		size_t i = hash_bytes(t->pool + en->off, en->len) & t->mask;
		while (t->slots[i])
			i = (i + 1) & t->mask;
		t->slots[i] = (uint32_t)(k + 1);
	}
	return 0;
}

/* Insert or override token -> id. */
static int vocab_put(rwd_wordpiece *t, const char *s, size_t n, int32_t id, rwd_error *err)
{
	if (n > t->lim.max_token_bytes)
		return rwd_errorf(err, RWD_E_LIMIT, "token of %zu bytes exceeds the limit of %zu",
			n, t->lim.max_token_bytes);
	int64_t e = vocab_slot(t, s, n);
	if (e >= 0) {
		t->ents[e].id = id;
		if (id > t->max_id)
			t->max_id = id;
		return 0;
	}
	if (t->n_ents >= t->lim.max_vocab)
		return rwd_errorf(err, RWD_E_LIMIT, "more than %zu vocabulary entries", t->lim.max_vocab);
	if (t->n_ents == t->ents_cap) {
		size_t cap = t->ents_cap ? 2 * t->ents_cap : 1024;
		struct ent *ne = realloc(t->ents, cap * sizeof(*ne));
		if (!ne)
			return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		t->ents = ne;
		t->ents_cap = cap;
	}
	if (t->pool_len + n + 1 > t->pool_cap) {
		size_t cap = t->pool_cap ? t->pool_cap : 1 << 16;
		while (cap < t->pool_len + n + 1)
			cap *= 2;
		char *np = realloc(t->pool, cap);
		if (!np)
			return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		t->pool = np;
		t->pool_cap = cap;
	}
	memcpy(t->pool + t->pool_len, s, n);
	t->pool[t->pool_len + n] = '\0';
	t->ents[t->n_ents] = (struct ent){ .off = t->pool_len, .len = (uint32_t)n, .id = id };
	t->pool_len += n + 1;
	t->n_ents++;
	if (id > t->max_id)
		t->max_id = id;
	if (!t->slots || 2 * t->n_ents > t->mask + 1) {
		if (rehash(t, t->slots ? 2 * (t->mask + 1) : 4096))
			return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	} else {
		size_t i = (size_t)(-vocab_slot(t, s, n) - 2);
		t->slots[i] = (uint32_t)t->n_ents;
	}
	return 0;
}

static int special_put(rwd_wordpiece *t, const char *s, size_t n, int32_t id, rwd_error *err)
{
	if (n == 0)
		return rwd_errorf(err, RWD_E_INVALID, "empty special token");
	if (n > t->lim.max_token_bytes)
		return rwd_errorf(err, RWD_E_LIMIT, "special token of %zu bytes exceeds the limit of %zu",
			n, t->lim.max_token_bytes);
	for (size_t i = 0; i < t->n_sp; i++) {
		if (t->sp[i].len == n && memcmp(t->sp[i].s, s, n) == 0) {
			t->sp[i].id = id;
			return 0;
		}
	}
	if (t->n_sp >= t->lim.max_added_tokens)
		return rwd_errorf(err, RWD_E_LIMIT, "more than %zu added tokens", t->lim.max_added_tokens);
	struct special *ns = realloc(t->sp, (t->n_sp + 1) * sizeof(*ns));
	if (!ns)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	t->sp = ns;
	char *c = malloc(n + 1);
	if (!c)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	memcpy(c, s, n);
	c[n] = '\0';
	t->sp[t->n_sp++] = (struct special){ .s = c, .len = n, .id = id };
	if (id > t->max_id)
		t->max_id = id;
	return 0;
}

void rwd_wordpiece_free(rwd_wordpiece *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n_sp; i++)
		free(t->sp[i].s);
	free(t->sp);
	free(t->slots);
	free(t->ents);
	free(t->pool);
	free(t);
}

static rwd_wordpiece *wp_new(const rwd_wordpiece_params *params)
{
	rwd_wordpiece *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->lim = params ? *params : rwd_wordpiece_default_params();
	t->max_id = -1;
	t->unk = t->cls = t->sep = t->pad = -1;
	memcpy(t->prefix, "##", 3);
	t->prefix_len = 2;
	t->max_chars = 100;
	t->clean_text = t->chinese = true;
	return t;
}

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

/* The BERT specials present in the vocabulary become raw-text matches. */
static int finish(rwd_wordpiece *t, const char *unk, rwd_error *err)
{
	t->unk = vocab_find(t, unk, strlen(unk));
	if (t->unk < 0)
		return rwd_errorf(err, RWD_E_INVALID, "the unknown token %s is not in the vocabulary", unk);
	if (t->pad < 0)
		t->pad = rwd_wordpiece_token_to_id(t, "[PAD]");
	return 0;
}

int rwd_wordpiece_load_vocab_bytes(const char *data, size_t len, const char *name,
	const rwd_wordpiece_params *params, rwd_wordpiece **out, rwd_error *err)
{
	*out = NULL;
	int rc;
	rwd_wordpiece *t = wp_new(params);
	if (!t)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	if (len > t->lim.max_file_bytes) {
		rc = rwd_errorf(err, RWD_E_LIMIT, "%zu bytes exceed the limit of %zu", len, t->lim.max_file_bytes);
		goto fail;
	}
	if (!utf8_valid(data, len)) {
		rc = rwd_errorf(err, RWD_E_FORMAT, "not valid UTF-8");
		goto fail;
	}
	t->lowercase = t->lim.lowercase != 0;
	t->strip_accents = t->lowercase;
	size_t pos = 0, line = 0;
	while (pos < len) {
		const char *nl = memchr(data + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - data) : len;
		/* Rust's str::trim_end: trailing White_Space */
		size_t e = end;
		while (e > pos) {
			size_t s = e - 1;
			while (s > pos && ((unsigned char)data[s] & 0xC0) == 0x80)
				s--;
			utf8proc_int32_t c;
			utf8proc_iterate((const utf8proc_uint8_t *)data + s, (utf8proc_ssize_t)(e - s), &c);
			if (!is_white_space(c))
				break;
			e = s;
		}
		if (line > (size_t)INT32_MAX - 1) {
			rc = rwd_errorf(err, RWD_E_LIMIT, "too many lines");
			goto fail;
		}
		rc = vocab_put(t, data + pos, e - pos, (int32_t)line, err);
		if (rc) {
			rwd_error_at(err, (int)(line + 1), 0, (int64_t)pos);
			goto fail;
		}
		line++;
		pos = nl ? end + 1 : len;
	}
	static const char *const specials[] = { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]" };
	for (size_t i = 0; i < sizeof(specials) / sizeof(specials[0]); i++) {
		int32_t id = vocab_find(t, specials[i], strlen(specials[i]));
		if (id >= 0 && (rc = special_put(t, specials[i], strlen(specials[i]), id, err)))
			goto fail;
	}
	t->cls = vocab_find(t, "[CLS]", 5);
	t->sep = vocab_find(t, "[SEP]", 5);
	if ((rc = finish(t, "[UNK]", err)))
		goto fail;
	*out = t;
	return 0;
fail:
	rwd_error_where(err, name, NULL);
	rwd_wordpiece_free(t);
	return rc;
}

int rwd_wordpiece_load_vocab(const char *path, const rwd_wordpiece_params *params,
	rwd_wordpiece **out, rwd_error *err)
{
	rwd_wordpiece_params p = params ? *params : rwd_wordpiece_default_params();
	char *buf;
	size_t len;
	*out = NULL;
	int rc = read_file(path, p.max_file_bytes, &buf, &len, err);
	if (rc)
		return rc;
	rc = rwd_wordpiece_load_vocab_bytes(buf, len, path, &p, out, err);
	free(buf);
	return rc;
}

/* ---------------------------------------------------------------- tokenizer.json */

static int jbool(const json_t *o, const char *key, bool dflt, bool *out, rwd_error *err, const char *path)
{
	const json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v)) {
		*out = dflt;
		return 0;
	}
	if (!json_is_boolean(v)) {
		rwd_error_where(err, NULL, path);
		return rwd_errorf(err, RWD_E_INVALID, "%s must be a boolean", key);
	}
	*out = json_is_true(v);
	return 0;
}

/* Id of a post-processor special: ["[CLS]", 101] of BertProcessing. */
static int pair_id(const json_t *v, int32_t *id, rwd_error *err, const char *path)
{
	if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_string(json_array_get(v, 0)) ||
		!json_is_integer(json_array_get(v, 1))) {
		rwd_error_where(err, NULL, path);
		return rwd_errorf(err, RWD_E_INVALID, "expected [token, id]");
	}
	json_int_t i = json_integer_value(json_array_get(v, 1));
	if (i < 0 || i > INT32_MAX) {
		rwd_error_where(err, NULL, path);
		return rwd_errorf(err, RWD_E_INVALID, "id out of range");
	}
	*id = (int32_t)i;
	return 0;
}

/* TemplateProcessing "single" as [SpecialToken X, Sequence A, SpecialToken Y]. */
static int template_ids(rwd_wordpiece *t, const json_t *pp, rwd_error *err)
{
	const json_t *single = json_object_get(pp, "single");
	const json_t *sts = json_object_get(pp, "special_tokens");
	if (!json_is_array(single) || json_array_size(single) != 3 || !json_is_object(sts))
		goto unsup;
	int32_t ids[2];
	for (size_t k = 0; k < 3; k++) {
		const json_t *piece = json_array_get(single, k);
		if (k == 1) {
			if (!json_object_get(piece, "Sequence"))
				goto unsup;
			continue;
		}
		const json_t *st = json_object_get(piece, "SpecialToken");
		const char *name = json_string_value(json_object_get(st, "id"));
		const json_t *ent = name ? json_object_get(sts, name) : NULL;
		const json_t *idl = json_object_get(ent, "ids");
		if (!json_is_array(idl) || json_array_size(idl) != 1 || !json_is_integer(json_array_get(idl, 0)))
			goto unsup;
		json_int_t v = json_integer_value(json_array_get(idl, 0));
		if (v < 0 || v > INT32_MAX)
			goto unsup;
		ids[k / 2] = (int32_t)v;
	}
	t->cls = ids[0];
	t->sep = ids[1];
	return 0;
unsup:
	rwd_error_where(err, NULL, "post_processor.single");
	return rwd_errorf(err, RWD_E_UNSUPPORTED, "only a TemplateProcessing of the form X $A Y is supported");
}

static int load_json_obj(rwd_wordpiece *t, const json_t *root, rwd_error *err)
{
	int rc;
	const json_t *model = json_object_get(root, "model");
	const char *mtype = json_string_value(json_object_get(model, "type"));
	if (!json_is_object(model) || !mtype || strcmp(mtype, "WordPiece") != 0) {
		rwd_error_where(err, NULL, "model.type");
		return rwd_errorf(err, RWD_E_UNSUPPORTED, "not a WordPiece model");
	}
	const json_t *vocab = json_object_get(model, "vocab");
	if (!json_is_object(vocab)) {
		rwd_error_where(err, NULL, "model.vocab");
		return rwd_errorf(err, RWD_E_INVALID, "model.vocab must be an object");
	}
	if (json_object_size(vocab) > t->lim.max_vocab) {
		rwd_error_where(err, NULL, "model.vocab");
		return rwd_errorf(err, RWD_E_LIMIT, "more than %zu vocabulary entries", t->lim.max_vocab);
	}
	const char *key;
	size_t klen;
	json_t *val;
	json_object_keylen_foreach((json_t *)vocab, key, klen, val) {
		json_int_t id = json_integer_value(val);
		if (!json_is_integer(val) || id < 0 || id > (1 << 24)) {
			rwd_error_where(err, NULL, "model.vocab");
			return rwd_errorf(err, RWD_E_INVALID, "the id of a vocabulary token must be an integer in [0, 2^24]");
		}
		if ((rc = vocab_put(t, key, klen, (int32_t)id, err))) {
			rwd_error_where(err, NULL, "model.vocab");
			return rc;
		}
	}
	const json_t *v = json_object_get(model, "continuing_subword_prefix");
	if (v && !json_is_null(v)) {
		if (!json_is_string(v) || json_string_length(v) >= sizeof(t->prefix)) {
			rwd_error_where(err, NULL, "model.continuing_subword_prefix");
			return rwd_errorf(err, RWD_E_INVALID, "must be a string of fewer than %zu bytes", sizeof(t->prefix));
		}
		t->prefix_len = json_string_length(v);
		memcpy(t->prefix, json_string_value(v), t->prefix_len + 1);
	}
	v = json_object_get(model, "max_input_chars_per_word");
	if (v && !json_is_null(v)) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > (1 << 20)) {
			rwd_error_where(err, NULL, "model.max_input_chars_per_word");
			return rwd_errorf(err, RWD_E_INVALID, "must be an integer in [0, 2^20]");
		}
		t->max_chars = (size_t)json_integer_value(v);
	}
	const char *unk = "[UNK]";
	v = json_object_get(model, "unk_token");
	if (v && !json_is_null(v)) {
		if (!json_is_string(v)) {
			rwd_error_where(err, NULL, "model.unk_token");
			return rwd_errorf(err, RWD_E_INVALID, "must be a string");
		}
		unk = json_string_value(v);
	}

	const json_t *norm = json_object_get(root, "normalizer");
	t->clean_text = t->chinese = t->strip_accents = t->lowercase = false;
	if (norm && !json_is_null(norm)) {
		const char *nt = json_string_value(json_object_get(norm, "type"));
		if (!nt || strcmp(nt, "BertNormalizer") != 0) {
			rwd_error_where(err, NULL, "normalizer.type");
			return rwd_errorf(err, RWD_E_UNSUPPORTED, "only BertNormalizer is supported");
		}
		if ((rc = jbool(norm, "clean_text", true, &t->clean_text, err, "normalizer.clean_text")) ||
			(rc = jbool(norm, "handle_chinese_chars", true, &t->chinese, err, "normalizer.handle_chinese_chars")) ||
			(rc = jbool(norm, "lowercase", true, &t->lowercase, err, "normalizer.lowercase")) ||
			(rc = jbool(norm, "strip_accents", t->lowercase, &t->strip_accents, err, "normalizer.strip_accents")))
			return rc;
	}
	const json_t *pre = json_object_get(root, "pre_tokenizer");
	const char *pt = json_string_value(json_object_get(pre, "type"));
	if (!pt || strcmp(pt, "BertPreTokenizer") != 0) {
		rwd_error_where(err, NULL, "pre_tokenizer.type");
		return rwd_errorf(err, RWD_E_UNSUPPORTED, "only BertPreTokenizer is supported");
	}

	const json_t *added = json_object_get(root, "added_tokens");
	if (added && !json_is_null(added)) {
		if (!json_is_array(added)) {
			rwd_error_where(err, NULL, "added_tokens");
			return rwd_errorf(err, RWD_E_INVALID, "added_tokens must be an array");
		}
		if (json_array_size(added) > t->lim.max_added_tokens) {
			rwd_error_where(err, NULL, "added_tokens");
			return rwd_errorf(err, RWD_E_LIMIT, "more than %zu added tokens", t->lim.max_added_tokens);
		}
		size_t i;
		json_t *a;
		json_array_foreach(added, i, a) {
			char where[64];
			snprintf(where, sizeof(where), "added_tokens[%zu]", i);
			const json_t *c = json_object_get(a, "content");
			const json_t *id = json_object_get(a, "id");
			if (!json_is_string(c) || !json_is_integer(id) || json_integer_value(id) < 0 ||
				json_integer_value(id) > (1 << 24)) {
				rwd_error_where(err, NULL, where);
				return rwd_errorf(err, RWD_E_INVALID, "an added token needs a string content and an id in [0, 2^24]");
			}
			static const char *const flags[] = { "normalized", "lstrip", "rstrip", "single_word" };
			for (size_t f = 0; f < 4; f++) {
				if (json_is_true(json_object_get(a, flags[f]))) {
					rwd_error_where(err, NULL, where);
					return rwd_errorf(err, RWD_E_UNSUPPORTED, "added tokens with %s are not supported", flags[f]);
				}
			}
			if ((rc = special_put(t, json_string_value(c), json_string_length(c),
					(int32_t)json_integer_value(id), err))) {
				rwd_error_where(err, NULL, where);
				return rc;
			}
		}
	}
	const json_t *pp = json_object_get(root, "post_processor");
	if (pp && !json_is_null(pp)) {
		const char *ty = json_string_value(json_object_get(pp, "type"));
		if (ty && strcmp(ty, "BertProcessing") == 0) {
			if ((rc = pair_id(json_object_get(pp, "cls"), &t->cls, err, "post_processor.cls")) ||
				(rc = pair_id(json_object_get(pp, "sep"), &t->sep, err, "post_processor.sep")))
				return rc;
		} else if (ty && strcmp(ty, "TemplateProcessing") == 0) {
			if ((rc = template_ids(t, pp, err)))
				return rc;
		} else {
			rwd_error_where(err, NULL, "post_processor.type");
			return rwd_errorf(err, RWD_E_UNSUPPORTED, "only BertProcessing and TemplateProcessing are supported");
		}
		if (t->cls > t->max_id)
			t->max_id = t->cls;
		if (t->sep > t->max_id)
			t->max_id = t->sep;
	}
	const json_t *pad = json_object_get(json_object_get(root, "padding"), "pad_id");
	if (json_is_integer(pad) && json_integer_value(pad) >= 0 && json_integer_value(pad) <= (1 << 24))
		t->pad = (int32_t)json_integer_value(pad);
	return finish(t, unk, err);
}

int rwd_wordpiece_load_json_bytes(const char *data, size_t len, const char *name,
	const rwd_wordpiece_params *params, rwd_wordpiece **out, rwd_error *err)
{
	*out = NULL;
	int rc;
	json_t *root = NULL;
	rwd_wordpiece *t = wp_new(params);
	if (!t)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	if (len > t->lim.max_file_bytes) {
		rc = rwd_errorf(err, RWD_E_LIMIT, "%zu bytes exceed the limit of %zu", len, t->lim.max_file_bytes);
		goto fail;
	}
	json_error_t je;
	root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		rc = rwd_errorf(err, RWD_E_FORMAT, "%s", je.text);
		rwd_error_at(err, je.line, je.column, je.position);
		goto fail;
	}
	if (!json_is_object(root)) {
		rc = rwd_errorf(err, RWD_E_INVALID, "a tokenizer.json must be an object");
		goto fail;
	}
	if ((rc = load_json_obj(t, root, err)))
		goto fail;
	json_decref(root);
	*out = t;
	return 0;
fail:
	rwd_error_where(err, name, NULL);
	json_decref(root);
	rwd_wordpiece_free(t);
	return rc;
}

int rwd_wordpiece_load_json(const char *path, const rwd_wordpiece_params *params,
	rwd_wordpiece **out, rwd_error *err)
{
	rwd_wordpiece_params p = params ? *params : rwd_wordpiece_default_params();
	char *buf;
	size_t len;
	*out = NULL;
	int rc = read_file(path, p.max_file_bytes, &buf, &len, err);
	if (rc)
		return rc;
	rc = rwd_wordpiece_load_json_bytes(buf, len, path, &p, out, err);
	free(buf);
	return rc;
}

int rwd_wordpiece_load_dir(const char *dir, const rwd_wordpiece_params *params,
	rwd_wordpiece **out, rwd_error *err)
{
	char path[4096];
	struct stat st;
	*out = NULL;
	if ((size_t)snprintf(path, sizeof(path), "%s/tokenizer.json", dir) >= sizeof(path))
		return rwd_errorf(err, RWD_E_INVALID, "path too long");
	if (stat(path, &st) == 0)
		return rwd_wordpiece_load_json(path, params, out, err);
	snprintf(path, sizeof(path), "%s/vocab.txt", dir);
	if (stat(path, &st) == 0)
		return rwd_wordpiece_load_vocab(path, params, out, err);
	rwd_error_where(err, dir, NULL);
	return rwd_errorf(err, RWD_E_NOTFOUND, "no tokenizer.json or vocab.txt");
}

int rwd_wordpiece_add_special(rwd_wordpiece *t, const char *content, int32_t *id, rwd_error *err)
{
	int32_t i = rwd_wordpiece_token_to_id(t, content);
	if (i < 0) {
		if (t->max_id >= (1 << 24))
			return rwd_errorf(err, RWD_E_LIMIT, "no id left");
		i = t->max_id + 1;
	}
	int rc = special_put(t, content, strlen(content), i, err);
	if (rc)
		return rc;
	if (id)
		*id = i;
	return 0;
}

int32_t rwd_wordpiece_token_to_id(const rwd_wordpiece *t, const char *token)
{
	size_t n = strlen(token);
	for (size_t i = 0; i < t->n_sp; i++)
		if (t->sp[i].len == n && memcmp(t->sp[i].s, token, n) == 0)
			return t->sp[i].id;
	return vocab_find(t, token, n);
}

size_t rwd_wordpiece_vocab_size(const rwd_wordpiece *t)
{
	return (size_t)(t->max_id + 1);
}

int32_t rwd_wordpiece_pad_id(const rwd_wordpiece *t)
{
	return t->pad;
}

/* ---------------------------------------------------------------- encoding */

struct idbuf {
	int32_t *v;
	size_t n, cap;
	rwd_arena *a;
};

static int push(struct idbuf *b, int32_t id)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 64;
		int32_t *nv = rwd_arena_alloc(b->a, cap * sizeof(*nv));
		if (!nv)
			return RWD_E_NOMEM;
		if (b->n)
			memcpy(nv, b->v, b->n * sizeof(*nv));
		b->v = nv;
		b->cap = cap;
	}
	b->v[b->n++] = id;
	return 0;
}

/* WordPiece on one word of nc code points cps[0..nc). */
static int word_piece(const rwd_wordpiece *t, const int32_t *cps, size_t nc, char *scratch, size_t *off,
	struct idbuf *b)
{
	if (nc > t->max_chars)
		return push(b, t->unk);
	/* scratch holds prefix + the word's UTF-8; off[k] = byte offset of char k */
	char *w = scratch + t->prefix_len;
	memcpy(scratch, t->prefix, t->prefix_len);
	size_t bl = 0;
	for (size_t k = 0; k < nc; k++) {
		off[k] = bl;
		bl += utf8_enc(cps[k], w + bl);
	}
	off[nc] = bl;
	size_t first = b->n;
	size_t start = 0;
	while (start < nc) {
		int32_t found = -1;
		size_t end = nc;
		for (; end > start; end--) {
			const char *s = w + off[start];
			size_t n = off[end] - off[start];
			if (start > 0) {
				/* "##" + piece: the prefix sits just before the piece */
				char *p = w + off[start] - t->prefix_len;
				char saved[32];
				memcpy(saved, p, t->prefix_len);
				memcpy(p, t->prefix, t->prefix_len);
				found = vocab_find(t, p, n + t->prefix_len);
				memcpy(p, saved, t->prefix_len);
			} else {
				found = vocab_find(t, s, n);
			}
			if (found >= 0)
				break;
		}
		if (found < 0) {
			b->n = first;
			return push(b, t->unk);
		}
		int rc = push(b, found);
		if (rc)
			return rc;
		start = end;
	}
	return 0;
}

/* Normalise and tokenise one piece of raw text between special tokens. */
static int encode_piece(const rwd_wordpiece *t, const char *s, size_t n, rwd_arena *a, struct idbuf *b)
{
	if (n == 0)
		return 0;
	/* 1. clean_text and chinese chars, to UTF-8 (<= 3 chars per input byte) */
	char *u = rwd_arena_alloc(a, 3 * n + 8);
	if (!u)
		return RWD_E_NOMEM;
	size_t ul = 0;
	for (size_t i = 0; i < n;) {
		utf8proc_int32_t c;
		utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &c);
		i += (size_t)l;
		if (t->clean_text) {
			if (c == 0 || c == 0xFFFD || is_control(c))
				continue;
			if (is_white_space(c))
				c = ' ';
		}
		if (t->chinese && is_chinese(c)) {
			u[ul++] = ' ';
			ul += utf8_enc(c, u + ul);
			u[ul++] = ' ';
		} else {
			ul += utf8_enc(c, u + ul);
		}
	}
	/* 2. NFD + drop Mn (strip_accents), lowercase; into code points */
	int32_t *cp;
	size_t nc = 0;
	if (t->strip_accents) {
		size_t cap = ul + 16;
		for (;;) {
			cp = rwd_arena_alloc(a, cap * sizeof(*cp));
			if (!cp)
				return RWD_E_NOMEM;
			utf8proc_ssize_t r = utf8proc_decompose((const utf8proc_uint8_t *)u, (utf8proc_ssize_t)ul,
				cp, (utf8proc_ssize_t)cap, UTF8PROC_DECOMPOSE);
			if (r < 0)
				return RWD_E_INVALID;
			if ((size_t)r <= cap) {
				nc = (size_t)r;
				break;
			}
			cap = (size_t)r;
		}
		size_t k = 0;
		for (size_t i = 0; i < nc; i++)
			if (!is_mn(cp[i]))
				cp[k++] = cp[i];
		nc = k;
	} else {
		cp = rwd_arena_alloc(a, (ul + 1) * sizeof(*cp));
		if (!cp)
			return RWD_E_NOMEM;
		for (size_t i = 0; i < ul;) {
			utf8proc_int32_t c;
			i += (size_t)utf8proc_iterate((const utf8proc_uint8_t *)u + i, (utf8proc_ssize_t)(ul - i), &c);
			cp[nc++] = c;
		}
	}
	if (t->lowercase) {
		size_t extra = 0;
		for (size_t i = 0; i < nc; i++)
			extra += cp[i] == 0x130;
		if (extra) {
			int32_t *w = rwd_arena_alloc(a, (nc + extra) * sizeof(*w));
			if (!w)
				return RWD_E_NOMEM;
			size_t k = 0;
			for (size_t i = 0; i < nc; i++) {
				if (cp[i] == 0x130) {
					/* the one unconditional multi-char lowercase (SpecialCasing) */
					w[k++] = 'i';
					w[k++] = 0x307;
				} else {
					w[k++] = cp[i];
				}
			}
			cp = w;
			nc = k;
		}
		for (size_t i = 0; i < nc; i++)
			cp[i] = cp[i] < 0x80 ? (cp[i] >= 'A' && cp[i] <= 'Z' ? cp[i] + 32 : cp[i]) : utf8proc_tolower(cp[i]);
	}
	/* 3. words: whitespace splits, punctuation isolated; 4. WordPiece */
	size_t longest = 0, run = 0;
	for (size_t i = 0; i < nc; i++) {
		run = is_white_space(cp[i]) || is_punct(cp[i]) ? 0 : run + 1;
		if (run > longest)
			longest = run;
	}
	if (longest > t->max_chars)
		longest = t->max_chars;
	if (longest == 0)
		longest = 1;
	char *scratch = rwd_arena_alloc(a, t->prefix_len + 4 * longest + 8);
	size_t *off = rwd_arena_alloc(a, (longest + 1) * sizeof(size_t));
	if (!scratch || !off)
		return RWD_E_NOMEM;
	size_t ws = 0;
	for (size_t i = 0; i <= nc; i++) {
		bool end = i == nc || is_white_space(cp[i]);
		bool pu = !end && is_punct(cp[i]);
		if (end || pu) {
			if (i > ws) {
				int rc = word_piece(t, cp + ws, i - ws, scratch, off, b);
				if (rc)
					return rc;
			}
			if (pu) {
				int rc = word_piece(t, cp + i, 1, scratch, off, b);
				if (rc)
					return rc;
			}
			ws = i + 1;
		}
	}
	return 0;
}

int rwd_wordpiece_encode(const rwd_wordpiece *t, const char *text, size_t len,
	const rwd_wordpiece_encode_params *p, rwd_arena *arena, rwd_wordpiece_ids *out, rwd_error *err)
{
	rwd_wordpiece_encode_params dp = rwd_wordpiece_encode_default_params();
	if (!p)
		p = &dp;
	memset(out, 0, sizeof(*out));
	if (!utf8_valid(text, len))
		return rwd_errorf(err, RWD_E_INVALID, "text is not valid UTF-8");
	bool specials = p->add_special_tokens && t->cls >= 0 && t->sep >= 0;
	size_t n_spec = specials ? 2 : 0;
	if (p->max_length && p->max_length < n_spec)
		return rwd_errorf(err, RWD_E_INVALID, "max_length %zu is below the %zu special tokens", p->max_length, n_spec);
	if (p->pad_to_max_length && (!p->max_length || t->pad < 0))
		return rwd_errorf(err, RWD_E_INVALID, "padding needs max_length and a [PAD] token");
	struct idbuf b = { .a = arena };
	int rc = 0;
	if (specials && (rc = push(&b, t->cls)))
		goto fail;
	size_t seg = 0;
	for (size_t i = 0; i < len;) {
		/* leftmost-longest special token at i */
		size_t best = 0;
		int32_t bid = -1;
		for (size_t k = 0; k < t->n_sp; k++) {
			const struct special *sp = &t->sp[k];
			if (sp->len > best && sp->len <= len - i && sp->s[0] == text[i] && memcmp(sp->s, text + i, sp->len) == 0) {
				best = sp->len;
				bid = sp->id;
			}
		}
		if (!best) {
			i++;
			continue;
		}
		if ((rc = encode_piece(t, text + seg, i - seg, arena, &b)) || (rc = push(&b, bid)))
			goto fail;
		i += best;
		seg = i;
	}
	if ((rc = encode_piece(t, text + seg, len - seg, arena, &b)))
		goto fail;
	if (specials && (rc = push(&b, t->sep)))
		goto fail;
	out->n_full = b.n;
	if (p->max_length && b.n > p->max_length) {
		if (specials)
			b.v[p->max_length - 1] = t->sep;
		b.n = p->max_length;
	}
	out->n = b.n;
	if (p->pad_to_max_length)
		while (b.n < p->max_length)
			if ((rc = push(&b, t->pad)))
				goto fail;
	out->ids = b.v;
	out->n_total = b.n;
	return 0;
fail:
	memset(out, 0, sizeof(*out));
	if (rc == RWD_E_NOMEM)
		return rwd_errorf(err, rwd_arena_over_limit(arena) ? RWD_E_LIMIT : RWD_E_NOMEM,
			"tokenizer arena exhausted");
	return rwd_errorf(err, rc, "encoding failed");
}
