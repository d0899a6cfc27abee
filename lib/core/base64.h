/*
 * core/base64.h — strict base64 decoding (RFC 4648 §4 standard and §5
 * url-safe alphabets) and `data:` URL unwrapping, for images sent in JSON.
 *
 * Policy (why: clients paste MIME-wrapped output, but anything else is a
 * sign of a wrong field or a truncated upload, so it is an error, not a
 * guess):
 *   - ASCII whitespace (space, \t, \r, \n) between characters is skipped
 *     when params.allow_whitespace is set (the default), else it is an error.
 *   - Padding: a final group of 2 or 3 characters must be padded with '=' to
 *     4 unless params.allow_unpadded is set (default off for the standard
 *     alphabet). '=' is only allowed as 1 or 2 trailing characters of the
 *     last group; nothing but whitespace may follow it.
 *   - Non-canonical encodings (non-zero unused bits in the last group) are
 *     rejected: every byte string has exactly one accepted encoding, modulo
 *     whitespace and the padding option.
 *   - The alphabets are not mixed: '-' and '_' are errors in standard mode,
 *     '+' and '/' in url-safe mode.
 *   - The decoded size is computed exactly and checked against
 *     params.max_out BEFORE any output is allocated (RWD_E_LIMIT).
 * Errors are RWD_E_FORMAT with err->offset set to the byte offset of the
 * offending character in the input given to the function.
 *
 * Thread safety: no shared state; every function is re-entrant.
 */
#ifndef RWD_CORE_BASE64_H
#define RWD_CORE_BASE64_H

#include "core/arena.h"
#include "core/error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct rwd_base64_params {
	int url_safe;         /* 0: A-Z a-z 0-9 + /   1: A-Z a-z 0-9 - _ */
	int allow_whitespace; /* skip ASCII space, tab, CR, LF (default 1) */
	int allow_unpadded;   /* accept a final group without '=' (default 0) */
	size_t max_out;       /* decoded bytes allowed; 0 = no limit (default 64 MiB) */
} rwd_base64_params;

rwd_base64_params rwd_base64_default_params(void);

/*
 * Validate `in[0..n)` and compute its exact decoded length into *out_len,
 * without writing anything. Returns 0, RWD_E_FORMAT (err->offset = the bad
 * character) or RWD_E_LIMIT (decoded size over params->max_out).
 */
int rwd_base64_decoded_len(const char *in, size_t n, const rwd_base64_params *params,
	size_t *out_len, rwd_error *err);

/*
 * Decode into a caller buffer of `cap` bytes, validating and writing in one
 * pass: on any error `out` holds nothing meaningful (a prefix may have been
 * written). RWD_E_FORMAT wins over a size error; RWD_E_LIMIT when the
 * decoded size exceeds cap or params->max_out. *out_len receives the
 * decoded length.
 */
int rwd_base64_decode_into(const char *in, size_t n, const rwd_base64_params *params,
	uint8_t *out, size_t cap, size_t *out_len, rwd_error *err);

/*
 * Decode into a new buffer: from `arena` when non-NULL, else malloc() (the
 * caller frees it). The buffer is sized exactly (at least 1 byte, so an
 * empty input gives a valid pointer and *out_len == 0). On error *out is
 * NULL.
 */
int rwd_base64_decode(const char *in, size_t n, const rwd_base64_params *params,
	rwd_arena *arena, uint8_t **out, size_t *out_len, rwd_error *err);

/*
 * If `in` starts with a `data:` URL prefix (case-insensitive scheme), check
 * it is `data:<type>/<subtype>[;param=value...];base64,` and point
 * *payload and *payload_n at the base64 text after the comma; the media type
 * (without parameters, lower-cased, truncated to mime_size-1) goes to
 * `mime` when non-NULL. Without the prefix, *payload = in, *payload_n = n
 * and mime is "". `offset` of *payload within `in` is payload - in.
 * Errors (RWD_E_FORMAT, with the offset): a data URL that is not base64
 * (percent-encoded data is not accepted), a missing comma, a media type
 * longer than 127 bytes or with characters outside RFC 2045 tokens.
 * If `require_image` is set, the media type must be image/<something>
 * (else RWD_E_UNSUPPORTED).
 */
int rwd_base64_strip_data_url(const char *in, size_t n, int require_image,
	const char **payload, size_t *payload_n, char *mime, size_t mime_size,
	rwd_error *err);

/*
 * Encode n bytes (standard alphabet with padding, or url-safe without
 * padding) into out, which must hold rwd_base64_encoded_len(n, url_safe)+1
 * bytes (NUL-terminated). For tests and clients; returns the length.
 */
size_t rwd_base64_encoded_len(size_t n, int url_safe);
size_t rwd_base64_encode(const uint8_t *in, size_t n, int url_safe, char *out);

#endif
