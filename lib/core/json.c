/* core/json.c — see json.h. */
#include "core/json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int rwd_json_number(const json_t *obj, const char *key, int required, double def, double min,
	double max, double *out, rwd_error *err)
{
	json_t *v = json_object_get(obj, key);
	if (!v || json_is_null(v)) {
		if (required) {
			rwd_error_where(err, NULL, key);
			return rwd_errorf(err, RWD_E_INVALID, "\"%s\" is missing", key);
		}
		*out = def;
		return 0;
	}
	if (!json_is_number(v)) {
		rwd_error_where(err, NULL, key);
		return rwd_errorf(err, RWD_E_INVALID, "\"%s\" must be a number", key);
	}
	double x = json_number_value(v);
	if (!(x >= min && x <= max)) { /* also refuses NaN */
		rwd_error_where(err, NULL, key);
		return rwd_errorf(err, RWD_E_INVALID, "\"%s\" is %g, outside [%g, %g]", key, x, min, max);
	}
	*out = x;
	return 0;
}

int rwd_json_bool(const json_t *obj, const char *key, int def, int *out, rwd_error *err)
{
	json_t *v = json_object_get(obj, key);
	if (!v || json_is_null(v)) {
		*out = def;
		return 0;
	}
	if (!json_is_boolean(v)) {
		rwd_error_where(err, NULL, key);
		return rwd_errorf(err, RWD_E_INVALID, "\"%s\" must be true or false", key);
	}
	*out = json_is_true(v);
	return 0;
}

/* json_dump_callback's sink: a buffer from plain malloc/realloc, doubling. */
typedef struct dump_buf {
	char *p;
	size_t n, cap;
} dump_buf;

static int dump_append(const char *buf, size_t size, void *data)
{
	dump_buf *d = data;
	if (size + 1 > d->cap - d->n) {
		size_t cap = d->cap ? d->cap : 256;
		while (size + 1 > cap - d->n) {
			if (cap > SIZE_MAX / 2)
				return -1;
			cap *= 2;
		}
		char *p = realloc(d->p, cap);
		if (!p)
			return -1;
		d->p = p;
		d->cap = cap;
	}
	memcpy(d->p + d->n, buf, size);
	d->n += size;
	return 0;
}

char *rwd_json_dumps(const json_t *json, size_t flags)
{
	/* one pass, as json_dumps, into memory of our own */
	dump_buf d = {NULL, 0, 0};
	if (json_dump_callback(json, dump_append, &d, flags) != 0 || !d.p) {
		free(d.p);
		return NULL;
	}
	d.p[d.n] = '\0';
	return d.p;
}
