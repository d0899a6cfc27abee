/*
 * tests/parity/imagereward_harness.c — drives the imagereward kind for
 * test_imagereward_torch.py.
 *
 *   imagereward_harness score MODEL ITEMS OUT [BATCH]
 *       ITEMS: JSON array of items ({"image": base64, "prompt": ...}); the
 *       kind is read from MODEL/config.json (the generic path); items run
 *       through rwd_model_run in batches of BATCH (default: all at once).
 *       OUT: JSON {"items": [{"status", "error", "scores": {dim: value}}]}.
 *   imagereward_harness preprocess MODEL IMAGE OUT
 *       IMAGE: a PNG/JPEG file; OUT: the preprocessed float32 [3, S, S].
 * Exit 0, or 1 with a message on stderr.
 */
#include "core/arena.h"
#include "image/decode.h"
#include "models/imagereward.h"
#include "models/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what, const rwd_error *err)
{
	char buf[1024];
	fprintf(stderr, "imagereward_harness: %s: %s\n", what, err ? rwd_error_format(err, buf, sizeof(buf)) : "failed");
	exit(1);
}

static int cmd_score(char **argv, size_t batch)
{
	rwd_error err;
	rwd_error_clear(&err);
	json_error_t jerr;
	json_t *items = json_load_file(argv[1], 0, &jerr);
	if (!items || !json_is_array(items))
		die("items file", NULL);
	size_t n = json_array_size(items);
	if (!batch || batch > n)
		batch = n ? n : 1;
	rwd_model_params p = rwd_model_default_params();
	p.name = "imagereward";
	p.path = argv[0];
	p.limits.max_batch_size = batch;
	rwd_model *m = NULL;
	if (rwd_model_load(&p, &m, &err))
		die("load", &err);
	void *scratch = NULL;
	if (rwd_model_scratch_new(m, &scratch, &err))
		die("scratch", &err);
	rwd_item *its = calloc(n + 1, sizeof(*its));
	rwd_item **ok = calloc(n + 1, sizeof(*ok));
	rwd_arena *a = rwd_arena_create(0, 0);
	for (size_t b0 = 0; b0 < n; b0 += batch) {
		size_t k = 0;
		for (size_t i = b0; i < n && i < b0 + batch; i++) {
			its[i].input = json_array_get(items, i);
			its[i].index = i;
			size_t cost;
			rwd_error_clear(&its[i].err);
			int r = rwd_model_check(m, its[i].input, &cost, &its[i].err);
			if (r)
				its[i].status = r;
			else
				ok[k++] = &its[i];
		}
		rwd_model_run(m, scratch, ok, k, a);
		rwd_arena_reset(a);
	}
	const rwd_model_info *info = rwd_model_get_info(m);
	json_t *out = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_object();
		json_object_set_new(o, "status", json_integer(its[i].status));
		if (its[i].status) {
			char buf[1024];
			json_object_set_new(o, "error", json_string(rwd_error_format(&its[i].err, buf, sizeof(buf))));
		}
		json_t *sc = json_object();
		for (size_t d = 0; d < info->n_dims; d++)
			if (!its[i].status && its[i].present[d])
				json_object_set_new(sc, info->dims[d], json_real(its[i].scores[d]));
		json_object_set_new(o, "scores", sc);
		json_array_append_new(out, o);
	}
	json_t *doc = json_pack("{s:o, s:s}", "items", out, "kind", info->kind);
	json_dump_file(doc, argv[2], 0);
	json_decref(doc);
	rwd_arena_destroy(a);
	free(ok);
	free(its);
	rwd_model_scratch_free(m, scratch);
	rwd_model_free(m);
	json_decref(items);
	return 0;
}

static int cmd_preprocess(char **argv)
{
	rwd_error err;
	rwd_error_clear(&err);
	rwd_batch_limits lim = {.max_batch_size = 1};
	rwd_imagereward *m = NULL;
	if (rwd_imagereward_load(argv[0], NULL, &lim, &m, &err))
		die("load", &err);
	FILE *f = fopen(argv[1], "rb");
	if (!f)
		die("image file", NULL);
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *buf = malloc((size_t)len + 1);
	if (fread(buf, 1, (size_t)len, f) != (size_t)len)
		die("read", NULL);
	fclose(f);
	rwd_image_decode_params dp = rwd_image_decode_default_params();
	rwd_image img;
	if (rwd_image_decode(buf, (size_t)len, &dp, NULL, &img, &err))
		die("decode", &err);
	const size_t S = (size_t)rwd_imagereward_image_size(m);
	float *px = malloc(3 * S * S * sizeof(float));
	if (rwd_imagereward_preprocess(m, &img, px))
		die("preprocess", NULL);
	FILE *o = fopen(argv[2], "wb");
	if (!o || fwrite(px, sizeof(float), 3 * S * S, o) != 3 * S * S)
		die("write", NULL);
	fclose(o);
	free(px);
	free(buf);
	rwd_image_free(&img);
	rwd_imagereward_free(m);
	return 0;
}

int main(int argc, char **argv)
{
	if ((argc == 5 || argc == 6) && strcmp(argv[1], "score") == 0)
		return cmd_score(argv + 2, argc == 6 ? (size_t)strtoul(argv[5], NULL, 10) : 0);
	if (argc == 5 && strcmp(argv[1], "preprocess") == 0)
		return cmd_preprocess(argv + 2);
	fprintf(stderr, "usage: see tests/parity/imagereward_harness.c\n");
	return 2;
}
