/*
 * tests/unit/test_ocr.c — lib/models/ocr through the model interface on a
 * tiny hand-written det/rec pair (no weights needed): the item's extra
 * (flow_grpo's joined text, the lines with text/confidence/box in PaddleOCR's
 * order) equals what rwd_ocr_read gives for the image alone, a batch of
 * items (two of one detector size, one of another) gives each item's lines
 * bit for bit as run alone, and the per-worker scratch is reserved at load.
 * The pipeline's numbers against PaddleOCR's code and ONNX Runtime on the
 * real PP-OCRv4 weights are tests/parity/test_ocr_pipeline.py's.
 *
 * The toy networks read colours: the detector's map is
 * sigmoid(-4 x R) (dark-red pixels are "text"); the recogniser pools the
 * middle row of the crop over 8-pixel columns and scores, per column,
 * blank = 4 R, "a" = -4 R + 4 G, "b" = -4 R - 4 G, " " = -10: green text
 * reads "a", black text "b", white background blank.
 */
#include "rwd_check.h"

#include "core/base64.h"
#include "image/decode.h"
#include "models/model.h"
#include "models/ocr.h"

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char det_json[] =
	"{\"format\":\"rewardd-onnx-graph-1\",\"opset\":11,\"input\":\"x\",\"output\":\"y\","
	"\"int_constants\":{\"k\":{\"shape\":[1],\"values\":[-4]}},\"nodes\":["
	"{\"op\":\"Slice\",\"inputs\":[\"x\"],\"outputs\":[\"r\"],\"attrs\":{\"starts\":[0],\"ends\":[1],\"axes\":[1]}},"
	"{\"op\":\"Cast\",\"inputs\":[\"k\"],\"outputs\":[\"kf\"],\"attrs\":{\"to\":1}},"
	"{\"op\":\"Mul\",\"inputs\":[\"r\",\"kf\"],\"outputs\":[\"z\"],\"attrs\":{}},"
	"{\"op\":\"Sigmoid\",\"inputs\":[\"z\"],\"outputs\":[\"y\"],\"attrs\":{}}]}";

