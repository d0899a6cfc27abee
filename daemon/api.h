/*
 * daemon/api.h — the REST routes, independent of the HTTP library.
 *
 * http.c turns each HTTP request into an rwd_call and asks the routes for
 * an rwd_reply. A route either answers at once (health, models, metrics,
 * every error), or, for POST /v1/rewards, asks to be suspended: http.c
 * suspends the connection, then calls rwd_api_submit(), which queues the
 * work; when the last item is done a worker calls call->resume(call) and
 * http.c, back on its own thread, calls rwd_api_finish() for the reply.
 * The contract is proto/openapi.yaml.
 */
#ifndef RWD_DAEMON_API_H
#define RWD_DAEMON_API_H

#include "call.h"

#include <jansson.h>
#include <stddef.h>

/* Route names for metrics labels (index = call->route). */
const char *rwd_api_route_name(int route);

/*
 * Headers are in: pick the route, check method, auth, content type and the
 * declared Content-Length (content_length < 0: none). Returns RWD_API_REPLY
 * with *reply filled (an error, or a GET answered), or RWD_API_READ_BODY.
 */
int rwd_api_headers(rwd_call *call, long long content_length, rwd_reply *reply);

/* The body is complete. Returns RWD_API_REPLY or RWD_API_SUSPEND. */
int rwd_api_body(rwd_call *call, rwd_reply *reply);

/*
 * After the connection is suspended: queue the work. Returns 0 (call->resume
 * will be called later, maybe already during this call), or non-zero with
 * *reply filled (429, 503) and no resume coming.
 */
int rwd_api_submit(rwd_call *call, rwd_reply *reply);

/*
 * http.c refused the call after rwd_api_headers picked its route (the memory
 * budget is full, a chunked body outgrew the limit) and filled *reply with
 * the native JSON error: render it in the route's protocol instead (POST /:
 * a pickled {"error"}), keeping status and Retry-After.
 */
void rwd_api_refused(rwd_call *call, rwd_reply *reply);

/* After resume: build the reply of a suspended call. */
void rwd_api_finish(rwd_call *call, rwd_reply *reply);

/* The request finished (reply sent or connection lost): metrics. */
void rwd_api_completed(rwd_call *call, int status);

#endif
