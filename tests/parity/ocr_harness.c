/*
 * ocr_harness — drive the ocr kind's pipeline (lib/models/ocr) for
 * test_ocr_pipeline.py:  ocr-harness DIR IMAGE PROMPT
 * decodes IMAGE (PNG/JPEG) through lib/image, runs rwd_ocr_read and
 * rwd_ocr_reward, and prints one JSON object: {"lines": [{"text",
 * "confidence", "box"}], "text" (flow_grpo's join), "reward", "dist"} or
 * {"error": ...}.
 *   ocr-harness --items DIR ITEMS.json [MAX_IMAGE_PIXELS]
 * loads DIR as a served model (rwd_model_load, the kind read from
 * config.json), check()s and runs the items of ITEMS.json (a JSON array of
 * item objects) in one batch as a worker does, and prints one JSON array:
 * per item {"scores": {dim: value}, "extra": the item's extra} or {"error", "field"}.
 *   ocr-harness --bench DIR ITEMS.json REPEAT
 * the same, the batch run REPEAT times after load; prints the JSON of the
 * last pass and "seconds_per_pass S" on stderr (bench/bench_ocr.py).
 *   ocr-harness --reward PAIRS.json
 * rwd_ocr_reward on each [text, prompt] pair of a JSON array; prints
 * [[reward, dist] or {"error", "field"}, ...].
 */
