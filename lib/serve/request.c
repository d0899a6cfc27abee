/* serve/request.c — see request.h. */
#include "serve/request.h"

#include "serve/batcher.h"

#include <stdio.h>
#include <string.h>

rwd_request_limits rwd_request_default_limits(void)
{
	rwd_request_limits l;
	l.max_items = 256;
	l.max_depth = 32;
	l.max_string_bytes = 8u << 20;
	l.max_id_bytes = 256;
	l.default_timeout_ms = 30000;
	l.max_timeout_ms = 300000;
	return l;
}

size_t rwd_request_json_depth(const char *body, size_t len, size_t stop, int *line, int *column)
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

int rwd_request_parse(const char *body, size_t len, const rwd_request_limits *lim,
	rwd_request_find_fn find, void *find_ctx, rwd_arena *arena, rwd_request *out,
	rwd_error *err)
{
	memset(out, 0, sizeof(*out));
	int line = 0, col = 0;
	if (rwd_request_json_depth(body, len, lim->max_depth, &line, &col) > lim->max_depth) {
		rwd_error_at(err, line, col, -1);
		return rwd_errorf(err, RWD_E_INVALID, "JSON nested deeper than %zu levels", lim->max_depth);
	}
	json_error_t jerr;
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
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
		size_t cost = 1;
		r = rwd_model_check(m, it, &cost, &ierr);
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
