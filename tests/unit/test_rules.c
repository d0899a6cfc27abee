/*
 * tests/unit/test_rules.c — the `rules` kind through the generic model API:
 * options validation, check() errors, and every dimension's cases. Expected
 * values follow from the documented definitions in lib/models/rules.h
 * (BLEU's numbers are checked against NLTK in tests/parity/).
 */
#include "rwd_check.h"

#include "core/arena.h"
#include "models/model.h"
#include "models/rules.h"

#include <math.h>
#include <pthread.h>

static rwd_model *load_opts(const char *opts_json, rwd_error *err)
{
	json_t *opts = NULL;
	if (opts_json) {
		json_error_t je;
		opts = json_loads(opts_json, 0, &je);
		ck_assert_msg(opts != NULL, "bad test options: %s", je.text);
	}
	rwd_model_params p = rwd_model_default_params();
	p.name = "rules-test";
	p.kind = "rules";
	p.options = opts;
	rwd_model *m = NULL;
	rwd_error_clear(err);
	rwd_model_load(&p, &m, err);
	json_decref(opts);
	return m;
}

static rwd_model *load(const char *opts_json)
{
	rwd_error err;
	rwd_model *m = load_opts(opts_json, &err);
	ck_assert_msg(m != NULL, "load failed: %s (%s)", err.msg, err.object);
	return m;
}

/* Load must fail with `code`, naming `object`. */
static void load_fails(const char *opts_json, int code, const char *object)
{
	rwd_error err;
	rwd_model *m = load_opts(opts_json, &err);
	ck_assert_ptr_null(m);
	ck_assert_int_eq(err.code, code);
	ck_assert_str_eq(err.object, object);
}

/* Score one item; returns its status. out[] gets each dim, NAN if absent. */
static int run_item(rwd_model *m, json_t *item, double out[RWD_MAX_DIMS], rwd_error *err)
{
	size_t cost;
	rwd_error_clear(err);
	int r = rwd_model_check(m, item, &cost, err);
	if (r)
		return r;
	ck_assert_uint_eq(cost, 1);
	void *scratch;
	ck_assert_int_eq(rwd_model_scratch_new(m, &scratch, err), 0);
	rwd_arena *arena = rwd_arena_create(0, 0);
	rwd_item it;
	memset(&it, 0, sizeof(it));
	it.input = item;
	rwd_item *items[1] = {&it};
	ck_assert_int_eq(rwd_model_run(m, scratch, items, 1, arena), 0);
	const rwd_model_info *info = rwd_model_get_info(m);
	for (size_t i = 0; i < info->n_dims; i++)
		out[i] = it.present[i] ? it.scores[i] : NAN;
	*err = it.err;
	rwd_arena_destroy(arena);
	rwd_model_scratch_free(m, scratch);
	return it.status;
}

/* The value of `dim` for the item given as JSON text; NAN when absent. */
static double dim_of(rwd_model *m, const char *item_json, const char *dim)
{
	json_error_t je;
	json_t *item = json_loads(item_json, 0, &je);
	ck_assert_msg(item != NULL, "bad test item: %s", je.text);
	double out[RWD_MAX_DIMS];
	rwd_error err;
	int r = run_item(m, item, out, &err);
	json_decref(item);
	ck_assert_msg(r == 0, "item failed: %s (%s)", err.msg, err.object);
	int k = rwd_model_dim_index(m, dim);
	ck_assert_int_ge(k, 0);
	return out[k];
}

/* The item must fail check() or scoring with `code`, naming `object`. */
static void item_fails(rwd_model *m, json_t *item, int code, const char *object)
{
	double out[RWD_MAX_DIMS];
	rwd_error err;
	int r = run_item(m, item, out, &err);
	json_decref(item);
	ck_assert_int_eq(r, code);
	ck_assert_str_eq(err.object, object);
}

static json_t *item_of(const char *json)
{
	json_error_t je;
	json_t *v = json_loads(json, 0, &je);
	ck_assert_msg(v != NULL, "bad test item: %s", je.text);
	return v;
}

#define ASSERT_DIM(m, item, dim, want) \
	ck_assert_double_eq_tol(dim_of((m), (item), (dim)), (want), 1e-6)
#define ASSERT_ABSENT(m, item, dim) ck_assert(isnan(dim_of((m), (item), (dim))))

/* ---------------------------------------------------------------- */

START_TEST(describe_lists_dims_and_inputs)
{
	rwd_model *m = load(NULL);
	const rwd_model_info *info = rwd_model_get_info(m);
	ck_assert_str_eq(info->kind, "rules");
	ck_assert_uint_eq(info->n_dims, 7);
	ck_assert_str_eq(info->dims[0], "format");
	ck_assert_str_eq(info->dims[6], "tool_args");
	ck_assert_uint_eq(info->weight_bytes, 0);
	ck_assert_str_eq(info->inputs[0], "response");
	rwd_model_free(m);

	m = load("{\"dims\": [\"bleu\", \"format\"]}");
	info = rwd_model_get_info(m);
	ck_assert_uint_eq(info->n_dims, 2);
	ck_assert_str_eq(info->dims[0], "bleu");
	ck_assert_str_eq(info->dims[1], "format");
	ck_assert_int_eq(rwd_model_dim_index(m, "accuracy"), -1);
	rwd_model_free(m);
}
END_TEST

