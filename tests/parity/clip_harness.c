/*
 * tests/parity/clip_harness.c — drives the clip kind for test_clip_torch.py.
 *
 *   clip_harness embed MODEL PIXELS N IDS OUT_IMG OUT_TXT [OPTIONS]
 *       PIXELS: N preprocessed images, float32 [N, 3, S, S]; IDS: one text per
 *       line, space-separated token ids. Writes the projected embeddings,
 *       float32 [N, D] and [texts, D]. Batch capacity = max(N, texts).
 *   clip_harness tokenize MODEL TEXTS OUT
 *       TEXTS: JSON array of strings; OUT: JSON array of id arrays (the
 *       model's tokenizer, truncated to the context length).
 *   clip_harness score MODEL OPTIONS ITEMS OUT
 *       OPTIONS: the kind options as JSON (or "null"); ITEMS: JSON array of
 *       items, run as ONE batch through rwd_model_run; OUT: JSON array of
 *       {"status": code, "error": msg, "scores": {dim: value}} per item.
 * (Throughput, GEMM rates and the FMA peak live in bench/bench_harness.c.)
 * Exit 0, or 1 with a message on stderr.
 */
#include "core/arena.h"
#include "core/thread.h"
#include "models/clip.h"
#include "models/model.h"
#include "nn/nn.h"
#include "text/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what, const rwd_error *err)
{
	char buf[1024];
	fprintf(stderr, "%s: %s\n", what, err ? rwd_error_format(err, buf, sizeof(buf)) : "failed");
	exit(1);
}

static void *read_file(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = malloc((size_t)len + 1);
	if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	if (buf)
		buf[len] = 0;
	*n = (size_t)len;
	return buf;
}

