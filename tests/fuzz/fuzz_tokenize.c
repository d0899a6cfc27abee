/*
 * tests/fuzz/fuzz_tokenize.c — lib/text encode on arbitrary bytes with a
 * small byte-level BPE tokenizer built in-process: the Qwen2 pipeline (NFC,
 * Split(Qwen2 regex, Isolated) + ByteLevel) over the 256 byte symbols and a
 * few merges, added tokens matched raw (plain, lstrip/rstrip/single_word)
 * and after normalisation, and `<s> A </s>` around the sequence.
 *
 * Input: byte 0 picks the options (max_length, truncate_left, specials),
 * the rest is the text. Checks: valid UTF-8 always encodes (unless the regex
 * hits its backtracking limit), invalid UTF-8 is RWD_E_INVALID with an
 * offset inside the text, ids are inside the vocabulary, max_length holds
 * and truncation keeps </s> last.
 */
#include "text/tokenizer.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char SKELETON[] =
	"{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":["
	"{\"id\":261,\"content\":\"<s>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true},"
	"{\"id\":262,\"content\":\"</s>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true},"
	"{\"id\":263,\"content\":\"<|im_start|>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true},"
	"{\"id\":264,\"content\":\"<|im_end|>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true},"
	"{\"id\":265,\"content\":\"<mask>\",\"single_word\":false,\"lstrip\":true,\"rstrip\":true,\"normalized\":false,\"special\":true},"
	"{\"id\":266,\"content\":\"word\",\"single_word\":true,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":false},"
	"{\"id\":267,\"content\":\"caf\\u00e9\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":true,\"special\":false}],"
	"\"normalizer\":{\"type\":\"NFC\"},"
	"\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":["
	"{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},"
	"\"behavior\":\"Isolated\",\"invert\":false},"
	"{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":false,\"use_regex\":false}]},"
	"\"post_processor\":{\"type\":\"TemplateProcessing\","
	"\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},{\"SpecialToken\":{\"id\":\"</s>\",\"type_id\":0}}],"
	"\"pair\":[{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},{\"Sequence\":{\"id\":\"B\",\"type_id\":1}}],"
	"\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[261],\"tokens\":[\"<s>\"]},\"</s>\":{\"id\":\"</s>\",\"ids\":[262],\"tokens\":[\"</s>\"]}}},"
	"\"decoder\":null,\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":null,"
	"\"end_of_word_suffix\":null,\"fuse_unk\":false,\"byte_fallback\":false,\"ignore_merges\":false,\"vocab\":{},"
	"\"merges\":[[\"\\u0120\",\"t\"],[\"h\",\"e\"],[\"\\u0120t\",\"he\"],[\"i\",\"n\"],[\"\\u00c3\",\"\\u00a9\"]]}}";

/* GPT-2's byte -> code point map. */
static unsigned byte_char(unsigned b)
{
	if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))
		return b;
	unsigned n = 0;
	for (unsigned x = 0; x < b; x++)
		if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF)))
			n++;
	return 0x100 + n;
}

static rwd_tokenizer *build(void)
{
	json_error_t je;
	json_t *j = json_loads(SKELETON, 0, &je);
	if (!j) {
		fprintf(stderr, "fuzz_tokenize: embedded JSON: %s at %d\n", je.text, je.position);
		abort();
	}
	json_t *vocab = json_object_get(json_object_get(j, "model"), "vocab");
	for (unsigned b = 0; b < 256; b++) {
		unsigned c = byte_char(b);
		char u[3] = { (char)(0xC0 | (c >> 6)), (char)(0x80 | (c & 0x3F)), 0 };
		char a[2] = { (char)c, 0 };
		json_object_set_new(vocab, c < 0x80 ? a : u, json_integer(b));
	}
	static const char *const merged[] = { "\xc4\xa0t", "he", "\xc4\xa0the", "in", "\xc3\x83\xc2\xa9" };
	for (unsigned i = 0; i < 5; i++)
		json_object_set_new(vocab, merged[i], json_integer(256 + i));
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	rwd_tokenizer *t = NULL;
	rwd_error err;
	rwd_error_clear(&err);
	if (!s || rwd_tokenizer_load_json_bytes(s, strlen(s), "fuzz", NULL, &t, &err) != 0) {
		fprintf(stderr, "fuzz_tokenize: embedded tokenizer does not load: %s: %s\n", err.object, err.msg);
		abort();
	}
	free(s);
	return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static rwd_tokenizer *tok;
	if (!tok)
		tok = build();
	if (size == 0)
		return 0;
	rwd_encode_params ep = rwd_encode_default_params();
	uint8_t o = data[0];
	ep.add_special_tokens = !(o & 1);
	ep.truncate_left = (o >> 1) & 1;
	ep.max_length = (o >> 2) & 3 ? ((o >> 2) & 3) * 3 - 1 + (o >> 4) : 0;
	const char *text = (const char *)data + 1;
	size_t len = size - 1;
	rwd_arena *a = rwd_arena_create(0, (size_t)256 << 20);
	rwd_token_ids ids;
	rwd_error err;
	rwd_error_clear(&err);
	int rc = rwd_tokenizer_encode(tok, text, len, &ep, a, &ids, &err);
	if (rc == RWD_E_INVALID && err.offset >= 0 && (size_t)err.offset < len) {
		/* invalid UTF-8 (or max_length below the specials, offset unset) */
	} else if (rc == RWD_E_INVALID && ep.add_special_tokens && ep.max_length && ep.max_length < 2) {
		/* fewer ids allowed than the template's special tokens */
	} else if (rc == RWD_E_LIMIT) {
		/* regex backtracking limit or arena limit */
	} else if (rc) {
		fprintf(stderr, "fuzz_tokenize: encode failed: %d %s\n", rc, err.msg);
		abort();
	} else {
		size_t vs = rwd_tokenizer_vocab_size(tok);
		for (size_t i = 0; i < ids.n; i++)
			if (ids.ids[i] < 0 || (size_t)ids.ids[i] >= vs)
				abort();
		if (ep.max_length && ids.n > ep.max_length)
			abort();
		if (ids.n_full < ids.n || (!ep.max_length && ids.n_full != ids.n))
			abort();
		if (ep.add_special_tokens && (ids.n < 2 || ids.ids[0] != 261 || ids.ids[ids.n - 1] != 262))
			abort();
	}
	rwd_arena_destroy(a);
	return 0;
}