START_TEST(options_are_validated_by_name)
{
	load_fails("{\"bogus\": 1}", RWD_E_INVALID, "bogus");
	load_fails("[1]", RWD_E_INVALID, "options");
	load_fails("{\"bleu_order\": 7}", RWD_E_INVALID, "bleu_order");
	load_fails("{\"bleu_order\": 2.5}", RWD_E_INVALID, "bleu_order");
	load_fails("{\"bleu_smoothing\": \"method9\"}", RWD_E_INVALID, "bleu_smoothing");
	load_fails("{\"bleu_epsilon\": 0}", RWD_E_INVALID, "bleu_epsilon");
	load_fails("{\"dims\": [\"format\", \"nope\"]}", RWD_E_INVALID, "dims[1]");
	load_fails("{\"dims\": [\"format\", \"format\"]}", RWD_E_INVALID, "dims[1]");
	load_fails("{\"dims\": []}", RWD_E_INVALID, "dims");
	load_fails("{\"format_regex\": \"(unclosed\"}", RWD_E_INVALID, "format_regex");
	load_fails("{\"format_regex\": 5}", RWD_E_INVALID, "format_regex");
	load_fails("{\"format_anchor\": \"middle\"}", RWD_E_INVALID, "format_anchor");
	load_fails("{\"accuracy_rel_tol\": -1}", RWD_E_INVALID, "accuracy_rel_tol");
	load_fails("{\"accuracy_case_sensitive\": 1}", RWD_E_INVALID, "accuracy_case_sensitive");
	load_fails("{\"length_min\": 10, \"length_max\": 5}", RWD_E_INVALID, "length_min");
	load_fails("{\"length_scale\": 0}", RWD_E_INVALID, "length_scale");
	load_fails("{\"length_unit\": \"tokens\"}", RWD_E_INVALID, "length_unit");
	load_fails("{\"repetition_ngram\": 0}", RWD_E_INVALID, "repetition_ngram");
	load_fails("{\"max_response_bytes\": 0}", RWD_E_INVALID, "max_response_bytes");
	load_fails("{\"max_references\": 1000}", RWD_E_INVALID, "max_references");
	/* a disabled dimension's regex is still compiled */
	load_fails("{\"dims\": [\"bleu\"], \"format_regex\": \"[\"}", RWD_E_INVALID, "format_regex");
}
END_TEST

START_TEST(check_names_the_bad_field)
{
	rwd_model *m = load("{\"max_response_bytes\": 16, \"max_references\": 2}");
	item_fails(m, item_of("{\"prompt\": \"x\"}"), RWD_E_INVALID, "response");
	item_fails(m, item_of("{\"response\": 5}"), RWD_E_INVALID, "response");
	item_fails(m, item_of("{\"response\": \"0123456789abcdefg\"}"), RWD_E_LIMIT, "response");
	/* 16 bytes exactly is fine; the limit counts bytes, not code points */
	ck_assert(!isnan(dim_of(m, "{\"response\": \"0123456789abcdef\"}", "length")));
	item_fails(m, item_of("{\"response\": \"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9x\"}"),
		RWD_E_LIMIT, "response");
	item_fails(m, item_of("{\"response\": \"a\", \"prompt\": 3}"), RWD_E_INVALID, "prompt");
	item_fails(m, item_of("{\"response\": \"a\", \"reference\": []}"), RWD_E_INVALID, "reference");
	item_fails(m, item_of("{\"response\": \"a\", \"reference\": [\"x\", 2]}"), RWD_E_INVALID,
		"reference[1]");
	item_fails(m, item_of("{\"response\": \"a\", \"reference\": [\"x\", \"y\", \"z\"]}"), RWD_E_LIMIT,
		"reference");
	item_fails(m, item_of("{\"response\": \"a\", \"label\": true}"), RWD_E_INVALID, "label");
	item_fails(m, item_of("{\"response\": \"a\", \"label\": {\"arguments\": {}}}"), RWD_E_INVALID,
		"label");
	item_fails(m, item_of("{\"response\": \"a\", \"label\": {\"name\": \"f\", \"arguments\": 3}}"),
		RWD_E_INVALID, "label");

	/* invalid UTF-8 can only arrive through a string built without checks */
	json_t *item = json_object();
	json_object_set_new(item, "response", json_stringn_nocheck("ok \xC3\x28", 5));
	item_fails(m, item, RWD_E_FORMAT, "response");
	item = json_object();
	json_object_set_new(item, "response", json_string("ok"));
	json_object_set_new(item, "reference", json_stringn_nocheck("\xED\xA0\x80", 3)); /* a surrogate */
	item_fails(m, item, RWD_E_FORMAT, "reference");
	item = json_object();
	json_object_set_new(item, "response", json_string("ok"));
	json_object_set_new(item, "label", json_stringn_nocheck("\xC0\xAF", 2)); /* overlong */
	item_fails(m, item, RWD_E_FORMAT, "label");
	rwd_model_free(m);
}
END_TEST

