/* image/decode.c — see decode.h for the contract and the Pillow parity rules. */
#include "image/decode.h"

#include "core/base64.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#define PNG_CHUNK_MAX ((png_alloc_size_t)8 << 20)

rwd_image_decode_params rwd_image_decode_default_params(void)
{
	rwd_image_decode_params p = {0};
	p.max_pixels = 4096ull * 4096ull;
	p.background[0] = p.background[1] = p.background[2] = 255;
	p.max_jpeg_scans = 1000;
	return p;
}

static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

rwd_image_format rwd_image_sniff(const uint8_t *data, size_t n)
{
	if (n >= 8 && memcmp(data, png_magic, 8) == 0)
		return RWD_IMAGE_FORMAT_PNG;
	if (n >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff)
		return RWD_IMAGE_FORMAT_JPEG;
	return RWD_IMAGE_FORMAT_UNKNOWN;
}

const char *rwd_image_format_name(rwd_image_format f)
{
	switch (f) {
	case RWD_IMAGE_FORMAT_PNG:
		return "png";
	case RWD_IMAGE_FORMAT_JPEG:
		return "jpeg";
	default:
		return "unknown";
	}
}

/* A useful 415 message: name the formats people actually send. */
static int unsupported(const uint8_t *d, size_t n, rwd_error *err)
{
	const char *name = NULL;
	if (n == 0) {
		rwd_error_at(err, 0, 0, 0);
		return rwd_errorf(err, RWD_E_FORMAT, "image: empty data");
	}
	if ((n < 8 && memcmp(d, png_magic, n) == 0) || (n < 3 && d[0] == 0xff && (n < 2 || d[1] == 0xd8))) {
		rwd_error_at(err, 0, 0, (int64_t)n);
		return rwd_errorf(err, RWD_E_FORMAT, "image: truncated after %zu bytes", n);
	}
	if (n >= 4 && (memcmp(d, "GIF87a", n < 6 ? n : 6) == 0 || memcmp(d, "GIF89a", n < 6 ? n : 6) == 0))
		name = "GIF";
	else if (n >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0)
		name = "WebP";
	else if (n >= 2 && d[0] == 'B' && d[1] == 'M')
		name = "BMP";
	else if (n >= 4 && (memcmp(d, "II*\0", 4) == 0 || memcmp(d, "MM\0*", 4) == 0))
		name = "TIFF";
	else if (n >= 12 && memcmp(d + 4, "ftyp", 4) == 0)
		name = "HEIF/AVIF";
	else if (n >= 4 && memcmp(d, "\0\0\1\0", 4) == 0)
		name = "ICO";
	else if (n >= 5 && (memcmp(d, "<?xml", 5) == 0 || memcmp(d, "<svg", 4) == 0))
		name = "SVG";
	rwd_error_at(err, 0, 0, 0);
	if (name)
		return rwd_errorf(err, RWD_E_UNSUPPORTED, "image: %s is not supported (send PNG or JPEG)", name);
	return rwd_errorf(err, RWD_E_UNSUPPORTED,
		"image: unknown format (first bytes %02x %02x %02x %02x; send PNG or JPEG)",
		d[0], n > 1 ? d[1] : 0, n > 2 ? d[2] : 0, n > 3 ? d[3] : 0);
}

