#!/usr/bin/python3
"""tests/parity/test_sql_sqlite.py — the sql kind (lib/models/sql.c) against Python's sqlite3.

    test_sql_sqlite.py KIND_HARNESS

Random databases are generated with Python's sqlite3 (random schemas, NULLs,
duplicate rows, integers that equal reals, -0.0, floats, Unicode text, empty
tables, a view) and many gold/policy query pairs are generated over them
(projections, WHERE, DISTINCT, ORDER BY with and without LIMIT, GROUP BY and
aggregates, HAVING, joins with and without AS aliases, subqueries, CTEs,
compound selects, reformatted and equivalent rewrites, wrong columns and
syntax errors). The items go through the kind as a worker runs them
(kind-harness: check, prepare, forward) and every dimension is compared with
an oracle written here from Reasoning-SQL's definitions as lib/models/sql.h
states them, run by Python's sqlite3 on the same files:
- execution: the two results are equal as multisets of rows (in order when
  the gold has an ORDER BY outside every parenthesis); a failing policy
  query scores 0; two empty results are equal (empty_results_match);
- syntax: the policy query is one SELECT that prepares and steps once;
- schema: Jaccard of the schema items (each table read, each table.column
  read, ASCII-lowercased) that SQLite's authorizer reports while preparing
  each query (Python's Connection.set_authorizer); 0 when the policy query
  does not prepare, 1 when both are empty;
- ngram: Jaccard of the sets of word bigrams, tokens as SQLite lexes them
  (words lowercased, quoted identifiers without their quotes, numbers and
  string literals kept, punctuation and comments dropped), AS and alias
  names removed; 0 when both are empty.
Then other options on the same pairs (compare "set", order "ignore",
empty_results_match false, schema_score "recall", ngram_n 1 and 3), and the
sandbox: the gold query as a runaway recursive CTE, a huge cross join, an
ATTACH, a PRAGMA, a write or two statements fails the item naming "label";
a database name that leaves database_root (.., absolute, a symlink out)
fails the item naming "database"; a label, response or extracted SQL over
its byte limit fails the item naming its field (long inputs: never cut); the same statements as the policy's
query score syntax 0 / execution 0 (never executed: the files' bytes are
unchanged) and never hang.
Exit 1 on any mismatch.
"""
import collections
import hashlib
import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import tempfile

HARNESS = sys.argv[1]
RWD_E_INVALID, RWD_E_LIMIT, RWD_E_NOTFOUND = -4, -5, -7

# ---------------------------------------------------------------- databases


def rand_value(rng, typ):
    if rng.random() < 0.15:
        return None
    if typ == "INTEGER":
        return rng.choice([rng.randint(-3, 12), rng.randint(0, 5), 2**53 + 1, 0])
    if typ == "REAL":
        return rng.choice([rng.randint(0, 6) + 0.0, rng.randint(0, 40) / 4, 0.1 + 0.2, -0.0, 1e-300, 2.5])
    return rng.choice(["a", "b", "Ab", "x y", "é", "日本", "it''s".replace("''", "'"), "", "a", "b", "10"])


def make_db(path, rng):
    con = sqlite3.connect(path)
    ntab = rng.randint(2, 4)
    names = rng.sample(["singer", "Concert", "stadium", "orders", "Item", "city"], ntab)
    schema = {}
    for ti, t in enumerate(names):
        cols = [("id", "INTEGER")]
        if ti > 0:
            cols.append(("ref", "INTEGER"))  # points at the previous table's id
        for k in range(rng.randint(2, 4)):
            cols.append(("c%d" % k if rng.random() < 0.8 else "Col%d" % k, rng.choice(["INTEGER", "REAL", "TEXT"])))
        con.execute("CREATE TABLE %s (%s)" % (t, ", ".join(
            "%s %s%s" % (c, ty, " PRIMARY KEY" if c == "id" else "") for c, ty in cols)))
        nrows = 0 if rng.random() < 0.1 else rng.randint(1, 40)
        for r in range(nrows):
            vals = [r]
            for c, ty in cols[1:]:
                vals.append(rng.randint(0, 12) if c == "ref" else rand_value(rng, ty))
            con.execute("INSERT INTO %s VALUES (%s)" % (t, ",".join("?" * len(cols))), vals)
        schema[t] = cols
    if rng.random() < 0.5:
        t = names[0]
        con.execute("CREATE VIEW v_%s AS SELECT id, %s FROM %s WHERE id > 2" % (t.lower(), schema[t][1][0], t))
        schema["v_" + t.lower()] = [("id", "INTEGER"), (schema[t][1][0], schema[t][1][1])]
    con.commit()
    con.close()
    return schema