START_TEST(format_default_structure)
{
	rwd_model *m = load("{\"dims\": [\"format\"]}");
	ASSERT_DIM(m, "{\"response\": \"<think>a</think><answer>b</answer>\"}", "format", 1);
	ASSERT_DIM(m, "{\"response\": \"\\n<think>\\nstep 1\\nstep 2\\n</think>\\n\\n<answer>\\n42\\n</answer>\\n\"}",
		"format", 1);
	ASSERT_DIM(m, "{\"response\": \"<think></think><answer></answer>\"}", "format", 1);
	ASSERT_DIM(m, "{\"response\": \"<think>\\u65e5\\u672c \\ud83c\\udf89</think> <answer>\\u00e9</answer>\"}",
		"format", 1);
	ASSERT_DIM(m, "{\"response\": \"<answer>b</answer>\"}", "format", 0);
	ASSERT_DIM(m, "{\"response\": \"<answer>b</answer><think>a</think>\"}", "format", 0);
	ASSERT_DIM(m, "{\"response\": \"<think>a</think><answer>b</answer> and more\"}", "format", 0);
	ASSERT_DIM(m, "{\"response\": \"so <think>a</think><answer>b</answer>\"}", "format", 0);
	ASSERT_DIM(m, "{\"response\": \"<think>a<think>b</think><answer>c</answer>\"}", "format", 0);
	ASSERT_DIM(m, "{\"response\": \"<think>a</think><answer>b</answer><answer>c</answer>\"}",
		"format", 0);
	ASSERT_DIM(m, "{\"response\": \"<think>a</think><answer>b\"}", "format", 0);
	ASSERT_DIM(m, "{\"response\": \"\"}", "format", 0);
	rwd_model_free(m);
}
END_TEST

START_TEST(format_custom_regex_and_anchors)
{
	rwd_model *m = load("{\"format_regex\": \"\\\\\\\\boxed\\\\{\", \"format_anchor\": \"search\"}");
	ASSERT_DIM(m, "{\"response\": \"so \\\\boxed{4}\"}", "format", 1);
	ASSERT_DIM(m, "{\"response\": \"so 4\"}", "format", 0);
	rwd_model_free(m);
	m = load("{\"format_regex\": \"<a>\", \"format_anchor\": \"start\"}");
	ASSERT_DIM(m, "{\"response\": \"<a> then anything\"}", "format", 1);
	ASSERT_DIM(m, "{\"response\": \" <a>\"}", "format", 0);
	rwd_model_free(m);
	/* UCP: \w matches any letter, and . matches newlines (DOTALL) */
	m = load("{\"format_regex\": \"\\\\w+.\\\\w+\"}");
	ASSERT_DIM(m, "{\"response\": \"\\u00e9t\\u00e9\\n\\u65e5\\u672c\"}", "format", 1);
	rwd_model_free(m);
}
END_TEST

START_TEST(format_limits_hostile_inputs)
{
	/* catastrophic backtracking hits the match limit: an item error, not a 0 */
	rwd_model *m = load("{\"format_regex\": \"(a+)+$\", \"format_match_limit\": 100000}");
	char resp[128];
	memset(resp, 'a', 60);
	resp[60] = 'b';
	resp[61] = 0;
	json_t *item = json_pack("{s:s}", "response", resp);
	item_fails(m, item, RWD_E_LIMIT, "response");
	rwd_model_free(m);

	/* the default regex handles a 64 KiB response within its limits */
	m = load("{\"dims\": [\"format\"]}");
	size_t n = 65536;
	char *big = malloc(n + 1);
	memcpy(big, "<think>", 7);
	for (size_t i = 7; i < n - 26; i++)
		big[i] = "ab <c\n"[i % 6];
	memcpy(big + n - 26, "</think><answer>", 16);
	memcpy(big + n - 10, "1</answer>", 10);
	big[n] = 0;
	item = json_pack("{s:s}", "response", big);
	double out[RWD_MAX_DIMS];
	rwd_error err;
	ck_assert_int_eq(run_item(m, item, out, &err), 0);
	ck_assert_double_eq(out[0], 1.0);
	json_decref(item);
	free(big);
	rwd_model_free(m);
}
END_TEST

START_TEST(accuracy_extraction)
{
	rwd_model *m = load("{\"dims\": [\"accuracy\"]}");
	ASSERT_DIM(m, "{\"response\": \"<think>6*7</think><answer>42</answer>\", \"label\": \"42\"}", "accuracy", 1);
	ASSERT_DIM(m, "{\"response\": \"<answer>43</answer>\", \"label\": \"42\"}", "accuracy", 0);
	/* the last <answer> block wins */
	ASSERT_DIM(m, "{\"response\": \"<answer>1</answer> no, <answer>2</answer>\", \"label\": \"2\"}", "accuracy", 1);
	/* a \boxed{} inside <answer> wins over the text around it */
	ASSERT_DIM(m, "{\"response\": \"<answer>So it is \\\\boxed{7} apples</answer>\", \"label\": \"7\"}",
		"accuracy", 1);
	/* nested braces in \boxed */
	ASSERT_DIM(m, "{\"response\": \"thus \\\\boxed{\\\\frac{1}{2}}.\", \"label\": \"0.5\"}", "accuracy", 1);
	ASSERT_DIM(m, "{\"response\": \"\\\\boxed{x^{2}+\\\\{1\\\\}}\", \"label\": \"x^{2}+\\\\{1\\\\}\"}",
		"accuracy", 1);
	/* the last complete \boxed; an unterminated one is skipped */
	ASSERT_DIM(m, "{\"response\": \"\\\\boxed{3} or \\\\boxed{4}\", \"label\": \"4\"}", "accuracy", 1);
	ASSERT_DIM(m, "{\"response\": \"\\\\boxed{3} or \\\\boxed{4\", \"label\": \"3\"}", "accuracy", 1);
	ASSERT_DIM(m, "{\"response\": \"\\\\boxed {5}\", \"label\": \"5\"}", "accuracy", 1);
	ASSERT_DIM(m, "{\"response\": \"\\\\fbox{5}\", \"label\": \"5\"}", "accuracy", 1);
	/* else the last number */
	ASSERT_DIM(m, "{\"response\": \"3 apples and 4 pears make 7.\", \"label\": \"7\"}", "accuracy", 1);
	ASSERT_DIM(m, "{\"response\": \"3 apples and 4 pears make 7.\", \"label\": \"4\"}", "accuracy", 0);
	ASSERT_DIM(m, "{\"response\": \"no digits here\", \"label\": \"7\"}", "accuracy", 0);
	ASSERT_DIM(m, "{\"response\": \"it is -3\", \"label\": \"-3\"}", "accuracy", 1);
	ASSERT_DIM(m, "{\"response\": \"it is \\u22123\", \"label\": \"-3\"}", "accuracy", 1);
	ASSERT_DIM(m, "{\"response\": \"from 2024-05\", \"label\": \"-5\"}", "accuracy", 0); /* no sign after a digit */
	/* a numeric label against a non-numeric answer uses its last number */
	ASSERT_DIM(m, "{\"response\": \"<answer>x = 5</answer>\", \"label\": \"5\"}", "accuracy", 1);
	/* label reductions: GSM8K "####" and a boxed solution */
	ASSERT_DIM(m, "{\"response\": \"72\", \"label\": \"48/2 = 24 ... 48+24 = 72\\n#### 72\"}", "accuracy", 1);
	ASSERT_DIM(m, "{\"response\": \"<answer>1/3</answer>\", \"label\": \"so $\\\\boxed{\\\\frac{1}{3}}$\"}",
		"accuracy", 1);
	rwd_model_free(m);
}
END_TEST

