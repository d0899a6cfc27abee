/* daemon/config.c — see config.h. */
#include "config.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

void rwd_config_defaults(rwd_config *c)
{
	memset(c, 0, sizeof(*c));
	c->listen_host = strdup("127.0.0.1");
	c->listen_port = 8080;
	c->log_level = RWD_LOG_INFO;
	c->http_threads = 2;
	/* One trainer host opens a connection per sample, every sample of a
	 * rollout at once (OpenRLHF HEAD, trainer-paths.md §1): 2,000 of them
	 * against 1024/256 lost 710 samples to resets. Sized for that burst; the
	 * per-IP limit is for multi-tenant setups (0 = none). */
	c->connection_limit = 4096;
	c->per_ip_connection_limit = 4096;
	c->connection_timeout_s = 30;
	c->connection_memory_limit = 128 * 1024;
	c->max_body_bytes = 16u << 20;
	/* nginx's lingering_time is 30 s; bytes are read and dropped, never kept */
	c->linger_max_bytes = 1ull << 30;
	c->linger_timeout_s = 30;
	/* every limit's default lives here (lib/ defaults are only fallbacks) */
	c->requests.max_items = 256;
	c->requests.max_depth = 32;
	c->requests.max_string_bytes = 8u << 20;
	c->requests.max_id_bytes = 256;
	c->requests.default_timeout_ms = 30000;
	c->requests.max_timeout_ms = 300000;
	/* what buffered bodies, request arenas and parsed JSON may hold at once;
	 * past it a request is answered 503 + Retry-After before its body is read */
	c->memory_budget_bytes = 1ull << 30;
	/* one request's parsed inputs (a 16 MiB body of short items parses to a
	 * few times its size); images are decoded in the batch arena instead */
	c->request_arena_bytes = 64u << 20;
	c->model_max_tokens = 4096;
	c->model_max_image_pixels = 4096ull * 4096ull;
	c->api_keys_env = strdup("REWARDD_API_KEYS");
	c->admin_key_env = strdup("REWARDD_ADMIN_KEY");
	c->metrics_requires_key = 0;
	c->drain_timeout_ms = 30000;
	c->blas_threads = 0;
	c->batching.max_batch_size = 32;
	c->batching.max_batch_tokens = 16384;
	/* 0 = continuous batching: a batch is whatever queued while the worker
	 * was busy, so an idle server adds no latency and a busy one still forms
	 * large batches (TEI's design, Triton's default). In bench/ (2 shared
	 * cores) p50 at 1 connection was 0.6-1.6 ms with 0 against 2.4-3.6 ms
	 * with 500 us in every run; throughput at 16-64 connections differed
	 * by less than the run-to-run noise. */
	c->batching.max_delay_us = 0;
	c->batching.max_queue_items = 8192; /* a 2,000+ sample burst of one-item requests queues whole */
	c->batching.workers = 1;
}

static void model_config_free(rwd_model_config *m)
{
	free(m->name);
	free(m->kind);
	free(m->path);
	json_decref(m->options);
	json_decref(m->compat_json);
	rwd_reward_config_free(m->reward);
	rwd_ensemble_config_clear(&m->ensemble);
}

void rwd_config_free(rwd_config *c)
{
	if (!c)
		return;
	free(c->file);
	free(c->listen_host);
	free(c->api_keys_file);
	free(c->api_keys_env);
	free(c->admin_key_file);
	free(c->admin_key_env);
	free(c->admin_model_root);
	free(c->tls_cert_file);
	free(c->tls_key_file);
	for (size_t i = 0; i < c->n_models; i++)
		model_config_free(&c->models[i]);
	free(c->models);
	memset(c, 0, sizeof(*c));
}

