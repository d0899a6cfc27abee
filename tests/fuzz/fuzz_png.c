/*
 * tests/fuzz/fuzz_png.c — lib/image/decode's PNG path (libpng behind our
 * setjmp error manager, the IHDR pre-check, 16-bit/palette/tRNS/Adam7
 * transforms, compositing and EXIF orientation). Inputs that do not start
 * with the PNG signature get it prepended so the fuzzer explores chunks,
 * not magic bytes. Invariants: success gives a buffer within the pixel
 * limit, failure gives an error code and message and no buffer.
 */
#include "fuzz_image_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
	rwd_fuzz_decode_with_magic(data, size, magic, sizeof(magic));
	return 0;
}
