/*
 * daemon/api_compat.h — the drop-in trainer endpoints (api_compat.c):
 * OpenRLHF POST /get_reward, vLLM-style POST /classify and /pooling,
 * SGLang-style POST /v1/embeddings, and the Open Inference Protocol v2
 * (/v2/health/{live,ready}, /v2/models/{m}[/ready|/infer]).
 *
 * api.c asks rwd__api_compat_route() for a route when the native routes do
 * not match, and hands every call whose route rwd__api_compat_is() accepts
 * to the functions below (same contract as rwd_api_headers/body/submit/
 * finish/completed in api.h). Not for http.c.
 */
#ifndef RWD_DAEMON_API_COMPAT_H
#define RWD_DAEMON_API_COMPAT_H

#include "call.h"

/* The compat route of url (RWD_ROUTE_NONE when none). */
int rwd__api_compat_route(const char *url);
/* Non-zero when route is one of the compat routes. */
int rwd__api_compat_is(int route);

int rwd__api_compat_headers(rwd_call *call, long long content_length, rwd_reply *reply);
int rwd__api_compat_body(rwd_call *call, rwd_reply *reply);
int rwd__api_compat_submit(rwd_call *call, rwd_reply *reply);
void rwd__api_compat_finish(rwd_call *call, rwd_reply *reply);
void rwd__api_compat_completed(rwd_call *call, int status);

#endif