static int check_dims(uint64_t w, uint64_t h, const rwd_image_decode_params *p, rwd_error *err)
{
	if (w == 0 || h == 0)
		return rwd_errorf(err, RWD_E_FORMAT, "image: zero size %llux%llu",
			(unsigned long long)w, (unsigned long long)h);
	if (w > RWD_IMAGE_DECODE_MAX_SIDE || h > RWD_IMAGE_DECODE_MAX_SIDE)
		return rwd_errorf(err, RWD_E_LIMIT, "image: %llux%llu has a side over %d pixels",
			(unsigned long long)w, (unsigned long long)h, RWD_IMAGE_DECODE_MAX_SIDE);
	if (p->max_pixels && w * h > p->max_pixels)
		return rwd_errorf(err, RWD_E_LIMIT, "image: %llux%llu is %llu pixels, over the limit of %llu",
			(unsigned long long)w, (unsigned long long)h, (unsigned long long)(w * h),
			(unsigned long long)p->max_pixels);
	return 0;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ---- EXIF orientation --------------------------------------------------- */

/* Orientation (1..8) from a TIFF-structured EXIF blob, or 1. Bounds-checked. */
static int exif_orientation(const uint8_t *t, size_t n)
{
	if (n < 8)
		return 1;
	int le;
	if (t[0] == 'I' && t[1] == 'I')
		le = 1;
	else if (t[0] == 'M' && t[1] == 'M')
		le = 0;
	else
		return 1;
#define RD16(p) (le ? (unsigned)((p)[0] | (p)[1] << 8) : (unsigned)((p)[0] << 8 | (p)[1]))
#define RD32(p) (le ? ((uint32_t)(p)[0] | (uint32_t)(p)[1] << 8 | (uint32_t)(p)[2] << 16 | (uint32_t)(p)[3] << 24) \
		    : be32(p))
	if (RD16(t + 2) != 42)
		return 1;
	uint32_t ifd = RD32(t + 4);
	if (ifd > n || n - ifd < 2)
		return 1;
	unsigned count = RD16(t + ifd);
	for (unsigned i = 0; i < count; i++) {
		size_t e = (size_t)ifd + 2 + (size_t)i * 12;
		if (e + 12 > n)
			break;
		if (RD16(t + e) == 0x0112) {
			unsigned type = RD16(t + e + 2);
			unsigned v = type == 3 ? RD16(t + e + 8) : type == 4 ? (unsigned)RD32(t + e + 8) : 1;
			return v >= 1 && v <= 8 ? (int)v : 1;
		}
	}
#undef RD16
#undef RD32
	return 1;
}

/*
 * Apply orientation o to img in place of its buffer (a second buffer of the
 * same size is taken from the arena or malloc). Mappings as Pillow's
 * exif_transpose: 2 FLIP_LEFT_RIGHT, 3 ROTATE_180, 4 FLIP_TOP_BOTTOM,
 * 5 TRANSPOSE, 6 ROTATE_270, 7 TRANSVERSE, 8 ROTATE_90 (counter-clockwise).
 */
static int apply_orientation(rwd_image *img, int o, rwd_arena *arena, rwd_error *err)
{
	if (o < 2 || o > 8)
		return 0;
	int W = img->w, H = img->h;
	int ow = o >= 5 ? H : W, oh = o >= 5 ? W : H;
	size_t size = (size_t)ow * (size_t)oh * 3;
	uint8_t *dst = arena ? rwd_arena_alloc(arena, size) : malloc(size);
	if (!dst) {
		if (arena && rwd_arena_over_limit(arena))
			return rwd_errorf(err, RWD_E_LIMIT, "image: the request's memory limit is exhausted");
		return rwd_errorf(err, RWD_E_NOMEM, "image: out of memory rotating %dx%d", W, H);
	}
	for (int y = 0; y < oh; y++) {
		for (int x = 0; x < ow; x++) {
			int sx, sy;
			switch (o) {
			case 2: sx = W - 1 - x; sy = y; break;
			case 3: sx = W - 1 - x; sy = H - 1 - y; break;
			case 4: sx = x; sy = H - 1 - y; break;
			case 5: sx = y; sy = x; break;
			case 6: sx = y; sy = H - 1 - x; break;
			case 7: sx = W - 1 - y; sy = H - 1 - x; break;
			default: sx = W - 1 - y; sy = x; break;
			}
			const uint8_t *s = img->pixels + (size_t)sy * img->stride + (size_t)sx * 3;
			uint8_t *d = dst + ((size_t)y * (size_t)ow + (size_t)x) * 3;
			d[0] = s[0];
			d[1] = s[1];
			d[2] = s[2];
		}
	}
	if (!arena)
		free(img->pixels);
	img->pixels = dst;
	img->w = ow;
	img->h = oh;
	img->stride = (size_t)ow * 3;
	return 0;
}

