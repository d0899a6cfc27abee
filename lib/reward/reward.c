/* reward/reward.c — see reward.h. */
#include "reward/reward.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum tf_kind { TF_AFFINE, TF_CLIP, TF_SIGMOID, TF_RESCALE };
enum { ABSENT_DEFAULT, ABSENT_SKIP, ABSENT_NULL };

typedef struct tf {
	int kind;
	double a, b; /* affine: scale, shift; clip: min, max; sigmoid: scale, center; rescale: lo, hi */
} tf;

typedef struct dim_tf {
	char *dim;
	size_t n;
	tf t[RWD_REWARD_MAX_TRANSFORMS];
} dim_tf;

typedef struct node node;
typedef struct term {
	char *name;   /* dimension name, or the nested node's name */
	node *sub;    /* NULL: a dimension */
	double w;
} term;

struct node {
	int mode;
	int absent;
	double a, b;
	size_t n;
	term t[RWD_REWARD_MAX_TERMS];
};

struct rwd_reward_config {
	json_t *src;            /* the parsed object, for to_json */
	dim_tf *tfs;
	size_t n_tfs;
	node *agg;              /* NULL: mean of the requested dims */
	unsigned allowed_modes; /* bit per mode a request may choose */
	int weights_allowed;
	double w_min, w_max;
	int norm_allowed;       /* a request may pick std/mean_only */
	rwd_reward_adv_params adv;
};

static const char *const mode_names[RWD_REWARD_MODES_] = {
	"weighted_sum", "mean", "min", "geometric_mean", "product", "base_and_bonus",
};

const char *rwd_reward_mode_name(int mode)
{
	return mode >= 0 && mode < RWD_REWARD_MODES_ ? mode_names[mode] : "?";
}

static int mode_of(const char *s)
{
	for (int i = 0; s && i < RWD_REWARD_MODES_; i++)
		if (strcmp(s, mode_names[i]) == 0)
			return i;
	return -1;
}

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

/* ---- parsing ---------------------------------------------------------- */

/* dst = a b c, truncated to cap (field paths in error records). */
static void pcat(char *dst, size_t cap, const char *a, const char *b, const char *c)
{
	const char *parts[3] = {a, b, c};
	size_t n = 0;
	for (int i = 0; i < 3; i++)
		for (const char *q = parts[i]; q && *q && n + 1 < cap; q++)
			dst[n++] = *q;
	dst[n] = '\0';
}

/* "[i]" for error paths. */
static const char *idx(char *buf, size_t i)
{
	snprintf(buf, 24, "[%zu]", i % 100000000u);
	return buf;
}

static int ferr(rwd_error *err, const char *path, const char *field, int code, const char *msg)
{
	char f[RWD_ERROR_OBJECT_MAX];
	pcat(f, sizeof(f), path, field && *field ? "." : "", field);
	rwd_error_where(err, NULL, f);
	return rwd_errorf(err, code, "%s", msg);
}

/* ferr with one string argument in msg (a "%s" in it). */
static int ferr1(rwd_error *err, const char *path, const char *field, int code, const char *msg,
	const char *arg)
{
	char m[256];
	const char *p = strstr(msg, "%s");
	if (p)
		snprintf(m, sizeof(m), "%.*s%s%s", (int)(p - msg), msg, arg, p + 2);
	else
		snprintf(m, sizeof(m), "%s", msg);
	return ferr(err, path, field, code, m);
}

static int get_num(const json_t *o, const char *key, double *v)
{
	const json_t *x = json_object_get(o, key);
	if (!x)
		return 0;
	if (!json_is_number(x) || !isfinite(json_number_value(x)))
		return -1;
	*v = json_number_value(x);
	return 1;
}

static int only_keys(const json_t *o, const char *const *keys, const char *path, rwd_error *err)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)o, k, v) {
		size_t i;
		for (i = 0; keys[i]; i++)
			if (strcmp(k, keys[i]) == 0)
				break;
		if (!keys[i]) {
			char why[256];
			size_t n = (size_t)snprintf(why, sizeof(why), "unknown field (expected");
			for (i = 0; keys[i] && n < sizeof(why); i++)
				n += (size_t)snprintf(why + n, sizeof(why) - n, " %s", keys[i]);
			if (n < sizeof(why))
				snprintf(why + n, sizeof(why) - n, ")");
			return ferr1(err, path, k, RWD_E_INVALID, "%s", why);
		}
	}
	return 0;
}

