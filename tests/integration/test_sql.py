"""The sql kind through the real daemon (lib/models/sql.h), against Python's sqlite3.

A random database is generated with Python's sqlite3; gold and policy queries
are scored through /v1/rewards. The oracle, written here from sql.h's
definitions and run by Python's sqlite3 on the same file:
- execution: 1 when the policy's rows equal the gold's as multisets (in order
  when the gold has a top-level ORDER BY), else 0; a policy statement that
  fails or is refused scores 0;
- syntax: 1 when the policy statement runs, else 0;
- a write, ATTACH, PRAGMA or a second statement is refused (syntax 0, never
  executed: the database file is unchanged);
- a gold query that fails or a missing database is an item error, and a
  name outside database_root a 400 naming the field, never a reward of 0;
- a runaway recursive CTE in the policy query ends within the instruction
  budget and scores 0; the daemon keeps serving.
The schema and ngram dimensions are checked only for range and identity here
(1 for the gold against itself); all four dimensions are compared with a
sqlite3 oracle at the library level by tests/parity/test_sql_sqlite.py.

Usage: test_sql.py REWARDD
"""
import collections
import hashlib
import os
import random
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rwd_harness as H  # noqa: E402

EXE = sys.argv[1]
C = H.Checker("sql")


def make_db(path, rng):
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE singer (id INTEGER PRIMARY KEY, name TEXT, age INTEGER, country TEXT)")
    con.execute("CREATE TABLE concert (id INTEGER PRIMARY KEY, singer_id INTEGER, year INTEGER, venue TEXT)")
    for i in range(40):
        con.execute("INSERT INTO singer VALUES (?,?,?,?)",
                    (i, "s%d" % rng.randint(0, 15), rng.randint(18, 70), rng.choice(["fr", "us", "jp", None])))
    for i in range(120):
        con.execute("INSERT INTO concert VALUES (?,?,?,?)",
                    (i, rng.randint(0, 39), rng.randint(1990, 2024), rng.choice(["a", "b", "c"])))
    con.commit()
    con.close()


def oracle_rows(path, sql):
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return con.execute(sql).fetchall()
    except sqlite3.Error:
        return None
    finally:
        con.close()


def top_level_order_by(sql):
    depth, s = 0, sql.upper()
    for i, ch in enumerate(s):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and s.startswith("ORDER BY", i):
            return True
    return False


def oracle_execution(path, gold, pred):
    g, p = oracle_rows(path, gold), oracle_rows(path, pred)
    if p is None:
        return 0.0
    if top_level_order_by(gold):
        return float(g == p)
    return float(collections.Counter(g) == collections.Counter(p))


