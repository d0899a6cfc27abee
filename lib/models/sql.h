/*
 * models/sql.h — the built-in `sql` kind: text-to-SQL rewards computed by
 * running the policy's query and the gold query on a real SQLite database,
 * with the partial rewards of Reasoning-SQL (Pourreza, Talaei et al. 2025,
 * arXiv:2503.23157). Registered in lib/models/model.c as kind "sql".
 *
 * Item fields:
 *   response  string, required: the policy's output. The SQL is, in order:
 *             1. the content of the LAST complete fenced block whose opening
 *                fence is ``` followed by the tag `sql` or `sqlite` (ASCII
 *                case-insensitive) and then whitespace; the content runs to
 *                the next ``` (Reasoning-SQL's extract_sql_queries takes the
 *                last ```sql block too);
 *             2. else the content of the LAST complete <answer>…</answer>;
 *                when that content is itself one fenced block (``` with any
 *                tag) the fences are removed;
 *             3. else the whole response.
 *             The result is trimmed of ASCII whitespace.
 *   label     string, optional: the gold SQL (used as it is, trimmed).
 *   database  string, optional: a file name relative to the model's
 *             `database_root` ("concert_singer/concert_singer.sqlite").
 *             Refused (422-class RWD_E_INVALID, field "database") when it is
 *             empty, absolute, has a ".." component, a NUL byte, or, once
 *             resolved with realpath(3) (symlinks followed), does not lie
 *             inside realpath(database_root) or is not a regular file.
 *
 * Dimensions (higher is better; a dimension whose inputs are missing is
 * absent, never 0):
 *   execution  needs label + database. 1 when the policy's result equals the
 *              gold result, else 0 (Reasoning-SQL's execution-accuracy reward
 *              divided by its weight 3; the weight is in the default reward
 *              configuration). Results are compared as multisets of rows
 *              (`compare` "set": as sets, duplicates ignored, which is what
 *              Reasoning-SQL's code and BIRD's evaluator do), or as ordered
 *              lists when the gold query has an ORDER BY at the top level
 *              (outside every parenthesis: a CTE's or a window's ORDER BY
 *              does not count; `order` "ignore" turns this off). Values
 *              compare as Python's sqlite3 rows do: NULL equals NULL; an
 *              INTEGER equals a REAL of the same exact value (1 = 1.0, -0.0 =
 *              0; 2^53+1 != 2^53 as a REAL); TEXT equals TEXT byte for byte;
 *              BLOB equals BLOB; TEXT never equals a number or a BLOB
 *              ('1' != 1). Column names are ignored; rows of different
 *              widths differ. Two empty results are equal
 *              (`empty_results_match` false: 0, as Reasoning-SQL's code).
 *   syntax     needs database. 1 when the policy's statement is accepted
 *              (below) and its first sqlite3_step returns a row or done
 *              within the instruction budget, else 0: Reasoning-SQL's syntax
 *              check executes the query and fetches one row.
 *   schema     needs label + database. Jaccard similarity |G ∩ P| / |G ∪ P|
 *              of the schema items the two statements read (1 when both are
 *              empty), 0 when the policy's statement is not accepted. Items
 *              are what SQLite's authorizer reports (SQLITE_READ) while
 *              preparing the statement on the item's database: each table
 *              read, and each table.column read, ASCII-lowercased. Aliases,
 *              unqualified columns and CTEs are resolved by SQLite itself; a
 *              view's reads are those of the tables under it. `schema_score`
 *              "recall" gives |G ∩ P| / |G| instead, as Reasoning-SQL's code
 *              (schema_linking_scorer) does.
 *   ngram      needs label. Jaccard similarity of the sets of word n-grams
 *              (n = `ngram_n`, default 2: bigrams, as Reasoning-SQL) of the
 *              two SQL texts; 0 when both sets are empty. Tokens: the text is
 *              lexed with SQLite's rules; words (keywords, identifiers,
 *              including "…", `…`, […] quoted ones, whose quotes are
 *              dropped) are ASCII-lowercased; numbers and string literals
 *              ('…', kept with their quotes and case) are tokens; comments,
 *              whitespace, operators and punctuation are dropped. Then the
 *              keyword AS and every alias name are removed: an alias is the
 *              word after AS, or the word right after a table name in a FROM
 *              or JOIN list that is not a keyword. (Reasoning-SQL's code
 *              tokenises sqlglot's rendering with \w+ and drops aliases and
 *              AS the same way; sqlglot's rewrites are not reproduced.)
 *
 * Which statements are accepted: exactly one statement (after it only
 * whitespace, comments and semicolons), starting with SELECT or WITH,
 * sqlite3_stmt_readonly, not EXPLAIN, no bound parameters, and allowed by
 * the authorizer at every step of its compilation: only SELECT, READ,
 * RECURSIVE and FUNCTION actions; no ATTACH/DETACH, PRAGMA, writes, DDL,
 * transactions; no function load_extension, fts3_tokenizer, readfile,
 * writefile, edit; no table-valued pragma_* functions or sqlite_dbpage.
 *
 * The database is opened as the URI file:PATH?mode=ro&immutable=1 with
 * SQLITE_OPEN_READONLY | SQLITE_OPEN_URI (never created, never written, no
 * locks, no journal), extensions off (SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION
 * 0), SQLITE_DBCONFIG_DEFENSIVE on, TRUSTED_SCHEMA and triggers off,
 * query_only, and per-connection sqlite3_limit()s (value length
 * `max_value_bytes`, SQL length `max_sql_bytes`, no attached databases, no
 * variables, bounded expression depth, compound selects, columns, function
 * arguments, LIKE patterns). immutable=1 tells SQLite the file never changes:
 * a connection is reopened when the file's inode, size or mtime differs
 * from when it was opened; replace a database by renaming a new file over it.
 *
 * Budgets and what a failure means (policy = the response's SQL):
 *   each statement runs at most `max_instructions` virtual-machine
 *   instructions (sqlite3_progress_handler, checked every 1000) and at most
 *   `timeout_ms` of wall-clock time; a result has at most `max_result_rows`
 *   rows and `max_result_bytes` bytes in our canonical encoding.
 *   - gold query not accepted, failing, or over any budget: item error
 *     (RWD_E_INVALID / RWD_E_LIMIT / RWD_E_TIMEOUT, field "label"), never 0.
 *   - database missing, unreadable, not a database, corrupt: item error
 *     (RWD_E_NOTFOUND / RWD_E_IO / RWD_E_FORMAT, field "database").
 *   - long inputs: a response over max_response_bytes or a label over
 *     max_sql_bytes is refused by check() (RWD_E_LIMIT, field "response" /
 *     "label"); SQL extracted from the response over max_sql_bytes is an
 *     item error (RWD_E_LIMIT, field "response"). Nothing is truncated: a
 *     cut query is another query.
 *   - policy statement not accepted or failing (a prepare or runtime error):
 *     a legitimate score: syntax 0 (when before its first row), execution 0,
 *     schema 0 when it was not accepted.
 *   - policy over the instruction budget or a value/row/byte limit: those
 *     are deterministic (the same query on the same file always overruns),
 *     so they score like a failing statement: execution 0, syntax 0 when the
 *     first row was not reached. The policy's run stops as soon as it can no
 *     longer match the gold result (more rows or bytes than the gold's, or a
 *     differing row in an ordered comparison).
 *   - policy over the wall-clock timeout, or out of memory (SQLITE_NOMEM, e.g.
 *     at the heap limit): these depend on machine load, so they are item
 *     errors (RWD_E_TIMEOUT / RWD_E_NOMEM, field "response"), never a 0.
 *     The instruction budget is the bound meant to trip first.
 *
 * Memory: `heap_limit_mib` (default 1024, 0 = leave as is) is passed to
 * sqlite3_hard_heap_limit64(), which is PROCESS-WIDE: it bounds SQLite's
 * heap for every connection of every sql model. Loading a model only ever
 * lowers it (the smallest over the loaded sql models wins) and it is not
 * raised again when a model is unloaded. `cache_kib` bounds each
 * connection's page cache. Sorts beyond the cache spill to SQLite's
 * temporary files.
 *
 * Threads and memory: the loaded state is read-only. Each worker's scratch
 * holds its own connections (opened lazily, at most `max_open_databases`,
 * least recently used closed first), its result buffers (grown on demand up
 * to the limits) and the last gold result, reused by the next item with the
 * same database and label (a GRPO group shares one gold run).
 *
 * Options (unknown keys are rejected):
 *   database_root        string, required: an existing directory
 *   max_instructions     1000..1e12 (default 100000000)
 *   timeout_ms           1..600000 (default 10000)
 *   max_result_rows      1..10000000 (default 100000)
 *   max_result_bytes     1024..2^30 (default 64 MiB)
 *   max_value_bytes      1024..2^30 (default 1 MiB)
 *   max_sql_bytes        16..2^20 (default 65536), for label and extracted SQL
 *   max_response_bytes   1..2^24 (default 262144)
 *   max_open_databases   1..256 (default 8)
 *   heap_limit_mib       0..2^20 (default 1024)
 *   cache_kib            64..2^20 (default 16384)
 *   compare              "multiset" (default) | "set"
 *   order                "auto" (default) | "ignore"
 *   empty_results_match  boolean (default true)
 *   schema_score         "jaccard" (default) | "recall"
 *   ngram_n              1..8 (default 2)
 *
 * The default reward (Reasoning-SQL's weighting, see rwd_sql_default_reward)
 * is a weighted sum: execution 3, syntax 1, schema 1, ngram 1 (range 0..6).
 * Model kinds cannot carry a reward configuration of their own yet, so a
 * served model states it in its config entry (config/sql.json).
 */
