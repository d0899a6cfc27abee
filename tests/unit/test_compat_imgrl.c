/*
 * tests/unit/test_compat_imgrl.c — lib/compat/pickle and lib/compat/imgrl:
 * every limit with its code and offset, opcode refusals, Pillow 11's sixth
 * state field, the translation per kind and protocol, field names, and the
 * reply shapes. The byte strings are hand-assembled from CPython's opcode
 * table (Lib/pickle.py); the CPython oracle itself is
 * tests/parity/test_pickle_python.py.
 */
#include "rwd_check.h"

#include "compat/imgrl.h"
#include "compat/pickle.h"
#include "core/arena.h"

#include <stdint.h>

#define P(s) (const uint8_t *)(s), sizeof(s) - 1

static int load(const uint8_t *b, size_t n, const rwd_pickle_limits *lim, rwd_arena *a, rwd_pickle_value **v,
	rwd_error *e)
{
	rwd_error_clear(e);
	return rwd_pickle_load(b, n, lim, a, v, e);
}

START_TEST(builtins_and_memo)
{
	rwd_arena *a = rwd_arena_create(0, 0);
	rwd_pickle_limits lim = rwd_pickle_default_limits();
	rwd_pickle_value *v;
	rwd_error e;
	/* {"a": [1, -2, 3.5, True, None], "b": <memo 0>}, protocol 2 */
	static const char pk[] = "\x80\x02}q\x00(X\x01\x00\x00\x00" "a]q\x01(K\x01J\xfe\xff\xff\xff"
		"G@\x0c\x00\x00\x00\x00\x00\x00\x88NeX\x01\x00\x00\x00" "bh\x01u.";
	ck_assert_int_eq(load(P(pk), &lim, a, &v, &e), 0);
	ck_assert_int_eq(v->type, RWD_PICKLE_DICT);
	const rwd_pickle_value *l = rwd_pickle_dict_get(v, "a");
	ck_assert_ptr_nonnull(l);
	ck_assert_uint_eq(l->n, 5);
	ck_assert_int_eq(l->items[1]->i, -2);
	ck_assert(l->items[2]->f == 3.5);
	ck_assert_int_eq(l->items[3]->type, RWD_PICKLE_BOOL);
	ck_assert_ptr_eq(rwd_pickle_dict_get(v, "b"), l); /* shared through the memo */
	rwd_arena_destroy(a);
}
END_TEST

START_TEST(every_limit)
{
	rwd_arena *a = rwd_arena_create(0, 0);
	rwd_pickle_value *v;
	rwd_error e;
	rwd_pickle_limits lim = rwd_pickle_default_limits();
	lim.max_items = 2;
	ck_assert_int_eq(load(P("\x80\x02](K\x01K\x02K\x03" "e."), &lim, a, &v, &e), RWD_E_LIMIT);
	ck_assert(strstr(e.msg, "more than 2 items") != NULL);
	lim = rwd_pickle_default_limits();
	lim.max_bytes = 3;
	ck_assert_int_eq(load(P("\x80\x03" "C\x04" "abcd."), &lim, a, &v, &e), RWD_E_LIMIT);
	ck_assert_int_eq(e.offset, 2);
	lim = rwd_pickle_default_limits();
	lim.max_values = 3;
	ck_assert_int_eq(load(P("\x80\x02](K\x01K\x02K\x03" "e."), &lim, a, &v, &e), RWD_E_LIMIT);
	lim = rwd_pickle_default_limits();
	lim.max_memo = 4;
	ck_assert_int_eq(load(P("\x80\x02Nq\x04."), &lim, a, &v, &e), RWD_E_LIMIT);
	ck_assert(strstr(e.msg, "memo index 4") != NULL);
	lim = rwd_pickle_default_limits();
	lim.max_depth = 2;
	ck_assert_int_eq(load(P("\x80\x02]]]aa."), &lim, a, &v, &e), RWD_E_LIMIT);
	ck_assert_int_eq(load(P("\x80\x02]]a."), &lim, a, &v, &e), 0);
	/* a value shared through the memo counts at its deepest place: ([[]], [[[]]]) */
	lim.max_depth = 3;
	ck_assert_int_eq(load(P("\x80\x02]]aq\x00]h\x00" "a\x86."), &lim, a, &v, &e), RWD_E_LIMIT);
	lim.max_depth = 4;
	ck_assert_int_eq(load(P("\x80\x02]]aq\x00]h\x00" "a\x86."), &lim, a, &v, &e), 0);
	lim = rwd_pickle_default_limits();
	lim.max_pixels = 3;
	/* PIL.Image.Image NEWOBJ () BUILD [{}, "L", (2, 2), None, b"\0\0\0\0"] */
	static const char img[] = "\x80\x04\x8c\x09PIL.Image\x8c\x05Image\x93)\x81]("
		"}\x8c\x01L\x4b\x02\x4b\x02\x86NC\x04\x00\x00\x00\x00" "eb.";
	ck_assert_int_eq(load(P(img), &lim, a, &v, &e), RWD_E_LIMIT);
	lim.max_pixels = 4;
	ck_assert_int_eq(load(P(img), &lim, a, &v, &e), 0);
	ck_assert_int_eq(v->type, RWD_PICKLE_IMAGE);
	ck_assert_uint_eq(v->width, 2);
	ck_assert_str_eq(v->mode, "L");
	rwd_arena_destroy(a);
}
END_TEST

