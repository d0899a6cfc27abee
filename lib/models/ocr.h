/*
 * models/ocr.h — the `ocr` kind: PaddleOCR's inference pipeline (PP-OCR DB
 * detector + CTC recogniser, converted by tools/convert_checkpoint.py ocr)
 * and flow_grpo's OCR reward.
 *
 * The reward, as flow_grpo/ocr.py (OcrScorer.__call__) computes it:
 *   target = prompt.split('"')[1]            (no '"' → per-item error "prompt")
 *   result = PaddleOCR(use_angle_cls=False, lang="en").ocr(img, cls=False)
 *            with img = np.array(PIL image): RGB bytes where PaddleOCR
 *            expects BGR. We replicate that: the decoded RGB bytes go through
 *            the pipeline unswapped (det mean/std and rec normalisation apply
 *            to channel 0 = R as PaddleOCR applies them to its channel 0 = B).
 *   text   = "".join(line text for lines with confidence > 0), in PaddleOCR's
 *            box order; spaces (U+0020) removed and lower-cased (utf8proc's
 *            simple case mapping; Python's str.lower differs only for the few
 *            code points with multi-character lower cases, e.g. U+0130)
 *   dist   = 0 if target (cleaned the same way) is a substring of text, else
 *            Levenshtein(text, target) over code points; capped at len(target)
 *   reward = 1 - dist / len(target)           (an empty cleaned target is a
 *            per-item error: flow_grpo divides by zero there)
 * An image with no text gives text "", dist = len(target), reward 0.
 * Dimensions: "ocr" (the reward), "edit_distance" (dist before the cap),
 * "detections" (lines kept after drop_score).
 *
 * The pipeline (PaddleOCR 2.x tools/infer/predict_system.py TextSystem with
 * tools/infer/utility.py defaults; every value can be overridden in the
 * folder's config.json, which the converter writes):
 *  1. DetResizeForTest, limit_type "max", limit_side_len 960: ratio =
 *     960 / max(h, w) when the long side exceeds 960 (else 1), sides
 *     int(side * ratio) rounded to a multiple of 32 with Python's round
 *     (half to even), at least 32; cv2.resize INTER_LINEAR on uint8
 *     (OpenCV's fixed-point bilinear, with its SIMD vertical rounding, and
 *     its exact-2x INTER_AREA shortcut), then (x / 255 - mean) / std with
 *     ImageNet mean/std on the channels as given.
 *  2. The det graph → probability map P. DBPostProcess (thresh 0.3,
 *     box_thresh 0.6, unclip_ratio 1.5, score_mode "fast", max_candidates
 *     1000, min_size 3, no dilation): bitmap P > thresh; each 8-connected
 *     region stands for cv2.findContours' outer contour (RETR_LIST hole
 *     contours are not scored: DB maps rarely have holes, and a hole's box
 *     scores below box_thresh); the region's minimum-area rectangle (rotating
 *     calipers over the convex hull of its pixel centres, which is the
 *     minAreaRect of its contour), ordered as get_mini_boxes orders it;
 *     skipped if its short side < 3; box score = mean of P inside the
 *     rectangle filled as cv2.fillPoly fills it (scan-line, edges included);
 *     skipped below box_thresh; unclip: d = area * 1.5 / perimeter (of the
 *     float box, as shapely measures it), then Clipper 6.4's round-joined
 *     offset by d of the corners truncated to integers as pyclipper takes
 *     them, re-done here for a 4-point closed path (its unit normals, the
 *     arc stepped by arc tolerance 0.25 as DoRound steps it, each vertex
 *     rounded half away from zero; the clean-up union only drops vertices,
 *     so the convex hull is unchanged), and the minimum-area rectangle of
 *     those vertices. Not linked to libpolyclipping: it is C++, and the
 *     4-point case is ~60 lines. Known gap: OpenCV's minAreaRect computes
 *     in float32, so a corner can come out as 355.99994 where ours is 356
 *     and truncate to 355 before the offset: boxes may differ by 1 px.
 *     Skipped if its short side < 5; scaled back to the image
 *     with round-half-even and clipped; then order_points_clockwise,
 *     clip to [0, w-1] x [0, h-1], dropped when a side is <= 3 pixels, and
 *     sorted_boxes (by top-left y then x, then the swap pass for boxes whose
 *     y differs by < 10).
 *  3. get_rotate_crop_image: the quad warped to int(max side lengths) by a
 *     perspective transform with OpenCV's INTER_CUBIC (A = -0.75, 1/32
 *     sub-pixel table, 15-bit integer weights) and BORDER_REPLICATE;
 *     rotated 90 degrees counter-clockwise (np.rot90) when h / w >= 1.5.
 *  4. Recognition (rec_image_shape 3,48,320, rec_batch_num 6): crops sorted
 *     by w / h (stable), batches of 6; a batch's width is int(48 *
 *     max(320 / 48, max w / h of the batch)); each crop resized with
 *     cv2.resize INTER_LINEAR to (min(width, ceil(48 * w / h)), 48),
 *     normalised (x / 255 - 0.5) / 0.5 and zero-padded to the batch width.
 *  5. CTC greedy decoding over ["blank"] + dict.txt lines + [" "]
 *     (use_space_char): argmax per step, repeats merged, blanks dropped;
 *     confidence = mean of the kept steps' max probability (0 if none).
 *     Lines with confidence < drop_score (0.5) are dropped, as TextSystem
 *     drops them.
 *
 * Batching (rwd_ocr_read_batch, what a worker's forward pass calls): the
 * results are those of PaddleOCR run on each image alone. Images whose
 * DetResizeForTest sizes are equal run through the detector stacked, up to
 * det_batch_pixels (config.json; default 2 x 960 x 960) pixels per run. Each
 * image's crops are sorted and cut into batches of rec_batch_num exactly as
 * PaddleOCR cuts them (the padded width is that batch's, which changes the
 * outputs, so it is never widened by other images' crops); crops of all
 * images whose padded widths are equal then share recogniser runs of up to
 * 4 x rec_batch_num crops. Both networks compute every sample on its own
 * (the interpreter's Conv and MatMul loop over the batch), so stacking
 * changes no value; ocr-pipeline checks it bit for bit on the real weights,
 * tests/unit/test_ocr.c on a toy pair through the model interface.
 *
 * Threads: the loaded state is immutable. Each thread passes its own
 * rwd_ocr_ws (the kind's per-worker scratch): the pre- and post-processing
 * buffers (detector input for det_batch_pixels, resize buffers, the DB
 * bitmap and contour buffers for the largest "max"-limited map, the
 * recogniser input for one run of 320-wide crops), reserved when it is made
 * and grown only for wider crops or "min"-limited images. The graphs'
 * intermediates are still allocated per run (their sizes follow the image).
 */
