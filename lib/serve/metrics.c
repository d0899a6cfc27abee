/* serve/metrics.c — see metrics.h. */
#include "serve/metrics.h"

#include <math.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rwd_metric {
	struct rwd_metric *next;
	rwd_metric_family *fam;
	char *values[RWD_METRIC_MAX_LABELS];
	_Atomic uint64_t bits;  /* the double value (counter/gauge) or histogram sum */
	_Atomic unsigned long long count;
	_Atomic unsigned long long buckets[RWD_METRIC_MAX_BUCKETS + 1]; /* per bucket, not cumulative */
};

struct rwd_metric_family {
	struct rwd_metric_family *next;
	rwd_metrics *reg;
	rwd_metric_type type;
	char *name;
	char *help;
	size_t n_labels;
	char *labels[RWD_METRIC_MAX_LABELS];
	size_t nb;
	double bounds[RWD_METRIC_MAX_BUCKETS];
	rwd_metric *series; /* newest first; rendered in creation order */
};

struct rwd_metrics {
	pthread_mutex_t mu;
	rwd_metric_family *families; /* newest first */
};

static double bits_to_double(uint64_t b)
{
	double d;
	memcpy(&d, &b, sizeof(d));
	return d;
}

static uint64_t double_to_bits(double d)
{
	uint64_t b;
	memcpy(&b, &d, sizeof(b));
	return b;
}

rwd_metrics *rwd_metrics_new(void)
{
	rwd_metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	pthread_mutex_init(&m->mu, NULL);
	return m;
}

static void series_free(rwd_metric *s)
{
	for (size_t i = 0; i < RWD_METRIC_MAX_LABELS; i++)
		free(s->values[i]);
	free(s);
}

static void family_free(rwd_metric_family *f)
{
	if (!f)
		return;
	for (rwd_metric *s = f->series, *n; s; s = n) {
		n = s->next;
		series_free(s);
	}
	for (size_t i = 0; i < RWD_METRIC_MAX_LABELS; i++)
		free(f->labels[i]);
	free(f->name);
	free(f->help);
	free(f);
}

void rwd_metrics_free(rwd_metrics *m)
{
	if (!m)
		return;
	for (rwd_metric_family *f = m->families, *n; f; f = n) {
		n = f->next;
		family_free(f);
	}
	pthread_mutex_destroy(&m->mu);
	free(m);
}

rwd_metric_family *rwd_metrics_family(rwd_metrics *m, rwd_metric_type type, const char *name,
	const char *help, const char *const *labels, const double *bounds, size_t nb)
{
	if (!m || !name || nb > RWD_METRIC_MAX_BUCKETS || (type == RWD_METRIC_HISTOGRAM && nb && !bounds))
		return NULL;
	for (size_t i = 1; i < nb; i++)
		if (!(bounds[i] > bounds[i - 1]))
			return NULL;
	pthread_mutex_lock(&m->mu);
	rwd_metric_family *f;
	for (f = m->families; f; f = f->next)
		if (strcmp(f->name, name) == 0)
			goto out;
	f = calloc(1, sizeof(*f));
	if (!f)
		goto out;
	f->reg = m;
	f->type = type;
	f->name = strdup(name);
	f->help = strdup(help ? help : "");
	int bad = !f->name || !f->help;
	for (size_t i = 0; labels && labels[i]; i++) {
		if (i >= RWD_METRIC_MAX_LABELS) {
			bad = 1;
			break;
		}
		f->labels[i] = strdup(labels[i]);
		bad |= !f->labels[i];
		f->n_labels = i + 1;
	}
	if (type == RWD_METRIC_HISTOGRAM) {
		f->nb = nb;
		if (nb)
			memcpy(f->bounds, bounds, nb * sizeof(*bounds));
	}
	if (bad) {
		family_free(f);
		f = NULL;
		goto out;
	}
	f->next = m->families;
	m->families = f;
out:
	pthread_mutex_unlock(&m->mu);
	return f;
}

rwd_metric *rwd_metric_with(rwd_metric_family *f, const char *const *values)
{
	if (!f)
		return NULL;
	pthread_mutex_lock(&f->reg->mu);
	rwd_metric *s;
	for (s = f->series; s; s = s->next) {
		size_t i;
		for (i = 0; i < f->n_labels; i++)
			if (strcmp(s->values[i], values[i]) != 0)
				break;
		if (i == f->n_labels)
			goto out;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		goto out;
	s->fam = f;
	for (size_t i = 0; i < f->n_labels; i++) {
		s->values[i] = strdup(values[i] ? values[i] : "");
		if (!s->values[i]) {
			series_free(s);
			s = NULL;
			goto out;
		}
	}
	s->next = f->series;
	f->series = s;
out:
	pthread_mutex_unlock(&f->reg->mu);
	return s;
}

rwd_metric *rwd_metric_0(rwd_metric_family *fam)
{
	return rwd_metric_with(fam, NULL);
}

rwd_metric *rwd_metric_1(rwd_metric_family *fam, const char *v)
{
	const char *vals[1] = {v};
	return rwd_metric_with(fam, vals);
}

static void atomic_add_double(_Atomic uint64_t *p, double v)
{
	uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(p, &old, double_to_bits(bits_to_double(old) + v),
		memory_order_relaxed, memory_order_relaxed))
		;
}

void rwd_metric_add(rwd_metric *s, double v)
{
	if (s)
		atomic_add_double(&s->bits, v);
}

void rwd_metric_set(rwd_metric *s, double v)
{
	if (s)
		atomic_store_explicit(&s->bits, double_to_bits(v), memory_order_relaxed);
}

