/*
 * tests/fuzz/fuzz_jinja.c — lib/text/jinja on arbitrary bytes.
 *
 * Input: TEMPLATE \0 VARIABLES-JSON (the part after the first NUL is
 * optional; without a JSON object the variables are a small conversation).
 * The template is compiled with tight limits and rendered. Checks: a
 * refusal leaves *out NULL with an error code and message; a rendering is
 * NUL-terminated at its length and within the output limit. The corpus
 * holds the real chat templates of tests/data/chat_templates/corpus/ with
 * conversations, so mutations reach every construct they use.
 */
#include "text/jinja.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char DEFAULT_VARS[] =
	"{\"messages\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"user\", \"content\": \"Hi\"},"
	" {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"type\": \"function\", \"function\":"
	" {\"name\": \"f\", \"arguments\": {\"a\": 1}}}]}, {\"role\": \"tool\", \"content\": \"42\"}],"
	" \"tools\": null, \"documents\": null, \"add_generation_prompt\": true, \"bos_token\": \"<s>\","
	" \"eos_token\": \"</s>\"}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t tl = nul ? (size_t)(nul - data) : size;
	rwd_jinja_limits lim = rwd_jinja_default_limits();
	lim.max_nodes = 50000;
	lim.max_iterations = 20000;
	lim.max_steps = 500000;
	lim.max_work_bytes = 16u << 20;
	lim.max_output_bytes = 1u << 20;
	rwd_jinja *t = (rwd_jinja *)data;
	rwd_error err;
	rwd_error_clear(&err);
	int rc = rwd_jinja_compile((const char *)data, tl, &lim, &t, &err);
	if (rc) {
		if (t != NULL || rc >= 0 || !err.msg[0])
			abort();
		return 0;
	}
	json_t *vars = NULL;
	if (nul)
		vars = json_loadb((const char *)nul + 1, size - tl - 1, 0, NULL);
	if (!json_is_object(vars)) {
		json_decref(vars);
		vars = json_loads(DEFAULT_VARS, 0, NULL);
	}
	rwd_arena *a = rwd_arena_create(0, 64u << 20);
	char *out = (char *)data;
	size_t len = 12345;
	rwd_jinja_render_opts o = { .now = 1764991545 };
	rwd_error_clear(&err);
	rc = a ? rwd_jinja_render(t, vars, &o, a, &out, &len, &err) : 0;
	if (a && rc && (out != NULL || len != 0 || !err.msg[0]))
		abort();
	if (a && !rc && (strlen(out) > len || len > lim.max_output_bytes))
		abort();
	rwd_arena_destroy(a);
	json_decref(vars);
	rwd_jinja_free(t);
	return 0;
}
