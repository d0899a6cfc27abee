/*
 * tests/unit/test_sd.c — daemon/sd: the sd_notify datagrams as a fake
 * manager receives them on its own NOTIFY_SOCKET (file-system and abstract),
 * the watchdog interval and thread, and socket activation ($LISTEN_FDS)
 * with real listening and non-listening sockets placed at fd 3... in a
 * child process (LISTEN_PID must be the taker's pid, and the child owns its
 * descriptor table).
 */
#include "rwd_check.h"
#include "sd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

/* A fake manager: a datagram socket bound at `name` ("/path" or "@abstract"). */
typedef struct fake_mgr {
	int fd;
	char name[108];
	char path[108];
} fake_mgr;

static void mgr_open(fake_mgr *m, int abstract)
{
	struct sockaddr_un sa;
	socklen_t len;
	memset(&sa, 0, sizeof(sa));
	memset(m, 0, sizeof(*m));
	sa.sun_family = AF_UNIX;
	m->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(m->fd, 0);
	if (abstract) {
		snprintf(m->name, sizeof(m->name), "@rwd-test-sd-%d-%ld", (int)getpid(), (long)time(NULL));
		memcpy(sa.sun_path, m->name, strlen(m->name));
		sa.sun_path[0] = '\0';
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(m->name));
	} else {
		char dir[] = "/tmp/rwd-test-sd-XXXXXX";
		ck_assert_ptr_nonnull(mkdtemp(dir));
		snprintf(m->path, sizeof(m->path), "%s/notify", dir);
		snprintf(m->name, sizeof(m->name), "%s", m->path);
		memcpy(sa.sun_path, m->path, strlen(m->path) + 1);
		len = sizeof(sa);
	}
	ck_assert_int_eq(bind(m->fd, (struct sockaddr *)&sa, len), 0);
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", m->name, 1), 0);
}

/* The next datagram, waiting up to timeout_ms; "" when none came. */
static const char *mgr_recv(fake_mgr *m, int timeout_ms, char *buf, size_t size)
{
	struct pollfd p = {.fd = m->fd, .events = POLLIN};
	buf[0] = '\0';
	if (poll(&p, 1, timeout_ms) != 1)
		return buf;
	ssize_t n = recv(m->fd, buf, size - 1, 0);
	ck_assert_int_ge(n, 0);
	buf[n] = '\0';
	return buf;
}

static void mgr_close(fake_mgr *m)
{
	close(m->fd);
	if (m->path[0]) {
		unlink(m->path);
		char *slash = strrchr(m->path, '/');
		*slash = '\0';
		rmdir(m->path);
	}
	unsetenv("NOTIFY_SOCKET");
}

START_TEST(notify_path_socket)
{
	fake_mgr m;
	char buf[8192];
	mgr_open(&m, 0);
	ck_assert_int_eq(rwd_sd_ready("2 models ready\nWATCHDOG=1"), 1);
	/* a newline in the status cannot smuggle in another assignment */
	ck_assert_str_eq(mgr_recv(&m, 1000, buf, sizeof(buf)), "READY=1\nSTATUS=2 models ready WATCHDOG=1");
	ck_assert_int_eq(rwd_sd_status("loading clip (1/2)"), 1);
	ck_assert_str_eq(mgr_recv(&m, 1000, buf, sizeof(buf)), "STATUS=loading clip (1/2)");
	ck_assert_int_eq(rwd_sd_watchdog_ping(), 1);
	ck_assert_str_eq(mgr_recv(&m, 1000, buf, sizeof(buf)), "WATCHDOG=1");
	ck_assert_int_eq(rwd_sd_extend_timeout(90000000), 1);
	ck_assert_str_eq(mgr_recv(&m, 1000, buf, sizeof(buf)), "EXTEND_TIMEOUT_USEC=90000000");
	ck_assert_int_eq(rwd_sd_ready(NULL), 1);
	ck_assert_str_eq(mgr_recv(&m, 1000, buf, sizeof(buf)), "READY=1");
	mgr_close(&m);
}
END_TEST

START_TEST(notify_abstract_socket)
{
	fake_mgr m;
	char buf[8192];
	mgr_open(&m, 1);
	ck_assert_int_eq(rwd_sd_stopping("draining 3 requests"), 1);
	ck_assert_str_eq(mgr_recv(&m, 1000, buf, sizeof(buf)), "STOPPING=1\nSTATUS=draining 3 requests");
	ck_assert_int_eq(rwd_sd_notifyf("STATUS=%d/%d", 1, 2), 1);
	ck_assert_str_eq(mgr_recv(&m, 1000, buf, sizeof(buf)), "STATUS=1/2");
	mgr_close(&m);
}
END_TEST

