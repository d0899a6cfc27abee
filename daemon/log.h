/*
 * daemon/log.h — the daemon's log: one line per event on stderr,
 * "2026-01-01T12:00:00.123Z level message", so journald and container
 * runtimes collect it as is. lib/ never logs; the daemon formats lib's
 * rwd_error records into these lines.
 *
 * Thread safety: rwd_log may be called from any thread (one write(2) per line).
 */
#ifndef RWD_DAEMON_LOG_H
#define RWD_DAEMON_LOG_H

enum rwd_log_level { RWD_LOG_ERROR, RWD_LOG_WARN, RWD_LOG_INFO, RWD_LOG_DEBUG };

/* Set the most verbose level that is printed (default RWD_LOG_INFO). */
void rwd_log_set_level(int level);
int rwd_log_get_level(void);
/* "error", "warn", "info", "debug" -> level, or -1. */
int rwd_log_parse_level(const char *name);
void rwd_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
