#!/usr/bin/python3
"""tests/parity/test_jinja_templates.py — lib/text/jinja against Python's Jinja2.

    test_jinja_templates.py JINJA_HARNESS SOURCE_ROOT

The oracle is Jinja2 (Debian python3-jinja2) set up as transformers'
apply_chat_template does (src/transformers/utils/chat_template_utils.py):
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
extensions=[AssistantTracker, loopcontrols]), tojson = json.dumps(x,
ensure_ascii=False, indent=None, separators=None, sort_keys=False), globals
raise_exception and strftime_now, and the variables messages, tools,
documents, add_generation_prompt, bos_token, eos_token (tools and documents
None when absent, as transformers passes them). strftime_now reads a fixed
clock that the harness is given too.

Every template of tests/data/chat_templates/corpus/ (real templates, see
MANIFEST.md) must compile, and render each of many generated conversations
byte for byte as Jinja2 does: alternating and free role mixes, system
prompts, empty content, Unicode, whitespace for `trim`, <think> blocks and
reasoning_content, tool definitions, assistant tool calls (arguments as
objects and as JSON text), tool results, null content, list content
(multimodal parts), add_generation_prompt both ways, enable_thinking both
ways. Where Jinja2 raises (raise_exception, or a type error on an input the
template does not handle), we must fail too.

Also checks the engine on a set of hand-written snippets covering the
syntax (operators, filters, tests, methods, whitespace control, loops,
macros, namespace) against Jinja2.

Prints per-template counts; exit 1 on any mismatch, 77 when Jinja2 is
missing.
"""
import datetime
import glob
import json
import os
import random
import subprocess
import sys

try:
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment
except ImportError as e:
    print("SKIP: jinja2 not importable (Debian python3-jinja2):", e)
    sys.exit(77)

harness, root = sys.argv[1], sys.argv[2]
NOW = 1764979200 + 12345  # a fixed clock for strftime_now, given to both sides


