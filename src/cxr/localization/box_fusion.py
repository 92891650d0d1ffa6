"""Weighted boxes fusion (the ensemble-boxes package, as VinBigData's and SIIM-COVID's winners
fused their folds and models): each fold model's (or model's) boxes of one image clustered by
IoU and averaged, weighted by their scores and the models' weights, a box found by fewer of the
lists scored lower. So the test side's boxes come from each fold model's map, as each OOF image's
boxes come from its one fold model's map, instead of from the fold models' averaged map (smoother,
with lower peaks than any one model's: the OOF-chosen thresholds read it differently)."""
import numpy as np

FUSION_IOU = 0.55  # ensemble-boxes' default; the winners used 0.4-0.6


def fuse_boxes(lists, weights, width, height, iou=FUSION_IOU, min_share=0.0):
    """One image's fused boxes, best first: `lists` one list per model of boxes [(score, (x1, y1,
    x2, y2))] or classed boxes [(class, score, box)] in original pixels (a width x height image),
    `weights` one per list (a list of weight 0 is left out: its boxes would fuse to score 0).
    A fused box is kept when lists holding more than `min_share` of the weight found it (a box of
    theirs of its class overlaps it at `iou`): RSNA counts every box a false positive whatever its
    score, so there a box is kept when most fold models found it (0.5: a weighted majority, two of
    two, two of three, three of five), while mAP only ranks boxes (0: all kept). A single list is returned as it is."""
    kept = [(found, float(w)) for found, w in zip(lists, weights) if float(w) != 0]
    if len(kept) == 1:
        return sorted(kept[0][0], key=lambda b: -b[-2])
    if not any(found for found, _ in kept):
        return []
    from ensemble_boxes import weighted_boxes_fusion

    from cxr.metrics.detection import box_iou

    classed = any(len(b) == 3 for found, _ in kept for b in found)
    scale = np.array([width, height, width, height], dtype=float)
    boxes = [np.clip(np.array([b[-1] for b in found], dtype=float).reshape(-1, 4) / scale, 0, 1) for found, _ in kept]
    scores = [np.array([b[-2] for b in found], dtype=float) for found, _ in kept]
    labels = [np.array([b[0] if classed else 0 for b in found], dtype=float) for found, _ in kept]
    weights = np.array([abs(w) for _, w in kept])
    fused, fused_scores, fused_labels = weighted_boxes_fusion(boxes, scores, labels, weights=list(weights),
                                                              iou_thr=iou, skip_box_thr=0.0)
    out = []
    for box, score, label in zip(fused, fused_scores, fused_labels):
        found_by = np.array([bool(len(b[l == label])) and bool((box_iou(box, b[l == label])[0] >= iou).any())
                             for b, l in zip(boxes, labels)])
        if not min_share or weights[found_by].sum() > min_share * weights.sum():
            out.append(((int(label),) if classed else ()) + (float(score), tuple(float(v) for v in box * scale)))
    return sorted(out, key=lambda b: -b[-2])
