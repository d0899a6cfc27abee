/* daemon/app.c — model lookup, API-key check and process gauges (see app.h). */
#include "app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

const rwd_model *rwd_app_find_model(void *ctx, const char *name, void **user, rwd_error *err)
{
	rwd_app *app = ctx;
	rwd_served *s = NULL;
	if (!name) {
		if (app->n_models == 0)
			return (void)rwd_errorf(err, RWD_E_STATE, "no model is served"), NULL;
		if (app->n_models > 1) {
			rwd_error_where(err, NULL, "model");
			return (void)rwd_errorf(err, RWD_E_INVALID,
				"\"model\" is required: %zu models are served (see GET /v1/models)", app->n_models), NULL;
		}
		s = &app->models[0];
	} else {
		for (size_t i = 0; i < app->n_models; i++)
			if (strcmp(app->models[i].cfg->name, name) == 0)
				s = &app->models[i];
		if (!s)
			return (void)rwd_errorf(err, RWD_E_NOTFOUND, "no model named '%.64s' (see GET /v1/models)", name), NULL;
	}
	int st = atomic_load_explicit(&s->state, memory_order_acquire);
	if (st != RWD_SERVED_READY)
		return (void)rwd_errorf(err, RWD_E_STATE, "model '%s' is %s", s->cfg->name,
			st == RWD_SERVED_LOADING ? "still loading" : "not available"), NULL;
	*user = s;
	return s->model;
}

/* Equal in time that depends only on the key's length, not on where they differ. */
static int ct_equal(const char *given, size_t glen, const char *key, size_t klen)
{
	unsigned char d = (unsigned char)(glen != klen);
	for (size_t i = 0; i < klen; i++)
		d |= (unsigned char)((i < glen ? (unsigned char)given[i] : 0) ^ (unsigned char)key[i]);
	return d == 0;
}

int rwd_app_authorized(const rwd_app *app, const char *authorization)
{
	if (app->n_keys == 0)
		return 1;
	if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
		return 0;
	const char *tok = authorization + 7;
	while (*tok == ' ')
		tok++;
	size_t tlen = strlen(tok);
	while (tlen && (tok[tlen - 1] == ' ' || tok[tlen - 1] == '\t'))
		tlen--;
	int ok = 0;
	/* every key is compared, so the time does not tell which one matched */
	for (size_t i = 0; i < app->n_keys; i++)
		ok |= ct_equal(tok, tlen, app->keys[i], app->key_lens[i]);
	return ok;
}

void rwd_app_update_process_metrics(rwd_app *app)
{
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		unsigned long size, resident;
		if (fscanf(f, "%lu %lu", &size, &resident) == 2)
			rwd_metric_set(app->rss_bytes, (double)resident * (double)sysconf(_SC_PAGESIZE));
		fclose(f);
	}
	f = fopen("/proc/self/status", "r");
	if (f) {
		char line[256];
		while (fgets(line, sizeof(line), f)) {
			int n;
			if (sscanf(line, "Threads: %d", &n) == 1) {
				rwd_metric_set(app->threads, n);
				break;
			}
		}
		fclose(f);
	}
	rwd_metric_set(app->inflight_gauge, (double)atomic_load(&app->inflight));
}
