/*
 * text/chat.c — chat templates: found in a model folder, compiled by
 * text/jinja, rendered with the variables transformers gives; see chat.h.
 */
#include "text/chat.h"
#include "text/jinja.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CONFIG_MAX_BYTES (8u << 20)
#define TEMPLATE_MAX_BYTES (1u << 20)
#define TEXT_MAX 4096 /* bos / eos token */

struct rwd_chat_template {
	char *bos;         /* NULL when the tokenizer has none */
	char *eos;         /* NULL when the tokenizer has none */
	rwd_jinja *engine;
};

void rwd_chat_template_free(rwd_chat_template *t)
{
	if (!t)
		return;
	free(t->bos);
	free(t->eos);
	rwd_jinja_free(t->engine);
	free(t);
}

int rwd_chat_template_create(const char *tpl, const char *bos_token, const char *eos_token,
	rwd_chat_template **out, rwd_error *err)
{
	rwd_chat_template *t = NULL;
	rwd_jinja *j = NULL;
	*out = NULL;
	if (!tpl)
		return rwd_errorf(err, RWD_E_INVALID, "no chat template");
	size_t n = strlen(tpl), i = 0;
	while (i < n && (tpl[i] == ' ' || tpl[i] == '\t' || tpl[i] == '\n' || tpl[i] == '\r'))
		i++;
	if (i == n)
		return rwd_errorf(err, RWD_E_INVALID, "chat template is empty");
	if (n > TEMPLATE_MAX_BYTES)
		return rwd_errorf(err, RWD_E_LIMIT, "chat template larger than %u bytes", TEMPLATE_MAX_BYTES);
	if ((bos_token && strlen(bos_token) > TEXT_MAX) || (eos_token && strlen(eos_token) > TEXT_MAX))
		return rwd_errorf(err, RWD_E_LIMIT, "bos_token or eos_token longer than %u bytes", TEXT_MAX);
	int rc = rwd_jinja_compile(tpl, n, NULL, &j, err);
	if (rc)
		return rc;
	if (!(t = calloc(1, sizeof(*t))) || (bos_token && !(t->bos = strdup(bos_token))) ||
	    (eos_token && !(t->eos = strdup(eos_token)))) {
		rwd_jinja_free(j);
		rwd_chat_template_free(t);
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	}
	t->engine = j;
	*out = t;
	return 0;
}

static int load_json_file(const char *path, json_t **out, rwd_error *err)
{
	struct stat st;
	*out = NULL;
	if (stat(path, &st) != 0) {
		int code = errno == ENOENT ? RWD_E_NOTFOUND : RWD_E_IO;
		rwd_errorf(err, code, "cannot open: %s", strerror(errno));
		rwd_error_where(err, path, NULL);
		return code;
	}
	if ((uint64_t)st.st_size > CONFIG_MAX_BYTES) {
		rwd_errorf(err, RWD_E_LIMIT, "file larger than %u bytes", CONFIG_MAX_BYTES);
		rwd_error_where(err, path, NULL);
		return RWD_E_LIMIT;
	}
	json_error_t je;
	*out = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!*out) {
		rwd_errorf(err, RWD_E_FORMAT, "invalid JSON: %s", je.text);
		rwd_error_where(err, path, NULL);
		rwd_error_at(err, je.line, je.column, je.position);
		return RWD_E_FORMAT;
	}
	return 0;
}

/* bos_token / eos_token: "..." or {"content": "..."} (the AddedToken form) or null. */
static const char *config_token(json_t *cfg, const char *key)
{
	json_t *b = json_object_get(cfg, key);
	if (json_is_object(b))
		b = json_object_get(b, "content");
	return json_is_string(b) ? json_string_value(b) : NULL;
}

