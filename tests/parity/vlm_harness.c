/*
 * tests/parity/vlm_harness.c — drives the `vlm` kind's layers for
 * test_vlm_torch.py.
 *
 *   vlm_harness vision DIR ROWS OUT T H W [T H W ...]
 *       loads DIR/config.json's vision_config and DIR's weights (hub or
 *       v4.52 names), reads ROWS (float32 patch rows of the grids given),
 *       writes the tower's output (float32) to OUT and prints its shape.
 *   vlm_harness full DIR ROWS IDS MODE OUT [T H W ...]
 *       the whole backbone: IDS (int32 token ids of one sequence), the
 *       placeholder runs replaced by the tower's output for ROWS / grids in
 *       order, positions "seq" (0..n-1 on all three streams) or "mrope"
 *       (get_rope_index; Qwen2.5-VL videos use second_per_grid_t 1.0),
 *       the decoder and its final norm; writes [n, hidden] float32 to OUT.
 *   vlm_harness reward DIR ROWS IDS MODE OUT [T H W ...]
 *       as full, then DIR/reward_head.json's heads at each dimension's pool
 *       token (its special_tokens id, exactly once in IDS): prints
 *       "dim NAME MU SIGMA" per dimension
 * Errors go to stderr with the library's message; exit 1.
 */
#include "models/qwen_lm.h"
#include "models/qwen_vision.h"
#include "models/vlm_head.h"

#include <math.h>

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

static void *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	void *buf = malloc((size_t)sz + 4);
	if (buf && fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*n = (size_t)sz;
	return buf;
}

