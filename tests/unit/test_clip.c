/* tests/unit/test_clip.c — the clip kind's loading, validation and pooling
 * rules on a micro checkpoint written by the test itself (the numerical
 * parity is tests/parity/test_clip_torch.py). */
#include "rwd_check.h"

#include "core/error.h"
#include "models/clip.h"
#include "models/model.h"

#include <jansson.h>
#include <stdint.h>
#include <sys/stat.h>

/* micro sizes: vision H 8, 1 layer, 2 heads, ffn 16, patch 4, image 8;
 * text H 8, vocab 64, ctx 8; projection 6 */
enum { VH = 8, TH = 8, FF = 16, PATCH = 4, IMG = 8, VOCAB = 64, CTX = 8, PROJ = 6 };

struct tdesc {
	char name[128];
	int ndim;
	int64_t shape[4];
};

static size_t numel(const struct tdesc *t)
{
	size_t n = 1;
	for (int i = 0; i < t->ndim; i++)
		n *= (size_t)t->shape[i];
	return n;
}

static int n_t;
static struct tdesc ts[64];

static void add(const char *name, int ndim, int64_t a, int64_t b, int64_t c, int64_t d)
{
	struct tdesc *t = &ts[n_t++];
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->ndim = ndim;
	t->shape[0] = a;
	t->shape[1] = b;
	t->shape[2] = c;
	t->shape[3] = d;
}

static void add_tower(const char *p, int H)
{
	char n[128];
	static const char *const lin[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
		"self_attn.out_proj"};
	for (int i = 0; i < 4; i++) {
		snprintf(n, sizeof(n), "%s.encoder.layers.0.%s.weight", p, lin[i]);
		add(n, 2, H, H, 0, 0);
		snprintf(n, sizeof(n), "%s.encoder.layers.0.%s.bias", p, lin[i]);
		add(n, 1, H, 0, 0, 0);
	}
	static const char *const ln[] = {"layer_norm1", "layer_norm2"};
	for (int i = 0; i < 2; i++) {
		snprintf(n, sizeof(n), "%s.encoder.layers.0.%s.weight", p, ln[i]);
		add(n, 1, H, 0, 0, 0);
		snprintf(n, sizeof(n), "%s.encoder.layers.0.%s.bias", p, ln[i]);
		add(n, 1, H, 0, 0, 0);
	}
	snprintf(n, sizeof(n), "%s.encoder.layers.0.mlp.fc1.weight", p);
	add(n, 2, FF, H, 0, 0);
	snprintf(n, sizeof(n), "%s.encoder.layers.0.mlp.fc1.bias", p);
	add(n, 1, FF, 0, 0, 0);
	snprintf(n, sizeof(n), "%s.encoder.layers.0.mlp.fc2.weight", p);
	add(n, 2, H, FF, 0, 0);
	snprintf(n, sizeof(n), "%s.encoder.layers.0.mlp.fc2.bias", p);
	add(n, 1, H, 0, 0, 0);
}

