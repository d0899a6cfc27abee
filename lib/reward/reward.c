/* reward/reward.c — see reward.h. */
#include "reward/reward.h"

#include <math.h>

int rwd_reward_combine(const rwd_item *item, const int *dims, size_t n, double *out)
{
	double sum = 0.0;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		int d = dims[i];
		if (d < 0 || d >= RWD_MAX_DIMS || !item->present[d])
			continue;
		sum += (double)item->scores[d];
		k++;
	}
	if (k == 0)
		return RWD_E_NOTFOUND;
	double r = sum / (double)k;
	if (!isfinite(r))
		return RWD_E_INVALID;
	*out = r;
	return 0;
}
