/*
 * tests/unit/test_wordpiece.c — lib/text/wordpiece: the WordPiece rules on
 * small vocabularies (greedy longest match, whole-word [UNK], the 100-char
 * rule, specials split from raw text, truncation that keeps [SEP], padding),
 * the golden ids of reference/models-and-formats.md §4.8 on the real
 * bert-base-uncased vocab.txt, and the loaders' limits and errors.
 * (ids against HF tokenizers on thousands of strings and every code point:
 * tests/parity/test_tokenizer_wordpiece.js.)
 */
#include "rwd_check.h"

#include "text/wordpiece.h"

static const char SMALL[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nun\n##aff\n##able\na\n##b\nab\n,\n!\n"
	"cafe\nx\n##x\n\xe4\xbd\xa0\n";
/* ids:                      0      1      2      3      4      5   6      7      8 9   10 11 12 13 14 15 16 */

static rwd_wordpiece *small(void)
{
	rwd_wordpiece *t = NULL;
	rwd_error err;
	ck_assert_int_eq(rwd_wordpiece_load_vocab_bytes(SMALL, sizeof(SMALL) - 1, "small", NULL, &t, &err), 0);
	return t;
}

static void expect(rwd_wordpiece *t, const char *text, const rwd_wordpiece_encode_params *p,
	const int32_t *want, size_t n_want, size_t n_real)
{
	rwd_arena *a = rwd_arena_create(4096, 0);
	rwd_wordpiece_ids ids;
	rwd_error err;
	rwd_error_clear(&err);
	int rc = rwd_wordpiece_encode(t, text, strlen(text), p, a, &ids, &err);
	ck_assert_msg(rc == 0, "encode %s: %s", text, err.msg);
	ck_assert_uint_eq(ids.n_total, n_want);
	ck_assert_uint_eq(ids.n, n_real);
	for (size_t i = 0; i < n_want; i++)
		ck_assert_msg(ids.ids[i] == want[i], "%s: id %zu is %d, want %d", text, i, ids.ids[i], want[i]);
	rwd_arena_destroy(a);
}

START_TEST(greedy_longest_match)
{
	rwd_wordpiece *t = small();
	rwd_wordpiece_encode_params p = rwd_wordpiece_encode_default_params();
	p.add_special_tokens = 0;
	/* the BERT paper's example: unaffable -> un ##aff ##able */
	expect(t, "unaffable", &p, (int32_t[]){ 5, 6, 7 }, 3, 3);
	/* longest first: "ab" beats "a" + "##b" */
	expect(t, "ab", &p, (int32_t[]){ 10 }, 1, 1);
	/* "abz": ab + nothing for z -> the whole word is [UNK] */
	expect(t, "abz UNAFFABLE!", &p, (int32_t[]){ 1, 5, 6, 7, 12 }, 5, 5);
	/* accents stripped (uncased), punctuation isolated, CJK split */
	expect(t, "Caf\xc3\xa9,x\xe4\xbd\xa0x", &p, (int32_t[]){ 13, 11, 14, 16, 14 }, 5, 5);
	rwd_wordpiece_free(t);
}
END_TEST

START_TEST(word_length_rule)
{
	rwd_wordpiece *t = small();
	rwd_wordpiece_encode_params p = rwd_wordpiece_encode_default_params();
	p.add_special_tokens = 0;
	char w[256];
	memset(w, 'x', 100);
	w[100] = '\0';
	int32_t want[100];
	want[0] = 14;
	for (int i = 1; i < 100; i++)
		want[i] = 15;
	expect(t, w, &p, want, 100, 100); /* 100 chars: pieces */
	w[100] = 'x';
	w[101] = '\0';
	expect(t, w, &p, (int32_t[]){ 1 }, 1, 1); /* 101: [UNK] */
	rwd_wordpiece_free(t);
}
END_TEST

START_TEST(specials_truncation_padding)
{
	rwd_wordpiece *t = small();
	int32_t dec, enc;
	rwd_error err;
	ck_assert_int_eq(rwd_wordpiece_add_special(t, "[DEC]", &dec, &err), 0);
	ck_assert_int_eq(rwd_wordpiece_add_special(t, "[ENC]", &enc, &err), 0);
	ck_assert_int_eq(dec, 17);
	ck_assert_int_eq(enc, 18);
	ck_assert_uint_eq(rwd_wordpiece_vocab_size(t), 19);
	rwd_wordpiece_encode_params p = rwd_wordpiece_encode_default_params();
	/* specials match the raw text, case-sensitively, glued or not */
	expect(t, "x[DEC]x [MASK][cls]", &p, (int32_t[]){ 2, 14, 17, 14, 4, 1, 1, 1, 3 }, 9, 9);
	p.max_length = 4;
	expect(t, "x x x x x", &p, (int32_t[]){ 2, 14, 14, 3 }, 4, 4);
	p.max_length = 6;
	p.pad_to_max_length = 1;
	expect(t, "x", &p, (int32_t[]){ 2, 14, 3, 0, 0, 0 }, 6, 3);
	expect(t, "", &p, (int32_t[]){ 2, 3, 0, 0, 0, 0 }, 6, 2);
	p.max_length = 1;
	rwd_arena *a = rwd_arena_create(4096, 0);
	rwd_wordpiece_ids ids;
	ck_assert_int_eq(rwd_wordpiece_encode(t, "x", 1, &p, a, &ids, &err), RWD_E_INVALID);
	p.max_length = 8;
	ck_assert_int_eq(rwd_wordpiece_encode(t, "a\xc3", 2, &p, a, &ids, &err), RWD_E_INVALID);
	ck_assert_int_eq(rwd_wordpiece_encode(t, "a\xed\xa0\x80", 4, &p, a, &ids, &err), RWD_E_INVALID);
	rwd_arena_destroy(a);
	rwd_wordpiece_free(t);
}
END_TEST

START_TEST(bert_base_uncased_golden)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/tests/data/bert-base-uncased/vocab.txt", rwd_source_root());
	rwd_wordpiece *t = NULL;
	rwd_error err;
	ck_assert_int_eq(rwd_wordpiece_load_vocab(path, NULL, &t, &err), 0);
	ck_assert_uint_eq(rwd_wordpiece_vocab_size(t), 30522);
	rwd_wordpiece_encode_params p = rwd_wordpiece_encode_default_params();
	expect(t, "Test sentence with [MASK].", &p, (int32_t[]){ 101, 3231, 6251, 2007, 103, 1012, 102 }, 7, 7);
	rwd_wordpiece_free(t);
}
END_TEST

