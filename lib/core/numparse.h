/*
 * core/numparse.h — JSON number tokens to the exact double jansson gives
 * them, without strtod on the common shapes, so a request's float arrays can
 * be read straight from the body bytes (serve/request.c's fast path).
 *
 * "The double jansson gives" is the contract, bit for bit:
 *   - an integer token (no '.', no exponent) is strtoll's value converted to
 *     double (so "-0" is +0.0, and 2^53+1 rounds as the int→double cast does);
 *     beyond int64 jansson fails ("too big integer"): RWD_E_LIMIT here;
 *   - any other token is strtod's correctly rounded double ("-0.0" is -0.0,
 *     denormals included); an overflow to ±inf is a jansson error
 *     ("real number overflow"): RWD_E_LIMIT here.
 * A float32 input is then (float)d, as the jansson path converts it.
 *
 * How: up to 19 significant digits go into a 64-bit significand w with a
 * decimal exponent q. Exact cases are one IEEE operation (w < 2^53 and
 * |q| <= 22, Clinger's fast path); longer significands with -21 <= q < 0 are
 * divided exactly in integers (one 128/64-bit divq down to 10^-19, a 128-bit
 * division below; quotient and remainder give the round, guard and sticky
 * bits), with 0 <= q <= 19 multiplied exactly; all
 * else (20+ significant digits, far exponents) goes to strtod on a copy of
 * the token. tests/parity/test_numparse.py checks bit-exactness against
 * Python's float() on millions of strings.
 *
 * Thread safety: pure functions (strtod is called only in the C locale's
 * number syntax, which JSON's is a subset of; the library never sets the
 * locale).
 */
#ifndef RWD_CORE_NUMPARSE_H
#define RWD_CORE_NUMPARSE_H

#include <stddef.h>

/*
 * Parse the JSON number that starts at s[0] (at most n bytes are read): the
 * grammar is RFC 8259's, -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?,
 * taking the longest match. On success *used is its length and *out the
 * double (see above), and 0 is returned; RWD_E_FORMAT when no number starts
 * there (or "01", "1.", "1e" — what jansson's lexer refuses; whatever
 * follows the token is the caller's business), RWD_E_LIMIT when jansson
 * would refuse its value, RWD_E_NOMEM when a very long token could not be
 * copied for strtod.
 */
int rwd_numparse_json(const char *s, size_t n, double *out, size_t *used);

#endif
