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
 * Fast path: a few templates are RECOGNISED rather than interpreted. The
 * text is reduced to a canonical form that keeps what changes the output —
 * template text left after Jinja's whitespace control as transformers
 * configures it (trim_blocks, lstrip_blocks, `-` markers), the tokens inside
 * every tag, the decoded value of every string literal — and drops what
 * does not (indentation and spaces inside tags, comments, quote style,
 * `x['k']` versus `x.k`). A ChatML default system prompt is replaced by a
 * placeholder first, so the same template with another default prompt is
 * the same template. When the canonical form's 64-bit hash is one of the
 * real templates below, rendering is done by hand code (same output as the
 * engine, no interpretation cost); any other template goes to the engine
 * (format RWD_CHAT_JINJA):
 *
 *   RWD_CHAT_QWEN2   Qwen2-Instruct (and any template of exactly its
 *                    structure with another default prompt, e.g. SmolLM2's):
 *                    the default system prompt when the first message is
 *                    not `system`, then
 *                    `<|im_start|>{role}\n{content}<|im_end|>\n` per message.
 *                    (Qwen1.5-Chat's template, which leaves the last turn
 *                    open, is a different template and is refused.)
 *   RWD_CHAT_QWEN25  Qwen2.5 Instruct and base: the same, `tool` messages
 *                    grouped into one user turn of <tool_response> blocks.
 *   RWD_CHAT_QWEN3   Qwen3 (first release, used by Skywork-Reward-V2-Qwen3,
 *                    and the later revision): no default system prompt;
 *                    assistant turns after the last real user query carry
 *                    `<think>\n{reasoning}\n</think>\n\n` when they are the
 *                    last message or have reasoning (`reasoning_content`, or
 *                    the text inside <think>...</think> of the content,
 *                    which is then cut from the answer); earlier assistant
 *                    turns lose their reasoning. A scored [user, assistant]
 *                    pair therefore ends
 *                    `<|im_start|>assistant\n<think>\n\n</think>\n\n{answer}<|im_end|>\n`.
 *   RWD_CHAT_LLAMA3  Meta-Llama-3-Instruct (3.0; also the Skywork-Reward
 *                    Llama-3.1 models): bos_token, then per message
 *                    `<|start_header_id|>{role}<|end_header_id|>\n\n{content|trim}<|eot_id|>`.
 *   RWD_CHAT_LLAMA31 Llama-3.1-Instruct: bos_token, a system turn that always
 *                    exists: "Cutting Knowledge Date: December 2023\nToday
 *                    Date: 26 Jul 2024\n\n" + the first message's content
 *                    when it is `system` (trimmed), then the messages as 3.0.
 *   RWD_CHAT_LLAMA32 Llama-3.2-Instruct (text models): as 3.1 but the date is
 *                    today's (local time, "%d %b %Y" in English, as
 *                    transformers' strftime_now), or params.date_string.
 * The fast path does not take `tool_calls`, null or list content, nor
 * `tool`/`ipython` messages with the Llama-3.1/3.2 templates: such
 * conversations are rendered by the engine (compiled from the same text).
 * Its roles must be "system", "user", "assistant" or "tool" (others are
 * RWD_E_INVALID: the Qwen2.5/Qwen3 templates would silently drop them).
 * add_generation_prompt appends the template's assistant header
 * (`<|im_start|>assistant\n`, `<|start_header_id|>assistant<|end_header_id|>\n\n`);
 * scoring a finished conversation does not use it.
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

typedef enum rwd_chat_format {
	RWD_CHAT_QWEN2 = 1,
	RWD_CHAT_QWEN25,
	RWD_CHAT_QWEN3,
	RWD_CHAT_LLAMA3,
	RWD_CHAT_LLAMA31,
	RWD_CHAT_LLAMA32,
	RWD_CHAT_JINJA, /* any other template, rendered by text/jinja */
} rwd_chat_format;

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
	/* Llama-3.2's "Today Date" (e.g. "26 Nov 2026"); NULL = today. */
	const char *date_string;
} rwd_chat_params;

rwd_chat_params rwd_chat_default_params(void);

/*
 * Load `template_text` (NUL-terminated, at most 1 MiB): a known template's
 * fast path, else compiled by text/jinja. bos_token and eos_token may be
 * NULL (the tokenizer has none: the template sees them undefined); the
 * Llama fast paths need bos_token (without one the engine renders the
 * template). On failure *out is NULL and err says why, with the template
 * line and column: RWD_E_FORMAT (syntax error), RWD_E_UNSUPPORTED (a Jinja
 * construct the engine lacks), RWD_E_INVALID (empty template), RWD_E_LIMIT.
 */
int rwd_chat_template_create(const char *template_text, const char *bos_token, const char *eos_token,
	rwd_chat_template **out, rwd_error *err) RWD_WARN_UNUSED;

/* rwd_chat_template_create() without an eos_token. */
int rwd_chat_template_recognize(const char *template_text, const char *bos_token,
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

rwd_chat_format rwd_chat_template_format(const rwd_chat_template *t);

/* "qwen2", "qwen2.5", "qwen3", "llama3", "llama3.1", "llama3.2", "jinja". */
const char *rwd_chat_format_name(rwd_chat_format f);

/* The default system prompt of a Qwen2/Qwen2.5 template, or NULL. */
const char *rwd_chat_template_default_system(const rwd_chat_template *t);

/*
 * 64-bit hash of the canonical form of a template text (what recognition
 * compares); for tools and tests. RWD_E_FORMAT / RWD_E_LIMIT as recognize.
 */
int rwd_chat_template_hash(const char *template_text, uint64_t *hash, rwd_error *err) RWD_WARN_UNUSED;

/*
 * THE CALL FOR REQUEST HANDLERS: validate a JSON `messages` array
 * ([{"role": str, "content": str, "reasoning_content"?: str|null}] on the
 * fast path; objects with a string role for the engine) and render it. *out (NUL-terminated, *out_len bytes) is in `arena`. p may be
 * NULL (defaults). Errors name the field in err->object, e.g.
 * "messages[2].content": RWD_E_INVALID (not an array, empty, wrong types,
 * unknown role), RWD_E_LIMIT (more than max_messages, text over max_bytes),
 * RWD_E_UNSUPPORTED (fast path: tool_calls, or a role the template cannot
 * render), RWD_E_INVALID also when the engine's template refuses the
 * conversation (err->msg gives the template line and its message),
 * RWD_E_NOMEM.
 */
int rwd_chat_render_json(const rwd_chat_template *t, const json_t *messages,
	const rwd_chat_params *p, rwd_arena *arena, char **out, size_t *out_len,
	rwd_error *err) RWD_WARN_UNUSED;

/* The same from messages already validated by rwd_chat_messages_from_json(). */
int rwd_chat_render(const rwd_chat_template *t, const rwd_chat_message *msgs, size_t n,
	const rwd_chat_params *p, rwd_arena *arena, char **out, size_t *out_len,
	rwd_error *err) RWD_WARN_UNUSED;

/*
 * Validate a JSON `messages` array into n messages in `arena` (strings are
 * borrowed from `messages`, which must outlive them). Errors as
 * rwd_chat_render_json().
 */
int rwd_chat_messages_from_json(const json_t *messages, size_t max_messages, rwd_arena *arena,
	rwd_chat_message **out, size_t *n, rwd_error *err) RWD_WARN_UNUSED;

#endif
