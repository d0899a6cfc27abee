/*
 * models/sql.c — the `sql` kind: Reasoning-SQL's partial rewards on SQLite.
 * The semantics of every dimension, option, budget and failure are in
 * sql.h; this file keeps to them.
 *
 * Threads: the loaded state (options, the resolved database_root) is
 * read-only. Everything mutable lives in a worker's scratch: its SQLite
 * connections (each with its own authorizer/progress context), its result
 * buffers and the cached gold result. SQLite connections are used by one
 * thread only (SQLITE_OPEN_NOMUTEX).
 */
#include "models/sql.h"

#include "core/thread.h"

#include <sqlite3.h>

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

enum { DIM_EXECUTION, DIM_SYNTAX, DIM_SCHEMA, DIM_NGRAM, DIM_COUNT };

static const char *const dim_names[DIM_COUNT] = {"execution", "syntax", "schema", "ngram"};
static const char *const sql_inputs[] = {"response", "label", "database", NULL};

static const char default_reward[] =
	"{\"aggregate\": {\"mode\": \"weighted_sum\","
	" \"terms\": [\"execution\", \"syntax\", \"schema\", \"ngram\"],"
	" \"weights\": {\"execution\": 3, \"syntax\": 1, \"schema\": 1, \"ngram\": 1}}}";

const char *rwd_sql_default_reward(void)
{
	return default_reward;
}

#define MAX_NAME_BYTES 1024
#define MAX_SCHEMA_ITEMS 65536
#define MAX_NGRAM 8
#define PROGRESS_STEP 1000
#define MAX_DEPTH 64

enum { CMP_MULTISET, CMP_SET };
enum { SCHEMA_JACCARD, SCHEMA_RECALL };

typedef struct sql_state {
	char root[PATH_MAX];    /* realpath(database_root) */
	size_t root_len;
	int64_t max_instructions;
	double timeout_ms;
	size_t max_rows, max_result_bytes, max_value_bytes, max_sql_bytes, max_response_bytes;
	size_t max_open;
	int64_t heap_limit;
	int cache_kib;
	int compare, order_auto, empty_match, schema_score, ngram_n;
} sql_state;

/* ---- a small SQL lexer (SQLite's lexical rules, enough to split tokens) -- */

enum { TK_END, TK_WORD, TK_QID, TK_NUM, TK_STR, TK_PUNCT };

typedef struct tok {
	int type;
	size_t off, len; /* the token's bytes; for TK_QID the content inside the quotes */
} tok;

static int is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int is_word_start(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static int is_word_char(unsigned char c)
{
	return is_word_start(c) || (c >= '0' && c <= '9') || c == '$';
}

static int is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* Next token of s[0..n) from *i (whitespace and comments skipped). */
static void lex(const char *s, size_t n, size_t *i, tok *t)
{
	size_t p = *i;
	for (;;) {
		while (p < n && is_space((unsigned char)s[p]))
			p++;
		if (p + 1 < n && s[p] == '-' && s[p + 1] == '-') {
			while (p < n && s[p] != '\n')
				p++;
			continue;
		}
		if (p + 1 < n && s[p] == '/' && s[p + 1] == '*') {
			p += 2;
			while (p + 1 < n && !(s[p] == '*' && s[p + 1] == '/'))
				p++;
			p = p + 1 < n ? p + 2 : n;
			continue;
		}
		break;
	}
	if (p >= n) {
		t->type = TK_END;
		t->off = n;
		t->len = 0;
		*i = n;
		return;
	}
	unsigned char c = (unsigned char)s[p];
	size_t start = p;
	if (c == '\'' || ((c == 'x' || c == 'X') && p + 1 < n && s[p + 1] == '\'')) {
		if (c != '\'')
			p++;
		p++;
		/* '' inside a literal is an escaped quote */
		while (p < n) {
			if (s[p] == '\'') {
				if (p + 1 < n && s[p + 1] == '\'') {
					p += 2;
					continue;
				}
				p++;
				break;
			}
			p++;
		}
		t->type = TK_STR;
		t->off = start;
		t->len = p - start;
	} else if (c == '"' || c == '`' || c == '[') {
		char close = c == '[' ? ']' : (char)c;
		p++;
		size_t cs = p;
		while (p < n) {
			if (s[p] == close) {
				if (close != ']' && p + 1 < n && s[p + 1] == close) {
					p += 2;
					continue;
				}
				break;
			}
			p++;
		}
		t->type = TK_QID;
		t->off = cs;
		t->len = p - cs;
		if (p < n)
			p++;
	} else if (is_digit(c) || (c == '.' && p + 1 < n && is_digit((unsigned char)s[p + 1]))) {
		while (p < n) {
			unsigned char d = (unsigned char)s[p];
			if (is_digit(d) || d == '.' || (d >= 'a' && d <= 'z') || (d >= 'A' && d <= 'Z') || d == '_') {
				/* an exponent's sign belongs to the number */
				if ((d == 'e' || d == 'E') && p + 1 < n && (s[p + 1] == '+' || s[p + 1] == '-') &&
				    !(p > start + 1 && (s[start + 1] == 'x' || s[start + 1] == 'X')))
					p++;
				p++;
			} else {
				break;
			}
		}
		t->type = TK_NUM;
		t->off = start;
		t->len = p - start;
	} else if (is_word_start(c)) {
		while (p < n && is_word_char((unsigned char)s[p]))
			p++;
		t->type = TK_WORD;
		t->off = start;
		t->len = p - start;
	} else {
		p++;
		t->type = TK_PUNCT;
		t->off = start;
		t->len = 1;
	}
	*i = p;
}

static int tok_is(const char *s, const tok *t, const char *word)
{
	size_t k = strlen(word);
	return t->type == TK_WORD && t->len == k && strncasecmp(s + t->off, word, k) == 0;
}

static int punct_is(const char *s, const tok *t, char c)
{
	return t->type == TK_PUNCT && s[t->off] == c;
}

int rwd_sql_orders(const char *sql, size_t n)
{
	size_t i = 0;
	int depth = 0, prev_order = 0;
	tok t;
	for (lex(sql, n, &i, &t); t.type != TK_END; lex(sql, n, &i, &t)) {
		if (punct_is(sql, &t, '('))
			depth++;
		else if (punct_is(sql, &t, ')') && depth > 0)
			depth--;
		if (depth == 0 && prev_order && tok_is(sql, &t, "by"))
			return 1;
		prev_order = depth == 0 && tok_is(sql, &t, "order");
	}
	return 0;
}

/* ---- extraction ----------------------------------------------------------- */

static void trim(const char *s, size_t *off, size_t *len)
{
	while (*len > 0 && is_space((unsigned char)s[*off])) {
		(*off)++;
		(*len)--;
	}
	while (*len > 0 && is_space((unsigned char)s[*off + *len - 1]))
		(*len)--;
}

static const char *find(const char *s, size_t n, size_t from, const char *needle)
{
	size_t k = strlen(needle);
	if (from > n || n - from < k)
		return NULL;
	return memmem(s + from, n - from, needle, k);
}

/* The last ```sql / ```sqlite block: 1 with the content slice, else 0. */
static int last_sql_fence(const char *s, size_t n, size_t *off, size_t *len)
{
	int found = 0;
	size_t p = 0;
	const char *f;
	while ((f = find(s, n, p, "```"))) {
		size_t q = (size_t)(f - s) + 3, tag = 0;
		if (n - q >= 6 && strncasecmp(s + q, "sqlite", 6) == 0)
			tag = 6;
		else if (n - q >= 3 && strncasecmp(s + q, "sql", 3) == 0)
			tag = 3;
		if (tag && q + tag < n && is_space((unsigned char)s[q + tag])) {
			size_t cs = q + tag;
			const char *e = find(s, n, cs, "```");
			if (!e)
				break;
			*off = cs;
			*len = (size_t)(e - s) - cs;
			found = 1;
			p = (size_t)(e - s) + 3;
		} else {
			/* another block: skip to its closing fence */
			const char *e = find(s, n, q, "```");
			if (!e)
				break;
			p = (size_t)(e - s) + 3;
		}
	}
	return found;
}

void rwd_sql_extract(const char *text, size_t n, size_t *off, size_t *len)
{
	if (last_sql_fence(text, n, off, len)) {
		trim(text, off, len);
		return;
	}
	/* the last complete <answer>…</answer> */
	size_t p = 0, a_off = 0, a_len = 0;
	int have = 0;
	const char *o;
	while ((o = find(text, n, p, "<answer>"))) {
		size_t cs = (size_t)(o - text) + 8;
		const char *e = find(text, n, cs, "</answer>");
		if (!e)
			break;
		a_off = cs;
		a_len = (size_t)(e - text) - cs;
		have = 1;
		p = (size_t)(e - text) + 9;
	}
	if (have) {
		trim(text, &a_off, &a_len);
		/* one fenced block inside: drop the fences (and the tag line) */
		if (a_len >= 6 && memcmp(text + a_off, "```", 3) == 0 &&
		    memcmp(text + a_off + a_len - 3, "```", 3) == 0) {
			const char *nl = memchr(text + a_off + 3, '\n', a_len - 6);
			if (nl && !find(text, a_off + a_len - 3, a_off + 3, "```")) {
				size_t cs = (size_t)(nl - text) + 1;
				a_len = a_off + a_len - 3 - cs;
				a_off = cs;
				trim(text, &a_off, &a_len);
			}
		}
		*off = a_off;
		*len = a_len;
		return;
	}
	*off = 0;
	*len = n;
	trim(text, off, len);
}

int rwd_sql_check_name(const char *name, size_t n, rwd_error *err)
{
	if (n == 0)
		return rwd_errorf(err, RWD_E_INVALID, "\"database\" is empty");
	if (n > MAX_NAME_BYTES)
		return rwd_errorf(err, RWD_E_INVALID, "\"database\" is %zu bytes, over %d", n, MAX_NAME_BYTES);
	if (memchr(name, '\0', n))
		return rwd_errorf(err, RWD_E_INVALID, "\"database\" contains a NUL byte");
	if (name[0] == '/')
		return rwd_errorf(err, RWD_E_INVALID,
			"\"database\" must be a name relative to database_root, not an absolute path");
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j < n && name[j] != '/')
			j++;
		if (j - i == 2 && name[i] == '.' && name[i + 1] == '.')
			return rwd_errorf(err, RWD_E_INVALID, "\"database\" must not contain a \"..\" component");
		i = j + 1;
	}
	return 0;
}

