/*
 * models/vlm.h — the `vlm` kind: Qwen2-VL / Qwen2.5-VL reward models (HPSv3,
 * EditReward style) served from their Hugging Face folder, over
 * models/qwen_vision (tower), models/qwen_lm (decoder) and models/vlm_head
 * (reward_head.json's heads), image/qwen_vl (the processor) and text/tokenizer.
 *
 * The folder: config.json (architectures Qwen2VLForConditionalGeneration /
 * Qwen2_5_VLForConditionalGeneration, or a reward-model name containing
 * "Qwen2VL" / "Qwen2_5_VL"), model.safetensors(.index.json) with hub or
 * transformers >= 4.52 names, tokenizer.json (its added tokens give the
 * <|vision_start|> / <|image_pad|> / <|vision_end|> / <|Reward|> ids), and
 * reward_head.json (schema: ../shared/reference/vlm-reward-models.md):
 *   "prompts": {NAME: {"add_generation_prompt": bool, "messages": [{"role",
 *     "content": [{"type": "image", "field": F} | {"type": "text", "text": T,
 *     "text_field": F?}]}]}}; T's "{text_prompt}" is replaced once by the
 *     item's string field F;
 *   "dimensions", "heads": see models/vlm_head.h;
 *   "position_ids": "sequential" (default, 0..n-1 on all streams, what the
 *     HPSv3 / EditReward code computes) or "mrope" (get_rope_index);
 *   "min_pixels" / "max_pixels": the reward model's fetch_image resize.
 *
 * Batches: every prompt of every item is one sequence; the vision tower runs
 * once over all the batch's images (an item's image once, whichever prompts
 * use it) and the decoder once over all sequences packed back to back
 * (attention within each). Scratch is malloc'ed per batch, sized to it.
 *
 * One sequence per distinct prompt: the official Qwen2-VL chat template
 * (a default system message "You are a helpful assistant." when the first
 * message is not a system one; each image part
 * <|vision_start|><|image_pad|>×N<|vision_end|>, N = grid_t·grid_h·grid_w/4;
 * "<|im_start|>assistant\n" with add_generation_prompt), tokenised as one
 * text by the folder's tokenizer (added tokens split first, as HF's
 * processor does after expanding the pads). The tower's output replaces the
 * pads; the decoder's final-norm state at the dimension's pool token (which
 * must occur exactly once; "last" = the last token) goes through its head.
 *
 * Item fields: every field the prompts name (HPSv3: "image", base64 or data
 * URL, and "prompt"). Dimensions: each reward_head.json dimension (its μ),
 * then "<name>_sigma" for each one with a log_sigma (σ = exp(log σ)); the
 * item's extra is {"sigma": {name: σ}}. An image over the pixel limit
 * (max_image_pixels) is refused before decoding, RWD_E_LIMIT naming it.
 */
#ifndef RWD_MODELS_VLM_H
#define RWD_MODELS_VLM_H

#include "models/model.h"

/* 1 if `arch` (a config.json architectures entry) names a Qwen2-VL / Qwen2.5-VL model. */
int rwd__vlm_architecture(const char *arch);

extern const rwd_model_ops rwd__vlm_ops;

#endif