def main():
    rng = random.Random(7)
    work = H.mkdtemp("rwd-sql-")
    root = os.path.join(work, "dbs")
    os.makedirs(root)
    db = os.path.join(root, "concerts.sqlite")
    make_db(db, rng)
    with open(db, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    cfg = {"models": {"sql": {"kind": "sql", "options": {"database_root": root}}}}
    d = H.Daemon(EXE, cfg)
    try:
        run(d, db, digest)
    finally:
        C.check(d.stop() == 0, "exit 0 after SIGTERM")
    with open(db, "rb") as f:
        C.check(hashlib.sha256(f.read()).hexdigest() == digest, "the database file is unchanged")
    C.done()


def score(d, items):
    return d.request("POST", "/v1/rewards", {"model": "sql", "items": items})


def run(d, db, digest):
    gold_pred = [
        ("SELECT name FROM singer WHERE age > 40", "SELECT name FROM singer WHERE age > 40"),
        ("SELECT name FROM singer WHERE age > 40", "SELECT name FROM singer WHERE 40 < age"),
        ("SELECT name FROM singer WHERE age > 40", "SELECT DISTINCT name FROM singer WHERE age > 40"),
        ("SELECT country, count(*) FROM singer GROUP BY country", "SELECT country, count(*) FROM singer GROUP BY 1"),
        ("SELECT id FROM singer ORDER BY age, id", "SELECT id FROM singer ORDER BY id"),
        ("SELECT id FROM singer ORDER BY age, id", "SELECT id FROM singer ORDER BY age, id"),
        ("SELECT s.name, c.year FROM singer s JOIN concert c ON c.singer_id = s.id WHERE c.venue = 'a'",
         "SELECT s.name, c.year FROM concert c JOIN singer s ON s.id = c.singer_id WHERE c.venue = 'a'"),
        ("SELECT avg(age) FROM singer", "SELECT avg(age) FROM singr"),   # no such table
        ("SELECT max(year) FROM concert", "SELEC max(year) FROM concert"),  # syntax error
        ("WITH t AS (SELECT age FROM singer) SELECT count(*) FROM t", "SELECT count(age) FROM singer"),
    ]
    for i in range(6):
        a = random.Random(i).randint(20, 60)
        gold_pred.append(("SELECT id FROM singer WHERE age < %d" % a, "SELECT id FROM singer WHERE age <= %d" % a))
    items = [{"id": str(i), "response": "```sql\n%s\n```" % p, "label": g, "database": "concerts.sqlite"}
             for i, (g, p) in enumerate(gold_pred)]
    r = score(d, items)
    C.check(r.status == 200, "scored: %d %s" % (r.status, r.raw[:300]))
    if r.status != 200:
        return
    bad = []
    for (g, p), res in zip(gold_pred, r.json["results"]):
        sc = res.get("scores", {})
        want_exec = oracle_execution(db, g, p)
        want_syn = float(oracle_rows(db, p) is not None)
        if sc.get("execution") != want_exec or sc.get("syntax") != want_syn:
            bad.append((p, sc, want_exec, want_syn))
        for k in ("schema", "ngram"):
            if not (0.0 <= sc.get(k, -1) <= 1.0):
                bad.append((p, k, sc.get(k)))
    C.check(not bad, "execution and syntax equal Python sqlite3's (%d items): %r" % (len(gold_pred), bad[:3]))
    same = r.json["results"][0]["scores"]
    C.check(same.get("schema") == 1.0 and same.get("ngram") == 1.0, "gold against itself: schema 1, ngram 1: %r" % same)

    # refused statements: scored 0 as the policy's, never run
    refused = ["DELETE FROM singer", "INSERT INTO singer VALUES (99,'x',1,'fr')",
               "ATTACH DATABASE '%s' AS x" % db, "PRAGMA writable_schema = 1",
               "SELECT 1; DELETE FROM singer", "SELECT load_extension('x')"]
    r = score(d, [{"response": q, "label": "SELECT 1", "database": "concerts.sqlite"} for q in refused])
    ok = r.status == 200 and all(x.get("scores", {}).get("syntax") == 0.0 and
                                 x.get("scores", {}).get("execution") == 0.0 for x in r.json["results"])
    C.check(ok, "writes, ATTACH, PRAGMA, a second statement, load_extension: syntax 0, execution 0: %s" % r.raw[:400])

    # a runaway policy query ends within the budget
    runaway = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n"
    r = score(d, [{"response": runaway, "label": "SELECT count(*) FROM singer", "database": "concerts.sqlite"}])
    C.check(r.status == 200 and "error" not in r.json["results"][0] and
            r.json["results"][0]["scores"].get("execution") == 0.0,
            "an unbounded recursive CTE is stopped by the budget and scores 0: %s" % r.raw[:300])

    # item errors, never a fake 0
    errs = [{"response": "SELECT 1", "label": "SELECT nope FROM nowhere", "database": "concerts.sqlite"},
            {"response": "SELECT 1", "label": "SELECT 1", "database": "missing.sqlite"}]
    r = score(d, errs + [items[0]])
    if r.status == 200:
        res = r.json["results"]
        C.check(all("error" in x and "reward" not in x for x in res[:2]),
                "a failing gold query, a missing database: item errors: %s" % r.raw[:500])
        C.check("reward" in res[2], "the good item beside them is scored")
    else:
        C.check(False, "mixed request answered 200: %d %s" % (r.status, r.raw[:300]))
    # names that leave database_root are refused before anything runs, naming the field
    for name in ("../dbs/concerts.sqlite", "/etc/passwd"):
        r = score(d, [{"response": "SELECT 1", "label": "SELECT 1", "database": name}])
        C.check(r.status == 400 and r.json["error"].get("field") == "items[0].database",
                "database %r refused naming the field: %d %s" % (name, r.status, r.raw[:200]))
    C.check(d.request("GET", "/readyz").status == 200, "still ready")


if __name__ == "__main__":
    main()
