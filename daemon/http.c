/* daemon/http.c — see http.h. The only file that calls libmicrohttpd. */
#include "http.h"

#include "api.h"
#include "core/json.h"
#include "core/thread.h"
#include "log.h"
#include "mem.h"
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <strings.h>
#include <time.h>
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

/*
 * Our own per-address connection counts (MHD's per-IP limit closes the
 * socket at accept, before the client can be told anything).
 */
typedef struct ip_slot {
	unsigned char key[16]; /* IPv4 as ::ffff:a.b.c.d */
	unsigned count;        /* 0: empty */
} ip_slot;

/* Per connection (MHD's socket context), touched only by its MHD thread. */
typedef struct http_conn {
	unsigned char ip[16];
	int has_ip;
	int over;   /* 1: past http.connection_limit, 2: past the per-IP limit */
	int owing;  /* 1: no complete request head yet (h->fresh), 2: its body is being read
	             * (h->uploading), 3: the request is in and not answered yet (h->active) */
} http_conn;

struct rwd_http {
	rwd_app *app;
	struct MHD_Daemon *d;
	MHD_socket listen_fd;    /* MHD's listener, closed by rwd_http_drain */
	int listener_closed;
	unsigned port;
	unsigned hard_limit;     /* MHD's own limit (past it, accept waits) */
	atomic_uint open;        /* connections MHD holds */
	atomic_uint fresh;       /* connections that owe an answer, request not (fully) sent yet */
	atomic_uint uploading;   /* connections whose request body is being read */
	atomic_uint active;      /* connections whose request is in, not answered yet */
	atomic_ullong upload_ns; /* the last time any body byte arrived */
	pthread_mutex_t ip_mu;
	ip_slot *ips;
	size_t ip_cap;           /* power of two, > 2 x hard_limit */
};

enum { H_READING, H_SUSPENDED, H_REPLIED, H_DISCARD };

typedef struct http_req {
	rwd_call call;
	rwd_http *h;
	struct MHD_Connection *conn;
	http_conn *hc;
	char *body;
	size_t len, cap;
	size_t charged;      /* bytes of the body charged to the memory budget */
	long long cl;        /* the Content-Length, or -1 (chunked) */
	int over_budget;     /* a jansson allocation was refused while parsing */
	size_t discarded;
	uint64_t discard_t0;
	int state;
	int reply_ready;     /* reply filled before the resume (sync failure) */
	int status_sent;
	int fd;
	rwd_reply reply;
} http_req;

static size_t ip_hash(const unsigned char *k)
{
	uint64_t x = 1469598103934665603ull;
	for (int i = 0; i < 16; i++)
		x = (x ^ k[i]) * 1099511628211ull;
	return (size_t)x;
}

/* One more connection from k; returns its count (0: the table is full). */
static unsigned ip_add(rwd_http *h, const unsigned char *k)
{
	pthread_mutex_lock(&h->ip_mu);
	size_t m = h->ip_cap - 1, i = ip_hash(k) & m;
	unsigned n = 0;
	for (size_t probe = 0; probe < h->ip_cap; probe++, i = (i + 1) & m) {
		if (h->ips[i].count == 0) {
			memcpy(h->ips[i].key, k, 16);
			n = h->ips[i].count = 1;
			break;
		}
		if (memcmp(h->ips[i].key, k, 16) == 0) {
			n = ++h->ips[i].count;
			break;
		}
	}
	pthread_mutex_unlock(&h->ip_mu);
	return n;
}

/* One connection from k fewer (linear probing, backward-shift deletion). */
static void ip_del(rwd_http *h, const unsigned char *k)
{
	pthread_mutex_lock(&h->ip_mu);
	size_t m = h->ip_cap - 1, i = ip_hash(k) & m;
	for (size_t probe = 0; probe < h->ip_cap && h->ips[i].count; probe++, i = (i + 1) & m) {
		if (memcmp(h->ips[i].key, k, 16) != 0)
			continue;
		if (--h->ips[i].count)
			break;
		size_t j = i;
		for (;;) {
			j = (j + 1) & m;
			if (!h->ips[j].count)
				break;
			size_t home = ip_hash(h->ips[j].key) & m;
			/* move j into the hole at i unless its home lies cyclically in (i, j] */
			int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
			if (!stays) {
				h->ips[i] = h->ips[j];
				h->ips[j].count = 0;
				i = j;
			}
		}
		break;
	}
	pthread_mutex_unlock(&h->ip_mu);
}