static int parse_tf(const json_t *j, const char *path, tf *t, rwd_error *err)
{
	if (!json_is_object(j) || json_object_size(j) != 1)
		return ferr(err, path, NULL, RWD_E_INVALID,
			"a transform is an object with one key: affine, clip, sigmoid or rescale");
	const char *k = json_object_iter_key(json_object_iter((json_t *)j));
	const json_t *p = json_object_iter_value(json_object_iter((json_t *)j));
	char sub[RWD_ERROR_OBJECT_MAX];
	pcat(sub, sizeof(sub), path, ".", k);
	if (!json_is_object(p))
		return ferr(err, sub, NULL, RWD_E_INVALID, "must be an object");
	int r;
	if (strcmp(k, "affine") == 0) {
		static const char *const keys[] = {"scale", "shift", NULL};
		if ((r = only_keys(p, keys, sub, err)))
			return r;
		t->kind = TF_AFFINE;
		t->a = 1.0;
		t->b = 0.0;
		if (get_num(p, "scale", &t->a) < 0)
			return ferr(err, sub, "scale", RWD_E_INVALID, "must be a finite number");
		if (get_num(p, "shift", &t->b) < 0)
			return ferr(err, sub, "shift", RWD_E_INVALID, "must be a finite number");
	} else if (strcmp(k, "clip") == 0) {
		static const char *const keys[] = {"min", "max", NULL};
		if ((r = only_keys(p, keys, sub, err)))
			return r;
		t->kind = TF_CLIP;
		t->a = -INFINITY;
		t->b = INFINITY;
		int ha = get_num(p, "min", &t->a), hb = get_num(p, "max", &t->b);
		if (ha < 0)
			return ferr(err, sub, "min", RWD_E_INVALID, "must be a finite number");
		if (hb < 0)
			return ferr(err, sub, "max", RWD_E_INVALID, "must be a finite number");
		if (!ha && !hb)
			return ferr(err, sub, NULL, RWD_E_INVALID, "needs \"min\", \"max\" or both");
		if (t->a > t->b)
			return ferr(err, sub, "max", RWD_E_INVALID, "must be at least \"min\"");
	} else if (strcmp(k, "sigmoid") == 0) {
		static const char *const keys[] = {"scale", "center", NULL};
		if ((r = only_keys(p, keys, sub, err)))
			return r;
		t->kind = TF_SIGMOID;
		t->a = 1.0;
		t->b = 0.0;
		if (get_num(p, "scale", &t->a) < 0)
			return ferr(err, sub, "scale", RWD_E_INVALID, "must be a finite number");
		if (get_num(p, "center", &t->b) < 0)
			return ferr(err, sub, "center", RWD_E_INVALID, "must be a finite number");
	} else if (strcmp(k, "rescale") == 0) {
		static const char *const keys[] = {"from", NULL};
		if ((r = only_keys(p, keys, sub, err)))
			return r;
		const json_t *f = json_object_get(p, "from");
		if (!json_is_array(f) || json_array_size(f) != 2 || !json_is_number(json_array_get(f, 0)) ||
			!json_is_number(json_array_get(f, 1)))
			return ferr(err, sub, "from", RWD_E_INVALID, "must be [low, high] (numbers)");
		t->kind = TF_RESCALE;
		t->a = json_number_value(json_array_get(f, 0));
		t->b = json_number_value(json_array_get(f, 1));
		if (!isfinite(t->a) || !isfinite(t->b) || !(t->b > t->a))
			return ferr(err, sub, "from", RWD_E_INVALID, "needs finite low < high");
	} else {
		return ferr(err, sub, NULL, RWD_E_INVALID,
			"unknown transform (expected affine, clip, sigmoid, rescale)");
	}
	return 0;
}

static void node_free(node *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n; i++) {
		free(n->t[i].name);
		node_free(n->t[i].sub);
	}
	free(n);
}

static int parse_node(const json_t *j, const char *path, int depth, node **out, rwd_error *err)
{
	static const char *const keys[] = {"mode", "terms", "weights", "a", "b", "absent", "name", NULL};
	*out = NULL;
	if (!json_is_object(j))
		return ferr(err, path, NULL, RWD_E_INVALID, "must be an object {\"mode\", \"terms\", ...}");
	if (depth >= RWD_REWARD_MAX_DEPTH)
		return ferr(err, path, NULL, RWD_E_LIMIT, "aggregates nest at most 4 deep");
	int r = only_keys(j, keys, path, err);
	if (r)
		return r;
	node *n = calloc(1, sizeof(*n));
	if (!n)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	const json_t *mj = json_object_get(j, "mode");
	n->mode = mode_of(json_string_value(mj));
	if (n->mode < 0) {
		r = ferr(err, path, "mode", RWD_E_INVALID,
			"unknown mode (expected weighted_sum, mean, min, geometric_mean, product, base_and_bonus)");
		goto fail;
	}
	const json_t *tj = json_object_get(j, "terms");
	if (!json_is_array(tj) || json_array_size(tj) == 0) {
		r = ferr(err, path, "terms", RWD_E_INVALID, "must be a non-empty array of dimension names or nodes");
		goto fail;
	}
	if (json_array_size(tj) > RWD_REWARD_MAX_TERMS) {
		r = ferr(err, path, "terms", RWD_E_LIMIT, "at most 16 terms");
		goto fail;
	}
	size_t i;
	const json_t *e;
	json_array_foreach(tj, i, e) {
		char sub[RWD_ERROR_OBJECT_MAX];
		{ char ib[24]; pcat(sub, sizeof(sub), path, ".terms", idx(ib, i)); }
		term *t = &n->t[n->n];
		t->w = 1.0;
		if (json_is_string(e)) {
			t->name = strdup(json_string_value(e));
		} else if (json_is_object(e)) {
			if ((r = parse_node(e, sub, depth + 1, &t->sub, err)))
				goto fail;
			const char *nm = json_string_value(json_object_get(e, "name"));
			char def[32];
			snprintf(def, sizeof(def), "term%u", (unsigned)i);
			if (json_object_get(e, "name") && !nm) {
				r = ferr(err, sub, "name", RWD_E_INVALID, "must be a string");
				n->n++;
				goto fail;
			}
			t->name = strdup(nm ? nm : def);
		} else {
			r = ferr(err, sub, NULL, RWD_E_INVALID, "a term is a dimension name or a node object");
			goto fail;
		}
		n->n++;
		if (!t->name) {
			r = rwd_errorf(err, RWD_E_NOMEM, "out of memory");
			goto fail;
		}
		for (size_t q = 0; q + 1 < n->n; q++)
			if (strcmp(n->t[q].name, t->name) == 0) {
				r = ferr1(err, sub, NULL, RWD_E_INVALID, "duplicate term '%s'", t->name);
				goto fail;
			}
	}
	const json_t *wj = json_object_get(j, "weights");
	if (wj) {
		char wp[RWD_ERROR_OBJECT_MAX];
		pcat(wp, sizeof(wp), path, ".weights", NULL);
		if (!json_is_object(wj)) {
			r = ferr(err, wp, NULL, RWD_E_INVALID, "must be an object {term: number}");
			goto fail;
		}
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)wj, k, v) {
			for (i = 0; i < n->n; i++)
				if (strcmp(n->t[i].name, k) == 0)
					break;
			if (i == n->n) {
				r = ferr(err, wp, k, RWD_E_INVALID, "not a term of this node");
				goto fail;
			}
			if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) < 0) {
				r = ferr(err, wp, k, RWD_E_INVALID, "must be a finite number >= 0");
				goto fail;
			}
			n->t[i].w = json_number_value(v);
		}
	}
	n->a = 0.5;
	n->b = 0.5;
	if (get_num(j, "a", &n->a) < 0) {
		r = ferr(err, path, "a", RWD_E_INVALID, "must be a finite number");
		goto fail;
	}
	if (get_num(j, "b", &n->b) < 0) {
		r = ferr(err, path, "b", RWD_E_INVALID, "must be a finite number");
		goto fail;
	}
	if ((json_object_get(j, "a") || json_object_get(j, "b")) && n->mode != RWD_REWARD_BASE_AND_BONUS) {
		r = ferr(err, path, json_object_get(j, "a") ? "a" : "b", RWD_E_INVALID,
			"only base_and_bonus takes \"a\" and \"b\"");
		goto fail;
	}
	if (n->mode == RWD_REWARD_BASE_AND_BONUS && n->n != 2) {
		r = ferr(err, path, "terms", RWD_E_INVALID, "base_and_bonus takes exactly two terms: [base, bonus]");
		goto fail;
	}
	const json_t *aj = json_object_get(j, "absent");
	n->absent = ABSENT_DEFAULT;
	if (aj) {
		const char *s = json_string_value(aj);
		if (s && strcmp(s, "skip") == 0)
			n->absent = ABSENT_SKIP;
		else if (s && strcmp(s, "null") == 0)
			n->absent = ABSENT_NULL;
		else {
			r = ferr(err, path, "absent", RWD_E_INVALID, "must be \"skip\" or \"null\"");
			goto fail;
		}
		if (n->absent == ABSENT_SKIP && n->mode == RWD_REWARD_BASE_AND_BONUS) {
			r = ferr(err, path, "absent", RWD_E_INVALID, "base_and_bonus needs both terms: only \"null\"");
			goto fail;
		}
	}
	*out = n;
	return 0;