/* Write a micro CLIPModel folder; skip_tensor (may be NULL) is left out. */
static void write_model(const char *dir, const char *config, const char *prep,
	const char *skip_tensor)
{
	char path[512];
	mkdir(dir, 0755);
	n_t = 0;
	add("logit_scale", 0, 0, 0, 0, 0);
	add("vision_model.embeddings.class_embedding", 1, VH, 0, 0, 0);
	add("vision_model.embeddings.patch_embedding.weight", 4, VH, 3, PATCH, PATCH);
	add("vision_model.embeddings.position_embedding.weight", 2, (IMG / PATCH) * (IMG / PATCH) + 1,
		VH, 0, 0);
	add("vision_model.pre_layrnorm.weight", 1, VH, 0, 0, 0);
	add("vision_model.pre_layrnorm.bias", 1, VH, 0, 0, 0);
	add("vision_model.post_layernorm.weight", 1, VH, 0, 0, 0);
	add("vision_model.post_layernorm.bias", 1, VH, 0, 0, 0);
	add("visual_projection.weight", 2, PROJ, VH, 0, 0);
	add("text_model.embeddings.token_embedding.weight", 2, VOCAB, TH, 0, 0);
	add("text_model.embeddings.position_embedding.weight", 2, CTX, TH, 0, 0);
	add("text_model.final_layer_norm.weight", 1, TH, 0, 0, 0);
	add("text_model.final_layer_norm.bias", 1, TH, 0, 0, 0);
	add("text_projection.weight", 2, PROJ, TH, 0, 0);
	add_tower("vision_model", VH);
	add_tower("text_model", TH);

	json_t *hdr = json_object();
	size_t off = 0;
	for (int i = 0; i < n_t; i++) {
		if (skip_tensor && strcmp(ts[i].name, skip_tensor) == 0)
			continue;
		json_t *shape = json_array();
		for (int d = 0; d < ts[i].ndim; d++)
			json_array_append_new(shape, json_integer(ts[i].shape[d]));
		size_t nb = numel(&ts[i]) * 4;
		json_object_set_new(hdr, ts[i].name, json_pack("{s:s, s:o, s:[I, I]}", "dtype", "F32",
			"shape", shape, "data_offsets", (json_int_t)off, (json_int_t)(off + nb)));
		off += nb;
	}
	char *h = json_dumps(hdr, JSON_COMPACT);
	size_t hl = strlen(h), pad = (8 - hl % 8) % 8;
	snprintf(path, sizeof(path), "%s/model.safetensors", dir);
	FILE *f = fopen(path, "wb");
	uint64_t n = hl + pad;
	fwrite(&n, 8, 1, f);
	fwrite(h, 1, hl, f);
	for (size_t i = 0; i < pad; i++)
		fputc(' ', f);
	unsigned seed = 5;
	/* jansson keeps insertion order, so data follows the header's order */
	for (int i = 0; i < n_t; i++) {
		if (skip_tensor && strcmp(ts[i].name, skip_tensor) == 0)
			continue;
		for (size_t k = 0; k < numel(&ts[i]); k++) {
			seed = seed * 1103515245u + 12345u;
			float v = strcmp(ts[i].name, "logit_scale") == 0 ? 2.6592f
				: (float)((seed >> 9) & 1023) / 1024.0f - 0.5f;
			fwrite(&v, 4, 1, f);
		}
	}
	fclose(f);
	free(h);
	json_decref(hdr);
	snprintf(path, sizeof(path), "%s/config.json", dir);
	f = fopen(path, "w");
	fputs(config, f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/preprocessor_config.json", dir);
	if (prep) {
		f = fopen(path, "w");
		fputs(prep, f);
		fclose(f);
	} else {
		remove(path);
	}
}

#define SUBCFG(eos) \
	"\"text_config\": {\"hidden_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 2," \
	" \"intermediate_size\": 16, \"vocab_size\": 64, \"max_position_embeddings\": 8," \
	" \"projection_dim\": 6, \"eos_token_id\": " #eos "}," \
	" \"vision_config\": {\"hidden_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 2," \
	" \"intermediate_size\": 16, \"patch_size\": 4, \"image_size\": 8, \"projection_dim\": 6}"

static const char *const good_cfg =
	"{\"architectures\": [\"CLIPModel\"], \"projection_dim\": 6, " SUBCFG(63) "}";

static char dir_buf[256];

static const char *model_dir(const char *tag)
{
	snprintf(dir_buf, sizeof(dir_buf), "/tmp/rwd-test-clip-%d-%s", (int)getpid(), tag);
	return dir_buf;
}

static void cleanup(const char *dir)
{
	static const char *const files[] = {"model.safetensors", "config.json",
		"preprocessor_config.json"};
	char path[512];
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		remove(path);
	}
	rmdir(dir);
}

static int load(const char *dir, const char *opts_json, rwd_clip **m, rwd_error *err)
{
	rwd_batch_limits lim = rwd_model_default_params().limits;
	lim.max_batch_size = 4;
	json_t *opts = opts_json ? json_loads(opts_json, 0, NULL) : NULL;
	rwd_error_clear(err);
	int r = rwd_clip_load(dir, opts, &lim, m, err);
	json_decref(opts);
	return r;
}