#ifndef RWD_MODELS_OCR_H
#define RWD_MODELS_OCR_H

#include "core/error.h"
#include "image/decode.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rwd_ocr rwd_ocr;

typedef struct rwd_ocr_line {
	char *text;        /* UTF-8, malloc'd */
	float confidence;
	int box[4][2];     /* x, y: top-left, top-right, bottom-right, bottom-left */
} rwd_ocr_line;

/* Load a converted folder (config.json, det/rec graphs, dict.txt). */
int rwd_ocr_load(const char *dir, rwd_ocr **out, rwd_error *err);
void rwd_ocr_free(rwd_ocr *o); /* accepts NULL */
uint64_t rwd_ocr_weight_bytes(const rwd_ocr *o);

/*
 * Run the whole pipeline on one RGB image (bytes passed through as given,
 * see above). On success *lines (malloc'd array, free with
 * rwd_ocr_lines_free) holds *n lines in PaddleOCR's order, after drop_score.
 */
int rwd_ocr_read(const rwd_ocr *o, const rwd_image *img, rwd_ocr_line **lines, size_t *n,
	rwd_error *err);
void rwd_ocr_lines_free(rwd_ocr_line *lines, size_t n);

/* Per-thread working memory, reserved for o's limits (see Threads above). */
typedef struct rwd_ocr_ws rwd_ocr_ws;
int rwd_ocr_ws_new(const rwd_ocr *o, rwd_ocr_ws **out, rwd_error *err);
void rwd_ocr_ws_free(rwd_ocr_ws *ws); /* accepts NULL */
size_t rwd_ocr_ws_bytes(const rwd_ocr_ws *ws); /* bytes reserved now */

/* One image's outcome: status 0 and lines[n] (free with rwd_ocr_lines_free), or status/err. */
typedef struct rwd_ocr_result {
	rwd_ocr_line *lines;
	size_t n;
	int status;
	rwd_error err;
} rwd_ocr_result;

/*
 * Run the pipeline on n images at once (batched as described above; the
 * lines of each image are those rwd_ocr_read gives for it alone). ws may
 * be NULL (a temporary one is made). Failures are per image, in res[i];
 * returns 0, or RWD_E_NOMEM when nothing could run (every res[i] says so).
 */
int rwd_ocr_read_batch(const rwd_ocr *o, rwd_ocr_ws *ws, const rwd_image *const *imgs, size_t n,
	rwd_ocr_result *res);

/*
 * flow_grpo's reward of recognised text `text` (the joined lines) against
 * `prompt`. Returns 0 and fills *reward and *dist (before the cap), or
 * RWD_E_INVALID (err->object "prompt") when the prompt has no '"' or its
 * cleaned target is empty.
 */
int rwd_ocr_reward(const char *text, const char *prompt, double *reward, int *dist, rwd_error *err);

#endif
