/*
 * tests/unit/test_mlp.c — lib/models/mlp: the LAION aesthetic head fixture,
 * layer inference, options, and the errors of malformed heads and items.
 * (PyTorch parity on random inputs is tests/parity/test_mlp_torch.py.)
 */
#include "rwd_check.h"

#include "models/mlp.h"
#include "models/model.h"
#include "core/base64.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static rwd_model *load_or_fail(const char *path, const char *opts_json)
{
	rwd_model_params p = rwd_model_default_params();
	json_t *opts = opts_json ? json_loads(opts_json, 0, NULL) : NULL;
	rwd_model *m = NULL;
	rwd_error err;
	rwd_error_clear(&err);
	p.name = "head";
	p.path = path;
	p.options = opts;
	int r = rwd_model_load(&p, &m, &err);
	char buf[1024];
	ck_assert_msg(r == 0, "load failed: %s", rwd_error_format(&err, buf, sizeof(buf)));
	json_decref(opts);
	return m;
}

/* Score one embedding through the generic model API (check + run). */
static float score_one(const rwd_model *m, const float *x, size_t n)
{
	json_t *item = json_object(), *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, json_real(x[i]));
	json_object_set_new(item, "embedding", arr);
	rwd_item it;
	memset(&it, 0, sizeof(it));
	it.input = item;
	rwd_error err;
	rwd_error_clear(&err);
	ck_assert_int_eq(rwd_model_check(m, item, &it.cost, &err), 0);
	void *scratch;
	ck_assert_int_eq(rwd_model_scratch_new(m, &scratch, &err), 0);
	rwd_arena *a = rwd_arena_create(0, 0);
	rwd_item *items[1] = {&it};
	ck_assert_int_eq(rwd_model_run(m, scratch, items, 1, a), 0);
	ck_assert_int_eq(it.status, 0);
	ck_assert_int_eq(it.present[0], 1);
	rwd_arena_destroy(a);
	rwd_model_scratch_free(m, scratch);
	json_decref(item);
	return it.scores[0];
}

/* The reference outputs published with the fixture (PyTorch, float32; shared/fixtures/README.md). */
START_TEST(aesthetic_fixture_reference_outputs)
{
	char path[4096];
	if (!rwd_fixture_path("aesthetic/aesthetic-linearMSE.safetensors", path, sizeof(path))) {
		RWD_SKIP("../shared/fixtures/aesthetic is absent");
	}
	rwd_model *m = load_or_fail(path, NULL);
	const rwd_model_info *info = rwd_model_get_info(m);
	ck_assert_str_eq(info->kind, "mlp");
	ck_assert_uint_eq(info->n_dims, 1);
	ck_assert_str_eq(info->dims[0], "score");
	float x[768];
	double worst = 0;

	memset(x, 0, sizeof(x));
	double d = fabs(score_one(m, x, 768) - 5.2366457);
	worst = fmax(worst, d);
	for (int i = 0; i < 768; i++)
		x[i] = 1.0f / sqrtf(768.0f);
	d = fabs(score_one(m, x, 768) - 4.8832850);
	worst = fmax(worst, d);
	memset(x, 0, sizeof(x));
	x[0] = 1.0f;
	d = fabs(score_one(m, x, 768) - 4.5450525);
	worst = fmax(worst, d);
	printf("aesthetic fixture: worst |ours - published PyTorch output| = %.3g\n", worst);
	ck_assert_msg(worst <= 1e-5, "worst error %g > 1e-5", worst);
	rwd_model_free(m);
}
END_TEST

/* One item through check + run: its input JSON, or a decoded vector (vec). */
static float score_item(const rwd_model *m, json_t *item, const float *vec, size_t n, int *status)
{
	rwd_item it;
	memset(&it, 0, sizeof(it));
	it.input = item;
	it.vec = vec;
	it.vec_n = n;
	rwd_error err;
	rwd_error_clear(&err);
	ck_assert_int_eq(rwd_model_check_item(m, &it, &it.cost, &err), 0);
	void *scratch;
	ck_assert_int_eq(rwd_model_scratch_new(m, &scratch, &err), 0);
	rwd_arena *a = rwd_arena_create(0, 0);
	rwd_item *items[1] = {&it};
	ck_assert_int_eq(rwd_model_run(m, scratch, items, 1, a), 0);
	*status = it.status;
	rwd_arena_destroy(a);
	rwd_model_scratch_free(m, scratch);
	return it.scores[0];
}

