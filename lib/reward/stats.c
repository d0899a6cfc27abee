/* reward/stats.c — see stats.h. */
#include "reward/stats.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct rwd_reward_series {
	const rwd_reward_stats *owner;
	char *model, *dim;
	pthread_mutex_t mu;
	unsigned long long count;
	double mean, m2, min, max;
	unsigned long long buckets[RWD_STATS_MAX_BUCKETS + 1]; /* per bucket, not cumulative */
	double *ring;
	size_t ring_n, ring_head;
	rwd_reward_series *next;
};

struct rwd_reward_stats {
	pthread_mutex_t mu; /* the series list */
	double bounds[RWD_STATS_MAX_BUCKETS];
	size_t nb, window;
	rwd_reward_series *head, *tail;
};

static const double default_bounds[] = {
	-10, -5, -2, -1, -0.5, -0.25, -0.1, 0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 2, 5, 10,
};

const double *rwd_reward_stats_default_bounds(size_t *n)
{
	*n = sizeof(default_bounds) / sizeof(default_bounds[0]);
	return default_bounds;
}

rwd_reward_stats *rwd_reward_stats_new(const double *bounds, size_t nb, size_t window)
{
	if (nb > RWD_STATS_MAX_BUCKETS || window < 1 || window > RWD_STATS_MAX_WINDOW)
		return NULL;
	for (size_t i = 0; i < nb; i++)
		if (!isfinite(bounds[i]) || (i && !(bounds[i] > bounds[i - 1])))
			return NULL;
	rwd_reward_stats *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	pthread_mutex_init(&s->mu, NULL);
	memcpy(s->bounds, bounds, nb * sizeof(double));
	s->nb = nb;
	s->window = window;
	return s;
}

void rwd_reward_stats_free(rwd_reward_stats *s)
{
	if (!s)
		return;
	for (rwd_reward_series *se = s->head; se;) {
		rwd_reward_series *nx = se->next;
		pthread_mutex_destroy(&se->mu);
		free(se->model);
		free(se->dim);
		free(se->ring);
		free(se);
		se = nx;
	}
	pthread_mutex_destroy(&s->mu);
	free(s);
}

rwd_reward_series *rwd_reward_stats_series(rwd_reward_stats *s, const char *model, const char *dim)
{
	pthread_mutex_lock(&s->mu);
	rwd_reward_series *se;
	for (se = s->head; se; se = se->next)
		if (strcmp(se->model, model) == 0 && strcmp(se->dim, dim) == 0)
			break;
	if (!se) {
		se = calloc(1, sizeof(*se));
		if (se) {
			se->model = strdup(model);
			se->dim = strdup(dim);
			se->ring = calloc(s->window, sizeof(double));
			if (!se->model || !se->dim || !se->ring) {
				free(se->model);
				free(se->dim);
				free(se->ring);
				free(se);
				se = NULL;
			} else {
				pthread_mutex_init(&se->mu, NULL);
				se->owner = s;
				se->min = INFINITY;
				se->max = -INFINITY;
				if (s->tail)
					s->tail->next = se;
				else
					s->head = se;
				s->tail = se;
			}
		}
	}
	pthread_mutex_unlock(&s->mu);
	return se;
}

void rwd_reward_series_add(rwd_reward_series *se, double v)
{
	if (!se || !isfinite(v))
		return;
	const rwd_reward_stats *s = se->owner;
	size_t b = 0;
	while (b < s->nb && v > s->bounds[b])
		b++;
	pthread_mutex_lock(&se->mu);
	se->count++;
	double d = v - se->mean;
	se->mean += d / (double)se->count;
	se->m2 += d * (v - se->mean);
	se->min = v < se->min ? v : se->min;
	se->max = v > se->max ? v : se->max;
	se->buckets[b]++;
	se->ring[se->ring_head] = v;
	se->ring_head = (se->ring_head + 1) % s->window;
	if (se->ring_n < s->window)
		se->ring_n++;
	pthread_mutex_unlock(&se->mu);
}

static json_t *series_json(const rwd_reward_stats *s, rwd_reward_series *se)
{
	pthread_mutex_lock(&se->mu);
	json_t *le = json_array(), *counts = json_array(), *vals = json_array();
	unsigned long long cum = 0;
	for (size_t i = 0; i <= s->nb; i++) {
		cum += se->buckets[i];
		json_array_append_new(le, i < s->nb ? json_real(s->bounds[i]) : json_string("+Inf"));
		json_array_append_new(counts, json_integer((json_int_t)cum));
	}
	double rs = 0.0, rss = 0.0;
	size_t start = (se->ring_head + s->window - se->ring_n) % s->window;
	for (size_t i = 0; i < se->ring_n; i++) {
		double v = se->ring[(start + i) % s->window];
		json_array_append_new(vals, json_real(v));
		rs += v;
	}
	double rmean = se->ring_n ? rs / (double)se->ring_n : 0.0;
	for (size_t i = 0; i < se->ring_n; i++) {
		double v = se->ring[(start + i) % s->window];
		rss += (v - rmean) * (v - rmean);
	}
	json_t *o = json_pack("{sI so so so so s{so so} s{sI so so so}}",
		"count", (json_int_t)se->count,
		"mean", se->count ? json_real(se->mean) : json_null(),
		"std", se->count ? json_real(sqrt(se->m2 / (double)se->count)) : json_null(),
		"min", se->count ? json_real(se->min) : json_null(),
		"max", se->count ? json_real(se->max) : json_null(),
		"histogram", "le", le, "counts", counts,
		"recent", "n", (json_int_t)se->ring_n,
		"mean", se->ring_n ? json_real(rmean) : json_null(),
		"std", se->ring_n ? json_real(sqrt(rss / (double)se->ring_n)) : json_null(),
		"values", vals);
	pthread_mutex_unlock(&se->mu);
	return o;
}

json_t *rwd_reward_stats_json(rwd_reward_stats *s, const char *model)
{
	json_t *models = json_object(), *b = json_array();
	for (size_t i = 0; i < s->nb; i++)
		json_array_append_new(b, json_real(s->bounds[i]));
	/* lock order: the list, then a series (adders take only the series lock) */
	pthread_mutex_lock(&s->mu);
	for (rwd_reward_series *se = s->head; se; se = se->next) {
		if (model && strcmp(model, se->model) != 0)
			continue;
		json_t *m = json_object_get(models, se->model);
		if (!m) {
			m = json_object();
			json_object_set_new(models, se->model, m);
		}
		json_object_set_new(m, se->dim, series_json(s, se));
	}
	pthread_mutex_unlock(&s->mu);
	return json_pack("{sI so so}", "window", (json_int_t)s->window, "buckets", b, "models", models);
}
