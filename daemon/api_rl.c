/* daemon/api_rl.c — the RL state of served models and GET /v1/stats (see api_rl.h). */
#include "api_rl.h"

#include "core/thread.h"
#include "reward/group.h"
#include "reward/reward.h"
#include "reward/stats.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RL_WINDOW 256

typedef struct rwd_rl {
	rwd_group_table *groups;
	rwd_reward_stats *st_reward, *st_dims, *st_adv;
	rwd_metric_family *f_reward, *f_dim, *f_adv;
	rwd_metric *groups_open;
} rwd_rl;

typedef struct rwd_rl_served {
	rwd_reward_config *own;        /* the default, when the entry has no "reward" */
	const rwd_reward_config *rc;
	rwd_served *members[RWD_ENSEMBLE_MAX_MEMBERS];
	size_t n_members;
	size_t n_dims;
	rwd_score_sinks sinks;         /* statistics series and histograms (serve/score.h) */
} rwd_rl_served;

int rwd__rl_init(rwd_app *app)
{
	rwd_rl *rl = calloc(1, sizeof(*rl));
	if (!rl)
		return RWD_E_NOMEM;
	app->rl = rl;
	size_t nb;
	const double *b = rwd_reward_stats_default_bounds(&nb);
	rl->groups = rwd_group_table_new();
	rl->st_reward = rwd_reward_stats_new(b, nb, RL_WINDOW);
	rl->st_dims = rwd_reward_stats_new(b, nb, RL_WINDOW);
	rl->st_adv = rwd_reward_stats_new(b, nb, RL_WINDOW);
	if (!rl->groups || !rl->st_reward || !rl->st_dims || !rl->st_adv)
		return RWD_E_NOMEM;
	static const char *const l_model[] = {"model", NULL};
	static const char *const l_model_dim[] = {"model", "dimension", NULL};
	rl->f_reward = rwd_metrics_family(app->metrics, RWD_METRIC_HISTOGRAM, "rewardd_reward_value",
		"Combined reward of each scored item (after transforms and aggregation).", l_model, b, nb);
	rl->f_dim = rwd_metrics_family(app->metrics, RWD_METRIC_HISTOGRAM, "rewardd_reward_dimension_value",
		"Each returned dimension's score (after its transforms).", l_model_dim, b, nb);
	rl->f_adv = rwd_metrics_family(app->metrics, RWD_METRIC_HISTOGRAM, "rewardd_reward_advantage",
		"GRPO group advantage of each item that belonged to a group.", l_model, b, nb);
	rl->groups_open = rwd_metric_0(rwd_metrics_family(app->metrics, RWD_METRIC_GAUGE,
		"rewardd_reward_groups_open", "Cross-request GRPO groups waiting for members (sampled per request).",
		NULL, NULL, 0));
	return 0;
}

void rwd__rl_drain(rwd_app *app)
{
	if (app->rl)
		rwd_group_table_flush(app->rl->groups);
}

void rwd__rl_free(rwd_app *app)
{
	for (size_t i = 0; app->models && i < app->n_models; i++) {
		rwd_rl_served *rs = app->models[i].rl;
		if (rs)
			rwd_reward_config_free(rs->own);
		free(rs);
		app->models[i].rl = NULL;
		if (rwd_app_is_ensemble(&app->models[i]))
			app->models[i].model = NULL; /* borrowed from the first member */
	}
	rwd_rl *rl = app->rl;
	if (!rl)
		return;
	rwd_group_table_free(rl->groups);
	rwd_reward_stats_free(rl->st_reward);
	rwd_reward_stats_free(rl->st_dims);
	rwd_reward_stats_free(rl->st_adv);
	free(rl);
	app->rl = NULL;
}

void rwd__rl_version_free(rwd_served *v)
{
	if (v->rl)
		rwd_reward_config_free(v->rl->own);
	free(v->rl);
	v->rl = NULL;
}

int rwd__rl_load_ensemble(rwd_app *app, rwd_served *s, rwd_error *err)
{
	if (!app)
		return 0;
	const rwd_ensemble_config *e = &s->cfg->ensemble;
	const rwd_model_info *first = NULL;
	for (size_t k = 0; k < e->n_members; k++) {
		char f[RWD_ERROR_OBJECT_MAX];
		snprintf(f, sizeof(f), "models.%.64s.members[%zu]", s->cfg->name, k % 100);
		rwd_served *m = rwd_app_slot(app, e->members[k]);
		if (!m || atomic_load_explicit(&m->state, memory_order_acquire) != RWD_SERVED_READY) {
			rwd_error_where(err, NULL, f);
			return rwd_errorf(err, RWD_E_STATE, "member '%s' is not loaded", e->members[k]);
		}
		const rwd_model_info *info = rwd_model_get_info(m->model);
		if (!first) {
			first = info;
			continue;
		}
		int same = info->n_dims == first->n_dims;
		for (size_t d = 0; same && d < info->n_dims; d++)
			same = strcmp(info->dims[d], first->dims[d]) == 0;
		if (!same) {
			rwd_error_where(err, NULL, f);
			return rwd_errorf(err, RWD_E_INVALID,
				"member '%s' has other dimensions than '%s' (members must share them, in order)",
				e->members[k], e->members[0]);
		}
	}
	/* the first member's model validates items and names dimensions; borrowed */
	s->model = rwd_app_slot(app, e->members[0])->model;
	return 0;
}

