/* core/error.c — see error.h. */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void rwd_error_clear(rwd_error *err)
{
	if (!err)
		return;
	memset(err, 0, sizeof(*err));
	err->offset = -1;
}

int rwd_errorf(rwd_error *err, int code, const char *fmt, ...)
{
	if (!err)
		return code;
	err->code = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

void rwd_error_where(rwd_error *err, const char *file, const char *object)
{
	if (!err)
		return;
	if (file)
		snprintf(err->file, sizeof(err->file), "%s", file);
	if (object)
		snprintf(err->object, sizeof(err->object), "%s", object);
}

void rwd_error_at(rwd_error *err, int line, int column, int64_t offset)
{
	if (!err)
		return;
	err->line = line;
	err->column = column;
	err->offset = offset;
}

const char *rwd_error_format(const rwd_error *err, char *buf, size_t size)
{
	if (!buf || size == 0)
		return "";
	if (!err) {
		snprintf(buf, size, "unknown error");
		return buf;
	}
	size_t n = 0;
	int w;
#define APPEND(...)                                                   \
	do {                                                          \
		w = snprintf(buf + n, n < size ? size - n : 0, __VA_ARGS__); \
		if (w > 0)                                            \
			n += (size_t)w;                               \
	} while (0)
	if (err->file[0])
		APPEND("%s: ", err->file);
	if (err->object[0])
		APPEND("%s: ", err->object);
	APPEND("%s", err->msg[0] ? err->msg : rwd_strerror(err->code));
	if (err->line > 0)
		APPEND(" (line %d, column %d)", err->line, err->column);
	else if (err->offset >= 0)
		APPEND(" (at byte %lld)", (long long)err->offset);
#undef APPEND
	return buf;
}

const char *rwd_strerror(int code)
{
	static const char *const names[RWD_E_COUNT_] = {
		[0] = "ok",
		[1] = "out of memory",
		[2] = "i/o error",
		[3] = "malformed input",
		[4] = "invalid input",
		[5] = "limit exceeded",
		[6] = "unsupported",
		[7] = "not found",
		[8] = "size overflow",
		[9] = "queue full",
		[10] = "deadline exceeded",
		[11] = "wrong state",
		[12] = "cancelled",
		[13] = "unprocessable",
		[14] = "internal error",
	};
	int i = -code;
	if (i < 0 || i >= RWD_E_COUNT_)
		return "unknown error";
	return names[i];
}
