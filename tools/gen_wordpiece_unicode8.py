#!/usr/bin/python3
"""Print lib/text/wordpiece.c's unicode8_new[] table.

tokenizers' BertNormalizer / BertPreTokenizer classify characters with the
unicode_categories crate, whose tables are Unicode 8.0; lib/text uses
utf8proc (newer). The table lists every code point utf8proc calls Cf, Mn or
P* that Unicode 8.0 had not assigned (Perl's Unicode::UCD
prop_invlist("In=8.0")), so wordpiece.c can treat them as unassigned, as the
crate does. Needs perl (core Unicode::UCD) and libutf8proc.

    /usr/bin/python3 tools/gen_wordpiece_unicode8.py > table.inc
"""
import bisect
import ctypes
import ctypes.util
import subprocess

inv = list(map(int, subprocess.run(
    ["perl", "-MUnicode::UCD=prop_invlist", "-e", 'print join(" ", prop_invlist("In=8.0"))'],
    capture_output=True, text=True, check=True).stdout.split()))
lib = ctypes.CDLL(ctypes.util.find_library("utf8proc") or "libutf8proc.so.2")
lib.utf8proc_category_string.restype = ctypes.c_char_p
rs = []
for c in range(0x110000):
    cat = lib.utf8proc_category_string(c).decode()
    if not (cat in ("Cf", "Mn") or cat.startswith("P")) or bisect.bisect_right(inv, c) % 2 == 1:
        continue
    if rs and rs[-1][1] == c - 1:
        rs[-1][1] = c
    else:
        rs.append([c, c])
line, out = "", []
for a, b in rs:
    s = "{0x%04X, 0x%04X}, " % (a, b)
    if len(line) + len(s) > 96:
        out.append(line.rstrip())
        line = ""
    line += s
out.append(line.rstrip())
print("\n".join("\t" + x for x in out))
