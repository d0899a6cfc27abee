/*
 * tests/unit/test_sql.c — the `sql` kind's pure helpers and its statement
 * gate (lib/models/sql.h): SQL extraction from a response, database-name
 * refusals, top-level ORDER BY detection, the n-gram Jaccard similarity and
 * rwd_sql_probe's authorizer and instruction-budget refusals.
 *
 * Oracles: extraction, names and ORDER BY follow sql.h's rules by hand; every
 * n-gram value is derived in a comment from the definition (the token list,
 * then the bigram sets, then |A ∩ B| / |A ∪ B|); for the refusals, the same
 * statement is first run on a plain, unhardened SQLite connection through
 * the C API (no code of ours) to show it is valid SQL that SQLite would
 * answer, so the refusal can only come from our gate.
 * Execution/syntax against Python's sqlite3 is tests/integration/test_sql.py.
 */
#include "rwd_check.h"

#include "core/error.h"
#include "models/sql.h"

#include <math.h>
#include <sqlite3.h>

static const char schema[] =
	"CREATE TABLE t(a INTEGER, b TEXT);"
	"INSERT INTO t VALUES (1, 'x'), (2, 'y'), (3, 'z');";

/* The extracted slice as a NUL-terminated copy (static buffer). */
static const char *extract(const char *text)
{
	static char buf[512];
	size_t off = 99, len = 99, n = strlen(text);
	rwd_sql_extract(text, n, &off, &len);
	ck_assert_uint_le(off, n);
	ck_assert_uint_le(len, n - off);
	ck_assert_uint_lt(len, sizeof(buf));
	memcpy(buf, text + off, len);
	buf[len] = 0;
	return buf;
}

START_TEST(extract_fenced_block_last_wins)
{
	ck_assert_str_eq(extract("Think.\n```sql\nSELECT 1\n```\nBetter:\n```sql\nSELECT 2;\n```\nDone."),
		"SELECT 2;");
	/* the tag is case-insensitive; sqlite is a tag too */
	ck_assert_str_eq(extract("```SQL\nSELECT a FROM t\n```"), "SELECT a FROM t");
	ck_assert_str_eq(extract("```sqlite\nSELECT b FROM t\n```"), "SELECT b FROM t");
	ck_assert_str_eq(extract("```SQLite  SELECT c FROM t```"), "SELECT c FROM t");
	/* a ```sql block wins over a later <answer> and over other blocks */
	ck_assert_str_eq(extract("```sql\nSELECT 1\n```<answer>SELECT 9</answer>"), "SELECT 1");
	ck_assert_str_eq(extract("```sql\nSELECT 1\n```\n```python\nprint(2)\n```"), "SELECT 1");
	/* a later ```sql block that is never closed is not complete: the earlier one wins */
	ck_assert_str_eq(extract("```sql\nSELECT 1\n```\n```sql\nSELECT 2"), "SELECT 1");
	/* a fence inside another (python) block is that block's content, not a tag */
	ck_assert_str_eq(extract("```python\nx = 1\n```\n```sql\nSELECT 3\n```"), "SELECT 3");
}
END_TEST

START_TEST(extract_tags_that_are_not_sql)
{
	/* "sqlx" is not the tag sql followed by whitespace: no sql block, whole text */
	ck_assert_str_eq(extract("```sqlx\nSELECT 1\n```"), "```sqlx\nSELECT 1\n```");
	/* no tag at all */
	ck_assert_str_eq(extract(" ```\nSELECT 1\n``` "), "```\nSELECT 1\n```");
	/* an unclosed ```sql block and nothing else: whole text */
	ck_assert_str_eq(extract("```sql\nSELECT 5"), "```sql\nSELECT 5");
}
END_TEST

START_TEST(extract_answer_tags)
{
	ck_assert_str_eq(extract("<think>SELECT 0</think><answer> SELECT a FROM t </answer>"),
		"SELECT a FROM t");
	/* the last complete answer wins; an unclosed one after it is ignored */
	ck_assert_str_eq(extract("<answer>SELECT 1</answer> then <answer>SELECT 2</answer><answer>SELECT 3"),
		"SELECT 2");
	/* one fenced block (any tag, or none) inside the answer: fences dropped */
	ck_assert_str_eq(extract("<answer>\n```\nSELECT 4\n```\n</answer>"), "SELECT 4");
	ck_assert_str_eq(extract("<answer>```postgres\nSELECT 5\n```</answer>"), "SELECT 5");
	/* an empty answer is an empty statement, not the whole text */
	ck_assert_str_eq(extract("SELECT 6 <answer>  </answer>"), "");
}
END_TEST

