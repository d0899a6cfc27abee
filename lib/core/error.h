/*
 * core/error.h — status codes and the caller-owned error record.
 *
 * Every fallible function in lib/ returns 0 on success or a negative
 * RWD_E_* code, and (when it parses untrusted bytes) fills an optional
 * rwd_error that says what went wrong and where: the file, the object inside
 * it (tensor name, JSON field, item index), and a JSON line/column or byte
 * offset when those are known. lib/ never logs: the caller decides whether the
 * record becomes a log line or an HTTP error body.
 *
 * Thread safety: the functions here touch only the record passed in.
 */
#ifndef RWD_CORE_ERROR_H
#define RWD_CORE_ERROR_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define RWD_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define RWD_WARN_UNUSED __attribute__((warn_unused_result))
#else
#define RWD_PRINTF(f, a)
#define RWD_WARN_UNUSED
#endif

enum rwd_status {
	RWD_OK = 0,
	RWD_E_NOMEM = -1,        /* allocation failed */
	RWD_E_IO = -2,           /* open/read/mmap failed (errno in the message) */
	RWD_E_FORMAT = -3,       /* malformed bytes: bad JSON, corrupt PNG, lying offsets */
	RWD_E_INVALID = -4,      /* well-formed but invalid: wrong type, bad value */
	RWD_E_LIMIT = -5,        /* a configured size limit was exceeded */
	RWD_E_UNSUPPORTED = -6,  /* valid but not supported (dtype, image format, arch) */
	RWD_E_NOTFOUND = -7,     /* missing file, tensor, model or key */
	RWD_E_OVERFLOW = -8,     /* arithmetic overflow in sizes or shapes */
	RWD_E_FULL = -9,         /* queue full: retry later */
	RWD_E_TIMEOUT = -10,     /* deadline passed */
	RWD_E_STATE = -11,       /* wrong state: draining, not ready, already loaded */
	RWD_E_CANCELLED = -12,   /* work dropped because its requester went away */
	RWD_E_UNPROCESSABLE = -13, /* semantically impossible, e.g. too many tokens */
	RWD_E_INTERNAL = -14,    /* a bug: an invariant did not hold */
	RWD_E_COUNT_ = 15        /* number of codes, for tables */
};

/* Sizes chosen so a record fits comfortably on the stack of any caller. */
#define RWD_ERROR_MSG_MAX 256
#define RWD_ERROR_FILE_MAX 256
#define RWD_ERROR_OBJECT_MAX 128

typedef struct rwd_error {
	int code;                          /* an RWD_E_* value, 0 when clear */
	char msg[RWD_ERROR_MSG_MAX];       /* what went wrong, a full sentence fragment */
	char file[RWD_ERROR_FILE_MAX];     /* where: file path, or "" */
	char object[RWD_ERROR_OBJECT_MAX]; /* where inside: tensor, field, item; or "" */
	int line, column;                  /* JSON text position (1-based), 0 if unknown */
	int64_t offset;                    /* byte offset in the input, -1 if unknown */
} rwd_error;

/* Reset a record to "no error". Accepts NULL. */
void rwd_error_clear(rwd_error *err);

/*
 * Record an error and return `code` so callers can write
 * `return rwd_errorf(err, RWD_E_FORMAT, "...")`. `err` may be NULL (then only
 * the code is returned). Keeps `file`/`object`/position fields already set
 * unless they are filled later with rwd_error_where()/rwd_error_at().
 */
int rwd_errorf(rwd_error *err, int code, const char *fmt, ...) RWD_PRINTF(3, 4);

/* Set where the error happened. NULL strings leave the field unchanged. */
void rwd_error_where(rwd_error *err, const char *file, const char *object);

/* Set the text position (line/column 1-based, offset in bytes; -1/0 = unknown). */
void rwd_error_at(rwd_error *err, int line, int column, int64_t offset);

/*
 * Format "file: object: msg (line L, column C)" into buf (always terminated).
 * Returns buf, for direct use in log calls.
 */
const char *rwd_error_format(const rwd_error *err, char *buf, size_t size);

/* A stable lower-case name for a status code ("format", "limit", ...). */
const char *rwd_strerror(int code);

#endif
