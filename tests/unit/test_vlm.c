/*
 * tests/unit/test_vlm.c — the `vlm` kind's layers: image/qwen_vl's
 * smart_resize and grid rules, models/qwen_lm's get_rope_index, and the
 * load-time refusals of models/qwen_vision and models/qwen_lm (a missing or
 * misshaped tensor is named; bad configs name the key). Numerical parity is
 * tests/parity/test_vlm_prep.py and test_vlm_torch.py.
 */
#include "rwd_check.h"

#include "image/qwen_vl.h"
#include "models/qwen_lm.h"
#include "models/qwen_vision.h"
#include "models/vlm_head.h"

#include <math.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- a safetensors file in memory, F32 tensors filled from an LCG ---- */

struct st_tensor {
	const char *name;
	int nd;
	int64_t shape[5];
};

static void *build_st(const struct st_tensor *t, size_t n, const char *skip, size_t *len)
{
	char hdr[16384];
	size_t off = 0, hl = 0, total = 0;
	hl += (size_t)snprintf(hdr + hl, sizeof(hdr) - hl, "{");
	int first = 1;
	for (size_t i = 0; i < n; i++) {
		if (skip && strcmp(skip, t[i].name) == 0)
			continue;
		size_t numel = 1;
		char shp[128];
		size_t sl = 0;
		for (int d = 0; d < t[i].nd; d++) {
			numel *= (size_t)t[i].shape[d];
			sl += (size_t)snprintf(shp + sl, sizeof(shp) - sl, "%s%lld", d ? "," : "",
				(long long)t[i].shape[d]);
		}
		hl += (size_t)snprintf(hdr + hl, sizeof(hdr) - hl,
			"%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%s],\"data_offsets\":[%zu,%zu]}",
			first ? "" : ",", t[i].name, shp, off, off + numel * 4);
		first = 0;
		off += numel * 4;
	}
	hl += (size_t)snprintf(hdr + hl, sizeof(hdr) - hl, "}");
	while (hl % 8)
		hdr[hl++] = ' ';
	total = 8 + hl + off;
	uint8_t *buf = malloc(total);
	uint64_t h64 = hl;
	memcpy(buf, &h64, 8);
	memcpy(buf + 8, hdr, hl);
	uint32_t s = 12345;
	float *f = (float *)(buf + 8 + hl);
	for (size_t i = 0; i < off / 4; i++) {
		s = s * 1664525u + 1013904223u;
		f[i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * 0.5f;
	}
	*len = total;
	return buf;
}

/* A Qwen2.5-VL tower: width 8, 2 heads, depth 1, patch 2, window 1 merged cell. */
static const struct st_tensor VIS[] = {
	{"visual.patch_embed.proj.weight", 5, {8, 3, 2, 2, 2}},
	{"visual.blocks.0.norm1.weight", 1, {8}},
	{"visual.blocks.0.norm2.weight", 1, {8}},
	{"visual.blocks.0.attn.qkv.weight", 2, {24, 8}},
	{"visual.blocks.0.attn.qkv.bias", 1, {24}},
	{"visual.blocks.0.attn.proj.weight", 2, {8, 8}},
	{"visual.blocks.0.attn.proj.bias", 1, {8}},
	{"visual.blocks.0.mlp.gate_proj.weight", 2, {8, 8}},
	{"visual.blocks.0.mlp.gate_proj.bias", 1, {8}},
	{"visual.blocks.0.mlp.up_proj.weight", 2, {8, 8}},
	{"visual.blocks.0.mlp.up_proj.bias", 1, {8}},
	{"visual.blocks.0.mlp.down_proj.weight", 2, {8, 8}},
	{"visual.blocks.0.mlp.down_proj.bias", 1, {8}},
	{"visual.merger.ln_q.weight", 1, {8}},
	{"visual.merger.mlp.0.weight", 2, {32, 32}},
	{"visual.merger.mlp.0.bias", 1, {32}},
	{"visual.merger.mlp.2.weight", 2, {8, 32}},
	{"visual.merger.mlp.2.bias", 1, {8}},
};
static const char VIS_CFG[] = "{\"depth\":1,\"hidden_size\":8,\"out_hidden_size\":8,"
	"\"intermediate_size\":8,\"num_heads\":2,\"patch_size\":2,\"temporal_patch_size\":2,"
	"\"spatial_merge_size\":2,\"window_size\":4,\"fullatt_block_indexes\":[]}";

/* The safetensors bytes the last load_vis() built (borrowed by its weights). */
static void *vis_bytes;

static void vis_release(rwd_weights *w)
{
	rwd_weights_free(w);
	free(vis_bytes);
	vis_bytes = NULL;
}

static int load_vis(const char *skip, const char *cfg_text, rwd_weights **w, rwd_qwen_vision **v,
	rwd_error *err)
{
	size_t len;
	void *buf = vis_bytes = build_st(VIS, sizeof(VIS) / sizeof(VIS[0]), skip, &len);
	ck_assert_int_eq(rwd_safetensors_parse(buf, len, "vis", NULL, w, err), 0);
	json_t *cfg = json_loads(cfg_text, 0, NULL);
	ck_assert_ptr_nonnull(cfg);
	int r = rwd_qwen_vision_load(*w, "visual", cfg, RWD_QWEN_VISION_2_5, v, err);
	json_decref(cfg);
	return r;
}

START_TEST(vision_loads_runs_and_names_missing_tensors)
{
	rwd_weights *w = NULL;
	rwd_qwen_vision *v = NULL;
	rwd_error err;
	rwd_error_clear(&err);
	ck_assert_int_eq(load_vis(NULL, VIS_CFG, &w, &v, &err), 0);
	const rwd_qwen_vision_info *in = rwd_qwen_vision_get_info(v);
	ck_assert_uint_eq(in->in_dim, 24);
	ck_assert_uint_eq(in->window, 1);
	int32_t grid[3] = {1, 4, 6}, bad[3] = {1, 3, 6};
	size_t ns = rwd_qwen_vision_scratch(v, 24, 24);
	float *scratch = malloc(ns * sizeof(float)), rows[24 * 24], out[6 * 8];
	for (int i = 0; i < 24 * 24; i++)
		rows[i] = (float)((i * 37) % 11) / 11.0f - 0.5f;
	ck_assert_int_eq(rwd_qwen_vision_forward(v, rows, grid, 1, out, scratch, ns), 0);
	for (int i = 0; i < 48; i++)
		ck_assert(out[i] == out[i]);
	ck_assert_int_eq(rwd_qwen_vision_forward(v, rows, bad, 1, out, scratch, ns), RWD_E_INVALID);
	/* too little scratch is refused, never overrun */
	ck_assert_int_eq(rwd_qwen_vision_forward(v, rows, grid, 1, out, scratch, ns - 1), RWD_E_INVALID);
	free(scratch);
	rwd_qwen_vision_free(v);
	vis_release(w);

	char buf[1024];
	v = NULL;
	rwd_error_clear(&err);
	ck_assert_int_eq(load_vis("visual.blocks.0.attn.qkv.bias", VIS_CFG, &w, &v, &err), RWD_E_NOTFOUND);
	ck_assert_ptr_null(v);
	ck_assert_msg(strstr(rwd_error_format(&err, buf, sizeof(buf)), "visual.blocks.0.attn.qkv.bias"),
		"%s", buf);
	vis_release(w);

	/* the config says 16 wide: every tensor is misshaped; the first is named */
	rwd_error_clear(&err);
	ck_assert_int_eq(load_vis(NULL, "{\"depth\":1,\"hidden_size\":16,\"out_hidden_size\":8,"
		"\"intermediate_size\":8,\"num_heads\":2,\"patch_size\":2}", &w, &v, &err), RWD_E_INVALID);
	ck_assert_msg(strstr(rwd_error_format(&err, buf, sizeof(buf)), "patch_embed"), "%s", buf);
	vis_release(w);

	/* a full-attention index beyond the depth, an unknown activation */
	rwd_error_clear(&err);
	ck_assert_int_eq(load_vis(NULL, "{\"depth\":1,\"hidden_size\":8,\"out_hidden_size\":8,"
		"\"intermediate_size\":8,\"num_heads\":2,\"patch_size\":2,\"fullatt_block_indexes\":[3]}",
		&w, &v, &err), RWD_E_INVALID);
	ck_assert_str_eq(err.object, "fullatt_block_indexes");
	vis_release(w);
	rwd_error_clear(&err);
	ck_assert_int_eq(load_vis(NULL, "{\"depth\":1,\"hidden_size\":8,\"out_hidden_size\":8,"
		"\"intermediate_size\":8,\"num_heads\":2,\"patch_size\":2,\"hidden_act\":\"mish\"}",
		&w, &v, &err), RWD_E_UNSUPPORTED);
	vis_release(w);
}
END_TEST

START_TEST(lm_refuses_bad_mrope_section_and_missing_tensors)
{
	static const struct st_tensor LM[] = {
		{"model.embed_tokens.weight", 2, {16, 8}},
		{"model.norm.weight", 1, {8}},
		{"model.layers.0.input_layernorm.weight", 1, {8}},
		{"model.layers.0.post_attention_layernorm.weight", 1, {8}},
		{"model.layers.0.self_attn.q_proj.weight", 2, {8, 8}},
		{"model.layers.0.self_attn.q_proj.bias", 1, {8}},
		{"model.layers.0.self_attn.k_proj.weight", 2, {4, 8}},
		{"model.layers.0.self_attn.k_proj.bias", 1, {4}},
		{"model.layers.0.self_attn.v_proj.weight", 2, {4, 8}},
		{"model.layers.0.self_attn.v_proj.bias", 1, {4}},
		{"model.layers.0.self_attn.o_proj.weight", 2, {8, 8}},
		{"model.layers.0.mlp.gate_proj.weight", 2, {12, 8}},
		{"model.layers.0.mlp.up_proj.weight", 2, {12, 8}},
		{"model.layers.0.mlp.down_proj.weight", 2, {8, 12}},
	};
	const char *good = "{\"hidden_size\":8,\"vocab_size\":16,\"num_hidden_layers\":1,"
		"\"num_attention_heads\":2,\"num_key_value_heads\":1,\"intermediate_size\":12,"
		"\"rope_scaling\":{\"type\":\"mrope\",\"mrope_section\":[1,1,0]}}";
	const char *badsec = "{\"hidden_size\":8,\"vocab_size\":16,\"num_hidden_layers\":1,"
		"\"num_attention_heads\":2,\"num_key_value_heads\":1,\"intermediate_size\":12,"
		"\"rope_scaling\":{\"type\":\"mrope\",\"mrope_section\":[1,1,1]}}";
	rwd_error err;
	char buf[1024];
	size_t len;
	for (int pass = 0; pass < 3; pass++) {
		rwd_weights *w = NULL;
		rwd_qwen_lm *m = NULL;
		rwd_error_clear(&err);
		const char *skip = pass == 2 ? "model.layers.0.self_attn.o_proj.weight" : NULL;
		void *st = build_st(LM, sizeof(LM) / sizeof(LM[0]), skip, &len);
		ck_assert_int_eq(rwd_safetensors_parse(st, len, "lm", NULL, &w, &err), 0);
		json_t *cfg = json_loads(pass == 1 ? badsec : good, 0, NULL);
		int r = rwd_qwen_lm_load(w, "model", cfg, &m, &err);
		if (pass == 0) {
			ck_assert_int_eq(r, 0);
			float e[8];
			ck_assert_int_eq(rwd_qwen_lm_embed(m, 15, e), 0);
			ck_assert_int_eq(rwd_qwen_lm_embed(m, 16, e), RWD_E_INVALID);
		} else if (pass == 1) {
			ck_assert_int_eq(r, RWD_E_INVALID);
			ck_assert_str_eq(err.object, "rope_scaling");
		} else {
			ck_assert_int_eq(r, RWD_E_NOTFOUND);
			ck_assert_msg(strstr(rwd_error_format(&err, buf, sizeof(buf)), "o_proj.weight"), "%s", buf);
		}
		rwd_qwen_lm_free(m);
		rwd_weights_free(w);
		json_decref(cfg);
		free(st);
	}
}
END_TEST

START_TEST(rope_index_follows_get_rope_index)
{
	/* text(2) <img 2x2 merged> text(2): image at s=2: t=2, h=2..3, w=2..3; text resumes at 4 */
	int32_t ids[8] = {7, 8, 9, 9, 9, 9, 5, 6};
	int32_t grid[3] = {1, 4, 4}, pos[24];
	double step = 1.0;
	ck_assert_int_eq(rwd_qwen_lm_rope_index(ids, 8, 9, 10, grid, &step, 1, 2, pos), 0);
	const int32_t t[8] = {0, 1, 2, 2, 2, 2, 4, 5}, h[8] = {0, 1, 2, 2, 3, 3, 4, 5},
		      w[8] = {0, 1, 2, 3, 2, 3, 4, 5};
	for (int i = 0; i < 8; i++) {
		ck_assert_int_eq(pos[i], t[i]);
		ck_assert_int_eq(pos[8 + i], h[i]);
		ck_assert_int_eq(pos[16 + i], w[i]);
	}
	/* a 2-frame video grid (2, 2, 2) with t_step 2 (2.5-VL, tokens_per_second 2) */
	int32_t vids[4] = {1, 10, 10, 3}, vg[3] = {2, 2, 2}, vp[12];
	double vstep = 2.0;
	ck_assert_int_eq(rwd_qwen_lm_rope_index(vids, 4, 9, 10, vg, &vstep, 1, 2, vp), 0);
	ck_assert_int_eq(vp[1], 1);
	ck_assert_int_eq(vp[2], 3);
	ck_assert_int_eq(vp[3], 4); /* max(3, 1, 1) + 1 */
	/* placeholder runs that do not match the grids */
	int32_t shorter[7] = {7, 8, 9, 9, 9, 5, 6};
	ck_assert_int_eq(rwd_qwen_lm_rope_index(shorter, 7, 9, 10, grid, &step, 1, 2, pos), RWD_E_INVALID);
	int32_t longer[9] = {7, 8, 9, 9, 9, 9, 9, 5, 6};
	ck_assert_int_eq(rwd_qwen_lm_rope_index(longer, 9, 9, 10, grid, &step, 1, 2, pos), RWD_E_INVALID);
	ck_assert_int_eq(rwd_qwen_lm_rope_index(ids, 8, 9, 10, grid, &step, 0, 2, pos), RWD_E_INVALID);
}
END_TEST

START_TEST(smart_resize_limits)
{
	int oh, ow;
	ck_assert_int_eq(rwd_qwen_vl_smart_resize(1000, 1000, 28, 200704, 200704, 1, &oh, &ow), 0);
	ck_assert_int_eq(oh, 448);
	ck_assert_int_eq(ow, 448);
	/* half-way rounds to even: 42 / 28 = 1.5 -> 2, 70 / 28 = 2.5 -> 2 */
	ck_assert_int_eq(rwd_qwen_vl_smart_resize(42, 70, 28, 0, 1 << 30, 0, &oh, &ow), 0);
	ck_assert_int_eq(oh, 56);
	ck_assert_int_eq(ow, 56);
	ck_assert_int_eq(rwd_qwen_vl_smart_resize(20, 100, 28, 3136, 1003520, 0, &oh, &ow), RWD_E_INVALID);
	ck_assert_int_eq(rwd_qwen_vl_smart_resize(20, 100, 28, 3136, 1003520, 1, &oh, &ow), 0);
	ck_assert_int_eq(rwd_qwen_vl_smart_resize(30, 6100, 28, 3136, 1003520, 1, &oh, &ow), RWD_E_INVALID);
	ck_assert_int_eq(rwd_qwen_vl_smart_resize(0, 100, 28, 3136, 1003520, 1, &oh, &ow), RWD_E_INVALID);
	ck_assert_int_eq(rwd_qwen_vl_smart_resize(70000, 700, 28, 3136, 1003520, 1, &oh, &ow), RWD_E_INVALID);
	rwd_qwen_vl_prep p = rwd_qwen_vl_prep_default();
	int gt, gh, gw;
	ck_assert_int_eq(rwd_qwen_vl_prep_grid(&p, 56, 84, 3, &gt, &gh, &gw), 0);
	ck_assert_int_eq(gt, 2);
	ck_assert_int_eq(gh, 6);
	ck_assert_int_eq(gw, 4);
	ck_assert_int_eq(rwd_qwen_vl_prep_grid(&p, 56, 84, 0, &gt, &gh, &gw), RWD_E_INVALID);
	p.do_resize = 0;
	ck_assert_int_eq(rwd_qwen_vl_prep_grid(&p, 57, 84, 1, &gt, &gh, &gw), RWD_E_INVALID);
}
END_TEST

/* Write a head file into a fresh directory and load `spec` against it. */
static int load_heads(const char *spec_text, char *dir, rwd_vlm_heads **h, rwd_error *err)
{
	static const struct st_tensor HEAD[] = {
		{"rm_head.0.weight", 2, {4, 8}},
		{"rm_head.0.bias", 1, {4}},
		{"rm_head.2.weight", 2, {2, 4}},
	};
	strcpy(dir, "/tmp/rwd-vlm-head-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	size_t len;
	void *st = build_st(HEAD, 3, NULL, &len);
	char path[256];
	snprintf(path, sizeof(path), "%s/head.safetensors", dir);
	FILE *f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(st, 1, len, f), len);
	fclose(f);
	free(st);
	json_t *spec = json_loads(spec_text, 0, NULL);
	ck_assert_ptr_nonnull(spec);
	int r = rwd_vlm_heads_load(dir, spec, 8, h, err);
	json_decref(spec);
	unlink(path);
	rmdir(dir);
	return r;
}

START_TEST(heads_compute_mu_sigma_and_refuse_bad_specs)
{
	const char *good = "{\"heads\":{\"rm_head\":{\"file\":\"head.safetensors\",\"layers\":["
		"{\"weight\":\"rm_head.0.weight\",\"bias\":\"rm_head.0.bias\",\"activation\":\"relu\"},"
		"{\"weight\":\"rm_head.2.weight\",\"bias\":null,\"activation\":null}]}},"
		"\"dimensions\":[{\"name\":\"q\",\"prompt\":\"p\",\"pool\":\"<|Reward|>\",\"head\":\"rm_head\","
		"\"mu\":0,\"log_sigma\":1},{\"name\":\"m\",\"prompt\":\"p\",\"pool\":\"last\","
		"\"head\":\"rm_head\",\"mu\":1,\"log_sigma\":null}]}";
	char dir[64], buf[1024];
	rwd_vlm_heads *h = NULL;
	rwd_error err;
	rwd_error_clear(&err);
	ck_assert_int_eq(load_heads(good, dir, &h, &err), 0);
	ck_assert_uint_eq(rwd_vlm_heads_n_dims(h), 2);
	ck_assert_uint_eq(rwd_vlm_heads_out_dim(h, 0), 2);
	float x[8] = {1, -1, 0.5f, 2, -2, 0, 1, 1}, out[2], sc[16], mu, sg;
	rwd_vlm_head_run(h, 0, x, out, sc);
	rwd_vlm_dim_values(h, 0, out, &mu, &sg);
	ck_assert(mu == out[0]);
	ck_assert_float_eq_tol(sg, expf(out[1]), 1e-6f * sg);
	rwd_vlm_dim_values(h, 1, out, &mu, &sg);
	ck_assert(mu == out[1] && isnan(sg));
	rwd_vlm_heads_free(h);

	/* a missing tensor is named; mu beyond the head's output; unknown head; a path */
	static const char *bad[][2] = {
		{"rm_head.9.weight", "\"rm_head.0.weight\",\"bias\":\"rm_head.0.bias\""},
		{"\"mu\"", "\"mu\":0,\"log_sigma\":1}"},
		{"\"head\"", "\"head\":\"rm_head\",\"mu\":0"},
		{"\"file\"", "\"file\":\"head.safetensors\""},
	};
	static const char *repl[] = {
		"\"rm_head.9.weight\",\"bias\":\"rm_head.0.bias\"",
		"\"mu\":2,\"log_sigma\":1}",
		"\"head\":\"nope\",\"mu\":0",
		"\"file\":\"../head.safetensors\"",
	};
	static const int codes[] = {RWD_E_NOTFOUND, RWD_E_INVALID, RWD_E_INVALID, RWD_E_INVALID};
	for (int i = 0; i < 4; i++) {
		char spec[2048];
		const char *at = strstr(good, bad[i][1]);
		ck_assert_ptr_nonnull(at);
		snprintf(spec, sizeof(spec), "%.*s%s%s", (int)(at - good), good, repl[i], at + strlen(bad[i][1]));
		h = NULL;
		rwd_error_clear(&err);
		ck_assert_int_eq(load_heads(spec, dir, &h, &err), codes[i]);
		ck_assert_ptr_null(h);
		if (i == 0)
			ck_assert_msg(strstr(rwd_error_format(&err, buf, sizeof(buf)), "rm_head.9.weight"), "%s", buf);
	}
}
END_TEST

static Suite *vlm_suite(void)
{
	Suite *s = suite_create("vlm");
	TCase *tc = tcase_create("vlm");
	tcase_add_test(tc, vision_loads_runs_and_names_missing_tensors);
	tcase_add_test(tc, lm_refuses_bad_mrope_section_and_missing_tensors);
	tcase_add_test(tc, rope_index_follows_get_rope_index);
	tcase_add_test(tc, smart_resize_limits);
	tcase_add_test(tc, heads_compute_mu_sigma_and_refuse_bad_specs);
	suite_add_tcase(s, tc);
	return s;
}

RWD_CHECK_MAIN(vlm_suite)
