/*
 * tests/fuzz/fuzz_compat.c — drop-in protocol bodies → native items.
 *
 * Drives lib/compat/compat.c as daemon/api_compat.c does: the first byte
 * picks the protocol (OpenRLHF /get_reward, vLLM/SGLang, OIP v2 infer) and
 * the model kind (seqcls, rules, mlp, clip); the rest is the body. Checks
 * that every failure carries a code and every success yields items that
 * are objects, and that remapping the field of an error stays in bounds.
 */
#include "compat/compat.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const kinds[] = {"seqcls", "rules", "mlp", "clip"};
	static const char *const dims[] = {"format", "accuracy", "quality"};
	if (size < 1)
		return 0;
	int proto = data[0] % 3;
	const char *kind = kinds[(data[0] / 3) % 4];
	rwd_compat_limits lim = {64, 16};
	rwd_error err;
	rwd_error_clear(&err);
	json_t *root = NULL;
	int r = rwd_compat_load((const char *)data + 1, size - 1, &lim, &root, &err);
	if (r) {
		if (!err.code)
			abort();
		return 0;
	}
	json_t *items = json_array();
	rwd_compat_oip oip;
	rwd_compat_vllm_req vreq;
	r = proto == RWD_COMPAT_GET_REWARD ? rwd_compat_get_reward(root, kind, &lim, items, &err) :
		proto == RWD_COMPAT_OIP ? rwd_compat_oip_infer(root, kind, dims, 3, &lim, items, &oip, &err) :
		rwd_compat_vllm(root, kind, &lim, (data[0] & 0x80) != 0, items, &vreq, &err);
	if (r) {
		if (!err.code)
			abort();
	} else {
		if (json_array_size(items) > lim.max_items)
			abort();
		size_t i;
		json_t *it;
		json_array_foreach(items, i, it)
			if (!json_is_object(it))
				abort();
		if (proto == RWD_COMPAT_OIP && (oip.n_outputs == 0 || oip.n_outputs > RWD_COMPAT_MAX_OUTPUTS))
			abort();
	}
	char field[RWD_ERROR_OBJECT_MAX];
	snprintf(field, sizeof(field), "items[%zu].%.64s", json_array_size(items), r ? err.object : "label");
	rwd_compat_remap_field(proto, field, sizeof(field));
	if (strlen(field) >= sizeof(field))
		abort();
	json_decref(items);
	json_decref(root);
	return 0;
}
