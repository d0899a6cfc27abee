/* daemon/http.c — see http.h. The only file that calls libmicrohttpd. */
#include "http.h"

#include "api.h"
#include "core/thread.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct rwd_http {
	rwd_app *app;
	struct MHD_Daemon *d;
	MHD_socket quiesced_fd;
	unsigned port;
};

enum { H_READING, H_SUSPENDED, H_REPLIED };

typedef struct http_req {
	rwd_call call;
	rwd_http *h;
	struct MHD_Connection *conn;
	char *body;
	size_t len, cap;
	int too_large;
	size_t discarded;
	int state;
	int reply_ready;     /* reply filled before the resume (sync failure) */
	int status_sent;
	int fd;
	rwd_reply reply;
} http_req;

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
	char buf[512];
	vsnprintf(buf, sizeof(buf), fmt, ap);
	size_t n = strlen(buf);
	while (n && buf[n - 1] == '\n')
		buf[--n] = '\0';
	rwd_log(RWD_LOG_WARN, "http: %s", buf);
}

static enum MHD_Result send_reply(http_req *r)
{
	rwd_reply *rep = &r->reply;
	char *buf;
	size_t len;
	const char *ctype;
	if (rep->json) {
		buf = json_dumps(rep->json, JSON_COMPACT | JSON_REAL_PRECISION(9));
		len = buf ? strlen(buf) : 0;
		ctype = "application/json";
		if (!buf) {
			rep->status = 500;
			buf = strdup("{\"error\":{\"code\":\"internal\",\"message\":\"cannot encode the reply\"}}");
			len = buf ? strlen(buf) : 0;
		}
	} else {
		buf = rep->text;
		len = rep->text_len;
		rep->text = NULL;
		ctype = rep->content_type ? rep->content_type : "text/plain";
	}
	struct MHD_Response *resp = MHD_create_response_from_buffer(len, buf ? buf : (char *)"",
		buf ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!resp) {
		free(buf);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	if (rep->retry_after_s) {
		char ra[16];
		snprintf(ra, sizeof(ra), "%u", rep->retry_after_s);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
	}
	if (rep->allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, rep->allow);
	if (rep->www_authenticate)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	if (rep->timing[0])
		MHD_add_response_header(resp, "Server-Timing", rep->timing);
	if (rep->infer_header_length) {
		char hl[24];
		snprintf(hl, sizeof(hl), "%zu", rep->infer_header_length);
		MHD_add_response_header(resp, "Inference-Header-Content-Length", hl);
	}
	if (atomic_load(&r->call.app->draining))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)rep->status, resp);
	MHD_destroy_response(resp);
	r->status_sent = rep->status;
	r->state = H_REPLIED;
	json_decref(rep->json);
	rep->json = NULL;
	return ret;
}

/* From a worker (or the submitting thread): the call's last touch. */
static void call_resume(rwd_call *call)
{
	http_req *r = call->http;
	MHD_resume_connection(r->conn);
}

/* Peek at the socket of a suspended connection: EOF or an error means the
 * client is gone (MHD itself does not look while a connection is suspended). */
static int call_gone(rwd_call *call)
{
	http_req *r = call->http;
	if (r->fd < 0)
		return 0;
	char c;
	ssize_t n = recv(r->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n == 0)
		return 1;
	if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		return 1;
	return 0;
}

static const char *arena_copy(rwd_arena *a, const char *s)
{
	return s ? rwd_arena_strdup(a, s) : NULL;
}