/* Correctly rounded a*c + (255-a)*bg over 255. */
static uint8_t blend(unsigned c, unsigned a, unsigned bg)
{
	return (uint8_t)((a * c + (255 - a) * bg + 127) / 255);
}

static uint8_t *alloc_pixels(size_t size, rwd_arena *arena, int *code)
{
	uint8_t *p = arena ? rwd_arena_alloc(arena, size) : malloc(size);
	if (!p)
		*code = arena && rwd_arena_over_limit(arena) ? RWD_E_LIMIT : RWD_E_NOMEM;
	return p;
}

/* ---- PNG ---------------------------------------------------------------- */

typedef struct png_ctx {
	const uint8_t *data;
	size_t n, pos;
	jmp_buf jmp;
	char msg[160];
	int code;          /* RWD_E_* to report after the longjmp */
	uint8_t *owned;    /* malloc'ed output to free on failure (arena == NULL) */
	uint8_t *tmp;      /* malloc'ed decode buffer */
	png_bytep *rows;   /* malloc'ed row pointers */
} png_ctx;

static void png_err_fn(png_structp png, png_const_charp msg)
{
	png_ctx *c = png_get_error_ptr(png);
	if (!c->code)
		c->code = RWD_E_FORMAT;
	if (!c->msg[0])
		snprintf(c->msg, sizeof(c->msg), "%s", msg);
	longjmp(c->jmp, 1);
}

static void png_warn_fn(png_structp png, png_const_charp msg)
{
	(void)png;
	(void)msg;
}

static void png_read_fn(png_structp png, png_bytep out, size_t len)
{
	png_ctx *c = png_get_io_ptr(png);
	if (len > c->n - c->pos) {
		snprintf(c->msg, sizeof(c->msg), "truncated: the data ends before the image is complete");
		c->pos = c->n;
		png_error(png, c->msg);
	}
	memcpy(out, c->data + c->pos, len);
	c->pos += len;
}

