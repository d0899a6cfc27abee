/*
 * daemon/api_rewards.h — POST /v1/rewards (api_rewards.c; for api.c), with
 * the contract of rwd_api_body/submit/finish/completed in api.h.
 */
#ifndef RWD_DAEMON_API_REWARDS_H
#define RWD_DAEMON_API_REWARDS_H

#include "call.h"

int rwd__api_rewards_body(rwd_call *call, rwd_reply *reply);
int rwd__api_rewards_submit(rwd_call *call, rwd_reply *reply);
void rwd__api_rewards_finish(rwd_call *call, rwd_reply *reply);
void rwd__api_rewards_completed(rwd_call *call, int status);

#endif
