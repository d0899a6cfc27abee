/* core/json.c — see json.h. */
#include "core/json.h"

#include <stdlib.h>

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

char *rwd_json_dumps(const json_t *json, size_t flags)
{
	size_t n = json_dumpb(json, NULL, 0, flags);
	if (n == 0)
		return NULL;
	char *buf = malloc(n + 1);
	if (!buf)
		return NULL;
	/* the same value, so the same length (json_dumpb is deterministic) */
	if (json_dumpb(json, buf, n, flags) != n) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}