/* "embedding_b64" through the kind (check decodes and validates, forward
 * decodes into the batch) and a request-decoded item->vec give the JSON
 * array's score bit for bit; the kind reports its vector width. */
START_TEST(embedding_b64_and_vec_match_the_array)
{
	char path[4096];
	if (!rwd_fixture_path("aesthetic/aesthetic-linearMSE.safetensors", path, sizeof(path))) {
		printf("SKIP embedding_b64_and_vec_match_the_array: ../shared/fixtures/aesthetic is absent\n");
		return;
	}
	rwd_model *m = load_or_fail(path, NULL);
	ck_assert_uint_eq(rwd_model_get_info(m)->vector_input, 768);
	float x[768];
	uint8_t le[768 * 4];
	for (int i = 0; i < 768; i++) {
		x[i] = (float)sin(i * 0.37) * 0.05f;
		uint32_t u;
		memcpy(&u, &x[i], 4);
		for (int k = 0; k < 4; k++)
			le[4 * i + k] = (uint8_t)(u >> (8 * k));
	}
	float want = score_one(m, x, 768);
	char *enc = malloc(rwd_base64_encoded_len(sizeof(le), 0) + 1);
	rwd_base64_encode(le, sizeof(le), 0, enc);
	json_t *item = json_pack("{ss}", "embedding_b64", enc);
	int st;
	float got = score_item(m, item, NULL, 0, &st);
	ck_assert_int_eq(st, 0);
	ck_assert_int_eq(memcmp(&got, &want, 4), 0);
	json_t *empty = json_object();
	got = score_item(m, empty, x, 768, &st);
	ck_assert_int_eq(st, 0);
	ck_assert_int_eq(memcmp(&got, &want, 4), 0);
	/* a vector of another width is refused by check_item */
	rwd_item it;
	memset(&it, 0, sizeof(it));
	it.input = empty;
	it.vec = x;
	it.vec_n = 767;
	rwd_error err;
	rwd_error_clear(&err);
	size_t cost;
	ck_assert_int_eq(rwd_model_check_item(m, &it, &cost, &err), RWD_E_INVALID);
	/* both fields, a non-string, bad base64: refused by the kind's check */
	json_t *both = json_pack("{ss s[i]}", "embedding_b64", enc, "embedding", 1);
	ck_assert_int_eq(rwd_model_check(m, both, &cost, &err), RWD_E_INVALID);
	ck_assert_str_eq(err.object, "embedding_b64");
	json_t *num = json_pack("{si}", "embedding_b64", 3);
	ck_assert_int_eq(rwd_model_check(m, num, &cost, &err), RWD_E_INVALID);
	json_t *bad = json_pack("{ss}", "embedding_b64", "AA*A");
	ck_assert_int_eq(rwd_model_check(m, bad, &cost, &err), RWD_E_FORMAT);
	ck_assert_str_eq(err.object, "embedding_b64");
	json_decref(both);
	json_decref(num);
	json_decref(bad);
	json_decref(empty);
	json_decref(item);
	free(enc);
	rwd_model_free(m);
}
END_TEST

