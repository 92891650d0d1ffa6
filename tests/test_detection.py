"""The box and mask metrics (cxr/metrics/detection.py) against hand-worked cases, and the AP
matching against pycocotools where COCO's and VOC's definitions coincide."""
import numpy as np
import pytest

from cxr.metrics.detection import (average_precision, box_iou, dice, mean_dice, rsna_image_score, rsna_map,
                                   voc_map)


def test_box_iou_by_hand():
    assert np.isclose(box_iou([[0, 0, 2, 2]], [[1, 1, 3, 3]])[0, 0], 1 / 7)
    assert box_iou([[0, 0, 1, 1]], [[2, 2, 3, 3]])[0, 0] == 0
    assert box_iou(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)


def test_rsna_image_score_by_hand():
    box = [0, 0, 10, 10]
    assert rsna_image_score([box], [(0.9, box)]) == 1.0
    # IoU exactly 0.5: a hit at 0.40 and 0.45 only (above the threshold), 2 of the 8 thresholds
    assert rsna_image_score([box], [(0.9, [0, 0, 10, 5])]) == pytest.approx(2 / 8)
    assert rsna_image_score([], [(0.1, box)]) == 0.0  # no truth, any prediction: 0
    assert rsna_image_score([], []) is None  # nothing either side: left out
    # two truth boxes, one found: TP 1, FN 1 at every threshold; a second prediction on the same box is an FP
    assert rsna_image_score([box, [50, 50, 60, 60]], [(0.9, box)]) == 0.5
    assert rsna_image_score([box], [(0.9, box), (0.8, box)]) == 0.5
    # the mean over images leaves out the empty-empty one
    truth = {"a": [box], "b": [], "c": []}
    assert rsna_map(truth, {"a": [(0.9, box)], "c": [(0.3, box)]}) == pytest.approx((1.0 + 0.0) / 2)


def test_voc_average_precision_by_hand():
    truth = {"a": [[0, 0, 10, 10], [20, 20, 30, 30]], "b": []}
    predictions = {"a": [(0.9, [0, 0, 10, 10]), (0.7, [20, 20, 30, 30])], "b": [(0.8, [0, 0, 10, 10])]}
    # in score order: hit (P 1, R .5), miss (P .5), hit (P 2/3, R 1): envelope 1 to R .5, 2/3 to R 1
    assert average_precision(truth, predictions) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # a second box on a found object is a false positive, a box below IoU 0.4 too
    assert average_precision({"a": [[0, 0, 10, 10]]}, {"a": [(0.9, [0, 0, 10, 10]), (0.8, [0, 0, 10, 10])]}) == 1.0
    assert average_precision({"a": [[0, 0, 10, 10]]}, {"a": [(0.9, [0, 0, 10, 4])]}) == 0.0
    assert np.isnan(average_precision({"a": []}, {"a": [(0.9, [0, 0, 1, 1])]}))
    mean, per_class = voc_map({"a": [(0, [0, 0, 10, 10]), (14, [0, 0, 1, 1])]},
                              {"a": [(0, 0.9, [0, 0, 10, 10]), (3, 0.5, [5, 5, 6, 6])]})
    assert per_class == {0: 1.0, 14: 0.0} and mean == 0.5  # class 3 has no truth: not in the mean


def test_dice_with_the_empty_rule():
    empty, mask = np.zeros((4, 4), bool), np.zeros((4, 4), bool)
    mask[:2, :2] = True
    half = np.zeros((4, 4), bool)
    half[:2, :1] = True
    assert dice(empty, empty) == 1.0 and dice(empty, mask) == 0.0 and dice(mask, mask) == 1.0
    assert dice(mask, half) == pytest.approx(2 * 2 / (4 + 2))
    assert mean_dice({"a": empty, "b": mask}, {"b": half}) == pytest.approx((1.0 + 2 / 3) / 2)


def far_apart_case(seed):
    """Truth boxes on a coarse grid (no box near two truth boxes), predictions: jittered copies,
    repeats and misses, and boxes on empty grid cells, scores all distinct."""
    rng = np.random.default_rng(seed)
    truth, predictions, scores = {}, {}, iter(rng.permutation(1000) / 1000 + 0.0005)
    for image in range(6):
        cells = rng.permutation(16)[: rng.integers(0, 5)]
        boxes = [[100 * (c % 4) + 10, 100 * (c // 4) + 10, 100 * (c % 4) + 10 + rng.integers(20, 60),
                  100 * (c // 4) + 10 + rng.integers(20, 60)] for c in cells]
        truth[image] = boxes
        found = []
        for box in boxes:
            for _ in range(rng.integers(0, 3)):
                found.append((next(scores), list(np.add(box, rng.integers(-8, 9, 4)))))
        for c in rng.permutation(16)[:2]:
            if c not in cells:
                found.append((next(scores), [100 * (c % 4) + 20, 100 * (c // 4) + 20, 100 * (c % 4) + 50,
                                             100 * (c // 4) + 50]))
        predictions[image] = found
    return truth, predictions


@pytest.mark.parametrize("seed", range(6))
def test_the_ap_matching_agrees_with_pycocotools(seed):
    """COCO's AP at one IoU threshold, 101 recall points: where no box overlaps two truth boxes, COCO's
    matching (the best free truth box) and VOC's (the best truth box, a taken one a miss) coincide."""
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    truth, predictions = far_apart_case(seed)
    if not any(truth.values()):
        pytest.skip("no truth boxes drawn")
    coco = COCO()
    coco.dataset = {"images": [{"id": i} for i in truth], "categories": [{"id": 1}],
                    "annotations": [{"id": k + 1, "image_id": i, "category_id": 1, "iscrowd": 0,
                                     "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                                     "area": float((b[2] - b[0]) * (b[3] - b[1]))}
                                    for k, (i, b) in enumerate((i, b) for i, bs in truth.items() for b in bs)]}
    coco.createIndex()
    detections = coco.loadRes([{"image_id": i, "category_id": 1, "score": float(s),
                                "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]}
                               for i, found in predictions.items() for s, b in found])
    evaluation = COCOeval(coco, detections, "bbox")
    evaluation.params.iouThrs = np.array([0.4])
    evaluation.params.maxDets = [100]
    evaluation.params.areaRng, evaluation.params.areaRngLbl = [[0, 1e10]], ["all"]
    evaluation.evaluate()
    evaluation.accumulate()
    expected = float(evaluation.eval["precision"][0, :, 0, 0, 0].mean())
    assert average_precision(truth, predictions, 0.4, points=101) == pytest.approx(expected, abs=1e-9)
