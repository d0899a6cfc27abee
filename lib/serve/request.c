/* serve/request.c — see request.h. */
#include "serve/request.h"

#include "core/numparse.h"
#include "serve/batcher.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Returned by parse_once when the fast path must give way to jansson alone. */
#define SLOW_AGAIN 1

rwd_request_limits rwd_request_default_limits(void)
{
	rwd_request_limits l;
	l.max_items = 256;
	l.max_depth = 32;
	l.max_string_bytes = 8u << 20;
	l.max_id_bytes = 256;
	l.default_timeout_ms = 30000;
	l.max_timeout_ms = 300000;
	l.json_only = 0;
	return l;
}

/* The deepest nesting, with the line/column where it passed `stop` (the slow, exact walk). */
static size_t depth_at(const char *body, size_t len, size_t stop, int *line, int *column)
{
	size_t depth = 0, max = 0;
	int in_str = 0, esc = 0, ln = 1, col = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)body[i];
		if (c == '\n') {
			ln++;
			col = 0;
		} else if ((c & 0xC0) != 0x80) {
			col++; /* count characters, as jansson does, not UTF-8 continuation bytes */
		}
		if (in_str) {
			if (esc)
				esc = 0;
			else if (c == '\\')
				esc = 1;
			else if (c == '"')
				in_str = 0;
			continue;
		}
		if (c == '"') {
			in_str = 1;
		} else if (c == '[' || c == '{') {
			if (++depth > max)
				max = depth;
			if (max > stop) {
				if (line)
					*line = ln;
				if (column)
					*column = col;
				return stop + 1;
			}
		} else if ((c == ']' || c == '}') && depth) {
			depth--;
		}
	}
	return max;
}

size_t rwd_request_json_depth(const char *body, size_t len, size_t stop, int *line, int *column)
{
	/* the common case first: no positions, strings skipped with memchr */
	size_t depth = 0, max = 0;
	for (size_t i = 0; i < len; i++) {
		char c = body[i];
		if (c == '"') {
			for (;;) {
				const char *q = memchr(body + i + 1, '"', len - i - 1);
				if (!q)
					return max; /* an unterminated string: no bracket follows */
				i = (size_t)(q - body);
				size_t bs = 0; /* the quote is escaped iff an odd run of backslashes precedes it */
				while (body[i - 1 - bs] == '\\')
					bs++;
				if (!(bs & 1))
					break;
			}
		} else if (c == '[' || c == '{') {
			if (++depth > max)
				max = depth;
			if (max > stop)
				return depth_at(body, len, stop, line, column);
		} else if ((c == ']' || c == '}') && depth) {
			depth--;
		}
	}
	return max;
}

static void decref_cleanup(void *p)
{
	json_decref(p);
}

/* Reject any string (value or key) over the limit; path names the first one. */
static int check_strings(const json_t *v, size_t max, char *path, size_t pathsz, size_t plen,
	rwd_error *err)
{
	if (json_is_string(v)) {
		if (json_string_length(v) > max)
			return rwd_errorf(err, RWD_E_LIMIT, "a string of %zu bytes is longer than the limit of %zu",
				json_string_length(v), max);
		return 0;
	}
	if (json_is_array(v)) {
		size_t i;
		const json_t *e;
		json_array_foreach(v, i, e) {
			if (json_is_string(e) || json_is_array(e) || json_is_object(e)) {
				snprintf(path + plen, pathsz - plen, "[%zu]", i);
				int r = check_strings(e, max, path, pathsz, strlen(path), err);
				if (r)
					return r;
			}
		}
		path[plen] = '\0';
		return 0;
	}
	if (json_is_object(v)) {
		const char *k;
		const json_t *e;
		json_object_foreach((json_t *)v, k, e) {
			snprintf(path + plen, pathsz - plen, "%s%s", plen ? "." : "", k);
			if (strlen(k) > max)
				return rwd_errorf(err, RWD_E_LIMIT, "a key longer than the limit of %zu bytes", max);
			int r = check_strings(e, max, path, pathsz, strlen(path), err);
			if (r)
				return r;
		}
		path[plen] = '\0';
	}
	return 0;
}