START_TEST(refusals_name_the_opcode)
{
	rwd_arena *a = rwd_arena_create(0, 0);
	rwd_pickle_limits lim = rwd_pickle_default_limits();
	rwd_pickle_value *v;
	rwd_error e;
	ck_assert_int_eq(load(P("\x80\x02" "cos\nsystem\n" "X\x02\x00\x00\x00id\x85R."), &lim, a, &v, &e),
		RWD_E_UNSUPPORTED);
	ck_assert(strstr(e.msg, "GLOBAL") && strstr(e.msg, "os.system"));
	ck_assert_int_eq(e.offset, 2);
	ck_assert_int_eq(load(P("\x80\x02(cos\nsystem\nX\x02\x00\x00\x00idi."), &lim, a, &v, &e), RWD_E_UNSUPPORTED);
	ck_assert_int_eq(load(P("\x80\x04\x8f."), &lim, a, &v, &e), RWD_E_UNSUPPORTED);
	ck_assert(strstr(e.msg, "EMPTY_SET") != NULL);
	ck_assert_int_eq(load(P("\x80\x05\x97."), &lim, a, &v, &e), RWD_E_UNSUPPORTED);
	ck_assert(strstr(e.msg, "NEXT_BUFFER") != NULL);
	ck_assert_int_eq(load(P("\x80\x02I1\n."), &lim, a, &v, &e), RWD_E_UNSUPPORTED);
	ck_assert_int_eq(load(P("(lp0\n."), &lim, a, &v, &e), RWD_E_UNSUPPORTED); /* protocol 0 */
	ck_assert_int_eq(load(P("\x80\x06N."), &lim, a, &v, &e), RWD_E_UNSUPPORTED);
	/* an allowed class used the wrong way: BUILD on a dict, REDUCE of a dtype with bad args */
	ck_assert_int_eq(load(P("\x80\x02}}b."), &lim, a, &v, &e), RWD_E_UNSUPPORTED);
	ck_assert_int_eq(load(P("\x80\x04\x8c\x05numpy\x8c\x05" "dtype\x93K\x01\x85R."), &lim, a, &v, &e),
		RWD_E_INVALID);
	/* a class object as the value */
	ck_assert_int_eq(load(P("\x80\x04\x8c\x05numpy\x8c\x07ndarray\x93."), &lim, a, &v, &e), RWD_E_UNSUPPORTED);
	ck_assert_int_eq(load(P("\x80\x02N"), &lim, a, &v, &e), RWD_E_FORMAT);
	ck_assert(strstr(e.msg, "without STOP") != NULL);
	ck_assert_int_eq(load(P("\x80\x02X\x02\x00\x00\x00\xc3\x28."), &lim, a, &v, &e), RWD_E_FORMAT);
	ck_assert(strstr(e.msg, "UTF-8") != NULL);
	rwd_arena_destroy(a);
}
END_TEST

START_TEST(pillow11_state_and_palette)
{
	rwd_arena *a = rwd_arena_create(0, 0);
	rwd_pickle_limits lim = rwd_pickle_default_limits();
	rwd_pickle_value *v;
	rwd_error e;
	/* PngImageFile with the sixth (filename) entry, mode P, palette of 2 entries, indices 0, 1, 5 */
	static const char img[] = "\x80\x04\x8c\x12PIL.PngImagePlugin\x8c\x0cPngImageFile\x93)\x81]("
		"}\x8c\x01P\x4b\x03\x4b\x01\x86](K\x0aK\x14K\x1eK\x28K\x32K\x3c" "eC\x03\x00\x01\x05\x8c\x05" "a.pngeb.";
	ck_assert_int_eq(load(P(img), &lim, a, &v, &e), 0);
	uint8_t rgb[9];
	ck_assert_int_eq(rwd_imgrl_image_rgb(v, rgb, &e), 0);
	static const uint8_t want[9] = {10, 20, 30, 40, 50, 60, 5, 5, 5};
	ck_assert(memcmp(rgb, want, 9) == 0);
	uint8_t *png;
	size_t len;
	ck_assert_int_eq(rwd_imgrl_image_png(v, &png, &len, &e), 0);
	ck_assert(len > 8 && memcmp(png, "\x89PNG", 4) == 0);
	free(png);
	rwd_arena_destroy(a);
}
END_TEST

/* {"images": [b"\xff\xd8\xff"], "prompts": ["a cat"], "metadata": {}} */
static const char verl_body[] = "\x80\x04}(\x8c\x06images](C\x03\xff\xd8\xff" "e\x8c\x07prompts](\x8c\x05"
	"a cate\x8c\x08metadata}u.";

