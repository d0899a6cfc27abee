/* core/base64.c — see base64.h for the policy. */
#include "core/base64.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

rwd_base64_params rwd_base64_default_params(void)
{
	rwd_base64_params p = {0};
	p.allow_whitespace = 1;
	p.max_out = (size_t)64 << 20;
	return p;
}

/* Value of c in the alphabet, or -1. */
static int b64_value(unsigned char c, int url_safe)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (url_safe) {
		if (c == '-')
			return 62;
		if (c == '_')
			return 63;
	} else {
		if (c == '+')
			return 62;
		if (c == '/')
			return 63;
	}
	return -1;
}

/* Character values for the quad fast path (-1: anything else, including
 * '=', whitespace and the other alphabet's two, which take the per-character path). */
static const signed char val_std[256] = {
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1, -1, 63,
	52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
	-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
	15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, -1,
	-1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
	41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};
static const signed char val_url[256] = {
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1,
	52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
	-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
	15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, 63,
	-1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
	41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

static int is_b64_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int fail_at(rwd_error *err, int code, size_t offset, const char *what, unsigned char c)
{
	rwd_error_at(err, 0, 0, (int64_t)offset);
	if (c >= 0x21 && c < 0x7f)
		return rwd_errorf(err, code, "base64: %s '%c' at byte %zu", what, c, offset);
	return rwd_errorf(err, code, "base64: %s 0x%02x at byte %zu", what, c, offset);
}

/*
 * The one scanner: validates and counts, and writes when out != NULL, at most
 * cap bytes: past cap it keeps validating without writing, then fails with
 * RWD_E_LIMIT (so a malformed input is still RWD_E_FORMAT). Runs of four
 * alphabet characters take a table-driven fast path.
 */
static int scan(const char *in, size_t n, const rwd_base64_params *p, uint8_t *out, size_t cap,
	size_t *out_len, rwd_error *err)
{
	const signed char *val = p->url_safe ? val_url : val_std;
	int over = 0;
	const unsigned char *s = (const unsigned char *)in;
	unsigned quad[4] = {0, 0, 0, 0};
	size_t qoff[4] = {0, 0, 0, 0};
	unsigned q = 0, pad = 0;
	size_t len = 0;
	size_t max = p->max_out ? p->max_out : (size_t)-1;

	for (size_t i = 0; i < n; i++) {
		if (q == 0 && pad == 0) {
			while (n - i >= 4) {
				int a = val[s[i]], b = val[s[i + 1]], c2 = val[s[i + 2]], d = val[s[i + 3]];
				if ((a | b | c2 | d) < 0 || max - len < 3)
					break;
				if (out && !over && cap - len >= 3) {
					out[len] = (uint8_t)(a << 2 | b >> 4);
					out[len + 1] = (uint8_t)(b << 4 | c2 >> 2);
					out[len + 2] = (uint8_t)(c2 << 6 | d);
				} else if (out) {
					over = 1;
				}
				len += 3;
				i += 4;
			}
			if (i >= n)
				break;
		}
		unsigned char c = s[i];
		if (is_b64_space(c)) {
			if (!p->allow_whitespace)
				return fail_at(err, RWD_E_FORMAT, i, "whitespace not allowed:", c);
			continue;
		}
		if (c == '=') {
			if (q < 2)
				return fail_at(err, RWD_E_FORMAT, i, "padding where data is expected:", c);
			if (q + pad >= 4)
				return fail_at(err, RWD_E_FORMAT, i, "too much padding:", c);
			pad++;
			continue;
		}
		int v = b64_value(c, p->url_safe);
		if (v < 0) {
			const char *what = p->url_safe ? "invalid url-safe base64 character"
				: "invalid base64 character";
			return fail_at(err, RWD_E_FORMAT, i, what, c);
		}
		if (pad)
			return fail_at(err, RWD_E_FORMAT, i, "data after padding:", c);
		qoff[q] = i;
		quad[q++] = (unsigned)v;
		if (q == 4) {
			if (max - len < 3) {
				rwd_error_at(err, 0, 0, (int64_t)i);
				return rwd_errorf(err, RWD_E_LIMIT,
					"base64: decoded data exceeds the limit of %zu bytes", max);
			}
			if (out && !over && cap - len >= 3) {
				out[len] = (uint8_t)(quad[0] << 2 | quad[1] >> 4);
				out[len + 1] = (uint8_t)(quad[1] << 4 | quad[2] >> 2);
				out[len + 2] = (uint8_t)(quad[2] << 6 | quad[3]);
			} else if (out) {
				over = 1;
			}
			len += 3;
			q = 0;
		}
	}
	if (q == 1)
		return fail_at(err, RWD_E_FORMAT, qoff[0], "a lone final character", s[qoff[0]]);
	if (q > 0) {
		if (pad && q + pad != 4) {
			rwd_error_at(err, 0, 0, (int64_t)n);
			return rwd_errorf(err, RWD_E_FORMAT,
				"base64: incomplete padding at the end (byte %zu)", n);
		}
		if (!pad && !p->allow_unpadded) {
			rwd_error_at(err, 0, 0, (int64_t)n);
			return rwd_errorf(err, RWD_E_FORMAT,
				"base64: missing '=' padding at the end (byte %zu; input truncated?)", n);
		}
		/* Canonical form: the bits past the last whole byte are zero. */
		unsigned spare = q == 2 ? (quad[1] & 0x0f) : (quad[2] & 0x03);
		if (spare) {
			size_t at = qoff[q - 1];
			return fail_at(err, RWD_E_FORMAT, at, "non-canonical final character", s[at]);
		}
		size_t tail = q - 1;
		if (max - len < tail) {
			rwd_error_at(err, 0, 0, (int64_t)n);
			return rwd_errorf(err, RWD_E_LIMIT,
				"base64: decoded data exceeds the limit of %zu bytes", max);
		}
		if (out && !over && cap - len >= tail) {
			out[len] = (uint8_t)(quad[0] << 2 | quad[1] >> 4);
			if (q == 3)
				out[len + 1] = (uint8_t)(quad[1] << 4 | quad[2] >> 2);
		} else if (out) {
			over = 1;
		}
		len += tail;
	}
	if (over)
		return rwd_errorf(err, RWD_E_LIMIT,
			"base64: %zu decoded bytes do not fit the %zu-byte buffer", len, cap);
	*out_len = len;
	return 0;
}

int rwd_base64_decoded_len(const char *in, size_t n, const rwd_base64_params *params,
	size_t *out_len, rwd_error *err)
{
	rwd_base64_params def = rwd_base64_default_params();
	return scan(in, n, params ? params : &def, NULL, 0, out_len, err);
}

int rwd_base64_decode_into(const char *in, size_t n, const rwd_base64_params *params,
	uint8_t *out, size_t cap, size_t *out_len, rwd_error *err)
{
	rwd_base64_params p = params ? *params : rwd_base64_default_params();
	/* one pass: validation and writing together, never past cap */
	return scan(in, n, &p, out, cap, out_len, err);
}

int rwd_base64_decode(const char *in, size_t n, const rwd_base64_params *params,
	rwd_arena *arena, uint8_t **out, size_t *out_len, rwd_error *err)
{
	rwd_base64_params p = params ? *params : rwd_base64_default_params();
	size_t len;
	*out = NULL;
	int r = scan(in, n, &p, NULL, 0, &len, err);
	if (r)
		return r;
	uint8_t *buf = arena ? rwd_arena_alloc(arena, len ? len : 1) : malloc(len ? len : 1);
	if (!buf) {
		if (arena && rwd_arena_over_limit(arena))
			return rwd_errorf(err, RWD_E_LIMIT,
				"base64: %zu decoded bytes exceed the request's memory limit", len);
		return rwd_errorf(err, RWD_E_NOMEM, "base64: out of memory for %zu bytes", len);
	}
	r = scan(in, n, &p, buf, len, out_len, err);
	if (r) { /* cannot happen: the first pass validated */
		if (!arena)
			free(buf);
		return r;
	}
	*out = buf;
	return 0;
}

static int ascii_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* RFC 2045 token characters (for type, subtype and parameter names/values). */
static int is_token_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return 0;
	return !strchr("()<>@,;:\\\"/[]?=", c);
}