static int parse_dimensions(const json_t *dj, const rwd_model *m, rwd_request *out, rwd_error *err)
{
	const rwd_model_info *info = rwd_model_get_info(m);
	if (!dj) {
		out->n_dims = info->n_dims;
		for (size_t i = 0; i < info->n_dims; i++)
			out->dims[i] = (int)i;
		return 0;
	}
	rwd_error_where(err, NULL, "dimensions");
	if (!json_is_array(dj) || json_array_size(dj) == 0)
		return rwd_errorf(err, RWD_E_INVALID, "\"dimensions\" must be a non-empty array of dimension names");
	if (json_array_size(dj) > RWD_MAX_DIMS)
		return rwd_errorf(err, RWD_E_LIMIT, "more than %d dimensions", RWD_MAX_DIMS);
	size_t i;
	const json_t *v;
	json_array_foreach(dj, i, v) {
		char f[48];
		snprintf(f, sizeof(f), "dimensions[%zu]", i);
		rwd_error_where(err, NULL, f);
		if (!json_is_string(v))
			return rwd_errorf(err, RWD_E_INVALID, "a dimension must be a string");
		int d = rwd_model_dim_index(m, json_string_value(v));
		if (d < 0)
			return rwd_errorf(err, RWD_E_UNPROCESSABLE, "model '%s' has no dimension '%.64s'",
				info->name, json_string_value(v));
		for (size_t j = 0; j < i; j++)
			if (out->dims[j] == d)
				return rwd_errorf(err, RWD_E_INVALID, "dimension '%.64s' is listed twice",
					json_string_value(v));
		out->dims[i] = d;
	}
	out->n_dims = json_array_size(dj);
	rwd_error_where(err, NULL, "");
	return 0;
}

/* The items of one request, released with its arena (see rwd_item_release). */
struct item_span {
	rwd_item *items;
	size_t n;
};

static void release_span(void *p)
{
	struct item_span *s = p;
	rwd_item_release(s->items, s->n);
}

/* ---- the float-array fast path ------------------------------------------
 *
 * Items' "embedding": [numbers] arrays are read straight from the body bytes
 * into floats, and jansson parses a copy of the body in which each such
 * array is replaced by `0` (so jansson walks none of its bytes). Positions
 * in the copy never reach a client: any error is re-derived from the
 * original body (below). The arrays taken are exactly
 * those at root."items"[i]."embedding" (keys matched as raw bytes), holding
 * one or more JSON number tokens separated by commas and JSON whitespace,
 * each one a value jansson would accept and the mlp check would too (finite,
 * |x| <= 3.4e38); any other array is left for jansson. Replacing a value by a
 * value keeps valid text valid and invalid text invalid at the same place;
 * still, whenever jansson refuses the copy, or an item's vector does not fit
 * the model (not a vector kind, another width, both fields given),
 * the whole body is parsed again by jansson alone, so every error is the
 * jansson path's, byte for byte. The result is the same double jansson
 * gives (core/numparse.h), so the same float. Items' "embedding_b64"
 * strings are taken the same way (fast_b64), sparing jansson's per-character
 * string lexing.
 */
typedef struct fast_vec {
	float *v; /* NULL: the item's embedding was not taken */
	size_t n;
	int b64;  /* taken from "embedding_b64" (else from "embedding") */
} fast_vec;

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The number array at body[at] == '[': floats into the arena, its end past ']'. 0, or -1 to leave it. */
static int fast_array(const char *body, size_t len, size_t at, rwd_arena *arena, fast_vec *fv, size_t *end)
{
	size_t commas = 0, k;
	for (k = at + 1; k < len && body[k] != ']'; k++) {
		char c = body[k];
		if (c == ',')
			commas++;
		else if (c == '[' || c == '{' || c == '"')
			return -1;
	}
	if (k >= len)
		return -1;
	size_t n = commas + 1;
	float *v = rwd_arena_alloc(arena, n * sizeof(float));
	if (!v)
		return -1;
	size_t i = at + 1, got = 0;
	for (;;) {
		while (i < len && is_ws(body[i]))
			i++;
		double d;
		size_t used;
		if (got == n || rwd_numparse_json(body + i, len - i, &d, &used) || !(fabs(d) <= 3.4e38))
			return -1;
		v[got++] = (float)d;
		i += used;
		while (i < len && is_ws(body[i]))
			i++;
		if (i < len && body[i] == ',') {
			i++;
			continue;
		}
		if (i < len && body[i] == ']' && got == n)
			break;
		return -1;
	}
	fv->v = v;
	fv->n = n;
	fv->b64 = 0;
	*end = i + 1;
	return 0;
}

