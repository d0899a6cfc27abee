/*
 * models/rules.c — the `rules` kind: format, accuracy, BLEU, length,
 * repetition and tool-call rewards computed from the text alone (no
 * weights). The semantics of every dimension and option are documented in
 * rules.h; this file keeps to them.
 *
 * Threads: the loaded state (compiled regex, match context, C locale,
 * options) is read-only after load. Each worker's scratch holds its own
 * pcre2_match_data; per-item temporaries are malloc'd and freed within the
 * item, so no memory grows with the batch.
 */
#include "models/rules.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	DIM_FORMAT,
	DIM_ACCURACY,
	DIM_BLEU,
	DIM_LENGTH,
	DIM_REPETITION,
	DIM_TOOL_NAME,
	DIM_TOOL_ARGS,
	DIM_COUNT
};

static const char *const dim_names[DIM_COUNT] = {
	"format", "accuracy", "bleu", "length", "repetition", "tool_name", "tool_args",
};

static const char *const rules_inputs[] = {"response", "prompt", "label", "reference", NULL};

static const char default_format_regex[] =
	"\\s*<think>(?:(?!</?think>|</?answer>).)*+</think>\\s*"
	"<answer>(?:(?!</?think>|</?answer>).)*+</answer>\\s*";

#define MAX_REGEX_BYTES 4096
#define MAX_JSON_DEPTH 64
#define MAX_TOOL_CANDIDATES 32
#define MAX_UNWRAP_DEPTH 64
#define MAX_SUFFIXES 16
#define MAX_LABELS 16
#define MAX_SUFFIX_BYTES 64

enum { ANCHOR_FULL, ANCHOR_START, ANCHOR_SEARCH };
enum { UNIT_WORDS, UNIT_CHARS, UNIT_BYTES };
enum { DECAY_LINEAR, DECAY_EXP };

typedef struct rules_state {
	pcre2_code *format_re;
	pcre2_match_context *mctx;
	uint32_t match_options;
	locale_t c_locale;
	int slot[DIM_COUNT];        /* output index of each dimension, -1 if off */
	size_t n_dims;
	const char *dims[DIM_COUNT];
	double rel_tol, abs_tol;
	int case_sensitive;
	rwd_rules_bleu_params bleu;
	int length_unit, length_decay;
	double length_min, length_max, length_scale;
	int rep_ngram;
	size_t max_response, max_prompt, max_label, max_reference, max_references, max_tool;
	int strip_prompt;
	size_t n_suffixes;
	char suffix[MAX_SUFFIXES][MAX_SUFFIX_BYTES + 1];
	size_t suffix_len[MAX_SUFFIXES];
} rules_state;

/* End-of-sequence texts that decoders leave at the end of a response. */
static const char *const default_suffixes[] = {
	"<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end|>", "</s>",
	"<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>", /* DeepSeek */
	NULL,
};

typedef struct rules_scratch {
	pcre2_match_data *md;
} rules_scratch;

/* ------------------------------------------------------------------ */
/* UTF-8 and Unicode classes                                           */

/* Strict UTF-8: no overlongs, surrogates or code points past U+10FFFF.
 * Returns the byte offset of the first bad sequence, or n if valid. */
static size_t utf8_check(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i];
		size_t k;
		uint32_t cp, min;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			k = 2, cp = c & 0x1F, min = 0x80;
		} else if ((c & 0xF0) == 0xE0) {
			k = 3, cp = c & 0x0F, min = 0x800;
		} else if ((c & 0xF8) == 0xF0) {
			k = 4, cp = c & 0x07, min = 0x10000;
		} else {
			return i;
		}
		if (n - i < k)
			return i;
		for (size_t j = 1; j < k; j++) {
			if ((s[i + j] & 0xC0) != 0x80)
				return i;
			cp = (cp << 6) | (s[i + j] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return i;
		i += k;
	}
	return n;
}

enum { CLS_SEP, CLS_WORD, CLS_OTHER };

static int cp_class(int32_t cp)
{
	switch (utf8proc_category(cp)) {
	case UTF8PROC_CATEGORY_ZS:
	case UTF8PROC_CATEGORY_ZL:
	case UTF8PROC_CATEGORY_ZP:
	case UTF8PROC_CATEGORY_CC:
		return CLS_SEP;
	case UTF8PROC_CATEGORY_LU:
	case UTF8PROC_CATEGORY_LL:
	case UTF8PROC_CATEGORY_LT:
	case UTF8PROC_CATEGORY_LM:
	case UTF8PROC_CATEGORY_LO:
	case UTF8PROC_CATEGORY_MN:
	case UTF8PROC_CATEGORY_MC:
	case UTF8PROC_CATEGORY_ME:
	case UTF8PROC_CATEGORY_ND:
	case UTF8PROC_CATEGORY_NL:
	case UTF8PROC_CATEGORY_NO:
	case UTF8PROC_CATEGORY_PC:
		return CLS_WORD;
	default:
		return CLS_OTHER;
	}
}

/* utf8proc_map into a malloc'd buffer; *out_len its length. */
static int umap(const char *s, size_t n, int casefold, char **out, size_t *out_len)
{
	utf8proc_uint8_t *dst = NULL;
	int opts = UTF8PROC_STABLE | UTF8PROC_COMPOSE;
	if (casefold)
		opts |= UTF8PROC_CASEFOLD;
	utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst,
		(utf8proc_option_t)opts);
	if (r < 0) {
		free(dst);
		return r == UTF8PROC_ERROR_NOMEM ? RWD_E_NOMEM : RWD_E_FORMAT;
	}
	*out = (char *)dst;
	*out_len = (size_t)r;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Tokens, interning and n-gram counting                               */

typedef struct span {
	const char *p;
	uint32_t len;
	uint32_t pos; /* index in the global id array */
} span;

typedef struct spans {
	span *v;
	size_t n, cap;
} spans;

static int spans_push(spans *t, const char *p, size_t len)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 256;
		span *v = realloc(t->v, cap * sizeof(*v));
		if (!v)
			return RWD_E_NOMEM;
		t->v = v;
		t->cap = cap;
	}
	t->v[t->n].p = p;
	t->v[t->n].len = (uint32_t)len;
	t->v[t->n].pos = (uint32_t)t->n;
	t->n++;
	return 0;
}

/*
 * Append the tokens of s[0..n) to t. bleu_mode: word runs + one token per
 * other code point; else (words) every run of non-separators is a token.
 */
static int tokenize(const char *s, size_t n, int bleu_mode, spans *t)
{
	size_t i = 0, start = 0;
	int in_word = 0, r;
	while (i < n) {
		utf8proc_int32_t cp;
		utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i,
			(utf8proc_ssize_t)(n - i), &cp);
		if (k <= 0)
			return RWD_E_FORMAT;
		int c = cp_class(cp);
		if (!bleu_mode && c == CLS_OTHER)
			c = CLS_WORD;
		if (c == CLS_WORD) {
			if (!in_word) {
				start = i;
				in_word = 1;
			}
		} else {
			if (in_word && (r = spans_push(t, s + start, i - start)))
				return r;
			in_word = 0;
			if (c == CLS_OTHER && (r = spans_push(t, s + i, (size_t)k)))
				return r;
		}
		i += (size_t)k;
	}
	if (in_word)
		return spans_push(t, s + start, n - start);
	return 0;
}