#include "image/decode.h"
#include "models/model.h"
#include "models/ocr.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int run_items(const char *dir, const char *items_path, const char *max_pixels, int repeat)
{
	rwd_error err = {0};
	char buf[1024];
	rwd_model_params p = rwd_model_default_params();
	p.name = "ocr";
	p.path = dir;
	if (max_pixels)
		p.limits.max_image_pixels = strtoull(max_pixels, NULL, 10);
	rwd_model *m;
	if (rwd_model_load(&p, &m, &err)) {
		fprintf(stderr, "load: %s\n", rwd_error_format(&err, buf, sizeof(buf)));
		return 1;
	}
	json_error_t jerr;
	json_t *arr = json_load_file(items_path, 0, &jerr);
	size_t n = json_array_size(arr);
	rwd_item *items = calloc(n ? n : 1, sizeof(*items));
	rwd_item **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
	rwd_item **run = calloc(n ? n : 1, sizeof(*run));
	size_t nrun = 0;
	for (size_t i = 0; i < n; i++) {
		items[i].input = json_array_get(arr, i);
		items[i].index = i;
		ptrs[i] = &items[i];
		if (rwd_model_check(m, items[i].input, &items[i].cost, &items[i].err))
			items[i].status = items[i].err.code ? items[i].err.code : -4;
		else
			run[nrun++] = &items[i];
	}
	rwd_arena *arena = rwd_arena_create(1 << 20, 0);
	void *scratch = NULL;
	rwd_model_scratch_new(m, &scratch, &err);
	int r = 0;
	if (repeat > 0) { /* bench/bench_ocr.py: seconds per pass over the items as one batch, load excluded */
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (int k = 0; k < repeat && !r; k++) {
			rwd_item_release(items, n);
			rwd_arena_reset(arena);
			r = rwd_model_run(m, scratch, run, nrun, arena);
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		fprintf(stderr, "seconds_per_pass %.6f\n",
			((double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9) / repeat);
	} else {
		r = rwd_model_run(m, scratch, run, nrun, arena);
	}
	const rwd_model_info *info = rwd_model_get_info(m);
	json_t *out = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_object();
		if (items[i].status) {
			json_object_set_new(o, "error", json_string(items[i].err.msg));
			json_object_set_new(o, "field", json_string(items[i].err.object));
		} else {
			json_t *sc = json_object();
			for (size_t k = 0; k < info->n_dims; k++)
				if (items[i].present[k])
					json_object_set_new(sc, info->dims[k], json_real(items[i].scores[k]));
			json_object_set_new(o, "scores", sc);
			if (items[i].extra)
				json_object_set(o, "extra", items[i].extra);
		}
		json_array_append_new(out, o);
	}
	char *s = json_dumps(out, JSON_ENSURE_ASCII);
	puts(s);
	free(s);
	json_decref(out);
	rwd_item_release(items, n);
	rwd_model_scratch_free(m, scratch);
	rwd_arena_destroy(arena);
	free(items);
	free(ptrs);
	free(run);
	json_decref(arr);
	rwd_model_free(m);
	return r ? 1 : 0;
}

static int run_rewards(const char *path)
{
	json_error_t jerr;
	json_t *arr = json_load_file(path, 0, &jerr), *out = json_array();
	if (!arr) {
		fprintf(stderr, "%s: %s\n", path, jerr.text);
		return 1;
	}
	for (size_t i = 0; i < json_array_size(arr); i++) {
		json_t *pr = json_array_get(arr, i);
		rwd_error err = {0};
		double reward;
		int dist;
		if (rwd_ocr_reward(json_string_value(json_array_get(pr, 0)), json_string_value(json_array_get(pr, 1)),
			&reward, &dist, &err))
			json_array_append_new(out, json_pack("{ss ss}", "error", err.msg, "field", err.object));
		else
			json_array_append_new(out, json_pack("[f i]", reward, dist));
	}
	char *s = json_dumps(out, 0);
	puts(s);
	free(s);
	json_decref(out);
	json_decref(arr);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--reward") == 0)
		return run_rewards(argv[2]);
	if ((argc == 4 || argc == 5) && strcmp(argv[1], "--items") == 0)
		return run_items(argv[2], argv[3], argc == 5 ? argv[4] : NULL, 0);
	if (argc == 5 && strcmp(argv[1], "--bench") == 0)
		return run_items(argv[2], argv[3], NULL, atoi(argv[4]));
	if (argc != 4) {
		fprintf(stderr, "usage: %s DIR IMAGE PROMPT\n", argv[0]);
		return 2;
	}
	rwd_error err = {0};
	char buf[1024];
	rwd_ocr *o;
	if (rwd_ocr_load(argv[1], &o, &err)) {
		fprintf(stderr, "load: %s\n", rwd_error_format(&err, buf, sizeof(buf)));
		return 1;
	}
	FILE *f = fopen(argv[2], "rb");
	if (!f)
		return 1;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	unsigned char *data = malloc((size_t)n);
	if (!data || fread(data, 1, (size_t)n, f) != (size_t)n)
		return 1;
	fclose(f);
	rwd_image img;
	if (rwd_image_decode(data, (size_t)n, NULL, NULL, &img, &err)) {
		fprintf(stderr, "decode: %s\n", rwd_error_format(&err, buf, sizeof(buf)));
		return 1;
	}
	rwd_ocr_line *lines;
	size_t nl;
	json_t *res = json_object();
	if (rwd_ocr_read(o, &img, &lines, &nl, &err)) {
		json_object_set_new(res, "error", json_string(rwd_error_format(&err, buf, sizeof(buf))));
	} else {
		json_t *arr = json_array();
		size_t len = 1;
		for (size_t i = 0; i < nl; i++)
			len += strlen(lines[i].text);
		char *text = calloc(1, len);
		for (size_t i = 0; i < nl; i++) {
			json_t *box = json_array();
			for (int k = 0; k < 4; k++)
				json_array_append_new(box, json_pack("[ii]", lines[i].box[k][0], lines[i].box[k][1]));
			json_array_append_new(arr, json_pack("{s:s,s:f,s:o}", "text", lines[i].text, "confidence",
				(double)lines[i].confidence, "box", box));
			if (lines[i].confidence > 0)
				strcat(text, lines[i].text);
		}
		json_object_set_new(res, "lines", arr);
		json_object_set_new(res, "text", json_string(text));
		double reward;
		int dist;
		if (rwd_ocr_reward(text, argv[3], &reward, &dist, &err) == 0) {
			json_object_set_new(res, "reward", json_real(reward));
			json_object_set_new(res, "dist", json_integer(dist));
		} else {
			json_object_set_new(res, "reward_error", json_string(err.msg));
		}
		free(text);
		rwd_ocr_lines_free(lines, nl);
	}
	char *s = json_dumps(res, JSON_ENSURE_ASCII);
	puts(s);
	free(s);
	json_decref(res);
	rwd_image_free(&img);
	free(data);
	rwd_ocr_free(o);
	return 0;
}
