/* daemon/log.c — see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_level = RWD_LOG_INFO;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

void rwd_log_set_level(int level)
{
	atomic_store(&log_level, level);
}

int rwd_log_get_level(void)
{
	return atomic_load(&log_level);
}

int rwd_log_parse_level(const char *name)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(name, level_names[i]) == 0)
			return i;
	return -1;
}

void rwd_log(int level, const char *fmt, ...)
{
	if (level > atomic_load(&log_level) || level < 0)
		return;
	char line[2048];
	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	size_t n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ %s ", (long)(tv.tv_usec / 1000),
		level_names[level]);
	va_list ap;
	va_start(ap, fmt);
	int w = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (w < 0)
		w = 0;
	n += (size_t)w;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* one write per line keeps lines from different threads whole */
	ssize_t r = write(STDERR_FILENO, line, n);
	(void)r;
}