# ---------------------------------------------------------------- queries


def gen_query(rng, schema):
    tabs = [t for t in schema if not t.startswith("v_")]
    t = rng.choice(list(schema))
    cols = [c for c, _ in schema[t]]
    kind = rng.random()
    if kind < 0.3:
        sel = rng.sample(cols, rng.randint(1, len(cols)))
        q = "SELECT %s%s FROM %s" % ("DISTINCT " if rng.random() < 0.2 else "", ", ".join(sel), t)
        if rng.random() < 0.5:
            c = rng.choice(cols)
            q += rng.choice([" WHERE %s > %d" % (c, rng.randint(0, 5)), " WHERE %s IS NULL" % c,
                             " WHERE %s = 'a'" % c, " WHERE %s <> 2.5" % c, " WHERE %s IN (1, 2, 'b')" % c])
        if rng.random() < 0.4:
            q += " ORDER BY %s%s" % (rng.choice(sel), rng.choice(["", " DESC"]))
            if rng.random() < 0.3:
                q += " LIMIT %d" % rng.randint(1, 5)
        return q
    if kind < 0.5:
        g = rng.choice(cols)
        a = rng.choice(cols)
        agg = rng.choice(["count(*)", "count(%s)" % a, "sum(%s)" % a, "avg(%s)" % a, "max(%s)" % a, "min(%s)" % a,
                          "total(%s)" % a])
        q = "SELECT %s, %s FROM %s GROUP BY %s" % (g, agg, t, g)
        if rng.random() < 0.3:
            q += " HAVING count(*) > 1"
        if rng.random() < 0.4:
            q += " ORDER BY %s" % g
        return q
    if kind < 0.75 and len(tabs) >= 2:
        i = rng.randint(1, len(tabs) - 1)
        a, b = tabs[i - 1], tabs[i]
        ca = rng.choice([c for c, _ in schema[a]])
        cb = rng.choice([c for c, _ in schema[b]])
        as_ = rng.choice([" AS ", " "])
        q = "SELECT T1.%s, T2.%s FROM %s%sT1 JOIN %s%sT2 ON T1.id = T2.ref" % (ca, cb, a, as_, b, as_)
        if rng.random() < 0.4:
            q += " WHERE T2.%s IS NOT NULL" % cb
        if rng.random() < 0.3:
            q += " ORDER BY T1.%s, T2.%s" % (ca, cb)
        return q
    if kind < 0.85 and len(tabs) >= 2:
        a, b = tabs[0], tabs[1]
        return rng.choice([
            "SELECT id FROM %s WHERE id IN (SELECT ref FROM %s)" % (a, b),
            "WITH c AS (SELECT ref, count(*) AS n FROM %s GROUP BY ref ORDER BY n) SELECT * FROM c" % b,
            "SELECT x.id FROM (SELECT id FROM %s WHERE id < 5) x" % a,
            "SELECT id FROM %s UNION SELECT ref FROM %s ORDER BY 1" % (a, b),
            "SELECT id FROM %s EXCEPT SELECT ref FROM %s" % (a, b),
            "SELECT count(*) FROM %s -- a comment\nWHERE id > 1" % a,
            "SELECT /* inline */ \"id\", [ref] FROM `%s`" % b,
        ])
    c = rng.choice(cols)
    return "SELECT %s, %s * 2 FROM %s WHERE %s = '%s'" % (c, c, t, c, rng.choice(["a", "it''s", "é"]))


