/*
 * tests/parity/clip_preprocess_harness.c — drives lib/image/resize for
 * test_clip_preprocess.py.
 *
 *   clip_preprocess_harness JOBFILE
 *
 * Each line of JOBFILE is one job; files are raw bytes, little-endian:
 *   resize IN OUT W H CH DW DH FILTER
 *       IN: W*H*CH uint8 (interleaved); OUT: DW*DH*CH uint8
 *   window IN OUT W H CH DW DH X0 Y0 RW RH FILTER
 *       OUT: RW*RH*CH uint8, the window of the DW×DH resize
 *   prep IN OUT W H SHORTEST RESIZE_H RESIZE_W RESAMPLE CROP CROP_H CROP_W
 *        RESCALE FACTOR NORMALIZE M0 M1 M2 S0 S1 S2
 *       IN: W*H*3 uint8 RGB; OUT: float32 [3, oh, ow] (sizes from the
 *       library, printed as "prep OW OH")
 *   prepfile FILE OUT 0 0 SHORTEST ... (the prep fields)
 *       FILE: a PNG or JPEG, decoded by lib/image/decode (Pillow's
 *       convert("RGB")), then preprocessed as prep
 * Prints one line per job; exits non-zero on the first failure.
 */
#include "image/decode.h"
#include "image/resize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *read_all(const char *path, size_t want)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	void *buf = malloc(want ? want : 1);
	if (buf && fread(buf, 1, want, f) != want) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

static int write_all(const char *path, const void *buf, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	int ok = fwrite(buf, 1, n, f) == n;
	return fclose(f) == 0 && ok ? 0 : -1;
}

static int job_resize(const char *in, const char *out, int w, int h, int ch, int dw, int dh,
	int x0, int y0, int rw, int rh, int filter)
{
	uint8_t *src = read_all(in, (size_t)w * h * ch);
	uint8_t *dst = malloc((size_t)rw * rh * ch);
	int r = -1;
	if (!src || !dst) {
		fprintf(stderr, "cannot read %s\n", in);
		goto done;
	}
	r = rwd_image_resize_window(src, w, h, 0, ch, dw, dh, x0, y0, rw, rh, dst, 0, filter);
	if (r) {
		fprintf(stderr, "resize failed: %d\n", r);
		goto done;
	}
	r = write_all(out, dst, (size_t)rw * rh * ch);
	printf("resize %d %d\n", rw, rh);
done:
	free(src);
	free(dst);
	return r;
}

static int job_prep(char **tok, int n)
{
	if (n != 21) {
		fprintf(stderr, "prep needs 20 fields, got %d\n", n - 1);
		return -1;
	}
	rwd_image_prep_params p = rwd_image_clip_default_params();
	int w = atoi(tok[3]), h = atoi(tok[4]);
	p.do_resize = 1;
	p.shortest_edge = atoi(tok[5]);
	p.resize_height = atoi(tok[6]);
	p.resize_width = atoi(tok[7]);
	p.do_resize = p.shortest_edge > 0 || p.resize_height > 0;
	p.resample = atoi(tok[8]);
	p.do_center_crop = atoi(tok[9]);
	p.crop_height = atoi(tok[10]);
	p.crop_width = atoi(tok[11]);
	p.do_rescale = atoi(tok[12]);
	p.rescale_factor = strtod(tok[13], NULL);
	p.do_normalize = atoi(tok[14]);
	for (int c = 0; c < 3; c++) {
		p.image_mean[c] = strtof(tok[15 + c], NULL);
		p.image_std[c] = strtof(tok[18 + c], NULL);
	}
	rwd_image img = {0};
	if (strcmp(tok[0], "prepfile") == 0) {
		size_t nb = 0;
		FILE *f = fopen(tok[1], "rb");
		uint8_t *bytes = NULL;
		if (f) {
			fseek(f, 0, SEEK_END);
			nb = (size_t)ftell(f);
			fseek(f, 0, SEEK_SET);
			bytes = malloc(nb ? nb : 1);
			if (bytes && fread(bytes, 1, nb, f) != nb) {
				free(bytes);
				bytes = NULL;
			}
			fclose(f);
		}
		rwd_error err;
		rwd_error_clear(&err);
		if (!bytes || rwd_image_decode(bytes, nb, NULL, NULL, &img, &err)) {
			char buf[512];
			fprintf(stderr, "cannot decode %s: %s\n", tok[1], rwd_error_format(&err, buf, sizeof(buf)));
			free(bytes);
			return -1;
		}
		free(bytes);
		w = img.w;
		h = img.h;
	}
	int ow, oh, r = rwd_image_prep_output_size(&p, w, h, &ow, &oh);
	if (r) {
		fprintf(stderr, "prep size failed: %d\n", r);
		return -1;
	}
	uint8_t *src = img.pixels ? img.pixels : read_all(tok[1], (size_t)w * h * 3);
	float *out = malloc((size_t)ow * oh * 3 * sizeof(float));
	r = -1;
	if (!src || !out) {
		fprintf(stderr, "cannot read %s\n", tok[1]);
		goto done;
	}
	r = rwd_image_prep_run(&p, src, w, h, 0, out);
	if (r) {
		fprintf(stderr, "prep failed: %d\n", r);
		goto done;
	}
	r = write_all(tok[2], out, (size_t)ow * oh * 3 * sizeof(float));
	printf("prep %d %d\n", ow, oh);
done:
	free(src);
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
	char line[4096];
	while (fgets(line, sizeof(line), f)) {
		char *tok[32];
		int n = 0;
		for (char *s = strtok(line, " \t\n"); s && n < 32; s = strtok(NULL, " \t\n"))
			tok[n++] = s;
		if (n == 0)
			continue;
		int r;
		if (strcmp(tok[0], "resize") == 0 && n == 9) {
			int dw = atoi(tok[6]), dh = atoi(tok[7]);
			r = job_resize(tok[1], tok[2], atoi(tok[3]), atoi(tok[4]), atoi(tok[5]), dw, dh,
				0, 0, dw, dh, atoi(tok[8]));
		} else if (strcmp(tok[0], "window") == 0 && n == 13) {
			r = job_resize(tok[1], tok[2], atoi(tok[3]), atoi(tok[4]), atoi(tok[5]),
				atoi(tok[6]), atoi(tok[7]), atoi(tok[8]), atoi(tok[9]), atoi(tok[10]),
				atoi(tok[11]), atoi(tok[12]));
		} else if (strcmp(tok[0], "prep") == 0 || strcmp(tok[0], "prepfile") == 0) {
			r = job_prep(tok, n);
		} else {
			fprintf(stderr, "bad job line (%s, %d fields)\n", tok[0], n);
			r = -1;
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
