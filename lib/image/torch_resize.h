/*
 * image/torch_resize.h — bicubic resizing of float32 planes as PyTorch's
 * torch.nn.functional.interpolate(mode="bicubic", align_corners=False)
 * computes it, with and without antialias, and OpenCLIP's ResizeMaxSize
 * preprocessing built on it (what HPSv2 runs on every image).
 *
 * Why a second resampler: torchvision's F.resize on a float tensor (the
 * transforms run ToTensor() before Resize in HPSv2's open_clip fork,
 * hpsv2/src/open_clip/transform.py image_transform and ResizeMaxSize,
 * tgxs002/HPSv2@866735e) never rounds to 8 bits and never clamps, so the
 * Pillow-exact 8-bit path of image/resize.h gives other values.
 *
 *   antialias = 1 (torchvision >= 0.17's default for tensors): PyTorch's
 *     _upsample_bicubic2d_aa — separable, the filter of Pillow's BICUBIC
 *     (a = -0.5) with support 2 * max(scale, 1), centre = scale * (i + 0.5),
 *     window [int(centre - support + 0.5), int(centre + support + 0.5)),
 *     weights normalised to sum 1; in float32, as PyTorch computes them for
 *     float32 input; width pass, then height pass.
 *   antialias = 0 (torchvision < 0.17): upsample_bicubic2d — source
 *     x = scale * (i + 0.5) - 0.5, Keys' cubic with A = -0.75 over the four
 *     neighbours floor(x) - 1 .. floor(x) + 2, indices clamped to the image;
 *     four row interpolations, then one across them.
 *
 * Thread safety: re-entrant; temporaries are malloc'ed per call.
 */
#ifndef RWD_IMAGE_TORCH_RESIZE_H
#define RWD_IMAGE_TORCH_RESIZE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Resize `planes` float32 planes of sw×sh (dense, plane after plane) to
 * dw×dh into dst (same layout; must not overlap src). Returns 0,
 * RWD_E_INVALID (a side outside 1..65535 or planes < 1) or RWD_E_NOMEM.
 */
int rwd_image_torch_resize(const float *src, int sw, int sh, int planes, float *dst, int dw, int dh,
	int antialias);

/*
 * OpenCLIP's ResizeMaxSize(max_size, BICUBIC, fill=0) after ToTensor() and
 * before Normalize, on an interleaved RGB image (stride bytes per row,
 * 0 = dense), into out: float32 [3, max_size, max_size]:
 *   x = float32(v) / 255;
 *   scale = max_size / max(h, w) (Python floats); if scale != 1, resize to
 *   (round(h * scale), round(w * scale)) with Python's round (half to even);
 *   pad with 0 to max_size × max_size, left pad_w // 2, top pad_h // 2;
 *   then (x - mean[c]) / std[c] in float32 (torchvision's Normalize).
 * When scale == 1 and the image is not square, OpenCLIP passes it on
 * unpadded (its ViT then fails on the patch count); here it is padded like
 * every other size. Returns 0, RWD_E_INVALID (bad sizes, std 0) or
 * RWD_E_NOMEM.
 */
int rwd_image_openclip_max_size(const uint8_t *rgb, int w, int h, size_t stride, int max_size,
	int antialias, const float mean[3], const float std[3], float *out);

#endif