/* Field-path helpers: every error names the dotted path of its field. */
static int field_err(rwd_error *err, const char *path, const char *key, int code, const char *why)
{
	char f[256];
	snprintf(f, sizeof(f), "%.120s%s%.64s", path, *path && key ? "." : "", key ? key : "");
	rwd_error_where(err, NULL, f);
	return rwd_errorf(err, code, "%s", why);
}

static int check_keys(const json_t *obj, const char *path, const char *const *allowed, rwd_error *err)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)obj, k, v) {
		size_t i;
		if (strcmp(k, "$comment") == 0)
			continue; /* documentation, allowed in every object */
		for (i = 0; allowed[i]; i++)
			if (strcmp(k, allowed[i]) == 0)
				break;
		if (!allowed[i]) {
			char why[512];
			size_t n = (size_t)snprintf(why, sizeof(why), "unknown field (expected one of:");
			for (i = 0; allowed[i] && n < sizeof(why); i++)
				n += (size_t)snprintf(why + n, sizeof(why) - n, " %s", allowed[i]);
			if (n < sizeof(why))
				snprintf(why + n, sizeof(why) - n, ")");
			return field_err(err, path, k, RWD_E_INVALID, why);
		}
	}
	return 0;
}

static int get_uint(const json_t *obj, const char *path, const char *key, uint64_t lo, uint64_t hi,
	uint64_t *out, rwd_error *err)
{
	const json_t *v = json_object_get(obj, key);
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		(uint64_t)json_integer_value(v) < lo || (uint64_t)json_integer_value(v) > hi) {
		char why[128];
		snprintf(why, sizeof(why), "must be an integer from %llu to %llu",
			(unsigned long long)lo, (unsigned long long)hi);
		return field_err(err, path, key, RWD_E_INVALID, why);
	}
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

#define GET_UINT(obj, path, key, lo, hi, dst)                                 \
	do {                                                                  \
		uint64_t v_ = (uint64_t)(dst);                                \
		int r_ = get_uint(obj, path, key, lo, hi, &v_, err);          \
		if (r_)                                                       \
			return r_;                                            \
		(dst) = v_;                                                   \
	} while (0)

static int get_str(const json_t *obj, const char *path, const char *key, int nullable, char **dst,
	rwd_error *err)
{
	const json_t *v = json_object_get(obj, key);
	if (!v)
		return 0;
	if (json_is_null(v) && nullable) {
		free(*dst);
		*dst = NULL;
		return 0;
	}
	if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 4096)
		return field_err(err, path, key, RWD_E_INVALID,
			nullable ? "must be a non-empty string or null" : "must be a non-empty string");
	char *s = strdup(json_string_value(v));
	if (!s)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	free(*dst);
	*dst = s;
	return 0;
}

static int get_bool(const json_t *obj, const char *path, const char *key, int *dst, rwd_error *err)
{
	const json_t *v = json_object_get(obj, key);
	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return field_err(err, path, key, RWD_E_INVALID, "must be true or false");
	*dst = json_is_true(v);
	return 0;
}

static const json_t *get_obj(const json_t *obj, const char *path, const char *key, int *bad,
	rwd_error *err)
{
	const json_t *v = json_object_get(obj, key);
	*bad = 0;
	if (v && !json_is_object(v)) {
		*bad = field_err(err, path, key, RWD_E_INVALID, "must be an object");
		return NULL;
	}
	return v;
}

static int parse_batching(const json_t *o, const char *path, rwd_batching_config *b, rwd_error *err)
{
	static const char *const keys[] = {"max_batch_size", "max_batch_tokens", "max_delay_us",
		"max_queue_items", "workers", NULL};
	int r = check_keys(o, path, keys, err);
	if (r)
		return r;
	GET_UINT(o, path, "max_batch_size", 1, 4096, b->max_batch_size);
	GET_UINT(o, path, "max_batch_tokens", 0, 1u << 24, b->max_batch_tokens);
	GET_UINT(o, path, "max_delay_us", 0, 10000000, b->max_delay_us);
	GET_UINT(o, path, "max_queue_items", 1, 1u << 20, b->max_queue_items);
	GET_UINT(o, path, "workers", 1, 64, b->workers);
	return 0;
}

