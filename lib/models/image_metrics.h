/*
 * models/image_metrics.h — the built-in `image_metrics` kind: image rewards
 * computed without a network, and the metric functions themselves.
 *
 * Item inputs: "image" (base64 or a data:image/...;base64, URL; PNG or JPEG)
 * and optional "source_image" (same form). Both are decoded in prepare() on
 * a worker thread through lib/image/decode (Pillow convert("RGB") parity).
 *
 * Dimensions, in this order:
 *   ssim          only with source_image: mean SSIM on luma exactly as
 *                 skimage.metrics.structural_similarity(src_L, img_L,
 *                 gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
 *                 data_range=255) computes it: 11-tap Gaussian window
 *                 (truncate 3.5), K1 = 0.01, K2 = 0.03, the mean of the SSIM
 *                 map without its 5-pixel border. Absent when a side is
 *                 shorter than 11 pixels (skimage refuses those sizes).
 *   psnr          only with source_image: skimage peak_signal_noise_ratio(src,
 *                 img, data_range=255) over all three RGB channels, in dB,
 *                 capped at RWD_IMAGE_PSNR_MAX (identical images give exactly
 *                 the cap, never inf).
 *   sharpness     variance (population) of the 4-neighbour Laplacian
 *                 [0 1 0; 1 -4 1; 0 1 0] of luma with mirrored borders
 *                 (d c b | a b c d ... : OpenCV's BORDER_REFLECT_101, scipy's
 *                 mode='mirror'), i.e. cv2.Laplacian(L, CV_64F).var() and
 *                 scipy.ndimage.laplace(L, mode='mirror').var(). Unbounded;
 *                 shape it with a transform.
 *   colorfulness  Hasler & Süsstrunk (2003) on 0..255 RGB: rg = R - G,
 *                 yb = (R + G) / 2 - B, sqrt(std_rg² + std_yb²) +
 *                 0.3 sqrt(mean_rg² + mean_yb²), population std.
 *   exposure      share of pixels whose luma is neither 0 nor 255, in [0, 1].
 * Luma is Pillow's convert("L"): ITU-R 601-2, L = (19595 R + 38470 G +
 * 7471 B + 32768) >> 16, an integer 0..255 (the parity tests feed that
 * same uint8 array to scikit-image / numpy).
 * An image and a source of different sizes fail the item (RWD_E_INVALID,
 * field "source_image"): a preservation reward of 0 would be a lie.
 *
 * Kind options (model "options" object; unknown keys are rejected):
 *   "max_image_bytes"        decoded bytes per image (default 32 MiB); check()
 *                            refuses longer strings than its base64 form
 *                            plus MIME line breaks and a data: prefix can be
 *                            (RWD_E_LIMIT, 413) without decoding anything
 *   "composite_background"   [r, g, b]: blend alpha over this colour instead
 *                            of dropping it (Pillow's default)
 *   "apply_exif_orientation" true: rotate/flip by EXIF Orientation
 *   "gray16_high_byte"       true: 16-bit grayscale PNG keeps the high byte
 *                            instead of Pillow's clip to 0..255
 *   "max_jpeg_scans"         default 1000
 * The pixel limit is the model's max_image_pixels (rwd_batch_limits).
 *
 * Thread safety: the model state is read-only after load; the metric
 * functions are re-entrant (they malloc their own temporaries).
 */
#ifndef RWD_MODELS_IMAGE_METRICS_H
#define RWD_MODELS_IMAGE_METRICS_H

#include "core/error.h"
#include "image/decode.h"

#include <stdint.h>

#define RWD_IMAGE_PSNR_MAX 100.0
#define RWD_IMAGE_SSIM_MIN_SIDE 11

typedef struct rwd_image_metrics {
	double ssim, psnr, sharpness, colorfulness, exposure;
	int has_ssim, has_psnr; /* 1 when computed (source given, sizes allow) */
} rwd_image_metrics;

/* Pillow's convert("L") of img into luma[w * h] (row-major, dense). */
void rwd_image_luma(const rwd_image *img, uint8_t *luma);

double rwd_image_sharpness(const uint8_t *luma, int w, int h);
double rwd_image_colorfulness(const rwd_image *img);
double rwd_image_exposure(const uint8_t *luma, int w, int h);
/* a and b must have the same size. */
double rwd_image_psnr(const rwd_image *a, const rwd_image *b);
/*
 * SSIM of two w×h luma planes (w, h >= RWD_IMAGE_SSIM_MIN_SIDE, else
 * RWD_E_INVALID). Temporaries are malloc'ed: RWD_E_NOMEM.
 */
int rwd_image_ssim(const uint8_t *la, const uint8_t *lb, int w, int h, double *out, rwd_error *err);

/*
 * All metrics of img (and, when src != NULL, ssim/psnr against it).
 * RWD_E_INVALID when sizes differ, RWD_E_NOMEM.
 */
int rwd_image_metrics_compute(const rwd_image *img, const rwd_image *src, rwd_image_metrics *out,
	rwd_error *err);

#endif