START_TEST(accuracy_normalisation)
{
	rwd_model *m = load("{\"dims\": [\"accuracy\"]}");
	/* thousands separators, $, trailing zeros, leading + */
	ASSERT_DIM(m, "{\"response\": \"The total is $1,234,567.\", \"label\": \"1234567\"}", "accuracy", 1);
	ASSERT_DIM(m, "{\"response\": \"<answer>1{,}234</answer>\", \"label\": \"1234\"}", "accuracy", 1);
	ASSERT_DIM(m, "{\"response\": \"<answer>2.50</answer>\", \"label\": \"2.5\"}", "accuracy", 1);
	ASSERT_DIM(m, "{\"response\": \"<answer>+7</answer>\", \"label\": \"7\"}", "accuracy", 1);
	ASSERT_DIM(m, "{\"response\": \"<answer>007</answer>\", \"label\": \"7\"}", "accuracy", 1);
	ASSERT_DIM(m, "{\"response\": \"<answer>\\u22127</answer>\", \"label\": \"-7\"}", "accuracy", 1);
	/* fractions */
	ASSERT_DIM(m, "{\"response\": \"<answer>3/4</answer>\", \"label\": \"0.75\"}", "accuracy", 1);
	ASSERT_DIM(m, "{\"response\": \"<answer>\\\\dfrac{3}{4}</answer>\", \"label\": \"\\\\frac{3}{4}\"}", "accuracy", 1);
	ASSERT_DIM(m, "{\"response\": \"<answer>\\\\tfrac12</answer>\", \"label\": \"0.5\"}", "accuracy", 1);
	ASSERT_DIM(m, "{\"response\": \"<answer>-\\\\frac{1}{4}</answer>\", \"label\": \"-0.25\"}", "accuracy", 1);
	ASSERT_DIM(m, "{\"response\": \"<answer>\\\\frac{1}{0}</answer>\", \"label\": \"1\"}", "accuracy", 0);
	/* percentages: 50% = 50 = 0.5 */
	ASSERT_DIM(m, "{\"response\": \"<answer>50%</answer>\", \"label\": \"0.5\"}", "accuracy", 1);
	ASSERT_DIM(m, "{\"response\": \"<answer>50%</answer>\", \"label\": \"50\"}", "accuracy", 1);
	ASSERT_DIM(m, "{\"response\": \"\\\\boxed{50\\\\%}\", \"label\": \"50%\"}", "accuracy", 1);
	ASSERT_DIM(m, "{\"response\": \"<answer>50%</answer>\", \"label\": \"5\"}", "accuracy", 0);
	/* LaTeX wrappers and case folding for strings */
	ASSERT_DIM(m, "{\"response\": \"\\\\boxed{\\\\text{Paris}}\", \"label\": \"paris\"}", "accuracy", 1);
	ASSERT_DIM(m, "{\"response\": \"<answer> \\\\left( 1, 2 \\\\right) </answer>\", \"label\": \"(1,2)\"}",
		"accuracy", 1);
	ASSERT_DIM(m, "{\"response\": \"<answer>90^\\\\circ</answer>\", \"label\": \"90\"}", "accuracy", 1);
	ASSERT_DIM(m, "{\"response\": \"<answer>\\\\textbf{B}.</answer>\", \"label\": \"b\"}", "accuracy", 1);
	ASSERT_DIM(m, "{\"response\": \"<answer>Stra\\u00dfe</answer>\", \"label\": \"STRASSE\"}", "accuracy", 1);
	/* NFC: a decomposed e-acute equals the precomposed one */
	ASSERT_DIM(m, "{\"response\": \"<answer>cafe\\u0301</answer>\", \"label\": \"caf\\u00e9\"}", "accuracy", 1);
	/* numbers: big integers compare exactly, others within the tolerance */
	ASSERT_DIM(m, "{\"response\": \"<answer>123456789012345678901234567890</answer>\", "
		"\"label\": \"123456789012345678901234567891\"}", "accuracy", 0);
	ASSERT_DIM(m, "{\"response\": \"<answer>123456789012345678901234567890</answer>\", "
		"\"label\": \"123,456,789,012,345,678,901,234,567,890\"}", "accuracy", 1);
	ASSERT_DIM(m, "{\"response\": \"<answer>3.1416</answer>\", \"label\": \"3.14159\"}", "accuracy", 0);
	ASSERT_DIM(m, "{\"response\": \"<answer>1e3</answer>\", \"label\": \"1000\"}", "accuracy", 1);
	/* JSON number labels */
	ASSERT_DIM(m, "{\"response\": \"<answer>1/4</answer>\", \"label\": 0.25}", "accuracy", 1);
	ASSERT_DIM(m, "{\"response\": \"<answer>12</answer>\", \"label\": 12}", "accuracy", 1);
	rwd_model_free(m);

	m = load("{\"dims\": [\"accuracy\"], \"accuracy_rel_tol\": 1e-4, \"accuracy_case_sensitive\": true}");
	ASSERT_DIM(m, "{\"response\": \"<answer>3.1416</answer>\", \"label\": \"3.14159\"}", "accuracy", 1);
	ASSERT_DIM(m, "{\"response\": \"<answer>Paris</answer>\", \"label\": \"paris\"}", "accuracy", 0);
	rwd_model_free(m);
}
END_TEST