START_TEST(extract_whole_text)
{
	ck_assert_str_eq(extract("  \n\tSELECT a FROM t ;\n\n"), "SELECT a FROM t ;");
	ck_assert_str_eq(extract(""), "");
	ck_assert_str_eq(extract(" \n "), "");
	/* <answer> without its closing tag is just text */
	ck_assert_str_eq(extract("<answer>SELECT 1"), "<answer>SELECT 1");
}
END_TEST

static void name_refused(const char *name, size_t n, const char *why)
{
	rwd_error err;
	rwd_error_clear(&err);
	ck_assert_int_eq(rwd_sql_check_name(name, n, &err), RWD_E_INVALID);
	ck_assert_int_eq(err.code, RWD_E_INVALID);
	ck_assert_msg(strstr(err.msg, why) != NULL, "%s: message \"%s\" lacks \"%s\"", name, err.msg, why);
}

START_TEST(check_name_refusals)
{
	name_refused("", 0, "empty");
	name_refused("/etc/passwd", 11, "absolute");
	name_refused("/", 1, "absolute");
	name_refused("..", 2, "..");
	name_refused("../x.sqlite", 11, "..");
	name_refused("a/../../x.sqlite", 16, "..");
	name_refused("a/..", 4, "..");
	name_refused("a/b/../c", 8, "..");
	/* the NUL byte is inside n: a C string would stop at it */
	name_refused("db\0/../../etc", 13, "NUL");
	name_refused("x.sqlite\0", 9, "NUL");
	static char big[1026];
	memset(big, 'a', 1025);
	name_refused(big, 1025, "1025");

	rwd_error err;
	rwd_error_clear(&err);
	ck_assert_int_eq(rwd_sql_check_name(big, 1024, &err), 0);
	ck_assert_int_eq(rwd_sql_check_name("concert_singer/concert_singer.sqlite", 36, &err), 0);
	/* ".." only as a whole component is refused; dots inside names are names */
	ck_assert_int_eq(rwd_sql_check_name("..a/b", 5, &err), 0);
	ck_assert_int_eq(rwd_sql_check_name("a../b...c", 9, &err), 0);
	ck_assert_int_eq(rwd_sql_check_name("./a.db", 6, &err), 0);
	ck_assert_int_eq(err.code, 0);
}
END_TEST

static int orders(const char *s)
{
	return rwd_sql_orders(s, strlen(s));
}

START_TEST(orders_top_level_only)
{
	ck_assert_int_eq(orders("SELECT a FROM t ORDER BY a"), 1);
	ck_assert_int_eq(orders("select a from t order\n\tby a desc limit 2"), 1);
	ck_assert_int_eq(orders("SELECT a FROM t ORDER /* why */ BY a"), 1);
	ck_assert_int_eq(orders("SELECT a FROM t WHERE a IN (SELECT a FROM t ORDER BY a) ORDER BY b"), 1);
	ck_assert_int_eq(orders("(SELECT a FROM t) ORDER BY a"), 1);
	/* inside parentheses: subqueries, CTEs, windows, function arguments */
	ck_assert_int_eq(orders("SELECT * FROM (SELECT a FROM t ORDER BY a)"), 0);
	ck_assert_int_eq(orders("WITH c AS (SELECT a FROM t ORDER BY a LIMIT 2) SELECT a FROM c"), 0);
	ck_assert_int_eq(orders("SELECT row_number() OVER (ORDER BY a) FROM t"), 0);
	ck_assert_int_eq(orders("SELECT group_concat(b ORDER BY a) FROM t"), 0);
	ck_assert_int_eq(orders("SELECT a FROM t WHERE a = (SELECT max(a) FROM t ORDER BY 1)"), 0);
	/* not ORDER BY: literals, comments, quoted identifiers, ORDER alone */
	ck_assert_int_eq(orders("SELECT 'ORDER BY a' FROM t"), 0);
	ck_assert_int_eq(orders("SELECT a FROM t -- ORDER BY a"), 0);
	ck_assert_int_eq(orders("SELECT a FROM t /* ORDER BY a */"), 0);
	ck_assert_int_eq(orders("SELECT \"order\", \"by\" FROM t"), 0);
	ck_assert_int_eq(orders("SELECT a FROM t GROUP BY a"), 0);
	ck_assert_int_eq(orders(""), 0);
	/* an unbalanced ')' does not make the depth negative */
	ck_assert_int_eq(orders(") ) SELECT a FROM t ORDER BY a"), 1);
}
END_TEST

