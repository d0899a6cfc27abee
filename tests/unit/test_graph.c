/*
 * tests/unit/test_graph.c — lib/nn/graph: graph.json validation (each
 * refusal names the node or field and says why), run-time shape errors and
 * limits, and the fuzz corpus' valid seeds parse and run. The numbers the
 * interpreter computes are checked against ONNX Runtime in
 * tests/parity/test_ocr_graph_ort.py, not here.
 */
#include "rwd_check.h"

#include "nn/graph.h"

#include <stdint.h>

/* Weights: "w" [2,1,3,3], "w2" [2,2,1,1], "b" [2], "v" [2] (the fuzz target's set, abridged). */
static rwd_weights *weights(unsigned char **keep)
{
	static const char hdr[] =
		"{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
		"\"v\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
		"\"w\":{\"dtype\":\"F32\",\"shape\":[2,1,3,3],\"data_offsets\":[16,88]},"
		"\"w2\":{\"dtype\":\"F32\",\"shape\":[2,2,1,1],\"data_offsets\":[88,104]}}";
	size_t h = sizeof(hdr) - 1, pad = (8 - h % 8) % 8, len = 8 + h + pad + 104;
	unsigned char *buf = calloc(1, len);
	ck_assert_ptr_nonnull(buf);
	for (int i = 0; i < 8; i++)
		buf[i] = (unsigned char)((h + pad) >> (8 * i));
	memcpy(buf + 8, hdr, h);
	memset(buf + 8 + h, ' ', pad);
	float *f = (float *)(void *)(buf + 8 + h + pad);
	for (int i = 0; i < 26; i++)
		f[i] = 0.5f;
	rwd_weights *w = NULL;
	rwd_error err = {0};
	ck_assert_int_eq(rwd_safetensors_parse(buf, len, "w", NULL, &w, &err), 0);
	*keep = buf;
	return w;
}

static int parse(const char *json, rwd_error *err, rwd_graph **g)
{
	unsigned char *buf;
	static rwd_weights *w;
	if (!w)
		w = weights(&buf); /* kept for the process: each test forks */
	rwd_error_clear(err);
	return rwd_graph_parse(json, strlen(json), w, "g.json", g, err);
}

#define HEAD "{\"format\":\"rewardd-onnx-graph-1\",\"opset\":11,\"input\":\"x\",\"output\":\"y\","

static void expect_refused(const char *json, int code, const char *object, const char *msg_part)
{
	rwd_graph *g = (rwd_graph *)1;
	rwd_error err;
	int r = parse(json, &err, &g);
	ck_assert_msg(r == code, "code %d, want %d (%s)", r, code, err.msg);
	ck_assert_ptr_null(g);
	if (object)
		ck_assert_msg(strstr(err.object, object), "object '%s', want '%s'", err.object, object);
	ck_assert_msg(strstr(err.msg, msg_part), "message '%s' lacks '%s'", err.msg, msg_part);
	ck_assert_str_eq(err.file, "g.json");
}

