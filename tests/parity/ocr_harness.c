/*
 * ocr_harness — drive the ocr kind's pipeline (lib/models/ocr) for
 * test_ocr_pipeline.py:  ocr-harness DIR IMAGE PROMPT
 * decodes IMAGE (PNG/JPEG) through lib/image, runs rwd_ocr_read and
 * rwd_ocr_reward, and prints one JSON object: {"lines": [{"text",
 * "confidence", "box"}], "text" (flow_grpo's join), "reward", "dist"} or
 * {"error": ...}.
 */
#include "image/decode.h"
#include "models/ocr.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
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
