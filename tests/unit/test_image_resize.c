/* tests/unit/test_image_resize.c — lib/image/resize edge cases (the Pillow
 * parity itself is tests/parity/test_clip_preprocess.py). */
#include "rwd_check.h"

#include "core/error.h"
#include "image/resize.h"

#include <math.h>
#include <stdint.h>

static uint8_t *random_image(int w, int h, int ch, unsigned seed)
{
	uint8_t *p = malloc((size_t)w * h * ch);
	ck_assert_ptr_nonnull(p);
	for (size_t i = 0; i < (size_t)w * h * ch; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
	return p;
}

START_TEST(rejects_bad_arguments)
{
	uint8_t src[12] = {0}, dst[64];
	ck_assert_int_eq(rwd_image_resize(src, 2, 2, 0, 0, dst, 2, 2, 0, RWD_IMAGE_BICUBIC),
		RWD_E_INVALID);
	ck_assert_int_eq(rwd_image_resize(src, 2, 2, 0, 5, dst, 2, 2, 0, RWD_IMAGE_BICUBIC),
		RWD_E_INVALID);
	ck_assert_int_eq(rwd_image_resize(src, 0, 2, 0, 3, dst, 2, 2, 0, RWD_IMAGE_BICUBIC),
		RWD_E_INVALID);
	ck_assert_int_eq(rwd_image_resize(src, 2, 2, 0, 3, dst, -1, 2, 0, RWD_IMAGE_BICUBIC),
		RWD_E_INVALID);
	ck_assert_int_eq(rwd_image_resize(src, 2, 2, 0, 3, dst, RWD_IMAGE_MAX_SIDE + 1, 1, 0,
		RWD_IMAGE_BICUBIC), RWD_E_INVALID);
	ck_assert_int_eq(rwd_image_resize(src, 2, 2, 0, 3, dst, 2, 2, 0, 0), RWD_E_UNSUPPORTED);
	ck_assert_int_eq(rwd_image_resize(src, 2, 2, 0, 3, dst, 2, 2, 0, 9), RWD_E_INVALID);
	/* a stride shorter than a row */
	ck_assert_int_eq(rwd_image_resize(src, 2, 2, 5, 3, dst, 3, 3, 0, RWD_IMAGE_BICUBIC),
		RWD_E_INVALID);
	/* windows outside the result */
	ck_assert_int_eq(rwd_image_resize_window(src, 2, 2, 0, 3, 4, 4, 3, 0, 2, 1, dst, 0,
		RWD_IMAGE_BICUBIC), RWD_E_INVALID);
	ck_assert_int_eq(rwd_image_resize_window(src, 2, 2, 0, 3, 4, 4, 0, 0, 0, 1, dst, 0,
		RWD_IMAGE_BICUBIC), RWD_E_INVALID);
	ck_assert_int_eq(rwd_image_resize_window(src, 2, 2, 0, 3, 4, 4, -1, 0, 1, 1, dst, 0,
		RWD_IMAGE_BICUBIC), RWD_E_INVALID);
}
END_TEST

START_TEST(identity_is_a_copy)
{
	uint8_t *src = random_image(13, 7, 3, 1);
	uint8_t dst[13 * 7 * 3];
	ck_assert_int_eq(rwd_image_resize(src, 13, 7, 0, 3, dst, 13, 7, 0, RWD_IMAGE_BICUBIC), 0);
	ck_assert_mem_eq(src, dst, sizeof(dst));
	free(src);
}
END_TEST

START_TEST(constant_images_stay_constant)
{
	static const int filters[] = {RWD_IMAGE_BOX, RWD_IMAGE_BILINEAR, RWD_IMAGE_HAMMING,
		RWD_IMAGE_BICUBIC, RWD_IMAGE_LANCZOS};
	static const int sizes[][2] = {{1, 1}, {3, 50}, {224, 224}, {17, 5}, {100, 1}};
	for (int v = 0; v < 256; v += 51) {
		uint8_t src[40 * 30 * 3];
		memset(src, v, sizeof(src));
		for (size_t f = 0; f < sizeof(filters) / sizeof(filters[0]); f++) {
			for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
				int dw = sizes[s][0], dh = sizes[s][1];
				uint8_t *dst = malloc((size_t)dw * dh * 3);
				ck_assert_int_eq(rwd_image_resize(src, 40, 30, 0, 3, dst, dw, dh, 0,
					filters[f]), 0);
				size_t bad = 0;
				for (size_t i = 0; i < (size_t)dw * dh * 3; i++)
					bad += dst[i] != v;
				ck_assert_uint_eq(bad, 0);
				free(dst);
			}
		}
	}
}
END_TEST