static double ngram(const char *a, const char *b, int n)
{
	double v = -1;
	ck_assert_int_eq(rwd_sql_ngram(a, strlen(a), b, strlen(b), n, &v), 0);
	ck_assert(v >= 0 && v <= 1);
	/* Jaccard is symmetric */
	double w = -1;
	ck_assert_int_eq(rwd_sql_ngram(b, strlen(b), a, strlen(a), n, &w), 0);
	ck_assert_double_eq_tol(v, w, 1e-15);
	return v;
}

START_TEST(ngram_by_hand)
{
	/* select name from singer -> {select name, name from, from singer} (3);
	 * + where age 20 -> those and {singer where, where age, age 20} (6):
	 * 3 / 6 */
	ck_assert_double_eq_tol(ngram("SELECT name FROM singer", "SELECT name FROM singer WHERE age > 20", 2),
		3.0 / 6.0, 1e-12);
	/* identical texts: 1 */
	ck_assert_double_eq_tol(ngram("SELECT a FROM t", "SELECT a FROM t", 2), 1.0, 1e-12);
	/* case, quotes, comments, whitespace: both are select name from singer */
	ck_assert_double_eq_tol(ngram("select \"Name\" -- c\n from `SINGER`;", "SELECT name FROM [singer]", 2),
		1.0, 1e-12);
	/* aliases and AS dropped: select t1 name from singer as t1 and
	 * select s name from singer s both become select name from singer */
	ck_assert_double_eq_tol(ngram("SELECT T1.name FROM singer AS T1", "SELECT s.name FROM singer s", 2),
		1.0, 1e-12);
	/* string literals keep case and quotes:
	 * {select a, a from, from t, t where, where b, b 'X'} vs the same with 'x':
	 * 5 shared, 7 in the union */
	ck_assert_double_eq_tol(ngram("SELECT a FROM t WHERE b = 'X'", "SELECT a FROM t WHERE b = 'x'", 2),
		5.0 / 7.0, 1e-12);
	/* numbers are tokens: {.., t limit, limit 3} vs {.., t limit, limit 4}: 4 / 6 */
	ck_assert_double_eq_tol(ngram("SELECT a FROM t LIMIT 3", "SELECT a FROM t LIMIT 4", 2), 4.0 / 6.0, 1e-12);
	/* sets, not multisets: select a b a b from t has bigrams
	 * {select a, a b, b a, b from, from t} (a b twice, counted once);
	 * select a b from t: {select a, a b, b from, from t}: 4 / 5
	 * (a multiset would give 4 / 6) */
	ck_assert_double_eq_tol(ngram("SELECT a, b, a, b FROM t", "SELECT a, b FROM t", 2), 4.0 / 5.0, 1e-12);
	/* unigrams: {select, a} vs {select, b}: 1 / 3 */
	ck_assert_double_eq_tol(ngram("SELECT a", "SELECT b", 1), 1.0 / 3.0, 1e-12);
	/* trigrams: select a from t where b vs select a from t:
	 * {select a from, a from t, from t where, t where b} vs {select a from, a from t}: 2 / 4 */
	ck_assert_double_eq_tol(ngram("SELECT a FROM t WHERE b", "SELECT a FROM t", 3), 2.0 / 4.0, 1e-12);
	/* nothing in common: {select 1} vs {select 2}: 0 */
	ck_assert_double_eq_tol(ngram("SELECT 1", "SELECT 2", 2), 0.0, 1e-12);
	/* both sets empty: 0 (one token has no bigram; punctuation is no token) */
	ck_assert_double_eq_tol(ngram("SELECT", "SELECT", 2), 0.0, 1e-12);
	ck_assert_double_eq_tol(ngram("", ";;", 2), 0.0, 1e-12);
	/* one side empty: 0 / |B| */
	ck_assert_double_eq_tol(ngram("", "SELECT 1", 2), 0.0, 1e-12);
}
END_TEST