/* Move a connection between "owes nothing" (0), fresh (1), uploading (2) and active (3). */
static void owe(rwd_http *h, http_conn *hc, int to)
{
	if (!hc || hc->owing == to)
		return;
	atomic_uint *c[4] = {NULL, &h->fresh, &h->uploading, &h->active};
	if (c[hc->owing])
		atomic_fetch_sub(c[hc->owing], 1);
	if (c[to])
		atomic_fetch_add(c[to], 1);
	hc->owing = to;
}

/* MHD's thread: a connection is taken (STARTED) or gone (CLOSED). */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
	enum MHD_ConnectionNotificationCode code)
{
	rwd_http *h = cls;
	const rwd_config *c = h->app->cfg;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		unsigned n = atomic_fetch_add(&h->open, 1) + 1;
		http_conn *hc = calloc(1, sizeof(*hc));
		*socket_context = hc;
		if (!hc)
			return;
		/* a fresh connection owes an answer to the request it is about to send */
		owe(h, hc, 1);
		if (n > c->connection_limit)
			hc->over = 1;
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn,
			MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		const struct sockaddr *sa = ci ? ci->client_addr : NULL;
		if (sa && c->per_ip_connection_limit && c->per_ip_connection_limit < c->connection_limit) {
			if (sa->sa_family == AF_INET) {
				memset(hc->ip, 0, 10);
				hc->ip[10] = hc->ip[11] = 0xff;
				memcpy(hc->ip + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
				hc->has_ip = 1;
			} else if (sa->sa_family == AF_INET6) {
				memcpy(hc->ip, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
				hc->has_ip = 1;
			}
			if (hc->has_ip) {
				unsigned k = ip_add(h, hc->ip);
				if (k == 0)
					hc->has_ip = 0, hc->over = 2;
				else if (k > c->per_ip_connection_limit && !hc->over)
					hc->over = 2;
			}
		}
		return;
	}
	http_conn *hc = *socket_context;
	*socket_context = NULL;
	atomic_fetch_sub(&h->open, 1);
	if (!hc)
		return;
	owe(h, hc, 0);
	if (hc->has_ip)
		ip_del(h, hc->ip);
	free(hc);
}

static http_conn *conn_ctx(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

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
		buf = rwd_json_dumps(rep->json, JSON_COMPACT | JSON_REAL_PRECISION(9));
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
	/* draining, or a connection past a limit: this is its last answer */
	if (atomic_load(&r->call.app->draining) || (r->hc && r->hc->over))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	owe(r->h, r->hc, 3);
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
	r->call.arena = rwd_arena_create(0, h->app->cfg->request_arena_bytes);
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
	/* charged from here on; its first block (the strings above) is forced,
	 * so a full budget can still be answered 503 */
	rwd_arena_set_budget(r->call.arena, rwd_mem_budget());
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

/* Will a body follow the headers (a Content-Length > 0, or chunked)? */
static int body_follows(struct MHD_Connection *conn, long long cl)
{
	if (cl > 0)
		return 1;
	return cl < 0 && MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
}

static int expects_continue(struct MHD_Connection *conn)
{
	const char *e = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
	return e && strcasecmp(e, "100-continue") == 0;
}

static void drop_body(http_req *r)
{
	free(r->body);
	r->body = NULL;
	r->len = r->cap = 0;
	if (r->charged)
		rwd_budget_release(rwd_mem_budget(), r->charged);
	r->charged = 0;
}

/*
 * Answer with r->reply without taking the body. MHD 0.9.75 can queue a reply
 * only at the first call or once the whole request is in, and a reply queued
 * at the first call means it reads nothing more and closes after it: a client
 * still writing its body (urllib, requests, http.client write it all before
 * reading) then gets a reset instead of the answer. So, as nginx's lingering
 * close, the rest of the body is read and discarded first (bounded by
 * http.linger_max_bytes and http.linger_timeout_s) and the answer goes out
 * when it is in. With "Expect: 100-continue" (no byte of the body sent yet),
 * or a Content-Length past the linger bound, the answer goes out at once.
 */
static enum MHD_Result refuse(http_req *r, int first, long long cl)
{
	drop_body(r);
	if (first && (!body_follows(r->conn, cl) || expects_continue(r->conn) ||
		(unsigned long long)cl > r->h->app->cfg->linger_max_bytes))
		return send_reply(r);
	if (r->state != H_DISCARD) {
		r->state = H_DISCARD;
		r->discard_t0 = rwd_now_ns();
	}
	return MHD_YES;
}

static void reply_overloaded(http_req *r, int why)
{
	rwd_reply_error(&r->reply, 503, "overloaded", why == 2 ?
		"too many connections from this address (http.per_ip_connection_limit); retry later" :
		"too many connections (http.connection_limit); retry later", NULL, 0, 0);
	r->reply.retry_after_s = 1;
}

/* limits.memory_budget_bytes is full: nothing of this request is kept */
static void reply_budget(http_req *r)
{
	rwd_reply_error(&r->reply, 503, "overloaded", "the server's memory budget for requests "
		"(limits.memory_budget_bytes) is in use; retry later", NULL, 0, 0);
	r->reply.retry_after_s = 1;
	rwd_api_refused(&r->call, &r->reply); /* in the route's protocol (POST /: pickled) */
}

/* Make room for n more body bytes, charging the budget first. 0, or -1: the
 * budget is full (nothing changed), or -2: out of memory. */
static int body_reserve(http_req *r, size_t n, size_t max)
{
	if (r->len + n <= r->cap)
		return 0;
	size_t cap;
	if (r->cl > 0) {
		/* the declared length, charged at the headers: one buffer, no copies */
		cap = (size_t)r->cl;
	} else {
		cap = r->cap ? r->cap : 4096;
		while (cap < r->len + n)
			cap *= 2;
	}
	if (cap > max)
		cap = max;
	if (cap < r->len + n)
		cap = r->len + n;
	if (cap > r->charged) {
		if (rwd_budget_charge(rwd_mem_budget(), cap - r->charged) != 0)
			return -1;
		r->charged = cap;
	}
	char *nb = realloc(r->body, cap);
	if (!nb)
		return -2;
	r->body = nb;
	r->cap = cap;
	return 0;
}

static void reply_draining(http_req *r)
{
	rwd_reply_error(&r->reply, 503, "draining", "the server is shutting down", NULL, 0, 0);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
	const char *method, const char *version, const char *upload_data, size_t *upload_data_size,
	void **con_cls)
{
	rwd_http *h = cls;
	http_req *r = *con_cls;
	const rwd_config *cfg = h->app->cfg;
	size_t max = cfg->max_body_bytes;
	(void)version;

	if (!r) {
		http_conn *hc = conn_ctx(conn);
		/* a request head is in: this connection owes its answer */
		owe(h, hc, 2);
		r = req_new(h, conn, url, method);
		if (!r)
			return MHD_NO;
		*con_cls = r;
		r->hc = hc;
		rwd_metric_set(h->app->connections, atomic_load(&h->open));
		long long cl = content_length(conn);
		if (hc && hc->over) {
			reply_overloaded(r, hc->over);
			return refuse(r, 1, cl);
		}
		if (rwd_api_headers(&r->call, cl, &r->reply) == RWD_API_REPLY)
			return refuse(r, 1, cl);
		/* the declared body is charged before any byte of it is read */
		r->cl = cl;
		if (cl > 0 && (unsigned long long)cl <= max) {
			if (rwd_budget_charge(rwd_mem_budget(), (size_t)cl) != 0) {
				reply_budget(r);
				return refuse(r, 1, cl);
			}
			r->charged = (size_t)cl;
		}
		r->state = H_READING;
		return MHD_YES;
	}
	if (*upload_data_size)
		atomic_store(&h->upload_ns, rwd_now_ns());
	if (r->state == H_DISCARD && *upload_data_size) {
		r->discarded += *upload_data_size;
		*upload_data_size = 0;
		/* lingering is bounded in bytes and time; past them the connection is cut */
		if (r->discarded > cfg->linger_max_bytes ||
			rwd_now_ns() - r->discard_t0 > (uint64_t)cfg->linger_timeout_s * 1000000000ull) {
			rwd_log(RWD_LOG_WARN, "http: %s %s: closed after discarding %zu body bytes "
				"(http.linger_max_bytes / linger_timeout_s)", r->call.method, r->call.url,
				r->discarded);
			return MHD_NO;
		}
		return MHD_YES;
	}
	if (r->state == H_DISCARD)
		return send_reply(r);
	if (r->state == H_READING && *upload_data_size) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		if (atomic_load(&h->app->draining)) {
			/* not taken yet: the rest is discarded, the answer is 503 draining */
			r->discarded = r->len + n;
			reply_draining(r);
			return refuse(r, 0, -1);
		}
		if (n > max - r->len) {
			r->discarded = r->len + n;
			rwd_call_too_large(&r->call, &r->reply);
			rwd_api_refused(&r->call, &r->reply);
			return refuse(r, 0, -1);
		}
		int br = body_reserve(r, n, max);
		if (br == -1) {
			/* a chunked body grew past what the budget holds */
			r->discarded = r->len + n;
			reply_budget(r);
			return refuse(r, 0, -1);
		}
		if (br)
			return MHD_NO;
		memcpy(r->body + r->len, upload_data, n);
		r->len += n;
		return MHD_YES;
	}
	if (r->state == H_READING) {
		owe(h, r->hc, 3);
		r->call.body = r->body ? r->body : "";
		r->call.body_len = r->len;
		/* the parse's jansson allocations are charged, and refused past the budget */
		rwd_mem_parse_begin(&r->over_budget);
		int ar = rwd_api_body(&r->call, &r->reply);
		rwd_mem_parse_end();
		if (ar == RWD_API_REPLY && (r->over_budget || rwd_arena_over_budget(r->call.arena))) {
			/* failed for want of memory, not for its content: retry later */
			json_decref(r->reply.json);
			free(r->reply.text);
			memset(&r->reply, 0, sizeof(r->reply));
			reply_budget(r);
		} else if (ar == RWD_API_REPLY && rwd_arena_over_limit(r->call.arena)) {
			/* this request alone needs more than its arena may hold: too large */
			char msg[160];
			snprintf(msg, sizeof(msg), "the request needs more than limits.request_arena_bytes "
				"(%zu bytes) once parsed; send fewer or smaller items", cfg->request_arena_bytes);
			json_decref(r->reply.json);
			free(r->reply.text);
			memset(&r->reply, 0, sizeof(r->reply));
			rwd_reply_error(&r->reply, 413, "too_large", msg, NULL, 0, 0);
		}
		if (ar == RWD_API_REPLY)
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
	/* answered: a kept-alive connection may carry a next request, which the
	 * drain gives the same grace as a fresh connection (its answer: 503
	 * draining + close) rather than closing it under a request in flight */
	owe(r->h, r->hc, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? 1 : 0);
	if (rwd_log_get_level() >= RWD_LOG_DEBUG)
		rwd_log(RWD_LOG_DEBUG, "%s %s %d %.3f ms", r->call.method, r->call.url, status,
			(double)(rwd_now_ns() - r->call.start_ns) / 1e6);
	json_decref(r->reply.json);
	free(r->reply.text);
	drop_body(r);
	rwd_arena_destroy(r->call.arena);
	free(r);
	/* the end of a burst: give the memory back */
	rwd_mem_maybe_trim();
}

int rwd_http_start(rwd_app *app, rwd_http **out, rwd_error *err)
{
	const rwd_config *c = app->cfg;
	rwd_http *h = calloc(1, sizeof(*h));
	if (!h)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	h->app = app;
	h->listen_fd = MHD_INVALID_SOCKET;
	/*
	 * Our limits answer 503; MHD's own limit is the hard one (past it MHD
	 * stops accepting and new connections wait in the kernel's backlog), set
	 * above ours so a connection past http.connection_limit is still taken
	 * and told to retry.
	 */
	h->hard_limit = c->connection_limit + c->connection_limit / 8 + 64;
	h->ip_cap = 64;
	while (h->ip_cap < 2 * (size_t)h->hard_limit)
		h->ip_cap *= 2;
	h->ips = calloc(h->ip_cap, sizeof(*h->ips));
	if (!h->ips) {
		free(h);
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	}
	pthread_mutex_init(&h->ip_mu, NULL);
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	/* ITC: MHD_quiesce_daemon and MHD_add_connection need it with internal threads */
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
		MHD_USE_ERROR_LOG | MHD_USE_ITC;
	/* HTTPS: the certificate comes from daemon/tls.c at each handshake (SIGHUP swaps it) */
	if (c->tls_cert_file)
		flags |= MHD_USE_TLS;
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
		{MHD_OPTION_CONNECTION_LIMIT, (intptr_t)h->hard_limit, NULL},
		/* per-IP counting is ours (on_connection): MHD's would close at accept */
		{MHD_OPTION_PER_IP_CONNECTION_LIMIT, 0, NULL},
		{MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)c->connection_timeout_s, NULL},
		{MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)c->connection_memory_limit, NULL},
		{MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, h},
		{MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, h},
		/* a pool only when asked for more than one thread (MHD warns on 0/1) */
		/* a pool only when asked for more than one thread (MHD warns on 0/1) */
		{c->http_threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END,
			(intptr_t)c->http_threads, NULL},
		{MHD_OPTION_END, 0, NULL},
	};
	if (c->tls_cert_file)
		h->d = MHD_start_daemon(flags, c->listen_port, NULL, NULL, on_request, h,
			MHD_OPTION_ARRAY, opts,
			MHD_OPTION_HTTPS_CERT_CALLBACK, (gnutls_certificate_retrieve_function2 *)rwd_tls_cert_callback,
			MHD_OPTION_END);
	else
		h->d = MHD_start_daemon(flags, c->listen_port, NULL, NULL, on_request, h,
			MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	if (!h->d) {
		pthread_mutex_destroy(&h->ip_mu);
		free(h->ips);
		free(h);
		return rwd_errorf(err, RWD_E_IO, "cannot listen on %s:%u (in use, or not a local address?)",
			c->listen_host, c->listen_port);
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	h->port = di ? di->port : c->listen_port;
	if (app->listen_fd >= 0 && (!di || !di->port))
		h->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
			((struct sockaddr_in *)&ss)->sin_port);
	di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_LISTEN_FD);
	h->listen_fd = di ? di->listen_fd : MHD_INVALID_SOCKET;
	*out = h;
	return 0;
}

