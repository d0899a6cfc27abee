/*
 * daemon/sd.h — systemd integration without libsystemd: the sd_notify(3)
 * datagram protocol, the service watchdog, and socket activation
 * (sd_listen_fds(3)). The protocols are small and documented as stable, so
 * rewardd speaks them itself and needs no libsystemd at build or run time;
 * outside systemd every call is a cheap no-op.
 *
 * Notifications: newline-separated VAR=value assignments in one datagram to
 * the AF_UNIX socket named by $NOTIFY_SOCKET ("/path" or "@abstract"). The
 * service unit uses Type=notify, NotifyAccess=main:
 *   READY=1            models loaded and warm (start-up is complete)
 *   STATUS=text        one line shown by `systemctl status`
 *   STOPPING=1         the drain has begun
 *   RELOADING=1 + MONOTONIC_USEC=now   a configuration reload has begun
 *                      (finished by READY=1)
 *   WATCHDOG=1         still alive (within $WATCHDOG_USEC)
 *   EXTEND_TIMEOUT_USEC=n   more start-up/stop time, e.g. while a large
 *                      model loads
 *
 * Environment: $NOTIFY_SOCKET, $WATCHDOG_USEC/$WATCHDOG_PID and
 * $LISTEN_PID/$LISTEN_FDS/$LISTEN_FDNAMES are read with getenv();
 * rwd_sd_listen_fds() also unsets the LISTEN_* variables (so a child process
 * does not take the sockets for its own). Call the environment readers
 * (rwd_sd_watchdog_usec, rwd_sd_listen_fds) from main() before other
 * threads start; the notify functions may be called from any thread.
 *
 * Errors: negative RWD_E_* codes (RWD_E_IO with errno's reason in `err`
 * where an rwd_error is taken).
 */
#ifndef RWD_DAEMON_SD_H
#define RWD_DAEMON_SD_H

#include "core/error.h"

#include <stddef.h>
#include <stdint.h>

/* systemd passes activated sockets from this descriptor on. */
#define RWD_SD_LISTEN_FDS_START 3
/* More activated sockets than this are refused (rewardd listens on one). */
#define RWD_SD_LISTEN_FDS_MAX 64
/* Longest notification datagram sent. */
#define RWD_SD_STATE_MAX 4096

/*
 * Send `state` (VAR=value lines) to $NOTIFY_SOCKET. Returns 1 when sent, 0
 * when $NOTIFY_SOCKET is unset (not run by a notify-aware manager), or
 * RWD_E_INVALID (a malformed socket name, an over-long state), RWD_E_IO (the
 * send failed: errno is kept). Never blocks: the datagram goes out with
 * MSG_DONTWAIT, a full manager queue is RWD_E_IO.
 */
int rwd_sd_notify(const char *state);

/* rwd_sd_notify of a printf-formatted state (truncation is RWD_E_INVALID). */
int rwd_sd_notifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * The common messages. `status` may be NULL (no STATUS= line); newlines in
 * it are sent as spaces, so a status cannot inject another assignment.
 */
int rwd_sd_ready(const char *status);     /* READY=1 */
int rwd_sd_status(const char *status);    /* STATUS= only */
int rwd_sd_stopping(const char *status);  /* STOPPING=1 */
int rwd_sd_reloading(const char *status); /* RELOADING=1, MONOTONIC_USEC=<CLOCK_MONOTONIC µs> */
int rwd_sd_watchdog_ping(void);           /* WATCHDOG=1 */
int rwd_sd_extend_timeout(uint64_t usec); /* EXTEND_TIMEOUT_USEC= */

/*
 * The watchdog interval in µs that the manager expects pings within, from
 * $WATCHDOG_USEC, honoured only when $WATCHDOG_PID is unset or names this
 * process. 0 when the watchdog is off or either value is malformed.
 */
uint64_t rwd_sd_watchdog_usec(void);

/*
 * A thread that sends WATCHDOG=1 every interval_usec / 2 while alive(user)
 * returns non-zero; when it returns 0 no ping is sent that round, so a
 * service whose compute path is stuck is restarted by systemd after
 * WatchdogSec. alive() runs on the watchdog thread and must not block for
 * long. interval_usec is normally rwd_sd_watchdog_usec(); 0 starts nothing
 * (*out = NULL, returns 0). Returns RWD_E_NOMEM / RWD_E_IO (thread start).
 */
typedef int (*rwd_sd_alive_fn)(void *user);
typedef struct rwd_sd_watchdog rwd_sd_watchdog;
int rwd_sd_watchdog_start(uint64_t interval_usec, rwd_sd_alive_fn alive, void *user,
	rwd_sd_watchdog **out);
/* Stop and join the thread (at once, not after the current interval). Accepts NULL. */
void rwd_sd_watchdog_stop(rwd_sd_watchdog *w);

/* Pings sent and rounds skipped because alive() said no (for tests and logs). */
uint64_t rwd_sd_watchdog_pings(const rwd_sd_watchdog *w);
uint64_t rwd_sd_watchdog_skipped(const rwd_sd_watchdog *w);

/*
 * Socket activation: the listening sockets systemd passed (fds 3 .. 3+n-1)
 * when $LISTEN_PID is this process and $LISTEN_FDS says how many. Each is
 * checked to be a listening TCP stream socket (AF_INET or AF_INET6,
 * SOCK_STREAM, SO_ACCEPTCONN) and made close-on-exec and non-blocking, ready
 * for MHD_OPTION_LISTEN_SOCKET. Up to `max` descriptors go to fds; *n is set
 * to the count (0 when not socket-activated: LISTEN_PID unset or another
 * process's). The LISTEN_* variables are unset in every case.
 * Errors (err says which descriptor and why): RWD_E_INVALID for malformed
 * variables, a descriptor that is not an open listening TCP socket, or more
 * than `max` (or RWD_SD_LISTEN_FDS_MAX) sockets.
 */
int rwd_sd_listen_fds(int *fds, size_t max, size_t *n, rwd_error *err);

/*
 * The one activated listening socket: *fd = the descriptor, or -1 when not
 * socket-activated. More than one socket is RWD_E_INVALID (rewardd.socket
 * declares one ListenStream=). `addr` (may be NULL) receives the bound
 * address as "HOST:PORT" or "[V6]:PORT" for the log.
 */
int rwd_sd_listen_socket(int *fd, char *addr, size_t addr_size, rwd_error *err);

/*
 * Is fd a listening TCP stream socket (IPv4 or IPv6)? 1 yes, 0 no (errno
 * explains a failed query), for the validation above and for tests.
 */
int rwd_sd_is_tcp_listener(int fd);

#endif
