/*
 * tests/fuzz/fuzz_base64.c — lib/core/base64: data URL unwrapping and strict
 * decoding of arbitrary bytes; every accepted input must re-encode to
 * itself modulo whitespace (and optional url-safe padding), in both alphabets;
 * the one-pass rwd_base64_decode_into agrees with rwd_base64_decode for
 * buffers too small, exact and roomy (same code, offset and bytes).
 */
#include "core/base64.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	const char *pl;
	size_t pn;
	char mime[64];
	rwd_error e;
	rwd_error_clear(&e);
	if (rwd_base64_strip_data_url(in, size, 0, &pl, &pn, mime, sizeof(mime), &e) != 0) {
		if (e.offset < 0 || (size_t)e.offset > size)
			abort();
		return 0;
	}
	for (int url = 0; url < 2; url++) {
		rwd_base64_params p = rwd_base64_default_params();
		p.url_safe = url;
		p.allow_unpadded = url;
		p.max_out = 1 << 16;
		uint8_t *out = NULL;
		size_t len = 0;
		rwd_error_clear(&e);
		int r = rwd_base64_decode(pl, pn, &p, NULL, &out, &len, &e);
		size_t caps[3] = {r ? 3 : len, r ? 0 : len + 5, r || !len ? 1 : len - 1};
		for (int c = 0; c < 3; c++) {
			uint8_t *buf = malloc(caps[c] ? caps[c] : 1);
			size_t got = 0;
			rwd_error e2;
			rwd_error_clear(&e2);
			int r2 = rwd_base64_decode_into(pl, pn, &p, buf, caps[c], &got, &e2);
			int want = r == RWD_E_FORMAT || r == RWD_E_LIMIT ? r : (caps[c] >= len ? 0 : RWD_E_LIMIT);
			if (r == RWD_E_LIMIT && r2 == RWD_E_LIMIT)
				want = r2; /* over max_out, or over cap first: both a size refusal */
			if (r2 != want || (r == RWD_E_FORMAT && e2.offset != e.offset) ||
			    (!r2 && (got != len || memcmp(buf, out, len))))
				abort();
			free(buf);
		}
		if (r) {
			if (out || (r == RWD_E_FORMAT && (e.offset < 0 || (size_t)e.offset > pn)))
				abort();
			continue;
		}
		/* canonical: re-encoding gives the input without whitespace/padding */
		char *enc = malloc(rwd_base64_encoded_len(len, url) + 1);
		size_t k = rwd_base64_encode(out, len, url, enc);
		size_t j = 0;
		for (size_t i = 0; i < pn; i++) {
			char c = pl[i];
			if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || (url && c == '='))
				continue;
			if (j >= k || enc[j] != c)
				abort();
			j++;
		}
		if (j != k)
			abort();
		free(enc);
		free(out);
	}
	return 0;
}
