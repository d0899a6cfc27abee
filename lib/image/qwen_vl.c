/* image/qwen_vl.c — see qwen_vl.h. */
#include "image/qwen_vl.h"

#include "core/error.h"
#include "image/resize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

rwd_qwen_vl_prep rwd_qwen_vl_prep_default(void)
{
	rwd_qwen_vl_prep p = {
		.min_pixels = 56 * 56,
		.max_pixels = 28 * 28 * 1280,
		.patch_size = 14,
		.temporal_patch_size = 2,
		.merge_size = 2,
		.resample = RWD_IMAGE_BICUBIC,
		.do_resize = 1,
		.do_rescale = 1,
		.do_normalize = 1,
		.rescale_factor = 1.0 / 255.0,
		.image_mean = {0.48145466f, 0.4578275f, 0.40821073f},
		.image_std = {0.26862954f, 0.26130258f, 0.27577711f},
	};
	return p;
}

/* Python's round(x) for the non-negative doubles used here: half to even. */
static double py_round(double x)
{
	double f = floor(x), d = x - f;
	if (d > 0.5)
		return f + 1.0;
	if (d < 0.5)
		return f;
	return fmod(f, 2.0) == 0.0 ? f : f + 1.0;
}

int rwd_qwen_vl_smart_resize(int h, int w, int factor, int64_t min_pixels, int64_t max_pixels,
	int fetch_style, int *oh, int *ow)
{
	if (h <= 0 || w <= 0 || factor <= 0 || min_pixels < 0 || max_pixels <= 0 ||
		h > RWD_IMAGE_MAX_SIDE || w > RWD_IMAGE_MAX_SIDE)
		return RWD_E_INVALID;
	if (!fetch_style && (h < factor || w < factor))
		return RWD_E_INVALID;
	double hi = h > w ? h : w, lo = h > w ? w : h;
	if (hi / lo > 200.0)
		return RWD_E_INVALID;
	double f = factor;
	double hb = py_round((double)h / f) * f, wb = py_round((double)w / f) * f;
	if (fetch_style) {
		if (hb < f)
			hb = f;
		if (wb < f)
			wb = f;
	}
	double hw = (double)h * (double)w; /* exact: both below 2^16 */
	if (hb * wb > (double)max_pixels) {
		double beta = sqrt(hw / (double)max_pixels);
		hb = floor((double)h / beta / f) * f;
		wb = floor((double)w / beta / f) * f;
	} else if (hb * wb < (double)min_pixels) {
		double beta = sqrt((double)min_pixels / hw);
		hb = ceil((double)h * beta / f) * f;
		wb = ceil((double)w * beta / f) * f;
	}
	if (hb < 1.0 || wb < 1.0)
		return RWD_E_INVALID;
	if (hb > RWD_IMAGE_MAX_SIDE || wb > RWD_IMAGE_MAX_SIDE)
		return RWD_E_LIMIT;
	*oh = (int)hb;
	*ow = (int)wb;
	return 0;
}

/* The size after both stages; *fh, *fw: after the fetch stage (or w, h). */
static int stage_sizes(const rwd_qwen_vl_prep *p, int w, int h, int *fw, int *fh, int *rw,
	int *rh)
{
	if (p->patch_size <= 0 || p->merge_size <= 0 || p->temporal_patch_size <= 0 ||
		p->patch_size > 64 || p->merge_size > 8 || p->temporal_patch_size > 8)
		return RWD_E_INVALID;
	int factor = p->patch_size * p->merge_size, r;
	*fw = w;
	*fh = h;
	if (p->fetch_min_pixels > 0 || p->fetch_max_pixels > 0) {
		int64_t mx = p->fetch_max_pixels > 0 ? p->fetch_max_pixels : INT64_C(1) << 40;
		if ((r = rwd_qwen_vl_smart_resize(h, w, factor, p->fetch_min_pixels, mx, 1, fh, fw)))
			return r;
	}
	*rw = *fw;
	*rh = *fh;
	if (p->do_resize) {
		if ((r = rwd_qwen_vl_smart_resize(*fh, *fw, factor, p->min_pixels, p->max_pixels, 0, rh,
			     rw)))
			return r;
	} else if (*fw % factor || *fh % factor) {
		return RWD_E_INVALID;
	}
	return 0;
}

