"""The box and mask metrics of the chest X-ray competitions, as their pages define them.

Boxes are (x1, y1, x2, y2) in image pixels; a prediction is (score, box), or (class, score, box)
for classed boxes.

RSNA Pneumonia Detection: for each image and each IoU threshold t in 0.40, 0.45, ..., 0.75, the
predictions in descending score are matched to the ground truth boxes, each truth box at most
once, a match needing IoU above t; the image's precision at t is TP / (TP + FP + FN), its score
the mean over the thresholds, and the metric the mean over the images, where an image with no
truth and no prediction is left out (one with no truth and any prediction scores 0).

VinBigData (PASCAL VOC mAP at IoU 0.4): per class, every image's predictions of that class in
descending score, each a true positive when its best-overlapping truth box of that class (IoU
above 0.4) is not matched yet; the average precision is the area under the precision envelope
(the maximum precision at any recall at least as high: VOC 2010's all-point form); the metric is
the mean over the classes that have truth boxes.

SIIM-ACR Pneumothorax: the mean over images of the Dice coefficient 2|X and Y| / (|X| + |Y|),
where an image with an empty truth mask and an empty prediction scores 1."""
import numpy as np

RSNA_THRESHOLDS = tuple(np.round(np.arange(0.40, 0.751, 0.05), 2))


def box_iou(a, b):
    """(len(a), len(b)) IoU matrix of two arrays of (x1, y1, x2, y2) boxes."""
    a, b = np.asarray(a, dtype=float).reshape(-1, 4), np.asarray(b, dtype=float).reshape(-1, 4)
    low = np.maximum(a[:, None, :2], b[None, :, :2])
    high = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(high - low, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def by_score(predictions):
    """(scores, boxes) of [(score, box), ...], highest score first (a stable order for ties)."""
    if not len(predictions):
        return np.zeros(0), np.zeros((0, 4))
    scores = np.array([float(s) for s, _ in predictions])
    order = np.argsort(-scores, kind="stable")
    return scores[order], np.array([box for _, box in predictions], dtype=float).reshape(-1, 4)[order]


def rsna_image_score(truth, predictions, thresholds=RSNA_THRESHOLDS):
    """One image's RSNA score: the mean over `thresholds` of TP / (TP + FP + FN); None when the
    image has neither truth boxes nor predictions (it is left out of the mean)."""
    truth = np.asarray(truth, dtype=float).reshape(-1, 4)
    _, boxes = by_score(predictions)
    if not len(truth) and not len(boxes):
        return None
    iou = box_iou(boxes, truth)
    values = []
    for t in thresholds:
        matched, tp = np.zeros(len(truth), bool), 0
        for row in iou:  # predictions in descending score: each takes its best free truth box above t
            free = np.where(matched, -1.0, row)
            if len(free) and free.max() > t:
                matched[int(free.argmax())] = True
                tp += 1
        fp, fn = len(boxes) - tp, len(truth) - tp
        values.append(tp / (tp + fp + fn))
    return float(np.mean(values))


def rsna_map(truth, predictions, thresholds=RSNA_THRESHOLDS):
    """RSNA's metric over images: truth {image: [box]}, predictions {image: [(score, box)]} (an
    image missing from predictions predicted nothing); NaN when every image is left out."""
    scores = [rsna_image_score(boxes, predictions.get(image, []), thresholds) for image, boxes in truth.items()]
    scores = [s for s in scores if s is not None]
    return float(np.mean(scores)) if scores else float("nan")


def average_precision(truth, predictions, iou_threshold=0.4, points=None):
    """VOC all-point average precision of one class: truth {image: [box]}, predictions
    {image: [(score, box)]}; NaN without truth boxes. `points` (101: COCO's form) averages the
    envelope sampled at that many evenly spaced recalls instead (how tests/test_detection.py
    checks the matching against pycocotools)."""
    n_truth = sum(len(boxes) for boxes in truth.values())
    if n_truth == 0:
        return float("nan")
    flat = [(float(s), image, np.asarray(box, dtype=float)) for image, found in predictions.items() for s, box in found]
    flat.sort(key=lambda p: -p[0])
    matched = {image: np.zeros(len(boxes), bool) for image, boxes in truth.items()}
    hits = np.zeros(len(flat))
    for k, (_, image, box) in enumerate(flat):
        boxes = np.asarray(truth.get(image, []), dtype=float).reshape(-1, 4)
        if not len(boxes):
            continue
        iou = box_iou(box, boxes)[0]
        best = int(iou.argmax())
        if iou[best] > iou_threshold and not matched[image][best]:
            matched[image][best] = True
            hits[k] = 1
    tp = np.cumsum(hits)
    recall = tp / n_truth
    precision = tp / np.arange(1, len(flat) + 1)
    if points:  # the highest precision at a recall at least r, for each sampled r (0 beyond the last recall)
        envelope = np.maximum.accumulate(np.concatenate([precision, [0.0]])[::-1])[::-1]
        at = np.searchsorted(recall, np.linspace(0, 1, points), side="left")
        return float(envelope[at].mean())
    # all-point: precision made non-increasing from the right, summed over the recall steps
    recall = np.concatenate([[0.0], recall, [1.0]])
    precision = np.concatenate([[0.0], precision, [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def voc_map(truth, predictions, iou_threshold=0.4):
    """(mean AP over the classes with truth boxes, {class: AP}) of classed boxes: truth
    {image: [(class, box)]}, predictions {image: [(class, score, box)]}."""
    classes = sorted({c for found in truth.values() for c, _ in found}, key=str)
    per_class = {}
    for cls in classes:
        class_truth = {image: [box for c, box in found if c == cls] for image, found in truth.items()}
        class_predictions = {image: [(s, box) for c, s, box in found if c == cls] for image, found in predictions.items()}
        per_class[cls] = average_precision(class_truth, class_predictions, iou_threshold)
    values = [v for v in per_class.values() if np.isfinite(v)]
    return (float(np.mean(values)) if values else float("nan")), per_class


def dice(truth, prediction):
    """The Dice coefficient of two boolean masks; 1 when both are empty."""
    truth, prediction = np.asarray(truth, bool), np.asarray(prediction, bool)
    total = truth.sum() + prediction.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(truth, prediction).sum() / total)


def mean_dice(truth, predictions):
    """SIIM-ACR's metric: the mean Dice over images, truth and predictions {image: mask} (an image
    missing from predictions predicted an empty mask)."""
    values = [dice(mask, predictions[image] if image in predictions else np.zeros_like(mask, bool))
              for image, mask in truth.items()]
    return float(np.mean(values)) if values else float("nan")
