/*
 * tests/unit/test_seqcls.c — the seqcls kind's loading, validation and
 * batching properties on a tiny Qwen3-style folder written here (F32
 * safetensors from a fixed LCG). Numerical parity with PyTorch is
 * tests/parity/test_seqcls_torch.py; this suite checks what needs no
 * oracle: precise config/weight errors, item validation, 422 vs truncation,
 * dimension names, and that a score does not depend on the batch it ran in
 * (packing, chunking, trailing pad tokens).
 */
#include "rwd_check.h"

#include "core/arena.h"
#include "models/model.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { V = 16, H = 8, I = 12, NH = 2, NKV = 1, HD = 4, L = 2, PAD = 15 };

static uint32_t lcg = 12345;

static float frand(void)
{
	lcg = lcg * 1664525u + 1013904223u;
	return ((float)(lcg >> 8) / 16777216.0f - 0.5f) * 1.5f;
}

struct tdef {
	char name[160];
	int64_t d0, d1; /* d1 = 0: rank 1 */
};

/* Write a tiny qwen3 folder; `skip` names a tensor to leave out, `bad` one to give a wrong shape. */
static void write_model(const char *dir, const char *cfg_extra, const char *skip, const char *bad)
{
	struct tdef t[64];
	size_t n = 0;
#define ADD(nm, a, b) do { snprintf(t[n].name, sizeof(t[n].name), "%s", nm); t[n].d0 = a; t[n].d1 = b; n++; } while (0)
	ADD("model.embed_tokens.weight", V, H);
	ADD("model.norm.weight", H, 0);
	ADD("score.weight", 2, H);
	for (int l = 0; l < L; l++) {
		char p[128];
		static const struct { const char *s; int64_t a, b; } per[] = {
			{"input_layernorm.weight", H, 0}, {"post_attention_layernorm.weight", H, 0},
			{"self_attn.q_proj.weight", NH * HD, H}, {"self_attn.k_proj.weight", NKV * HD, H},
			{"self_attn.v_proj.weight", NKV * HD, H}, {"self_attn.o_proj.weight", H, NH * HD},
			{"self_attn.q_norm.weight", HD, 0}, {"self_attn.k_norm.weight", HD, 0},
			{"mlp.gate_proj.weight", I, H}, {"mlp.up_proj.weight", I, H}, {"mlp.down_proj.weight", H, I},
		};
		for (size_t i = 0; i < sizeof(per) / sizeof(per[0]); i++) {
			snprintf(p, sizeof(p), "model.layers.%d.%s", l, per[i].s);
			ADD(p, per[i].a, per[i].b);
		}
	}
#undef ADD
	json_t *hdr = json_object();
	size_t off = 0;
	for (size_t i = 0; i < n; i++) {
		if (skip && strcmp(t[i].name, skip) == 0)
			continue;
		if (bad && strcmp(t[i].name, bad) == 0)
			t[i].d0 += 1;
		size_t cnt = (size_t)t[i].d0 * (size_t)(t[i].d1 ? t[i].d1 : 1);
		json_t *shape = t[i].d1 ? json_pack("[II]", (json_int_t)t[i].d0, (json_int_t)t[i].d1)
			: json_pack("[I]", (json_int_t)t[i].d0);
		json_object_set_new(hdr, t[i].name, json_pack("{s:s,s:o,s:[II]}", "dtype", "F32", "shape", shape,
			"data_offsets", (json_int_t)off, (json_int_t)(off + cnt * 4)));
		off += cnt * 4;
	}
	char *h = json_dumps(hdr, JSON_COMPACT);
	size_t hl = strlen(h), padded = (hl + 7) & ~(size_t)7;
	char path[512];
	snprintf(path, sizeof(path), "%s/model.safetensors", dir);
	FILE *f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	uint64_t len = padded;
	fwrite(&len, 8, 1, f);
	fwrite(h, 1, hl, f);
	for (size_t i = hl; i < padded; i++)
		fputc(' ', f);
	/* data in header order (jansson keeps insertion order = offset order) */
	lcg = 12345;
	for (size_t i = 0; i < n; i++) {
		if (skip && strcmp(t[i].name, skip) == 0)
			continue;
		size_t cnt = (size_t)t[i].d0 * (size_t)(t[i].d1 ? t[i].d1 : 1);
		for (size_t j = 0; j < cnt; j++) {
			float v = strstr(t[i].name, "norm") ? 1.0f + 0.1f * frand() : frand();
			fwrite(&v, 4, 1, f);
		}
	}
	fclose(f);
	free(h);
	json_decref(hdr);
	snprintf(path, sizeof(path), "%s/config.json", dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "{\"architectures\": [\"Qwen3ForSequenceClassification\"], \"model_type\": \"qwen3\","
		" \"vocab_size\": %d, \"hidden_size\": %d, \"intermediate_size\": %d,"
		" \"num_hidden_layers\": %d, \"num_attention_heads\": %d, \"num_key_value_heads\": %d,"
		" \"head_dim\": %d, \"rms_norm_eps\": 1e-6, \"rope_theta\": 1000000, \"pad_token_id\": %d,"
		" \"hidden_act\": \"silu\", \"id2label\": {\"0\": \"helpful\", \"1\": \"honest\"}%s}\n",
		V, H, I, L, NH, NKV, HD, PAD, cfg_extra ? cfg_extra : "");
	fclose(f);
}

