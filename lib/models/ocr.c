/* models/ocr.c — see ocr.h for the pipeline and every choice it makes. */
#include "models/ocr.h"

#include "models/model.h"
#include "nn/graph.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

struct rwd_ocr {
	rwd_graph *det, *rec;
	char **chars; /* [n_chars]: "blank", dict..., " " */
	size_t n_chars;
	char *dict_buf;
	double limit_side;
	int limit_max; /* 1: "max", 0: "min" */
	float thresh, box_thresh, unclip_ratio, drop_score;
	int rec_h, rec_w, rec_batch;
	int rec_run; /* crops per recogniser run (several PaddleOCR batches of one width) */
	int max_candidates;
	uint64_t det_batch_pixels; /* pixels per detector run (items of one resized size stacked) */
};

/* ---- per-thread working memory (reserved by rwd_ocr_ws_new, grown on demand) ---- */

typedef struct wbuf {
	void *p;
	size_t cap;
} wbuf;

struct rwd_ocr_ws {
	wbuf det_x, rs, rec_x, bit, stack, rows, pts, hull;
};

/* At least `bytes` of b (contents not kept), or NULL. */
static void *wbuf_get(wbuf *b, size_t bytes)
{
	if (bytes <= b->cap && b->p)
		return b->p;
	free(b->p);
	b->p = malloc(bytes ? bytes : 1);
	b->cap = b->p ? bytes : 0;
	return b->p;
}

/* ---- OpenCV-compatible resize (cv2.resize INTER_LINEAR, uint8, 3 channels) ---- */

static short sat_short(float v)
{
	int i = (int)lrintf(v);
	return (short)(i < SHRT_MIN ? SHRT_MIN : (i > SHRT_MAX ? SHRT_MAX : i));
}

static void linear_coeffs(int ssize, int dsize, int *ofs, short *a)
{
	double scale = 1.0 / ((double)dsize / (double)ssize);
	for (int d = 0; d < dsize; d++) {
		float f = (float)((d + 0.5) * scale - 0.5);
		int s = (int)floorf(f);
		f -= (float)s;
		if (s < 0) {
			f = 0;
			s = 0;
		}
		if (s >= ssize - 1) {
			f = 0;
			s = ssize - 1;
		}
		ofs[d] = s;
		a[2 * d] = sat_short((1.0f - f) * 2048.0f);
		a[2 * d + 1] = sat_short(f * 2048.0f);
	}
}

/* src: w x h x 3 (stride sstride) -> dst dw x dh x 3 dense. */
static int cv_resize_linear(const uint8_t *src, int w, int h, size_t sstride, uint8_t *dst, int dw, int dh)
{
	if (dw == w && dh == h) {
		for (int y = 0; y < h; y++)
			memcpy(dst + (size_t)y * (size_t)dw * 3, src + (size_t)y * sstride, (size_t)w * 3);
		return 0;
	}
	if (w == 2 * dw && h == 2 * dh) { /* OpenCV takes INTER_AREA's fast path for exact halving */
		for (int y = 0; y < dh; y++)
			for (int x = 0; x < dw; x++)
				for (int c = 0; c < 3; c++) {
					const uint8_t *p = src + (size_t)(2 * y) * sstride + (size_t)(2 * x) * 3 + (size_t)c;
					int s = p[0] + p[3] + p[sstride] + p[sstride + 3];
					dst[((size_t)y * (size_t)dw + (size_t)x) * 3 + (size_t)c] = (uint8_t)((s + 2) >> 2);
				}
		return 0;
	}
	int *xo = malloc(sizeof(int) * (size_t)dw), *yo = malloc(sizeof(int) * (size_t)dh);
	short *xa = malloc(sizeof(short) * 2 * (size_t)dw), *ya = malloc(sizeof(short) * 2 * (size_t)dh);
	int *rows = malloc(sizeof(int) * 2 * (size_t)dw * 3);
	int r = 0;
	if (!xo || !yo || !xa || !ya || !rows) {
		r = RWD_E_NOMEM;
		goto done;
	}
	linear_coeffs(w, dw, xo, xa);
	linear_coeffs(h, dh, yo, ya);
	for (int y = 0; y < dh; y++) {
		for (int k = 0; k < 2; k++) {
			int sy = yo[y] + k;
			if (sy > h - 1)
				sy = h - 1;
			const uint8_t *s = src + (size_t)sy * sstride;
			int *d = rows + (size_t)k * (size_t)dw * 3;
			for (int x = 0; x < dw; x++) {
				int sx = xo[x], sx1 = sx + 1 < w ? sx + 1 : sx;
				for (int c = 0; c < 3; c++)
					d[x * 3 + c] = s[sx * 3 + c] * xa[2 * x] + s[sx1 * 3 + c] * xa[2 * x + 1];
			}
		}
		int b0 = ya[2 * y], b1 = ya[2 * y + 1];
		uint8_t *o = dst + (size_t)y * (size_t)dw * 3;
		for (int i = 0; i < dw * 3; i++) {
			/* VResizeLinearVec_32s8u: ((S0 >> 4) * b0 >> 16) + ((S1 >> 4) * b1 >> 16), then (+2) >> 2 */
			int v = (((rows[i] >> 4) * b0) >> 16) + (((rows[dw * 3 + i] >> 4) * b1) >> 16);
			v = (v + 2) >> 2;
			o[i] = (uint8_t)(v < 0 ? 0 : (v > 255 ? 255 : v));
		}
	}
done:
	free(xo);
	free(yo);
	free(xa);
	free(ya);
	free(rows);
	return r;
}

/* ---- geometry ---- */

typedef struct pt {
	double x, y;
} pt;

static double cross3(pt o, pt a, pt b)
{
	return (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x);
}

static int pt_cmp(const void *a, const void *b)
{
	const pt *p = a, *q = b;
	if (p->x != q->x)
		return p->x < q->x ? -1 : 1;
	return p->y < q->y ? -1 : (p->y > q->y);
}

/* Convex hull (monotone chain) of n points (sorted in place) into h[2n]; returns the hull size (ccw). */
static size_t convex_hull(pt *p, size_t n, pt *h)
{
	if (n < 3) {
		memcpy(h, p, n * sizeof(pt));
		return n;
	}
	qsort(p, n, sizeof(pt), pt_cmp);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		while (k >= 2 && cross3(h[k - 2], h[k - 1], p[i]) <= 0)
			k--;
		h[k++] = p[i];
	}
	for (size_t i = n - 1, t = k + 1; i-- > 0;) {
		while (k >= t && cross3(h[k - 2], h[k - 1], p[i]) <= 0)
			k--;
		h[k++] = p[i];
	}
	return k - 1;
}

/*
 * The minimum-area rectangle of a convex polygon, each edge direction tried
 * (rotating calipers), grown by `grow` on every side. corners out[4];
 * returns the short side (0 for degenerate input).
 */
static double min_area_rect(const pt *h, size_t n, double grow, pt *out)
{
	if (n == 0)
		return 0;
	double best = INFINITY, side = 0;
	for (size_t i = 0; i < (n > 1 ? n : 1); i++) {
		double ux = 1, uy = 0;
		if (n > 1) {
			pt a = h[i], b = h[(i + 1) % n];
			double l = hypot(b.x - a.x, b.y - a.y);
			if (l == 0)
				continue;
			ux = (b.x - a.x) / l;
			uy = (b.y - a.y) / l;
		}
		double mn_u = INFINITY, mx_u = -INFINITY, mn_v = INFINITY, mx_v = -INFINITY;
		for (size_t j = 0; j < n; j++) {
			double u = h[j].x * ux + h[j].y * uy, v = -h[j].x * uy + h[j].y * ux;
			mn_u = fmin(mn_u, u);
			mx_u = fmax(mx_u, u);
			mn_v = fmin(mn_v, v);
			mx_v = fmax(mx_v, v);
		}
		mn_u -= grow;
		mn_v -= grow;
		mx_u += grow;
		mx_v += grow;
		double area = (mx_u - mn_u) * (mx_v - mn_v);
		if (area < best) {
			best = area;
			side = fmin(mx_u - mn_u, mx_v - mn_v);
			double us[4] = {mn_u, mx_u, mx_u, mn_u}, vs[4] = {mn_v, mn_v, mx_v, mx_v};
			for (int k = 0; k < 4; k++) {
				out[k].x = us[k] * ux - vs[k] * uy;
				out[k].y = us[k] * uy + vs[k] * ux;
			}
		}
	}
	if (n < 3)
		return 0; /* a point or a segment: no area */
	return side;
}