/* ---- n-gram similarity ------------------------------------------------------ */

typedef struct slice {
	const char *p;
	size_t n;
} slice;

static int slice_cmp(const void *a, const void *b)
{
	const slice *x = a, *y = b;
	size_t m = x->n < y->n ? x->n : y->n;
	int c = memcmp(x->p, y->p, m);
	if (c)
		return c;
	return x->n < y->n ? -1 : x->n > y->n;
}

/* sort + unique in place; returns the new count */
static size_t slice_unique(slice *v, size_t n)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), slice_cmp);
	size_t k = 1;
	for (size_t i = 1; i < n; i++)
		if (slice_cmp(&v[i], &v[k - 1]) != 0)
			v[k++] = v[i];
	return k;
}

static size_t slice_intersection(const slice *a, size_t na, const slice *b, size_t nb)
{
	size_t i = 0, j = 0, k = 0;
	while (i < na && j < nb) {
		int c = slice_cmp(&a[i], &b[j]);
		if (c == 0) {
			k++;
			i++;
			j++;
		} else if (c < 0) {
			i++;
		} else {
			j++;
		}
	}
	return k;
}

static const char *const not_alias[] = {
	"where", "join", "inner", "left", "right", "full", "outer", "cross", "natural", "on", "using",
	"group", "order", "limit", "having", "union", "except", "intersect", "window", "indexed", "not",
	"as", "select", "from", "values", "offset", NULL,
};

static int is_not_alias(const char *s, const tok *t)
{
	for (size_t i = 0; not_alias[i]; i++)
		if (tok_is(s, t, not_alias[i]))
			return 1;
	return 0;
}

static int ends_from(const char *s, const tok *t)
{
	static const char *const w[] = {"where", "group", "order", "limit", "having", "union", "except",
		"intersect", "window", "on", "using", "select", "values", NULL};
	for (size_t i = 0; w[i]; i++)
		if (tok_is(s, t, w[i]))
			return 1;
	return 0;
}

typedef struct ngram_tokens {
	char *text;   /* normalised token bytes, back to back */
	slice *v;     /* kept tokens */
	size_t n;
	slice *grams; /* n-grams (into gtext) */
	char *gtext;
	size_t ng;
} ngram_tokens;

static void ngram_tokens_free(ngram_tokens *g)
{
	free(g->text);
	free(g->v);
	free(g->grams);
	free(g->gtext);
}

static int same_word(const slice *a, const slice *b)
{
	return a->n == b->n && memcmp(a->p, b->p, a->n) == 0;
}

/* Tokens of s as the `ngram` dimension defines them, then their n-gram set. */
static int ngram_build(const char *s, size_t n, int gram, ngram_tokens *g)
{
	memset(g, 0, sizeof(*g));
	size_t cap = n / 1 + 1; /* at most one token per byte */
	g->text = malloc(n + 1);
	tok *all = malloc(cap * sizeof(*all));
	slice *norm = malloc(cap * sizeof(*norm));
	slice *alias = malloc(cap * sizeof(*alias));
	uint8_t *keep = malloc(cap);
	int r = RWD_E_NOMEM;
	if (!g->text || !all || !norm || !alias || !keep)
		goto done;
	size_t nt = 0, i = 0, tp = 0;
	tok t;
	for (lex(s, n, &i, &t); t.type != TK_END; lex(s, n, &i, &t))
		all[nt++] = t;
	/* normalised text of each token (words/qids lowercased) */
	for (size_t k = 0; k < nt; k++) {
		norm[k].p = g->text + tp;
		norm[k].n = all[k].len;
		for (size_t b = 0; b < all[k].len; b++) {
			char c = s[all[k].off + b];
			if ((all[k].type == TK_WORD || all[k].type == TK_QID) && c >= 'A' && c <= 'Z')
				c = (char)(c - 'A' + 'a');
			g->text[tp++] = c;
		}
	}
	/* aliases: after AS; after a table name in a FROM/JOIN list */
	size_t na = 0;
	int in_from[MAX_DEPTH] = {0}, paren_from[MAX_DEPTH] = {0};
	int depth = 0, expect_table = 0, after_table = 0;
	for (size_t k = 0; k < nt; k++) {
		const tok *c = &all[k];
		int name = c->type == TK_WORD || c->type == TK_QID;
		int was_after = after_table;
		after_table = 0;
		if (k > 0 && tok_is(s, &all[k - 1], "as") && name) {
			alias[na++] = norm[k];
			continue;
		}
		if (punct_is(s, c, '(')) {
			if (expect_table && depth + 1 < MAX_DEPTH)
				paren_from[depth] = 1;
			expect_table = 0;
			if (depth + 1 < MAX_DEPTH)
				depth++;
			in_from[depth] = paren_from[depth] = 0;
			continue;
		}
		if (punct_is(s, c, ')')) {
			expect_table = 0;
			if (depth > 0)
				depth--;
			if (paren_from[depth]) {
				paren_from[depth] = 0;
				after_table = 1;
			}
			continue;
		}
		if (tok_is(s, c, "from")) {
			in_from[depth] = 1;
			expect_table = 1;
			continue;
		}
		if (tok_is(s, c, "join")) {
			in_from[depth] = 1;
			expect_table = 1;
			continue;
		}
		if (punct_is(s, c, ',') && in_from[depth]) {
			expect_table = 1;
			continue;
		}
		if (ends_from(s, c))
			in_from[depth] = 0;
		if (expect_table && name) {
			expect_table = 0;
			/* schema.table */
			if (k + 2 < nt && punct_is(s, &all[k + 1], '.') &&
			    (all[k + 2].type == TK_WORD || all[k + 2].type == TK_QID))
				k += 2;
			after_table = 1;
			continue;
		}
		expect_table = 0;
		if (was_after && c->type == TK_WORD && !is_not_alias(s, c))
			alias[na++] = norm[k];
	}
	/* kept tokens: no punctuation, no AS, no alias names */
	g->v = malloc((nt + 1) * sizeof(*g->v));
	if (!g->v)
		goto done;
	for (size_t k = 0; k < nt; k++) {
		const tok *c = &all[k];
		if (c->type == TK_PUNCT || tok_is(s, c, "as"))
			continue;
		if (c->type == TK_WORD || c->type == TK_QID) {
			int is_alias = 0;
			for (size_t a = 0; a < na && !is_alias; a++)
				is_alias = same_word(&alias[a], &norm[k]);
			if (is_alias)
				continue;
		}
		g->v[g->n++] = norm[k];
	}
	/* n-grams: tokens joined by 0x1f (no token holds it... a literal may, harmlessly) */
	size_t m = g->n >= (size_t)gram ? g->n - (size_t)gram + 1 : 0;
	g->grams = malloc((m + 1) * sizeof(*g->grams));
	g->gtext = malloc(m * ((size_t)gram) + tp * (size_t)gram + 1);
	if (!g->grams || !g->gtext)
		goto done;
	size_t gp = 0;
	for (size_t k = 0; k < m; k++) {
		g->grams[k].p = g->gtext + gp;
		for (int q = 0; q < gram; q++) {
			if (q)
				g->gtext[gp++] = 0x1f;
			memcpy(g->gtext + gp, g->v[k + (size_t)q].p, g->v[k + (size_t)q].n);
			gp += g->v[k + (size_t)q].n;
		}
		g->grams[k].n = (size_t)(g->gtext + gp - g->grams[k].p);
	}
	g->ng = slice_unique(g->grams, m);
	r = 0;
done:
	free(all);
	free(norm);
	free(alias);
	free(keep);
	return r;
}