fail:
	node_free(n);
	return r;
}

static int parse_overrides(const json_t *o, const char *path, rwd_reward_config *c, rwd_error *err)
{
	static const char *const keys[] = {"modes", "weights", "advantage", NULL};
	if (!json_is_object(o))
		return ferr(err, path, NULL, RWD_E_INVALID, "must be an object");
	int r = only_keys(o, keys, path, err);
	if (r)
		return r;
	const json_t *m = json_object_get(o, "modes");
	if (m) {
		if (!json_is_array(m))
			return ferr(err, path, "modes", RWD_E_INVALID, "must be an array of mode names");
		size_t i;
		const json_t *e;
		json_array_foreach(m, i, e) {
			int md = mode_of(json_string_value(e));
			if (md < 0) {
				char f[64];
				{ char ib[24]; pcat(f, sizeof(f), "modes", idx(ib, i), NULL); }
				return ferr(err, path, f, RWD_E_INVALID, "unknown mode");
			}
			c->allowed_modes |= 1u << md;
		}
	}
	const json_t *w = json_object_get(o, "weights");
	if (w) {
		char wp[RWD_ERROR_OBJECT_MAX];
		pcat(wp, sizeof(wp), path, ".weights", NULL);
		static const char *const wk[] = {"min", "max", NULL};
		if (!json_is_object(w))
			return ferr(err, wp, NULL, RWD_E_INVALID, "must be {\"min\": number, \"max\": number}");
		if ((r = only_keys(w, wk, wp, err)))
			return r;
		c->w_min = 0.0;
		c->w_max = 1.0;
		if (get_num(w, "min", &c->w_min) < 0 || c->w_min < 0)
			return ferr(err, wp, "min", RWD_E_INVALID, "must be a finite number >= 0");
		if (get_num(w, "max", &c->w_max) < 0 || c->w_max < c->w_min)
			return ferr(err, wp, "max", RWD_E_INVALID, "must be a finite number >= min");
		c->weights_allowed = 1;
	}
	const json_t *a = json_object_get(o, "advantage");
	if (a) {
		if (!json_is_boolean(a))
			return ferr(err, path, "advantage", RWD_E_INVALID, "must be true or false");
		c->norm_allowed = json_is_true(a);
	}
	return 0;
}

static const char *const conv_names[RWD_ADV_CONVS_] = {
	"verl", "flow_grpo", "flow_grpo_global_std", "dancegrpo",
};

const char *rwd_reward_convention_name(int convention)
{
	return convention >= 0 && convention < RWD_ADV_CONVS_ ? conv_names[convention] : "?";
}

/*
 * The presets, from each trainer's source:
 *   verl: verl/trainer/ppo/core_algos.py compute_grpo_outcome_advantage
 *     (torch.std, epsilon 1e-6, a group of one gets mean 0 and std 1);
 *   flow_grpo: yifan123/flow_grpo@ac4c86e flow_grpo/stat_tracking.py:25-31,
 *     (r - mean) / (np.std(...) + 1e-4), np.std's population std; a prompt
 *     with one sample has std 0, so its advantage is 0; with global_std the
 *     std is np.std over every reward of the update call (27), the mean
 *     still per prompt (25);
 *   dancegrpo: XueZeyue/DanceGRPO@15cc71d fastvideo/train_grpo_flux.py:
 *     540-544 (and every train_grpo_*.py), group_rewards.std() + 1e-8,
 *     torch's unbiased std: a group of one is NaN.
 */