START_TEST(refusals)
{
	expect_refused("{\"format\":", RWD_E_FORMAT, NULL, "");
	expect_refused("{\"format\":\"onnx\"}", RWD_E_UNSUPPORTED, "format", "rewardd-onnx-graph-1");
	expect_refused(HEAD "\"nodes\":[]}", RWD_E_INVALID, "nodes", "non-empty");
	expect_refused(HEAD "\"nodes\":[{\"op\":\"Gelu\",\"inputs\":[\"x\"],\"outputs\":[\"y\"],\"attrs\":{}}]}",
		RWD_E_UNSUPPORTED, "nodes[0]", "\"Gelu\" is not supported");
	expect_refused(HEAD "\"nodes\":[{\"op\":\"Relu\",\"inputs\":[\"z\"],\"outputs\":[\"y\"],\"attrs\":{}}]}",
		RWD_E_INVALID, "nodes[0] (Relu)", "\"z\" is not defined");
	expect_refused(HEAD "\"nodes\":[{\"op\":\"Relu\",\"inputs\":[\"y\"],\"outputs\":[\"y\"],\"attrs\":{}}]}",
		RWD_E_INVALID, "nodes[0] (Relu)", "not defined before");
	expect_refused(HEAD "\"nodes\":[{\"op\":\"Relu\",\"inputs\":[\"x\"],\"outputs\":[\"x\"],\"attrs\":{}}]}",
		RWD_E_INVALID, "nodes[0] (Relu)", "defined twice");
	expect_refused(HEAD "\"nodes\":[{\"op\":\"Relu\",\"inputs\":[\"x\"],\"outputs\":[\"w\"],\"attrs\":{}}]}",
		RWD_E_INVALID, "nodes[0] (Relu)", "defined twice");
	expect_refused(HEAD "\"nodes\":[{\"op\":\"Add\",\"inputs\":[\"x\"],\"outputs\":[\"y\"],\"attrs\":{}}]}",
		RWD_E_INVALID, "nodes[0] (Add)", "1 inputs (Add takes 2 to 2)");
	expect_refused(HEAD "\"nodes\":[{\"op\":\"Conv\",\"inputs\":[\"x\",\"w\"],\"outputs\":[\"y\"],"
		"\"attrs\":{\"strides\":[0,1]}}]}", RWD_E_UNSUPPORTED, "nodes[0] (Conv)", "\"strides\"");
	expect_refused(HEAD "\"nodes\":[{\"op\":\"Conv\",\"inputs\":[\"x\",\"w\"],\"outputs\":[\"y\"],"
		"\"attrs\":{\"auto_pad\":\"SAME_UPPER\"}}]}", RWD_E_UNSUPPORTED, "nodes[0] (Conv)", "\"auto_pad\"");
	expect_refused(HEAD "\"nodes\":[{\"op\":\"Relu\",\"inputs\":[\"x\"],\"outputs\":[\"y\"],"
		"\"attrs\":{\"alpha\":1}}]}", RWD_E_UNSUPPORTED, "nodes[0] (Relu)", "\"alpha\" is not supported");
	expect_refused(HEAD "\"nodes\":[{\"op\":\"Resize\",\"inputs\":[\"x\",\"\",\"b\"],\"outputs\":[\"y\"],"
		"\"attrs\":{\"mode\":\"linear\"}}]}", RWD_E_UNSUPPORTED, "nodes[0] (Resize)", "\"mode\"");
	expect_refused(HEAD "\"nodes\":[{\"op\":\"BatchNormalization\",\"inputs\":[\"x\",\"v\",\"b\",\"b\",\"x\"],"
		"\"outputs\":[\"y\"],\"attrs\":{}}]}", RWD_E_UNSUPPORTED, "nodes[0] (BatchNormalization)",
		"constant float vector");
	expect_refused(HEAD "\"nodes\":[{\"op\":\"Relu\",\"inputs\":[\"x\"],\"outputs\":[\"y\",\"z\"],\"attrs\":{}}]}",
		RWD_E_UNSUPPORTED, "nodes[0]", "exactly one");
	expect_refused(HEAD "\"nodes\":[{\"op\":\"Relu\",\"inputs\":[\"x\"],\"outputs\":[\"q\"],\"attrs\":{}}]}",
		RWD_E_INVALID, "output", "not a node output");
	expect_refused(HEAD "\"int_constants\":{\"k\":{\"shape\":[3],\"values\":[1,2]}},"
		"\"nodes\":[{\"op\":\"Relu\",\"inputs\":[\"x\"],\"outputs\":[\"y\"],\"attrs\":{}}]}",
		RWD_E_INVALID, "int_constants.k", "2 values for a shape of 3");
	/* too many nodes */
	size_t n = RWD_GRAPH_MAX_NODES + 1, cap = n * 64 + 256, len = 0;
	char *big = malloc(cap);
	ck_assert_ptr_nonnull(big);
	len += (size_t)snprintf(big + len, cap - len, HEAD "\"nodes\":[");
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(big + len, cap - len, "%s{\"op\":\"Relu\",\"inputs\":[\"x\"],\"outputs\":[\"y%zu\"]}",
			i ? "," : "", i);
	snprintf(big + len, cap - len, "]}");
	expect_refused(big, RWD_E_LIMIT, "nodes", "more than 4096");
	free(big);
}
END_TEST