unsigned rwd_http_port(const rwd_http *h)
{
	return h->port;
}

unsigned rwd_http_connections(const rwd_http *h)
{
	return atomic_load(&((rwd_http *)h)->open);
}

/* Connections waiting in the listener's accept queue (Linux: tcpi_unacked of a listener). */
static int backlog_len(int fd)
{
	struct tcp_info ti;
	socklen_t tl = sizeof(ti);
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) != 0)
		return -1;
	return (int)ti.tcpi_unacked;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/*
 * Close the listener without resetting a connection the kernel completed.
 * 1. A socket filter drops every new SYN (SYN without ACK), so no handshake
 *    starts; clients retry their SYN and, once the socket is closed, are
 *    refused: they know nothing was sent. Handshakes already under way still
 *    complete (their ACK passes the filter).
 * 2. MHD keeps accepting until the accept queue stays empty for
 *    RWD_SETTLE_MS (a handshake under way needs one round trip).
 * 3. MHD stops watching the listener (quiesce); whatever completed since is
 *    accepted here and handed to MHD; then the socket is closed. What remains
 *    is a handshake completing between the last empty accept() and close().
 * With socket activation the listener (and its backlog) belongs to systemd
 * and the next instance: only quiesce, no filter.
 */
#define RWD_SETTLE_MS 50
#define RWD_FRESH_GRACE_MS 1000
#define RWD_STALL_MS 1000
static void close_listener(rwd_http *h)
{
	if (h->listener_closed || h->listen_fd == MHD_INVALID_SOCKET)
		return;
	h->listener_closed = 1;
	if (h->app->listen_fd >= 0) {
		MHD_quiesce_daemon(h->d);
		rwd_log(RWD_LOG_INFO, "http: listener quiesced (socket activation: systemd keeps its backlog)");
		return;
	}
	int fd = h->listen_fd;
	struct sock_filter prog_ops[] = {
		BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 13),             /* TCP flags */
		BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0x12),          /* SYN | ACK */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x02, 0, 1),    /* SYN alone? */
		BPF_STMT(BPF_RET | BPF_K, 0),                       /* drop */
		BPF_STMT(BPF_RET | BPF_K, 0xffffffffu),             /* keep */
	};
	struct sock_fprog prog = {(unsigned short)(sizeof(prog_ops) / sizeof(prog_ops[0])), prog_ops};
	int filtered = setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) == 0;
	uint64_t t0 = rwd_now_ns(), quiet_since = t0;
	while (filtered && rwd_now_ns() - t0 < 2000000000ull) {
		if (backlog_len(fd) != 0)
			quiet_since = rwd_now_ns();
		else if (rwd_now_ns() - quiet_since >= RWD_SETTLE_MS * 1000000ull)
			break;
		sleep_ms(1);
	}
	MHD_quiesce_daemon(h->d);
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	unsigned swept = 0;
	uint64_t t_last;
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int cfd = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		t_last = rwd_now_ns();
		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			break;
		}
		/* MHD answers it 503 draining (it closes the socket if it cannot take it) */
		MHD_add_connection(h->d, cfd, (struct sockaddr *)&ss, sl);
		swept++;
	}
	/* Linux: a listening socket shut down stops listening (what is queued is
	 * reset, new SYNs are refused) but keeps its fd: MHD's threads may still
	 * take it out of their epoll sets, so it is closed after MHD_stop_daemon
	 * (microhttpd.h, MHD_quiesce_daemon; ThreadSanitizer saw the race) */
	shutdown(fd, SHUT_RDWR);
	uint64_t t_closed = rwd_now_ns();
	rwd_log(RWD_LOG_INFO, "http: listener closed: new SYNs %s for %.1f ms before, %u connections "
		"accepted after the quiesce, %.1f us from the last empty accept to the close",
		filtered ? "dropped" : "NOT dropped (no socket filter)", (double)(t_last - t0) / 1e6, swept,
		(double)(t_closed - t_last) / 1e3);
}

