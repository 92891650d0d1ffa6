"""OOF / dev FROC of a blend from saved Grad-CAMs: constructed heatmaps with known answers."""
import numpy as np
import pytest
from PIL import Image

from cxr.data.cache import ImageSpec
from cxr.data.annotations import Shape
from cxr.localization.evaluation import blend_points, froc_scores

SPEC = ImageSpec(32, "squash")


def images(tmp_path, sizes):
    for name, (width, height) in sizes.items():
        Image.new("L", (width, height)).save(tmp_path / name)
    return {name: size for name, size in sizes.items()}


def cam_at(x, y, size=8):
    """A feature-map-size cam (size x size) peaking at network pixel (x, y) of a 32-px input."""
    yy, xx = np.mgrid[0:size, 0:size] * (32 / size) + (32 / size) / 2 - 0.5
    return np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 8).astype(np.float16)


def test_points_land_where_the_heatmap_points_in_original_pixels(tmp_path):
    sizes = images(tmp_path, {"a.png": (320, 160)})  # squash: x scale 10, y scale 5
    points = blend_points(["a.png"], np.array([0.9]), [[cam_at(20, 12)[None]]], [1.0], SPEC, sizes, max_points=5)
    score, x, y = points["a.png"][0]
    assert len(points["a.png"]) == 5 and score == pytest.approx(0.9, abs=0.05)
    assert abs(x - 205) < 20 and abs(y - 62) < 12  # network (20, 12) -> original (~205, ~62)


def test_froc_is_perfect_when_the_heatmaps_point_at_every_object_and_nil_when_they_point_away(tmp_path):
    images(tmp_path, {"a.png": (320, 320), "b.png": (320, 320), "c.png": (320, 320)})
    objects = {"a.png": [Shape(0, (180, 100, 240, 160))], "b.png": [Shape(1, (40, 220, 100, 280))], "c.png": []}
    ids = list(objects)
    toward = np.stack([cam_at(21, 13), cam_at(7, 25), cam_at(16, 16)])  # network px = original / 10
    away = np.stack([cam_at(4, 28), cam_at(28, 4), cam_at(16, 16)])
    probabilities = np.array([0.9, 0.8, 0.1])
    model_probabilities = np.column_stack([probabilities, probabilities])
    scores = froc_scores(["good", "bad"], [1.0, 0.0], probabilities, model_probabilities, [[toward], [away]],
                         [(SPEC, "classifier")] * 2, ids, objects, tmp_path, max_points=1)
    assert scores["good"][0] == 1.0 and scores["bad"][0] == 0.0
    assert scores["blend"][0] == 1.0  # the blend's heatmap is the good model's alone (weight 0 for the other)
    # a map model's heatmap makes the blend's points whatever the classifiers' weights
    mixed = froc_scores(["classifier", "map"], [1.0, 0.0], probabilities, model_probabilities, [[away], [toward]],
                        [(SPEC, "classifier"), (SPEC, "map")], ids, objects, tmp_path, max_points=1, n_boot=50)
    assert mixed["blend"][0] == 1.0 and mixed["blend"][1] == [1.0] * 7
    assert mixed["map"][2] == (1.0, 1.0) and np.isnan(scores["blend"][2][0])  # interval only when bootstrapped
