/* tests/unit/test_base64.c — lib/core/base64: strict decoding, data URLs, limits. */
#include "rwd_check.h"

#include "core/arena.h"
#include "core/base64.h"

#include <stdint.h>

static int dec(const char *s, const rwd_base64_params *p, uint8_t *out, size_t cap, size_t *len,
	rwd_error *e)
{
	rwd_error_clear(e);
	return rwd_base64_decode_into(s, strlen(s), p, out, cap, len, e);
}

START_TEST(rfc4648_vectors)
{
	/* RFC 4648 §10 test vectors */
	static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	static const char *const std[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	rwd_base64_params p = rwd_base64_default_params();
	for (int i = 0; i < 7; i++) {
		uint8_t out[16];
		size_t len = 99;
		rwd_error e;
		ck_assert_int_eq(dec(std[i], &p, out, sizeof(out), &len, &e), 0);
		ck_assert_uint_eq(len, strlen(plain[i]));
		ck_assert(memcmp(out, plain[i], len) == 0);
		char enc[16];
		ck_assert_uint_eq(rwd_base64_encode((const uint8_t *)plain[i], strlen(plain[i]), 0, enc),
			strlen(std[i]));
		ck_assert_str_eq(enc, std[i]);
		ck_assert_uint_eq(rwd_base64_encoded_len(strlen(plain[i]), 0), strlen(std[i]));
	}
}
END_TEST

START_TEST(round_trip_all_bytes_both_alphabets)
{
	uint8_t in[300], out[300];
	char enc[512];
	for (int i = 0; i < 300; i++)
		in[i] = (uint8_t)(i * 131 + 7);
	for (int url = 0; url < 2; url++) {
		rwd_base64_params p = rwd_base64_default_params();
		p.url_safe = url;
		p.allow_unpadded = url;
		for (size_t n = 0; n <= 300; n += 1 + n / 7) {
			size_t k = rwd_base64_encode(in, n, url, enc);
			ck_assert_uint_eq(k, rwd_base64_encoded_len(n, url));
			size_t len;
			rwd_error e;
			ck_assert_int_eq(dec(enc, &p, out, sizeof(out), &len, &e), 0);
			ck_assert_uint_eq(len, n);
			ck_assert(memcmp(in, out, n) == 0);
		}
	}
}
END_TEST

START_TEST(whitespace_policy)
{
	uint8_t out[16];
	size_t len;
	rwd_error e;
	rwd_base64_params p = rwd_base64_default_params();
	ck_assert_int_eq(dec(" Zm9v\r\nYmFy \t", &p, out, sizeof(out), &len, &e), 0);
	ck_assert_uint_eq(len, 6);
	ck_assert(memcmp(out, "foobar", 6) == 0);
	ck_assert_int_eq(dec("Zg= =\n", &p, out, sizeof(out), &len, &e), 0);
	ck_assert_uint_eq(len, 1);
	p.allow_whitespace = 0;
	ck_assert_int_eq(dec("Zm9v\nYmFy", &p, out, sizeof(out), &len, &e), RWD_E_FORMAT);
	ck_assert_int_eq(e.offset, 4);
	/* other control characters are never whitespace */
	p = rwd_base64_default_params();
	ck_assert_int_eq(dec("Zm9v\vYmFy", &p, out, sizeof(out), &len, &e), RWD_E_FORMAT);
	ck_assert_int_eq(e.offset, 4);
}
END_TEST

START_TEST(precise_errors_with_offsets)
{
	uint8_t out[64];
	size_t len;
	rwd_error e;
	rwd_base64_params p = rwd_base64_default_params();
	struct { const char *in; int code; int64_t offset; } cases[] = {
		{"Zm9v!mFy", RWD_E_FORMAT, 4},   /* bad character */
		{"Zm9vY", RWD_E_FORMAT, 4},      /* lone final character */
		{"Zm9vYg", RWD_E_FORMAT, 6},     /* missing padding (truncated?) */
		{"Zm9vYg=", RWD_E_FORMAT, 7},    /* incomplete padding */
		{"Zm9vY===", RWD_E_FORMAT, 5},   /* padding where data is expected */
		{"Zm8==", RWD_E_FORMAT, 4},      /* too much padding */
		{"Zg==Zg==", RWD_E_FORMAT, 4},   /* data after padding */
		{"=Zg=", RWD_E_FORMAT, 0},
		{"Zh==", RWD_E_FORMAT, 1},       /* non-canonical: spare bits set */
		{"Zm9=", RWD_E_FORMAT, 2},
		{"Zm-v", RWD_E_FORMAT, 2},       /* url-safe char in standard mode */
		{"Zm9v\xc3\xa9", RWD_E_FORMAT, 4}, /* non-ASCII */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = dec(cases[i].in, &p, out, sizeof(out), &len, &e);
		ck_assert_msg(r == cases[i].code, "case %zu (%s): got %d", i, cases[i].in, r);
		ck_assert_msg(e.offset == cases[i].offset, "case %zu (%s): offset %lld, want %lld (%s)",
			i, cases[i].in, (long long)e.offset, (long long)cases[i].offset, e.msg);
		ck_assert(strstr(e.msg, "base64") != NULL);
	}
	/* url-safe: '+' and '/' are errors, unpadded accepted only when allowed */
	p.url_safe = 1;
	ck_assert_int_eq(dec("Zm+v", &p, out, sizeof(out), &len, &e), RWD_E_FORMAT);
	ck_assert_int_eq(e.offset, 2);
	ck_assert_int_eq(dec("_-8", &p, out, sizeof(out), &len, &e), RWD_E_FORMAT);
	p.allow_unpadded = 1;
	ck_assert_int_eq(dec("_-8", &p, out, sizeof(out), &len, &e), 0);
	ck_assert_uint_eq(len, 2);
	ck_assert_uint_eq(out[0], 0xff);
	ck_assert_uint_eq(out[1], 0xef);
}
END_TEST

START_TEST(limit_checked_before_allocating)
{
	rwd_base64_params p = rwd_base64_default_params();
	p.max_out = 5;
	size_t len = 0;
	rwd_error e;
	rwd_error_clear(&e);
	ck_assert_int_eq(rwd_base64_decoded_len("Zm9vYmE=", 8, &p, &len, &e), 0);
	ck_assert_uint_eq(len, 5);
	ck_assert_int_eq(rwd_base64_decoded_len("Zm9vYmFy", 8, &p, &len, &e), RWD_E_LIMIT);
	/* the arena is untouched when the limit fails */
	rwd_arena *a = rwd_arena_create(0, 0);
	uint8_t *out = (uint8_t *)1;
	ck_assert_int_eq(rwd_base64_decode("Zm9vYmFy", 8, &p, a, &out, &len, &e), RWD_E_LIMIT);
	ck_assert_ptr_null(out);
	ck_assert_uint_eq(rwd_arena_used(a), 0);
	p.max_out = 0;
	ck_assert_int_eq(rwd_base64_decode("Zm9vYmFy", 8, &p, a, &out, &len, &e), 0);
	ck_assert_uint_eq(len, 6);
	ck_assert(memcmp(out, "foobar", 6) == 0);
	/* an arena limit is reported as a limit too */
	rwd_arena *small = rwd_arena_create(64, 64);
	char big[401];
	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ck_assert_int_eq(rwd_base64_decode(big, strlen(big), &p, small, &out, &len, &e), RWD_E_LIMIT);
	rwd_arena_destroy(small);
	/* malloc path */
	ck_assert_int_eq(rwd_base64_decode("", 0, &p, NULL, &out, &len, &e), 0);
	ck_assert_ptr_nonnull(out);
	ck_assert_uint_eq(len, 0);
	free(out);
	/* decode_into: a too-small buffer */
	uint8_t tiny[2];
	ck_assert_int_eq(rwd_base64_decode_into("Zm9v", 4, &p, tiny, 2, &len, &e), RWD_E_LIMIT);
	rwd_arena_destroy(a);
}
END_TEST

START_TEST(data_urls)
{
	const char *pl;
	size_t pn;
	char mime[32];
	rwd_error e;
	rwd_error_clear(&e);
	const char *s = "data:image/png;base64,iVBORw0K";
	ck_assert_int_eq(rwd_base64_strip_data_url(s, strlen(s), 1, &pl, &pn, mime, sizeof(mime), &e), 0);
	ck_assert_str_eq(mime, "image/png");
	ck_assert_ptr_eq(pl, s + 22);
	ck_assert_uint_eq(pn, 8);
	s = "DATA:Image/JPEG;name=x.jpg;base64,/9j/";
	ck_assert_int_eq(rwd_base64_strip_data_url(s, strlen(s), 1, &pl, &pn, mime, sizeof(mime), &e), 0);
	ck_assert_str_eq(mime, "image/jpeg");
	ck_assert_str_eq(pl, "/9j/");
	/* not a data URL: unchanged */
	s = "iVBORw0KGgo=";
	ck_assert_int_eq(rwd_base64_strip_data_url(s, strlen(s), 1, &pl, &pn, mime, sizeof(mime), &e), 0);
	ck_assert_ptr_eq(pl, s);
	ck_assert_uint_eq(pn, strlen(s));
	ck_assert_str_eq(mime, "");
	struct { const char *in; int code; int64_t offset; } bad[] = {
		{"data:image/png,iVBO", RWD_E_FORMAT, 14},          /* not base64 */
		{"data:image/png;base64iVBO", RWD_E_FORMAT, 25},    /* no comma */
		{"data:;base64,iVBO", RWD_E_FORMAT, 5},             /* no type */
		{"data:image/;base64,iVBO", RWD_E_FORMAT, 11},      /* empty subtype */
		{"data:image/png;base64;x=1,iVBO", RWD_E_FORMAT, 22},
		{"data:text/plain;base64,aGk=", RWD_E_UNSUPPORTED, 5},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rwd_error_clear(&e);
		int r = rwd_base64_strip_data_url(bad[i].in, strlen(bad[i].in), 1, &pl, &pn, mime,
			sizeof(mime), &e);
		ck_assert_msg(r == bad[i].code, "case %zu: got %d", i, r);
		ck_assert_msg(e.offset == bad[i].offset, "case %zu: offset %lld (%s)", i,
			(long long)e.offset, e.msg);
	}
	/* text types pass when an image is not required */
	s = "data:text/plain;base64,aGk=";
	ck_assert_int_eq(rwd_base64_strip_data_url(s, strlen(s), 0, &pl, &pn, NULL, 0, &e), 0);
	ck_assert_str_eq(pl, "aGk=");
}
END_TEST

static Suite *base64_suite(void)
{
	Suite *s = suite_create("base64");
	TCase *tc = tcase_create("base64");
	tcase_add_test(tc, rfc4648_vectors);
	tcase_add_test(tc, round_trip_all_bytes_both_alphabets);
	tcase_add_test(tc, whitespace_policy);
	tcase_add_test(tc, precise_errors_with_offsets);
	tcase_add_test(tc, limit_checked_before_allocating);
	tcase_add_test(tc, data_urls);
	suite_add_tcase(s, tc);
	return s;
}

RWD_CHECK_MAIN(base64_suite)
