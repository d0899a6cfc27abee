/*
 * compat/imgrl.h — the image-RL trainers' reward-server protocols
 * translated into native /v1/rewards items and back, without HTTP or a
 * loaded model (daemon/api_imgrl.c serves them; the facts, with citations,
 * are in /work/shared/reference/image-rl-protocols.md and the README).
 *
 * Told apart by the body's keys (every pickle client posts to `POST /`):
 *   RWD_IMGRL_DEQA       flow_grpo deqa_score_remote (yifan123/flow_grpo@54809b5
 *                        flow_grpo/rewards.py:111-158): {"images": [JPEG]}
 *                        → {"outputs": [float]}
 *   RWD_IMGRL_GENEVAL    flow_grpo geneval_score (160-229): {"images",
 *                        "meta_datas": [{"tag", "prompt", ...}], "only_strict"}
 *                        → {"scores", "rewards", "strict_rewards" : [float],
 *                        "group_rewards", "group_strict_rewards": {tag: [float]}}
 *                        with -10.0 for an image of another tag, the six
 *                        GenEval tags always present (yifan123/reward-server
 *                        gen_eval.py). The score is the served model's reward
 *                        for (image, meta["prompt"]), not GenEval's detector.
 *   RWD_IMGRL_UNIFIED    flow_grpo unifiedreward_score_remote (231-282):
 *                        {"images", "prompts": numpy '<U' array} → {"outputs"}
 *   RWD_IMGRL_SCORES     verl-omni http_scorer_client (verl-project/verl-omni@0ef63e5
 *                        verl_omni/utils/reward_score/http_scorer_client.py:99-146)
 *                        and the deepgen_rl servers it names: {"images": [JPEG]
 *                        | {"source": [..], "edited": [..]}, "prompts": [str],
 *                        "metadata"?} → {"scores": [float]}
 *   RWD_IMGRL_EDITSCORE  EditScore's proxy (VectorSpaceLab/EditScore@35ddc1a
 *                        examples/OmniGen2-RL/reward_server/reward_proxy.py:206-257):
 *                        {"input_images": [[PIL]], "output_image": [PIL],
 *                        "meta_datas": [JSON str with "instruction"],
 *                        "server_type"?} → {"scores", "rewards",
 *                        "strict_rewards": [float], "reasoning": [str],
 *                        "meta_data": [the parsed meta + "original_index"]}
 *   RWD_IMGRL_EDITSCORE_WORKER  its worker (reward_server.py): the same with
 *                        "meta_data": [dict | JSON str] → a list of
 *                        {"score", "reward", "reasoning", "strict_reward",
 *                        "meta_data", "group_reward", "group_strict_reward"}
 *   RWD_IMGRL_COMPUTE    Flow-Factory RemoteRewardClient (X-GenGroup/Flow-Factory
 *                        src/flow_factory/rewards/my_reward_remote.py:74-141),
 *                        JSON POST /compute: {"prompt": [str], "image": [base64
 *                        PNG] | null, "video": null, "condition_images":
 *                        [[base64 PNG]] | null} → {"rewards": [float]}
 * Every value a trainer reads is the model's configured reward (transforms,
 * aggregation) of the item; `scores`, `rewards` and `strict_rewards` carry
 * the same number. EditScore's `reasoning` is the item's dimension scores
 * as compact JSON.
 *
 * What an item becomes, by the served model's kind: `clip` takes the image,
 * the text as "prompt", and for edits "source_image" + "instruction" (so
 * image_similarity and edit_direction are scored); `image_metrics` takes the
 * image and the source (texts are not used); `imagereward` the image and the
 * prompt. Other kinds score no images (RWD_E_INVALID). JPEG/PNG bytes travel
 * as base64; PIL images are converted as Image.convert("RGB") does (RGB,
 * RGBA/RGBX drop the 4th channel, L/LA replicate luma, P/PA look the palette
 * up, indices past it read grey (i, i, i), 1 is 0/255) and written as PNG.
 *
 * Limits: items per request (lim->max_items), text bytes, one PIL image's
 * pixels; the decoded pickle itself is bounded by compat/pickle.h.
 * Errors: RWD_E_INVALID naming the field as the client sent it
 * ("images[2]", "meta_datas[0].instruction"), RWD_E_LIMIT,
 * RWD_E_UNSUPPORTED (video, an image mode without an RGB conversion).
 *
 * Thread safety: re-entrant, no state.
 */
