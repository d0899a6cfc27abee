/*
 * text/chat.c — chat templates: the known ones recognised by canonical form
 * and rendered by hand (fast path), any other rendered by text/jinja; see
 * chat.h.
 */
#include "text/chat.h"
#include "text/jinja.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define CONFIG_MAX_BYTES (8u << 20)
#define TEMPLATE_MAX_BYTES (1u << 20)
#define TEXT_MAX 4096 /* default system prompt, bos token */

struct rwd_chat_template {
	rwd_chat_format format;
	char *default_system; /* QWEN2 / QWEN25 */
	size_t default_system_len;
	char *bos;            /* LLAMA*; JINJA: NULL when the tokenizer has none */
	size_t bos_len;
	char *eos;            /* JINJA: NULL when the tokenizer has none */
	rwd_jinja *engine;    /* JINJA */
};

/*
 * The real templates, by the hash of their canonical form (see canon_lex).
 * The texts themselves are test data (tests/data/chat_templates/, with
 * their sources); tests/parity/test_chat_templates.py checks that each is
 * recognised as the format here and renders as Jinja2 renders it.
 */
static const struct known_template {
	uint64_t hash;
	rwd_chat_format format;
	const char *what;
} KNOWN[] = {
	{ 0x0a0643992d73b813ULL, RWD_CHAT_QWEN2, "Qwen2-Instruct" },
	{ 0x0ef67620a92b4d64ULL, RWD_CHAT_QWEN25, "Qwen2.5 (Instruct and base)" },
	{ 0xe61d181f29ae76fdULL, RWD_CHAT_QWEN3, "Qwen3 (first release)" },
	{ 0x45715f7a9cfbe2a3ULL, RWD_CHAT_QWEN3, "Qwen3 (string-content revision)" },
	{ 0x2b688419638db3f3ULL, RWD_CHAT_LLAMA3, "Meta-Llama-3-Instruct" },
	{ 0x08eea73b5a35f0b8ULL, RWD_CHAT_LLAMA31, "Llama-3.1-Instruct" },
	{ 0x39f9375fbede1b2eULL, RWD_CHAT_LLAMA32, "Llama-3.2-Instruct" },
};

/* ------------------------------------------------------- canonical form */

struct cbuf {
	char *p;
	size_t n, cap;
	bool oom;
};