/*
 * The "embedding_b64" string whose opening quote is body[at]: decoded into
 * floats when its raw bytes are plain printable ASCII without escapes (then
 * they are exactly jansson's string), at most max_string bytes, of a length
 * that decodes to whole float32 that rwd_model_vector_b64 accepts. 0 with
 * *end past the closing quote, or -1 to leave it to jansson and the kind.
 */
static int fast_b64(const char *body, size_t len, size_t at, size_t max_string, rwd_arena *arena,
	fast_vec *fv, size_t *end)
{
	size_t k = at + 1;
	while (k < len && body[k] != '"') {
		unsigned char c = (unsigned char)body[k];
		if (c < 0x20 || c > 0x7e || c == '\\')
			return -1;
		k++;
	}
	size_t n = k - (at + 1);
	if (k >= len || n == 0 || n > max_string || n % 4)
		return -1;
	const char *t = body + at + 1;
	size_t pad = (t[n - 1] == '=') + (t[n - 2] == '=');
	size_t bytes = n / 4 * 3 - pad;
	if (bytes % 4)
		return -1;
	float *v = rwd_arena_alloc(arena, bytes);
	rwd_error e;
	rwd_error_clear(&e);
	if (!v || rwd_model_vector_b64(t, n, bytes / 4, v, &e))
		return -1;
	fv->v = v;
	fv->n = bytes / 4;
	fv->b64 = 1;
	*end = k + 1;
	return 0;
}

/*
 * Scan body for item embedding arrays. Returns the text jansson should parse
 * (*text_len bytes): a copy with each taken array replaced by `0`, or body
 * itself when none was taken; *fv_out is then the per-item vectors
 * ([max_items], from the arena) or NULL. *max_depth: the deepest nesting, as
 * rwd_request_json_depth counts it (a taken array is one level). NULL when
 * out of memory.
 */
