/*
 * image/resize.h — Pillow-exact resampling of 8-bit images, and the
 * preprocessing of Hugging Face's CLIPImageProcessor (the "slow", PIL-based
 * one) built on it.
 *
 * Resampling reproduces Pillow's Image.resize (src/libImaging/Resample.c,
 * unchanged from 7.x through 11.x) bit for bit on 8-bit images: separable
 * convolution with an antialiasing filter whose support grows with the
 * downscale factor, coefficients computed in double, normalised to sum 1,
 * then rounded to fixed point with 22 fractional bits; a horizontal pass over
 * only the source rows the vertical pass reads, into a uint8 temporary
 * (rounded and clipped), then a vertical pass (rounded and clipped again).
 *
 * Preprocessing (CLIPImageProcessor.preprocess on an RGB image):
 *   resize shortest edge to `shortest_edge` (the long side truncated as
 *   int(size * long / short)), or to an exact height × width
 *   → centre crop with top = (H - ch) // 2, left = (W - cw) // 2, padding
 *     with zero pixels where the crop is larger than the image
 *   → x = float32(v * rescale_factor) → (x - mean[c]) / std[c] in float32
 *   → channels-first float32 [3, crop_h, crop_w].
 * Only the cropped window of the resized image is computed; since each output
 * pixel depends only on its own coefficients, that equals resizing the whole
 * image and cropping.
 *
 * Thread safety: all functions are re-entrant; they allocate their own
 * temporaries with malloc and touch only the buffers passed in.
 */
#ifndef RWD_IMAGE_RESIZE_H
#define RWD_IMAGE_RESIZE_H

#include <stddef.h>
#include <stdint.h>

/* Pillow's resampling filter numbers (PIL.Image.Resampling), as stored in
 * preprocessor_config.json "resample". NEAREST (0) is not supported. */
enum rwd_image_filter {
	RWD_IMAGE_LANCZOS = 1,
	RWD_IMAGE_BILINEAR = 2,
	RWD_IMAGE_BICUBIC = 3,
	RWD_IMAGE_BOX = 4,
	RWD_IMAGE_HAMMING = 5,
};

/* Largest width or height accepted anywhere in this module. */
#define RWD_IMAGE_MAX_SIDE 65535

/*
 * Resize an interleaved 8-bit image of `channels` (1..4) bytes per pixel
 * from sw×sh to dw×dh, as Pillow's Image.resize(..., reducing_gap=None) does
 * for modes L / RGB / RGBX / CMYK (no alpha premultiplication: callers with
 * alpha premultiply first, as Pillow does for RGBA). Strides are in bytes
 * (0 = dense). dst must not overlap src.
 * Returns 0, RWD_E_INVALID (bad size, channels or filter), RWD_E_UNSUPPORTED
 * (NEAREST) or RWD_E_NOMEM.
 */
int rwd_image_resize(const uint8_t *src, int sw, int sh, size_t src_stride, int channels,
	uint8_t *dst, int dw, int dh, size_t dst_stride, int filter);

/*
 * The same, computing only the window [x0, x0+rw) × [y0, y0+rh) of the
 * dw×dh result into dst (rw×rh pixels). The window must lie inside the
 * result. Values equal those of the full resize at the same positions.
 */
int rwd_image_resize_window(const uint8_t *src, int sw, int sh, size_t src_stride, int channels,
	int dw, int dh, int x0, int y0, int rw, int rh, uint8_t *dst, size_t dst_stride,
	int filter);

/* CLIPImageProcessor's settings (field names as in preprocessor_config.json). */
typedef struct rwd_image_prep_params {
	int do_resize;
	int shortest_edge;              /* > 0: resize the shortest edge to this */
	int resize_height, resize_width; /* used when shortest_edge == 0 */
	int resample;                   /* enum rwd_image_filter */
	int do_center_crop;
	int crop_height, crop_width;
	int do_rescale;
	double rescale_factor;
	int do_normalize;
	float image_mean[3], image_std[3];
} rwd_image_prep_params;

/* OpenAI CLIP's defaults: shortest edge 224, BICUBIC, crop 224×224,
 * rescale 1/255, OPENAI_CLIP_MEAN / OPENAI_CLIP_STD. */
rwd_image_prep_params rwd_image_clip_default_params(void);

/*
 * Size of the tensor rwd_image_prep_run() produces for a w×h input.
 * Returns 0 or RWD_E_INVALID (bad params or sizes), RWD_E_LIMIT (an
 * intermediate side over RWD_IMAGE_MAX_SIDE).
 */
int rwd_image_prep_output_size(const rwd_image_prep_params *p, int w, int h, int *out_w,
	int *out_h);

/*
 * Preprocess an interleaved RGB image (3 bytes per pixel, `stride` bytes per
 * row, 0 = dense) into out: float32 [3, out_h, out_w] (channels-first), with
 * out_w/out_h from rwd_image_prep_output_size(). Returns 0 or a negative
 * RWD_E_* code (as rwd_image_prep_output_size, or RWD_E_NOMEM).
 */
int rwd_image_prep_run(const rwd_image_prep_params *p, const uint8_t *rgb, int w, int h,
	size_t stride, float *out);

#endif
