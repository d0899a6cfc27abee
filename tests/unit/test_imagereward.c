/*
 * tests/unit/test_imagereward.c — the imagereward kind's loading, validation,
 * preprocessing rules and z-score on micro checkpoints written by the test
 * itself (the numerical parity against PyTorch is
 * tests/parity/test_imagereward_torch.py).
 *
 * Expected values here follow from the definitions, by hand: with the head's
 * weights zero the reward is (last bias − 0.16717362830052426) /
 * 1.0333394966054072 whatever the input; torchvision's CenterCrop puts the
 * top at Python's round((h − S) / 2) (half to even).
 */
#include "rwd_check.h"

#include "core/error.h"
#include "models/imagereward.h"
#include "models/model.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>

/* micro sizes: vision D 8, 1 block, 2 heads, ffn 16, patch 4, image 8 (5 tokens);
 * text H 8, 1 layer, 2 heads, ffn 16, vocab 64, 40 positions; head 8 → 4 → 1 */
enum { D = 8, H = 8, FF = 16, PATCH = 4, IMG = 8, VOCAB = 64, POS = 40 };
#define IR_MEAN 0.16717362830052426
#define IR_STD 1.0333394966054072

static const char *const PNG_8x8 =
	"iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAFElEQVR4nGM8IRfFgA0wYRUdtBIA/vYBUA+HjJUAAAAASUVORK5CYII=";
static const char *const PNG_13x9 =
	"iVBORw0KGgoAAAANSUhEUgAAAA0AAAAJCAIAAABmGDE9AAAAUElEQVR4nGNkYGAQJgKxMEgzMDCwE0RwdXz4EbI6UTwITZ0MLoSpThkVuUEYWNVpMTBoMTBYwBhaDAxauNQZoiGs6iwYGAwZGCxgyJeBwQIARa8LthTTIrwAAAAASUVORK5CYII=";

struct tdesc {
	char name[160];
	int ndim;
	int64_t shape[4];
};

static int n_t;
static struct tdesc ts[128];

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

static void add_lin(const char *p, int64_t out, int64_t in)
{
	char n[160];
	snprintf(n, sizeof(n), "%s.weight", p);
	add(n, 2, out, in, 0, 0);
	snprintf(n, sizeof(n), "%s.bias", p);
	add(n, 1, out, 0, 0, 0);
}

static void add_ln(const char *p, int64_t n_)
{
	char n[160];
	snprintf(n, sizeof(n), "%s.weight", p);
	add(n, 1, n_, 0, 0, 0);
	snprintf(n, sizeof(n), "%s.bias", p);
	add(n, 1, n_, 0, 0, 0);
}

static size_t numel(const struct tdesc *t)
{
	size_t n = 1;
	for (int i = 0; i < t->ndim; i++)
		n *= (size_t)t->shape[i];
	return n;
}

struct opts {
	const char *skip;     /* tensor left out */
	int head_out;         /* outputs of the last head layer (1) */
	double last_bias;     /* with zero_head: the last layer's bias */
	int zero_head;        /* head weights 0 */
	const char *config;   /* config.json text, NULL = the good one */
};

static const char *const good_cfg =
	"{\"architectures\": [\"ImageReward\"],"
	" \"vision_config\": {\"image_size\": 8, \"patch_size\": 4, \"hidden_size\": 8, \"num_hidden_layers\": 1,"
	"  \"num_attention_heads\": 2, \"intermediate_size\": 16, \"layer_norm_eps\": 1e-6},"
	" \"text_config\": {\"hidden_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 2,"
	"  \"intermediate_size\": 16, \"vocab_size\": 64, \"max_position_embeddings\": 40, \"layer_norm_eps\": 1e-12,"
	"  \"hidden_act\": \"gelu\", \"encoder_width\": 8}, \"max_length\": 35}";

static const char VOCAB_TXT[] = "[PAD]\n[unused0]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\ncat\nphoto\nof\nthe\n,\n.\n";

