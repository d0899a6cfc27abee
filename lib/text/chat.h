/*
 * text/chat.h — render `messages` ([{role, content, ...}]) exactly as a
 * model's Hugging Face chat template does (transformers'
 * apply_chat_template, tokenize=False).
 *
 * The template comes from tokenizer_config.json (`chat_template`: a string,
 * or a list of {name, template} of which "default" is used) or from
 * chat_template.jinja; bos_token / eos_token from tokenizer_config.json.
 *
 * ANY template is accepted that text/jinja (a sandboxed Jinja2 subset, see
 * jinja.h) compiles: it is rendered by that engine with the variables
 * transformers gives (messages, tools = documents = None,
 * add_generation_prompt, bos_token, eos_token), byte for byte as Jinja2
 * (tests/parity/test_jinja_templates.py, on the real templates of
 * tests/data/chat_templates/corpus/). A template using a construct the
 * engine lacks is refused at load with RWD_E_UNSUPPORTED naming it and its
 * line; a template the conversation does not suit (raise_exception, a type
 * error) fails that render with RWD_E_INVALID and the template's message.
 * The engine path takes any message objects with a string role (content
 * may be null or a list of parts; tool_calls, reasoning_content and other
 * keys are the template's to read).
 *
 * Every template goes through the engine: there is no list of known
 * templates and no hand-written renderer (the Qwen2/2.5/3 and Llama-3/3.1/3.2
 * templates that once had one are in tests/data/chat_templates/ and
 * tests/parity/test_chat_templates.py renders them through the engine
 * against Jinja2). Rendering costs 6-15 us per 4-message conversation on
 * those templates (measured against 1.3-3.3 us for the removed hand code),
 * far below the tokenizer and the forward pass. Like Jinja2, the engine
 * renders whatever roles the template handles and drops the messages it
 * skips (Qwen2.5's template ignores a role it does not know), as
 * transformers would.
 *
 * The rendered text contains the special tokens as text: encode it with
 * rwd_tokenizer_encode() and add_special_tokens = 0 (the template already
 * wrote bos where the model wants one), as apply_chat_template does.
 *
 * A template is immutable once loaded: rendering is thread-safe; the
 * result and the engine's values are allocated in the caller's arena.
 */
#ifndef RWD_TEXT_CHAT_H
#define RWD_TEXT_CHAT_H

#include "core/arena.h"
#include "core/error.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef struct rwd_chat_template rwd_chat_template;

typedef struct rwd_chat_message {
	const char *role;
	size_t role_len;
	const char *content;
	size_t content_len;
	const char *reasoning;   /* `reasoning_content`, NULL when absent */
	size_t reasoning_len;
} rwd_chat_message;

typedef struct rwd_chat_params {
	int add_generation_prompt; /* default 0 */
	size_t max_messages;       /* default 4096 */
	size_t max_bytes;          /* rendered text, default 64 MiB */
	/* strftime_now's clock (e.g. Llama-3.2's "Today Date"); 0 = time(NULL) */
	time_t now;
} rwd_chat_params;

rwd_chat_params rwd_chat_default_params(void);

/*
 * Compile `template_text` (NUL-terminated, at most 1 MiB) with text/jinja.
 * bos_token and eos_token may be NULL (the tokenizer has none: the template
 * sees them undefined). On failure *out is NULL and err says why, with the
 * template line and column: RWD_E_FORMAT (syntax error), RWD_E_UNSUPPORTED
 * (a Jinja construct the engine lacks), RWD_E_INVALID (empty template),
 * RWD_E_LIMIT, RWD_E_NOMEM.
 */
int rwd_chat_template_create(const char *template_text, const char *bos_token, const char *eos_token,
	rwd_chat_template **out, rwd_error *err) RWD_WARN_UNUSED;

/* From a tokenizer_config.json file (RWD_E_NOTFOUND without chat_template). */
int rwd_chat_template_load_config(const char *path, rwd_chat_template **out,
	rwd_error *err) RWD_WARN_UNUSED;

/*
 * From a model folder: tokenizer_config.json's chat_template, else
 * chat_template.jinja (bos_token still from tokenizer_config.json when that
 * file exists). RWD_E_NOTFOUND when neither has a template. Errors name the
 * file and `chat_template`.
 */
int rwd_chat_template_load_dir(const char *dir, rwd_chat_template **out,
	rwd_error *err) RWD_WARN_UNUSED;

/* Free a template. Accepts NULL. */
void rwd_chat_template_free(rwd_chat_template *t);

/*
 * THE CALL FOR REQUEST HANDLERS: check a JSON `messages` array (an array of
 * objects, each with a string `role`; content may be a string, null or a
 * list of parts, and tool_calls, reasoning_content and any other keys are
 * the template's to read) and render it with the variables transformers'
 * apply_chat_template gives (messages, tools = documents = None,
 * add_generation_prompt, bos_token, eos_token). *out (NUL-terminated,
 * *out_len bytes) is in `arena`. p may be NULL (defaults). Errors name the
 * field in err->object, e.g. "messages[2].role": RWD_E_INVALID (not an
 * array, empty, not objects, a role that is not a string; also when the
 * template refuses the conversation: err->msg gives the template line and
 * its message), RWD_E_LIMIT (more than max_messages, text over max_bytes,
 * an engine budget), RWD_E_NOMEM.
 */
int rwd_chat_render_json(const rwd_chat_template *t, const json_t *messages,
	const rwd_chat_params *p, rwd_arena *arena, char **out, size_t *out_len,
	rwd_error *err) RWD_WARN_UNUSED;

/* The same from n message structs (role, content, optional reasoning_content). */
int rwd_chat_render(const rwd_chat_template *t, const rwd_chat_message *msgs, size_t n,
	const rwd_chat_params *p, rwd_arena *arena, char **out, size_t *out_len,
	rwd_error *err) RWD_WARN_UNUSED;

#endif