static int span_cmp(const void *a, const void *b)
{
	const span *x = a, *y = b;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	int c = memcmp(x->p, y->p, x->len);
	if (c)
		return c;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* ids[pos] = a dense id per distinct token text. Sorts t->v in place. */
static int intern(spans *t, uint32_t **ids_out)
{
	uint32_t *ids = malloc((t->n ? t->n : 1) * sizeof(*ids));
	if (!ids)
		return RWD_E_NOMEM;
	if (t->n)
		qsort(t->v, t->n, sizeof(span), span_cmp);
	uint32_t id = 0;
	for (size_t i = 0; i < t->n; i++) {
		if (i > 0 && (t->v[i].len != t->v[i - 1].len ||
				memcmp(t->v[i].p, t->v[i - 1].p, t->v[i].len) != 0))
			id++;
		ids[t->v[i].pos] = id;
	}
	*ids_out = ids;
	return 0;
}

typedef struct ngram_ctx {
	const uint32_t *ids;
	int n;
} ngram_ctx;

static int ngram_cmp(const void *a, const void *b, void *arg)
{
	const ngram_ctx *c = arg;
	const uint32_t *x = c->ids + *(const uint32_t *)a, *y = c->ids + *(const uint32_t *)b;
	for (int i = 0; i < c->n; i++)
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	return 0;
}

/* starts[] = first..first+count-1 sorted as n-grams; returns the array. */
static uint32_t *sorted_ngrams(const ngram_ctx *c, size_t first, size_t count)
{
	uint32_t *v = malloc((count ? count : 1) * sizeof(*v));
	if (!v)
		return NULL;
	for (size_t i = 0; i < count; i++)
		v[i] = (uint32_t)(first + i);
	if (count)
		qsort_r(v, count, sizeof(*v), ngram_cmp, (void *)c);
	return v;
}

/* ------------------------------------------------------------------ */
/* BLEU (NLTK 3.8 sentence_bleu semantics)                             */

rwd_rules_bleu_params rwd_rules_bleu_default_params(void)
{
	rwd_rules_bleu_params p = {
		.order = 4, .smoothing = RWD_RULES_SMOOTH_METHOD2, .epsilon = 0.1, .k = 5.0,
	};
	return p;
}

/*
 * Modified precision numerator (clipped matches) and the number of
 * hypothesis n-grams for order n; seq 0 is the hypothesis.
 */
static int clipped_counts(const uint32_t *ids, const size_t *off, const size_t *len, size_t nseq,
	int n, uint64_t *num, uint64_t *total)
{
	ngram_ctx c = {ids, n};
	size_t hn = len[0] >= (size_t)n ? len[0] - (size_t)n + 1 : 0;
	*num = 0;
	*total = hn;
	if (hn == 0)
		return 0;
	uint32_t *h = sorted_ngrams(&c, off[0], hn);
	/* unique hypothesis n-grams: u[k] = representative start, hc[k] count */
	uint32_t *u = malloc(hn * sizeof(*u));
	uint64_t *hc = malloc(hn * sizeof(*hc));
	uint64_t *mx = calloc(hn, sizeof(*mx));
	int r = RWD_E_NOMEM;
	if (!h || !u || !hc || !mx)
		goto out;
	size_t nu = 0;
	for (size_t i = 0; i < hn; i++) {
		if (nu > 0 && ngram_cmp(&u[nu - 1], &h[i], &c) == 0) {
			hc[nu - 1]++;
		} else {
			u[nu] = h[i];
			hc[nu++] = 1;
		}
	}
	for (size_t s = 1; s < nseq; s++) {
		size_t rn = len[s] >= (size_t)n ? len[s] - (size_t)n + 1 : 0;
		if (rn == 0)
			continue;
		uint32_t *rv = sorted_ngrams(&c, off[s], rn);
		if (!rv)
			goto out;
		size_t a = 0, b = 0;
		while (a < nu && b < rn) {
			int d = ngram_cmp(&u[a], &rv[b], &c);
			if (d < 0) {
				a++;
			} else if (d > 0) {
				b++;
			} else {
				uint64_t k = 0;
				while (b < rn && ngram_cmp(&u[a], &rv[b], &c) == 0)
					k++, b++;
				if (k > mx[a])
					mx[a] = k;
				a++;
			}
		}
		free(rv);
	}
	for (size_t i = 0; i < nu; i++)
		*num += hc[i] < mx[i] ? hc[i] : mx[i];
	r = 0;
out:
	free(h);
	free(u);
	free(hc);
	free(mx);
	return r;
}

int rwd_rules_bleu(const char *hyp, size_t hyp_len, const char *const *refs,
	const size_t *ref_lens, size_t n_refs, const rwd_rules_bleu_params *p, double *out)
{
	if (!p || p->order < 1 || p->order > 4 || n_refs == 0 || !(p->epsilon > 0) || !(p->k > 0))
		return RWD_E_INVALID;
	size_t nseq = n_refs + 1;
	char **norm = calloc(nseq, sizeof(*norm));
	size_t *nlen = calloc(nseq, sizeof(*nlen));
	size_t *off = calloc(nseq, sizeof(*off));
	size_t *len = calloc(nseq, sizeof(*len));
	spans t = {0};
	uint32_t *ids = NULL;
	int r = RWD_E_NOMEM;
	if (!norm || !nlen || !off || !len)
		goto out;
	for (size_t s = 0; s < nseq; s++) {
		const char *src = s == 0 ? hyp : refs[s - 1];
		size_t sn = s == 0 ? hyp_len : ref_lens[s - 1];
		if ((r = umap(src, sn, 0, &norm[s], &nlen[s])))
			goto out;
		off[s] = t.n;
		if ((r = tokenize(norm[s], nlen[s], 1, &t)))
			goto out;
		len[s] = t.n - off[s];
	}
	if (t.n > UINT32_MAX) {
		r = RWD_E_LIMIT;
		goto out;
	}
	if ((r = intern(&t, &ids)))
		goto out;

	uint64_t num[4], den[4], total[4];
	for (int n = 1; n <= p->order; n++) {
		if ((r = clipped_counts(ids, off, len, nseq, n, &num[n - 1], &total[n - 1])))
			goto out;
		den[n - 1] = total[n - 1] > 0 ? total[n - 1] : 1;
	}
	r = 0;
	if (num[0] == 0) {
		*out = 0.0;
		goto out;
	}
	/* Closest reference length, ties to the shorter one. */
	size_t h = len[0], best = len[1];
	for (size_t s = 2; s < nseq; s++) {
		size_t d = len[s] > h ? len[s] - h : h - len[s];
		size_t db = best > h ? best - h : h - best;
		if (d < db || (d == db && len[s] < best))
			best = len[s];
	}
	double bp;
	if (h > best)
		bp = 1.0;
	else if (h == 0)
		bp = 0.0;
	else
		bp = exp(1.0 - (double)best / (double)h);

	/* Smoothed precisions; a value <= 0 is left out of the sum, as NLTK does. */
	double prec[4];
	int inc = 1;
	for (int i = 0; i < p->order; i++) {
		double frac = (double)num[i] / (double)den[i];
		prec[i] = frac;
		switch (p->smoothing) {
		case RWD_RULES_SMOOTH_NONE:
			if (num[i] == 0)
				prec[i] = DBL_MIN;
			break;
		case RWD_RULES_SMOOTH_METHOD1:
			if (num[i] == 0)
				prec[i] = (0.0 + p->epsilon) / (double)den[i];
			break;
		case RWD_RULES_SMOOTH_METHOD2:
			if (i != 0)
				prec[i] = (double)(num[i] + 1) / (double)(den[i] + 1);
			break;
		case RWD_RULES_SMOOTH_METHOD3:
			if (num[i] == 0) {
				prec[i] = 1.0 / ((double)(1u << inc) * (double)den[i]);
				inc++;
			}
			break;
		case RWD_RULES_SMOOTH_METHOD4:
			if (num[i] == 0 && h > 1) {
				double d = (double)(1u << inc) * p->k / log((double)h);
				prec[i] = (1.0 / d) / (double)den[i];
				inc++;
			}
			break;
		}
	}
	double w = 1.0 / (double)p->order, sum = 0.0;
	for (int i = 0; i < p->order; i++)
		if (prec[i] > 0)
			sum += w * log(prec[i]);
	*out = bp * exp(sum);
out:
	if (norm)
		for (size_t s = 0; s < nseq; s++)
			free(norm[s]);
	free(norm);
	free(nlen);
	free(off);
	free(len);
	free(t.v);
	free(ids);
	return r;
}

/* ------------------------------------------------------------------ */
/* length and repetition                                               */

static int count_units(const rules_state *st, const char *s, size_t n, double *out)
{
	if (st->length_unit == UNIT_BYTES) {
		*out = (double)n;
		return 0;
	}
	size_t count = 0, i = 0;
	int in_word = 0;
	while (i < n) {
		utf8proc_int32_t cp;
		utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i,
			(utf8proc_ssize_t)(n - i), &cp);
		if (k <= 0)
			return RWD_E_FORMAT;
		if (st->length_unit == UNIT_CHARS) {
			count++;
		} else {
			int word = cp_class(cp) != CLS_SEP;
			if (word && !in_word)
				count++;
			in_word = word;
		}
		i += (size_t)k;
	}
	*out = (double)count;
	return 0;
}

static double length_score(const rules_state *st, double L)
{
	double d;
	if (L < st->length_min)
		d = st->length_min - L;
	else if (L > st->length_max)
		d = L - st->length_max;
	else
		return 1.0;
	if (st->length_decay == DECAY_EXP)
		return exp(-d / st->length_scale);
	double v = 1.0 - d / st->length_scale;
	return v > 0 ? v : 0.0;
}