int rwd_sql_ngram(const char *a, size_t na, const char *b, size_t nb, int n, double *out)
{
	if (n < 1 || n > MAX_NGRAM)
		return RWD_E_INVALID;
	ngram_tokens ga, gb;
	int r = ngram_build(a, na, n, &ga);
	if (r) {
		ngram_tokens_free(&ga);
		return r;
	}
	r = ngram_build(b, nb, n, &gb);
	if (!r) {
		size_t inter = slice_intersection(ga.grams, ga.ng, gb.grams, gb.ng);
		size_t uni = ga.ng + gb.ng - inter;
		*out = uni ? (double)inter / (double)uni : 0.0;
	}
	ngram_tokens_free(&ga);
	ngram_tokens_free(&gb);
	return r;
}

/* ---- connections ------------------------------------------------------------ */

enum { WHY_NONE, WHY_INSTR, WHY_TIME };

typedef struct sql_items {
	char **v;
	size_t n, cap;
	int overflow;
} sql_items;

/* Per-connection context of the authorizer and the progress handler. */
typedef struct sql_ctx {
	int64_t instr, max_instr;
	uint64_t deadline_ns;
	int why;
	sql_items *collect; /* schema items read while preparing, or NULL */
	char deny[160];
} sql_ctx;

static void items_clear(sql_items *it)
{
	for (size_t i = 0; i < it->n; i++)
		free(it->v[i]);
	it->n = 0;
	it->overflow = 0;
}

static void items_free(sql_items *it)
{
	items_clear(it);
	free(it->v);
	it->v = NULL;
	it->cap = 0;
}

static void items_add(sql_items *it, const char *table, const char *column)
{
	if (it->n >= MAX_SCHEMA_ITEMS) {
		it->overflow = 1;
		return;
	}
	if (it->n == it->cap) {
		size_t nc = it->cap ? it->cap * 2 : 32;
		char **v = realloc(it->v, nc * sizeof(*v));
		if (!v) {
			it->overflow = 1;
			return;
		}
		it->v = v;
		it->cap = nc;
	}
	size_t lt = strlen(table), lc = column ? strlen(column) : 0;
	char *s = malloc(lt + lc + 2);
	if (!s) {
		it->overflow = 1;
		return;
	}
	for (size_t i = 0; i < lt; i++)
		s[i] = (char)(table[i] >= 'A' && table[i] <= 'Z' ? table[i] - 'A' + 'a' : table[i]);
	size_t p = lt;
	if (column) {
		s[p++] = '.';
		for (size_t i = 0; i < lc; i++)
			s[p++] = (char)(column[i] >= 'A' && column[i] <= 'Z' ? column[i] - 'A' + 'a' : column[i]);
	}
	s[p] = 0;
	it->v[it->n++] = s;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void items_unique(sql_items *it)
{
	if (it->n == 0)
		return;
	qsort(it->v, it->n, sizeof(*it->v), str_cmp);
	size_t k = 1;
	for (size_t i = 1; i < it->n; i++) {
		if (strcmp(it->v[i], it->v[k - 1]) == 0)
			free(it->v[i]);
		else
			it->v[k++] = it->v[i];
	}
	it->n = k;
}

static const char *const denied_functions[] = {
	"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit", NULL,
};

static const char *action_name(int a)
{
	switch (a) {
	case SQLITE_ATTACH: return "ATTACH";
	case SQLITE_DETACH: return "DETACH";
	case SQLITE_PRAGMA: return "PRAGMA";
	case SQLITE_INSERT: return "INSERT";
	case SQLITE_UPDATE: return "UPDATE";
	case SQLITE_DELETE: return "DELETE";
	case SQLITE_TRANSACTION: return "a transaction";
	case SQLITE_SAVEPOINT: return "SAVEPOINT";
	case SQLITE_ANALYZE: return "ANALYZE";
	case SQLITE_ALTER_TABLE: return "ALTER TABLE";
	case SQLITE_REINDEX: return "REINDEX";
	case SQLITE_CREATE_VTABLE: return "CREATE VIRTUAL TABLE";
	case SQLITE_DROP_VTABLE: return "DROP VIRTUAL TABLE";
	default: return "a statement that is not a SELECT";
	}
}

static int auth_cb(void *u, int action, const char *a1, const char *a2, const char *dbn,
	const char *inner)
{
	sql_ctx *c = u;
	(void)dbn;
	switch (action) {
	case SQLITE_SELECT:
	case SQLITE_RECURSIVE:
		return SQLITE_OK;
	case SQLITE_READ:
		if (a1 && (strncasecmp(a1, "pragma_", 7) == 0 || strcasecmp(a1, "sqlite_dbpage") == 0)) {
			snprintf(c->deny, sizeof(c->deny), "reading %s is not allowed (no PRAGMA)", a1);
			return SQLITE_DENY;
		}
		if (c->collect && a1) {
			/* the table, and the table.column when a column is read (sql.h) */
			items_add(c->collect, a1, NULL);
			if (a2 && a2[0])
				items_add(c->collect, a1, a2);
		}
		return SQLITE_OK;
	case SQLITE_UPDATE:
		/* SQLite (3.40) reports UPDATE of sqlite_master's columns while it
		 * connects an eponymous virtual table (json_each, pragma_*, ...) in a
		 * SELECT; that is no write (the statement must still be readonly,
		 * start with SELECT/WITH, and the file is opened read-only), so let
		 * it through and let the READ check name a pragma_* table. A write
		 * to sqlite_master written by the policy is refused by those checks
		 * and by SQLITE_DBCONFIG_DEFENSIVE. */
		if (a1 && (strcasecmp(a1, "sqlite_master") == 0 || strcasecmp(a1, "sqlite_schema") == 0) &&
		    !inner)
			return SQLITE_OK;
		snprintf(c->deny, sizeof(c->deny), "UPDATE is not allowed: only a single SELECT");
		return SQLITE_DENY;
	case SQLITE_FUNCTION:
		for (size_t i = 0; a2 && denied_functions[i]; i++)
			if (strcasecmp(a2, denied_functions[i]) == 0) {
				snprintf(c->deny, sizeof(c->deny), "the function %s() is not allowed", a2);
				return SQLITE_DENY;
			}
		return SQLITE_OK;
	default:
		snprintf(c->deny, sizeof(c->deny), "%s is not allowed: only a single SELECT",
			action_name(action));
		return SQLITE_DENY;
	}
}

static int progress_cb(void *u)
{
	sql_ctx *c = u;
	c->instr += PROGRESS_STEP;
	if (c->instr > c->max_instr) {
		c->why = WHY_INSTR;
		return 1;
	}
	if (rwd_now_ns() > c->deadline_ns) {
		c->why = WHY_TIME;
		return 1;
	}
	return 0;
}

/* Pragmas (ours, before the authorizer), db_config, limits, handlers. */
static int harden(sqlite3 *db, const sql_state *s, sql_ctx *ctx, rwd_error *err)
{
	char pragma[128];
	snprintf(pragma, sizeof(pragma), "PRAGMA cache_size=-%d; PRAGMA query_only=1;", s->cache_kib);
	if (sqlite3_exec(db, pragma, NULL, NULL, NULL) != SQLITE_OK)
		return rwd_errorf(err, RWD_E_IO, "cannot configure the connection: %s", sqlite3_errmsg(db));
	int off = 0, on = 1;
	sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, &off);
	sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, &on);
	sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, &off);
	sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, &off);
	if (off != 0 || on != 1)
		return rwd_errorf(err, RWD_E_INTERNAL, "sqlite3_db_config did not take effect");
	sqlite3_limit(db, SQLITE_LIMIT_LENGTH, (int)s->max_value_bytes);
	sqlite3_limit(db, SQLITE_LIMIT_SQL_LENGTH, (int)s->max_sql_bytes);
	sqlite3_limit(db, SQLITE_LIMIT_COLUMN, 1000);
	sqlite3_limit(db, SQLITE_LIMIT_EXPR_DEPTH, 200);
	sqlite3_limit(db, SQLITE_LIMIT_COMPOUND_SELECT, 64);
	sqlite3_limit(db, SQLITE_LIMIT_VDBE_OP, 250000);
	sqlite3_limit(db, SQLITE_LIMIT_FUNCTION_ARG, 100);
	sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, 0);
	sqlite3_limit(db, SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 10000);
	sqlite3_limit(db, SQLITE_LIMIT_VARIABLE_NUMBER, 0);
	sqlite3_limit(db, SQLITE_LIMIT_TRIGGER_DEPTH, 1);
	sqlite3_limit(db, SQLITE_LIMIT_WORKER_THREADS, 0);
	sqlite3_set_authorizer(db, auth_cb, ctx);
	sqlite3_progress_handler(db, PROGRESS_STEP, progress_cb, ctx);
	return 0;
}