/* get_mini_boxes' order: sorted by x; left pair top then bottom, right pair top then bottom. */
static void mini_box_order(pt *p)
{
	pt s[4];
	memcpy(s, p, sizeof(s));
	/* stable sort by x, as Python's sorted */
	for (int i = 1; i < 4; i++)
		for (int j = i; j > 0 && s[j].x < s[j - 1].x; j--) {
			pt t = s[j];
			s[j] = s[j - 1];
			s[j - 1] = t;
		}
	pt i1, i2, i3, i4;
	if (s[1].y > s[0].y) {
		i1 = s[0];
		i4 = s[1];
	} else {
		i1 = s[1];
		i4 = s[0];
	}
	if (s[3].y > s[2].y) {
		i2 = s[2];
		i3 = s[3];
	} else {
		i2 = s[3];
		i3 = s[2];
	}
	p[0] = i1;
	p[1] = i2;
	p[2] = i3;
	p[3] = i4;
}

/* box_score_fast: mean of pred inside the quad (integer vertices, edges included). */
static double box_score(const float *pred, int w, int h, const pt *box)
{
	double xmn = INFINITY, xmx = -INFINITY, ymn = INFINITY, ymx = -INFINITY;
	for (int k = 0; k < 4; k++) {
		xmn = fmin(xmn, box[k].x);
		xmx = fmax(xmx, box[k].x);
		ymn = fmin(ymn, box[k].y);
		ymx = fmax(ymx, box[k].y);
	}
	int x0 = (int)floor(xmn), x1 = (int)ceil(xmx), y0 = (int)floor(ymn), y1 = (int)ceil(ymx);
	x0 = x0 < 0 ? 0 : (x0 > w - 1 ? w - 1 : x0);
	x1 = x1 < 0 ? 0 : (x1 > w - 1 ? w - 1 : x1);
	y0 = y0 < 0 ? 0 : (y0 > h - 1 ? h - 1 : y0);
	y1 = y1 < 0 ? 0 : (y1 > h - 1 ? h - 1 : y1);
	/* vertices relative to (x0, y0), truncated to int as astype(np.int32) */
	double vx[4], vy[4];
	for (int k = 0; k < 4; k++) {
		vx[k] = (double)(int)(box[k].x - x0);
		vy[k] = (double)(int)(box[k].y - y0);
	}
	double sum = 0;
	long cnt = 0;
	for (int y = 0; y <= y1 - y0; y++) {
		double lo = INFINITY, hi = -INFINITY;
		for (int k = 0; k < 4; k++) {
			int k2 = (k + 1) & 3;
			double ya = vy[k], yb = vy[k2];
			if ((y < ya && y < yb) || (y > ya && y > yb))
				continue;
			if (ya == yb) {
				lo = fmin(lo, fmin(vx[k], vx[k2]));
				hi = fmax(hi, fmax(vx[k], vx[k2]));
			} else {
				double x = vx[k] + (vx[k2] - vx[k]) * (y - ya) / (yb - ya);
				lo = fmin(lo, x);
				hi = fmax(hi, x);
			}
		}
		if (lo > hi)
			continue;
		int a = (int)ceil(lo - 1e-9), b = (int)floor(hi + 1e-9);
		if (a < 0)
			a = 0;
		if (b > x1 - x0)
			b = x1 - x0;
		for (int x = a; x <= b; x++) {
			sum += pred[(size_t)(y + y0) * (size_t)w + (size_t)(x + x0)];
			cnt++;
		}
	}
	return cnt ? sum / (double)cnt : 0;
}

/* Clipper's Round: half away from zero, to an integer. */
static double clipper_round(double v)
{
	return (double)(v < 0 ? (long long)(v - 0.5) : (long long)(v + 0.5));
}

/*
 * The vertices of Clipper 6.4's ClipperOffset (pyclipper's PyclipperOffset:
 * arc_tolerance 0.25, JT_ROUND, ET_CLOSEDPOLYGON) of the closed integer
 * polygon q[4] by delta > 0, before its clean-up union (which only drops
 * vertices, leaving the convex hull unchanged): each corner emits the
 * offset points of its two edges with the arc between them stepped as
 * DoRound steps it, every point rounded half away from zero. malloc'd;
 * *n set. NULL when out of memory.
 */
static pt *clipper_round_offset(const pt *q_in, double delta, size_t *n)
{
	pt q[4];
	size_t m = 0;
	for (int k = 0; k < 4; k++) /* AddPath drops repeated points */
		if (m == 0 || q_in[k].x != q[m - 1].x || q_in[k].y != q[m - 1].y)
			q[m++] = q_in[k];
	while (m > 1 && q[m - 1].x == q[0].x && q[m - 1].y == q[0].y)
		m--;
	double area = 0;
	for (size_t k = 0; k < m; k++)
		area += q[k].x * q[(k + 1) % m].y - q[(k + 1) % m].x * q[k].y;
	if (area < 0) /* FixOrientations: a negative path is reversed */
		for (size_t k = 0; k < m / 2; k++) {
			pt t = q[k];
			q[k] = q[m - 1 - k];
			q[m - 1 - k] = t;
		}
	double y = 0.25 > fabs(delta) * 0.25 ? fabs(delta) * 0.25 : 0.25;
	double steps = M_PI / acos(1 - y / fabs(delta));
	if (steps > fabs(delta) * M_PI)
		steps = fabs(delta) * M_PI;
	double sn = sin(2 * M_PI / steps), cs = cos(2 * M_PI / steps), per_rad = steps / (2 * M_PI);
	size_t cap = m * ((size_t)(per_rad * M_PI) + 4) + 4;
	pt *out = malloc(sizeof(pt) * cap), nrm[4];
	if (!out)
		return NULL;
	*n = 0;
	if (m < 3 || !(delta > 0)) {
		memcpy(out, q, sizeof(pt) * m);
		*n = m;
		return out;
	}
	for (size_t j = 0; j < m; j++) { /* GetUnitNormal(pts[j], pts[j + 1]) */
		double dx = q[(j + 1) % m].x - q[j].x, dy = q[(j + 1) % m].y - q[j].y, f = 1 / sqrt(dx * dx + dy * dy);
		nrm[j] = (pt){dy * f, -dx * f};
	}
	for (size_t j = 0, k = m - 1; j < m; k = j, j++) { /* OffsetPoint(j, k) */
		double sinA = nrm[k].x * nrm[j].y - nrm[j].x * nrm[k].y, cosA = nrm[k].x * nrm[j].x + nrm[j].y * nrm[k].y;
		pt p = q[j];
		if (fabs(sinA * delta) < 1.0) {
			if (cosA > 0) {
				out[(*n)++] = (pt){clipper_round(p.x + nrm[k].x * delta), clipper_round(p.y + nrm[k].y * delta)};
				continue;
			}
		} else if (sinA > 1.0) {
			sinA = 1.0;
		} else if (sinA < -1.0) {
			sinA = -1.0;
		}
		if (sinA * delta < 0) { /* a concave corner (not in a rectangle; kept for completeness) */
			out[(*n)++] = (pt){clipper_round(p.x + nrm[k].x * delta), clipper_round(p.y + nrm[k].y * delta)};
			out[(*n)++] = p;
			out[(*n)++] = (pt){clipper_round(p.x + nrm[j].x * delta), clipper_round(p.y + nrm[j].y * delta)};
			continue;
		}
		double a = atan2(sinA, cosA);
		long st = (long)clipper_round(per_rad * fabs(a));
		if (st < 1)
			st = 1;
		double X = nrm[k].x, Y = nrm[k].y;
		for (long i = 0; i < st && *n + 1 < cap; i++) {
			out[(*n)++] = (pt){clipper_round(p.x + X * delta), clipper_round(p.y + Y * delta)};
			double X2 = X;
			X = X * cs - sn * Y;
			Y = X2 * sn + Y * cs;
		}
		out[(*n)++] = (pt){clipper_round(p.x + nrm[j].x * delta), clipper_round(p.y + nrm[j].y * delta)};
	}
	return out;
}

typedef struct qbox {
	pt p[4];
} qbox;