START_TEST(loads_a_micro_model_and_encodes)
{
	const char *d = model_dir("good");
	write_model(d, good_cfg, NULL, NULL);
	rwd_clip *m = NULL;
	rwd_error err;
	ck_assert_int_eq(load(d, NULL, &m, &err), 0);
	ck_assert_uint_eq(rwd_clip_projection_dim(m), PROJ);
	ck_assert_int_eq(rwd_clip_image_size(m), IMG);
	ck_assert_uint_eq(rwd_clip_context_length(m), CTX);
	ck_assert_float_eq_tol(rwd_clip_logit_scale(m), expf(2.6592f), 1e-4);
	void *s = NULL;
	ck_assert_int_eq(rwd_clip_scratch_new(m, &s, &err), 0);
	float px[2][3 * IMG * IMG], out[2 * PROJ];
	for (int i = 0; i < 3 * IMG * IMG; i++)
		px[0][i] = px[1][i] = (float)(i % 13) / 13.0f;
	const float *pp[2] = {px[0], px[1]};
	rwd_clip_encode_images(m, s, pp, 2, out);
	/* the same pixels in one batch give the same embedding */
	for (int j = 0; j < PROJ; j++) {
		ck_assert(isfinite(out[j]));
		ck_assert_float_eq_tol(out[j], out[PROJ + j], 1e-6);
	}
	/* ids must be in the vocabulary and lengths in 1..ctx */
	int32_t ids[CTX + 1] = {1, 2, 63, 4, 5, 6, 7, 8, 9};
	const int32_t *ip[1] = {ids};
	size_t len = 3;
	ck_assert_int_eq(rwd_clip_encode_texts(m, s, ip, &len, 1, out), 0);
	len = 0;
	ck_assert_int_eq(rwd_clip_encode_texts(m, s, ip, &len, 1, out), RWD_E_INVALID);
	len = CTX + 1;
	ck_assert_int_eq(rwd_clip_encode_texts(m, s, ip, &len, 1, out), RWD_E_INVALID);
	ids[1] = VOCAB;
	len = 3;
	ck_assert_int_eq(rwd_clip_encode_texts(m, s, ip, &len, 1, out), RWD_E_INVALID);
	/* pooling: the first eos_token_id (63), else position 0 */
	int32_t a[] = {1, 63, 5, 63};
	ck_assert_uint_eq(rwd_clip_pool_index(m, a, 4), 1);
	int32_t b[] = {1, 5, 6};
	ck_assert_uint_eq(rwd_clip_pool_index(m, b, 3), 0);
	rwd_clip_scratch_free(s);
	rwd_clip_free(m);
	cleanup(d);
}
END_TEST

START_TEST(legacy_config_dict_overrides_and_argmax_pooling)
{
	/* stale text_config / vision_config at class-default sizes; the *_dict
	 * entries hold the real ones, and eos_token_id 2 selects argmax pooling */
	const char *cfg =
		"{\"architectures\": [\"CLIPModel\"], \"projection_dim\": 6,"
		" \"text_config\": {\"hidden_size\": 512, \"num_hidden_layers\": 12},"
		" \"vision_config\": {\"hidden_size\": 768, \"image_size\": 224},"
		" \"text_config_dict\": {\"hidden_size\": 8, \"num_hidden_layers\": 1,"
		" \"num_attention_heads\": 2, \"intermediate_size\": 16, \"vocab_size\": 64,"
		" \"max_position_embeddings\": 8, \"eos_token_id\": 2},"
		" \"vision_config_dict\": {\"hidden_size\": 8, \"num_hidden_layers\": 1,"
		" \"num_attention_heads\": 2, \"intermediate_size\": 16, \"patch_size\": 4,"
		" \"image_size\": 8}}";
	const char *d = model_dir("legacy");
	write_model(d, cfg, "{\"size\": 8, \"crop_size\": 8, \"resample\": 3}", NULL);
	rwd_clip *m = NULL;
	rwd_error err;
	ck_assert_int_eq(load(d, NULL, &m, &err), 0);
	int32_t a[] = {5, 9, 63, 7, 63};
	ck_assert_uint_eq(rwd_clip_pool_index(m, a, 5), 2); /* first maximum */
	rwd_clip_free(m);
	cleanup(d);
}
END_TEST

START_TEST(bad_folders_are_refused_precisely)
{
	rwd_clip *m = NULL;
	rwd_error err;
	const char *d = model_dir("bad");
	write_model(d, good_cfg, NULL, "text_model.final_layer_norm.bias");
	ck_assert_int_eq(load(d, NULL, &m, &err), RWD_E_NOTFOUND);
	ck_assert_str_eq(err.object, "text_model.final_layer_norm.bias");

	/* a config whose sizes disagree with the tensors */
	const char *cfg = "{\"projection_dim\": 6, " SUBCFG(63) "}";
	char big[2048];
	snprintf(big, sizeof(big), "%s", cfg);
	char *p = strstr(big, "\"intermediate_size\": 16");
	memcpy(p, "\"intermediate_size\": 32", 23);
	write_model(d, big, NULL, NULL);
	ck_assert_int_eq(load(d, NULL, &m, &err), RWD_E_INVALID);

	const char *gelu_new = "{\"projection_dim\": 6, \"text_config\": {\"hidden_act\": \"gelu_new\"}}";
	write_model(d, gelu_new, NULL, NULL);
	ck_assert_int_eq(load(d, NULL, &m, &err), RWD_E_UNSUPPORTED);
	ck_assert_str_eq(err.object, "hidden_act");

	/* preprocessing that cannot produce the tower's 8x8 */
	write_model(d, good_cfg, "{\"size\": {\"shortest_edge\": 8}, \"crop_size\": 10}", NULL);
	ck_assert_int_eq(load(d, NULL, &m, &err), RWD_E_INVALID);
	write_model(d, good_cfg, "{\"resample\": 0}", NULL);
	ck_assert_int_eq(load(d, NULL, &m, &err), RWD_E_UNSUPPORTED);
	write_model(d, good_cfg, "{\"image_std\": [1, 0, 1]}", NULL);
	ck_assert_int_eq(load(d, NULL, &m, &err), RWD_E_INVALID);
	write_model(d, good_cfg, "{not json", NULL);
	ck_assert_int_eq(load(d, NULL, &m, &err), RWD_E_FORMAT);
	ck_assert_ptr_null(m);
	cleanup(d);
}
END_TEST