static char dir_buf[256];

static const char *write_model(const char *tag, const struct opts *o)
{
	char path[512];
	snprintf(dir_buf, sizeof(dir_buf), "/tmp/rwd-test-imagereward-%d-%s", (int)getpid(), tag);
	mkdir(dir_buf, 0755);
	n_t = 0;
	add("blip.visual_encoder.cls_token", 3, 1, 1, D, 0);
	add("blip.visual_encoder.pos_embed", 3, 1, (IMG / PATCH) * (IMG / PATCH) + 1, D, 0);
	add("blip.visual_encoder.patch_embed.proj.weight", 4, D, 3, PATCH, PATCH);
	add("blip.visual_encoder.patch_embed.proj.bias", 1, D, 0, 0, 0);
	add_ln("blip.visual_encoder.blocks.0.norm1", D);
	add_lin("blip.visual_encoder.blocks.0.attn.qkv", 3 * D, D);
	add_lin("blip.visual_encoder.blocks.0.attn.proj", D, D);
	add_ln("blip.visual_encoder.blocks.0.norm2", D);
	add_lin("blip.visual_encoder.blocks.0.mlp.fc1", FF, D);
	add_lin("blip.visual_encoder.blocks.0.mlp.fc2", D, FF);
	add_ln("blip.visual_encoder.norm", D);
	add("blip.text_encoder.embeddings.word_embeddings.weight", 2, VOCAB, H, 0, 0);
	add("blip.text_encoder.embeddings.position_embeddings.weight", 2, POS, H, 0, 0);
	add_ln("blip.text_encoder.embeddings.LayerNorm", H);
	const char *p = "blip.text_encoder.encoder.layer.0.";
	char n[160];
#define L(s, o_, i_) (snprintf(n, sizeof(n), "%s%s", p, s), add_lin(n, o_, i_))
#define N(s) (snprintf(n, sizeof(n), "%s%s", p, s), add_ln(n, H))
	L("attention.self.query", H, H);
	L("attention.self.key", H, H);
	L("attention.self.value", H, H);
	L("attention.output.dense", H, H);
	N("attention.output.LayerNorm");
	L("crossattention.self.query", H, H);
	L("crossattention.self.key", H, D);
	L("crossattention.self.value", H, D);
	L("crossattention.output.dense", H, H);
	N("crossattention.output.LayerNorm");
	L("intermediate.dense", FF, H);
	L("output.dense", H, FF);
	N("output.LayerNorm");
#undef L
#undef N
	add_lin("mlp.layers.0", 4, H);
	add_lin("mlp.layers.2", o->head_out ? o->head_out : 1, 4);

	json_t *hdr = json_object();
	size_t off = 0;
	for (int i = 0; i < n_t; i++) {
		if (o->skip && strcmp(ts[i].name, o->skip) == 0)
			continue;
		json_t *shape = json_array();
		for (int d = 0; d < ts[i].ndim; d++)
			json_array_append_new(shape, json_integer(ts[i].shape[d]));
		size_t nb = numel(&ts[i]) * 4;
		json_object_set_new(hdr, ts[i].name, json_pack("{s:s, s:o, s:[I, I]}", "dtype", "F32", "shape", shape,
			"data_offsets", (json_int_t)off, (json_int_t)(off + nb)));
		off += nb;
	}
	char *h = json_dumps(hdr, JSON_COMPACT);
	size_t hl = strlen(h), pad = (8 - hl % 8) % 8;
	snprintf(path, sizeof(path), "%s/model.safetensors", dir_buf);
	FILE *f = fopen(path, "wb");
	uint64_t hn = hl + pad;
	fwrite(&hn, 8, 1, f);
	fwrite(h, 1, hl, f);
	for (size_t i = 0; i < pad; i++)
		fputc(' ', f);
	unsigned seed = 11;
	for (int i = 0; i < n_t; i++) {
		if (o->skip && strcmp(ts[i].name, o->skip) == 0)
			continue;
		int head = strncmp(ts[i].name, "mlp.layers.", 11) == 0;
		int last_bias = strcmp(ts[i].name, "mlp.layers.2.bias") == 0;
		for (size_t k = 0; k < numel(&ts[i]); k++) {
			seed = seed * 1103515245u + 12345u;
			float v = (float)((seed >> 9) & 1023) / 1024.0f - 0.5f;
			if (o->zero_head && head)
				v = last_bias ? (float)o->last_bias : 0.0f;
			fwrite(&v, 4, 1, f);
		}
	}
	fclose(f);
	free(h);
	json_decref(hdr);
	snprintf(path, sizeof(path), "%s/config.json", dir_buf);
	f = fopen(path, "w");
	fputs(o->config ? o->config : good_cfg, f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/vocab.txt", dir_buf);
	f = fopen(path, "w");
	fputs(VOCAB_TXT, f);
	fclose(f);
	return dir_buf;
}

static void cleanup(const char *dir)
{
	static const char *const files[] = {"model.safetensors", "config.json", "vocab.txt"};
	char path[512];
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		remove(path);
	}
	rmdir(dir);
}