static uint64_t mono_usec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

START_TEST(notify_reloading_monotonic)
{
	fake_mgr m;
	char buf[8192];
	unsigned long long t;
	int off = 0;
	mgr_open(&m, 0);
	uint64_t t0 = mono_usec();
	ck_assert_int_eq(rwd_sd_reloading("reloading config.json"), 1);
	uint64_t t1 = mono_usec();
	mgr_recv(&m, 1000, buf, sizeof(buf));
	ck_assert_int_eq(sscanf(buf, "RELOADING=1\nMONOTONIC_USEC=%llu\n%n", &t, &off), 1);
	ck_assert_uint_ge(t, t0);
	ck_assert_uint_le(t, t1);
	ck_assert_str_eq(buf + off, "STATUS=reloading config.json");
	mgr_close(&m);
}
END_TEST

START_TEST(notify_errors)
{
	char big[RWD_SD_STATE_MAX + 2];
	unsetenv("NOTIFY_SOCKET");
	ck_assert_int_eq(rwd_sd_ready("x"), 0); /* not under a manager: a no-op */
	setenv("NOTIFY_SOCKET", "", 1);
	ck_assert_int_eq(rwd_sd_ready("x"), 0);
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	ck_assert_int_eq(rwd_sd_ready(NULL), RWD_E_INVALID);
	setenv("NOTIFY_SOCKET", "vsock:2:1234", 1);
	ck_assert_int_eq(rwd_sd_ready(NULL), RWD_E_INVALID);
	setenv("NOTIFY_SOCKET", "@", 1);
	ck_assert_int_eq(rwd_sd_ready(NULL), RWD_E_INVALID);
	memset(big, 'a', sizeof(big) - 1);
	big[0] = '/';
	big[sizeof(big) - 1] = '\0';
	setenv("NOTIFY_SOCKET", big, 1); /* longer than sun_path */
	ck_assert_int_eq(rwd_sd_ready(NULL), RWD_E_INVALID);
	setenv("NOTIFY_SOCKET", "/nonexistent/rwd/notify", 1);
	ck_assert_int_eq(rwd_sd_ready(NULL), RWD_E_IO);
	memcpy(big, "STATUS=", 7);
	ck_assert_int_eq(rwd_sd_notify(big), RWD_E_INVALID); /* over RWD_SD_STATE_MAX */
	ck_assert_int_eq(rwd_sd_notify(""), RWD_E_INVALID);
	unsetenv("NOTIFY_SOCKET");
}
END_TEST

START_TEST(watchdog_interval_env)
{
	char pid[32];
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	ck_assert_uint_eq(rwd_sd_watchdog_usec(), 0);
	setenv("WATCHDOG_USEC", "30000000", 1);
	ck_assert_uint_eq(rwd_sd_watchdog_usec(), 30000000);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	ck_assert_uint_eq(rwd_sd_watchdog_usec(), 30000000);
	snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
	setenv("WATCHDOG_PID", pid, 1); /* for another process */
	ck_assert_uint_eq(rwd_sd_watchdog_usec(), 0);
	setenv("WATCHDOG_PID", "12x", 1);
	ck_assert_uint_eq(rwd_sd_watchdog_usec(), 0);
	unsetenv("WATCHDOG_PID");
	static const char *const bad[] = {"", "-5", " 5", "5 ", "1e6", "99999999999999999999999", NULL};
	for (int i = 0; bad[i]; i++) {
		setenv("WATCHDOG_USEC", bad[i], 1);
		ck_assert_msg(rwd_sd_watchdog_usec() == 0, "WATCHDOG_USEC='%s' accepted", bad[i]);
	}
	unsetenv("WATCHDOG_USEC");
}
END_TEST

/* alive() runs on the watchdog thread while the test flips the flag */
static int alive_flag(void *user)
{
	return atomic_load((atomic_int *)user);
}

/* Datagrams waiting at the fake manager, each checked to be exactly WATCHDOG=1. */
static int count_pings(fake_mgr *m)
{
	char buf[256];
	int n = 0;
	while (*mgr_recv(m, 0, buf, sizeof(buf))) {
		ck_assert_str_eq(buf, "WATCHDOG=1");
		n++;
	}
	return n;
}

