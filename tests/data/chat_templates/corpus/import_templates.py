#!/usr/bin/python3
"""Rebuild tests/data/chat_templates/corpus/ from public repositories.

    import_templates.py HFJS_GIT_DIR GUIDANCE_GIT_DIR

Reads, at the pinned commits below, the real chat templates that
huggingface/huggingface.js tests its Jinja port with
(packages/jinja/test/e2e.test.js, TEST_CUSTOM_TEMPLATES: each keyed by the
Hub repository it was copied from) and those guidance-ai/guidance keeps in
guidance/chat.py (each with a comment naming the Hub file). Writes one
<slug>.jinja per distinct template, index.json (file, model, source,
bos/eos tokens the source renders it with) and MANIFEST.md. Needs git and
node (the e2e file is JavaScript: its template literals are evaluated by
node, so the strings are exactly what the tests render).
"""
import ast
import json
import os
import re
import subprocess
import sys

HFJS = ("huggingface/huggingface.js", "fe42e68017ffc76d09922ea8f9b38a6964345710", "packages/jinja/test/e2e.test.js")
GUIDANCE = ("guidance-ai/guidance", "5413339aad8d36ce49df29902a7730d025bd6027", "guidance/chat.py")
HERE = os.path.dirname(os.path.abspath(__file__))

EXTRACT_JS = r"""
const fs = require('fs');
const src = fs.readFileSync(0, 'utf8').split('\n');
const start = src.findIndex((l) => l.startsWith('const TEST_CUSTOM_TEMPLATES'));
let end = start;
while (!src[end].startsWith('});')) end++;
const pre = src.slice(0, start).filter((l) => !l.startsWith('import '));
const f = new Function(pre.join('\n') + '\n' + src.slice(start, end + 1).join('\n') + '\nreturn TEST_CUSTOM_TEMPLATES;');
const out = {};
for (const [k, v] of Object.entries(f())) out[k] = { chat_template: v.chat_template, data: v.data || {} };
process.stdout.write(JSON.stringify(out));
"""


def git_show(gitdir, commit, path):
    return subprocess.run(["git", "--git-dir", gitdir, "show", "%s:%s" % (commit, path)], check=True,
                          capture_output=True).stdout.decode("utf-8")


def slug(s):
    s = re.sub(r"\(.*?\)", "", s).strip()
    return re.sub(r"[^A-Za-z0-9.]+", "-", s).strip("-").lower()


def main():
    hfjs_dir, guidance_dir = sys.argv[1], sys.argv[2]
    entries, seen = [], {}

    def add(name, model, source, tpl, bos, eos, example=None):
        if tpl in seen:
            seen[tpl]["also"].append(source)
            return
        fn = slug(name) + ".jinja"
        while any(e["file"] == fn for e in entries):
            fn = fn[:-6] + "-2.jinja"
        e = {"file": fn, "model": model, "source": source, "bos_token": bos, "eos_token": eos, "also": []}
        if example is not None:
            e["example"] = example  # the variables the source renders it with
        entries.append(e)
        seen[tpl] = e
        with open(os.path.join(HERE, fn), "w", encoding="utf-8", newline="") as f:
            f.write(tpl)

    js = git_show(hfjs_dir, HFJS[1], HFJS[2])
    p = subprocess.run(["node", "-e", EXTRACT_JS], input=js.encode(), capture_output=True, check=True)
    for key, v in json.loads(p.stdout).items():
        d = v["data"]
        src = '%s@%s:%s (TEST_CUSTOM_TEMPLATES["%s"])' % (HFJS[0], HFJS[1], HFJS[2], key)
        add(key, key.split(" (")[0], src, v["chat_template"], d.get("bos_token"), d.get("eos_token"), d)

    py = git_show(guidance_dir, GUIDANCE[1], GUIDANCE[2])
    lines = py.split("\n")
    for node in ast.parse(py).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            continue
        name = node.targets[0].id
        if not name.endswith("_template") or not isinstance(node.value, ast.Constant) or not isinstance(node.value.value, str):
            continue
        # the comment line(s) above name the Hub file
        k = node.lineno - 2
        cite = ""
        while k >= 0 and lines[k].startswith("#"):
            m = re.search(r"https://huggingface\.co/\S+", lines[k])
            if m and not cite:
                cite = m.group(0)
            k -= 1
        model = re.sub(r"https://huggingface\.co/", "", cite).split("/blob/")[0] if cite else name
        tpl = node.value.value
        bos = "<|begin_of_text|>" if "llama3" in name else "<s>" if ("llama2" in name or "mistral" in name or "phi" in name) else "<bos>" if "gemma" in name else None
        eos = "</s>" if ("llama2" in name or "mistral" in name) else "<|endoftext|>" if "phi" in name else None
        src = "%s@%s:%s (%s%s)" % (GUIDANCE[0], GUIDANCE[1], GUIDANCE[2], name, ", citing " + cite if cite else "")
        add("guidance-" + name[:-9], model, src, tpl, bos, eos)

    with open(os.path.join(HERE, "index.json"), "w", encoding="utf-8") as f:
        json.dump(entries, f, ensure_ascii=False, indent=1)
        f.write("\n")
    with open(os.path.join(HERE, "MANIFEST.md"), "w", encoding="utf-8") as f:
        f.write("# Real chat templates (test data)\n\n"
                "Each file is a `chat_template` as published for the model, copied programmatically from the\n"
                "cited public file (repo@commit:path) by import_templates.py. index.json carries the same list\n"
                "with the bos/eos tokens the tests render with and, for huggingface.js' entries, the\nvariables that test renders the template with (`example`). They are test data only.\n\n"
                "| file | model | source |\n|---|---|---|\n")
        for e in entries:
            also = "".join("; also " + a for a in e["also"])
            f.write("| %s | %s | %s%s |\n" % (e["file"], e["model"], e["source"], also))
    print("%d templates" % len(entries))


if __name__ == "__main__":
    main()
