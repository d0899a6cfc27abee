#!/usr/bin/python3
"""Bit-exactness of lib/core/numparse against Python's float() and numpy's
float32 cast, on millions of JSON number strings.

    test_numparse.py NUMPARSE_HARNESS [COUNT]

The oracle is what the jansson path gives a float array element: a real
token is strtod's correctly rounded double (Python's float(str) is correctly
rounded too), an integer token is int64 converted to double (so "-0" is
+0.0; beyond int64 jansson refuses it: LIMIT), an overflow to infinity is
refused (LIMIT); the float32 is numpy's cast of that double (C's (float)).

Strings: float32 values as Python's json.dumps writes them (repr of the
double), numpy's shortest float32 repr, random doubles over the whole
exponent range, random digit strings (1 to 40 digits, the point anywhere,
exponents -400..400), integers, and hand-picked edges (signed zeros,
denormal and overflow boundaries of both formats, halfway cases, int64
limits). Exit 0 pass, 1 fail, 77 skip (numpy missing).
"""
import random
import struct
import subprocess
import sys

try:
    import numpy as np
except ImportError:
    print("SKIP: numpy (Debian python3-numpy) is not installed")
    sys.exit(77)

HARNESS = sys.argv[1]
COUNT = int(sys.argv[2]) if len(sys.argv) > 2 else 2_000_000
rng = random.Random(20261206)

EDGES = [
    "0", "-0", "0.0", "-0.0", "0e0", "-0e-5", "0.000", "1", "-1", "1.0", "1e0", "1E+0", "1e-0",
    "0.1", "0.2", "0.3", "1e-45", "1.4e-45", "1.401298464324817e-45", "7e-46", "7.006492321624085e-46",
    "7.006492321624086e-46", "1.1754942e-38", "1.1754943508222875e-38", "1.1754942106924411e-38",
    "3.4028235e38", "3.4028234663852886e38", "3.4028235677973366e38", "3.4028236e38", "3.5e38",
    "1e38", "4.9e-324", "5e-324", "2.4703282292062327e-324", "2.4703282292062328e-324",
    "2.2250738585072011e-308", "2.2250738585072014e-308", "1.7976931348623157e308",
    "1.7976931348623158e308", "1.7976931348623159e308", "1e308", "1e309", "-1e309", "1e-400",
    "-1e-400", "9007199254740992", "9007199254740993", "9007199254740993.0", "9007199254740995",
    "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
    "18446744073709551616", "123456789012345678901234567890", "0.1e1", "100e-2",
    "1.00000000000000000000000000000000000001", "0." + "0" * 300 + "1", "1" + "0" * 300,
    "1" + "0" * 400 + "e-400", "0.000000000000000000000000000000000000000000001401298464324817",
    "16777217", "16777217.0", "1.00000005960464477539062500", "1.0000000596046448",
    "1.00000017881393432617187499", "1.00000017881393432617187501", "33554435", "-33554435.0",
    "2.5e-1", "1e22", "1e23", "1e-22", "1e-23", "123456789e-30", "12345678901234567e-21",
    "12345678901234567e-22", "1234567890123456789e-21", "1234567890123456789e19", "12345678901234567890e0",
]


def float32_reprs(n):
    out = []
    for _ in range(n):
        x = np.float32(rng.gauss(0, rng.choice([1e-6, 1e-3, 0.05, 1, 1e3, 1e20])))
        out.append(repr(float(x)))          # json.dumps(tensor.tolist())
        out.append(repr(x.item()) if rng.random() < 0.01 else str(x))  # numpy's shortest float32
    return out


def random_doubles(n):
    out = []
    for _ in range(n):
        u = rng.getrandbits(64)
        d = struct.unpack("<d", struct.pack("<Q", u))[0]
        if d != d or d in (float("inf"), float("-inf")):
            continue
        out.append(repr(d))
    return out


def random_digits(n):
    out = []
    for _ in range(n):
        nd = rng.choice([1, 2, 5, 8, 9, 15, 16, 17, 18, 19, 20, 21, 25, 40])
        digits = str(rng.randint(1, 9)) + "".join(rng.choice("0123456789") for _ in range(nd - 1))
        if rng.random() < 0.1:
            digits = digits[:3] + "0" * (nd - 3) if nd > 3 else digits
        p = rng.randint(1, nd)
        s = digits[:p] + ("." + digits[p:] if p < nd else "")
        if rng.random() < 0.3:
            s = "0." + "0" * rng.randint(0, 30) + digits
        if rng.random() < 0.6:
            s += rng.choice("eE") + rng.choice(["", "+", "-"]) + str(rng.randint(0, 400))
        if rng.random() < 0.5:
            s = "-" + s
        out.append(s)
    return out


def ints(n):
    out = []
    for _ in range(n):
        b = rng.randint(1, 66)
        v = rng.getrandbits(b)
        out.append(("-" if rng.random() < 0.5 else "") + str(v))
    return out


def oracle(s):
    if not any(c in s for c in ".eE"):
        v = int(s)
        if not -(1 << 63) <= v < (1 << 63):
            return "LIMIT"
        d = float(v)
    else:
        d = float(s)
        if d in (float("inf"), float("-inf")):
            return "LIMIT"
    f = np.array([d], dtype=np.float64).astype(np.float32)
    return "%016x %08x" % (struct.unpack("<Q", struct.pack("<d", d))[0],
                           struct.unpack("<I", f.tobytes())[0])


def main():
    q = COUNT // 4
    with np.errstate(over="ignore"):
        tokens = EDGES + float32_reprs(q // 2) + random_doubles(q) + random_digits(q) + ints(q)
        tokens += ["-" + t for t in EDGES if not t.startswith("-")]
        want = [oracle(t) for t in tokens]
    res = subprocess.run([HARNESS], input="\n".join(tokens) + "\n", capture_output=True, text=True,
                         check=True)
    got = res.stdout.split("\n")[:-1]
    if len(got) != len(tokens):
        print("FAIL: %d answers for %d tokens" % (len(got), len(tokens)))
        return 1
    bad = [(t, g, w) for t, g, w in zip(tokens, got, want) if g != w]
    for t, g, w in bad[:20]:
        print("MISMATCH %r: ours %s, oracle %s" % (t[:80], g, w))
    print("%d tokens, %d mismatches (double and float32 bits)" % (len(tokens), len(bad)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