static int try_load(const char *dir, const char *opts_json, rwd_model **m, rwd_error *err)
{
	rwd_model_params p = rwd_model_default_params();
	p.name = "ir";
	p.path = dir;
	p.limits.max_batch_size = 4;
	json_t *opts = opts_json ? json_loads(opts_json, 0, NULL) : NULL;
	p.options = opts;
	rwd_error_clear(err);
	int r = rwd_model_load(&p, m, err);
	json_decref(opts);
	return r;
}

static rwd_model *load_ok(const char *dir)
{
	rwd_model *m = NULL;
	rwd_error err;
	char buf[1024];
	ck_assert_msg(try_load(dir, NULL, &m, &err) == 0, "load: %s", rwd_error_format(&err, buf, sizeof(buf)));
	return m;
}

/* Run items (JSON array text) as one batch; returns the items (caller frees). */
static rwd_item *run_items(rwd_model *m, const char *items_json, size_t *n_out, json_t **keep)
{
	json_t *arr = json_loads(items_json, 0, NULL);
	ck_assert_ptr_nonnull(arr);
	size_t n = json_array_size(arr);
	rwd_item *its = calloc(n, sizeof(*its));
	rwd_item **ok = calloc(n, sizeof(*ok));
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		its[i].input = json_array_get(arr, i);
		its[i].index = i;
		size_t cost;
		int r = rwd_model_check(m, its[i].input, &cost, &its[i].err);
		if (r)
			its[i].status = r;
		else
			ok[k++] = &its[i];
	}
	void *scratch = NULL;
	rwd_error err;
	ck_assert_int_eq(rwd_model_scratch_new(m, &scratch, &err), 0);
	rwd_arena *a = rwd_arena_create(0, 0);
	rwd_model_run(m, scratch, ok, k, a);
	rwd_arena_destroy(a);
	rwd_model_scratch_free(m, scratch);
	free(ok);
	*n_out = n;
	*keep = arr;
	return its;
}

START_TEST(kind_and_dimension)
{
	struct opts o = {0};
	const char *dir = write_model("kind", &o);
	rwd_model *m = load_ok(dir);
	const rwd_model_info *info = rwd_model_get_info(m);
	ck_assert_str_eq(info->kind, "imagereward");
	ck_assert_uint_eq(info->n_dims, 1);
	ck_assert_str_eq(info->dims[0], "imagereward");
	ck_assert_str_eq(info->inputs[0], "image");
	ck_assert_str_eq(info->inputs[1], "prompt");
	ck_assert_ptr_null(info->inputs[2]);
	rwd_model_free(m);
	cleanup(dir);
}
END_TEST

