/* daemon/reply.c — error replies and the RWD_E_* → HTTP mapping (see reply.h). */
#include "reply.h"

#include <stdio.h>
#include <string.h>

/* A media error: the field names an image/video input, or a decoder said so. */
static int is_media(const rwd_error *err)
{
	const char *f = strrchr(err->object, '.');
	f = f ? f + 1 : err->object;
	if (strncmp(f, "items[", 6) == 0)
		f = "";
	if (strstr(f, "image") || strstr(f, "frames") || strstr(f, "video"))
		return 1;
	static const char *const pre[] = {"image", "png", "jpeg", "data URL", "gif", "webp"};
	for (size_t i = 0; i < sizeof(pre) / sizeof(pre[0]); i++)
		if (strncmp(err->msg, pre[i], strlen(pre[i])) == 0)
			return 1;
	return 0;
}

int rwd_reply_status_of(const rwd_error *err)
{
	switch (err->code ? err->code : RWD_E_INTERNAL) {
	case RWD_E_FORMAT:
	case RWD_E_INVALID:
	case RWD_E_OVERFLOW:
		return 400;
	case RWD_E_NOTFOUND:
		return 404;
	case RWD_E_LIMIT:
		return 413;
	case RWD_E_UNSUPPORTED:
		return is_media(err) ? 415 : 422;
	case RWD_E_UNPROCESSABLE:
		return 422;
	case RWD_E_FULL:
		return 429;
	case RWD_E_STATE:
	case RWD_E_NOMEM:
	case RWD_E_CANCELLED:
		return 503;
	case RWD_E_TIMEOUT:
		return 504;
	default:
		return 500;
	}
}

const char *rwd_reply_code_of(const rwd_error *err)
{
	switch (err->code ? err->code : RWD_E_INTERNAL) {
	case RWD_E_FORMAT:
		return "invalid_json";
	case RWD_E_INVALID:
	case RWD_E_OVERFLOW:
		return "invalid_request";
	case RWD_E_NOTFOUND:
		return "not_found";
	case RWD_E_LIMIT:
		return "too_large";
	case RWD_E_UNSUPPORTED:
		return is_media(err) ? "unsupported_media_type" : "unprocessable";
	case RWD_E_UNPROCESSABLE:
		return "unprocessable";
	case RWD_E_FULL:
		return "queue_full";
	case RWD_E_STATE:
		return "unavailable";
	case RWD_E_NOMEM:
		return "out_of_memory";
	case RWD_E_CANCELLED:
		return "cancelled";
	case RWD_E_TIMEOUT:
		return "deadline_exceeded";
	default:
		return "internal";
	}
}

void rwd_reply_error(rwd_reply *r, int status, const char *code, const char *message,
	const char *field, int line, int column)
{
	json_decref(r->json);
	r->json = NULL;
	r->status = status;
	if (r->oip_errors) {
		char full[RWD_ERROR_MSG_MAX + 2 * RWD_ERROR_OBJECT_MAX + 64];
		char at[48] = "";
		if (line > 0)
			snprintf(at, sizeof(at), " (line %d, column %d)", line, column);
		snprintf(full, sizeof(full), "%s%s%s%s", field && *field ? field : "", field && *field ? ": " : "",
			message ? message : "", at);
		r->json = json_pack("{ss}", "error", full);
		return;
	}
	json_t *e = json_pack("{ss ss}", "code", code, "message", message ? message : "");
	if (e && field && *field)
		json_object_set_new(e, "field", json_string(field));
	if (e && line > 0) {
		json_object_set_new(e, "line", json_integer(line));
		json_object_set_new(e, "column", json_integer(column));
	}
	r->json = e ? json_pack("{so}", "error", e) : NULL;
}

void rwd_reply_error_from(rwd_reply *r, const rwd_error *err)
{
	rwd_reply_error(r, rwd_reply_status_of(err), rwd_reply_code_of(err),
		err->msg[0] ? err->msg : rwd_strerror(err->code ? err->code : RWD_E_INTERNAL),
		err->object, err->line, err->column);
	if (err->code == RWD_E_FULL)
		r->retry_after_s = 1;
}