static int repetition_score(const rules_state *st, const char *s, size_t n, double *out)
{
	char *folded = NULL;
	size_t fn = 0;
	spans t = {0};
	uint32_t *ids = NULL, *v = NULL;
	int r = umap(s, n, 1, &folded, &fn);
	if (r)
		return r;
	if ((r = tokenize(folded, fn, 0, &t)))
		goto out;
	size_t ng = (size_t)st->rep_ngram;
	if (t.n < ng) {
		*out = 1.0;
		goto out;
	}
	if ((r = intern(&t, &ids)))
		goto out;
	ngram_ctx c = {ids, st->rep_ngram};
	size_t total = t.n - ng + 1;
	r = RWD_E_NOMEM;
	if (!(v = sorted_ngrams(&c, 0, total)))
		goto out;
	size_t distinct = 1;
	for (size_t i = 1; i < total; i++)
		if (ngram_cmp(&v[i - 1], &v[i], &c) != 0)
			distinct++;
	*out = (double)distinct / (double)total;
	r = 0;
out:
	free(folded);
	free(t.v);
	free(ids);
	free(v);
	return r;
}

/* ------------------------------------------------------------------ */
/* accuracy: extraction, normalisation, numbers                       */

typedef struct slice {
	const char *p;
	size_t n;
} slice;

static const char *mem_rfind(const char *s, size_t n, const char *needle)
{
	size_t k = strlen(needle);
	if (n < k)
		return NULL;
	for (size_t i = n - k + 1; i-- > 0;)
		if (memcmp(s + i, needle, k) == 0)
			return s + i;
	return NULL;
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int starts_with(const char *s, size_t n, const char *lit)
{
	size_t k = strlen(lit);
	return n >= k && memcmp(s, lit, k) == 0;
}

/* The content of the last <answer>…</answer> block. */
static int answer_tag(const char *s, size_t n, slice *out)
{
	const char *close = mem_rfind(s, n, "</answer>");
	if (!close)
		return 0;
	const char *open = mem_rfind(s, (size_t)(close - s), "<answer>");
	if (!open)
		return 0;
	out->p = open + 8;
	out->n = (size_t)(close - out->p);
	return 1;
}

/*
 * The content of the last complete \boxed{…} (or \fbox{…}); the outermost
 * one when nested. One pass with a brace stack: a closing brace whose
 * opener was a \boxed{ completes a candidate, and the latest completion is
 * either after or around every earlier one.
 */
static int last_boxed(const char *s, size_t n, slice *out)
{
	size_t opens = 0;
	for (size_t i = 0; i < n; i++)
		opens += s[i] == '{';
	if (opens == 0)
		return 0;
	/* stack entries: content start + 1 for a \boxed{ opener, 0 otherwise */
	size_t *stack = malloc(opens * sizeof(*stack));
	if (!stack)
		return RWD_E_NOMEM;
	size_t depth = 0;
	int found = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '\\') {
			size_t name = 0;
			if (starts_with(s + i + 1, n - i - 1, "boxed"))
				name = 5;
			else if (starts_with(s + i + 1, n - i - 1, "fbox"))
				name = 4;
			size_t j = i + 1 + name;
			if (name && (j >= n || !is_alpha(s[j]))) {
				while (j < n && s[j] == ' ')
					j++;
				if (j < n && s[j] == '{') {
					stack[depth++] = j + 2;
					i = j;
					continue;
				}
				i = j - 1;
				continue;
			}
			i++; /* an escaped character, e.g. \{ or \\ */
			continue;
		}
		if (c == '{') {
			stack[depth++] = 0;
		} else if (c == '}' && depth > 0) {
			size_t b = stack[--depth];
			if (b) {
				out->p = s + b - 1;
				out->n = i - (b - 1);
				found = 1;
			}
		}
	}
	free(stack);
	return found;
}

/* Digits with optional exact-3 comma groups, fraction part and exponent,
 * starting at s[i]; returns the end (i if there is no number). */
static size_t scan_decimal(const char *s, size_t i, size_t n, int *plain_int)
{
	size_t j = i;
	while (j < n && is_digit(s[j]))
		j++;
	size_t nd = j - i;
	int is_int = 1;
	if (nd >= 1 && nd <= 3) {
		while (j + 3 < n && s[j] == ',' && is_digit(s[j + 1]) && is_digit(s[j + 2]) &&
			is_digit(s[j + 3]) && (j + 4 >= n || !is_digit(s[j + 4])))
			j += 4;
	}
	if (j + 1 < n && s[j] == '.' && is_digit(s[j + 1])) {
		j++;
		while (j < n && is_digit(s[j]))
			j++;
		is_int = 0;
	} else if (nd == 0) {
		return i;
	}
	if (j + 1 < n && (s[j] == 'e' || s[j] == 'E')) {
		size_t k = j + 1;
		if (k < n && (s[k] == '+' || s[k] == '-'))
			k++;
		if (k < n && is_digit(s[k])) {
			while (k < n && is_digit(s[k]))
				k++;
			j = k;
			is_int = 0;
		}
	}
	if (plain_int)
		*plain_int = is_int;
	return j;
}

/* The last number in free text (sign, decimal, optional /decimal, %). */
static int last_number(const char *s, size_t n, slice *out)
{
	int found = 0;
	size_t i = 0;
	while (i < n) {
		size_t j = i;
		int sign_ok = i == 0 || !(is_alpha(s[i - 1]) || is_digit(s[i - 1]));
		if ((s[j] == '-' || s[j] == '+') && sign_ok)
			j++;
		else if (sign_ok && starts_with(s + j, n - j, "\xe2\x88\x92")) /* U+2212 minus */
			j += 3;
		if (j < n && (is_digit(s[j]) || (s[j] == '.' && j + 1 < n && is_digit(s[j + 1])))) {
			size_t e = scan_decimal(s, j, n, NULL);
			if (e > j) {
				if (e + 1 < n && s[e] == '/' && is_digit(s[e + 1]))
					e = scan_decimal(s, e + 1, n, NULL);
				if (e < n && s[e] == '%')
					e++;
				out->p = s + i;
				out->n = e - i;
				found = 1;
				i = e;
				continue;
			}
		}
		i++;
	}
	return found;
}

static const char *const unwrap_cmds[] = {
	"text", "textbf", "textrm", "textit", "texttt", "textsf", "mathrm", "mathbf",
	"mathit", "mathsf", "mbox", "operatorname", "boxed", "fbox", NULL,
};
static const char *const drop_cmds[] = {"left", "right", "displaystyle", "circ", NULL};

static int in_list(const char *const *list, const char *s, size_t n)
{
	for (size_t i = 0; list[i]; i++)
		if (strlen(list[i]) == n && memcmp(list[i], s, n) == 0)
			return 1;
	return 0;
}

/*
 * Normalise an answer or label (rules.h, `accuracy`) into a malloc'd
 * string. Input must be valid UTF-8.
 */
static int normalize_answer(const rules_state *st, const char *s, size_t n, char **out,
	size_t *out_len)
{
	char *b = malloc(n + 1);
	if (!b)
		return RWD_E_NOMEM;
	size_t o = 0, depth = 0;
	uint64_t unwrap = 0; /* bit d: the brace at depth d was opened by \text{ etc. */
	size_t i = 0;
	while (i < n) {
		char c = s[i];
		if (c == '^' && (starts_with(s + i, n - i, "^\\circ") || starts_with(s + i, n - i, "^{\\circ}"))) {
			i += s[i + 1] == '{' ? 8 : 6;
			continue;
		}
		if (c == '\\') {
			size_t j = i + 1;
			while (j < n && is_alpha(s[j]))
				j++;
			const char *name = s + i + 1;
			size_t nl = j - i - 1;
			if (nl == 0) {
				char e = i + 1 < n ? s[i + 1] : 0;
				if (e == '%') {
					b[o++] = '%';
				} else if (e == '{' || e == '}') {
					b[o++] = '\\';
					b[o++] = e;
				} else if (!e || strchr("!,;: $()[]", e) == NULL) {
					b[o++] = '\\';
					if (e) {
						i++;
						continue; /* copy the next byte normally */
					}
				}
				i += e ? 2 : 1;
				continue;
			}
			if (in_list(unwrap_cmds, name, nl)) {
				size_t k = j;
				while (k < n && s[k] == ' ')
					k++;
				if (k < n && s[k] == '{') {
					if (depth < MAX_UNWRAP_DEPTH)
						unwrap |= (uint64_t)1 << depth;
					depth++;
					i = k + 1;
					continue;
				}
				i = j;
				continue;
			}
			if (in_list(drop_cmds, name, nl)) {
				i = j;
				continue;
			}
			if ((nl == 5 && (memcmp(name, "dfrac", 5) == 0 || memcmp(name, "tfrac", 5) == 0))) {
				memcpy(b + o, "\\frac", 5);
				o += 5;
				i = j;
				continue;
			}
			memcpy(b + o, s + i, j - i);
			o += j - i;
			i = j;
			continue;
		}
		if (c == '{') {
			if (starts_with(s + i, n - i, "{,}")) {
				b[o++] = ',';
				i += 3;
				continue;
			}
			if (depth < MAX_UNWRAP_DEPTH)
				unwrap &= ~((uint64_t)1 << depth);
			depth++;
			b[o++] = '{';
			i++;
			continue;
		}
		if (c == '}') {
			int drop = 0;
			if (depth > 0) {
				depth--;
				drop = depth < MAX_UNWRAP_DEPTH && (unwrap >> depth & 1);
			}
			if (!drop)
				b[o++] = '}';
			i++;
			continue;
		}
		if (c == '$') {
			i++;
			continue;
		}
		utf8proc_int32_t cp;
		utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i,
			(utf8proc_ssize_t)(n - i), &cp);
		if (k <= 0) {
			free(b);
			return RWD_E_FORMAT;
		}
		if (cp_class(cp) == CLS_SEP || cp == 0xB0) {
			/* whitespace and the degree sign vanish */
		} else if (cp == 0x2212) {
			b[o++] = '-';
		} else {
			memcpy(b + o, s + i, (size_t)k);
			o += (size_t)k;
		}
		i += (size_t)k;
	}
	while (o > 0 && b[o - 1] == '.')
		o--;
	int r = umap(b, o, !st->case_sensitive, out, out_len);
	free(b);
	return r;
}

