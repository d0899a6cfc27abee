"""PaddleOCR's inference pipeline re-written from its code (tools/infer/predict_det.py,
predict_rec.py, predict_system.py, ppocr/postprocess/db_postprocess.py, rec_postprocess.py
CTCLabelDecode) with OpenCV, pyclipper and Levenshtein, the networks run by ONNX Runtime
(node tests/parity/ort_run.js), and flow_grpo's ocr_score (flow_grpo/ocr.py): the oracle of
tests/parity/test_ocr_pipeline.py and tests/integration/test_ocr.py. Call init() first.
"""
import math
import os
import subprocess

import cv2
import numpy as np
import pyclipper
from Levenshtein import distance
from PIL import Image, ImageDraw, ImageFont

DET = REC = TMP = KEYS = node = ort_js = None


def init(src, node_exe, ort_script, tmp):
    global DET, REC, TMP, KEYS, node, ort_js
    DET = os.path.join(src, "ch_PP-OCRv4_det_infer.onnx")
    REC = os.path.join(src, "ch_PP-OCRv4_rec_infer.onnx")
    TMP, node, ort_js = tmp, node_exe, ort_script
    with open(os.path.join(src, "ppocr_keys_v1.txt"), "rb") as f:
        KEYS = ["blank"] + [l.decode("utf-8").strip("\n").strip("\r\n") for l in f.readlines()] + [" "]

def ort(model, x):
    fin, fout = os.path.join(TMP, "ort.in"), os.path.join(TMP, "ort.out")
    np.ascontiguousarray(x, dtype=np.float32).tofile(fin)
    p = subprocess.run([node, ort_js, model, fin, fout] + [str(d) for d in x.shape], capture_output=True, text=True,
                       check=True)
    dims = [int(v) for v in p.stdout.splitlines()[0].split()[1:]]
    return np.fromfile(fout, np.float32).reshape(dims)


# ---- PaddleOCR's detector (DetResizeForTest, NormalizeImage, DBPostProcess, filter_tag_det_res) ----

def det_resize(img, limit=960):
    h, w = img.shape[:2]
    ratio = float(limit) / max(h, w) if max(h, w) > limit else 1.0
    rh, rw = int(h * ratio), int(w * ratio)
    rh = max(int(round(rh / 32) * 32), 32)
    rw = max(int(round(rw / 32) * 32), 32)
    return cv2.resize(img, (int(rw), int(rh)))


def get_mini_boxes(contour):
    bb = cv2.minAreaRect(contour)
    points = sorted(list(cv2.boxPoints(bb)), key=lambda x: x[0])
    if points[1][1] > points[0][1]:
        i1, i4 = 0, 1
    else:
        i1, i4 = 1, 0
    if points[3][1] > points[2][1]:
        i2, i3 = 2, 3
    else:
        i2, i3 = 3, 2
    return [points[i1], points[i2], points[i3], points[i4]], min(bb[1])


def box_score_fast(bitmap, _box):
    h, w = bitmap.shape[:2]
    box = _box.copy()
    xmin = np.clip(np.floor(box[:, 0].min()).astype("int32"), 0, w - 1)
    xmax = np.clip(np.ceil(box[:, 0].max()).astype("int32"), 0, w - 1)
    ymin = np.clip(np.floor(box[:, 1].min()).astype("int32"), 0, h - 1)
    ymax = np.clip(np.ceil(box[:, 1].max()).astype("int32"), 0, h - 1)
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
    box[:, 0] = box[:, 0] - xmin
    box[:, 1] = box[:, 1] - ymin
    cv2.fillPoly(mask, box.reshape(1, -1, 2).astype("int32"), 1)
    return cv2.mean(bitmap[ymin:ymax + 1, xmin:xmax + 1], mask)[0]


def unclip(box, ratio=1.5):
    # shapely's Polygon(box).area / .length, by the shoelace formula and the perimeter
    b = np.asarray(box, dtype=np.float64)
    area = abs(np.dot(b[:, 0], np.roll(b[:, 1], -1)) - np.dot(b[:, 1], np.roll(b[:, 0], -1))) / 2
    length = np.sum(np.hypot(*(np.roll(b, -1, axis=0) - b).T))
    d = area * ratio / length
    off = pyclipper.PyclipperOffset()
    off.AddPath(box, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    return np.array(off.Execute(d))


def db_postprocess(pred, dest_w, dest_h, thresh=0.3, box_thresh=0.6, max_candidates=1000, min_size=3):
    bitmap = pred > thresh
    height, width = bitmap.shape
    outs = cv2.findContours((bitmap * 255).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    contours = outs[1] if len(outs) == 3 else outs[0]
    boxes = []
    for contour in contours[:max_candidates]:
        points, sside = get_mini_boxes(contour)
        if sside < min_size:
            continue
        points = np.array(points)
        if box_thresh > box_score_fast(pred, points.reshape(-1, 2)):
            continue
        box = unclip(points).reshape(-1, 1, 2)
        box, sside = get_mini_boxes(box)
        if sside < min_size + 2:
            continue
        box = np.array(box)
        box[:, 0] = np.clip(np.round(box[:, 0] / width * dest_w), 0, dest_w)
        box[:, 1] = np.clip(np.round(box[:, 1] / height * dest_h), 0, dest_h)
        boxes.append(box.astype("int32"))
    return np.array(boxes, dtype="int32")


def order_points_clockwise(pts):
    rect = np.zeros((4, 2), dtype="float32")
    s = pts.sum(axis=1)
    rect[0] = pts[np.argmin(s)]
    rect[2] = pts[np.argmax(s)]
    tmp = np.delete(pts, (np.argmin(s), np.argmax(s)), axis=0)
    diff = np.diff(np.array(tmp), axis=1)
    rect[1] = tmp[np.argmin(diff)]
    rect[3] = tmp[np.argmax(diff)]
    return rect


def detect(img):
    h, w = img.shape[:2]
    x = det_resize(img).astype("float32") * np.float32(1.0 / 255.0)
    x = (x - np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 1, 3)) / \
        np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 1, 3)
    pred = ort(DET, x.transpose(2, 0, 1)[None])[:, 0]
    out = []
    for box in db_postprocess(pred[0], w, h):
        box = order_points_clockwise(box)
        for p in box:
            p[0] = int(min(max(p[0], 0), w - 1))
            p[1] = int(min(max(p[1], 0), h - 1))
        if int(np.linalg.norm(box[0] - box[1])) <= 3 or int(np.linalg.norm(box[0] - box[3])) <= 3:
            continue
        out.append(box)
    return out


