/*
 * tests/parity/image_harness.c — drives lib/image/decode (and the
 * image_metrics math) for the Pillow / scikit-image parity scripts.
 *
 *   image-harness decode [--composite R,G,B] [--exif] [--gray16-high]
 *                        [--max-pixels N] IN OUT.rgb
 *       prints {"ok":true,"w":W,"h":H} and writes W*H*3 bytes to OUT.rgb,
 *       or {"ok":false,"code":"format","msg":"..."}
 *   image-harness metrics IMAGE [SOURCE]
 *       prints {"ok":true,"sharpness":...,"ssim":...} (doubles, %.17g)
 *   image-harness write-ycck IN.cmyk W H OUT.jpg
 *       encodes raw CMYK (W*H*4 bytes, libjpeg's convention: 0 = no ink
 *       after Adobe inversion is undone) as an Adobe YCCK JPEG, so the
 *       decode test has a YCCK input Pillow cannot write itself.
 */
#include "core/error.h"
#include "image/decode.h"
#include "models/image_metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

static uint8_t *read_all(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *buf = malloc(len > 0 ? (size_t)len : 1);
	if (buf && len > 0 && fread(buf, 1, (size_t)len, f) != (size_t)len) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*n = len > 0 ? (size_t)len : 0;
	return buf;
}

static void print_json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static int fail_json(int code, const rwd_error *e)
{
	char buf[600];
	printf("{\"ok\":false,\"code\":\"%s\",\"msg\":", rwd_strerror(code));
	print_json_string(rwd_error_format(e, buf, sizeof(buf)));
	printf("}\n");
	return 0;
}

static int cmd_decode(int argc, char **argv)
{
	rwd_image_decode_params p = rwd_image_decode_default_params();
	int i = 0;
	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		if (strcmp(argv[i], "--composite") == 0 && i + 1 < argc) {
			unsigned r, g, b;
			if (sscanf(argv[++i], "%u,%u,%u", &r, &g, &b) != 3)
				return 2;
			p.composite_alpha = 1;
			p.background[0] = (uint8_t)r;
			p.background[1] = (uint8_t)g;
			p.background[2] = (uint8_t)b;
		} else if (strcmp(argv[i], "--exif") == 0) {
			p.apply_exif_orientation = 1;
		} else if (strcmp(argv[i], "--gray16-high") == 0) {
			p.gray16_high_byte = 1;
		} else if (strcmp(argv[i], "--max-pixels") == 0 && i + 1 < argc) {
			p.max_pixels = strtoull(argv[++i], NULL, 10);
		} else {
			return 2;
		}
	}
	if (argc - i != 2)
		return 2;
	size_t n;
	uint8_t *data = read_all(argv[i], &n);
	if (!data) {
		perror(argv[i]);
		return 1;
	}
	rwd_image img;
	rwd_error e;
	rwd_error_clear(&e);
	int r = rwd_image_decode(data, n, &p, NULL, &img, &e);
	free(data);
	if (r)
		return fail_json(r, &e);
	FILE *f = fopen(argv[i + 1], "wb");
	if (!f) {
		perror(argv[i + 1]);
		rwd_image_free(&img);
		return 1;
	}
	for (int y = 0; y < img.h; y++)
		fwrite(img.pixels + (size_t)y * img.stride, 3, (size_t)img.w, f);
	fclose(f);
	printf("{\"ok\":true,\"w\":%d,\"h\":%d}\n", img.w, img.h);
	rwd_image_free(&img);
	return 0;
}

static int load(const char *path, rwd_image *img)
{
	size_t n;
	uint8_t *data = read_all(path, &n);
	if (!data) {
		perror(path);
		return -1;
	}
	rwd_error e;
	rwd_error_clear(&e);
	int r = rwd_image_decode(data, n, NULL, NULL, img, &e);
	free(data);
	if (r)
		fail_json(r, &e);
	return r;
}

static int cmd_metrics(int argc, char **argv)
{
	if (argc < 1 || argc > 2)
		return 2;
	rwd_image a, b;
	int has_b = argc == 2;
	if (load(argv[0], &a))
		return 0;
	if (has_b && load(argv[1], &b)) {
		rwd_image_free(&a);
		return 0;
	}
	rwd_image_metrics m;
	rwd_error e;
	rwd_error_clear(&e);
	int r = rwd_image_metrics_compute(&a, has_b ? &b : NULL, &m, &e);
	if (r) {
		fail_json(r, &e);
	} else {
		printf("{\"ok\":true,\"sharpness\":%.17g,\"colorfulness\":%.17g,\"exposure\":%.17g",
			m.sharpness, m.colorfulness, m.exposure);
		if (m.has_psnr)
			printf(",\"psnr\":%.17g", m.psnr);
		if (m.has_ssim)
			printf(",\"ssim\":%.17g", m.ssim);
		printf("}\n");
	}
	rwd_image_free(&a);
	if (has_b)
		rwd_image_free(&b);
	return 0;
}

static int cmd_write_ycck(int argc, char **argv)
{
	if (argc != 4)
		return 2;
	size_t n;
	uint8_t *data = read_all(argv[0], &n);
	int w = atoi(argv[1]), h = atoi(argv[2]);
	if (!data || w <= 0 || h <= 0 || n != (size_t)w * (size_t)h * 4) {
		fprintf(stderr, "write-ycck: bad input\n");
		free(data);
		return 1;
	}
	FILE *f = fopen(argv[3], "wb");
	if (!f) {
		free(data);
		return 1;
	}
	struct jpeg_compress_struct ci;
	struct jpeg_error_mgr jerr;
	ci.err = jpeg_std_error(&jerr);
	jpeg_create_compress(&ci);
	jpeg_stdio_dest(&ci, f);
	ci.image_width = (JDIMENSION)w;
	ci.image_height = (JDIMENSION)h;
	ci.input_components = 4;
	ci.in_color_space = JCS_CMYK;
	jpeg_set_defaults(&ci);
	jpeg_set_colorspace(&ci, JCS_YCCK); /* writes the Adobe marker, transform 2 */
	jpeg_set_quality(&ci, 90, TRUE);
	jpeg_start_compress(&ci, TRUE);
	while (ci.next_scanline < ci.image_height) {
		JSAMPROW row = data + (size_t)ci.next_scanline * (size_t)w * 4;
		jpeg_write_scanlines(&ci, &row, 1);
	}
	jpeg_finish_compress(&ci);
	jpeg_destroy_compress(&ci);
	fclose(f);
	free(data);
	return 0;
}

int main(int argc, char **argv)
{
	int r = 2;
	if (argc >= 2 && strcmp(argv[1], "decode") == 0)
		r = cmd_decode(argc - 2, argv + 2);
	else if (argc >= 2 && strcmp(argv[1], "metrics") == 0)
		r = cmd_metrics(argc - 2, argv + 2);
	else if (argc >= 2 && strcmp(argv[1], "write-ycck") == 0)
		r = cmd_write_ycck(argc - 2, argv + 2);
	if (r == 2)
		fprintf(stderr, "usage: image-harness decode|metrics|write-ycck ...\n");
	return r;
}