START_TEST(options_select_dimensions)
{
	const char *d = model_dir("opts");
	write_model(d, good_cfg, NULL, NULL);
	rwd_error err;
	rwd_error_clear(&err);
	rwd_model_params p = rwd_model_default_params();
	p.name = "c";
	p.path = d; /* kind from "architectures" */
	json_t *o = json_loads("{\"dimensions\": [\"edit_direction\", \"text_alignment\"],"
		" \"text_alignment\": \"clipscore\", \"clipscore_weight\": 100}", 0, NULL);
	p.options = o;
	rwd_model *m = NULL;
	ck_assert_int_eq(rwd_model_load(&p, &m, &err), 0);
	const rwd_model_info *info = rwd_model_get_info(m);
	ck_assert_str_eq(info->kind, "clip");
	ck_assert_uint_eq(info->n_dims, 2);
	ck_assert_str_eq(info->dims[0], "edit_direction");
	ck_assert_str_eq(info->dims[1], "text_alignment");
	rwd_model_free(m);
	json_decref(o);

	static const char *const bad[] = {
		"{\"dimensions\": [\"aesthetic\"]}", "{\"colour\": 1}", "{\"text_alignment\": \"hps\"}",
		"{\"heads\": [{\"name\": \"x\"}]}", "{\"dimensions\": []}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o = json_loads(bad[i], 0, NULL);
		p.options = o;
		m = NULL;
		ck_assert_int_eq(rwd_model_load(&p, &m, &err), RWD_E_INVALID);
		ck_assert_ptr_null(m);
		json_decref(o);
	}
	cleanup(d);
}
END_TEST

START_TEST(check_validates_item_fields)
{
	const char *d = model_dir("check");
	write_model(d, good_cfg, NULL, NULL);
	rwd_error err;
	rwd_error_clear(&err);
	rwd_model_params p = rwd_model_default_params();
	p.name = "c";
	p.kind = "clip";
	p.path = d;
	json_t *o = json_loads("{\"max_text_bytes\": 10}", 0, NULL);
	p.options = o;
	rwd_model *m = NULL;
	ck_assert_int_eq(rwd_model_load(&p, &m, &err), 0);
	struct {
		const char *item;
		int code;
		const char *field;
	} cases[] = {
		{"{\"prompt\": \"a cat\"}", RWD_E_INVALID, "image"},
		{"{\"image\": 5}", RWD_E_INVALID, "image"},
		{"{\"image\": \"\"}", RWD_E_INVALID, "image"},
		{"{\"image\": \"iVBO\", \"source_image\": []}", RWD_E_INVALID, "source_image"},
		{"{\"image\": \"iVBO\", \"prompt\": 3}", RWD_E_INVALID, "prompt"},
		{"{\"image\": \"iVBO\", \"instruction\": \"far too long for ten\"}", RWD_E_LIMIT,
			"instruction"},
		/* no tokenizer files in the folder: text cannot be scored */
		{"{\"image\": \"iVBO\", \"prompt\": \"a cat\"}", RWD_E_UNPROCESSABLE, "prompt"},
		{"{\"image\": \"iVBO\"}", 0, ""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *it = json_loads(cases[i].item, 0, NULL);
		size_t cost = 0;
		rwd_error_clear(&err);
		ck_assert_int_eq(rwd_model_check(m, it, &cost, &err), cases[i].code);
		ck_assert_str_eq(err.object, cases[i].field);
		json_decref(it);
	}
	rwd_model_free(m);
	json_decref(o);
	cleanup(d);
}
END_TEST

static Suite *clip_suite(void)
{
	Suite *s = suite_create("clip");
	TCase *tc = tcase_create("clip");
	tcase_add_test(tc, loads_a_micro_model_and_encodes);
	tcase_add_test(tc, legacy_config_dict_overrides_and_argmax_pooling);
	tcase_add_test(tc, bad_folders_are_refused_precisely);
	tcase_add_test(tc, options_select_dimensions);
	tcase_add_test(tc, check_validates_item_fields);
	suite_add_tcase(s, tc);
	return s;
}

RWD_CHECK_MAIN(clip_suite)