START_TEST(accuracy_absent_without_label)
{
	rwd_model *m = load(NULL);
	ASSERT_ABSENT(m, "{\"response\": \"<answer>4</answer>\"}", "accuracy");
	ASSERT_ABSENT(m, "{\"response\": \"<answer>4</answer>\", \"label\": null}", "accuracy");
	ASSERT_ABSENT(m, "{\"response\": \"<answer>4</answer>\", \"label\": \"  \"}", "accuracy");
	ASSERT_ABSENT(m, "{\"response\": \"<answer>4</answer>\"}", "bleu");
	ASSERT_ABSENT(m, "{\"response\": \"<answer>4</answer>\"}", "tool_name");
	ASSERT_DIM(m, "{\"response\": \"<answer>4</answer>\", \"label\": \"4\"}", "accuracy", 1);
	/* arrays of acceptable answers */
	ASSERT_DIM(m, "{\"response\": \"<answer>four</answer>\", \"label\": [\"4\", \"Four\"]}", "accuracy", 1);
	ASSERT_DIM(m, "{\"response\": \"<answer>0.5</answer>\", \"label\": [7, 0.5]}", "accuracy", 1);
	ASSERT_DIM(m, "{\"response\": \"<answer>5</answer>\", \"label\": [\"4\", \"four\"]}", "accuracy", 0);
	ASSERT_ABSENT(m, "{\"response\": \"<answer>5</answer>\", \"label\": [\"\", \" \"]}", "accuracy");
	ASSERT_ABSENT(m, "{\"response\": \"<answer>5</answer>\", \"label\": [\"5\"]}", "tool_name");
	item_fails(m, item_of("{\"response\": \"a\", \"label\": []}"), RWD_E_INVALID, "label");
	item_fails(m, item_of("{\"response\": \"a\", \"label\": [\"1\", {\"name\": \"f\"}]}"), RWD_E_INVALID,
		"label[1]");
	item_fails(m, item_of("{\"response\": \"a\", \"label\": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]}"),
		RWD_E_LIMIT, "label");
	ASSERT_ABSENT(m, "{\"response\": \"<answer>4</answer>\", \"label\": \"4\"}", "tool_args");
	rwd_model_free(m);
}
END_TEST

START_TEST(bleu_basics)
{
	rwd_model *m = load("{\"dims\": [\"bleu\"]}");
	ASSERT_DIM(m, "{\"response\": \"the cat sat on the mat\", \"reference\": \"the cat sat on the mat\"}", "bleu", 1);
	ASSERT_DIM(m, "{\"response\": \"the cat sat on the mat\", \"reference\": [\"a dog\", \"the cat sat on the mat\"]}",
		"bleu", 1);
	/* no unigram in common: 0, whatever the smoothing */
	ASSERT_DIM(m, "{\"response\": \"alpha beta\", \"reference\": \"gamma delta\"}", "bleu", 0);
	ASSERT_DIM(m, "{\"response\": \"\", \"reference\": \"gamma delta\"}", "bleu", 0);
	ASSERT_DIM(m, "{\"response\": \"\", \"reference\": \"\"}", "bleu", 0);
	ASSERT_DIM(m, "{\"response\": \" \", \"reference\": [\"\\n\", \"\"]}", "bleu", 0);
	double partial = dim_of(m, "{\"response\": \"the cat sat on a mat\", \"reference\": \"the cat sat on the mat\"}", "bleu");
	ck_assert(partial > 0 && partial < 1);
	/* punctuation splits off: these tokenise identically */
	ASSERT_DIM(m, "{\"response\": \"Hello, world!\", \"reference\": \"Hello ,world !\"}", "bleu", 1);
	ASSERT_ABSENT(m, "{\"response\": \"x\", \"reference\": null}", "bleu");
	rwd_model_free(m);

	/* the double-precision entry point agrees with the dimension */
	const char *refs[] = {"the cat sat on the mat"};
	size_t lens[] = {strlen(refs[0])};
	rwd_rules_bleu_params p = rwd_rules_bleu_default_params();
	double d;
	ck_assert_int_eq(rwd_rules_bleu("the cat sat on a mat", 20, refs, lens, 1, &p, &d), 0);
	ck_assert_double_eq_tol(d, partial, 1e-6);
	ck_assert_int_eq(rwd_rules_bleu("x", 1, refs, lens, 0, &p, &d), RWD_E_INVALID);
	ck_assert_int_eq(rwd_rules_bleu("\xff", 1, refs, lens, 1, &p, &d), RWD_E_FORMAT);
}
END_TEST

