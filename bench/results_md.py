"""bench/RESULTS.md is shared by every benchmark: each owns one section
between its own BEGIN/END marker comments and rewrites only that.

Figures taken on busy cores are not published: the 1-minute load average is
read when a benchmark imports this module (its start) and again when it
writes; above RWD_BENCH_MAX_LOAD (default 2, for this project's 2-core
machines) the section is not written and the script says why. Every section
should quote start_load() so a reader sees the conditions."""
import os
import sys

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")
MAX_LOAD = float(os.environ.get("RWD_BENCH_MAX_LOAD", "2"))


def _load():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


_START = _load()


def start_load():
    """The load averages (1, 5, 15 min) when the benchmark started, as text."""
    return " ".join("%.2f" % x for x in _START)


def replace_section(section, begin, end, path=PATH):
    """Put `section` (which starts with `begin` and ends with `end`) in place of
    the file's current begin..end span, or append it when there is none.
    Refused (exit 3) when the load at start or now is above MAX_LOAD."""
    now = _load()
    if _START[0] > MAX_LOAD or now[0] > MAX_LOAD:
        sys.stderr.write("not writing %s: load average %.2f at start, %.2f now, above %.2f "
                         "(RWD_BENCH_MAX_LOAD); rerun on quiet cores\n" % (path, _START[0], now[0], MAX_LOAD))
        sys.exit(3)
    text = open(path).read() if os.path.exists(path) else ""
    section = section.rstrip("\n")
    if begin in text and end in text:
        text = text[:text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with open(path, "w") as f:
        f.write(text)
    print("wrote", path)