#ifndef RWD_COMPAT_IMGRL_H
#define RWD_COMPAT_IMGRL_H

#include "compat/pickle.h"
#include "core/error.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

enum rwd_imgrl_proto {
	RWD_IMGRL_DEQA,
	RWD_IMGRL_GENEVAL,
	RWD_IMGRL_UNIFIED,
	RWD_IMGRL_SCORES,
	RWD_IMGRL_EDITSCORE,
	RWD_IMGRL_EDITSCORE_WORKER,
	RWD_IMGRL_COMPUTE,
};

typedef struct rwd_imgrl_limits {
	size_t max_items;       /* items per request */
	size_t max_text_bytes;  /* one prompt / instruction / meta JSON */
	size_t max_depth;       /* JSON nesting of an EditScore meta string */
} rwd_imgrl_limits;

typedef struct rwd_imgrl_req {
	int proto;              /* enum rwd_imgrl_proto */
	size_t n;               /* items */
	int edit;               /* items carry a source image */
	json_t *echo;           /* owned: per item, GenEval's tag (str) or EditScore's meta_data (object) */
} rwd_imgrl_req;

/*
 * The client's own timeout for one request, in ms: flow_grpo 120 s
 * (rewards.py: timeout=120), verl-omni 120 s (ClientTimeout(total=120)),
 * EditScore 600 s (evaluate_images: timeout=600), Flow-Factory 60 s. The
 * daemon makes it the request's deadline (capped by requests.max_timeout_ms),
 * since these bodies cannot carry a timeout_ms and the 30 s default would
 * give up on a large batch the client is still waiting for.
 */
uint32_t rwd_imgrl_client_timeout_ms(int proto);

/* The protocol name for logs and errors ("flow_grpo deqa", ...). */
const char *rwd_imgrl_proto_name(int proto);

/*
 * A decoded pickle body → items appended to `items` (native item objects),
 * *req filled (rwd_imgrl_req_clear it). kind: the served model's kind.
 */
int rwd_imgrl_from_pickle(const rwd_pickle_value *root, const char *kind, const rwd_imgrl_limits *lim,
	json_t *items, rwd_imgrl_req *req, rwd_error *err);

/* Flow-Factory's /compute JSON body → items, *req filled. */
int rwd_imgrl_from_compute(const json_t *root, const char *kind, const rwd_imgrl_limits *lim,
	json_t *items, rwd_imgrl_req *req, rwd_error *err);

/*
 * The protocol's reply for req->n scored items: reward[i], and scores[i] an
 * object of the item's dimension scores (for EditScore's reasoning; may be
 * NULL). NULL on out of memory.
 */
json_t *rwd_imgrl_reply(const rwd_imgrl_req *req, const double *reward, json_t *const *scores);

/* The protocol's error body: {"error": message} (for every protocol here). */
json_t *rwd_imgrl_error_body(const char *message);

/*
 * Rename a native field path ("items[3].source_image") to the one the
 * client sent ("input_images[3][0]", "images.source[3]", ...), in place.
 */
void rwd_imgrl_remap_field(const rwd_imgrl_req *req, char *object, size_t size);

void rwd_imgrl_req_clear(rwd_imgrl_req *req); /* releases echo; accepts a zeroed req */

/*
 * A decoded PIL image as 8-bit RGB (Image.convert("RGB")) into out
 * (3 * width * height bytes). RWD_E_UNSUPPORTED for a mode without a
 * conversion here.
 */
int rwd_imgrl_image_rgb(const rwd_pickle_value *im, uint8_t *out, rwd_error *err);

/* The same as a PNG in a malloc'd buffer (*png, *len). */
int rwd_imgrl_image_png(const rwd_pickle_value *im, uint8_t **png, size_t *len, rwd_error *err);

#endif
