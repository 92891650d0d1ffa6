"""Maps to boxes and gated masks (cxr/localization/regions.py), worked by hand."""
import numpy as np
import pytest

from cxr.localization.regions import gated_mask, map_boxes


def test_a_blob_becomes_its_box_in_original_pixels():
    heatmap = np.zeros((8, 8))
    heatmap[2:4, 1:5] = 0.9  # rows 2-3, columns 1-4
    heatmap[6, 6] = 0.6
    # squash: an 80 x 40 image on the 8 x 8 map: 10 px per column, 5 px per row
    boxes = map_boxes(heatmap, 0.5, 80, 40, 8, "squash", threshold=0.5)
    assert boxes[0] == (pytest.approx(0.45), (10.0, 10.0, 50.0, 20.0))
    assert boxes[1] == (pytest.approx(0.30), (60.0, 30.0, 70.0, 35.0))
    assert map_boxes(heatmap, 0.5, 80, 40, 8, "squash", threshold=0.95) == []
    assert len(map_boxes(heatmap, 0.5, 80, 40, 8, "squash", min_pixels=2)) == 1
    assert len(map_boxes(heatmap, 0.5, 80, 40, 8, "squash", max_boxes=1)) == 1


def test_letterboxed_boxes_leave_the_padding():
    heatmap = np.zeros((8, 8))
    heatmap[2:4, 0:8] = 1.0  # a 16 x 8 image letterboxed: rows 2-5 hold it
    boxes = map_boxes(heatmap, 1.0, 16, 8, 8, "letterbox")
    assert boxes == [(1.0, (0.0, 0.0, 16.0, 4.0))]


def test_the_mask_gate():
    heatmap = np.zeros((4, 4), np.float32)
    heatmap[1:3, 1:3] = 0.5
    heatmap[1, 1] = 0.9
    assert not gated_mask(heatmap, 4, 4, "squash", top=0.95).any()  # nowhere sure: empty
    assert not gated_mask(heatmap, 4, 4, "squash", top=0.8, min_area=2).any()  # sure on too little area
    mask = gated_mask(heatmap, 4, 4, "squash", top=0.8, min_area=1, bottom=0.4)
    assert mask.sum() == 4 and mask[1:3, 1:3].all()  # the gate opens: the lower threshold draws the outline


def test_the_post_processing_is_chosen_nested():
    from cxr.localization.objects import nested_choice

    # settings a, b over 4 images in 2 folds: b best overall (0.6 vs 0.55) but a best on fold 0's rows
    scores = np.array([[0.9, 0.2], [0.9, 0.2], [0.2, 1.0], [0.2, 1.0]])
    best, nested = nested_choice(scores, np.array([0, 0, 1, 1]))
    # fold 0 gets the setting best on fold 1 (b): 0.2; fold 1 the one best on fold 0 (a): 0.2
    assert best == 1 and nested.tolist() == [0.2, 0.2, 0.2, 0.2]
    with_nan = np.array([[np.nan, 0.5], [1.0, 0.6], [0.5, np.nan], [0.5, 1.0]])  # NaN: an image left out (a 2/3, b 0.7)
    assert nested_choice(with_nan, np.array([0, 0, 1, 1]))[0] == 1
    # a fold whose other folds score nothing under any setting takes the overall best
    empty_elsewhere = np.array([[0.2, 0.9], [np.nan, np.nan]])
    best, nested = nested_choice(empty_elsewhere, np.array([0, 1]))
    assert best == 1 and nested[0] == 0.9 and np.isnan(nested[1])


def test_blended_maps_keep_the_probabilities():
    from cxr.localization.objects import blended_maps

    a, b = np.full((1, 2, 2), 0.8, np.float32), np.full((1, 2, 2), 0.2, np.float32)
    mixed = blended_maps([[a, a], [b]], [3.0, -1.0], 4)  # |weights| 3 : 1, no per-image scaling
    assert mixed.shape == (1, 4, 4) and np.allclose(mixed, 0.75 * 0.8 + 0.25 * 0.2)


def test_each_setting_s_boxes_come_from_one_labelling():
    from types import SimpleNamespace

    from cxr.localization.objects import image_objects, settings_grid

    heatmap = np.zeros((8, 8))
    heatmap[2:4, 2:4] = 0.65
    grid = settings_grid("boxes")
    found = image_objects("boxes", heatmap, 0.6, 8, 8, SimpleNamespace(size=8, mode="squash"), grid)
    for setting, boxes in zip(grid, found):
        expected = setting["threshold"] <= 0.65 and setting["gate"] <= 0.6
        assert bool(boxes) == expected, setting


def test_classed_boxes_come_from_each_class_s_map():
    """A map per class (VinBigData): each map's blobs become boxes of its class id (the map's
    place in `classes`), and every image carries No finding at 1 - its probability."""
    from types import SimpleNamespace

    from cxr.localization.objects import image_objects

    maps = np.zeros((2, 8, 8))
    maps[0, 1:3, 1:3] = 0.9  # class '4' (the first map): top left
    maps[1, 5:7, 5:7] = 0.8  # class '11': bottom right
    (boxes, no_finding), = image_objects("classed boxes", maps, 0.75, 80, 80, SimpleNamespace(size=8, mode="squash"),
                                          [{"threshold": 0.5, "gate": 0.0}], classes=("4", "11"))
    assert sorted(boxes) == sorted([(4, pytest.approx(0.675), (10.0, 10.0, 30.0, 30.0)),
                                    (11, pytest.approx(0.6), (50.0, 50.0, 70.0, 70.0))])
    assert no_finding == pytest.approx(0.25)
    (gated, _), = image_objects("classed boxes", maps, 0.75, 80, 80, SimpleNamespace(size=8, mode="squash"),
                                [{"threshold": 0.5, "gate": 0.8}], classes=("4", "11"))
    assert gated == []  # below the gate: No finding only


