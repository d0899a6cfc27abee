/*
 * core/json.h — reading typed options out of a JSON object (config.json,
 * preprocessor_config.json, kind options) with errors that name the key.
 *
 * A missing or null key takes the default (or is an error when required);
 * a wrong type or a value outside [min, max] is RWD_E_INVALID with
 * err->object set to the key. Thread safety: pure functions.
 */
#ifndef RWD_CORE_JSON_H
#define RWD_CORE_JSON_H

#include "core/error.h"

#include <jansson.h>

int rwd_json_number(const json_t *obj, const char *key, int required, double def, double min,
	double max, double *out, rwd_error *err);

int rwd_json_bool(const json_t *obj, const char *key, int def, int *out, rwd_error *err);

#endif