static char tmpdir[256];

static void make_dir(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/rwd-seqcls-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_dir(void)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/model.safetensors", tmpdir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/config.json", tmpdir);
	unlink(p);
	rmdir(tmpdir);
}

static int load(const char *opts_json, size_t max_tokens, size_t max_batch_tokens, rwd_model **m,
	rwd_error *err)
{
	rwd_model_params p = rwd_model_default_params();
	json_t *opts = opts_json ? json_loads(opts_json, 0, NULL) : NULL;
	p.name = "t";
	p.path = tmpdir;
	p.options = opts;
	p.limits.max_tokens = max_tokens;
	p.limits.max_batch_tokens = max_batch_tokens;
	p.limits.max_batch_size = 8;
	rwd_error_clear(err);
	int r = rwd_model_load(&p, m, err);
	json_decref(opts);
	return r;
}

/* Score items (JSON texts) as one batch; scores[i][2], status[i]. */
static void run(rwd_model *m, const char *const *items, size_t n, float (*scores)[2], int *status)
{
	rwd_item it[16];
	rwd_item *ptr[16];
	json_t *js[16];
	void *scratch = NULL;
	rwd_error err;
	ck_assert_int_eq(rwd_model_scratch_new(m, &scratch, &err), 0);
	size_t k = 0;
	memset(it, 0, sizeof(it));
	for (size_t i = 0; i < n; i++) {
		js[i] = json_loads(items[i], 0, NULL);
		ck_assert_ptr_nonnull(js[i]);
		it[i].input = js[i];
		rwd_error_clear(&it[i].err);
		status[i] = rwd_model_check(m, js[i], &it[i].cost, &it[i].err);
		if (!status[i])
			ptr[k++] = &it[i];
	}
	rwd_arena *a = rwd_arena_create(0, 0);
	ck_assert_int_eq(rwd_model_run(m, scratch, ptr, k, a), 0);
	for (size_t i = 0; i < n; i++) {
		if (!status[i])
			status[i] = it[i].status;
		scores[i][0] = it[i].scores[0];
		scores[i][1] = it[i].scores[1];
		json_decref(js[i]);
	}
	rwd_item_release(it, n); /* a PRM's step_rewards (item->extra) */
	rwd_arena_destroy(a);
	rwd_model_scratch_free(m, scratch);
}

START_TEST(loads_and_names_dims)
{
	rwd_model *m = NULL;
	rwd_error err;
	make_dir();
	write_model(tmpdir, NULL, NULL, NULL);
	ck_assert_int_eq(load(NULL, 64, 256, &m, &err), 0);
	const rwd_model_info *info = rwd_model_get_info(m);
	ck_assert_str_eq(info->kind, "seqcls");
	ck_assert_uint_eq(info->n_dims, 2);
	ck_assert_str_eq(info->dims[0], "helpful");
	ck_assert_str_eq(info->dims[1], "honest");
	rwd_model_free(m);
	remove_dir();
}
END_TEST

