/*
 * tests/fuzz/fuzz_image_common.h — shared body of fuzz_png / fuzz_jpeg:
 * decode the input (with the format's magic prepended when missing) under a
 * 1-megapixel limit, once with the defaults and once with compositing and
 * EXIF orientation, and check the decoder's contract.
 */
#ifndef RWD_FUZZ_IMAGE_COMMON_H
#define RWD_FUZZ_IMAGE_COMMON_H

#include "core/arena.h"
#include "image/decode.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void rwd_fuzz_check(const uint8_t *d, size_t n, const rwd_image_decode_params *p, int use_arena)
{
	rwd_arena *a = use_arena ? rwd_arena_create(0, 0) : NULL;
	rwd_image im;
	rwd_error e;
	rwd_error_clear(&e);
	int r = rwd_image_decode(d, n, p, a, &im, &e);
	if (r) {
		if (im.pixels || e.code != r || !e.msg[0])
			abort();
	} else {
		if (!im.pixels || im.w <= 0 || im.h <= 0 || im.stride != (size_t)im.w * 3 ||
		    (uint64_t)im.w * (uint64_t)im.h > p->max_pixels)
			abort();
		/* touch every byte: ASan/MSan see reads of the whole buffer */
		volatile unsigned sum = 0;
		for (size_t i = 0; i < (size_t)im.h * im.stride; i++)
			sum += im.pixels[i];
		(void)sum;
		if (!a)
			rwd_image_free(&im);
	}
	rwd_arena_destroy(a);
}

static void rwd_fuzz_decode_with_magic(const uint8_t *data, size_t size, const uint8_t *magic,
	size_t nmagic)
{
	const uint8_t *d = data;
	uint8_t *buf = NULL;
	size_t n = size;
	if (size < nmagic || memcmp(data, magic, nmagic) != 0) {
		buf = malloc(size + nmagic);
		if (!buf)
			return;
		memcpy(buf, magic, nmagic);
		if (size)
			memcpy(buf + nmagic, data, size);
		d = buf;
		n = size + nmagic;
	}
	rwd_image_decode_params p = rwd_image_decode_default_params();
	p.max_pixels = 1 << 20;
	p.max_jpeg_scans = 100;
	rwd_fuzz_check(d, n, &p, 0);
	p.composite_alpha = 1;
	p.background[1] = 77;
	p.apply_exif_orientation = 1;
	p.gray16_high_byte = 1;
	rwd_fuzz_check(d, n, &p, 1);
	free(buf);
}

#endif