/* DBPostProcess.boxes_from_bitmap + filter_tag_det_res; boxes in image coordinates. */
static int db_boxes(const rwd_ocr *o, rwd_ocr_ws *ws, const float *pred, int w, int h, int img_w, int img_h,
	qbox **out, size_t *n_out)
{
	uint8_t *bit = wbuf_get(&ws->bit, (size_t)w * (size_t)h);
	int *stack = wbuf_get(&ws->stack, sizeof(int) * (size_t)w * (size_t)h);
	int *rmin = wbuf_get(&ws->rows, sizeof(int) * 2 * (size_t)h), *rmax = rmin ? rmin + h : NULL;
	pt *pts = wbuf_get(&ws->pts, sizeof(pt) * 2 * (size_t)h);
	pt *hull = wbuf_get(&ws->hull, sizeof(pt) * (4 * (size_t)h + 2)); /* monotone chain: 2n */
	qbox *boxes = NULL;
	size_t nb = 0, cap = 0;
	int r = 0, ncand = 0;
	if (!bit || !stack || !rmin || !rmax || !pts || !hull) {
		r = RWD_E_NOMEM;
		goto done;
	}
	for (size_t i = 0; i < (size_t)w * (size_t)h; i++)
		bit[i] = pred[i] > o->thresh;
	for (int sy = 0; sy < h; sy++)
		for (int sx = 0; sx < w; sx++) {
			if (bit[(size_t)sy * (size_t)w + (size_t)sx] != 1)
				continue;
			if (ncand++ >= o->max_candidates)
				goto done;
			int ymn = sy, ymx = sy;
			for (int y = 0; y < h; y++) {
				rmin[y] = INT_MAX;
				rmax[y] = -1;
			}
			size_t top = 0;
			stack[top++] = sy * w + sx;
			bit[(size_t)sy * (size_t)w + (size_t)sx] = 2;
			while (top) {
				int p = stack[--top], y = p / w, x = p % w;
				if (x < rmin[y])
					rmin[y] = x;
				if (x > rmax[y])
					rmax[y] = x;
				ymn = y < ymn ? y : ymn;
				ymx = y > ymx ? y : ymx;
				for (int dy = -1; dy <= 1; dy++)
					for (int dx = -1; dx <= 1; dx++) {
						int yy = y + dy, xx = x + dx;
						if (yy < 0 || yy >= h || xx < 0 || xx >= w)
							continue;
						uint8_t *b = &bit[(size_t)yy * (size_t)w + (size_t)xx];
						if (*b == 1) {
							*b = 2;
							stack[top++] = yy * w + xx;
						}
					}
			}
			size_t np = 0;
			for (int y = ymn; y <= ymx; y++) {
				if (rmax[y] < 0)
					continue;
				pts[np++] = (pt){rmin[y], y};
				if (rmax[y] != rmin[y])
					pts[np++] = (pt){rmax[y], y};
			}
			size_t nh = convex_hull(pts, np, hull);
			pt box[4];
			double sside = min_area_rect(hull, nh, 0, box);
			if (sside < 3)
				continue;
			mini_box_order(box);
			if (o->box_thresh > box_score(pred, w, h, box))
				continue;
			/* unclip: pyclipper takes the corners truncated to integers */
			pt q[4];
			double area = 0, len = 0;
			for (int k = 0; k < 4; k++) {
				q[k].x = (double)(long)box[k].x;
				q[k].y = (double)(long)box[k].y;
			}
			for (int k = 0; k < 4; k++) { /* shapely's area and length of the float box */
				pt a = box[k], b = box[(k + 1) & 3];
				area += a.x * b.y - b.x * a.y;
				len += hypot(b.x - a.x, b.y - a.y);
			}
			area = fabs(area) / 2;
			double dist = len > 0 ? area * o->unclip_ratio / len : 0;
			pt ex[4];
			size_t nq = 0;
			pt *off = clipper_round_offset(q, dist, &nq);
			pt *qh = off ? malloc(sizeof(pt) * (2 * nq + 1)) : NULL;
			if (!qh) {
				free(off);
				r = RWD_E_NOMEM;
				goto done;
			}
			nq = convex_hull(off, nq, qh);
			sside = min_area_rect(qh, nq, 0, ex);
			free(off);
			free(qh);
			if (nq < 3)
				sside = 0;
			if (sside < 3 + 2)
				continue;
			mini_box_order(ex);
			qbox bx;
			for (int k = 0; k < 4; k++) {
				double x = rint(ex[k].x / w * img_w), y = rint(ex[k].y / h * img_h);
				bx.p[k].x = (double)(int)fmin(fmax(x, 0), img_w);
				bx.p[k].y = (double)(int)fmin(fmax(y, 0), img_h);
			}
			/* filter_tag_det_res: order_points_clockwise, clip, size filter */
			pt *b = bx.p, rc[4];
			int imn = 0, imx = 0;
			for (int k = 1; k < 4; k++) {
				if (b[k].x + b[k].y < b[imn].x + b[imn].y)
					imn = k;
				if (b[k].x + b[k].y > b[imx].x + b[imx].y)
					imx = k;
			}
			rc[0] = b[imn];
			rc[2] = b[imx];
			pt rest[3];
			int nr = 0;
			for (int k = 0; k < 4; k++)
				if (k != imn && k != imx)
					rest[nr++] = b[k];
			if (nr < 2)
				continue;
			int dmn = 0, dmx = 0;
			for (int k = 1; k < nr; k++) {
				if (rest[k].y - rest[k].x < rest[dmn].y - rest[dmn].x)
					dmn = k;
				if (rest[k].y - rest[k].x > rest[dmx].y - rest[dmx].x)
					dmx = k;
			}
			rc[1] = rest[dmn];
			rc[3] = rest[dmx];
			for (int k = 0; k < 4; k++) {
				rc[k].x = (double)(int)fmin(fmax(rc[k].x, 0), img_w - 1);
				rc[k].y = (double)(int)fmin(fmax(rc[k].y, 0), img_h - 1);
			}
			int rw = (int)hypot(rc[0].x - rc[1].x, rc[0].y - rc[1].y);
			int rh = (int)hypot(rc[0].x - rc[3].x, rc[0].y - rc[3].y);
			if (rw <= 3 || rh <= 3)
				continue;
			if (nb == cap) {
				cap = cap ? cap * 2 : 16;
				qbox *nbx = realloc(boxes, cap * sizeof(qbox));
				if (!nbx) {
					r = RWD_E_NOMEM;
					goto done;
				}
				boxes = nbx;
			}
			memcpy(boxes[nb++].p, rc, sizeof(rc));
		}
done:
	if (r) {
		free(boxes);
		return r;
	}
	/* sorted_boxes: by (y, x) of the first point, then the neighbour swap pass */
	for (size_t i = 1; i < nb; i++)
		for (size_t j = i; j > 0; j--) {
			const pt *a = boxes[j - 1].p, *b = boxes[j].p;
			if (b[0].y < a[0].y || (b[0].y == a[0].y && b[0].x < a[0].x)) {
				qbox t = boxes[j];
				boxes[j] = boxes[j - 1];
				boxes[j - 1] = t;
			} else {
				break;
			}
		}
	for (size_t i = 0; i + 1 < nb; i++)
		for (size_t j = i + 1; j-- > 0;) {
			if (fabs(boxes[j + 1].p[0].y - boxes[j].p[0].y) < 10 && boxes[j + 1].p[0].x < boxes[j].p[0].x) {
				qbox t = boxes[j];
				boxes[j] = boxes[j + 1];
				boxes[j + 1] = t;
			} else {
				break;
			}
		}
	*out = boxes;
	*n_out = nb;
	return 0;
}

/* ---- perspective crop (cv2.warpPerspective INTER_CUBIC, BORDER_REPLICATE) ---- */

/* Solve the 8x8 system for the homography mapping from[k] -> to[k]. */
static int homography(const pt *from, const pt *to, double *m)
{
	double a[8][9];
	for (int k = 0; k < 4; k++) {
		double x = from[k].x, y = from[k].y, u = to[k].x, v = to[k].y;
		double r0[9] = {x, y, 1, 0, 0, 0, -x * u, -y * u, u};
		double r1[9] = {0, 0, 0, x, y, 1, -x * v, -y * v, v};
		memcpy(a[k], r0, sizeof(r0));
		memcpy(a[k + 4], r1, sizeof(r1));
	}
	for (int c = 0; c < 8; c++) {
		int p = c;
		for (int rr = c + 1; rr < 8; rr++)
			if (fabs(a[rr][c]) > fabs(a[p][c]))
				p = rr;
		if (fabs(a[p][c]) < 1e-12)
			return -1;
		if (p != c)
			for (int k = 0; k < 9; k++) {
				double t = a[c][k];
				a[c][k] = a[p][k];
				a[p][k] = t;
			}
		for (int rr = 0; rr < 8; rr++) {
			if (rr == c)
				continue;
			double f = a[rr][c] / a[c][c];
			for (int k = c; k < 9; k++)
				a[rr][k] -= f * a[c][k];
		}
	}
	for (int i = 0; i < 8; i++)
		m[i] = a[i][8] / a[i][i];
	m[8] = 1;
	return 0;
}

