/*
 * text/jinja.c — the Jinja2 subset of jinja.h: lexer, parser to an AST,
 * evaluator with Python value semantics. See jinja.h for what is covered
 * and the settings (those of transformers' apply_chat_template).
 *
 * Structure: a compiled template owns its normalised source and an arena
 * with the AST and decoded literals. Rendering converts the JSON variables
 * into values, walks the AST and allocates every value in the caller's
 * arena; the output grows in a malloc buffer copied into the arena at the
 * end. Every loop, call and allocation is charged to the render's limits.
 */
#include "text/jinja.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

rwd_jinja_limits rwd_jinja_default_limits(void)
{
	return (rwd_jinja_limits){
		.max_template_bytes = 1u << 20,
		.max_nodes = 200000,
		.max_depth = 100,
		.max_iterations = 1000000,
		.max_steps = 20000000,
		.max_work_bytes = (size_t)256 << 20,
		.max_output_bytes = (size_t)64 << 20,
	};
}

/* ------------------------------------------------------------ text helpers */

/* Length of the code point at s if Python's str.isspace() holds for it, else 0. */
static size_t py_space_len(const unsigned char *s, size_t n)
{
	if (!n)
		return 0;
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

/* Start of the code point that ends at s[n] (s valid UTF-8, n > 0). */
static size_t cp_start(const char *s, size_t n)
{
	size_t st = n - 1;
	while (st > 0 && ((unsigned char)s[st] & 0xC0) == 0x80)
		st--;
	return st;
}

/* Bytes of the code point at s (valid UTF-8). */
static size_t cp_len(const char *s)
{
	unsigned char c = (unsigned char)*s;
	return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

static size_t cp_count(const char *s, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += ((unsigned char)s[i] & 0xC0) != 0x80;
	return k;
}

/* Python's str.rstrip() end of s[b, e). */
static size_t py_rstrip_end(const char *s, size_t b, size_t e)
{
	while (e > b) {
		size_t st = b + cp_start(s + b, e - b);
		if (py_space_len((const unsigned char *)s + st, e - st) != e - st)
			break;
		e = st;
	}
	return e;
}

static bool py_all_space(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		size_t l = py_space_len((const unsigned char *)s + i, n - i);
		if (!l)
			return false;
		i += l;
	}
	return true;
}

static bool utf8_valid(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		utf8proc_int32_t cp;
		utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
		if (l <= 0)
			return false;
		i += (size_t)l;
	}
	return true;
}

/* ------------------------------------------------------------------ buffers */

struct sb {
	char *p;
	size_t n, cap, max;
	int rc;
};

