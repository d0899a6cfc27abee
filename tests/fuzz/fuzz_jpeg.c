/*
 * tests/fuzz/fuzz_jpeg.c — lib/image/decode's JPEG path (libjpeg-turbo
 * behind our longjmp error manager and in-memory source, the scan limit,
 * CMYK/YCCK conversion, EXIF orientation). Inputs that do not start with
 * SOI get it prepended. Same invariants as fuzz_png.
 */
#include "fuzz_image_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t magic[2] = {0xff, 0xd8};
	rwd_fuzz_decode_with_magic(data, size, magic, sizeof(magic));
	return 0;
}
