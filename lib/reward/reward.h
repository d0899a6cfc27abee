/*
 * reward/reward.h — turning an item's per-dimension scores into its
 * combined `reward`, and GRPO group advantages (DESIGN.md §6).
 *
 * A model's reward configuration (the `reward` object of its entry in the
 * daemon config, parsed by rwd_reward_config_parse) has:
 *   - transforms: per dimension, a chain applied in order to the raw score
 *     (affine, clip, sigmoid, rescale from a stated range to [0,1]);
 *   - aggregate: a tree of nodes; a node has a mode (weighted_sum, mean,
 *     min, geometric_mean, product, base_and_bonus) over terms, each a
 *     dimension name or a nested node; the root gives `reward`;
 *   - overrides: which modes and what weights a request may choose for the
 *     root node (nothing by default);
 *   - advantage: group normalisation (std or mean_only, eps, deadline).
 * Without a configuration the reward is the mean of the requested
 * dimensions the item has (rwd_reward_combine).
 *
 * Absent terms (a dimension the item does not have, or a nested node that
 * has no value) are never read as 0. Each node has an `absent` policy:
 * "skip" computes over the present terms (mean and geometric_mean
 * renormalise the weights over them; weighted_sum and product use the
 * present terms only; min takes the least present term), "null" makes the
 * node absent as soon as one term is. Defaults: skip for mean and
 * weighted_sum, null for min, geometric_mean, product and base_and_bonus
 * (base_and_bonus only allows null). A node with no present term is
 * absent; an absent root gives `reward: null`.
 *
 * Thread safety: a parsed configuration is immutable; every function here
 * is re-entrant.
 */
#ifndef RWD_REWARD_REWARD_H
#define RWD_REWARD_REWARD_H

#include "core/error.h"
#include "models/model.h"

#include <jansson.h>
#include <stddef.h>

/*
 * Combine item's scores over the dimension indices dims[0..n) into *out
 * (their mean). Returns 0, or RWD_E_NOTFOUND when none of them is present
 * (then *out is untouched), or RWD_E_INVALID when the result is not finite.
 */
int rwd_reward_combine(const rwd_item *item, const int *dims, size_t n, double *out);

/* ---- configuration ---------------------------------------------------- */

enum rwd_reward_mode {
	RWD_REWARD_WEIGHTED_SUM,
	RWD_REWARD_MEAN,
	RWD_REWARD_MIN,
	RWD_REWARD_GEOMETRIC_MEAN,
	RWD_REWARD_PRODUCT,
	RWD_REWARD_BASE_AND_BONUS,
	RWD_REWARD_MODES_
};

enum rwd_reward_norm { RWD_ADV_STD, RWD_ADV_MEAN_ONLY };

/* Which standard deviation divides: torch.std's default (n - 1) or numpy.std's (n). */
enum rwd_reward_std_kind { RWD_ADV_STD_UNBIASED, RWD_ADV_STD_POPULATION };

/*
 * What a group with one counted reward gets:
 *   unit: mean 0, std 1 (verl's compute_grpo_outcome_advantage): r / (1 + eps);
 *   zero: mean r, std 0 (what a population std gives): advantage 0;
 *   null: no advantage (NaN, answered null): torch.std of one element is NaN,
 *         which is what DanceGRPO's formula produces.
 */
enum rwd_reward_singleton { RWD_ADV_ONE_UNIT, RWD_ADV_ONE_ZERO, RWD_ADV_ONE_NULL };

/*
 * Where the divisor comes from: each group's own std, or one std over every
 * grouped reward of the request (flow_grpo's `sample.global_std`), the mean
 * staying per group. The request scope needs every group whole within the
 * request (a cross-request group has no single request); the pipeline
 * refuses the combination.
 */
enum rwd_reward_std_scope { RWD_ADV_SCOPE_GROUP, RWD_ADV_SCOPE_REQUEST };

/*
 * Named trainer conventions (`advantage.convention`): each sets normalize,
 * std, eps, singleton and std_scope; explicit fields then override them.
 *   verl (default)        std, unbiased, eps 1e-6, singleton unit, group;
 *   flow_grpo             std, population, eps 1e-4, singleton zero, group
 *                         (PerPromptStatTracker with global_std=False);
 *   flow_grpo_global_std  the same with std_scope request (global_std=True,
 *                         flow_grpo's config/base.py default);
 *   dancegrpo             std, unbiased, eps 1e-8, singleton null.
 */