static int template_in(const char *path, json_t *cfg, const char *tpl_override,
	rwd_chat_template **out, rwd_error *err)
{
	const char *tpl = tpl_override;
	if (!tpl) {
		json_t *ct = json_object_get(cfg, "chat_template");
		if (json_is_array(ct)) {
			json_t *it, *found = NULL;
			size_t i;
			json_array_foreach(ct, i, it) {
				json_t *name = json_object_get(it, "name");
				if (json_is_string(name) && strcmp(json_string_value(name), "default") == 0)
					found = json_object_get(it, "template");
			}
			ct = found;
		}
		if (!json_is_string(ct)) {
			rwd_errorf(err, RWD_E_NOTFOUND, "no chat_template (a string, or a list with a \"default\" entry)");
			rwd_error_where(err, path, "chat_template");
			return RWD_E_NOTFOUND;
		}
		if (strlen(json_string_value(ct)) != json_string_length(ct)) {
			rwd_errorf(err, RWD_E_INVALID, "chat_template contains a NUL character");
			rwd_error_where(err, path, "chat_template");
			return RWD_E_INVALID;
		}
		tpl = json_string_value(ct);
	}
	int rc = rwd_chat_template_create(tpl, cfg ? config_token(cfg, "bos_token") : NULL,
		cfg ? config_token(cfg, "eos_token") : NULL, out, err);
	if (rc)
		rwd_error_where(err, path, "chat_template");
	return rc;
}

int rwd_chat_template_load_config(const char *path, rwd_chat_template **out, rwd_error *err)
{
	json_t *cfg;
	*out = NULL;
	int rc = load_json_file(path, &cfg, err);
	if (rc)
		return rc;
	rc = template_in(path, cfg, NULL, out, err);
	json_decref(cfg);
	return rc;
}

int rwd_chat_template_load_dir(const char *dir, rwd_chat_template **out, rwd_error *err)
{
	char cpath[4096], jpath[4096];
	json_t *cfg = NULL;
	*out = NULL;
	if ((size_t)snprintf(cpath, sizeof(cpath), "%s/tokenizer_config.json", dir) >= sizeof(cpath) ||
	    (size_t)snprintf(jpath, sizeof(jpath), "%s/chat_template.jinja", dir) >= sizeof(jpath)) {
		rwd_errorf(err, RWD_E_LIMIT, "model folder path too long");
		return RWD_E_LIMIT;
	}
	int rc = load_json_file(cpath, &cfg, err);
	if (rc && rc != RWD_E_NOTFOUND)
		return rc;
	json_t *ct = cfg ? json_object_get(cfg, "chat_template") : NULL;
	if (ct && !json_is_null(ct)) {
		rc = template_in(cpath, cfg, NULL, out, err);
		json_decref(cfg);
		return rc;
	}
	FILE *f = fopen(jpath, "rb");
	if (!f) {
		json_decref(cfg);
		rwd_errorf(err, RWD_E_NOTFOUND, "no chat_template in tokenizer_config.json and no chat_template.jinja");
		rwd_error_where(err, dir, NULL);
		return RWD_E_NOTFOUND;
	}
	char *buf = malloc(TEMPLATE_MAX_BYTES + 1);
	size_t n = buf ? fread(buf, 1, TEMPLATE_MAX_BYTES + 1, f) : 0;
	fclose(f);
	if (!buf || n > TEMPLATE_MAX_BYTES || memchr(buf, '\0', n)) {
		rc = !buf ? RWD_E_NOMEM : n > TEMPLATE_MAX_BYTES ? RWD_E_LIMIT : RWD_E_INVALID;
		rwd_errorf(err, rc, "%s", !buf ? "out of memory" : n > TEMPLATE_MAX_BYTES ?
			"chat_template.jinja larger than 1 MiB" : "chat_template.jinja contains a NUL byte");
		rwd_error_where(err, jpath, NULL);
		free(buf);
		json_decref(cfg);
		return rc;
	}
	buf[n] = '\0';
	rc = template_in(jpath, cfg, buf, out, err);
	free(buf);
	json_decref(cfg);
	return rc;
}

/* --------------------------------------------------------------- render */

rwd_chat_params rwd_chat_default_params(void)
{
	return (rwd_chat_params){
		.add_generation_prompt = 0,
		.max_messages = 4096,
		.max_bytes = (size_t)64 << 20,
		.now = 0,
	};
}

/*
 * The engine path: the variables transformers' apply_chat_template gives a
 * template (messages, tools and documents None, add_generation_prompt, and
 * the tokenizer's bos_token / eos_token when it has them). `messages` is
 * borrowed.
 */