static int run_full(int argc, char **argv)
{
	const char *dir = argv[2], *mode = argv[5], *out_path = argv[6];
	size_t nb = (size_t)(argc - 7) / 3, nbytes, nrows_bytes;
	rwd_error err;
	rwd_error_clear(&err);
	char path[4096];
	snprintf(path, sizeof(path), "%s/config.json", dir);
	json_error_t jerr;
	json_t *cfg = json_load_file(path, 0, &jerr);
	int32_t *ids = slurp(argv[4], &nbytes);
	float *rows = slurp(argv[3], &nrows_bytes);
	if (!cfg || !ids || !rows)
		return 1;
	size_t n = nbytes / 4;
	int32_t grids[3 * 64];
	double tstep[64];
	const char *mt = json_string_value(json_object_get(cfg, "model_type"));
	int q25 = mt && strcmp(mt, "qwen2_5_vl") == 0;
	const json_t *tc = json_object_get(cfg, "text_config");
	if (!tc)
		tc = cfg;
	int32_t img = (int32_t)json_integer_value(json_object_get(cfg, "image_token_id"));
	int32_t vid = (int32_t)json_integer_value(json_object_get(cfg, "video_token_id"));
	const json_t *vc = json_object_get(cfg, "vision_config");
	double tps = json_number_value(json_object_get(vc, "tokens_per_second"));
	if (nb > 64)
		return 1;
	size_t N = 0, S = 0;
	for (size_t i = 0; i < nb; i++) {
		for (int k = 0; k < 3; k++)
			grids[3 * i + k] = atoi(argv[7 + 3 * i + k]);
		size_t fr = (size_t)grids[3 * i + 1] * grids[3 * i + 2];
		N += fr * grids[3 * i];
		S = fr > S ? fr : S;
	}
	rwd_weights *w = NULL;
	if (rwd_weights_open(dir, NULL, &w, &err))
		return fail("weights", &err);
	int v452 = rwd_weights_find(w, "model.visual.patch_embed.proj.weight") != NULL;
	rwd_qwen_vision *v = NULL;
	rwd_qwen_lm *lm = NULL;
	if (rwd_qwen_vision_load(w, v452 ? "model.visual" : "visual", vc,
		q25 ? RWD_QWEN_VISION_2_5 : RWD_QWEN_VISION_2, &v, &err))
		return fail("vision", &err);
	if (rwd_qwen_lm_load(w, v452 ? "model.language_model" : "model", tc, &lm, &err))
		return fail("lm", &err);
	const rwd_qwen_vision_info *vi = rwd_qwen_vision_get_info(v);
	const size_t H = rwd_qwen_lm_get_info(lm)->hidden;
	size_t C = N / (vi->merge * vi->merge);
	float *vis = malloc((C + 1) * H * sizeof(float));
	size_t ns = N ? rwd_qwen_vision_scratch(v, N, S) : 0;
	float *vs = malloc((ns + 1) * sizeof(float));
	if (N && rwd_qwen_vision_forward(v, rows, grids, nb, vis, vs, ns))
		return 1;
	float *x = malloc(n * H * sizeof(float));
	size_t used = 0, b = 0;
	for (size_t i = 0; i < n; i++) {
		if ((ids[i] == img || ids[i] == vid) && used < C) {
			memcpy(x + i * H, vis + used++ * H, H * sizeof(float));
		} else if (rwd_qwen_lm_embed(lm, ids[i], x + i * H)) {
			fprintf(stderr, "bad id %d\n", ids[i]);
			return 1;
		}
		if (i > 0 && (ids[i - 1] == img || ids[i - 1] == vid) && ids[i] != ids[i - 1])
			b++;
	}
	(void)b;
	/* t_step per block, in order of appearance */
	size_t bi = 0;
	for (size_t i = 0; i < n && bi < nb; i++) {
		if ((ids[i] == img || ids[i] == vid) && (i == 0 || ids[i - 1] != ids[i])) {
			tstep[bi] = !q25 ? 1.0 : ids[i] == vid ? 1.0 * tps : 0.0;
			bi++;
		}
	}
	int32_t *pos = malloc(3 * n * sizeof(int32_t));
	if (strcmp(mode, "mrope") == 0) {
		if (rwd_qwen_lm_rope_index(ids, n, img, vid, grids, tstep, nb, vi->merge, pos)) {
			fprintf(stderr, "rope index refused\n");
			return 1;
		}
	} else {
		for (size_t i = 0; i < 3 * n; i++)
			pos[i] = (int32_t)(i % n);
	}
	size_t starts[2] = {0, n}, *pick = malloc(n * sizeof(size_t));
	for (size_t i = 0; i < n; i++)
		pick[i] = i;
	size_t ls = rwd_qwen_lm_scratch(lm, n, n);
	float *lsc = malloc(ls * sizeof(float)), *out = malloc(n * H * sizeof(float));
	if (rwd_qwen_lm_forward(lm, x, starts, 1, pos, pick, n, out, lsc, ls))
		return 1;
	FILE *f = fopen(out_path, "wb");
	if (!f || fwrite(out, sizeof(float), n * H, f) != n * H || fclose(f))
		return 1;
	printf("full %zu %zu\n", n, H);
	if (strcmp(argv[1], "reward") == 0) {
		snprintf(path, sizeof(path), "%s/reward_head.json", dir);
		json_t *spec = json_load_file(path, 0, &jerr);
		rwd_vlm_heads *hs = NULL;
		if (!spec || rwd_vlm_heads_load(dir, spec, H, &hs, &err))
			return fail("heads", &err);
		float hsc[4096], ho[256];
		for (size_t d = 0; d < rwd_vlm_heads_n_dims(hs); d++) {
			const rwd_vlm_dim *dm = rwd_vlm_heads_dim(hs, d);
			json_t *tid = json_object_get(json_object_get(spec, "special_tokens"), dm->pool);
			size_t at = n, hits = 0;
			for (size_t i = 0; i < n; i++)
				if (tid && ids[i] == (int32_t)json_integer_value(tid)) {
					at = i;
					hits++;
				}
			if (hits != 1 || rwd_vlm_heads_scratch(hs) > 4096 || rwd_vlm_heads_out_dim(hs, dm->head) > 256) {
				fprintf(stderr, "%s: pool token %s found %zu times\n", dm->name, dm->pool, hits);
				return 1;
			}
			float mu, sigma;
			rwd_vlm_head_run(hs, dm->head, out + at * H, ho, hsc);
			rwd_vlm_dim_values(hs, d, ho, &mu, &sigma);
			printf("dim %s %.9g %.9g\n", dm->name, mu, sigma);
		}
		rwd_vlm_heads_free(hs);
		json_decref(spec);
	}
	free(out);
	free(lsc);
	free(pick);
	free(pos);
	free(x);
	free(vs);
	free(vis);
	rwd_qwen_lm_free(lm);
	rwd_qwen_vision_free(v);
	rwd_weights_free(w);
	free(rows);
	free(ids);
	json_decref(cfg);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 7 && (strcmp(argv[1], "full") == 0 || strcmp(argv[1], "reward") == 0) &&
		(argc - 7) % 3 == 0)
		return run_full(argc, argv);
	if (argc >= 8 && strcmp(argv[1], "vision") == 0 && (argc - 5) % 3 == 0)
		return run_vision(argc, argv);
	fprintf(stderr, "usage: %s vision DIR ROWS OUT T H W [T H W ...]\n", argv[0]);
	return 2;
}