static http_req *req_new(rwd_http *h, struct MHD_Connection *conn, const char *url, const char *method)
{
	http_req *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->call.arena = rwd_arena_create(0, 0);
	if (!r->call.arena) {
		free(r);
		return NULL;
	}
	r->h = h;
	r->conn = conn;
	r->fd = -1;
	r->call.app = h->app;
	r->call.http = r;
	r->call.resume = call_resume;
	r->call.gone = call_gone;
	r->call.start_ns = rwd_now_ns();
	r->call.method = arena_copy(r->call.arena, method);
	r->call.url = arena_copy(r->call.arena, url);
	r->call.authorization = arena_copy(r->call.arena,
		MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION));
	r->call.content_type = arena_copy(r->call.arena,
		MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE));
	r->call.query_model = arena_copy(r->call.arena,
		MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "model"));
	/* OIP binary extension: the JSON header's length; replies may be binary too */
	r->call.infer_header = arena_copy(r->call.arena,
		MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Inference-Header-Content-Length"));
	r->call.binary_replies = 1;
	if (!r->call.method || !r->call.url) {
		rwd_arena_destroy(r->call.arena);
		free(r);
		return NULL;
	}
	return r;
}

static long long content_length(struct MHD_Connection *conn)
{
	const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (!cl)
		return -1;
	char *end;
	errno = 0;
	long long v = strtoll(cl, &end, 10);
	if (errno || end == cl || v < 0)
		return -1;
	return v;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
	const char *method, const char *version, const char *upload_data, size_t *upload_data_size,
	void **con_cls)
{
	rwd_http *h = cls;
	http_req *r = *con_cls;
	size_t max = h->app->cfg->max_body_bytes;

	if (!r) {
		r = req_new(h, conn, url, method);
		if (!r)
			return MHD_NO;
		*con_cls = r;
		const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
		if (di)
			rwd_metric_set(h->app->connections, di->num_connections);
		if (rwd_api_headers(&r->call, content_length(conn), &r->reply) == RWD_API_REPLY)
			return send_reply(r);
		r->state = H_READING;
		return MHD_YES;
	}
	if (r->state == H_READING && *upload_data_size) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		if (r->too_large) {
			r->discarded += n;
			/* a client that keeps sending far past the cap is cut off */
			return r->discarded > 4 * max ? MHD_NO : MHD_YES;
		}
		if (n > max - r->len) {
			r->too_large = 1;
			r->discarded = r->len + n;
			free(r->body);
			r->body = NULL;
			r->len = r->cap = 0;
			return MHD_YES;
		}
		if (r->len + n > r->cap) {
			size_t cap = r->cap ? r->cap : 4096;
			while (cap < r->len + n)
				cap *= 2;
			if (cap > max)
				cap = max;
			char *nb = realloc(r->body, cap);
			if (!nb)
				return MHD_NO;
			r->body = nb;
			r->cap = cap;
		}
		memcpy(r->body + r->len, upload_data, n);
		r->len += n;
		return MHD_YES;
	}
	if (r->state == H_READING) {
		if (r->too_large) {
			rwd_api_too_large(&r->call, &r->reply);
			return send_reply(r);
		}
		r->call.body = r->body ? r->body : "";
		r->call.body_len = r->len;
		if (rwd_api_body(&r->call, &r->reply) == RWD_API_REPLY)
			return send_reply(r);
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn,
			MHD_CONNECTION_INFO_CONNECTION_FD);
		r->fd = ci ? ci->connect_fd : -1;
		/* suspend before queueing, so a fast worker cannot resume a
		 * connection that is not suspended yet */
		r->state = H_SUSPENDED;
		MHD_suspend_connection(conn);
		if (rwd_api_submit(&r->call, &r->reply) != 0) {
			r->reply_ready = 1;
			MHD_resume_connection(conn);
		}
		return MHD_YES;
	}
	if (r->state == H_SUSPENDED) {
		/* resumed: the work is done */
		if (!r->reply_ready)
			rwd_api_finish(&r->call, &r->reply);
		return send_reply(r);
	}
	return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
	enum MHD_RequestTerminationCode toe)
{
	http_req *r = *con_cls;
	if (!r)
		return;
	*con_cls = NULL;
	/* 499: the client went away before a reply was sent (nginx's convention) */
	int status = r->status_sent && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? r->status_sent :
		r->status_sent ? r->status_sent : 499;
	rwd_api_completed(&r->call, status);
	if (rwd_log_get_level() >= RWD_LOG_DEBUG)
		rwd_log(RWD_LOG_DEBUG, "%s %s %d %.3f ms", r->call.method, r->call.url, status,
			(double)(rwd_now_ns() - r->call.start_ns) / 1e6);
	json_decref(r->reply.json);
	free(r->reply.text);
	free(r->body);
	rwd_arena_destroy(r->call.arena);
	free(r);
}

