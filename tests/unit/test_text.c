/*
 * tests/unit/test_text.c — lib/text: tokenizer loading errors and limits,
 * encoding edge cases (added tokens before normalisation, truncation,
 * empty and invalid UTF-8 text), the Qwen2 and CLIP fixtures, and chat
 * templates (recognition, refusal, message validation, loading).
 *
 * Expected ids come from the BPE rules applied by hand to the tiny
 * vocabulary below, or from the published ids of the real tokenizers
 * (fixtures README, reference §4.6/§4.7); never from our own output.
 */
#include "rwd_check.h"

#include "text/chat.h"
#include "text/jinja.h"
#include "text/tokenizer.h"

#include <jansson.h>
#include <stdint.h>
#include <sys/stat.h>

/*
 * A tiny tokenizer: Lowercase normalizer, WhitespaceSplit, BPE over
 * a, b, c (ab = a+b, abc = ab+c), [UNK], an added special <BIG> that must
 * match the RAW text, and <s> A </s> around every sequence.
 */
#define TINY_HEAD \
	"{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[" \
	"{\"id\":10,\"content\":\"<BIG>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true}," \
	"{\"id\":11,\"content\":\"[UNK]\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true}," \
	"{\"id\":12,\"content\":\"<s>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true}," \
	"{\"id\":13,\"content\":\"</s>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true}]," \
	"\"normalizer\":{\"type\":\"Lowercase\"},\"pre_tokenizer\":{\"type\":\"WhitespaceSplit\"}," \
	"\"post_processor\":{\"type\":\"TemplateProcessing\"," \
	"\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},{\"SpecialToken\":{\"id\":\"</s>\",\"type_id\":0}}]," \
	"\"pair\":[{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},{\"Sequence\":{\"id\":\"B\",\"type_id\":1}}]," \
	"\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[12],\"tokens\":[\"<s>\"]},\"</s>\":{\"id\":\"</s>\",\"ids\":[13],\"tokens\":[\"</s>\"]}}}," \
	"\"decoder\":null,\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":\"[UNK]\",\"continuing_subword_prefix\":null," \
	"\"end_of_word_suffix\":null,\"fuse_unk\":false,\"byte_fallback\":false,\"ignore_merges\":false,"
#define TINY_VOCAB "\"vocab\":{\"a\":0,\"b\":1,\"c\":2,\"ab\":3,\"abc\":4,\"<\":5,\">\":6,\"g\":7,\"i\":8,\"[UNK]\":11},"
#define TINY_MERGES "\"merges\":[[\"a\",\"b\"],[\"ab\",\"c\"]]"
static const char TINY[] = TINY_HEAD TINY_VOCAB TINY_MERGES "}}";

static rwd_tokenizer *load_str(const char *json, const rwd_tokenizer_params *p, int *rc, rwd_error *err)
{
	rwd_tokenizer *t = NULL;
	rwd_error_clear(err);
	*rc = rwd_tokenizer_load_json_bytes(json, strlen(json), "tiny.json", p, &t, err);
	return t;
}

/* Encode and compare with want[0..n). */
static void expect_ids(const rwd_tokenizer *t, const char *text, size_t len, const rwd_encode_params *ep,
	const int32_t *want, size_t n)
{
	rwd_arena *a = rwd_arena_create(0, 0);
	rwd_token_ids ids;
	rwd_error err;
	rwd_error_clear(&err);
	int rc = rwd_tokenizer_encode(t, text, len, ep, a, &ids, &err);
	ck_assert_msg(rc == 0, "encode failed: %s", err.msg);
	ck_assert_uint_eq(ids.n, n);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(ids.ids[i] == want[i], "id %zu: got %d want %d", i, ids.ids[i], want[i]);
	rwd_arena_destroy(a);
}

START_TEST(tiny_encodes)
{
	int rc;
	rwd_error err;
	rwd_tokenizer *t = load_str(TINY, NULL, &rc, &err);
	ck_assert_msg(rc == 0, "load: %s (%s)", err.msg, err.object);
	/* <BIG> is split out of the raw text before Lowercase runs */
	expect_ids(t, "<BIG>AB", 7, NULL, (int32_t[]){ 12, 10, 3, 13 }, 4);
	/* lower-case <big> is not the special token: characters of its word */
	expect_ids(t, "<big>", 5, NULL, (int32_t[]){ 12, 5, 1, 8, 7, 6, 13 }, 7);
	/* merges by rank: abc, ab, c; unknown x is [UNK] */
	expect_ids(t, "ABC ab c x", 10, NULL, (int32_t[]){ 12, 4, 3, 2, 11, 13 }, 6);
	/* empty text: only the template's special tokens */
	expect_ids(t, "", 0, NULL, (int32_t[]){ 12, 13 }, 2);
	rwd_encode_params ep = rwd_encode_default_params();
	ep.add_special_tokens = 0;
	expect_ids(t, "", 0, &ep, NULL, 0);
	expect_ids(t, "ab", 2, &ep, (int32_t[]){ 3 }, 1);
	ck_assert_uint_eq(rwd_tokenizer_num_special_added(t), 2);
	ck_assert_int_eq(rwd_tokenizer_token_to_id(t, "<BIG>"), 10);
	ck_assert_int_eq(rwd_tokenizer_token_to_id(t, "abc"), 4);
	ck_assert_int_eq(rwd_tokenizer_token_to_id(t, "zzz"), -1);
	ck_assert_str_eq(rwd_tokenizer_id_to_token(t, 3), "ab");
	ck_assert_ptr_null(rwd_tokenizer_id_to_token(t, 9999));
	rwd_tokenizer_free(t);
}
END_TEST

