/*
 * image/qwen_vl.h — the image preprocessing of Qwen2-VL / Qwen2.5-VL, as
 * transformers' (slow, PIL-based) Qwen2VLImageProcessor computes it, with the
 * optional first resize that the reward models' qwen_vl_utils fetch_image
 * does before it.
 *
 * The processor (image_processing_qwen2_vl.py, read at commit cb0fc56):
 *   smart_resize(h, w, factor = patch_size * merge_size = 28, min_pixels,
 *   max_pixels): h' = round(h / 28) * 28 (Python's round: half to even),
 *   w' likewise; when h' * w' > max_pixels, beta = sqrt(h * w / max_pixels)
 *   and h' = floor(h / beta / 28) * 28; when h' * w' < min_pixels,
 *   beta = sqrt(min_pixels / (h * w)) and h' = ceil(h * beta / 28) * 28.
 *   It refuses a side < 28 and an aspect ratio > 200.
 *   → PIL BICUBIC resize to w' × h' (an identity when the size is unchanged)
 *   → float32(v * rescale_factor) computed in double → (x − mean) / std in
 *     float32 (OPENAI_CLIP mean and std by default)
 *   → frames repeated until their count is a multiple of
 *     temporal_patch_size (2): the last frame is repeated
 *   → rows: one per patch, ordered (t, h / merge, w / merge, merge_h,
 *     merge_w), i.e. each 2×2 merge cell's four patches consecutively; each
 *     row holds C × temporal × patch × patch values ordered (c, tp, py, px),
 *     the reshape(t, T, C, h/2, 2, 14, w/2, 2, 14).transpose(0, 3, 6, 4, 7,
 *     2, 1, 5, 8) of the processor.
 *
 * fetch_image (qwen_vl_utils, as vendored by the reward models): when
 * fetch_min_pixels / fetch_max_pixels are set, the decoded RGB image is
 * first resized to smart_resize's size with h' = max(28, round(h / 28) * 28)
 * (no side check; the ratio check kept), PIL BICUBIC, back to 8 bits; the
 * processor stage then runs on that image (usually an identity resize).
 *
 * All frames of one input (an image, or a video given as frames) must have
 * the same size; the processor sizes every frame from the first.
 *
 * Thread safety: re-entrant; temporaries come from malloc.
 */
#ifndef RWD_IMAGE_QWEN_VL_H
#define RWD_IMAGE_QWEN_VL_H

#include <stddef.h>
#include <stdint.h>

typedef struct rwd_qwen_vl_prep {
	/* processor stage (preprocessor_config.json's names) */
	int64_t min_pixels, max_pixels; /* defaults 56*56 and 28*28*1280 */
	int patch_size;                 /* 14 */
	int temporal_patch_size;        /* 2 */
	int merge_size;                 /* 2 */
	int resample;                   /* enum rwd_image_filter, BICUBIC */
	int do_resize, do_rescale, do_normalize;
	double rescale_factor;          /* 1/255 */
	float image_mean[3], image_std[3];
	/* fetch_image stage: both 0 = not done */
	int64_t fetch_min_pixels, fetch_max_pixels;
} rwd_qwen_vl_prep;

/* Qwen2VLImageProcessor's defaults, no fetch_image stage. */
rwd_qwen_vl_prep rwd_qwen_vl_prep_default(void);

/*
 * smart_resize of a h × w image. fetch_style 0: the processor's version
 * (refuses a side < factor); 1: qwen_vl_utils' (max(factor, round(..))).
 * Both refuse an aspect ratio > 200 and a result side of 0.
 * Returns 0 with *oh, *ow set, RWD_E_INVALID (bad arguments, a side below
 * factor, the ratio) or RWD_E_LIMIT (a result side over RWD_IMAGE_MAX_SIDE).
 */
int rwd_qwen_vl_smart_resize(int h, int w, int factor, int64_t min_pixels, int64_t max_pixels,
	int fetch_style, int *oh, int *ow);

/*
 * The patch grid for n_frames frames of w × h: grid_t = ceil(n / T),
 * grid_h = h' / patch, grid_w = w' / patch after both stages. The output of
 * rwd_qwen_vl_prep_run() has grid_t * grid_h * grid_w rows of
 * 3 * T * patch * patch floats. Returns 0 or RWD_E_INVALID / RWD_E_LIMIT.
 */
int rwd_qwen_vl_prep_grid(const rwd_qwen_vl_prep *p, int w, int h, int n_frames, int *grid_t,
	int *grid_h, int *grid_w);

/*
 * Preprocess n_frames interleaved RGB frames (3 bytes per pixel, `stride`
 * bytes per row, 0 = dense), all w × h, into out (rows as above).
 * Returns 0 or a negative RWD_E_* code (as rwd_qwen_vl_prep_grid, or
 * RWD_E_NOMEM).
 */
int rwd_qwen_vl_prep_run(const rwd_qwen_vl_prep *p, const uint8_t *const *frames, int n_frames,
	int w, int h, size_t stride, float *out);

#endif