START_TEST(translation_per_kind)
{
	rwd_arena *a = rwd_arena_create(0, 0);
	rwd_pickle_limits lim = rwd_pickle_default_limits();
	rwd_imgrl_limits il = {64, 1024, 16};
	rwd_pickle_value *v;
	rwd_error e;
	ck_assert_int_eq(load(P(verl_body), &lim, a, &v, &e), 0);
	json_t *items = json_array();
	rwd_imgrl_req req;
	ck_assert_int_eq(rwd_imgrl_from_pickle(v, "clip", &il, items, &req, &e), 0);
	ck_assert_int_eq(req.proto, RWD_IMGRL_SCORES);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 0), "image")), "/9j/");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 0), "prompt")), "a cat");
	double r = 0.25;
	json_t *rep = rwd_imgrl_reply(&req, &r, NULL);
	ck_assert(json_real_value(json_array_get(json_object_get(rep, "scores"), 0)) == 0.25);
	json_decref(rep);
	rwd_imgrl_req_clear(&req);
	json_decref(items);
	/* image_metrics drops the text; seqcls scores no images */
	items = json_array();
	ck_assert_int_eq(rwd_imgrl_from_pickle(v, "image_metrics", &il, items, &req, &e), 0);
	ck_assert_ptr_null(json_object_get(json_array_get(items, 0), "prompt"));
	rwd_imgrl_req_clear(&req);
	json_decref(items);
	items = json_array();
	rwd_error_clear(&e);
	ck_assert_int_eq(rwd_imgrl_from_pickle(v, "seqcls", &il, items, &req, &e), RWD_E_INVALID);
	rwd_imgrl_req_clear(&req);
	json_decref(items);
	/* the item limit */
	il.max_items = 0;
	items = json_array();
	rwd_error_clear(&e);
	ck_assert_int_eq(rwd_imgrl_from_pickle(v, "clip", &il, items, &req, &e), RWD_E_LIMIT);
	ck_assert_str_eq(e.object, "images");
	rwd_imgrl_req_clear(&req);
	json_decref(items);
	rwd_arena_destroy(a);
}
END_TEST

START_TEST(field_names_and_geneval_groups)
{
	rwd_imgrl_req req = {.proto = RWD_IMGRL_EDITSCORE, .n = 2};
	char f[RWD_ERROR_OBJECT_MAX];
	snprintf(f, sizeof(f), "items[1].source_image");
	rwd_imgrl_remap_field(&req, f, sizeof(f));
	ck_assert_str_eq(f, "input_images[1][0]");
	snprintf(f, sizeof(f), "items[0].instruction");
	rwd_imgrl_remap_field(&req, f, sizeof(f));
	ck_assert_str_eq(f, "meta_datas[0].instruction");
	req.proto = RWD_IMGRL_COMPUTE;
	snprintf(f, sizeof(f), "items[2].image");
	rwd_imgrl_remap_field(&req, f, sizeof(f));
	ck_assert_str_eq(f, "image[2]");
	req.proto = RWD_IMGRL_SCORES;
	req.edit = 1;
	snprintf(f, sizeof(f), "items[4].image");
	rwd_imgrl_remap_field(&req, f, sizeof(f));
	ck_assert_str_eq(f, "images.edited[4]");

	rwd_imgrl_req g = {.proto = RWD_IMGRL_GENEVAL, .n = 2, .echo = json_pack("[ss]", "counting", "mytag")};
	double r[2] = {0.5, 0.75};
	json_t *rep = rwd_imgrl_reply(&g, r, NULL);
	json_t *gr = json_object_get(rep, "group_rewards");
	ck_assert_uint_eq(json_object_size(gr), 7); /* the six GenEval tags and the unknown one */
	ck_assert(json_real_value(json_array_get(json_object_get(gr, "counting"), 0)) == 0.5);
	ck_assert(json_real_value(json_array_get(json_object_get(gr, "counting"), 1)) == -10.0);
	ck_assert(json_real_value(json_array_get(json_object_get(gr, "mytag"), 1)) == 0.75);
	uint8_t *pk;
	size_t len;
	ck_assert_int_eq(rwd_pickle_dump_json(rep, &pk, &len, NULL), 0);
	ck_assert(pk[0] == 0x80 && pk[1] == 2 && pk[len - 1] == '.');
	free(pk);
	json_decref(rep);
	rwd_imgrl_req_clear(&g);
}
END_TEST

static Suite *compat_imgrl_suite(void)
{
	Suite *s = suite_create("compat_imgrl");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, builtins_and_memo);
	tcase_add_test(tc, every_limit);
	tcase_add_test(tc, refusals_name_the_opcode);
	tcase_add_test(tc, pillow11_state_and_palette);
	tcase_add_test(tc, translation_per_kind);
	tcase_add_test(tc, field_names_and_geneval_groups);
	suite_add_tcase(s, tc);
	return s;
}

RWD_CHECK_MAIN(compat_imgrl_suite)