START_TEST(tiny_truncation_keeps_specials)
{
	int rc;
	rwd_error err;
	rwd_tokenizer *t = load_str(TINY, NULL, &rc, &err);
	ck_assert_int_eq(rc, 0);
	rwd_encode_params ep = rwd_encode_default_params();
	ep.max_length = 3;
	/* body [abc, ab, c] keeps its first id; eos stays last */
	expect_ids(t, "abc ab c", 8, &ep, (int32_t[]){ 12, 4, 13 }, 3);
	ep.truncate_left = 1;
	expect_ids(t, "abc ab c", 8, &ep, (int32_t[]){ 12, 2, 13 }, 3);
	ep.truncate_left = 0;
	ep.max_length = 2;
	expect_ids(t, "abc", 3, &ep, (int32_t[]){ 12, 13 }, 2);
	/* n_full reports the length before truncation */
	rwd_arena *a = rwd_arena_create(0, 0);
	rwd_token_ids ids;
	ep.max_length = 3;
	ck_assert_int_eq(rwd_tokenizer_encode(t, "abc ab c", 8, &ep, a, &ids, &err), 0);
	ck_assert_uint_eq(ids.n_full, 5);
	/* fewer ids than the special tokens: refused */
	ep.max_length = 1;
	rwd_error_clear(&err);
	ck_assert_int_eq(rwd_tokenizer_encode(t, "abc", 3, &ep, a, &ids, &err), RWD_E_INVALID);
	rwd_arena_destroy(a);
	rwd_tokenizer_free(t);
}
END_TEST

