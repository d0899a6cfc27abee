/*
 * models/qwen_vision.h — the vision towers of Qwen2-VL and Qwen2.5-VL
 * (transformers' Qwen2VisionTransformerPretrainedModel and
 * Qwen2_5_VisionTransformerPretrainedModel, read at commit 00b676f8), over
 * lib/nn in float32, for the `vlm` kind.
 *
 * Input: the rows of image/qwen_vl.h (one per 14×14×2 patch, in 2×2
 * merge-cell order) of one or more images/videos, each with its grid
 * (t, h, w) in patches. Output: one row per merged 2×2 cell, of the LLM's
 * width, in the same (t, h/2, w/2) order: what replaces the
 * <|image_pad|> / <|video_pad|> tokens.
 *
 * Forward:
 *   patch embed: Conv3d(3, E, kernel = stride = (2, 14, 14), no bias), i.e.
 *     rows · W^T with W viewed [E, 3·2·14·14] (one GEMM);
 *   2D rotary: head_dim/2 channels, inv_freq = 1 / 10000^(2j / (head_dim/2)),
 *     channel i < head_dim/4 rotates by row · inv_freq[i], the next
 *     head_dim/4 by col · inv_freq[i − head_dim/4] (row, col: the patch's
 *     position in its frame), half-split (rotate_half) on q and k;
 *   blocks: x += proj(attn(norm1(x))); x += mlp(norm2(x)). Attention is
 *     bidirectional and block-diagonal: per frame of each input (cu_seqlens).
 *     Qwen2-VL: LayerNorm(eps 1e-6, with bias), fc1 → hidden_act (config,
 *     default quick_gelu) → fc2, width E·mlp_ratio. Qwen2.5-VL: RMSNorm(1e-6),
 *     down(act(gate(x)) · up(x)) with biases and hidden_act (default silu);
 *     blocks not in fullatt_block_indexes attend within windows of
 *     window_size / patch / merge merged cells square (4×4 for 112/14/2),
 *     tiled from each frame's top-left (partial windows at the bottom and
 *     right). Tokens are reordered into window order (four patches of a
 *     cell stay together) before the first block, as get_window_index does,
 *     and the merged rows are put back with the inverse permutation.
 *   merger: ln_q (LayerNorm in 2-VL, RMSNorm in 2.5-VL, eps 1e-6) per patch,
 *     four consecutive patches viewed as one 4E row, Linear → GELU(erf) →
 *     Linear to the LLM width.
 *
 * Tensor names under `prefix` ("visual" on the hub, "model.visual" in
 * transformers >= 4.52): patch_embed.proj.weight, blocks.N.{norm1,norm2,
 * attn.qkv,attn.proj,mlp.fc1,mlp.fc2 | mlp.gate_proj,mlp.up_proj,
 * mlp.down_proj}.*, merger.ln_q.*, merger.mlp.{0,2}.*. A missing or misshaped
 * tensor is refused at load, naming it.
 *
 * Thread safety: the loaded tower is read-only; forward() is re-entrant with
 * distinct scratch.
 */
#ifndef RWD_MODELS_QWEN_VISION_H
#define RWD_MODELS_QWEN_VISION_H

#include "core/error.h"
#include "tensor/safetensors.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

enum rwd_qwen_vision_variant {
	RWD_QWEN_VISION_2 = 2,    /* Qwen2-VL */
	RWD_QWEN_VISION_2_5 = 25, /* Qwen2.5-VL */
};

typedef struct rwd_qwen_vision rwd_qwen_vision;

typedef struct rwd_qwen_vision_info {
	int variant;
	size_t width, heads, head_dim, depth, mlp_dim;
	size_t patch, temporal, merge; /* 14, 2, 2 */
	size_t in_dim;                 /* 3 * temporal * patch * patch */
	size_t out_dim;                /* the LLM width */
	size_t window;                 /* 2.5: window side in merged cells; 0 = none */
} rwd_qwen_vision_info;

/*
 * Load the tower described by `vision_config` (config.json's object) from
 * `w` (borrowed: it must outlive the tower) under `prefix`. The weights must
 * have float32 views (F32, or F16/BF16 opened with convert_half). Returns 0,
 * RWD_E_INVALID / RWD_E_UNSUPPORTED (config; err->object names the key),
 * RWD_E_NOTFOUND / RWD_E_INVALID (a missing or misshaped tensor, named) or
 * RWD_E_NOMEM.
 */
int rwd_qwen_vision_load(const rwd_weights *w, const char *prefix, const json_t *vision_config,
	int variant, rwd_qwen_vision **out, rwd_error *err);
void rwd_qwen_vision_free(rwd_qwen_vision *v); /* accepts NULL */
const rwd_qwen_vision_info *rwd_qwen_vision_get_info(const rwd_qwen_vision *v);

/*
 * Floats of scratch forward() needs for at most max_patches patches in one
 * call, no frame larger than max_frame_patches patches. 0 on overflow.
 */
size_t rwd_qwen_vision_scratch(const rwd_qwen_vision *v, size_t max_patches,
	size_t max_frame_patches);

/*
 * Encode n inputs: grids[3 i .. 3 i + 2] = (t, h, w) of input i (h, w
 * multiples of merge), rows: their patch rows back to back
 * (sum t·h·w rows of in_dim floats). out: sum t·h·w / merge² rows of
 * out_dim floats. scratch: rwd_qwen_vision_scratch() floats for these sizes.
 * Returns 0 or RWD_E_INVALID (a bad grid, or sizes over the scratch's).
 */
int rwd_qwen_vision_forward(const rwd_qwen_vision *v, const float *rows, const int32_t *grids,
	size_t n, float *out, float *scratch, size_t scratch_floats);

#endif