START_TEST(watchdog_thread)
{
	fake_mgr m;
	rwd_sd_watchdog *w;
	atomic_int alive = 1;
	struct timespec ts = {0, 300 * 1000000L};
	mgr_open(&m, 1);
	ck_assert_int_eq(rwd_sd_watchdog_start(0, alive_flag, (void *)&alive, &w), 0);
	ck_assert_ptr_null(w); /* no watchdog: no thread */
	/* 40 ms interval: a ping every 20 ms */
	ck_assert_int_eq(rwd_sd_watchdog_start(40000, alive_flag, (void *)&alive, &w), 0);
	ck_assert_ptr_nonnull(w);
	nanosleep(&ts, NULL);
	atomic_store(&alive, 0);
	int pinged = count_pings(&m); /* drained while alive == 0, so later ones are the stuck rounds' */
	nanosleep(&ts, NULL);
	uint64_t pings = rwd_sd_watchdog_pings(w), skipped = rwd_sd_watchdog_skipped(w);
	int late = count_pings(&m);
	ck_assert_msg(pinged >= 5 && pinged <= 16, "%d pings in 300 ms at a 20 ms period", pinged);
	ck_assert_msg(late <= 1, "%d pings while alive() said no", late); /* at most one in flight */
	ck_assert_msg(skipped >= 5, "%llu rounds skipped", (unsigned long long)skipped);
	ck_assert_uint_eq(pings, (uint64_t)(pinged + late));
	/* stopping does not wait out the period */
	rwd_sd_watchdog_stop(w);
	ck_assert_int_eq(rwd_sd_watchdog_start(60000000, NULL, NULL, &w), 0);
	uint64_t t0 = mono_usec();
	rwd_sd_watchdog_stop(w);
	ck_assert_msg(mono_usec() - t0 < 200000, "stop took %llu us", (unsigned long long)(mono_usec() - t0));
	rwd_sd_watchdog_stop(NULL);
	mgr_close(&m);
}
END_TEST

/* ---- socket activation, each case in a child that owns fds 3.. ---- */