def test_classed_box_settings_are_chosen_nested_by_map():
    """set_choice scores each setting by the mAP of a set of images: two images per fold, the
    threshold that finds the truth box chosen, the nested estimate the mAP of each fold's boxes
    under the setting chosen on the other fold, by hand: 1.0 for both classes (the box and No finding)."""
    from types import SimpleNamespace

    from cxr.localization.objects import image_objects, set_choice, truth_of

    import pandas as pd

    table = pd.DataFrame({"image_id": ["a", "b", "c", "d"], "annotation": ["0 0 0 3 3", "", "0 0 0 3 3", ""],
                          "classes": ["7 0 0 4 4", "", "7 0 0 4 4", ""]})
    truth = truth_of("classed boxes", table, None, None, no_finding_class=9)
    assert truth["a"] == [(7, (0.0, 0.0, 4.0, 4.0))] and truth["b"] == [(9, (0.0, 0.0, 1.0, 1.0))]
    heat = np.zeros((1, 8, 8))
    heat[0, 0:4, 0:4] = 0.45  # found at threshold 0.4, not at 0.5
    maps = {"a": heat, "b": np.zeros((1, 8, 8)), "c": heat, "d": np.zeros((1, 8, 8))}
    grid = [{"threshold": 0.5, "gate": 0.0}, {"threshold": 0.4, "gate": 0.0}]
    spec = SimpleNamespace(size=8, mode="squash")
    found = ((i, image_objects("classed boxes", maps[i], p, 8, 8, spec, grid, ("7",)))
             for i, p in zip(maps, [0.9, 0.1, 0.9, 0.1]))
    best, in_sample, nested, (low, high) = set_choice("classed boxes", found, truth, len(grid), np.array([0, 0, 1, 1]),
                                                      20, 0, no_finding_class=9)
    assert best == 1 and in_sample[1] == pytest.approx(1.0) and in_sample[0] == pytest.approx(0.5)
    assert nested == pytest.approx(1.0) and low <= nested <= high


def test_weighted_boxes_fusion_of_fold_models():
    """Two fold models' boxes of one object fuse into one box between them, scored lower when only
    one of them found it; classes never fuse across; one list passes through unchanged."""
    from cxr.localization.box_fusion import fuse_boxes

    a = [(0.8, (10.0, 10.0, 30.0, 30.0)), (0.6, (60.0, 60.0, 80.0, 80.0))]
    b = [(0.8, (12.0, 10.0, 32.0, 30.0))]
    fused = fuse_boxes([a, b], [1.0, 1.0], 100, 100)
    assert len(fused) == 2
    assert fused[0][0] == pytest.approx(0.8) and fused[0][1] == pytest.approx((11.0, 10.0, 31.0, 30.0), abs=0.01)
    assert fused[1][0] == pytest.approx(0.3) and fused[1][1] == pytest.approx((60.0, 60.0, 80.0, 80.0), abs=0.01)
    assert fuse_boxes([a], [1.0], 100, 100) == a
    classed = fuse_boxes([[(1, 0.8, (10.0, 10.0, 30.0, 30.0))], [(2, 0.8, (10.0, 10.0, 30.0, 30.0))]], [1.0, 1.0], 100, 100)
    assert sorted(c for c, _, _ in classed) == [1, 2]
    assert fuse_boxes([[], []], [1.0, 1.0], 100, 100) == []
    assert fuse_boxes([a, b, b], [1.0, 0.0, 0.0], 100, 100) == a  # weight 0: left out, not fused at score 0
    majority = fuse_boxes([a, b, b], [1.0, 1.0, 1.0], 100, 100, min_share=0.5)
    assert len(majority) == 1 and majority[0][1] == pytest.approx((11.33, 10.0, 31.33, 30.0), abs=0.01)  # 1 of 3: dropped


def test_the_test_side_fuses_each_fold_model_s_boxes():
    """fused_objects under wbf: each fold model's map makes its own boxes, then fused; under maps the
    mean map makes them: a blob only one of two folds sees at 0.6 is no box of the mean map (0.3)
    at a 0.5 threshold; under wbf a classed box (its score halved), not an RSNA box (no majority)."""
    from types import SimpleNamespace

    from cxr.localization.objects import fused_objects

    one, other = np.zeros((8, 8)), np.zeros((8, 8))
    one[1:3, 1:3] = other[1:3, 1:3] = 0.9  # both folds: top left
    one[5:7, 5:7] = 0.6  # one fold only: bottom right
    spec, setting = SimpleNamespace(size=8, mode="squash"), [{"threshold": 0.5, "gate": 0.0}]
    (by_maps,) = fused_objects("boxes", [one, other], [0.5, 0.5], 1.0, 80, 80, spec, setting, fusion="maps")
    (by_wbf,) = fused_objects("boxes", [one, other], [0.5, 0.5], 1.0, 80, 80, spec, setting, fusion="wbf")
    assert len(by_maps) == 1 and len(by_wbf) == 1  # RSNA's boxes: one of two fold models is no majority...
    (classed,) = fused_objects("classed boxes", [one[None], other[None]], [0.5, 0.5], 1.0, 80, 80, spec, setting,
                               classes=("3",), fusion="wbf")
    assert [(c, round(s, 3)) for c, s, _ in classed[0]] == [(3, 0.9), (3, 0.3)]  # ...mAP's keep it, scored lower