class AssistantTracker(jinja2.ext.Extension):
    # transformers' {% generation %} tag; renders its body (we do not track indices)
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.datetime.fromtimestamp(NOW).strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[AssistantTracker, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


ENV = make_env()

PIECES = [
    "Hello", "world", "What is 2+2?", "4", "", " ", "\n", "  padded  ", "\tTabbed\n",
    "你好，世界", "こんにちは", "emoji 😀🎉 👩‍💻", "e\u0301", "Ünïcödé", "\u00a0nbsp\u00a0",
    "\u3000ideographic\u3000", "\u2028line-sep\u2029", "<|im_start|>", "<|im_end|>", "[INST]",
    "<|eot_id|>", "{{ not jinja }}", "{% raw %}", "'quotes' and \"double\"", "back\\slash",
    "code:\n```python\nprint('x')\n```\n", "multi\n\nline\n", "\r\nCRLF\r\n", "x" * 200,
    "<think>", "</think>", "<tool_response>", "</tool_response>", "\u0085next-line", "\x00nul",
]

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Get the weather in a city.",
                                      "parameters": {"type": "object", "properties": {
                                          "city": {"type": "string", "description": "City name, e.g. Hanoi"},
                                          "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                                          "required": ["city"]}}},
    {"type": "function", "function": {"name": "add", "description": "Add two numbers — exactly.",
                                      "parameters": {"type": "object", "properties": {
                                          "a": {"type": "number"}, "b": {"type": "integer", "default": 1}},
                                          "required": ["a"]},
                                      "return": {"type": "number", "description": "The sum"}}},
]


def text(rng, max_pieces=4):
    n = rng.randint(0, max_pieces)
    return "".join(rng.choice(PIECES) + rng.choice(["", " ", "\n"]) for _ in range(n))


def assistant_content(rng):
    k = rng.random()
    if k < 0.2:
        return "<think>\n" + text(rng) + "\n</think>\n\n" + text(rng)
    if k < 0.27:
        return text(rng) + "</think>" + text(rng)
    return text(rng)


def tool_call(rng):
    args = rng.choice([{"city": "Hanoi"}, {"city": "Zürich", "unit": "celsius"}, {"a": 1.5, "b": -2},
                       {"nested": {"list": [1, None, True, "x\n"]}}, {}])
    if rng.random() < 0.3:
        args = json.dumps(args)
    tc = {"type": "function", "function": {"name": rng.choice(["get_weather", "add"]), "arguments": args}}
    if rng.random() < 0.5:
        tc["id"] = "call_%d" % rng.randint(0, 999999999)
    return tc


def conversation(rng):
    """(messages, with_tools)"""
    msgs = []
    kind = rng.random()
    if rng.random() < 0.4:
        msgs.append({"role": "system", "content": text(rng)})
    if kind < 0.55:
        # alternating user / assistant, what most templates accept
        for i in range(rng.randint(1, 6)):
            if i % 2 == 0:
                msgs.append({"role": "user", "content": text(rng) or "hi"})
            else:
                m = {"role": "assistant", "content": assistant_content(rng)}
                if rng.random() < 0.15:
                    m["reasoning_content"] = text(rng)
                msgs.append(m)
        return msgs, rng.random() < 0.2
    if kind < 0.8:
        # a tool-using exchange
        msgs.append({"role": "user", "content": text(rng) or "weather?"})
        for _ in range(rng.randint(1, 2)):
            calls = [tool_call(rng) for _ in range(rng.randint(1, 2))]
            msgs.append({"role": "assistant", "content": rng.choice([None, "", text(rng)]), "tool_calls": calls})
            for c in calls:
                t = {"role": "tool", "content": rng.choice(['{"temp": 21}', text(rng), "42"])}
                if rng.random() < 0.5:
                    t["tool_call_id"] = c.get("id", "call_0")
                if rng.random() < 0.3:
                    t["name"] = c["function"]["name"]
                msgs.append(t)
        msgs.append({"role": "assistant", "content": assistant_content(rng)})
        if rng.random() < 0.4:
            msgs.append({"role": "user", "content": text(rng)})
        return msgs, rng.random() < 0.8
    # anything goes, including content parts and unknown keys
    for _ in range(rng.randint(1, 6)):
        role = rng.choice(["user", "assistant", "system", "tool", "user"])
        m = {"role": role, "content": text(rng)}
        r = rng.random()
        if r < 0.1:
            m["content"] = [{"type": "text", "text": text(rng)}]
        elif r < 0.15:
            m["content"] = None
        msgs.append(m)
    return msgs, rng.random() < 0.3


FUNCTIONS = {"role": "functions", "content": json.dumps([t["function"] for t in TOOLS], indent=4)}


def cases_for(rng, entry, tpl, n):
    out = []
    # templates that want a leading "functions" message (firefunction-v1)
    wants_functions = "'functions'" in tpl or '"functions"' in tpl
    for _ in range(n):
        msgs, with_tools = conversation(rng)
        if wants_functions and rng.random() < 0.7:
            at = 1 if msgs[0]["role"] == "system" else 0
            msgs.insert(at, FUNCTIONS)
        tools = TOOLS
        if "parameter_definitions" in tpl and entry.get("example", {}).get("tools"):
            # Cohere's templates take their own tool shape and always iterate tools
            tools, with_tools = entry["example"]["tools"], True
        v = {"messages": msgs, "tools": tools if with_tools else None, "documents": None,
             "add_generation_prompt": rng.random() < 0.4,
             "bos_token": entry.get("bos_token") or "", "eos_token": entry.get("eos_token") or ""}
        r = rng.random()
        if r < 0.25:
            v["enable_thinking"] = False
        elif r < 0.35:
            v["enable_thinking"] = True
        out.append(v)
    out.append({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
                "tools": None, "documents": None, "add_generation_prompt": False,
                "bos_token": entry.get("bos_token") or "", "eos_token": entry.get("eos_token") or ""})
    if "example" in entry:
        # the variables the template's source renders it with, in transformers' shape
        v = {"tools": None, "documents": None, "add_generation_prompt": False}
        v.update(entry["example"])
        out.append(v)
    return out


def oracle(compiled, v):
    try:
        return compiled.render(**v)
    except jinja2.exceptions.TemplateError as e:
        return e
    except Exception as e:  # TypeError etc.: the template cannot render this input
        return e


def run_harness(requests):
    inp = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in requests)
    p = subprocess.run([harness], input=inp.encode(), capture_output=True, timeout=600)
    if p.returncode != 0:
        print("FAIL: harness exited %d: %s" % (p.returncode, p.stderr.decode(errors="replace")))
        sys.exit(1)
    return [json.loads(line) for line in p.stdout.decode().split("\n") if line]


SNIPPETS = r"""
{% set x = 0 %}{% for i in range(3) %}{{ x }}{% set x = i %}{{x}};{% endfor %}{{ x }}
@@@
{% if true %}{% set y = 5 %}{% endif %}{{ y }}{{ u ~ 'a' }}{{ u|length }}{{ u|trim }}|{{ u == none }}{{ u is none }}
@@@
{{ d.get('a') }}{{ d['x'] }}|{{ d.x }}{{ d['items'] }}{{ d.get('zz', 'dflt') }}
@@@
{{ 1/2 }} {{ 7//2 }} {{ -7//2 }} {{ -7 % 3 }} {{ 2**10 }} {{ 1e16 }} {{ 0.1+0.2 }} {{ 1.0 }} {{ 3 * 'ab' }} {{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 1e-5 }} {{ 123456789.123 }} {{ 1.5e300 * 10 }} {{ 2 ** -1 }}
@@@
{{ [1,'a',none,true,{'k':1.5}] }} {{ (1,) }} {{ 'it\'s' }} {{ ["it's", 'a"b', 'x\ny', 'tab\t', '\u00a0', '\x7f'] }}
@@@
{{ 'abc'[1:] }}{{ 'abc'[::-1] }}{{ [1,2,3][-1] }}{{ u8[1:4] }}{{ u8[-3:] }}{{ u8|length }}{{ u8[::2] }}{{ u8[2] }}{{ [1,2,3,4,5][1:-1:2] }}{{ 'abc'[5:] }}
@@@
{{ 'a' 'b' }}{{ "\u00e9\x41\101\t" }}
@@@
{{ messages|tojson }}|{{ messages|tojson(indent=2) }}|{{ d|tojson(indent=4) }}|{{ {'a': [], 'b': {}}|tojson(indent=2) }}|{{ d|tojson(separators=(',', ':')) }}|{{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }}|{{ 'é"\\\n\x01'|tojson }}
@@@
{{ n|string }} {{ n|int }} {{ '3.7'|int }} {{ 'z'|int }} {{ 3.7|int }} {{ '12'|int + 1 }} {{ ' 5 '|int }} {{ '2.5'|float }} {{ 'x'|float }} {{ n|float }}
@@@
{% macro f(a, b=2) %}[{{a}}{{b}}]{% endmacro %}{{ f(1) }}{{ f(1, b=3) }}{{ f(b=4, a=0) }}{{ f() }}
@@@
a
  {% if true %}
  b
  {% endif %}
{{ 'c' }}
   {# comment #}
d  {%+ if true %}e{% endif %}
  {%- if true -%}  f  {%- endif %}
@@@
{{ none ~ 1 }} {{ true }} {{ none }} {{ false ~ '' }}
@@@
{% for a in [1,2] %}{% for b in [3] %}{{ loop.index }}{{ a }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}{{ loop.revindex0 }}{% endfor %}{% endfor %}
@@@
{%- for m in messages -%}
  {{- m.role | upper }}: {{ m.content | trim }}
{% endfor -%}
@@@
{{ s.split(',') }} {{ s.split(',', 1) }} {{ s.rsplit(',', 1) }} {{ ' a  b '.split() }} {{ ' a  b '.split(none, 1) }} {{ ' a  b '.rsplit(none, 1) }} {{ 'a\nb\r\nc'.splitlines() }}
@@@
{{ '  x  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ 'ab'.startswith('a') }}{{ 'ab'.endswith(('c','b')) }}{{ 'hello world'.title() }}{{ 'hELLo'.capitalize() }}{{ 'abcabc'.find('c') }}{{ 'abcabc'.count('bc') }}{{ '-'.join(['a','b']) }}{{ 'aXbX'.replace('X', '') }}{{ u8.upper() }}{{ ' \t'.isspace() }}{{ '12'.isdigit() }}
@@@
{% set ns = namespace(found=false, k=0) %}{% for m in messages %}{% if m.role == 'user' %}{% set ns.found = true %}{% set ns.k = ns.k + 1 %}{% endif %}{% endfor %}{{ ns.found }}{{ ns.k }}
@@@
{{ messages | selectattr('role', 'equalto', 'user') | list | length }}{{ messages | map(attribute='role') | join(', ') }}{{ messages|rejectattr('role','eq','user')|first }}{{ messages|selectattr('content')|list|length }}{{ [0,1,2,'']|select|list }}{{ [1,2,3]|reject('odd')|list }}{{ messages|map(attribute='nope', default='-')|list }}{{ ['a','b']|map('upper')|list }}
@@@
{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k, v in d|items %}{{ k }}{% endfor %}{{ d.keys()|list }}{{ d.values()|list }}{% for k in d %}{{ k }}{% endfor %}
@@@
{{ strftime_now('%d %b %Y') }} {{ strftime_now('%Y-%m-%d %H:%M') }} {{ strftime_now('%A %B') }}
@@@
{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}{{ range(2, 9, 3)|list }}{{ range(5, 0, -2)|list }}
@@@
{% for m in messages if m.role == 'assistant' %}{{ loop.index }}{{ m.content }}{% else %}none{% endfor %}{% for x in [] %}{% else %}empty{% endfor %}
@@@
{{ 'x' if n > 5 else 'y' }}{{ 'z' if n < 5 }}|{{ n is divisibleby 7 }}{{ n is odd }}{{ n is even }}{{ f is float }}{{ s is string }}{{ d is mapping }}{{ u is not defined }}{{ n is number }}{{ n is integer }}{{ none is none }}{{ [] is iterable }}{{ 'a' is lower }}{{ 'A' is upper }}{{ n is eq 7 }}{{ n is gt 3 }}{{ 'a' is in 'abc' }}{{ true is boolean }}{{ f is sameas f }}
@@@
{{ [3,1,2]|sort }}{{ ['b','A','a']|sort }}{{ ['b','A','a']|sort(case_sensitive=true) }}{{ [1,2,2,3]|unique|list }}{{ [1,2]|reverse|list }}{{ 'abc'|reverse }}{{ [1,5,3]|max }}{{ [1,2,3]|sum }}{{ [4,2]|min }}{{ messages|sort(attribute='role')|map(attribute='role')|list }}{{ [3,1]|sort(reverse=true) }}{{ {'b':1,'a':2}|dictsort }}
@@@
{% set x %}inner {{ n }}{% endset %}[{{ x }}]
@@@
{{ "line1\nline2\n\nline3" | indent(2) }}|{{ "a\nb" | indent(4, true) }}|{{ "a\n\nb" | indent(2, blank=true) }}|{{ "a\nb"|indent('> ') }}
@@@
{#- comment -#}
   {%- if true %}  yes   {% endif -%}  
  end
@@@
{{ 'a' in 'cat' }}{{ 'x' not in ['a'] }}{{ 'a' in d }}{{ 1 < 2 < 3 }}{{ 2 == 2.0 }}{{ (1, 2) == (1, 2) }}{{ [1] == [1] }}{{ 'b' > 'a' }}{{ not none }}{{ 0 or 'x' }}{{ 1 and 'y' }}{{ '' and 1 }}
@@@
{{ -n|abs }} {{ n - -1 }} {{ f|round }} {{ 2.675|round(2) }} {{ 2.5|round }} {{ 3.14159|round(3, 'floor') }} {{ 'A,b'.lower().replace(',', ';') }} {{ 'one two  three'|wordcount }}
@@@
{{ messages[0]['content'] + '|' + messages[-1].content | trim }}{{ messages[5] is defined }}{{ messages|first }}{{ (messages|last).role }}
@@@
{% raw %}{{ literal }} {% if %}{% endraw %}after
@@@
{{ 'abc'|capitalize }}{{ 'ABC'|lower }}{{ 'x y'|title }}{{ [1,'2']|join }}{{ ['a', 'b']|join('-') }}{{ messages|length }}{{ 'ab'|list }}{{ d|length }}{{ 'é'|count }}{{ u|default('dflt') }}{{ ''|default('e', true) }}{{ none|default('nd') }}{{ 42|string|length }}{{ 'x'|safe }}
@@@
{% generation %}gen {{ n }}{% endgeneration %}
@@@
{%- set seq = [1, 2, 3] -%}{%- set a, b = [seq[0], seq[-1]] -%}{{ a }}{{ b }}{% for x, y in [(1, 2), [3, 4]] %}{{ x + y }}{% endfor %}
"""


def snippet_check():
    snippets = [s.strip("\n") for s in SNIPPETS.split("\n@@@\n") if s.strip()]
    v = {"messages": [{"role": "user", "content": " Hi ü "}, {"role": "assistant", "content": " yo \n"}],
         "d": {"a": 1, "items": [1, 2]}, "s": "a,b,,c", "n": 7, "f": 2.5, "u8": "héllo wörld"}
    res = run_harness([{"template": s, "now": NOW, "cases": [v]} for s in snippets])
    bad = 0
    for s, r in zip(snippets, res):
        try:
            want = ENV.from_string(s).render(**v)
        except Exception as e:
            want = e
        got = r["outputs"][0] if "outputs" in r else r
        if isinstance(want, Exception):
            if not isinstance(got, dict):
                bad += 1
                print("FAIL snippet: Jinja2 raised %r, we rendered %r\n  %r" % (want, got, s))
        elif got != want:
            bad += 1
            print("FAIL snippet %r\n  jinja2 %r\n  ours   %r" % (s, want, got))
    print("snippets: %d compared with Jinja2, mismatches %d" % (len(snippets), bad))
    return bad


def main():
    cdir = os.path.join(root, "tests", "data", "chat_templates", "corpus")
    index = json.load(open(os.path.join(cdir, "index.json"), encoding="utf-8"))
    if len(index) < 30:
        print("FAIL: only %d templates in the corpus" % len(index))
        return 1
    rng = random.Random(20261206)
    requests, meta = [], []
    for e in index:
        tpl = open(os.path.join(cdir, e["file"]), encoding="utf-8", newline="").read()
        cases = cases_for(rng, e, tpl, 150)
        requests.append({"template": tpl, "now": NOW, "cases": cases})
        meta.append((e, tpl))
    results = run_harness(requests)
    total = rendered = raised = mismatches = 0
    first = None
    for (e, tpl), req, res in zip(meta, requests, results):
        if "error" in res:
            mismatches += 1
            print("FAIL: %s does not compile: %s" % (e["file"], res["message"]))
            continue
        compiled = ENV.from_string(tpl)
        ok = err = bad = 0
        for v, got in zip(req["cases"], res["outputs"]):
            want = oracle(compiled, v)
            total += 1
            if isinstance(want, Exception):
                if isinstance(got, dict):
                    err += 1
                else:
                    bad += 1
                    first = first or (e["file"], v, "raises %r" % want, got)
            elif got == want:
                ok += 1
            else:
                bad += 1
                first = first or (e["file"], v, want, got)
        rendered += ok
        raised += err
        mismatches += bad
        print("  %-55s nodes %5d  equal %3d  both-raise %3d  mismatches %d" % (e["file"], res["nodes"], ok, err, bad))
        if ok == 0:
            mismatches += 1
            print("FAIL: %s: no conversation rendered" % e["file"])
    mismatches += snippet_check()
    print("jinja templates: %d templates, %d conversations: %d rendered byte-equal to Jinja2, %d refused by both, "
          "mismatches %d" % (len(index), total, rendered, raised, mismatches))
    if first:
        f, v, want, got = first
        print("first mismatch in %s:\n vars=%s\n jinja2=%r\n ours  =%r" % (f, json.dumps(v, ensure_ascii=False)[:3000], want, got))
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