def mutate(rng, gold, schema):
    k = rng.random()
    if k < 0.2:
        return gold
    if k < 0.3:  # reformatted: keyword case and spaces
        return re.sub(r"\bSELECT\b", "select", gold).replace(" FROM ", "\n  from ")
    if k < 0.38:
        return gold.replace(" ORDER BY", " ORDER  BY") if "ORDER BY" in gold else gold + " ORDER BY 1"
    if k < 0.45:
        return re.sub(r" ORDER BY [^)]*$", "", gold)
    if k < 0.5:
        return gold.replace("SELECT ", "SELECT DISTINCT ", 1) if "DISTINCT" not in gold else gold.replace("DISTINCT ", "")
    if k < 0.55:
        return gold.replace(" AS T1", " AS A").replace("T1.", "A.")
    if k < 0.62:
        return gold.replace("SELECT", "SELEC", 1)  # a syntax error
    if k < 0.67:
        return gold.replace(" FROM", ", no_such_col FROM", 1)
    if k < 0.72:
        return re.sub(r"> (\d+)", lambda m: "> %d" % (int(m.group(1)) + 1), gold) if "> " in gold else gold + " LIMIT 0"
    return gen_query(rng, schema)


# ---------------------------------------------------------------- the oracle


def ascii_lower(s):
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in s)


TOKEN_RX = re.compile(r"""
    (?P<ws>\s+) | (?P<lc>--[^\n]*) | (?P<bc>/\*.*?(\*/|$)) |
    (?P<str>[xX]?'(?:[^']|'')*'?) |
    (?P<qid>"(?:[^"]|"")*"?|`(?:[^`]|``)*`?|\[[^\]]*\]?) |
    (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[A-Za-z_0-9]*) |
    (?P<word>[A-Za-z_\x80-\U0010ffff][A-Za-z_0-9$\x80-\U0010ffff]*) |
    (?P<punct>.)""", re.S | re.X)

KEYWORDS = set(("where join inner left right full outer cross natural on using group order limit having union "
                "except intersect window indexed not as select from values offset").split())
END_FROM = set("where group order limit having union except intersect window on using select values".split())


def sql_tokens(s):
    out = []
    for m in TOKEN_RX.finditer(s):
        kind = m.lastgroup
        v = m.group(kind)
        if kind in ("ws", "lc", "bc"):
            continue
        if kind == "qid":
            close = {"[": "]"}.get(v[0], v[0])
            v = v[1:-1] if len(v) > 1 and v[-1] == close else v[1:]
            out.append(("name", ascii_lower(v)))
        elif kind == "word":
            out.append(("word", ascii_lower(v)))
        else:
            out.append((kind, v))
    return out


def ngram_set(s, n):
    toks = sql_tokens(s)
    aliases = set()
    depth, from_at, from_paren, want_table, after_table = 0, {0: False}, {}, False, False
    i = 0
    while i < len(toks):
        kind, v = toks[i]
        is_name = kind in ("word", "name")
        prev_after, after_table = after_table, False
        if i > 0 and toks[i - 1] == ("word", "as") and is_name:
            aliases.add(v)
        elif (kind, v) == ("punct", "("):
            if want_table:
                from_paren[depth] = True
            want_table = False
            depth += 1
            from_at[depth] = False
            from_paren[depth] = False
        elif (kind, v) == ("punct", ")"):
            want_table = False
            depth = max(depth - 1, 0)
            if from_paren.get(depth):
                from_paren[depth] = False
                after_table = True
        elif (kind, v) in (("word", "from"), ("word", "join")):
            from_at[depth] = want_table = True
        elif (kind, v) == ("punct", ",") and from_at.get(depth):
            want_table = True
        else:
            if kind == "word" and v in END_FROM:
                from_at[depth] = False
            if want_table and is_name:
                want_table = False
                if i + 2 < len(toks) and toks[i + 1] == ("punct", ".") and toks[i + 2][0] in ("word", "name"):
                    i += 2
                after_table = True
            else:
                want_table = False
                if prev_after and kind == "word" and v not in KEYWORDS:
                    aliases.add(v)
        i += 1
    kept = [v for kind, v in toks if kind != "punct" and (kind, v) != ("word", "as")
            and not (kind in ("word", "name") and v in aliases)]
    return {tuple(kept[j:j + n]) for j in range(len(kept) - n + 1)}


def jaccard(a, b, empty):
    u = a | b
    return len(a & b) / len(u) if u else empty


def top_level_order(sql):
    depth, prev = 0, None
    for kind, v in sql_tokens(sql):
        if (kind, v) == ("punct", "("):
            depth += 1
        elif (kind, v) == ("punct", ")"):
            depth -= 1
        elif depth == 0 and prev == ("word", "order") and (kind, v) == ("word", "by"):
            return True
        prev = (kind, v)
    return False