typedef struct number {
	double v;
	int is_int; /* a plain integer: digits[] holds its canonical form */
	int pct;
	char digits[128];
} number;

static int to_double(const rules_state *st, const char *s, size_t n, int neg, double *v)
{
	char buf[512];
	size_t o = 0;
	if (neg)
		buf[o++] = '-';
	for (size_t i = 0; i < n; i++) {
		if (s[i] == ',')
			continue;
		if (o + 1 >= sizeof(buf))
			return 0;
		buf[o++] = s[i];
	}
	buf[o] = 0;
	*v = strtod_l(buf, NULL, st->c_locale);
	return isfinite(*v);
}

/* A signed decimal filling s[0..n) exactly. */
static int parse_signed(const rules_state *st, const char *s, size_t n, double *v)
{
	size_t i = 0;
	int neg = 0;
	if (i < n && (s[i] == '+' || s[i] == '-'))
		neg = s[i++] == '-';
	size_t e = scan_decimal(s, i, n, NULL);
	return e > i && e == n && to_double(st, s + i, e - i, neg, v);
}

/* Parse a whole normalised string as a number (rules.h grammar). */
static int parse_number(const rules_state *st, const char *s, size_t n, number *out)
{
	size_t i = 0;
	int neg = 0;
	memset(out, 0, sizeof(*out));
	if (i < n && (s[i] == '+' || s[i] == '-'))
		neg = s[i++] == '-';
	if (starts_with(s + i, n - i, "\\frac")) {
		i += 5;
		double a, b;
		if (i < n && s[i] == '{') {
			const char *ca = s + i + 1, *ea = memchr(ca, '}', n - i - 1);
			if (!ea || ea + 1 >= s + n || ea[1] != '{')
				return 0;
			const char *cb = ea + 2, *eb = memchr(cb, '}', (size_t)(s + n - cb));
			if (!eb)
				return 0;
			if (!parse_signed(st, ca, (size_t)(ea - ca), &a) || !parse_signed(st, cb, (size_t)(eb - cb), &b))
				return 0;
			i = (size_t)(eb - s) + 1;
		} else if (i + 1 < n && is_digit(s[i]) && is_digit(s[i + 1])) {
			a = s[i] - '0';
			b = s[i + 1] - '0';
			i += 2;
		} else {
			return 0;
		}
		if (b == 0)
			return 0;
		out->v = (neg ? -a : a) / b;
	} else {
		int plain;
		size_t e = scan_decimal(s, i, n, &plain);
		if (e == i || !to_double(st, s + i, e - i, neg, &out->v))
			return 0;
		if (plain) {
			/* canonical integer: sign + digits without commas or leading zeros */
			size_t o = 0, k = i;
			while (k < e && (s[k] == '0' || s[k] == ','))
				k++;
			int zero = k == e;
			if (neg && !zero)
				out->digits[o++] = '-';
			if (zero)
				out->digits[o++] = '0';
			for (; k < e && o + 1 < sizeof(out->digits); k++)
				if (s[k] != ',')
					out->digits[o++] = s[k];
			out->is_int = o + 1 < sizeof(out->digits);
			out->digits[o] = 0;
		}
		i = e;
		if (i < n && s[i] == '/') {
			double b;
			size_t j = i + 1, bneg = 0;
			if (j < n && (s[j] == '+' || s[j] == '-'))
				bneg = s[j++] == '-';
			size_t e2 = scan_decimal(s, j, n, NULL);
			if (e2 == j || !to_double(st, s + j, e2 - j, (int)bneg, &b) || b == 0)
				return 0;
			out->v /= b;
			out->is_int = 0;
			i = e2;
		}
	}
	if (i < n && s[i] == '%') {
		out->pct = 1;
		out->is_int = 0;
		i++;
	}
	return i == n && isfinite(out->v);
}

static int close_enough(const rules_state *st, double a, double b)
{
	double tol = fmax(st->abs_tol, st->rel_tol * fmax(fabs(a), fabs(b)));
	return fabs(a - b) <= tol;
}

static int numbers_match(const rules_state *st, const number *a, const number *b)
{
	if (a->is_int && b->is_int)
		return strcmp(a->digits, b->digits) == 0;
	if (close_enough(st, a->v, b->v))
		return 1;
	if (a->pct != b->pct)
		return close_enough(st, a->pct ? a->v / 100 : a->v, b->pct ? b->v / 100 : b->v);
	return 0;
}

/* Normalise + parse; *is_num says whether it parsed. Caller frees *norm. */
static int prepare_answer(const rules_state *st, const char *s, size_t n, char **norm,
	size_t *norm_len, number *num, int *is_num)
{
	int r = normalize_answer(st, s, n, norm, norm_len);
	if (r)
		return r;
	*is_num = parse_number(st, *norm, *norm_len, num);
	return 0;
}

/*
 * Accuracy of `resp` against the label text. *absent when the label reduces
 * to nothing.
 */
static int accuracy_score(const rules_state *st, const char *resp, size_t rn, const char *lab,
	size_t ln, double *out, int *absent)
{
	slice ls = {lab, ln}, c;
	char *L = NULL, *C = NULL, *N = NULL;
	size_t Ll, Cl, Nl;
	number lnum, cnum, nnum;
	int lis, cis, nis, r;

	*absent = 0;
	r = last_boxed(lab, ln, &ls);
	if (r < 0)
		return r;
	if (!r) {
		const char *h = mem_rfind(lab, ln, "####");
		if (h) {
			ls.p = h + 4;
			ls.n = (size_t)(lab + ln - ls.p);
		}
	}
	if ((r = prepare_answer(st, ls.p, ls.n, &L, &Ll, &lnum, &lis)))
		return r;
	if (Ll == 0) {
		*absent = 1;
		goto out;
	}
	*out = 0.0;
	int got = answer_tag(resp, rn, &c);
	if (got) {
		slice inner;
		int b = last_boxed(c.p, c.n, &inner);
		if (b < 0) {
			r = b;
			goto out;
		}
		if (b)
			c = inner;
	} else {
		got = last_boxed(resp, rn, &c);
		if (got < 0) {
			r = got;
			goto out;
		}
		if (!got)
			got = last_number(resp, rn, &c);
	}
	if (!got)
		goto out;
	if ((r = prepare_answer(st, c.p, c.n, &C, &Cl, &cnum, &cis)))
		goto out;
	if (lis && cis) {
		*out = numbers_match(st, &cnum, &lnum);
	} else if (lis) {
		slice last;
		if (last_number(c.p, c.n, &last)) {
			if ((r = prepare_answer(st, last.p, last.n, &N, &Nl, &nnum, &nis)))
				goto out;
			*out = nis && numbers_match(st, &nnum, &lnum);
		}
	} else {
		*out = Cl == Ll && memcmp(C, L, Ll) == 0;
	}
out:
	free(L);
	free(C);
	free(N);
	return r;
}

/* ------------------------------------------------------------------ */
/* tool calls                                                          */

/* Length of the balanced JSON object starting at s[0] == '{', or 0 when
 * it is unbalanced within max bytes or nests deeper than MAX_JSON_DEPTH. */
