/*
 * tests/parity/vlm_prep_harness.c — drives lib/image/qwen_vl (the
 * Qwen2VLImageProcessor and fetch_image stages) for test_vlm_prep.py.
 *
 *   vlm_prep_harness JOBFILE
 *
 * Each line of JOBFILE is one job:
 *   smart H W FACTOR MIN MAX STYLE
 *       prints "smart OH OW", or "smart error CODE" when refused
 *   prep OUT W H MIN MAX FMIN FMAX FILE...
 *       each FILE is one frame: raw W*H*3 RGB bytes when W > 0, else a PNG
 *       or JPEG decoded by lib/image/decode (Pillow's convert("RGB"));
 *       writes float32 rows to OUT and prints "prep GT GH GW", or
 *       "prep error CODE" when refused
 * Exits non-zero on a malformed job or an I/O failure.
 */
#include "image/decode.h"
#include "image/qwen_vl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint8_t *read_file(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *buf = sz >= 0 ? malloc((size_t)sz + 1) : NULL;
	if (buf && fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*n = buf ? (size_t)sz : 0;
	return buf;
}

static int job_prep(char **tok, int n)
{
	int w = atoi(tok[2]), h = atoi(tok[3]), nf = n - 8, r = -1;
	rwd_qwen_vl_prep p = rwd_qwen_vl_prep_default();
	p.min_pixels = strtoll(tok[4], NULL, 10);
	p.max_pixels = strtoll(tok[5], NULL, 10);
	p.fetch_min_pixels = strtoll(tok[6], NULL, 10);
	p.fetch_max_pixels = strtoll(tok[7], NULL, 10);
	uint8_t **frames = calloc((size_t)nf, sizeof(*frames));
	float *out = NULL;
	if (!frames || nf < 1)
		goto done;
	for (int i = 0; i < nf; i++) {
		size_t nb;
		uint8_t *bytes = read_file(tok[8 + i], &nb);
		if (!bytes) {
			fprintf(stderr, "cannot read %s\n", tok[8 + i]);
			goto done;
		}
		if (atoi(tok[2]) > 0) {
			if (nb != (size_t)w * h * 3) {
				fprintf(stderr, "%s: %zu bytes\n", tok[8 + i], nb);
				free(bytes);
				goto done;
			}
			frames[i] = bytes;
			continue;
		}
		rwd_image img;
		rwd_error err;
		rwd_error_clear(&err);
		int d = rwd_image_decode(bytes, nb, NULL, NULL, &img, &err);
		free(bytes);
		if (d) {
			char buf[512];
			fprintf(stderr, "cannot decode %s: %s\n", tok[8 + i], rwd_error_format(&err, buf, sizeof(buf)));
			goto done;
		}
		w = img.w;
		h = img.h;
		frames[i] = img.pixels;
	}
	int gt, gh, gw, e = rwd_qwen_vl_prep_grid(&p, w, h, nf, &gt, &gh, &gw);
	if (e) {
		printf("prep error %d\n", e);
		r = 0;
		goto done;
	}
	size_t rows = (size_t)gt * gh * gw, cols = (size_t)3 * p.temporal_patch_size * p.patch_size * p.patch_size;
	out = malloc(rows * cols * sizeof(float));
	if (!out)
		goto done;
	e = rwd_qwen_vl_prep_run(&p, (const uint8_t *const *)frames, nf, w, h, 0, out);
	if (e) {
		printf("prep error %d\n", e);
		r = 0;
		goto done;
	}
	FILE *f = fopen(tok[1], "wb");
	if (!f || fwrite(out, sizeof(float), rows * cols, f) != rows * cols) {
		if (f)
			fclose(f);
		goto done;
	}
	if (fclose(f))
		goto done;
	printf("prep %d %d %d\n", gt, gh, gw);
	r = 0;
done:
	for (int i = 0; frames && i < nf; i++)
		free(frames[i]);
	free(frames);
	free(out);
	return r;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s JOBFILE\n", argv[0]);
		return 2;
	}
	FILE *f = fopen(argv[1], "r");
	if (!f) {
		perror(argv[1]);
		return 2;
	}
	char line[8192];
	while (fgets(line, sizeof(line), f)) {
		char *tok[80];
		int n = 0;
		for (char *s = strtok(line, " \t\n"); s && n < 80; s = strtok(NULL, " \t\n"))
			tok[n++] = s;
		if (n == 0)
			continue;
		int r = -1;
		if (strcmp(tok[0], "smart") == 0 && n == 7) {
			int oh, ow;
			int e = rwd_qwen_vl_smart_resize(atoi(tok[1]), atoi(tok[2]), atoi(tok[3]),
				strtoll(tok[4], NULL, 10), strtoll(tok[5], NULL, 10), atoi(tok[6]), &oh, &ow);
			if (e)
				printf("smart error %d\n", e);
			else
				printf("smart %d %d\n", oh, ow);
			r = 0;
		} else if (strcmp(tok[0], "prep") == 0 && n >= 9) {
			r = job_prep(tok, n);
		} else {
			fprintf(stderr, "bad job line (%s, %d fields)\n", tok[0], n);
		}
		fflush(stdout);
		if (r) {
			fclose(f);
			return 1;
		}
	}
	fclose(f);
	return 0;
}