static rwd_graph *ok_graph(const char *json)
{
	rwd_graph *g = NULL;
	rwd_error err;
	int r = parse(json, &err, &g);
	ck_assert_msg(r == 0, "refused: %s: %s", err.object, err.msg);
	return g;
}

START_TEST(run_errors_and_limits)
{
	rwd_graph *g = ok_graph(HEAD "\"nodes\":[{\"op\":\"Conv\",\"inputs\":[\"x\",\"w\",\"b\"],\"outputs\":[\"y\"],"
		"\"attrs\":{\"group\":2,\"pads\":[1,1,1,1]}}]}");
	float x[2 * 8 * 8] = {0};
	rwd_graph_tensor out;
	rwd_error err;
	int64_t dims[4] = {1, 2, 8, 8};
	ck_assert_int_eq(rwd_graph_run(g, x, 4, dims, NULL, &out, &err), 0);
	ck_assert_int_eq(out.rank, 4);
	ck_assert(out.dims[0] == 1 && out.dims[1] == 2 && out.dims[2] == 8 && out.dims[3] == 8);
	free(out.data);
	/* three channels for a group-2 weight of one input channel per group */
	int64_t bad[4] = {1, 3, 4, 4};
	ck_assert_int_eq(rwd_graph_run(g, x, 4, bad, NULL, &out, &err), RWD_E_INVALID);
	ck_assert_ptr_null(out.data);
	ck_assert_str_eq(err.object, "nodes[0] (Conv)");
	ck_assert_ptr_nonnull(strstr(err.msg, "do not agree"));
	/* element limit */
	rwd_graph_limits lim = {.max_elems = 100};
	ck_assert_int_eq(rwd_graph_run(g, x, 4, dims, &lim, &out, &err), RWD_E_LIMIT);
	ck_assert_ptr_null(out.data);
	/* rank 3 input to a 2-D convolution */
	ck_assert_int_eq(rwd_graph_run(g, x, 3, dims, NULL, &out, &err), RWD_E_UNSUPPORTED);
	rwd_graph_free(g);
	rwd_graph_free(NULL);
}
END_TEST

START_TEST(corpus_seeds_run)
{
	/* the fuzz seeds that are valid graphs over w/w2/b/v (those naming "one" or "m" need the fuzz set) */
	const char *valid[] = {"conv_dw", "convt_resize_concat"};
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/tests/fuzz/corpus/graph/%s.json", rwd_source_root(), valid[i]);
		FILE *f = fopen(path, "rb");
		ck_assert_msg(f != NULL, "%s", path);
		static char buf[65536];
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = 0;
		rwd_graph *g = ok_graph(buf);
		float x[72] = {0};
		int64_t dims[4] = {1, 2, 6, 6};
		rwd_graph_tensor out;
		rwd_error err;
		ck_assert_msg(rwd_graph_run(g, x, 4, dims, NULL, &out, &err) == 0, "%s: %s: %s", valid[i],
			err.object, err.msg);
		free(out.data);
		rwd_graph_free(g);
	}
}
END_TEST

static Suite *graph_suite(void)
{
	Suite *s = suite_create("graph");
	TCase *tc = tcase_create("graph");
	tcase_add_test(tc, refusals);
	tcase_add_test(tc, run_errors_and_limits);
	tcase_add_test(tc, corpus_seeds_run);
	suite_add_tcase(s, tc);
	return s;
}

RWD_CHECK_MAIN(graph_suite)