/* "file:" + percent-encoded path + "?mode=ro&immutable=1" */
static char *make_uri(const char *path)
{
	size_t n = strlen(path);
	char *u = malloc(5 + 3 * n + 32);
	if (!u)
		return NULL;
	size_t p = 0;
	memcpy(u, "file:", 5);
	p = 5;
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)path[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/' ||
		    c == '-' || c == '_' || c == '.' || c == '~') {
			u[p++] = (char)c;
		} else {
			u[p++] = '%';
			u[p++] = hex[c >> 4];
			u[p++] = hex[c & 15];
		}
	}
	strcpy(u + p, "?mode=ro&immutable=1");
	return u;
}

typedef struct sql_conn {
	char *path;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	sqlite3 *db;
	sql_ctx ctx;
	uint64_t used;
} sql_conn;

static void conn_close(sql_conn *c)
{
	if (c->db)
		sqlite3_close_v2(c->db);
	free(c->path);
	c->db = NULL;
	c->path = NULL;
}

static int map_db_error(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_NOMEM: return RWD_E_NOMEM;
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT: return RWD_E_FORMAT;
	case SQLITE_CANTOPEN: return RWD_E_NOTFOUND;
	default: return RWD_E_IO;
	}
}

/* Open `path` read-only + immutable and harden it; the schema is read once
 * here, so a file that is not a database fails now. */
static int conn_open(const sql_state *s, sql_conn *c, const char *path, const struct stat *st,
	rwd_error *err)
{
	char *uri = make_uri(path);
	if (!uri)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(uri, &db,
		SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE, NULL);
	free(uri);
	int r;
	if (rc != SQLITE_OK) {
		r = rwd_errorf(err, map_db_error(rc), "cannot open the database: %s",
			db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		goto fail;
	}
	memset(&c->ctx, 0, sizeof(c->ctx));
	c->ctx.max_instr = INT64_MAX;
	c->ctx.deadline_ns = UINT64_MAX;
	rc = sqlite3_exec(db, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		r = rwd_errorf(err, map_db_error(sqlite3_extended_errcode(db)), "cannot read the database: %s",
			sqlite3_errmsg(db));
		goto fail;
	}
	if ((r = harden(db, s, &c->ctx, err)))
		goto fail;
	c->path = strdup(path);
	if (!c->path) {
		r = rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		goto fail;
	}
	c->db = db;
	c->dev = st->st_dev;
	c->ino = st->st_ino;
	c->size = st->st_size;
	c->mtime = st->st_mtim;
	return 0;
fail:
	sqlite3_close_v2(db);
	return r;
}

/* ---- results ---------------------------------------------------------------- */

typedef struct sql_result {
	uint8_t *buf;
	size_t len, cap;
	size_t *row;    /* start offset of each row */
	size_t n_rows, cap_rows;
	slice *sorted;  /* rows sorted (and unique in set mode), lazily */
	size_t n_sorted;
	int sorted_ok;
	sql_items items;
} sql_result;

static void result_reset(sql_result *r)
{
	r->len = 0;
	r->n_rows = 0;
	r->sorted_ok = 0;
	items_clear(&r->items);
}

static void result_free(sql_result *r)
{
	free(r->buf);
	free(r->row);
	free(r->sorted);
	items_free(&r->items);
	memset(r, 0, sizeof(*r));
}

static slice row_slice(const sql_result *r, size_t i)
{
	size_t end = i + 1 < r->n_rows ? r->row[i + 1] : r->len;
	slice s = {(const char *)r->buf + r->row[i], end - r->row[i]};
	return s;
}

static int put(sql_result *r, const void *p, size_t n, size_t max)
{
	if (n > max - r->len)
		return RWD_E_LIMIT;
	if (r->len + n > r->cap) {
		size_t nc = r->cap ? r->cap : 4096;
		while (nc < r->len + n)
			nc *= 2;
		if (nc > max)
			nc = max;
		uint8_t *b = realloc(r->buf, nc);
		if (!b)
			return RWD_E_NOMEM;
		r->buf = b;
		r->cap = nc;
	}
	memcpy(r->buf + r->len, p, n);
	r->len += n;
	return 0;
}

/*
 * Append the current row in the canonical encoding: per value a tag byte
 * then its payload (int64 / double bits: 8 bytes; text/blob: 4-byte length
 * + bytes). A REAL holding an integral value in int64 range is stored as
 * that INTEGER, so 1 = 1.0 and -0.0 = 0 as in Python. The encoding is
 * prefix-free, so equal bytes mean equal rows.
 */
static int append_row(sql_result *r, sqlite3_stmt *st, size_t max_rows, size_t max_bytes)
{
	if (r->n_rows >= max_rows)
		return RWD_E_LIMIT;
	if (r->n_rows == r->cap_rows) {
		size_t nc = r->cap_rows ? r->cap_rows * 2 : 256;
		size_t *v = realloc(r->row, nc * sizeof(*v));
		if (!v)
			return RWD_E_NOMEM;
		r->row = v;
		r->cap_rows = nc;
	}
	size_t start = r->len;
	int nc = sqlite3_column_count(st), e = 0;
	for (int i = 0; i < nc && !e; i++) {
		uint8_t tag;
		int type = sqlite3_column_type(st, i);
		if (type == SQLITE_FLOAT) {
			double d = sqlite3_column_double(st, i);
			/* -2^63 <= d < 2^63 and integral: an exact int64 */
			if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 && d == (double)(int64_t)d)
				type = SQLITE_INTEGER;
		}
		switch (type) {
		case SQLITE_INTEGER: {
			int64_t v = sqlite3_column_type(st, i) == SQLITE_FLOAT ?
				(int64_t)sqlite3_column_double(st, i) : sqlite3_column_int64(st, i);
			tag = 1;
			if (!(e = put(r, &tag, 1, max_bytes)))
				e = put(r, &v, 8, max_bytes);
			break;
		}
		case SQLITE_FLOAT: {
			double d = sqlite3_column_double(st, i);
			tag = 2;
			if (!(e = put(r, &tag, 1, max_bytes)))
				e = put(r, &d, 8, max_bytes);
			break;
		}
		case SQLITE_TEXT:
		case SQLITE_BLOB: {
			const void *p = type == SQLITE_TEXT ? (const void *)sqlite3_column_text(st, i) :
				sqlite3_column_blob(st, i);
			uint32_t n = (uint32_t)sqlite3_column_bytes(st, i);
			if (!p && n) /* out of memory converting the value */
				return RWD_E_NOMEM;
			tag = type == SQLITE_TEXT ? 3 : 4;
			if (!(e = put(r, &tag, 1, max_bytes)) && !(e = put(r, &n, 4, max_bytes)) && n)
				e = put(r, p, n, max_bytes);
			break;
		}
		default:
			tag = 0;
			e = put(r, &tag, 1, max_bytes);
			break;
		}
	}
	if (e) {
		r->len = start;
		return e;
	}
	r->row[r->n_rows++] = start;
	return 0;
}

