/*
 * daemon/call.h — one HTTP request as the routes see it (rwd_call), the
 * route ids, and the request checks every route shares. Below the router
 * and every route; it depends on app.h and reply.h only.
 */
#ifndef RWD_DAEMON_CALL_H
#define RWD_DAEMON_CALL_H

#include "app.h"
#include "core/arena.h"
#include "reply.h"

#include <stddef.h>
#include <stdint.h>

typedef struct rwd_call rwd_call;
struct rwd_call {
	rwd_app *app;
	const char *method;
	const char *url;
	const char *authorization;  /* header value or NULL */
	const char *content_type;   /* header value or NULL */
	const char *query_model;    /* the URL's ?model= argument or NULL */
	/* The Inference-Header-Content-Length header or NULL (OIP binary bodies),
	 * and whether http.c sends reply->infer_header_length (binary replies). */
	const char *infer_header;
	int binary_replies;
	const char *body;
	size_t body_len;
	rwd_arena *arena;           /* per request, freed when the request completes */
	uint64_t start_ns;
	int route;                  /* set by rwd_api_route() */
	/* set by http.c */
	void (*resume)(rwd_call *call); /* any thread; the call's last touch */
	int (*gone)(rwd_call *call);    /* non-zero when the client went away */
	void *http;
	void *state;                /* the route's (a rewards job) */
	rwd_pins pins;              /* app.c: the model versions this request holds (arena: set by the route) */
};

enum { RWD_API_REPLY = 0, RWD_API_READ_BODY = 1, RWD_API_SUSPEND = 2 };

/* Routes (call->route); names for metrics labels in api.c, in this order. */
enum {
	RWD_ROUTE_NONE,
	RWD_ROUTE_REWARDS,
	RWD_ROUTE_MODELS,
	RWD_ROUTE_MODEL,
	RWD_ROUTE_HEALTHZ,
	RWD_ROUTE_READYZ,
	RWD_ROUTE_METRICS,
	RWD_ROUTE_DASHBOARD,
	RWD_ROUTE_ADMIN,        /* admin.c: POST /v1/models/{name}/load|unload */
	RWD_ROUTE_GET_REWARD,   /* api_compat.c: the drop-in routes, in this order */
	RWD_ROUTE_CLASSIFY,
	RWD_ROUTE_POOLING,
	RWD_ROUTE_EMBEDDINGS,
	RWD_ROUTE_V2_LIVE,
	RWD_ROUTE_V2_READY,
	RWD_ROUTE_V2_MODEL,
	RWD_ROUTE_V2_MODEL_READY,
	RWD_ROUTE_V2_INFER,
	RWD_ROUTE_V1_CLASSIFY,  /* SGLang/vLLM POST /v1/classify */
	RWD_ROUTE_HEALTH,       /* vLLM/SGLang GET /health */
	RWD_ROUTE_V2_SERVER,    /* OIP GET /v2 (server metadata) */
	RWD_ROUTE_V2_MODEL_CONFIG, /* OIP GET /v2/models/{m}/config */
	RWD_ROUTE_STATS,        /* api_rl.c */
	RWD_ROUTE_IMGRL,        /* api_imgrl.c: POST / (pickle), POST /compute */
	RWD_ROUTE_COMPUTE,
	RWD_ROUTE_COUNT_
};

/* application/json, with optional parameters (charset=utf-8). */
int rwd_call_is_json_type(const char *content_type);

/* The body over max_body_bytes: 413 naming the limit (also http.c's running count). */
void rwd_call_too_large(rwd_call *call, rwd_reply *reply);

/* The finder rwd_app_find_model() takes for this call: versions pin to call->pins. */
rwd_app_finder rwd_call_finder(rwd_call *call);

#endif
