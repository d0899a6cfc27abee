/*
 * tests/parity/jinja_harness.c — drive lib/text/jinja for
 * test_jinja_templates.py, which compares with Python's Jinja2.
 *
 *   jinja_harness < requests
 *       stdin: one JSON object per line:
 *         {"template": str, "now": int (strftime_now's clock, epoch seconds),
 *          "cases": [{variables...}, ...]}
 *       stdout: one JSON object per line:
 *         {"nodes": int, "outputs": [str | {"error": code, "message": str}]}
 *         or {"error": code, "message": str} when the template does not compile.
 */
#include "text/jinja.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *error_json(const rwd_error *err)
{
	char buf[1024];
	return json_pack("{s:i, s:s}", "error", err->code, "message", rwd_error_format(err, buf, sizeof(buf)));
}

static json_t *render_all(const json_t *req)
{
	rwd_error err;
	rwd_error_clear(&err);
	json_t *tj = json_object_get(req, "template");
	rwd_jinja *t;
	if (rwd_jinja_compile(json_string_value(tj), json_string_length(tj), NULL, &t, &err))
		return error_json(&err);
	json_t *res = json_pack("{s:I}", "nodes", (json_int_t)rwd_jinja_node_count(t));
	json_t *outs = json_array();
	json_t *c;
	size_t i;
	rwd_arena *a = rwd_arena_create(0, 0);
	rwd_jinja_render_opts o = { .now = (time_t)json_integer_value(json_object_get(req, "now")) };
	json_array_foreach(json_object_get(req, "cases"), i, c) {
		char *text;
		size_t len;
		rwd_error_clear(&err);
		if (rwd_jinja_render(t, c, &o, a, &text, &len, &err))
			json_array_append_new(outs, error_json(&err));
		else
			json_array_append_new(outs, json_stringn(text, len));
		rwd_arena_reset(a);
	}
	rwd_arena_destroy(a);
	rwd_jinja_free(t);
	json_object_set_new(res, "outputs", outs);
	return res;
}

int main(void)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	while ((len = getline(&line, &cap, stdin)) > 0) {
		json_error_t je;
		json_t *req = json_loadb(line, (size_t)len, JSON_ALLOW_NUL, &je);
		if (!req) {
			fprintf(stderr, "jinja_harness: bad request line: %s\n", je.text);
			return 1;
		}
		json_t *res = render_all(req);
		char *s = json_dumps(res, JSON_COMPACT);
		puts(s);
		fflush(stdout);
		free(s);
		json_decref(res);
		json_decref(req);
	}
	free(line);
	return 0;
}
