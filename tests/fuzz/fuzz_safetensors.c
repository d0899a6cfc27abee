/*
 * tests/fuzz/fuzz_safetensors.c — lib/tensor: the safetensors header parser
 * and tensor table, on a whole file held in memory.
 *
 * Each input is parsed twice (F16/BF16 converted, and kept raw). A refusal
 * must leave no handle and a filled error; an accepted file must describe
 * tensors that lie inside the input, whose byte counts match shape x dtype,
 * that cover the data section exactly, and whose every byte and float can be
 * read (ASan checks the reads).
 *
 * Run (clang, libFuzzer), e.g. for a minute:
 *   CC=clang meson setup build-fuzz -Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false
 *   ninja -C build-fuzz tests/fuzz/fuzz-safetensors
 *   cp -r tests/fuzz/corpus/safetensors /tmp/st-corpus
 *   build-fuzz/tests/fuzz/fuzz-safetensors -max_total_time=60 -max_len=4096 \
 *       -dict=tests/fuzz/safetensors.dict /tmp/st-corpus
 * The seed corpus is written by tests/fuzz/make_safetensors_corpus.py; files
 * named found-* are libFuzzer finds that added coverage.
 */
#include "tensor/safetensors.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned sink;

static void check_accepted(const rwd_weights *w, const uint8_t *data, size_t size, int converted)
{
	uint64_t total = 0;
	unsigned acc = 0;
	size_t n = rwd_weights_count(w);
	for (size_t i = 0; i < n; i++) {
		const rwd_tensor *t = rwd_weights_at(w, i);
		if (!t || !t->name || !t->shape || t->ndim < 0 || t->ndim > RWD_TENSOR_MAX_DIMS)
			abort();
		if (i && strcmp(rwd_weights_at(w, i - 1)->name, t->name) >= 0)
			abort();
		if (rwd_weights_find(w, t->name) != t)
			abort();
		int64_t numel = 1;
		for (int d = 0; d < t->ndim; d++) {
			if (t->shape[d] < 0)
				abort();
			numel *= t->shape[d];
		}
		if (numel != t->numel)
			abort();
		if ((uint64_t)t->numel * rwd_dtype_bits(t->dtype) != (uint64_t)t->nbytes * 8)
			abort();
		/* in place tensors must lie inside the input */
		const uint8_t *p = t->data;
		if (p >= data && p < data + size && t->nbytes > (size_t)(data + size - p))
			abort();
		for (size_t k = 0; k < t->nbytes; k++)
			acc += p[k];
		const float *f;
		int rc = rwd_weights_get_f32(w, t->name, t->ndim, t->shape, &f, NULL);
		int want_f32 = t->dtype == RWD_DTYPE_F32 ||
			(converted && (t->dtype == RWD_DTYPE_F16 || t->dtype == RWD_DTYPE_BF16));
		if ((rc == 0) != want_f32 || (t->f32 != NULL) != want_f32)
			abort();
		if (rc == 0) {
			if ((uintptr_t)f % 4)
				abort();
			for (int64_t k = 0; k < t->numel; k++) {
				uint32_t u;
				memcpy(&u, &f[k], 4);
				acc += u;
			}
		}
		total += t->nbytes;
	}
	if (total != rwd_weights_total_bytes(w) || total > size)
		abort();
	sink = acc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	for (int converted = 0; converted < 2; converted++) {
		rwd_weights_params p = rwd_weights_default_params();
		p.convert_half = converted;
		rwd_weights *w = (rwd_weights *)&p; /* must be reset */
		rwd_error err;
		int rc = rwd_safetensors_parse(data, size, "fuzz.safetensors", &p, &w, &err);
		if (rc) {
			if (w || rc != err.code || rc >= 0 || !err.msg[0] ||
				strcmp(err.file, "fuzz.safetensors") != 0)
				abort();
			continue;
		}
		if (!w)
			abort();
		check_accepted(w, data, size, converted);
		rwd_weights_free(w);
	}
	return 0;
}
