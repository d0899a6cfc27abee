/*
 * reward/group.h — GRPO groups that span requests.
 *
 * Items declaring a `group` and a `group_size` larger than what their
 * request carries are parked here: each request adds one part (its items of
 * that group, with their rewards) under the group's key. The group is
 * answered when the number of arrived items reaches group_size ("complete"),
 * or when the group's deadline passes (timeout set by the first part):
 * then the advantages are computed over the items that arrived and carry a
 * reward (complete = 0). Either way every part's done() is called exactly
 * once, on the thread that completed the group (the adding thread, the
 * table's deadline thread, or the caller of flush/free), outside the lock.
 * After a group is answered its key is free again: later items with the
 * same key start a new group. The normalisation (norm, std_kind,
 * singleton, eps, zero_std_tol) is the first part's, computed by
 * rwd_reward_group_advantages over the group's own std: a cross-request
 * group has no request scope (std_scope "request" is the caller's to refuse).
 *
 * Thread safety: every function may be called from any thread.
 */
#ifndef RWD_REWARD_GROUP_H
#define RWD_REWARD_GROUP_H

#include "core/error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct rwd_group_table rwd_group_table;
typedef struct rwd_group_part rwd_group_part;

struct rwd_group_part {
	/* in: */
	size_t n;
	const double *rewards;  /* [n]; NaN: the item has no reward (not counted) */
	double *adv;            /* [n] out; NaN where the item has no reward */
	int norm;               /* enum rwd_reward_norm */
	int std_kind;           /* enum rwd_reward_std_kind (0: unbiased) */
	int singleton;          /* enum rwd_reward_singleton (0: unit) */
	double eps;
	double zero_std_tol;
	void (*done)(rwd_group_part *p); /* required */
	void *user;
	/* out, valid in done(): */
	int complete;           /* 1: group_size reached; 0: answered at the deadline or on flush */
	size_t arrived;         /* items of the group that arrived (all parts) */
	size_t counted;         /* of those, the ones with a reward (the advantages' sample) */
	double mean, std;
	int zero_std;
	/* private */
	rwd_group_part *next_;
};

/* Create the table and its deadline thread. NULL on failure. */
rwd_group_table *rwd_group_table_new(void);

/*
 * Add part p to the group `key` of size group_size (>= 1). A new group gets
 * the deadline now + timeout_ns. Returns 0 (p belongs to the table until
 * done(), which may run before this returns), RWD_E_FULL when max_open
 * groups are already open, RWD_E_STATE after flush (draining).
 */
int rwd_group_table_add(rwd_group_table *t, const char *key, size_t group_size, uint64_t timeout_ns,
	size_t max_open, rwd_group_part *p);

/* Groups open now. */
size_t rwd_group_table_open(rwd_group_table *t);

/* Answer every open group now (incomplete) and refuse new parts. */
void rwd_group_table_flush(rwd_group_table *t);

/* Flush, stop the thread, free. Accepts NULL. */
void rwd_group_table_free(rwd_group_table *t);

#endif