static void set_convention(rwd_reward_adv_params *p, int conv)
{
	p->convention = conv;
	p->norm = RWD_ADV_STD;
	switch (conv) {
	case RWD_ADV_CONV_FLOW_GRPO:
	case RWD_ADV_CONV_FLOW_GRPO_GLOBAL_STD:
		p->std_kind = RWD_ADV_STD_POPULATION;
		p->eps = 1e-4;
		p->singleton = RWD_ADV_ONE_ZERO;
		p->scope = conv == RWD_ADV_CONV_FLOW_GRPO ? RWD_ADV_SCOPE_GROUP : RWD_ADV_SCOPE_REQUEST;
		break;
	case RWD_ADV_CONV_DANCEGRPO:
		p->std_kind = RWD_ADV_STD_UNBIASED;
		p->eps = 1e-8;
		p->singleton = RWD_ADV_ONE_NULL;
		p->scope = RWD_ADV_SCOPE_GROUP;
		break;
	default:
		p->convention = RWD_ADV_CONV_VERL;
		p->std_kind = RWD_ADV_STD_UNBIASED;
		p->eps = 1e-6;
		p->singleton = RWD_ADV_ONE_UNIT;
		p->scope = RWD_ADV_SCOPE_GROUP;
		break;
	}
}

/* *out = the index of s in names[0..n) (NULL-free), or -1. */
static int name_index(const json_t *j, const char *const *names, int n)
{
	const char *s = json_string_value(j);
	for (int i = 0; s && i < n; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

static int parse_adv(const json_t *o, const char *path, rwd_reward_adv_params *p, rwd_error *err)
{
	static const char *const keys[] = {"convention", "normalize", "std", "singleton", "std_scope", "eps",
		"zero_std_tol", "group_timeout_ms", "max_group_size", "max_open_groups", NULL};
	static const char *const norms[] = {"std", "mean_only"};
	static const char *const stds[] = {"unbiased", "population"};
	static const char *const ones[] = {"unit", "zero", "null"};
	static const char *const scopes[] = {"group", "request"};
	if (!json_is_object(o))
		return ferr(err, path, NULL, RWD_E_INVALID, "must be an object");
	int r = only_keys(o, keys, path, err);
	if (r)
		return r;
	const json_t *x;
	int v;
	if ((x = json_object_get(o, "convention"))) {
		if ((v = name_index(x, conv_names, RWD_ADV_CONVS_)) < 0)
			return ferr(err, path, "convention", RWD_E_INVALID,
				"must be \"verl\", \"flow_grpo\", \"flow_grpo_global_std\" or \"dancegrpo\"");
		set_convention(p, v);
	}
	if ((x = json_object_get(o, "normalize"))) {
		if ((v = name_index(x, norms, 2)) < 0)
			return ferr(err, path, "normalize", RWD_E_INVALID, "must be \"std\" or \"mean_only\"");
		p->norm = v == 0 ? RWD_ADV_STD : RWD_ADV_MEAN_ONLY;
	}
	if ((x = json_object_get(o, "std"))) {
		if ((v = name_index(x, stds, 2)) < 0)
			return ferr(err, path, "std", RWD_E_INVALID, "must be \"unbiased\" or \"population\"");
		p->std_kind = v == 0 ? RWD_ADV_STD_UNBIASED : RWD_ADV_STD_POPULATION;
		/* a population std of one value is 0, so its advantage is 0; an
		 * unbiased one is undefined: "zero" becomes verl's "unit" (unless
		 * "singleton" says otherwise, below) */
		if (v == 1)
			p->singleton = RWD_ADV_ONE_ZERO;
		else if (p->singleton == RWD_ADV_ONE_ZERO)
			p->singleton = RWD_ADV_ONE_UNIT;
	}
	if ((x = json_object_get(o, "singleton"))) {
		if ((v = name_index(x, ones, 3)) < 0)
			return ferr(err, path, "singleton", RWD_E_INVALID, "must be \"unit\", \"zero\" or \"null\"");
		p->singleton = v == 0 ? RWD_ADV_ONE_UNIT : v == 1 ? RWD_ADV_ONE_ZERO : RWD_ADV_ONE_NULL;
	}
	if ((x = json_object_get(o, "std_scope"))) {
		if ((v = name_index(x, scopes, 2)) < 0)
			return ferr(err, path, "std_scope", RWD_E_INVALID, "must be \"group\" or \"request\"");
		p->scope = v == 0 ? RWD_ADV_SCOPE_GROUP : RWD_ADV_SCOPE_REQUEST;
	}
	if (get_num(o, "eps", &p->eps) < 0 || p->eps < 0 || p->eps > 1)
		return ferr(err, path, "eps", RWD_E_INVALID, "must be a number in [0, 1]");
	if (get_num(o, "zero_std_tol", &p->zero_std_tol) < 0 || p->zero_std_tol < 0 || p->zero_std_tol > 1)
		return ferr(err, path, "zero_std_tol", RWD_E_INVALID, "must be a number in [0, 1]");
	if (p->scope == RWD_ADV_SCOPE_REQUEST && p->norm == RWD_ADV_MEAN_ONLY)
		return ferr(err, path, "std_scope", RWD_E_INVALID, "\"request\" needs normalize \"std\" (mean_only divides by nothing)");
	if ((x = json_object_get(o, "group_timeout_ms"))) {
		if (!json_is_integer(x) || json_integer_value(x) < 1 || json_integer_value(x) > 600000)
			return ferr(err, path, "group_timeout_ms", RWD_E_INVALID, "must be an integer 1..600000");
		p->group_timeout_ms = (unsigned)json_integer_value(x);
	}
	if ((x = json_object_get(o, "max_group_size"))) {
		if (!json_is_integer(x) || json_integer_value(x) < 1 || json_integer_value(x) > 65536)
			return ferr(err, path, "max_group_size", RWD_E_INVALID, "must be an integer 1..65536");
		p->max_group_size = (size_t)json_integer_value(x);
	}
	if ((x = json_object_get(o, "max_open_groups"))) {
		if (!json_is_integer(x) || json_integer_value(x) < 1 || json_integer_value(x) > 1000000)
			return ferr(err, path, "max_open_groups", RWD_E_INVALID, "must be an integer 1..1000000");
		p->max_open_groups = (size_t)json_integer_value(x);
	}
	return 0;
}

int rwd_reward_config_parse(const json_t *j, const char *path, rwd_reward_config **out,
	rwd_error *err)
{
	static const char *const keys[] = {"transforms", "aggregate", "overrides", "advantage", "$comment", NULL};
	*out = NULL;
	int r;
	rwd_reward_config *c = calloc(1, sizeof(*c));
	if (!c)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	set_convention(&c->adv, RWD_ADV_CONV_VERL);
	c->adv.zero_std_tol = 1e-6;
	c->adv.group_timeout_ms = 10000;
	c->adv.max_group_size = 4096;
	c->adv.max_open_groups = 4096;
	if (!j || json_is_null(j)) {
		*out = c;
		return 0;
	}
	if (!json_is_object(j)) {
		r = ferr(err, path, NULL, RWD_E_INVALID, "must be an object");
		goto fail;
	}
	if ((r = only_keys(j, keys, path, err)))
		goto fail;
	c->src = json_deep_copy(j);
	const json_t *tj = json_object_get(j, "transforms");
	if (tj) {
		char tp[RWD_ERROR_OBJECT_MAX];
		pcat(tp, sizeof(tp), path, ".transforms", NULL);
		if (!json_is_object(tj)) {
			r = ferr(err, tp, NULL, RWD_E_INVALID, "must be an object {dimension: [transform, ...]}");
			goto fail;
		}
		if (json_object_size(tj) > RWD_MAX_DIMS) {
			r = ferr(err, tp, NULL, RWD_E_LIMIT, "more dimensions than a model can have");
			goto fail;
		}
		c->tfs = calloc(json_object_size(tj) + 1, sizeof(*c->tfs));
		if (!c->tfs) {
			r = rwd_errorf(err, RWD_E_NOMEM, "out of memory");
			goto fail;
		}
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)tj, k, v) {
			char dp[RWD_ERROR_OBJECT_MAX];
			pcat(dp, sizeof(dp), tp, ".", k);
			if (!json_is_array(v)) {
				r = ferr(err, dp, NULL, RWD_E_INVALID, "must be an array of transforms");
				goto fail;
			}
			if (json_array_size(v) > RWD_REWARD_MAX_TRANSFORMS) {
				r = ferr(err, dp, NULL, RWD_E_LIMIT, "at most 8 transforms per dimension");
				goto fail;
			}
			dim_tf *d = &c->tfs[c->n_tfs++];
			if (!(d->dim = strdup(k))) {
				r = rwd_errorf(err, RWD_E_NOMEM, "out of memory");
				goto fail;
			}
			size_t i;
			const json_t *e;
			json_array_foreach(v, i, e) {
				char ep[RWD_ERROR_OBJECT_MAX];
				{ char ib[24]; pcat(ep, sizeof(ep), dp, idx(ib, i), NULL); }
				if ((r = parse_tf(e, ep, &d->t[d->n], err)))
					goto fail;
				d->n++;
			}
		}
	}
	const json_t *aj = json_object_get(j, "aggregate");
	if (aj) {
		char ap[RWD_ERROR_OBJECT_MAX];
		pcat(ap, sizeof(ap), path, ".aggregate", NULL);
		if ((r = parse_node(aj, ap, 0, &c->agg, err)))
			goto fail;
	}
	const json_t *oj = json_object_get(j, "overrides");
	if (oj) {
		char op[RWD_ERROR_OBJECT_MAX];
		pcat(op, sizeof(op), path, ".overrides", NULL);
		if ((r = parse_overrides(oj, op, c, err)))
			goto fail;
		if ((c->allowed_modes || c->weights_allowed) && !c->agg) {
			r = ferr(err, op, NULL, RWD_E_INVALID, "overrides need an \"aggregate\" to override");
			goto fail;
		}
		if (c->agg && (c->allowed_modes & (1u << RWD_REWARD_BASE_AND_BONUS)) && c->agg->n != 2) {
			r = ferr(err, op, "modes", RWD_E_INVALID,
				"base_and_bonus needs an aggregate of exactly two terms");
			goto fail;
		}
	}
	const json_t *vj = json_object_get(j, "advantage");
	if (vj) {
		char vp[RWD_ERROR_OBJECT_MAX];
		pcat(vp, sizeof(vp), path, ".advantage", NULL);
		if ((r = parse_adv(vj, vp, &c->adv, err)))
			goto fail;
	}
	*out = c;
	return 0;
fail:
	rwd_reward_config_free(c);
	return r;
}

