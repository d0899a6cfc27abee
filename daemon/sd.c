/* daemon/sd.c — see sd.h. */
#include "sd.h"

#include "core/thread.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/*
 * $NOTIFY_SOCKET into a sockaddr_un: "/path" names a file-system socket,
 * "@name" an abstract one (the '@' becomes the leading NUL byte, and the
 * length excludes a terminator). Anything else (systemd 254's "vsock:") is
 * refused.
 */
static int notify_addr(const char *name, struct sockaddr_un *sa, socklen_t *len)
{
	size_t n = strlen(name);
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (n < 2 || (name[0] != '/' && name[0] != '@') || n >= sizeof(sa->sun_path))
		return RWD_E_INVALID;
	memcpy(sa->sun_path, name, n);
	if (name[0] == '@') {
		sa->sun_path[0] = '\0';
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	} else {
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	}
	return 0;
}

int rwd_sd_notify(const char *state)
{
	const char *name = getenv("NOTIFY_SOCKET");
	if (!name || !*name)
		return 0;
	size_t len = strlen(state);
	if (len == 0 || len > RWD_SD_STATE_MAX)
		return RWD_E_INVALID;
	struct sockaddr_un sa;
	socklen_t salen;
	if (notify_addr(name, &sa, &salen))
		return RWD_E_INVALID;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return RWD_E_IO;
	ssize_t w = sendto(fd, state, len, MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&sa, salen);
	int saved = errno;
	close(fd);
	errno = saved;
	return w == (ssize_t)len ? 1 : RWD_E_IO;
}

int rwd_sd_notifyf(const char *fmt, ...)
{
	char buf[RWD_SD_STATE_MAX + 1];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return RWD_E_INVALID;
	return rwd_sd_notify(buf);
}

/* "<head>\nSTATUS=<status with newlines as spaces>" into buf. */
static int with_status(const char *head, const char *status)
{
	char buf[RWD_SD_STATE_MAX + 1];
	size_t n = (size_t)snprintf(buf, sizeof(buf), "%s", head);
	if (status) {
		static const char key[] = "STATUS=";
		if (n && n < sizeof(buf) - 1)
			buf[n++] = '\n';
		for (size_t i = 0; key[i] && n < sizeof(buf) - 1; i++)
			buf[n++] = key[i];
		for (const char *s = status; *s && n < sizeof(buf) - 1; s++)
			buf[n++] = *s == '\n' || *s == '\r' ? ' ' : *s;
		buf[n] = '\0';
	}
	return rwd_sd_notify(buf); /* a status longer than the datagram is cut */
}

int rwd_sd_ready(const char *status)
{
	return with_status("READY=1", status);
}

int rwd_sd_status(const char *status)
{
	return with_status("", status ? status : "");
}

int rwd_sd_stopping(const char *status)
{
	return with_status("STOPPING=1", status);
}

int rwd_sd_reloading(const char *status)
{
	/* MONOTONIC_USEC lets the manager tell this reload from a stale one (systemd >= 253) */
	char head[64];
	snprintf(head, sizeof(head), "RELOADING=1\nMONOTONIC_USEC=%llu",
		(unsigned long long)(rwd_now_ns() / 1000u));
	return with_status(head, status);
}

int rwd_sd_watchdog_ping(void)
{
	return rwd_sd_notify("WATCHDOG=1");
}

int rwd_sd_extend_timeout(uint64_t usec)
{
	return rwd_sd_notifyf("EXTEND_TIMEOUT_USEC=%llu", (unsigned long long)usec);
}

/* A decimal without sign, spaces or trailing bytes, at most `max`. */
static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	if (!s || *s < '0' || *s > '9')
		return -1;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

uint64_t rwd_sd_watchdog_usec(void)
{
	uint64_t usec, pid;
	const char *p = getenv("WATCHDOG_PID");
	if (p && (parse_u64(p, INT_MAX, &pid) || (pid_t)pid != getpid()))
		return 0;
	if (parse_u64(getenv("WATCHDOG_USEC"), UINT64_MAX - 1, &usec))
		return 0;
	return usec;
}

struct rwd_sd_watchdog {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
	uint64_t period_ns;
	rwd_sd_alive_fn alive;
	void *user;
	atomic_ullong pings, skipped;
};

static void *watchdog_main(void *arg)
{
	rwd_sd_watchdog *w = arg;
	rwd_thread_set_name("rwd-watchdog");
	pthread_mutex_lock(&w->mu);
	for (;;) {
		uint64_t next = rwd_now_ns() + w->period_ns;
		while (!w->stop && rwd_now_ns() < next)
			rwd_cond_wait_until(&w->cv, &w->mu, next);
		if (w->stop)
			break;
		pthread_mutex_unlock(&w->mu);
		if (!w->alive || w->alive(w->user)) {
			if (rwd_sd_watchdog_ping() == 1)
				atomic_fetch_add(&w->pings, 1);
		} else {
			atomic_fetch_add(&w->skipped, 1);
		}
		pthread_mutex_lock(&w->mu);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

int rwd_sd_watchdog_start(uint64_t interval_usec, rwd_sd_alive_fn alive, void *user,
	rwd_sd_watchdog **out)
{
	*out = NULL;
	if (interval_usec == 0)
		return 0;
	rwd_sd_watchdog *w = calloc(1, sizeof(*w));
	if (!w)
		return RWD_E_NOMEM;
	/* half the interval, as sd_watchdog_enabled(3) advises; at least 1 ms */
	w->period_ns = interval_usec * 500u;
	if (w->period_ns < 1000000u)
		w->period_ns = 1000000u;
	w->alive = alive;
	w->user = user;
	atomic_init(&w->pings, 0);
	atomic_init(&w->skipped, 0);
	if (pthread_mutex_init(&w->mu, NULL)) {
		free(w);
		return RWD_E_IO;
	}
	if (rwd_cond_init_monotonic(&w->cv)) {
		pthread_mutex_destroy(&w->mu);
		free(w);
		return RWD_E_IO;
	}
	if (pthread_create(&w->thread, NULL, watchdog_main, w)) {
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mu);
		free(w);
		return RWD_E_IO;
	}
	*out = w;
	return 0;
}

void rwd_sd_watchdog_stop(rwd_sd_watchdog *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

uint64_t rwd_sd_watchdog_pings(const rwd_sd_watchdog *w)
{
	return w ? atomic_load(&((rwd_sd_watchdog *)w)->pings) : 0;
}

uint64_t rwd_sd_watchdog_skipped(const rwd_sd_watchdog *w)
{
	return w ? atomic_load(&((rwd_sd_watchdog *)w)->skipped) : 0;
}

int rwd_sd_is_tcp_listener(int fd)
{
	int v;
	socklen_t l = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &l) || v != SOCK_STREAM)
		return 0;
	l = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &l) || (v != AF_INET && v != AF_INET6))
		return 0;
	l = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &l) || !v)
		return 0;
	return 1;
}