void rwd_metric_observe(rwd_metric *s, double v)
{
	if (!s)
		return;
	const rwd_metric_family *f = s->fam;
	size_t i = 0;
	while (i < f->nb && v > f->bounds[i])
		i++;
	atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
	atomic_add_double(&s->bits, v);
}

double rwd_metric_value(const rwd_metric *s)
{
	return s ? bits_to_double(atomic_load_explicit(&s->bits, memory_order_relaxed)) : 0.0;
}

unsigned long long rwd_metric_count(const rwd_metric *s)
{
	return s ? atomic_load_explicit(&s->count, memory_order_relaxed) : 0;
}

unsigned long long rwd_metric_bucket(const rwd_metric *s, size_t i)
{
	if (!s)
		return 0;
	unsigned long long c = 0;
	for (size_t k = 0; k <= i && k <= s->fam->nb; k++)
		c += atomic_load_explicit(&s->buckets[k], memory_order_relaxed);
	return c;
}

void rwd_metric_exp_bounds(double start, double factor, size_t n, double *out)
{
	double v = start;
	for (size_t i = 0; i < n; i++, v *= factor)
		out[i] = v;
}

/* A growable output buffer; `bad` latches OOM so callers check once. */
typedef struct outbuf {
	char *p;
	size_t len, cap;
	int bad;
} outbuf;

static void out_printf(outbuf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void out_printf(outbuf *o, const char *fmt, ...)
{
	if (o->bad)
		return;
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int w = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (w < 0) {
			o->bad = 1;
			return;
		}
		if ((size_t)w < o->cap - o->len) {
			o->len += (size_t)w;
			return;
		}
		size_t ncap = o->cap * 2 + (size_t)w + 1;
		char *np = realloc(o->p, ncap);
		if (!np) {
			o->bad = 1;
			return;
		}
		o->p = np;
		o->cap = ncap;
	}
}

static void out_escaped(outbuf *o, const char *s, int quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			out_printf(o, "\\\\");
		else if (*s == '\n')
			out_printf(o, "\\n");
		else if (*s == '"' && quote)
			out_printf(o, "\\\"");
		else
			out_printf(o, "%c", *s);
	}
}

static void out_double(outbuf *o, double v)
{
	if (isnan(v))
		out_printf(o, "NaN");
	else if (isinf(v))
		out_printf(o, v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 1e15)
		out_printf(o, "%.0f", v);
	else
		out_printf(o, "%.9g", v);
}

/* {a="x",b="y"[,le="..."]}, or nothing when there are no labels at all. */
static void out_labels(outbuf *o, const rwd_metric *s, const char *le)
{
	const rwd_metric_family *f = s->fam;
	if (f->n_labels == 0 && !le)
		return;
	out_printf(o, "{");
	for (size_t i = 0; i < f->n_labels; i++) {
		out_printf(o, "%s%s=\"", i ? "," : "", f->labels[i]);
		out_escaped(o, s->values[i], 1);
		out_printf(o, "\"");
	}
	if (le)
		out_printf(o, "%sle=\"%s\"", f->n_labels ? "," : "", le);
	out_printf(o, "}");
}

static void render_series(outbuf *o, const rwd_metric *s)
{
	const rwd_metric_family *f = s->fam;
	if (f->type != RWD_METRIC_HISTOGRAM) {
		out_printf(o, "%s", f->name);
		out_labels(o, s, NULL);
		out_printf(o, " ");
		out_double(o, rwd_metric_value(s));
		out_printf(o, "\n");
		return;
	}
	unsigned long long cum = 0;
	for (size_t i = 0; i <= f->nb; i++) {
		cum += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
		char le[48];
		if (i == f->nb)
			snprintf(le, sizeof(le), "+Inf");
		else
			snprintf(le, sizeof(le), "%.9g", f->bounds[i]);
		out_printf(o, "%s_bucket", f->name);
		out_labels(o, s, le);
		out_printf(o, " %llu\n", cum);
	}
	out_printf(o, "%s_sum", f->name);
	out_labels(o, s, NULL);
	out_printf(o, " ");
	out_double(o, rwd_metric_value(s));
	out_printf(o, "\n%s_count", f->name);
	out_labels(o, s, NULL);
	/* _count equals the +Inf bucket read above, so the two always agree */
	out_printf(o, " %llu\n", cum);
}

static void render_family(outbuf *o, const rwd_metric_family *f)
{
	static const char *const tname[] = {"counter", "gauge", "histogram"};
	out_printf(o, "# HELP %s ", f->name);
	out_escaped(o, f->help, 0);
	out_printf(o, "\n# TYPE %s %s\n", f->name, tname[f->type]);
	/* series are kept newest first; print oldest first for stable output */
	size_t n = 0;
	for (const rwd_metric *s = f->series; s; s = s->next)
		n++;
	for (size_t k = n; k > 0; k--) {
		const rwd_metric *s = f->series;
		for (size_t j = 1; j < k; j++)
			s = s->next;
		render_series(o, s);
	}
}

char *rwd_metrics_render(rwd_metrics *m, size_t *len)
{
	outbuf o = {0};
	o.cap = 4096;
	o.p = malloc(o.cap);
	if (!o.p)
		return NULL;
	o.p[0] = '\0';
	pthread_mutex_lock(&m->mu);
	size_t nf = 0;
	for (rwd_metric_family *f = m->families; f; f = f->next)
		nf++;
	for (size_t k = nf; k > 0; k--) {
		rwd_metric_family *f = m->families;
		for (size_t j = 1; j < k; j++)
			f = f->next;
		render_family(&o, f);
	}
	pthread_mutex_unlock(&m->mu);
	if (o.bad) {
		free(o.p);
		return NULL;
	}
	*len = o.len;
	return o.p;
}