START_TEST(length_penalty)
{
	rwd_model *m = load("{\"dims\": [\"length\"], \"length_min\": 2, \"length_max\": 5, \"length_scale\": 5}");
	ASSERT_DIM(m, "{\"response\": \"one two three\"}", "length", 1);
	ASSERT_DIM(m, "{\"response\": \"1 2 3 4 5\"}", "length", 1);
	ASSERT_DIM(m, "{\"response\": \"1 2 3 4 5 6 7\"}", "length", 1 - 2 / 5.0);
	ASSERT_DIM(m, "{\"response\": \"1 2 3 4 5 6 7 8 9 10 11 12\"}", "length", 0);
	ASSERT_DIM(m, "{\"response\": \"one\"}", "length", 1 - 1 / 5.0);
	ASSERT_DIM(m, "{\"response\": \"  \\n\\t \"}", "length", 1 - 2 / 5.0);
	rwd_model_free(m);
	m = load("{\"dims\": [\"length\"], \"length_max\": 2, \"length_scale\": 4, \"length_decay\": \"exponential\", "
		"\"length_unit\": \"chars\"}");
	ASSERT_DIM(m, "{\"response\": \"\\u65e5\\u672c\"}", "length", 1);
	ASSERT_DIM(m, "{\"response\": \"\\u65e5\\u672c\\u8a9e\\ud83c\\udf89\"}", "length", exp(-2 / 4.0));
	rwd_model_free(m);
	m = load("{\"dims\": [\"length\"], \"length_max\": 6, \"length_scale\": 3, \"length_unit\": \"bytes\"}");
	ASSERT_DIM(m, "{\"response\": \"\\u65e5\\u672c\\u8a9e\"}", "length", 1 - 3 / 3.0);
	rwd_model_free(m);
}
END_TEST

START_TEST(repetition_share)
{
	rwd_model *m = load("{\"dims\": [\"repetition\"]}");
	/* trigrams: abc bca cab abc -> 3 distinct of 4 */
	ASSERT_DIM(m, "{\"response\": \"a b c a b c\"}", "repetition", 0.75);
	ASSERT_DIM(m, "{\"response\": \"A b C a B c\"}", "repetition", 0.75);
	ASSERT_DIM(m, "{\"response\": \"one two three four\"}", "repetition", 1);
	ASSERT_DIM(m, "{\"response\": \"too short\"}", "repetition", 1);
	ASSERT_DIM(m, "{\"response\": \"\"}", "repetition", 1);
	/* 10 identical words: 8 trigrams, 1 distinct */
	ASSERT_DIM(m, "{\"response\": \"la la la la la la la la la la\"}", "repetition", 1 / 8.0);
	rwd_model_free(m);
	m = load("{\"dims\": [\"repetition\"], \"repetition_ngram\": 1}");
	ASSERT_DIM(m, "{\"response\": \"x y x z\"}", "repetition", 3 / 4.0);
	rwd_model_free(m);
}
END_TEST

