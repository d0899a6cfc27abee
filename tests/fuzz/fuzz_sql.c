/*
 * tests/fuzz/fuzz_sql.c — the `sql` kind's parsers of untrusted text: SQL
 * extraction from a response (```sql blocks, <answer> tags), the database
 * name check, the top-level ORDER BY scan, the n-gram tokeniser/Jaccard, and
 * rwd_sql_probe: the statement gate (single statement, SELECT/WITH, the
 * authorizer) and the budgets, on a small in-memory schema.
 *
 * Input: one flags byte, then response, NUL, label (the rest). Flags: bits
 * 0-2 pick ngram_n = 1 + (flags & 7); bit 3 probes the label instead of the
 * extracted SQL. Invariants: the extracted slice lies inside the response;
 * orders is 0 or 1; check_name is 0 or RWD_E_INVALID with a message; ngram
 * is 0 with a value in [0, 1] (1 for a text with itself, when it has an
 * n-gram) or RWD_E_NOMEM; probe returns 0 or one of its documented errors,
 * with err.code equal to it and a message.
 */
#include "core/error.h"
#include "models/sql.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char schema[] =
	"CREATE TABLE singer(singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER);"
	"CREATE TABLE concert(concert_id INTEGER PRIMARY KEY, concert_name TEXT, stadium_id INTEGER,"
	" year TEXT);"
	"CREATE TABLE singer_in_concert(concert_id INTEGER, singer_id TEXT);"
	"CREATE VIEW adults AS SELECT * FROM singer WHERE age >= 18;"
	"INSERT INTO singer VALUES (1, 'Joe', 'Netherlands', 52), (2, 'Timbaland', 'United States', 32),"
	" (3, 'Justin', 'France', 29), (4, 'Rose', 'France', 41), (5, 'John', NULL, 17);"
	"INSERT INTO concert VALUES (1, 'Auditions', 1, '2014'), (2, 'Super bootcamp', 2, '2014'),"
	" (3, 'Home Visits', 2, '2015');"
	"INSERT INTO singer_in_concert VALUES (1, '2'), (1, '3'), (2, '3'), (3, '5');";

static void check_probe(const char *sql, size_t n)
{
	rwd_error err;
	rwd_error_clear(&err);
	size_t rows = 0;
	int r = rwd_sql_probe(schema, sql, n, &rows, &err);
	if (r != 0 && r != RWD_E_INVALID && r != RWD_E_LIMIT && r != RWD_E_TIMEOUT && r != RWD_E_NOMEM)
		abort();
	if (err.code != r || (r && !err.msg[0]))
		abort();
	if (r == 0 && rows > 10000) /* the probe's row limit */
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 65536)
		return 0;
	int flags = data[0];
	const char *resp = (const char *)data + 1;
	size_t rest = size - 1;
	const char *nul = memchr(resp, 0, rest);
	size_t nr = nul ? (size_t)(nul - resp) : rest;
	const char *label = nul ? nul + 1 : resp + rest;
	size_t nl = nul ? rest - nr - 1 : 0;

	size_t off = (size_t)-1, len = (size_t)-1;
	rwd_sql_extract(resp, nr, &off, &len);
	if (off > nr || len > nr - off)
		abort();
	const char *sql = resp + off;

	int o = rwd_sql_orders(sql, len);
	if (o != 0 && o != 1)
		abort();
	o = rwd_sql_orders(label, nl);
	if (o != 0 && o != 1)
		abort();

	rwd_error err;
	rwd_error_clear(&err);
	int r = rwd_sql_check_name(resp, nr, &err);
	if ((r != 0 && r != RWD_E_INVALID) || err.code != r || (r && !err.msg[0]))
		abort();

	int gram = 1 + (flags & 7);
	double v = -1;
	r = rwd_sql_ngram(sql, len, label, nl, gram, &v);
	if (r == 0 && !(v >= 0.0 && v <= 1.0))
		abort();
	if (r != 0 && r != RWD_E_NOMEM)
		abort();
	/* a text with itself: 1, or 0 when it has no n-gram at all */
	v = -1;
	r = rwd_sql_ngram(label, nl, label, nl, gram, &v);
	if (r == 0 && v != 1.0 && v != 0.0)
		abort();

	/* rwd_sql_probe takes a byte range, but SQLite's prepare reads up to n */
	if (flags & 8)
		check_probe(label, nl);
	else
		check_probe(sql, len);
	return 0;
}
