/* daemon/call.c — request checks every route shares (see call.h). */
#include "call.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

int rwd_call_is_json_type(const char *ct)
{
	size_t n = strlen("application/json");
	if (strncasecmp(ct, "application/json", n) != 0)
		return 0;
	return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

void rwd_call_too_large(rwd_call *call, rwd_reply *reply)
{
	char msg[128];
	snprintf(msg, sizeof(msg), "the body is larger than the limit of %zu bytes",
		call->app->cfg->max_body_bytes);
	rwd_reply_error(reply, 413, "too_large", msg, NULL, 0, 0);
}

rwd_app_finder rwd_call_finder(rwd_call *call)
{
	call->pins.arena = call->arena;
	rwd_app_finder f = {call->app, &call->pins};
	return f;
}