def open_ro(path):
    return sqlite3.connect("file:%s?mode=ro" % path, uri=True, cached_statements=0)


def schema_items(path, sql):
    """(prepared?, items) from the authorizer while preparing sql (EXPLAIN prepares without running it)."""
    con = open_ro(path)
    items = set()

    def auth(action, a1, a2, dbn, src):
        if action == sqlite3.SQLITE_READ and a1:
            items.add(ascii_lower(a1))
            if a2:
                items.add(ascii_lower(a1 + "." + a2))
        return sqlite3.SQLITE_OK
    con.set_authorizer(auth)
    try:
        con.execute("EXPLAIN " + sql).fetchall()
        return True, items
    except sqlite3.Error:
        return False, set()
    finally:
        con.close()


def run(path, sql):
    con = open_ro(path)
    try:
        cur = con.execute(sql)
        first = cur.fetchmany(1)
        return True, first + cur.fetchall()
    except sqlite3.Error:
        return False, None
    finally:
        con.close()


def oracle(path, gold, pred, o):
    ok_g, g = run(path, gold)
    assert ok_g, gold
    ok_p, p = run(path, pred)
    if not ok_p:
        ex = 0.0
    elif not g and not p:
        ex = 1.0 if o.get("empty_results_match", True) else 0.0
    elif o.get("order", "auto") == "auto" and top_level_order(gold):
        ex = float(g == p)
    elif o.get("compare", "multiset") == "set":
        ex = float(set(g) == set(p))
    else:
        ex = float(collections.Counter(g) == collections.Counter(p))
    syn = 1.0 if ok_p else 0.0
    _, gi = schema_items(path, gold)
    prep, pi = schema_items(path, pred)
    if not prep:
        sch = 0.0
    elif o.get("schema_score", "jaccard") == "recall":
        sch = len(gi & pi) / len(gi) if gi else 1.0
    else:
        sch = jaccard(gi, pi, 1.0)
    n = o.get("ngram_n", 2)
    ng = jaccard(ngram_set(pred, n), ngram_set(gold, n), 0.0)
    return {"execution": ex, "syntax": syn, "schema": sch, "ngram": ng}


# ---------------------------------------------------------------- driver


def harness(opts, items, tmp):
    f = os.path.join(tmp, "items.json")
    json.dump(items, open(f, "w"), ensure_ascii=False)
    p = subprocess.run([HARNESS, "sql", "-", json.dumps(opts), f], capture_output=True, timeout=600)
    if p.returncode != 0:
        print("FAIL: kind-harness:", p.stderr.decode(errors="replace"))
        sys.exit(1)
    return json.loads(p.stdout)


def digest(root):
    h = hashlib.sha256()
    for name in sorted(os.listdir(root)):
        if name.endswith(".sqlite") and not os.path.islink(os.path.join(root, name)):
            h.update(open(os.path.join(root, name), "rb").read())
    return h.hexdigest()


