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

/*
 * json_dumps() into memory from plain malloc(): free it with free().
 *
 * Why not json_dumps: the daemon routes jansson's allocations through a
 * memory budget (json_set_alloc_funcs), and json_dumps's result comes from
 * that allocator, so a plain free() of it (MHD freeing a reply buffer, or
 * any caller's free) released nothing and the budget leaked the text's
 * size on every request. This writes with json_dump_callback into a
 * buffer of its own, in one pass. Returns NULL on failure (as json_dumps) or out of memory.
 */
char *rwd_json_dumps(const json_t *json, size_t flags);

#endif