static int result_sort(sql_result *r, int unique)
{
	if (r->sorted_ok)
		return 0;
	slice *v = realloc(r->sorted, (r->n_rows + 1) * sizeof(*v));
	if (!v)
		return RWD_E_NOMEM;
	r->sorted = v;
	for (size_t i = 0; i < r->n_rows; i++)
		v[i] = row_slice(r, i);
	if (unique) {
		r->n_sorted = slice_unique(v, r->n_rows);
	} else {
		if (r->n_rows)
			qsort(v, r->n_rows, sizeof(*v), slice_cmp);
		r->n_sorted = r->n_rows;
	}
	r->sorted_ok = 1;
	return 0;
}

/* 1 equal, 0 not, or RWD_E_NOMEM. */
static int results_equal(const sql_state *s, sql_result *g, sql_result *p, int ordered)
{
	if (g->n_rows == 0 && p->n_rows == 0)
		return s->empty_match;
	if (ordered) {
		if (g->n_rows != p->n_rows || g->len != p->len)
			return 0;
		return memcmp(g->buf, p->buf, g->len) == 0 &&
		       memcmp(g->row, p->row, g->n_rows * sizeof(*g->row)) == 0;
	}
	int unique = s->compare == CMP_SET;
	if (!unique && (g->n_rows != p->n_rows || g->len != p->len))
		return 0;
	int r;
	if ((r = result_sort(g, unique)) || (r = result_sort(p, unique)))
		return r;
	if (g->n_sorted != p->n_sorted)
		return 0;
	for (size_t i = 0; i < g->n_sorted; i++)
		if (slice_cmp(&g->sorted[i], &p->sorted[i]) != 0)
			return 0;
	return 1;
}

/* ---- running one statement ---------------------------------------------------- */

enum { RUN_OK, RUN_BAD, RUN_LIMIT, RUN_MISMATCH };

typedef struct run_out {
	int status;      /* RUN_*, or a negative RWD_E_* for an item error */
	int accepted;    /* passed every statement check */
	int first_ok;    /* the first step gave a row or done */
	char msg[RWD_ERROR_MSG_MAX];
} run_out;

static int first_word_ok(const char *sql, size_t n)
{
	size_t i = 0;
	tok t;
	lex(sql, n, &i, &t);
	return tok_is(sql, &t, "select") || tok_is(sql, &t, "with");
}

static int tail_empty(const char *sql, size_t n, size_t from)
{
	size_t i = from;
	tok t;
	for (lex(sql, n, &i, &t); t.type != TK_END; lex(sql, n, &i, &t))
		if (!punct_is(sql, &t, ';'))
			return 0;
	return 1;
}

/* An SQLite error during prepare/step into out->status. */
static void classify(sqlite3 *db, const sql_ctx *ctx, int rc, run_out *o)
{
	switch (rc & 0xff) {
	case SQLITE_INTERRUPT:
		if (ctx->why == WHY_TIME) {
			o->status = RWD_E_TIMEOUT;
			snprintf(o->msg, sizeof(o->msg), "ran past the statement timeout");
		} else {
			o->status = RUN_LIMIT;
			snprintf(o->msg, sizeof(o->msg), "ran past max_instructions (%lld)",
				(long long)ctx->max_instr);
		}
		return;
	case SQLITE_NOMEM:
		o->status = RWD_E_NOMEM;
		snprintf(o->msg, sizeof(o->msg), "SQLite ran out of memory (heap_limit_mib)");
		return;
	case SQLITE_TOOBIG:
		o->status = RUN_LIMIT;
		snprintf(o->msg, sizeof(o->msg), "a value or the statement is over its size limit: %s",
			sqlite3_errmsg(db));
		return;
	case SQLITE_IOERR:
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_CANTOPEN:
	case SQLITE_FULL:
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_PROTOCOL:
		o->status = map_db_error(rc);
		snprintf(o->msg, sizeof(o->msg), "the database failed: %s", sqlite3_errmsg(db));
		return;
	default:
		o->status = RUN_BAD;
		if (ctx->deny[0])
			snprintf(o->msg, sizeof(o->msg), "%s", ctx->deny);
		else
			snprintf(o->msg, sizeof(o->msg), "%s", sqlite3_errmsg(db));
		return;
	}
}

/*
 * Run sql on c into res. gold != NULL: a policy run compared against it as
 * it goes (stops once it can no longer match); first_only: stop after the
 * first step (syntax only).
 */