void rwd_reward_config_free(rwd_reward_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_tfs; i++)
		free(c->tfs[i].dim);
	free(c->tfs);
	node_free(c->agg);
	json_decref(c->src);
	free(c);
}

static int dim_index(const char *const *dims, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(dims[i], name) == 0)
			return (int)i;
	return -1;
}

static int check_node(const node *nd, const char *path, const char *const *dims, size_t n, rwd_error *err)
{
	for (size_t i = 0; i < nd->n; i++) {
		char sub[RWD_ERROR_OBJECT_MAX];
		{ char ib[24]; pcat(sub, sizeof(sub), path, ".terms", idx(ib, i)); }
		if (nd->t[i].sub) {
			int r = check_node(nd->t[i].sub, sub, dims, n, err);
			if (r)
				return r;
		} else if (dim_index(dims, n, nd->t[i].name) < 0) {
			return ferr1(err, sub, NULL, RWD_E_INVALID, "the model has no dimension '%s'", nd->t[i].name);
		}
	}
	return 0;
}

int rwd_reward_config_check_dims(const rwd_reward_config *c, const char *path,
	const char *const *dims, size_t n, rwd_error *err)
{
	for (size_t i = 0; i < c->n_tfs; i++) {
		if (dim_index(dims, n, c->tfs[i].dim) < 0) {
			char p[RWD_ERROR_OBJECT_MAX];
			pcat(p, sizeof(p), path, ".transforms.", c->tfs[i].dim);
			return ferr1(err, p, NULL, RWD_E_INVALID, "the model has no dimension '%s'", c->tfs[i].dim);
		}
	}
	if (c->agg) {
		char p[RWD_ERROR_OBJECT_MAX];
		pcat(p, sizeof(p), path, ".aggregate", NULL);
		return check_node(c->agg, p, dims, n, err);
	}
	return 0;
}