START_TEST(tiny_invalid_utf8)
{
	int rc;
	rwd_error err;
	rwd_tokenizer *t = load_str(TINY, NULL, &rc, &err);
	ck_assert_int_eq(rc, 0);
	rwd_arena *a = rwd_arena_create(0, 0);
	rwd_token_ids ids;
	static const struct {
		const char *s;
		size_t len;
		int64_t at;
	} bad[] = {
		{ "\xff", 1, 0 }, { "ab\xc3", 3, 2 }, { "a\xc0\xaf", 3, 1 }, { "\xed\xa0\x80", 3, 0 },
		{ "ab\xf4\x90\x80\x80", 6, 2 }, { "a\x80", 2, 1 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rwd_error_clear(&err);
		ck_assert_int_eq(rwd_tokenizer_encode(t, bad[i].s, bad[i].len, NULL, a, &ids, &err), RWD_E_INVALID);
		ck_assert_msg(err.offset == bad[i].at, "case %zu: offset %lld", i, (long long)err.offset);
	}
	/* a NUL inside the text is a character like any other */
	rwd_error_clear(&err);
	ck_assert_int_eq(rwd_tokenizer_encode(t, "a\0b", 3, NULL, a, &ids, &err), 0);
	ck_assert_int_eq(ids.ids[0], 12);
	ck_assert_int_eq(ids.ids[ids.n - 1], 13);
	rwd_arena_destroy(a);
	rwd_tokenizer_free(t);
}
END_TEST

/* A malformed variant must fail with `code`, naming `path` in err.object. */
static void expect_load_error(const char *json, const rwd_tokenizer_params *p, int code, const char *path)
{
	int rc;
	rwd_error err;
	rwd_tokenizer *t = load_str(json, p, &rc, &err);
	ck_assert_ptr_null(t);
	ck_assert_msg(rc == code, "%s: rc %d want %d (%s: %s)", path, rc, code, err.object, err.msg);
	ck_assert_str_eq(err.file, "tiny.json");
	if (path)
		ck_assert_msg(strstr(err.object, path) != NULL, "object \"%s\" does not name %s (%s)",
			err.object, path, err.msg);
}

START_TEST(load_errors_name_the_json_path)
{
	expect_load_error(TINY_HEAD TINY_VOCAB "\"merges\":[[\"a\",\"b\"],[\"ab\"]]}}", NULL, RWD_E_INVALID,
		"model.merges[1]");
	expect_load_error(TINY_HEAD TINY_VOCAB "\"merges\":[\"a b\",\"ab  c\"]}}", NULL, RWD_E_INVALID,
		"model.merges[1]");
	expect_load_error(TINY_HEAD "\"vocab\":{\"a\":\"zero\"}," TINY_MERGES "}}", NULL, RWD_E_INVALID,
		"model.vocab");
	expect_load_error(TINY_HEAD "\"vocab\":{\"a\":-1}," TINY_MERGES "}}", NULL, RWD_E_LIMIT, "model.vocab");
	expect_load_error(TINY_HEAD TINY_VOCAB "\"merges\":7}}", NULL, RWD_E_INVALID, "model.merges");
	/* an unknown model type, normalizer or processor is UNSUPPORTED, named */
	{
		char buf[sizeof(TINY) + 64];
		const char *m = strstr(TINY, "\"type\":\"BPE\"");
		snprintf(buf, sizeof(buf), "%.*s\"type\":\"WordPiece\"%s", (int)(m - TINY), TINY, m + 12);
		expect_load_error(buf, NULL, RWD_E_UNSUPPORTED, "model");
		const char *nz = strstr(TINY, "{\"type\":\"Lowercase\"}");
		snprintf(buf, sizeof(buf), "%.*s{\"type\":\"Precompiled\"}%s", (int)(nz - TINY), TINY, nz + 20);
		expect_load_error(buf, NULL, RWD_E_UNSUPPORTED, "normalizer");
	}
	expect_load_error("[1, 2]", NULL, RWD_E_INVALID, NULL);
	expect_load_error("", NULL, RWD_E_FORMAT, NULL);
	/* syntax errors carry line and column */
	int rc;
	rwd_error err;
	ck_assert_ptr_null(load_str("{\n  \"version\": \"1.0\",\n  \"model\": {,}\n}", NULL, &rc, &err));
	ck_assert_int_eq(rc, RWD_E_FORMAT);
	ck_assert_int_eq(err.line, 3);
	ck_assert_int_gt(err.column, 0);
}
END_TEST

START_TEST(load_limits)
{
	rwd_tokenizer_params p = rwd_tokenizer_default_params();
	p.max_vocab = 3;
	expect_load_error(TINY, &p, RWD_E_LIMIT, "model.vocab");
	p = rwd_tokenizer_default_params();
	p.max_merges = 1;
	expect_load_error(TINY, &p, RWD_E_LIMIT, "model.merges");
	p = rwd_tokenizer_default_params();
	p.max_token_bytes = 2; /* "abc" and "[UNK]" are longer */
	expect_load_error(TINY, &p, RWD_E_LIMIT, NULL);
	p = rwd_tokenizer_default_params();
	p.max_file_bytes = 100;
	expect_load_error(TINY, &p, RWD_E_LIMIT, NULL);
	p = rwd_tokenizer_default_params();
	p.max_added_tokens = 2;
	expect_load_error(TINY, &p, RWD_E_LIMIT, "added_tokens");
	p = rwd_tokenizer_default_params();
	p.max_id = 5;
	expect_load_error(TINY, &p, RWD_E_LIMIT, NULL);
	/* defaults are finite */
	p = rwd_tokenizer_default_params();
	ck_assert_uint_gt(p.max_file_bytes, 0);
	ck_assert_uint_gt(p.max_vocab, 0);
	ck_assert_uint_gt(p.max_merges, 0);
}
END_TEST

static char *write_tmp(const char *dir, const char *name, const char *text)
{
	static char path[4][512];
	static int k;
	char *p = path[k++ & 3];
	snprintf(p, 512, "%s/%s", dir, name);
	FILE *f = fopen(p, "wb");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	return p;
}

START_TEST(qwen2_fixture)
{
	char v[1024], m[1024];
	if (!rwd_fixture_path("qwen2-tokenizer/vocab.json", v, sizeof(v)) ||
	    !rwd_fixture_path("qwen2-tokenizer/merges.txt", m, sizeof(m))) {
		RWD_SKIP("../shared/fixtures/qwen2-tokenizer is absent");
	}
	char dir[] = "/tmp/rwd-text-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	const char *added = write_tmp(dir, "added_tokens.json",
		"{\"<|endoftext|>\": 151643, \"<|im_start|>\": 151644, \"<|im_end|>\": 151645}");
	rwd_tokenizer *t = NULL;
	rwd_error err;
	rwd_error_clear(&err);
	ck_assert_int_eq(rwd_tokenizer_load_vocab_merges(v, m, added, RWD_TOKENIZER_QWEN2, NULL, &t, &err), 0);
	/* published ids (fixtures README, reference §4.7) */
	expect_ids(t, "Hello world", 11, NULL, (int32_t[]){ 9707, 1879 }, 2);
	expect_ids(t, "Hello, World! 12345", 19, NULL, (int32_t[]){ 9707, 11, 4337, 0, 220, 16, 17, 18, 19, 20 }, 10);
	expect_ids(t, "I'm here.\n\nOK", 13, NULL, (int32_t[]){ 40, 2776, 1588, 382, 3925 }, 5);
	expect_ids(t, "\xe4\xbd\xa0\xe5\xa5\xbd\xef\xbc\x8c\xe4\xb8\x96\xe7\x95\x8c", 15, NULL,
		(int32_t[]){ 108386, 3837, 99489 }, 3);
	/* chat markup: the specials come out whole, before NFC and the regex */
	expect_ids(t, "<|im_start|><|im_end|><|endoftext|>", 35, NULL, (int32_t[]){ 151644, 151645, 151643 }, 3);
	ck_assert_uint_eq(rwd_tokenizer_num_special_added(t), 0);
	ck_assert_uint_eq(rwd_tokenizer_vocab_size(t), 151646);
	rwd_tokenizer_free(t);
	remove(added);
	rmdir(dir);
}
END_TEST

