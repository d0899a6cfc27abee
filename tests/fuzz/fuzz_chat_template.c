/*
 * tests/fuzz/fuzz_chat_template.c — lib/text/chat on arbitrary bytes.
 *
 * Input: TEMPLATE \0 MESSAGES-JSON (the part after the first NUL is
 * optional). The template text is compiled by the Jinja engine (as every
 * template is); when it loads, the JSON is validated as `messages` and
 * rendered, with and without the generation prompt. The corpus holds the
 * real templates, so mutations reach the evaluator.
 * Checks: a refusal leaves *out NULL with an error code; a rendering is
 * NUL-terminated at its length and within max_bytes.
 */
#include "text/chat.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t tl = nul ? (size_t)(nul - data) : size;
	char *tpl = malloc(tl + 1);
	if (!tpl)
		return 0;
	memcpy(tpl, data, tl);
	tpl[tl] = '\0';
	rwd_chat_template *t = (rwd_chat_template *)tpl;
	rwd_error err;
	rwd_error_clear(&err);
	int rc = rwd_chat_template_create(tpl, "<|begin_of_text|>", "<|eot_id|>", &t, &err);
	free(tpl);
	if (rc) {
		if (t || rc > 0 || err.code != rc)
			abort();
		return 0;
	}
	json_t *msgs = nul ? json_loadb((const char *)nul + 1, size - tl - 1, 0, NULL) : NULL;
	if (msgs) {
		rwd_arena *a = rwd_arena_create(0, (size_t)64 << 20);
		for (int gen = 0; gen < 2; gen++) {
			rwd_chat_params p = rwd_chat_default_params();
			p.add_generation_prompt = gen;
			p.max_bytes = 1 << 20;
			p.max_messages = 256;
			p.now = 1735732800; /* 01 Jan 2025 */
			char *out = (char *)a;
			size_t len = 12345;
			rwd_error_clear(&err);
			rc = rwd_chat_render_json(t, msgs, &p, a, &out, &len, &err);
			if (rc) {
				if (out || len || rc > 0 || err.code != rc)
					abort();
			} else if (!out || out[len] != '\0' || len > p.max_bytes) {
				abort();
			}
		}
		rwd_arena_destroy(a);
		json_decref(msgs);
	}
	rwd_chat_template_free(t);
	return 0;
}