START_TEST(config_errors_are_precise)
{
	static const struct { const char *extra; int code; const char *object; } cases[] = {
		{", \"head_dim\": 3", RWD_E_INVALID, "head_dim"},
		{", \"num_key_value_heads\": 3", RWD_E_INVALID, "num_key_value_heads"},
		{", \"hidden_act\": \"gelu\"", RWD_E_UNSUPPORTED, "hidden_act"},
		{", \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4}", RWD_E_UNSUPPORTED, "rope_scaling"},
		{", \"use_sliding_window\": true", RWD_E_UNSUPPORTED, "use_sliding_window"},
		{", \"model_type\": \"gpt2\"", RWD_E_UNSUPPORTED, "model_type"},
		{", \"pad_token_id\": \"x\"", RWD_E_INVALID, "pad_token_id"},
		{", \"vocab_size\": -1", RWD_E_INVALID, "vocab_size"},
	};
	make_dir();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rwd_model *m = NULL;
		rwd_error err;
		/* later duplicate keys are rejected by jansson, so rewrite the whole config */
		write_model(tmpdir, NULL, NULL, NULL);
		char path[512];
		snprintf(path, sizeof(path), "%s/config.json", tmpdir);
		json_t *cfg = json_load_file(path, 0, NULL);
		char buf[512];
		snprintf(buf, sizeof(buf), "{%s}", cases[i].extra + 1);
		json_t *extra = json_loads(buf, 0, NULL);
		ck_assert_ptr_nonnull(extra);
		json_object_update(cfg, extra);
		json_dump_file(cfg, path, 0);
		json_decref(cfg);
		json_decref(extra);
		int r = load(NULL, 64, 256, &m, &err);
		ck_assert_msg(r == cases[i].code, "case %zu: got %d (%s), want %d", i, r, err.msg, cases[i].code);
		ck_assert_msg(strcmp(err.object, cases[i].object) == 0, "case %zu: object '%s', want '%s'", i,
			err.object, cases[i].object);
		ck_assert_ptr_nonnull(strstr(err.file, "config.json"));
	}
	remove_dir();
}
END_TEST

START_TEST(weight_errors_name_the_tensor)
{
	rwd_model *m = NULL;
	rwd_error err;
	make_dir();
	write_model(tmpdir, NULL, "model.layers.1.self_attn.k_norm.weight", NULL);
	ck_assert_int_eq(load(NULL, 64, 256, &m, &err), RWD_E_NOTFOUND);
	ck_assert_str_eq(err.object, "model.layers.1.self_attn.k_norm.weight");
	write_model(tmpdir, NULL, NULL, "model.layers.0.mlp.up_proj.weight");
	ck_assert_int_eq(load(NULL, 64, 256, &m, &err), RWD_E_INVALID);
	ck_assert_str_eq(err.object, "model.layers.0.mlp.up_proj.weight");
	remove_dir();
}
END_TEST

START_TEST(batch_independent_scores)
{
	rwd_model *m = NULL;
	rwd_error err;
	make_dir();
	write_model(tmpdir, NULL, NULL, NULL);
	ck_assert_int_eq(load(NULL, 64, 256, &m, &err), 0);
	static const char *const batch[] = {
		"{\"input_ids\": [1, 2, 3, 4, 5, 6, 7]}",
		"{\"input_ids\": [9]}",
		"{\"input_ids\": [1, 2, 3, 4, 5, 6, 7, 15, 15]}", /* trailing pad: same as item 0 */
		"{\"input_ids\": [3, 14, 2, 0, 0, 1, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 13]}",
		"{\"input_ids\": [16]}",                          /* outside the vocabulary */
		"{\"input_ids\": []}",
		"{\"text\": \"no tokenizer here\"}",
	};
	float s[7][2], one[1][2];
	int st[7], st1[1];
	run(m, batch, 7, s, st);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(st[i], 0);
	ck_assert_int_eq(st[4], RWD_E_INVALID);
	ck_assert_int_eq(st[5], RWD_E_INVALID);
	ck_assert_int_eq(st[6], RWD_E_UNSUPPORTED);
	for (int d = 0; d < 2; d++)
		ck_assert_float_eq_tol(s[0][d], s[2][d], 1e-5f * (1.0f + fabsf(s[0][d])));
	for (int i = 0; i < 4; i++) {
		run(m, &batch[i], 1, one, st1);
		for (int d = 0; d < 2; d++)
			ck_assert_float_eq_tol(s[i][d], one[0][d], 1e-5f * (1.0f + fabsf(one[0][d])));
	}
	rwd_model_free(m);
	/* a batch larger than max_batch_tokens is split into chunks with the same results */
	ck_assert_int_eq(load(NULL, 20, 20, &m, &err), 0);
	float s2[4][2];
	int st2[4];
	run(m, batch, 4, s2, st2);
	for (int i = 0; i < 4; i++)
		for (int d = 0; d < 2; d++)
			ck_assert_float_eq_tol(s[i][d], s2[i][d], 1e-5f * (1.0f + fabsf(s[i][d])));
	rwd_model_free(m);
	remove_dir();
}
END_TEST