static void cb_put(struct cbuf *b, const void *s, size_t n)
{
	if (b->oom)
		return;
	if (b->n + n + 1 > b->cap) {
		size_t nc = b->cap ? b->cap : 1024;
		while (nc < b->n + n + 1)
			nc *= 2;
		char *np = realloc(b->p, nc);
		if (!np) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static void cb_putc(struct cbuf *b, char c)
{
	cb_put(b, &c, 1);
}

/* A length-prefixed record, so no two token sequences print the same. */
static void cb_rec(struct cbuf *b, char tag, const char *s, size_t n)
{
	char head[32];
	int k = snprintf(head, sizeof(head), "%c%zu:", tag, n);
	cb_put(b, head, (size_t)k);
	cb_put(b, s, n);
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static bool is_word(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

struct lexer {
	const char *s;
	size_t n;
	bool collect;      /* pass 1: only look for the default system prompt */
	char *sys;         /* decoded default system prompt, or NULL */
	size_t sys_len;
	struct cbuf out;   /* pass 2: the canonical form */
	struct cbuf lit;   /* scratch: one decoded string literal */
};

/*
 * Decode a Jinja string literal body as Jinja does for the escapes real
 * templates use (\n \t \r \\ \' \"). Any other escape is kept verbatim
 * with a marker byte, so it can only match a template that has it too.
 */
static void decode_literal(struct lexer *L, const char *b, size_t n)
{
	L->lit.n = 0;
	cb_put(&L->lit, "", 0);
	for (size_t i = 0; i < n; i++) {
		char c = b[i];
		if (c == '\\' && i + 1 < n) {
			char e = b[++i];
			switch (e) {
			case 'n': cb_putc(&L->lit, '\n'); break;
			case 't': cb_putc(&L->lit, '\t'); break;
			case 'r': cb_putc(&L->lit, '\r'); break;
			case '\\': case '\'': case '"': cb_putc(&L->lit, e); break;
			default:
				cb_putc(&L->lit, '\x7f');
				cb_putc(&L->lit, '\\');
				cb_putc(&L->lit, e);
			}
		} else {
			cb_putc(&L->lit, c);
		}
	}
}

static const char SYS_HEAD[] = "<|im_start|>system\n";
static const char SYS_TAIL[] = "<|im_end|>\n";

/* Pass 1: `'<|im_start|>system\n{S}<|im_end|>\n'` with a plain S. */
static int find_system(struct lexer *L)
{
	const char *v = L->lit.p;
	size_t n = L->lit.n, hl = strlen(SYS_HEAD), tl = strlen(SYS_TAIL);
	if (L->sys || n <= hl + tl || memcmp(v, SYS_HEAD, hl) != 0 || memcmp(v + n - tl, SYS_TAIL, tl) != 0)
		return 0;
	const char *b = v + hl;
	size_t bn = n - hl - tl;
	if (memmem(b, bn, "<|", 2) || memchr(b, '\x7f', bn))
		return 0;
	if (bn > TEXT_MAX)
		return RWD_E_LIMIT;
	if (!(L->sys = malloc(bn + 1)))
		return RWD_E_NOMEM;
	memcpy(L->sys, b, bn);
	L->sys[bn] = '\0';
	L->sys_len = bn;
	return 0;
}

static void emit_literal(struct lexer *L)
{
	const char *v = L->lit.p;
	size_t n = L->lit.n, hl = strlen(SYS_HEAD), tl = strlen(SYS_TAIL);
	if (L->sys && n == L->sys_len && memcmp(v, L->sys, n) == 0) {
		cb_putc(&L->out, 'P');
		return;
	}
	if (L->sys && n == hl + L->sys_len + tl && memcmp(v, SYS_HEAD, hl) == 0 &&
	    memcmp(v + hl, L->sys, L->sys_len) == 0 && memcmp(v + hl + L->sys_len, SYS_TAIL, tl) == 0) {
		cb_putc(&L->out, 'Q');
		return;
	}
	cb_rec(&L->out, 'S', v, n);
}

/* End of a string literal starting at s[p] (a quote), or n if unclosed. */
static size_t literal_end(const char *s, size_t n, size_t p)
{
	char q = s[p];
	size_t i = p + 1;
	while (i < n && s[i] != q)
		i += s[i] == '\\' ? 2 : 1;
	return i < n ? i : n;
}

static bool plain_ident(const char *v, size_t n)
{
	if (!n || (v[0] >= '0' && v[0] <= '9'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_word(v[i]))
			return false;
	return true;
}

/*
 * The tokens of one {{ }} or {% %} tag from s[p]; *pos is set after the end
 * marker and the whitespace it consumes. prev: 'w' after a word, 's' after
 * `]` or `)` (both may be subscripted), 0 otherwise.
 */
static int lex_tag(struct lexer *L, char kind, size_t p, size_t *pos)
{
	const char *s = L->s;
	size_t n = L->n;
	int balance = 0;
	char prev = 0;
	if (!L->collect)
		cb_rec(&L->out, 'T', kind == '{' ? "{{" : "{%", 2);
	for (;;) {
		while (p < n && is_ws(s[p]))
			p++;
		if (p >= n)
			return RWD_E_FORMAT;
		if (balance == 0) {
			const char *close = kind == '%' ? "%}" : "}}";
			size_t e = 0;
			bool strip = false, trim = false;
			if (s[p] == '-' && p + 2 < n && memcmp(s + p + 1, close, 2) == 0)
				e = p + 3, strip = true;
			else if (kind == '%' && s[p] == '+' && p + 2 < n && memcmp(s + p + 1, close, 2) == 0)
				e = p + 3;
			else if (p + 1 < n && memcmp(s + p, close, 2) == 0)
				e = p + 2, trim = kind == '%';
			if (e) {
				if (strip)
					while (e < n && is_ws(s[e]))
						e++;
				else if (trim && e < n && s[e] == '\n')
					e++; /* trim_blocks */
				*pos = e;
				if (!L->collect)
					cb_putc(&L->out, 'E');
				return 0;
			}
		}
		char c = s[p];
		if (c == '\'' || c == '"') {
			size_t e = literal_end(s, n, p);
			if (e >= n)
				return RWD_E_FORMAT;
			decode_literal(L, s + p + 1, e - p - 1);
			if (L->lit.oom)
				return RWD_E_NOMEM;
			if (L->collect) {
				int rc = find_system(L);
				if (rc)
					return rc;
			} else {
				emit_literal(L);
			}
			p = e + 1;
			prev = 0;
			continue;
		}
		if (c == '[' && prev) {
			/* x['k'] is x.k for the dicts a chat template reads */
			size_t q = p + 1;
			while (q < n && is_ws(s[q]))
				q++;
			if (q < n && (s[q] == '\'' || s[q] == '"')) {
				size_t e = literal_end(s, n, q);
				size_t r = e + 1;
				while (r < n && is_ws(s[r]))
					r++;
				if (e < n && r < n && s[r] == ']' && plain_ident(s + q + 1, e - q - 1)) {
					if (!L->collect) {
						cb_putc(&L->out, '.');
						cb_put(&L->out, s + q + 1, e - q - 1);
					}
					p = r + 1;
					prev = 's';
					continue;
				}
			}
		}
		if (is_word(c)) {
			size_t e = p;
			while (e < n && is_word(s[e]))
				e++;
			if (!L->collect) {
				if (prev == 'w')
					cb_putc(&L->out, ' ');
				cb_put(&L->out, s + p, e - p);
			}
			p = e;
			prev = 'w';
			continue;
		}
		if (c == '(' || c == '[' || c == '{')
			balance++;
		else if ((c == ')' || c == ']' || c == '}') && balance > 0)
			balance--;
		if (!L->collect)
			cb_putc(&L->out, c);
		prev = (c == ')' || c == ']') ? 's' : 0;
		p++;
	}
}

/*
 * One pass over the template with transformers' Jinja settings
 * (trim_blocks, lstrip_blocks, keep_trailing_newline false).
 */
static int canon_lex(struct lexer *L)
{
	const char *s = L->s;
	size_t n = L->n, pos = 0;
	for (;;) {
		size_t t = pos;
		char kind = 0;
		for (; t + 1 < n; t++)
			if (s[t] == '{' && (s[t + 1] == '{' || s[t + 1] == '%' || s[t + 1] == '#')) {
				kind = s[t + 1];
				break;
			}
		if (!kind)
			t = n;
		size_t de = t;
		char mark = kind && t + 2 < n ? s[t + 2] : 0;
		if (kind && mark == '-') {
			while (de > pos && is_ws(s[de - 1]))
				de--;
		} else if (kind && mark != '+' && kind != '{') {
			/* lstrip_blocks: blanks from the line start up to a block or comment tag */
			size_t l = de;
			while (l > pos && s[l - 1] != '\n')
				l--;
			bool line_start = l > pos || pos == 0 || s[pos - 1] == '\n';
			size_t k = l;
			while (k < de && is_ws(s[k]) && s[k] != '\n')
				k++;
			if (line_start && k == de && de > l)
				de = l;
		}
		if (de > pos && !L->collect)
			cb_rec(&L->out, 'D', s + pos, de - pos);
		if (!kind)
			return 0;
		size_t p = t + 2;
		if (p < n && (s[p] == '-' || s[p] == '+'))
			p++;
		if (kind == '#') {
			const char *e = p < n ? memmem(s + p, n - p, "#}", 2) : NULL;
			if (!e)
				return RWD_E_FORMAT;
			size_t ce = (size_t)(e - s);
			char pre = ce > p ? s[ce - 1] : 0;
			pos = ce + 2;
			if (pre == '-')
				while (pos < n && is_ws(s[pos]))
					pos++;
			else if (pre != '+' && pos < n && s[pos] == '\n')
				pos++;
			continue;
		}
		int rc = lex_tag(L, kind, p, &pos);
		if (rc)
			return rc;
	}
}

static uint64_t fnv1a64(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* Canonical hash; on success *sys is the default system prompt (malloc) or NULL. */
static int canon_hash(const char *tpl, uint64_t *hash, char **sys, size_t *sys_len, rwd_error *err)
{
	size_t n = strlen(tpl);
	*sys = NULL;
	*sys_len = 0;
	if (n > TEMPLATE_MAX_BYTES)
		return rwd_errorf(err, RWD_E_LIMIT, "chat template longer than %u bytes", TEMPLATE_MAX_BYTES);
	/* Jinja turns every \r\n and \r of the source into \n before lexing */
	char *src = malloc(n + 1);
	if (!src)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	size_t w = 0;
	for (size_t i = 0; i < n; i++) {
		if (tpl[i] == '\r' && i + 1 < n && tpl[i + 1] == '\n')
			continue;
		src[w++] = tpl[i] == '\r' ? '\n' : tpl[i];
	}
	n = w;
	if (n && src[n - 1] == '\n')
		n--; /* keep_trailing_newline = False */
	struct lexer L = { .s = src, .n = n, .collect = true };
	int rc = canon_lex(&L);
	if (!rc) {
		L.collect = false;
		rc = canon_lex(&L);
	}
	if (!rc && (L.out.oom || L.lit.oom))
		rc = RWD_E_NOMEM;
	if (!rc)
		*hash = fnv1a64(L.out.p ? L.out.p : "", L.out.n);
	free(L.out.p);
	free(L.lit.p);
	free(src);
	if (rc) {
		free(L.sys);
		if (rc == RWD_E_FORMAT)
			return rwd_errorf(err, rc, "chat template has a tag or string literal that is not closed");
		if (rc == RWD_E_LIMIT)
			return rwd_errorf(err, rc, "default system prompt longer than %u bytes", TEXT_MAX);
		return rwd_errorf(err, rc, "out of memory");
	}
	*sys = L.sys;
	*sys_len = L.sys_len;
	return 0;
}

int rwd_chat_template_hash(const char *tpl, uint64_t *hash, rwd_error *err)
{
	char *sys;
	size_t sys_len;
	int rc = canon_hash(tpl, hash, &sys, &sys_len, err);
	free(sys);
	return rc;
}

/* ------------------------------------------------------------ templates */

void rwd_chat_template_free(rwd_chat_template *t)
{
	if (!t)
		return;
	free(t->default_system);
	free(t->bos);
	free(t->eos);
	rwd_jinja_free(t->engine);
	free(t);
}

const char *rwd_chat_format_name(rwd_chat_format f)
{
	switch (f) {
	case RWD_CHAT_QWEN2: return "qwen2";
	case RWD_CHAT_QWEN25: return "qwen2.5";
	case RWD_CHAT_QWEN3: return "qwen3";
	case RWD_CHAT_LLAMA3: return "llama3";
	case RWD_CHAT_LLAMA31: return "llama3.1";
	case RWD_CHAT_LLAMA32: return "llama3.2";
	case RWD_CHAT_JINJA: return "jinja";
	}
	return "?";
}

/* Any other template: compiled by text/jinja (errors name the line and construct). */
static int compile_engine(const char *tpl, const char *bos_token, const char *eos_token, rwd_chat_template **out,
	rwd_error *err)
{
	rwd_chat_template *t = NULL;
	rwd_jinja *j = NULL;
	size_t n = strlen(tpl), i = 0;
	while (i < n && (tpl[i] == ' ' || tpl[i] == '\t' || tpl[i] == '\n' || tpl[i] == '\r'))
		i++;
	if (i == n)
		return rwd_errorf(err, RWD_E_INVALID, "chat template is empty");
	if ((bos_token && strlen(bos_token) > TEXT_MAX) || (eos_token && strlen(eos_token) > TEXT_MAX))
		return rwd_errorf(err, RWD_E_LIMIT, "bos_token or eos_token longer than %u bytes", TEXT_MAX);
	int rc = rwd_jinja_compile(tpl, n, NULL, &j, err);
	if (rc)
		return rc;
	if (!(t = calloc(1, sizeof(*t))) || (bos_token && !(t->bos = strdup(bos_token))) ||
	    (eos_token && !(t->eos = strdup(eos_token)))) {
		rwd_jinja_free(j);
		rwd_chat_template_free(t);
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	}
	t->format = RWD_CHAT_JINJA;
	t->engine = j;
	t->bos_len = bos_token ? strlen(bos_token) : 0;
	*out = t;
	return 0;
}

int rwd_chat_template_create(const char *tpl, const char *bos_token, const char *eos_token,
	rwd_chat_template **out, rwd_error *err)
{
	*out = NULL;
	if (!tpl)
		return rwd_errorf(err, RWD_E_INVALID, "no chat template");
	uint64_t h;
	char *sys;
	size_t sys_len;
	int rc = canon_hash(tpl, &h, &sys, &sys_len, err);
	const struct known_template *k = NULL;
	for (size_t i = 0; !rc && i < sizeof(KNOWN) / sizeof(KNOWN[0]); i++)
		if (KNOWN[i].hash == h)
			k = &KNOWN[i];
	bool llama = k && (k->format == RWD_CHAT_LLAMA3 || k->format == RWD_CHAT_LLAMA31 || k->format == RWD_CHAT_LLAMA32);
	if (rc || !k || (llama && (!bos_token || !*bos_token || strlen(bos_token) > TEXT_MAX))) {
		/* not a known template (or one whose canonical form we cannot take): the engine */
		if (!rc)
			free(sys);
		rwd_error_clear(err);
		return compile_engine(tpl, bos_token, eos_token, out, err);
	}
	rwd_chat_template *t = NULL;
	if (!(t = calloc(1, sizeof(*t)))) {
		rc = rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		goto fail;
	}
	t->format = k->format;
	if (k->format == RWD_CHAT_QWEN2 || k->format == RWD_CHAT_QWEN25) {
		t->default_system = sys;
		t->default_system_len = sys_len;
		sys = NULL;
	}
	if ((bos_token && !(t->bos = strdup(bos_token))) || (eos_token && !(t->eos = strdup(eos_token)))) {
		rc = rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		goto fail;
	}
	t->bos_len = bos_token ? strlen(bos_token) : 0;
	/*
	 * The engine too, for conversations the fast path does not take (tool
	 * calls, null or list content, Llama-3.1/3.2 tool turns). A real
	 * template always compiles; if not, those conversations stay refused.
	 */
	rwd_error jerr;
	rwd_error_clear(&jerr);
	if (rwd_jinja_compile(tpl, strlen(tpl), NULL, &t->engine, &jerr))
		t->engine = NULL;
	free(sys);
	*out = t;
	return 0;
fail:
	free(sys);
	rwd_chat_template_free(t);
	return rc;
}

int rwd_chat_template_recognize(const char *tpl, const char *bos_token, rwd_chat_template **out,
	rwd_error *err)
{
	return rwd_chat_template_create(tpl, bos_token, NULL, out, err);
}

rwd_chat_format rwd_chat_template_format(const rwd_chat_template *t)
{
	return t->format;
}

const char *rwd_chat_template_default_system(const rwd_chat_template *t)
{
	return t->default_system;
}

static int load_json_file(const char *path, json_t **out, rwd_error *err)
{
	struct stat st;
	*out = NULL;
	if (stat(path, &st) != 0) {
		int code = errno == ENOENT ? RWD_E_NOTFOUND : RWD_E_IO;
		rwd_errorf(err, code, "cannot open: %s", strerror(errno));
		rwd_error_where(err, path, NULL);
		return code;
	}
	if ((uint64_t)st.st_size > CONFIG_MAX_BYTES) {
		rwd_errorf(err, RWD_E_LIMIT, "file larger than %u bytes", CONFIG_MAX_BYTES);
		rwd_error_where(err, path, NULL);
		return RWD_E_LIMIT;
	}
	json_error_t je;
	*out = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!*out) {
		rwd_errorf(err, RWD_E_FORMAT, "invalid JSON: %s", je.text);
		rwd_error_where(err, path, NULL);
		rwd_error_at(err, je.line, je.column, je.position);
		return RWD_E_FORMAT;
	}
	return 0;
}

/* bos_token / eos_token: "..." or {"content": "..."} (the AddedToken form) or null. */
static const char *config_token(json_t *cfg, const char *key)
{
	json_t *b = json_object_get(cfg, key);
	if (json_is_object(b))
		b = json_object_get(b, "content");
	return json_is_string(b) ? json_string_value(b) : NULL;
}

static int recognize_in(const char *path, json_t *cfg, const char *tpl_override,
	rwd_chat_template **out, rwd_error *err)
{
	const char *tpl = tpl_override;
	if (!tpl) {
		json_t *ct = json_object_get(cfg, "chat_template");
		if (json_is_array(ct)) {
			json_t *it, *found = NULL;
			size_t i;
			json_array_foreach(ct, i, it) {
				json_t *name = json_object_get(it, "name");
				if (json_is_string(name) && strcmp(json_string_value(name), "default") == 0)
					found = json_object_get(it, "template");
			}
			ct = found;
		}
		if (!json_is_string(ct)) {
			rwd_errorf(err, RWD_E_NOTFOUND, "no chat_template (a string, or a list with a \"default\" entry)");
			rwd_error_where(err, path, "chat_template");
			return RWD_E_NOTFOUND;
		}
		if (strlen(json_string_value(ct)) != json_string_length(ct)) {
			rwd_errorf(err, RWD_E_INVALID, "chat_template contains a NUL character");
			rwd_error_where(err, path, "chat_template");
			return RWD_E_INVALID;
		}
		tpl = json_string_value(ct);
	}
	int rc = rwd_chat_template_create(tpl, cfg ? config_token(cfg, "bos_token") : NULL,
		cfg ? config_token(cfg, "eos_token") : NULL, out, err);
	if (rc)
		rwd_error_where(err, path, "chat_template");
	return rc;
}

int rwd_chat_template_load_config(const char *path, rwd_chat_template **out, rwd_error *err)
{
	json_t *cfg;
	*out = NULL;
	int rc = load_json_file(path, &cfg, err);
	if (rc)
		return rc;
	rc = recognize_in(path, cfg, NULL, out, err);
	json_decref(cfg);
	return rc;
}

int rwd_chat_template_load_dir(const char *dir, rwd_chat_template **out, rwd_error *err)
{
	char cpath[4096], jpath[4096];
	json_t *cfg = NULL;
	*out = NULL;
	if ((size_t)snprintf(cpath, sizeof(cpath), "%s/tokenizer_config.json", dir) >= sizeof(cpath) ||
	    (size_t)snprintf(jpath, sizeof(jpath), "%s/chat_template.jinja", dir) >= sizeof(jpath)) {
		rwd_errorf(err, RWD_E_LIMIT, "model folder path too long");
		return RWD_E_LIMIT;
	}
	int rc = load_json_file(cpath, &cfg, err);
	if (rc && rc != RWD_E_NOTFOUND)
		return rc;
	json_t *ct = cfg ? json_object_get(cfg, "chat_template") : NULL;
	if (ct && !json_is_null(ct)) {
		rc = recognize_in(cpath, cfg, NULL, out, err);
		json_decref(cfg);
		return rc;
	}
	FILE *f = fopen(jpath, "rb");
	if (!f) {
		json_decref(cfg);
		rwd_errorf(err, RWD_E_NOTFOUND, "no chat_template in tokenizer_config.json and no chat_template.jinja");
		rwd_error_where(err, dir, NULL);
		return RWD_E_NOTFOUND;
	}
	char *buf = malloc(TEMPLATE_MAX_BYTES + 1);
	size_t n = buf ? fread(buf, 1, TEMPLATE_MAX_BYTES + 1, f) : 0;
	fclose(f);
	if (!buf || n > TEMPLATE_MAX_BYTES || memchr(buf, '\0', n)) {
		rc = !buf ? RWD_E_NOMEM : n > TEMPLATE_MAX_BYTES ? RWD_E_LIMIT : RWD_E_INVALID;
		rwd_errorf(err, rc, "%s", !buf ? "out of memory" : n > TEMPLATE_MAX_BYTES ?
			"chat_template.jinja larger than 1 MiB" : "chat_template.jinja contains a NUL byte");
		rwd_error_where(err, jpath, NULL);
		free(buf);
		json_decref(cfg);
		return rc;
	}
	buf[n] = '\0';
	rc = recognize_in(jpath, cfg, buf, out, err);
	free(buf);
	json_decref(cfg);
	return rc;
}

/* --------------------------------------------------------------- render */

rwd_chat_params rwd_chat_default_params(void)
{
	return (rwd_chat_params){
		.add_generation_prompt = 0,
		.max_messages = 4096,
		.max_bytes = (size_t)64 << 20,
		.date_string = NULL,
	};
}

struct sbuf {
	rwd_arena *a;
	char *p;
	size_t n, cap, max;
	int rc;
};

static void put(struct sbuf *b, const char *s, size_t n)
{
	if (b->rc)
		return;
	if (n > b->max || b->n > b->max - n) {
		b->rc = RWD_E_LIMIT;
		return;
	}
	if (b->n + n + 1 > b->cap) {
		size_t nc = b->cap ? b->cap : 256;
		while (nc < b->n + n + 1)
			nc *= 2;
		char *np = rwd_arena_alloc(b->a, nc);
		if (!np) {
			b->rc = rwd_arena_over_limit(b->a) ? RWD_E_LIMIT : RWD_E_NOMEM;
			return;
		}
		if (b->n)
			memcpy(np, b->p, b->n);
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static void puts_(struct sbuf *b, const char *s)
{
	put(b, s, strlen(s));
}

static bool role_is(const rwd_chat_message *m, const char *r)
{
	return m->role_len == strlen(r) && memcmp(m->role, r, m->role_len) == 0;
}

struct sl {
	const char *p;
	size_t n;
};

static struct sl lstrip_nl(struct sl s)
{
	while (s.n && s.p[0] == '\n')
		s.p++, s.n--;
	return s;
}

static struct sl rstrip_nl(struct sl s)
{
	while (s.n && s.p[s.n - 1] == '\n')
		s.n--;
	return s;
}

static const char *memmem_last(const char *h, size_t hn, const char *nd, size_t nn)
{
	const char *last = NULL;
	for (const char *p = memmem(h, hn, nd, nn); p; p = memmem(p + 1, hn - (size_t)(p + 1 - h), nd, nn))
		last = p;
	return last;
}

/* Length of the code point at s if Python's str.isspace() holds for it, else 0. */
static size_t py_space_len(const unsigned char *s, size_t n)
{
	if (s[0] == ' ' || (s[0] >= 0x09 && s[0] <= 0x0D) || (s[0] >= 0x1C && s[0] <= 0x1F))
		return 1;
	if (n >= 2 && s[0] == 0xC2 && (s[1] == 0x85 || s[1] == 0xA0))
		return 2;
	if (n >= 3 && s[0] == 0xE1 && s[1] == 0x9A && s[2] == 0x80)
		return 3; /* U+1680 */
	if (n >= 3 && s[0] == 0xE2 && s[1] == 0x80 &&
	    ((s[2] >= 0x80 && s[2] <= 0x8A) || s[2] == 0xA8 || s[2] == 0xA9 || s[2] == 0xAF))
		return 3; /* U+2000..200A, 2028, 2029, 202F */
	if (n >= 3 && s[0] == 0xE2 && s[1] == 0x81 && s[2] == 0x9F)
		return 3; /* U+205F */
	if (n >= 3 && s[0] == 0xE3 && s[1] == 0x80 && s[2] == 0x80)
		return 3; /* U+3000 */
	return 0;
}

/* Jinja's `| trim` is Python's str.strip(). */
static struct sl py_strip(struct sl s)
{
	size_t l;
	while (s.n && (l = py_space_len((const unsigned char *)s.p, s.n)))
		s.p += l, s.n -= l;
	while (s.n) {
		size_t st = s.n - 1;
		while (st > 0 && ((unsigned char)s.p[st] & 0xC0) == 0x80 && s.n - st < 4)
			st--;
		l = py_space_len((const unsigned char *)s.p + st, s.n - st);
		if (!l || l != s.n - st)
			break;
		s.n = st;
	}
	return s;
}

static int role_error(rwd_error *err, size_t i, const rwd_chat_template *t, const char *why)
{
	char obj[64];
	rwd_errorf(err, RWD_E_UNSUPPORTED, "%s with the %s chat template", why, rwd_chat_format_name(t->format));
	snprintf(obj, sizeof(obj), "messages[%zu].role", i);
	rwd_error_where(err, NULL, obj);
	return RWD_E_UNSUPPORTED;
}

static void chatml_turn(struct sbuf *b, const char *role, size_t role_len, struct sl content)
{
	puts_(b, "<|im_start|>");
	put(b, role, role_len);
	puts_(b, "\n");
	put(b, content.p, content.n);
	puts_(b, "<|im_end|>\n");
}

/* The tool-response grouping of the Qwen2.5 and Qwen3 templates. */
static void tool_turn(struct sbuf *b, const rwd_chat_message *m, size_t n, size_t i)
{
	if (i == 0 || !role_is(&m[i - 1], "tool"))
		puts_(b, "<|im_start|>user");
	puts_(b, "\n<tool_response>\n");
	put(b, m[i].content, m[i].content_len);
	puts_(b, "\n</tool_response>");
	if (i == n - 1 || !role_is(&m[i + 1], "tool"))
		puts_(b, "<|im_end|>\n");
}

static void render_qwen2(const rwd_chat_template *t, const rwd_chat_message *m, size_t n, struct sbuf *b)
{
	bool qwen25 = t->format == RWD_CHAT_QWEN25;
	if (role_is(&m[0], "system") && qwen25)
		chatml_turn(b, "system", 6, (struct sl){ m[0].content, m[0].content_len });
	else if (!role_is(&m[0], "system") && t->default_system)
		chatml_turn(b, "system", 6, (struct sl){ t->default_system, t->default_system_len });
	for (size_t i = 0; i < n; i++) {
		if (qwen25 && i == 0 && role_is(&m[0], "system"))
			continue;
		if (qwen25 && role_is(&m[i], "tool"))
			tool_turn(b, m, n, i);
		else
			chatml_turn(b, m[i].role, m[i].role_len, (struct sl){ m[i].content, m[i].content_len });
	}
}

static void render_qwen3(const rwd_chat_message *m, size_t n, struct sbuf *b)
{
	if (role_is(&m[0], "system"))
		chatml_turn(b, "system", 6, (struct sl){ m[0].content, m[0].content_len });
	/* the last user message that is not a wrapped tool response */
	size_t last_query = n - 1;
	static const char ts[] = "<tool_response>", te[] = "</tool_response>";
	for (size_t k = n; k-- > 0;) {
		const rwd_chat_message *x = &m[k];
		bool wrapped = x->content_len >= strlen(ts) && memcmp(x->content, ts, strlen(ts)) == 0 &&
			x->content_len >= strlen(te) &&
			memcmp(x->content + x->content_len - strlen(te), te, strlen(te)) == 0;
		if (role_is(x, "user") && !wrapped) {
			last_query = k;
			break;
		}
	}
	for (size_t i = 0; i < n; i++) {
		const rwd_chat_message *x = &m[i];
		struct sl content = { x->content, x->content_len };
		if (role_is(x, "user") || (role_is(x, "system") && i != 0)) {
			chatml_turn(b, x->role, x->role_len, content);
		} else if (role_is(x, "assistant")) {
			struct sl reasoning = { "", 0 };
			if (x->reasoning) {
				reasoning = (struct sl){ x->reasoning, x->reasoning_len };
			} else {
				const char *close = memmem(content.p, content.n, "</think>", 8);
				if (close) {
					/* content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') */
					struct sl before = rstrip_nl((struct sl){ content.p, (size_t)(close - content.p) });
					const char *open = memmem_last(before.p, before.n, "<think>", 7);
					if (open)
						before = (struct sl){ open + 7, before.n - (size_t)(open + 7 - before.p) };
					reasoning = lstrip_nl(before);
					/* content.split('</think>')[-1].lstrip('\n') */
					const char *lc = memmem_last(content.p, content.n, "</think>", 8);
					content = lstrip_nl((struct sl){ lc + 8, content.n - (size_t)(lc + 8 - content.p) });
				}
			}
			puts_(b, "<|im_start|>assistant\n");
			if (i > last_query && (i == n - 1 || reasoning.n)) {
				struct sl r = lstrip_nl(rstrip_nl(reasoning));
				puts_(b, "<think>\n");
				put(b, r.p, r.n);
				puts_(b, "\n</think>\n\n");
				content = lstrip_nl(content);
			}
			put(b, content.p, content.n);
			puts_(b, "<|im_end|>\n");
		} else if (role_is(x, "tool")) {
			tool_turn(b, m, n, i);
		}
	}
}

static const char *const MONTHS[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
	"Nov", "Dec" };

static void render_llama(const rwd_chat_template *t, const rwd_chat_message *m, size_t n,
	const rwd_chat_params *p, struct sbuf *b)
{
	put(b, t->bos, t->bos_len);
	size_t first = 0;
	if (t->format != RWD_CHAT_LLAMA3) {
		char date[32];
		const char *d = p->date_string;
		if (t->format == RWD_CHAT_LLAMA31) {
			d = "26 Jul 2024"; /* the template's own fallback: transformers passes no date_string */
		} else if (!d) {
			time_t now = time(NULL);
			struct tm tm;
			if (localtime_r(&now, &tm))
				snprintf(date, sizeof(date), "%02d %s %04d", tm.tm_mday, MONTHS[tm.tm_mon % 12],
					tm.tm_year + 1900);
			else
				snprintf(date, sizeof(date), "26 Jul 2024");
			d = date;
		}
		puts_(b, "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: ");
		puts_(b, d);
		puts_(b, "\n\n");
		if (role_is(&m[0], "system")) {
			struct sl c = py_strip((struct sl){ m[0].content, m[0].content_len });
			put(b, c.p, c.n);
			first = 1;
		}
		puts_(b, "<|eot_id|>");
	}
	for (size_t i = first; i < n; i++) {
		struct sl c = py_strip((struct sl){ m[i].content, m[i].content_len });
		puts_(b, "<|start_header_id|>");
		put(b, m[i].role, m[i].role_len);
		puts_(b, "<|end_header_id|>\n\n");
		put(b, c.p, c.n);
		puts_(b, "<|eot_id|>");
	}
	if (p->add_generation_prompt)
		puts_(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

static bool known_role(const rwd_chat_message *m)
{
	return role_is(m, "system") || role_is(m, "user") || role_is(m, "assistant") || role_is(m, "tool");
}

/*
 * The engine path: the variables transformers' apply_chat_template gives a
 * template (messages, tools and documents None, add_generation_prompt, and
 * the tokenizer's bos_token / eos_token when it has them). `messages` is
 * borrowed.
 */
static int render_engine(const rwd_chat_template *t, json_t *messages, const rwd_chat_params *p, rwd_arena *arena,
	char **out, size_t *out_len, rwd_error *err)
{
	json_t *vars = json_object();
	int rc = RWD_E_NOMEM;
	if (!vars || json_object_set(vars, "messages", messages) ||
	    json_object_set_new(vars, "tools", json_null()) || json_object_set_new(vars, "documents", json_null()) ||
	    json_object_set_new(vars, "add_generation_prompt", json_boolean(p->add_generation_prompt)) ||
	    (t->bos && json_object_set_new(vars, "bos_token", json_string(t->bos))) ||
	    (t->eos && json_object_set_new(vars, "eos_token", json_string(t->eos)))) {
		json_decref(vars);
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	}
	rwd_jinja_render_opts o = { .max_output_bytes = p->max_bytes };
	rc = rwd_jinja_render(t->engine, vars, &o, arena, out, out_len, err);
	json_decref(vars);
	if (rc)
		rwd_error_where(err, NULL, "messages");
	return rc;
}

/* The engine takes messages as JSON objects with a string role; the rest is the template's business. */
static int check_engine_messages(const json_t *messages, size_t max_messages, rwd_error *err)
{
	if (!json_is_array(messages)) {
		rwd_errorf(err, RWD_E_INVALID, "must be an array of {role, content}");
		rwd_error_where(err, NULL, "messages");
		return RWD_E_INVALID;
	}
	size_t cnt = json_array_size(messages);
	if (cnt == 0 || cnt > max_messages) {
		int code = cnt ? RWD_E_LIMIT : RWD_E_INVALID;
		if (cnt)
			rwd_errorf(err, code, "more than %zu messages", max_messages);
		else
			rwd_errorf(err, code, "must not be empty");
		rwd_error_where(err, NULL, "messages");
		return code;
	}
	for (size_t i = 0; i < cnt; i++) {
		json_t *o = json_array_get(messages, i);
		const char *field = NULL, *why = NULL;
		if (!json_is_object(o))
			field = "", why = "must be an object {role, content}";
		else if (!json_is_string(json_object_get(o, "role")))
			field = ".role", why = "must be a string";
		if (field) {
			char obj[64];
			snprintf(obj, sizeof(obj), "messages[%zu]%s", i, field);
			rwd_errorf(err, RWD_E_INVALID, "%s", why);
			rwd_error_where(err, NULL, obj);
			return RWD_E_INVALID;
		}
	}
	return 0;
}

int rwd_chat_render(const rwd_chat_template *t, const rwd_chat_message *m, size_t n,
	const rwd_chat_params *params, rwd_arena *arena, char **out, size_t *out_len, rwd_error *err)
{
	rwd_chat_params p = params ? *params : rwd_chat_default_params();
	struct sbuf b = { .a = arena, .max = p.max_bytes };
	*out = NULL;
	*out_len = 0;
	if (n == 0) {
		rwd_errorf(err, RWD_E_INVALID, "must not be empty");
		rwd_error_where(err, NULL, "messages");
		return RWD_E_INVALID;
	}
	if (n > p.max_messages) {
		rwd_errorf(err, RWD_E_LIMIT, "more than %zu messages", p.max_messages);
		rwd_error_where(err, NULL, "messages");
		return RWD_E_LIMIT;
	}
	bool engine = t->format == RWD_CHAT_JINJA;
	for (size_t i = 0; t->engine && !engine && i < n; i++)
		engine = (t->format == RWD_CHAT_LLAMA31 || t->format == RWD_CHAT_LLAMA32) &&
			(role_is(&m[i], "tool") || role_is(&m[i], "ipython"));
	if (engine) {
		json_t *arr = json_array();
		for (size_t i = 0; arr && i < n; i++) {
			json_t *o = json_object();
			if (!o || json_array_append_new(arr, o) ||
			    json_object_set_new(o, "role", json_stringn(m[i].role, m[i].role_len)) ||
			    json_object_set_new(o, "content", json_stringn(m[i].content, m[i].content_len)) ||
			    (m[i].reasoning && json_object_set_new(o, "reasoning_content",
						   json_stringn(m[i].reasoning, m[i].reasoning_len)))) {
				json_decref(arr);
				arr = NULL;
			}
		}
		if (!arr)
			return rwd_errorf(err, RWD_E_NOMEM, "out of memory (or a message that is not UTF-8)");
		int rc = render_engine(t, arr, &p, arena, out, out_len, err);
		json_decref(arr);
		return rc;
	}
	for (size_t i = 0; i < n; i++) {
		if (!known_role(&m[i])) {
			char obj[64];
			rwd_errorf(err, RWD_E_INVALID, "role must be \"system\", \"user\", \"assistant\" or \"tool\"");
			snprintf(obj, sizeof(obj), "messages[%zu].role", i);
			rwd_error_where(err, NULL, obj);
			return RWD_E_INVALID;
		}
		if ((t->format == RWD_CHAT_LLAMA31 || t->format == RWD_CHAT_LLAMA32) && role_is(&m[i], "tool"))
			return role_error(err, i, t, "tool messages are not supported");
	}
	switch (t->format) {
	case RWD_CHAT_QWEN2:
	case RWD_CHAT_QWEN25:
		render_qwen2(t, m, n, &b);
		if (p.add_generation_prompt)
			puts_(&b, "<|im_start|>assistant\n");
		break;
	case RWD_CHAT_QWEN3:
		render_qwen3(m, n, &b);
		if (p.add_generation_prompt)
			puts_(&b, "<|im_start|>assistant\n");
		break;
	case RWD_CHAT_LLAMA3:
	case RWD_CHAT_LLAMA31:
	case RWD_CHAT_LLAMA32:
		render_llama(t, m, n, &p, &b);
		break;
	case RWD_CHAT_JINJA:
		break; /* rendered above */
	}
	if (b.rc) {
		rwd_errorf(err, b.rc, b.rc == RWD_E_LIMIT ? "rendered conversation longer than %zu bytes" :
			"out of memory rendering the conversation (limit %zu bytes)", p.max_bytes);
		rwd_error_where(err, NULL, "messages");
		return b.rc;
	}
	*out = b.p;
	*out_len = b.n;
	return 0;
}

int rwd_chat_messages_from_json(const json_t *messages, size_t max_messages, rwd_arena *arena,
	rwd_chat_message **out, size_t *n, rwd_error *err)
{
	*out = NULL;
	*n = 0;
	if (!json_is_array(messages)) {
		rwd_errorf(err, RWD_E_INVALID, "must be an array of {role, content}");
		rwd_error_where(err, NULL, "messages");
		return RWD_E_INVALID;
	}
	size_t cnt = json_array_size(messages);
	if (cnt == 0 || cnt > max_messages) {
		int code = cnt ? RWD_E_LIMIT : RWD_E_INVALID;
		if (cnt)
			rwd_errorf(err, code, "more than %zu messages", max_messages);
		else
			rwd_errorf(err, code, "must not be empty");
		rwd_error_where(err, NULL, "messages");
		return code;
	}
	rwd_chat_message *m = rwd_arena_calloc(arena, cnt, sizeof(*m));
	if (!m)
		return rwd_errorf(err, rwd_arena_over_limit(arena) ? RWD_E_LIMIT : RWD_E_NOMEM, "out of memory");
	for (size_t i = 0; i < cnt; i++) {
		json_t *o = json_array_get(messages, i);
		json_t *role = json_object_get(o, "role"), *content = json_object_get(o, "content");
		json_t *rs = json_object_get(o, "reasoning_content"), *tc = json_object_get(o, "tool_calls");
		const char *field = NULL, *why = NULL;
		int code = RWD_E_INVALID;
		if (!json_is_object(o))
			field = "", why = "must be an object {role, content}";
		else if (!json_is_string(role))
			field = ".role", why = "must be a string";
		else if (!json_is_string(content))
			field = ".content", why = "must be a string";
		else if (rs && !json_is_null(rs) && !json_is_string(rs))
			field = ".reasoning_content", why = "must be a string or null";
		else if (tc && !json_is_null(tc) && !(json_is_array(tc) && json_array_size(tc) == 0))
			field = ".tool_calls", why = "tool calls are not supported", code = RWD_E_UNSUPPORTED;
		if (field) {
			char obj[64];
			snprintf(obj, sizeof(obj), "messages[%zu]%s", i, field);
			rwd_errorf(err, code, "%s", why);
			rwd_error_where(err, NULL, obj);
			return code;
		}
		m[i].role = json_string_value(role);
		m[i].role_len = json_string_length(role);
		m[i].content = json_string_value(content);
		m[i].content_len = json_string_length(content);
		if (json_is_string(rs)) {
			m[i].reasoning = json_string_value(rs);
			m[i].reasoning_len = json_string_length(rs);
		}
	}
	*out = m;
	*n = cnt;
	return 0;
}

/* Fast-path templates hand these conversations to the engine. */
static bool llama_tool_role(const rwd_chat_template *t, const char *role)
{
	return (t->format == RWD_CHAT_LLAMA31 || t->format == RWD_CHAT_LLAMA32) &&
		(strcmp(role, "tool") == 0 || strcmp(role, "ipython") == 0);
}

static bool needs_engine(const rwd_chat_template *t, const json_t *messages)
{
	json_t *o;
	size_t i;
	if (!json_is_array(messages))
		return false;
	json_array_foreach(messages, i, o) {
		json_t *tc = json_object_get(o, "tool_calls"), *c = json_object_get(o, "content");
		json_t *r = json_object_get(o, "role");
		if (tc && !json_is_null(tc) && !(json_is_array(tc) && json_array_size(tc) == 0))
			return true;
		if (json_is_null(c) || json_is_array(c))
			return true;
		if (json_is_string(r) && llama_tool_role(t, json_string_value(r)))
			return true;
	}
	return false;
}

int rwd_chat_render_json(const rwd_chat_template *t, const json_t *messages, const rwd_chat_params *params,
	rwd_arena *arena, char **out, size_t *out_len, rwd_error *err)
{
	rwd_chat_params p = params ? *params : rwd_chat_default_params();
	rwd_chat_message *m;
	size_t n;
	*out = NULL;
	*out_len = 0;
	if (t->format == RWD_CHAT_JINJA || (t->engine && needs_engine(t, messages))) {
		int rc = check_engine_messages(messages, p.max_messages, err);
		return rc ? rc : render_engine(t, (json_t *)messages, &p, arena, out, out_len, err);
	}
	int rc = rwd_chat_messages_from_json(messages, p.max_messages, arena, &m, &n, err);
	if (rc)
		return rc;
	return rwd_chat_render(t, m, n, &p, arena, out, out_len, err);
}
