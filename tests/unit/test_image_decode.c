/*
 * tests/unit/test_image_decode.c — lib/image/decode on images encoded here
 * with libpng / libjpeg: exact pixels for PNG colour types, options
 * (composite, EXIF orientation), limits checked before allocating, and
 * precise errors. (Pixel parity with Pillow: tests/parity/test_image_decode.py.)
 */
#include "rwd_check.h"

#include "core/arena.h"
#include "image/decode.h"

#include <png.h>
#include <stdint.h>
#include <stdio.h>

#include <jpeglib.h>

typedef struct membuf {
	uint8_t *p;
	size_t n, cap;
} membuf;

static void mem_write(png_structp png, png_bytep data, size_t len)
{
	membuf *m = png_get_io_ptr(png);
	if (m->n + len > m->cap) {
		m->cap = (m->n + len) * 2;
		m->p = realloc(m->p, m->cap);
	}
	memcpy(m->p + m->n, data, len);
	m->n += len;
}

static void mem_flush(png_structp png)
{
	(void)png;
}

/* Encode w×h pixels of `ctype`/`depth` (rows packed as libpng wants them). */
static membuf encode_png(const uint8_t *pix, int w, int h, int ctype, int depth, const png_color *pal,
	int npal, const uint8_t *trns, int ntrns, const uint8_t *exif, int nexif, int interlace)
{
	membuf m = {0};
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
	png_infop info = png_create_info_struct(png);
	ck_assert(!setjmp(png_jmpbuf(png)));
	png_set_write_fn(png, &m, mem_write, mem_flush);
	png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, ctype,
		interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
		PNG_FILTER_TYPE_DEFAULT);
	if (pal)
		png_set_PLTE(png, info, pal, npal);
	if (trns)
		png_set_tRNS(png, info, trns, ntrns, NULL);
	if (exif)
		png_set_eXIf_1(png, info, (png_uint_32)nexif, (png_bytep)exif);
	png_write_info(png, info);
	size_t rowbytes = png_get_rowbytes(png, info);
	png_bytep *rows = malloc(sizeof(png_bytep) * (size_t)h);
	for (int y = 0; y < h; y++)
		rows[y] = (png_bytep)pix + (size_t)y * rowbytes;
	png_write_image(png, rows);
	png_write_end(png, NULL);
	png_destroy_write_struct(&png, &info);
	free(rows);
	return m;
}

static uint8_t *encode_jpeg(const uint8_t *rgb, int w, int h, unsigned long *n)
{
	struct jpeg_compress_struct ci;
	struct jpeg_error_mgr jerr;
	uint8_t *out = NULL;
	ci.err = jpeg_std_error(&jerr);
	jpeg_create_compress(&ci);
	jpeg_mem_dest(&ci, &out, n);
	ci.image_width = (JDIMENSION)w;
	ci.image_height = (JDIMENSION)h;
	ci.input_components = 3;
	ci.in_color_space = JCS_RGB;
	jpeg_set_defaults(&ci);
	jpeg_set_quality(&ci, 95, TRUE);
	jpeg_start_compress(&ci, TRUE);
	while (ci.next_scanline < ci.image_height) {
		JSAMPROW row = (JSAMPROW)rgb + (size_t)ci.next_scanline * (size_t)w * 3;
		jpeg_write_scanlines(&ci, &row, 1);
	}
	jpeg_finish_compress(&ci);
	jpeg_destroy_compress(&ci);
	return out;
}

static void assert_px(const rwd_image *im, int x, int y, int r, int g, int b)
{
	const uint8_t *p = im->pixels + (size_t)y * im->stride + (size_t)x * 3;
	ck_assert_msg(p[0] == r && p[1] == g && p[2] == b, "pixel (%d,%d) = %d,%d,%d, want %d,%d,%d",
		x, y, p[0], p[1], p[2], r, g, b);
}

