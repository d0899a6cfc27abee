/*
 * tests/fuzz/fuzz_oip_binary.c — the Open Inference Protocol binary tensor
 * extension (lib/compat: rwd_compat_oip_binary, then rwd_compat_oip_infer).
 *
 * Input: 2 bytes of Inference-Header-Content-Length (little-endian; 0xffff
 * means the header is absent), then the body (JSON header + raw tensor
 * bytes). Checks that a failure carries a code and a success yields a root
 * with no binary_data_size left, whose inputs parse as OIP tensors.
 */
#include "compat/compat.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const dims[] = {"format", "accuracy"};
	if (size < 2)
		return 0;
	unsigned h = (unsigned)data[0] | (unsigned)data[1] << 8;
	long long hl = h == 0xffff ? -1 : (long long)h;
	rwd_compat_limits lim = {64, 16};
	rwd_error err;
	rwd_error_clear(&err);
	json_t *root = NULL;
	int r = rwd_compat_oip_binary((const char *)data + 2, size - 2, hl, &lim, &root, &err);
	if (r) {
		if (!err.code || root)
			abort();
		return 0;
	}
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(root, "inputs"), i, t)
		if (json_object_get(json_object_get(t, "parameters"), "binary_data_size"))
			abort();
	static const char *const kinds[] = {"rules", "seqcls", "mlp"};
	for (size_t k = 0; k < 3; k++) {
		json_t *items = json_array();
		rwd_compat_oip oip;
		rwd_error_clear(&err);
		r = rwd_compat_oip_infer(root, kinds[k], dims, 2, &lim, items, &oip, &err);
		if (r && !err.code)
			abort();
		if (!r && json_array_size(items) > lim.max_items)
			abort();
		json_decref(items);
	}
	json_decref(root);
	return 0;
}
