/*
 * core/thread.h — small helpers for threads and time.
 *
 * Monotonic clock readings, condition variables that wait on the monotonic
 * clock (so a wall-clock jump cannot stretch a batching delay or a
 * deadline), thread naming and the machine's core count.
 *
 * Thread safety: all functions are safe to call from any thread.
 */
#ifndef RWD_CORE_THREAD_H
#define RWD_CORE_THREAD_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* Nanoseconds on CLOCK_MONOTONIC. */
uint64_t rwd_now_ns(void);

/* Initialise `cond` to time out against CLOCK_MONOTONIC. Returns 0 or -errno. */
int rwd_cond_init_monotonic(pthread_cond_t *cond);

/* The absolute CLOCK_MONOTONIC timespec for an rwd_now_ns()-based deadline. */
struct timespec rwd_timespec_at(uint64_t deadline_ns);

/*
 * Wait on `cond` (initialised with rwd_cond_init_monotonic) until
 * `deadline_ns` on rwd_now_ns()'s clock. Returns 0 when signalled, ETIMEDOUT
 * when the deadline passed.
 */
int rwd_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mutex, uint64_t deadline_ns);

/* Online CPU cores (>= 1), honouring the process's affinity mask. */
int rwd_cpu_count(void);

/* Name the calling thread (truncated to 15 bytes); best effort. */
void rwd_thread_set_name(const char *name);

#endif
