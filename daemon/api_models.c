/* daemon/api_models.c — GET /v1/models[/{name}], /healthz, /readyz, /metrics. */
#include "admin.h"
#include "api_models.h"

#include "core/thread.h"
#include "rwd_config.h"

#include <stdlib.h>
#include <string.h>

static const char *state_name(int st)
{
	static const char *const names[] = {"loading", "ready", "failed", "warming", "draining", "removed"};
	return st >= 0 && st <= RWD_SERVED_REMOVED ? names[st] : "failed";
}

static json_t *model_json(rwd_served *s)
{
	int st = atomic_load_explicit(&s->state, memory_order_acquire);
	const rwd_batching_config *b = &s->cfg->batching;
	json_t *o = json_pack("{ss ss s{sI sI sI sI si}}", "name", s->cfg->name, "state", state_name(st),
		"batching", "max_batch_size", (json_int_t)b->max_batch_size,
		"max_batch_tokens", (json_int_t)b->max_batch_tokens, "max_delay_us", (json_int_t)b->max_delay_us,
		"max_queue_items", (json_int_t)b->max_queue_items, "workers", b->workers);
	if (s->reason[0])
		json_object_set_new(o, "reason", json_string(s->reason));
	if (s->pending)
		json_object_set_new(o, "next_version", json_string(s->pending));
	if (st != RWD_SERVED_READY) {
		if (s->cfg->kind)
			json_object_set_new(o, "kind", json_string(s->cfg->kind));
		return o;
	}
	const rwd_model_info *info = rwd_model_get_info(s->model);
	json_t *dims = json_array();
	for (size_t i = 0; i < info->n_dims; i++)
		json_array_append_new(dims, json_string(info->dims[i]));
	json_t *inputs = json_array();
	for (size_t i = 0; info->inputs && info->inputs[i]; i++)
		json_array_append_new(inputs, json_string(info->inputs[i]));
	rwd_batcher_stats bs;
	memset(&bs, 0, sizeof(bs));
	if (s->batcher)
		rwd_batcher_get_stats(s->batcher, &bs);
	json_object_set_new(o, "kind", json_string(s->cfg->ensemble.n_members ? "ensemble" : info->kind));
	if (s->cfg->ensemble.n_members) {
		/* an ensemble (api_rl.c) queues on its members' batchers */
		json_t *mem = json_array();
		for (size_t i = 0; i < s->cfg->ensemble.n_members; i++)
			json_array_append_new(mem, json_string(s->cfg->ensemble.members[i]));
		json_object_set_new(o, "members", mem);
	}
	json_object_set_new(o, "path", json_string(info->path));
	json_object_set_new(o, "dimensions", dims);
	json_object_set_new(o, "inputs", inputs);
	json_object_set_new(o, "token_cost", json_boolean(info->token_cost));
	json_object_set_new(o, "weight_bytes", json_integer((json_int_t)info->weight_bytes));
	json_object_set_new(o, "load_seconds", json_real(info->load_seconds));
	json_object_set_new(o, "queue", json_pack("{sI sI sI sI sI sI}",
		"queued", (json_int_t)bs.queued, "running", (json_int_t)bs.running,
		"batches", (json_int_t)bs.batches, "items_run", (json_int_t)bs.items_run,
		"expired", (json_int_t)bs.expired, "cancelled", (json_int_t)bs.cancelled));
	return o;
}

void rwd__api_models(rwd_call *call, rwd_reply *reply)
{
	json_t *arr = json_array();
	/* under the registry lock: a reload cannot free a model being described */
	rwd_app_lock(call->app);
	for (size_t i = 0; i < call->app->n_models; i++)
		if (atomic_load(&call->app->models[i].state) != RWD_SERVED_REMOVED)
			json_array_append_new(arr, model_json(&call->app->models[i]));
	rwd_app_unlock(call->app);
	reply->status = 200;
	reply->json = json_pack("{so}", "models", arr);
}

void rwd__api_model(rwd_call *call, const char *name, rwd_reply *reply)
{
	rwd_app_lock(call->app);
	for (size_t i = 0; i < call->app->n_models; i++) {
		if (strcmp(call->app->models[i].cfg->name, name) == 0 &&
			atomic_load(&call->app->models[i].state) != RWD_SERVED_REMOVED) {
			reply->status = 200;
			reply->json = model_json(&call->app->models[i]);
			rwd_app_unlock(call->app);
			return;
		}
	}
	rwd_app_unlock(call->app);
	rwd_reply_error(reply, 404, "not_found", "no model of that name (see GET /v1/models)", "name", 0, 0);
}

void rwd__api_healthz(rwd_call *call, rwd_reply *reply)
{
	reply->status = 200;
	reply->json = json_pack("{ss ss sf}", "status", "ok", "version", RWD_VERSION,
		"uptime_seconds", (double)(rwd_now_ns() - call->app->start_ns) / 1e9);
}

/*
 * Ready = not draining, at least one model served and every model loaded.
 * With no model the answer is 503 (a server that can score nothing is not
 * ready, unlike MLServer's all([]) == true).
 */
void rwd__api_readyz(rwd_call *call, rwd_reply *reply)
{
	rwd_app *app = call->app;
	json_t *models = json_object();
	int all = 1, live = 0;
	for (size_t i = 0; i < app->n_models; i++) {
		int st = atomic_load_explicit(&app->models[i].state, memory_order_acquire);
		if (st == RWD_SERVED_REMOVED)
			continue;
		json_object_set_new(models, app->models[i].cfg->name, json_string(state_name(st)));
		/* after start-up, a model being added or unloaded at run time does not
		 * take the replica out of rotation; one serving model is enough */
		all &= st == RWD_SERVED_READY || (rwd_admin_running(app) && st != RWD_SERVED_LOADING);
		live += st == RWD_SERVED_READY;
	}
	const char *status = atomic_load(&app->draining) ? "draining" :
		live == 0 && app->n_models == 0 ? "no_models" : all && live ? "ready" : "loading";
	reply->status = strcmp(status, "ready") == 0 ? 200 : 503;
	reply->json = json_pack("{ss so}", "status", status, "models", models);
}

void rwd__api_metrics(rwd_call *call, rwd_reply *reply)
{
	rwd_app_update_process_metrics(call->app);
	size_t len = 0;
	char *txt = rwd_metrics_render(call->app->metrics, &len);
	if (!txt) {
		rwd_reply_error(reply, 503, "out_of_memory", "cannot render the metrics", NULL, 0, 0);
		return;
	}
	reply->status = 200;
	reply->text = txt;
	reply->text_len = len;
	reply->content_type = "text/plain; version=0.0.4; charset=utf-8";
}
