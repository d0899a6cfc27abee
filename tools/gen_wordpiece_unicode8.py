#!/usr/bin/python3
"""Print lib/text/wordpiece.c's unicode8_assigned[] table.

tokenizers' BertNormalizer / BertPreTokenizer classify characters with the
unicode_categories crate, whose tables are Unicode 8.0; lib/text takes the
categories from utf8proc (newer). The table is the code point ranges Unicode
8.0 had assigned (Perl's core Unicode::UCD prop_invlist("In=8.0")), so
wordpiece.c treats any later character as unassigned, as the crate does,
whatever utf8proc version it is built with.

    /usr/bin/python3 tools/gen_wordpiece_unicode8.py > table.inc
"""
import subprocess

inv = list(map(int, subprocess.run(
    ["perl", "-MUnicode::UCD=prop_invlist", "-e", 'print join(" ", prop_invlist("In=8.0"))'],
    capture_output=True, text=True, check=True).stdout.split()))
if len(inv) % 2:
    inv.append(0x110000)
line, out = "", []
for a, b in zip(inv[0::2], inv[1::2]):
    s = "{0x%04X, 0x%04X}, " % (a, b - 1)
    if len(line) + len(s) > 96:
        out.append(line.rstrip())
        line = ""
    line += s
out.append(line.rstrip())
print("\n".join("\t" + x for x in out))
