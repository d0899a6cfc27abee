/*
 * daemon/api_imgrl.h — the image-RL trainers' drop-in endpoints
 * (api_imgrl.c): POST / with a pickled body (flow_grpo, verl-omni,
 * EditScore) and Flow-Factory's POST /compute.
 *
 * api.c asks rwd__api_imgrl_route() first (it needs the method: GET / is
 * the dashboard) and hands every call whose route rwd__api_imgrl_is()
 * accepts to the functions below (the contract of rwd_api_headers/body/
 * submit/finish/completed in api.h). Not for http.c.
 */
#ifndef RWD_DAEMON_API_IMGRL_H
#define RWD_DAEMON_API_IMGRL_H

#include "call.h"

/* RWD_ROUTE_IMGRL / RWD_ROUTE_COMPUTE for this method and url, else RWD_ROUTE_NONE. */
int rwd__api_imgrl_route(const char *method, const char *url);
int rwd__api_imgrl_is(int route);

int rwd__api_imgrl_headers(rwd_call *call, long long content_length, rwd_reply *reply);
int rwd__api_imgrl_body(rwd_call *call, rwd_reply *reply);
int rwd__api_imgrl_submit(rwd_call *call, rwd_reply *reply);
void rwd__api_imgrl_finish(rwd_call *call, rwd_reply *reply);
void rwd__api_imgrl_completed(rwd_call *call, int status);
/* A native JSON error in *reply → the protocol's shape, same status and Retry-After. */
void rwd__api_imgrl_reshape(rwd_call *call, rwd_reply *reply);

#endif