int rwd_reward_config_has_aggregate(const rwd_reward_config *c)
{
	return c && c->agg;
}

int rwd_reward_config_has_transforms(const rwd_reward_config *c)
{
	return c && c->n_tfs > 0;
}

const rwd_reward_adv_params *rwd_reward_config_adv(const rwd_reward_config *c)
{
	return &c->adv;
}

json_t *rwd_reward_config_to_json(const rwd_reward_config *c)
{
	json_t *o = c->src ? json_deep_copy(c->src) : json_object();
	json_t *adv = json_pack("{ss ss ss ss ss sf sf sI sI sI}",
		"convention", rwd_reward_convention_name(c->adv.convention),
		"normalize", c->adv.norm == RWD_ADV_STD ? "std" : "mean_only",
		"std", c->adv.std_kind == RWD_ADV_STD_POPULATION ? "population" : "unbiased",
		"singleton", c->adv.singleton == RWD_ADV_ONE_ZERO ? "zero" : c->adv.singleton == RWD_ADV_ONE_NULL ? "null" : "unit",
		"std_scope", c->adv.scope == RWD_ADV_SCOPE_REQUEST ? "request" : "group",
		"eps", c->adv.eps, "zero_std_tol", c->adv.zero_std_tol, "group_timeout_ms", (json_int_t)c->adv.group_timeout_ms,
		"max_group_size", (json_int_t)c->adv.max_group_size,
		"max_open_groups", (json_int_t)c->adv.max_open_groups);
	json_object_set_new(o, "advantage", adv);
	return o;
}

/* ---- per request ------------------------------------------------------- */

int rwd_reward_override_parse(const rwd_reward_config *c, const json_t *j,
	rwd_reward_override *ov, rwd_error *err)
{
	memset(ov, 0, sizeof(*ov));
	ov->mode = -1;
	ov->norm = -1;
	if (!j)
		return 0;
	if (!json_is_object(j))
		return ferr(err, "reward", NULL, RWD_E_INVALID, "must be an object {mode?, weights?, advantage?}");
	static const char *const keys[] = {"mode", "weights", "advantage", NULL};
	int r = only_keys(j, keys, "reward", err);
	if (r)
		return r;
	const json_t *mj = json_object_get(j, "mode");
	if (mj) {
		int m = mode_of(json_string_value(mj));
		if (m < 0)
			return ferr(err, "reward", "mode", RWD_E_INVALID, "unknown mode");
		if (!c->agg || m != c->agg->mode) {
			if (!(c->allowed_modes & (1u << m)))
				return ferr1(err, "reward", "mode", RWD_E_INVALID,
					"the model's configuration does not allow mode '%s' (overrides.modes)",
					rwd_reward_mode_name(m));
		}
		ov->mode = m;
	}
	const json_t *wj = json_object_get(j, "weights");
	if (wj) {
		if (!json_is_object(wj))
			return ferr(err, "reward", "weights", RWD_E_INVALID, "must be an object {term: number}");
		if (!c->weights_allowed || !c->agg)
			return ferr(err, "reward", "weights", RWD_E_INVALID,
				"the model's configuration does not allow request weights (overrides.weights)");
		ov->n_weights = (int)c->agg->n;
		for (size_t i = 0; i < c->agg->n; i++)
			ov->weights[i] = c->agg->t[i].w;
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)wj, k, v) {
			size_t i;
			for (i = 0; i < c->agg->n; i++)
				if (strcmp(c->agg->t[i].name, k) == 0)
					break;
			if (i == c->agg->n)
				return ferr(err, "reward.weights", k, RWD_E_INVALID, "not a term of the aggregate");
			if (!json_is_number(v) || !isfinite(json_number_value(v)))
				return ferr(err, "reward.weights", k, RWD_E_INVALID, "must be a number");
			double w = json_number_value(v);
			if (w < c->w_min || w > c->w_max) {
				char why[160];
				snprintf(why, sizeof(why), "out of the allowed range [%g, %g]", c->w_min, c->w_max);
				return ferr1(err, "reward.weights", k, RWD_E_INVALID, "%s", why);
			}
			ov->weights[i] = w;
		}
	}
	const json_t *aj = json_object_get(j, "advantage");
	if (aj) {
		const char *s = json_string_value(aj);
		int n = s && strcmp(s, "std") == 0 ? RWD_ADV_STD : s && strcmp(s, "mean_only") == 0 ? RWD_ADV_MEAN_ONLY : -1;
		if (n < 0)
			return ferr(err, "reward", "advantage", RWD_E_INVALID, "must be \"std\" or \"mean_only\"");
		if (n != c->adv.norm && !c->norm_allowed)
			return ferr(err, "reward", "advantage", RWD_E_INVALID,
				"the model's configuration does not allow choosing the normalisation (overrides.advantage)");
		ov->norm = n;
	}
	return 0;
}

static double apply_tf(const tf *t, double x)
{
	switch (t->kind) {
	case TF_AFFINE:
		return t->a * x + t->b;
	case TF_CLIP:
		return x < t->a ? t->a : x > t->b ? t->b : x;
	case TF_SIGMOID:
		return 1.0 / (1.0 + exp(-t->a * (x - t->b)));
	default: {
		double y = (x - t->a) / (t->b - t->a);
		return y < 0.0 ? 0.0 : y > 1.0 ? 1.0 : y;
	}
	}
}