/* The config of model `name`: a fresh one, replacing any earlier one of that name. */
static rwd_model_config *model_slot(rwd_config *c, const char *name, rwd_error *err)
{
	rwd_model_config *m = NULL;
	for (size_t i = 0; i < c->n_models; i++) {
		if (strcmp(c->models[i].name, name) == 0) {
			m = &c->models[i];
			model_config_free(m);
			break;
		}
	}
	if (!m) {
		rwd_model_config *nm = realloc(c->models, (c->n_models + 1) * sizeof(*nm));
		if (!nm) {
			rwd_errorf(err, RWD_E_NOMEM, "out of memory");
			return NULL;
		}
		c->models = nm;
		m = &nm[c->n_models++];
	}
	memset(m, 0, sizeof(*m));
	m->name = strdup(name);
	m->batching = c->batching;
	m->max_tokens = c->model_max_tokens;
	m->max_image_pixels = c->model_max_image_pixels;
	m->compat = rwd_compat_default_options();
	if (!m->name) {
		rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		return NULL;
	}
	return m;
}

static int valid_model_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
			ch == '-' || ch == '_' || ch == '.'))
			return 0;
	}
	return 1;
}

/* A relative model path in a config file is relative to the file's folder. */
static char *resolve_path(const char *cfg_file, const char *p)
{
	if (!cfg_file || p[0] == '/')
		return strdup(p);
	const char *slash = strrchr(cfg_file, '/');
	if (!slash)
		return strdup(p);
	char buf[PATH_MAX];
	snprintf(buf, sizeof(buf), "%.*s/%s", (int)(slash - cfg_file), cfg_file, p);
	return strdup(buf);
}

static int parse_models(rwd_config *c, const json_t *models, rwd_error *err)
{
	static const char *const keys[] = {"kind", "path", "options", "batching", "max_tokens",
		"max_image_pixels", "reward", "members", "combine", "weights", "compat", NULL};
	const char *name;
	json_t *mo;
	json_object_foreach((json_t *)models, name, mo) {
		char path[RWD_ERROR_OBJECT_MAX];
		if (strcmp(name, "$comment") == 0)
			continue;
		snprintf(path, sizeof(path), "models.%.64s", name);
		if (!valid_model_name(name))
			return field_err(err, path, NULL, RWD_E_INVALID,
				"a model name is 1 to 64 of [A-Za-z0-9._-]");
		if (!json_is_object(mo))
			return field_err(err, path, NULL, RWD_E_INVALID, "must be an object");
		int r = check_keys(mo, path, keys, err);
		if (r)
			return r;
		rwd_model_config *m = model_slot(c, name, err);
		if (!m)
			return RWD_E_NOMEM;
		if ((r = get_str(mo, path, "kind", 1, &m->kind, err)))
			return r;
		char *p = NULL;
		if ((r = get_str(mo, path, "path", 1, &p, err)))
			return r;
		if (p) {
			m->path = resolve_path(c->file, p);
			free(p);
		}
		const json_t *opt = json_object_get(mo, "options");
		if (opt && !json_is_object(opt) && !json_is_null(opt))
			return field_err(err, path, "options", RWD_E_INVALID, "must be an object");
		if (opt && json_is_object(opt))
			m->options = json_incref((json_t *)opt);
		int bad;
		const json_t *b = get_obj(mo, path, "batching", &bad, err);
		if (bad)
			return bad;
		if (b) {
			char bp[RWD_ERROR_OBJECT_MAX + 16];
			snprintf(bp, sizeof(bp), "%.100s.batching", path);
			if ((r = parse_batching(b, bp, &m->batching, err)))
				return r;
		}
		GET_UINT(mo, path, "max_tokens", 1, 1u << 20, m->max_tokens);
		GET_UINT(mo, path, "max_image_pixels", 1, 1ull << 32, m->max_image_pixels);
		const json_t *wj = json_object_get(mo, "weights");
		if (wj) {
			const char *ws = json_string_value(wj);
			if (!ws || (strcmp(ws, "mmap") && strcmp(ws, "memory")))
				return field_err(err, path, "weights", RWD_E_INVALID,
					"must be \"mmap\" (map the files) or \"memory\" (read them: slow network filesystems)");
			m->weights_in_memory = strcmp(ws, "memory") == 0;
		}
		const json_t *rj = json_object_get(mo, "reward");
		if (rj) {
			char rp[RWD_ERROR_OBJECT_MAX + 16];
			snprintf(rp, sizeof(rp), "%.100s.reward", path);
			if ((r = rwd_reward_config_parse(rj, rp, &m->reward, err)))
				return r;
		}
		const json_t *cj = json_object_get(mo, "compat");
		if (cj) {
			char cp[RWD_ERROR_OBJECT_MAX + 16];
			snprintf(cp, sizeof(cp), "%.100s.compat", path);
			if ((r = rwd_compat_options_parse(cj, cp, &m->compat, err)))
				return r;
			if (json_is_object(cj))
				m->compat_json = json_incref((json_t *)cj);
		}
		const json_t *mem = json_object_get(mo, "members");
		if (mem || json_object_get(mo, "combine")) {
			if ((r = rwd_ensemble_config_parse(mem, json_object_get(mo, "combine"), path, &m->ensemble, err)))
				return r;
			if (m->kind || m->path)
				return field_err(err, path, "members", RWD_E_INVALID,
					"an ensemble has \"members\" instead of a \"kind\" or \"path\"");
		}
		if (!m->kind && !m->path && !m->ensemble.n_members)
			return field_err(err, path, NULL, RWD_E_INVALID,
				"a model needs a \"kind\" (built-ins), a \"path\" (weights) or \"members\" (an ensemble)");
	}
	return 0;
}