static void sb_put(struct sb *b, const char *s, size_t n)
{
	if (b->rc || !n)
		return;
	if (n > b->max || b->n > b->max - n) {
		b->rc = RWD_E_LIMIT;
		return;
	}
	if (b->n + n + 1 > b->cap) {
		size_t nc = b->cap ? b->cap : 256;
		while (nc < b->n + n + 1)
			nc *= 2;
		char *np = realloc(b->p, nc);
		if (!np) {
			b->rc = RWD_E_NOMEM;
			return;
		}
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static void sb_puts(struct sb *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

static void sb_putc(struct sb *b, char c)
{
	sb_put(b, &c, 1);
}

static void sb_printf(struct sb *b, const char *fmt, ...) RWD_PRINTF(2, 3);
static void sb_printf(struct sb *b, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	va_start(ap, fmt);
	int k = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (k > 0)
		sb_put(b, tmp, (size_t)k < sizeof(tmp) ? (size_t)k : sizeof(tmp) - 1);
}

static void sb_put_cp(struct sb *b, int32_t cp)
{
	utf8proc_uint8_t u[4];
	utf8proc_ssize_t l = utf8proc_encode_char(cp, u);
	sb_put(b, (const char *)u, (size_t)l);
}

/* -------------------------------------------------------------------- AST */

enum nkind {
	N_TEXT = 1, N_OUTPUT, N_BLOCK, N_IF, N_FOR, N_SET, N_SETBLOCK, N_MACRO, N_BREAK, N_CONTINUE,
	N_CONST, N_NAME, N_GETATTR, N_GETITEM, N_SLICE, N_CALL, N_FILTER, N_TEST, N_BINOP, N_NEG, N_POS,
	N_NOT, N_AND, N_OR, N_COMPARE, N_COND, N_LIST, N_TUPLE, N_DICT, N_CONCAT, N_SPLAT, N_CALLBLOCK,
};

enum vt {
	V_UNDEF, V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_LIST, V_DICT, V_NS, V_MACRO, V_BUILTIN, V_METHOD, V_LOOP,
};

/* binary and comparison operators */
enum {
	OP_ADD = 1, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW,
	OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_NOTIN,
};

struct node {
	uint8_t kind;
	uint8_t op;     /* operator, constant's value type, negated test */
	uint16_t fn;    /* filter / test id */
	uint32_t off;   /* source offset, for errors */
	struct node *a, *b, *c, *d, *e;
	struct node **kids; /* positional arguments then keyword values; block statements; items */
	uint8_t *ops;       /* N_COMPARE: one per operand in kids */
	const char **names; /* keyword names (the last nnames kids); macro parameters */
	uint32_t nkids, nnames;
	const char *s;      /* name, text, string constant */
	size_t sn;
	int64_t i;
	double f;
};

struct rwd_jinja {
	char *src;          /* normalised source */
	size_t n;
	rwd_arena *mem;     /* nodes and literals */
	struct node *root;
	size_t nodes;
	rwd_jinja_limits lim;
};

size_t rwd_jinja_node_count(const rwd_jinja *t)
{
	return t->nodes;
}

static void where(const char *src, size_t off, int *line, int *col)
{
	int l = 1, c = 1;
	for (size_t i = 0; i < off && src[i]; i++) {
		if (src[i] == '\n')
			l++, c = 1;
		else if (((unsigned char)src[i] & 0xC0) != 0x80)
			c++;
	}
	*line = l;
	*col = c;
}

/* ------------------------------------------------------------------ lexer */

enum tk { TK_EOF, TK_TEXT, TK_VBEGIN, TK_VEND, TK_BBEGIN, TK_BEND, TK_NAME, TK_STR, TK_INT, TK_FLOAT, TK_OP };

struct tok {
	uint8_t type;
	const char *p; /* TEXT, NAME, OP: into the source; STR: decoded, in the template arena */
	size_t n;
	size_t off;
	int64_t i;
	double f;
};

struct parser {
	rwd_jinja *t;
	const char *s;
	size_t n;
	struct tok *toks;
	size_t ntok, cap, pos;
	size_t depth;
	rwd_error *err;
	int rc;
};

static int perr(struct parser *P, size_t off, int code, const char *fmt, ...) RWD_PRINTF(4, 5);
static int perr(struct parser *P, size_t off, int code, const char *fmt, ...)
{
	if (P->rc)
		return P->rc;
	char msg[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	int line, col;
	where(P->s, off, &line, &col);
	rwd_errorf(P->err, code, "chat template line %d, column %d: %s", line, col, msg);
	P->rc = code;
	return code;
}

static int push_tok(struct parser *P, uint8_t type, const char *p, size_t n, size_t off)
{
	if (P->ntok == P->cap) {
		size_t nc = P->cap ? P->cap * 2 : 256;
		struct tok *nt = realloc(P->toks, nc * sizeof(*nt));
		if (!nt)
			return perr(P, off, RWD_E_NOMEM, "out of memory");
		P->toks = nt;
		P->cap = nc;
	}
	if (P->ntok >= P->t->lim.max_nodes * 4 + 16)
		return perr(P, off, RWD_E_LIMIT, "more than %zu tokens", P->t->lim.max_nodes * 4 + 16);
	P->toks[P->ntok++] = (struct tok){ .type = type, .p = p, .n = n, .off = off };
	return 0;
}

static bool is_name_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_name_char(char c)
{
	return is_name_start(c) || (c >= '0' && c <= '9');
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode a string literal body as Python's unicode-escape does (Jinja2's lexer). */
static int lex_string(struct parser *P, size_t q, size_t e)
{
	struct sb b = { .max = SIZE_MAX };
	const char *s = P->s;
	for (size_t i = q + 1; i < e; i++) {
		char c = s[i];
		if (c != '\\') {
			sb_putc(&b, c);
			continue;
		}
		char x = s[++i];
		switch (x) {
		case '\n': break; /* line continuation */
		case '\\': sb_putc(&b, '\\'); break;
		case '\'': sb_putc(&b, '\''); break;
		case '"': sb_putc(&b, '"'); break;
		case 'a': sb_putc(&b, '\a'); break;
		case 'b': sb_putc(&b, '\b'); break;
		case 'f': sb_putc(&b, '\f'); break;
		case 'n': sb_putc(&b, '\n'); break;
		case 'r': sb_putc(&b, '\r'); break;
		case 't': sb_putc(&b, '\t'); break;
		case 'v': sb_putc(&b, '\v'); break;
		case 'x': case 'u': case 'U': {
			int nd = x == 'x' ? 2 : x == 'u' ? 4 : 8;
			int32_t cp = 0;
			for (int k = 0; k < nd; k++) {
				int h = i + 1 < e ? hexval(s[i + 1]) : -1;
				if (h < 0) {
					free(b.p);
					return perr(P, i, RWD_E_FORMAT, "truncated \\%c escape in a string literal", x);
				}
				cp = cp * 16 + h;
				i++;
			}
			if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
				free(b.p);
				return perr(P, i, RWD_E_UNSUPPORTED, "escape of a surrogate or out-of-range code point");
			}
			sb_put_cp(&b, cp);
			break;
		}
		case 'N':
			free(b.p);
			return perr(P, i, RWD_E_UNSUPPORTED, "\\N{...} escapes are not supported");
		default:
			if (x >= '0' && x <= '7') {
				int32_t cp = x - '0';
				for (int k = 0; k < 2 && i + 1 < e && s[i + 1] >= '0' && s[i + 1] <= '7'; k++)
					cp = cp * 8 + (s[++i] - '0');
				sb_put_cp(&b, cp);
			} else {
				sb_putc(&b, '\\');
				sb_put(&b, s + i, cp_len(s + i));
				i += cp_len(s + i) - 1;
			}
		}
	}
	if (b.rc) {
		free(b.p);
		return perr(P, q, b.rc, "out of memory");
	}
	char *v = rwd_arena_alloc(P->t->mem, b.n + 1);
	if (!v) {
		free(b.p);
		return perr(P, q, RWD_E_NOMEM, "out of memory");
	}
	if (b.n)
		memcpy(v, b.p, b.n);
	v[b.n] = '\0';
	free(b.p);
	if (push_tok(P, TK_STR, v, b.n, q))
		return P->rc;
	return 0;
}

static const char *const OPS2[] = { "//", "**", "==", "!=", "<=", ">=", NULL };
static const char OPS1[] = "+-/*%~[](){}<>=.:|,;";

/*
 * The tokens of one tag whose body starts at p; kind '{' or '%'. On return
 * *pos is after the end marker and the whitespace it removes.
 */
static int lex_tag(struct parser *P, char kind, size_t start, size_t p, size_t *pos)
{
	const char *s = P->s;
	size_t n = P->n;
	int balance = 0;
	for (;;) {
		size_t l;
		while (p < n && (l = py_space_len((const unsigned char *)s + p, n - p)))
			p += l;
		if (p >= n)
			return perr(P, start, RWD_E_FORMAT, "%s tag is not closed", kind == '{' ? "{{" : "{%");
		if (balance == 0) {
			const char *close = kind == '%' ? "%}" : "}}";
			size_t e = 0;
			int mode = 0; /* 1 strip following whitespace, 2 trim one newline */
			if (s[p] == '-' && p + 2 < n && memcmp(s + p + 1, close, 2) == 0)
				e = p + 3, mode = 1;
			else if (kind == '%' && s[p] == '+' && p + 2 < n && memcmp(s + p + 1, close, 2) == 0)
				e = p + 3;
			else if (p + 1 < n && memcmp(s + p, close, 2) == 0)
				e = p + 2, mode = kind == '%' ? 2 : 0;
			if (e) {
				if (push_tok(P, kind == '%' ? TK_BEND : TK_VEND, s + p, e - p, p))
					return P->rc;
				if (mode == 1)
					while (e < n && (l = py_space_len((const unsigned char *)s + e, n - e)))
						e += l;
				else if (mode == 2 && e < n && s[e] == '\n')
					e++;
				*pos = e;
				return 0;
			}
		}
		char c = s[p];
		if (c == '\'' || c == '"') {
			size_t e = p + 1;
			while (e < n && s[e] != c)
				e += s[e] == '\\' && e + 1 < n ? 2 : 1;
			if (e >= n)
				return perr(P, p, RWD_E_FORMAT, "string literal is not closed");
			if (lex_string(P, p, e))
				return P->rc;
			p = e + 1;
			continue;
		}
		if (is_digit(c)) {
			size_t e = p;
			bool flt = false;
			while (e < n && (is_digit(s[e]) || (s[e] == '_' && e + 1 < n && is_digit(s[e + 1]))))
				e++;
			if (e + 1 < n && s[e] == '.' && is_digit(s[e + 1])) {
				flt = true;
				e++;
				while (e < n && (is_digit(s[e]) || (s[e] == '_' && e + 1 < n && is_digit(s[e + 1]))))
					e++;
			}
			if (e < n && (s[e] == 'e' || s[e] == 'E')) {
				size_t x = e + 1;
				if (x < n && (s[x] == '+' || s[x] == '-'))
					x++;
				if (x < n && is_digit(s[x])) {
					flt = true;
					e = x;
					while (e < n && is_digit(s[e]))
						e++;
				}
			}
			char num[64];
			size_t k = 0;
			for (size_t i = p; i < e && k + 1 < sizeof(num); i++)
				if (s[i] != '_')
					num[k++] = s[i];
			num[k] = '\0';
			if (e - p >= sizeof(num))
				return perr(P, p, RWD_E_LIMIT, "number literal too long");
			if (push_tok(P, flt ? TK_FLOAT : TK_INT, s + p, e - p, p))
				return P->rc;
			struct tok *t = &P->toks[P->ntok - 1];
			if (flt) {
				t->f = strtod(num, NULL);
			} else {
				char *end;
				unsigned long long v = strtoull(num, &end, 10);
				if (v > (unsigned long long)INT64_MAX)
					return perr(P, p, RWD_E_UNSUPPORTED, "integer literal beyond 64 bits");
				t->i = (int64_t)v;
			}
			p = e;
			continue;
		}
		if (is_name_start(c)) {
			size_t e = p;
			while (e < n && is_name_char(s[e]))
				e++;
			if (push_tok(P, TK_NAME, s + p, e - p, p))
				return P->rc;
			p = e;
			continue;
		}
		size_t ol = 0;
		for (size_t k = 0; OPS2[k]; k++)
			if (p + 1 < n && memcmp(s + p, OPS2[k], 2) == 0)
				ol = 2;
		if (!ol && memchr(OPS1, c, sizeof(OPS1) - 1) && c)
			ol = 1;
		if (!ol) {
			if (c == '!')
				return perr(P, p, RWD_E_FORMAT, "unexpected '!'");
			return perr(P, p, RWD_E_FORMAT, "unexpected character in a tag");
		}
		if (c == '(' || c == '[' || c == '{')
			balance++;
		else if ((c == ')' || c == ']' || c == '}') && ol == 1) {
			if (balance == 0)
				return perr(P, p, RWD_E_FORMAT, "unexpected '%c'", c);
			balance--;
		}
		if (push_tok(P, TK_OP, s + p, ol, p))
			return P->rc;
		p += ol;
	}
}

/* `{%[-+]? raw [-+]?%}` at s[t]: the offset after it, else 0. */
static size_t raw_begin(const char *s, size_t n, size_t t, bool *strip_after)
{
	size_t p = t + 2, l;
	if (p < n && (s[p] == '-' || s[p] == '+'))
		p++;
	while (p < n && (l = py_space_len((const unsigned char *)s + p, n - p)))
		p += l;
	if (p + 3 > n || memcmp(s + p, "raw", 3) != 0)
		return 0;
	p += 3;
	while (p < n && (l = py_space_len((const unsigned char *)s + p, n - p)))
		p += l;
	*strip_after = false;
	if (p < n && s[p] == '-') {
		*strip_after = true;
		p++;
	} else if (p < n && s[p] == '+') {
		p++;
	}
	if (p + 2 > n || memcmp(s + p, "%}", 2) != 0)
		return 0;
	return p + 2;
}

/* Find `{%[-]? endraw [-+]?%}` from p: its start, and in *end / *mode its end. */
static size_t raw_end(const char *s, size_t n, size_t p, size_t *end, bool *lstrip, int *mode)
{
	for (size_t t = p; t + 1 < n; t++) {
		if (s[t] != '{' || s[t + 1] != '%')
			continue;
		size_t q = t + 2, l;
		*lstrip = q < n && s[q] == '-';
		if (q < n && (s[q] == '-' || s[q] == '+'))
			q++;
		while (q < n && (l = py_space_len((const unsigned char *)s + q, n - q)))
			q += l;
		if (q + 6 > n || memcmp(s + q, "endraw", 6) != 0)
			continue;
		q += 6;
		while (q < n && (l = py_space_len((const unsigned char *)s + q, n - q)))
			q += l;
		*mode = 2;
		if (q < n && s[q] == '-')
			*mode = 1, q++;
		else if (q < n && s[q] == '+')
			*mode = 0, q++;
		if (q + 2 > n || memcmp(s + q, "%}", 2) != 0)
			continue;
		*end = q + 2;
		return t;
	}
	return SIZE_MAX;
}

static int lex(struct parser *P)
{
	const char *s = P->s;
	size_t n = P->n, pos = 0;
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
		size_t te = t;
		char sign = kind && t + 2 < n && (s[t + 2] == '-' || s[t + 2] == '+') ? s[t + 2] : 0;
		bool line_start = pos == 0 || s[pos - 1] == '\n';
		if (sign == '-') {
			te = py_rstrip_end(s, pos, te);
		} else if (sign != '+' && kind && kind != '{') {
			/* lstrip_blocks */
			size_t l = te;
			while (l > pos && s[l - 1] != '\n')
				l--;
			if ((l > pos || line_start) && te > l && py_all_space(s + l, te - l))
				te = l;
		}
		if (te > pos && push_tok(P, TK_TEXT, s + pos, te - pos, pos))
			return P->rc;
		if (!kind)
			return push_tok(P, TK_EOF, s + n, 0, n);
		bool strip_after;
		size_t rb = kind == '%' ? raw_begin(s, n, t, &strip_after) : 0;
		if (rb) {
			size_t l, end;
			bool lstrip;
			int mode;
			if (strip_after)
				while (rb < n && (l = py_space_len((const unsigned char *)s + rb, n - rb)))
					rb += l;
			size_t re = raw_end(s, n, rb, &end, &lstrip, &mode);
			if (re == SIZE_MAX)
				return perr(P, t, RWD_E_FORMAT, "{%% raw %%} without {%% endraw %%}");
			size_t ce = lstrip ? py_rstrip_end(s, rb, re) : re;
			if (ce > rb && push_tok(P, TK_TEXT, s + rb, ce - rb, rb))
				return P->rc;
			if (mode == 1)
				while (end < n && (l = py_space_len((const unsigned char *)s + end, n - end)))
					end += l;
			else if (mode == 2 && end < n && s[end] == '\n')
				end++;
			pos = end;
			continue;
		}
		size_t p = t + 2 + (sign ? 1 : 0);
		if (kind == '#') {
			const char *e = p <= n ? memmem(s + p, n - p, "#}", 2) : NULL;
			if (!e)
				return perr(P, t, RWD_E_FORMAT, "comment is not closed");
			size_t ce = (size_t)(e - s);
			char pre = ce > p ? s[ce - 1] : 0;
			pos = ce + 2;
			size_t l;
			if (pre == '-')
				while (pos < n && (l = py_space_len((const unsigned char *)s + pos, n - pos)))
					pos += l;
			else if (pre != '+' && pos < n && s[pos] == '\n')
				pos++;
			continue;
		}
		if (push_tok(P, kind == '%' ? TK_BBEGIN : TK_VBEGIN, s + t, p - t, t))
			return P->rc;
		if (lex_tag(P, kind, t, p, &pos))
			return P->rc;
	}
}

/* --------------------------------------------------------- filters, tests */

enum filter_id {
	F_ABS = 1, F_CAPITALIZE, F_COUNT, F_DEFAULT, F_DICTSORT, F_FIRST, F_FLOAT, F_INDENT, F_INT, F_ITEMS,
	F_JOIN, F_LAST, F_LENGTH, F_LIST, F_LOWER, F_MAP, F_MAX, F_MIN, F_REJECT, F_REJECTATTR, F_REPLACE,
	F_REVERSE, F_ROUND, F_SAFE, F_SELECT, F_SELECTATTR, F_SORT, F_STRING, F_SUM, F_TITLE, F_TOJSON,
	F_TRIM, F_UNIQUE, F_UPPER, F_WORDCOUNT,
};

static const struct named {
	const char *name;
	uint16_t id;
} FILTERS[] = {
	{ "abs", F_ABS }, { "capitalize", F_CAPITALIZE }, { "count", F_COUNT }, { "d", F_DEFAULT },
	{ "default", F_DEFAULT }, { "dictsort", F_DICTSORT }, { "first", F_FIRST }, { "float", F_FLOAT },
	{ "indent", F_INDENT }, { "int", F_INT }, { "items", F_ITEMS }, { "join", F_JOIN }, { "last", F_LAST },
	{ "length", F_LENGTH }, { "list", F_LIST }, { "lower", F_LOWER }, { "map", F_MAP }, { "max", F_MAX },
	{ "min", F_MIN }, { "reject", F_REJECT }, { "rejectattr", F_REJECTATTR }, { "replace", F_REPLACE },
	{ "reverse", F_REVERSE }, { "round", F_ROUND }, { "safe", F_SAFE }, { "select", F_SELECT },
	{ "selectattr", F_SELECTATTR }, { "sort", F_SORT }, { "string", F_STRING }, { "sum", F_SUM },
	{ "title", F_TITLE }, { "tojson", F_TOJSON }, { "trim", F_TRIM }, { "unique", F_UNIQUE },
	{ "upper", F_UPPER }, { "wordcount", F_WORDCOUNT }, { NULL, 0 },
};

enum test_id {
	T_BOOLEAN = 1, T_CALLABLE, T_DEFINED, T_DIVISIBLEBY, T_EQ, T_EVEN, T_FALSE, T_FLOAT, T_GE, T_GT, T_IN,
	T_INTEGER, T_ITERABLE, T_LE, T_LOWER, T_LT, T_MAPPING, T_NE, T_NONE, T_NUMBER, T_ODD, T_SAMEAS,
	T_SEQUENCE, T_STRING, T_TRUE, T_UNDEFINED, T_UPPER,
};

static const struct named TESTS[] = {
	{ "boolean", T_BOOLEAN }, { "callable", T_CALLABLE }, { "defined", T_DEFINED },
	{ "divisibleby", T_DIVISIBLEBY }, { "eq", T_EQ }, { "equalto", T_EQ }, { "==", T_EQ }, { "even", T_EVEN },
	{ "false", T_FALSE }, { "float", T_FLOAT }, { "ge", T_GE }, { ">=", T_GE }, { "gt", T_GT },
	{ "greaterthan", T_GT }, { ">", T_GT }, { "in", T_IN }, { "integer", T_INTEGER },
	{ "iterable", T_ITERABLE }, { "le", T_LE }, { "<=", T_LE }, { "lower", T_LOWER }, { "lt", T_LT },
	{ "lessthan", T_LT }, { "<", T_LT }, { "mapping", T_MAPPING }, { "ne", T_NE }, { "!=", T_NE },
	{ "none", T_NONE }, { "number", T_NUMBER }, { "odd", T_ODD }, { "sameas", T_SAMEAS },
	{ "sequence", T_SEQUENCE }, { "string", T_STRING }, { "true", T_TRUE }, { "undefined", T_UNDEFINED },
	{ "upper", T_UPPER }, { NULL, 0 },
};

static uint16_t lookup_named(const struct named *tab, const char *s, size_t n)
{
	for (size_t i = 0; tab[i].name; i++)
		if (strlen(tab[i].name) == n && memcmp(tab[i].name, s, n) == 0)
			return tab[i].id;
	return 0;
}

/* ----------------------------------------------------------------- parser */

static struct tok *cur(struct parser *P)
{
	return &P->toks[P->pos];
}

static struct tok *peek(struct parser *P, size_t k)
{
	size_t i = P->pos + k;
	return &P->toks[i < P->ntok ? i : P->ntok - 1];
}

static void advance(struct parser *P)
{
	if (P->pos + 1 < P->ntok)
		P->pos++;
}

static bool tk_name(const struct tok *t, const char *s)
{
	return t->type == TK_NAME && t->n == strlen(s) && memcmp(t->p, s, t->n) == 0;
}

static bool tk_op(const struct tok *t, const char *s)
{
	return t->type == TK_OP && t->n == strlen(s) && memcmp(t->p, s, t->n) == 0;
}

static const char *tk_desc(const struct tok *t, char *buf, size_t n)
{
	switch (t->type) {
	case TK_EOF: return "end of template";
	case TK_TEXT: return "template text";
	case TK_VBEGIN: return "'{{'";
	case TK_VEND: return "end of print statement";
	case TK_BBEGIN: return "'{%'";
	case TK_BEND: return "end of statement block";
	case TK_STR: return "string literal";
	case TK_INT: return "integer";
	case TK_FLOAT: return "float";
	default:
		snprintf(buf, n, "'%.*s'", (int)(t->n < 40 ? t->n : 40), t->p);
		return buf;
	}
}

static int unexpected(struct parser *P, const char *wanted)
{
	char b[64];
	struct tok *t = cur(P);
	return perr(P, t->off, RWD_E_FORMAT, "expected %s, got %s", wanted, tk_desc(t, b, sizeof(b)));
}

static struct node *new_node(struct parser *P, uint8_t kind, size_t off)
{
	if (P->rc)
		return NULL;
	if (P->t->nodes >= P->t->lim.max_nodes) {
		perr(P, off, RWD_E_LIMIT, "more than %zu syntax nodes", P->t->lim.max_nodes);
		return NULL;
	}
	struct node *nd = rwd_arena_calloc(P->t->mem, 1, sizeof(*nd));
	if (!nd) {
		perr(P, off, RWD_E_NOMEM, "out of memory");
		return NULL;
	}
	P->t->nodes++;
	nd->kind = kind;
	nd->off = (uint32_t)off;
	return nd;
}

/* A growable node list, moved into the arena when done. */
struct nlist {
	struct node **v;
	const char **names;
	uint8_t *ops;
	size_t n, cap;
};

static int nl_push(struct parser *P, struct nlist *l, struct node *nd, const char *name, uint8_t op)
{
	if (P->rc)
		return P->rc;
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 8;
		struct node **nv = realloc(l->v, nc * sizeof(*nv));
		const char **nn = nv ? realloc(l->names, nc * sizeof(*nn)) : NULL;
		if (nv)
			l->v = nv;
		if (nn)
			l->names = nn;
		uint8_t *no = nn ? realloc(l->ops, nc) : NULL;
		if (no)
			l->ops = no;
		if (!no)
			return perr(P, 0, RWD_E_NOMEM, "out of memory");
		l->cap = nc;
	}
	l->v[l->n] = nd;
	l->names[l->n] = name;
	l->ops[l->n] = op;
	l->n++;
	return 0;
}

static void nl_free(struct nlist *l)
{
	free(l->v);
	free(l->names);
	free(l->ops);
}

/* Move list items into nd->kids (and nnames keyword names of the last items). */
static int nl_finish(struct parser *P, struct nlist *l, struct node *nd, size_t nnames, bool ops)
{
	if (!P->rc && l->n) {
		nd->kids = rwd_arena_alloc(P->t->mem, l->n * sizeof(*nd->kids));
		if (!nd->kids)
			perr(P, nd->off, RWD_E_NOMEM, "out of memory");
		else
			memcpy(nd->kids, l->v, l->n * sizeof(*nd->kids));
		nd->nkids = (uint32_t)l->n;
		if (nnames && !P->rc) {
			nd->names = rwd_arena_alloc(P->t->mem, nnames * sizeof(*nd->names));
			if (!nd->names)
				perr(P, nd->off, RWD_E_NOMEM, "out of memory");
			else
				memcpy(nd->names, l->names + (l->n - nnames), nnames * sizeof(*nd->names));
			nd->nnames = (uint32_t)nnames;
		}
		if (ops && !P->rc) {
			nd->ops = rwd_arena_alloc(P->t->mem, l->n);
			if (!nd->ops)
				perr(P, nd->off, RWD_E_NOMEM, "out of memory");
			else
				memcpy(nd->ops, l->ops, l->n);
		}
	}
	nl_free(l);
	return P->rc;
}

static const char *tok_str(struct parser *P, const struct tok *t)
{
	char *s = rwd_arena_strndup(P->t->mem, t->p, t->n);
	if (!s)
		perr(P, t->off, RWD_E_NOMEM, "out of memory");
	return s;
}

static struct node *parse_expr(struct parser *P, bool condexpr);
static struct node *parse_unary(struct parser *P, bool with_filter);

static int enter(struct parser *P)
{
	if (++P->depth > P->t->lim.max_depth)
		return perr(P, cur(P)->off, RWD_E_LIMIT, "nesting deeper than %zu", P->t->lim.max_depth);
	return 0;
}

/* Call arguments after '(' : positional, then name=value. */
static int parse_args(struct parser *P, struct node *nd)
{
	struct nlist pos = { 0 }, kw = { 0 };
	advance(P); /* ( */
	while (!P->rc && !tk_op(cur(P), ")")) {
		if (pos.n + kw.n) {
			if (!tk_op(cur(P), ",")) {
				unexpected(P, "',' or ')'");
				break;
			}
			advance(P);
			if (tk_op(cur(P), ")"))
				break;
		}
		if (tk_op(cur(P), "**")) {
			perr(P, cur(P)->off, RWD_E_UNSUPPORTED, "**kwargs in calls are not supported");
			break;
		}
		if (tk_op(cur(P), "*")) {
			if (kw.n) {
				perr(P, cur(P)->off, RWD_E_UNSUPPORTED, "*args after keyword arguments is not supported");
				break;
			}
			struct node *sp = new_node(P, N_SPLAT, cur(P)->off);
			advance(P);
			if (!sp || !(sp->a = parse_expr(P, true)))
				break;
			nl_push(P, &pos, sp, NULL, 0);
			continue;
		}
		if (cur(P)->type == TK_NAME && tk_op(peek(P, 1), "=")) {
			const char *name = tok_str(P, cur(P));
			advance(P);
			advance(P);
			struct node *v = parse_expr(P, true);
			if (v)
				nl_push(P, &kw, v, name, 0);
		} else {
			if (kw.n) {
				perr(P, cur(P)->off, RWD_E_FORMAT, "positional argument after a keyword argument");
				break;
			}
			struct node *v = parse_expr(P, true);
			if (v)
				nl_push(P, &pos, v, NULL, 0);
		}
	}
	if (!P->rc)
		advance(P); /* ) */
	for (size_t i = 0; i < kw.n && !P->rc; i++)
		nl_push(P, &pos, kw.v[i], kw.names[i], 0);
	size_t nk = kw.n;
	nl_free(&kw);
	return nl_finish(P, &pos, nd, nk, false);
}

static struct node *parse_tuple(struct parser *P, bool condexpr, const char *extra_end, bool parens)
{
	size_t off = cur(P)->off;
	struct nlist l = { 0 };
	bool is_tuple = false;
	for (;;) {
		if (l.n) {
			if (!tk_op(cur(P), ","))
				break;
			advance(P);
		}
		struct tok *t = cur(P);
		if (t->type == TK_VEND || t->type == TK_BEND || t->type == TK_EOF || tk_op(t, ")") ||
		    (extra_end && tk_name(t, extra_end)))
			break;
		struct node *e = parse_expr(P, condexpr);
		if (!e || nl_push(P, &l, e, NULL, 0))
			break;
		if (tk_op(cur(P), ","))
			is_tuple = true;
		else
			break;
	}
	if (P->rc) {
		nl_free(&l);
		return NULL;
	}
	if (!is_tuple) {
		if (l.n) {
			struct node *e = l.v[0];
			nl_free(&l);
			return e;
		}
		nl_free(&l);
		if (!parens) {
			unexpected(P, "an expression");
			return NULL;
		}
	}
	struct node *nd = new_node(P, N_TUPLE, off);
	if (!nd) {
		nl_free(&l);
		return NULL;
	}
	nl_finish(P, &l, nd, 0, false);
	return P->rc ? NULL : nd;
}

static struct node *parse_primary(struct parser *P)
{
	struct tok *t = cur(P);
	struct node *nd = NULL;
	if (t->type == TK_NAME) {
		static const struct { const char *s; uint8_t t; int64_t v; } K[] = {
			{ "true", V_BOOL, 1 }, { "True", V_BOOL, 1 }, { "false", V_BOOL, 0 }, { "False", V_BOOL, 0 },
			{ "none", V_NONE, 0 }, { "None", V_NONE, 0 },
		};
		for (size_t k = 0; k < sizeof(K) / sizeof(K[0]); k++)
			if (tk_name(t, K[k].s)) {
				if ((nd = new_node(P, N_CONST, t->off))) {
					nd->op = K[k].t;
					nd->i = K[k].v;
				}
				advance(P);
				return nd;
			}
		if ((nd = new_node(P, N_NAME, t->off))) {
			nd->s = tok_str(P, t);
			nd->sn = t->n;
		}
		advance(P);
		return P->rc ? NULL : nd;
	}
	if (t->type == TK_STR) {
		struct sb b = { .max = SIZE_MAX };
		size_t off = t->off;
		while (cur(P)->type == TK_STR) {
			sb_put(&b, cur(P)->p, cur(P)->n);
			advance(P);
		}
		if ((nd = new_node(P, N_CONST, off))) {
			nd->op = V_STR;
			nd->s = rwd_arena_strndup(P->t->mem, b.p ? b.p : "", b.n);
			nd->sn = b.n;
			if (!nd->s || b.rc)
				perr(P, off, RWD_E_NOMEM, "out of memory");
		}
		free(b.p);
		return P->rc ? NULL : nd;
	}
	if (t->type == TK_INT || t->type == TK_FLOAT) {
		if ((nd = new_node(P, N_CONST, t->off))) {
			nd->op = t->type == TK_INT ? V_INT : V_FLOAT;
			nd->i = t->i;
			nd->f = t->f;
		}
		advance(P);
		return nd;
	}
	if (tk_op(t, "(")) {
		advance(P);
		nd = parse_tuple(P, true, NULL, true);
		if (nd && !tk_op(cur(P), ")")) {
			unexpected(P, "')'");
			return NULL;
		}
		advance(P);
		return nd;
	}
	if (tk_op(t, "[") || tk_op(t, "{")) {
		bool dict = tk_op(t, "{");
		const char *close = dict ? "}" : "]";
		struct nlist l = { 0 };
		nd = new_node(P, dict ? N_DICT : N_LIST, t->off);
		advance(P);
		while (nd && !P->rc && !tk_op(cur(P), close)) {
			if (l.n) {
				if (!tk_op(cur(P), ",")) {
					unexpected(P, dict ? "',' or '}'" : "',' or ']'");
					break;
				}
				advance(P);
				if (tk_op(cur(P), close))
					break;
			}
			struct node *k = parse_expr(P, true);
			if (!k || nl_push(P, &l, k, NULL, 0))
				break;
			if (dict) {
				if (!tk_op(cur(P), ":")) {
					unexpected(P, "':'");
					break;
				}
				advance(P);
				struct node *v = parse_expr(P, true);
				if (!v || nl_push(P, &l, v, NULL, 0))
					break;
			}
		}
		if (!nd || P->rc) {
			nl_free(&l);
			return NULL;
		}
		advance(P);
		nl_finish(P, &l, nd, 0, false);
		return P->rc ? NULL : nd;
	}
	unexpected(P, "an expression");
	return NULL;
}

static struct node *parse_subscript_inner(struct parser *P)
{
	size_t off = cur(P)->off;
	struct node *parts[3] = { NULL, NULL, NULL };
	if (!tk_op(cur(P), ":")) {
		parts[0] = parse_expr(P, true);
		if (!parts[0] || !tk_op(cur(P), ":"))
			return parts[0];
	}
	advance(P); /* : */
	if (!tk_op(cur(P), "]") && !tk_op(cur(P), ",") && !tk_op(cur(P), ":")) {
		if (!(parts[1] = parse_expr(P, true)))
			return NULL;
	}
	if (tk_op(cur(P), ":")) {
		advance(P);
		if (!tk_op(cur(P), "]") && !tk_op(cur(P), ",")) {
			if (!(parts[2] = parse_expr(P, true)))
				return NULL;
		}
	}
	struct node *sl = new_node(P, N_SLICE, off);
	if (sl) {
		sl->b = parts[0];
		sl->c = parts[1];
		sl->d = parts[2];
	}
	return sl;
}

static struct node *parse_postfix(struct parser *P, struct node *nd)
{
	while (nd && !P->rc) {
		struct tok *t = cur(P);
		if (tk_op(t, ".")) {
			advance(P);
			struct tok *a = cur(P);
			if (a->type == TK_NAME) {
				struct node *g = new_node(P, N_GETATTR, a->off);
				if (!g)
					return NULL;
				g->a = nd;
				g->s = tok_str(P, a);
				g->sn = a->n;
				nd = g;
			} else if (a->type == TK_INT) {
				struct node *g = new_node(P, N_GETITEM, a->off), *k = new_node(P, N_CONST, a->off);
				if (!g || !k)
					return NULL;
				k->op = V_INT;
				k->i = a->i;
				g->a = nd;
				g->b = k;
				nd = g;
			} else {
				unexpected(P, "an attribute name");
				return NULL;
			}
			advance(P);
		} else if (tk_op(t, "[")) {
			advance(P);
			struct node *sub = parse_subscript_inner(P);
			if (!sub)
				return NULL;
			if (tk_op(cur(P), ",")) {
				perr(P, cur(P)->off, RWD_E_UNSUPPORTED, "tuple subscripts are not supported");
				return NULL;
			}
			if (!tk_op(cur(P), "]")) {
				unexpected(P, "']'");
				return NULL;
			}
			advance(P);
			if (sub->kind == N_SLICE) {
				sub->a = nd;
				nd = sub;
			} else {
				struct node *g = new_node(P, N_GETITEM, t->off);
				if (!g)
					return NULL;
				g->a = nd;
				g->b = sub;
				nd = g;
			}
		} else if (tk_op(t, "(")) {
			struct node *c = new_node(P, N_CALL, t->off);
			if (!c)
				return NULL;
			c->a = nd;
			if (parse_args(P, c))
				return NULL;
			nd = c;
		} else {
			break;
		}
	}
	return P->rc ? NULL : nd;
}

static struct node *parse_filter_expr(struct parser *P, struct node *nd)
{
	while (nd && !P->rc) {
		struct tok *t = cur(P);
		if (tk_op(t, "|")) {
			advance(P);
			struct tok *f = cur(P);
			if (f->type != TK_NAME) {
				unexpected(P, "a filter name");
				return NULL;
			}
			struct node *fl = new_node(P, N_FILTER, f->off);
			if (!fl)
				return NULL;
			fl->a = nd;
			fl->s = tok_str(P, f);
			fl->sn = f->n;
			fl->fn = lookup_named(FILTERS, f->p, f->n);
			if (!fl->fn) {
				perr(P, f->off, RWD_E_UNSUPPORTED, "filter '%.*s' is not supported", (int)(f->n < 40 ? f->n : 40), f->p);
				return NULL;
			}
			advance(P);
			if (tk_op(cur(P), ".")) {
				perr(P, cur(P)->off, RWD_E_UNSUPPORTED, "dotted filter names are not supported");
				return NULL;
			}
			if (tk_op(cur(P), "(") && parse_args(P, fl))
				return NULL;
			nd = fl;
		} else if (tk_name(t, "is")) {
			advance(P);
			bool neg = false;
			if (tk_name(cur(P), "not")) {
				neg = true;
				advance(P);
			}
			struct tok *f = cur(P);
			if (f->type != TK_NAME) {
				unexpected(P, "a test name");
				return NULL;
			}
			struct node *te = new_node(P, N_TEST, f->off);
			if (!te)
				return NULL;
			te->a = nd;
			te->op = neg;
			te->s = tok_str(P, f);
			te->sn = f->n;
			te->fn = lookup_named(TESTS, f->p, f->n);
			if (!te->fn) {
				perr(P, f->off, RWD_E_UNSUPPORTED, "test '%.*s' is not supported", (int)(f->n < 40 ? f->n : 40), f->p);
				return NULL;
			}
			advance(P);
			struct tok *x = cur(P);
			if (tk_op(x, "(")) {
				if (parse_args(P, te))
					return NULL;
			} else if ((x->type == TK_NAME || x->type == TK_STR || x->type == TK_INT || x->type == TK_FLOAT ||
				    tk_op(x, "(") || tk_op(x, "[") || tk_op(x, "{")) &&
				   !tk_name(x, "else") && !tk_name(x, "or") && !tk_name(x, "and")) {
				if (tk_name(x, "is")) {
					perr(P, x->off, RWD_E_FORMAT, "you cannot chain multiple tests with is");
					return NULL;
				}
				struct node *arg = parse_postfix(P, parse_primary(P));
				if (!arg)
					return NULL;
				te->kids = rwd_arena_alloc(P->t->mem, sizeof(*te->kids));
				if (!te->kids) {
					perr(P, x->off, RWD_E_NOMEM, "out of memory");
					return NULL;
				}
				te->kids[0] = arg;
				te->nkids = 1;
			}
			nd = te;
		} else if (tk_op(t, "(")) {
			struct node *c = new_node(P, N_CALL, t->off);
			if (!c)
				return NULL;
			c->a = nd;
			if (parse_args(P, c))
				return NULL;
			nd = c;
		} else {
			break;
		}
	}
	return P->rc ? NULL : nd;
}

static struct node *parse_unary(struct parser *P, bool with_filter)
{
	struct tok *t = cur(P);
	struct node *nd;
	if (enter(P))
		return NULL;
	if (tk_op(t, "-") || tk_op(t, "+")) {
		advance(P);
		nd = new_node(P, tk_op(t, "-") ? N_NEG : N_POS, t->off);
		struct node *x = parse_unary(P, false);
		if (!nd || !x)
			return NULL;
		nd->a = x;
	} else {
		nd = parse_primary(P);
	}
	nd = parse_postfix(P, nd);
	if (with_filter)
		nd = parse_filter_expr(P, nd);
	P->depth--;
	return nd;
}

static struct node *binop(struct parser *P, uint8_t op, struct node *a, struct node *b, size_t off)
{
	if (!a || !b)
		return NULL;
	struct node *nd = new_node(P, N_BINOP, off);
	if (nd) {
		nd->op = op;
		nd->a = a;
		nd->b = b;
	}
	return nd;
}

static struct node *parse_pow(struct parser *P)
{
	struct node *l = parse_unary(P, true);
	while (l && tk_op(cur(P), "**")) {
		size_t off = cur(P)->off;
		advance(P);
		l = binop(P, OP_POW, l, parse_unary(P, true), off);
	}
	return l;
}

static struct node *parse_math2(struct parser *P)
{
	struct node *l = parse_pow(P);
	for (;;) {
		struct tok *t = cur(P);
		uint8_t op = tk_op(t, "*") ? OP_MUL : tk_op(t, "/") ? OP_DIV : tk_op(t, "//") ? OP_FLOORDIV :
			tk_op(t, "%") ? OP_MOD : 0;
		if (!op || !l)
			return l;
		advance(P);
		l = binop(P, op, l, parse_pow(P), t->off);
	}
}

static struct node *parse_concat(struct parser *P)
{
	struct node *first = parse_math2(P);
	if (!first || !tk_op(cur(P), "~"))
		return first;
	struct node *nd = new_node(P, N_CONCAT, cur(P)->off);
	struct nlist l = { 0 };
	nl_push(P, &l, first, NULL, 0);
	while (nd && !P->rc && tk_op(cur(P), "~")) {
		advance(P);
		struct node *x = parse_math2(P);
		if (!x)
			break;
		nl_push(P, &l, x, NULL, 0);
	}
	if (!nd || P->rc) {
		nl_free(&l);
		return NULL;
	}
	nl_finish(P, &l, nd, 0, false);
	return P->rc ? NULL : nd;
}

static struct node *parse_math1(struct parser *P)
{
	struct node *l = parse_concat(P);
	for (;;) {
		struct tok *t = cur(P);
		uint8_t op = tk_op(t, "+") ? OP_ADD : tk_op(t, "-") ? OP_SUB : 0;
		if (!op || !l)
			return l;
		advance(P);
		l = binop(P, op, l, parse_concat(P), t->off);
	}
}

static struct node *parse_compare(struct parser *P)
{
	struct node *first = parse_math1(P);
	if (!first)
		return NULL;
	struct nlist l = { 0 };
	size_t off = cur(P)->off;
	for (;;) {
		struct tok *t = cur(P);
		uint8_t op = tk_op(t, "==") ? OP_EQ : tk_op(t, "!=") ? OP_NE : tk_op(t, "<") ? OP_LT :
			tk_op(t, "<=") ? OP_LE : tk_op(t, ">") ? OP_GT : tk_op(t, ">=") ? OP_GE :
			tk_name(t, "in") ? OP_IN : (tk_name(t, "not") && tk_name(peek(P, 1), "in")) ? OP_NOTIN : 0;
		if (!op)
			break;
		advance(P);
		if (op == OP_NOTIN)
			advance(P);
		struct node *x = parse_math1(P);
		if (!x || nl_push(P, &l, x, NULL, op))
			break;
	}
	if (P->rc) {
		nl_free(&l);
		return NULL;
	}
	if (!l.n) {
		nl_free(&l);
		return first;
	}
	struct node *nd = new_node(P, N_COMPARE, off);
	if (!nd) {
		nl_free(&l);
		return NULL;
	}
	nd->a = first;
	nl_finish(P, &l, nd, 0, true);
	return P->rc ? NULL : nd;
}

static struct node *parse_not(struct parser *P)
{
	if (tk_name(cur(P), "not")) {
		size_t off = cur(P)->off;
		advance(P);
		if (enter(P))
			return NULL;
		struct node *nd = new_node(P, N_NOT, off), *x = parse_not(P);
		P->depth--;
		if (!nd || !x)
			return NULL;
		nd->a = x;
		return nd;
	}
	return parse_compare(P);
}

static struct node *parse_and(struct parser *P)
{
	struct node *l = parse_not(P);
	while (l && tk_name(cur(P), "and")) {
		size_t off = cur(P)->off;
		advance(P);
		struct node *r = parse_not(P), *nd = new_node(P, N_AND, off);
		if (!r || !nd)
			return NULL;
		nd->a = l;
		nd->b = r;
		l = nd;
	}
	return l;
}

static struct node *parse_or(struct parser *P)
{
	struct node *l = parse_and(P);
	while (l && tk_name(cur(P), "or")) {
		size_t off = cur(P)->off;
		advance(P);
		struct node *r = parse_and(P), *nd = new_node(P, N_OR, off);
		if (!r || !nd)
			return NULL;
		nd->a = l;
		nd->b = r;
		l = nd;
	}
	return l;
}

static struct node *parse_expr(struct parser *P, bool condexpr)
{
	if (enter(P))
		return NULL;
	struct node *e = parse_or(P);
	while (condexpr && e && tk_name(cur(P), "if")) {
		size_t off = cur(P)->off;
		advance(P);
		struct node *c = parse_or(P), *nd = new_node(P, N_COND, off), *el = NULL;
		if (!c || !nd)
			return NULL;
		if (tk_name(cur(P), "else")) {
			advance(P);
			if (!(el = parse_expr(P, true)))
				return NULL;
		}
		nd->a = e;
		nd->b = c;
		nd->c = el;
		e = nd;
	}
	P->depth--;
	return P->rc ? NULL : e;
}

/* Assignment target: NAME, NAME.attr (namespace; with_ns), or a tuple of names. */
static struct node *parse_target(struct parser *P, bool with_ns, const char *end)
{
	struct nlist l = { 0 };
	size_t off = cur(P)->off;
	bool parens = tk_op(cur(P), "(");
	if (parens)
		advance(P);
	for (;;) {
		struct tok *t = cur(P);
		if (t->type != TK_NAME) {
			unexpected(P, "a variable name");
			break;
		}
		struct node *nd = new_node(P, N_NAME, t->off);
		if (!nd)
			break;
		nd->s = tok_str(P, t);
		nd->sn = t->n;
		advance(P);
		if (with_ns && !parens && !l.n && tk_op(cur(P), ".")) {
			advance(P);
			struct tok *a = cur(P);
			if (a->type != TK_NAME) {
				unexpected(P, "an attribute name");
				break;
			}
			struct node *g = new_node(P, N_GETATTR, a->off);
			if (!g)
				break;
			g->a = nd;
			g->s = tok_str(P, a);
			g->sn = a->n;
			advance(P);
			nl_free(&l);
			return P->rc ? NULL : g;
		}
		nl_push(P, &l, nd, NULL, 0);
		if (P->rc || !tk_op(cur(P), ","))
			break;
		advance(P);
		if ((parens && tk_op(cur(P), ")")) || (end && tk_name(cur(P), end)) || tk_op(cur(P), "="))
			break;
	}
	if (!P->rc && parens) {
		if (!tk_op(cur(P), ")"))
			unexpected(P, "')'");
		else
			advance(P);
	}
	if (P->rc) {
		nl_free(&l);
		return NULL;
	}
	if (l.n == 1 && !parens) {
		struct node *nd = l.v[0];
		nl_free(&l);
		return nd;
	}
	struct node *tu = new_node(P, N_TUPLE, off);
	if (!tu) {
		nl_free(&l);
		return NULL;
	}
	nl_finish(P, &l, tu, 0, false);
	return P->rc ? NULL : tu;
}

static int expect_bend(struct parser *P)
{
	if (cur(P)->type != TK_BEND)
		return unexpected(P, "end of statement block ('%}')");
	advance(P);
	return 0;
}

static struct node *parse_body(struct parser *P, const char *const *ends, int in_loop);

static bool name_in(const struct tok *t, const char *const *ends)
{
	for (size_t i = 0; ends && ends[i]; i++)
		if (tk_name(t, ends[i]))
			return true;
	return false;
}

static struct node *parse_if(struct parser *P, int in_loop)
{
	static const char *const ends[] = { "elif", "else", "endif", NULL };
	static const char *const end_only[] = { "endif", NULL };
	struct node *nd = new_node(P, N_IF, cur(P)->off);
	advance(P); /* if / elif */
	if (!nd)
		return NULL;
	nd->a = parse_tuple(P, false, NULL, false);
	if (!nd->a || expect_bend(P))
		return NULL;
	if (!(nd->b = parse_body(P, ends, in_loop)))
		return NULL;
	if (tk_name(cur(P), "elif")) {
		nd->c = parse_if(P, in_loop);
		return P->rc ? NULL : nd;
	}
	if (tk_name(cur(P), "else")) {
		advance(P);
		if (expect_bend(P) || !(nd->c = parse_body(P, end_only, in_loop)))
			return NULL;
	}
	advance(P); /* endif */
	if (expect_bend(P))
		return NULL;
	return nd;
}

/* {% call [(params)] macro(args) %}body{% endcall %}: the body becomes the macro `caller`. */
static struct node *parse_callblock(struct parser *P, int in_loop)
{
	size_t off = cur(P)->off;
	struct node *nd = new_node(P, N_CALLBLOCK, off), *cm = new_node(P, N_MACRO, off);
	advance(P); /* call */
	if (!nd || !cm)
		return NULL;
	cm->s = "caller";
	cm->sn = 6;
	struct nlist l = { 0 };
	if (tk_op(cur(P), "(")) {
		advance(P);
		while (!P->rc && !tk_op(cur(P), ")")) {
			if (l.n) {
				if (!tk_op(cur(P), ",")) {
					unexpected(P, "',' or ')'");
					break;
				}
				advance(P);
			}
			struct tok *a = cur(P);
			if (a->type != TK_NAME) {
				unexpected(P, "a parameter name");
				break;
			}
			const char *pn = tok_str(P, a);
			advance(P);
			struct node *def = NULL;
			if (tk_op(cur(P), "=")) {
				advance(P);
				if (!(def = parse_expr(P, true)))
					break;
			}
			nl_push(P, &l, def, pn, 0);
		}
		if (!P->rc)
			advance(P);
	}
	if (nl_finish(P, &l, cm, l.n, false))
		return NULL;
	struct node *call = parse_expr(P, true);
	if (!call)
		return NULL;
	if (call->kind != N_CALL)
		return perr(P, call->off, RWD_E_FORMAT, "{%% call %%} needs a macro call"), NULL;
	static const char *const ends[] = { "endcall", NULL };
	(void)in_loop;
	if (expect_bend(P) || !(cm->b = parse_body(P, ends, 0)))
		return NULL;
	advance(P);
	if (expect_bend(P))
		return NULL;
	nd->a = call;
	nd->b = cm;
	return nd;
}

static struct node *parse_statement(struct parser *P, int in_loop)
{
	struct tok *t = cur(P);
	size_t off = t->off;
	char b[64];
	if (t->type != TK_NAME)
		return unexpected(P, "a tag name"), NULL;
	if (tk_name(t, "if"))
		return parse_if(P, in_loop);
	if (tk_name(t, "for")) {
		static const char *const ends[] = { "endfor", "else", NULL };
		static const char *const end_only[] = { "endfor", NULL };
		struct node *nd = new_node(P, N_FOR, off);
		advance(P);
		if (!nd || !(nd->a = parse_target(P, false, "in")))
			return NULL;
		if (!tk_name(cur(P), "in"))
			return unexpected(P, "'in'"), NULL;
		advance(P);
		if (!(nd->b = parse_tuple(P, false, "recursive", false)))
			return NULL;
		if (tk_name(cur(P), "if")) {
			advance(P);
			if (!(nd->c = parse_expr(P, true)))
				return NULL;
		}
		if (tk_name(cur(P), "recursive"))
			return perr(P, cur(P)->off, RWD_E_UNSUPPORTED, "recursive loops are not supported"), NULL;
		if (expect_bend(P) || !(nd->d = parse_body(P, ends, 1)))
			return NULL;
		if (tk_name(cur(P), "else")) {
			advance(P);
			if (expect_bend(P) || !(nd->e = parse_body(P, end_only, in_loop)))
				return NULL;
		}
		advance(P);
		return expect_bend(P) ? NULL : nd;
	}
	if (tk_name(t, "set")) {
		advance(P);
		struct node *target = parse_target(P, true, NULL);
		if (!target)
			return NULL;
		if (tk_op(cur(P), "=")) {
			advance(P);
			struct node *nd = new_node(P, N_SET, off);
			if (!nd || !(nd->b = parse_tuple(P, true, NULL, false)))
				return NULL;
			nd->a = target;
			return expect_bend(P) ? NULL : nd;
		}
		if (tk_op(cur(P), "|"))
			return perr(P, cur(P)->off, RWD_E_UNSUPPORTED, "filters on block assignments are not supported"), NULL;
		if (target->kind != N_NAME)
			return perr(P, off, RWD_E_FORMAT, "a block assignment needs a plain name"), NULL;
		static const char *const ends[] = { "endset", NULL };
		struct node *nd = new_node(P, N_SETBLOCK, off);
		if (!nd || expect_bend(P) || !(nd->b = parse_body(P, ends, in_loop)))
			return NULL;
		nd->a = target;
		advance(P);
		return expect_bend(P) ? NULL : nd;
	}
	if (tk_name(t, "macro")) {
		advance(P);
		struct tok *nm = cur(P);
		if (nm->type != TK_NAME)
			return unexpected(P, "a macro name"), NULL;
		struct node *nd = new_node(P, N_MACRO, off);
		if (!nd)
			return NULL;
		nd->s = tok_str(P, nm);
		nd->sn = nm->n;
		advance(P);
		if (!tk_op(cur(P), "("))
			return unexpected(P, "'('"), NULL;
		advance(P);
		struct nlist l = { 0 };
		while (!P->rc && !tk_op(cur(P), ")")) {
			if (l.n) {
				if (!tk_op(cur(P), ",")) {
					unexpected(P, "',' or ')'");
					break;
				}
				advance(P);
				if (tk_op(cur(P), ")"))
					break;
			}
			struct tok *a = cur(P);
			if (a->type != TK_NAME) {
				unexpected(P, "a parameter name");
				break;
			}
			const char *pn = tok_str(P, a);
			advance(P);
			struct node *def = NULL;
			if (tk_op(cur(P), "=")) {
				advance(P);
				if (!(def = parse_expr(P, true)))
					break;
			}
			nl_push(P, &l, def, pn, 0);
		}
		if (P->rc) {
			nl_free(&l);
			return NULL;
		}
		advance(P); /* ) */
		if (nl_finish(P, &l, nd, l.n, false))
			return NULL;
		static const char *const ends[] = { "endmacro", NULL };
		if (expect_bend(P) || !(nd->b = parse_body(P, ends, 0)))
			return NULL;
		advance(P);
		if (cur(P)->type == TK_NAME)
			advance(P); /* {% endmacro name %} */
		return expect_bend(P) ? NULL : nd;
	}
	if (tk_name(t, "break") || tk_name(t, "continue")) {
		if (!in_loop)
			return perr(P, off, RWD_E_FORMAT, "'%.*s' outside a loop", (int)t->n, t->p), NULL;
		struct node *nd = new_node(P, tk_name(t, "break") ? N_BREAK : N_CONTINUE, off);
		advance(P);
		return expect_bend(P) ? NULL : nd;
	}
	if (tk_name(t, "generation")) {
		static const char *const ends[] = { "endgeneration", NULL };
		advance(P);
		struct node *body;
		if (expect_bend(P) || !(body = parse_body(P, ends, in_loop)))
			return NULL;
		advance(P);
		return expect_bend(P) ? NULL : body;
	}
	static const char *const unsupported[] = { "include", "import", "from", "extends", "block",
		"filter", "with", "autoescape", "do", "trans", "pluralize", NULL };
	if (tk_name(t, "call"))
		return parse_callblock(P, in_loop);
	if (name_in(t, unsupported))
		return perr(P, off, RWD_E_UNSUPPORTED, "the {%% %.*s %%} tag is not supported", (int)t->n, t->p), NULL;
	static const char *const stray[] = { "elif", "else", "endif", "endfor", "endset", "endmacro",
		"endgeneration", "endraw", "endcall", NULL };
	if (name_in(t, stray))
		return perr(P, off, RWD_E_FORMAT, "unexpected {%% %.*s %%}", (int)t->n, t->p), NULL;
	return perr(P, off, RWD_E_FORMAT, "unknown tag %s", tk_desc(t, b, sizeof(b))), NULL;
}

/* Statements until EOF (ends NULL) or a block tag named in ends (left current). */
static struct node *parse_body(struct parser *P, const char *const *ends, int in_loop)
{
	struct nlist l = { 0 };
	size_t off = cur(P)->off;
	struct node *blk = new_node(P, N_BLOCK, off);
	if (!blk || enter(P))
		return NULL;
	while (!P->rc) {
		struct tok *t = cur(P);
		if (t->type == TK_EOF) {
			if (ends) {
				char want[64];
				snprintf(want, sizeof(want), "{%% %s %%}", ends[0]);
				for (size_t i = 0; ends[i]; i++)
					if (strncmp(ends[i], "end", 3) == 0)
						snprintf(want, sizeof(want), "{%% %s %%}", ends[i]);
				perr(P, off, RWD_E_FORMAT, "block opened here is not closed: expected %s", want);
			}
			break;
		}
		struct node *st = NULL;
		if (t->type == TK_TEXT) {
			if ((st = new_node(P, N_TEXT, t->off))) {
				st->s = t->p;
				st->sn = t->n;
			}
			advance(P);
		} else if (t->type == TK_VBEGIN) {
			advance(P);
			st = new_node(P, N_OUTPUT, t->off);
			if (st && (st->a = parse_tuple(P, true, NULL, false)) && cur(P)->type != TK_VEND)
				unexpected(P, "'}}'");
			advance(P);
		} else if (t->type == TK_BBEGIN) {
			advance(P);
			if (name_in(cur(P), ends))
				break;
			st = parse_statement(P, in_loop);
		} else {
			unexpected(P, "template text or a tag");
		}
		if (st)
			nl_push(P, &l, st, NULL, 0);
	}
	P->depth--;
	nl_finish(P, &l, blk, 0, false);
	return P->rc ? NULL : blk;
}

void rwd_jinja_free(rwd_jinja *t)
{
	if (!t)
		return;
	rwd_arena_destroy(t->mem);
	free(t->src);
	free(t);
}

int rwd_jinja_compile(const char *src, size_t len, const rwd_jinja_limits *lim, rwd_jinja **out, rwd_error *err)
{
	*out = NULL;
	rwd_jinja_limits L = lim ? *lim : rwd_jinja_default_limits();
	if (len > L.max_template_bytes)
		return rwd_errorf(err, RWD_E_LIMIT, "chat template longer than %zu bytes", L.max_template_bytes);
	if (memchr(src, '\0', len))
		return rwd_errorf(err, RWD_E_FORMAT, "chat template contains a NUL byte");
	if (!utf8_valid(src, len))
		return rwd_errorf(err, RWD_E_FORMAT, "chat template is not valid UTF-8");
	struct parser P = { .err = err };
	rwd_jinja *t = calloc(1, sizeof(*t));
	if (!t || !(t->src = malloc(len + 1)) || !(t->mem = rwd_arena_create(0, 0))) {
		rwd_jinja_free(t);
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	}
	t->lim = L;
	/* Jinja reads \r\n and \r as \n and drops one trailing newline */
	size_t w = 0;
	for (size_t i = 0; i < len; i++) {
		if (src[i] == '\r' && i + 1 < len && src[i + 1] == '\n')
			continue;
		t->src[w++] = src[i] == '\r' ? '\n' : src[i];
	}
	if (w && t->src[w - 1] == '\n')
		w--;
	t->src[w] = '\0';
	t->n = w;
	P.t = t;
	P.s = t->src;
	P.n = w;
	if (!lex(&P))
		t->root = parse_body(&P, NULL, 0);
	free(P.toks);
	if (P.rc || !t->root) {
		int rc = P.rc ? P.rc : RWD_E_INTERNAL;
		rwd_jinja_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

/* ----------------------------------------------------------------- values */

struct list;
struct dict;
struct macro;
struct loopv;

struct value {
	uint8_t t;
	uint8_t tuple;   /* V_LIST: a tuple (repr with parentheses) */
	uint16_t id;     /* V_BUILTIN / V_METHOD: which */
	size_t n;        /* V_STR, V_UNDEF: bytes of u.s */
	union {
		int64_t i;          /* V_BOOL, V_INT */
		double f;           /* V_FLOAT */
		const char *s;      /* V_STR; V_UNDEF: the missing name or NULL */
		struct list *l;     /* V_LIST */
		struct dict *d;     /* V_DICT, V_NS */
		struct macro *m;    /* V_MACRO */
		struct value *self; /* V_METHOD: the bound object */
		struct loopv *lp;   /* V_LOOP */
	} u;
};

struct list {
	struct value *v;
	size_t n, cap;
};

struct dict {
	struct value *k, *v;
	size_t n, cap;
};

struct scope {
	struct scope *parent;
	struct dict vars;
};

struct macro {
	const struct node *nd;
	struct scope *closure;
};

struct loopv {
	struct list *items;
	size_t i;
};

enum builtin_id {
	B_RANGE = 1, B_DICT, B_NAMESPACE, B_RAISE, B_STRFTIME,
	/* str methods */
	M_STRIP, M_LSTRIP, M_RSTRIP, M_SPLIT, M_RSPLIT, M_STARTSWITH, M_ENDSWITH, M_REPLACE, M_UPPER, M_LOWER,
	M_TITLE, M_CAPITALIZE, M_FIND, M_COUNT, M_JOIN, M_SPLITLINES, M_ISDIGIT, M_ISSPACE, M_ISALPHA,
	M_ISALNUM, M_ISLOWER, M_ISUPPER,
	/* dict methods */
	M_ITEMS, M_KEYS, M_VALUES, M_GET,
	/* loop.cycle */
	M_CYCLE,
};

static const struct named STR_METHODS[] = {
	{ "strip", M_STRIP }, { "lstrip", M_LSTRIP }, { "rstrip", M_RSTRIP }, { "split", M_SPLIT },
	{ "rsplit", M_RSPLIT }, { "startswith", M_STARTSWITH }, { "endswith", M_ENDSWITH },
	{ "replace", M_REPLACE }, { "upper", M_UPPER }, { "lower", M_LOWER }, { "title", M_TITLE },
	{ "capitalize", M_CAPITALIZE }, { "find", M_FIND }, { "count", M_COUNT }, { "join", M_JOIN },
	{ "splitlines", M_SPLITLINES }, { "isdigit", M_ISDIGIT }, { "isspace", M_ISSPACE },
	{ "isalpha", M_ISALPHA }, { "isalnum", M_ISALNUM }, { "islower", M_ISLOWER }, { "isupper", M_ISUPPER },
	{ NULL, 0 },
};

static const struct named DICT_METHODS[] = {
	{ "items", M_ITEMS }, { "keys", M_KEYS }, { "values", M_VALUES }, { "get", M_GET }, { NULL, 0 },
};

/* Methods of str / dict / list that exist in Python but are not offered (or are unsafe). */
static const char *const STR_OTHER[] = { "format", "format_map", "encode", "center", "ljust", "rjust", "zfill",
	"partition", "rpartition", "index", "rindex", "rfind", "swapcase", "casefold", "expandtabs", "translate",
	"maketrans", "isdecimal", "isnumeric", "isidentifier", "isprintable", "istitle", "isascii",
	"removeprefix", "removesuffix", NULL };
static const char *const DICT_OTHER[] = { "pop", "popitem", "update", "clear", "setdefault", "copy",
	"fromkeys", NULL };
static const char *const LIST_OTHER[] = { "append", "pop", "insert", "extend", "remove", "sort", "reverse",
	"clear", "copy", "index", "count", NULL };

struct ctx {
	const rwd_jinja *t;
	rwd_arena *a;
	rwd_error *err;
	int rc;
	size_t steps, iters, work, depth;
	int flow; /* 1 break, 2 continue */
	struct value caller; /* V_MACRO for the next macro call from {% call %}, else V_UNDEF */
	time_t now;
	size_t max_out;
};

static int rerr(struct ctx *c, const struct node *nd, int code, const char *fmt, ...) RWD_PRINTF(4, 5);
static int rerr(struct ctx *c, const struct node *nd, int code, const char *fmt, ...)
{
	if (c->rc)
		return c->rc;
	char msg[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	int line = 0, col = 0;
	if (nd)
		where(c->t->src, nd->off, &line, &col);
	if (nd)
		rwd_errorf(c->err, code, "chat template line %d, column %d: %s", line, col, msg);
	else
		rwd_errorf(c->err, code, "chat template: %s", msg);
	c->rc = code;
	return code;
}

#define TRY(x)                         \
	do {                           \
		int rc_ = (x);         \
		if (rc_)               \
			return rc_;    \
	} while (0)

static void *ctx_alloc(struct ctx *c, const struct node *nd, size_t n)
{
	if (c->rc)
		return NULL;
	if (n > c->t->lim.max_work_bytes || c->work > c->t->lim.max_work_bytes - n) {
		rerr(c, nd, RWD_E_LIMIT, "intermediate values larger than %zu bytes", c->t->lim.max_work_bytes);
		return NULL;
	}
	c->work += n;
	void *p = rwd_arena_alloc(c->a, n ? n : 1);
	if (!p)
		rerr(c, nd, rwd_arena_over_limit(c->a) ? RWD_E_LIMIT : RWD_E_NOMEM, "out of memory");
	return p;
}

static struct value v_undef(const char *name, size_t n)
{
	struct value v = { .t = V_UNDEF, .n = n };
	v.u.s = name;
	return v;
}

static struct value v_none(void)
{
	return (struct value){ .t = V_NONE };
}

static struct value v_bool(bool b)
{
	struct value v = { .t = V_BOOL };
	v.u.i = b;
	return v;
}

static struct value v_int(int64_t i)
{
	struct value v = { .t = V_INT };
	v.u.i = i;
	return v;
}

static struct value v_float(double f)
{
	struct value v = { .t = V_FLOAT };
	v.u.f = f;
	return v;
}

static struct value v_str(const char *s, size_t n)
{
	struct value v = { .t = V_STR, .n = n };
	v.u.s = s;
	return v;
}

/* A string value copied from an sb (which is then emptied). */
static int v_from_sb(struct ctx *c, const struct node *nd, struct sb *b, struct value *out)
{
	if (b->rc) {
		int rc = b->rc;
		free(b->p);
		*b = (struct sb){ 0 };
		return rerr(c, nd, rc, rc == RWD_E_LIMIT ? "string longer than the output limit" : "out of memory");
	}
	char *p = ctx_alloc(c, nd, b->n + 1);
	if (!p) {
		free(b->p);
		*b = (struct sb){ 0 };
		return c->rc;
	}
	if (b->n)
		memcpy(p, b->p, b->n);
	p[b->n] = '\0';
	*out = v_str(p, b->n);
	free(b->p);
	*b = (struct sb){ 0 };
	return 0;
}

static struct list *list_new(struct ctx *c, const struct node *nd, size_t cap)
{
	struct list *l = ctx_alloc(c, nd, sizeof(*l));
	if (!l)
		return NULL;
	*l = (struct list){ 0 };
	if (cap) {
		if (cap > SIZE_MAX / sizeof(struct value) || !(l->v = ctx_alloc(c, nd, cap * sizeof(struct value))))
			return c->rc ? NULL : (rerr(c, nd, RWD_E_LIMIT, "list too long"), NULL);
		l->cap = cap;
	}
	return l;
}

static int list_push(struct ctx *c, const struct node *nd, struct list *l, struct value v)
{
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 4;
		struct value *nv = ctx_alloc(c, nd, nc * sizeof(*nv));
		if (!nv)
			return c->rc;
		if (l->n)
			memcpy(nv, l->v, l->n * sizeof(*nv));
		l->v = nv;
		l->cap = nc;
	}
	l->v[l->n++] = v;
	return 0;
}

/* memcpy of n values; n may be 0 with NULL pointers. */
static void vcopy(struct value *dst, const struct value *src, size_t n)
{
	if (n)
		memcpy(dst, src, n * sizeof(*dst));
}

static struct value v_list(struct list *l, bool tuple)
{
	struct value v = { .t = V_LIST, .tuple = tuple };
	v.u.l = l;
	return v;
}

static bool py_eq(const struct value *a, const struct value *b);

static struct value *dict_find(const struct dict *d, const struct value *k)
{
	for (size_t i = 0; i < d->n; i++)
		if (py_eq(&d->k[i], k))
			return &d->v[i];
	return NULL;
}

static struct value *dict_find_str(const struct dict *d, const char *s, size_t n)
{
	for (size_t i = 0; i < d->n; i++)
		if (d->k[i].t == V_STR && d->k[i].n == n && memcmp(d->k[i].u.s, s, n) == 0)
			return &d->v[i];
	return NULL;
}

static int dict_set(struct ctx *c, const struct node *nd, struct dict *d, struct value k, struct value v)
{
	struct value *x = dict_find(d, &k);
	if (x) {
		*x = v;
		return 0;
	}
	if (d->n == d->cap) {
		size_t nc = d->cap ? d->cap * 2 : 4;
		struct value *nk = ctx_alloc(c, nd, nc * sizeof(*nk)), *nv = nk ? ctx_alloc(c, nd, nc * sizeof(*nv)) : NULL;
		if (!nv)
			return c->rc;
		if (d->n) {
			memcpy(nk, d->k, d->n * sizeof(*nk));
			memcpy(nv, d->v, d->n * sizeof(*nv));
		}
		d->k = nk;
		d->v = nv;
		d->cap = nc;
	}
	d->k[d->n] = k;
	d->v[d->n] = v;
	d->n++;
	return 0;
}

static struct dict *dict_new(struct ctx *c, const struct node *nd)
{
	struct dict *d = ctx_alloc(c, nd, sizeof(*d));
	if (d)
		*d = (struct dict){ 0 };
	return d;
}

static const char *type_name(const struct value *v)
{
	switch (v->t) {
	case V_UNDEF: return "Undefined";
	case V_NONE: return "NoneType";
	case V_BOOL: return "bool";
	case V_INT: return "int";
	case V_FLOAT: return "float";
	case V_STR: return "str";
	case V_LIST: return v->tuple ? "tuple" : "list";
	case V_DICT: return "dict";
	case V_NS: return "Namespace";
	case V_MACRO: return "Macro";
	case V_BUILTIN: case V_METHOD: return "function";
	case V_LOOP: return "LoopContext";
	}
	return "?";
}

static bool truthy(const struct value *v)
{
	switch (v->t) {
	case V_UNDEF: case V_NONE: return false;
	case V_BOOL: case V_INT: return v->u.i != 0;
	case V_FLOAT: return v->u.f != 0.0;
	case V_STR: return v->n > 0;
	case V_LIST: return v->u.l->n > 0;
	case V_DICT: return v->u.d->n > 0;
	default: return true;
	}
}

static bool is_num(const struct value *v)
{
	return v->t == V_BOOL || v->t == V_INT || v->t == V_FLOAT;
}

static double num_f(const struct value *v)
{
	return v->t == V_FLOAT ? v->u.f : (double)v->u.i;
}

static bool py_eq(const struct value *a, const struct value *b)
{
	if (is_num(a) && is_num(b)) {
		if (a->t != V_FLOAT && b->t != V_FLOAT)
			return a->u.i == b->u.i;
		return num_f(a) == num_f(b);
	}
	if (a->t != b->t)
		return false;
	switch (a->t) {
	case V_UNDEF: case V_NONE: return true;
	case V_STR: return a->n == b->n && memcmp(a->u.s, b->u.s, a->n) == 0;
	case V_LIST:
		if (a->tuple != b->tuple || a->u.l->n != b->u.l->n)
			return false;
		for (size_t i = 0; i < a->u.l->n; i++)
			if (!py_eq(&a->u.l->v[i], &b->u.l->v[i]))
				return false;
		return true;
	case V_DICT:
		if (a->u.d->n != b->u.d->n)
			return false;
		for (size_t i = 0; i < a->u.d->n; i++) {
			struct value *x = dict_find(b->u.d, &a->u.d->k[i]);
			if (!x || !py_eq(&a->u.d->v[i], x))
				return false;
		}
		return true;
	case V_NS: return a->u.d == b->u.d;
	case V_MACRO: return a->u.m == b->u.m;
	case V_BUILTIN: return a->id == b->id;
	default: return a == b;
	}
}

/* Python ordering: *out < 0, 0, > 0; an error for types Python cannot order. */
static int py_cmp(struct ctx *c, const struct node *nd, const struct value *a, const struct value *b, int *out)
{
	if (is_num(a) && is_num(b)) {
		if (a->t != V_FLOAT && b->t != V_FLOAT)
			*out = a->u.i < b->u.i ? -1 : a->u.i > b->u.i;
		else
			*out = num_f(a) < num_f(b) ? -1 : num_f(a) > num_f(b);
		return 0;
	}
	if (a->t == V_STR && b->t == V_STR) {
		size_t m = a->n < b->n ? a->n : b->n;
		int r = memcmp(a->u.s, b->u.s, m);
		*out = r ? r : a->n < b->n ? -1 : a->n > b->n;
		return 0;
	}
	if (a->t == V_LIST && b->t == V_LIST && a->tuple == b->tuple) {
		size_t m = a->u.l->n < b->u.l->n ? a->u.l->n : b->u.l->n;
		for (size_t i = 0; i < m; i++) {
			if (py_eq(&a->u.l->v[i], &b->u.l->v[i]))
				continue;
			return py_cmp(c, nd, &a->u.l->v[i], &b->u.l->v[i], out);
		}
		*out = a->u.l->n < b->u.l->n ? -1 : a->u.l->n > b->u.l->n;
		return 0;
	}
	if (a->t == V_UNDEF || b->t == V_UNDEF)
		return rerr(c, nd, RWD_E_INVALID, "'%.*s' is undefined", (int)(a->t == V_UNDEF ? a->n : b->n),
			(a->t == V_UNDEF ? a->u.s : b->u.s) ? (a->t == V_UNDEF ? a->u.s : b->u.s) : "");
	return rerr(c, nd, RWD_E_INVALID, "'<' not supported between instances of '%s' and '%s'", type_name(a),
		type_name(b));
}

/* ----------------------------------------------------- str() and repr() */

static void fmt_float(struct sb *b, double d)
{
	if (isnan(d)) {
		sb_puts(b, "nan");
		return;
	}
	if (isinf(d)) {
		sb_puts(b, d < 0 ? "-inf" : "inf");
		return;
	}
	if (d == 0) {
		sb_puts(b, signbit(d) ? "-0.0" : "0.0");
		return;
	}
	char buf[64];
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*e", prec - 1, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	/* buf: [-]D[.DDD]e[+-]XX */
	char digits[32];
	size_t nd = 0;
	const char *p = buf;
	bool neg = *p == '-';
	if (neg)
		p++;
	for (; *p && *p != 'e'; p++)
		if (*p != '.' && nd + 1 < sizeof(digits))
			digits[nd++] = *p;
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	int e = atoi(p + 1);
	if (neg)
		sb_putc(b, '-');
	if (e >= -4 && e < 16) {
		if (e >= 0) {
			for (int i = 0; i <= e; i++)
				sb_putc(b, (size_t)i < nd ? digits[i] : '0');
			sb_putc(b, '.');
			if ((size_t)e + 1 < nd)
				sb_put(b, digits + e + 1, nd - (size_t)e - 1);
			else
				sb_putc(b, '0');
		} else {
			sb_puts(b, "0.");
			for (int i = 0; i < -e - 1; i++)
				sb_putc(b, '0');
			sb_put(b, digits, nd);
		}
	} else {
		sb_putc(b, digits[0]);
		if (nd > 1) {
			sb_putc(b, '.');
			sb_put(b, digits + 1, nd - 1);
		}
		sb_printf(b, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
	}
}

/* Python's str.isprintable() for one code point (approximated with utf8proc categories). */
static bool cp_printable(int32_t cp)
{
	if (cp == ' ')
		return true;
	switch (utf8proc_category(cp)) {
	case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS:
	case UTF8PROC_CATEGORY_CO: case UTF8PROC_CATEGORY_CN: case UTF8PROC_CATEGORY_ZL:
	case UTF8PROC_CATEGORY_ZP: case UTF8PROC_CATEGORY_ZS:
		return false;
	default:
		return true;
	}
}

static void repr_str(struct sb *b, const char *s, size_t n)
{
	bool sq = memchr(s, '\'', n) != NULL, dq = memchr(s, '"', n) != NULL;
	char q = sq && !dq ? '"' : '\'';
	sb_putc(b, q);
	size_t i = 0;
	while (i < n) {
		utf8proc_int32_t cp;
		utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
		if (l <= 0) {
			cp = (unsigned char)s[i];
			l = 1;
		}
		if (cp == q || cp == '\\') {
			sb_putc(b, '\\');
			sb_putc(b, (char)cp);
		} else if (cp == '\n') {
			sb_puts(b, "\\n");
		} else if (cp == '\r') {
			sb_puts(b, "\\r");
		} else if (cp == '\t') {
			sb_puts(b, "\\t");
		} else if (!cp_printable(cp)) {
			if (cp < 0x100)
				sb_printf(b, "\\x%02x", (unsigned)cp);
			else if (cp < 0x10000)
				sb_printf(b, "\\u%04x", (unsigned)cp);
			else
				sb_printf(b, "\\U%08x", (unsigned)cp);
		} else {
			sb_put(b, s + i, (size_t)l);
		}
		i += (size_t)l;
	}
	sb_putc(b, q);
}

static int to_str(struct ctx *c, const struct node *nd, const struct value *v, struct sb *b, bool repr);

static int repr_seq(struct ctx *c, const struct node *nd, const struct value *v, struct sb *b)
{
	if (v->t == V_LIST) {
		sb_putc(b, v->tuple ? '(' : '[');
		for (size_t i = 0; i < v->u.l->n; i++) {
			if (i)
				sb_puts(b, ", ");
			TRY(to_str(c, nd, &v->u.l->v[i], b, true));
		}
		if (v->tuple && v->u.l->n == 1)
			sb_putc(b, ',');
		sb_putc(b, v->tuple ? ')' : ']');
		return 0;
	}
	sb_putc(b, '{');
	for (size_t i = 0; i < v->u.d->n; i++) {
		if (i)
			sb_puts(b, ", ");
		TRY(to_str(c, nd, &v->u.d->k[i], b, true));
		sb_puts(b, ": ");
		TRY(to_str(c, nd, &v->u.d->v[i], b, true));
	}
	sb_putc(b, '}');
	return 0;
}

/* Append Python's str(v) (or repr(v)) to b. */
static int to_str(struct ctx *c, const struct node *nd, const struct value *v, struct sb *b, bool repr)
{
	if (c->depth > c->t->lim.max_depth)
		return rerr(c, nd, RWD_E_LIMIT, "value nested deeper than %zu", c->t->lim.max_depth);
	switch (v->t) {
	case V_UNDEF:
		if (repr)
			sb_puts(b, "Undefined");
		return 0;
	case V_NONE: sb_puts(b, "None"); return 0;
	case V_BOOL: sb_puts(b, v->u.i ? "True" : "False"); return 0;
	case V_INT: sb_printf(b, "%lld", (long long)v->u.i); return 0;
	case V_FLOAT: fmt_float(b, v->u.f); return 0;
	case V_STR:
		if (repr)
			repr_str(b, v->u.s, v->n);
		else
			sb_put(b, v->u.s, v->n);
		return 0;
	case V_LIST:
	case V_DICT: {
		c->depth++;
		int rc = repr_seq(c, nd, v, b);
		c->depth--;
		return rc;
	}
	case V_NS: {
		sb_puts(b, "<Namespace ");
		struct value d = *v;
		d.t = V_DICT;
		c->depth++;
		int rc = repr_seq(c, nd, &d, b);
		c->depth--;
		sb_putc(b, '>');
		return rc;
	}
	default:
		return rerr(c, nd, RWD_E_UNSUPPORTED, "cannot convert a %s to a string", type_name(v));
	}
}

/* The text of v: a borrowed pointer for strings, a new string otherwise. */
static int str_of(struct ctx *c, const struct node *nd, const struct value *v, struct value *out)
{
	if (v->t == V_STR) {
		*out = *v;
		return 0;
	}
	struct sb b = { .max = c->max_out };
	TRY(to_str(c, nd, v, &b, false));
	return v_from_sb(c, nd, &b, out);
}

/* ------------------------------------------------------------- json dumps */

struct jopts {
	const char *indent; /* NULL: no indent */
	size_t indent_n;
	const char *item_sep, *key_sep;
	size_t item_n, key_n;
	bool sort_keys;
};

static void json_str(struct sb *b, const char *s, size_t n)
{
	sb_putc(b, '"');
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch >= 0x20 && ch != '"' && ch != '\\')
			continue;
		sb_put(b, s + run, i - run);
		run = i + 1;
		switch (ch) {
		case '"': sb_puts(b, "\\\""); break;
		case '\\': sb_puts(b, "\\\\"); break;
		case '\n': sb_puts(b, "\\n"); break;
		case '\r': sb_puts(b, "\\r"); break;
		case '\t': sb_puts(b, "\\t"); break;
		case '\b': sb_puts(b, "\\b"); break;
		case '\f': sb_puts(b, "\\f"); break;
		default: sb_printf(b, "\\u%04x", ch);
		}
	}
	sb_put(b, s + run, n - run);
	sb_putc(b, '"');
}

static void json_nl(struct sb *b, const struct jopts *o, size_t level)
{
	sb_putc(b, '\n');
	for (size_t i = 0; i < level; i++)
		sb_put(b, o->indent, o->indent_n);
}

static int json_dump(struct ctx *c, const struct node *nd, const struct value *v, const struct jopts *o,
	size_t level, struct sb *b)
{
	if (level > c->t->lim.max_depth)
		return rerr(c, nd, RWD_E_LIMIT, "value nested deeper than %zu", c->t->lim.max_depth);
	switch (v->t) {
	case V_NONE: sb_puts(b, "null"); return 0;
	case V_BOOL: sb_puts(b, v->u.i ? "true" : "false"); return 0;
	case V_INT: sb_printf(b, "%lld", (long long)v->u.i); return 0;
	case V_FLOAT:
		if (isnan(v->u.f))
			sb_puts(b, "NaN");
		else if (isinf(v->u.f))
			sb_puts(b, v->u.f < 0 ? "-Infinity" : "Infinity");
		else
			fmt_float(b, v->u.f);
		return 0;
	case V_STR: json_str(b, v->u.s, v->n); return 0;
	case V_LIST: {
		struct list *l = v->u.l;
		if (!l->n) {
			sb_puts(b, "[]");
			return 0;
		}
		sb_putc(b, '[');
		for (size_t i = 0; i < l->n; i++) {
			if (i)
				sb_put(b, o->item_sep, o->item_n);
			if (o->indent)
				json_nl(b, o, level + 1);
			TRY(json_dump(c, nd, &l->v[i], o, level + 1, b));
		}
		if (o->indent)
			json_nl(b, o, level);
		sb_putc(b, ']');
		return 0;
	}
	case V_DICT: {
		struct dict *d = v->u.d;
		if (!d->n) {
			sb_puts(b, "{}");
			return 0;
		}
		size_t *ord = malloc(d->n * sizeof(*ord));
		if (!ord)
			return rerr(c, nd, RWD_E_NOMEM, "out of memory");
		for (size_t i = 0; i < d->n; i++)
			ord[i] = i;
		if (o->sort_keys) {
			for (size_t i = 1; i < d->n; i++) { /* insertion sort: stable, small dicts */
				size_t x = ord[i], j = i;
				while (j > 0) {
					int r = 0;
					if (py_cmp(c, nd, &d->k[ord[j - 1]], &d->k[x], &r)) {
						free(ord);
						return c->rc;
					}
					if (r <= 0)
						break;
					ord[j] = ord[j - 1];
					j--;
				}
				ord[j] = x;
			}
		}
		sb_putc(b, '{');
		int rc = 0;
		for (size_t k = 0; k < d->n && !rc; k++) {
			size_t i = ord[k];
			if (k)
				sb_put(b, o->item_sep, o->item_n);
			if (o->indent)
				json_nl(b, o, level + 1);
			const struct value *key = &d->k[i];
			if (key->t == V_STR) {
				json_str(b, key->u.s, key->n);
			} else if (key->t == V_NONE || key->t == V_BOOL || key->t == V_INT || key->t == V_FLOAT) {
				struct sb kb = { .max = 64 };
				if (key->t == V_FLOAT)
					fmt_float(&kb, key->u.f);
				else if (key->t == V_INT)
					sb_printf(&kb, "%lld", (long long)key->u.i);
				else
					sb_puts(&kb, key->t == V_NONE ? "null" : key->u.i ? "true" : "false");
				json_str(b, kb.p ? kb.p : "", kb.n);
				free(kb.p);
			} else {
				rc = rerr(c, nd, RWD_E_INVALID, "keys must be str, int, float, bool or None, not %s",
					type_name(key));
				break;
			}
			sb_put(b, o->key_sep, o->key_n);
			rc = json_dump(c, nd, &d->v[i], o, level + 1, b);
		}
		free(ord);
		if (rc)
			return rc;
		if (o->indent)
			json_nl(b, o, level);
		sb_putc(b, '}');
		return 0;
	}
	default:
		return rerr(c, nd, RWD_E_INVALID, "Object of type %s is not JSON serializable", type_name(v));
	}
}

/* ---------------------------------------------------------- JSON -> value */

static int from_json(struct ctx *c, const json_t *j, size_t depth, struct value *out)
{
	if (depth > 256)
		return rerr(c, NULL, RWD_E_LIMIT, "input JSON nested deeper than 256");
	switch (json_typeof(j)) {
	case JSON_NULL: *out = v_none(); return 0;
	case JSON_TRUE: *out = v_bool(true); return 0;
	case JSON_FALSE: *out = v_bool(false); return 0;
	case JSON_INTEGER: *out = v_int((int64_t)json_integer_value(j)); return 0;
	case JSON_REAL: *out = v_float(json_real_value(j)); return 0;
	case JSON_STRING: *out = v_str(json_string_value(j), json_string_length(j)); return 0;
	case JSON_ARRAY: {
		size_t n = json_array_size(j);
		struct list *l = list_new(c, NULL, n);
		if (!l)
			return c->rc;
		for (size_t i = 0; i < n; i++)
			TRY(from_json(c, json_array_get(j, i), depth + 1, &l->v[i]));
		l->n = n;
		*out = v_list(l, false);
		return 0;
	}
	case JSON_OBJECT: {
		struct dict *d = dict_new(c, NULL);
		if (!d)
			return c->rc;
		const char *k;
		json_t *x;
		size_t n = json_object_size(j);
		if (n) {
			d->k = ctx_alloc(c, NULL, n * sizeof(*d->k));
			d->v = d->k ? ctx_alloc(c, NULL, n * sizeof(*d->v)) : NULL;
			if (!d->v)
				return c->rc;
			d->cap = n;
		}
		json_object_foreach((json_t *)j, k, x) {
			d->k[d->n] = v_str(k, strlen(k));
			TRY(from_json(c, x, depth + 1, &d->v[d->n]));
			d->n++;
		}
		out->t = V_DICT;
		out->u.d = d;
		return 0;
	}
	}
	return rerr(c, NULL, RWD_E_INVALID, "unknown JSON value");
}

/* ---------------------------------------------------------- str helpers */

/* Byte offsets of every code point of s, plus n at the end; *ncp code points. */
static size_t *cp_offsets(struct ctx *c, const struct node *nd, const char *s, size_t n, size_t *ncp)
{
	size_t k = cp_count(s, n);
	size_t *off = ctx_alloc(c, nd, (k + 1) * sizeof(*off));
	if (!off)
		return NULL;
	size_t j = 0;
	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			off[j++] = i;
	off[j] = n;
	*ncp = k;
	return off;
}

static bool cp_in(const char *set, size_t sn, const char *cp, size_t cl)
{
	for (size_t i = 0; i < sn; i += cp_len(set + i))
		if (cp_len(set + i) == cl && memcmp(set + i, cp, cl) == 0)
			return true;
	return false;
}

/* Python str.strip/lstrip/rstrip(chars); chars NULL = whitespace. */
static struct value py_strip(struct value s, const char *chars, size_t cn, bool left, bool right)
{
	const char *p = s.u.s;
	size_t n = s.n;
	while (left && n) {
		size_t l = chars ? (cp_in(chars, cn, p, cp_len(p)) ? cp_len(p) : 0) :
				   py_space_len((const unsigned char *)p, n);
		if (!l)
			break;
		p += l, n -= l;
	}
	while (right && n) {
		size_t st = cp_start(p, n);
		bool sp = chars ? cp_in(chars, cn, p + st, n - st) :
				  py_space_len((const unsigned char *)p + st, n - st) == n - st;
		if (!sp)
			break;
		n = st;
	}
	return v_str(p, n);
}

static int32_t cp_at(const char *s, size_t n, size_t *len)
{
	utf8proc_int32_t cp;
	utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &cp);
	if (l <= 0) {
		*len = 1;
		return (unsigned char)*s;
	}
	*len = (size_t)l;
	return cp;
}

static bool cp_cased(int32_t cp)
{
	utf8proc_category_t k = utf8proc_category(cp);
	return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT;
}

static bool cp_alpha(int32_t cp)
{
	utf8proc_category_t k = utf8proc_category(cp);
	return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}

static bool cp_digit(int32_t cp)
{
	return utf8proc_category(cp) == UTF8PROC_CATEGORY_ND;
}

static bool cp_alnum(int32_t cp)
{
	utf8proc_category_t k = utf8proc_category(cp);
	return cp_alpha(cp) || (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO);
}

/* 0 upper, 1 lower, 2 title, 3 capitalize */
static int case_map(struct ctx *c, const struct node *nd, struct value s, int mode, struct value *out)
{
	struct sb b = { .max = c->max_out };
	bool prev_cased = false, first = true;
	for (size_t i = 0; i < s.n;) {
		size_t l;
		int32_t cp = cp_at(s.u.s + i, s.n - i, &l), m = cp;
		if (mode == 0)
			m = utf8proc_toupper(cp);
		else if (mode == 1)
			m = utf8proc_tolower(cp);
		else if (mode == 2)
			m = prev_cased ? utf8proc_tolower(cp) : utf8proc_totitle(cp);
		else
			m = first ? utf8proc_totitle(cp) : utf8proc_tolower(cp);
		if (mode == 3 && first)
			m = utf8proc_toupper(cp) == cp ? utf8proc_totitle(cp) : utf8proc_toupper(cp);
		prev_cased = cp_cased(cp);
		first = false;
		sb_put_cp(&b, m);
		i += l;
	}
	return v_from_sb(c, nd, &b, out);
}

static const char *mem_find(const char *h, size_t hn, const char *nd, size_t nn)
{
	if (nn == 0)
		return h;
	if (nn > hn)
		return NULL;
	return memmem(h, hn, nd, nn);
}

static const char *mem_rfind(const char *h, size_t hn, const char *nd, size_t nn)
{
	if (nn > hn)
		return NULL;
	for (size_t i = hn - nn + 1; i-- > 0;)
		if (memcmp(h + i, nd, nn) == 0)
			return h + i;
	return NULL;
}

/* Python str.split / rsplit. */
static int py_split(struct ctx *c, const struct node *nd, struct value s, const struct value *sep, int64_t maxsplit,
	bool right, struct value *out)
{
	struct list *l = list_new(c, nd, 0);
	if (!l)
		return c->rc;
	const char *p = s.u.s;
	size_t n = s.n;
	if (!sep || sep->t == V_NONE) {
		/* runs of whitespace; no empty strings */
		struct list *tmp = list_new(c, nd, 0);
		if (!tmp)
			return c->rc;
		if (!right) {
			size_t i = 0;
			while (i < n) {
				size_t w;
				while (i < n && (w = py_space_len((const unsigned char *)p + i, n - i)))
					i += w;
				if (i >= n)
					break;
				if (maxsplit >= 0 && (int64_t)l->n == maxsplit) {
					TRY(list_push(c, nd, l, v_str(p + i, n - i)));
					break;
				}
				size_t st = i;
				while (i < n && !py_space_len((const unsigned char *)p + i, n - i))
					i += cp_len(p + i);
				TRY(list_push(c, nd, l, v_str(p + st, i - st)));
			}
		} else {
			size_t e = n;
			while (e > 0) {
				while (e > 0 && py_space_len((const unsigned char *)p + cp_start(p, e), e - cp_start(p, e)) ==
						       e - cp_start(p, e))
					e = cp_start(p, e);
				if (e == 0)
					break;
				if (maxsplit >= 0 && (int64_t)tmp->n == maxsplit) {
					TRY(list_push(c, nd, tmp, v_str(p, e)));
					break;
				}
				size_t st = e;
				while (st > 0 && py_space_len((const unsigned char *)p + cp_start(p, st), st - cp_start(p, st)) !=
							 st - cp_start(p, st))
					st = cp_start(p, st);
				TRY(list_push(c, nd, tmp, v_str(p + st, e - st)));
				e = st;
			}
			for (size_t i = tmp->n; i-- > 0;)
				TRY(list_push(c, nd, l, tmp->v[i]));
		}
		*out = v_list(l, false);
		return 0;
	}
	if (sep->t != V_STR)
		return rerr(c, nd, RWD_E_INVALID, "must be str or None, not %s", type_name(sep));
	if (sep->n == 0)
		return rerr(c, nd, RWD_E_INVALID, "empty separator");
	if (!right) {
		size_t i = 0;
		for (;;) {
			const char *f = (maxsplit < 0 || (int64_t)l->n < maxsplit) ? mem_find(p + i, n - i, sep->u.s, sep->n) : NULL;
			if (!f) {
				TRY(list_push(c, nd, l, v_str(p + i, n - i)));
				break;
			}
			TRY(list_push(c, nd, l, v_str(p + i, (size_t)(f - (p + i)))));
			i = (size_t)(f - p) + sep->n;
		}
	} else {
		struct list *tmp = list_new(c, nd, 0);
		if (!tmp)
			return c->rc;
		size_t e = n;
		for (;;) {
			const char *f = (maxsplit < 0 || (int64_t)tmp->n < maxsplit) ? mem_rfind(p, e, sep->u.s, sep->n) : NULL;
			if (!f) {
				TRY(list_push(c, nd, tmp, v_str(p, e)));
				break;
			}
			size_t fs = (size_t)(f - p);
			TRY(list_push(c, nd, tmp, v_str(f + sep->n, e - fs - sep->n)));
			e = fs;
		}
		for (size_t i = tmp->n; i-- > 0;)
			TRY(list_push(c, nd, l, tmp->v[i]));
	}
	*out = v_list(l, false);
	return 0;
}

/* Python str.splitlines() (without keepends). */
static int py_splitlines(struct ctx *c, const struct node *nd, struct value s, struct list **out)
{
	struct list *l = list_new(c, nd, 0);
	if (!l)
		return c->rc;
	const char *p = s.u.s;
	size_t n = s.n, st = 0, i = 0;
	while (i < n) {
		size_t cl;
		int32_t cp = cp_at(p + i, n - i, &cl);
		bool br = cp == '\n' || cp == '\r' || cp == 0x0b || cp == 0x0c || cp == 0x1c || cp == 0x1d ||
			cp == 0x1e || cp == 0x85 || cp == 0x2028 || cp == 0x2029;
		if (!br) {
			i += cl;
			continue;
		}
		TRY(list_push(c, nd, l, v_str(p + st, i - st)));
		i += cl;
		if (cp == '\r' && i < n && p[i] == '\n')
			i++;
		st = i;
	}
	if (st < n)
		TRY(list_push(c, nd, l, v_str(p + st, n - st)));
	*out = l;
	return 0;
}

static int py_replace(struct ctx *c, const struct node *nd, struct value s, struct value old, struct value new_,
	int64_t count, struct value *out)
{
	struct sb b = { .max = c->max_out };
	size_t i = 0;
	int64_t done = 0;
	if (old.n == 0) {
		while (count < 0 || done < count) {
			sb_put(&b, new_.u.s, new_.n);
			done++;
			if (i >= s.n)
				break;
			size_t l = cp_len(s.u.s + i);
			sb_put(&b, s.u.s + i, l);
			i += l;
		}
		sb_put(&b, s.u.s + i, s.n - i);
		return v_from_sb(c, nd, &b, out);
	}
	while (count < 0 || done < count) {
		const char *f = mem_find(s.u.s + i, s.n - i, old.u.s, old.n);
		if (!f)
			break;
		sb_put(&b, s.u.s + i, (size_t)(f - (s.u.s + i)));
		sb_put(&b, new_.u.s, new_.n);
		i = (size_t)(f - s.u.s) + old.n;
		done++;
		if (b.rc)
			break;
	}
	sb_put(&b, s.u.s + i, s.n - i);
	return v_from_sb(c, nd, &b, out);
}

/* ------------------------------------------------------------- arguments */

struct args {
	struct value *v;    /* positional, then keyword values */
	const char **names; /* keyword names */
	size_t npos, nkw;
};

static const struct value *arg(const struct args *a, size_t i, const char *name)
{
	if (i < a->npos)
		return &a->v[i];
	for (size_t k = 0; name && k < a->nkw; k++)
		if (strcmp(a->names[k], name) == 0)
			return &a->v[a->npos + k];
	return NULL;
}

static int want_str(struct ctx *c, const struct node *nd, const struct value *v, const char *what)
{
	if (!v || v->t != V_STR)
		return rerr(c, nd, RWD_E_INVALID, "%s must be a string, not %s", what, v ? type_name(v) : "missing");
	return 0;
}

static int want_int(struct ctx *c, const struct node *nd, const struct value *v, const char *what, int64_t *out)
{
	if (!v || (v->t != V_INT && v->t != V_BOOL))
		return rerr(c, nd, RWD_E_INVALID, "%s must be an integer, not %s", what, v ? type_name(v) : "missing");
	*out = v->u.i;
	return 0;
}

static int eval(struct ctx *c, const struct node *nd, struct scope *sc, struct value *out);
static int iterate(struct ctx *c, const struct node *nd, const struct value *v, struct list **out);
static int exec_node(struct ctx *c, const struct node *nd, struct scope *sc, struct sb *o);

static int eval_args(struct ctx *c, const struct node *nd, struct scope *sc, struct args *a)
{
	size_t npos = nd->nkids - nd->nnames;
	*a = (struct args){ .npos = npos, .nkw = nd->nnames, .names = nd->names };
	if (!nd->nkids)
		return 0;
	bool splat = false;
	for (size_t i = 0; i < npos; i++)
		splat = splat || nd->kids[i]->kind == N_SPLAT;
	if (!splat) {
		a->v = ctx_alloc(c, nd, nd->nkids * sizeof(*a->v));
		if (!a->v)
			return c->rc;
		for (size_t i = 0; i < nd->nkids; i++)
			TRY(eval(c, nd->kids[i], sc, &a->v[i]));
		return 0;
	}
	/* f(x, *seq, k=v): positional values expanded in order, then the keywords */
	struct list *l = list_new(c, nd, 0);
	if (!l)
		return c->rc;
	for (size_t i = 0; i < nd->nkids; i++) {
		struct value v;
		const struct node *k = nd->kids[i];
		TRY(eval(c, k->kind == N_SPLAT ? k->a : k, sc, &v));
		if (k->kind == N_SPLAT) {
			struct list *items;
			TRY(iterate(c, k, &v, &items));
			for (size_t j = 0; j < items->n; j++)
				TRY(list_push(c, nd, l, items->v[j]));
		} else {
			TRY(list_push(c, nd, l, v));
		}
	}
	a->v = l->v;
	a->npos = l->n - nd->nnames;
	return 0;
}

static int undefined_err(struct ctx *c, const struct node *nd, const struct value *v)
{
	if (v->u.s)
		return rerr(c, nd, RWD_E_INVALID, "'%.*s' is undefined", (int)(v->n < 60 ? v->n : 60), v->u.s);
	return rerr(c, nd, RWD_E_INVALID, "undefined value used");
}

/* ---------------------------------------------------------- attributes */

static bool name_is(const char *s, size_t n, const char *lit)
{
	return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

static bool name_listed(const char *s, size_t n, const char *const *list)
{
	for (size_t i = 0; list[i]; i++)
		if (name_is(s, n, list[i]))
			return true;
	return false;
}

static int bind_method(struct ctx *c, const struct node *nd, const struct value *self, uint16_t id, struct value *out)
{
	struct value *s = ctx_alloc(c, nd, sizeof(*s));
	if (!s)
		return c->rc;
	*s = *self;
	*out = (struct value){ .t = V_METHOD, .id = id };
	out->u.self = s;
	return 0;
}

/* obj.name, as Jinja's sandboxed getattr: attribute first, then item. */
static int get_attr(struct ctx *c, const struct node *nd, const struct value *v, const char *s, size_t n, struct value *out)
{
	if (n && s[0] == '_')
		return rerr(c, nd, RWD_E_INVALID, "access to attribute '%.*s' is unsafe", (int)(n < 60 ? n : 60), s);
	switch (v->t) {
	case V_UNDEF:
		return undefined_err(c, nd, v);
	case V_DICT: {
		uint16_t m = lookup_named(DICT_METHODS, s, n);
		if (m)
			return bind_method(c, nd, v, m, out);
		if (name_listed(s, n, DICT_OTHER))
			return rerr(c, nd, RWD_E_UNSUPPORTED, "dict.%.*s is not supported", (int)n, s);
		struct value *x = dict_find_str(v->u.d, s, n);
		*out = x ? *x : v_undef(s, n);
		return 0;
	}
	case V_NS: {
		struct value *x = dict_find_str(v->u.d, s, n);
		*out = x ? *x : v_undef(s, n);
		return 0;
	}
	case V_STR: {
		uint16_t m = lookup_named(STR_METHODS, s, n);
		if (m)
			return bind_method(c, nd, v, m, out);
		if (name_listed(s, n, STR_OTHER))
			return rerr(c, nd, RWD_E_UNSUPPORTED, "str.%.*s is not supported", (int)n, s);
		*out = v_undef(s, n);
		return 0;
	}
	case V_LIST:
		if (name_listed(s, n, LIST_OTHER))
			return rerr(c, nd, RWD_E_UNSUPPORTED, "list.%.*s is not supported", (int)n, s);
		*out = v_undef(s, n);
		return 0;
	case V_LOOP: {
		struct loopv *lp = v->u.lp;
		size_t i = lp->i, len = lp->items->n;
		if (name_is(s, n, "index"))
			*out = v_int((int64_t)i + 1);
		else if (name_is(s, n, "index0"))
			*out = v_int((int64_t)i);
		else if (name_is(s, n, "revindex"))
			*out = v_int((int64_t)(len - i));
		else if (name_is(s, n, "revindex0"))
			*out = v_int((int64_t)(len - i - 1));
		else if (name_is(s, n, "first"))
			*out = v_bool(i == 0);
		else if (name_is(s, n, "last"))
			*out = v_bool(i + 1 == len);
		else if (name_is(s, n, "length"))
			*out = v_int((int64_t)len);
		else if (name_is(s, n, "depth"))
			*out = v_int(1);
		else if (name_is(s, n, "depth0"))
			*out = v_int(0);
		else if (name_is(s, n, "previtem"))
			*out = i > 0 ? lp->items->v[i - 1] : v_undef("previtem", 8);
		else if (name_is(s, n, "nextitem"))
			*out = i + 1 < len ? lp->items->v[i + 1] : v_undef("nextitem", 8);
		else if (name_is(s, n, "cycle"))
			return bind_method(c, nd, v, M_CYCLE, out);
		else
			return rerr(c, nd, RWD_E_UNSUPPORTED, "loop.%.*s is not supported", (int)(n < 60 ? n : 60), s);
		return 0;
	}
	default:
		*out = v_undef(s, n);
		return 0;
	}
}

/* Python index normalisation for one item. */
static bool norm_index(int64_t i, size_t len, size_t *out)
{
	if (i < 0)
		i += (int64_t)len;
	if (i < 0 || (uint64_t)i >= len)
		return false;
	*out = (size_t)i;
	return true;
}

/* obj[key], as Jinja's sandboxed getitem: item first, then attribute. */
static int get_item(struct ctx *c, const struct node *nd, const struct value *v, const struct value *k, struct value *out)
{
	size_t idx;
	switch (v->t) {
	case V_UNDEF:
		return undefined_err(c, nd, v);
	case V_DICT: {
		struct value *x = dict_find(v->u.d, k);
		if (x) {
			*out = *x;
			return 0;
		}
		break;
	}
	case V_NS:
		if (k->t == V_STR)
			return get_attr(c, nd, v, k->u.s, k->n, out);
		*out = v_undef(NULL, 0);
		return 0;
	case V_LIST:
		if (k->t == V_INT || k->t == V_BOOL) {
			*out = norm_index(k->u.i, v->u.l->n, &idx) ? v->u.l->v[idx] : v_undef(NULL, 0);
			return 0;
		}
		break;
	case V_STR:
		if (k->t == V_INT || k->t == V_BOOL) {
			size_t ncp;
			size_t *off = cp_offsets(c, nd, v->u.s, v->n, &ncp);
			if (!off)
				return c->rc;
			*out = norm_index(k->u.i, ncp, &idx) ? v_str(v->u.s + off[idx], off[idx + 1] - off[idx]) :
							       v_undef(NULL, 0);
			return 0;
		}
		break;
	default:
		break;
	}
	if (k->t == V_STR)
		return get_attr(c, nd, v, k->u.s, k->n, out);
	*out = v_undef(NULL, 0);
	return 0;
}

static int slice_bound(struct ctx *c, const struct node *nd, const struct value *v, bool *set, int64_t *out)
{
	*set = false;
	if (!v || v->t == V_NONE)
		return 0;
	TRY(want_int(c, nd, v, "slice index", out));
	*set = true;
	return 0;
}

static int do_slice(struct ctx *c, const struct node *nd, const struct value *v, const struct value *a,
	const struct value *b, const struct value *s, struct value *out)
{
	if (v->t == V_UNDEF)
		return undefined_err(c, nd, v);
	if (v->t != V_STR && v->t != V_LIST)
		return rerr(c, nd, RWD_E_INVALID, "'%s' object is not subscriptable", type_name(v));
	int64_t start = 0, stop = 0, step = 1;
	bool hs, he, hp;
	TRY(slice_bound(c, nd, a, &hs, &start));
	TRY(slice_bound(c, nd, b, &he, &stop));
	TRY(slice_bound(c, nd, s, &hp, &step));
	if (!hp)
		step = 1;
	if (step == 0)
		return rerr(c, nd, RWD_E_INVALID, "slice step cannot be zero");
	size_t ncp = 0, *off = NULL;
	if (v->t == V_STR) {
		if (!(off = cp_offsets(c, nd, v->u.s, v->n, &ncp)))
			return c->rc;
	} else {
		ncp = v->u.l->n;
	}
	int64_t len = (int64_t)ncp;
	if (!hs) {
		start = step < 0 ? len - 1 : 0;
	} else {
		if (start < 0)
			start += len;
		if (start < 0)
			start = step < 0 ? -1 : 0;
		else if (start >= len)
			start = step < 0 ? len - 1 : len;
	}
	if (!he) {
		stop = step < 0 ? -1 : len;
	} else {
		if (stop < 0)
			stop += len;
		if (stop < 0)
			stop = step < 0 ? -1 : 0;
		else if (stop >= len)
			stop = step < 0 ? len - 1 : len;
	}
	int64_t cnt = 0;
	if (step > 0 && start < stop)
		cnt = (stop - start - 1) / step + 1;
	else if (step < 0 && stop < start)
		cnt = (start - stop - 1) / (-step) + 1;
	if (v->t == V_STR) {
		if (step == 1) {
			*out = cnt ? v_str(v->u.s + off[start], off[start + cnt] - off[start]) : v_str("", 0);
			return 0;
		}
		struct sb sb = { .max = c->max_out };
		for (int64_t k = 0, i = start; k < cnt; k++, i += step)
			sb_put(&sb, v->u.s + off[i], off[i + 1] - off[i]);
		return v_from_sb(c, nd, &sb, out);
	}
	struct list *l = list_new(c, nd, (size_t)cnt);
	if (!l)
		return c->rc;
	for (int64_t k = 0, i = start; k < cnt; k++, i += step)
		l->v[l->n++] = v->u.l->v[i];
	*out = v_list(l, v->tuple);
	return 0;
}

/* The items iterating over v gives (for loops, filters). */
static int iterate(struct ctx *c, const struct node *nd, const struct value *v, struct list **out)
{
	switch (v->t) {
	case V_UNDEF:
		*out = list_new(c, nd, 0);
		return c->rc;
	case V_LIST:
		*out = v->u.l;
		return 0;
	case V_DICT: {
		struct list *l = list_new(c, nd, v->u.d->n);
		if (!l)
			return c->rc;
		vcopy(l->v, v->u.d->k, v->u.d->n);
		l->n = v->u.d->n;
		*out = l;
		return 0;
	}
	case V_STR: {
		size_t k = cp_count(v->u.s, v->n);
		struct list *l = list_new(c, nd, k);
		if (!l)
			return c->rc;
		for (size_t i = 0; i < v->n; i += cp_len(v->u.s + i))
			l->v[l->n++] = v_str(v->u.s + i, cp_len(v->u.s + i));
		*out = l;
		return 0;
	}
	default:
		return rerr(c, nd, RWD_E_INVALID, "'%s' object is not iterable", type_name(v));
	}
}

/* ------------------------------------------------------------ arithmetic */

static int binop_eval(struct ctx *c, const struct node *nd, int op, const struct value *a, const struct value *b,
	struct value *out)
{
	if (a->t == V_UNDEF)
		return undefined_err(c, nd, a);
	if (b->t == V_UNDEF)
		return undefined_err(c, nd, b);
	if (is_num(a) && is_num(b)) {
		bool fl = a->t == V_FLOAT || b->t == V_FLOAT;
		int64_t x = a->u.i, y = b->u.i, r;
		double fx = num_f(a), fy = num_f(b);
		switch (op) {
		case OP_ADD:
			if (fl)
				*out = v_float(fx + fy);
			else if (__builtin_add_overflow(x, y, &r))
				return rerr(c, nd, RWD_E_UNSUPPORTED, "integer overflow");
			else
				*out = v_int(r);
			return 0;
		case OP_SUB:
			if (fl)
				*out = v_float(fx - fy);
			else if (__builtin_sub_overflow(x, y, &r))
				return rerr(c, nd, RWD_E_UNSUPPORTED, "integer overflow");
			else
				*out = v_int(r);
			return 0;
		case OP_MUL:
			if (fl)
				*out = v_float(fx * fy);
			else if (__builtin_mul_overflow(x, y, &r))
				return rerr(c, nd, RWD_E_UNSUPPORTED, "integer overflow");
			else
				*out = v_int(r);
			return 0;
		case OP_DIV:
			if (fy == 0)
				return rerr(c, nd, RWD_E_INVALID, "division by zero");
			*out = v_float(fx / fy);
			return 0;
		case OP_FLOORDIV:
		case OP_MOD:
			if (fl ? fy == 0 : y == 0)
				return rerr(c, nd, RWD_E_INVALID, "integer division or modulo by zero");
			if (fl) {
				double m = fmod(fx, fy);
				if (m != 0 && ((fy < 0) != (m < 0)))
					m += fy;
				if (op == OP_MOD) {
					*out = v_float(m);
				} else {
					double div = (fx - m) / fy, fd;
					if (div != 0) {
						fd = floor(div);
						if (div - fd > 0.5)
							fd += 1.0;
					} else {
						fd = copysign(0.0, fx / fy);
					}
					*out = v_float(fd);
				}
			} else {
				if (x == INT64_MIN && y == -1)
					return rerr(c, nd, RWD_E_UNSUPPORTED, "integer overflow");
				int64_t q = x / y, m = x % y;
				if (m != 0 && ((m < 0) != (y < 0))) {
					q--;
					m += y;
				}
				*out = v_int(op == OP_MOD ? m : q);
			}
			return 0;
		case OP_POW:
			if (fl || y < 0) {
				*out = v_float(pow(fx, fy));
				return 0;
			}
			r = 1;
			for (int64_t k = 0; k < y; k++) {
				if (__builtin_mul_overflow(r, x, &r))
					return rerr(c, nd, RWD_E_UNSUPPORTED, "integer overflow");
				if (r == 0 || r == 1)
					break;
			}
			*out = v_int(r);
			return 0;
		}
	}
	if (op == OP_ADD && a->t == V_STR && b->t == V_STR) {
		size_t n = a->n + b->n;
		if (n > c->max_out)
			return rerr(c, nd, RWD_E_LIMIT, "string longer than %zu bytes", c->max_out);
		char *p = ctx_alloc(c, nd, n + 1);
		if (!p)
			return c->rc;
		memcpy(p, a->u.s, a->n);
		memcpy(p + a->n, b->u.s, b->n);
		p[n] = '\0';
		*out = v_str(p, n);
		return 0;
	}
	if (op == OP_ADD && a->t == V_LIST && b->t == V_LIST && a->tuple == b->tuple) {
		struct list *l = list_new(c, nd, a->u.l->n + b->u.l->n);
		if (!l)
			return c->rc;
		vcopy(l->v, a->u.l->v, a->u.l->n);
		if (b->u.l->n)
			vcopy(l->v + a->u.l->n, b->u.l->v, b->u.l->n);
		l->n = a->u.l->n + b->u.l->n;
		*out = v_list(l, a->tuple);
		return 0;
	}
	if (op == OP_MUL && (((a->t == V_STR || a->t == V_LIST) && (b->t == V_INT || b->t == V_BOOL)) ||
			     ((b->t == V_STR || b->t == V_LIST) && (a->t == V_INT || a->t == V_BOOL)))) {
		const struct value *seq = a->t == V_STR || a->t == V_LIST ? a : b, *k = seq == a ? b : a;
		int64_t times = k->u.i < 0 ? 0 : k->u.i;
		size_t unit = seq->t == V_STR ? seq->n : seq->u.l->n;
		if (unit && (uint64_t)times > c->max_out / unit)
			return rerr(c, nd, RWD_E_LIMIT, "repeated sequence longer than %zu", c->max_out);
		if (seq->t == V_STR) {
			struct sb sb = { .max = c->max_out };
			for (int64_t i = 0; i < times; i++)
				sb_put(&sb, seq->u.s, seq->n);
			if (!sb.p)
				return *out = v_str("", 0), 0;
			return v_from_sb(c, nd, &sb, out);
		}
		struct list *l = list_new(c, nd, unit * (size_t)times);
		if (!l)
			return c->rc;
		for (int64_t i = 0; i < times; i++)
			for (size_t j = 0; j < unit; j++)
				l->v[l->n++] = seq->u.l->v[j];
		*out = v_list(l, seq->tuple);
		return 0;
	}
	if (op == OP_MOD && a->t == V_STR)
		return rerr(c, nd, RWD_E_UNSUPPORTED, "printf-style string formatting is not supported");
	static const char *const sym[] = { "", "+", "-", "*", "/", "//", "%", "**" };
	return rerr(c, nd, RWD_E_INVALID, "unsupported operand type(s) for %s: '%s' and '%s'", sym[op], type_name(a),
		type_name(b));
}

static int contains(struct ctx *c, const struct node *nd, const struct value *item, const struct value *seq, bool *out)
{
	switch (seq->t) {
	case V_STR:
		if (item->t == V_UNDEF)
			return undefined_err(c, nd, item);
		if (item->t != V_STR)
			return rerr(c, nd, RWD_E_INVALID, "'in <string>' requires string as left operand, not %s",
				type_name(item));
		*out = mem_find(seq->u.s, seq->n, item->u.s, item->n) != NULL;
		return 0;
	case V_LIST:
		*out = false;
		for (size_t i = 0; i < seq->u.l->n; i++)
			if (py_eq(item, &seq->u.l->v[i])) {
				*out = true;
				break;
			}
		return 0;
	case V_DICT:
	case V_NS:
		*out = dict_find(seq->u.d, item) != NULL;
		return 0;
	case V_UNDEF:
		*out = false;
		return 0;
	default:
		return rerr(c, nd, RWD_E_INVALID, "argument of type '%s' is not iterable", type_name(seq));
	}
}

static int compare(struct ctx *c, const struct node *nd, int op, const struct value *a, const struct value *b, bool *out)
{
	int r;
	switch (op) {
	case OP_EQ: *out = py_eq(a, b); return 0;
	case OP_NE: *out = !py_eq(a, b); return 0;
	case OP_IN: return contains(c, nd, a, b, out);
	case OP_NOTIN: TRY(contains(c, nd, a, b, out)); *out = !*out; return 0;
	default:
		TRY(py_cmp(c, nd, a, b, &r));
		*out = op == OP_LT ? r < 0 : op == OP_LE ? r <= 0 : op == OP_GT ? r > 0 : r >= 0;
		return 0;
	}
}

/* ------------------------------------------------------------------ tests */

static int run_test(struct ctx *c, const struct node *nd, uint16_t id, const struct value *v, const struct args *a,
	bool *out)
{
	const struct value *x = arg(a, 0, NULL);
	int r;
	switch (id) {
	case T_DEFINED: *out = v->t != V_UNDEF; return 0;
	case T_UNDEFINED: *out = v->t == V_UNDEF; return 0;
	case T_NONE: *out = v->t == V_NONE; return 0;
	case T_BOOLEAN: *out = v->t == V_BOOL; return 0;
	case T_FALSE: *out = v->t == V_BOOL && !v->u.i; return 0;
	case T_TRUE: *out = v->t == V_BOOL && v->u.i; return 0;
	case T_INTEGER: *out = v->t == V_INT; return 0;
	case T_FLOAT: *out = v->t == V_FLOAT; return 0;
	case T_NUMBER: *out = is_num(v); return 0;
	case T_STRING: *out = v->t == V_STR; return 0;
	case T_MAPPING: *out = v->t == V_DICT; return 0;
	case T_ITERABLE:
	case T_SEQUENCE:
		*out = v->t == V_STR || v->t == V_LIST || v->t == V_DICT || v->t == V_UNDEF;
		return 0;
	case T_CALLABLE: *out = v->t == V_MACRO || v->t == V_BUILTIN || v->t == V_METHOD; return 0;
	case T_LOWER:
	case T_UPPER: {
		if (v->t != V_STR)
			return rerr(c, nd, RWD_E_INVALID, "'%s' object has no attribute '%s'", type_name(v),
				id == T_LOWER ? "islower" : "isupper");
		bool cased = false, ok = true;
		for (size_t i = 0; i < v->n;) {
			size_t l;
			int32_t cp = cp_at(v->u.s + i, v->n - i, &l);
			utf8proc_category_t k = utf8proc_category(cp);
			if (k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LT) {
				if (id == T_LOWER)
					ok = false;
				cased = true;
			} else if (k == UTF8PROC_CATEGORY_LL) {
				if (id == T_UPPER)
					ok = false;
				cased = true;
			}
			i += l;
		}
		*out = ok && cased;
		return 0;
	}
	case T_ODD:
	case T_EVEN:
	case T_DIVISIBLEBY: {
		int64_t k = 2, n = 0;
		if (id == T_DIVISIBLEBY)
			TRY(want_int(c, nd, x, "divisibleby's argument", &k));
		TRY(want_int(c, nd, v, "the tested value", &n));
		if (k == 0)
			return rerr(c, nd, RWD_E_INVALID, "integer division or modulo by zero");
		int64_t m = k == -1 ? 0 : n % k;
		*out = id == T_ODD ? m != 0 : m == 0;
		return 0;
	}
	case T_SAMEAS:
		if (!x)
			return rerr(c, nd, RWD_E_INVALID, "sameas needs an argument");
		if (v->t != x->t)
			*out = false;
		else if (v->t == V_NONE || v->t == V_UNDEF)
			*out = true;
		else if (v->t == V_BOOL)
			*out = v->u.i == x->u.i;
		else if (v->t == V_STR)
			*out = v->u.s == x->u.s && v->n == x->n;
		else
			*out = memcmp(&v->u, &x->u, sizeof(v->u)) == 0;
		return 0;
	case T_EQ: case T_NE: case T_LT: case T_LE: case T_GT: case T_GE: case T_IN: {
		if (!x)
			return rerr(c, nd, RWD_E_INVALID, "the test needs an argument");
		static const uint8_t map[] = { [T_EQ] = OP_EQ, [T_NE] = OP_NE, [T_LT] = OP_LT, [T_LE] = OP_LE,
			[T_GT] = OP_GT, [T_GE] = OP_GE, [T_IN] = OP_IN };
		return compare(c, nd, map[id], v, x, out);
	}
	}
	(void)r;
	return rerr(c, nd, RWD_E_INTERNAL, "unknown test");
}

/* ---------------------------------------------------------------- filters */

static int apply_filter(struct ctx *c, const struct node *nd, uint16_t id, const struct value *v, const struct args *a,
	struct value *out);

/* Dotted attribute path as Jinja's make_attrgetter (items first, integer parts as indexes). */
static int attr_path(struct ctx *c, const struct node *nd, const struct value *v, const struct value *path,
	const struct value *dflt, struct value *out)
{
	TRY(want_str(c, nd, path, "attribute"));
	struct value cur_ = *v;
	const char *p = path->u.s;
	size_t n = path->n, i = 0;
	while (i <= n) {
		const char *dot = memchr(p + i, '.', n - i);
		size_t e = dot ? (size_t)(dot - p) : n;
		struct value key = v_str(p + i, e - i), next;
		bool num = e > i;
		for (size_t k = i; k < e; k++)
			num = num && is_digit(p[k]);
		if (num) {
			int64_t x = 0;
			for (size_t k = i; k < e && x < INT64_MAX / 10 - 10; k++)
				x = x * 10 + (p[k] - '0');
			key = v_int(x);
		}
		TRY(get_item(c, nd, &cur_, &key, &next));
		cur_ = next;
		if (cur_.t == V_UNDEF && dflt) {
			cur_ = *dflt;
			break;
		}
		if (!dot)
			break;
		i = e + 1;
		if (cur_.t == V_UNDEF)
			return undefined_err(c, nd, &cur_);
	}
	*out = cur_;
	return 0;
}

static int lower_key(struct ctx *c, const struct node *nd, const struct value *v, bool case_sensitive, struct value *out)
{
	if (v->t == V_STR && !case_sensitive)
		return case_map(c, nd, *v, 1, out);
	*out = *v;
	return 0;
}

/* Stable merge sort of items by keys (Python's sorted is stable). */
static int sort_values(struct ctx *c, const struct node *nd, struct value *items, struct value *keys, size_t n,
	bool reverse)
{
	if (n < 2)
		return 0;
	struct value *ti = ctx_alloc(c, nd, n * sizeof(*ti)), *tk = ti ? ctx_alloc(c, nd, n * sizeof(*tk)) : NULL;
	if (!tk)
		return c->rc;
	for (size_t w = 1; w < n; w *= 2) {
		for (size_t lo = 0; lo < n; lo += 2 * w) {
			size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
			size_t i = lo, j = mid, k = lo;
			while (i < mid && j < hi) {
				int r;
				TRY(py_cmp(c, nd, &keys[j], &keys[i], &r));
				bool take_right = reverse ? r > 0 : r < 0;
				if (take_right) {
					ti[k] = items[j];
					tk[k++] = keys[j++];
				} else {
					ti[k] = items[i];
					tk[k++] = keys[i++];
				}
			}
			while (i < mid) {
				ti[k] = items[i];
				tk[k++] = keys[i++];
			}
			while (j < hi) {
				ti[k] = items[j];
				tk[k++] = keys[j++];
			}
		}
		memcpy(items, ti, n * sizeof(*ti));
		memcpy(keys, tk, n * sizeof(*tk));
	}
	return 0;
}

static int filter_select(struct ctx *c, const struct node *nd, uint16_t id, const struct value *v, const struct args *a,
	struct value *out)
{
	bool byattr = id == F_SELECTATTR || id == F_REJECTATTR, want = id == F_SELECT || id == F_SELECTATTR;
	struct list *items;
	TRY(iterate(c, nd, v, &items));
	size_t first = byattr ? 1 : 0;
	const struct value *attr = byattr ? arg(a, 0, NULL) : NULL;
	if (byattr && !attr)
		return rerr(c, nd, RWD_E_INVALID, "missing attribute name");
	const struct value *tname = arg(a, first, NULL);
	uint16_t tid = 0;
	if (tname) {
		TRY(want_str(c, nd, tname, "test name"));
		if (!(tid = lookup_named(TESTS, tname->u.s, tname->n)))
			return rerr(c, nd, RWD_E_UNSUPPORTED, "test '%.*s' is not supported", (int)tname->n, tname->u.s);
	}
	struct args ta = { .v = a->npos > first + 1 ? a->v + first + 1 : NULL,
		.npos = a->npos > first + 1 ? a->npos - first - 1 : 0 };
	struct list *l = list_new(c, nd, 0);
	if (!l)
		return c->rc;
	for (size_t i = 0; i < items->n; i++) {
		struct value x = items->v[i];
		if (byattr)
			TRY(attr_path(c, nd, &items->v[i], attr, NULL, &x));
		bool ok;
		if (tid)
			TRY(run_test(c, nd, tid, &x, &ta, &ok));
		else
			ok = truthy(&x);
		if (ok == want)
			TRY(list_push(c, nd, l, items->v[i]));
	}
	*out = v_list(l, false);
	return 0;
}

static bool is_true_arg(const struct value *v)
{
	return v && truthy(v);
}

static int filter_indent(struct ctx *c, const struct node *nd, const struct value *v, const struct args *a,
	struct value *out)
{
	struct value s, ind;
	TRY(str_of(c, nd, v, &s));
	const struct value *w = arg(a, 0, "width");
	struct sb ib = { .max = 4096 };
	if (w && w->t == V_STR) {
		sb_put(&ib, w->u.s, w->n);
	} else {
		int64_t k = 4;
		if (w)
			TRY(want_int(c, nd, w, "width", &k));
		for (int64_t i = 0; i < k && !ib.rc; i++)
			sb_putc(&ib, ' ');
	}
	TRY(v_from_sb(c, nd, &ib, &ind));
	bool first = is_true_arg(arg(a, 1, "first")), blank = is_true_arg(arg(a, 2, "blank"));
	struct value s2;
	struct value nl = v_str("\n", 1);
	TRY(binop_eval(c, nd, OP_ADD, &s, &nl, &s2));
	struct list *lines;
	TRY(py_splitlines(c, nd, s2, &lines));
	struct sb b = { .max = c->max_out };
	if (first)
		sb_put(&b, ind.u.s, ind.n);
	for (size_t i = 0; i < lines->n; i++) {
		if (i) {
			sb_putc(&b, '\n');
			if (blank || lines->v[i].n)
				sb_put(&b, ind.u.s, ind.n);
		}
		sb_put(&b, lines->v[i].u.s, lines->v[i].n);
	}
	if (!b.p)
		return *out = v_str("", 0), 0;
	return v_from_sb(c, nd, &b, out);
}

static int to_int(struct ctx *c, const struct node *nd, const struct value *v, const struct value *dflt, struct value *out)
{
	switch (v->t) {
	case V_INT: *out = *v; return 0;
	case V_BOOL: *out = v_int(v->u.i); return 0;
	case V_FLOAT:
		if (isnan(v->u.f) || isinf(v->u.f) || fabs(v->u.f) >= 9.2e18)
			break;
		*out = v_int((int64_t)v->u.f);
		return 0;
	case V_STR: {
		char buf[64];
		struct value t = py_strip(*v, NULL, 0, true, true);
		if (t.n && t.n < sizeof(buf)) {
			size_t k = 0;
			for (size_t i = 0; i < t.n; i++)
				if (t.u.s[i] != '_')
					buf[k++] = t.u.s[i];
			buf[k] = '\0';
			char *end;
			long long x = strtoll(buf, &end, 10);
			if (*end == '\0' && end != buf && !(buf[0] == '+' && buf[1] == '\0')) {
				*out = v_int(x);
				return 0;
			}
			double d = strtod(buf, &end);
			if (*end == '\0' && end != buf && !isnan(d) && !isinf(d) && fabs(d) < 9.2e18) {
				*out = v_int((int64_t)d);
				return 0;
			}
		}
		break;
	}
	default:
		break;
	}
	*out = dflt ? *dflt : v_int(0);
	return 0;
}

static int to_float(struct ctx *c, const struct node *nd, const struct value *v, const struct value *dflt, struct value *out)
{
	(void)c;
	(void)nd;
	if (is_num(v)) {
		*out = v_float(num_f(v));
		return 0;
	}
	if (v->t == V_STR) {
		char buf[64];
		struct value t = py_strip(*v, NULL, 0, true, true);
		if (t.n && t.n < sizeof(buf)) {
			memcpy(buf, t.u.s, t.n);
			buf[t.n] = '\0';
			char *end;
			double d = strtod(buf, &end);
			if (*end == '\0' && !(t.n >= 2 && (buf[1] == 'x' || buf[1] == 'X'))) {
				*out = v_float(d);
				return 0;
			}
		}
	}
	*out = dflt ? *dflt : v_float(0.0);
	return 0;
}

static int filter_tojson(struct ctx *c, const struct node *nd, const struct value *v, const struct args *a,
	struct value *out)
{
	struct jopts o = { .item_sep = ", ", .item_n = 2, .key_sep = ": ", .key_n = 2 };
	const struct value *ea = arg(a, 0, "ensure_ascii"), *ind = arg(a, 1, "indent"),
			   *sep = arg(a, 2, "separators"), *sk = arg(a, 3, "sort_keys");
	if (ea && truthy(ea))
		return rerr(c, nd, RWD_E_UNSUPPORTED, "tojson(ensure_ascii=true) is not supported");
	char spaces[256];
	if (ind && ind->t != V_NONE) {
		if (ind->t == V_STR) {
			o.indent = ind->u.s;
			o.indent_n = ind->n;
		} else {
			int64_t k = 0;
			TRY(want_int(c, nd, ind, "indent", &k));
			if (k > (int64_t)sizeof(spaces))
				return rerr(c, nd, RWD_E_LIMIT, "indent larger than %zu", sizeof(spaces));
			if (k < 0)
				k = 0;
			memset(spaces, ' ', (size_t)k);
			o.indent = spaces;
			o.indent_n = (size_t)k;
		}
		o.item_sep = ",";
		o.item_n = 1;
	}
	if (sep && sep->t != V_NONE) {
		if (sep->t != V_LIST || sep->u.l->n != 2 || sep->u.l->v[0].t != V_STR || sep->u.l->v[1].t != V_STR)
			return rerr(c, nd, RWD_E_INVALID, "separators must be a pair of strings");
		o.item_sep = sep->u.l->v[0].u.s;
		o.item_n = sep->u.l->v[0].n;
		o.key_sep = sep->u.l->v[1].u.s;
		o.key_n = sep->u.l->v[1].n;
	}
	o.sort_keys = sk && truthy(sk);
	struct sb b = { .max = c->max_out };
	int rc = json_dump(c, nd, v, &o, 0, &b);
	if (rc) {
		free(b.p);
		return rc;
	}
	return v_from_sb(c, nd, &b, out);
}

static int filter_minmax(struct ctx *c, const struct node *nd, uint16_t id, const struct value *v, const struct args *a,
	struct value *out)
{
	struct list *items;
	TRY(iterate(c, nd, v, &items));
	bool cs = is_true_arg(arg(a, 0, "case_sensitive"));
	const struct value *attr = arg(a, 1, "attribute");
	if (!items->n) {
		*out = v_undef("min", 3);
		return 0;
	}
	struct value best = items->v[0], bk;
	if (attr)
		TRY(attr_path(c, nd, &best, attr, NULL, &bk));
	else
		bk = best;
	TRY(lower_key(c, nd, &bk, cs, &bk));
	for (size_t i = 1; i < items->n; i++) {
		struct value k = items->v[i];
		if (attr)
			TRY(attr_path(c, nd, &items->v[i], attr, NULL, &k));
		TRY(lower_key(c, nd, &k, cs, &k));
		int r;
		TRY(py_cmp(c, nd, &k, &bk, &r));
		if (id == F_MIN ? r < 0 : r > 0) {
			best = items->v[i];
			bk = k;
		}
	}
	*out = best;
	return 0;
}

static int apply_filter(struct ctx *c, const struct node *nd, uint16_t id, const struct value *v, const struct args *a,
	struct value *out)
{
	struct value s;
	switch (id) {
	case F_DEFAULT: {
		const struct value *d = arg(a, 0, "default_value");
		bool boolean = is_true_arg(arg(a, 1, "boolean"));
		if (v->t == V_UNDEF || (boolean && !truthy(v)))
			*out = d ? *d : v_str("", 0);
		else
			*out = *v;
		return 0;
	}
	case F_SAFE:
		*out = *v;
		return 0;
	case F_STRING:
		return str_of(c, nd, v, out);
	case F_TRIM: {
		const struct value *ch = arg(a, 0, "chars");
		TRY(str_of(c, nd, v, &s));
		if (ch && ch->t != V_NONE)
			TRY(want_str(c, nd, ch, "chars"));
		*out = py_strip(s, ch && ch->t == V_STR ? ch->u.s : NULL, ch && ch->t == V_STR ? ch->n : 0, true, true);
		return 0;
	}
	case F_UPPER: case F_LOWER: case F_TITLE: case F_CAPITALIZE:
		TRY(str_of(c, nd, v, &s));
		return case_map(c, nd, s, id == F_UPPER ? 0 : id == F_LOWER ? 1 : id == F_TITLE ? 2 : 3, out);
	case F_LENGTH: case F_COUNT:
		switch (v->t) {
		case V_STR: *out = v_int((int64_t)cp_count(v->u.s, v->n)); return 0;
		case V_LIST: *out = v_int((int64_t)v->u.l->n); return 0;
		case V_DICT: *out = v_int((int64_t)v->u.d->n); return 0;
		case V_UNDEF: *out = v_int(0); return 0;
		default: return rerr(c, nd, RWD_E_INVALID, "object of type '%s' has no len()", type_name(v));
		}
	case F_FIRST: case F_LAST: {
		struct list *items;
		if (v->t == V_LIST)
			items = v->u.l;
		else
			TRY(iterate(c, nd, v, &items));
		if (!items->n)
			*out = v_undef(id == F_FIRST ? "first" : "last", id == F_FIRST ? 5 : 4);
		else
			*out = items->v[id == F_FIRST ? 0 : items->n - 1];
		return 0;
	}
	case F_LIST: {
		struct list *items, *l;
		TRY(iterate(c, nd, v, &items));
		if (!(l = list_new(c, nd, items->n)))
			return c->rc;
		if (items->n)
			vcopy(l->v, items->v, items->n);
		l->n = items->n;
		*out = v_list(l, false);
		return 0;
	}
	case F_REVERSE: {
		if (v->t == V_STR) {
			struct value m1 = v_int(-1);
			return do_slice(c, nd, v, NULL, NULL, &m1, out);
		}
		struct list *items, *l;
		TRY(iterate(c, nd, v, &items));
		if (!(l = list_new(c, nd, items->n)))
			return c->rc;
		for (size_t i = items->n; i-- > 0;)
			l->v[l->n++] = items->v[i];
		*out = v_list(l, false);
		return 0;
	}
	case F_JOIN: {
		const struct value *d = arg(a, 0, "d"), *attr = arg(a, 1, "attribute");
		struct list *items;
		TRY(iterate(c, nd, v, &items));
		if (d)
			TRY(want_str(c, nd, d, "separator"));
		struct sb b = { .max = c->max_out };
		for (size_t i = 0; i < items->n; i++) {
			struct value x = items->v[i];
			if (attr) {
				int rc = attr_path(c, nd, &items->v[i], attr, NULL, &x);
				if (rc) {
					free(b.p);
					return rc;
				}
			}
			if (i && d)
				sb_put(&b, d->u.s, d->n);
			int rc = to_str(c, nd, &x, &b, false);
			if (rc) {
				free(b.p);
				return rc;
			}
		}
		if (!b.p)
			return *out = v_str("", 0), 0;
		return v_from_sb(c, nd, &b, out);
	}
	case F_ITEMS: {
		if (v->t == V_UNDEF) {
			struct list *l = list_new(c, nd, 0);
			if (!l)
				return c->rc;
			*out = v_list(l, false);
			return 0;
		}
		if (v->t != V_DICT)
			return rerr(c, nd, RWD_E_INVALID, "can only get item pairs from a mapping");
		struct list *l = list_new(c, nd, v->u.d->n);
		if (!l)
			return c->rc;
		for (size_t i = 0; i < v->u.d->n; i++) {
			struct list *p = list_new(c, nd, 2);
			if (!p)
				return c->rc;
			p->v[0] = v->u.d->k[i];
			p->v[1] = v->u.d->v[i];
			p->n = 2;
			l->v[l->n++] = v_list(p, true);
		}
		*out = v_list(l, false);
		return 0;
	}
	case F_DICTSORT: {
		if (v->t != V_DICT)
			return rerr(c, nd, RWD_E_INVALID, "dictsort needs a mapping");
		bool cs = is_true_arg(arg(a, 0, "case_sensitive")), rev = is_true_arg(arg(a, 2, "reverse"));
		const struct value *by = arg(a, 1, "by");
		bool byval = by && by->t == V_STR && name_is(by->u.s, by->n, "value");
		size_t n = v->u.d->n;
		struct list *l = list_new(c, nd, n);
		struct value *keys = l ? ctx_alloc(c, nd, (n ? n : 1) * sizeof(*keys)) : NULL;
		if (!keys)
			return c->rc;
		for (size_t i = 0; i < n; i++) {
			struct list *p = list_new(c, nd, 2);
			if (!p)
				return c->rc;
			p->v[0] = v->u.d->k[i];
			p->v[1] = v->u.d->v[i];
			p->n = 2;
			l->v[l->n++] = v_list(p, true);
			TRY(lower_key(c, nd, byval ? &v->u.d->v[i] : &v->u.d->k[i], cs, &keys[i]));
		}
		TRY(sort_values(c, nd, l->v, keys, n, rev));
		*out = v_list(l, false);
		return 0;
	}
	case F_SORT: case F_UNIQUE: {
		bool rev = id == F_SORT && is_true_arg(arg(a, 0, "reverse"));
		bool cs = is_true_arg(arg(a, id == F_SORT ? 1 : 0, "case_sensitive"));
		const struct value *attr = arg(a, id == F_SORT ? 2 : 1, "attribute");
		struct list *items;
		TRY(iterate(c, nd, v, &items));
		size_t n = items->n;
		struct list *l = list_new(c, nd, n);
		struct value *keys = l ? ctx_alloc(c, nd, (n ? n : 1) * sizeof(*keys)) : NULL;
		if (!keys)
			return c->rc;
		for (size_t i = 0; i < n; i++) {
			struct value k = items->v[i];
			if (attr)
				TRY(attr_path(c, nd, &items->v[i], attr, NULL, &k));
			TRY(lower_key(c, nd, &k, cs, &k));
			if (id == F_UNIQUE) {
				bool seen = false;
				for (size_t j = 0; j < l->n && !seen; j++)
					seen = py_eq(&keys[j], &k);
				if (seen)
					continue;
			}
			keys[l->n] = k;
			l->v[l->n++] = items->v[i];
		}
		if (id == F_SORT)
			TRY(sort_values(c, nd, l->v, keys, l->n, rev));
		*out = v_list(l, false);
		return 0;
	}
	case F_MIN: case F_MAX:
		return filter_minmax(c, nd, id, v, a, out);
	case F_SUM: {
		const struct value *attr = arg(a, 0, "attribute"), *start = arg(a, 1, "start");
		struct list *items;
		TRY(iterate(c, nd, v, &items));
		struct value acc = start ? *start : v_int(0);
		for (size_t i = 0; i < items->n; i++) {
			struct value x = items->v[i];
			if (attr)
				TRY(attr_path(c, nd, &items->v[i], attr, NULL, &x));
			TRY(binop_eval(c, nd, OP_ADD, &acc, &x, &acc));
		}
		*out = acc;
		return 0;
	}
	case F_MAP: {
		struct list *items;
		TRY(iterate(c, nd, v, &items));
		const struct value *attr = NULL, *dflt = NULL;
		for (size_t k = 0; k < a->nkw; k++) {
			if (strcmp(a->names[k], "attribute") == 0)
				attr = &a->v[a->npos + k];
			else if (strcmp(a->names[k], "default") == 0)
				dflt = &a->v[a->npos + k];
		}
		uint16_t fid = 0;
		struct args fa = { 0 };
		if (!attr) {
			const struct value *fname = arg(a, 0, NULL);
			TRY(want_str(c, nd, fname, "map's filter name"));
			if (!(fid = lookup_named(FILTERS, fname->u.s, fname->n)))
				return rerr(c, nd, RWD_E_UNSUPPORTED, "filter '%.*s' is not supported", (int)fname->n,
					fname->u.s);
			fa = (struct args){ .v = a->v ? a->v + 1 : NULL, .npos = a->npos - 1, .nkw = a->nkw, .names = a->names };
		}
		struct list *l = list_new(c, nd, items->n);
		if (!l)
			return c->rc;
		for (size_t i = 0; i < items->n; i++) {
			if (attr)
				TRY(attr_path(c, nd, &items->v[i], attr, dflt, &l->v[l->n]));
			else
				TRY(apply_filter(c, nd, fid, &items->v[i], &fa, &l->v[l->n]));
			l->n++;
		}
		*out = v_list(l, false);
		return 0;
	}
	case F_SELECT: case F_REJECT: case F_SELECTATTR: case F_REJECTATTR:
		return filter_select(c, nd, id, v, a, out);
	case F_REPLACE: {
		const struct value *o = arg(a, 0, "old"), *nw = arg(a, 1, "new"), *cnt = arg(a, 2, "count");
		int64_t k = -1;
		TRY(str_of(c, nd, v, &s));
		TRY(want_str(c, nd, o, "old"));
		TRY(want_str(c, nd, nw, "new"));
		if (cnt && cnt->t != V_NONE)
			TRY(want_int(c, nd, cnt, "count", &k));
		return py_replace(c, nd, s, *o, *nw, k, out);
	}
	case F_INDENT:
		return filter_indent(c, nd, v, a, out);
	case F_INT: {
		const struct value *base = arg(a, 1, "base");
		if (base && !(base->t == V_INT && base->u.i == 10))
			return rerr(c, nd, RWD_E_UNSUPPORTED, "int(base=...) is not supported");
		return to_int(c, nd, v, arg(a, 0, "default"), out);
	}
	case F_FLOAT:
		return to_float(c, nd, v, arg(a, 0, "default"), out);
	case F_ABS:
		if (v->t == V_INT || v->t == V_BOOL) {
			if (v->u.i == INT64_MIN)
				return rerr(c, nd, RWD_E_UNSUPPORTED, "integer overflow");
			*out = v_int(v->u.i < 0 ? -v->u.i : v->u.i);
		} else if (v->t == V_FLOAT) {
			*out = v_float(fabs(v->u.f));
		} else {
			return rerr(c, nd, RWD_E_INVALID, "bad operand type for abs(): '%s'", type_name(v));
		}
		return 0;
	case F_ROUND: {
		const struct value *pr = arg(a, 0, "precision"), *me = arg(a, 1, "method");
		int64_t p = 0;
		if (pr)
			TRY(want_int(c, nd, pr, "precision", &p));
		if (!is_num(v))
			return rerr(c, nd, RWD_E_INVALID, "round needs a number, not %s", type_name(v));
		double x = num_f(v), f = pow(10.0, (double)p);
		if (me && me->t == V_STR && name_is(me->u.s, me->n, "ceil")) {
			*out = v_float(ceil(x * f) / f);
		} else if (me && me->t == V_STR && name_is(me->u.s, me->n, "floor")) {
			*out = v_float(floor(x * f) / f);
		} else {
			if (p < 0 || p > 30)
				return rerr(c, nd, RWD_E_UNSUPPORTED, "round precision outside 0..30");
			if (v->t != V_FLOAT) {
				*out = v_float(x);
				return 0;
			}
			char buf[400];
			snprintf(buf, sizeof(buf), "%.*f", (int)p, x);
			*out = v_float(strtod(buf, NULL));
		}
		return 0;
	}
	case F_WORDCOUNT: {
		TRY(str_of(c, nd, v, &s));
		int64_t k = 0;
		bool in = false;
		for (size_t i = 0; i < s.n;) {
			size_t l;
			int32_t cp = cp_at(s.u.s + i, s.n - i, &l);
			bool w = cp == '_' || cp_alnum(cp);
			if (w && !in)
				k++;
			in = w;
			i += l;
		}
		*out = v_int(k);
		return 0;
	}
	case F_TOJSON:
		return filter_tojson(c, nd, v, a, out);
	}
	return rerr(c, nd, RWD_E_INTERNAL, "unknown filter");
}

/* ------------------------------------------------------ calls and methods */

static int charge_iter(struct ctx *c, const struct node *nd)
{
	if (++c->iters > c->t->lim.max_iterations)
		return rerr(c, nd, RWD_E_LIMIT, "more than %zu loop iterations and calls", c->t->lim.max_iterations);
	return 0;
}

static int call_method(struct ctx *c, const struct node *nd, const struct value *fv, const struct args *a,
	struct value *out)
{
	const struct value *self = fv->u.self;
	const struct value *x = arg(a, 0, NULL), *y = arg(a, 1, NULL);
	struct value s = self ? *self : v_none();
	switch (fv->id) {
	case M_STRIP: case M_LSTRIP: case M_RSTRIP: {
		const struct value *ch = arg(a, 0, "chars");
		if (ch && ch->t != V_NONE)
			TRY(want_str(c, nd, ch, "chars"));
		bool cs = ch && ch->t == V_STR;
		*out = py_strip(s, cs ? ch->u.s : NULL, cs ? ch->n : 0, fv->id != M_RSTRIP, fv->id != M_LSTRIP);
		return 0;
	}
	case M_SPLIT: case M_RSPLIT: {
		int64_t ms = -1;
		const struct value *ma = arg(a, 1, "maxsplit");
		if (ma)
			TRY(want_int(c, nd, ma, "maxsplit", &ms));
		return py_split(c, nd, s, arg(a, 0, "sep"), ms, fv->id == M_RSPLIT, out);
	}
	case M_STARTSWITH: case M_ENDSWITH: {
		if (!x)
			return rerr(c, nd, RWD_E_INVALID, "startswith/endswith need an argument");
		if (y)
			return rerr(c, nd, RWD_E_UNSUPPORTED, "startswith/endswith with start/end are not supported");
		const struct value *cands = x;
		size_t nc = 1;
		if (x->t == V_LIST && x->tuple) {
			cands = x->u.l->v;
			nc = x->u.l->n;
		}
		bool r = false;
		for (size_t i = 0; i < nc && !r; i++) {
			TRY(want_str(c, nd, &cands[i], "prefix"));
			const struct value *p = &cands[i];
			if (p->n <= s.n)
				r = fv->id == M_STARTSWITH ? memcmp(s.u.s, p->u.s, p->n) == 0 :
							     memcmp(s.u.s + s.n - p->n, p->u.s, p->n) == 0;
		}
		*out = v_bool(r);
		return 0;
	}
	case M_REPLACE: {
		int64_t k = -1;
		TRY(want_str(c, nd, x, "old"));
		TRY(want_str(c, nd, y, "new"));
		const struct value *cnt = arg(a, 2, "count");
		if (cnt)
			TRY(want_int(c, nd, cnt, "count", &k));
		return py_replace(c, nd, s, *x, *y, k, out);
	}
	case M_UPPER: return case_map(c, nd, s, 0, out);
	case M_LOWER: return case_map(c, nd, s, 1, out);
	case M_TITLE: return case_map(c, nd, s, 2, out);
	case M_CAPITALIZE: return case_map(c, nd, s, 3, out);
	case M_FIND: case M_COUNT: {
		TRY(want_str(c, nd, x, "substring"));
		if (y)
			return rerr(c, nd, RWD_E_UNSUPPORTED, "find/count with start/end are not supported");
		if (fv->id == M_FIND) {
			const char *f = mem_find(s.u.s, s.n, x->u.s, x->n);
			*out = v_int(f ? (int64_t)cp_count(s.u.s, (size_t)(f - s.u.s)) : -1);
			return 0;
		}
		int64_t k = 0;
		if (!x->n) {
			*out = v_int((int64_t)cp_count(s.u.s, s.n) + 1);
			return 0;
		}
		for (const char *p = s.u.s, *e = s.u.s + s.n; (p = mem_find(p, (size_t)(e - p), x->u.s, x->n)); p += x->n)
			k++;
		*out = v_int(k);
		return 0;
	}
	case M_JOIN: {
		struct list *items;
		if (!x)
			return rerr(c, nd, RWD_E_INVALID, "join needs an iterable");
		TRY(iterate(c, nd, x, &items));
		struct sb b = { .max = c->max_out };
		for (size_t i = 0; i < items->n; i++) {
			if (items->v[i].t != V_STR) {
				free(b.p);
				return rerr(c, nd, RWD_E_INVALID, "sequence item %zu: expected str instance, %s found", i,
					type_name(&items->v[i]));
			}
			if (i)
				sb_put(&b, s.u.s, s.n);
			sb_put(&b, items->v[i].u.s, items->v[i].n);
		}
		if (!b.p)
			return *out = v_str("", 0), 0;
		return v_from_sb(c, nd, &b, out);
	}
	case M_SPLITLINES: {
		struct list *l;
		TRY(py_splitlines(c, nd, s, &l));
		*out = v_list(l, false);
		return 0;
	}
	case M_ISDIGIT: case M_ISSPACE: case M_ISALPHA: case M_ISALNUM: case M_ISLOWER: case M_ISUPPER: {
		if (fv->id == M_ISLOWER || fv->id == M_ISUPPER) {
			bool r;
			TRY(run_test(c, nd, fv->id == M_ISLOWER ? T_LOWER : T_UPPER, &s, &(struct args){ 0 }, &r));
			*out = v_bool(r);
			return 0;
		}
		bool r = s.n > 0;
		for (size_t i = 0; i < s.n && r;) {
			size_t l;
			int32_t cp = cp_at(s.u.s + i, s.n - i, &l);
			if (fv->id == M_ISDIGIT)
				r = cp_digit(cp);
			else if (fv->id == M_ISSPACE)
				r = py_space_len((const unsigned char *)s.u.s + i, s.n - i) != 0;
			else if (fv->id == M_ISALPHA)
				r = cp_alpha(cp);
			else
				r = cp_alnum(cp);
			i += l;
		}
		*out = v_bool(r);
		return 0;
	}
	case M_ITEMS: {
		struct args none = { 0 };
		return apply_filter(c, nd, F_ITEMS, self, &none, out);
	}
	case M_KEYS: case M_VALUES: {
		struct dict *d = self->u.d;
		struct list *l = list_new(c, nd, d->n);
		if (!l)
			return c->rc;
		vcopy(l->v, fv->id == M_KEYS ? d->k : d->v, d->n);
		l->n = d->n;
		*out = v_list(l, false);
		return 0;
	}
	case M_GET: {
		if (!x)
			return rerr(c, nd, RWD_E_INVALID, "get needs a key");
		struct value *f = dict_find(self->u.d, x);
		*out = f ? *f : y ? *y : v_none();
		return 0;
	}
	case M_CYCLE: {
		if (!a->npos)
			return rerr(c, nd, RWD_E_INVALID, "no items for cycling given");
		*out = a->v[self->u.lp->i % a->npos];
		return 0;
	}
	}
	return rerr(c, nd, RWD_E_INTERNAL, "unknown method");
}

static int call_builtin(struct ctx *c, const struct node *nd, const struct value *fv, const struct args *a,
	struct value *out)
{
	switch (fv->id) {
	case B_RAISE: {
		struct value m = v_str("", 0);
		if (a->npos)
			TRY(str_of(c, nd, &a->v[0], &m));
		return rerr(c, nd, RWD_E_INVALID, "template error: %.*s", (int)(m.n < 160 ? m.n : 160), m.u.s);
	}
	case B_STRFTIME: {
		const struct value *f = arg(a, 0, "format");
		TRY(want_str(c, nd, f, "format"));
		if (f->n > 200 || memchr(f->u.s, '\0', f->n))
			return rerr(c, nd, RWD_E_LIMIT, "strftime format longer than 200 bytes");
		char fmt[256], buf[1024];
		memcpy(fmt, f->u.s, f->n);
		fmt[f->n] = '\0';
		struct tm tm;
		time_t now = c->now ? c->now : time(NULL);
		if (!localtime_r(&now, &tm))
			return rerr(c, nd, RWD_E_INVALID, "no local time");
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		/* the template's own format, as Python's strftime takes it */
		size_t k = f->n ? strftime(buf, sizeof(buf), fmt, &tm) : 0;
#pragma GCC diagnostic pop
		if (f->n && k == 0)
			buf[0] = '\0';
		char *p = ctx_alloc(c, nd, k + 1);
		if (!p)
			return c->rc;
		memcpy(p, buf, k);
		p[k] = '\0';
		*out = v_str(p, k);
		return 0;
	}
	case B_RANGE: {
		int64_t st = 0, en = 0, sp = 1;
		if (a->npos == 1) {
			TRY(want_int(c, nd, &a->v[0], "range's argument", &en));
		} else if (a->npos == 2 || a->npos == 3) {
			TRY(want_int(c, nd, &a->v[0], "range's start", &st));
			TRY(want_int(c, nd, &a->v[1], "range's stop", &en));
			if (a->npos == 3)
				TRY(want_int(c, nd, &a->v[2], "range's step", &sp));
		} else {
			return rerr(c, nd, RWD_E_INVALID, "range expects 1 to 3 arguments");
		}
		if (sp == 0)
			return rerr(c, nd, RWD_E_INVALID, "range() arg 3 must not be zero");
		double cnt = sp > 0 ? (en > st ? ((double)en - (double)st - 1) / (double)sp + 1 : 0) :
				      (st > en ? ((double)st - (double)en - 1) / (double)-sp + 1 : 0);
		if (cnt > (double)c->t->lim.max_iterations)
			return rerr(c, nd, RWD_E_LIMIT, "range of more than %zu items", c->t->lim.max_iterations);
		size_t k = (size_t)cnt;
		struct list *l = list_new(c, nd, k);
		if (!l)
			return c->rc;
		for (size_t i = 0; i < k; i++)
			l->v[l->n++] = v_int(st + (int64_t)i * sp);
		*out = v_list(l, false);
		return 0;
	}
	case B_DICT: case B_NAMESPACE: {
		struct dict *d = dict_new(c, nd);
		if (!d)
			return c->rc;
		for (size_t i = 0; i < a->npos; i++) {
			if (a->v[i].t != V_DICT)
				return rerr(c, nd, RWD_E_UNSUPPORTED, "%s() takes a mapping and keyword arguments",
					fv->id == B_DICT ? "dict" : "namespace");
			for (size_t k = 0; k < a->v[i].u.d->n; k++)
				TRY(dict_set(c, nd, d, a->v[i].u.d->k[k], a->v[i].u.d->v[k]));
		}
		for (size_t k = 0; k < a->nkw; k++) {
			const char *nm = a->names[k];
			TRY(dict_set(c, nd, d, v_str(nm, strlen(nm)), a->v[a->npos + k]));
		}
		out->t = fv->id == B_DICT ? V_DICT : V_NS;
		out->u.d = d;
		return 0;
	}
	}
	return rerr(c, nd, RWD_E_INTERNAL, "unknown builtin");
}

static int exec_block(struct ctx *c, const struct node *nd, struct scope *sc, struct sb *o);

static struct scope *scope_new(struct ctx *c, const struct node *nd, struct scope *parent)
{
	struct scope *s = ctx_alloc(c, nd, sizeof(*s));
	if (s)
		*s = (struct scope){ .parent = parent };
	return s;
}

static int scope_set(struct ctx *c, const struct node *nd, struct scope *sc, const char *name, size_t n, struct value v)
{
	return dict_set(c, nd, &sc->vars, v_str(name, n), v);
}

static int call_macro(struct ctx *c, const struct node *nd, const struct macro *m, const struct args *a,
	struct value *out)
{
	const struct node *md = m->nd;
	TRY(charge_iter(c, nd));
	if (c->depth >= c->t->lim.max_depth)
		return rerr(c, nd, RWD_E_LIMIT, "macro calls nested deeper than %zu", c->t->lim.max_depth);
	if (a->npos > md->nnames)
		return rerr(c, nd, RWD_E_INVALID, "macro '%s' takes not more than %u argument(s)", md->s, md->nnames);
	struct value caller = c->caller;
	c->caller = v_undef(NULL, 0);
	struct scope *ms = scope_new(c, nd, m->closure);
	if (!ms)
		return c->rc;
	if (caller.t == V_MACRO)
		TRY(scope_set(c, nd, ms, "caller", 6, caller));
	for (size_t k = 0; k < a->nkw; k++) {
		bool found = false;
		for (size_t i = 0; i < md->nnames && !found; i++)
			found = strcmp(md->names[i], a->names[k]) == 0 && i >= a->npos;
		if (!found)
			return rerr(c, nd, RWD_E_INVALID, "macro '%s' has no parameter '%s' (or it was given twice)", md->s,
				a->names[k]);
	}
	for (size_t i = 0; i < md->nnames; i++) {
		const struct value *v = arg(a, i, md->names[i]);
		struct value x;
		if (v)
			x = *v;
		else if (md->kids[i])
			TRY(eval(c, md->kids[i], ms, &x));
		else
			x = v_undef(md->names[i], strlen(md->names[i]));
		TRY(scope_set(c, nd, ms, md->names[i], strlen(md->names[i]), x));
	}
	struct sb b = { .max = c->max_out };
	c->depth++;
	int rc = exec_block(c, md->b, ms, &b);
	c->depth--;
	c->flow = 0;
	if (rc) {
		free(b.p);
		return rc;
	}
	if (!b.p) {
		*out = v_str("", 0);
		return 0;
	}
	return v_from_sb(c, nd, &b, out);
}

static int call_value(struct ctx *c, const struct node *nd, const struct value *fv, const struct args *a, struct value *out)
{
	switch (fv->t) {
	case V_MACRO: return call_macro(c, nd, fv->u.m, a, out);
	case V_BUILTIN: return call_builtin(c, nd, fv, a, out);
	case V_METHOD: return call_method(c, nd, fv, a, out);
	case V_UNDEF: return undefined_err(c, nd, fv);
	default: return rerr(c, nd, RWD_E_INVALID, "'%s' object is not callable", type_name(fv));
	}
}

/* ------------------------------------------------------------------- eval */

static int lookup(struct scope *sc, const char *s, size_t n, struct value *out)
{
	for (; sc; sc = sc->parent) {
		struct value *x = dict_find_str(&sc->vars, s, n);
		if (x) {
			*out = *x;
			return 1;
		}
	}
	return 0;
}

static int step(struct ctx *c, const struct node *nd)
{
	if (c->rc)
		return c->rc;
	if (++c->steps > c->t->lim.max_steps)
		return rerr(c, nd, RWD_E_LIMIT, "more than %zu evaluation steps", c->t->lim.max_steps);
	return 0;
}

static int eval(struct ctx *c, const struct node *nd, struct scope *sc, struct value *out)
{
	TRY(step(c, nd));
	switch (nd->kind) {
	case N_CONST:
		switch (nd->op) {
		case V_NONE: *out = v_none(); return 0;
		case V_BOOL: *out = v_bool(nd->i != 0); return 0;
		case V_INT: *out = v_int(nd->i); return 0;
		case V_FLOAT: *out = v_float(nd->f); return 0;
		default: *out = v_str(nd->s, nd->sn); return 0;
		}
	case N_NAME:
		if (!lookup(sc, nd->s, nd->sn, out))
			*out = v_undef(nd->s, nd->sn);
		return 0;
	case N_GETATTR: {
		struct value o;
		TRY(eval(c, nd->a, sc, &o));
		return get_attr(c, nd, &o, nd->s, nd->sn, out);
	}
	case N_GETITEM: {
		struct value o, k;
		TRY(eval(c, nd->a, sc, &o));
		TRY(eval(c, nd->b, sc, &k));
		return get_item(c, nd, &o, &k, out);
	}
	case N_SLICE: {
		struct value o, x[3];
		const struct node *parts[3] = { nd->b, nd->c, nd->d };
		TRY(eval(c, nd->a, sc, &o));
		for (int i = 0; i < 3; i++)
			if (parts[i])
				TRY(eval(c, parts[i], sc, &x[i]));
		return do_slice(c, nd, &o, nd->b ? &x[0] : NULL, nd->c ? &x[1] : NULL, nd->d ? &x[2] : NULL, out);
	}
	case N_CALL: {
		struct value fv;
		struct args a;
		TRY(eval(c, nd->a, sc, &fv));
		TRY(eval_args(c, nd, sc, &a));
		return call_value(c, nd, &fv, &a, out);
	}
	case N_FILTER: {
		struct value v;
		struct args a;
		TRY(eval(c, nd->a, sc, &v));
		TRY(eval_args(c, nd, sc, &a));
		return apply_filter(c, nd, nd->fn, &v, &a, out);
	}
	case N_TEST: {
		struct value v;
		struct args a;
		bool r;
		TRY(eval(c, nd->a, sc, &v));
		TRY(eval_args(c, nd, sc, &a));
		TRY(run_test(c, nd, nd->fn, &v, &a, &r));
		*out = v_bool(nd->op ? !r : r);
		return 0;
	}
	case N_BINOP: {
		struct value x, y;
		TRY(eval(c, nd->a, sc, &x));
		TRY(eval(c, nd->b, sc, &y));
		return binop_eval(c, nd, nd->op, &x, &y, out);
	}
	case N_NEG: case N_POS: {
		struct value x;
		TRY(eval(c, nd->a, sc, &x));
		if (x.t == V_UNDEF)
			return undefined_err(c, nd, &x);
		if (!is_num(&x))
			return rerr(c, nd, RWD_E_INVALID, "bad operand type for unary %c: '%s'", nd->kind == N_NEG ? '-' : '+',
				type_name(&x));
		if (nd->kind == N_POS)
			*out = x.t == V_BOOL ? v_int(x.u.i) : x;
		else if (x.t == V_FLOAT)
			*out = v_float(-x.u.f);
		else if (x.u.i == INT64_MIN)
			return rerr(c, nd, RWD_E_UNSUPPORTED, "integer overflow");
		else
			*out = v_int(-x.u.i);
		return 0;
	}
	case N_NOT: {
		struct value x;
		TRY(eval(c, nd->a, sc, &x));
		*out = v_bool(!truthy(&x));
		return 0;
	}
	case N_AND: case N_OR: {
		TRY(eval(c, nd->a, sc, out));
		bool t = truthy(out);
		if ((nd->kind == N_AND) == t)
			TRY(eval(c, nd->b, sc, out));
		return 0;
	}
	case N_COMPARE: {
		struct value l, r;
		TRY(eval(c, nd->a, sc, &l));
		for (size_t i = 0; i < nd->nkids; i++) {
			bool ok;
			TRY(eval(c, nd->kids[i], sc, &r));
			TRY(compare(c, nd, nd->ops[i], &l, &r, &ok));
			if (!ok) {
				*out = v_bool(false);
				return 0;
			}
			l = r;
		}
		*out = v_bool(true);
		return 0;
	}
	case N_COND: {
		struct value t;
		TRY(eval(c, nd->b, sc, &t));
		if (truthy(&t))
			return eval(c, nd->a, sc, out);
		if (nd->c)
			return eval(c, nd->c, sc, out);
		*out = v_undef(NULL, 0);
		return 0;
	}
	case N_LIST: case N_TUPLE: {
		struct list *l = list_new(c, nd, nd->nkids);
		if (!l)
			return c->rc;
		for (size_t i = 0; i < nd->nkids; i++)
			TRY(eval(c, nd->kids[i], sc, &l->v[l->n++]));
		*out = v_list(l, nd->kind == N_TUPLE);
		return 0;
	}
	case N_DICT: {
		struct dict *d = dict_new(c, nd);
		if (!d)
			return c->rc;
		for (size_t i = 0; i + 1 < nd->nkids; i += 2) {
			struct value k, v;
			TRY(eval(c, nd->kids[i], sc, &k));
			TRY(eval(c, nd->kids[i + 1], sc, &v));
			if (k.t != V_STR && k.t != V_INT && k.t != V_BOOL && k.t != V_NONE && k.t != V_FLOAT &&
			    !(k.t == V_LIST && k.tuple))
				return rerr(c, nd, RWD_E_INVALID, "unhashable type: '%s'", type_name(&k));
			TRY(dict_set(c, nd, d, k, v));
		}
		out->t = V_DICT;
		out->u.d = d;
		return 0;
	}
	case N_CONCAT: {
		struct sb b = { .max = c->max_out };
		for (size_t i = 0; i < nd->nkids; i++) {
			struct value x;
			int rc = eval(c, nd->kids[i], sc, &x);
			if (!rc)
				rc = to_str(c, nd, &x, &b, false);
			if (rc) {
				free(b.p);
				return rc;
			}
		}
		if (!b.p)
			return *out = v_str("", 0), 0;
		return v_from_sb(c, nd, &b, out);
	}
	}
	return rerr(c, nd, RWD_E_INTERNAL, "cannot evaluate a statement");
}

/* ------------------------------------------------------------ statements */

static int assign(struct ctx *c, const struct node *target, struct scope *sc, const struct value *v)
{
	if (target->kind == N_NAME)
		return scope_set(c, target, sc, target->s, target->sn, *v);
	if (target->kind == N_GETATTR) {
		struct value ns;
		if (!lookup(sc, target->a->s, target->a->sn, &ns) || ns.t != V_NS)
			return rerr(c, target, RWD_E_INVALID, "cannot assign attribute on non-namespace object");
		return dict_set(c, target, ns.u.d, v_str(target->s, target->sn), *v);
	}
	/* tuple unpacking */
	struct list *items;
	TRY(iterate(c, target, v, &items));
	if (items->n != target->nkids)
		return rerr(c, target, RWD_E_INVALID, "cannot unpack %zu values into %u names", items->n, target->nkids);
	for (size_t i = 0; i < target->nkids; i++)
		TRY(assign(c, target->kids[i], sc, &items->v[i]));
	return 0;
}

static int exec_for(struct ctx *c, const struct node *nd, struct scope *sc, struct sb *o)
{
	struct value it;
	struct list *items;
	TRY(eval(c, nd->b, sc, &it));
	TRY(iterate(c, nd->b, &it, &items));
	if (nd->c) {
		struct list *kept = list_new(c, nd, 0);
		if (!kept)
			return c->rc;
		for (size_t i = 0; i < items->n; i++) {
			TRY(charge_iter(c, nd));
			struct scope *fs = scope_new(c, nd, sc);
			struct value t;
			if (!fs)
				return c->rc;
			TRY(assign(c, nd->a, fs, &items->v[i]));
			TRY(eval(c, nd->c, fs, &t));
			if (truthy(&t))
				TRY(list_push(c, nd, kept, items->v[i]));
		}
		items = kept;
	}
	if (!items->n)
		return nd->e ? exec_block(c, nd->e, sc, o) : 0;
	struct loopv *lp = ctx_alloc(c, nd, sizeof(*lp));
	if (!lp)
		return c->rc;
	lp->items = items;
	for (size_t i = 0; i < items->n; i++) {
		TRY(charge_iter(c, nd));
		struct scope *is = scope_new(c, nd, sc);
		if (!is)
			return c->rc;
		lp->i = i;
		struct value lv = { .t = V_LOOP };
		lv.u.lp = lp;
		/* a loop object per iteration: loop.cycle and macros may keep it */
		struct loopv *cur_ = ctx_alloc(c, nd, sizeof(*cur_));
		if (!cur_)
			return c->rc;
		*cur_ = *lp;
		lv.u.lp = cur_;
		TRY(scope_set(c, nd, is, "loop", 4, lv));
		TRY(assign(c, nd->a, is, &items->v[i]));
		TRY(exec_block(c, nd->d, is, o));
		if (c->flow == 1) {
			c->flow = 0;
			break;
		}
		c->flow = 0;
	}
	return 0;
}

static int exec_block(struct ctx *c, const struct node *nd, struct scope *sc, struct sb *o)
{
	for (size_t i = 0; i < nd->nkids; i++) {
		TRY(exec_node(c, nd->kids[i], sc, o));
		if (c->flow)
			break;
	}
	return 0;
}

static int exec_node(struct ctx *c, const struct node *nd, struct scope *sc, struct sb *o)
{
	TRY(step(c, nd));
	switch (nd->kind) {
	case N_TEXT:
		sb_put(o, nd->s, nd->sn);
		break;
	case N_OUTPUT: {
		struct value v;
		TRY(eval(c, nd->a, sc, &v));
		TRY(to_str(c, nd->a, &v, o, false));
		break;
	}
	case N_BLOCK:
		return exec_block(c, nd, sc, o);
	case N_IF: {
		struct value t;
		TRY(eval(c, nd->a, sc, &t));
		if (truthy(&t))
			return exec_block(c, nd->b, sc, o);
		if (nd->c)
			return exec_node(c, nd->c, sc, o);
		break;
	}
	case N_FOR:
		return exec_for(c, nd, sc, o);
	case N_SET: {
		struct value v;
		TRY(eval(c, nd->b, sc, &v));
		return assign(c, nd->a, sc, &v);
	}
	case N_SETBLOCK: {
		struct sb b = { .max = c->max_out };
		struct value v;
		int rc = exec_block(c, nd->b, sc, &b);
		if (rc) {
			free(b.p);
			return rc;
		}
		if (!b.p)
			v = v_str("", 0);
		else
			TRY(v_from_sb(c, nd, &b, &v));
		return assign(c, nd->a, sc, &v);
	}
	case N_MACRO: {
		struct macro *m = ctx_alloc(c, nd, sizeof(*m));
		if (!m)
			return c->rc;
		m->nd = nd;
		m->closure = sc;
		struct value v = { .t = V_MACRO };
		v.u.m = m;
		return scope_set(c, nd, sc, nd->s, nd->sn, v);
	}
	case N_CALLBLOCK: {
		struct macro *m = ctx_alloc(c, nd, sizeof(*m));
		struct value fv, r;
		struct args a;
		if (!m)
			return c->rc;
		m->nd = nd->b;
		m->closure = sc;
		TRY(eval(c, nd->a->a, sc, &fv));
		TRY(eval_args(c, nd->a, sc, &a));
		if (fv.t != V_MACRO)
			return rerr(c, nd, RWD_E_INVALID, "{%% call %%} needs a macro, not %s", type_name(&fv));
		c->caller = (struct value){ .t = V_MACRO };
		c->caller.u.m = m;
		int rc = call_value(c, nd, &fv, &a, &r);
		c->caller = v_undef(NULL, 0);
		TRY(rc);
		TRY(to_str(c, nd, &r, o, false));
		break;
	}
	case N_BREAK:
		c->flow = 1;
		break;
	case N_CONTINUE:
		c->flow = 2;
		break;
	default:
		return rerr(c, nd, RWD_E_INTERNAL, "not a statement");
	}
	if (o->rc)
		return rerr(c, nd, o->rc, o->rc == RWD_E_LIMIT ? "rendered text longer than %zu bytes" : "out of memory (%zu)",
			o->max);
	return 0;
}

int rwd_jinja_render(const rwd_jinja *t, const json_t *vars, const rwd_jinja_render_opts *opts, rwd_arena *arena,
	char **out, size_t *out_len, rwd_error *err)
{
	*out = NULL;
	*out_len = 0;
	struct ctx c = { .t = t, .a = arena, .err = err, .max_out = t->lim.max_output_bytes };
	if (opts) {
		c.now = opts->now;
		if (opts->max_output_bytes)
			c.max_out = opts->max_output_bytes;
	}
	if (vars && !json_is_object(vars))
		return rwd_errorf(err, RWD_E_INVALID, "template variables must be a JSON object");
	struct scope *g = scope_new(&c, NULL, NULL), *vs = g ? scope_new(&c, NULL, g) : NULL;
	if (!vs)
		return c.rc;
	static const struct { const char *name; uint16_t id; } GLOBALS[] = {
		{ "range", B_RANGE }, { "dict", B_DICT }, { "namespace", B_NAMESPACE },
		{ "raise_exception", B_RAISE }, { "strftime_now", B_STRFTIME },
	};
	for (size_t i = 0; i < sizeof(GLOBALS) / sizeof(GLOBALS[0]); i++) {
		struct value b = { .t = V_BUILTIN, .id = GLOBALS[i].id };
		if (scope_set(&c, NULL, g, GLOBALS[i].name, strlen(GLOBALS[i].name), b))
			return c.rc;
	}
	if (vars) {
		const char *k;
		json_t *x;
		json_object_foreach((json_t *)vars, k, x) {
			struct value v;
			if (from_json(&c, x, 0, &v) || scope_set(&c, NULL, vs, k, strlen(k), v))
				return c.rc;
		}
	}
	struct sb o = { .max = c.max_out };
	int rc = exec_block(&c, t->root, vs, &o);
	if (rc) {
		free(o.p);
		return rc;
	}
	char *p = rwd_arena_alloc(arena, o.n + 1);
	if (!p) {
		free(o.p);
		return rwd_errorf(err, rwd_arena_over_limit(arena) ? RWD_E_LIMIT : RWD_E_NOMEM, "out of memory");
	}
	if (o.n)
		memcpy(p, o.p, o.n);
	p[o.n] = '\0';
	free(o.p);
	*out = p;
	*out_len = o.n;
	return 0;
}