static const char rec_json[] =
	"{\"format\":\"rewardd-onnx-graph-1\",\"opset\":11,\"input\":\"x\",\"output\":\"y\","
	"\"int_constants\":{\"p4\":{\"shape\":[1],\"values\":[4]},\"m4\":{\"shape\":[1],\"values\":[-4]},"
	"\"m10\":{\"shape\":[1],\"values\":[-10]},\"zero\":{\"shape\":[1],\"values\":[0]},"
	"\"shp\":{\"shape\":[3],\"values\":[0,-1,1]}},\"nodes\":["
	"{\"op\":\"Slice\",\"inputs\":[\"x\"],\"outputs\":[\"mid\"],\"attrs\":{\"starts\":[24],\"ends\":[25],\"axes\":[2]}},"
	"{\"op\":\"AveragePool\",\"inputs\":[\"mid\"],\"outputs\":[\"pool\"],\"attrs\":{\"kernel_shape\":[1,8],\"strides\":[1,8]}},"
	"{\"op\":\"Slice\",\"inputs\":[\"pool\"],\"outputs\":[\"r4\"],\"attrs\":{\"starts\":[0],\"ends\":[1],\"axes\":[1]}},"
	"{\"op\":\"Slice\",\"inputs\":[\"pool\"],\"outputs\":[\"g4\"],\"attrs\":{\"starts\":[1],\"ends\":[2],\"axes\":[1]}},"
	"{\"op\":\"Reshape\",\"inputs\":[\"r4\",\"shp\"],\"outputs\":[\"r\"],\"attrs\":{}},"
	"{\"op\":\"Reshape\",\"inputs\":[\"g4\",\"shp\"],\"outputs\":[\"g\"],\"attrs\":{}},"
	"{\"op\":\"Cast\",\"inputs\":[\"p4\"],\"outputs\":[\"fp4\"],\"attrs\":{\"to\":1}},"
	"{\"op\":\"Cast\",\"inputs\":[\"m4\"],\"outputs\":[\"fm4\"],\"attrs\":{\"to\":1}},"
	"{\"op\":\"Cast\",\"inputs\":[\"m10\"],\"outputs\":[\"fm10\"],\"attrs\":{\"to\":1}},"
	"{\"op\":\"Cast\",\"inputs\":[\"zero\"],\"outputs\":[\"f0\"],\"attrs\":{\"to\":1}},"
	"{\"op\":\"Mul\",\"inputs\":[\"r\",\"fp4\"],\"outputs\":[\"blank\"],\"attrs\":{}},"
	"{\"op\":\"Mul\",\"inputs\":[\"r\",\"fm4\"],\"outputs\":[\"nr\"],\"attrs\":{}},"
	"{\"op\":\"Mul\",\"inputs\":[\"g\",\"fp4\"],\"outputs\":[\"pg\"],\"attrs\":{}},"
	"{\"op\":\"Add\",\"inputs\":[\"nr\",\"pg\"],\"outputs\":[\"a\"],\"attrs\":{}},"
	"{\"op\":\"Sub\",\"inputs\":[\"nr\",\"pg\"],\"outputs\":[\"b\"],\"attrs\":{}},"
	"{\"op\":\"Mul\",\"inputs\":[\"r\",\"f0\"],\"outputs\":[\"r0\"],\"attrs\":{}},"
	"{\"op\":\"Add\",\"inputs\":[\"r0\",\"fm10\"],\"outputs\":[\"sp\"],\"attrs\":{}},"
	"{\"op\":\"Concat\",\"inputs\":[\"blank\",\"a\",\"b\",\"sp\"],\"outputs\":[\"lg\"],\"attrs\":{\"axis\":2}},"
	"{\"op\":\"Softmax\",\"inputs\":[\"lg\"],\"outputs\":[\"y\"],\"attrs\":{\"axis\":2}}]}";

static void put(const char *dir, const char *name, const void *data, size_t n)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, n, f), n);
	fclose(f);
}