START_TEST(clip_fixture)
{
	char gz[1024];
	if (!rwd_fixture_path("clip-bpe/bpe_simple_vocab_16e6.txt.gz", gz, sizeof(gz))) {
		RWD_SKIP("../shared/fixtures/clip-bpe is absent");
	}
	rwd_tokenizer *t = NULL;
	rwd_error err;
	rwd_error_clear(&err);
	ck_assert_int_eq(rwd_tokenizer_load_clip_bpe_gz(gz, NULL, &t, &err), 0);
	expect_ids(t, "a photo of a cat", 16, NULL, (int32_t[]){ 49406, 320, 1125, 539, 320, 2368, 49407 }, 7);
	expect_ids(t, "Hello, World! 123", 17, NULL, (int32_t[]){ 49406, 3306, 267, 1002, 256, 272, 273, 274, 49407 }, 9);
	/* 77 ids at most, the last one eos */
	char longtext[2000];
	for (size_t i = 0; i < 199; i++)
		memcpy(longtext + 9 * i, "a photo. ", 9);
	longtext[9 * 199] = '\0';
	rwd_encode_params ep = rwd_encode_default_params();
	ep.max_length = 77;
	rwd_arena *a = rwd_arena_create(0, 0);
	rwd_token_ids ids;
	ck_assert_int_eq(rwd_tokenizer_encode(t, longtext, strlen(longtext), &ep, a, &ids, &err), 0);
	ck_assert_uint_eq(ids.n, 77);
	ck_assert_int_eq(ids.ids[0], 49406);
	ck_assert_int_eq(ids.ids[76], 49407);
	ck_assert_uint_gt(ids.n_full, 77);
	rwd_arena_destroy(a);
	rwd_tokenizer_free(t);
}
END_TEST

/* ------------------------------------------------------------------ chat */

/* A real template from tests/data/chat_templates/NAME.json (test data). */
static json_t *template_data(const char *name)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/tests/data/chat_templates/%s.json", rwd_source_root(), name);
	json_error_t je;
	json_t *d = json_load_file(path, 0, &je);
	ck_assert_msg(d != NULL, "%s: %s", path, je.text);
	return d;
}

static rwd_chat_template *real_template(const char *name)
{
	json_t *d = template_data(name);
	rwd_chat_template *t = NULL;
	rwd_error err;
	rwd_error_clear(&err);
	int rc = rwd_chat_template_create(json_string_value(json_object_get(d, "chat_template")),
		json_string_value(json_object_get(d, "bos_token")), NULL, &t, &err);
	ck_assert_msg(rc == 0, "%s: %s", name, err.msg);
	json_decref(d);
	return t;
}

static int render(const rwd_chat_template *t, const char *messages_json, const rwd_chat_params *p,
	rwd_arena *a, char **out, rwd_error *err)
{
	json_error_t je;
	json_t *m = json_loads(messages_json, 0, &je);
	ck_assert_msg(m != NULL, "%s", je.text);
	size_t len;
	rwd_error_clear(err);
	int rc = rwd_chat_render_json(t, m, p, a, out, &len, err);
	if (!rc) {
		/* the text must outlive the JSON: copy before freeing it */
		*out = rwd_arena_strndup(a, *out, len);
	}
	json_decref(m);
	return rc;
}

