#!/usr/bin/python3
"""Write tests/fuzz/corpus/jinja/: every real template of
tests/data/chat_templates/corpus/ followed by NUL and the JSON variables of
a conversation (plain, and with tools and tool calls), plus the syntax
snippets of tests/parity/test_jinja_templates.py.

    make_jinja_corpus.py SOURCE_ROOT
"""
import json
import os
import sys

root = sys.argv[1]
out = os.path.join(root, "tests", "fuzz", "corpus", "jinja")
os.makedirs(out, exist_ok=True)
cdir = os.path.join(root, "tests", "data", "chat_templates", "corpus")
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather.",
                                           "parameters": {"type": "object",
                                                          "properties": {"city": {"type": "string"}},
                                                          "required": ["city"]}}}]
PLAIN = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi ü"},
         {"role": "assistant", "content": "<think>\nhm\n</think>\n\nHello"}, {"role": "user", "content": "again"}]
TOOLCALL = [{"role": "user", "content": "weather?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Hanoi"}}}]},
            {"role": "tool", "content": "{\"temp\": 21}", "tool_call_id": "c1"},
            {"role": "assistant", "content": "21 degrees."}]
n = 0
for e in json.load(open(os.path.join(cdir, "index.json"), encoding="utf-8")):
    tpl = open(os.path.join(cdir, e["file"]), encoding="utf-8", newline="").read()
    for k, (msgs, tools) in enumerate(((PLAIN, None), (TOOLCALL, TOOLS))):
        v = {"messages": msgs, "tools": tools, "documents": None, "add_generation_prompt": k == 0,
             "bos_token": e.get("bos_token") or "", "eos_token": e.get("eos_token") or ""}
        with open(os.path.join(out, "%s-%d" % (e["file"][:-6], k)), "wb") as f:
            f.write(tpl.encode() + b"\0" + json.dumps(v, ensure_ascii=False).encode())
        n += 1
src = open(os.path.join(root, "tests", "parity", "test_jinja_templates.py"), encoding="utf-8").read()
snip = src.split('SNIPPETS = r"""', 1)[1].split('"""', 1)[0]
v = {"messages": PLAIN, "d": {"a": 1, "items": [1, 2]}, "s": "a,b,,c", "n": 7, "f": 2.5, "u8": "héllo"}
for i, s in enumerate(x.strip("\n") for x in snip.split("\n@@@\n") if x.strip()):
    with open(os.path.join(out, "snippet-%02d" % i), "wb") as f:
        f.write(s.encode() + b"\0" + json.dumps(v, ensure_ascii=False).encode())
    n += 1
print("%d corpus files in %s" % (n, out))