static void cubic_coeffs(float x, float *c)
{
	const float A = -0.75f;
	c[0] = ((A * (x + 1) - 5 * A) * (x + 1) + 8 * A) * (x + 1) - 4 * A;
	c[1] = ((A + 2) * x - (A + 3)) * x * x + 1;
	c[2] = ((A + 2) * (1 - x) - (A + 3)) * (1 - x) * (1 - x) + 1;
	c[3] = 1.f - c[0] - c[1] - c[2];
}

typedef struct crop {
	uint8_t *px; /* w x h x 3 */
	int w, h;
} crop;

static int rotate_crop(const rwd_image *img, const pt *q, crop *out)
{
	int cw = (int)fmax(hypot(q[0].x - q[1].x, q[0].y - q[1].y), hypot(q[2].x - q[3].x, q[2].y - q[3].y));
	int ch = (int)fmax(hypot(q[0].x - q[3].x, q[0].y - q[3].y), hypot(q[1].x - q[2].x, q[1].y - q[2].y));
	if (cw < 1 || ch < 1)
		return RWD_E_INVALID;
	pt dst[4] = {{0, 0}, {cw, 0}, {cw, ch}, {0, ch}};
	pt src[4];
	for (int k = 0; k < 4; k++) /* the points are float32 in PaddleOCR */
		src[k] = (pt){(float)q[k].x, (float)q[k].y};
	double m[9];
	if (homography(dst, src, m))
		return RWD_E_INVALID;
	uint8_t *px = malloc((size_t)cw * (size_t)ch * 3);
	if (!px)
		return RWD_E_NOMEM;
	/* the 1/32 table of 2-D cubic weights in 15-bit integers, as OpenCV builds it */
	static const int TAB = 32;
	int wtab[32][32][16];
	for (int iy = 0; iy < TAB; iy++)
		for (int ix = 0; ix < TAB; ix++) {
			float cy[4], cx[4];
			cubic_coeffs((float)iy / TAB, cy);
			cubic_coeffs((float)ix / TAB, cx);
			int *t = wtab[iy][ix], sum = 0, imax = 0;
			for (int i = 0; i < 4; i++)
				for (int j = 0; j < 4; j++) {
					float v = cy[i] * cx[j] * 32768.f;
					t[i * 4 + j] = (int)lrintf(v);
					sum += t[i * 4 + j];
				}
			if (sum != 32768) { /* put the rounding error on the largest weight (OpenCV's ksize2 fix-up) */
				for (int k = 1; k < 16; k++)
					if (t[k] > t[imax])
						imax = k;
				t[imax] += 32768 - sum;
			}
		}
	for (int y = 0; y < ch; y++)
		for (int x = 0; x < cw; x++) {
			double W = m[6] * x + m[7] * y + m[8];
			W = W ? TAB / W : 0;
			double fx = fmax(INT_MIN, fmin(INT_MAX, (m[0] * x + m[1] * y + m[2]) * W));
			double fy = fmax(INT_MIN, fmin(INT_MAX, (m[3] * x + m[4] * y + m[5]) * W));
			int X = (int)lrint(fx), Y = (int)lrint(fy);
			int sx = (X >> 5) - 1, sy = (Y >> 5) - 1;
			const int *t = wtab[Y & (TAB - 1)][X & (TAB - 1)];
			for (int c = 0; c < 3; c++) {
				int acc = 0;
				for (int i = 0; i < 4; i++) {
					int yy = sy + i;
					yy = yy < 0 ? 0 : (yy >= img->h ? img->h - 1 : yy);
					const uint8_t *row = img->pixels + (size_t)yy * img->stride;
					for (int j = 0; j < 4; j++) {
						int xx = sx + j;
						xx = xx < 0 ? 0 : (xx >= img->w ? img->w - 1 : xx);
						acc += row[(size_t)xx * 3 + (size_t)c] * t[i * 4 + j];
					}
				}
				int v = (acc + (1 << 14)) >> 15;
				px[((size_t)y * (size_t)cw + (size_t)x) * 3 + (size_t)c] = (uint8_t)(v < 0 ? 0 : (v > 255 ? 255 : v));
			}
		}
	if ((double)ch / (double)cw >= 1.5) { /* np.rot90: counter-clockwise */
		uint8_t *rp = malloc((size_t)cw * (size_t)ch * 3);
		if (!rp) {
			free(px);
			return RWD_E_NOMEM;
		}
		/* new (W' = ch, H' = cw): new[i][j] = old[j][cw - 1 - i] */
		for (int i = 0; i < cw; i++)
			for (int j = 0; j < ch; j++)
				memcpy(rp + ((size_t)i * (size_t)ch + (size_t)j) * 3, px + ((size_t)j * (size_t)cw + (size_t)(cw - 1 - i)) * 3, 3);
		free(px);
		px = rp;
		int t = cw;
		cw = ch;
		ch = t;
	}
	out->px = px;
	out->w = cw;
	out->h = ch;
	return 0;
}

/* ---- recognition ---- */

static int str_append(char **s, size_t *len, size_t *cap, const char *add)
{
	size_t n = strlen(add);
	if (*len + n + 1 > *cap) {
		size_t c = (*cap ? *cap * 2 : 64) + n;
		char *t = realloc(*s, c);
		if (!t)
			return RWD_E_NOMEM;
		*s = t;
		*cap = c;
	}
	memcpy(*s + *len, add, n + 1);
	*len += n;
	return 0;
}

/* CTC greedy decoding of one crop's [T, C] probabilities into l->text / l->confidence. */
static int ctc_decode(const rwd_ocr *o, const float *p, int64_t T, int64_t C, rwd_ocr_line *l)
{
	char *s = NULL;
	size_t len = 0, cap = 0, kept = 0;
	double conf = 0;
	int64_t prev = -1;
	int r = str_append(&s, &len, &cap, "");
	for (int64_t t = 0; !r && t < T; t++) {
		int64_t am = 0;
		for (int64_t j = 1; j < C; j++)
			if (p[t * C + j] > p[t * C + am])
				am = j;
		if (am != 0 && am != prev) {
			r = str_append(&s, &len, &cap, o->chars[am]);
			conf += p[t * C + am];
			kept++;
		}
		prev = am;
	}
	if (r) {
		free(s);
		return RWD_E_NOMEM;
	}
	l->text = s;
	l->confidence = kept ? (float)(conf / (double)kept) : 0.0f;
	return 0;
}

/* One image of a batch on its way through the pipeline. */
typedef struct img_job {
	int rh, rw;           /* DetResizeForTest's size */
	qbox *boxes;          /* [nb], PaddleOCR's order */
	size_t nb;
	crop *crops;          /* [nb] */
	rwd_ocr_line *lines;  /* [nb], before drop_score */
} img_job;

/* One crop's place in the recogniser runs. */
typedef struct rec_job {
	size_t img, box, seq; /* seq: the order PaddleOCR would feed it (image, then ratio rank) */
	double ratio;         /* w / h */
	int W;                /* its PaddleOCR batch's padded width */
} rec_job;

typedef struct det_key {
	int rh, rw;
	size_t img;
} det_key;

static int det_key_cmp(const void *a, const void *b)
{
	const det_key *p = a, *q = b;
	if (p->rh != q->rh)
		return p->rh < q->rh ? -1 : 1;
	if (p->rw != q->rw)
		return p->rw < q->rw ? -1 : 1;
	return p->img < q->img ? -1 : (p->img > q->img);
}

static int rec_ratio_cmp(const void *a, const void *b) /* within one image: by ratio, stable */
{
	const rec_job *p = a, *q = b;
	if (p->ratio != q->ratio)
		return p->ratio < q->ratio ? -1 : 1;
	return p->box < q->box ? -1 : (p->box > q->box);
}

static int rec_width_cmp(const void *a, const void *b) /* across images: by padded width, stable */
{
	const rec_job *p = a, *q = b;
	if (p->W != q->W)
		return p->W < q->W ? -1 : 1;
	return p->seq < q->seq ? -1 : (p->seq > q->seq);
}

static void item_fail(rwd_ocr_result *res, int code, const rwd_error *e)
{
	if (res->status)
		return;
	res->status = code;
	if (e)
		res->err = *e;
	else
		rwd_errorf(&res->err, code, "out of memory");
	if (!res->err.code)
		res->err.code = code;
}