START_TEST(ngram_refuses_n)
{
	double v = 7;
	ck_assert_int_eq(rwd_sql_ngram("a b", 3, "a b", 3, 0, &v), RWD_E_INVALID);
	ck_assert_int_eq(rwd_sql_ngram("a b", 3, "a b", 3, 9, &v), RWD_E_INVALID);
	ck_assert_int_eq(rwd_sql_ngram("a b", 3, "a b", 3, -1, &v), RWD_E_INVALID);
	ck_assert_double_eq(v, 7);
	ck_assert_int_eq(rwd_sql_ngram("a b c d e f g h", 15, "a b c d e f g h", 15, 8, &v), 0);
	ck_assert_double_eq_tol(v, 1.0, 1e-12);
}
END_TEST

/*
 * Rows the statement returns on a plain in-memory SQLite connection holding
 * `schema` (no authorizer, no limits: none of our code), or -1 on an error.
 */
static long plain_rows(const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long rows = -1;
	if (sqlite3_open(":memory:", &db) != SQLITE_OK)
		goto done;
	if (sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK)
		goto done;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		goto done;
	long n = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		n++;
	if (rc == SQLITE_DONE)
		rows = n;
done:
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rows;
}

static int probe(const char *sql, size_t *rows, rwd_error *err)
{
	rwd_error_clear(err);
	*rows = 12345;
	int r = rwd_sql_probe(schema, sql, strlen(sql), rows, err);
	ck_assert_int_eq(err->code, r);
	if (r)
		ck_assert_msg(err->msg[0] != 0, "%s: error %d without a message", sql, r);
	return r;
}

START_TEST(probe_accepts_plain_selects)
{
	rwd_error err;
	size_t rows;
	ck_assert_int_eq(probe("SELECT * FROM t", &rows, &err), 0);
	ck_assert_uint_eq(rows, 3);
	ck_assert_int_eq(probe("SELECT a FROM t WHERE b > 'x'; -- two of them\n;", &rows, &err), 0);
	ck_assert_uint_eq(rows, 2);
	/* 3 x 3 rows: well inside the budget */
	ck_assert_int_eq(probe("SELECT * FROM t x, t y", &rows, &err), 0);
	ck_assert_uint_eq(rows, 9);
	ck_assert_int_eq(probe("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 100)"
			       " SELECT count(*) FROM n", &rows, &err), 0);
	ck_assert_uint_eq(rows, 1);
	/* read-only table-valued functions that are not pragmas are SELECTs too */
	const char *je = "SELECT key, value FROM json_each('[10, 20, 30]')";
	ck_assert_int_eq(plain_rows(je), 3);
	ck_assert_msg(probe(je, &rows, &err) == 0, "%s: %s", je, err.msg);
	ck_assert_uint_eq(rows, 3);
}
END_TEST

static void refused(const char *sql, int code, const char *why)
{
	rwd_error err;
	size_t rows;
	int r = probe(sql, &rows, &err);
	ck_assert_msg(r == code, "%s: got %d (%s), want %d", sql, r, err.msg, code);
	if (why) /* the message names the table as written: any case */
		ck_assert_msg(strcasestr(err.msg, why) != NULL, "%s: message \"%s\" lacks \"%s\"", sql, err.msg, why);
}

START_TEST(probe_refuses_pragma_table_functions)
{
	static const char *const q[] = {
		"SELECT * FROM pragma_table_info('t')",
		"SELECT name FROM PRAGMA_TABLE_INFO('t') ORDER BY cid",
		"SELECT a FROM t WHERE a IN (SELECT cid FROM pragma_table_info('t'))",
		"SELECT * FROM t JOIN pragma_table_info('t') p ON p.cid = t.a",
		"WITH c AS (SELECT * FROM pragma_index_list('t')) SELECT * FROM c",
		"SELECT * FROM pragma_compile_options",
		"SELECT * FROM main.pragma_table_list",
		NULL,
	};
	for (size_t i = 0; q[i]; i++) {
		/* pragma_table_list needs SQLite 3.37; skip a statement this SQLite rejects outright */
		if (plain_rows(q[i]) < 0) {
			fprintf(stderr, "skip (plain SQLite rejects it too): %s\n", q[i]);
			continue;
		}
		refused(q[i], RWD_E_INVALID, "pragma_");
	}
	/* the plain form of the first must work, or this test proves nothing */
	ck_assert_int_eq(plain_rows("SELECT * FROM pragma_table_info('t')"), 2);
}
END_TEST

