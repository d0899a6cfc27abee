/*
 * image/decode.h — PNG and JPEG bytes → 8-bit RGB pixels (libpng,
 * libjpeg-turbo), the one decode path of every image model.
 *
 * The format is told by the magic bytes, never by a file name or media type:
 * PNG (89 50 4E 47 0D 0A 1A 0A) and JPEG (FF D8 FF). Anything else is
 * RWD_E_UNSUPPORTED (HTTP 415), with the format named when it is a known one
 * (GIF, WebP, BMP, TIFF, ...).
 *
 * Defaults reproduce Pillow 9.4's `Image.open(f).convert("RGB")` (the Debian
 * 12 python3-pil the reference models' preprocessing and our parity tests
 * use), pixel for pixel:
 *   - alpha (RGBA, gray+alpha, palette tRNS, colour-key tRNS) is dropped, not
 *     composited: a transparent pixel keeps its stored colour;
 *   - EXIF orientation is not applied;
 *   - 16-bit PNG samples keep their high byte (Pillow's "RGB;16B" /
 *     "RGBA;16B" / "LA;16B" unpackers truncate), except 16-bit grayscale,
 *     which Pillow opens as mode "I" and converts by clipping to 0..255
 *     (so every sample >= 255 becomes 255); `gray16_high_byte` switches that
 *     one case to the high byte;
 *   - 1/2/4-bit grayscale is scaled to 0..255 (0..3 → 0, 85, 170, 255);
 *     an index past the PLTE entries reads as grey (i, i, i), Pillow's
 *     initial palette;
 *   - gAMA, cHRM, sRGB and iCCP are ignored (no colour management);
 *   - JPEG: libjpeg-turbo with its defaults, as Pillow decodes (JDCT_ISLOW,
 *     fancy upsampling, no block smoothing); grayscale is replicated to RGB;
 *     CMYK and YCCK (decoded to CMYK by libjpeg) are inverted when an Adobe
 *     APP14 marker is present (Pillow's "CMYK;I") and converted as Pillow's
 *     cmyk2rgb does: nk = 255 - K, R = nk - (C * nk) / 255 (rounded
 *     fixed-point division), likewise G from M and B from Y.
 * Options (rwd_image_decode_params):
 *   - composite_alpha: blend over `background` instead of dropping alpha:
 *     out = (a * c + (255 - a) * bg + 127) / 255 per channel (integer,
 *     correctly rounded), with a from the alpha channel, the palette's tRNS
 *     entries or the colour-key tRNS;
 *   - apply_exif_orientation: apply EXIF Orientation (tag 0x0112, values
 *     2..8) as PIL.ImageOps.exif_transpose does; read from a JPEG APP1 "Exif"
 *     segment or a PNG eXIf chunk before the image data.
 * Truncated or corrupt data is RWD_E_FORMAT with libpng's / libjpeg's
 * reason (their error handlers longjmp back here; nothing is printed and
 * nothing exits). Warnings (e.g. a bad ancillary-chunk CRC, extraneous bytes
 * before a JPEG marker) are ignored, as Pillow does. A JPEG whose data ends
 * before the last scan or a PNG whose data ends before the last row is
 * truncated (RWD_E_FORMAT), also as Pillow (no LOAD_TRUNCATED_IMAGES).
 *
 * Limits: width × height is read from the header (PNG IHDR, JPEG SOF) and
 * checked against max_pixels BEFORE any pixel buffer is allocated
 * (RWD_E_LIMIT, HTTP 413); each side is at most RWD_IMAGE_DECODE_MAX_SIDE;
 * PNG ancillary chunks are capped at 8 MiB decompressed; a JPEG may have at
 * most max_jpeg_scans scans and its decoder's memory is capped relative to
 * max_pixels.
 *
 * Thread safety: no shared state; decode concurrently from any number of
 * threads.
 */