#ifndef RWD_MODELS_SQL_H
#define RWD_MODELS_SQL_H

#include "core/error.h"
#include "models/model.h"

#include <stddef.h>

extern const rwd_model_ops rwd__sql_ops;

/* The default `reward` object for a sql model, as JSON text (static). */
const char *rwd_sql_default_reward(void);

/*
 * The SQL in a response (rules above): *off and *len give the slice of
 * text[0..n). Pure; never fails.
 */
void rwd_sql_extract(const char *text, size_t n, size_t *off, size_t *len);

/* 1 when sql[0..n) has ORDER BY outside every parenthesis, else 0. Pure. */
int rwd_sql_orders(const char *sql, size_t n);

/*
 * Check a database name's shape (not the file system): RWD_E_INVALID with a
 * message when it is empty, longer than 1024 bytes, absolute, contains NUL
 * or a ".." component; else 0.
 */
int rwd_sql_check_name(const char *name, size_t n, rwd_error *err);

/*
 * Jaccard similarity of the word n-gram sets of a and b (tokens as for the
 * `ngram` dimension) into *out. Returns 0, RWD_E_INVALID (n outside 1..8),
 * RWD_E_NOMEM. Re-entrant; allocates its own memory.
 */
int rwd_sql_ngram(const char *a, size_t na, const char *b, size_t nb, int n, double *out);

/*
 * Prepare sql[0..n) on a fresh hardened in-memory database holding
 * `schema_sql` (created before hardening; NULL: none) and run it under the
 * default budgets and limits, as a policy statement would be. Returns 0
 * when accepted and run to the end, RWD_E_INVALID (not accepted or a
 * statement error), RWD_E_LIMIT (a budget), RWD_E_TIMEOUT, RWD_E_NOMEM,
 * with err saying why; *rows (may be NULL) gets the row count. For tests and
 * the fuzz target.
 */
int rwd_sql_probe(const char *schema_sql, const char *sql, size_t n, size_t *rows,
	rwd_error *err);

#endif