static int decode_png(const uint8_t *data, size_t n, const rwd_image_decode_params *p,
	rwd_arena *arena, rwd_image *out, rwd_error *err)
{
	/* Dimensions from IHDR before libpng allocates anything for them. */
	if (n >= 24 && memcmp(data + 12, "IHDR", 4) == 0) {
		int r = check_dims(be32(data + 16), be32(data + 20), p, err);
		if (r)
			return r;
	}
	/*
	 * Walk the chunks before the image data: libpng allocates an ancillary
	 * chunk's buffer from its declared length before reading it (eXIf, for
	 * one, ignores png_set_chunk_malloc_max), so a 40-byte file could ask for
	 * gigabytes. A chunk longer than the bytes left is truncation, and is
	 * refused here. Chunks after the first IDAT are never parsed by us.
	 */
	for (size_t off = 8; off + 8 <= n;) {
		uint32_t len = be32(data + off);
		if (memcmp(data + off + 4, "IDAT", 4) == 0 || memcmp(data + off + 4, "IEND", 4) == 0)
			break;
		if (len > 0x7fffffffu || (size_t)len + 12 > n - off) {
			rwd_error_at(err, 0, 0, (int64_t)off);
			return rwd_errorf(err, RWD_E_FORMAT,
				"png: truncated: the chunk at byte %zu declares %u bytes, %zu remain", off, len,
				n - off >= 12 ? n - off - 12 : 0);
		}
		off += (size_t)len + 12;
	}
	png_ctx *c = calloc(1, sizeof(*c));
	if (!c)
		return rwd_errorf(err, RWD_E_NOMEM, "image: out of memory");
	c->data = data;
	c->n = n;
	png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, c, png_err_fn, png_warn_fn);
	png_infop info = png ? png_create_info_struct(png) : NULL;
	int r = 0;
	if (!png || !info) {
		r = rwd_errorf(err, RWD_E_NOMEM, "image: out of memory");
		goto done;
	}
	if (setjmp(c->jmp)) {
		r = c->code ? c->code : RWD_E_FORMAT;
		if (r == RWD_E_FORMAT)
			rwd_errorf(err, r, "png: %s", c->msg);
		else
			rwd_errorf(err, r, "%s", c->msg);
		rwd_error_at(err, 0, 0, (int64_t)c->pos);
		if (c->owned)
			free(c->owned);
		goto done;
	}
	png_set_read_fn(png, c, png_read_fn);
	png_set_chunk_malloc_max(png, PNG_CHUNK_MAX);
	png_set_chunk_cache_max(png, 1000);
	png_set_user_limits(png, RWD_IMAGE_DECODE_MAX_SIDE, RWD_IMAGE_DECODE_MAX_SIDE);
	/* Pillow does not reject images for ancillary-chunk or palette-index problems. */
	png_set_benign_errors(png, 1);
	png_set_crc_action(png, PNG_CRC_DEFAULT, PNG_CRC_WARN_DISCARD);
	png_read_info(png, info);

	png_uint_32 w, h;
	int depth, ctype, interlace;
	png_get_IHDR(png, info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
	if ((r = check_dims(w, h, p, err)) != 0)
		goto done;
	int orientation = 1;
	if (p->apply_exif_orientation) {
		png_uint_32 exif_n = 0;
		png_bytep exif = NULL;
		if (png_get_eXIf_1(png, info, &exif_n, &exif) && exif)
			orientation = exif_orientation(exif, exif_n);
	}

	int has_trns = png_get_valid(png, info, PNG_INFO_tRNS) != 0;
	int composite = p->composite_alpha;
	/* 16-bit gray is Pillow's mode "I": clipped to 0..255, done by hand below. */
	int gray16_clip = depth == 16 && ctype == PNG_COLOR_TYPE_GRAY && !p->gray16_high_byte;
	png_uint_16 trns_gray = 0;
	if (gray16_clip) {
		if (composite && has_trns) {
			png_color_16p tc = NULL;
			if (png_get_tRNS(png, info, NULL, NULL, &tc) && tc)
				trns_gray = tc->gray;
		}
	} else {
		if (depth == 16)
			png_set_strip_16(png);
		if (ctype == PNG_COLOR_TYPE_PALETTE) {
			/* Pillow's palette starts as the grey ramp (i, i, i) and PLTE
			 * overwrites its head: an index past PLTE reads as grey i, where
			 * libpng would give black. Pad the palette the same way. */
			png_colorp pal = NULL;
			int npal = 0;
			int maxpal = depth < 8 ? 1 << depth : 256;
			if (png_get_PLTE(png, info, &pal, &npal) && pal && npal < maxpal) {
				png_color full[256];
				for (int i = 0; i < maxpal; i++) {
					if (i < npal)
						full[i] = pal[i];
					else
						full[i].red = full[i].green = full[i].blue = (png_byte)i;
				}
				png_set_PLTE(png, info, full, maxpal);
			}
			png_set_palette_to_rgb(png);
		}
		if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8)
			png_set_expand_gray_1_2_4_to_8(png);
		if (composite && has_trns)
			png_set_tRNS_to_alpha(png);
		if (ctype == PNG_COLOR_TYPE_GRAY || ctype == PNG_COLOR_TYPE_GRAY_ALPHA)
			png_set_gray_to_rgb(png);
		if (!composite)
			png_set_strip_alpha(png);
	}
	png_set_interlace_handling(png);
	png_read_update_info(png, info);
	size_t rowbytes = png_get_rowbytes(png, info);
	int channels = png_get_channels(png, info);
	size_t want = gray16_clip ? (size_t)w * 2 : (size_t)w * (size_t)channels;
	if ((gray16_clip && channels != 1) || (!gray16_clip && channels != 3 && channels != 4) ||
	    rowbytes != want) {
		r = rwd_errorf(err, RWD_E_INTERNAL, "png: unexpected layout after transforms (%d channels, %zu bytes per row)",
			channels, rowbytes);
		goto done;
	}
	size_t size = (size_t)w * (size_t)h * 3;
	int code = 0;
	uint8_t *pix = alloc_pixels(size, arena, &code);
	if (!pix) {
		r = rwd_errorf(err, code, "image: no memory for %ux%u pixels", (unsigned)w, (unsigned)h);
		goto done;
	}
	if (!arena)
		c->owned = pix;
	uint8_t *dst = pix;
	if (channels != 3) {
		c->tmp = malloc(rowbytes * h);
		if (!c->tmp) {
			if (c->owned)
				free(c->owned);
			r = rwd_errorf(err, RWD_E_NOMEM, "image: out of memory");
			goto done;
		}
		dst = c->tmp;
	}
	c->rows = malloc(sizeof(png_bytep) * h);
	if (!c->rows) {
		if (c->owned)
			free(c->owned);
		r = rwd_errorf(err, RWD_E_NOMEM, "image: out of memory");
		goto done;
	}
	for (png_uint_32 y = 0; y < h; y++)
		c->rows[y] = dst + (size_t)y * rowbytes;
	png_read_image(png, c->rows);
	/* The trailing chunks (after the image data) are not read: Pillow ignores them too. */

	if (gray16_clip) {
		const uint8_t *bg = p->background;
		for (size_t i = 0, np = (size_t)w * h; i < np; i++) {
			unsigned v = (unsigned)c->tmp[2 * i] << 8 | c->tmp[2 * i + 1];
			uint8_t g = v > 255 ? 255 : (uint8_t)v;
			uint8_t *o = pix + 3 * i;
			if (composite && has_trns && v == trns_gray) {
				o[0] = bg[0];
				o[1] = bg[1];
				o[2] = bg[2];
			} else {
				o[0] = o[1] = o[2] = g;
			}
		}
	} else if (channels == 4) {
		const uint8_t *bg = p->background;
		for (size_t i = 0, np = (size_t)w * h; i < np; i++) {
			const uint8_t *s = c->tmp + 4 * i;
			uint8_t *o = pix + 3 * i;
			o[0] = blend(s[0], s[3], bg[0]);
			o[1] = blend(s[1], s[3], bg[1]);
			o[2] = blend(s[2], s[3], bg[2]);
		}
	}
	out->w = (int)w;
	out->h = (int)h;
	out->stride = (size_t)w * 3;
	out->pixels = pix;
	c->owned = NULL;
	r = apply_orientation(out, orientation, arena, err);
	if (r && !arena)
		free(out->pixels);