START_TEST(one_pixel_sources_and_targets)
{
	uint8_t px[3] = {10, 200, 255}, big[9 * 4 * 3], one[3];
	ck_assert_int_eq(rwd_image_resize(px, 1, 1, 0, 3, big, 9, 4, 0, RWD_IMAGE_BICUBIC), 0);
	for (int i = 0; i < 9 * 4; i++)
		ck_assert_mem_eq(big + 3 * i, px, 3);
	uint8_t *src = random_image(50, 50, 1, 7);
	ck_assert_int_eq(rwd_image_resize(src, 50, 50, 0, 1, one, 1, 1, 0, RWD_IMAGE_BOX), 0);
	unsigned long sum = 0;
	for (int i = 0; i < 2500; i++)
		sum += src[i];
	/* BOX over the whole image is the mean, rounded */
	ck_assert_int_le(abs((int)one[0] - (int)((sum + 1250) / 2500)), 1);
	free(src);
}
END_TEST

START_TEST(windows_equal_the_full_resize)
{
	int sw = 123, sh = 77, dw = 61, dh = 150;
	for (int ch = 1; ch <= 4; ch++) {
		uint8_t *src = random_image(sw, sh, ch, 3 + (unsigned)ch);
		uint8_t *full = malloc((size_t)dw * dh * ch);
		ck_assert_int_eq(rwd_image_resize(src, sw, sh, 0, ch, full, dw, dh, 0,
			RWD_IMAGE_BICUBIC), 0);
		static const int wins[][4] = {{0, 0, 61, 150}, {5, 9, 17, 3}, {60, 149, 1, 1},
			{0, 40, 61, 1}, {30, 0, 1, 150}};
		for (size_t k = 0; k < sizeof(wins) / sizeof(wins[0]); k++) {
			int x0 = wins[k][0], y0 = wins[k][1], rw = wins[k][2], rh = wins[k][3];
			uint8_t *win = malloc((size_t)rw * rh * ch);
			ck_assert_int_eq(rwd_image_resize_window(src, sw, sh, 0, ch, dw, dh, x0, y0, rw,
				rh, win, 0, RWD_IMAGE_BICUBIC), 0);
			for (int y = 0; y < rh; y++)
				ck_assert_mem_eq(win + (size_t)y * rw * ch,
					full + ((size_t)(y0 + y) * dw + x0) * ch, (size_t)rw * ch);
			free(win);
		}
		free(full);
		free(src);
	}
}
END_TEST

START_TEST(strides_are_honoured)
{
	int sw = 40, sh = 31, dw = 19, dh = 45;
	uint8_t *dense = random_image(sw, sh, 3, 11);
	size_t sstride = (size_t)sw * 3 + 13, dstride = (size_t)dw * 3 + 7;
	uint8_t *padded = calloc(sstride * sh, 1);
	for (int y = 0; y < sh; y++)
		memcpy(padded + y * sstride, dense + (size_t)y * sw * 3, (size_t)sw * 3);
	uint8_t *a = malloc((size_t)dw * dh * 3), *b = calloc(dstride * dh, 1);
	ck_assert_int_eq(rwd_image_resize(dense, sw, sh, 0, 3, a, dw, dh, 0, RWD_IMAGE_LANCZOS), 0);
	ck_assert_int_eq(rwd_image_resize(padded, sw, sh, sstride, 3, b, dw, dh, dstride,
		RWD_IMAGE_LANCZOS), 0);
	for (int y = 0; y < dh; y++)
		ck_assert_mem_eq(a + (size_t)y * dw * 3, b + y * dstride, (size_t)dw * 3);
	free(dense);
	free(padded);
	free(a);
	free(b);
}
END_TEST

