#!/usr/bin/env python3
"""Turn a file into a C source defining `const unsigned char NAME[]` and
`const size_t NAME_len` (the file's bytes, no terminator), so daemon assets
are compiled into rewardd. Usage: embed.py INPUT OUTPUT.c NAME"""
import sys


def main():
    src, dst, name = sys.argv[1:4]
    with open(src, "rb") as f:
        data = f.read()
    out = ["/* generated from %s by daemon/assets/embed.py; do not edit */" % src.rsplit("/", 1)[-1],
           "#include <stddef.h>",
           "extern const unsigned char %s[];" % name,
           "extern const size_t %s_len;" % name,
           "const unsigned char %s[] = {" % name]
    for i in range(0, len(data), 16):
        out.append("\t" + ", ".join("0x%02x" % b for b in data[i:i + 16]) + ",")
    out.append("};")
    out.append("const size_t %s_len = %d;" % (name, len(data)))
    with open(dst, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