int rwd_qwen_vl_prep_grid(const rwd_qwen_vl_prep *p, int w, int h, int n_frames, int *grid_t,
	int *grid_h, int *grid_w)
{
	int fw, fh, rw, rh;
	if (n_frames <= 0)
		return RWD_E_INVALID;
	int r = stage_sizes(p, w, h, &fw, &fh, &rw, &rh);
	if (r)
		return r;
	*grid_t = (n_frames + p->temporal_patch_size - 1) / p->temporal_patch_size;
	*grid_h = rh / p->patch_size;
	*grid_w = rw / p->patch_size;
	return 0;
}

int rwd_qwen_vl_prep_run(const rwd_qwen_vl_prep *p, const uint8_t *const *frames, int n_frames,
	int w, int h, size_t stride, float *out)
{
	int fw, fh, rw, rh, gt, gh, gw;
	int r = rwd_qwen_vl_prep_grid(p, w, h, n_frames, &gt, &gh, &gw);
	if (r)
		return r;
	if ((r = stage_sizes(p, w, h, &fw, &fh, &rw, &rh)))
		return r;
	if (p->do_normalize)
		for (int c = 0; c < 3; c++)
			if (!(p->image_std[c] != 0.0f) || !isfinite(p->image_std[c]) ||
				!isfinite(p->image_mean[c]))
				return RWD_E_INVALID;
	if (!stride)
		stride = (size_t)w * 3;
	int fetch = fw != w || fh != h || p->fetch_min_pixels > 0 || p->fetch_max_pixels > 0;
	uint8_t *tmp = fetch ? malloc((size_t)fw * (size_t)fh * 3) : NULL;
	uint8_t *img = malloc((size_t)rw * (size_t)rh * 3);
	if ((fetch && !tmp) || !img) {
		r = RWD_E_NOMEM;
		goto fail;
	}
	/* What each byte value becomes: float32(v * factor) in double, then
	 * (x - mean) / std in float32, as transformers' rescale()/normalize(). */
	float lut[3][256];
	for (int c = 0; c < 3; c++)
		for (int v = 0; v < 256; v++) {
			float x = p->do_rescale ? (float)((double)v * p->rescale_factor) : (float)v;
			if (p->do_normalize)
				x = (x - p->image_mean[c]) / p->image_std[c];
			lut[c][v] = x;
		}

	const int T = p->temporal_patch_size, P = p->patch_size, M = p->merge_size;
	const size_t row = (size_t)3 * T * P * P;
	const int bh_n = gh / M, bw_n = gw / M;
	for (int fi = 0; fi < gt * T; fi++) {
		/* the last frame repeats to fill the temporal patch */
		const uint8_t *src = frames[fi < n_frames ? fi : n_frames - 1];
		size_t sstride = stride;
		if (fetch) {
			r = rwd_image_resize(src, w, h, sstride, 3, tmp, fw, fh, 0, p->resample);
			if (r)
				goto fail;
			src = tmp;
			sstride = (size_t)fw * 3;
		}
		if (p->do_resize) {
			r = rwd_image_resize(src, fw, fh, sstride, 3, img, rw, rh, 0, p->resample);
			if (r)
				goto fail;
		} else {
			for (int y = 0; y < rh; y++)
				memcpy(img + (size_t)y * rw * 3, src + (size_t)y * sstride, (size_t)rw * 3);
		}
		const int t = fi / T, tp = fi % T;
		for (int bh = 0; bh < bh_n; bh++)
			for (int bw = 0; bw < bw_n; bw++)
				for (int mh = 0; mh < M; mh++)
					for (int mw = 0; mw < M; mw++) {
						size_t ri = (((size_t)t * bh_n + bh) * bw_n + bw) * M * M +
							(size_t)mh * M + mw;
						float *o = out + ri * row;
						int y0 = (bh * M + mh) * P, x0 = (bw * M + mw) * P;
						for (int c = 0; c < 3; c++) {
							float *oc = o + ((size_t)c * T + tp) * P * P;
							for (int py = 0; py < P; py++) {
								const uint8_t *px = img +
									((size_t)(y0 + py) * rw + x0) * 3 + c;
								for (int q = 0; q < P; q++)
									oc[py * P + q] = lut[c][px[q * 3]];
							}
						}
					}
	}
	r = 0;
fail:
	free(tmp);
	free(img);
	return r;
}