done:
	if (png)
		png_destroy_read_struct(&png, info ? &info : NULL, NULL);
	free(c->tmp);
	free(c->rows);
	free(c);
	return r;
}

/* ---- JPEG --------------------------------------------------------------- */

typedef struct jpeg_ctx {
	struct jpeg_error_mgr jerr; /* first: libjpeg hands back this pointer */
	struct jpeg_source_mgr src;
	struct jpeg_progress_mgr progress;
	struct jpeg_decompress_struct cinfo;
	jmp_buf jmp;
	char msg[JMSG_LENGTH_MAX + 32];
	int code;
	unsigned max_scans;
	const uint8_t *data;
	size_t n;
	uint8_t *owned;
	uint8_t *row; /* CMYK scanline */
} jpeg_ctx;

static void jpeg_error_exit_fn(j_common_ptr cinfo)
{
	jpeg_ctx *c = (jpeg_ctx *)cinfo->err;
	if (!c->msg[0])
		(*cinfo->err->format_message)(cinfo, c->msg);
	if (!c->code)
		c->code = RWD_E_FORMAT;
	longjmp(c->jmp, 1);
}

static void jpeg_emit_message_fn(j_common_ptr cinfo, int level)
{
	/* Warnings (level -1: corrupt-but-recoverable data) are ignored, as Pillow does. */
	(void)cinfo;
	(void)level;
}

static void jpeg_output_message_fn(j_common_ptr cinfo)
{
	(void)cinfo; /* never print */
}

static void jpeg_init_source_fn(j_decompress_ptr cinfo)
{
	(void)cinfo;
}