/* The detector on k images of one resized size (keys[0..k)), then DB post-processing per image. */
static void det_run(const rwd_ocr *o, rwd_ocr_ws *ws, const rwd_image *const *imgs, img_job *jobs,
	rwd_ocr_result *res, const det_key *keys, size_t k)
{
	const int rh = keys[0].rh, rw = keys[0].rw;
	const size_t plane = (size_t)rw * (size_t)rh;
	float *x = wbuf_get(&ws->det_x, sizeof(float) * 3 * plane * k);
	uint8_t *rs = wbuf_get(&ws->rs, plane * 3);
	rwd_error err = {0};
	rwd_graph_tensor pm = {0};
	int r = 0;
	if (!x || !rs) {
		r = rwd_errorf(&err, RWD_E_NOMEM, "out of memory");
		goto done;
	}
	static const float mean[3] = {0.485f, 0.456f, 0.406f}, stdv[3] = {0.229f, 0.224f, 0.225f};
	for (size_t j = 0; j < k; j++) {
		const rwd_image *img = imgs[keys[j].img];
		if ((r = cv_resize_linear(img->pixels, img->w, img->h, img->stride, rs, rw, rh))) {
			r = rwd_errorf(&err, r, "out of memory");
			goto done;
		}
		float *xi = x + j * 3 * plane;
		for (int c = 0; c < 3; c++)
			for (size_t i = 0; i < plane; i++)
				xi[(size_t)c * plane + i] = ((float)rs[i * 3 + (size_t)c] * (1.0f / 255.0f) - mean[c]) / stdv[c];
	}
	int64_t dims[4] = {(int64_t)k, 3, rh, rw};
	if ((r = rwd_graph_run(o->det, x, 4, dims, NULL, &pm, &err)))
		goto done;
	if (pm.rank != 4 || pm.dims[0] != (int64_t)k || pm.dims[1] < 1 || pm.dims[2] != rh || pm.dims[3] != rw) {
		r = rwd_errorf(&err, RWD_E_INVALID, "the detector's output is not a [%zu, 1, %d, %d] map", k, rh, rw);
		goto done;
	}
	for (size_t j = 0; j < k; j++) {
		size_t i = keys[j].img;
		const float *map = pm.data + j * (size_t)pm.dims[1] * plane; /* channel 0 */
		if (db_boxes(o, ws, map, rw, rh, imgs[i]->w, imgs[i]->h, &jobs[i].boxes, &jobs[i].nb))
			item_fail(&res[i], RWD_E_NOMEM, NULL);
	}
done:
	if (r)
		for (size_t j = 0; j < k; j++)
			item_fail(&res[keys[j].img], r, &err);
	free(pm.data);
}

/* The recogniser on k crops of one padded width W (rj[0..k)), decoded into their lines. */
static void rec_run(const rwd_ocr *o, rwd_ocr_ws *ws, img_job *jobs, rwd_ocr_result *res, const rec_job *rj,
	size_t k)
{
	const int H = o->rec_h, W = rj[0].W;
	const size_t per = 3 * (size_t)H * (size_t)W;
	float *x = wbuf_get(&ws->rec_x, sizeof(float) * per * k);
	uint8_t *rs = wbuf_get(&ws->rs, (size_t)H * (size_t)W * 3);
	rwd_error err = {0};
	rwd_graph_tensor out = {0};
	int r = 0;
	if (!x || !rs) {
		r = rwd_errorf(&err, RWD_E_NOMEM, "out of memory");
		goto done;
	}
	memset(x, 0, sizeof(float) * per * k); /* the zero padding */
	for (size_t q = 0; q < k; q++) {
		const crop *c = &jobs[rj[q].img].crops[rj[q].box];
		double ratio = (double)c->w / c->h;
		int rw = ceil(H * ratio) > W ? W : (int)ceil(H * ratio);
		if (rw < 1)
			rw = 1;
		if ((r = cv_resize_linear(c->px, c->w, c->h, (size_t)c->w * 3, rs, rw, H))) {
			r = rwd_errorf(&err, r, "out of memory");
			goto done;
		}
		float *xb = x + q * per;
		for (int yy = 0; yy < H; yy++)
			for (int xx = 0; xx < rw; xx++)
				for (int ch = 0; ch < 3; ch++) {
					float v = (float)rs[((size_t)yy * (size_t)rw + (size_t)xx) * 3 + (size_t)ch] / 255.0f;
					xb[((size_t)ch * (size_t)H + (size_t)yy) * (size_t)W + (size_t)xx] = (v - 0.5f) / 0.5f;
				}
	}
	int64_t dims[4] = {(int64_t)k, 3, H, W};
	if ((r = rwd_graph_run(o->rec, x, 4, dims, NULL, &out, &err)))
		goto done;
	if (out.rank != 3 || out.dims[0] != (int64_t)k || out.dims[2] != (int64_t)o->n_chars) {
		r = rwd_errorf(&err, RWD_E_INVALID, "the recogniser's output does not match the dictionary (%zu classes)",
			o->n_chars);
		goto done;
	}
	int64_t T = out.dims[1], C = out.dims[2];
	for (size_t q = 0; q < k; q++)
		if (ctc_decode(o, out.data + q * (size_t)T * (size_t)C, T, C, &jobs[rj[q].img].lines[rj[q].box]))
			item_fail(&res[rj[q].img], RWD_E_NOMEM, NULL);
done:
	if (r)
		for (size_t q = 0; q < k; q++)
			item_fail(&res[rj[q].img], r, &err);
	free(out.data);
}

int rwd_ocr_ws_new(const rwd_ocr *o, rwd_ocr_ws **out, rwd_error *err)
{
	*out = NULL;
	rwd_ocr_ws *ws = calloc(1, sizeof(*ws));
	if (!ws)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	/* "max" bounds both resized sides by the limit rounded to 32; "min" has no bound (grown on demand) */
	size_t side = o->limit_max ? ((size_t)o->limit_side + 16) / 32 * 32 : 0, px = side * side;
	size_t det_px = px > o->det_batch_pixels ? px : (size_t)o->det_batch_pixels;
	size_t rec_px = (size_t)o->rec_h * (size_t)o->rec_w;
	if (!o->limit_max)
		det_px = 0;
	if (!wbuf_get(&ws->det_x, sizeof(float) * 3 * det_px) ||
		!wbuf_get(&ws->rs, 3 * (px > rec_px ? px : rec_px)) ||
		!wbuf_get(&ws->rec_x, sizeof(float) * 3 * rec_px * (size_t)o->rec_run) ||
		!wbuf_get(&ws->bit, px) || !wbuf_get(&ws->stack, sizeof(int) * px) ||
		!wbuf_get(&ws->rows, sizeof(int) * 2 * side) || !wbuf_get(&ws->pts, sizeof(pt) * 2 * side) ||
		!wbuf_get(&ws->hull, sizeof(pt) * (4 * side + 2))) {
		rwd_ocr_ws_free(ws);
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory for the ocr working memory (%zu detector pixels)",
			det_px);
	}
	*out = ws;
	return 0;
}

void rwd_ocr_ws_free(rwd_ocr_ws *ws)
{
	if (!ws)
		return;
	wbuf *b[] = {&ws->det_x, &ws->rs, &ws->rec_x, &ws->bit, &ws->stack, &ws->rows, &ws->pts, &ws->hull};
	for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++)
		free(b[i]->p);
	free(ws);
}

size_t rwd_ocr_ws_bytes(const rwd_ocr_ws *ws)
{
	return ws->det_x.cap + ws->rs.cap + ws->rec_x.cap + ws->bit.cap + ws->stack.cap + ws->rows.cap +
		ws->pts.cap + ws->hull.cap;
}