START_TEST(tool_calls)
{
	rwd_model *m = load("{\"dims\": [\"tool_name\", \"tool_args\", \"accuracy\"]}");
	const char *label = "\"label\": {\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"C\"}}";
	char item[1024];
#define TOOL_ITEM(resp) (snprintf(item, sizeof(item), "{\"response\": %s, %s}", resp, label), item)
	const char *qwen = "\"<tool_call>\\n{\\\"name\\\": \\\"get_weather\\\", \\\"arguments\\\": "
		"{\\\"city\\\": \\\"Paris\\\", \\\"unit\\\": \\\"F\\\"}}\\n</tool_call>\"";
	ASSERT_DIM(m, TOOL_ITEM(qwen), "tool_name", 1);
	ASSERT_DIM(m, TOOL_ITEM(qwen), "tool_args", 0.5);
	ASSERT_ABSENT(m, TOOL_ITEM(qwen), "accuracy");
	/* arguments as a JSON string (OpenAI style), numbers compared by value */
	const char *str_args = "\"call: {\\\"name\\\": \\\"get_weather\\\", \\\"arguments\\\": "
		"\\\"{\\\\\\\"unit\\\\\\\": \\\\\\\"C\\\\\\\", \\\\\\\"city\\\\\\\": \\\\\\\"Paris\\\\\\\"}\\\"}\"";
	ASSERT_DIM(m, TOOL_ITEM(str_args), "tool_args", 1);
	/* an extra argument counts against the score (|union| = 3) */
	const char *extra = "\"{\\\"name\\\": \\\"get_weather\\\", \\\"arguments\\\": {\\\"city\\\": \\\"Paris\\\", "
		"\\\"unit\\\": \\\"C\\\", \\\"days\\\": 3}}\"";
	ASSERT_DIM(m, TOOL_ITEM(extra), "tool_args", 2 / 3.0);
	/* wrong name, right args */
	const char *other = "\"{\\\"name\\\": \\\"get_time\\\", \\\"arguments\\\": {\\\"city\\\": \\\"Paris\\\", \\\"unit\\\": \\\"C\\\"}}\"";
	ASSERT_DIM(m, TOOL_ITEM(other), "tool_name", 0);
	ASSERT_DIM(m, TOOL_ITEM(other), "tool_args", 1);
	/* no call, malformed calls: 0, never a crash */
	ASSERT_DIM(m, TOOL_ITEM("\"I cannot help.\""), "tool_name", 0);
	ASSERT_DIM(m, TOOL_ITEM("\"I cannot help.\""), "tool_args", 0);
	ASSERT_DIM(m, TOOL_ITEM("\"<tool_call>{\\\"name\\\": \\\"get_weather\\\", </tool_call>\""), "tool_name", 0);
	ASSERT_DIM(m, TOOL_ITEM("\"<tool_call>{\\\"name\\\": \\\"get_weather\\\", \\\"name\\\": \\\"x\\\"}</tool_call>\""),
		"tool_name", 0);
	ASSERT_DIM(m, TOOL_ITEM("\"{{{{{{{{[[[[\\\"\""), "tool_args", 0);
	ASSERT_DIM(m, TOOL_ITEM("\"{\\\"name\\\": \\\"get_weather\\\", \\\"arguments\\\": \\\"{not json\\\"}\""),
		"tool_args", 0);
	ASSERT_DIM(m, TOOL_ITEM("\"{\\\"name\\\": \\\"get_weather\\\", \\\"arguments\\\": \\\"{not json\\\"}\""),
		"tool_name", 1);
	/* the first object with a name is the call; others are skipped */
	ASSERT_DIM(m, TOOL_ITEM("\"{\\\"x\\\": 1} then {\\\"name\\\": \\\"get_weather\\\"}\""), "tool_name", 1);
	rwd_model_free(m);

	m = load("{\"dims\": [\"tool_name\", \"tool_args\", \"accuracy\"]}");
	/* a label given as a JSON string; 1 == 1.0; OpenAI "function" wrapper */
	ASSERT_DIM(m, "{\"response\": \"{\\\"name\\\": \\\"f\\\", \\\"arguments\\\": {\\\"n\\\": 1.0}}\", "
		"\"label\": \"{\\\"function\\\": {\\\"name\\\": \\\"f\\\", \\\"arguments\\\": {\\\"n\\\": 1}}}\"}",
		"tool_args", 1);
	/* both argument sets empty: 1 */
	ASSERT_DIM(m, "{\"response\": \"<tool_call>{\\\"name\\\": \\\"f\\\"}</tool_call>\", "
		"\"label\": {\"name\": \"f\", \"arguments\": {}}}", "tool_args", 1);
	/* a string label that is not a tool call scores accuracy instead */
	ASSERT_DIM(m, "{\"response\": \"<answer>{1,2}</answer>\", \"label\": \"{1,2}\"}", "accuracy", 1);
	ASSERT_ABSENT(m, "{\"response\": \"<answer>{1,2}</answer>\", \"label\": \"{1,2}\"}", "tool_name");
	rwd_model_free(m);
#undef TOOL_ITEM
}
END_TEST

START_TEST(prompt_and_eos_are_stripped)
{
	rwd_model *m = load("{\"dims\": [\"format\", \"length\"], \"length_max\": 3, \"length_scale\": 1}");
	/* OpenRLHF's query = prompt + response + EOS text */
	const char *q = "{\"prompt\": \"<|im_start|>user\\nWhat is 6*7? one two three<|im_end|>\\n<|im_start|>assistant\\n\", "
		"\"response\": \"<|im_start|>user\\nWhat is 6*7? one two three<|im_end|>\\n<|im_start|>assistant\\n"
		"<think>6*7</think> <answer>42</answer><|im_end|><|endoftext|>\"}";
	ASSERT_DIM(m, q, "format", 1);
	ASSERT_DIM(m, q, "length", 1); /* 3 words once the prompt is gone */
	/* a prompt the response does not start with is left alone */
	ASSERT_DIM(m, "{\"prompt\": \"Q\", \"response\": \"<think></think><answer>1</answer></s>\"}", "format", 1);
	rwd_model_free(m);
	m = load("{\"dims\": [\"format\"], \"strip_prompt\": false, \"strip_suffixes\": [\"[END]\"]}");
	ASSERT_DIM(m, "{\"prompt\": \"Q\", \"response\": \"Q<think></think><answer>1</answer>\"}", "format", 0);
	ASSERT_DIM(m, "{\"response\": \"<think></think><answer>1</answer>[END][END]\"}", "format", 1);
	ASSERT_DIM(m, "{\"response\": \"<think></think><answer>1</answer><|im_end|>\"}", "format", 0);
	rwd_model_free(m);
	load_fails("{\"strip_suffixes\": [\"\"]}", RWD_E_INVALID, "strip_suffixes[0]");
	load_fails("{\"strip_prompt\": \"yes\"}", RWD_E_INVALID, "strip_prompt");
}
END_TEST

