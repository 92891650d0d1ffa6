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
