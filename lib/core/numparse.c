/* core/numparse.c — see numparse.h. */
#include "core/numparse.h"

#include "core/error.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

__extension__ typedef unsigned __int128 u128;

/* 10^0 .. 10^22 are exact doubles (Clinger's fast path). */
static const double pow10_d[23] = {
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

#define P10_MAX 21 /* 10^21 < 2^70: a 128-bit quotient keeps >= 57 bits */

#define E19 ((u128)10000000000000000000ull)
static const u128 pow10_u128[P10_MAX + 1] = {
	1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull, 10000000ull, 100000000ull,
	1000000000ull, 10000000000ull, 100000000000ull, 1000000000000ull, 10000000000000ull,
	100000000000000ull, 1000000000000000ull, 10000000000000000ull, 100000000000000000ull,
	1000000000000000000ull, 10000000000000000000ull, E19 * 10, E19 * 100,
};

static int bits128(u128 x)
{
	uint64_t hi = (uint64_t)(x >> 64);
	if (hi)
		return 128 - __builtin_clzll(hi);
	uint64_t lo = (uint64_t)x;
	return lo ? 64 - __builtin_clzll(lo) : 0;
}

/*
 * The double nearest to (x + frac) * 2^e2, ties to even, where x has at
 * least 54 significant bits and frac (0 <= frac < 1) is known only through
 * `sticky` (non-zero when frac > 0). The result must be a normal double,
 * which the callers' ranges guarantee.
 */
static double round_to_double(u128 x, int sticky, int e2)
{
	int b = bits128(x);
	int sh = b - 53;
	uint64_t m = (uint64_t)(x >> sh);
	int rb = (int)((x >> (sh - 1)) & 1);
	u128 low = x & (((u128)1 << (sh - 1)) - 1);
	if (rb && (low != 0 || sticky || (m & 1)))
		m++;
	if (m >> 53) {
		m >>= 1;
		sh++;
	}
	int e = sh + e2; /* value = m * 2^e, m in [2^52, 2^53) */
	uint64_t u = ((uint64_t)(e + 52 + 1023) << 52) | (m & ((1ull << 52) - 1));
	double d;
	memcpy(&d, &u, sizeof(d));
	return d;
}

/* (hi:lo) / d and its remainder; requires hi < d (the quotient fits 64 bits). */
static uint64_t div128_64(uint64_t hi, uint64_t lo, uint64_t d, uint64_t *rem)
{
#if defined(__x86_64__)
	uint64_t q, r;
	__asm__("divq %4" : "=a"(q), "=d"(r) : "a"(lo), "d"(hi), "rm"(d));
	*rem = r;
	return q;
#else
	u128 n = ((u128)hi << 64) | lo;
	*rem = (uint64_t)(n % d);
	return (uint64_t)(n / d);
#endif
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int via_strtod(const char *s, size_t n, double *out)
{
	char small[64];
	char *buf = n < sizeof(small) ? small : malloc(n + 1);
	if (!buf)
		return RWD_E_NOMEM;
	memcpy(buf, s, n);
	buf[n] = '\0';
	errno = 0;
	double d = strtod(buf, NULL);
	int overflow = (d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE;
	if (buf != small)
		free(buf);
	if (overflow)
		return RWD_E_LIMIT;
	*out = d;
	return 0;
}

int rwd_numparse_json(const char *s, size_t n, double *out, size_t *used)
{
	size_t i = 0;
	int neg = 0;
	if (i < n && s[i] == '-') {
		neg = 1;
		i++;
	}
	if (i >= n)
		return RWD_E_FORMAT;
	size_t int_start = i;
	if (s[i] == '0') {
		i++;
		if (i < n && is_digit(s[i]))
			return RWD_E_FORMAT; /* a leading zero */
	} else if (s[i] >= '1' && s[i] <= '9') {
		while (i < n && is_digit(s[i]))
			i++;
	} else {
		return RWD_E_FORMAT;
	}
	size_t int_end = i, frac_start = i, frac_end = i;
	int real = 0;
	if (i < n && s[i] == '.') {
		frac_start = ++i;
		while (i < n && is_digit(s[i]))
			i++;
		if (i == frac_start)
			return RWD_E_FORMAT;
		frac_end = i;
		real = 1;
	}
	long exp10 = 0;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		int eneg = 0;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			eneg = s[i++] == '-';
		size_t es = i;
		while (i < n && is_digit(s[i])) {
			if (exp10 < 1000000)
				exp10 = exp10 * 10 + (s[i] - '0');
			i++;
		}
		if (i == es)
			return RWD_E_FORMAT;
		if (eneg)
			exp10 = -exp10;
		real = 1;
	}
	*used = i;

	if (!real) {
		/* strtoll, then (double): what json_number_value gives an integer */
		if (int_end - int_start > 19)
			return RWD_E_LIMIT;
		uint64_t v = 0;
		for (size_t k = int_start; k < int_end; k++)
			v = v * 10 + (uint64_t)(s[k] - '0');
		if (v > (uint64_t)INT64_MAX + (uint64_t)neg)
			return RWD_E_LIMIT;
		int64_t iv = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
		*out = (double)iv;
		return 0;
	}

	/* significand w (up to 19 significant digits) and decimal exponent q */
	uint64_t w = 0;
	int nd = 0, truncated = 0;
	long q = exp10;
	for (size_t k = int_start; k < int_end; k++) {
		int d = s[k] - '0';
		if (nd < 19) {
			w = w * 10 + (uint64_t)d;
			if (w)
				nd++;
		} else {
			q++;
			truncated |= d != 0;
		}
	}
	for (size_t k = frac_start; k < frac_end; k++) {
		int d = s[k] - '0';
		if (nd < 19) {
			w = w * 10 + (uint64_t)d;
			q--;
			if (w)
				nd++;
		} else {
			truncated |= d != 0;
		}
	}
	double d;
	if (truncated) {
		return via_strtod(s, i, out);
	} else if (w == 0) {
		d = 0.0;
	} else if (w < (1ull << 53) && q >= -22 && q <= 22) {
		/* both operands exact: one correctly rounded operation */
		d = q < 0 ? (double)w / pow10_d[-q] : (double)w * pow10_d[q];
	} else if (q < 0 && q >= -19) {
		/* w / 10^-q with one 128/64 division: w << sh < 10^-q * 2^64, so the
		 * quotient fits 64 bits and still has >= 63 of them */
		uint64_t den = (uint64_t)pow10_u128[-q];
		int sh = 63 + (64 - __builtin_clzll(den)) - (64 - __builtin_clzll(w));
		u128 num = (u128)w << sh;
		uint64_t rem;
		uint64_t quo = div128_64((uint64_t)(num >> 64), (uint64_t)num, den, &rem);
		d = round_to_double(quo, rem != 0, -sh);
	} else if (q < 0 && q >= -P10_MAX) {
		/* w / 10^-q: exact quotient and remainder of (w << s) / 10^-q */
		int sh = __builtin_clzll(w) + 64;
		u128 num = (u128)w << sh;
		u128 den = pow10_u128[-q];
		u128 quo = num / den;
		u128 rem = num - quo * den;
		d = round_to_double(quo, rem != 0, -sh);
	} else if (q >= 0 && q <= 19) {
		u128 p = (u128)w * pow10_u128[q];
		d = bits128(p) <= 53 ? (double)(uint64_t)p : round_to_double(p, 0, 0);
	} else {
		return via_strtod(s, i, out);
	}
	*out = neg ? -d : d;
	return 0;
}