/* Returns 0 with *v, RWD_E_NOTFOUND (absent) or RWD_E_INVALID (not finite / negative for geometric_mean). */
static int eval_node(const node *nd, int mode, const double *w, const char *const *dims, size_t nd_dims,
	const double *vals, const uint8_t *present, double *v)
{
	double x[RWD_REWARD_MAX_TERMS], ww[RWD_REWARD_MAX_TERMS];
	size_t k = 0, absent = 0;
	for (size_t i = 0; i < nd->n; i++) {
		const term *t = &nd->t[i];
		double xi;
		int r;
		if (t->sub) {
			r = eval_node(t->sub, t->sub->mode, NULL, dims, nd_dims, vals, present, &xi);
			if (r == RWD_E_INVALID)
				return r;
		} else {
			int d = dim_index(dims, nd_dims, t->name);
			r = d >= 0 && present[d] ? 0 : RWD_E_NOTFOUND;
			if (!r)
				xi = vals[d];
		}
		if (r) {
			absent++;
			continue;
		}
		x[k] = xi;
		ww[k] = w ? w[i] : t->w;
		k++;
	}
	int pol = nd->absent;
	if (pol == ABSENT_DEFAULT)
		pol = mode == RWD_REWARD_MEAN || mode == RWD_REWARD_WEIGHTED_SUM ? ABSENT_SKIP : ABSENT_NULL;
	if (mode == RWD_REWARD_BASE_AND_BONUS)
		pol = ABSENT_NULL;
	if (k == 0 || (absent && pol == ABSENT_NULL))
		return RWD_E_NOTFOUND;
	double out = 0.0, sw = 0.0;
	switch (mode) {
	case RWD_REWARD_WEIGHTED_SUM:
		for (size_t i = 0; i < k; i++)
			out += ww[i] * x[i];
		break;
	case RWD_REWARD_MEAN:
		for (size_t i = 0; i < k; i++) {
			out += ww[i] * x[i];
			sw += ww[i];
		}
		if (sw <= 0.0)
			return RWD_E_NOTFOUND;
		out /= sw;
		break;
	case RWD_REWARD_MIN:
		out = x[0];
		for (size_t i = 1; i < k; i++)
			out = x[i] < out ? x[i] : out;
		break;
	case RWD_REWARD_GEOMETRIC_MEAN:
		for (size_t i = 0; i < k; i++)
			sw += ww[i];
		if (sw <= 0.0)
			return RWD_E_NOTFOUND;
		out = 1.0;
		for (size_t i = 0; i < k; i++) {
			if (x[i] < 0.0)
				return RWD_E_INVALID;
			if (ww[i] > 0.0)
				out *= pow(x[i], ww[i] / sw);
		}
		break;
	case RWD_REWARD_PRODUCT:
		out = 1.0;
		for (size_t i = 0; i < k; i++)
			out *= x[i];
		break;
	default: /* base_and_bonus: both present (policy null) */
		out = x[0] * (nd->a + nd->b * x[1]);
		break;
	}
	if (!isfinite(out))
		return RWD_E_INVALID;
	*v = out;
	return 0;
}

int rwd_reward_eval(const rwd_reward_config *c, const rwd_reward_override *ov,
	const char *const *dims, size_t n, const float *scores, const uint8_t *present,
	const int *req_dims, size_t n_req, double *out, double *reward)
{
	for (size_t d = 0; d < n; d++) {
		out[d] = present[d] ? (double)scores[d] : NAN;
		if (!present[d] || !c)
			continue;
		for (size_t i = 0; i < c->n_tfs; i++)
			if (strcmp(c->tfs[i].dim, dims[d]) == 0)
				for (size_t q = 0; q < c->tfs[i].n; q++)
					out[d] = apply_tf(&c->tfs[i].t[q], out[d]);
	}
	if (!c || !c->agg) {
		double sum = 0.0;
		size_t k = 0;
		for (size_t i = 0; i < n_req; i++) {
			int d = req_dims[i];
			if (d < 0 || (size_t)d >= n || !present[d])
				continue;
			sum += out[d];
			k++;
		}
		if (k == 0)
			return RWD_E_NOTFOUND;
		double r = sum / (double)k;
		if (!isfinite(r))
			return RWD_E_INVALID;
		*reward = r;
		return 0;
	}
	int mode = ov && ov->mode >= 0 ? ov->mode : c->agg->mode;
	const double *w = ov && ov->n_weights ? ov->weights : NULL;
	return eval_node(c->agg, mode, w, dims, n, out, present, reward);
}

/* ---- advantages --------------------------------------------------------- */

rwd_reward_adv_spec rwd_reward_adv_spec_of(const rwd_reward_adv_params *p, int norm)
{
	rwd_reward_adv_spec s = {
		.norm = norm >= 0 ? norm : p->norm,
		.std_kind = p->std_kind,
		.singleton = p->singleton,
		.eps = p->eps,
		.zero_std_tol = p->zero_std_tol,
	};
	return s;
}

/* mean and the sum of squared deviations of r[0..n), n >= 1 */
static void moments(const double *r, size_t n, double *mean, double *ss)
{
	double m = 0.0, q = 0.0;
	for (size_t i = 0; i < n; i++)
		m += r[i];
	m /= (double)n;
	for (size_t i = 0; i < n; i++) {
		double d = r[i] - m;
		q += d * d;
	}
	*mean = m;
	*ss = q;
}

int rwd_reward_group_advantages(const double *r, size_t n, const rwd_reward_adv_spec *s, double *adv,
	double *mean_out, double *std_out)
{
	double mean = 0.0, sd = 1.0;
	int zero = 0, none = 0;
	if (n == 1) {
		if (s->singleton == RWD_ADV_ONE_ZERO) {
			mean = r[0];
			zero = 1;
		} else if (s->singleton == RWD_ADV_ONE_NULL) {
			mean = r[0];
			sd = NAN;
			none = 1;
		} /* unit: mean 0, std 1, whatever the scope */
	} else if (n > 1) {
		double ss;
		moments(r, n, &mean, &ss);
		zero = 1;
		for (size_t i = 0; i < n; i++)
			if (r[i] != r[0])
				zero = 0;
		sd = sqrt(ss / (double)(s->std_kind == RWD_ADV_STD_POPULATION ? n : n - 1));
		if (sd <= s->zero_std_tol * (fabs(mean) > 1.0 ? fabs(mean) : 1.0))
			zero = 1;
		if (s->scoped)
			sd = s->scope_std;
	}
	for (size_t i = 0; i < n; i++) {
		if (none)
			adv[i] = NAN;
		else if (zero)
			adv[i] = 0.0;
		else if (s->norm == RWD_ADV_MEAN_ONLY)
			adv[i] = r[i] - mean;
		else
			adv[i] = (r[i] - mean) / (sd + s->eps);
	}
	if (zero)
		sd = 0.0;
	if (mean_out)
		*mean_out = mean;
	if (std_out)
		*std_out = sd;
	return zero;
}

