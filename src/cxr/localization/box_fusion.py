"""Weighted boxes fusion (the ensemble-boxes package, as VinBigData's and SIIM-COVID's winners
fused their folds and models): each fold model's (or model's) boxes of one image clustered by
IoU and averaged, weighted by their scores and the models' weights, a box found by fewer of the
lists scored lower. So the test side's boxes come from each fold model's map, as each OOF image's
boxes come from its one fold model's map, instead of from the fold models' averaged map (smoother,
with lower peaks than any one model's: the OOF-chosen thresholds read it differently)."""
import numpy as np

FUSION_IOU = 0.55  # ensemble-boxes' default; the winners used 0.4-0.6


def fuse_boxes(lists, weights, width, height, iou=FUSION_IOU):
    """One image's fused boxes, best first: `lists` one list per model of boxes [(score, (x1, y1,
    x2, y2))] or classed boxes [(class, score, box)] in original pixels (a width x height image),
    `weights` one per list. A single list is returned as it is (nothing to fuse)."""
    if len(lists) == 1:
        return sorted(lists[0], key=lambda b: -b[-2])
    classed = any(len(b) == 3 for found in lists for b in found)
    if not any(lists):
        return []
    from ensemble_boxes import weighted_boxes_fusion

    scale = np.array([width, height, width, height], dtype=float)
    boxes = [np.clip(np.array([b[-1] for b in found], dtype=float).reshape(-1, 4) / scale, 0, 1) for found in lists]
    scores = [np.array([b[-2] for b in found], dtype=float) for found in lists]
    labels = [np.array([b[0] if classed else 0 for b in found], dtype=float) for found in lists]
    fused, fused_scores, fused_labels = weighted_boxes_fusion(boxes, scores, labels, weights=list(map(float, weights)),
                                                              iou_thr=iou, skip_box_thr=0.0)
    out = [((int(c),) if classed else ()) + (float(s), tuple(float(v) for v in box * scale))
           for box, s, c in zip(fused, fused_scores, fused_labels)]
    return sorted(out, key=lambda b: -b[-2])
