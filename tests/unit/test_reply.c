/*
 * tests/unit/test_reply.c — daemon/reply: the one RWD_E_* → HTTP mapping and
 * error bodies. The expected statuses are DESIGN.md §5's table (415 is an
 * unsupported image format; a semantically invalid input is 422).
 */
#include "rwd_check.h"
#include "reply.h"

static rwd_error mk(int code, const char *object, const char *msg)
{
	rwd_error e;
	rwd_error_clear(&e);
	rwd_error_where(&e, NULL, object);
	rwd_errorf(&e, code, "%s", msg);
	return e;
}

START_TEST(unsupported_is_415_only_for_media)
{
	static const struct {
		const char *object, *msg;
		int status;
		const char *code;
	} cases[] = {
		{"items[0].image", "image: GIF is not supported (send PNG or JPEG)", 415, "unsupported_media_type"},
		{"items[3].source_image", "jpeg: unsupported colour space (2 components)", 415, "unsupported_media_type"},
		{"items[1]", "data URL: media type 'text/plain' is not an image", 415, "unsupported_media_type"},
		{"items[0].messages", "cannot render chat messages for this model: no chat template", 422, "unprocessable"},
		{"items[2].messages[1].tool_calls", "tool calls are not supported with the chatml chat template", 422,
			"unprocessable"},
		{"items[0].text", "the model folder has no tokenizer files: send \"input_ids\"", 422, "unprocessable"},
		{"", "unknown model kind 'x'", 422, "unprocessable"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rwd_error e = mk(RWD_E_UNSUPPORTED, cases[i].object, cases[i].msg);
		ck_assert_msg(rwd_reply_status_of(&e) == cases[i].status, "case %zu: %d", i, rwd_reply_status_of(&e));
		ck_assert_str_eq(rwd_reply_code_of(&e), cases[i].code);
	}
	static const struct {
		int code, status;
	} table[] = {
		{RWD_E_FORMAT, 400}, {RWD_E_INVALID, 400}, {RWD_E_NOTFOUND, 404}, {RWD_E_LIMIT, 413},
		{RWD_E_UNPROCESSABLE, 422}, {RWD_E_FULL, 429}, {RWD_E_STATE, 503}, {RWD_E_TIMEOUT, 504},
		{RWD_E_INTERNAL, 500}, {0, 500},
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		rwd_error e;
		rwd_error_clear(&e);
		e.code = table[i].code;
		ck_assert_int_eq(rwd_reply_status_of(&e), table[i].status);
	}
}
END_TEST

START_TEST(error_bodies_native_and_oip)
{
	rwd_reply r;
	memset(&r, 0, sizeof(r));
	rwd_error e = mk(RWD_E_FULL, "items", "the queue is full");
	rwd_reply_error_from(&r, &e);
	ck_assert_int_eq(r.status, 429);
	ck_assert_uint_eq(r.retry_after_s, 1);
	json_t *err = json_object_get(r.json, "error");
	ck_assert_str_eq(json_string_value(json_object_get(err, "code")), "queue_full");
	ck_assert_str_eq(json_string_value(json_object_get(err, "field")), "items");
	ck_assert_str_eq(json_string_value(json_object_get(err, "message")), "the queue is full");
	r.oip_errors = 1;
	rwd_reply_error(&r, 400, "invalid_request", "must be a string", "inputs[0].name", 2, 5);
	ck_assert_int_eq(r.status, 400);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "error")),
		"inputs[0].name: must be a string (line 2, column 5)");
	json_decref(r.json);
}
END_TEST

static Suite *reply_suite(void)
{
	Suite *s = suite_create("reply");
	TCase *tc = tcase_create("reply");
	tcase_add_test(tc, unsupported_is_415_only_for_media);
	tcase_add_test(tc, error_bodies_native_and_oip);
	suite_add_tcase(s, tc);
	return s;
}

RWD_CHECK_MAIN(reply_suite)
