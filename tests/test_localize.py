"""Heatmaps and scored points: CAM and Grad-CAM against their definitions, peaks on
constructed maps, and network coordinates mapped back to the original image."""
import numpy as np
import pytest
import torch

from cxr.data.cache import placement, resize, to_original
from cxr.localization.gradcam import class_activation_map, grad_cam
from cxr.localization.peaks import heatmap_points, upsample
from cxr.models.backbones import create_model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("resnet18").eval()


def test_cam_averages_to_the_logit_for_an_average_pooled_linear_head(model):
    images = torch.randn(2, 3, 64, 64)
    cam = class_activation_map(model, images)
    assert cam.shape == (2, 2, 2)
    with torch.no_grad():
        logits = model(images)[:, 0]
    assert torch.allclose(cam.mean((1, 2)) + model.get_classifier().bias[0], logits, atol=1e-4)


def test_grad_cam_is_the_positive_part_of_the_cam_for_that_head(model):
    images = torch.randn(2, 3, 64, 64)
    cam = class_activation_map(model, images)
    # the logit's gradient w.r.t. each feature position is w / (h * w): Grad-CAM = ReLU(CAM) / (h * w)
    assert torch.allclose(grad_cam(model, images), torch.relu(cam) / 4, atol=1e-5)


def test_grad_cam_runs_on_a_backbone_with_a_deeper_head():
    torch.manual_seed(0)
    convnext = create_model("convnext_atto").eval()
    maps = grad_cam(convnext, torch.randn(1, 3, 64, 64))
    assert maps.shape == (1, 2, 2) and (maps >= 0).all()
    assert upsample(maps, 64).shape == (1, 64, 64)


def test_points_are_the_peaks_strongest_first_and_apart():
    yy, xx = np.mgrid[0:64, 0:64]
    heatmap = np.exp(-((xx - 10) ** 2 + (yy - 20) ** 2) / 8) + 0.5 * np.exp(-((xx - 50) ** 2 + (yy - 40) ** 2) / 8)
    points = heatmap_points(heatmap, probability=0.8, max_points=5, min_distance=6)
    assert points[0][1:] == (10, 20) and points[0][0] == pytest.approx(0.8)
    assert points[1][1:] == (50, 40) and 0.3 < points[1][0] < 0.45
    assert all((a[1] - b[1]) ** 2 + (a[2] - b[2]) ** 2 >= 36 for i, a in enumerate(points) for b in points[:i])
    assert [p[0] for p in points] == sorted((p[0] for p in points), reverse=True)
    assert len(heatmap_points(np.random.default_rng(0).random((64, 64)), 0.5, max_points=12, min_distance=4)) == 12
    plateau = np.zeros((64, 64))
    plateau[40:50, 10:30] = 1.0
    found = heatmap_points(plateau, 1.0, sigma=0)
    assert found[0] == (1.0, 20, 44)  # one peak, at the plateau's centre (19.5, 44.5)
    assert len(found) == 10 and all((x - 20) ** 2 + (y - 44) ** 2 >= 64 for _, x, y in found[1:])  # top-ups, apart
    assert [p[0] for p in found[:5]] == [1.0] * 5 and {p[0] for p in found[5:]} == {0.0}  # the plateau's corners first
    flat = heatmap_points(np.zeros((64, 32)), 0.7)
    assert flat[0] == (0.7, 16, 32) and len(flat) == 10 and {p[0] for p in flat[1:]} == {0.0}  # centre, then spread


def test_top_up_points_use_the_false_positive_budget_strongest_first_and_apart():
    yy, xx = np.mgrid[0:64, 0:64]
    one_blob = np.exp(-((xx - 30) ** 2 + (yy - 30) ** 2) / 50)
    found = heatmap_points(one_blob, 0.5, max_points=9, min_distance=8)
    assert found[0][1:] == (30, 30) and len(found) == 9
    assert [p[0] for p in found] == sorted((p[0] for p in found), reverse=True)
    assert all((a[1] - b[1]) ** 2 + (a[2] - b[2]) ** 2 >= 64 for i, a in enumerate(found) for b in found[:i])
    assert all(((x - 30) ** 2 + (y - 30) ** 2) ** 0.5 < 20 for _, x, y in found[1:5])  # the blob's flanks come first


@pytest.mark.parametrize("mode", ["squash", "letterbox"])
def test_a_point_maps_back_to_where_it_was_in_the_original_image(mode):
    width, height, size = 900, 600, 96
    original = np.zeros((height, width), np.uint8)
    original[395:406, 695:706] = 255  # a bright square centred on (700, 400)
    small = resize(original, size, mode).astype(float)
    weights = small / small.sum()
    cx, cy = (weights * np.arange(size)[None, :]).sum(), (weights * np.arange(size)[:, None]).sum()
    back_x, back_y = to_original(cx, cy, width, height, size, mode)
    assert abs(back_x - 700) < 4 and abs(back_y - 400) < 4
    left, top, new_w, new_h = placement(width, height, size, mode)
    if mode == "letterbox":
        assert (left, top, new_w, new_h) == (0, 16, 96, 64)