static size_t balanced_object(const char *s, size_t n, size_t max)
{
	if (n > max)
		n = max;
	int depth = 0, in_str = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = 0;
			continue;
		}
		if (c == '"') {
			in_str = 1;
		} else if (c == '{' || c == '[') {
			if (++depth > MAX_JSON_DEPTH)
				return 0;
		} else if (c == '}' || c == ']') {
			if (--depth < 0)
				return 0;
			if (depth == 0)
				return c == '}' ? i + 1 : 0;
		}
	}
	return 0;
}

static json_t *parse_object(const char *s, size_t n)
{
	json_error_t e;
	json_t *v = json_loadb(s, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);
	if (v && !json_is_object(v)) {
		json_decref(v);
		v = NULL;
	}
	return v;
}

typedef struct tool_call {
	const json_t *name;  /* string */
	const json_t *args;  /* object, or NULL when malformed */
	json_t *owned_args;  /* parsed from a string or an empty default */
} tool_call;

static void tool_call_clear(tool_call *tc)
{
	json_decref(tc->owned_args);
	memset(tc, 0, sizeof(*tc));
}

/* Read {name, arguments|parameters} (maybe inside {"function": …}).
 * Returns 1 when there is a string name. */
static int tool_from_object(const json_t *obj, size_t max, tool_call *tc)
{
	memset(tc, 0, sizeof(*tc));
	const json_t *fn = json_object_get(obj, "function");
	if (json_is_object(fn) && json_is_string(json_object_get(fn, "name")))
		obj = fn;
	tc->name = json_object_get(obj, "name");
	if (!json_is_string(tc->name))
		return 0;
	const json_t *a = json_object_get(obj, "arguments");
	if (!a)
		a = json_object_get(obj, "parameters");
	if (!a || json_is_null(a)) {
		tc->owned_args = json_object();
		tc->args = tc->owned_args;
	} else if (json_is_object(a)) {
		tc->args = a;
	} else if (json_is_string(a)) {
		const char *s = json_string_value(a);
		size_t n = json_string_length(a);
		size_t k = 0;
		while (k < n && (s[k] == ' ' || s[k] == '\n' || s[k] == '\t' || s[k] == '\r'))
			k++;
		if (k < n && s[k] == '{' && balanced_object(s + k, n - k, max))
			tc->owned_args = parse_object(s, n);
		tc->args = tc->owned_args;
	}
	return 1;
}

/*
 * Classify a label: 1 and *root set (owned, may be NULL for a borrowed
 * object label) when it is a tool call, 0 otherwise.
 */
static int label_tool_call(const rules_state *st, const json_t *label, json_t **root, tool_call *tc)
{
	*root = NULL;
	memset(tc, 0, sizeof(*tc));
	if (json_is_object(label))
		return tool_from_object(label, st->max_tool, tc);
	if (!json_is_string(label))
		return 0;
	const char *s = json_string_value(label);
	size_t n = json_string_length(label), k = 0;
	while (k < n && (s[k] == ' ' || s[k] == '\n' || s[k] == '\t' || s[k] == '\r'))
		k++;
	if (k >= n || s[k] != '{' || !balanced_object(s + k, n - k, st->max_label))
		return 0;
	json_t *v = parse_object(s, n);
	if (!v)
		return 0;
	if (!tool_from_object(v, st->max_tool, tc)) {
		tool_call_clear(tc);
		json_decref(v);
		return 0;
	}
	*root = v;
	return 1;
}

/* Find the response's call; *root owns it. 1 when found. */
static int response_tool_call(const rules_state *st, const char *s, size_t n, json_t **root,
	tool_call *tc)
{
	*root = NULL;
	memset(tc, 0, sizeof(*tc));
	const char *open = memmem(s, n, "<tool_call>", 11);
	if (open) {
		const char *b = open + 11;
		const char *close = memmem(b, (size_t)(s + n - b), "</tool_call>", 12);
		size_t len = close ? (size_t)(close - b) : (size_t)(s + n - b);
		const char *brace = memchr(b, '{', len);
		if (!brace)
			return 0;
		size_t k = balanced_object(brace, (size_t)(b + len - brace), st->max_tool);
		json_t *v = k ? parse_object(brace, k) : NULL;
		if (!v)
			return 0;
		*root = v;
		return tool_from_object(v, st->max_tool, tc);
	}
	const char *p = s;
	for (int tries = 0; tries < MAX_TOOL_CANDIDATES; tries++) {
		const char *brace = memchr(p, '{', (size_t)(s + n - p));
		if (!brace)
			return 0;
		size_t k = balanced_object(brace, (size_t)(s + n - brace), st->max_tool);
		json_t *v = k ? parse_object(brace, k) : NULL;
		if (v) {
			if (tool_from_object(v, st->max_tool, tc)) {
				*root = v;
				return 1;
			}
			tool_call_clear(tc);
			json_decref(v);
			p = brace + k;
		} else {
			p = brace + 1;
		}
	}
	return 0;
}

static int json_loose_equal(const json_t *a, const json_t *b, int depth)
{
	if (depth > MAX_JSON_DEPTH)
		return 0;
	if (json_is_number(a) && json_is_number(b)) {
		if (json_is_integer(a) && json_is_integer(b))
			return json_integer_value(a) == json_integer_value(b);
		return json_number_value(a) == json_number_value(b);
	}
	if (json_typeof(a) != json_typeof(b))
		return 0;
	switch (json_typeof(a)) {
	case JSON_OBJECT: {
		if (json_object_size(a) != json_object_size(b))
			return 0;
		const char *key;
		const json_t *v;
		json_object_foreach((json_t *)a, key, v) {
			const json_t *w = json_object_get(b, key);
			if (!w || !json_loose_equal(v, w, depth + 1))
				return 0;
		}
		return 1;
	}
	case JSON_ARRAY: {
		size_t na = json_array_size(a);
		if (na != json_array_size(b))
			return 0;
		for (size_t i = 0; i < na; i++)
			if (!json_loose_equal(json_array_get(a, i), json_array_get(b, i), depth + 1))
				return 0;
		return 1;
	}
	case JSON_STRING:
		return json_string_length(a) == json_string_length(b) &&
			memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
	default:
		return 1; /* true, false, null */
	}
}

static void tool_scores(const tool_call *want, const tool_call *got, int found, double *name,
	double *args)
{
	*name = *args = 0.0;
	if (!found)
		return;
	*name = json_string_length(want->name) == json_string_length(got->name) &&
		memcmp(json_string_value(want->name), json_string_value(got->name),
			json_string_length(want->name)) == 0;
	if (!want->args || !got->args)
		return;
	size_t matched = 0, total = json_object_size(want->args);
	const char *key;
	const json_t *v;
	json_object_foreach((json_t *)want->args, key, v) {
		const json_t *w = json_object_get(got->args, key);
		if (w && json_loose_equal(v, w, 0))
			matched++;
	}
	json_object_foreach((json_t *)got->args, key, v) {
		if (!json_object_get(want->args, key))
			total++;
	}
	*args = total ? (double)matched / (double)total : 1.0;
}

/* ------------------------------------------------------------------ */
/* options                                                             */

static const char *const known_options[] = {
	"dims", "format_regex", "format_anchor", "format_match_limit", "accuracy_rel_tol",
	"accuracy_abs_tol", "accuracy_case_sensitive", "bleu_order", "bleu_smoothing",
	"bleu_epsilon", "bleu_k", "length_unit", "length_min", "length_max", "length_scale",
	"length_decay", "repetition_ngram", "max_response_bytes", "max_prompt_bytes",
	"max_label_bytes", "max_reference_bytes", "max_references", "max_tool_call_bytes",
	"strip_prompt", "strip_suffixes", NULL,
};

static int opt_err(rwd_error *err, const char *key, int code, const char *what)
{
	rwd_error_where(err, NULL, key);
	return rwd_errorf(err, code, "option '%s' %s", key, what);
}

static int opt_number(const json_t *opts, const char *key, double lo, double hi, int lo_open,
	double *out, rwd_error *err)
{
	const json_t *v = json_object_get(opts, key);
	if (!v)
		return 0;
	char what[160];
	if (!json_is_number(v) || !(lo_open ? json_number_value(v) > lo : json_number_value(v) >= lo) ||
		!(json_number_value(v) <= hi)) {
		snprintf(what, sizeof(what), "must be a number in %s%g, %g]", lo_open ? "(" : "[", lo, hi);
		return opt_err(err, key, RWD_E_INVALID, what);
	}
	double d = json_number_value(v);
	*out = d;
	return 0;
}