static boolean jpeg_fill_input_fn(j_decompress_ptr cinfo)
{
	/* All data was handed over at once: needing more means it is truncated. */
	jpeg_ctx *c = (jpeg_ctx *)cinfo->err;
	snprintf(c->msg, sizeof(c->msg), "truncated: the data ends before the image is complete");
	c->code = RWD_E_FORMAT;
	c->src.bytes_in_buffer = 0; /* libjpeg-turbo's entropy decoder keeps its own copy */
	longjmp(c->jmp, 1);
}

static void jpeg_skip_input_fn(j_decompress_ptr cinfo, long count)
{
	struct jpeg_source_mgr *s = cinfo->src;
	if (count <= 0)
		return;
	if ((size_t)count > s->bytes_in_buffer) {
		s->next_input_byte += s->bytes_in_buffer;
		s->bytes_in_buffer = 0;
		jpeg_fill_input_fn(cinfo);
		return;
	}
	s->next_input_byte += count;
	s->bytes_in_buffer -= (size_t)count;
}

static void jpeg_term_source_fn(j_decompress_ptr cinfo)
{
	(void)cinfo;
}

static void jpeg_progress_fn(j_common_ptr cinfo)
{
	jpeg_ctx *c = (jpeg_ctx *)cinfo->err;
	if (c->max_scans && (unsigned)c->cinfo.input_scan_number > c->max_scans) {
		snprintf(c->msg, sizeof(c->msg), "image: more than %u JPEG scans", c->max_scans);
		c->code = RWD_E_LIMIT;
		longjmp(c->jmp, 1);
	}
}

/* Pillow's MULDIV255: a * b / 255 rounded, in fixed point. */
static unsigned muldiv255(unsigned a, unsigned b)
{
	unsigned t = a * b + 128;
	return ((t >> 8) + t) >> 8;
}

