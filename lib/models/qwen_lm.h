/*
 * models/qwen_lm.h — the language model of Qwen2-VL / Qwen2.5-VL (the Qwen2
 * decoder: q/k/v with bias, o_proj without, GQA, RMSNorm, SwiGLU) with
 * multimodal rotary positions, over lib/nn in float32, for the `vlm` kind.
 *
 * M-RoPE (transformers' apply_multimodal_rotary_pos_emb, commit 00b676f8):
 * every token has three positions (t, h, w). The rotary channels
 * [0, head_dim/2) are split by mrope_section (e.g. [16, 24, 24]); channel i
 * (and its rotate_half partner i + head_dim/2) rotates by
 * pos[stream(i)] · inv_freq[i], stream 0 for the first section, 1 for the
 * second, 2 for the third; inv_freq = 1 / rope_theta^(2i / head_dim). With
 * the three streams equal this is ordinary 1D RoPE, which is what a caller
 * gets by passing the same positions three times (the reward models'
 * "sequential" mode: cumsum(attention_mask) − 1).
 *
 * rwd_qwen_lm_rope_index() is get_rope_index's rule for one unpadded
 * sequence. Text tokens advance t/h/w together. A vision block of grid
 * (t, h, w) patches, i.e. t · h/merge · w/merge placeholder tokens starting
 * right after text of length L that began at s, takes
 * (s + L + floor(ti · t_step), s + L + row, s + L + col) on the merged grid,
 * and the next text starts at the block's largest position + 1. t_step is 1
 * for Qwen2-VL, and second_per_grid_t · tokens_per_second for Qwen2.5-VL
 * (0 for images).
 *
 * Tensor names under `prefix` ("model" on the hub, "model.language_model"
 * in transformers >= 4.52): embed_tokens.weight, layers.N.{input_layernorm,
 * post_attention_layernorm}.weight, layers.N.self_attn.{q,k,v}_proj.{weight,
 * bias}, layers.N.self_attn.o_proj.weight, layers.N.mlp.{gate,up,down}_proj.
 * weight, norm.weight.
 *
 * Thread safety: the loaded model is read-only; forward() is re-entrant with
 * distinct scratch.
 */
#ifndef RWD_MODELS_QWEN_LM_H
#define RWD_MODELS_QWEN_LM_H

#include "core/error.h"
#include "tensor/safetensors.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rwd_qwen_lm rwd_qwen_lm;

typedef struct rwd_qwen_lm_info {
	size_t hidden, vocab, layers, heads, kv_heads, head_dim, inter;
	size_t mrope_section[3];
	double rope_theta, rms_eps;
} rwd_qwen_lm_info;

/*
 * Load from `w` (borrowed; it must outlive the model) under `prefix`, the
 * text settings in `text_config` (config.json itself on the hub, or its
 * "text_config"). Returns 0, RWD_E_INVALID / RWD_E_UNSUPPORTED (config, key
 * named), RWD_E_NOTFOUND / RWD_E_INVALID (a tensor, named) or RWD_E_NOMEM.
 */
int rwd_qwen_lm_load(const rwd_weights *w, const char *prefix, const json_t *text_config,
	rwd_qwen_lm **out, rwd_error *err);
void rwd_qwen_lm_free(rwd_qwen_lm *m); /* accepts NULL */
const rwd_qwen_lm_info *rwd_qwen_lm_get_info(const rwd_qwen_lm *m);

/* Copy token `id`'s embedding (hidden floats) to dst. RWD_E_INVALID if id >= vocab. */
int rwd_qwen_lm_embed(const rwd_qwen_lm *m, int64_t id, float *dst);

/*
 * get_rope_index for one sequence of n token ids: vision blocks are the runs
 * of ids equal to image_token or video_token; block j has grid
 * grids[3j .. 3j+2] (in patches) and t_step[j]. pos: [3][n] (stream-major).
 * Returns 0, or RWD_E_INVALID when the placeholder runs do not match the
 * grids (count or length).
 */
int rwd_qwen_lm_rope_index(const int32_t *ids, size_t n, int32_t image_token, int32_t video_token,
	const int32_t *grids, const double *t_step, size_t n_blocks, size_t merge, int32_t *pos);

/* Floats of scratch for at most max_tokens tokens per call, max_seq per sequence. 0 on overflow. */
size_t rwd_qwen_lm_scratch(const rwd_qwen_lm *m, size_t max_tokens, size_t max_seq);

/*
 * Run the decoder over n sequences packed back to back in x ([sum len,
 * hidden], the input embeddings; overwritten), sequence i being rows
 * [starts[i], starts[i+1]) (starts has n + 1 entries), with positions
 * pos[3][total] (stream-major, as rwd_qwen_lm_rope_index writes them per
 * sequence). Attention is causal within each sequence. Then the final
 * RMSNorm of rows pick[0..n_pick) into out ([n_pick, hidden]).
 * Returns 0 or RWD_E_INVALID (sizes over the scratch, a bad row).
 */
int rwd_qwen_lm_forward(const rwd_qwen_lm *m, float *x, const size_t *starts, size_t n,
	const int32_t *pos, const size_t *pick, size_t n_pick, float *out, float *scratch,
	size_t scratch_floats);

#endif
