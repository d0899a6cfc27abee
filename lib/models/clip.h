/*
 * models/clip.h — the `clip` kind: Hugging Face CLIPModel folders
 * (openai/clip-vit-*, LAION CLIP-ViT-H-14, PickScore_v1, ...) served as
 * rewards for image generation and instruction-guided image editing.
 *
 * The folder: config.json (CLIPConfig; class defaults <- text_config /
 * vision_config <- the legacy text_config_dict / vision_config_dict),
 * model.safetensors (or a sharded index; F32/F16/BF16; `*.position_ids`
 * buffers are ignored), preprocessor_config.json (CLIPImageProcessor; when
 * absent, OpenAI's defaults at the vision tower's image size) and tokenizer
 * files (tokenizer.json, or vocab.json + merges.txt, or
 * bpe_simple_vocab_16e6.txt.gz; optional: without them the text inputs are
 * refused and only image dimensions are served).
 *
 * Forward pass (reference/models-and-formats.md §2.3), float32 over
 * cblas_sgemm:
 *   vision: patches im2col'ed and embedded by ONE GEMM with the conv weight
 *     viewed as [H, 3*P*P]; class token + position embeddings; pre_layrnorm;
 *     pre-LN blocks (q/k/v/out biases, softmax(q k^T / sqrt(head_dim)));
 *     quick_gelu or gelu as hidden_act says; post_layernorm on the class
 *     token; visual_projection. All images of a batch are stacked into one
 *     [B * tokens, H] activation, so every projection is one large GEMM.
 *   text: token + position embeddings, causal attention, final_layer_norm,
 *     pooled at HF's EOS position (argmax of the ids when the text config's
 *     eos_token_id is the legacy 2, else the first eos_token_id; position 0
 *     when absent), text_projection. Tokens after the pooled one cannot
 *     change it under the causal mask and are not computed.
 *   In both towers the last layer computes keys and values for every token
 *   but queries, out_proj and the MLP only for the pooled token (the class
 *   token / the EOS token), the only row the output depends on.
 *
 * Item inputs: "image" (required; base64 or data URL, PNG/JPEG, decoded in
 * prepare() on the worker through lib/image/decode, preprocessed with the
 * Pillow-exact CLIPImageProcessor of lib/image/resize), "prompt",
 * "source_image", "instruction", "source_caption", "target_caption".
 *
 * Dimensions (all from one encoding of each distinct image and text of the
 * batch: identical inputs within a batch are encoded once):
 *   text_alignment   text = "prompt", else "target_caption"; PickScore's
 *                    exp(logit_scale) * cos(text, image), or with option
 *                    "text_alignment": "clipscore" CLIPScore's
 *                    w * max(cos, 0) (w = "clipscore_weight", default 2.5).
 *   image_similarity with "source_image": cos(source, image) (detail
 *                    preservation).
 *   edit_direction   with "source_image" and a target text: the target text
 *                    is "target_caption", else "instruction", else "prompt";
 *                    the source text is "source_caption", else the empty
 *                    caption ("" → [BOS, EOS]); value
 *                    cos(img − img_src, txt_target − txt_source) over
 *                    L2-normalised embeddings (InstructPix2Pix's
 *                    directional similarity).
 *   heads            each option "heads" entry {"name", "path", ...mlp
 *                    options} is an `mlp` head on the L2-normalised image
 *                    embedding (e.g. the LAION aesthetic predictor); its
 *                    single output is dimension "name" (several outputs:
 *                    "name.output"). Head paths are used as given
 *                    (relative to the working directory).
 * A dimension whose inputs an item lacks is absent, never 0. Text inputs on
 * a model without tokenizer files fail the item (RWD_E_UNPROCESSABLE).
 * Identical images (by pixels, after preprocessing) and texts (by ids)
 * within one forward batch are encoded once.
 *
 * Kind options (unknown keys are rejected): "text_alignment",
 * "clipscore_weight", "heads", "dimensions" (the subset to serve, in
 * order), "tokenizer" (a tokenizer file or folder instead of the model's),
 * "max_image_bytes" (default 32 MiB), "max_text_bytes" (default 64 KiB).
 * "precision": "fp32" (default, the exact path) or "bf16": both towers'
 * q/k/v/out_proj/fc1 (quick_gelu or GELU fused)/fc2 and the patch embedding
 * run on nn/bf16 (oneDNN, BF16 inputs, FP32 accumulation); layer norms,
 * attention, the projections and the heads stay FP32. Bound against the
 * FP32 oracle (tests/parity/test_bf16_torch.py): embeddings' relative error
 * <= 1e-2, Spearman of the image-text cosines >= 0.9995; image_similarity
 * and edit_direction <= 1e-2 absolute, edit_direction Spearman >= 0.998. Refused at load on
 * a CPU without AVX512_BF16 or AMX.
 *
 * Thread safety: the state is read-only after load; each worker passes its
 * own scratch (sized at load for max_batch_size items).
 */
#ifndef RWD_MODELS_CLIP_H
#define RWD_MODELS_CLIP_H

#include "image/decode.h"
#include "models/model.h"

#include <stddef.h>
#include <stdint.h>

extern const rwd_model_ops rwd__clip_ops;

typedef struct rwd_clip rwd_clip;

/* Load a CLIP folder directly (the kind's load). Free with rwd_clip_free. */
int rwd_clip_load(const char *path, const json_t *opts, const rwd_batch_limits *lim,
	rwd_clip **out, rwd_error *err);
void rwd_clip_free(rwd_clip *m); /* accepts NULL */

size_t rwd_clip_projection_dim(const rwd_clip *m);
int rwd_clip_image_size(const rwd_clip *m);      /* pixels per side the vision tower takes */
size_t rwd_clip_batch_capacity(const rwd_clip *m); /* images or texts per encode call */
size_t rwd_clip_context_length(const rwd_clip *m); /* text positions */
float rwd_clip_logit_scale(const rwd_clip *m);     /* exp(logit_scale) */

/* Per-worker scratch for the encode functions (rwd_clip_scratch_free). */
int rwd_clip_scratch_new(const rwd_clip *m, void **scratch, rwd_error *err);
void rwd_clip_scratch_free(void *scratch);

/*
 * Preprocess a decoded RGB image into out: float32 [3, S, S] with the
 * model's CLIPImageProcessor settings. RWD_E_* from rwd_image_prep_run.
 */
int rwd_clip_preprocess(const rwd_clip *m, const rwd_image *img, float *out);

/*
 * Projected (not normalised) image embeddings: pixels[i] is [3, S, S],
 * out is [n, projection_dim]. n <= rwd_clip_batch_capacity.
 */
void rwd_clip_encode_images(const rwd_clip *m, void *scratch, const float *const *pixels,
	size_t n, float *out);

/*
 * Projected text embeddings of n id sequences (lens[i] in 1..context
 * length, ids < vocab_size), out [n, projection_dim];
 * n <= rwd_clip_batch_capacity. RWD_E_INVALID on a bad id or length.
 */
int rwd_clip_encode_texts(const rwd_clip *m, void *scratch, const int32_t *const *ids,
	const size_t *lens, size_t n, float *out);

/* Where HF pools a sequence (see above). */
size_t rwd_clip_pool_index(const rwd_clip *m, const int32_t *ids, size_t n);

#endif