int rwd_base64_strip_data_url(const char *in, size_t n, int require_image,
	const char **payload, size_t *payload_n, char *mime, size_t mime_size,
	rwd_error *err)
{
	static const char scheme[] = "data:";
	const size_t ns = sizeof(scheme) - 1;
	if (mime && mime_size)
		mime[0] = '\0';
	*payload = in;
	*payload_n = n;
	if (n < ns)
		return 0;
	for (size_t i = 0; i < ns; i++)
		if (ascii_lower((unsigned char)in[i]) != scheme[i])
			return 0;

	/* data:<type>/<subtype>(;<attr>[=<value>])*,<payload>; only ;base64 accepted. */
	size_t i = ns, type_start = ns, slash = 0;
	while (i < n && is_token_char((unsigned char)in[i]))
		i++;
	if (i == type_start || i >= n || in[i] != '/') {
		rwd_error_at(err, 0, 0, (int64_t)i);
		return rwd_errorf(err, RWD_E_FORMAT,
			"data URL: expected a media type like image/png at byte %zu", i);
	}
	slash = i++;
	size_t sub_start = i;
	while (i < n && is_token_char((unsigned char)in[i]))
		i++;
	if (i == sub_start) {
		rwd_error_at(err, 0, 0, (int64_t)i);
		return rwd_errorf(err, RWD_E_FORMAT, "data URL: empty media subtype at byte %zu", i);
	}
	size_t type_end = i;
	if (type_end - type_start > 127) {
		rwd_error_at(err, 0, 0, (int64_t)type_start);
		return rwd_errorf(err, RWD_E_FORMAT, "data URL: media type longer than 127 bytes");
	}
	int base64 = 0;
	while (i < n && in[i] == ';') {
		size_t a = ++i;
		while (i < n && (is_token_char((unsigned char)in[i]) || in[i] == '='))
			i++;
		if (i - a > 256) {
			rwd_error_at(err, 0, 0, (int64_t)a);
			return rwd_errorf(err, RWD_E_FORMAT, "data URL: parameter longer than 256 bytes");
		}
		if (i - a == 6 && strncasecmp(in + a, "base64", 6) == 0)
			base64 = 1;
		else if (base64) {
			rwd_error_at(err, 0, 0, (int64_t)a);
			return rwd_errorf(err, RWD_E_FORMAT,
				"data URL: ';base64' must be the last parameter (byte %zu)", a);
		}
	}
	if (i >= n || in[i] != ',') {
		rwd_error_at(err, 0, 0, (int64_t)i);
		return rwd_errorf(err, RWD_E_FORMAT, "data URL: expected ',' at byte %zu", i);
	}
	if (!base64) {
		rwd_error_at(err, 0, 0, (int64_t)i);
		return rwd_errorf(err, RWD_E_FORMAT,
			"data URL: only ';base64,' data is accepted (byte %zu)", i);
	}
	if (require_image && !((slash - type_start) == 5 && strncasecmp(in + type_start, "image", 5) == 0)) {
		rwd_error_at(err, 0, 0, (int64_t)type_start);
		return rwd_errorf(err, RWD_E_UNSUPPORTED, "data URL: media type '%.*s' is not an image",
			(int)(type_end - type_start), in + type_start);
	}
	if (mime && mime_size) {
		size_t k = 0;
		for (size_t j = type_start; j < type_end && k + 1 < mime_size; j++)
			mime[k++] = (char)ascii_lower((unsigned char)in[j]);
		mime[k] = '\0';
	}
	*payload = in + i + 1;
	*payload_n = n - i - 1;
	return 0;
}

size_t rwd_base64_encoded_len(size_t n, int url_safe)
{
	if (url_safe)
		return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
	return (n + 2) / 3 * 4;
}

size_t rwd_base64_encode(const uint8_t *in, size_t n, int url_safe, char *out)
{
	const char *abc = url_safe
		? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t k = 0, i = 0;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[k++] = abc[v >> 18 & 63];
		out[k++] = abc[v >> 12 & 63];
		out[k++] = abc[v >> 6 & 63];
		out[k++] = abc[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[k++] = abc[v >> 18 & 63];
		out[k++] = abc[v >> 12 & 63];
		if (!url_safe) {
			out[k++] = '=';
			out[k++] = '=';
		}
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[k++] = abc[v >> 18 & 63];
		out[k++] = abc[v >> 12 & 63];
		out[k++] = abc[v >> 6 & 63];
		if (!url_safe)
			out[k++] = '=';
	}
	out[k] = '\0';
	return k;
}
