/*
 * daemon/reply.h — what a route answers, independent of the HTTP library:
 * the reply record http.c sends, error bodies, and the one mapping from an
 * RWD_E_* code (with its error record) to an HTTP status and error code.
 * It depends on nothing else in daemon/.
 *
 * Error bodies are {"error": {code, message, field?, line?, column?}};
 * a reply with `oip_errors` set (the Open Inference Protocol routes, /v2/)
 * takes OIP's {"error": "<field>: <message>"} instead, whoever fills it.
 */
#ifndef RWD_DAEMON_REPLY_H
#define RWD_DAEMON_REPLY_H

#include "core/error.h"

#include <jansson.h>
#include <stddef.h>

typedef struct rwd_reply {
	int status;
	json_t *json;              /* body (owned), or */
	char *text;                /* malloc'd text body */
	size_t text_len;
	const char *content_type;  /* for text */
	unsigned retry_after_s;    /* > 0: a Retry-After header */
	const char *allow;         /* for 405: the Allow header */
	int www_authenticate;      /* 401: add WWW-Authenticate: Bearer */
	int oip_errors;            /* error bodies in OIP's shape (set by the /v2/ routes) */
	char timing[128];          /* non-empty: a Server-Timing header */
	/* > 0: an Inference-Header-Content-Length header (an OIP binary reply in
	 * text[0..text_len): the JSON header is its first infer_header_length bytes) */
	size_t infer_header_length;
} rwd_reply;

/*
 * The HTTP status and error code of an error record (err->code; 0 counts
 * as RWD_E_INTERNAL). RWD_E_UNSUPPORTED is 415 unsupported_media_type only
 * for a media error (an image field, or a decoder's message); any other
 * refusal (a chat template or tokenizer that cannot take the input) is 422
 * unprocessable: the request's Content-Type was fine.
 */
int rwd_reply_status_of(const rwd_error *err);
const char *rwd_reply_code_of(const rwd_error *err);

/* Fill an error reply (replacing any body); field, line/column optional (NULL, 0). */
void rwd_reply_error(rwd_reply *r, int status, const char *code, const char *message,
	const char *field, int line, int column);

/* An error reply from an error record (status and code from rwd_reply_*_of; Retry-After for FULL). */
void rwd_reply_error_from(rwd_reply *r, const rwd_error *err);

#endif