static int apply(rwd_config *c, const json_t *root, rwd_error *err)
{
	static const char *const top[] = {"listen", "log_level", "http", "requests", "auth",
		"shutdown", "compute", "batching", "models", "admin", "limits", "tls", NULL};
	int r = check_keys(root, "", top, err);
	if (r)
		return r;
	const json_t *v = json_object_get(root, "listen");
	if (v) {
		if (!json_is_string(v))
			return field_err(err, "", "listen", RWD_E_INVALID, "must be a \"HOST:PORT\" string");
		if ((r = rwd_config_set_listen(c, json_string_value(v), err))) {
			rwd_error_where(err, NULL, "listen");
			return r;
		}
	}
	v = json_object_get(root, "log_level");
	if (v) {
		int lv = json_is_string(v) ? rwd_log_parse_level(json_string_value(v)) : -1;
		if (lv < 0)
			return field_err(err, "", "log_level", RWD_E_INVALID,
				"must be \"error\", \"warn\", \"info\" or \"debug\"");
		c->log_level = lv;
	}
	int bad;
	const json_t *o = get_obj(root, "", "http", &bad, err);
	if (bad)
		return bad;
	if (o) {
		static const char *const keys[] = {"threads", "connection_limit", "per_ip_connection_limit",
			"connection_timeout_s", "connection_memory_limit_bytes", "max_body_bytes",
			"linger_max_bytes", "linger_timeout_s", NULL};
		if ((r = check_keys(o, "http", keys, err)))
			return r;
		GET_UINT(o, "http", "threads", 1, 64, c->http_threads);
		GET_UINT(o, "http", "connection_limit", 1, 100000, c->connection_limit);
		GET_UINT(o, "http", "per_ip_connection_limit", 0, 100000, c->per_ip_connection_limit);
		GET_UINT(o, "http", "connection_timeout_s", 1, 3600, c->connection_timeout_s);
		GET_UINT(o, "http", "connection_memory_limit_bytes", 8192, 16u << 20, c->connection_memory_limit);
		GET_UINT(o, "http", "max_body_bytes", 1024, 1u << 30, c->max_body_bytes);
		GET_UINT(o, "http", "linger_max_bytes", 0, 1ull << 40, c->linger_max_bytes);
		GET_UINT(o, "http", "linger_timeout_s", 1, 3600, c->linger_timeout_s);
	}
	o = get_obj(root, "", "requests", &bad, err);
	if (bad)
		return bad;
	if (o) {
		static const char *const keys[] = {"max_items", "max_json_depth", "max_string_bytes",
			"max_id_bytes", "default_timeout_ms", "max_timeout_ms", NULL};
		if ((r = check_keys(o, "requests", keys, err)))
			return r;
		GET_UINT(o, "requests", "max_items", 1, 1u << 20, c->requests.max_items);
		GET_UINT(o, "requests", "max_json_depth", 2, 1000, c->requests.max_depth);
		GET_UINT(o, "requests", "max_string_bytes", 16, 1u << 30, c->requests.max_string_bytes);
		GET_UINT(o, "requests", "max_id_bytes", 1, 65536, c->requests.max_id_bytes);
		GET_UINT(o, "requests", "default_timeout_ms", 1, 86400000, c->requests.default_timeout_ms);
		GET_UINT(o, "requests", "max_timeout_ms", 1, 86400000, c->requests.max_timeout_ms);
	}
	o = get_obj(root, "", "limits", &bad, err);
	if (bad)
		return bad;
	if (o) {
		static const char *const keys[] = {"memory_budget_bytes", "request_arena_bytes", NULL};
		if ((r = check_keys(o, "limits", keys, err)))
			return r;
		GET_UINT(o, "limits", "memory_budget_bytes", 1u << 20, 1ull << 44, c->memory_budget_bytes);
		GET_UINT(o, "limits", "request_arena_bytes", 64u << 10, 1ull << 40, c->request_arena_bytes);
	}
	o = get_obj(root, "", "tls", &bad, err);
	if (bad)
		return bad;
	if (o) {
		static const char *const keys[] = {"cert_file", "key_file", NULL};
		if ((r = check_keys(o, "tls", keys, err)))
			return r;
		static const char *const tk[] = {"cert_file", "key_file"};
		char **dst[] = {&c->tls_cert_file, &c->tls_key_file};
		for (int i = 0; i < 2; i++) {
			char *f = NULL;
			if ((r = get_str(o, "tls", tk[i], 1, &f, err)))
				return r;
			if (!json_object_get(o, tk[i]))
				continue;
			free(*dst[i]);
			*dst[i] = f ? resolve_path(c->file, f) : NULL;
			free(f);
		}
	}
	o = get_obj(root, "", "auth", &bad, err);
	if (bad)
		return bad;
	if (o) {
		static const char *const keys[] = {"api_keys_file", "api_keys_env", "metrics_requires_key", NULL};
		if ((r = check_keys(o, "auth", keys, err)))
			return r;
		char *f = NULL;
		if ((r = get_str(o, "auth", "api_keys_file", 1, &f, err)))
			return r;
		free(c->api_keys_file);
		c->api_keys_file = f ? resolve_path(c->file, f) : NULL;
		free(f);
		if (json_object_get(o, "api_keys_env") && (r = get_str(o, "auth", "api_keys_env", 1, &c->api_keys_env, err)))
			return r;
		if ((r = get_bool(o, "auth", "metrics_requires_key", &c->metrics_requires_key, err)))
			return r;
	}
	o = get_obj(root, "", "admin", &bad, err);
	if (bad)
		return bad;
	if (o) {
		static const char *const keys[] = {"key_file", "key_env", "model_root", NULL};
		if ((r = check_keys(o, "admin", keys, err)))
			return r;
		char *f = NULL;
		if ((r = get_str(o, "admin", "key_file", 1, &f, err)))
			return r;
		free(c->admin_key_file);
		c->admin_key_file = f ? resolve_path(c->file, f) : NULL;
		free(f);
		if (json_object_get(o, "key_env") && (r = get_str(o, "admin", "key_env", 1, &c->admin_key_env, err)))
			return r;
		f = NULL;
		if ((r = get_str(o, "admin", "model_root", 1, &f, err)))
			return r;
		free(c->admin_model_root);
		c->admin_model_root = f ? resolve_path(c->file, f) : NULL;
		free(f);
	}
	o = get_obj(root, "", "shutdown", &bad, err);
	if (bad)
		return bad;
	if (o) {
		static const char *const keys[] = {"drain_timeout_ms", NULL};
		if ((r = check_keys(o, "shutdown", keys, err)))
			return r;
		GET_UINT(o, "shutdown", "drain_timeout_ms", 0, 3600000, c->drain_timeout_ms);
	}
	o = get_obj(root, "", "compute", &bad, err);
	if (bad)
		return bad;
	if (o) {
		static const char *const keys[] = {"blas_threads", NULL};
		if ((r = check_keys(o, "compute", keys, err)))
			return r;
		GET_UINT(o, "compute", "blas_threads", 0, 256, c->blas_threads);
	}
	o = get_obj(root, "", "batching", &bad, err);
	if (bad)
		return bad;
	if (o && (r = parse_batching(o, "batching", &c->batching, err)))
		return r;
	o = get_obj(root, "", "models", &bad, err);
	if (bad)
		return bad;
	if (o && (r = parse_models(c, o, err)))
		return r;
	return 0;
}

