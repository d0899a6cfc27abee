/*
 * tests/fuzz/fuzz_tokenizer_json.c — lib/text's tokenizer.json loader on
 * arbitrary bytes (with small limits so the fuzzer reaches them). A failed
 * load leaves *out NULL and an error code; a successful one must encode a
 * few texts (chat markup, Unicode, whitespace runs) without crashing, with
 * ids in 0..max_id (a post-processor may name ids outside the vocabulary,
 * as HF allows).
 */
#include "text/tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	rwd_tokenizer_params p = rwd_tokenizer_default_params();
	p.max_file_bytes = 1 << 20;
	p.max_vocab = 4096;
	p.max_merges = 4096;
	p.max_added_tokens = 64;
	p.max_token_bytes = 64;
	p.max_pattern_bytes = 512;
	p.max_steps = 8;
	rwd_tokenizer *t = (rwd_tokenizer *)&p; /* must be reset to NULL on failure */
	rwd_error err;
	rwd_error_clear(&err);
	int rc = rwd_tokenizer_load_json_bytes((const char *)data, size, "fuzz.json", &p, &t, &err);
	if (rc) {
		if (t || rc > 0 || err.code != rc)
			abort();
		return 0;
	}
	if (!t)
		abort();
	static const char *const texts[] = {
		"", "Hello world", "<|im_start|>user\nHi<|im_end|>\n", "  \t\n\n  x  ",
		"\xe4\xbd\xa0\xe5\xa5\xbd\xef\xbc\x8c\xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x98\x80 caf\xc3\xa9 12345",
		"[CLS] a photo of a cat [SEP] <mask> <s></s>",
	};
	rwd_arena *a = rwd_arena_create(0, (size_t)64 << 20);
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		for (int special = 0; special < 2; special++) {
			rwd_encode_params ep = rwd_encode_default_params();
			ep.add_special_tokens = special;
			ep.max_length = i == 2 ? 8 : 0;
			rwd_token_ids ids;
			rwd_error_clear(&err);
			rc = rwd_tokenizer_encode(t, texts[i], strlen(texts[i]), &ep, a, &ids, &err);
			if (rc == 0) {
				for (size_t k = 0; k < ids.n; k++)
					if (ids.ids[k] < 0 || ids.ids[k] > p.max_id)
						abort();
			} else if (rc != RWD_E_LIMIT && rc != RWD_E_INVALID && rc != RWD_E_NOMEM) {
				fprintf(stderr, "fuzz_tokenizer_json: encode %zu: %d %s\n", i, rc, err.msg);
				abort();
			}
			rwd_arena_reset(a);
		}
	}
	rwd_arena_destroy(a);
	(void)rwd_tokenizer_truncation_length(t);
	(void)rwd_tokenizer_id_to_token(t, 0);
	rwd_tokenizer_free(t);
	return 0;
}