static int opt_int(const json_t *opts, const char *key, long long lo, long long hi, long long *out,
	rwd_error *err)
{
	const json_t *v = json_object_get(opts, key);
	if (!v)
		return 0;
	char what[160];
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
		snprintf(what, sizeof(what), "must be an integer in %lld..%lld", lo, hi);
		return opt_err(err, key, RWD_E_INVALID, what);
	}
	*out = json_integer_value(v);
	return 0;
}

static int opt_size(const json_t *opts, const char *key, long long lo, long long hi, size_t *out,
	rwd_error *err)
{
	long long v = (long long)*out;
	int r = opt_int(opts, key, lo, hi, &v, err);
	*out = (size_t)v;
	return r;
}

static int opt_enum(const json_t *opts, const char *key, const char *const *names, int *out,
	rwd_error *err)
{
	const json_t *v = json_object_get(opts, key);
	if (!v)
		return 0;
	if (json_is_string(v)) {
		for (int i = 0; names[i]; i++) {
			if (strcmp(json_string_value(v), names[i]) == 0) {
				*out = i;
				return 0;
			}
		}
	}
	char what[200];
	size_t o = (size_t)snprintf(what, sizeof(what), "must be one of");
	for (int i = 0; names[i] && o < sizeof(what); i++)
		o += (size_t)snprintf(what + o, sizeof(what) - o, "%s \"%s\"", i ? "," : "", names[i]);
	return opt_err(err, key, RWD_E_INVALID, what);
}

static int parse_dims(rules_state *st, const json_t *opts, rwd_error *err)
{
	for (int d = 0; d < DIM_COUNT; d++)
		st->slot[d] = -1;
	const json_t *v = json_object_get(opts, "dims");
	if (!v) {
		for (int d = 0; d < DIM_COUNT; d++) {
			st->slot[d] = d;
			st->dims[d] = dim_names[d];
		}
		st->n_dims = DIM_COUNT;
		return 0;
	}
	if (!json_is_array(v) || json_array_size(v) == 0)
		return opt_err(err, "dims", RWD_E_INVALID,
			"must be a non-empty array of dimension names (format, accuracy, bleu, length, repetition, tool_name, tool_args)");
	size_t i;
	const json_t *e;
	json_array_foreach(v, i, e) {
		char where[32];
		snprintf(where, sizeof(where), "dims[%zu]", i);
		int d = -1;
		for (int k = 0; k < DIM_COUNT && json_is_string(e); k++)
			if (strcmp(json_string_value(e), dim_names[k]) == 0)
				d = k;
		if (d < 0)
			return opt_err(err, where, RWD_E_INVALID,
				"is not a dimension of kind rules (format, accuracy, bleu, length, repetition, tool_name, tool_args)");
		if (st->slot[d] >= 0)
			return opt_err(err, where, RWD_E_INVALID, "repeats a dimension");
		st->slot[d] = (int)st->n_dims;
		st->dims[st->n_dims++] = dim_names[d];
	}
	return 0;
}

static int compile_format(rules_state *st, const json_t *opts, long long match_limit, rwd_error *err)
{
	const char *re = default_format_regex;
	size_t n = sizeof(default_format_regex) - 1;
	const json_t *v = json_object_get(opts, "format_regex");
	if (v) {
		if (!json_is_string(v))
			return opt_err(err, "format_regex", RWD_E_INVALID, "must be a string");
		re = json_string_value(v);
		n = json_string_length(v);
		if (n == 0 || n > MAX_REGEX_BYTES)
			return opt_err(err, "format_regex", RWD_E_INVALID, "must be 1..4096 bytes long");
	}
	int ecode;
	PCRE2_SIZE eoff;
	st->format_re = pcre2_compile((PCRE2_SPTR)re, n,
		PCRE2_UTF | PCRE2_UCP | PCRE2_DOTALL | PCRE2_NEVER_BACKSLASH_C, &ecode, &eoff, NULL);
	if (!st->format_re) {
		PCRE2_UCHAR msg[160];
		pcre2_get_error_message(ecode, msg, sizeof(msg));
		rwd_error_where(err, NULL, "format_regex");
		rwd_error_at(err, 0, 0, (int64_t)eoff);
		return rwd_errorf(err, RWD_E_INVALID, "option 'format_regex' does not compile: %s at byte %zu",
			(const char *)msg, (size_t)eoff);
	}
	st->mctx = pcre2_match_context_create(NULL);
	if (!st->mctx)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	pcre2_set_match_limit(st->mctx, (uint32_t)match_limit);
	pcre2_set_depth_limit(st->mctx, 100000);
	pcre2_set_heap_limit(st->mctx, 16384); /* KiB */
	return 0;
}

static int parse_strip(rules_state *st, const json_t *opts, rwd_error *err)
{
	const json_t *v = json_object_get(opts, "strip_prompt");
	st->strip_prompt = 1;
	if (v) {
		if (!json_is_boolean(v))
			return opt_err(err, "strip_prompt", RWD_E_INVALID, "must be true or false");
		st->strip_prompt = json_is_true(v);
	}
	v = json_object_get(opts, "strip_suffixes");
	if (!v) {
		for (size_t i = 0; default_suffixes[i]; i++) {
			snprintf(st->suffix[i], sizeof(st->suffix[i]), "%s", default_suffixes[i]);
			st->suffix_len[i] = strlen(default_suffixes[i]);
			st->n_suffixes++;
		}
		return 0;
	}
	if (!json_is_array(v) || json_array_size(v) > MAX_SUFFIXES)
		return opt_err(err, "strip_suffixes", RWD_E_INVALID, "must be an array of at most 16 strings");
	size_t i;
	const json_t *e;
	json_array_foreach(v, i, e) {
		char where[40];
		snprintf(where, sizeof(where), "strip_suffixes[%zu]", i);
		size_t n = json_string_length(e);
		if (!json_is_string(e) || n == 0 || n > MAX_SUFFIX_BYTES)
			return opt_err(err, where, RWD_E_INVALID, "must be a string of 1..64 bytes");
		memcpy(st->suffix[i], json_string_value(e), n);
		st->suffix[i][n] = 0;
		st->suffix_len[i] = n;
		st->n_suffixes++;
	}
	return 0;
}

static void rules_free(void *state)
{
	rules_state *st = state;
	if (!st)
		return;
	pcre2_code_free(st->format_re);
	pcre2_match_context_free(st->mctx);
	if (st->c_locale)
		freelocale(st->c_locale);
	free(st);
}

