/*
 * daemon/dashboard.h — GET /: the live dashboard, one self-contained HTML
 * page (inline CSS and JS, no CDN) compiled into the binary from
 * daemon/assets/dashboard.html. The page polls /metrics, /v1/models,
 * /v1/stats (its panel hides when that answers 404) and /healthz.
 */
#ifndef RWD_DAEMON_DASHBOARD_H
#define RWD_DAEMON_DASHBOARD_H

#include "reply.h"

/* Fill a 200 text/html reply with the page (a malloc'd copy). */
void rwd_dashboard_reply(rwd_reply *reply);

#endif