static const char *fast_scan(const char *body, size_t len, size_t max_items, size_t max_string,
	rwd_arena *arena, fast_vec **fv_out, size_t *text_len, size_t *max_depth)
{
	size_t maxd = 0;
	enum { MAXD = 64 };
	char kind[MAXD + 1]; /* '{' or '[' per open level (levels past MAXD are not tracked) */
	size_t depth = 0, item = 0;
	int items_open = 0;     /* the level-2 array is root."items" */
	int key_items = 0;      /* the last root key was "items" */
	int key_embedding = 0;  /* the last item key was "embedding" (1) or "embedding_b64" (2) */
	char prev = 0;          /* the last structural character */
	char *copy = NULL;
	size_t olen = 0, last = 0; /* bytes in copy; body[last..] not copied yet */
	fast_vec *fv = NULL, one;
	*fv_out = NULL;
	for (size_t i = 0; i < len; i++) {
		char c = body[i];
		if (is_ws(c))
			continue;
		size_t end = 0;
		int took = 0;
		if (depth == 3 && items_open && prev == ':' && item < max_items) {
			if (c == '[' && key_embedding == 1)
				took = fast_array(body, len, i, arena, &one, &end) == 0;
			else if (c == '"' && key_embedding == 2)
				took = fast_b64(body, len, i, max_string, arena, &one, &end) == 0;
		}
		if (took) {
			if (!copy) {
				copy = rwd_arena_alloc(arena, len + 1);
				fv = rwd_arena_calloc(arena, max_items, sizeof(*fv));
				if (!copy || !fv)
					return NULL;
			}
			fv[item] = one;
			if (!one.b64 && depth + 1 > maxd)
				maxd = depth + 1;
			memcpy(copy + olen, body + last, i - last);
			olen += i - last;
			copy[olen++] = '0';
			last = end;
			i = end - 1;
			prev = '0';
			key_embedding = 0;
			continue;
		}
		if (c == '"') {
			size_t st = ++i;
			while (i < len && body[i] != '"')
				i += body[i] == '\\' ? 2 : 1;
			if (i >= len)
				break;
			int is_key = depth >= 1 && depth <= MAXD && kind[depth] == '{' && (prev == '{' || prev == ',');
			if (is_key && depth == 1)
				key_items = i - st == 5 && memcmp(body + st, "items", 5) == 0;
			if (is_key && depth == 3 && items_open)
				key_embedding = i - st == 9 && memcmp(body + st, "embedding", 9) == 0 ? 1 :
					i - st == 13 && memcmp(body + st, "embedding_b64", 13) == 0 ? 2 : 0;
			prev = '"';
			continue;
		}
		if (c == '{' || c == '[') {
			depth++;
			if (depth > maxd)
				maxd = depth;
			if (depth <= MAXD)
				kind[depth] = c;
			if (depth == 2)
				items_open = c == '[' && key_items && prev == ':';
			if (depth == 3 && items_open)
				key_embedding = 0;
		} else if (c == ',' && depth == 2 && items_open) {
			item++; /* elements counted by their commas, whatever their type */
		} else if (c == '}' || c == ']') {
			if (depth == 2)
				items_open = 0;
			if (depth)
				depth--;
		}
		prev = c;
	}
	*max_depth = maxd;
	if (!copy) {
		*text_len = len;
		return body;
	}
	memcpy(copy + olen, body + last, len - last);
	olen += len - last;
	copy[olen] = '\0';
	*fv_out = fv;
	*text_len = olen;
	return copy;
}

static int parse_once(const char *body, size_t len, const rwd_request_limits *lim,
	rwd_request_find_fn find, void *find_ctx, rwd_arena *arena, rwd_request *out,
	rwd_error *err, int fast);

int rwd_request_parse(const char *body, size_t len, const rwd_request_limits *lim,
	rwd_request_find_fn find, void *find_ctx, rwd_arena *arena, rwd_request *out,
	rwd_error *err)
{
	int r = parse_once(body, len, lim, find, find_ctx, arena, out, err, !lim->json_only);
	if (r == SLOW_AGAIN) {
		rwd_error_clear(err);
		r = parse_once(body, len, lim, find, find_ctx, arena, out, err, 0);
	}
	return r;
}