int rwd_ocr_read_batch(const rwd_ocr *o, rwd_ocr_ws *ws, const rwd_image *const *imgs, size_t n,
	rwd_ocr_result *res)
{
	rwd_ocr_ws *own = NULL;
	img_job *jobs = calloc(n ? n : 1, sizeof(*jobs));
	det_key *keys = calloc(n ? n : 1, sizeof(*keys));
	rec_job *rj = NULL;
	int r = 0;
	for (size_t i = 0; i < n; i++)
		memset(&res[i], 0, sizeof(res[i]));
	if (!ws && rwd_ocr_ws_new(o, &own, NULL) == 0)
		ws = own;
	if (!jobs || !keys || !ws) {
		r = RWD_E_NOMEM;
		for (size_t i = 0; i < n; i++)
			item_fail(&res[i], r, NULL);
		goto done;
	}
	/* DetResizeForTest per image; the detector runs on images of one resized size together */
	size_t nk = 0;
	for (size_t i = 0; i < n; i++) {
		const rwd_image *img = imgs[i];
		if (img->w < 1 || img->h < 1) {
			rwd_errorf(&res[i].err, RWD_E_INVALID, "empty image");
			res[i].status = RWD_E_INVALID;
			continue;
		}
		double ratio = 1.0;
		int mx = img->w > img->h ? img->w : img->h, mn = img->w < img->h ? img->w : img->h;
		if (o->limit_max ? mx > o->limit_side : mn < o->limit_side)
			ratio = o->limit_side / (o->limit_max ? mx : mn);
		int rh = (int)(img->h * ratio), rw = (int)(img->w * ratio);
		jobs[i].rh = (int)fmax(rint(rh / 32.0) * 32, 32);
		jobs[i].rw = (int)fmax(rint(rw / 32.0) * 32, 32);
		keys[nk++] = (det_key){jobs[i].rh, jobs[i].rw, i};
	}
	qsort(keys, nk, sizeof(*keys), det_key_cmp);
	for (size_t a = 0; a < nk;) {
		uint64_t px = (uint64_t)keys[a].rh * (uint64_t)keys[a].rw;
		size_t per = px >= o->det_batch_pixels ? 1 : (size_t)(o->det_batch_pixels / px), b = a + 1;
		while (b < nk && b - a < per && keys[b].rh == keys[a].rh && keys[b].rw == keys[a].rw)
			b++;
		det_run(o, ws, imgs, jobs, res, keys + a, b - a);
		a = b;
	}
	/* crops, and each image's crops in PaddleOCR's batches: sorted by w / h, rec_batch at a time,
	 * each batch padded to its widest ratio; crops of one padded width share recogniser runs */
	size_t nc = 0;
	for (size_t i = 0; i < n; i++) {
		if (res[i].status || !jobs[i].nb)
			continue;
		jobs[i].crops = calloc(jobs[i].nb, sizeof(crop));
		jobs[i].lines = calloc(jobs[i].nb, sizeof(rwd_ocr_line));
		if (!jobs[i].crops || !jobs[i].lines) {
			item_fail(&res[i], RWD_E_NOMEM, NULL);
			continue;
		}
		for (size_t b = 0; b < jobs[i].nb && !res[i].status; b++) {
			int cr = rotate_crop(imgs[i], jobs[i].boxes[b].p, &jobs[i].crops[b]);
			if (cr) {
				rwd_errorf(&res[i].err, cr, "cannot crop box %zu", b);
				res[i].status = cr;
			}
		}
		if (!res[i].status)
			nc += jobs[i].nb;
	}
	rj = malloc(sizeof(*rj) * (nc ? nc : 1));
	if (!rj) {
		r = RWD_E_NOMEM;
		for (size_t i = 0; i < n; i++)
			item_fail(&res[i], r, NULL);
		goto done;
	}
	size_t q = 0;
	for (size_t i = 0; i < n; i++) {
		if (res[i].status || !jobs[i].nb)
			continue;
		rec_job *mine = rj + q;
		for (size_t b = 0; b < jobs[i].nb; b++) {
			const crop *c = &jobs[i].crops[b];
			mine[b] = (rec_job){.img = i, .box = b, .ratio = (double)c->w / (double)c->h};
		}
		qsort(mine, jobs[i].nb, sizeof(*mine), rec_ratio_cmp);
		for (size_t b0 = 0; b0 < jobs[i].nb; b0 += (size_t)o->rec_batch) {
			size_t bn = jobs[i].nb - b0 < (size_t)o->rec_batch ? jobs[i].nb - b0 : (size_t)o->rec_batch;
			double mr = (double)o->rec_w / o->rec_h;
			for (size_t k = 0; k < bn; k++)
				mr = fmax(mr, mine[b0 + k].ratio);
			for (size_t k = 0; k < bn; k++)
				mine[b0 + k].W = (int)(o->rec_h * mr);
		}
		for (size_t b = 0; b < jobs[i].nb; b++)
			mine[b].seq = q + b;
		q += jobs[i].nb;
	}
	qsort(rj, nc, sizeof(*rj), rec_width_cmp);
	for (size_t a = 0; a < nc;) {
		size_t b = a + 1;
		while (b < nc && b - a < (size_t)o->rec_run && rj[b].W == rj[a].W)
			b++;
		rec_run(o, ws, jobs, res, rj + a, b - a);
		a = b;
	}
	/* drop_score, as TextSystem drops lines; boxes in PaddleOCR's order */
	for (size_t i = 0; i < n; i++) {
		if (res[i].status)
			continue;
		size_t kept = 0;
		for (size_t b = 0; b < jobs[i].nb; b++) {
			rwd_ocr_line l = jobs[i].lines[b];
			if (l.confidence < o->drop_score) {
				free(l.text);
				continue;
			}
			for (int k = 0; k < 4; k++) {
				l.box[k][0] = (int)jobs[i].boxes[b].p[k].x;
				l.box[k][1] = (int)jobs[i].boxes[b].p[k].y;
			}
			jobs[i].lines[kept++] = l;
		}
		res[i].lines = jobs[i].lines;
		res[i].n = kept;
		jobs[i].lines = NULL;
	}
done:
	if (jobs)
		for (size_t i = 0; i < n; i++) {
			if (jobs[i].lines)
				for (size_t b = 0; b < jobs[i].nb; b++)
					free(jobs[i].lines[b].text);
			free(jobs[i].lines);
			if (jobs[i].crops)
				for (size_t b = 0; b < jobs[i].nb; b++)
					free(jobs[i].crops[b].px);
			free(jobs[i].crops);
			free(jobs[i].boxes);
		}
	free(jobs);
	free(keys);
	free(rj);
	rwd_ocr_ws_free(own);
	return r;
}

int rwd_ocr_read(const rwd_ocr *o, const rwd_image *img, rwd_ocr_line **lines_out, size_t *n_out,
	rwd_error *err)
{
	rwd_ocr_result res;
	*lines_out = NULL;
	*n_out = 0;
	int r = rwd_ocr_read_batch(o, NULL, &img, 1, &res);
	if (r || res.status) {
		if (err)
			*err = res.err;
		return res.status ? res.status : r;
	}
	*lines_out = res.lines;
	*n_out = res.n;
	return 0;
}

void rwd_ocr_lines_free(rwd_ocr_line *lines, size_t n)
{
	if (!lines)
		return;
	for (size_t i = 0; i < n; i++)
		free(lines[i].text);
	free(lines);
}

/* ---- reward ---- */

/* UTF-8 -> code points with spaces removed and lower-cased; malloc'd. */
static int32_t *clean_cps(const char *s, size_t n, size_t *out_n)
{
	int32_t *cp = malloc(sizeof(int32_t) * (n + 1));
	size_t k = 0;
	if (!cp)
		return NULL;
	for (size_t i = 0; i < n;) {
		utf8proc_int32_t c;
		utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &c);
		if (l <= 0) { /* invalid byte: keep it as U+FFFD, as Python's replace decoding would */
			c = 0xFFFD;
			l = 1;
		}
		i += (size_t)l;
		if (c == ' ')
			continue;
		cp[k++] = utf8proc_tolower(c);
	}
	*out_n = k;
	return cp;
}

int rwd_ocr_reward(const char *text, const char *prompt, double *reward, int *dist, rwd_error *err)
{
	const char *q = strchr(prompt, '"');
	if (!q) {
		rwd_error_where(err, NULL, "prompt");
		return rwd_errorf(err, RWD_E_INVALID, "the prompt has no quoted target text (flow_grpo takes prompt.split('\"')[1])");
	}
	const char *e = strchr(q + 1, '"');
	size_t tl = e ? (size_t)(e - q - 1) : strlen(q + 1);
	size_t nt, nr;
	int32_t *t = clean_cps(q + 1, tl, &nt), *rtx = clean_cps(text, strlen(text), &nr);
	int r = 0;
	size_t *row = NULL;
	if (!t || !rtx) {
		r = rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		goto done;
	}
	if (nt == 0) {
		rwd_error_where(err, NULL, "prompt");
		r = rwd_errorf(err, RWD_E_INVALID, "the quoted target is empty once spaces are removed");
		goto done;
	}
	size_t d = SIZE_MAX;
	for (size_t i = 0; i + nt <= nr; i++)
		if (!memcmp(rtx + i, t, nt * sizeof(int32_t))) {
			d = 0;
			break;
		}
	if (d) {
		row = malloc(sizeof(size_t) * (nt + 1));
		if (!row) {
			r = rwd_errorf(err, RWD_E_NOMEM, "out of memory");
			goto done;
		}
		for (size_t j = 0; j <= nt; j++)
			row[j] = j;
		for (size_t i = 1; i <= nr; i++) {
			size_t diag = row[0];
			row[0] = i;
			for (size_t j = 1; j <= nt; j++) {
				size_t up = row[j];
				size_t best = diag + (rtx[i - 1] != t[j - 1]);
				if (up + 1 < best)
					best = up + 1;
				if (row[j - 1] + 1 < best)
					best = row[j - 1] + 1;
				row[j] = best;
				diag = up;
			}
		}
		d = row[nt];
	}
	*dist = d > INT_MAX ? INT_MAX : (int)d;
	size_t capped = d > nt ? nt : d;
	*reward = 1.0 - (double)capped / (double)nt;
done:
	free(t);
	free(rtx);
	free(row);
	return r;
}