static void run_sql(const sql_state *s, sql_conn *c, const char *sql, size_t n, sql_result *res,
	const sql_result *gold, int ordered, int first_only, run_out *o)
{
	memset(o, 0, sizeof(*o));
	result_reset(res);
	sql_ctx *ctx = &c->ctx;
	ctx->instr = 0;
	ctx->max_instr = s->max_instructions;
	ctx->deadline_ns = rwd_now_ns() + (uint64_t)(s->timeout_ms * 1e6);
	ctx->why = WHY_NONE;
	ctx->deny[0] = 0;
	ctx->collect = NULL;
	if (n > s->max_sql_bytes) {
		o->status = RUN_BAD;
		snprintf(o->msg, sizeof(o->msg), "the SQL is %zu bytes, over max_sql_bytes (%zu)", n,
			s->max_sql_bytes);
		return;
	}
	if (n == 0) {
		o->status = RUN_BAD;
		snprintf(o->msg, sizeof(o->msg), "no SQL statement");
		return;
	}
	if (memchr(sql, '\0', n)) {
		o->status = RUN_BAD;
		snprintf(o->msg, sizeof(o->msg), "the SQL contains a NUL byte");
		return;
	}
	if (!first_word_ok(sql, n)) {
		o->status = RUN_BAD;
		size_t w = 0;
		while (w < n && (sql[w] == ' ' || sql[w] == '\t' || sql[w] == '\n' || sql[w] == '\r'))
			w++;
		size_t e = w;
		while (e < n && e - w < 24 && is_word_char((unsigned char)sql[e]))
			e++;
		snprintf(o->msg, sizeof(o->msg), "not a SELECT statement (%.*s%s): only SELECT or WITH ... SELECT",
			(int)(e - w), sql + w, e > w ? " ..." : "no statement keyword");
		return;
	}
	sqlite3_stmt *st = NULL;
	const char *tail = NULL;
	ctx->collect = &res->items;
	int rc = sqlite3_prepare_v3(c->db, sql, (int)n, 0, &st, &tail);
	ctx->collect = NULL;
	if (rc != SQLITE_OK) {
		classify(c->db, ctx, sqlite3_extended_errcode(c->db), o);
		goto done;
	}
	if (!st) {
		o->status = RUN_BAD;
		snprintf(o->msg, sizeof(o->msg), "no SQL statement");
		goto done;
	}
	if (!tail_empty(sql, n, (size_t)(tail - sql))) {
		o->status = RUN_BAD;
		snprintf(o->msg, sizeof(o->msg), "more than one statement (only a single SELECT)");
		goto done;
	}
	if (!sqlite3_stmt_readonly(st) || sqlite3_stmt_isexplain(st)) {
		o->status = RUN_BAD;
		snprintf(o->msg, sizeof(o->msg), "not a read-only SELECT statement");
		goto done;
	}
	if (sqlite3_bind_parameter_count(st) > 0) {
		o->status = RUN_BAD;
		snprintf(o->msg, sizeof(o->msg), "the statement has parameters");
		goto done;
	}
	if (res->items.overflow) {
		o->status = RUN_LIMIT;
		snprintf(o->msg, sizeof(o->msg), "the statement reads more than %d schema items",
			MAX_SCHEMA_ITEMS);
		goto done;
	}
	items_unique(&res->items);
	o->accepted = 1;
	for (;;) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_DONE) {
			o->first_ok = 1;
			break;
		}
		if (rc != SQLITE_ROW) {
			classify(c->db, ctx, sqlite3_extended_errcode(c->db), o);
			break;
		}
		o->first_ok = 1;
		if (first_only)
			break;
		int e = append_row(res, st, s->max_rows, s->max_result_bytes);
		if (e == RWD_E_NOMEM) {
			o->status = RWD_E_NOMEM;
			snprintf(o->msg, sizeof(o->msg), "out of memory for the result");
			break;
		}
		if (e) {
			o->status = RUN_LIMIT;
			snprintf(o->msg, sizeof(o->msg), "the result is over max_result_rows (%zu) or max_result_bytes (%zu)",
				s->max_rows, s->max_result_bytes);
			break;
		}
		if (gold) {
			size_t k = res->n_rows - 1;
			int cant = 0;
			if (ordered) {
				if (k >= gold->n_rows) {
					cant = 1;
				} else {
					slice a = row_slice(gold, k), b = row_slice(res, k);
					cant = slice_cmp(&a, &b) != 0;
				}
			} else if (s->compare == CMP_MULTISET) {
				cant = res->n_rows > gold->n_rows || res->len > gold->len;
			}
			if (cant) {
				o->status = RUN_MISMATCH;
				break;
			}
		}
	}
done:
	sqlite3_finalize(st);
}

/* ---- the kind ------------------------------------------------------------------ */

typedef struct sql_scratch {
	sql_conn *conns;
	size_t n_conns;
	uint64_t tick;
	sql_result gold, pol;
	/* the cached gold result: valid for this connection path + label */
	char *gold_path;
	char *gold_sql;
	size_t gold_len;
	dev_t gold_dev;
	ino_t gold_ino;
	struct timespec gold_mtime;
	int gold_ordered;
} sql_scratch;

static int opt_int(const json_t *v, const char *key, double lo, double hi, double *out, rwd_error *err)
{
	if (!json_is_integer(v) || (double)json_integer_value(v) < lo || (double)json_integer_value(v) > hi)
		return rwd_errorf(err, RWD_E_INVALID, "%s must be an integer in %.0f..%.0f", key, lo, hi);
	*out = (double)json_integer_value(v);
	return 0;
}

static int opt_choice(const json_t *v, const char *key, const char *a, const char *b, int *out,
	rwd_error *err)
{
	const char *x = json_string_value(v);
	if (x && strcmp(x, a) == 0)
		*out = 0;
	else if (x && strcmp(x, b) == 0)
		*out = 1;
	else
		return rwd_errorf(err, RWD_E_INVALID, "%s must be \"%s\" or \"%s\"", key, a, b);
	return 0;
}

static int kind_load(const char *path, const json_t *opts, const rwd_batch_limits *lim,
	void **state, rwd_error *err)
{
	(void)path;
	(void)lim;
	sql_state *s = calloc(1, sizeof(*s));
	if (!s)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	s->max_instructions = 100000000;
	s->timeout_ms = 10000;
	s->max_rows = 100000;
	s->max_result_bytes = (size_t)64 << 20;
	s->max_value_bytes = (size_t)1 << 20;
	s->max_sql_bytes = 65536;
	s->max_response_bytes = 262144;
	s->max_open = 8;
	s->heap_limit = (int64_t)1024 << 20;
	s->cache_kib = 16384;
	s->compare = CMP_MULTISET;
	s->order_auto = 1;
	s->empty_match = 1;
	s->schema_score = SCHEMA_JACCARD;
	s->ngram_n = 2;
	const char *root = NULL;
	int r = 0;
	const char *key;
	json_t *v;
	double d;
	json_object_foreach((json_t *)opts, key, v) {
		rwd_error_where(err, NULL, key);
		if (strcmp(key, "database_root") == 0) {
			if (!json_is_string(v) || !json_string_length(v)) {
				r = rwd_errorf(err, RWD_E_INVALID, "database_root must be a directory path");
				goto fail;
			}
			root = json_string_value(v);
		} else if (strcmp(key, "max_instructions") == 0) {
			if ((r = opt_int(v, key, 1000, 1e12, &d, err)))
				goto fail;
			s->max_instructions = (int64_t)d;
		} else if (strcmp(key, "timeout_ms") == 0) {
			if (!json_is_number(v) || json_number_value(v) < 1 || json_number_value(v) > 600000) {
				r = rwd_errorf(err, RWD_E_INVALID, "timeout_ms must be a number in 1..600000");
				goto fail;
			}
			s->timeout_ms = json_number_value(v);
		} else if (strcmp(key, "max_result_rows") == 0) {
			if ((r = opt_int(v, key, 1, 1e7, &d, err)))
				goto fail;
			s->max_rows = (size_t)d;
		} else if (strcmp(key, "max_result_bytes") == 0) {
			if ((r = opt_int(v, key, 1024, 1073741824.0, &d, err)))
				goto fail;
			s->max_result_bytes = (size_t)d;
		} else if (strcmp(key, "max_value_bytes") == 0) {
			if ((r = opt_int(v, key, 1024, 1073741824.0, &d, err)))
				goto fail;
			s->max_value_bytes = (size_t)d;
		} else if (strcmp(key, "max_sql_bytes") == 0) {
			if ((r = opt_int(v, key, 16, 1048576.0, &d, err)))
				goto fail;
			s->max_sql_bytes = (size_t)d;
		} else if (strcmp(key, "max_response_bytes") == 0) {
			if ((r = opt_int(v, key, 1, 16777216.0, &d, err)))
				goto fail;
			s->max_response_bytes = (size_t)d;
		} else if (strcmp(key, "max_open_databases") == 0) {
			if ((r = opt_int(v, key, 1, 256, &d, err)))
				goto fail;
			s->max_open = (size_t)d;
		} else if (strcmp(key, "heap_limit_mib") == 0) {
			if ((r = opt_int(v, key, 0, 1048576.0, &d, err)))
				goto fail;
			s->heap_limit = (int64_t)d << 20;
		} else if (strcmp(key, "cache_kib") == 0) {
			if ((r = opt_int(v, key, 64, 1048576.0, &d, err)))
				goto fail;
			s->cache_kib = (int)d;
		} else if (strcmp(key, "compare") == 0) {
			if ((r = opt_choice(v, key, "multiset", "set", &s->compare, err)))
				goto fail;
		} else if (strcmp(key, "order") == 0) {
			int ignore;
			if ((r = opt_choice(v, key, "auto", "ignore", &ignore, err)))
				goto fail;
			s->order_auto = !ignore;
		} else if (strcmp(key, "empty_results_match") == 0) {
			if (!json_is_boolean(v)) {
				r = rwd_errorf(err, RWD_E_INVALID, "empty_results_match must be true or false");
				goto fail;
			}
			s->empty_match = json_is_true(v);
		} else if (strcmp(key, "schema_score") == 0) {
			if ((r = opt_choice(v, key, "jaccard", "recall", &s->schema_score, err)))
				goto fail;
		} else if (strcmp(key, "ngram_n") == 0) {
			if ((r = opt_int(v, key, 1, MAX_NGRAM, &d, err)))
				goto fail;
			s->ngram_n = (int)d;
		} else {
			r = rwd_errorf(err, RWD_E_INVALID,
				"unknown sql option (expected database_root, max_instructions, timeout_ms, max_result_rows, "
				"max_result_bytes, max_value_bytes, max_sql_bytes, max_response_bytes, max_open_databases, "
				"heap_limit_mib, cache_kib, compare, order, empty_results_match, schema_score, ngram_n)");
			goto fail;
		}
	}
	rwd_error_where(err, NULL, "database_root");
	if (!root) {
		r = rwd_errorf(err, RWD_E_INVALID, "the sql kind needs options.database_root (a directory of SQLite files)");
		goto fail;
	}
	struct stat st;
	if (!realpath(root, s->root) || stat(s->root, &st) != 0 || !S_ISDIR(st.st_mode)) {
		r = rwd_errorf(err, RWD_E_NOTFOUND, "database_root '%s' is not a directory: %s", root,
			errno ? strerror(errno) : "not a directory");
		goto fail;
	}
	s->root_len = strlen(s->root);
	rwd_error_where(err, NULL, "");
	if (!sqlite3_threadsafe()) {
		r = rwd_errorf(err, RWD_E_UNSUPPORTED, "this SQLite library was built without thread support");
		goto fail;
	}
	/* Process-wide (see sql.h): only ever lowered. */
	if (s->heap_limit > 0) {
		sqlite3_int64 cur = sqlite3_hard_heap_limit64(-1);
		if (cur == 0 || cur > s->heap_limit)
			sqlite3_hard_heap_limit64(s->heap_limit);
	}
	*state = s;
	return 0;
fail:
	free(s);
	return r;
}