static int parse_once(const char *body, size_t len, const rwd_request_limits *lim,
	rwd_request_find_fn find, void *find_ctx, rwd_arena *arena, rwd_request *out,
	rwd_error *err, int fast)
{
	memset(out, 0, sizeof(*out));
	fast_vec *fv = NULL;
	const char *text = body;
	size_t text_len = len, depth = (size_t)-1;
	if (fast && lim->max_items && memmem(body, len, "\"embedding", 10)) {
		/* "embedding" or "embedding_b64"; the scan measures the nesting too */
		text = fast_scan(body, len, lim->max_items, lim->max_string_bytes, arena, &fv, &text_len, &depth);
		if (!text)
			return SLOW_AGAIN; /* no memory for the fast path: jansson's own way */
	}
	int line = 0, col = 0;
	if (depth > lim->max_depth &&
	    rwd_request_json_depth(body, len, lim->max_depth, &line, &col) > lim->max_depth) {
		rwd_error_at(err, line, col, -1);
		return rwd_errorf(err, RWD_E_INVALID, "JSON nested deeper than %zu levels", lim->max_depth);
	}
	json_error_t jerr;
	json_t *root = json_loadb(text, text_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root && fv)
		return SLOW_AGAIN;
	if (!root) {
		rwd_error_at(err, jerr.line, jerr.column, jerr.position);
		return rwd_errorf(err, RWD_E_FORMAT, "invalid JSON: %s", jerr.text);
	}
	if (rwd_arena_add_cleanup(arena, decref_cleanup, root)) {
		json_decref(root);
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	}
	out->root = root;
	if (!json_is_object(root))
		return rwd_errorf(err, RWD_E_INVALID, "the body must be a JSON object");
	char path[RWD_ERROR_OBJECT_MAX] = "";
	int r = check_strings(root, lim->max_string_bytes, path, sizeof(path), 0, err);
	if (r) {
		rwd_error_where(err, NULL, path);
		return r;
	}

	const char *k;
	json_t *v;
	json_object_foreach(root, k, v) {
		/* "reward" (the request's reward override) is read by the daemon's api_rl.c */
		if (strcmp(k, "model") && strcmp(k, "items") && strcmp(k, "dimensions") &&
			strcmp(k, "timeout_ms") && strcmp(k, "priority") && strcmp(k, "reward")) {
			rwd_error_where(err, NULL, k);
			return rwd_errorf(err, RWD_E_INVALID,
				"unknown field (expected model, items, dimensions, timeout_ms, priority, reward)");
		}
	}

	const json_t *mj = json_object_get(root, "model");
	if (mj && !json_is_string(mj)) {
		rwd_error_where(err, NULL, "model");
		return rwd_errorf(err, RWD_E_INVALID, "\"model\" must be a string");
	}
	const json_t *items = json_object_get(root, "items");
	rwd_error_where(err, NULL, "items");
	if (!items)
		return rwd_errorf(err, RWD_E_INVALID, "missing \"items\" (an array of item objects)");
	if (!json_is_array(items))
		return rwd_errorf(err, RWD_E_INVALID, "\"items\" must be an array of item objects");
	if (json_array_size(items) > lim->max_items)
		return rwd_errorf(err, RWD_E_LIMIT, "%zu items, more than the limit of %zu per request",
			json_array_size(items), lim->max_items);
	rwd_error_where(err, NULL, "");

	const json_t *tj = json_object_get(root, "timeout_ms");
	out->timeout_ms = lim->default_timeout_ms;
	if (tj) {
		rwd_error_where(err, NULL, "timeout_ms");
		if (!json_is_integer(tj) || json_integer_value(tj) <= 0)
			return rwd_errorf(err, RWD_E_INVALID, "\"timeout_ms\" must be a positive integer");
		json_int_t t = json_integer_value(tj);
		out->timeout_ms = t > (json_int_t)lim->max_timeout_ms ? lim->max_timeout_ms : (uint32_t)t;
		rwd_error_where(err, NULL, "");
	}
	if (lim->max_timeout_ms && (out->timeout_ms == 0 || out->timeout_ms > lim->max_timeout_ms))
		out->timeout_ms = lim->max_timeout_ms;

	const json_t *pj = json_object_get(root, "priority");
	out->priority = RWD_PRIO_NORMAL;
	if (pj) {
		const char *p = json_string_value(pj);
		if (p && strcmp(p, "high") == 0) {
			out->priority = RWD_PRIO_HIGH;
		} else if (!p || strcmp(p, "normal") != 0) {
			rwd_error_where(err, NULL, "priority");
			return rwd_errorf(err, RWD_E_INVALID, "\"priority\" must be \"normal\" or \"high\"");
		}
	}

	void *user = NULL;
	const rwd_model *m = find(find_ctx, mj ? json_string_value(mj) : NULL, &user, err);
	if (!m) {
		if (mj)
			rwd_error_where(err, NULL, "model");
		return err && err->code ? err->code : RWD_E_NOTFOUND;
	}
	out->model = m;
	out->model_user = user;
	const rwd_model_info *info = rwd_model_get_info(m);
	out->model_name = info->name;
	r = parse_dimensions(json_object_get(root, "dimensions"), m, out, err);
	if (r)
		return r;

	size_t n = json_array_size(items);
	out->n_items = n;
	out->items = rwd_arena_calloc(arena, n ? n : 1, sizeof(*out->items));
	out->ids = rwd_arena_calloc(arena, n ? n : 1, sizeof(*out->ids));
	struct item_span *span = rwd_arena_alloc(arena, sizeof(*span));
	if (!out->items || !out->ids || !span)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory for %zu items", n);
	/* what forward() attaches to the items (item->extra) goes with the arena */
	span->items = out->items;
	span->n = n;
	if (rwd_arena_add_cleanup(arena, release_span, span))
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory for %zu items", n);
	const rwd_batch_limits *bl = rwd_model_limits(m);
	size_t i;
	const json_t *it;
	json_array_foreach(items, i, it) {
		char f[RWD_ERROR_OBJECT_MAX];
		snprintf(f, sizeof(f), "items[%zu]", i);
		if (!json_is_object(it)) {
			rwd_error_where(err, NULL, f);
			return rwd_errorf(err, RWD_E_INVALID, "an item must be a JSON object");
		}
		const json_t *id = json_object_get(it, "id");
		if (id) {
			if (!(json_is_string(id) || json_is_integer(id))) {
				snprintf(f, sizeof(f), "items[%zu].id", i);
				rwd_error_where(err, NULL, f);
				return rwd_errorf(err, RWD_E_INVALID, "an item's \"id\" must be a string or an integer");
			}
			if (json_is_string(id) && json_string_length(id) > lim->max_id_bytes) {
				snprintf(f, sizeof(f), "items[%zu].id", i);
				rwd_error_where(err, NULL, f);
				return rwd_errorf(err, RWD_E_LIMIT, "an item's \"id\" is longer than %zu bytes",
					lim->max_id_bytes);
			}
			out->ids[i] = id;
		}
		rwd_item *item = &out->items[i];
		item->input = it;
		item->index = i;
		rwd_error_clear(&item->err);
		rwd_error ierr;
		rwd_error_clear(&ierr);
		if (fv && i < lim->max_items && fv[i].v) {
			/* a vector the fast path read: it must be what the jansson path would accept */
			if (!info->vector_input || fv[i].n != info->vector_input ||
			    json_object_get(it, fv[i].b64 ? "embedding" : "embedding_b64"))
				return SLOW_AGAIN;
			item->vec = fv[i].v;
			item->vec_n = fv[i].n;
		} else if (fv && !info->vector_input) {
			/* the scan blanked arrays of a kind that takes none (see above) */
			return SLOW_AGAIN;
		}
		r = 0;
		const json_t *b64 = info->vector_input ? json_object_get(it, "embedding_b64") : NULL;
		if (b64 && json_is_string(b64) && !json_object_get(it, "embedding")) {
			/* decoded once, into the request arena (charged to the budget) */
			float *vb = rwd_arena_alloc(arena, info->vector_input * sizeof(float));
			if (!vb) {
				snprintf(f + strlen(f), sizeof(f) - strlen(f), ".embedding_b64");
				rwd_error_where(err, NULL, f);
				return rwd_errorf(err, RWD_E_NOMEM, "out of memory for a vector of %zu floats",
					info->vector_input);
			}
			r = rwd_model_vector_b64(json_string_value(b64), json_string_length(b64), info->vector_input,
				vb, &ierr);
			if (!r) {
				item->vec = vb;
				item->vec_n = info->vector_input;
			}
		}
		size_t cost = 1;
		if (!r)
			r = rwd_model_check_item(m, item, &cost, &ierr);
		if (r) {
			if (err) {
				*err = ierr;
				if (ierr.object[0])
					snprintf(f + strlen(f), sizeof(f) - strlen(f), ".%.64s", ierr.object);
				snprintf(err->object, sizeof(err->object), "%s", f);
			}
			return r;
		}
		if (info->token_cost && bl->max_batch_tokens && cost > bl->max_batch_tokens) {
			rwd_error_where(err, NULL, f);
			return rwd_errorf(err, RWD_E_UNPROCESSABLE,
				"the item costs %zu tokens, more than a whole batch may hold (%zu)",
				cost, bl->max_batch_tokens);
		}
		item->cost = cost ? cost : 1;
		out->total_cost += item->cost;
	}
	rwd_error_clear(err);
	return 0;
}
