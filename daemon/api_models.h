/* daemon/api_models.h — GET /v1/models[/{name}], /healthz, /readyz, /metrics (api_models.c; for api.c). */
#ifndef RWD_DAEMON_API_MODELS_H
#define RWD_DAEMON_API_MODELS_H

#include "call.h"

void rwd__api_models(rwd_call *call, rwd_reply *reply);
void rwd__api_model(rwd_call *call, const char *name, rwd_reply *reply);
void rwd__api_healthz(rwd_call *call, rwd_reply *reply);
void rwd__api_readyz(rwd_call *call, rwd_reply *reply);
void rwd__api_metrics(rwd_call *call, rwd_reply *reply);

#endif