static void kind_free(void *state)
{
	free(state);
}

static void kind_describe(const void *state, rwd_model_info *info)
{
	(void)state;
	info->n_dims = DIM_COUNT;
	for (size_t i = 0; i < DIM_COUNT; i++)
		info->dims[i] = dim_names[i];
	info->weight_bytes = 0;
	info->token_cost = 0;
}

static int check_string(const json_t *item, const char *field, int required, size_t max,
	const json_t **out, rwd_error *err)
{
	const json_t *v = json_object_get(item, field);
	*out = NULL;
	if (!v || json_is_null(v)) {
		if (!required)
			return 0;
		rwd_error_where(err, NULL, field);
		return rwd_errorf(err, RWD_E_INVALID, "missing \"%s\"", field);
	}
	rwd_error_where(err, NULL, field);
	if (!json_is_string(v))
		return rwd_errorf(err, RWD_E_INVALID, "\"%s\" must be a string", field);
	if (json_string_length(v) > max)
		return rwd_errorf(err, RWD_E_LIMIT, "\"%s\" is %zu bytes, over the limit of %zu", field,
			json_string_length(v), max);
	rwd_error_where(err, NULL, "");
	*out = v;
	return 0;
}

static int kind_check(const void *state, const json_t *item, size_t *cost, rwd_error *err)
{
	const sql_state *s = state;
	const json_t *resp, *label, *db;
	*cost = 1;
	int r;
	if ((r = check_string(item, "response", 1, s->max_response_bytes, &resp, err)))
		return r;
	if ((r = check_string(item, "label", 0, s->max_sql_bytes, &label, err)))
		return r;
	if (label && memchr(json_string_value(label), 0, json_string_length(label))) {
		rwd_error_where(err, NULL, "label");
		return rwd_errorf(err, RWD_E_INVALID, "\"label\" contains a NUL byte");
	}
	if ((r = check_string(item, "database", 0, MAX_NAME_BYTES, &db, err)))
		return r;
	if (db) {
		rwd_error_where(err, NULL, "database");
		if ((r = rwd_sql_check_name(json_string_value(db), json_string_length(db), err)))
			return r;
		rwd_error_where(err, NULL, "");
	}
	return 0;
}

static int kind_scratch_new(const void *state, void **out, rwd_error *err)
{
	const sql_state *s = state;
	sql_scratch *w = calloc(1, sizeof(*w));
	if (w) {
		w->conns = calloc(s->max_open, sizeof(*w->conns));
		w->n_conns = s->max_open;
	}
	if (!w || !w->conns) {
		free(w);
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	}
	*out = w;
	return 0;
}

static void kind_scratch_free(void *scratch)
{
	sql_scratch *w = scratch;
	if (!w)
		return;
	for (size_t i = 0; i < w->n_conns; i++)
		conn_close(&w->conns[i]);
	free(w->conns);
	result_free(&w->gold);
	result_free(&w->pol);
	free(w->gold_path);
	free(w->gold_sql);
	free(w);
}

/* realpath(root/name), checked to lie inside root; then the worker's
 * connection for it (opened, or reopened when the file changed). */