def main():
    rng = random.Random(20261206)
    bad = 0
    with tempfile.TemporaryDirectory(prefix="rwd-sqlpar-") as tmp:
        root = os.path.join(tmp, "dbs")
        os.mkdir(root)
        dbs = {}
        for i in range(8):
            name = "db%d.sqlite" % i
            dbs[name] = make_db(os.path.join(root, name), rng)
        pairs = []
        while len(pairs) < 1500:
            name = rng.choice(list(dbs))
            gold = gen_query(rng, dbs[name])
            if not run(os.path.join(root, name), gold)[0]:
                continue
            pairs.append((name, gold, mutate(rng, gold, dbs[name])))
        wrap = [lambda q: q, lambda q: "```sql\n%s\n```" % q, lambda q: "Thinking...\n<answer>%s</answer>" % q]
        option_sets = [{}, {"compare": "set"}, {"order": "ignore"}, {"empty_results_match": False},
                       {"schema_score": "recall"}, {"ngram_n": 1}, {"ngram_n": 3}]
        counts = collections.Counter()
        before = digest(root)
        for oi, extra in enumerate(option_sets):
            use = pairs if oi == 0 else pairs[:300]
            opts = dict(extra, database_root=root)
            items = [{"response": rng.choice(wrap)(p), "label": g, "database": d} for d, g, p in use]
            res = harness(opts, items, tmp)
            for (d, g, p), r in zip(use, res):
                want = oracle(os.path.join(root, d), g, p, extra)
                got = r.get("scores")
                counts["compared"] += 1
                if got is None or any(abs(got.get(k, -1) - want[k]) > 1e-6 for k in want):
                    bad += 1
                    if bad <= 5:
                        print("MISMATCH options=%s db=%s\n gold=%r\n pred=%r\n want=%s\n got =%s"
                              % (extra, d, g, p, want, r))
                elif oi == 0:
                    for k in want:
                        counts["%s=%g" % (k, want[k]) if k in ("execution", "syntax") else k] += 1
        # ---- sandbox
        db0 = "db0.sqlite"
        t0 = [t for t in dbs[db0] if not t.startswith("v_")][0]
        outside = os.path.join(tmp, "outside.sqlite")
        make_db(outside, random.Random(1))
        os.symlink(outside, os.path.join(root, "link.sqlite"))
        cross = "SELECT count(*) FROM %s" % ", ".join("%s t%d" % (t0, i) for i in range(12))
        runaway = ("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 100000000) "
                   "SELECT count(*) FROM n")
        refused = [("ATTACH DATABASE '%s' AS x" % outside, "ATTACH"), ("PRAGMA writable_schema = 1", "PRAGMA"),
                   ("DELETE FROM %s" % t0, "SELECT"), ("SELECT 1; DELETE FROM %s" % t0, "one statement"),
                   ("SELECT load_extension('x')", "load_extension"), ("SELECT * FROM pragma_table_info('%s')" % t0,
                                                                       "pragma_table_info")]
        budget = [(runaway, "max_instructions"), (cross, "max_instructions")]
        ok_q = "SELECT id FROM %s" % t0
        cases = []  # (item, expect): expect = (code, field, substring) or a dict of scores
        for q, why in refused + budget:
            cases.append(({"response": ok_q, "label": q, "database": db0},
                          (RWD_E_LIMIT if why == "max_instructions" else RWD_E_INVALID, "label", why)))
            cases.append(({"response": q, "label": ok_q, "database": db0},
                          {"execution": 0.0, "syntax": 0.0}))
        for name, code, why in (("../outside.sqlite", RWD_E_INVALID, ".."), (outside, RWD_E_INVALID, "absolute"),
                                ("link.sqlite", RWD_E_INVALID, "outside database_root"),
                                ("missing.sqlite", RWD_E_NOTFOUND, "not found")):
            cases.append(({"response": ok_q, "label": ok_q, "database": name}, (code, "database", why)))
        # long inputs (max_sql_bytes 1024, max_response_bytes 4096): refused naming the field, never cut
        long_q = "SELECT id FROM %s WHERE id IN (%s)" % (t0, ", ".join(str(i) for i in range(400)))
        cases.append(({"response": ok_q, "label": long_q, "database": db0}, (RWD_E_LIMIT, "label", "bytes")))
        cases.append(({"response": "```sql\n%s\n```" % long_q, "label": ok_q, "database": db0},
                      (RWD_E_LIMIT, "response", "max_sql_bytes")))
        cases.append(({"response": "x" * 5000, "label": ok_q, "database": db0}, (RWD_E_LIMIT, "response", "bytes")))
        res = harness({"database_root": root, "max_instructions": 3000000, "max_sql_bytes": 1024,
                       "max_response_bytes": 4096}, [c[0] for c in cases], tmp)
        for (item, want), r in zip(cases, res):
            counts["sandbox"] += 1
            if isinstance(want, tuple):
                e = r.get("error")
                good = e and e["code"] == want[0] and e["field"] == want[1] and want[2].lower() in e["message"].lower()
            else:
                got = r.get("scores") or {}
                good = all(got.get(k) == v for k, v in want.items())
            if not good:
                bad += 1
                print("SANDBOX MISMATCH item=%s\n want=%s\n got =%s" % (json.dumps(item)[:300], want, r))
        if digest(root) != before:
            bad += 1
            print("FAIL: a database file changed")
    print("sql parity: %d item scorings compared with the sqlite3 oracle over %d pairs and %d option sets "
          "(%s), mismatches %d" % (counts["compared"], len(pairs), len(option_sets),
                                   ", ".join("%s %d" % kv for kv in sorted(counts.items()) if kv[0] != "compared"),
                                   bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