double rwd_reward_scope_std(const double *r, size_t n, int std_kind)
{
	size_t k = 0;
	double m = 0.0, q = 0.0;
	for (size_t i = 0; i < n; i++)
		if (isfinite(r[i])) {
			m += r[i];
			k++;
		}
	if (k == 0 || (k == 1 && std_kind != RWD_ADV_STD_POPULATION))
		return NAN;
	m /= (double)k;
	for (size_t i = 0; i < n; i++)
		if (isfinite(r[i])) {
			double d = r[i] - m;
			q += d * d;
		}
	return sqrt(q / (double)(std_kind == RWD_ADV_STD_POPULATION ? k : k - 1));
}

int rwd_reward_advantages(const double *r, size_t n, int norm, double eps, double tol, double *adv,
	double *mean_out, double *std_out)
{
	rwd_reward_adv_spec s = {.norm = norm, .std_kind = RWD_ADV_STD_UNBIASED, .singleton = RWD_ADV_ONE_UNIT,
		.eps = eps, .zero_std_tol = tol};
	return rwd_reward_group_advantages(r, n, &s, adv, mean_out, std_out);
}

/* ---- ensembles ----------------------------------------------------------- */

static const char *const combine_names[] = {"mean", "min", "mean_minus_kstd"};

const char *rwd_ensemble_combine_name(int combine)
{
	return combine >= 0 && combine <= RWD_ENSEMBLE_MEAN_MINUS_KSTD ? combine_names[combine] : "?";
}

void rwd_ensemble_config_clear(rwd_ensemble_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_members; i++)
		free(c->members[i]);
	free(c->members);
	memset(c, 0, sizeof(*c));
}

int rwd_ensemble_config_parse(const json_t *members, const json_t *combine, const char *path,
	rwd_ensemble_config *out, rwd_error *err)
{
	memset(out, 0, sizeof(*out));
	int r;
	char mp[RWD_ERROR_OBJECT_MAX];
	pcat(mp, sizeof(mp), path, ".members", NULL);
	if (!json_is_array(members) || json_array_size(members) < 2)
		return ferr(err, mp, NULL, RWD_E_INVALID, "must be an array of at least two model names");
	if (json_array_size(members) > RWD_ENSEMBLE_MAX_MEMBERS)
		return ferr(err, mp, NULL, RWD_E_LIMIT, "at most 16 members");
	out->members = calloc(json_array_size(members), sizeof(char *));
	if (!out->members)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	size_t i;
	const json_t *e;
	json_array_foreach(members, i, e) {
		char f[32];
		idx(f, i);
		char ep[RWD_ERROR_OBJECT_MAX];
		pcat(ep, sizeof(ep), mp, f, NULL);
		if (!json_is_string(e)) {
			r = ferr(err, ep, NULL, RWD_E_INVALID, "must be a model name");
			goto fail;
		}
		for (size_t q = 0; q < out->n_members; q++)
			if (strcmp(out->members[q], json_string_value(e)) == 0) {
				r = ferr1(err, ep, NULL, RWD_E_INVALID, "'%s' is listed twice", json_string_value(e));
				goto fail;
			}
		if (!(out->members[out->n_members] = strdup(json_string_value(e)))) {
			r = rwd_errorf(err, RWD_E_NOMEM, "out of memory");
			goto fail;
		}
		out->n_members++;
	}
	out->combine = RWD_ENSEMBLE_MEAN;
	out->k = 1.0;
	if (combine) {
		char cp[RWD_ERROR_OBJECT_MAX];
		pcat(cp, sizeof(cp), path, ".combine", NULL);
		const json_t *mj = combine;
		if (json_is_object(combine)) {
			static const char *const keys[] = {"mode", "k", NULL};
			if ((r = only_keys(combine, keys, cp, err)))
				goto fail;
			mj = json_object_get(combine, "mode");
			int hk = get_num(combine, "k", &out->k);
			if (hk < 0 || out->k < 0) {
				r = ferr(err, cp, "k", RWD_E_INVALID, "must be a finite number >= 0");
				goto fail;
			}
		}
		const char *s = json_string_value(mj);
		int m = -1;
		for (int q = 0; s && q <= RWD_ENSEMBLE_MEAN_MINUS_KSTD; q++)
			if (strcmp(s, combine_names[q]) == 0)
				m = q;
		if (m < 0) {
			r = ferr(err, cp, json_is_object(combine) ? "mode" : NULL, RWD_E_INVALID,
				"must be \"mean\", \"min\" or \"mean_minus_kstd\"");
			goto fail;
		}
		out->combine = m;
	}
	return 0;
fail:
	rwd_ensemble_config_clear(out);
	return r;
}

double rwd_ensemble_combine(int combine, double k, const double *v, size_t n, double *spread)
{
	double mean = 0.0, mn = v[0], ss = 0.0;
	for (size_t i = 0; i < n; i++) {
		mean += v[i];
		mn = v[i] < mn ? v[i] : mn;
	}
	mean /= (double)n;
	for (size_t i = 0; i < n; i++)
		ss += (v[i] - mean) * (v[i] - mean);
	double sd = sqrt(ss / (double)n);
	if (spread)
		*spread = sd;
	switch (combine) {
	case RWD_ENSEMBLE_MIN:
		return mn;
	case RWD_ENSEMBLE_MEAN_MINUS_KSTD:
		return mean - k * sd;
	default:
		return mean;
	}
}