START_TEST(too_long_is_422_or_truncated)
{
	rwd_model *m = NULL;
	rwd_error err;
	make_dir();
	write_model(tmpdir, NULL, NULL, NULL);
	static const char *const items[] = {
		"{\"input_ids\": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}",
		"{\"input_ids\": [5, 6, 7, 8, 9, 10]}",
	};
	float s[2][2];
	int st[2];
	ck_assert_int_eq(load(NULL, 6, 64, &m, &err), 0);
	run(m, items, 2, s, st);
	ck_assert_int_eq(st[0], RWD_E_UNPROCESSABLE);
	ck_assert_int_eq(st[1], 0);
	rwd_model_free(m);
	ck_assert_int_eq(load("{\"truncate\": true}", 6, 64, &m, &err), 0);
	run(m, items, 2, s, st);
	ck_assert_int_eq(st[0], 0);
	for (int d = 0; d < 2; d++) /* the last 6 ids are kept */
		ck_assert_float_eq_tol(s[0][d], s[1][d], 1e-5f * (1.0f + fabsf(s[1][d])));
	rwd_model_free(m);
	/* "right" keeps the first 6 ids (a HF tokenizer's default truncation side) */
	static const char *const items_r[] = {
		"{\"input_ids\": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}",
		"{\"input_ids\": [1, 2, 3, 4, 5, 6]}",
	};
	ck_assert_int_eq(load("{\"truncate\": \"right\"}", 6, 64, &m, &err), 0);
	run(m, items_r, 2, s, st);
	ck_assert_int_eq(st[0], 0);
	for (int d = 0; d < 2; d++)
		ck_assert_float_eq_tol(s[0][d], s[1][d], 1e-5f * (1.0f + fabsf(s[1][d])));
	rwd_model_free(m);
	/* an item's endpoint default ("truncation_side") applies when the model sets none */
	static const char *const items_s[] = {
		"{\"input_ids\": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], \"truncation_side\": \"right\"}",
		"{\"input_ids\": [1, 2, 3, 4, 5, 6]}",
	};
	ck_assert_int_eq(load(NULL, 6, 64, &m, &err), 0);
	run(m, items_s, 2, s, st);
	ck_assert_int_eq(st[0], 0);
	for (int d = 0; d < 2; d++)
		ck_assert_float_eq_tol(s[0][d], s[1][d], 1e-5f * (1.0f + fabsf(s[1][d])));
	rwd_model_free(m);
	/* ...but not over the model's own "truncate": false */
	ck_assert_int_eq(load("{\"truncate\": false}", 6, 64, &m, &err), 0);
	run(m, items_s, 2, s, st);
	ck_assert_int_eq(st[0], RWD_E_UNPROCESSABLE);
	rwd_model_free(m);
	ck_assert_int_eq(load("{\"truncate\": 1}", 6, 64, &m, &err), RWD_E_INVALID);
	ck_assert_str_eq(err.object, "truncate");
	remove_dir();
}
END_TEST

/* Turn the written folder into a Qwen3ForTokenClassification (2 labels: score.weight [2, H]). */
static void make_token_classifier(void)
{
	char path[512], buf[4096];
	snprintf(path, sizeof(path), "%s/config.json", tmpdir);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	char *at = strstr(buf, "SequenceClassification");
	ck_assert_ptr_nonnull(at);
	char out[4200];
	snprintf(out, sizeof(out), "%.*sTokenClassification%s", (int)(at - buf), buf,
		at + strlen("SequenceClassification"));
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(out, f);
	fclose(f);
}

