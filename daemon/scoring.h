/*
 * daemon/scoring.h — the daemon's side of one scoring request, shared by
 * POST /v1/rewards (api_rewards.c) and every drop-in route (api_compat.c):
 * the pipeline of lib/serve/score.h set up on what the call pinned, its
 * submission and the one mapping of a refusal to a reply, the Server-Timing
 * header, the per-model and per-item metrics, and the in-flight count the
 * drain waits on. The routes parse (lib/compat, serve/request) and render.
 *
 * Order per call: the route parses into s->req, then rwd_scoring_start
 * (HTTP thread, body complete), rwd_scoring_submit (after suspend; the call
 * is resumed once the pipeline's done() runs), rwd_scoring_finish (after
 * resume), rwd_scoring_completed (reply sent or connection lost; before the
 * call's pins drop).
 */
#ifndef RWD_DAEMON_SCORING_H
#define RWD_DAEMON_SCORING_H

#include "call.h"
#include "serve/request.h"
#include "serve/score.h"

typedef struct rwd_scoring {
	rwd_call *call;
	rwd_request req;     /* parsed by the route; req.model_user is the served version or ensemble */
	rwd_score *sc;       /* the pipeline, after start */
	int submitted;       /* counted in app->inflight */
	int has_transforms;  /* the reward configuration transforms some dimension */
} rwd_scoring;

/*
 * Set up the pipeline for s->req (a served model's name in req.model_name).
 * Returns 0, or an RWD_E_* code with err filled (the field of a bad group
 * or reward override, an unavailable ensemble member).
 */
int rwd_scoring_start(rwd_scoring *s, rwd_call *call, rwd_error *err);

/* Queue it. 0: the call will be resumed. Else *reply is filled (429, 503, 413) and counted. */
int rwd_scoring_submit(rwd_scoring *s, rwd_reply *reply);

/* After resume: the items' outcome metrics and the Server-Timing header. */
void rwd_scoring_finish(rwd_scoring *s, rwd_reply *reply);

/* The request finished with HTTP `status`: request metrics, the in-flight count. Accepts NULL. */
void rwd_scoring_completed(rwd_scoring *s, int status);

/*
 * Item i's result object as POST /v1/rewards answers it (after resume):
 * reward, scores (raw_scores when the configuration transforms), advantage
 * and group, an ensemble's members and spread, then every key the kind
 * attached in item->extra (a PRM's step_rewards, OCR's text and lines) that
 * does not collide with those. Keys are added to o.
 */
void rwd_scoring_item_json(rwd_scoring *s, size_t i, json_t *o);

/* An item's failure as an error record naming "items[i].<field>". */
void rwd_scoring_item_error(const rwd_item *it, rwd_error *out);

#endif
