/*
 * tests/unit/test_image_metrics.c — the image_metrics kind through the
 * generic model interface (check / prepare / forward, per-item errors) and
 * its metrics on images whose values follow from the definitions
 * (agreement with scikit-image on photos: tests/parity/test_image_metrics.py).
 */
#include "rwd_check.h"

#include "core/arena.h"
#include "core/base64.h"
#include "models/image_metrics.h"
#include "models/model.h"

#include <math.h>
#include <png.h>
#include <stdint.h>

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

/* RGB pixels -> "data:image/png;base64,..." (malloc'ed). */
static char *png_data_url(const uint8_t *rgb, int w, int h)
{
	membuf m = {0};
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
	png_infop info = png_create_info_struct(png);
	ck_assert(!setjmp(png_jmpbuf(png)));
	png_set_write_fn(png, &m, mem_write, mem_flush);
	png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
		PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_write_info(png, info);
	for (int y = 0; y < h; y++)
		png_write_row(png, rgb + (size_t)y * (size_t)w * 3);
	png_write_end(png, NULL);
	png_destroy_write_struct(&png, &info);
	static const char prefix[] = "data:image/png;base64,";
	char *s = malloc(sizeof(prefix) + rwd_base64_encoded_len(m.n, 0) + 1);
	memcpy(s, prefix, sizeof(prefix) - 1);
	rwd_base64_encode(m.p, m.n, 0, s + sizeof(prefix) - 1);
	free(m.p);
	return s;
}

static uint8_t *pattern(int w, int h, int seed)
{
	uint8_t *p = malloc((size_t)w * (size_t)h * 3);
	uint32_t s = (uint32_t)seed * 2654435761u + 1;
	for (size_t i = 0; i < (size_t)w * (size_t)h * 3; i++) {
		s = s * 1103515245u + 12345u;
		p[i] = (uint8_t)(s >> 16);
	}
	return p;
}

static rwd_model *load_model(const char *opts_json)
{
	rwd_model_params p = rwd_model_default_params();
	p.name = "im";
	p.kind = "image_metrics";
	json_t *opts = opts_json ? json_loads(opts_json, 0, NULL) : NULL;
	p.options = opts;
	p.limits.max_image_pixels = 100 * 100;
	rwd_model *m = NULL;
	rwd_error e;
	rwd_error_clear(&e);
	int r = rwd_model_load(&p, &m, &e);
	json_decref(opts);
	ck_assert_msg(r == 0, "load: %s", e.msg);
	return m;
}

START_TEST(describes_itself)
{
	rwd_model *m = load_model(NULL);
	const rwd_model_info *info = rwd_model_get_info(m);
	ck_assert_str_eq(info->kind, "image_metrics");
	ck_assert_uint_eq(info->n_dims, 5);
	ck_assert_int_eq(rwd_model_dim_index(m, "ssim"), 0);
	ck_assert_int_eq(rwd_model_dim_index(m, "psnr"), 1);
	ck_assert_int_eq(rwd_model_dim_index(m, "sharpness"), 2);
	ck_assert_int_eq(rwd_model_dim_index(m, "colorfulness"), 3);
	ck_assert_int_eq(rwd_model_dim_index(m, "exposure"), 4);
	ck_assert_str_eq(info->inputs[0], "image");
	ck_assert_str_eq(info->inputs[1], "source_image");
	ck_assert_uint_eq(info->weight_bytes, 0);
	rwd_model_free(m);
}
END_TEST

START_TEST(options_are_validated)
{
	const char *bad[] = {
		"{\"max_image_bytes\": 10}",
		"{\"composite_background\": [1, 2]}",
		"{\"composite_background\": [1, 2, 300]}",
		"{\"apply_exif_orientation\": 1}",
		"{\"gray16_high_byte\": \"yes\"}",
		"{\"colour\": true}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rwd_model_params p = rwd_model_default_params();
		p.name = "im";
		p.kind = "image_metrics";
		json_t *o = json_loads(bad[i], 0, NULL);
		p.options = o;
		rwd_model *m = NULL;
		rwd_error e;
		rwd_error_clear(&e);
		ck_assert_msg(rwd_model_load(&p, &m, &e) == RWD_E_INVALID, "%s", bad[i]);
		ck_assert(e.object[0] != '\0');
		json_decref(o);
	}
	rwd_model_free(load_model("{\"composite_background\": [0, 0, 0], \"apply_exif_orientation\": true,"
		" \"max_image_bytes\": 1000000, \"max_jpeg_scans\": 50, \"gray16_high_byte\": true}"));
}
END_TEST