/* The toy model folder (the converter's layout); returns its path (static). */
static const char *toy_model(void)
{
	static char dir[] = "/tmp/rwd-test-ocr-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	static const char cfg[] = "{\"rewardd_kind\": \"ocr\"}";
	static const unsigned char st[16] = {8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
	put(dir, "config.json", cfg, sizeof(cfg) - 1);
	put(dir, "det.graph.json", det_json, sizeof(det_json) - 1);
	put(dir, "rec.graph.json", rec_json, sizeof(rec_json) - 1);
	put(dir, "det.safetensors", st, sizeof(st));
	put(dir, "rec.safetensors", st, sizeof(st));
	put(dir, "dict.txt", "a\nb\n", 4);
	return dir;
}

static void cleanup(const char *dir)
{
	const char *names[] = {"config.json", "det.graph.json", "rec.graph.json", "det.safetensors", "rec.safetensors",
		"dict.txt"};
	char path[512];
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

/* A white w x h image with filled rectangles {x0, y0, x1, y1, r, g, b}. */
static rwd_image canvas(int w, int h, const int (*rects)[7], size_t n)
{
	rwd_image im = {.w = w, .h = h, .stride = (size_t)w * 3};
	im.pixels = malloc(im.stride * (size_t)h);
	ck_assert_ptr_nonnull(im.pixels);
	memset(im.pixels, 255, im.stride * (size_t)h);
	for (size_t k = 0; k < n; k++)
		for (int y = rects[k][1]; y < rects[k][3]; y++)
			for (int x = rects[k][0]; x < rects[k][2]; x++)
				for (int c = 0; c < 3; c++)
					im.pixels[(size_t)y * im.stride + (size_t)x * 3 + (size_t)c] = (uint8_t)rects[k][4 + c];
	return im;
}

/* The image as a base64 PNG (libpng's simplified writer). */
static char *png_b64(const rwd_image *im)
{
	png_image p;
	memset(&p, 0, sizeof(p));
	p.version = PNG_IMAGE_VERSION;
	p.width = (png_uint_32)im->w;
	p.height = (png_uint_32)im->h;
	p.format = PNG_FORMAT_RGB;
	png_alloc_size_t n = 0;
	ck_assert(png_image_write_to_memory(&p, NULL, &n, 0, im->pixels, (png_int_32)im->stride, NULL));
	uint8_t *buf = malloc(n);
	ck_assert(png_image_write_to_memory(&p, buf, &n, 0, im->pixels, (png_int_32)im->stride, NULL));
	char *out = malloc(rwd_base64_encoded_len(n, 0) + 1);
	out[rwd_base64_encode(buf, n, 0, out)] = 0;
	free(buf);
	return out;
}

/* The extra must be {"text": the lines' texts with confidence > 0 joined, "lines": lines as given}. */
static void expect_extra(const json_t *extra, const rwd_ocr_line *lines, size_t n)
{
	ck_assert_ptr_nonnull(extra);
	ck_assert_uint_eq(json_object_size(extra), 2);
	char joined[1024] = "";
	for (size_t i = 0; i < n; i++)
		if (lines[i].confidence > 0)
			strcat(joined, lines[i].text);
	ck_assert_str_eq(json_string_value(json_object_get(extra, "text")), joined);
	const json_t *arr = json_object_get(extra, "lines");
	ck_assert_uint_eq(json_array_size(arr), n);
	for (size_t i = 0; i < n; i++) {
		const json_t *l = json_array_get(arr, i), *box = json_object_get(l, "box");
		ck_assert_uint_eq(json_object_size(l), 3);
		ck_assert_str_eq(json_string_value(json_object_get(l, "text")), lines[i].text);
		ck_assert(json_real_value(json_object_get(l, "confidence")) == (double)lines[i].confidence);
		ck_assert_uint_eq(json_array_size(box), 4);
		for (int k = 0; k < 4; k++) {
			ck_assert_int_eq(json_integer_value(json_array_get(json_array_get(box, (size_t)k), 0)), lines[i].box[k][0]);
			ck_assert_int_eq(json_integer_value(json_array_get(json_array_get(box, (size_t)k), 1)), lines[i].box[k][1]);
		}
	}
}

START_TEST(extra_and_batching)
{
	const char *dir = toy_model();
	/* 0: green above black (two lines); 1: black left of green on one line, same size as 0; 2: empty, other size */
	static const int r0[][7] = {{60, 40, 260, 80, 0, 255, 0}, {60, 140, 260, 180, 0, 0, 0}};
	static const int r1[][7] = {{300, 100, 460, 140, 0, 255, 0}, {40, 100, 200, 140, 0, 0, 0}};
	rwd_image im[3] = {canvas(480, 240, r0, 2), canvas(480, 240, r1, 2), canvas(200, 100, NULL, 0)};
	const char *prompts[3] = {"a sign \"a b\"", "a sign \"ba\"", "a sign \"b\""};

	rwd_error err = {0};
	rwd_ocr *o;
	ck_assert_msg(rwd_ocr_load(dir, &o, &err) == 0, "%s", err.msg);
	rwd_ocr_line *lines[3];
	size_t nl[3];
	for (int i = 0; i < 3; i++)
		ck_assert_msg(rwd_ocr_read(o, &im[i], &lines[i], &nl[i], &err) == 0, "%s", err.msg);
	/* what the toy networks read, in PaddleOCR's order (top to bottom, then left to right) */
	ck_assert_uint_eq(nl[0], 2);
	ck_assert_str_eq(lines[0][0].text, "a");
	ck_assert_str_eq(lines[0][1].text, "b");
	ck_assert_int_lt(lines[0][0].box[0][1], lines[0][1].box[0][1]);
	ck_assert_uint_eq(nl[1], 2);
	ck_assert_str_eq(lines[1][0].text, "b");
	ck_assert_str_eq(lines[1][1].text, "a");
	ck_assert_uint_eq(nl[2], 0);

	/* the batched entry point gives each image's lines bit for bit */
	const rwd_image *ptrs[3] = {&im[0], &im[1], &im[2]};
	rwd_ocr_result res[3];
	rwd_ocr_ws *ws;
	ck_assert_int_eq(rwd_ocr_ws_new(o, &ws, &err), 0);
	size_t reserved = rwd_ocr_ws_bytes(ws);
	ck_assert_uint_gt(reserved, (size_t)3 * 4 * 960 * 960); /* the detector input for a full-size map */
	ck_assert_int_eq(rwd_ocr_read_batch(o, ws, ptrs, 3, res), 0);
	ck_assert_uint_eq(rwd_ocr_ws_bytes(ws), reserved); /* nothing grew */
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(res[i].status, 0);
		ck_assert_uint_eq(res[i].n, nl[i]);
		for (size_t k = 0; k < nl[i]; k++) {
			ck_assert_str_eq(res[i].lines[k].text, lines[i][k].text);
			ck_assert(res[i].lines[k].confidence == lines[i][k].confidence);
			ck_assert_mem_eq(res[i].lines[k].box, lines[i][k].box, sizeof(lines[i][k].box));
		}
		rwd_ocr_lines_free(res[i].lines, res[i].n);
	}
	rwd_ocr_ws_free(ws);

	/* through the model interface: the extra of each item, and the reward */
	rwd_model_params p = rwd_model_default_params();
	p.name = "toy";
	p.path = dir;
	rwd_model *m;
	ck_assert_msg(rwd_model_load(&p, &m, &err) == 0, "%s", err.msg);
	rwd_item items[3];
	rwd_item *run[3];
	json_t *in[3];
	memset(items, 0, sizeof(items));
	for (int i = 0; i < 3; i++) {
		char *b64 = png_b64(&im[i]);
		in[i] = json_pack("{ss ss}", "image", b64, "prompt", prompts[i]);
		free(b64);
		items[i].input = in[i];
		items[i].index = (size_t)i;
		ck_assert_int_eq(rwd_model_check(m, in[i], &items[i].cost, &items[i].err), 0);
		run[i] = &items[i];
	}
	void *scratch = NULL;
	ck_assert_int_eq(rwd_model_scratch_new(m, &scratch, &err), 0);
	ck_assert_ptr_nonnull(scratch); /* the ocr working memory, reserved per worker */
	rwd_arena *arena = rwd_arena_create(1 << 20, 0);
	ck_assert_int_eq(rwd_model_run(m, scratch, run, 3, arena), 0);
	const double want[3] = {1.0, 1.0, 0.0}; /* "ab" in "ab"; "ba" in "ba"; no text: distance len 1 */
	for (int i = 0; i < 3; i++) {
		ck_assert_msg(items[i].status == 0, "%s", items[i].err.msg);
		expect_extra(items[i].extra, lines[i], nl[i]);
		ck_assert(items[i].scores[0] == (float)want[i]);
		ck_assert(items[i].scores[2] == (float)nl[i]);
	}
	ck_assert_str_eq(json_string_value(json_object_get(items[0].extra, "text")), "ab");
	rwd_item_release(items, 3);
	for (int i = 0; i < 3; i++)
		ck_assert_ptr_null(items[i].extra);
	rwd_arena_destroy(arena);
	rwd_model_scratch_free(m, scratch);
	rwd_model_free(m);
	for (int i = 0; i < 3; i++) {
		json_decref(in[i]);
		rwd_ocr_lines_free(lines[i], nl[i]);
		free(im[i].pixels);
	}
	rwd_ocr_free(o);
	cleanup(dir);
}
END_TEST

static Suite *ocr_suite(void)
{
	Suite *s = suite_create("ocr");
	TCase *tc = tcase_create("toy");
	tcase_add_test(tc, extra_and_batching);
	suite_add_tcase(s, tc);
	return s;
}

RWD_CHECK_MAIN(ocr_suite)