START_TEST(prep_output_sizes_follow_transformers)
{
	rwd_image_prep_params p = rwd_image_clip_default_params();
	int w, h;
	ck_assert_int_eq(rwd_image_prep_output_size(&p, 17, 4000, &w, &h), 0);
	ck_assert_int_eq(w, 224);
	ck_assert_int_eq(h, 224);
	p.do_center_crop = 0;
	/* 224 * 451 / 300 = 336.75: truncated, not rounded */
	ck_assert_int_eq(rwd_image_prep_output_size(&p, 300, 451, &w, &h), 0);
	ck_assert_int_eq(w, 224);
	ck_assert_int_eq(h, 336);
	ck_assert_int_eq(rwd_image_prep_output_size(&p, 451, 300, &w, &h), 0);
	ck_assert_int_eq(w, 336);
	ck_assert_int_eq(h, 224);
	ck_assert_int_eq(rwd_image_prep_output_size(&p, 17, 4000, &w, &h), 0);
	ck_assert_int_eq(h, 52705);
	/* a long side beyond the module's limit */
	ck_assert_int_eq(rwd_image_prep_output_size(&p, 1, 65535, &w, &h), RWD_E_LIMIT);
	ck_assert_int_eq(rwd_image_prep_output_size(&p, 0, 10, &w, &h), RWD_E_INVALID);
	p.shortest_edge = 0;
	p.resize_width = 100;
	p.resize_height = 50;
	ck_assert_int_eq(rwd_image_prep_output_size(&p, 7, 9, &w, &h), 0);
	ck_assert_int_eq(w, 100);
	ck_assert_int_eq(h, 50);
	p.resize_width = 0;
	ck_assert_int_eq(rwd_image_prep_output_size(&p, 7, 9, &w, &h), RWD_E_INVALID);
}
END_TEST

START_TEST(prep_pads_small_images_with_zero_pixels)
{
	rwd_image_prep_params p = rwd_image_clip_default_params();
	p.do_resize = 0;
	p.crop_width = 12;
	p.crop_height = 13;
	uint8_t src[10 * 10 * 3];
	memset(src, 255, sizeof(src));
	float out[3 * 13 * 12];
	ck_assert_int_eq(rwd_image_prep_run(&p, src, 10, 10, 0, out), 0);
	/* rows: top = (10 - 13) // 2 = -2, so rows 0, 1 and 12 are padding;
	 * columns: left = (10 - 12) // 2 = -1, so columns 0 and 11 are */
	for (int c = 0; c < 3; c++) {
		float pad = (0.0f - p.image_mean[c]) / p.image_std[c];
		float one = ((float)(255.0 * (1.0 / 255.0)) - p.image_mean[c]) / p.image_std[c];
		for (int y = 0; y < 13; y++) {
			for (int x = 0; x < 12; x++) {
				int inside = y >= 2 && y < 12 && x >= 1 && x < 11;
				ck_assert_float_eq(out[(c * 13 + y) * 12 + x], inside ? one : pad);
			}
		}
	}
	p.image_std[1] = 0.0f;
	ck_assert_int_eq(rwd_image_prep_run(&p, src, 10, 10, 0, out), RWD_E_INVALID);
}
END_TEST

START_TEST(prep_crop_offsets_floor)
{
	/* 5 columns cropped to 2: left = (5 - 2) // 2 = 1 */
	rwd_image_prep_params p = rwd_image_clip_default_params();
	p.do_resize = 0;
	p.do_rescale = 0;
	p.do_normalize = 0;
	p.crop_width = 2;
	p.crop_height = 1;
	uint8_t src[5 * 2 * 3];
	for (int i = 0; i < 5 * 2 * 3; i++)
		src[i] = (uint8_t)(i / 3);
	float out[3 * 1 * 2];
	ck_assert_int_eq(rwd_image_prep_run(&p, src, 5, 2, 0, out), 0);
	/* top = (2 - 1) // 2 = 0: row 0, columns 1 and 2 */
	ck_assert_float_eq(out[0], 1.0f);
	ck_assert_float_eq(out[1], 2.0f);
	ck_assert_float_eq(out[4], 1.0f);
}
END_TEST

static Suite *image_resize_suite(void)
{
	Suite *s = suite_create("image_resize");
	TCase *tc = tcase_create("resize");
	tcase_add_test(tc, rejects_bad_arguments);
	tcase_add_test(tc, identity_is_a_copy);
	tcase_add_test(tc, constant_images_stay_constant);
	tcase_add_test(tc, one_pixel_sources_and_targets);
	tcase_add_test(tc, windows_equal_the_full_resize);
	tcase_add_test(tc, strides_are_honoured);
	tcase_add_test(tc, prep_output_sizes_follow_transformers);
	tcase_add_test(tc, prep_pads_small_images_with_zero_pixels);
	tcase_add_test(tc, prep_crop_offsets_floor);
	suite_add_tcase(s, tc);
	return s;
}

RWD_CHECK_MAIN(image_resize_suite)
