/*
 * tests/fuzz/fuzz_request_common.h — the models fuzz_request.c and
 * fuzz_request_fast.c serve: an `mlp` head (a 4-in, 2-out safetensors file
 * written at start-up) named "head", plus the built-in kinds that are
 * compiled in ("rules", "image_metrics"); find() resolves an unnamed request
 * to models[pick % n].
 */
#ifndef RWD_FUZZ_REQUEST_COMMON_H
#define RWD_FUZZ_REQUEST_COMMON_H

#include "models/model.h"
#include "serve/request.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_MODELS 4
static rwd_model *models[MAX_MODELS];
static size_t n_models;

/* A minimal mlp head: layers.0.weight [2, 4] and layers.0.bias [2], F32. */
static int write_head(const char *path)
{
	static const char hdr[] =
		"{\"layers.0.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
		"\"layers.0.weight\":{\"dtype\":\"F32\",\"shape\":[2,4],\"data_offsets\":[8,40]}}";
	size_t hlen = sizeof(hdr) - 1, padded = (hlen + 7) & ~(size_t)7;
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	uint64_t n = padded;
	unsigned char le[8];
	for (int i = 0; i < 8; i++)
		le[i] = (unsigned char)(n >> (8 * i));
	fwrite(le, 1, 8, f);
	fwrite(hdr, 1, hlen, f);
	for (size_t i = hlen; i < padded; i++)
		fputc(' ', f);
	float w[10] = {0.5f, -1.0f, 0.25f, 1.0f, -0.5f, 2.0f, 0.0f, 1.5f, -0.75f, 0.125f};
	fwrite(w, sizeof(float), 10, f);
	return fclose(f);
}

static void load(const char *name, const char *kind, const char *path)
{
	rwd_model_params p = rwd_model_default_params();
	p.name = name;
	p.kind = kind;
	p.path = path;
	p.limits.max_batch_size = 8;
	rwd_error err;
	rwd_error_clear(&err);
	/* a model that does not load aborts the target: with fewer models every
	 * input would take the error path and the corpus replay would pass on nothing */
	if (n_models >= MAX_MODELS || rwd_model_load(&p, &models[n_models], &err) != 0) {
		fprintf(stderr, "fuzz_request: model %s (%s) does not load: %s\n", name, kind, err.msg);
		abort();
	}
	n_models++;
}

static void init(void)
{
	char path[64];
	snprintf(path, sizeof(path), "/tmp/rwd-fuzz-head-%ld.safetensors", (long)getpid());
	if (write_head(path) != 0) {
		fprintf(stderr, "fuzz_request: cannot write %s\n", path);
		abort();
	}
	load("head", "mlp", path);
	unlink(path);
	/* built in (lib/models) */
	load("rules", "rules", NULL);
	load("image_metrics", "image_metrics", NULL);
	fprintf(stderr, "fuzz_request: %zu models served\n", n_models);
}

typedef struct find_ctx {
	size_t pick;
} find_ctx;

static const rwd_model *find(void *ctx, const char *name, void **user, rwd_error *err)
{
	find_ctx *fc = ctx;
	if (!name) {
		if (n_models == 0)
			return (void)rwd_errorf(err, RWD_E_STATE, "no model"), NULL;
		*user = NULL;
		return models[fc->pick % n_models];
	}
	for (size_t i = 0; i < n_models; i++)
		if (strcmp(rwd_model_get_info(models[i])->name, name) == 0)
			return models[i];
	return (void)rwd_errorf(err, RWD_E_NOTFOUND, "no model named '%.64s'", name), NULL;
}

#endif
