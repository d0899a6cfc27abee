/*
 * tests/fuzz/fuzz_wordpiece.c — lib/text/wordpiece on arbitrary bytes.
 *
 * Byte 0 picks what the rest is:
 *   0: a vocab.txt, loaded with the default limits, then (when it loads)
 *      a fixed mixed-script sentence is encoded with it;
 *   1: a tokenizer.json, the same;
 *   else: text encoded with a small vocabulary built in-process (letters,
 *      ## pieces, a few words, CJK, [DEC]/[ENC] added as ImageReward adds
 *      them), byte 0's bits choosing max_length, padding and specials.
 * Checks: valid UTF-8 always encodes and invalid UTF-8 is RWD_E_INVALID,
 * every id is inside the vocabulary, max_length holds, truncation keeps
 * [SEP] last, padding fills with [PAD], a failed load leaves *out NULL.
 */
#include "text/wordpiece.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char VOCAB[] =
	"[PAD]\n[unused0]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n!\n,\n.\n?\na\nb\nc\nd\ne\nf\nx\ny\nz\n"
	"##a\n##b\n##c\n##e\n##s\n##ing\nthe\ncat\nphoto\nof\nun\n##aff\n##able\ncafe\n\xe4\xbd\xa0\n"
	"\xe5\xa5\xbd\n##\xc3\xa9\n\xce\xb1\n";

static const char SENTENCE[] = "A photo of a cat, caf\xc3\xa9 na\xc3\xafve \xe4\xbd\xa0\xe5\xa5\xbd [CLS] unaffable!";

static void check_ids(const rwd_wordpiece *t, const rwd_wordpiece_ids *ids, const rwd_wordpiece_encode_params *p)
{
	size_t vs = rwd_wordpiece_vocab_size(t);
	for (size_t i = 0; i < ids->n_total; i++)
		if (ids->ids[i] < 0 || (size_t)ids->ids[i] >= vs)
			abort();
	if (p->max_length && ids->n > p->max_length)
		abort();
	if (p->pad_to_max_length && ids->n_total != p->max_length)
		abort();
	for (size_t i = ids->n; i < ids->n_total; i++)
		if (ids->ids[i] != rwd_wordpiece_pad_id(t))
			abort();
	if (ids->n_full < ids->n)
		abort();
}

static void encode_fixed(const rwd_wordpiece *t, rwd_arena *a)
{
	rwd_wordpiece_encode_params p = rwd_wordpiece_encode_default_params();
	p.max_length = 16;
	rwd_wordpiece_ids ids;
	rwd_error err;
	if (rwd_wordpiece_encode(t, SENTENCE, sizeof(SENTENCE) - 1, &p, a, &ids, &err) == 0)
		check_ids(t, &ids, &p);
}

static int utf8_ok(const uint8_t *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i], need, cp;
		if (c < 0x80) { i++; continue; }
		if (c >= 0xC2 && c <= 0xDF) { need = 1; cp = c & 0x1F; }
		else if (c >= 0xE0 && c <= 0xEF) { need = 2; cp = c & 0x0F; }
		else if (c >= 0xF0 && c <= 0xF4) { need = 3; cp = c & 0x07; }
		else return 0;
		for (unsigned k = 1; k <= need; k++) {
			if (i + k >= n || (s[i + k] & 0xC0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
			(cp >= 0xD800 && cp <= 0xDFFF))
			return 0;
		i += need + 1;
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	rwd_arena *a = rwd_arena_create(1 << 16, 64u << 20);
	if (!a)
		return 0;
	rwd_wordpiece *t = (rwd_wordpiece *)(uintptr_t)1;
	rwd_error err;
	rwd_error_clear(&err);
	const char *body = (const char *)data + 1;
	size_t n = size - 1;
	if (data[0] == 0 || data[0] == 1) {
		int rc = data[0] == 0 ? rwd_wordpiece_load_vocab_bytes(body, n, "fuzz", NULL, &t, &err)
			: rwd_wordpiece_load_json_bytes(body, n, "fuzz", NULL, &t, &err);
		if (rc) {
			if (t != NULL || err.code == 0)
				abort();
		} else {
			encode_fixed(t, a);
			rwd_wordpiece_free(t);
		}
		rwd_arena_destroy(a);
		return 0;
	}
	if (rwd_wordpiece_load_vocab_bytes(VOCAB, sizeof(VOCAB) - 1, "vocab", NULL, &t, &err) ||
		rwd_wordpiece_add_special(t, "[DEC]", NULL, &err) || rwd_wordpiece_add_special(t, "[ENC]", NULL, &err))
		abort();
	rwd_wordpiece_encode_params p = rwd_wordpiece_encode_default_params();
	p.add_special_tokens = (data[0] & 1) != 0;
	p.max_length = (data[0] & 2) ? (size_t)(data[0] >> 3) + 2 : 0;
	p.pad_to_max_length = (data[0] & 4) && p.max_length;
	rwd_wordpiece_ids ids;
	int rc = rwd_wordpiece_encode(t, body, n, &p, a, &ids, &err);
	if (utf8_ok((const uint8_t *)body, n)) {
		if (rc)
			abort();
		check_ids(t, &ids, &p);
		if (p.add_special_tokens && p.max_length && ids.n_full > p.max_length &&
			ids.ids[ids.n - 1] != rwd_wordpiece_token_to_id(t, "[SEP]"))
			abort();
	} else if (rc != RWD_E_INVALID) {
		abort();
	}
	rwd_wordpiece_free(t);
	rwd_arena_destroy(a);
	return 0;
}