static void unset_listen_env(void)
{
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}

int rwd_sd_listen_fds(int *fds, size_t max, size_t *n, rwd_error *err)
{
	uint64_t pid, count;
	const char *p = getenv("LISTEN_PID"), *c = getenv("LISTEN_FDS");
	int r = 0;
	*n = 0;
	if (!p) {
		unset_listen_env();
		return 0;
	}
	if (parse_u64(p, INT_MAX, &pid)) {
		r = rwd_errorf(err, RWD_E_INVALID, "LISTEN_PID='%.32s' is not a process id", p);
		goto out;
	}
	if ((pid_t)pid != getpid())
		goto out; /* meant for another process (e.g. our parent) */
	if (!c || parse_u64(c, INT_MAX, &count)) {
		r = rwd_errorf(err, RWD_E_INVALID, "LISTEN_FDS='%.32s' is not a count", c ? c : "(unset)");
		goto out;
	}
	if (count > RWD_SD_LISTEN_FDS_MAX || count > max) {
		r = rwd_errorf(err, RWD_E_INVALID, "%llu activated sockets, at most %zu are taken",
			(unsigned long long)count, max < RWD_SD_LISTEN_FDS_MAX ? max : RWD_SD_LISTEN_FDS_MAX);
		goto out;
	}
	for (uint64_t i = 0; i < count; i++) {
		int fd = RWD_SD_LISTEN_FDS_START + (int)i;
		int fl = fcntl(fd, F_GETFD);
		if (fl < 0) {
			r = rwd_errorf(err, RWD_E_INVALID, "activated socket fd %d is not open: %s", fd,
				strerror(errno));
			goto out;
		}
		if (!rwd_sd_is_tcp_listener(fd)) {
			r = rwd_errorf(err, RWD_E_INVALID,
				"activated fd %d is not a listening TCP socket (ListenStream= wanted)", fd);
			goto out;
		}
		int sfl = fcntl(fd, F_GETFL);
		if (fcntl(fd, F_SETFD, fl | FD_CLOEXEC) || sfl < 0 || fcntl(fd, F_SETFL, sfl | O_NONBLOCK)) {
			r = rwd_errorf(err, RWD_E_IO, "activated fd %d: fcntl: %s", fd, strerror(errno));
			goto out;
		}
		fds[i] = fd;
	}
	*n = (size_t)count;
out:
	unset_listen_env();
	return r;
}

int rwd_sd_listen_socket(int *fd, char *addr, size_t addr_size, rwd_error *err)
{
	int fds[RWD_SD_LISTEN_FDS_MAX];
	size_t n;
	*fd = -1;
	if (addr && addr_size)
		addr[0] = '\0';
	int r = rwd_sd_listen_fds(fds, RWD_SD_LISTEN_FDS_MAX, &n, err);
	if (r)
		return r;
	if (n == 0)
		return 0;
	if (n > 1)
		return rwd_errorf(err, RWD_E_INVALID,
			"%zu activated sockets; rewardd serves one (one ListenStream= in rewardd.socket)", n);
	*fd = fds[0];
	if (addr && addr_size) {
		struct sockaddr_storage ss;
		socklen_t l = sizeof(ss);
		char host[INET6_ADDRSTRLEN];
		if (getsockname(*fd, (struct sockaddr *)&ss, &l) == 0) {
			if (ss.ss_family == AF_INET6) {
				struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
				inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
				snprintf(addr, addr_size, "[%s]:%u", host, ntohs(a->sin6_port));
			} else {
				struct sockaddr_in *a = (struct sockaddr_in *)&ss;
				inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
				snprintf(addr, addr_size, "%s:%u", host, ntohs(a->sin_port));
			}
		}
	}
	return 0;
}