static uint8_t clip8(int v)
{
	return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Shared by decode and probe: set up libjpeg on c and read the header. */
static void jpeg_begin(jpeg_ctx *c, int save_exif)
{
	c->cinfo.err = jpeg_std_error(&c->jerr);
	c->jerr.error_exit = jpeg_error_exit_fn;
	c->jerr.emit_message = jpeg_emit_message_fn;
	c->jerr.output_message = jpeg_output_message_fn;
	jpeg_create_decompress(&c->cinfo);
	c->src.init_source = jpeg_init_source_fn;
	c->src.fill_input_buffer = jpeg_fill_input_fn;
	c->src.skip_input_data = jpeg_skip_input_fn;
	c->src.resync_to_restart = jpeg_resync_to_restart;
	c->src.term_source = jpeg_term_source_fn;
	c->src.next_input_byte = c->data;
	c->src.bytes_in_buffer = c->n;
	c->cinfo.src = &c->src;
	c->progress.progress_monitor = jpeg_progress_fn;
	c->cinfo.progress = &c->progress;
	if (save_exif)
		jpeg_save_markers(&c->cinfo, JPEG_APP0 + 1, 0xffff);
	if (jpeg_read_header(&c->cinfo, TRUE) != JPEG_HEADER_OK) {
		snprintf(c->msg, sizeof(c->msg), "no image in the data");
		c->code = RWD_E_FORMAT;
		longjmp(c->jmp, 1);
	}
}

static int jpeg_fail(jpeg_ctx *c, rwd_error *err)
{
	int r = c->code ? c->code : RWD_E_FORMAT;
	if (r == RWD_E_FORMAT)
		rwd_errorf(err, r, "jpeg: %s", c->msg);
	else
		rwd_errorf(err, r, "%s", c->msg);
	rwd_error_at(err, 0, 0, (int64_t)(c->n - c->src.bytes_in_buffer));
	return r;
}

static int decode_jpeg(const uint8_t *data, size_t n, const rwd_image_decode_params *p,
	rwd_arena *arena, rwd_image *out, rwd_error *err)
{
	jpeg_ctx *c = calloc(1, sizeof(*c));
	if (!c)
		return rwd_errorf(err, RWD_E_NOMEM, "image: out of memory");
	c->data = data;
	c->n = n;
	c->max_scans = p->max_jpeg_scans;
	int r = 0;
	if (setjmp(c->jmp)) {
		r = jpeg_fail(c, err);
		free(c->owned);
		goto done;
	}
	jpeg_begin(c, p->apply_exif_orientation);
	struct jpeg_decompress_struct *ci = &c->cinfo;
	if ((r = check_dims(ci->image_width, ci->image_height, p, err)) != 0)
		goto done;
	/* Progressive and multi-scan images buffer coefficients: bound that memory too. */
	ci->mem->max_memory_to_use = (long)((uint64_t)ci->image_width * ci->image_height * 16 + (64 << 20) > (uint64_t)0x7fffffff
		? 0x7fffffff : (uint64_t)ci->image_width * ci->image_height * 16 + (64 << 20));

	int orientation = 1;
	if (p->apply_exif_orientation) {
		for (jpeg_saved_marker_ptr m = ci->marker_list; m; m = m->next) {
			if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 &&
			    memcmp(m->data, "Exif\0\0", 6) == 0) {
				orientation = exif_orientation(m->data + 6, m->data_length - 6);
				break;
			}
		}
	}

	int cmyk = 0;
	switch (ci->jpeg_color_space) {
	case JCS_GRAYSCALE:
	case JCS_YCbCr:
	case JCS_RGB:
		ci->out_color_space = JCS_RGB;
		break;
	case JCS_CMYK:
	case JCS_YCCK:
		ci->out_color_space = JCS_CMYK;
		cmyk = 1;
		break;
	default:
		r = rwd_errorf(err, RWD_E_UNSUPPORTED, "jpeg: unsupported colour space (%d components)",
			ci->num_components);
		goto done;
	}
	/* Pillow's decoding settings are libjpeg's defaults; set them explicitly. */
	ci->dct_method = JDCT_ISLOW;
	ci->do_fancy_upsampling = TRUE;
	ci->do_block_smoothing = FALSE;
	jpeg_start_decompress(ci);
	int invert = cmyk && ci->saw_Adobe_marker;
	unsigned w = ci->output_width, h = ci->output_height;
	size_t size = (size_t)w * h * 3;
	int code = 0;
	uint8_t *pix = alloc_pixels(size, arena, &code);
	if (!pix) {
		r = rwd_errorf(err, code, "image: no memory for %ux%u pixels", w, h);
		goto done;
	}
	if (!arena)
		c->owned = pix;
	if (cmyk) {
		c->row = malloc((size_t)w * 4);
		if (!c->row) {
			free(c->owned);
			r = rwd_errorf(err, RWD_E_NOMEM, "image: out of memory");
			goto done;
		}
	}
	while (ci->output_scanline < h) {
		uint8_t *o = pix + (size_t)ci->output_scanline * w * 3;
		JSAMPROW row = cmyk ? c->row : o;
		if (jpeg_read_scanlines(ci, &row, 1) != 1) {
			snprintf(c->msg, sizeof(c->msg), "truncated at scanline %u", ci->output_scanline);
			c->code = RWD_E_FORMAT;
			longjmp(c->jmp, 1);
		}
		if (cmyk) {
			for (unsigned x = 0; x < w; x++) {
				const uint8_t *s = c->row + 4 * x;
				unsigned cc = s[0], mm = s[1], yy = s[2], kk = s[3];
				if (invert) {
					cc = 255 - cc;
					mm = 255 - mm;
					yy = 255 - yy;
					kk = 255 - kk;
				}
				unsigned nk = 255 - kk;
				o[3 * x + 0] = clip8((int)nk - (int)muldiv255(cc, nk));
				o[3 * x + 1] = clip8((int)nk - (int)muldiv255(mm, nk));
				o[3 * x + 2] = clip8((int)nk - (int)muldiv255(yy, nk));
			}
		}
	}
	/* Not jpeg_finish_decompress: data after the last scan is not needed (Pillow agrees). */
	out->w = (int)w;
	out->h = (int)h;
	out->stride = (size_t)w * 3;
	out->pixels = pix;
	c->owned = NULL;
	r = apply_orientation(out, orientation, arena, err);
	if (r && !arena)
		free(out->pixels);
done:
	jpeg_destroy_decompress(&c->cinfo);
	free(c->row);
	free(c);
	return r;
}