START_TEST(aesthetic_fixture_named_output_and_errors)
{
	char path[4096];
	if (!rwd_fixture_path("aesthetic/aesthetic-linearMSE.safetensors", path, sizeof(path))) {
		RWD_SKIP("../shared/fixtures/aesthetic is absent");
	}
	rwd_model *m = load_or_fail(path, "{\"outputs\": [\"aesthetic\"]}");
	ck_assert_str_eq(rwd_model_get_info(m)->dims[0], "aesthetic");
	ck_assert_int_eq(rwd_model_dim_index(m, "aesthetic"), 0);
	ck_assert_int_eq(rwd_model_dim_index(m, "nope"), -1);

	rwd_error err;
	size_t cost;
	json_t *bad = json_loads("{\"embedding\": [1, 2, 3]}", 0, NULL);
	rwd_error_clear(&err);
	ck_assert_int_eq(rwd_model_check(m, bad, &cost, &err), RWD_E_INVALID);
	ck_assert_str_eq(err.object, "embedding");
	ck_assert_ptr_nonnull(strstr(err.msg, "768"));
	json_decref(bad);
	bad = json_loads("{\"text\": \"x\"}", 0, NULL);
	ck_assert_int_eq(rwd_model_check(m, bad, &cost, &err), RWD_E_INVALID);
	json_decref(bad);
	bad = json_loads("[1]", 0, NULL);
	ck_assert_int_eq(rwd_model_check(m, bad, &cost, &err), RWD_E_INVALID);
	json_decref(bad);
	rwd_model_free(m);

	/* an option that does not fit the head is refused, naming the option */
	rwd_model_params p = rwd_model_default_params();
	json_t *opts = json_loads("{\"outputs\": [\"a\", \"b\"]}", 0, NULL);
	rwd_model *m2 = NULL;
	p.name = "x";
	p.path = path;
	p.options = opts;
	rwd_error_clear(&err);
	ck_assert_int_eq(rwd_model_load(&p, &m2, &err), RWD_E_INVALID);
	ck_assert_ptr_null(m2);
	ck_assert_str_eq(err.object, "outputs");
	json_decref(opts);
	opts = json_loads("{\"activation\": \"swish2\"}", 0, NULL);
	p.options = opts;
	ck_assert_int_eq(rwd_model_load(&p, &m2, &err), RWD_E_INVALID);
	ck_assert_str_eq(err.object, "activation");
	json_decref(opts);
}
END_TEST

/* The BLAS thread rule's kind table: serial kinds are not counted. */
START_TEST(kinds_that_run_threaded_gemms)
{
	ck_assert_int_eq(rwd_model_kind_threaded("mlp"), 0);
	ck_assert_int_eq(rwd_model_kind_threaded("rules"), 0);
	ck_assert_int_eq(rwd_model_kind_threaded("image_metrics"), 0);
	ck_assert_int_eq(rwd_model_kind_threaded("sql"), 0);
	ck_assert_int_eq(rwd_model_kind_threaded("clip"), 1);
	ck_assert_int_eq(rwd_model_kind_threaded("seqcls"), 1);
	ck_assert_int_eq(rwd_model_kind_threaded("imagereward"), 1);
	ck_assert_int_eq(rwd_model_kind_threaded("ocr"), 1);
	ck_assert_int_eq(rwd_model_kind_threaded(NULL), 1);
	ck_assert_int_eq(rwd_model_kind_threaded("no-such-kind"), 1);
}
END_TEST

START_TEST(missing_path_and_unknown_kind)
{
	rwd_model_params p = rwd_model_default_params();
	rwd_model *m = NULL;
	rwd_error err;
	rwd_error_clear(&err);
	p.name = "x";
	p.path = "/nonexistent/head.safetensors";
	ck_assert_int_lt(rwd_model_load(&p, &m, &err), 0);
	ck_assert_ptr_null(m);
	p.kind = "no-such-kind";
	ck_assert_int_eq(rwd_model_load(&p, &m, &err), RWD_E_UNSUPPORTED);
	p.name = NULL;
	ck_assert_int_eq(rwd_model_load(&p, &m, &err), RWD_E_INVALID);
	/* precision "bf16" is refused by name, before any file is read */
	json_t *o = json_pack("{ss}", "precision", "bf16");
	p.name = "x";
	p.kind = "mlp";
	p.options = o;
	rwd_error_clear(&err);
	ck_assert_int_eq(rwd_model_load(&p, &m, &err), RWD_E_INVALID);
	ck_assert_ptr_null(m);
	ck_assert_str_eq(err.object, "precision");
	ck_assert_ptr_nonnull(strstr(err.msg, "fp32 only"));
	json_decref(o);
}
END_TEST

static Suite *mlp_suite(void)
{
	Suite *s = suite_create("mlp");
	TCase *tc = tcase_create("mlp");
	tcase_add_test(tc, missing_path_and_unknown_kind);
	tcase_add_test(tc, kinds_that_run_threaded_gemms);
	suite_add_tcase(s, tc);
	/* the real head in ../shared/fixtures: meson test mlp-fixture */
	tc = tcase_create("fixture");
	tcase_set_tags(tc, "fixture");
	tcase_add_test(tc, aesthetic_fixture_reference_outputs);
	tcase_add_test(tc, aesthetic_fixture_named_output_and_errors);
	tcase_add_test(tc, embedding_b64_and_vec_match_the_array);
	suite_add_tcase(s, tc);
	return s;
}

RWD_CHECK_MAIN(mlp_suite)