/* ---- load ---- */

static int cfg_num(const json_t *cfg, const char *key, double lo, double hi, double *v, const char *file,
	rwd_error *err)
{
	const json_t *j = json_object_get(cfg, key);
	if (!j)
		return 0;
	if (!json_is_number(j) || json_number_value(j) < lo || json_number_value(j) > hi) {
		rwd_error_where(err, file, key);
		return rwd_errorf(err, RWD_E_INVALID, "must be a number in [%g, %g]", lo, hi);
	}
	*v = json_number_value(j);
	return 0;
}

int rwd_ocr_load(const char *dir, rwd_ocr **out, rwd_error *err)
{
	char path[4096];
	*out = NULL;
	rwd_ocr *o = calloc(1, sizeof(*o));
	json_t *cfg = NULL;
	FILE *f = NULL;
	int r = 0;
	if (!o)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	o->limit_side = 960;
	o->limit_max = 1;
	o->thresh = 0.3f;
	o->box_thresh = 0.6f;
	o->unclip_ratio = 1.5f;
	o->drop_score = 0.5f;
	o->rec_h = 48;
	o->rec_w = 320;
	o->rec_batch = 6;
	o->max_candidates = 1000;
	o->det_batch_pixels = 2 * 960 * 960;
	int use_space = 1;
	snprintf(path, sizeof(path), "%s/config.json", dir);
	json_error_t jerr;
	cfg = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!cfg) {
		rwd_error_where(err, path, NULL);
		rwd_error_at(err, jerr.line, jerr.column, jerr.position);
		r = rwd_errorf(err, RWD_E_FORMAT, "%s", jerr.text);
		goto fail;
	}
	double v;
	v = o->limit_side;
	if ((r = cfg_num(cfg, "det_limit_side_len", 32, 8192, &v, path, err)))
		goto fail;
	o->limit_side = v;
	const char *lt = json_string_value(json_object_get(cfg, "det_limit_type"));
	if (lt && strcmp(lt, "max") && strcmp(lt, "min")) {
		rwd_error_where(err, path, "det_limit_type");
		r = rwd_errorf(err, RWD_E_INVALID, "must be \"max\" or \"min\"");
		goto fail;
	}
	if (lt)
		o->limit_max = !strcmp(lt, "max");
	struct { const char *k; float *p; } fl[] = {{"det_db_thresh", &o->thresh}, {"det_db_box_thresh", &o->box_thresh},
		{"det_db_unclip_ratio", &o->unclip_ratio}, {"drop_score", &o->drop_score}};
	for (size_t i = 0; i < sizeof(fl) / sizeof(fl[0]); i++) {
		v = *fl[i].p;
		if ((r = cfg_num(cfg, fl[i].k, 0, 10, &v, path, err)))
			goto fail;
		*fl[i].p = (float)v;
	}
	v = o->rec_batch;
	if ((r = cfg_num(cfg, "rec_batch_num", 1, 256, &v, path, err)))
		goto fail;
	o->rec_batch = (int)v;
	o->rec_run = 4 * o->rec_batch;
	v = (double)o->det_batch_pixels;
	if ((r = cfg_num(cfg, "det_batch_pixels", 1, 1 << 30, &v, path, err)))
		goto fail;
	o->det_batch_pixels = (uint64_t)v;
	const json_t *shp = json_object_get(cfg, "rec_image_shape");
	if (shp) {
		if (!json_is_array(shp) || json_array_size(shp) != 3 || json_integer_value(json_array_get(shp, 0)) != 3 ||
			json_integer_value(json_array_get(shp, 1)) < 8 || json_integer_value(json_array_get(shp, 1)) > 256 ||
			json_integer_value(json_array_get(shp, 2)) < 8 || json_integer_value(json_array_get(shp, 2)) > 4096) {
			rwd_error_where(err, path, "rec_image_shape");
			r = rwd_errorf(err, RWD_E_INVALID, "must be [3, H (8..256), W (8..4096)]");
			goto fail;
		}
		o->rec_h = (int)json_integer_value(json_array_get(shp, 1));
		o->rec_w = (int)json_integer_value(json_array_get(shp, 2));
	}
	const json_t *us = json_object_get(cfg, "use_space_char");
	if (us)
		use_space = json_is_true(us);
	if ((r = rwd_graph_load(dir, "det", &o->det, err)) || (r = rwd_graph_load(dir, "rec", &o->rec, err)))
		goto fail;
	/* the dictionary: one entry per line, "\n" or "\r\n" stripped, as CTCLabelDecode reads it */
	snprintf(path, sizeof(path), "%s/dict.txt", dir);
	f = fopen(path, "rb");
	if (!f) {
		rwd_error_where(err, path, NULL);
		r = rwd_errorf(err, RWD_E_IO, "cannot open: %s", strerror(errno));
		goto fail;
	}
	size_t cap = 1 << 16, len = 0;
	o->dict_buf = malloc(cap + 1);
	for (;;) {
		if (!o->dict_buf) {
			r = rwd_errorf(err, RWD_E_NOMEM, "out of memory");
			goto fail;
		}
		len += fread(o->dict_buf + len, 1, cap - len, f);
		if (len < cap)
			break;
		if (cap >= (16u << 20)) {
			rwd_error_where(err, path, NULL);
			r = rwd_errorf(err, RWD_E_LIMIT, "dictionary larger than 16 MiB");
			goto fail;
		}
		cap *= 2;
		char *nb = realloc(o->dict_buf, cap + 1);
		if (!nb)
			free(o->dict_buf);
		o->dict_buf = nb;
	}
	o->dict_buf[len] = 0;
	size_t nl = 1;
	for (size_t i = 0; i < len; i++)
		nl += o->dict_buf[i] == '\n';
	o->chars = malloc(sizeof(char *) * (nl + 2));
	if (!o->chars) {
		r = rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		goto fail;
	}
	static char blank[] = "blank", space[] = " ";
	o->chars[o->n_chars++] = blank;
	char *s = o->dict_buf;
	while (s < o->dict_buf + len) {
		char *e = strchr(s, '\n');
		if (!e)
			e = o->dict_buf + len;
		*e = 0;
		if (e > s && e[-1] == '\r')
			e[-1] = 0;
		o->chars[o->n_chars++] = s;
		s = e + 1;
	}
	if (use_space)
		o->chars[o->n_chars++] = space;
	json_decref(cfg);
	fclose(f);
	*out = o;
	return 0;
fail:
	json_decref(cfg);
	if (f)
		fclose(f);
	rwd_ocr_free(o);
	return r;
}

void rwd_ocr_free(rwd_ocr *o)
{
	if (!o)
		return;
	rwd_graph_free(o->det);
	rwd_graph_free(o->rec);
	free(o->chars);
	free(o->dict_buf);
	free(o);
}

uint64_t rwd_ocr_weight_bytes(const rwd_ocr *o)
{
	return rwd_graph_weight_bytes(o->det) + rwd_graph_weight_bytes(o->rec);
}

/* ---- the model kind ---- */

enum { DIM_OCR, DIM_EDIT_DISTANCE, DIM_DETECTIONS, N_DIMS };
static const char *const dim_names[N_DIMS] = {"ocr", "edit_distance", "detections"};
static const char *const ocr_inputs[] = {"image", "prompt", NULL};

typedef struct ocr_state {
	rwd_ocr *ocr;
	rwd_image_decode_params decode;
	size_t max_image_bytes, max_string;
} ocr_state;

typedef struct ocr_prep {
	rwd_image img;
} ocr_prep;