int rwd_http_start(rwd_app *app, rwd_http **out, rwd_error *err)
{
	const rwd_config *c = app->cfg;
	rwd_http *h = calloc(1, sizeof(*h));
	if (!h)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	h->app = app;
	h->quiesced_fd = MHD_INVALID_SOCKET;
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
		MHD_USE_ERROR_LOG;
	socklen_t sl = sizeof(ss);
	if (app->listen_fd >= 0) {
		/* socket activation: MHD serves the passed listener (its address decides the family) */
		if (getsockname(app->listen_fd, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_INET6)
			flags |= MHD_USE_IPv6;
	} else if (strchr(c->listen_host, ':')) {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(c->listen_port);
		inet_pton(AF_INET6, c->listen_host, &a6->sin6_addr);
		flags |= MHD_USE_IPv6;
	} else {
		struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
		a4->sin_family = AF_INET;
		a4->sin_port = htons(c->listen_port);
		inet_pton(AF_INET, c->listen_host, &a4->sin_addr);
	}
	/* the logger first, so start-up failures are logged (MHD's advice) */
	struct MHD_OptionItem opts[] = {
		{MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_logger, NULL},
		{app->listen_fd >= 0 ? MHD_OPTION_LISTEN_SOCKET : MHD_OPTION_SOCK_ADDR,
			app->listen_fd >= 0 ? (intptr_t)app->listen_fd : 0, app->listen_fd >= 0 ? NULL : &ss},
		{MHD_OPTION_CONNECTION_LIMIT, (intptr_t)c->connection_limit, NULL},
		{MHD_OPTION_PER_IP_CONNECTION_LIMIT, (intptr_t)c->per_ip_connection_limit, NULL},
		{MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)c->connection_timeout_s, NULL},
		{MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)c->connection_memory_limit, NULL},
		{MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, h},
		/* a pool only when asked for more than one thread (MHD warns on 0/1) */
		{c->http_threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END,
			(intptr_t)c->http_threads, NULL},
		{MHD_OPTION_END, 0, NULL},
	};
	h->d = MHD_start_daemon(flags, c->listen_port, NULL, NULL, on_request, h,
		MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	if (!h->d) {
		free(h);
		return rwd_errorf(err, RWD_E_IO, "cannot listen on %s:%u (in use, or not a local address?)",
			c->listen_host, c->listen_port);
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	h->port = di ? di->port : c->listen_port;
	if (app->listen_fd >= 0 && (!di || !di->port))
		h->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
			((struct sockaddr_in *)&ss)->sin_port);
	*out = h;
	return 0;
}

unsigned rwd_http_port(const rwd_http *h)
{
	return h->port;
}

unsigned rwd_http_connections(const rwd_http *h)
{
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
	return di ? di->num_connections : 0;
}

void rwd_http_quiesce(rwd_http *h)
{
	if (h && h->quiesced_fd == MHD_INVALID_SOCKET)
		h->quiesced_fd = MHD_quiesce_daemon(h->d);
}

void rwd_http_stop(rwd_http *h)
{
	if (!h)
		return;
	MHD_stop_daemon(h->d);
	/* the quiesced listen socket is ours to close, and only after the stop */
	if (h->quiesced_fd != MHD_INVALID_SOCKET)
		close(h->quiesced_fd);
	free(h);
}
