/*
 * tests/parity/chat_harness.c — drive lib/text/chat for
 * test_chat_templates.py, which compares with Jinja2.
 *
 *   chat_harness render
 *       stdin: one JSON object per line:
 *         {"template": str, "bos_token": str|null, "now": int|null (epoch s),
 *          "cases": [{"messages": [...], "add_generation_prompt": bool}, ...]}
 *       stdout: one JSON object per line:
 *         {"outputs": [str | {"error": code, "message": str}]}
 *         or {"error": code, "message": str} when the template is refused.
 *   chat_harness tokens TOKENIZER.JSON
 *       the same requests; each rendering is encoded with the tokenizer
 *       (add_special_tokens = 0, as apply_chat_template(tokenize=True)):
 *       "outputs" holds arrays of ids.
 */
#include "text/chat.h"
#include "text/tokenizer.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static json_t *error_json(const rwd_error *err)
{
	char buf[1024];
	return json_pack("{s:i, s:s}", "error", err->code, "message", rwd_error_format(err, buf, sizeof(buf)));
}

static json_t *encode(const rwd_tokenizer *tok, const char *text, size_t len, rwd_arena *a)
{
	rwd_encode_params ep = rwd_encode_default_params();
	ep.add_special_tokens = 0;
	rwd_token_ids ids;
	rwd_error err;
	rwd_error_clear(&err);
	if (rwd_tokenizer_encode(tok, text, len, &ep, a, &ids, &err))
		return error_json(&err);
	json_t *arr = json_array();
	for (size_t i = 0; i < ids.n; i++)
		json_array_append_new(arr, json_integer(ids.ids[i]));
	return arr;
}

static json_t *render_all(const json_t *req, const rwd_tokenizer *tok)
{
	rwd_error err;
	rwd_error_clear(&err);
	const char *tpl = json_string_value(json_object_get(req, "template"));
	const char *bos = json_string_value(json_object_get(req, "bos_token"));
	rwd_chat_template *t;
	if (rwd_chat_template_create(tpl, bos, NULL, &t, &err))
		return error_json(&err);
	json_t *res = json_object();
	json_t *outs = json_array();
	json_t *c;
	size_t i;
	rwd_arena *a = rwd_arena_create(0, 0);
	json_array_foreach(json_object_get(req, "cases"), i, c) {
		rwd_chat_params p = rwd_chat_default_params();
		p.add_generation_prompt = json_is_true(json_object_get(c, "add_generation_prompt"));
		p.now = (time_t)json_integer_value(json_object_get(req, "now"));
		char *text;
		size_t len;
		rwd_error_clear(&err);
		if (rwd_chat_render_json(t, json_object_get(c, "messages"), &p, a, &text, &len, &err))
			json_array_append_new(outs, error_json(&err));
		else if (tok)
			json_array_append_new(outs, encode(tok, text, len, a));
		else
			json_array_append_new(outs, json_stringn(text, len));
		rwd_arena_reset(a);
	}
	rwd_arena_destroy(a);
	rwd_chat_template_free(t);
	json_object_set_new(res, "outputs", outs);
	return res;
}

int main(int argc, char **argv)
{
	bool ok = (argc == 2 && strcmp(argv[1], "render") == 0) ||
		(argc == 3 && strcmp(argv[1], "tokens") == 0);
	if (!ok) {
		fprintf(stderr, "usage: chat_harness render|tokens TOKENIZER.JSON < requests\n");
		return 2;
	}
	rwd_tokenizer *tok = NULL;
	if (argc == 3) {
		rwd_error err;
		rwd_error_clear(&err);
		if (rwd_tokenizer_load_json(argv[2], NULL, &tok, &err)) {
			char buf[1024];
			fprintf(stderr, "chat_harness: %s\n", rwd_error_format(&err, buf, sizeof(buf)));
			return 1;
		}
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	while ((len = getline(&line, &cap, stdin)) > 0) {
		json_error_t je;
		json_t *req = json_loadb(line, (size_t)len, JSON_DECODE_ANY, &je);
		if (!req) {
			fprintf(stderr, "chat_harness: bad request line: %s\n", je.text);
			return 1;
		}
		json_t *res = render_all(req, tok);
		char *s = json_dumps(res, JSON_ENCODE_ANY | JSON_COMPACT);
		puts(s);
		fflush(stdout);
		free(s);
		json_decref(res);
		json_decref(req);
	}
	free(line);
	rwd_tokenizer_free(tok);
	return 0;
}
