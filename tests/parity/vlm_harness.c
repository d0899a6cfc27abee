/*
 * tests/parity/vlm_harness.c — drives the `vlm` kind's layers for
 * test_vlm_torch.py.
 *
 *   vlm_harness vision DIR ROWS OUT T H W [T H W ...]
 *       loads DIR/config.json's vision_config and DIR's weights (hub or
 *       v4.52 names), reads ROWS (float32 patch rows of the grids given),
 *       writes the tower's output (float32) to OUT and prints its shape.
 * Errors go to stderr with the library's message; exit 1.
 */
#include "models/qwen_vision.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, const rwd_error *err)
{
	char buf[1024];
	fprintf(stderr, "%s: %s\n", what, rwd_error_format(err, buf, sizeof(buf)));
	return 1;
}

static int run_vision(int argc, char **argv)
{
	const char *dir = argv[2], *rows_path = argv[3], *out_path = argv[4];
	size_t n = (size_t)(argc - 5) / 3;
	int32_t *grids = calloc(3 * n + 1, sizeof(int32_t));
	rwd_error err;
	rwd_error_clear(&err);
	char path[4096];
	snprintf(path, sizeof(path), "%s/config.json", dir);
	json_error_t jerr;
	json_t *cfg = json_load_file(path, 0, &jerr);
	if (!cfg || !grids) {
		fprintf(stderr, "%s: %s\n", path, jerr.text);
		return 1;
	}
	size_t N = 0, S = 0;
	for (size_t i = 0; i < n; i++) {
		for (int k = 0; k < 3; k++)
			grids[3 * i + k] = atoi(argv[5 + 3 * i + k]);
		size_t fr = (size_t)grids[3 * i + 1] * grids[3 * i + 2];
		N += fr * grids[3 * i];
		if (fr > S)
			S = fr;
	}
	const char *mt = json_string_value(json_object_get(cfg, "model_type"));
	int variant = mt && strcmp(mt, "qwen2_5_vl") == 0 ? RWD_QWEN_VISION_2_5 : RWD_QWEN_VISION_2;
	rwd_weights *w = NULL;
	if (rwd_weights_open(dir, NULL, &w, &err))
		return fail("weights", &err);
	const char *prefix = rwd_weights_find(w, "model.visual.patch_embed.proj.weight") ? "model.visual" : "visual";
	rwd_qwen_vision *v = NULL;
	if (rwd_qwen_vision_load(w, prefix, json_object_get(cfg, "vision_config"), variant, &v, &err))
		return fail("vision", &err);
	const rwd_qwen_vision_info *in = rwd_qwen_vision_get_info(v);
	float *rows = malloc(N * in->in_dim * sizeof(float) + 1);
	FILE *f = fopen(rows_path, "rb");
	if (!f || !rows || fread(rows, sizeof(float), N * in->in_dim, f) != N * in->in_dim) {
		fprintf(stderr, "cannot read %zu rows from %s\n", N, rows_path);
		return 1;
	}
	fclose(f);
	size_t ns = rwd_qwen_vision_scratch(v, N, S);
	float *scratch = malloc(ns * sizeof(float));
	size_t C = N / (in->merge * in->merge);
	float *out = malloc(C * in->out_dim * sizeof(float) + 1);
	if (!scratch || !out)
		return 1;
	int r = rwd_qwen_vision_forward(v, rows, grids, n, out, scratch, ns);
	if (r) {
		fprintf(stderr, "forward failed: %d\n", r);
		return 1;
	}
	f = fopen(out_path, "wb");
	if (!f || fwrite(out, sizeof(float), C * in->out_dim, f) != C * in->out_dim || fclose(f))
		return 1;
	printf("vision %zu %zu\n", C, in->out_dim);
	free(out);
	free(scratch);
	free(rows);
	rwd_qwen_vision_free(v);
	rwd_weights_free(w);
	json_decref(cfg);
	free(grids);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 8 && strcmp(argv[1], "vision") == 0 && (argc - 5) % 3 == 0)
		return run_vision(argc, argv);
	fprintf(stderr, "usage: %s vision DIR ROWS OUT T H W [T H W ...]\n", argv[0]);
	return 2;
}