static int get_conn(const sql_state *s, sql_scratch *w, const char *name, sql_conn **out,
	rwd_error *err)
{
	char joined[PATH_MAX], real[PATH_MAX];
	if ((size_t)snprintf(joined, sizeof(joined), "%s/%s", s->root, name) >= sizeof(joined))
		return rwd_errorf(err, RWD_E_INVALID, "the database path is too long");
	if (!realpath(joined, real)) {
		int e = errno;
		return rwd_errorf(err, e == ENOENT || e == ENOTDIR ? RWD_E_NOTFOUND : RWD_E_IO,
			"database '%s' not found under database_root: %s", name, strerror(e));
	}
	if (strncmp(real, s->root, s->root_len) != 0 || real[s->root_len] != '/')
		return rwd_errorf(err, RWD_E_INVALID, "database '%s' resolves outside database_root", name);
	struct stat st;
	if (stat(real, &st) != 0)
		return rwd_errorf(err, RWD_E_IO, "cannot stat database '%s': %s", name, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return rwd_errorf(err, RWD_E_INVALID, "database '%s' is not a regular file", name);
	/* slots are fixed (each connection's handlers point at its slot's ctx) */
	sql_conn *c = NULL, *lru = NULL;
	for (size_t i = 0; i < w->n_conns; i++) {
		sql_conn *x = &w->conns[i];
		if (x->db && strcmp(x->path, real) == 0) {
			c = x;
			break;
		}
		if (!lru || !x->db || (lru->db && x->used < lru->used))
			lru = x;
	}
	if (c && (c->dev != st.st_dev || c->ino != st.st_ino || c->size != st.st_size ||
		  c->mtime.tv_sec != st.st_mtim.tv_sec || c->mtime.tv_nsec != st.st_mtim.tv_nsec)) {
		conn_close(c); /* the file changed: immutable no longer holds */
	} else if (c) {
		c->used = ++w->tick;
		*out = c;
		return 0;
	}
	if (!c) {
		c = lru;
		conn_close(c);
	}
	int r = conn_open(s, c, real, &st, err);
	if (r)
		return r; /* the slot stays empty */
	c->used = ++w->tick;
	*out = c;
	return 0;
}

static double jaccard_items(const sql_state *s, const sql_items *g, const sql_items *p)
{
	size_t i = 0, j = 0, k = 0;
	while (i < g->n && j < p->n) {
		int c = strcmp(g->v[i], p->v[j]);
		if (c == 0) {
			k++;
			i++;
			j++;
		} else if (c < 0) {
			i++;
		} else {
			j++;
		}
	}
	if (s->schema_score == SCHEMA_RECALL)
		return g->n ? (double)k / (double)g->n : 1.0;
	size_t u = g->n + p->n - k;
	return u ? (double)k / (double)u : 1.0;
}

/* Fail the item: "<prefix><msg>", err->object = field. */
static int item_fail(rwd_item *it, int code, const char *field, const char *prefix, const char *msg)
{
	it->status = code;
	rwd_errorf(&it->err, code, "%s%s", prefix, msg);
	rwd_error_where(&it->err, NULL, field);
	memset(it->present, 0, sizeof(it->present));
	return code;
}

static int gold_cached(const sql_scratch *w, const sql_conn *c, const char *sql, size_t n)
{
	return w->gold_path && strcmp(w->gold_path, c->path) == 0 && w->gold_dev == c->dev &&
	       w->gold_ino == c->ino && w->gold_mtime.tv_sec == c->mtime.tv_sec &&
	       w->gold_mtime.tv_nsec == c->mtime.tv_nsec && w->gold_len == n &&
	       memcmp(w->gold_sql, sql, n) == 0;
}

static void gold_forget(sql_scratch *w)
{
	free(w->gold_path);
	free(w->gold_sql);
	w->gold_path = w->gold_sql = NULL;
}

static void score_item(const sql_state *s, sql_scratch *w, rwd_item *it)
{
	const json_t *in = it->input;
	const json_t *jr = json_object_get(in, "response");
	const json_t *jl = json_object_get(in, "label");
	const json_t *jd = json_object_get(in, "database");
	const char *resp = json_string_value(jr);
	size_t ro, rn;
	rwd_sql_extract(resp, json_string_length(jr), &ro, &rn);
	const char *psql = resp + ro;
	if (rn > s->max_sql_bytes) {
		/* a server limit, not a wrong answer: refused, never scored 0 (sql.h) */
		char msg[160];
		snprintf(msg, sizeof(msg), "the SQL extracted from the response is %zu bytes, over max_sql_bytes (%zu)",
			rn, s->max_sql_bytes);
		item_fail(it, RWD_E_LIMIT, "response", "", msg);
		return;
	}
	const char *gsql = NULL;
	size_t go = 0, gn = 0;
	if (json_is_string(jl)) {
		gsql = json_string_value(jl);
		gn = json_string_length(jl);
		trim(gsql, &go, &gn);
		gsql += go;
	}
	if (gsql) {
		double ng;
		int r = rwd_sql_ngram(psql, rn, gsql, gn, s->ngram_n, &ng);
		if (r) {
			item_fail(it, r, "response", "out of memory for the n-grams", "");
			return;
		}
		it->scores[DIM_NGRAM] = (float)ng;
		it->present[DIM_NGRAM] = 1;
	}
	if (!json_is_string(jd))
		return;
	sql_conn *c = NULL;
	rwd_error e;
	rwd_error_clear(&e);
	int r = get_conn(s, w, json_string_value(jd), &c, &e);
	if (r) {
		item_fail(it, r, "database", "", e.msg);
		return;
	}
	run_out o;
	int ordered = 0;
	if (gsql) {
		if (!gold_cached(w, c, gsql, gn)) {
			gold_forget(w);
			run_sql(s, c, gsql, gn, &w->gold, NULL, 0, 0, &o);
			if (o.status != RUN_OK) {
				int code = o.status < 0 ? o.status : o.status == RUN_LIMIT ? RWD_E_LIMIT : RWD_E_INVALID;
				item_fail(it, code, code == RWD_E_FORMAT || code == RWD_E_IO ? "database" : "label",
					"the gold query failed: ", o.msg);
				return;
			}
			w->gold_path = strdup(c->path);
			w->gold_sql = malloc(gn + 1);
			if (w->gold_path && w->gold_sql) {
				memcpy(w->gold_sql, gsql, gn);
				w->gold_len = gn;
				w->gold_dev = c->dev;
				w->gold_ino = c->ino;
				w->gold_mtime = c->mtime;
				w->gold_ordered = s->order_auto && rwd_sql_orders(gsql, gn);
			} else {
				gold_forget(w); /* not cached; this item still has its gold result */
				w->gold_ordered = s->order_auto && rwd_sql_orders(gsql, gn);
			}
		}
		ordered = w->gold_ordered;
	}
	run_sql(s, c, psql, rn, &w->pol, gsql ? &w->gold : NULL, ordered, !gsql, &o);
	if (o.status < 0) {
		item_fail(it, o.status, o.status == RWD_E_FORMAT || o.status == RWD_E_IO ? "database" : "response",
			"the response's query could not be scored: ", o.msg);
		return;
	}
	it->scores[DIM_SYNTAX] = o.accepted && o.first_ok ? 1.0f : 0.0f;
	it->present[DIM_SYNTAX] = 1;
	if (!gsql)
		return;
	int eq = 0;
	if (o.status == RUN_OK) {
		eq = results_equal(s, &w->gold, &w->pol, ordered);
		if (eq < 0) {
			item_fail(it, eq, "response", "out of memory comparing the results", "");
			return;
		}
	}
	it->scores[DIM_EXECUTION] = eq ? 1.0f : 0.0f;
	it->present[DIM_EXECUTION] = 1;
	it->scores[DIM_SCHEMA] = o.accepted ? (float)jaccard_items(s, &w->gold.items, &w->pol.items) : 0.0f;
	it->present[DIM_SCHEMA] = 1;
}

static int kind_forward(const void *state, void *scratch, rwd_item *const *items, size_t n,
	rwd_arena *arena)
{
	(void)arena;
	for (size_t i = 0; i < n; i++)
		score_item(state, scratch, items[i]);
	return 0;
}

const rwd_model_ops rwd__sql_ops = {
	.kind = "sql",
	.serial_blas = 1,
	.inputs = sql_inputs,
	.load = kind_load,
	.free = kind_free,
	.describe = kind_describe,
	.check = kind_check,
	.scratch_new = kind_scratch_new,
	.scratch_free = kind_scratch_free,
	.prepare = NULL,
	.forward = kind_forward,
};

/* ---- probe (tests, fuzzing) ------------------------------------------------------ */

int rwd_sql_probe(const char *schema_sql, const char *sql, size_t n, size_t *rows, rwd_error *err)
{
	sql_state s;
	memset(&s, 0, sizeof(s));
	s.max_instructions = 1000000;
	s.timeout_ms = 2000;
	s.max_rows = 10000;
	s.max_result_bytes = (size_t)1 << 20;
	s.max_value_bytes = (size_t)1 << 16;
	s.max_sql_bytes = 65536;
	s.cache_kib = 1024;
	s.compare = CMP_MULTISET;
	sql_conn c;
	memset(&c, 0, sizeof(c));
	int rc = sqlite3_open_v2(":memory:", &c.db,
		SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE, NULL);
	int r;
	if (rc != SQLITE_OK) {
		r = rwd_errorf(err, RWD_E_NOMEM, "cannot open an in-memory database");
		goto done;
	}
	if (schema_sql && sqlite3_exec(c.db, schema_sql, NULL, NULL, NULL) != SQLITE_OK) {
		r = rwd_errorf(err, RWD_E_INVALID, "schema: %s", sqlite3_errmsg(c.db));
		goto done;
	}
	if ((r = harden(c.db, &s, &c.ctx, err)))
		goto done;
	sql_result res;
	memset(&res, 0, sizeof(res));
	run_out o;
	run_sql(&s, &c, sql, n, &res, NULL, 0, 0, &o);
	if (rows)
		*rows = res.n_rows;
	result_free(&res);
	switch (o.status) {
	case RUN_OK: r = 0; break;
	case RUN_BAD: r = rwd_errorf(err, RWD_E_INVALID, "%s", o.msg); break;
	case RUN_LIMIT: r = rwd_errorf(err, RWD_E_LIMIT, "%s", o.msg); break;
	default: r = rwd_errorf(err, o.status, "%s", o.msg); break;
	}
done:
	if (c.db)
		sqlite3_close_v2(c.db);
	return r;
}