START_TEST(prm_heads_refuse_and_score)
{
	rwd_model *m = NULL;
	rwd_error err;
	make_dir();
	/* a token classifier with no separator anywhere: refused, naming the key */
	write_model(tmpdir, NULL, NULL, NULL);
	make_token_classifier();
	ck_assert_int_eq(load(NULL, 64, 256, &m, &err), RWD_E_INVALID);
	ck_assert_str_eq(err.object, "step_tag_id");
	ck_assert_int_eq(load("{\"step_tag_id\": 100000}", 64, 256, &m, &err), RWD_E_INVALID);
	ck_assert_str_eq(err.object, "options.step_tag_id");
	ck_assert_int_eq(load("{\"step_separator\": \"x\"}", 64, 256, &m, &err), RWD_E_INVALID);
	ck_assert_str_eq(err.object, "options.step_separator"); /* no tokenizer to look it up */
	/* config.json's step_tag_id; options win over it */
	write_model(tmpdir, ", \"step_tag_id\": 7", NULL, NULL);
	make_token_classifier();
	ck_assert_int_eq(load("{\"step_tag_id\": 9}", 64, 256, &m, &err), 0);
	const rwd_model_info *info = rwd_model_get_info(m);
	ck_assert_uint_eq(info->n_dims, 4);
	ck_assert_str_eq(info->dims[0], "prm_min");
	ck_assert_str_eq(info->dims[3], "prm_product");

	const char *items[] = {
		"{\"input_ids\": [1, 2, 9, 4, 9, 6, 5]}",  /* 2 steps; the trailing ids are dropped */
		"{\"input_ids\": [1, 2, 7, 4]}",           /* 7 is config's id, overridden: no step */
		"{\"prompt\": \"q\", \"steps\": [\"a\"]}", /* no tokenizer */
		"{\"input_ids\": [9], \"system\": \"s\"}", /* system without steps */
		"{\"input_ids\": [9, 1, 9]}",
	};
	rwd_item it[5];
	rwd_item *ptr[5];
	json_t *js[5];
	void *scratch = NULL;
	memset(it, 0, sizeof(it));
	ck_assert_int_eq(rwd_model_scratch_new(m, &scratch, &err), 0);
	size_t k = 0;
	for (size_t i = 0; i < 5; i++) {
		js[i] = json_loads(items[i], 0, NULL);
		it[i].input = js[i];
		it[i].status = rwd_model_check(m, js[i], &it[i].cost, &it[i].err);
		if (!it[i].status)
			ptr[k++] = &it[i];
	}
	ck_assert_int_eq(it[2].status, RWD_E_UNSUPPORTED);
	ck_assert_str_eq(it[2].err.object, "prompt");
	ck_assert_int_eq(it[3].status, RWD_E_INVALID);
	ck_assert_str_eq(it[3].err.object, "system");
	rwd_arena *a = rwd_arena_create(0, 0);
	ck_assert_int_eq(rwd_model_run(m, scratch, ptr, k, a), 0);
	ck_assert_int_eq(it[1].status, RWD_E_UNPROCESSABLE);
	ck_assert_ptr_null(it[1].extra);
	ck_assert_int_eq(it[1].present[0], 0);
	for (size_t i = 0; i < 5; i += 4) {
		ck_assert_int_eq(it[i].status, 0);
		json_t *sr = json_object_get(it[i].extra, "step_rewards");
		ck_assert_uint_eq(json_array_size(sr), 2);
		ck_assert_uint_eq(json_array_size(json_object_get(it[i].extra, "step_probs")), 2);
		double p0 = json_real_value(json_array_get(sr, 0)), p1 = json_real_value(json_array_get(sr, 1));
		ck_assert(p0 > 0 && p0 < 1 && p1 > 0 && p1 < 1);
		ck_assert(it[i].present[0] && it[i].present[3]);
		ck_assert(fabs(it[i].scores[0] - fmin(p0, p1)) < 1e-7);
		ck_assert(fabs(it[i].scores[1] - (p0 + p1) / 2) < 1e-7);
		ck_assert(fabs(it[i].scores[2] - p1) < 1e-7);
		ck_assert(fabs(it[i].scores[3] - p0 * p1) < 1e-7);
	}
	/* the same two first tokens and separator: the first step cannot see what follows */
	ck_assert(json_real_value(json_array_get(json_object_get(it[0].extra, "step_rewards"), 0)) !=
		json_real_value(json_array_get(json_object_get(it[4].extra, "step_rewards"), 0)));
	rwd_item_release(it, 5);
	ck_assert_ptr_null(it[0].extra);
	rwd_item_release(it, 5); /* idempotent */
	for (size_t i = 0; i < 5; i++)
		json_decref(js[i]);
	rwd_arena_destroy(a);
	rwd_model_scratch_free(m, scratch);
	rwd_model_free(m);

	/* a sequence classifier refuses steps, naming the field */
	write_model(tmpdir, NULL, NULL, NULL);
	ck_assert_int_eq(load(NULL, 64, 256, &m, &err), 0);
	json_t *st = json_loads("{\"prompt\": \"q\", \"steps\": [\"a\"]}", 0, NULL);
	size_t cost;
	rwd_error_clear(&err);
	ck_assert_int_eq(rwd_model_check(m, st, &cost, &err), RWD_E_INVALID);
	ck_assert_str_eq(err.object, "steps");
	json_decref(st);
	rwd_model_free(m);
	remove_dir();
}
END_TEST