START_TEST(batch_and_concurrent_scratch)
{
	/* a batch with a failing item: the others are still scored */
	rwd_model *m = load("{\"format_regex\": \"(a+)+$\", \"format_match_limit\": 10000}");
	char bad[64];
	memset(bad, 'a', 40);
	strcpy(bad + 40, "b");
	json_t *in[3] = {
		json_pack("{s:s, s:s}", "response", "a", "label", "1"),
		json_pack("{s:s}", "response", bad),
		json_pack("{s:s, s:s}", "response", "aa 1", "label", "1"),
	};
	rwd_item items[3];
	rwd_item *ptrs[3];
	memset(items, 0, sizeof(items));
	for (int i = 0; i < 3; i++) {
		items[i].input = in[i];
		ptrs[i] = &items[i];
	}
	rwd_arena *arena = rwd_arena_create(0, 0);
	ck_assert_int_eq(rwd_model_run(m, NULL, ptrs, 3, arena), 0); /* NULL scratch is allowed */
	ck_assert_int_eq(items[0].status, 0);
	ck_assert_int_eq(items[1].status, RWD_E_LIMIT);
	ck_assert_int_eq(items[2].status, 0);
	int f = rwd_model_dim_index(m, "format"), a = rwd_model_dim_index(m, "accuracy");
	ck_assert(items[0].present[f] && items[0].scores[f] == 1.0f);
	ck_assert(items[2].present[a] && items[2].scores[a] == 1.0f);
	ck_assert(!items[1].present[f]);
	rwd_arena_destroy(arena);
	for (int i = 0; i < 3; i++)
		json_decref(in[i]);
	rwd_model_free(m);
}
END_TEST

/* Threads share one loaded model, each with its own scratch. */
typedef struct worker {
	rwd_model *m;
	json_t *items[4];
	float scores[4][RWD_MAX_DIMS];
	uint8_t present[4][RWD_MAX_DIMS];
	int failed;
} worker;

static void *worker_main(void *arg)
{
	worker *w = arg;
	void *scratch;
	rwd_error err;
	if (rwd_model_scratch_new(w->m, &scratch, &err)) {
		w->failed = 1;
		return NULL;
	}
	rwd_arena *arena = rwd_arena_create(0, 0);
	for (int round = 0; round < 50; round++) {
		rwd_item it[4];
		rwd_item *ptrs[4];
		memset(it, 0, sizeof(it));
		for (int i = 0; i < 4; i++) {
			it[i].input = w->items[i];
			ptrs[i] = &it[i];
		}
		if (rwd_model_run(w->m, scratch, ptrs, 4, arena)) {
			w->failed = 1;
			break;
		}
		for (int i = 0; i < 4; i++) {
			if (round > 0 && (memcmp(w->scores[i], it[i].scores, sizeof(it[i].scores)) != 0 ||
					memcmp(w->present[i], it[i].present, sizeof(it[i].present)) != 0))
				w->failed = 1;
			memcpy(w->scores[i], it[i].scores, sizeof(it[i].scores));
			memcpy(w->present[i], it[i].present, sizeof(it[i].present));
		}
		rwd_arena_reset(arena);
	}
	rwd_arena_destroy(arena);
	rwd_model_scratch_free(w->m, scratch);
	return NULL;
}

START_TEST(threads_share_the_model)
{
	rwd_model *m = load(NULL);
	const char *texts[4] = {
		"{\"response\": \"<think>a</think><answer>\\\\boxed{42}</answer>\", \"label\": \"42\", \"reference\": \"the answer is 42\"}",
		"{\"response\": \"the cat sat on the mat the cat\", \"reference\": [\"the cat sat\", \"on the mat\"]}",
		"{\"response\": \"<tool_call>{\\\"name\\\": \\\"f\\\", \\\"arguments\\\": {\\\"a\\\": 1}}</tool_call>\", "
		"\"label\": {\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": 2}}}",
		"{\"response\": \"\\u65e5\\u672c 50%\", \"label\": \"0.5\"}",
	};
	worker w[4];
	pthread_t th[4];
	memset(w, 0, sizeof(w));
	for (int t = 0; t < 4; t++) {
		w[t].m = m;
		for (int i = 0; i < 4; i++)
			w[t].items[i] = item_of(texts[i]);
		ck_assert_int_eq(pthread_create(&th[t], NULL, worker_main, &w[t]), 0);
	}
	for (int t = 0; t < 4; t++)
		pthread_join(th[t], NULL);
	for (int t = 0; t < 4; t++) {
		ck_assert(!w[t].failed);
		ck_assert(memcmp(w[t].scores, w[0].scores, sizeof(w[0].scores)) == 0);
		for (int i = 0; i < 4; i++)
			json_decref(w[t].items[i]);
	}
	ck_assert(w[0].present[0][rwd_model_dim_index(m, "accuracy")]);
	ck_assert(w[0].present[2][rwd_model_dim_index(m, "tool_args")]);
	ck_assert_double_eq_tol(w[0].scores[2][rwd_model_dim_index(m, "tool_args")], 0.5, 1e-6);
	rwd_model_free(m);
}
END_TEST

static Suite *rules_suite(void)
{
	Suite *s = suite_create("rules");
	TCase *tc = tcase_create("rules");
	tcase_add_test(tc, describe_lists_dims_and_inputs);
	tcase_add_test(tc, options_are_validated_by_name);
	tcase_add_test(tc, check_names_the_bad_field);
	tcase_add_test(tc, format_default_structure);
	tcase_add_test(tc, format_custom_regex_and_anchors);
	tcase_add_test(tc, format_limits_hostile_inputs);
	tcase_add_test(tc, accuracy_extraction);
	tcase_add_test(tc, accuracy_normalisation);
	tcase_add_test(tc, accuracy_absent_without_label);
	tcase_add_test(tc, bleu_basics);
	tcase_add_test(tc, length_penalty);
	tcase_add_test(tc, repetition_share);
	tcase_add_test(tc, tool_calls);
	tcase_add_test(tc, prompt_and_eos_are_stripped);
	tcase_add_test(tc, batch_and_concurrent_scratch);
	tcase_add_test(tc, threads_share_the_model);
	suite_add_tcase(s, tc);
	return s;
}

RWD_CHECK_MAIN(rules_suite)