START_TEST(z_score_constants)
{
	/* zero head weights: the raw reward is the last bias, whatever the input */
	const double bias[] = {IR_MEAN + 1.0, IR_MEAN, -2.5};
	for (int b = 0; b < 3; b++) {
		struct opts o = {.zero_head = 1, .last_bias = bias[b]};
		const char *dir = write_model("z", &o);
		rwd_model *m = load_ok(dir);
		char items[1024];
		snprintf(items, sizeof(items), "[{\"image\": \"%s\", \"prompt\": \"a photo of a cat\"},"
			" {\"image\": \"%s\", \"prompt\": \"\"}]", PNG_8x8, PNG_13x9);
		size_t n;
		json_t *arr;
		rwd_item *its = run_items(m, items, &n, &arr);
		const double want = ((double)(float)bias[b] - IR_MEAN) / IR_STD;
		for (size_t i = 0; i < n; i++) {
			ck_assert_int_eq(its[i].status, 0);
			ck_assert(its[i].present[0]);
			ck_assert_msg(fabs(its[i].scores[0] - want) < 1e-6, "bias %g: %g, want %g", bias[b],
				its[i].scores[0], want);
		}
		free(its);
		json_decref(arr);
		rwd_model_free(m);
		cleanup(dir);
	}
}
END_TEST

START_TEST(bad_items_fail_without_score)
{
	struct opts o = {0};
	const char *dir = write_model("items", &o);
	rwd_model *m = NULL;
	rwd_error err;
	ck_assert_int_eq(try_load(dir, "{\"max_text_bytes\": 10}", &m, &err), 0);
	char items[2048];
	snprintf(items, sizeof(items),
		"[{\"image\": \"%s\"}, {\"image\": 3, \"prompt\": \"a\"}, {\"prompt\": \"a\"},"
		" {\"image\": \"%s\", \"prompt\": \"a very long prompt\"}, {\"image\": \"bm90IGFuIGltYWdl\", \"prompt\": \"a\"},"
		" {\"image\": \"%s\", \"prompt\": \"a cat\"}]", PNG_8x8, PNG_8x8, PNG_8x8);
	size_t n;
	json_t *arr;
	rwd_item *its = run_items(m, items, &n, &arr);
	ck_assert_int_eq(its[0].status, RWD_E_INVALID);
	ck_assert_str_eq(its[0].err.object, "prompt");
	ck_assert_int_eq(its[1].status, RWD_E_INVALID);
	ck_assert_str_eq(its[1].err.object, "image");
	ck_assert_int_eq(its[2].status, RWD_E_INVALID);
	ck_assert_int_eq(its[3].status, RWD_E_LIMIT);
	ck_assert_int_ne(its[4].status, 0); /* "not an image": undecodable, refused in prepare() */
	ck_assert_str_eq(its[4].err.object, "image");
	for (int i = 0; i < 5; i++)
		ck_assert(!its[i].present[0]);
	ck_assert_int_eq(its[5].status, 0);
	ck_assert(its[5].present[0] && isfinite(its[5].scores[0]));
	free(its);
	json_decref(arr);
	rwd_model_free(m);
	ck_assert_int_eq(try_load(dir, "{\"heads\": []}", &m, &err), RWD_E_INVALID);
	cleanup(dir);
}
END_TEST

