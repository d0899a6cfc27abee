"""bench/RESULTS.md is shared by every benchmark: each owns one section
between its own BEGIN/END marker comments and rewrites only that."""
import os

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")


def replace_section(section, begin, end, path=PATH):
    """Put `section` (which starts with `begin` and ends with `end`) in place of
    the file's current begin..end span, or append it when there is none."""
    text = open(path).read() if os.path.exists(path) else ""
    section = section.rstrip("\n")
    if begin in text and end in text:
        text = text[:text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with open(path, "w") as f:
        f.write(text)
    print("wrote", path)