START_TEST(sniff_and_unsupported)
{
	static const uint8_t png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
	static const uint8_t jpg[3] = {0xff, 0xd8, 0xff};
	ck_assert_int_eq(rwd_image_sniff(png, 8), RWD_IMAGE_FORMAT_PNG);
	ck_assert_int_eq(rwd_image_sniff(jpg, 3), RWD_IMAGE_FORMAT_JPEG);
	ck_assert_int_eq(rwd_image_sniff(png, 7), RWD_IMAGE_FORMAT_UNKNOWN);
	ck_assert_str_eq(rwd_image_format_name(RWD_IMAGE_FORMAT_JPEG), "jpeg");
	rwd_image im;
	rwd_error e;
	struct { const char *data; size_t n; int code; const char *needle; } cases[] = {
		{"GIF89a\1\0\1\0", 10, RWD_E_UNSUPPORTED, "GIF"},
		{"RIFF\0\0\0\0WEBPVP8 ", 16, RWD_E_UNSUPPORTED, "WebP"},
		{"BM\0\0\0\0", 6, RWD_E_UNSUPPORTED, "BMP"},
		{"hello world", 11, RWD_E_UNSUPPORTED, "unknown format"},
		{"", 0, RWD_E_FORMAT, "empty"},
		{"\x89PNG", 4, RWD_E_FORMAT, "truncated"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rwd_error_clear(&e);
		int r = rwd_image_decode((const uint8_t *)cases[i].data, cases[i].n, NULL, NULL, &im, &e);
		ck_assert_msg(r == cases[i].code, "case %zu: %d", i, r);
		ck_assert_msg(strstr(e.msg, cases[i].needle) != NULL, "case %zu: %s", i, e.msg);
		ck_assert_ptr_null(im.pixels);
	}
}
END_TEST

START_TEST(png_color_types_exact)
{
	rwd_image im;
	rwd_error e;
	rwd_error_clear(&e);
	/* gray 8-bit */
	uint8_t g[6] = {0, 50, 100, 150, 200, 255};
	membuf m = encode_png(g, 3, 2, PNG_COLOR_TYPE_GRAY, 8, NULL, 0, NULL, 0, NULL, 0, 0);
	ck_assert_int_eq(rwd_image_decode(m.p, m.n, NULL, NULL, &im, &e), 0);
	ck_assert_int_eq(im.w, 3);
	ck_assert_int_eq(im.h, 2);
	ck_assert_uint_eq(im.stride, 9);
	assert_px(&im, 1, 0, 50, 50, 50);
	assert_px(&im, 2, 1, 255, 255, 255);
	rwd_image_free(&im);
	free(m.p);
	/* gray 2-bit: 0..3 scale to 0, 85, 170, 255 */
	uint8_t g2[1] = {0x1b}; /* 00 01 10 11 */
	m = encode_png(g2, 4, 1, PNG_COLOR_TYPE_GRAY, 2, NULL, 0, NULL, 0, NULL, 0, 0);
	ck_assert_int_eq(rwd_image_decode(m.p, m.n, NULL, NULL, &im, &e), 0);
	assert_px(&im, 0, 0, 0, 0, 0);
	assert_px(&im, 1, 0, 85, 85, 85);
	assert_px(&im, 2, 0, 170, 170, 170);
	assert_px(&im, 3, 0, 255, 255, 255);
	rwd_image_free(&im);
	free(m.p);
	/* palette with tRNS: colours kept, alpha dropped by default */
	png_color pal[2] = {{10, 20, 30}, {200, 100, 0}};
	uint8_t trns[2] = {0, 128};
	uint8_t idx[2] = {0, 1};
	m = encode_png(idx, 2, 1, PNG_COLOR_TYPE_PALETTE, 8, pal, 2, trns, 2, NULL, 0, 0);
	ck_assert_int_eq(rwd_image_decode(m.p, m.n, NULL, NULL, &im, &e), 0);
	assert_px(&im, 0, 0, 10, 20, 30);
	assert_px(&im, 1, 0, 200, 100, 0);
	rwd_image_free(&im);
	/* ... and composited when asked: round((a c + (255 - a) bg) / 255) */
	rwd_image_decode_params p = rwd_image_decode_default_params();
	p.composite_alpha = 1;
	p.background[0] = 255;
	p.background[1] = 0;
	p.background[2] = 100;
	ck_assert_int_eq(rwd_image_decode(m.p, m.n, &p, NULL, &im, &e), 0);
	assert_px(&im, 0, 0, 255, 0, 100);
	assert_px(&im, 1, 0, (128 * 200 + 127 * 255 + 127) / 255, (128 * 100 + 127) / 255,
		(127 * 100 + 127) / 255);
	rwd_image_free(&im);
	free(m.p);
	/* 16-bit RGB keeps the high byte; 16-bit gray clips (Pillow mode "I") */
	uint8_t rgb16[6] = {0x12, 0x34, 0xab, 0xcd, 0x00, 0xff};
	m = encode_png(rgb16, 1, 1, PNG_COLOR_TYPE_RGB, 16, NULL, 0, NULL, 0, NULL, 0, 0);
	ck_assert_int_eq(rwd_image_decode(m.p, m.n, NULL, NULL, &im, &e), 0);
	assert_px(&im, 0, 0, 0x12, 0xab, 0x00);
	rwd_image_free(&im);
	free(m.p);
	uint8_t g16[6] = {0x00, 0x7f, 0x01, 0x00, 0x80, 0x00};
	m = encode_png(g16, 3, 1, PNG_COLOR_TYPE_GRAY, 16, NULL, 0, NULL, 0, NULL, 0, 0);
	ck_assert_int_eq(rwd_image_decode(m.p, m.n, NULL, NULL, &im, &e), 0);
	assert_px(&im, 0, 0, 127, 127, 127);
	assert_px(&im, 1, 0, 255, 255, 255);
	assert_px(&im, 2, 0, 255, 255, 255);
	rwd_image_free(&im);
	p = rwd_image_decode_default_params();
	p.gray16_high_byte = 1;
	ck_assert_int_eq(rwd_image_decode(m.p, m.n, &p, NULL, &im, &e), 0);
	assert_px(&im, 0, 0, 0, 0, 0);
	assert_px(&im, 1, 0, 1, 1, 1);
	assert_px(&im, 2, 0, 128, 128, 128);
	rwd_image_free(&im);
	free(m.p);
}
END_TEST

START_TEST(exif_orientation_option)
{
	/* 2x1 image (red, blue) with Orientation 6 (rotate 90 clockwise) -> 1x2: red on top */
	uint8_t px[6] = {255, 0, 0, 0, 0, 255};
	static const uint8_t exif[] = {'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1,
		0, 6, 0, 0, 0, 0, 0, 0};
	membuf m = encode_png(px, 2, 1, PNG_COLOR_TYPE_RGB, 8, NULL, 0, NULL, 0, exif, sizeof(exif), 0);
	rwd_image im;
	rwd_error e;
	rwd_error_clear(&e);
	ck_assert_int_eq(rwd_image_decode(m.p, m.n, NULL, NULL, &im, &e), 0);
	ck_assert_int_eq(im.w, 2); /* default: not applied */
	rwd_image_free(&im);
	rwd_image_decode_params p = rwd_image_decode_default_params();
	p.apply_exif_orientation = 1;
	rwd_arena *a = rwd_arena_create(0, 0);
	ck_assert_int_eq(rwd_image_decode(m.p, m.n, &p, a, &im, &e), 0);
	ck_assert_int_eq(im.w, 1);
	ck_assert_int_eq(im.h, 2);
	assert_px(&im, 0, 0, 255, 0, 0);
	assert_px(&im, 0, 1, 0, 0, 255);
	rwd_arena_destroy(a);
	free(m.p);
}
END_TEST

START_TEST(limits_before_allocating)
{
	uint8_t *pix = calloc(64 * 64 * 3, 1);
	membuf m = encode_png(pix, 64, 64, PNG_COLOR_TYPE_RGB, 8, NULL, 0, NULL, 0, NULL, 0, 1);
	rwd_image im;
	rwd_error e;
	rwd_error_clear(&e);
	rwd_image_decode_params p = rwd_image_decode_default_params();
	p.max_pixels = 64 * 64 - 1;
	rwd_arena *a = rwd_arena_create(0, 0);
	ck_assert_int_eq(rwd_image_decode(m.p, m.n, &p, a, &im, &e), RWD_E_LIMIT);
	ck_assert(strstr(e.msg, "64x64") != NULL);
	ck_assert_uint_eq(rwd_arena_used(a), 0);
	p.max_pixels = 64 * 64;
	ck_assert_int_eq(rwd_image_decode(m.p, m.n, &p, a, &im, &e), 0);
	/* an arena limit is a limit, not an allocation failure */
	rwd_arena *small = rwd_arena_create(1024, 4096);
	ck_assert_int_eq(rwd_image_decode(m.p, m.n, &p, small, &im, &e), RWD_E_LIMIT);
	rwd_arena_destroy(small);
	/* probe reads the size without decoding */
	rwd_image_format f;
	int w, h;
	ck_assert_int_eq(rwd_image_probe(m.p, m.n, &f, &w, &h, &e), 0);
	ck_assert_int_eq(f, RWD_IMAGE_FORMAT_PNG);
	ck_assert_int_eq(w, 64);
	unsigned long jn = 0;
	uint8_t *jpg = encode_jpeg(pix, 64, 48, &jn);
	ck_assert_int_eq(rwd_image_probe(jpg, jn, &f, &w, &h, &e), 0);
	ck_assert_int_eq(f, RWD_IMAGE_FORMAT_JPEG);
	ck_assert_int_eq(w, 64);
	ck_assert_int_eq(h, 48);
	p.max_pixels = 1000;
	ck_assert_int_eq(rwd_image_decode(jpg, jn, &p, a, &im, &e), RWD_E_LIMIT);
	free(jpg);
	rwd_arena_destroy(a);
	free(m.p);
	free(pix);
}
END_TEST

START_TEST(truncated_and_corrupt_are_format_errors)
{
	uint8_t *pix = malloc(40 * 30 * 3);
	for (int i = 0; i < 40 * 30 * 3; i++)
		pix[i] = (uint8_t)(i * 7);
	membuf m = encode_png(pix, 40, 30, PNG_COLOR_TYPE_RGB, 8, NULL, 0, NULL, 0, NULL, 0, 0);
	unsigned long jn = 0;
	uint8_t *jpg = encode_jpeg(pix, 40, 30, &jn);
	rwd_image im;
	rwd_error e;
	for (size_t cut = 1; cut < m.n - 12; cut += 97) { /* the last 12 bytes are IEND */
		rwd_error_clear(&e);
		int r = rwd_image_decode(m.p, cut, NULL, NULL, &im, &e);
		ck_assert_msg(r == RWD_E_FORMAT, "png cut %zu: %d", cut, r);
		ck_assert(e.msg[0] != '\0');
	}
	for (size_t cut = 1; cut < jn - 2; cut += 53) {
		rwd_error_clear(&e);
		int r = rwd_image_decode(jpg, cut, NULL, NULL, &im, &e);
		ck_assert_msg(r == RWD_E_FORMAT, "jpeg cut %zu: %d", cut, r);
	}
	/* SOF0 claiming zero components */
	size_t sof = 2;
	while (sof + 10 < jn && !(jpg[sof] == 0xff && jpg[sof + 1] == 0xc0))
		sof++;
	ck_assert(sof + 10 < jn);
	jpg[sof + 9] = 0;
	rwd_error_clear(&e);
	ck_assert_int_eq(rwd_image_decode(jpg, jn, NULL, NULL, &im, &e), RWD_E_FORMAT);
	ck_assert(strncmp(e.msg, "jpeg: ", 6) == 0);
	/* IHDR with a zero width */
	m.p[16] = m.p[17] = m.p[18] = m.p[19] = 0;
	rwd_error_clear(&e);
	ck_assert_int_eq(rwd_image_decode(m.p, m.n, NULL, NULL, &im, &e), RWD_E_FORMAT);
	free(jpg);
	free(m.p);
	free(pix);
}
END_TEST

static Suite *image_decode_suite(void)
{
	Suite *s = suite_create("image_decode");
	TCase *tc = tcase_create("decode");
	tcase_add_test(tc, sniff_and_unsupported);
	tcase_add_test(tc, png_color_types_exact);
	tcase_add_test(tc, exif_orientation_option);
	tcase_add_test(tc, limits_before_allocating);
	tcase_add_test(tc, truncated_and_corrupt_are_format_errors);
	suite_add_tcase(s, tc);
	return s;
}

RWD_CHECK_MAIN(image_decode_suite)
