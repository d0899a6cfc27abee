/*
 * text/jinja.h — a sandboxed subset of Jinja2, enough to render real Hugging
 * Face chat templates byte for byte as transformers does.
 *
 * transformers (src/transformers/utils/chat_template_utils.py) compiles a
 * chat template with
 *   ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
 *       extensions=[AssistantTracker, jinja2.ext.loopcontrols])
 * plus the filter tojson = json.dumps(x, ensure_ascii=False, indent=None,
 * separators=None, sort_keys=False) and the globals raise_exception(msg) and
 * strftime_now(fmt) = datetime.now().strftime(fmt), and renders it with
 * messages, tools, documents, add_generation_prompt and the special tokens
 * (bos_token, eos_token, ...) as variables. This module does the same:
 *
 *   Lexing: `{{ }}`, `{% %}`, `{# #}`, `{% raw %}`; `-` and `+` whitespace
 *   control; trim_blocks (one newline after a block or comment tag) and
 *   lstrip_blocks (blanks before a block or comment tag that starts a
 *   line); keep_trailing_newline off; \r\n and \r read as \n.
 *   Statements: if/elif/else, for (tuple targets, `if` filter, else,
 *   loop.index/index0/revindex/revindex0/first/last/length/previtem/
 *   nextitem/cycle), break/continue, set (name, tuple, ns.attr, block set),
 *   macro (positional and keyword arguments, defaults), generation (the
 *   AssistantTracker tag; renders its body).
 *   Expressions: literals (str with Python escapes, int, float, list,
 *   tuple, dict, true/false/none), attribute and subscript access, slices,
 *   calls with keyword arguments, `a if c else b`, and/or/not, comparisons
 *   and `in`/`not in`, + - * / // % ** ~ unary -, filters and `is` tests.
 *   Values follow Python: str() and repr() of None/True/floats/lists/dicts,
 *   code-point indexing and len() of strings, Jinja's Undefined (prints
 *   empty, iterates empty, fails when used otherwise).
 *   Builtins: range, dict, namespace, raise_exception, strftime_now;
 *   str methods (strip/lstrip/rstrip, split/rsplit, startswith/endswith,
 *   replace, upper/lower/title/capitalize, find, count, join, splitlines,
 *   isdigit/isspace/isalpha/isalnum/islower/isupper), dict methods (items, keys,
 *   values, get). The filters and tests are listed in jinja.c (FILTERS,
 *   TESTS). Anything else — an unknown tag, filter or test, include/import/
 *   extends, recursive loops — is refused at compile time with
 *   RWD_E_UNSUPPORTED naming the construct, line and column; an unknown
 *   method or a Python TypeError found while rendering fails the render.
 *
 * Sandbox: templates come from model folders and are untrusted. There is no
 * access to anything but the values given; nothing mutates except namespace
 * attributes; every resource is bounded (rwd_jinja_limits): template bytes,
 * AST nodes, nesting depth (parse and calls), loop iterations, evaluation
 * steps, bytes of intermediate values, output bytes.
 *
 * A compiled template is immutable: rendering is thread-safe.
 */
#ifndef RWD_TEXT_JINJA_H
#define RWD_TEXT_JINJA_H

#include "core/arena.h"
#include "core/error.h"

#include <jansson.h>
#include <stddef.h>
#include <time.h>

typedef struct rwd_jinja rwd_jinja;

typedef struct rwd_jinja_limits {
	size_t max_template_bytes; /* default 1 MiB */
	size_t max_nodes;          /* AST nodes, default 200000 */
	size_t max_depth;          /* expression / block nesting and macro calls, default 100 */
	size_t max_iterations;     /* loop iterations and macro calls per render, default 1000000 */
	size_t max_steps;          /* evaluation steps per render, default 20000000 */
	size_t max_work_bytes;     /* bytes of intermediate strings and lists per render, default 256 MiB */
	size_t max_output_bytes;   /* rendered text, default 64 MiB */
} rwd_jinja_limits;

rwd_jinja_limits rwd_jinja_default_limits(void);

/*
 * Compile `len` bytes of template source (UTF-8; need not be NUL-terminated).
 * lim may be NULL (defaults); it is copied. On failure *out is NULL and err
 * says why with the line and column (rwd_error_at): RWD_E_FORMAT (syntax
 * error, invalid UTF-8), RWD_E_UNSUPPORTED (a Jinja construct this subset
 * does not have), RWD_E_LIMIT, RWD_E_NOMEM.
 */
int rwd_jinja_compile(const char *src, size_t len, const rwd_jinja_limits *lim, rwd_jinja **out,
	rwd_error *err) RWD_WARN_UNUSED;

/* Free a compiled template. Accepts NULL. */
void rwd_jinja_free(rwd_jinja *t);

typedef struct rwd_jinja_render_opts {
	time_t now;              /* strftime_now's clock (local time); 0 = time(NULL) */
	size_t max_output_bytes; /* 0 = the template's limit */
} rwd_jinja_render_opts;

/*
 * Render with the variables of the JSON object `vars` (JSON null is None;
 * objects keep their key order). `vars` must outlive the call only. opts may
 * be NULL. *out (NUL-terminated, *out_len bytes) is allocated in `arena`,
 * as are all intermediate values. Errors carry the template line and
 * column: RWD_E_INVALID (raise_exception — the message is the template's —,
 * an undefined value used, a type error), RWD_E_UNSUPPORTED (a method or
 * argument this subset lacks), RWD_E_LIMIT, RWD_E_NOMEM.
 */
int rwd_jinja_render(const rwd_jinja *t, const json_t *vars, const rwd_jinja_render_opts *opts,
	rwd_arena *arena, char **out, size_t *out_len, rwd_error *err) RWD_WARN_UNUSED;

/* Nodes in the compiled template (for tests). */
size_t rwd_jinja_node_count(const rwd_jinja *t);

#endif