int rwd_image_probe(const uint8_t *data, size_t n, rwd_image_format *fmt, int *w, int *h,
	rwd_error *err)
{
	rwd_image_format f = rwd_image_sniff(data, n);
	*fmt = f;
	*w = *h = 0;
	if (f == RWD_IMAGE_FORMAT_PNG) {
		if (n < 24 || memcmp(data + 12, "IHDR", 4) != 0) {
			rwd_error_at(err, 0, 0, n < 24 ? (int64_t)n : 12);
			return rwd_errorf(err, RWD_E_FORMAT, "png: %s",
				n < 24 ? "truncated before the IHDR chunk ends" : "the first chunk is not IHDR");
		}
		uint32_t pw = be32(data + 16), ph = be32(data + 20);
		if (pw == 0 || ph == 0 || pw > 0x7fffffff || ph > 0x7fffffff) {
			rwd_error_at(err, 0, 0, 16);
			return rwd_errorf(err, RWD_E_FORMAT, "png: invalid size %ux%u", pw, ph);
		}
		rwd_image_decode_params p = rwd_image_decode_default_params();
		p.max_pixels = 0;
		int r = check_dims(pw, ph, &p, err);
		if (r)
			return r;
		*w = (int)pw;
		*h = (int)ph;
		return 0;
	}
	if (f == RWD_IMAGE_FORMAT_JPEG) {
		jpeg_ctx *c = calloc(1, sizeof(*c));
		if (!c)
			return rwd_errorf(err, RWD_E_NOMEM, "image: out of memory");
		c->data = data;
		c->n = n;
		int r = 0;
		if (setjmp(c->jmp)) {
			r = jpeg_fail(c, err);
		} else {
			jpeg_begin(c, 0);
			*w = (int)c->cinfo.image_width;
			*h = (int)c->cinfo.image_height;
		}
		jpeg_destroy_decompress(&c->cinfo);
		free(c);
		return r;
	}
	return unsupported(data, n, err);
}

int rwd_image_decode(const uint8_t *data, size_t n, const rwd_image_decode_params *params,
	rwd_arena *arena, rwd_image *out, rwd_error *err)
{
	rwd_image_decode_params p = params ? *params : rwd_image_decode_default_params();
	memset(out, 0, sizeof(*out));
	switch (rwd_image_sniff(data, n)) {
	case RWD_IMAGE_FORMAT_PNG:
		return decode_png(data, n, &p, arena, out, err);
	case RWD_IMAGE_FORMAT_JPEG:
		return decode_jpeg(data, n, &p, arena, out, err);
	default:
		return unsupported(data, n, err);
	}
}

int rwd_image_decode_base64(const char *str, size_t n, size_t max_bytes,
	const rwd_image_decode_params *params, rwd_arena *arena, rwd_image *out, rwd_error *err)
{
	const char *payload;
	size_t pn;
	memset(out, 0, sizeof(*out));
	int r = rwd_base64_strip_data_url(str, n, 1, &payload, &pn, NULL, 0, err);
	if (r)
		return r;
	rwd_base64_params bp = rwd_base64_default_params();
	bp.max_out = max_bytes;
	uint8_t *bytes = NULL;
	size_t nb = 0;
	r = rwd_base64_decode(payload, pn, &bp, NULL, &bytes, &nb, err);
	if (r) {
		if (err && err->offset >= 0) /* relative to the whole string */
			err->offset += payload - str;
		return r;
	}
	r = rwd_image_decode(bytes, nb, params, arena, out, err);
	free(bytes);
	return r;
}

void rwd_image_free(rwd_image *img)
{
	if (!img)
		return;
	free(img->pixels);
	img->pixels = NULL;
}
