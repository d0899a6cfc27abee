/* daemon/api.c — routing, auth, content checks and error replies (see api.h). */
#include "api.h"

#include "admin.h"
#include "api_compat.h"
#include "api_imgrl.h"
#include "api_models.h"
#include "api_rewards.h"
#include "api_rl.h"
#include "dashboard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const route_names[RWD_ROUTE_COUNT_] = {
	"other", "/v1/rewards", "/v1/models", "/v1/models/{name}", "/healthz", "/readyz", "/metrics",
	"/",
	"/v1/models/{name}/load|unload",
	"/get_reward", "/classify", "/pooling", "/v1/embeddings", "/v2/health/live", "/v2/health/ready",
	"/v2/models/{name}", "/v2/models/{name}/ready", "/v2/models/{name}/infer",
	"/v1/classify", "/health", "/v2", "/v2/models/{name}/config",
	"/v1/stats",
	"/ (pickle)", "/compute",
};

const char *rwd_api_route_name(int route)
{
	return route >= 0 && route < RWD_ROUTE_COUNT_ ? route_names[route] : "other";
}

static int route_of(const char *url, const char **name)
{
	*name = NULL;
	if (strcmp(url, "/v1/rewards") == 0)
		return RWD_ROUTE_REWARDS;
	if (strcmp(url, "/v1/models") == 0)
		return RWD_ROUTE_MODELS;
	if (strncmp(url, "/v1/models/", 11) == 0 && strchr(url + 11, '/') && (
		strcmp(strchr(url + 11, '/'), "/load") == 0 || strcmp(strchr(url + 11, '/'), "/unload") == 0))
		return RWD_ROUTE_ADMIN;
	if (strncmp(url, "/v1/models/", 11) == 0 && url[11] && !strchr(url + 11, '/')) {
		*name = url + 11;
		return RWD_ROUTE_MODEL;
	}
	if (strcmp(url, "/healthz") == 0)
		return RWD_ROUTE_HEALTHZ;
	if (strcmp(url, "/readyz") == 0)
		return RWD_ROUTE_READYZ;
	if (strcmp(url, "/metrics") == 0)
		return RWD_ROUTE_METRICS;
	if (strcmp(url, "/v1/stats") == 0)
		return RWD_ROUTE_STATS;
	if (strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0)
		return RWD_ROUTE_DASHBOARD;
	return rwd__api_compat_route(url);
}

