/* tensor/dtype.c — see dtype.h. */
#include "tensor/dtype.h"

#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "rewardd reads safetensors data in place and assumes a little-endian host"
#endif

static const struct {
	const char *name;
	unsigned bits;
} dtypes[RWD_DTYPE_COUNT_] = {
	[RWD_DTYPE_INVALID] = { "INVALID", 0 },
	[RWD_DTYPE_BOOL] = { "BOOL", 8 },
	[RWD_DTYPE_F4] = { "F4", 4 },
	[RWD_DTYPE_F6_E2M3] = { "F6_E2M3", 6 },
	[RWD_DTYPE_F6_E3M2] = { "F6_E3M2", 6 },
	[RWD_DTYPE_U8] = { "U8", 8 },
	[RWD_DTYPE_I8] = { "I8", 8 },
	[RWD_DTYPE_F8_E5M2] = { "F8_E5M2", 8 },
	[RWD_DTYPE_F8_E4M3] = { "F8_E4M3", 8 },
	[RWD_DTYPE_F8_E8M0] = { "F8_E8M0", 8 },
	[RWD_DTYPE_F8_E4M3FNUZ] = { "F8_E4M3FNUZ", 8 },
	[RWD_DTYPE_F8_E5M2FNUZ] = { "F8_E5M2FNUZ", 8 },
	[RWD_DTYPE_I16] = { "I16", 16 },
	[RWD_DTYPE_U16] = { "U16", 16 },
	[RWD_DTYPE_F16] = { "F16", 16 },
	[RWD_DTYPE_BF16] = { "BF16", 16 },
	[RWD_DTYPE_I32] = { "I32", 32 },
	[RWD_DTYPE_U32] = { "U32", 32 },
	[RWD_DTYPE_F32] = { "F32", 32 },
	[RWD_DTYPE_C64] = { "C64", 64 },
	[RWD_DTYPE_F64] = { "F64", 64 },
	[RWD_DTYPE_I64] = { "I64", 64 },
	[RWD_DTYPE_U64] = { "U64", 64 },
};

const char *rwd_dtype_name(rwd_dtype dt)
{
	if ((unsigned)dt >= RWD_DTYPE_COUNT_)
		return "INVALID";
	return dtypes[dt].name;
}

rwd_dtype rwd_dtype_from_name(const char *name)
{
	if (!name)
		return RWD_DTYPE_INVALID;
	for (int i = 1; i < RWD_DTYPE_COUNT_; i++)
		if (strcmp(name, dtypes[i].name) == 0)
			return (rwd_dtype)i;
	return RWD_DTYPE_INVALID;
}

unsigned rwd_dtype_bits(rwd_dtype dt)
{
	if ((unsigned)dt >= RWD_DTYPE_COUNT_)
		return 0;
	return dtypes[dt].bits;
}

size_t rwd_dtype_size(rwd_dtype dt)
{
	unsigned b = rwd_dtype_bits(dt);
	return b % 8 ? 0 : b / 8;
}

int rwd_dtype_is_f32_convertible(rwd_dtype dt)
{
	return dt == RWD_DTYPE_F32 || dt == RWD_DTYPE_F16 || dt == RWD_DTYPE_BF16;
}

static float f32_from_bits(uint32_t u)
{
	float f;
	memcpy(&f, &u, sizeof(f));
	return f;
}

static uint32_t f32_to_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof(u));
	return u;
}

/*
 * Written without branches (selects compile to cmov/blend, and the row loop
 * vectorises): checkpoints hold hundreds of millions of F16 values and their
 * exponents are unpredictable enough to make branches cost more than the work.
 */
static inline float f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
	uint32_t exp = (h >> 10) & 0x1fu;
	uint32_t mant = h & 0x3ffu;
	/* normal: rebias the exponent from 15 to 127 */
	uint32_t normal = ((exp + (127 - 15)) << 23) | (mant << 13);
	/* inf keeps a zero mantissa; a NaN keeps its payload and is quieted
	 * (bit 22), as F16C's vcvtph2ps and PyTorch do */
	uint32_t infnan = 0x7f800000u | (mant << 13) | (mant ? 0x00400000u : 0);
	/* zero and subnormals are mant * 2^-24, exact in float */
	uint32_t small = f32_to_bits((float)mant * 0x1p-24f);
	uint32_t bits = exp == 0x1f ? infnan : exp ? normal : small;
	return f32_from_bits(sign | bits);
}

float rwd_f16_to_f32(uint16_t h)
{
	return f16_to_f32(h);
}

float rwd_bf16_to_f32(uint16_t b)
{
	/* bfloat16 is the upper half of an IEEE float32, NaN payloads included */
	return f32_from_bits((uint32_t)b << 16);
}

/* memcpy per element: the source may be unaligned; compilers turn it into a plain load */
void rwd_dtype_f16_to_f32_row(const void *src, float *dst, size_t n)
{
	const unsigned char *s = src;
	for (size_t i = 0; i < n; i++) {
		uint16_t h;
		memcpy(&h, s + 2 * i, 2);
		dst[i] = f16_to_f32(h);
	}
}

void rwd_dtype_bf16_to_f32_row(const void *src, float *dst, size_t n)
{
	const unsigned char *s = src;
	for (size_t i = 0; i < n; i++) {
		uint16_t b;
		memcpy(&b, s + 2 * i, 2);
		dst[i] = f32_from_bits((uint32_t)b << 16);
	}
}