enum rwd_reward_convention {
	RWD_ADV_CONV_VERL,
	RWD_ADV_CONV_FLOW_GRPO,
	RWD_ADV_CONV_FLOW_GRPO_GLOBAL_STD,
	RWD_ADV_CONV_DANCEGRPO,
	RWD_ADV_CONVS_
};

#define RWD_REWARD_MAX_TRANSFORMS 8
#define RWD_REWARD_MAX_TERMS 16
#define RWD_REWARD_MAX_DEPTH 4

typedef struct rwd_reward_config rwd_reward_config;

/* Advantage settings (defaults: verl's convention, deadline 10 s, 4096 open groups). */
typedef struct rwd_reward_adv_params {
	int convention;           /* enum rwd_reward_convention (the preset the others started from) */
	int norm;                 /* enum rwd_reward_norm */
	int std_kind;             /* enum rwd_reward_std_kind */
	int singleton;            /* enum rwd_reward_singleton */
	int scope;                /* enum rwd_reward_std_scope */
	double eps;
	double zero_std_tol;      /* std <= tol * max(1, |mean|) counts as zero variance (default 1e-6) */
	unsigned group_timeout_ms;/* a cross-request group is answered after this */
	size_t max_group_size;
	size_t max_open_groups;
} rwd_reward_adv_params;

/*
 * Parse a `reward` object (j may be NULL: the default configuration).
 * `path` prefixes field names in errors ("models.x.reward"), e.g.
 * "models.x.reward.aggregate.terms[1].mode: unknown mode". Returns 0 with
 * *out owned by the caller (rwd_reward_config_free), or RWD_E_INVALID /
 * RWD_E_LIMIT / RWD_E_NOMEM with err set.
 */
int rwd_reward_config_parse(const json_t *j, const char *path, rwd_reward_config **out,
	rwd_error *err);
void rwd_reward_config_free(rwd_reward_config *c);

/*
 * Check that every dimension the configuration names exists among
 * dims[0..n) (the loaded model's). err names the field.
 */
int rwd_reward_config_check_dims(const rwd_reward_config *c, const char *path,
	const char *const *dims, size_t n, rwd_error *err);

/* 1 when the configuration has an aggregate (else the mean of requested dims). */
int rwd_reward_config_has_aggregate(const rwd_reward_config *c);
/* 1 when some dimension has a transform. */
int rwd_reward_config_has_transforms(const rwd_reward_config *c);
const rwd_reward_adv_params *rwd_reward_config_adv(const rwd_reward_config *c);
/* The configuration as JSON (for --check-config and GET /v1/models/{name}); new reference. */
json_t *rwd_reward_config_to_json(const rwd_reward_config *c);

const char *rwd_reward_mode_name(int mode);
const char *rwd_reward_convention_name(int convention);

/* ---- per request ------------------------------------------------------- */

/* A request's choices for the root node, checked against the config's bounds. */
typedef struct rwd_reward_override {
	int mode;                        /* -1: the configured one */
	int n_weights;
	double weights[RWD_REWARD_MAX_TERMS]; /* per root term, when n_weights > 0 */
	int norm;                        /* -1: the configured one */
} rwd_reward_override;

/*
 * Parse a request's "reward" object (NULL: no override) against c.
 * Accepted: {"mode": str, "weights": {term: number}, "advantage": "std"|"mean_only"}.
 * Errors: RWD_E_INVALID with err->object the field ("reward.weights.quality").
 */
int rwd_reward_override_parse(const rwd_reward_config *c, const json_t *j,
	rwd_reward_override *ov, rwd_error *err);

/*
 * Apply the transforms to scores/present (n dims named dims[]) into out[]
 * (absent stays absent), then evaluate the aggregate into *reward.
 * Returns 0 with *reward set, RWD_E_NOTFOUND when the reward is absent,
 * RWD_E_INVALID when the value is not finite (e.g. a geometric mean of a
 * negative term). When c has no aggregate the reward is the mean of the
 * (transformed) requested dimensions req_dims[0..n_req).
 */
