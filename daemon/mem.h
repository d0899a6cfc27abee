/*
 * daemon/mem.h — the process's memory budget (lib/core/budget.h) and how
 * memory goes back to the system after a burst.
 *
 * One budget per process (limits.memory_budget_bytes) is charged by what
 * requests hold: buffered bodies (http.c, before they are read), request
 * arenas (their blocks), and every jansson allocation (parsed bodies,
 * replies: jansson's allocator is process-global, so its hooks live here,
 * not in lib/). While a thread parses a request body (rwd_mem_parse_begin),
 * a jansson allocation past the budget fails and the request is answered
 * 503 + Retry-After; elsewhere it is counted and never refused.
 *
 * Memory back: glibc keeps freed heap pages, and its dynamic mmap threshold
 * moves large buffers onto the heap after the first is freed, so a burst of
 * big bodies left RSS at its peak. rwd_mem_install fixes the mmap threshold
 * (large buffers are mapped and unmapped), and rwd_mem_maybe_trim calls
 * malloc_trim once the budget's use falls back near 0 after a high-water mark.
 *
 * Threads: every function is safe from any thread, except rwd_mem_install,
 * which main() calls first, before any jansson allocation or thread.
 */
#ifndef RWD_DAEMON_MEM_H
#define RWD_DAEMON_MEM_H

#include "core/budget.h"

#include <stddef.h>

/* Create the budget (no limit yet) and install the jansson hooks and malloc settings. */
void rwd_mem_install(void);

/* The process's budget (NULL before rwd_mem_install). */
rwd_budget *rwd_mem_budget(void);

/* Set the budget's limit (limits.memory_budget_bytes; 0: none). */
void rwd_mem_set_limit(size_t limit);

/*
 * On this thread, until rwd_mem_parse_end, a jansson allocation that does
 * not fit the budget fails and sets *over to 1 (the caller answers 503).
 */
void rwd_mem_parse_begin(int *over);
void rwd_mem_parse_end(void);

/*
 * Give freed memory back to the system if the budget says a burst is over
 * (rwd_budget_trim_due). Cheap when not due. Logs what the trim returned.
 */
void rwd_mem_maybe_trim(void);

#endif