#ifndef RWD_IMAGE_DECODE_H
#define RWD_IMAGE_DECODE_H

#include "core/arena.h"
#include "core/error.h"

#include <stddef.h>
#include <stdint.h>

#define RWD_IMAGE_DECODE_MAX_SIDE (1 << 20)

/* An 8-bit RGB image: pixel (x, y) channel c is pixels[y * stride + 3 * x + c]. */
typedef struct rwd_image {
	int w, h;
	size_t stride; /* bytes per row; 3 * w from the decoder */
	uint8_t *pixels;
} rwd_image;

typedef enum rwd_image_format {
	RWD_IMAGE_FORMAT_UNKNOWN = 0,
	RWD_IMAGE_FORMAT_PNG,
	RWD_IMAGE_FORMAT_JPEG,
} rwd_image_format;

typedef struct rwd_image_decode_params {
	uint64_t max_pixels;        /* width * height; 0 = no limit (default 4096 * 4096) */
	int composite_alpha;        /* 0 (default): drop alpha; 1: blend over background */
	uint8_t background[3];      /* RGB for composite_alpha (default white) */
	int apply_exif_orientation; /* default 0 */
	int gray16_high_byte;       /* 16-bit gray PNG: 0 (default) clip as Pillow, 1 high byte */
	unsigned max_jpeg_scans;    /* default 1000; 0 = no limit */
} rwd_image_decode_params;

rwd_image_decode_params rwd_image_decode_default_params(void);

/* The format told by the first bytes (UNKNOWN if neither PNG nor JPEG). */
rwd_image_format rwd_image_sniff(const uint8_t *data, size_t n);

/* "png", "jpeg" or "unknown". */
const char *rwd_image_format_name(rwd_image_format f);

/*
 * Read the format and dimensions from the header only (no pixel memory;
 * a JPEG's header is parsed by libjpeg). Same errors as rwd_image_decode,
 * except that max_pixels is not checked.
 */
int rwd_image_probe(const uint8_t *data, size_t n, rwd_image_format *fmt, int *w, int *h,
	rwd_error *err);

/*
 * Decode `data[0..n)` to RGB. The pixels come from `arena` when non-NULL
 * (then nothing needs freeing), else from malloc (free with
 * rwd_image_free). Decoder-internal memory is malloc'ed and released before
 * returning. On error *out is zeroed and err says why:
 *   RWD_E_UNSUPPORTED  not PNG or JPEG, or a JPEG colour space we do not read
 *   RWD_E_LIMIT        width * height over params->max_pixels, a side over
 *                      RWD_IMAGE_DECODE_MAX_SIDE, too many JPEG scans, or
 *                      the arena's limit
 *   RWD_E_FORMAT       truncated or corrupt (libpng / libjpeg's message)
 *   RWD_E_NOMEM        allocation failed
 * params may be NULL for the defaults.
 */
int rwd_image_decode(const uint8_t *data, size_t n, const rwd_image_decode_params *params,
	rwd_arena *arena, rwd_image *out, rwd_error *err);

/*
 * The path every image model uses for a JSON image field: `str[0..n)` is
 * base64 or a `data:image/...;base64,` URL (core/base64.h's strict rules,
 * whitespace allowed); its bytes (at most max_bytes, checked before
 * allocating: RWD_E_LIMIT) are decoded as rwd_image_decode does. The
 * encoded bytes live in a temporary malloc buffer; the pixels come from
 * `arena` (or malloc when NULL). Base64 errors carry err->offset relative
 * to the start of `str`. A data URL whose media type is not image/... is
 * RWD_E_UNSUPPORTED.
 */
int rwd_image_decode_base64(const char *str, size_t n, size_t max_bytes,
	const rwd_image_decode_params *params, rwd_arena *arena, rwd_image *out, rwd_error *err);

/* Free the pixels of an image decoded with arena == NULL. Accepts NULL. */
void rwd_image_free(rwd_image *img);

#endif