#define CHILD_CHECK(cond)                                                              \
	do {                                                                           \
		if (!(cond)) {                                                         \
			fprintf(stderr, "child, line %d: %s failed (errno %s)\n",     \
				__LINE__, #cond, strerror(errno));                     \
			_exit(1);                                                      \
		}                                                                      \
	} while (0)

enum { S_TCP4, S_TCP6, S_TCP4_NOLISTEN, S_UDP4, S_UNIX_STREAM };

/* A socket of kind k, moved above fd 20 so it cannot sit where the next goes. */
static int make_socket(int k, unsigned *port)
{
	int fd;
	if (k == S_UNIX_STREAM) {
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		CHILD_CHECK(fd >= 0);
		struct sockaddr_un sa;
		memset(&sa, 0, sizeof(sa));
		sa.sun_family = AF_UNIX;
		snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "rwd-test-sd-unix-%d", (int)getpid());
		CHILD_CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
		CHILD_CHECK(listen(fd, 4) == 0);
	} else if (k == S_TCP6) {
		struct sockaddr_in6 a;
		memset(&a, 0, sizeof(a));
		a.sin6_family = AF_INET6;
		a.sin6_addr = in6addr_loopback;
		fd = socket(AF_INET6, SOCK_STREAM, 0);
		if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
			_exit(77); /* no IPv6 loopback here */
		CHILD_CHECK(listen(fd, 4) == 0);
		socklen_t l = sizeof(a);
		CHILD_CHECK(getsockname(fd, (struct sockaddr *)&a, &l) == 0);
		*port = ntohs(a.sin6_port);
	} else {
		struct sockaddr_in a;
		memset(&a, 0, sizeof(a));
		a.sin_family = AF_INET;
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		fd = socket(AF_INET, k == S_UDP4 ? SOCK_DGRAM : SOCK_STREAM, 0);
		CHILD_CHECK(fd >= 0);
		CHILD_CHECK(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
		if (k == S_TCP4)
			CHILD_CHECK(listen(fd, 4) == 0);
		socklen_t l = sizeof(a);
		CHILD_CHECK(getsockname(fd, (struct sockaddr *)&a, &l) == 0);
		*port = ntohs(a.sin_port);
	}
	int hi = fcntl(fd, F_DUPFD, 20);
	CHILD_CHECK(hi >= 20);
	close(fd);
	return hi;
}

/* Place sockets of `kinds` at fds 3.. and set LISTEN_PID/LISTEN_FDS for this process. */
static void activate(const int *kinds, int n, unsigned *ports)
{
	int hi[8];
	char v[32];
	for (int i = 0; i < n; i++)
		hi[i] = make_socket(kinds[i], &ports[i]);
	for (int i = 0; i < n; i++) {
		CHILD_CHECK(dup2(hi[i], RWD_SD_LISTEN_FDS_START + i) == RWD_SD_LISTEN_FDS_START + i);
		close(hi[i]);
	}
	snprintf(v, sizeof(v), "%d", (int)getpid());
	setenv("LISTEN_PID", v, 1);
	snprintf(v, sizeof(v), "%d", n);
	setenv("LISTEN_FDS", v, 1);
	setenv("LISTEN_FDNAMES", "http", 1);
}

static void env_gone(void)
{
	CHILD_CHECK(!getenv("LISTEN_PID") && !getenv("LISTEN_FDS") && !getenv("LISTEN_FDNAMES"));
}

/* Run body(arg) in a child; its exit code (77 = skip). */
static int in_child(void (*body)(int), int arg)
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		body(arg);
		_exit(0);
	}
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static void child_two_tcp(int unused)
{
	int kinds[] = {S_TCP4, S_TCP4}, fds[4];
	unsigned ports[2];
	size_t n = 99;
	rwd_error err;
	rwd_error_clear(&err);
	activate(kinds, 2, ports);
	CHILD_CHECK(rwd_sd_listen_fds(fds, 4, &n, &err) == 0);
	CHILD_CHECK(n == 2 && fds[0] == 3 && fds[1] == 4);
	env_gone();
	for (int i = 0; i < 2; i++) {
		CHILD_CHECK(fcntl(fds[i], F_GETFD) & FD_CLOEXEC);
		CHILD_CHECK(fcntl(fds[i], F_GETFL) & O_NONBLOCK);
	}
	/* the descriptor serves: a client connects and is accepted */
	struct sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)ports[1]);
	int c = socket(AF_INET, SOCK_STREAM, 0);
	CHILD_CHECK(connect(c, (struct sockaddr *)&a, sizeof(a)) == 0);
	struct pollfd p = {.fd = fds[1], .events = POLLIN};
	CHILD_CHECK(poll(&p, 1, 2000) == 1);
	int s = accept(fds[1], NULL, NULL);
	CHILD_CHECK(s >= 0);
	/* two sockets are refused by the one-socket helper (env is gone now: re-set it) */
	setenv("LISTEN_PID", "1", 1);
	int fd = 7;
	CHILD_CHECK(rwd_sd_listen_socket(&fd, NULL, 0, &err) == 0 && fd == -1); /* pid 1's, not ours */
	char v[32];
	snprintf(v, sizeof(v), "%d", (int)getpid());
	setenv("LISTEN_PID", v, 1);
	setenv("LISTEN_FDS", "2", 1);
	CHILD_CHECK(rwd_sd_listen_socket(&fd, NULL, 0, &err) == RWD_E_INVALID);
	CHILD_CHECK(strstr(err.msg, "2 activated sockets") != NULL);
	env_gone();
	(void)unused;
}

START_TEST(listen_two_tcp)
{
	ck_assert_int_eq(in_child(child_two_tcp, 0), 0);
}
END_TEST

static void child_one(int kind)
{
	int kinds[] = {kind}, fd = -5;
	unsigned ports[1];
	char addr[64], want[64];
	rwd_error err;
	rwd_error_clear(&err);
	activate(kinds, 1, ports);
	CHILD_CHECK(rwd_sd_listen_socket(&fd, addr, sizeof(addr), &err) == 0);
	CHILD_CHECK(fd == 3);
	snprintf(want, sizeof(want), kind == S_TCP6 ? "[::1]:%u" : "127.0.0.1:%u", ports[0]);
	if (strcmp(addr, want) != 0) {
		fprintf(stderr, "child: address '%s', want '%s'\n", addr, want);
		_exit(1);
	}
	env_gone();
}

START_TEST(listen_one_v4)
{
	ck_assert_int_eq(in_child(child_one, S_TCP4), 0);
}
END_TEST

START_TEST(listen_one_v6)
{
	int r = in_child(child_one, S_TCP6);
	if (r == 77)
		RWD_SKIP("no IPv6 loopback in this environment");
	ck_assert_int_eq(r, 0);
}
END_TEST

