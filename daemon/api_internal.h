/* daemon/api_internal.h — what the api_*.c route files share (not for http.c). */
#ifndef RWD_DAEMON_API_INTERNAL_H
#define RWD_DAEMON_API_INTERNAL_H

#include "api.h"

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
	RWD_ROUTE_COUNT_
};

/* api.c: application/json, with optional parameters (charset=utf-8). */
int rwd__api_is_json_type(const char *content_type);

/* api_models.c */
void rwd__api_models(rwd_call *call, rwd_reply *reply);
void rwd__api_model(rwd_call *call, const char *name, rwd_reply *reply);
void rwd__api_healthz(rwd_call *call, rwd_reply *reply);
void rwd__api_readyz(rwd_call *call, rwd_reply *reply);
void rwd__api_metrics(rwd_call *call, rwd_reply *reply);

/* api_rewards.c */
int rwd__api_rewards_body(rwd_call *call, rwd_reply *reply);
int rwd__api_rewards_submit(rwd_call *call, rwd_reply *reply);
void rwd__api_rewards_finish(rwd_call *call, rwd_reply *reply);
void rwd__api_rewards_completed(rwd_call *call, int status);


#endif