static int rules_load(const char *path, const json_t *opts, const rwd_batch_limits *lim,
	void **state, rwd_error *err)
{
	static const char *const anchors[] = {"full", "start", "search", NULL};
	static const char *const smooth[] = {"none", "method1", "method2", "method3", "method4", NULL};
	static const char *const units[] = {"words", "chars", "bytes", NULL};
	static const char *const decays[] = {"linear", "exponential", NULL};
	int r;
	if (opts && json_is_null(opts))
		opts = NULL;
	if (opts && !json_is_object(opts)) {
		rwd_error_where(err, NULL, "options");
		return rwd_errorf(err, RWD_E_INVALID, "the options of kind rules must be a JSON object");
	}
	if (opts) {
		const char *key;
		const json_t *v;
		json_object_foreach((json_t *)opts, key, v) {
			int known = 0;
			for (size_t i = 0; known_options[i]; i++)
				known |= strcmp(key, known_options[i]) == 0;
			if (!known) {
				rwd_error_where(err, NULL, key);
				return rwd_errorf(err, RWD_E_INVALID, "unknown option '%s' for kind rules", key);
			}
		}
	}
	rules_state *st = calloc(1, sizeof(*st));
	if (!st)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	st->rel_tol = 1e-6;
	st->abs_tol = 1e-9;
	st->bleu = rwd_rules_bleu_default_params();
	st->length_min = 0;
	st->length_max = 1024;
	st->length_scale = 1024;
	st->rep_ngram = 3;
	/* long chain-of-thought rollouts (16k+ tokens, and /get_reward's query is
	 * prompt + response): 1 MiB; labels and references stay small */
	st->max_response = st->max_prompt = 1u << 20;
	st->max_label = st->max_reference = 65536;
	st->max_references = 16;
	st->max_tool = 16384;
	long long match_limit = 10000000, order = 4, ngram = 3, lmin = 0, lmax = 1024;
	int anchor = ANCHOR_FULL, sm = (int)st->bleu.smoothing;
	const json_t *cs = NULL;
	json_t *empty = NULL;
	if (!opts)
		opts = empty = json_object();
	if (!opts) {
		r = rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		goto fail;
	}
	const long long MiB = 1 << 20;
	if ((r = parse_dims(st, opts, err)) ||
		(r = opt_enum(opts, "format_anchor", anchors, &anchor, err)) ||
		(r = opt_int(opts, "format_match_limit", 1000, 1000000000, &match_limit, err)) ||
		(r = opt_number(opts, "accuracy_rel_tol", 0, 1, 0, &st->rel_tol, err)) ||
		(r = opt_number(opts, "accuracy_abs_tol", 0, INFINITY, 0, &st->abs_tol, err)) ||
		(r = opt_int(opts, "bleu_order", 1, 4, &order, err)) ||
		(r = opt_enum(opts, "bleu_smoothing", smooth, &sm, err)) ||
		(r = opt_number(opts, "bleu_epsilon", 0, 1e6, 1, &st->bleu.epsilon, err)) ||
		(r = opt_number(opts, "bleu_k", 0, 1e6, 1, &st->bleu.k, err)) ||
		(r = opt_enum(opts, "length_unit", units, &st->length_unit, err)) ||
		(r = opt_int(opts, "length_min", 0, 1LL << 40, &lmin, err)) ||
		(r = opt_int(opts, "length_max", 0, 1LL << 40, &lmax, err)) ||
		(r = opt_number(opts, "length_scale", 0, 1e15, 1, &st->length_scale, err)) ||
		(r = opt_enum(opts, "length_decay", decays, &st->length_decay, err)) ||
		(r = opt_int(opts, "repetition_ngram", 1, 16, &ngram, err)) ||
		(r = opt_size(opts, "max_response_bytes", 1, 16 * MiB, &st->max_response, err)) ||
		(r = opt_size(opts, "max_prompt_bytes", 1, 16 * MiB, &st->max_prompt, err)) ||
		(r = opt_size(opts, "max_label_bytes", 1, 16 * MiB, &st->max_label, err)) ||
		(r = opt_size(opts, "max_reference_bytes", 1, 16 * MiB, &st->max_reference, err)) ||
		(r = opt_size(opts, "max_references", 1, 256, &st->max_references, err)) ||
		(r = opt_size(opts, "max_tool_call_bytes", 1, MiB, &st->max_tool, err)))
		goto fail;
	if ((cs = json_object_get(opts, "accuracy_case_sensitive"))) {
		if (!json_is_boolean(cs)) {
			r = opt_err(err, "accuracy_case_sensitive", RWD_E_INVALID, "must be true or false");
			goto fail;
		}
		st->case_sensitive = json_is_true(cs);
	}
	if ((r = parse_strip(st, opts, err)))
		goto fail;
	if (lmin > lmax) {
		r = opt_err(err, "length_min", RWD_E_INVALID, "must not exceed length_max");
		goto fail;
	}
	st->length_min = (double)lmin;
	st->length_max = (double)lmax;
	st->bleu.order = (int)order;
	st->bleu.smoothing = (rwd_rules_smoothing)sm;
	st->rep_ngram = (int)ngram;
	st->match_options = anchor == ANCHOR_FULL ? PCRE2_ANCHORED | PCRE2_ENDANCHORED :
		anchor == ANCHOR_START ? PCRE2_ANCHORED : 0;
	if (st->slot[DIM_FORMAT] >= 0 && (r = compile_format(st, opts, match_limit, err)))
		goto fail;
	if (st->slot[DIM_FORMAT] < 0 && json_object_get(opts, "format_regex")) {
		/* still validate it, so a typo does not wait for the day it is enabled */
		if ((r = compile_format(st, opts, match_limit, err)))
			goto fail;
	}
	st->c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
	if (!st->c_locale) {
		r = rwd_errorf(err, RWD_E_NOMEM, "cannot create the C locale");
		goto fail;
	}
	json_decref(empty);
	*state = st;
	return 0;
fail:
	json_decref(empty);
	rules_free(st);
	return r;
}

static void rules_describe(const void *state, rwd_model_info *info)
{
	const rules_state *st = state;
	info->n_dims = st->n_dims;
	for (size_t i = 0; i < st->n_dims; i++)
		info->dims[i] = st->dims[i];
	info->weight_bytes = 0;
	info->token_cost = 0;
}

/* ------------------------------------------------------------------ */
/* check                                                               */

static int check_text(const json_t *v, const char *field, size_t max, rwd_error *err)
{
	rwd_error_where(err, NULL, field);
	if (!json_is_string(v))
		return rwd_errorf(err, RWD_E_INVALID, "'%s' must be a string", field);
	size_t n = json_string_length(v);
	if (n > max)
		return rwd_errorf(err, RWD_E_LIMIT, "'%s' is %zu bytes, more than the limit of %zu",
			field, n, max);
	size_t bad = utf8_check((const unsigned char *)json_string_value(v), n);
	if (bad != n) {
		rwd_error_at(err, 0, 0, (int64_t)bad);
		return rwd_errorf(err, RWD_E_FORMAT, "'%s' is not valid UTF-8 (at byte %zu)", field, bad);
	}
	return 0;
}

static int check_label(const rules_state *st, const json_t *label, rwd_error *err)
{
	if (!label || json_is_null(label) || json_is_number(label))
		return 0;
	if (json_is_array(label)) {
		rwd_error_where(err, NULL, "label");
		size_t n = json_array_size(label);
		if (n == 0)
			return rwd_errorf(err, RWD_E_INVALID, "a 'label' array must not be empty");
		if (n > MAX_LABELS)
			return rwd_errorf(err, RWD_E_LIMIT, "'label' has %zu answers, more than %d", n, MAX_LABELS);
		size_t i;
		const json_t *v;
		json_array_foreach(label, i, v) {
			char field[32];
			snprintf(field, sizeof(field), "label[%zu]", i);
			if (json_is_number(v))
				continue;
			int r = json_is_string(v) ? check_text(v, field, st->max_label, err) : RWD_E_INVALID;
			if (r == RWD_E_INVALID) {
				rwd_error_where(err, NULL, field);
				return rwd_errorf(err, r, "the answers of a 'label' array must be strings or numbers");
			}
			if (r)
				return r;
		}
		return 0;
	}
	if (json_is_string(label)) {
		int r = check_text(label, "label", st->max_label, err);
		if (r)
			return r;
	} else if (!json_is_object(label)) {
		rwd_error_where(err, NULL, "label");
		return rwd_errorf(err, RWD_E_INVALID,
			"'label' must be a string, a number, an array of those, or a tool call object {\"name\", \"arguments\"}");
	}
	json_t *root;
	tool_call tc;
	int is_tool = label_tool_call(st, label, &root, &tc);
	int bad = is_tool && !tc.args;
	tool_call_clear(&tc);
	json_decref(root);
	rwd_error_where(err, NULL, "label");
	if (json_is_object(label) && !is_tool)
		return rwd_errorf(err, RWD_E_INVALID,
			"a 'label' object must be a tool call with a string \"name\"");
	if (bad)
		return rwd_errorf(err, RWD_E_INVALID,
			"the tool call label's \"arguments\" must be an object or a string holding one");
	return 0;
}