static int cmd_embed(char **argv)
{
	const char *dir = argv[0];
	size_t n_img = (size_t)atol(argv[2]), nb;
	char *ids_txt = read_file(argv[3], &nb);
	if (!ids_txt)
		die("cannot read ids", NULL);
	/* parse the id lines */
	size_t n_txt = 0, cap_ids = 1024, n_all = 0;
	int32_t *all = malloc(cap_ids * sizeof(*all));
	size_t *lens = calloc(nb + 1, sizeof(*lens));
	char *save = NULL;
	for (char *line = strtok_r(ids_txt, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		size_t len = 0;
		for (char *p = line; *p;) {
			char *end;
			long v = strtol(p, &end, 10);
			if (end == p)
				break;
			if (n_all == cap_ids)
				all = realloc(all, (cap_ids *= 2) * sizeof(*all));
			all[n_all++] = (int32_t)v;
			len++;
			p = end;
		}
		lens[n_txt++] = len;
	}
	rwd_batch_limits lim = rwd_model_default_params().limits;
	lim.max_batch_size = n_img > n_txt ? n_img : n_txt;
	if (!lim.max_batch_size)
		lim.max_batch_size = 1;
	rwd_error err;
	rwd_error_clear(&err);
	rwd_clip *m = NULL;
	json_error_t jerr;
	json_t *opts = argv[6] ? json_loads(argv[6], JSON_DECODE_ANY, &jerr) : NULL;
	if (argv[6] && !opts)
		die("bad OPTIONS json", NULL);
	if (rwd_clip_load(dir, json_is_object(opts) ? opts : NULL, &lim, &m, &err))
		die("load", &err);
	json_decref(opts);
	void *scratch = NULL;
	if (rwd_clip_scratch_new(m, &scratch, &err))
		die("scratch", &err);
	const size_t S = (size_t)rwd_clip_image_size(m), D = rwd_clip_projection_dim(m);
	size_t px_bytes;
	float *px = read_file(argv[1], &px_bytes);
	if (!px || px_bytes != n_img * 3 * S * S * sizeof(float))
		die("pixel file has the wrong size", NULL);
	const float **pp = malloc((n_img + 1) * sizeof(*pp));
	for (size_t i = 0; i < n_img; i++)
		pp[i] = px + i * 3 * S * S;
	float *ie = malloc((n_img * D + 1) * sizeof(float));
	rwd_clip_encode_images(m, scratch, pp, n_img, ie);
	const int32_t **ip = malloc((n_txt + 1) * sizeof(*ip));
	for (size_t i = 0, off = 0; i < n_txt; off += lens[i], i++)
		ip[i] = all + off;
	float *te = malloc((n_txt * D + 1) * sizeof(float));
	if (rwd_clip_encode_texts(m, scratch, ip, lens, n_txt, te))
		die("encode_texts rejected the ids", NULL);
	FILE *f = fopen(argv[4], "wb");
	fwrite(ie, sizeof(float), n_img * D, f);
	fclose(f);
	f = fopen(argv[5], "wb");
	fwrite(te, sizeof(float), n_txt * D, f);
	fclose(f);
	free(te);
	free(ip);
	free(ie);
	free(pp);
	free(px);
	free(all);
	free(lens);
	free(ids_txt);
	rwd_clip_scratch_free(scratch);
	rwd_clip_free(m);
	return 0;
}

static int cmd_tokenize(char **argv)
{
	rwd_error err;
	rwd_error_clear(&err);
	rwd_batch_limits lim = rwd_model_default_params().limits;
	lim.max_batch_size = 1;
	rwd_clip *m = NULL;
	if (rwd_clip_load(argv[0], NULL, &lim, &m, &err))
		die("load", &err);
	rwd_tokenizer *tok = NULL;
	if (rwd_tokenizer_load_dir(argv[0], RWD_TOKENIZER_CLIP, NULL, &tok, &err))
		die("tokenizer", &err);
	json_error_t jerr;
	json_t *texts = json_load_file(argv[1], 0, &jerr);
	json_t *out = json_array();
	rwd_arena *a = rwd_arena_create(0, 0);
	size_t i;
	json_t *t;
	json_array_foreach(texts, i, t) {
		rwd_encode_params ep = rwd_encode_default_params();
		ep.max_length = rwd_clip_context_length(m);
		rwd_token_ids ids;
		if (rwd_tokenizer_encode(tok, json_string_value(t), json_string_length(t), &ep, a, &ids,
			&err))
			die("encode", &err);
		json_t *arr = json_array();
		for (size_t k = 0; k < ids.n; k++)
			json_array_append_new(arr, json_integer(ids.ids[k]));
		json_array_append_new(out, arr);
	}
	json_dump_file(out, argv[2], 0);
	rwd_arena_destroy(a);
	json_decref(out);
	json_decref(texts);
	rwd_tokenizer_free(tok);
	rwd_clip_free(m);
	return 0;
}

static int cmd_score(char **argv)
{
	rwd_error err;
	rwd_error_clear(&err);
	json_error_t jerr;
	json_t *opts = json_loads(argv[1], JSON_DECODE_ANY, &jerr);
	json_t *items = json_load_file(argv[2], 0, &jerr);
	if (!items || !json_is_array(items))
		die("items file", NULL);
	size_t n = json_array_size(items);
	rwd_model_params p = rwd_model_default_params();
	p.name = "clip";
	p.kind = "clip";
	p.path = argv[0];
	p.options = json_is_null(opts) ? NULL : opts;
	p.limits.max_batch_size = n ? n : 1;
	rwd_model *m = NULL;
	if (rwd_model_load(&p, &m, &err))
		die("load", &err);
	void *scratch = NULL;
	if (rwd_model_scratch_new(m, &scratch, &err))
		die("scratch", &err);
	rwd_item *its = calloc(n + 1, sizeof(*its));
	rwd_item **ptrs = calloc(n + 1, sizeof(*ptrs));
	for (size_t i = 0; i < n; i++) {
		its[i].input = json_array_get(items, i);
		its[i].index = i;
		ptrs[i] = &its[i];
		size_t cost;
		rwd_error_clear(&its[i].err);
		int r = rwd_model_check(m, its[i].input, &cost, &its[i].err);
		if (r)
			its[i].status = r;
	}
	/* only checked items go to the batch */
	rwd_item **ok = calloc(n + 1, sizeof(*ok));
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (!its[i].status)
			ok[k++] = &its[i];
	rwd_arena *a = rwd_arena_create(0, 0);
	rwd_model_run(m, scratch, ok, k, a);
	const rwd_model_info *info = rwd_model_get_info(m);
	json_t *out = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_object();
		json_object_set_new(o, "status", json_integer(its[i].status));
		if (its[i].status) {
			char buf[1024];
			json_object_set_new(o, "error",
				json_string(rwd_error_format(&its[i].err, buf, sizeof(buf))));
		}
		json_t *sc = json_object();
		for (size_t d = 0; d < info->n_dims; d++)
			if (!its[i].status && its[i].present[d])
				json_object_set_new(sc, info->dims[d], json_real(its[i].scores[d]));
		json_object_set_new(o, "scores", sc);
		json_array_append_new(out, o);
	}
	json_t *dims = json_array();
	for (size_t d = 0; d < info->n_dims; d++)
		json_array_append_new(dims, json_string(info->dims[d]));
	json_t *doc = json_pack("{s:o, s:o}", "items", out, "dims", dims);
	json_dump_file(doc, argv[3], 0);
	json_decref(doc);
	rwd_arena_destroy(a);
	free(ok);
	free(ptrs);
	free(its);
	rwd_model_scratch_free(m, scratch);
	rwd_model_free(m);
	json_decref(items);
	json_decref(opts);
	return 0;
}

int main(int argc, char **argv)
{
	if ((argc == 8 || argc == 9) && strcmp(argv[1], "embed") == 0)
		return cmd_embed(argv + 2);
	if (argc == 5 && strcmp(argv[1], "tokenize") == 0)
		return cmd_tokenize(argv + 2);
	if (argc == 6 && strcmp(argv[1], "score") == 0)
		return cmd_score(argv + 2);
	fprintf(stderr, "usage: see tests/parity/clip_harness.c\n");
	return 2;
}
