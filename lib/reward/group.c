/* reward/group.c — see group.h. */
#include "reward/group.h"

#include "core/thread.h"
#include "reward/reward.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct group {
	char *key;
	size_t size, arrived;
	uint64_t deadline_ns;
	rwd_group_part *parts;
	struct group *next;
} group;

struct rwd_group_table {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	int thread_ok;
	int stop, flushed;
	group *groups;
	size_t n_open;
};

/* Compute the advantages of a detached group and call every part's done(). */
static void answer(group *g, int complete)
{
	size_t cnt = 0;
	for (rwd_group_part *p = g->parts; p; p = p->next_)
		for (size_t i = 0; i < p->n; i++)
			cnt += isfinite(p->rewards[i]) ? 1 : 0;
	double *r = malloc((cnt ? cnt : 1) * sizeof(double) * 2);
	double mean = 0.0, sd = 0.0;
	int zero = 0;
	rwd_group_part *first = g->parts;
	if (r && cnt) {
		size_t k = 0;
		for (rwd_group_part *p = g->parts; p; p = p->next_)
			for (size_t i = 0; i < p->n; i++)
				if (isfinite(p->rewards[i]))
					r[k++] = p->rewards[i];
		rwd_reward_adv_spec sp = {.norm = first->norm, .std_kind = first->std_kind,
			.singleton = first->singleton, .eps = first->eps, .zero_std_tol = first->zero_std_tol};
		zero = rwd_reward_group_advantages(r, cnt, &sp, r + cnt, &mean, &sd);
		k = 0;
		for (rwd_group_part *p = g->parts; p; p = p->next_)
			for (size_t i = 0; i < p->n; i++)
				p->adv[i] = isfinite(p->rewards[i]) ? r[cnt + k++] : NAN;
	} else {
		for (rwd_group_part *p = g->parts; p; p = p->next_)
			for (size_t i = 0; i < p->n; i++)
				p->adv[i] = NAN;
	}
	free(r);
	rwd_group_part *p = g->parts;
	size_t arrived = g->arrived;
	free(g->key);
	free(g);
	while (p) {
		rwd_group_part *nx = p->next_;
		p->complete = complete;
		p->arrived = arrived;
		p->counted = cnt;
		p->mean = mean;
		p->std = sd;
		p->zero_std = zero;
		p->done(p); /* last touch of p */
		p = nx;
	}
}

static void *deadline_thread(void *arg)
{
	rwd_group_table *t = arg;
	rwd_thread_set_name("rwd-groups");
	pthread_mutex_lock(&t->mu);
	while (!t->stop) {
		uint64_t now = rwd_now_ns(), next = 0;
		group *due = NULL;
		for (group **pp = &t->groups; *pp;) {
			group *g = *pp;
			if (g->deadline_ns <= now) {
				*pp = g->next;
				g->next = due;
				due = g;
				t->n_open--;
				continue;
			}
			if (!next || g->deadline_ns < next)
				next = g->deadline_ns;
			pp = &g->next;
		}
		if (due) {
			pthread_mutex_unlock(&t->mu);
			while (due) {
				group *nx = due->next;
				answer(due, 0);
				due = nx;
			}
			pthread_mutex_lock(&t->mu);
			continue;
		}
		if (next)
			rwd_cond_wait_until(&t->cv, &t->mu, next);
		else
			pthread_cond_wait(&t->cv, &t->mu);
	}
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

rwd_group_table *rwd_group_table_new(void)
{
	rwd_group_table *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	pthread_mutex_init(&t->mu, NULL);
	if (rwd_cond_init_monotonic(&t->cv)) {
		pthread_mutex_destroy(&t->mu);
		free(t);
		return NULL;
	}
	if (pthread_create(&t->thread, NULL, deadline_thread, t)) {
		rwd_group_table_free(t);
		return NULL;
	}
	t->thread_ok = 1;
	return t;
}

int rwd_group_table_add(rwd_group_table *t, const char *key, size_t group_size, uint64_t timeout_ns,
	size_t max_open, rwd_group_part *p)
{
	pthread_mutex_lock(&t->mu);
	if (t->flushed) {
		pthread_mutex_unlock(&t->mu);
		return RWD_E_STATE;
	}
	group *g;
	for (g = t->groups; g; g = g->next)
		if (strcmp(g->key, key) == 0)
			break;
	if (!g) {
		if (t->n_open >= max_open) {
			pthread_mutex_unlock(&t->mu);
			return RWD_E_FULL;
		}
		g = calloc(1, sizeof(*g));
		if (!g || !(g->key = strdup(key))) {
			free(g);
			pthread_mutex_unlock(&t->mu);
			return RWD_E_NOMEM;
		}
		g->size = group_size ? group_size : 1;
		g->deadline_ns = rwd_now_ns() + timeout_ns;
		g->next = t->groups;
		t->groups = g;
		t->n_open++;
		pthread_cond_signal(&t->cv);
	}
	/* parts are kept in arrival order */
	rwd_group_part **pp = &g->parts;
	while (*pp)
		pp = &(*pp)->next_;
	p->next_ = NULL;
	*pp = p;
	g->arrived += p->n;
	if (g->arrived < g->size) {
		pthread_mutex_unlock(&t->mu);
		return 0;
	}
	for (group **gp = &t->groups; *gp; gp = &(*gp)->next)
		if (*gp == g) {
			*gp = g->next;
			break;
		}
	t->n_open--;
	pthread_mutex_unlock(&t->mu);
	answer(g, 1);
	return 0;
}

size_t rwd_group_table_open(rwd_group_table *t)
{
	pthread_mutex_lock(&t->mu);
	size_t n = t->n_open;
	pthread_mutex_unlock(&t->mu);
	return n;
}

void rwd_group_table_flush(rwd_group_table *t)
{
	pthread_mutex_lock(&t->mu);
	t->flushed = 1;
	group *all = t->groups;
	t->groups = NULL;
	t->n_open = 0;
	pthread_mutex_unlock(&t->mu);
	while (all) {
		group *nx = all->next;
		answer(all, 0);
		all = nx;
	}
}

void rwd_group_table_free(rwd_group_table *t)
{
	if (!t)
		return;
	rwd_group_table_flush(t);
	if (t->thread_ok) {
		pthread_mutex_lock(&t->mu);
		t->stop = 1;
		pthread_cond_signal(&t->cv);
		pthread_mutex_unlock(&t->mu);
		pthread_join(t->thread, NULL);
	}
	pthread_cond_destroy(&t->cv);
	pthread_mutex_destroy(&t->mu);
	free(t);
}
