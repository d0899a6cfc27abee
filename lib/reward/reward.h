/*
 * reward/reward.h — turning an item's per-dimension scores into its
 * combined `reward`.
 *
 * For now one rule: the mean of the requested dimensions the item actually
 * has (item->present). An item with none of them has no reward (not 0).
 * Configurable transforms and aggregations (DESIGN.md §6) will extend this
 * behind the same entry point.
 *
 * Thread safety: pure functions.
 */
#ifndef RWD_REWARD_REWARD_H
#define RWD_REWARD_REWARD_H

#include "models/model.h"

#include <stddef.h>

/*
 * Combine item's scores over the dimension indices dims[0..n) into *out.
 * Returns 0, or RWD_E_NOTFOUND when none of them is present (then *out is
 * untouched), or RWD_E_INVALID when the result is not finite.
 */
int rwd_reward_combine(const rwd_item *item, const int *dims, size_t n, double *out);

#endif