START_TEST(chat_any_template_or_a_precise_refusal)
{
	/* templates that are not on the fast path render through the engine */
	static const char *const other[] = {
		"{{ messages }}",
		"{% for m in messages %}{{ m.content }}{% endfor %}",
		"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}",
	};
	rwd_arena *a = rwd_arena_create(0, 0);
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
		rwd_chat_template *t = NULL;
		rwd_error err;
		rwd_error_clear(&err);
		ck_assert_msg(rwd_chat_template_create(other[i], NULL, NULL, &t, &err) == 0, "%s", err.msg);
		char *out;
		ck_assert_int_eq(render(t, "[{\"role\":\"user\",\"content\":\"Hi\"}]", NULL, a, &out, &err), 0);
		ck_assert_ptr_nonnull(strstr(out, "Hi"));
		rwd_chat_template_free(t);
	}
	/* syntax errors and constructs the engine lacks are refused, naming the line */
	static const struct {
		const char *tpl;
		int code;
		const char *what;
	} bad[] = {
		{ "", RWD_E_INVALID, "empty" },
		{ "{% for", RWD_E_FORMAT, "line 1" },
		{ "{{ 'abc }}", RWD_E_FORMAT, "not closed" },
		{ "{# no end", RWD_E_FORMAT, "comment" },
		{ "{{ (1 }}", RWD_E_FORMAT, "line 1, column" },
		{ "ok\n{% if x %}\n", RWD_E_FORMAT, "endif" },
		{ "a\nb\n  {% include 'other.jinja' %}", RWD_E_UNSUPPORTED, "line 3, column 6: the {% include %} tag" },
		{ "{{ x | frobnicate }}", RWD_E_UNSUPPORTED, "filter 'frobnicate'" },
		{ "{% if x is prime %}{% endif %}", RWD_E_UNSUPPORTED, "test 'prime'" },
		{ "{% for x in y recursive %}{% endfor %}", RWD_E_UNSUPPORTED, "recursive" },
		{ "{% break %}", RWD_E_FORMAT, "outside a loop" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rwd_chat_template *t = (rwd_chat_template *)1;
		rwd_error err;
		rwd_error_clear(&err);
		ck_assert_msg(rwd_chat_template_create(bad[i].tpl, NULL, NULL, &t, &err) == bad[i].code, "case %zu: %s", i,
			err.msg);
		ck_assert_ptr_null(t);
		ck_assert_msg(strstr(err.msg, bad[i].what) != NULL, "case %zu: %s", i, err.msg);
	}
	/* Qwen1.5's template leaves the last turn open: not a fast-path template, rendered by the engine */
	json_t *d = template_data("qwen1.5-72b-chat");
	rwd_chat_template *t = NULL;
	rwd_error err;
	rwd_error_clear(&err);
	ck_assert_int_eq(rwd_chat_template_create(json_string_value(json_object_get(d, "chat_template")), NULL, NULL,
				 &t, &err), 0);
	rwd_chat_template_free(t);
	json_decref(d);
	/* a template that refuses the conversation fails the render with its message */
	ck_assert_int_eq(rwd_chat_template_create("{% if messages[0].role != 'system' %}{{ raise_exception('System "
		"first!') }}{% endif %}ok", NULL, NULL, &t, &err), 0);
	char *out;
	ck_assert_int_eq(render(t, "[{\"role\":\"user\",\"content\":\"Hi\"}]", NULL, a, &out, &err), RWD_E_INVALID);
	ck_assert_ptr_nonnull(strstr(err.msg, "System first!"));
	ck_assert_str_eq(err.object, "messages");
	/* the engine takes tool calls and null content; roles must still be strings */
	ck_assert_int_eq(render(t, "[{\"role\":\"system\",\"content\":null,\"tool_calls\":[{\"function\":{}}]}]", NULL,
				 a, &out, &err), 0);
	ck_assert_int_eq(render(t, "[{\"role\":1}]", NULL, a, &out, &err), RWD_E_INVALID);
	ck_assert_str_eq(err.object, "messages[0].role");
	ck_assert_int_eq(render(t, "[]", NULL, a, &out, &err), RWD_E_INVALID);
	rwd_chat_template_free(t);
	rwd_arena_destroy(a);
}
END_TEST

