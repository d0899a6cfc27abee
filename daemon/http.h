/*
 * daemon/http.h — the HTTP server (libmicrohttpd). Every MHD call of the
 * daemon lives in http.c, so a move to MHD 1.x/MHD2 stays local.
 *
 * One internal polling thread per `http.threads` (epoll, a pool when > 1),
 * suspend/resume for scoring requests, explicit connection, per-IP, timeout
 * and per-connection memory limits; bodies are read incrementally against
 * max_body_bytes (413 as soon as Content-Length says so, else when the
 * running total passes it; the rest of such a body is discarded, and a
 * client that keeps sending past 4x the cap is disconnected).
 */
#ifndef RWD_DAEMON_HTTP_H
#define RWD_DAEMON_HTTP_H

#include "app.h"
#include "core/error.h"

typedef struct rwd_http rwd_http;

/* Bind and start serving. */
int rwd_http_start(rwd_app *app, rwd_http **out, rwd_error *err);

/* The port actually bound (useful with port 0). */
unsigned rwd_http_port(const rwd_http *h);

/* Connections currently open (including idle keep-alive ones). */
unsigned rwd_http_connections(const rwd_http *h);

/* Stop accepting new connections; open ones keep being served. */
void rwd_http_quiesce(rwd_http *h);

/* Stop the server (every suspended connection must have been resumed). Accepts NULL. */
void rwd_http_stop(rwd_http *h);

#endif