static int rules_check(const void *state, const json_t *item, size_t *cost, rwd_error *err)
{
	const rules_state *st = state;
	int r;
	*cost = 1;
	const json_t *resp = json_object_get(item, "response");
	if (!resp) {
		rwd_error_where(err, NULL, "response");
		return rwd_errorf(err, RWD_E_INVALID, "an item of a rules model needs a 'response' string");
	}
	if ((r = check_text(resp, "response", st->max_response, err)))
		return r;
	const json_t *prompt = json_object_get(item, "prompt");
	if (prompt && !json_is_null(prompt) && (r = check_text(prompt, "prompt", st->max_prompt, err)))
		return r;
	if ((r = check_label(st, json_object_get(item, "label"), err)))
		return r;
	const json_t *ref = json_object_get(item, "reference");
	if (!ref || json_is_null(ref))
		return 0;
	if (json_is_string(ref))
		return check_text(ref, "reference", st->max_reference, err);
	rwd_error_where(err, NULL, "reference");
	if (!json_is_array(ref) || json_array_size(ref) == 0)
		return rwd_errorf(err, RWD_E_INVALID,
			"'reference' must be a string or a non-empty array of strings");
	if (json_array_size(ref) > st->max_references)
		return rwd_errorf(err, RWD_E_LIMIT, "'reference' has %zu strings, more than the limit of %zu",
			json_array_size(ref), st->max_references);
	size_t i;
	const json_t *v;
	json_array_foreach(ref, i, v) {
		char field[32];
		snprintf(field, sizeof(field), "reference[%zu]", i);
		if ((r = check_text(v, field, st->max_reference, err)))
			return r;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* scratch and forward                                                 */

static int rules_scratch_new(const void *state, void **scratch, rwd_error *err)
{
	const rules_state *st = state;
	rules_scratch *s = calloc(1, sizeof(*s));
	if (!s)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	if (st->slot[DIM_FORMAT] >= 0) {
		s->md = pcre2_match_data_create_from_pattern(st->format_re, NULL);
		if (!s->md) {
			free(s);
			return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		}
	}
	*scratch = s;
	return 0;
}

static void rules_scratch_free(void *scratch)
{
	rules_scratch *s = scratch;
	if (!s)
		return;
	pcre2_match_data_free(s->md);
	free(s);
}

static void put(const rules_state *st, rwd_item *it, int dim, double v)
{
	int k = st->slot[dim];
	if (k < 0)
		return;
	it->scores[k] = (float)v;
	it->present[k] = 1;
}

static int enabled(const rules_state *st, int dim)
{
	return st->slot[dim] >= 0;
}

static int item_fail(rwd_item *it, int code, const char *field, const char *what)
{
	memset(it->present, 0, sizeof(it->present));
	it->status = code;
	rwd_error_where(&it->err, NULL, field);
	rwd_errorf(&it->err, code, "%s", what);
	return code;
}

static int format_score(const rules_state *st, pcre2_match_data *md, const char *s, size_t n,
	rwd_item *it)
{
	int rc = pcre2_match(st->format_re, (PCRE2_SPTR)s, n, 0, st->match_options, md, st->mctx);
	if (rc >= 0) {
		put(st, it, DIM_FORMAT, 1.0);
		return 0;
	}
	if (rc == PCRE2_ERROR_NOMATCH) {
		put(st, it, DIM_FORMAT, 0.0);
		return 0;
	}
	if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT)
		return item_fail(it, RWD_E_LIMIT, "response",
			"the response exceeds format_regex's match limits");
	if (rc == PCRE2_ERROR_NOMEMORY)
		return item_fail(it, RWD_E_NOMEM, "response", "out of memory matching format_regex");
	PCRE2_UCHAR msg[160];
	pcre2_get_error_message(rc, msg, sizeof(msg));
	char what[200];
	snprintf(what, sizeof(what), "format_regex failed on the response: %s", (const char *)msg);
	return item_fail(it, RWD_E_FORMAT, "response", what);
}

/* Accuracy against one label answer (a string or a number). */
static int label_accuracy(const rules_state *st, const char *s, size_t n, const json_t *label,
	double *v, int *absent)
{
	char num[64];
	const char *ls;
	size_t ln;
	if (json_is_integer(label)) {
		ln = (size_t)snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(label));
		ls = num;
	} else if (json_is_real(label)) {
		ln = (size_t)snprintf(num, sizeof(num), "%.17g", json_real_value(label));
		ls = num;
	} else if (json_is_string(label)) {
		ls = json_string_value(label);
		ln = json_string_length(label);
	} else {
		*absent = 1;
		return 0;
	}
	return accuracy_score(st, s, n, ls, ln, v, absent);
}

static int score_item(const rules_state *st, pcre2_match_data *md, rwd_item *it)
{
	const json_t *resp = json_object_get(it->input, "response");
	if (!json_is_string(resp))
		return item_fail(it, RWD_E_INVALID, "response", "'response' must be a string");
	const char *s = json_string_value(resp);
	size_t n = json_string_length(resp);
	int r;
	double v;

	/* OpenRLHF-style text: prompt + response + end-of-sequence marker */
	const json_t *prompt = json_object_get(it->input, "prompt");
	if (st->strip_prompt && json_is_string(prompt)) {
		size_t pn = json_string_length(prompt);
		if (pn > 0 && pn <= n && memcmp(s, json_string_value(prompt), pn) == 0) {
			s += pn;
			n -= pn;
		}
	}
	for (int again = 1; again;) {
		again = 0;
		for (size_t i = 0; i < st->n_suffixes; i++) {
			size_t k = st->suffix_len[i];
			if (k <= n && memcmp(s + n - k, st->suffix[i], k) == 0) {
				n -= k;
				again = 1;
			}
		}
	}

	if (enabled(st, DIM_FORMAT) && (r = format_score(st, md, s, n, it)))
		return r;

	const json_t *label = json_object_get(it->input, "label");
	r = 0;
	if (label && !json_is_null(label) &&
		(enabled(st, DIM_ACCURACY) || enabled(st, DIM_TOOL_NAME) || enabled(st, DIM_TOOL_ARGS))) {
		json_t *lroot = NULL;
		tool_call want;
		if (label_tool_call(st, label, &lroot, &want)) {
			json_t *rroot = NULL;
			tool_call got;
			int found = response_tool_call(st, s, n, &rroot, &got);
			double name, args;
			tool_scores(&want, &got, found, &name, &args);
			put(st, it, DIM_TOOL_NAME, name);
			put(st, it, DIM_TOOL_ARGS, args);
			tool_call_clear(&got);
			json_decref(rroot);
		} else if (enabled(st, DIM_ACCURACY)) {
			/* an array of answers: the best match; absent when every answer is empty */
			size_t k = json_is_array(label) ? json_array_size(label) : 1;
			double best = -1;
			for (size_t i = 0; i < k && r == 0; i++) {
				int absent;
				r = label_accuracy(st, s, n, json_is_array(label) ? json_array_get(label, i) : label,
					&v, &absent);
				if (r == 0 && !absent && v > best)
					best = v;
			}
			if (r == 0 && best >= 0)
				put(st, it, DIM_ACCURACY, best);
		}
		tool_call_clear(&want);
		json_decref(lroot);
		if (r)
			return item_fail(it, r, "label", r == RWD_E_NOMEM ? "out of memory" :
				"invalid UTF-8 in the response or label");
	}

	const json_t *ref = json_object_get(it->input, "reference");
	if (enabled(st, DIM_BLEU) && ref && !json_is_null(ref)) {
		const char *one;
		size_t one_len, nrefs = json_is_array(ref) ? json_array_size(ref) : 1;
		const char **refs = &one;
		size_t *lens = &one_len;
		if (json_is_string(ref)) {
			one = json_string_value(ref);
			one_len = json_string_length(ref);
		} else if (nrefs > 0) {
			refs = malloc(nrefs * sizeof(*refs));
			lens = malloc(nrefs * sizeof(*lens));
			if (!refs || !lens) {
				free(refs);
				free(lens);
				return item_fail(it, RWD_E_NOMEM, "reference", "out of memory");
			}
			for (size_t i = 0; i < nrefs; i++) {
				const json_t *e = json_array_get(ref, i);
				refs[i] = json_is_string(e) ? json_string_value(e) : "";
				lens[i] = json_is_string(e) ? json_string_length(e) : 0;
			}
		}
		r = nrefs ? rwd_rules_bleu(s, n, refs, lens, nrefs, &st->bleu, &v) : RWD_E_INVALID;
		if (refs != &one) {
			free(refs);
			free(lens);
		}
		if (r)
			return item_fail(it, r, "reference", r == RWD_E_NOMEM ? "out of memory" :
				"cannot compute BLEU: invalid UTF-8 or an empty reference list");
		put(st, it, DIM_BLEU, v);
	}

	if (enabled(st, DIM_LENGTH)) {
		double L;
		if ((r = count_units(st, s, n, &L)))
			return item_fail(it, r, "response", "the response is not valid UTF-8");
		put(st, it, DIM_LENGTH, length_score(st, L));
	}
	if (enabled(st, DIM_REPETITION)) {
		if ((r = repetition_score(st, s, n, &v)))
			return item_fail(it, r, "response", r == RWD_E_NOMEM ? "out of memory" :
				"the response is not valid UTF-8");
		put(st, it, DIM_REPETITION, v);
	}
	return 0;
}

static int rules_forward(const void *state, void *scratch, rwd_item *const *items, size_t n,
	rwd_arena *arena)
{
	const rules_state *st = state;
	rules_scratch *sc = scratch;
	pcre2_match_data *md = sc ? sc->md : NULL, *own = NULL;
	if (!md && enabled(st, DIM_FORMAT)) {
		own = md = pcre2_match_data_create_from_pattern(st->format_re, NULL);
		if (!md)
			return RWD_E_NOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		rwd_item *it = items[i];
		if (it->status)
			continue;
		memset(it->present, 0, sizeof(it->present));
		score_item(st, md, it);
	}
	pcre2_match_data_free(own);
	return 0;
}

const rwd_model_ops rwd__rules_ops = {
	.kind = "rules",
	.serial_blas = 1,
	.inputs = rules_inputs,
	.load = rules_load,
	.free = rules_free,
	.describe = rules_describe,
	.check = rules_check,
	.scratch_new = rules_scratch_new,
	.scratch_free = rules_scratch_free,
	.prepare = NULL,
	.forward = rules_forward,
};