int rwd_api_headers(rwd_call *call, long long content_length, rwd_reply *reply)
{
	rwd_app *app = call->app;
	const char *name;
	call->route = route_of(call->url, &name);
	if (rwd__api_imgrl_route(call->method, call->url)) {
		call->route = rwd__api_imgrl_route(call->method, call->url);
		return rwd__api_imgrl_headers(call, content_length, reply);
	}
	if (rwd__api_compat_is(call->route))
		return rwd__api_compat_headers(call, content_length, reply);
	if (call->route == RWD_ROUTE_NONE) {
		rwd_reply_error(reply, 404, "not_found", "no such endpoint", NULL, 0, 0);
		return RWD_API_REPLY;
	}
	if (call->route == RWD_ROUTE_ADMIN) {
		/* admin.c: POST only, and the admin key (not an API key) */
		if (strcmp(call->method, "POST") != 0) {
			rwd_reply_error(reply, 405, "method_not_allowed", "this endpoint takes POST", NULL, 0, 0);
			reply->allow = "POST";
			return RWD_API_REPLY;
		}
		if (!app->admin_key) {
			rwd_reply_error(reply, 403, "forbidden", "the admin API is off (no admin key is configured)",
				NULL, 0, 0);
			return RWD_API_REPLY;
		}
		if (!rwd_admin_authorized(app, call->authorization)) {
			rwd_reply_error(reply, 401, "unauthorized", "the admin key is required (Authorization: Bearer <admin key>)",
				NULL, 0, 0);
			reply->www_authenticate = 1;
			return RWD_API_REPLY;
		}
	}
	int post = call->route == RWD_ROUTE_REWARDS || call->route == RWD_ROUTE_ADMIN;
	if (strcmp(call->method, post ? "POST" : "GET") != 0) {
		rwd_reply_error(reply, 405, "method_not_allowed",
			post ? "this endpoint takes POST" : "this endpoint takes GET", NULL, 0, 0);
		reply->allow = post ? "POST" : "GET";
		return RWD_API_REPLY;
	}
	int needs_key = call->route == RWD_ROUTE_REWARDS || call->route == RWD_ROUTE_MODELS ||
		call->route == RWD_ROUTE_MODEL || call->route == RWD_ROUTE_STATS ||
		(call->route == RWD_ROUTE_METRICS && app->cfg->metrics_requires_key);
	if (needs_key && !rwd_app_authorized(app, call->authorization)) {
		rwd_reply_error(reply, 401, "unauthorized",
			call->authorization ? "the API key is not valid" : "an API key is required (Authorization: Bearer <key>)",
			NULL, 0, 0);
		reply->www_authenticate = 1;
		return RWD_API_REPLY;
	}
	switch (call->route) {
	case RWD_ROUTE_MODELS:
		rwd__api_models(call, reply);
		return RWD_API_REPLY;
	case RWD_ROUTE_MODEL:
		rwd__api_model(call, name, reply);
		return RWD_API_REPLY;
	case RWD_ROUTE_HEALTHZ:
		rwd__api_healthz(call, reply);
		return RWD_API_REPLY;
	case RWD_ROUTE_READYZ:
		rwd__api_readyz(call, reply);
		return RWD_API_REPLY;
	case RWD_ROUTE_METRICS:
		rwd__api_metrics(call, reply);
		return RWD_API_REPLY;
	case RWD_ROUTE_STATS:
		rwd__api_stats(call, reply);
		return RWD_API_REPLY;
	case RWD_ROUTE_DASHBOARD:
		rwd_dashboard_reply(reply);
		return RWD_API_REPLY;
	default:
		break;
	}
	if (call->content_type && !rwd_call_is_json_type(call->content_type)) {
		rwd_reply_error(reply, 415, "unsupported_media_type",
			"the body must be JSON (Content-Type: application/json)", NULL, 0, 0);
		return RWD_API_REPLY;
	}
	if (content_length >= 0 && (unsigned long long)content_length > app->cfg->max_body_bytes) {
		rwd_call_too_large(call, reply);
		return RWD_API_REPLY;
	}
	if (atomic_load(&app->draining)) {
		rwd_reply_error(reply, 503, "draining", "the server is shutting down", NULL, 0, 0);
		return RWD_API_REPLY;
	}
	return RWD_API_READ_BODY;
}

static int api_body(rwd_call *call, rwd_reply *reply);

void rwd_api_refused(rwd_call *call, rwd_reply *reply)
{
	if (rwd__api_imgrl_is(call->route))
		rwd__api_imgrl_reshape(call, reply);
}

int rwd_api_body(rwd_call *call, rwd_reply *reply)
{
	if (call->route == RWD_ROUTE_ADMIN) {
		rwd__api_admin(call, reply);
		return RWD_API_REPLY;
	}
	/* models resolved while parsing are pinned to call->pins until it completes */
	return api_body(call, reply);
}

static int api_body(rwd_call *call, rwd_reply *reply)
{
	if (rwd__api_imgrl_is(call->route))
		return rwd__api_imgrl_body(call, reply);
	if (rwd__api_compat_is(call->route))
		return rwd__api_compat_body(call, reply);
	return rwd__api_rewards_body(call, reply);
}

int rwd_api_submit(rwd_call *call, rwd_reply *reply)
{
	if (rwd__api_imgrl_is(call->route))
		return rwd__api_imgrl_submit(call, reply);
	if (rwd__api_compat_is(call->route))
		return rwd__api_compat_submit(call, reply);
	return rwd__api_rewards_submit(call, reply);
}

void rwd_api_finish(rwd_call *call, rwd_reply *reply)
{
	if (rwd__api_imgrl_is(call->route)) {
		rwd__api_imgrl_finish(call, reply);
		return;
	}
	if (rwd__api_compat_is(call->route)) {
		rwd__api_compat_finish(call, reply);
		return;
	}
	rwd__api_rewards_finish(call, reply);
}

void rwd_api_completed(rwd_call *call, int status)
{
	char code[8];
	snprintf(code, sizeof(code), "%d", status);
	const char *lab[2] = {rwd_api_route_name(call->route), code};
	rwd_metric_add(rwd_metric_with(call->app->f_http, lab), 1);
	if (call->route == RWD_ROUTE_REWARDS)
		rwd__api_rewards_completed(call, status);
	else if (rwd__api_compat_is(call->route))
		rwd__api_compat_completed(call, status);
	else if (rwd__api_imgrl_is(call->route))
		rwd__api_imgrl_completed(call, status);
	/* last: the completed functions read the pinned versions (their series) */
	rwd_app_unpin(call->app, &call->pins);
}
