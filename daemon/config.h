/*
 * daemon/config.h — the daemon's configuration: every limit and default in
 * one place (rwd_config_defaults), a JSON file that overrides them, and the
 * command-line flags that override the file.
 *
 * A bad file is refused with an rwd_error naming the file, the field (a
 * dotted path such as "models.rules.batching.max_batch_size") and the
 * reason; unknown fields are errors, so typos do not pass silently. The
 * documented example with every field is config/example.json.
 */
#ifndef RWD_DAEMON_CONFIG_H
#define RWD_DAEMON_CONFIG_H

#include "compat/compat.h"
#include "core/error.h"
#include "reward/reward.h"
#include "serve/request.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rwd_batching_config {
	size_t max_batch_size;
	size_t max_batch_tokens;
	uint64_t max_delay_us;
	size_t max_queue_items;
	int workers;
} rwd_batching_config;

typedef struct rwd_model_config {
	char *name;
	char *kind;      /* NULL: detected from the path */
	char *path;      /* NULL for built-in kinds */
	json_t *options; /* kind options, or NULL */
	rwd_batching_config batching;
	size_t max_tokens;         /* per item, text models */
	uint64_t max_image_pixels; /* per decoded image */
	int weights_in_memory;     /* "weights": "memory" (read) instead of "mmap" (the default) */
	rwd_reward_config *reward;     /* "reward" (lib/reward), or NULL: the default */
	rwd_ensemble_config ensemble;  /* "members"/"combine": n_members > 0 for an ensemble */
	rwd_compat_options compat;     /* "compat": the drop-in endpoints' options (lib/compat) */
	json_t *compat_json;           /* "compat" as written, or NULL */
} rwd_model_config;

typedef struct rwd_config {
	char *file;                 /* the config file read, or NULL */
	char *listen_host;          /* numeric IPv4/IPv6 address */
	uint16_t listen_port;
	int log_level;
	/* http */
	unsigned http_threads;
	unsigned connection_limit;
	unsigned per_ip_connection_limit;
	unsigned connection_timeout_s;
	size_t connection_memory_limit;
	size_t max_body_bytes;
	size_t linger_max_bytes;    /* a refused body read and discarded before the answer */
	unsigned linger_timeout_s;
	/* requests */
	rwd_request_limits requests;
	/* limits: the memory budget (daemon/mem.h) and the per-request arena's cap */
	size_t memory_budget_bytes;
	size_t request_arena_bytes;
	/* tls (daemon/tls.h): both set = HTTPS; re-read on SIGHUP */
	char *tls_cert_file;
	char *tls_key_file;
	/* auth */
	char *api_keys_file;
	char *api_keys_env;
	int metrics_requires_key;
	/* admin API (daemon/admin.c): its own key, and where models may be loaded from */
	char *admin_key_file;
	char *admin_key_env;
	char *admin_model_root;     /* NULL: POST /v1/models/{name}/load is refused */
	/* lifecycle and compute */
	uint32_t drain_timeout_ms;
	int blas_threads;           /* 0: chosen from cores and workers */
	/* models: defaults, then each */
	rwd_batching_config batching;
	size_t model_max_tokens;          /* default of models.NAME.max_tokens */
	uint64_t model_max_image_pixels;  /* default of models.NAME.max_image_pixels */
	rwd_model_config *models;
	size_t n_models;
} rwd_config;

/* All defaults (listen 127.0.0.1:8080, no models). */
void rwd_config_defaults(rwd_config *c);

/* Read and apply a JSON config file over c. err names file/field/reason. */
int rwd_config_load_file(rwd_config *c, const char *path, rwd_error *err);

/* --listen HOST:PORT ([v6]:PORT for IPv6). */
int rwd_config_set_listen(rwd_config *c, const char *hostport, rwd_error *err);

/* --model NAME=PATH: add (or replace) a model whose kind comes from the path. */
int rwd_config_add_model_arg(rwd_config *c, const char *arg, rwd_error *err);

/* --tls-cert FILE / --tls-key FILE (paths as given). */
int rwd_config_set_tls(rwd_config *c, const char *cert_file, const char *key_file, rwd_error *err);

/* Cross-field checks after everything is applied. */
int rwd_config_validate(const rwd_config *c, rwd_error *err);

/* The effective configuration as JSON (for --check-config). */
json_t *rwd_config_to_json(const rwd_config *c);

void rwd_config_free(rwd_config *c);

#endif