START_TEST(check_validates_fields_without_decoding)
{
	rwd_model *m = load_model("{\"max_image_bytes\": 300}");
	size_t cost;
	rwd_error e;
	struct { const char *json; int code; const char *field; } cases[] = {
		{"{}", RWD_E_INVALID, "image"},
		{"{\"image\": 5}", RWD_E_INVALID, "image"},
		{"{\"image\": \"\"}", RWD_E_INVALID, "image"},
		{"{\"image\": \"AAAA\", \"source_image\": []}", RWD_E_INVALID, "source_image"},
		/* not decoded here: garbage passes check and fails in prepare */
		{"{\"image\": \"!!!!\"}", 0, ""},
		{"{\"image\": \"AAAA\", \"source_image\": null}", 0, ""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *item = json_loads(cases[i].json, 0, NULL);
		rwd_error_clear(&e);
		int r = rwd_model_check(m, item, &cost, &e);
		ck_assert_msg(r == cases[i].code, "case %zu: %d (%s)", i, r, e.msg);
		ck_assert_str_eq(e.object, cases[i].field);
		ck_assert_uint_eq(cost, 1);
		json_decref(item);
	}
	/* a string over the limit is a 413-style limit error */
	char *big = malloc(8000);
	memset(big, 'A', 7999);
	big[7999] = '\0';
	json_t *item = json_pack("{s:s}", "image", big);
	rwd_error_clear(&e);
	ck_assert_int_eq(rwd_model_check(m, item, &cost, &e), RWD_E_LIMIT);
	json_decref(item);
	free(big);
	rwd_model_free(m);
}
END_TEST

/* Run one batch of items given as JSON objects; returns the items (malloc). */
static rwd_item *run_items(rwd_model *m, json_t **inputs, size_t n, rwd_arena *arena)
{
	rwd_item *items = calloc(n, sizeof(*items));
	rwd_item *ptrs[16];
	for (size_t i = 0; i < n; i++) {
		size_t cost;
		rwd_error e;
		rwd_error_clear(&e);
		ck_assert_int_eq(rwd_model_check(m, inputs[i], &cost, &e), 0);
		items[i].input = inputs[i];
		items[i].index = i;
		rwd_error_clear(&items[i].err);
		ptrs[i] = &items[i];
	}
	ck_assert_int_eq(rwd_model_run(m, NULL, ptrs, n, arena), 0);
	return items;
}

START_TEST(batch_with_per_item_results_and_errors)
{
	rwd_model *m = load_model(NULL);
	uint8_t *a = pattern(24, 16, 1), *b = pattern(24, 16, 2), *c = pattern(12, 12, 3);
	char *ua = png_data_url(a, 24, 16), *ub = png_data_url(b, 24, 16), *uc = png_data_url(c, 12, 12);
	uint8_t *huge = calloc(101 * 100 * 3, 1);
	char *uh = png_data_url(huge, 101, 100);
	json_t *in[8];
	in[0] = json_pack("{s:s,s:s}", "image", ua, "source_image", ua);      /* identical */
	in[1] = json_pack("{s:s,s:s}", "image", ub, "source_image", ua);      /* different */
	in[2] = json_pack("{s:s}", "image", ua + 22);                         /* bare base64, no source */
	in[3] = json_pack("{s:s,s:s}", "image", uc, "source_image", ua);      /* size mismatch */
	in[4] = json_pack("{s:s}", "image", "data:image/png;base64,iVBO!RK");  /* bad base64 */
	in[5] = json_pack("{s:s}", "image", "R0lGODlhAQABAAAAACw=");          /* GIF */
	in[6] = json_pack("{s:s}", "image", uh);                              /* over max_image_pixels */
	in[7] = json_pack("{s:s}", "image", "data:text/plain;base64,aGk=");
	rwd_arena *arena = rwd_arena_create(0, 0);
	rwd_item *it = run_items(m, in, 8, arena);

	ck_assert_int_eq(it[0].status, 0);
	ck_assert(it[0].present[0] && it[0].present[1]);
	ck_assert_double_eq_tol(it[0].scores[0], 1.0, 1e-6);
	ck_assert_double_eq(it[0].scores[1], (float)RWD_IMAGE_PSNR_MAX);

	ck_assert_int_eq(it[1].status, 0);
	ck_assert(it[1].scores[0] < 0.5f && it[1].scores[1] < 20.0f && it[1].scores[1] > 0.0f);
	for (int d = 2; d < 5; d++)
		ck_assert(it[1].present[d]);

	ck_assert_int_eq(it[2].status, 0);
	ck_assert(!it[2].present[0] && !it[2].present[1]);
	ck_assert(it[2].present[2] && it[2].present[3] && it[2].present[4]);
	ck_assert_double_eq(it[2].scores[2], it[0].scores[2]); /* same image, same sharpness */

	ck_assert_int_eq(it[3].status, RWD_E_INVALID);
	ck_assert_str_eq(it[3].err.object, "source_image");
	ck_assert(strstr(it[3].err.msg, "12x12") != NULL);

	ck_assert_int_eq(it[4].status, RWD_E_FORMAT);
	ck_assert_str_eq(it[4].err.object, "image");
	ck_assert_int_eq(it[4].err.offset, 26); /* the '!' in the whole string */

	ck_assert_int_eq(it[5].status, RWD_E_UNSUPPORTED);
	ck_assert(strstr(it[5].err.msg, "GIF") != NULL);
	ck_assert_int_eq(it[6].status, RWD_E_LIMIT);
	ck_assert_int_eq(it[7].status, RWD_E_UNSUPPORTED);
	for (int i = 3; i < 8; i++)
		for (int d = 0; d < 5; d++)
			ck_assert(!it[i].present[d]);

	for (int i = 0; i < 8; i++)
		json_decref(in[i]);
	free(it);
	rwd_arena_destroy(arena);
	free(a); free(b); free(c); free(huge);
	free(ua); free(ub); free(uc); free(uh);
	rwd_model_free(m);
}
END_TEST

START_TEST(metrics_follow_their_definitions)
{
	/* flat mid-grey: no edges, no colour, nothing clipped */
	int w = 20, h = 15;
	uint8_t *p = malloc((size_t)w * h * 3);
	memset(p, 128, (size_t)w * h * 3);
	rwd_image a = {w, h, (size_t)w * 3, p};
	rwd_image_metrics mt;
	rwd_error e;
	rwd_error_clear(&e);
	ck_assert_int_eq(rwd_image_metrics_compute(&a, NULL, &mt, &e), 0);
	ck_assert_double_eq(mt.sharpness, 0.0);
	ck_assert_double_eq(mt.colorfulness, 0.0);
	ck_assert_double_eq(mt.exposure, 1.0);
	ck_assert(!mt.has_ssim && !mt.has_psnr);
	/* every value off by one: mse 1, psnr = 20 log10(255) */
	uint8_t *q = malloc((size_t)w * h * 3);
	memset(q, 129, (size_t)w * h * 3);
	rwd_image b = {w, h, (size_t)w * 3, q};
	ck_assert_int_eq(rwd_image_metrics_compute(&b, &a, &mt, &e), 0);
	ck_assert_double_eq_tol(mt.psnr, 20.0 * log10(255.0), 1e-12);
	/* constant images: SSIM = (2 mu_a mu_b + C1) / (mu_a² + mu_b² + C1) */
	double C1 = (0.01 * 255) * (0.01 * 255);
	ck_assert_double_eq_tol(mt.ssim, (2.0 * 128 * 129 + C1) / (128.0 * 128 + 129.0 * 129 + C1), 1e-12);
	/* pure red: rg = 255, yb = 127.5, no spread -> 0.3 sqrt(255² + 127.5²) */
	for (size_t i = 0; i < (size_t)w * h; i++) {
		p[3 * i] = 255;
		p[3 * i + 1] = p[3 * i + 2] = 0;
	}
	ck_assert_int_eq(rwd_image_metrics_compute(&a, NULL, &mt, &e), 0);
	ck_assert_double_eq_tol(mt.colorfulness, 0.3 * sqrt(255.0 * 255 + 127.5 * 127.5), 1e-9);
	/* half black, half white: exposure 0; one bright pixel: Laplacian -4v at it, v at 4 neighbours */
	memset(p, 0, (size_t)w * h * 3);
	ck_assert_int_eq(rwd_image_metrics_compute(&a, NULL, &mt, &e), 0);
	ck_assert_double_eq(mt.exposure, 0.0);
	p[(5 * w + 5) * 3] = p[(5 * w + 5) * 3 + 1] = p[(5 * w + 5) * 3 + 2] = 100;
	ck_assert_int_eq(rwd_image_metrics_compute(&a, NULL, &mt, &e), 0);
	double n = (double)w * h, s = 0, ss = 16 * 100.0 * 100 + 4 * 100.0 * 100; /* sum is 0 */
	ck_assert_double_eq_tol(mt.sharpness, ss / n - (s / n) * (s / n), 1e-9);
	ck_assert_double_eq_tol(mt.exposure, 1.0 / n, 1e-15);
	/* sizes that differ are an error, not a score */
	rwd_image c = {w - 1, h, (size_t)w * 3, q};
	ck_assert_int_eq(rwd_image_metrics_compute(&c, &a, &mt, &e), RWD_E_INVALID);
	/* below 11 pixels on a side: psnr yes, ssim no */
	rwd_image d1 = {10, h, (size_t)w * 3, p}, d2 = {10, h, (size_t)w * 3, q};
	ck_assert_int_eq(rwd_image_metrics_compute(&d1, &d2, &mt, &e), 0);
	ck_assert(mt.has_psnr && !mt.has_ssim);
	double ssim;
	ck_assert_int_eq(rwd_image_ssim(p, q, 10, 10, &ssim, &e), RWD_E_INVALID);
	free(p);
	free(q);
}
END_TEST

static Suite *image_metrics_suite(void)
{
	Suite *s = suite_create("image_metrics");
	TCase *tc = tcase_create("image_metrics");
	tcase_add_test(tc, describes_itself);
	tcase_add_test(tc, options_are_validated);
	tcase_add_test(tc, check_validates_fields_without_decoding);
	tcase_add_test(tc, batch_with_per_item_results_and_errors);
	tcase_add_test(tc, metrics_follow_their_definitions);
	suite_add_tcase(s, tc);
	return s;
}

RWD_CHECK_MAIN(image_metrics_suite)