int rwd__rl_model_ready(rwd_app *app, rwd_served *s, rwd_error *err)
{
	const rwd_model_info *info = rwd_model_get_info(s->model);
	char path[RWD_ERROR_OBJECT_MAX];
	snprintf(path, sizeof(path), "models.%.64s.reward", s->cfg->name);
	if (s->cfg->reward) {
		int r = rwd_reward_config_check_dims(s->cfg->reward, path, info->dims, info->n_dims, err);
		if (r)
			return r;
	}
	if (!app || !app->rl)
		return 0;
	rwd_rl_served *rs = calloc(1, sizeof(*rs));
	if (!rs)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	s->rl = rs;
	rs->n_dims = info->n_dims;
	if (s->cfg->reward) {
		rs->rc = s->cfg->reward;
	} else {
		int r = rwd_reward_config_parse(NULL, "", &rs->own, err);
		if (r)
			return r;
		rs->rc = rs->own;
	}
	for (size_t k = 0; k < s->cfg->ensemble.n_members; k++)
		rs->members[rs->n_members++] = rwd_app_slot(app, s->cfg->ensemble.members[k]);
	rwd_rl *rl = app->rl;
	const char *name = s->cfg->name;
	for (size_t d = 0; d < info->n_dims; d++) {
		const char *lab[2] = {name, info->dims[d]};
		rs->sinks.dim[d] = rwd_reward_stats_series(rl->st_dims, name, info->dims[d]);
		rs->sinks.h_dim[d] = rwd_metric_with(rl->f_dim, lab);
	}
	rs->sinks.reward = rwd_reward_stats_series(rl->st_reward, name, "reward");
	rs->sinks.adv = rwd_reward_stats_series(rl->st_adv, name, "advantage");
	rs->sinks.h_reward = rwd_metric_1(rl->f_reward, name);
	rs->sinks.h_adv = rwd_metric_1(rl->f_adv, name);
	rs->sinks.groups_open = rl->groups_open;
	return 0;
}

/* ---- a request's pipeline ------------------------------------------------ */

int rwd__rl_target(rwd_call *call, rwd_served *s, const rwd_model *model, rwd_score_target *t,
	rwd_score_params *p, rwd_error *err)
{
	rwd_rl_served *rs = s->rl;
	if (!rs || !call->app->rl)
		return rwd_errorf(err, RWD_E_STATE, "model '%s' is not set up for scoring", s->cfg->name);
	memset(t, 0, sizeof(*t));
	t->name = s->cfg->name;
	t->model = model;
	t->batcher = s->batcher;
	t->reward = rs->rc;
	t->sinks = &rs->sinks;
	if (s->cfg->ensemble.n_members) {
		/* the members' versions pinned with the ensemble (app.c): a reload of a
		 * member swaps the slot, never what this request runs on */
		t->ensemble = &s->cfg->ensemble;
		for (size_t k = 0; k < s->cfg->ensemble.n_members; k++) {
			rwd_served *mv = rwd_app_pinned(&call->pins, s->cfg->ensemble.members[k]);
			if (!mv || !mv->batcher)
				return rwd_errorf(err, RWD_E_STATE, "ensemble member '%s' is not available",
					s->cfg->ensemble.members[k]);
			t->members[k] = mv->batcher;
		}
	}
	p->groups = call->app->rl->groups;
	return 0;
}

int rwd__rl_has_transforms(const rwd_served *s)
{
	return s->rl && rwd_reward_config_has_transforms(s->rl->rc);
}

/* ---- GET /v1/stats ------------------------------------------------------------ */

void rwd__api_stats(rwd_call *call, rwd_reply *reply)
{
	rwd_app *app = call->app;
	rwd_rl *rl = app->rl;
	if (!rl) {
		rwd_reply_error(reply, 503, "unavailable", "statistics are not set up", NULL, 0, 0);
		return;
	}
	json_t *models = json_object();
	json_t *jr = rwd_reward_stats_json(rl->st_reward, NULL);
	json_t *jd = rwd_reward_stats_json(rl->st_dims, NULL);
	json_t *ja = rwd_reward_stats_json(rl->st_adv, NULL);
	for (size_t i = 0; i < app->n_models; i++) {
		const char *name = app->models[i].cfg->name;
		if (!app->models[i].rl)
			continue;
		json_t *mr = json_object_get(json_object_get(json_object_get(jr, "models"), name), "reward");
		json_t *ma = json_object_get(json_object_get(json_object_get(ja, "models"), name), "advantage");
		json_t *md = json_object_get(json_object_get(jd, "models"), name);
		json_object_set_new(models, name, json_pack("{sO? sO? so}", "reward", mr, "advantage", ma,
			"dimensions", md ? json_incref(md) : json_object()));
	}
	reply->status = 200;
	reply->json = json_pack("{sI sO sI so}", "window", (json_int_t)RL_WINDOW,
		"buckets", json_object_get(jr, "buckets"),
		"groups_open", (json_int_t)rwd_group_table_open(rl->groups), "models", models);
	json_decref(jr);
	json_decref(jd);
	json_decref(ja);
}