START_TEST(load_errors)
{
	rwd_wordpiece *t = (rwd_wordpiece *)1;
	rwd_error err;
	rwd_error_clear(&err);
	ck_assert_int_eq(rwd_wordpiece_load_vocab_bytes("a\nb\n", 4, "v", NULL, &t, &err), RWD_E_INVALID);
	ck_assert_ptr_null(t);
	ck_assert_ptr_nonnull(strstr(err.msg, "[UNK]"));
	ck_assert_int_eq(rwd_wordpiece_load_vocab_bytes("[UNK]\n\xff\n", 8, "v", NULL, &t, &err), RWD_E_FORMAT);
	rwd_wordpiece_params lim = rwd_wordpiece_default_params();
	lim.max_vocab = 2;
	ck_assert_int_eq(rwd_wordpiece_load_vocab_bytes("[UNK]\na\nb\n", 10, "v", &lim, &t, &err), RWD_E_LIMIT);
	ck_assert_int_eq(err.line, 3);
	lim = rwd_wordpiece_default_params();
	lim.max_token_bytes = 4;
	ck_assert_int_eq(rwd_wordpiece_load_vocab_bytes("[UNK]\n", 6, "v", &lim, &t, &err), RWD_E_LIMIT);
	lim = rwd_wordpiece_default_params();
	lim.max_file_bytes = 3;
	ck_assert_int_eq(rwd_wordpiece_load_vocab_bytes("[UNK]\n", 6, "v", &lim, &t, &err), RWD_E_LIMIT);
	const char *j1 = "{\"model\":{\"type\":\"BPE\",\"vocab\":{}}}";
	ck_assert_int_eq(rwd_wordpiece_load_json_bytes(j1, strlen(j1), "j", NULL, &t, &err), RWD_E_UNSUPPORTED);
	ck_assert_str_eq(err.object, "model.type");
	const char *j2 = "{\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"[UNK]\":0}},\"pre_tokenizer\":{\"type\":\"Whitespace\"}}";
	ck_assert_int_eq(rwd_wordpiece_load_json_bytes(j2, strlen(j2), "j", NULL, &t, &err), RWD_E_UNSUPPORTED);
	ck_assert_str_eq(err.object, "pre_tokenizer.type");
	const char *j3 = "{\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"[UNK]\":0}},\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"},"
		"\"added_tokens\":[{\"id\":1,\"content\":\"x\",\"lstrip\":true}]}";
	ck_assert_int_eq(rwd_wordpiece_load_json_bytes(j3, strlen(j3), "j", NULL, &t, &err), RWD_E_UNSUPPORTED);
	ck_assert_str_eq(err.object, "added_tokens[0]");
	const char *j4 = "{\"model\":";
	ck_assert_int_eq(rwd_wordpiece_load_json_bytes(j4, strlen(j4), "j", NULL, &t, &err), RWD_E_FORMAT);
	ck_assert_int_gt(err.line, 0);
	ck_assert_ptr_null(t);
	ck_assert_int_eq(rwd_wordpiece_load_dir("/nonexistent-dir", NULL, &t, &err), RWD_E_NOTFOUND);
	rwd_wordpiece_free(NULL);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("wordpiece");
	TCase *tc = tcase_create("wordpiece");
	tcase_add_test(tc, greedy_longest_match);
	tcase_add_test(tc, word_length_rule);
	tcase_add_test(tc, specials_truncation_padding);
	tcase_add_test(tc, bert_base_uncased_golden);
	tcase_add_test(tc, load_errors);
	suite_add_tcase(s, tc);
	return s;
}

RWD_CHECK_MAIN(make_suite)