void rwd_http_drain(rwd_http *h, uint64_t until_ns)
{
	if (!h)
		return;
	close_listener(h);
	/*
	 * Every connection taken owes its answer (MHD's threads send them). One
	 * with a request in progress is waited for until the drain bound; one
	 * that has not sent a complete request head gets RWD_FRESH_GRACE_MS to
	 * send it (a client that connected just before the close sends at once;
	 * a silent or slow one must not hold the shutdown for the whole bound),
	 * and an upload is waited for while its bytes keep coming.
	 */
	uint64_t grace = rwd_now_ns() + RWD_FRESH_GRACE_MS * 1000000ull;
	if (grace > until_ns)
		grace = until_ns;
	for (;;) {
		uint64_t now = rwd_now_ns();
		int wait_active = atomic_load(&h->active) > 0 && now < until_ns;
		/* an upload is waited for while bytes keep coming (any upload's) */
		int wait_up = atomic_load(&h->uploading) > 0 && now < until_ns &&
			now - atomic_load(&h->upload_ns) < RWD_STALL_MS * 1000000ull;
		int wait_fresh = atomic_load(&h->fresh) > 0 && now < grace;
		if (!wait_active && !wait_up && !wait_fresh)
			break;
		sleep_ms(1);
	}
	unsigned a = atomic_load(&h->active), u = atomic_load(&h->uploading), f = atomic_load(&h->fresh);
	if (a || u || f)
		rwd_log(RWD_LOG_WARN, "http: drain ends with %u requests unanswered, %u uploads stalled "
			"(no byte for %u ms) and %u connections without a complete request head: they are "
			"closed", a, u, RWD_STALL_MS, f);
}

void rwd_http_stop(rwd_http *h)
{
	if (!h)
		return;
	/* idle keep-alive connections are closed here */
	MHD_stop_daemon(h->d);
	/* a quiesced listener is ours to close, and only after the stop */
	if (h->listener_closed)
		close(h->listen_fd);
	pthread_mutex_destroy(&h->ip_mu);
	free(h->ips);
	free(h);
}