START_TEST(probe_still_refuses_writes)
{
	/* sqlite_master's UPDATE events while connecting json_each/pragma_* are
	 * let through; a written UPDATE, of any table, is not */
	refused("UPDATE t SET a = 1", RWD_E_INVALID, NULL);
	refused("WITH x AS (SELECT 1) UPDATE t SET a = 2", RWD_E_INVALID, NULL);
	refused("WITH x AS (SELECT 1) UPDATE sqlite_master SET sql = ''", RWD_E_INVALID, NULL);
	refused("DELETE FROM t", RWD_E_INVALID, NULL);
	rwd_error err;
	size_t rows;
	ck_assert_int_eq(probe("SELECT * FROM t", &rows, &err), 0);
	ck_assert_uint_eq(rows, 3);
}
END_TEST

START_TEST(probe_refuses_sqlite_dbpage)
{
	if (plain_rows("SELECT * FROM sqlite_dbpage") < 0) {
		/* not compiled in (SQLITE_ENABLE_DBPAGE_VTAB): refused as a prepare error */
		fprintf(stderr, "this SQLite has no sqlite_dbpage; checking the prepare error only\n");
		refused("SELECT * FROM sqlite_dbpage", RWD_E_INVALID, NULL);
		return;
	}
	refused("SELECT * FROM sqlite_dbpage", RWD_E_INVALID, "sqlite_dbpage");
	refused("SELECT pgno FROM SQLITE_DBPAGE('main')", RWD_E_INVALID, "sqlite_dbpage");
	refused("SELECT count(*) FROM t, sqlite_dbpage", RWD_E_INVALID, "sqlite_dbpage");
}
END_TEST

START_TEST(probe_budget_stops_a_huge_cross_join)
{
	/* 3^20 = 3486784401 rows to count: far beyond 1e6 instructions */
	refused("SELECT count(*) FROM t t1, t t2, t t3, t t4, t t5, t t6, t t7, t t8, t t9, t t10,"
		" t t11, t t12, t t13, t t14, t t15, t t16, t t17, t t18, t t19, t t20", RWD_E_LIMIT, NULL);
	/* the same without a sink: the first rows come, the budget still trips */
	refused("SELECT * FROM t t1, t t2, t t3, t t4, t t5, t t6, t t7, t t8, t t9, t t10, t t11, t t12",
		RWD_E_LIMIT, NULL);
}
END_TEST

START_TEST(probe_budget_stops_a_large_recursive_cte)
{
	/* bounded (it ends at 10^8 on a plain connection) but ~10^9 instructions */
	refused("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 100000000)"
		" SELECT count(*) FROM n", RWD_E_LIMIT, NULL);
	/* the same shape, small: valid on a plain connection, and accepted */
	const char *small = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 1000)"
			    " SELECT x FROM n";
	ck_assert_int_eq(plain_rows(small), 1000);
	rwd_error err;
	size_t rows;
	ck_assert_int_eq(probe(small, &rows, &err), 0);
	ck_assert_uint_eq(rows, 1000);
}
END_TEST

static Suite *sql_suite(void)
{
	Suite *s = suite_create("sql");
	TCase *tc = tcase_create("sql");
	tcase_add_test(tc, extract_fenced_block_last_wins);
	tcase_add_test(tc, extract_tags_that_are_not_sql);
	tcase_add_test(tc, extract_answer_tags);
	tcase_add_test(tc, extract_whole_text);
	tcase_add_test(tc, check_name_refusals);
	tcase_add_test(tc, orders_top_level_only);
	tcase_add_test(tc, ngram_by_hand);
	tcase_add_test(tc, ngram_refuses_n);
	tcase_add_test(tc, probe_accepts_plain_selects);
	tcase_add_test(tc, probe_refuses_pragma_table_functions);
	tcase_add_test(tc, probe_still_refuses_writes);
	tcase_add_test(tc, probe_refuses_sqlite_dbpage);
	tcase_add_test(tc, probe_budget_stops_a_huge_cross_join);
	tcase_add_test(tc, probe_budget_stops_a_large_recursive_cte);
	suite_add_tcase(s, tc);
	return s;
}

RWD_CHECK_MAIN(sql_suite)