def sorted_boxes(dt):
    b = sorted(dt, key=lambda x: (x[0][1], x[0][0]))
    for i in range(len(b) - 1):
        for j in range(i, -1, -1):
            if abs(b[j + 1][0][1] - b[j][0][1]) < 10 and b[j + 1][0][0] < b[j][0][0]:
                b[j], b[j + 1] = b[j + 1], b[j]
            else:
                break
    return b


def get_rotate_crop_image(img, points):
    cw = int(max(np.linalg.norm(points[0] - points[1]), np.linalg.norm(points[2] - points[3])))
    ch = int(max(np.linalg.norm(points[0] - points[3]), np.linalg.norm(points[1] - points[2])))
    std = np.float32([[0, 0], [cw, 0], [cw, ch], [0, ch]])
    M = cv2.getPerspectiveTransform(points, std)
    dst = cv2.warpPerspective(img, M, (cw, ch), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)
    if dst.shape[0] * 1.0 / dst.shape[1] >= 1.5:
        dst = np.rot90(dst)
    return dst


KEYS = None


def recognise(crops, batch=6, H=48, W=320):
    ratios = [c.shape[1] / float(c.shape[0]) for c in crops]
    idx = np.argsort(np.array(ratios))
    res = [["", 0.0]] * len(crops)
    for b0 in range(0, len(crops), batch):
        b1 = min(len(crops), b0 + batch)
        mr = W / H
        for i in range(b0, b1):
            h, w = crops[idx[i]].shape[:2]
            mr = max(mr, w * 1.0 / h)
        imgW = int(H * mr)
        xs = []
        for i in range(b0, b1):
            c = crops[idx[i]]
            h, w = c.shape[:2]
            r = w / float(h)
            rw = imgW if math.ceil(H * r) > imgW else int(math.ceil(H * r))
            im = cv2.resize(c, (rw, H)).astype("float32").transpose((2, 0, 1)) / 255
            im -= 0.5
            im /= 0.5
            pad = np.zeros((3, H, imgW), dtype=np.float32)
            pad[:, :, 0:rw] = im
            xs.append(pad[None])
        prob = ort(REC, np.concatenate(xs))
        ids, p = prob.argmax(axis=2), prob.max(axis=2)
        for k in range(len(xs)):
            sel = np.ones(len(ids[k]), dtype=bool)
            sel[1:] = ids[k][1:] != ids[k][:-1]
            sel &= ids[k] != 0
            conf = p[k][sel]
            if len(conf) == 0:
                conf = [0]
            res[idx[b0 + k]] = ["".join(KEYS[t] for t in ids[k][sel]), float(np.mean(conf))]
    return res


def paddle_ocr(img, drop_score=0.5):
    boxes = sorted_boxes(detect(img))
    if not boxes:
        return []
    rec = recognise([get_rotate_crop_image(img.copy(), b.copy()) for b in boxes])
    return [(b, r) for b, r in zip(boxes, rec) if r[1] >= drop_score]


def flow_grpo_reward(lines, prompt):
    prompt = prompt.split('"')[1]
    text = "".join(r[0] if r[1] > 0 else "" for _, r in lines)
    text = text.replace(" ", "").lower()
    prompt = prompt.replace(" ", "").lower()
    dist = 0 if prompt in text else distance(text, prompt)
    raw = dist
    if dist > len(prompt):
        dist = len(prompt)
    return 1 - dist / len(prompt), raw


FONTS = [f for f in ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                     "/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf",
                     "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
                     "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"] if os.path.isfile(f)]


def render(size, lines, font, px, fg, bg=(255, 255, 255), angle=0, photo=None, noise=0, seed=0):
    w, h = size
    if photo is not None:
        img = Image.fromarray(photo).resize((w, h))
    else:
        img = Image.new("RGB", (w, h), bg)
    if noise:
        rng = np.random.default_rng(seed)
        a = np.asarray(img).astype(np.int16) + rng.integers(-noise, noise + 1, (h, w, 3))
        img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    f = ImageFont.truetype(font, px)
    y = h // 5
    for t in lines:
        d.text((w // 12, y), t, font=f, fill=fg)
        y += int(px * 1.6)
    if angle:
        img = img.rotate(angle, expand=False, fillcolor=bg, resample=Image.BICUBIC)
    return img