START_TEST(load_errors)
{
	rwd_model *m = NULL;
	rwd_error err;
	struct opts o = {.skip = "blip.text_encoder.encoder.layer.0.crossattention.self.key.weight"};
	const char *dir = write_model("err", &o);
	ck_assert_int_eq(try_load(dir, NULL, &m, &err), RWD_E_NOTFOUND);
	ck_assert_ptr_nonnull(strstr(err.object, "crossattention.self.key.weight"));
	cleanup(dir);

	struct opts o2 = {.head_out = 2};
	dir = write_model("err2", &o2);
	ck_assert_int_eq(try_load(dir, NULL, &m, &err), RWD_E_INVALID);
	ck_assert_str_eq(err.object, "mlp.layers");
	cleanup(dir);

	static const struct {
		const char *from, *to;
		int code;
	} edits[] = {
		{"\"encoder_width\": 8", "\"encoder_width\": 768", RWD_E_INVALID},
		{"\"hidden_act\": \"gelu\"", "\"hidden_act\": \"relu\"", RWD_E_UNSUPPORTED},
		{"\"max_length\": 35", "\"max_length\": 41", RWD_E_INVALID},
		{"\"num_attention_heads\": 2, \"intermediate_size\": 16, \"layer_norm_eps\": 1e-6",
		 "\"num_attention_heads\": 3, \"intermediate_size\": 16, \"layer_norm_eps\": 1e-6", RWD_E_INVALID},
		{"\"patch_size\": 4", "\"patch_size\": 3", RWD_E_INVALID},
		{"\"vocab_size\": 64", "\"vocab_size\": 8", RWD_E_INVALID},
	};
	for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		char cfg[2048];
		const char *at = strstr(good_cfg, edits[i].from);
		ck_assert_ptr_nonnull(at);
		snprintf(cfg, sizeof(cfg), "%.*s%s%s", (int)(at - good_cfg), good_cfg, edits[i].to,
			at + strlen(edits[i].from));
		struct opts oc = {.config = cfg};
		dir = write_model("cfg", &oc);
		ck_assert_msg(try_load(dir, NULL, &m, &err) == edits[i].code, "edit %zu: %s", i, err.msg);
		cleanup(dir);
	}
	ck_assert_int_eq(try_load("/nonexistent-imagereward", NULL, &m, &err) < 0, 1);
}
END_TEST

START_TEST(center_crop_rounds_half_to_even)
{
	struct opts o = {0};
	const char *dir = write_model("crop", &o);
	rwd_batch_limits lim = {.max_batch_size = 1};
	rwd_imagereward *m = NULL;
	rwd_error err;
	ck_assert_int_eq(rwd_imagereward_load(dir, NULL, &lim, &m, &err), 0);
	ck_assert_int_eq(rwd_imagereward_image_size(m), 8);
	/* 8 wide: already 8 on the short side, so only the crop moves rows;
	 * h - 8 = 1, 3, 5, 7 → top = round(0.5, 1.5, 2.5, 3.5) = 0, 2, 2, 4 */
	const int hs[] = {9, 11, 13, 15}, tops[] = {0, 2, 2, 4};
	const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f}, std[3] = {0.26862954f, 0.26130258f, 0.27577711f};
	for (int t = 0; t < 4; t++) {
		uint8_t px[8 * 15 * 3];
		for (int y = 0; y < hs[t]; y++)
			for (int x = 0; x < 8; x++)
				for (int c = 0; c < 3; c++)
					px[(y * 8 + x) * 3 + c] = (uint8_t)(y * 16 + c);
		rwd_image img = {.w = 8, .h = hs[t], .stride = 24, .pixels = px};
		float out[3 * 64];
		ck_assert_int_eq(rwd_imagereward_preprocess(m, &img, out), 0);
		for (int c = 0; c < 3; c++) {
			float want = ((float)((tops[t]) * 16 + c) / 255.0f - mean[c]) / std[c];
			ck_assert_msg(out[c * 64] == want, "h %d channel %d: %g, want %g (top %d)", hs[t], c,
				out[c * 64], want, tops[t]);
		}
	}
	rwd_imagereward_free(m);
	cleanup(dir);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("imagereward");
	TCase *tc = tcase_create("imagereward");
	tcase_add_test(tc, kind_and_dimension);
	tcase_add_test(tc, z_score_constants);
	tcase_add_test(tc, bad_items_fail_without_score);
	tcase_add_test(tc, load_errors);
	tcase_add_test(tc, center_crop_rounds_half_to_even);
	suite_add_tcase(s, tc);
	return s;
}

RWD_CHECK_MAIN(make_suite)