static void child_bad_kind(int kind)
{
	int kinds[] = {S_TCP4, kind}, fds[4];
	unsigned ports[2];
	size_t n = 99;
	rwd_error err;
	rwd_error_clear(&err);
	activate(kinds, 2, ports);
	CHILD_CHECK(rwd_sd_listen_fds(fds, 4, &n, &err) == RWD_E_INVALID);
	CHILD_CHECK(n == 0);
	CHILD_CHECK(strstr(err.msg, "fd 4 is not a listening TCP socket") != NULL);
	env_gone();
}

START_TEST(listen_refuses_non_listeners)
{
	ck_assert_int_eq(in_child(child_bad_kind, S_TCP4_NOLISTEN), 0);
	ck_assert_int_eq(in_child(child_bad_kind, S_UDP4), 0);
	ck_assert_int_eq(in_child(child_bad_kind, S_UNIX_STREAM), 0);
}
END_TEST

static void child_bad_env(int which)
{
	int fds[4];
	size_t n = 99;
	char pid[32];
	rwd_error err;
	rwd_error_clear(&err);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	switch (which) {
	case 0: /* not activated at all */
		CHILD_CHECK(rwd_sd_listen_fds(fds, 4, &n, &err) == 0 && n == 0);
		break;
	case 1: /* LISTEN_FDS names descriptors that are not open */
		close(3);
		close(4);
		setenv("LISTEN_PID", pid, 1);
		setenv("LISTEN_FDS", "1", 1);
		CHILD_CHECK(rwd_sd_listen_fds(fds, 4, &n, &err) == RWD_E_INVALID);
		CHILD_CHECK(strstr(err.msg, "fd 3 is not open") != NULL);
		break;
	case 2:
		setenv("LISTEN_PID", "abc", 1);
		setenv("LISTEN_FDS", "1", 1);
		CHILD_CHECK(rwd_sd_listen_fds(fds, 4, &n, &err) == RWD_E_INVALID);
		break;
	case 3:
		setenv("LISTEN_PID", pid, 1);
		setenv("LISTEN_FDS", "-1", 1);
		CHILD_CHECK(rwd_sd_listen_fds(fds, 4, &n, &err) == RWD_E_INVALID);
		break;
	case 4: /* more than the caller takes */
		setenv("LISTEN_PID", pid, 1);
		setenv("LISTEN_FDS", "5", 1);
		CHILD_CHECK(rwd_sd_listen_fds(fds, 4, &n, &err) == RWD_E_INVALID);
		break;
	case 5:
		setenv("LISTEN_PID", pid, 1);
		unsetenv("LISTEN_FDS");
		CHILD_CHECK(rwd_sd_listen_fds(fds, 4, &n, &err) == RWD_E_INVALID);
		break;
	case 6: /* zero sockets: valid, nothing taken */
		setenv("LISTEN_PID", pid, 1);
		setenv("LISTEN_FDS", "0", 1);
		CHILD_CHECK(rwd_sd_listen_fds(fds, 4, &n, &err) == 0 && n == 0);
		break;
	}
	CHILD_CHECK(n == 0);
	env_gone();
}

START_TEST(listen_bad_env)
{
	for (int i = 0; i <= 6; i++)
		ck_assert_msg(in_child(child_bad_env, i) == 0, "case %d", i);
}
END_TEST

static Suite *sd_suite(void)
{
	Suite *s = suite_create("sd");
	TCase *tc = tcase_create("notify");
	tcase_add_test(tc, notify_path_socket);
	tcase_add_test(tc, notify_abstract_socket);
	tcase_add_test(tc, notify_reloading_monotonic);
	tcase_add_test(tc, notify_errors);
	suite_add_tcase(s, tc);
	tc = tcase_create("watchdog");
	tcase_add_test(tc, watchdog_interval_env);
	tcase_add_test(tc, watchdog_thread);
	suite_add_tcase(s, tc);
	tc = tcase_create("listen");
	tcase_add_test(tc, listen_two_tcp);
	tcase_add_test(tc, listen_one_v4);
	tcase_add_test(tc, listen_refuses_non_listeners);
	tcase_add_test(tc, listen_bad_env);
	suite_add_tcase(s, tc);
	/* a socket on ::1, where the machine has one: meson test sd-ipv6 */
	tc = tcase_create("ipv6");
	tcase_set_tags(tc, "ipv6");
	tcase_add_test(tc, listen_one_v6);
	suite_add_tcase(s, tc);
	return s;
}

RWD_CHECK_MAIN(sd_suite)