int rwd_config_load_file(rwd_config *c, const char *path, rwd_error *err)
{
	free(c->file);
	c->file = strdup(path);
	json_error_t jerr;
	json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	int r;
	if (!root) {
		rwd_error_at(err, jerr.line, jerr.column, jerr.position);
		r = rwd_errorf(err, jerr.line > 0 ? RWD_E_FORMAT : RWD_E_IO, "%s", jerr.text);
	} else if (!json_is_object(root)) {
		r = rwd_errorf(err, RWD_E_INVALID, "the configuration must be a JSON object");
	} else {
		r = apply(c, root, err);
	}
	json_decref(root);
	if (r)
		rwd_error_where(err, path, NULL);
	return r;
}

int rwd_config_set_listen(rwd_config *c, const char *hostport, rwd_error *err)
{
	char host[256];
	const char *colon;
	if (hostport[0] == '[') {
		const char *end = strchr(hostport, ']');
		if (!end || end[1] != ':' || (size_t)(end - hostport - 1) >= sizeof(host))
			return rwd_errorf(err, RWD_E_INVALID, "'%s' is not [IPV6]:PORT", hostport);
		snprintf(host, sizeof(host), "%.*s", (int)(end - hostport - 1), hostport + 1);
		colon = end + 1;
	} else {
		colon = strrchr(hostport, ':');
		if (!colon || (size_t)(colon - hostport) >= sizeof(host))
			return rwd_errorf(err, RWD_E_INVALID, "'%s' is not HOST:PORT", hostport);
		snprintf(host, sizeof(host), "%.*s", (int)(colon - hostport), hostport);
	}
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (*end || end == colon + 1 || port < 0 || port > 65535)
		return rwd_errorf(err, RWD_E_INVALID, "'%s': the port must be 0..65535", hostport);
	unsigned char buf[16];
	if (strcmp(host, "localhost") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	if (inet_pton(AF_INET, host, buf) != 1 && inet_pton(AF_INET6, host, buf) != 1)
		return rwd_errorf(err, RWD_E_INVALID, "'%s': the host must be a numeric IPv4 or IPv6 address",
			hostport);
	char *h = strdup(host);
	if (!h)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	free(c->listen_host);
	c->listen_host = h;
	c->listen_port = (uint16_t)port;
	return 0;
}

int rwd_config_set_tls(rwd_config *c, const char *cert_file, const char *key_file, rwd_error *err)
{
	const char *in[] = {cert_file, key_file};
	char **dst[] = {&c->tls_cert_file, &c->tls_key_file};
	for (int i = 0; i < 2; i++) {
		if (!in[i])
			continue;
		char *f = strdup(in[i]);
		if (!f)
			return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		free(*dst[i]);
		*dst[i] = f;
	}
	return 0;
}

int rwd_config_add_model_arg(rwd_config *c, const char *arg, rwd_error *err)
{
	const char *eq = strchr(arg, '=');
	if (!eq || eq == arg || !eq[1])
		return rwd_errorf(err, RWD_E_INVALID, "--model wants NAME=PATH, got '%s'", arg);
	char name[128];
	snprintf(name, sizeof(name), "%.*s", (int)(eq - arg), arg);
	if (!valid_model_name(name))
		return rwd_errorf(err, RWD_E_INVALID, "--model: '%s' is not a model name (1 to 64 of [A-Za-z0-9._-])",
			name);
	rwd_model_config *m = model_slot(c, name, err);
	if (!m)
		return RWD_E_NOMEM;
	m->path = strdup(eq + 1);
	if (!m->path)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	return 0;
}

int rwd_config_validate(const rwd_config *c, rwd_error *err)
{
	rwd_error_where(err, c->file, NULL);
	if (c->requests.default_timeout_ms > c->requests.max_timeout_ms)
		return field_err(err, "requests", "default_timeout_ms", RWD_E_INVALID,
			"must not exceed requests.max_timeout_ms");
	if (!c->tls_cert_file != !c->tls_key_file)
		return field_err(err, "tls", c->tls_cert_file ? "key_file" : "cert_file", RWD_E_INVALID,
			"HTTPS needs both tls.cert_file and tls.key_file (--tls-cert and --tls-key)");
	if (c->max_body_bytes > c->memory_budget_bytes)
		return field_err(err, "http", "max_body_bytes", RWD_E_INVALID,
			"must not exceed limits.memory_budget_bytes, or a body that fits could never be read");
	if (c->per_ip_connection_limit > c->connection_limit)
		return field_err(err, "http", "per_ip_connection_limit", RWD_E_INVALID,
			"must not exceed http.connection_limit");
	for (size_t i = 0; i < c->n_models; i++) {
		const rwd_model_config *m = &c->models[i];
		char path[RWD_ERROR_OBJECT_MAX];
		snprintf(path, sizeof(path), "models.%.64s.batching", m->name);
		if (c->requests.max_items > m->batching.max_queue_items)
			return field_err(err, path, "max_queue_items", RWD_E_INVALID,
				"must be at least requests.max_items, or a full request could never be queued");
		for (size_t k = 0; k < m->ensemble.n_members; k++) {
			const rwd_model_config *mm = NULL;
			for (size_t q = 0; q < c->n_models; q++)
				if (strcmp(c->models[q].name, m->ensemble.members[k]) == 0)
					mm = &c->models[q];
			char mp[RWD_ERROR_OBJECT_MAX];
			snprintf(mp, sizeof(mp), "models.%.64s.members[%zu]", m->name, k % 100);
			if (!mm || mm == m || mm->ensemble.n_members || mm > m)
				return field_err(err, mp, NULL, RWD_E_INVALID, !mm ? "no model of that name" :
					mm == m || mm->ensemble.n_members ? "a member must be a model, not an ensemble" :
					"members must be listed before their ensemble");
		}
	}
	rwd_error_where(err, "", "");
	return 0;
}

static json_t *batching_json(const rwd_batching_config *b)
{
	return json_pack("{sI sI sI sI si}", "max_batch_size", (json_int_t)b->max_batch_size,
		"max_batch_tokens", (json_int_t)b->max_batch_tokens, "max_delay_us", (json_int_t)b->max_delay_us,
		"max_queue_items", (json_int_t)b->max_queue_items, "workers", b->workers);
}

json_t *rwd_config_to_json(const rwd_config *c)
{
	static const char *const lv[] = {"error", "warn", "info", "debug"};
	char listen[300];
	snprintf(listen, sizeof(listen), strchr(c->listen_host, ':') ? "[%s]:%u" : "%s:%u",
		c->listen_host, c->listen_port);
	json_t *models = json_object();
	for (size_t i = 0; i < c->n_models; i++) {
		const rwd_model_config *m = &c->models[i];
		json_object_set_new(models, m->name, json_pack("{s:s? s:s? s:O? s:o sI sI}",
			"kind", m->kind, "path", m->path, "options", m->options,
			"batching", batching_json(&m->batching),
			"max_tokens", (json_int_t)m->max_tokens, "max_image_pixels", (json_int_t)m->max_image_pixels));
		json_t *mj = json_object_get(models, m->name);
		json_object_set_new(mj, "weights", json_string(m->weights_in_memory ? "memory" : "mmap"));
		if (m->reward)
			json_object_set_new(mj, "reward", rwd_reward_config_to_json(m->reward));
		if (m->compat_json)
			json_object_set(mj, "compat", m->compat_json);
		if (m->ensemble.n_members) {
			json_t *ma = json_array();
			for (size_t k = 0; k < m->ensemble.n_members; k++)
				json_array_append_new(ma, json_string(m->ensemble.members[k]));
			json_object_set_new(mj, "members", ma);
			json_object_set_new(mj, "combine", json_pack("{ss sf}", "mode",
				rwd_ensemble_combine_name(m->ensemble.combine), "k", m->ensemble.k));
		}
	}
	json_t *j = json_pack("{ss ss s{sI sI sI sI sI sI} s{sI sI sI sI sI sI} s{s:s? s:s? sb} s{sI} s{si} s:o s:o}",
		"listen", listen, "log_level", lv[c->log_level],
		"http", "threads", (json_int_t)c->http_threads, "connection_limit", (json_int_t)c->connection_limit,
		"per_ip_connection_limit", (json_int_t)c->per_ip_connection_limit,
		"connection_timeout_s", (json_int_t)c->connection_timeout_s,
		"connection_memory_limit_bytes", (json_int_t)c->connection_memory_limit,
		"max_body_bytes", (json_int_t)c->max_body_bytes,
		"requests", "max_items", (json_int_t)c->requests.max_items,
		"max_json_depth", (json_int_t)c->requests.max_depth,
		"max_string_bytes", (json_int_t)c->requests.max_string_bytes,
		"max_id_bytes", (json_int_t)c->requests.max_id_bytes,
		"default_timeout_ms", (json_int_t)c->requests.default_timeout_ms,
		"max_timeout_ms", (json_int_t)c->requests.max_timeout_ms,
		"auth", "api_keys_file", c->api_keys_file, "api_keys_env", c->api_keys_env,
		"metrics_requires_key", c->metrics_requires_key,
		"shutdown", "drain_timeout_ms", (json_int_t)c->drain_timeout_ms,
		"compute", "blas_threads", c->blas_threads,
		"batching", batching_json(&c->batching),
		"models", models);
	json_object_set_new(j, "limits", json_pack("{sI sI}",
		"memory_budget_bytes", (json_int_t)c->memory_budget_bytes,
		"request_arena_bytes", (json_int_t)c->request_arena_bytes));
	json_object_set_new(j, "tls", json_pack("{s:s? s:s?}", "cert_file", c->tls_cert_file,
		"key_file", c->tls_key_file));
	return j;
}
