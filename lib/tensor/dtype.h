/*
 * tensor/dtype.h — element types of safetensors files and exact conversions
 * of half-precision rows to float32.
 *
 * The enum names every dtype the safetensors format defines (the reference
 * reader's `Dtype`, reference/models-and-formats.md §1.3), so a checkpoint
 * carrying, say, an F8 or U16 buffer still opens: only asking for such a
 * tensor as float32 fails, with RWD_E_UNSUPPORTED. The numeric code only
 * consumes F32, and F16/BF16 through the converters below.
 *
 * Conversions are exact (every F16 and BF16 value is representable in F32):
 * F16 subnormals become normal F32 values, infinities stay infinities, NaNs
 * keep their sign and payload and come out quiet, as x86 F16C and PyTorch
 * convert them. Sources are little-endian byte rows that may be unaligned.
 *
 * Thread safety: everything here is pure.
 */
#ifndef RWD_TENSOR_DTYPE_H
#define RWD_TENSOR_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum rwd_dtype {
	RWD_DTYPE_INVALID = 0,
	RWD_DTYPE_BOOL,
	RWD_DTYPE_F4,
	RWD_DTYPE_F6_E2M3,
	RWD_DTYPE_F6_E3M2,
	RWD_DTYPE_U8,
	RWD_DTYPE_I8,
	RWD_DTYPE_F8_E5M2,
	RWD_DTYPE_F8_E4M3,
	RWD_DTYPE_F8_E8M0,
	RWD_DTYPE_F8_E4M3FNUZ,
	RWD_DTYPE_F8_E5M2FNUZ,
	RWD_DTYPE_I16,
	RWD_DTYPE_U16,
	RWD_DTYPE_F16,
	RWD_DTYPE_BF16,
	RWD_DTYPE_I32,
	RWD_DTYPE_U32,
	RWD_DTYPE_F32,
	RWD_DTYPE_C64,
	RWD_DTYPE_F64,
	RWD_DTYPE_I64,
	RWD_DTYPE_U64,
	RWD_DTYPE_COUNT_
} rwd_dtype;

/* The format's name ("F32", "BF16", ...), or "INVALID" for an out-of-range value. */
const char *rwd_dtype_name(rwd_dtype dt);

/* Parse a format name (exact, case-sensitive). RWD_DTYPE_INVALID if unknown. */
rwd_dtype rwd_dtype_from_name(const char *name);

/* Bits per element (4 for F4, 6 for F6_*); 0 for INVALID. */
unsigned rwd_dtype_bits(rwd_dtype dt);

/* Bytes per element, or 0 for INVALID and the sub-byte F4/F6_* types. */
size_t rwd_dtype_size(rwd_dtype dt);

/* Non-zero for the dtypes that can be read as float32: F32, F16, BF16. */
int rwd_dtype_is_f32_convertible(rwd_dtype dt);

/* One value: raw IEEE half / bfloat16 bits to float. */
float rwd_f16_to_f32(uint16_t h);
float rwd_bf16_to_f32(uint16_t b);

/*
 * Convert n little-endian values at src (any alignment, 2*n bytes) into
 * dst[n]. src and dst must not overlap.
 */
void rwd_dtype_f16_to_f32_row(const void *src, float *dst, size_t n);
void rwd_dtype_bf16_to_f32_row(const void *src, float *dst, size_t n);

#endif