int rwd_reward_eval(const rwd_reward_config *c, const rwd_reward_override *ov,
	const char *const *dims, size_t n, const float *scores, const uint8_t *present,
	const int *req_dims, size_t n_req, double *out, double *reward);

/* ---- GRPO advantages (pure) -------------------------------------------- */

/* One group's normalisation, as configured (rwd_reward_adv_spec_of) and per request (norm). */
typedef struct rwd_reward_adv_spec {
	int norm;          /* enum rwd_reward_norm */
	int std_kind;      /* enum rwd_reward_std_kind */
	int singleton;     /* enum rwd_reward_singleton */
	double eps;
	double zero_std_tol;
	int scoped;        /* 1: divide by scope_std instead of the group's own std */
	double scope_std;  /* rwd_reward_scope_std over the request (std_scope request) */
} rwd_reward_adv_spec;

/* The spec of configuration p with normalisation norm (-1: p's own); scoped = 0. */
rwd_reward_adv_spec rwd_reward_adv_spec_of(const rwd_reward_adv_params *p, int norm);

/*
 * Advantages of one group's rewards r[0..n) (n >= 1, all finite) into
 * adv[0..n):
 *   mean_only: r - mean;
 *   std:       (r - mean) / (D + eps), D the group's std of s->std_kind, or
 *              s->scope_std when s->scoped.
 * A group of one follows s->singleton (unit: mean 0, std 1; zero: advantage
 * 0, counted as zero variance; null: NaN advantages and std). A group of two
 * or more whose rewards are all equal has advantage exactly 0. "Equal"
 * allows float residue: its own std <= tol * max(1, |mean|) (tol 0: exact
 * equality). The scores are float32, and one input scored at two batch
 * positions can differ in the last bit; without the tolerance that residue
 * divided by eps becomes a large advantage (the blow-up TRL and NeMo-RL
 * guard against; DanceGRPO's float32 formula turns 8 equal rewards 0.7 into
 * advantages of +-0.81). Returns 1 when the group had zero variance, else 0.
 * *mean_out and *std_out (may be NULL) get the statistics used (std: the
 * divisor D without eps; 0 for zero variance).
 */
int rwd_reward_group_advantages(const double *r, size_t n, const rwd_reward_adv_spec *s, double *adv,
	double *mean_out, double *std_out);

/*
 * The std of kind std_kind over the finite values of r[0..n), for
 * std_scope request. NaN when none is finite (or one, for unbiased).
 */
double rwd_reward_scope_std(const double *r, size_t n, int std_kind);

/*
 * verl's convention (unbiased std, singleton unit, the group's own std):
 * rwd_reward_group_advantages with those settings and norm, eps, tol.
 */
int rwd_reward_advantages(const double *r, size_t n, int norm, double eps, double tol, double *adv,
	double *mean_out, double *std_out);

/* ---- ensembles --------------------------------------------------------- */

enum rwd_ensemble_combine { RWD_ENSEMBLE_MEAN, RWD_ENSEMBLE_MIN, RWD_ENSEMBLE_MEAN_MINUS_KSTD };

typedef struct rwd_ensemble_config {
	char **members;      /* names, owned */
	size_t n_members;
	int combine;         /* enum rwd_ensemble_combine */
	double k;
} rwd_ensemble_config;

#define RWD_ENSEMBLE_MAX_MEMBERS 16

/*
 * Parse "members" (array of 2..16 model names) and "combine" (a string, or
 * {"mode": str, "k": number >= 0}; default "mean") of a model entry.
 * err names "<path>.members[i]" / "<path>.combine.k".
 */
int rwd_ensemble_config_parse(const json_t *members, const json_t *combine, const char *path,
	rwd_ensemble_config *out, rwd_error *err);
void rwd_ensemble_config_clear(rwd_ensemble_config *c);
const char *rwd_ensemble_combine_name(int combine);

/*
 * Combine one dimension's member values v[0..n) (n >= 1): mean, min, or
 * mean - k * std. std (the spread, *spread) is the population std (divide by
 * n): the members are the whole ensemble, not a sample.
 */
double rwd_ensemble_combine(int combine, double k, const double *v, size_t n, double *spread);

#endif
