/*
 * models/imagereward.h — the `imagereward` kind: THUDM's ImageReward
 * (ImageReward-v1.0), a BLIP ViT image encoder, a BERT text encoder that
 * cross-attends to the image tokens, and an MLP head on the [CLS] output,
 * z-scored with the authors' constants. Read at the source
 * (THUDM/ImageReward@c1392c6): ImageReward/ImageReward.py (score(),
 * _transform, MLP, mean/std), models/BLIP/blip_pretrain.py and blip.py
 * (create_vit 'large', init_tokenizer), models/BLIP/vit.py, models/BLIP/med.py.
 *
 * The folder (tools/convert_checkpoint.py imagereward writes it from
 * ImageReward.pt + med_config.json; tools/tiny_imagereward.py writes tiny
 * random ones):
 *   model.safetensors  the ImageReward.pt state dict under its own names
 *                      (blip.visual_encoder.*, blip.text_encoder.*,
 *                      mlp.layers.*; F32/F16/BF16); the unused vision_proj /
 *                      text_proj / position_ids are not needed;
 *   config.json        {"rewardd_kind": "imagereward",
 *                      "vision_config": {image_size, patch_size,
 *                      hidden_size, num_hidden_layers, num_attention_heads,
 *                      intermediate_size, layer_norm_eps},
 *                      "text_config": med_config.json (hidden_size,
 *                      num_hidden_layers, num_attention_heads,
 *                      intermediate_size, vocab_size, max_position_embeddings,
 *                      layer_norm_eps, hidden_act "gelu"; encoder_width = the
 *                      vision width, as BLIP_Pretrain sets it),
 *                      "score_mean", "score_std", "max_length",
 *                      "image_mean", "image_std"};
 *   vocab.txt          bert-base-uncased's; [DEC] and [ENC] are added as
 *                      init_tokenizer adds them (ids 30522, 30523).
 *
 * score(prompt, image), float32 over cblas_sgemm:
 *   text: BertTokenizer(prompt, padding="max_length", truncation=True,
 *     max_length=35) through lib/text/wordpiece. Padding keys are masked
 *     with -10000 (get_extended_attention_mask), whose softmax weight is
 *     exactly 0 in float32, and padding rows never reach a real one, so only
 *     the real ids are computed: the score is that of the padded call.
 *   image: Resize(224, BICUBIC) of the shorter side (long side
 *     int(224 * long / short), Pillow's resampling, lib/image/resize),
 *     CenterCrop(224) with torchvision's top = round((h - 224) / 2) (half to
 *     even, Python's round), ToTensor (v / 255), Normalize(CLIP mean, std).
 *     ImageReward converts to RGB after resizing; we decode to RGB first,
 *     which is the same for RGB and grey images (RGBA and palette PNGs can
 *     differ: Pillow resizes those premultiplied / nearest).
 *   vision (vit.py): Conv2d patch embedding with bias (one im2col GEMM),
 *     class token, pos_embed, pre-LN blocks (fused qkv with bias, softmax(q
 *     k^T / sqrt(head_dim)), GELU MLP), final LayerNorm (eps 1e-6) over every
 *     token: the image embeddings the text cross-attends to.
 *   text (med.py BertModel, mode "multimodal"): word + position embeddings
 *     (no token types), LayerNorm; per layer post-LN self-attention,
 *     cross-attention (query from the text, key/value Linear(encoder_width)
 *     of the image tokens, none masked), GELU (erf) feed-forward.
 *   head: last_hidden_state[:, 0] → MLP Linear 768→1024→128→64→16→1 with
 *     no activation (the ReLUs are commented out) and Dropout a no-op in
 *     eval → (r − 0.16717362830052426) / 1.0333394966054072.
 *
 * Item inputs: "image" (base64 or data URL, PNG/JPEG) and "prompt" (both
 * required). One dimension: "imagereward". Items of a batch are independent:
 * results do not depend on the batch.
 */
#ifndef RWD_MODELS_IMAGEREWARD_H
#define RWD_MODELS_IMAGEREWARD_H

#include "image/decode.h"
#include "models/model.h"

typedef struct rwd_imagereward rwd_imagereward;

/* Load a folder (see above); opts: {"max_image_bytes", "max_text_bytes"} or NULL.
 * lim->max_batch_size is the batch capacity of a scratch. */
int rwd_imagereward_load(const char *path, const json_t *opts, const rwd_batch_limits *lim,
	rwd_imagereward **out, rwd_error *err) RWD_WARN_UNUSED;
void rwd_imagereward_free(rwd_imagereward *m); /* accepts NULL */

/* The preprocessed image size (224 for ImageReward-v1.0). */
int rwd_imagereward_image_size(const rwd_imagereward *m);

/* ImageReward's _transform on a decoded RGB image into out [3, S, S]. 0 or RWD_E_*. */
int rwd_imagereward_preprocess(const rwd_imagereward *m, const rwd_image *img, float *out);

int rwd_imagereward_scratch_new(const rwd_imagereward *m, void **scratch, rwd_error *err);
void rwd_imagereward_scratch_free(void *scratch);

/*
 * Scores of n (<= capacity) pairs: pixels[i] preprocessed [3, S, S],
 * ids[i] the prompt's n_ids[i] real token ids ([CLS] ... [SEP], at most
 * max_length). out[i] = the z-scored reward. 0, or RWD_E_INVALID for an id
 * outside the vocabulary or a sequence longer than the position table.
 */
int rwd_imagereward_score(const rwd_imagereward *m, void *scratch, const float *const *pixels,
	const int32_t *const *ids, const size_t *n_ids, size_t n, float *out);

extern const rwd_model_ops rwd__imagereward_ops;

#endif