static int render_engine(const rwd_chat_template *t, json_t *messages, const rwd_chat_params *p, rwd_arena *arena,
	char **out, size_t *out_len, rwd_error *err)
{
	json_t *vars = json_object();
	int rc = RWD_E_NOMEM;
	if (!vars || json_object_set(vars, "messages", messages) ||
	    json_object_set_new(vars, "tools", json_null()) || json_object_set_new(vars, "documents", json_null()) ||
	    json_object_set_new(vars, "add_generation_prompt", json_boolean(p->add_generation_prompt)) ||
	    (t->bos && json_object_set_new(vars, "bos_token", json_string(t->bos))) ||
	    (t->eos && json_object_set_new(vars, "eos_token", json_string(t->eos)))) {
		json_decref(vars);
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	}
	rwd_jinja_render_opts o = { .now = p->now, .max_output_bytes = p->max_bytes };
	rc = rwd_jinja_render(t->engine, vars, &o, arena, out, out_len, err);
	json_decref(vars);
	if (rc)
		rwd_error_where(err, NULL, "messages");
	return rc;
}

/* The engine takes messages as JSON objects with a string role; the rest is the template's business. */
static int check_engine_messages(const json_t *messages, size_t max_messages, rwd_error *err)
{
	if (!json_is_array(messages)) {
		rwd_errorf(err, RWD_E_INVALID, "must be an array of {role, content}");
		rwd_error_where(err, NULL, "messages");
		return RWD_E_INVALID;
	}
	size_t cnt = json_array_size(messages);
	if (cnt == 0 || cnt > max_messages) {
		int code = cnt ? RWD_E_LIMIT : RWD_E_INVALID;
		if (cnt)
			rwd_errorf(err, code, "more than %zu messages", max_messages);
		else
			rwd_errorf(err, code, "must not be empty");
		rwd_error_where(err, NULL, "messages");
		return code;
	}
	for (size_t i = 0; i < cnt; i++) {
		json_t *o = json_array_get(messages, i);
		const char *field = NULL, *why = NULL;
		if (!json_is_object(o))
			field = "", why = "must be an object {role, content}";
		else if (!json_is_string(json_object_get(o, "role")))
			field = ".role", why = "must be a string";
		if (field) {
			char obj[64];
			snprintf(obj, sizeof(obj), "messages[%zu]%s", i, field);
			rwd_errorf(err, RWD_E_INVALID, "%s", why);
			rwd_error_where(err, NULL, obj);
			return RWD_E_INVALID;
		}
	}
	return 0;
}

int rwd_chat_render(const rwd_chat_template *t, const rwd_chat_message *m, size_t n,
	const rwd_chat_params *params, rwd_arena *arena, char **out, size_t *out_len, rwd_error *err)
{
	rwd_chat_params p = params ? *params : rwd_chat_default_params();
	*out = NULL;
	*out_len = 0;
	if (n == 0 || n > p.max_messages) {
		int code = n ? RWD_E_LIMIT : RWD_E_INVALID;
		if (n)
			rwd_errorf(err, code, "more than %zu messages", p.max_messages);
		else
			rwd_errorf(err, code, "must not be empty");
		rwd_error_where(err, NULL, "messages");
		return code;
	}
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < n; i++) {
		json_t *o = json_object();
		if (!o || json_array_append_new(arr, o) ||
		    json_object_set_new(o, "role", json_stringn(m[i].role, m[i].role_len)) ||
		    json_object_set_new(o, "content", json_stringn(m[i].content, m[i].content_len)) ||
		    (m[i].reasoning && json_object_set_new(o, "reasoning_content",
					   json_stringn(m[i].reasoning, m[i].reasoning_len)))) {
			json_decref(arr);
			arr = NULL;
		}
	}
	if (!arr)
		return rwd_errorf(err, RWD_E_INVALID, "a message is not UTF-8 (or out of memory)");
	int rc = render_engine(t, arr, &p, arena, out, out_len, err);
	json_decref(arr);
	return rc;
}

int rwd_chat_render_json(const rwd_chat_template *t, const json_t *messages, const rwd_chat_params *params,
	rwd_arena *arena, char **out, size_t *out_len, rwd_error *err)
{
	rwd_chat_params p = params ? *params : rwd_chat_default_params();
	*out = NULL;
	*out_len = 0;
	int rc = check_engine_messages(messages, p.max_messages, err);
	return rc ? rc : render_engine(t, (json_t *)messages, &p, arena, out, out_len, err);
}
