/* core/json.c — see json.h. */
#include "core/json.h"

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
