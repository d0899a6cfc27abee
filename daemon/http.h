/*
 * daemon/http.h — the HTTP server (libmicrohttpd). Every MHD call of the
 * daemon lives in http.c, so a move to MHD 1.x/MHD2 stays local.
 *
 * One internal polling thread per `http.threads` (epoll, a pool when > 1),
 * suspend/resume for scoring requests, timeout and per-connection memory
 * limits. Every accepted connection gets an HTTP answer:
 * - http.connection_limit and http.per_ip_connection_limit are counted here,
 *   not by MHD: a connection past them is answered 503 + Retry-After: 1 +
 *   Connection: close instead of being reset. MHD's own limit (hard_limit,
 *   above ours) only stops accepting: connections then wait in the backlog.
 * - A request refused before its body is read (413, 401, 415, 503) reads
 *   and discards the body first, bounded by http.linger_max_bytes and
 *   http.linger_timeout_s (nginx's lingering close), then answers, so a
 *   client that writes its whole body before reading gets the answer, not a
 *   reset. With "Expect: 100-continue" the answer goes out before any upload.
 * - While draining, a body still uploading is discarded and answered 503
 *   draining; rwd_http_drain closes the listener without resetting what the
 *   kernel already completed and waits for every owed answer.
 */
#ifndef RWD_DAEMON_HTTP_H
#define RWD_DAEMON_HTTP_H

#include "app.h"
#include "core/error.h"

#include <stdint.h>

typedef struct rwd_http rwd_http;

/* Bind and start serving. */
int rwd_http_start(rwd_app *app, rwd_http **out, rwd_error *err);

/* The port actually bound (useful with port 0). */
unsigned rwd_http_port(const rwd_http *h);

/* Connections currently open (including idle keep-alive ones). */
unsigned rwd_http_connections(const rwd_http *h);

/*
 * The end of a drain (app->draining is set, every taken request answered or
 * about to be): close the listener losslessly (see http.c close_listener),
 * then wait until every connection that has a request in progress is
 * answered, at most until `until_ns` (rwd_now_ns clock); an upload while
 * its bytes keep coming; a connection with no request (new, or kept alive)
 * for 1 s. What is still open is closed by rwd_http_stop. Main thread.
 * Accepts NULL.
 */
void rwd_http_drain(rwd_http *h, uint64_t until_ns);

/* Stop the server (every suspended connection must have been resumed). Accepts NULL. */
void rwd_http_stop(rwd_http *h);

#endif
