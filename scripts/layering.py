#!/usr/bin/env python3
"""scripts/layering.py — the include graph of daemon/ and lib/ has no circle.

A module is a .c/.h pair (daemon/api.c + daemon/api.h is `daemon/api`; a
header alone, such as daemon/api_internal.h, is its own module). Every
#include "..." that resolves to a file of the tree is an edge from the
including module to the included one; a module that includes a header
uses what the pair defines, so this graph carries the call edges too.
Fails (exit 1) on:
  - any circle between modules (strongly connected components of more than
    one module), printed with the edges that close it;
  - any file of lib/ including a file of daemon/ (lib never depends on the
    process shell).
Run: scripts/layering.py [SOURCE_ROOT]   (meson test `layering`)
     scripts/layering.py --self-test     (the check fails on a circle and on lib -> daemon)
"""
import os
import re
import sys

INC = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def module_of(rel):
    return os.path.splitext(rel)[0]


def self_test():
    """Trees with a known fault must fail, a clean one must pass."""
    import tempfile
    trees = {
        "clean": ({"daemon/a.c": '#include "a.h"\n#include "b.h"\n', "daemon/a.h": "",
                   "daemon/b.c": '#include "b.h"\n#include "core/x.h"\n', "daemon/b.h": "",
                   "lib/core/x.h": ""}, 0),
        "circle": ({"daemon/a.c": '#include "a.h"\n#include "b.h"\n', "daemon/a.h": "",
                    "daemon/b.c": '#include "b.h"\n', "daemon/b.h": '#include "c.h"\n',
                    "daemon/c.c": '#include "a.h"\n', "daemon/c.h": ""}, 1),
        "lib-daemon": ({"lib/core/x.c": '#include "../../daemon/a.h"\n', "daemon/a.h": ""}, 1),
    }
    ok = True
    for name, (files, want) in trees.items():
        with tempfile.TemporaryDirectory() as d:
            for rel, text in files.items():
                os.makedirs(os.path.dirname(os.path.join(d, rel)), exist_ok=True)
                with open(os.path.join(d, rel), "w") as f:
                    f.write(text)
            got = check(d)
        print("self-test %s: exit %d (want %d)" % (name, got, want))
        ok &= got == want
    return 0 if ok else 1


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--self-test":
        return self_test()
    if self_test():
        return 1
    return check(os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                                 os.path.join(os.path.dirname(__file__), "..")))


def check(root):
    files = []
    for top in ("daemon", "lib"):
        for dp, _, names in os.walk(os.path.join(root, top)):
            for n in names:
                if n.endswith((".c", ".h")):
                    files.append(os.path.relpath(os.path.join(dp, n), root))
    present = set(files)
    edges = {}      # module -> {module: (file, include)}
    bad = []
    for f in sorted(files):
        with open(os.path.join(root, f), encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        m = module_of(f)
        edges.setdefault(m, {})
        for inc in INC.findall(text):
            # the including file's folder, then lib/ (every target has lib/ on its path)
            cands = [os.path.normpath(os.path.join(os.path.dirname(f), inc)),
                     os.path.normpath(os.path.join("lib", inc))]
            target = next((c for c in cands if c in present), None)
            if target is None:
                continue  # system or generated header (rwd_config.h)
            if f.startswith("lib/") and target.startswith("daemon/"):
                bad.append("%s includes %s: lib/ never depends on daemon/" % (f, target))
            t = module_of(target)
            if t != m:
                edges[m].setdefault(t, (f, inc))
    # Tarjan's strongly connected components
    index, low, on, stack, comps = {}, {}, set(), [], []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            comps.append(comp)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    circles = [sorted(c) for c in comps if len(c) > 1]
    for c in circles:
        cs = set(c)
        print("circle of %d modules: %s" % (len(c), ", ".join(c)))
        for a in c:
            for b, (f, inc) in sorted(edges[a].items()):
                if b in cs:
                    print("    %s -> %s   (%s: #include \"%s\")" % (a, b, f, inc))
    for b in bad:
        print(b)
    n_edges = sum(len(v) for v in edges.values())
    print("layering: %d modules, %d include edges, %d circles, %d lib->daemon includes" %
          (len(edges), n_edges, len(circles), len(bad)))
    return 1 if circles or bad else 0


if __name__ == "__main__":
    sys.exit(main())