static int kind_load(const char *path, const json_t *opts, const rwd_batch_limits *lim, void **state,
	rwd_error *err)
{
	if (!path)
		return rwd_errorf(err, RWD_E_INVALID, "the ocr kind needs a converted folder (tools/convert_checkpoint.py ocr)");
	ocr_state *s = calloc(1, sizeof(*s));
	if (!s)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	s->decode = rwd_image_decode_default_params();
	s->decode.max_pixels = lim->max_image_pixels;
	s->max_image_bytes = (size_t)32 << 20;
	int r = 0;
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)opts, key, v) {
		rwd_error_where(err, NULL, key);
		if (strcmp(key, "max_image_bytes") == 0 && json_is_integer(v) && json_integer_value(v) >= 64 &&
			json_integer_value(v) <= ((json_int_t)1 << 34)) {
			s->max_image_bytes = (size_t)json_integer_value(v);
		} else {
			r = rwd_errorf(err, RWD_E_INVALID, "unknown or invalid ocr option (expected max_image_bytes: 64..2^34)");
			goto fail;
		}
	}
	rwd_error_where(err, NULL, "");
	size_t enc = (s->max_image_bytes + 2) / 3 * 4;
	s->max_string = enc + enc / 38 + 4096;
	if ((r = rwd_ocr_load(path, &s->ocr, err)))
		goto fail;
	*state = s;
	return 0;
fail:
	free(s);
	return r;
}

static void kind_free(void *state)
{
	ocr_state *s = state;
	if (!s)
		return;
	rwd_ocr_free(s->ocr);
	free(s);
}

static void kind_describe(const void *state, rwd_model_info *info)
{
	const ocr_state *s = state;
	info->n_dims = N_DIMS;
	for (size_t i = 0; i < N_DIMS; i++)
		info->dims[i] = dim_names[i];
	info->weight_bytes = (size_t)rwd_ocr_weight_bytes(s->ocr);
	info->token_cost = 0;
}

static int kind_check(const void *state, const json_t *item, size_t *cost, rwd_error *err)
{
	const ocr_state *s = state;
	*cost = 1;
	const json_t *img = json_object_get(item, "image"), *pr = json_object_get(item, "prompt");
	if (!json_is_string(img) || json_string_length(img) == 0) {
		rwd_error_where(err, NULL, "image");
		return rwd_errorf(err, RWD_E_INVALID, "\"image\" must be a base64 PNG/JPEG or a data:image/...;base64, URL");
	}
	if (json_string_length(img) > s->max_string) {
		rwd_error_where(err, NULL, "image");
		return rwd_errorf(err, RWD_E_LIMIT, "\"image\" is %zu characters, over the limit of %zu (%zu image bytes)",
			json_string_length(img), s->max_string, s->max_image_bytes);
	}
	if (!json_is_string(pr)) {
		rwd_error_where(err, NULL, "prompt");
		return rwd_errorf(err, RWD_E_INVALID, "\"prompt\" must be a string holding the target text in double quotes");
	}
	return 0; /* the quoted target is checked in prepare(): a per-item error, as a bad image is */
}

static int kind_prepare(const void *state, void *scratch, rwd_item *item, rwd_arena *arena, rwd_error *err)
{
	const ocr_state *s = state;
	(void)scratch;
	ocr_prep *p = rwd_arena_calloc(arena, 1, sizeof(*p));
	if (!p)
		return rwd_errorf(err, rwd_arena_over_limit(arena) ? RWD_E_LIMIT : RWD_E_NOMEM, "out of memory for the item");
	double rew;
	int dist;
	int r = rwd_ocr_reward("", json_string_value(json_object_get(item->input, "prompt")), &rew, &dist, err);
	if (r)
		return r;
	json_t *v = json_object_get(item->input, "image");
	rwd_error_where(err, NULL, "image");
	r = rwd_image_decode_base64(json_string_value(v), json_string_length(v), s->max_image_bytes, &s->decode,
		arena, &p->img, err);
	if (r)
		return r;
	rwd_error_where(err, NULL, "");
	item->prep = p;
	return 0;
}

static int kind_scratch_new(const void *state, void **scratch, rwd_error *err)
{
	const ocr_state *s = state;
	rwd_ocr_ws *ws;
	int r = rwd_ocr_ws_new(s->ocr, &ws, err);
	if (r)
		return r;
	*scratch = ws;
	return 0;
}

static void kind_scratch_free(void *scratch)
{
	rwd_ocr_ws_free(scratch);
}

/*
 * The item's extra: {"text": the recognised text as flow_grpo joins it (the
 * lines with confidence > 0, concatenated with nothing between them, before
 * the reward's lower-casing and space removal), "lines": [{"text",
 * "confidence", "box": [[x, y] x 4]}] in PaddleOCR's order (after
 * drop_score)}. Returns 0 or RWD_E_NOMEM.
 */
static int ocr_extra(const rwd_ocr_line *lines, size_t nl, const char *text, json_t **out)
{
	json_t *o = json_object(), *arr = json_array();
	int bad = !o || !arr;
	for (size_t k = 0; k < nl && !bad; k++) {
		const rwd_ocr_line *l = &lines[k];
		json_t *box = json_pack("[[ii][ii][ii][ii]]", l->box[0][0], l->box[0][1], l->box[1][0], l->box[1][1],
			l->box[2][0], l->box[2][1], l->box[3][0], l->box[3][1]);
		json_t *jl = box ? json_pack("{s:s, s:f, s:o}", "text", l->text, "confidence", (double)l->confidence,
			"box", box) : NULL;
		bad = !jl || json_array_append_new(arr, jl);
	}
	if (!bad)
		bad = json_object_set_new(o, "text", json_string(text)) || json_object_set_new(o, "lines", arr);
	else
		json_decref(arr);
	if (bad) {
		json_decref(o);
		return RWD_E_NOMEM;
	}
	*out = o;
	return 0;
}

static int kind_forward(const void *state, void *scratch, rwd_item *const *items, size_t n, rwd_arena *arena)
{
	const ocr_state *s = state;
	const rwd_image **imgs = rwd_arena_alloc(arena, sizeof(*imgs) * (n ? n : 1));
	rwd_ocr_result *res = rwd_arena_alloc(arena, sizeof(*res) * (n ? n : 1));
	if (!imgs || !res) {
		int r = rwd_arena_over_limit(arena) ? RWD_E_LIMIT : RWD_E_NOMEM;
		for (size_t i = 0; i < n; i++)
			items[i]->status = rwd_errorf(&items[i]->err, r, "out of memory for a batch of %zu images", n);
		return r;
	}
	for (size_t i = 0; i < n; i++)
		imgs[i] = &((const ocr_prep *)items[i]->prep)->img;
	rwd_ocr_read_batch(s->ocr, scratch, imgs, n, res); /* failures are per image, in res[] */
	for (size_t i = 0; i < n; i++) {
		rwd_item *it = items[i];
		rwd_ocr_line *lines = res[i].lines;
		size_t nl = res[i].n;
		if (res[i].status) {
			it->err = res[i].err;
			it->status = res[i].status;
			continue;
		}
		/* flow_grpo joins the texts of lines with confidence > 0 */
		size_t len = 1;
		for (size_t k = 0; k < nl; k++)
			len += strlen(lines[k].text);
		char *text = malloc(len);
		if (!text) {
			rwd_ocr_lines_free(lines, nl);
			it->status = rwd_errorf(&it->err, RWD_E_NOMEM, "out of memory");
			continue;
		}
		text[0] = 0;
		for (size_t k = 0, at = 0; k < nl; k++)
			if (lines[k].confidence > 0) {
				size_t l = strlen(lines[k].text);
				memcpy(text + at, lines[k].text, l + 1);
				at += l;
			}
		double rew = 0;
		int dist = 0;
		int r = rwd_ocr_reward(text, json_string_value(json_object_get(it->input, "prompt")), &rew, &dist, &it->err);
		json_t *extra = NULL;
		if (!r && ocr_extra(lines, nl, text, &extra))
			r = rwd_errorf(&it->err, RWD_E_NOMEM, "out of memory for the recognised lines");
		free(text);
		rwd_ocr_lines_free(lines, nl);
		if (r) {
			it->status = r;
			continue;
		}
		it->extra = extra;
		it->scores[DIM_OCR] = (float)rew;
		it->scores[DIM_EDIT_DISTANCE] = (float)dist;
		it->scores[DIM_DETECTIONS] = (float)nl;
		it->present[DIM_OCR] = it->present[DIM_EDIT_DISTANCE] = it->present[DIM_DETECTIONS] = 1;
	}
	return 0;
}

const rwd_model_ops rwd__ocr_ops = {
	.kind = "ocr",
	.inputs = ocr_inputs,
	.load = kind_load,
	.free = kind_free,
	.describe = kind_describe,
	.check = kind_check,
	.scratch_new = kind_scratch_new,
	.scratch_free = kind_scratch_free,
	.prepare = kind_prepare,
	.forward = kind_forward,
};