START_TEST(chat_qwen3_scoring_pair)
{
	rwd_chat_template *t = real_template("qwen3-0.6b");
	rwd_arena *a = rwd_arena_create(0, 0);
	char *out;
	rwd_error err;
	/* transformers' rendering, as documented e.g. in NovaSky-AI/SkyRL's templates README */
	ck_assert_int_eq(render(t, "[{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":\"Hello\"}]",
				 NULL, a, &out, &err), 0);
	ck_assert_str_eq(out, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nHello<|im_end|>\n");
	rwd_chat_params p = rwd_chat_default_params();
	p.add_generation_prompt = 1;
	ck_assert_int_eq(render(t, "[{\"role\":\"user\",\"content\":\"Hi\"}]", &p, a, &out, &err), 0);
	ck_assert_str_eq(out, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
	rwd_arena_destroy(a);
	rwd_chat_template_free(t);
}
END_TEST

START_TEST(chat_message_validation)
{
	rwd_chat_template *t = real_template("qwen2.5-instruct");
	rwd_arena *a = rwd_arena_create(0, 0);
	char *out;
	rwd_error err;
	static const struct {
		const char *json;
		int code;
		const char *object;
	} cases[] = {
		{ "{\"role\":\"user\"}", RWD_E_INVALID, "messages" },
		{ "[]", RWD_E_INVALID, "messages" },
		{ "[\"hi\"]", RWD_E_INVALID, "messages[0]" },
		{ "[{\"role\":1,\"content\":\"x\"}]", RWD_E_INVALID, "messages[0].role" },
		/* no content: Qwen2.5's `+` cannot take an undefined value (Jinja2 raises too) */
		{ "[{\"role\":\"user\"}]", RWD_E_INVALID, "messages" },
		/* list content goes to the engine, where Qwen2.5's `+` cannot take a list (Jinja2 raises too) */
		{ "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"x\"}]}]", RWD_E_INVALID, "messages" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_msg(render(t, cases[i].json, NULL, a, &out, &err) == cases[i].code, "case %zu: %s", i, err.msg);
		ck_assert_str_eq(err.object, cases[i].object);
	}
	/* tool calls are not on the fast path: the engine renders them */
	ck_assert_int_eq(render(t, "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"\","
				 "\"tool_calls\":[{\"function\":{\"name\":\"f\",\"arguments\":{\"x\":1}}}]}]", NULL, a, &out, &err), 0);
	ck_assert_ptr_nonnull(strstr(out, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 1}}\n</tool_call>"));
	/* limits on the number of messages and on the rendered bytes */
	rwd_chat_params p = rwd_chat_default_params();
	p.max_messages = 2;
	ck_assert_int_eq(render(t, "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\"},"
				 "{\"role\":\"user\",\"content\":\"c\"}]", &p, a, &out, &err), RWD_E_LIMIT);
	p = rwd_chat_default_params();
	p.max_bytes = 64;
	ck_assert_int_eq(render(t, "[{\"role\":\"user\",\"content\":\"a\"}]", &p, a, &out, &err), RWD_E_LIMIT);
	/* empty content and tool turns are fine */
	ck_assert_int_eq(render(t, "[{\"role\":\"system\",\"content\":\"\"},{\"role\":\"user\",\"content\":\"\"},"
				 "{\"role\":\"tool\",\"content\":\"r1\"},{\"role\":\"tool\",\"content\":\"r2\"}]",
				 NULL, a, &out, &err), 0);
	ck_assert_str_eq(out, "<|im_start|>system\n<|im_end|>\n<|im_start|>user\n<|im_end|>\n"
		"<|im_start|>user\n<tool_response>\nr1\n</tool_response>\n<tool_response>\nr2\n</tool_response><|im_end|>\n");
	rwd_arena_destroy(a);
	rwd_chat_template_free(t);
}
END_TEST

START_TEST(chat_llama)
{
	rwd_chat_template *t = NULL;
	rwd_error err;
	json_t *d = template_data("llama3-8b-instruct");
	const char *text = json_string_value(json_object_get(d, "chat_template"));
	/* the Llama-3 fast path needs bos_token; without one the engine renders the template */
	rwd_error_clear(&err);
	ck_assert_int_eq(rwd_chat_template_create(text, NULL, NULL, &t, &err), 0);
	rwd_chat_template_free(t);
	ck_assert_int_eq(rwd_chat_template_create(text, "<|begin_of_text|>", NULL, &t, &err), 0);
	json_decref(d);
	rwd_arena *a = rwd_arena_create(0, 0);
	char *out;
	ck_assert_int_eq(render(t, "[{\"role\":\"user\",\"content\":\"  Hi\\n\"}]", NULL, a, &out, &err), 0);
	ck_assert_str_eq(out, "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
	rwd_chat_template_free(t);
	t = real_template("llama3.1-8b-instruct");
	/* tool turns are not on the Llama-3.1 fast path: the engine renders them */
	ck_assert_int_eq(render(t, "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"tool\",\"content\":\"{}\"}]", NULL,
				 a, &out, &err), 0);
	ck_assert_ptr_nonnull(strstr(out, "<|start_header_id|>ipython<|end_header_id|>"));
	rwd_chat_template_free(t);
	t = real_template("llama3.2-instruct");
	rwd_chat_params p = rwd_chat_default_params();
	struct tm day = { .tm_year = 125, .tm_mon = 1, .tm_mday = 1, .tm_hour = 12, .tm_isdst = -1 };
	p.now = mktime(&day); /* strftime_now's clock: 01 Feb 2025, local time */
	ck_assert_int_eq(render(t, "[{\"role\":\"system\",\"content\":\" S \"},{\"role\":\"user\",\"content\":\"u\"}]", &p,
				 a, &out, &err), 0);
	ck_assert_str_eq(out, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: "
		"December 2023\nToday Date: 01 Feb 2025\n\nS<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nu<|eot_id|>");
	rwd_arena_destroy(a);
	rwd_chat_template_free(t);
}
END_TEST

START_TEST(chat_load_dir)
{
	char dir[] = "/tmp/rwd-chat-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	rwd_chat_template *t = NULL;
	rwd_error err;
	/* no files at all */
	rwd_error_clear(&err);
	ck_assert_int_eq(rwd_chat_template_load_dir(dir, &t, &err), RWD_E_NOTFOUND);
	/* tokenizer_config.json without chat_template */
	char *cfg = write_tmp(dir, "tokenizer_config.json", "{\"bos_token\": null, \"eos_token\": \"<|im_end|>\"}");
	rwd_error_clear(&err);
	ck_assert_int_eq(rwd_chat_template_load_dir(dir, &t, &err), RWD_E_NOTFOUND);
	/* a template the engine cannot take names the file and the field */
	write_tmp(dir, "tokenizer_config.json", "{\"chat_template\": \"{% extends 'base.jinja' %}\"}");
	rwd_error_clear(&err);
	ck_assert_int_eq(rwd_chat_template_load_dir(dir, &t, &err), RWD_E_UNSUPPORTED);
	ck_assert_str_eq(err.object, "chat_template");
	ck_assert_ptr_nonnull(strstr(err.file, "tokenizer_config.json"));
	/* bad JSON */
	write_tmp(dir, "tokenizer_config.json", "{\"chat_template\": ");
	rwd_error_clear(&err);
	ck_assert_int_eq(rwd_chat_template_load_dir(dir, &t, &err), RWD_E_FORMAT);
	/* the list form, with the real Qwen3 template as "default", and bos from the AddedToken form */
	json_t *d = template_data("qwen3-0.6b");
	json_t *c = json_pack("{s:[{s:s,s:s},{s:s,s:O}],s:{s:s}}", "chat_template", "name", "tool_use",
		"template", "{{ x }}", "name", "default", "template", json_object_get(d, "chat_template"), "bos_token",
		"content", "<s>");
	ck_assert_int_eq(json_dump_file(c, cfg, 0), 0);
	json_decref(c);
	rwd_error_clear(&err);
	ck_assert_int_eq(rwd_chat_template_load_dir(dir, &t, &err), 0);
	rwd_chat_template_free(t);
	/* chat_template.jinja when the config has none */
	write_tmp(dir, "tokenizer_config.json", "{\"eos_token\": \"<|im_end|>\"}");
	char *jinja = write_tmp(dir, "chat_template.jinja", json_string_value(json_object_get(d, "chat_template")));
	json_decref(d);
	rwd_error_clear(&err);
	ck_assert_int_eq(rwd_chat_template_load_dir(dir, &t, &err), 0);
	rwd_chat_template_free(t);
	remove(jinja);
	remove(cfg);
	rmdir(dir);
}
END_TEST

/* ----------------------------------------------------------------- jinja */

static int jrender(const char *tpl, const rwd_jinja_limits *lim, const char *vars, rwd_error *err)
{
	rwd_jinja *t = NULL;
	rwd_error_clear(err);
	int rc = rwd_jinja_compile(tpl, strlen(tpl), lim, &t, err);
	if (rc)
		return rc;
	json_t *v = vars ? json_loads(vars, 0, NULL) : NULL;
	rwd_arena *a = rwd_arena_create(0, 0);
	char *out;
	size_t len;
	rc = rwd_jinja_render(t, v, NULL, a, &out, &len, err);
	if (!rc)
		ck_assert_uint_eq(strlen(out), len);
	rwd_arena_destroy(a);
	json_decref(v);
	rwd_jinja_free(t);
	return rc;
}

START_TEST(jinja_limits)
{
	rwd_error err;
	rwd_jinja_limits lim = rwd_jinja_default_limits();
	/* template bytes, AST nodes, nesting */
	lim.max_template_bytes = 8;
	ck_assert_int_eq(jrender("{{ 'abcdef' }}", &lim, NULL, &err), RWD_E_LIMIT);
	lim = rwd_jinja_default_limits();
	lim.max_nodes = 10;
	ck_assert_int_eq(jrender("{{ 1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9 + 10 }}", &lim, NULL, &err), RWD_E_LIMIT);
	ck_assert_ptr_nonnull(strstr(err.msg, "syntax nodes"));
	char deep[4096];
	size_t k = 0;
	k += (size_t)snprintf(deep + k, sizeof(deep) - k, "{{ ");
	for (int i = 0; i < 1000; i++)
		deep[k++] = '(';
	deep[k++] = '1';
	for (int i = 0; i < 1000; i++)
		deep[k++] = ')';
	snprintf(deep + k, sizeof(deep) - k, " }}");
	ck_assert_int_eq(jrender(deep, NULL, NULL, &err), RWD_E_LIMIT);
	ck_assert_ptr_nonnull(strstr(err.msg, "nesting deeper"));
	/* loop iterations, output bytes, recursion, value sizes, steps */
	lim = rwd_jinja_default_limits();
	lim.max_iterations = 50;
	ck_assert_int_eq(jrender("{% for i in range(10) %}{% for j in range(10) %}{% endfor %}{% endfor %}", &lim, NULL,
				 &err), RWD_E_LIMIT);
	ck_assert_ptr_nonnull(strstr(err.msg, "iterations"));
	ck_assert_int_eq(jrender("{% for i in range(5) %}{% for j in range(5) %}{% endfor %}{% endfor %}", &lim, NULL,
				 &err), 0);
	lim = rwd_jinja_default_limits();
	lim.max_output_bytes = 500;
	ck_assert_int_eq(jrender("{% for i in range(100) %}xxxxxxxxxx{% endfor %}", &lim, NULL, &err), RWD_E_LIMIT);
	ck_assert_int_eq(jrender("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", NULL, NULL, &err), RWD_E_LIMIT);
	ck_assert_ptr_nonnull(strstr(err.msg, "macro calls nested"));
	ck_assert_int_eq(jrender("{{ 'x' * 100000000000 }}", NULL, NULL, &err), RWD_E_LIMIT);
	ck_assert_int_eq(jrender("{% set ns = namespace(s='') %}{% for i in range(100000) %}"
				 "{% set ns.s = ns.s + 'xxxxxxxxxxxxxxxxxxxx' %}{% endfor %}", NULL, NULL, &err), RWD_E_LIMIT);
	ck_assert_ptr_nonnull(strstr(err.msg, "intermediate values"));
	lim = rwd_jinja_default_limits();
	lim.max_steps = 1000;
	ck_assert_int_eq(jrender("{% for i in range(1000) %}{{ i }}{% endfor %}", &lim, NULL, &err), RWD_E_LIMIT);
	ck_assert_int_eq(jrender("{{ range(100000000) | length }}", NULL, NULL, &err), RWD_E_LIMIT);
}
END_TEST

START_TEST(jinja_errors_name_the_place)
{
	rwd_error err;
	/* render-time: an undefined value used, a type error, raise_exception */
	ck_assert_int_eq(jrender("line one\n  {{ x.y }}", NULL, "{}", &err), RWD_E_INVALID);
	ck_assert_ptr_nonnull(strstr(err.msg, "line 2, column 8"));
	ck_assert_ptr_nonnull(strstr(err.msg, "'x' is undefined"));
	ck_assert_int_eq(jrender("{{ 1 + 'a' }}", NULL, NULL, &err), RWD_E_INVALID);
	ck_assert_ptr_nonnull(strstr(err.msg, "unsupported operand"));
	ck_assert_int_eq(jrender("{{ raise_exception('no ' ~ n) }}", NULL, "{\"n\": 3}", &err), RWD_E_INVALID);
	ck_assert_ptr_nonnull(strstr(err.msg, "no 3"));
	/* unsafe attributes and mutating methods do not exist in the sandbox */
	ck_assert_int_eq(jrender("{{ x.__class__ }}", NULL, "{\"x\": 1}", &err), RWD_E_INVALID);
	ck_assert_int_eq(jrender("{{ x.append(1) }}", NULL, "{\"x\": []}", &err), RWD_E_UNSUPPORTED);
	ck_assert_int_eq(jrender("{{ x.update({}) }}", NULL, "{\"x\": {}}", &err), RWD_E_UNSUPPORTED);
	/* compile-time: precise syntax errors */
	ck_assert_int_eq(jrender("{% if a %}\n{% else %}\n{% else %}", NULL, NULL, &err), RWD_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "line 3"));
	ck_assert_int_eq(jrender("{{ a b }}", NULL, NULL, &err), RWD_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "expected"));
	ck_assert_int_eq(jrender("{{ '\xff' }}", NULL, NULL, &err), RWD_E_FORMAT); /* not UTF-8 */
	ck_assert_int_eq(jrender("{{ 99999999999999999999 }}", NULL, NULL, &err), RWD_E_UNSUPPORTED);
	/* variables must be an object */
	ck_assert_int_eq(jrender("x", NULL, "[1]", &err), RWD_E_INVALID);
}
END_TEST

static Suite *text_suite(void)
{
	Suite *s = suite_create("text");
	TCase *tc = tcase_create("tokenizer");
	tcase_add_test(tc, tiny_encodes);
	tcase_add_test(tc, tiny_truncation_keeps_specials);
	tcase_add_test(tc, tiny_invalid_utf8);
	tcase_add_test(tc, load_errors_name_the_json_path);
	tcase_add_test(tc, load_limits);
	suite_add_tcase(s, tc);
	/* the real vocabularies in ../shared/fixtures: meson test text-fixture */
	tc = tcase_create("fixture");
	tcase_set_tags(tc, "fixture");
	tcase_add_test(tc, qwen2_fixture);
	tcase_add_test(tc, clip_fixture);
	suite_add_tcase(s, tc);
	tc = tcase_create("chat");
	tcase_add_test(tc, chat_any_template_or_a_precise_refusal);
	tcase_add_test(tc, chat_qwen3_scoring_pair);
	tcase_add_test(tc, chat_message_validation);
	tcase_add_test(tc, chat_llama);
	tcase_add_test(tc, chat_load_dir);
	suite_add_tcase(s, tc);
	tc = tcase_create("jinja");
	tcase_add_test(tc, jinja_limits);
	tcase_add_test(tc, jinja_errors_name_the_place);
	suite_add_tcase(s, tc);
	return s;
}

RWD_CHECK_MAIN(text_suite)