START_TEST(prm_truncation_never_cuts_a_step)
{
	rwd_model *m = NULL;
	rwd_error err;
	make_dir();
	write_model(tmpdir, ", \"step_tag_id\": 9", NULL, NULL);
	make_token_classifier();
	float s[4][2];
	int st[4];
	/* max_tokens 6, no truncation configured: any longer item is a 422 */
	static const char *const items[] = {
		"{\"input_ids\": [1, 9, 2, 9, 3, 4, 5, 6]}", /* right: the first 6 keep both separators */
		"{\"input_ids\": [1, 9, 2, 3, 4, 5, 9]}",    /* right: the second separator would go */
		"{\"input_ids\": [1, 9, 2, 9]}",
		"{\"input_ids\": [9, 1, 2, 3, 4, 5, 9]}",    /* left: the first separator would go */
	};
	ck_assert_int_eq(load(NULL, 6, 64, &m, &err), 0);
	run(m, items, 4, s, st);
	ck_assert_int_eq(st[0], RWD_E_UNPROCESSABLE);
	ck_assert_int_eq(st[1], RWD_E_UNPROCESSABLE);
	ck_assert_int_eq(st[2], 0);
	rwd_model_free(m);
	/* right truncation that keeps every separator scores the kept ids; one that cuts a step is refused */
	ck_assert_int_eq(load("{\"truncate\": \"right\"}", 6, 64, &m, &err), 0);
	run(m, items, 4, s, st);
	ck_assert_int_eq(st[0], 0);
	ck_assert_int_eq(st[1], RWD_E_UNPROCESSABLE);
	ck_assert_int_eq(st[2], 0);
	ck_assert_int_eq(st[3], RWD_E_UNPROCESSABLE); /* the first 6 lose the last separator */
	for (int d = 0; d < 2; d++) /* what follows the last separator never counts */
		ck_assert_float_eq_tol(s[0][d], s[2][d], 1e-6f);
	rwd_model_free(m);
	/* left truncation: cutting the start of the prompt is fine, cutting the first step is not */
	static const char *const items_l[] = {
		"{\"input_ids\": [7, 7, 7, 1, 9, 2, 9]}",
		"{\"input_ids\": [9, 1, 2, 3, 4, 5, 9]}",
		"{\"input_ids\": [7, 7, 1, 9, 2, 9]}",
	};
	ck_assert_int_eq(load("{\"truncate\": \"left\"}", 6, 64, &m, &err), 0);
	run(m, items_l, 3, s, st);
	ck_assert_int_eq(st[0], 0);
	ck_assert_int_eq(st[1], RWD_E_UNPROCESSABLE);
	ck_assert_int_eq(st[2], 0);
	for (int d = 0; d < 2; d++)
		ck_assert_float_eq_tol(s[0][d], s[2][d], 1e-6f);
	rwd_model_free(m);
	remove_dir();
}
END_TEST

static Suite *seqcls_suite(void)
{
	Suite *s = suite_create("seqcls");
	TCase *tc = tcase_create("seqcls");
	tcase_add_test(tc, loads_and_names_dims);
	tcase_add_test(tc, config_errors_are_precise);
	tcase_add_test(tc, weight_errors_name_the_tensor);
	tcase_add_test(tc, batch_independent_scores);
	tcase_add_test(tc, too_long_is_422_or_truncated);
	tcase_add_test(tc, prm_heads_refuse_and_score);
	tcase_add_test(tc, prm_truncation_never_cuts_a_step);
	suite_add_tcase(s, tc);
	return s;
}

RWD_CHECK_MAIN(seqcls_suite)
