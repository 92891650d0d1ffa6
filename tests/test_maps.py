"""Map models: masks from the annotations, training crops, peaks back to original pixels, and
the real scripts end to end with a map model beside a classifier."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from cxr.data.cache import ImageSpec
from conftest import make_tiny_dataset, one_error_line, run_script
from cxr.data.annotations import Shape, parse_annotation
from cxr.localization.map_scores import choose_image_score, map_image_probability
from cxr.localization.peaks import heatmap_sources, original_points
from cxr.localization.targets import MaskedCrops, crop_window, cut, object_mask, shrink_mask
from cxr.models.map_model import MAP_STRIDE, create_map_model
from cxr.formats.files import read_localization, validate_classification
from cxr.localization.evaluation import annotations
from cxr.metrics.froc import froc


def test_each_shape_is_rasterized_inside_and_not_outside():
    rectangle, ellipse, polygon = Shape(0, (10, 20, 29, 39)), Shape(1, (50, 50, 89, 69)), Shape(2, (0, 90, 30, 90, 0, 99))
    mask = object_mask([rectangle, ellipse, polygon], 100, 100, 100, "squash")  # no resize: pixels are pixels
    assert mask[20:40, 10:30].all() and mask[:, :10][:90].sum() == 0 and not mask[19, 15] and not mask[25, 30]
    assert mask[60, 70] and mask[60, 51] and mask[51, 70] and not mask[51, 51] and not mask[68, 88]  # corners
    assert mask[99, 0] and mask[91, 25] and not mask[98, 25]  # the triangle's inside and outside
    for shape in (rectangle, ellipse, polygon):  # every mask pixel is within a pixel of the shape
        ys, xs = np.nonzero(object_mask([shape], 100, 100, 100, "squash"))
        assert all(any(shape.contains(x + dx, y + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)) for x, y in zip(xs, ys))
    assert object_mask([], 100, 100, 100, "squash").sum() == 0


def test_objects_at_the_border_and_below_a_pixel_are_kept_after_a_resize():
    at_border = Shape(0, (390, 0, 399, 9))  # a 400x300 image, the top right corner
    tiny = Shape(1, (200, 150, 202, 152))  # 3 px wide: under a pixel at size 64
    for mode in ("squash", "letterbox"):
        mask = object_mask([at_border, tiny], 400, 300, 64, mode)
        assert mask.sum() >= 2
        top = 0 if mode == "squash" else 8  # letterbox: 400x300 -> 64x48, 8 rows of padding above
        assert mask[top:top + 2, 62:].any() and not mask[:top].any()  # at the corner, not in the padding
        assert mask[30:34, 30:34].any()
        assert object_mask([tiny], 400, 300, 64, mode)[28:36, 28:36].sum() >= 1


def test_an_object_crossing_the_border_is_clipped_to_the_image_not_drawn_in_the_padding():
    crossing = Shape(0, (380, -40, 440, 20))  # a 400x300 image: its top right corner and beyond
    mask = object_mask([crossing], 400, 300, 64, "letterbox")  # 400x300 -> 64x48, 8 rows of padding above
    assert not mask[:8].any() and mask[8:12, 61:].all() and not mask[12:].any()


def test_masks_follow_the_image_through_a_resize():
    shape = Shape(0, (100, 60, 199, 119))  # a 400x300 image -> 200: squash halves x, scales y by 2/3
    mask = object_mask([shape], 400, 300, 200, "squash")
    ys, xs = np.nonzero(mask)
    assert (xs.min(), xs.max()) == (50, 99) and abs(ys.min() - 40) <= 1 and abs(ys.max() - 79) <= 1
    letterbox = object_mask([shape], 400, 300, 200, "letterbox")  # same scale 1/2 both ways, 25 rows of padding
    ys, xs = np.nonzero(letterbox)
    assert (xs.min(), xs.max()) == (50, 99) and (ys.min(), ys.max()) == (25 + 30, 25 + 59)


@pytest.mark.parametrize("share", [0.0, 0.7, 1.0])
def test_crops_contain_an_object_at_the_requested_share(share):
    rng = np.random.default_rng(0)
    centre = (300.0, 40.0)  # one small object far from the middle of a 400 frame
    inside = []
    for _ in range(600):
        left, top, side = crop_window(400, 64, [centre], share, rng, scale_range=0.25)
        assert 51 <= side <= 80 and 0 <= left <= 400 - side and 0 <= top <= 400 - side
        inside.append(left <= centre[0] < left + side and top <= centre[1] < top + side)
    by_chance = (64 / 400) ** 2
    assert abs(np.mean(inside) - (share + (1 - share) * by_chance)) < 0.06


def test_masked_crops_give_image_mask_and_crop_target(tmp_path):
    from cxr.data.transforms import train_transform

    spec = ImageSpec(128, "letterbox")
    objects = {"pos": (parse_annotation("0 60 60 70 70"), 128, 96, None), "neg": ([], 128, 96, None)}
    images = {"pos": np.full((128, 128), 90, np.uint8), "neg": np.full((128, 128), 90, np.uint8)}
    table = pd.DataFrame({"image_id": ["pos", "neg"]})
    crops = MaskedCrops(table, images.__getitem__, train_transform(seed=0), objects, spec, 64, 1.0, 0.25, MAP_STRIDE)
    for epoch in range(5):
        image, target, mask = crops[(0, epoch)]
        assert image.shape == (1, 64, 64) and image.dtype == torch.uint8 and mask.shape == (1, 16, 16)
        assert target[0] == 1.0 and mask.sum() >= 1  # object_crops 1: the object is always in the crop
        image, target, mask = crops[(1, epoch)]
        assert target[0] == 0.0 and mask.sum() == 0
    assert torch.equal(crops[(0, 3)][2], crops[(0, 3)][2])  # a row's crop is drawn from (seed, row): repeatable
    assert shrink_mask(np.eye(8, dtype=np.uint8), 4).tolist() == [[1, 0], [0, 1]]
    assert cut(np.ones((4, 4)), -2, -2, 4, 4, 0).sum() == 4  # beyond the edge: black


def test_masked_crops_give_a_map_per_class():
    """Each shape marks its own class's map (VinBigData): two classes, two maps, each holding
    only its object; the crop's target is any object."""
    from cxr.data.transforms import train_transform

    spec = ImageSpec(128, "squash")
    objects = {"two": (parse_annotation("0 20 20 30 30;0 90 90 100 100"), 128, 128, [1, 0])}
    images = {"two": np.full((128, 128), 90, np.uint8)}
    crops = MaskedCrops(pd.DataFrame({"image_id": ["two"]}), images.__getitem__, train_transform(seed=0, strength="none"),
                        objects, spec, 128, 0.0, 0.0, MAP_STRIDE, maps=2)
    image, target, mask = crops[(0, 0)]
    assert mask.shape == (2, 32, 32) and target[0] == 1.0
    rows, cols = np.nonzero(mask[1].numpy())
    assert rows.min() >= 4 and rows.max() <= 8 and cols.min() >= 4 and cols.max() <= 8  # class 1: the first box only
    rows, cols = np.nonzero(mask[0].numpy())
    assert rows.min() >= 21 and cols.min() >= 21  # class 0: the second box only
    multi = cut(np.dstack([np.ones((4, 4)), np.zeros((4, 4))]), 0, 0, 4, 8, 0)
    assert multi.shape == (8, 8, 2) and multi[..., 0].all() and not multi[..., 1].any()
    assert shrink_mask(np.dstack([np.eye(8), 1 - np.eye(8)]), 4)[..., 1].tolist() == [[1, 1], [1, 1]]


@pytest.mark.parametrize("mode", ["squash", "letterbox"])
def test_peaks_inside_objects_land_inside_them_in_original_pixels(mode):
    width, height, spec = 900, 600, ImageSpec(96, mode)
    shapes = [Shape(0, (100, 100, 140, 130)), Shape(1, (600, 400, 660, 470)), Shape(2, (300, 500, 360, 500, 330, 560))]
    heatmap = object_mask(shapes, width, height, spec.size, mode).astype(float)  # 1 on the objects, 0 elsewhere
    points = original_points(heatmap, 0.9, width, height, spec, max_points=10)
    assert len(points) == 10 and all(0 <= x < width and 0 <= y < height for _, x, y in points)
    top = points[:3]
    assert {i for _, x, y in top for i, s in enumerate(shapes) if s.contains(x, y)} == {0, 1, 2}


def test_map_model_shapes_and_image_scores():
    model = create_map_model("resnet18", channels=16).eval()
    head, maps = model(torch.zeros(2, 3, 96, 72))
    assert head.shape == (2, 1) and maps.shape == (2, 1, 24, 18)  # stride 4, any size
    maps = np.zeros((3, 8, 8), np.float32)
    maps[0, 2:5, 2:5] = 0.9  # an object: 3x3 of 0.9
    maps[1, 5, 5] = 0.9  # one hot cell alone is smoothed away
    head = np.array([[0.2], [0.8], [0.1]])
    assert map_image_probability(head, maps, "max")[:, 0] == pytest.approx([0.9, 0.1, 0.0], abs=1e-6)
    assert map_image_probability(head, maps, "head")[:, 0].tolist() == [0.2, 0.8, 0.1]
    name, probs = choose_image_score(np.array([1, 0, 0]), head, maps)
    assert name == "max" and probs[0, 0] == pytest.approx(0.9)
    assert heatmap_sources(["classifier", "map", "map"], [0.7, 0.0, 0.0]) == ([1, 2], [1.0, 1.0])
    assert heatmap_sources(["classifier", "map"], [0.5, -0.25]) == ([1], [0.25])
    assert heatmap_sources(["classifier", "classifier"], [0.5, 0.0]) == ([0], [0.5])


MAP = ["--dataset", "tiny", "--exp", "maps", "--img-size", "96", "--resize", "letterbox", "--epochs", "1",
       "--batch-size", "8", "--lr", "3e-3"]


@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    """demo -> folds -> a map model and a classifier on 2 folds -> blend."""
    cwd = make_tiny_dataset(tmp_path_factory.mktemp("maps"), n_train=24, n_dev=8)
    for fold, score in ((0, "max"), (1, "head")):  # two image scores: blend.py puts both folds on one (max)
        run_script("train.py", "--arch", "resnet18", "--kind", "map", "--crop-size", 64, "--map-channels", 16,
                   "--fold", fold, "--image-score", score, *MAP, cwd=cwd)
        run_script("train.py", "--arch", "resnet18", "--fold", fold, *MAP, cwd=cwd)
    blend = run_script("blend.py", "--exp", "maps", "--dataset", "tiny", "--trials", 5, "--froc-bootstrap", 20, cwd=cwd)
    return cwd, blend.stdout


def test_map_models_go_through_the_pipeline_like_classifiers(mapped, tmp_path):
    cwd, stdout = mapped
    config = json.loads((cwd / "weights/maps/resnet18-map/fold_0/config.json").read_text())
    assert config["kind"] == "map" and config["image_score_used"] == "max"
    oof_file = pd.read_csv(cwd / "oof/maps/resnet18-map/fold_0.csv")
    assert {"score_max", "score_head", "score_mean"} <= set(oof_file.columns)  # every image score beside the chosen
    spec = json.loads((cwd / "submissions/maps/blend.json").read_text())
    assert spec["image_scores"] == {"resnet18-map": "max"}  # a tie of max and head goes to max; classifiers have none
    assert "resnet18-map: its folds chose the image scores max, head; every fold is scored by max" in stdout
    with np.load(cwd / "oof/maps/resnet18-map/cams_fold_0.npz") as saved:
        assert saved["oof"].shape[1:] == (24, 24) and saved["test"].shape == (8, 24, 24)  # stride-4 maps
        assert 0 <= saved["oof"].min() and saved["oof"].max() <= 1
    report = pd.read_csv(cwd / "oof/maps/blend_report.csv")
    assert {"resnet18", "resnet18-map"} <= set(report["name"])
    froc_table = pd.read_csv(cwd / "oof/maps/froc_report.csv")
    assert set(froc_table["name"]) == {"resnet18", "resnet18-map", "blend"}
    assert {"oof_froc", "oof_low", "oof_high", "test_froc", "oof_sens@0.125", "test_sens@8"} <= set(froc_table.columns)
    assert (cwd / "oof/maps/froc.png").read_bytes()[:4] == b"\x89PNG" and "sensitivity at" in stdout

    expected = pd.read_csv(cwd / "submissions/maps/prediction_classification.csv")
    listed = ["input/tiny/" + p for p in expected["image_path"]]
    (cwd / "image_path.csv").write_text("\n".join(listed) + "\n")
    run_script("submit.py", "image_path.csv", tmp_path / "cls.csv", tmp_path / "loc.csv", "--exp", "maps", cwd=cwd)
    validate_classification(tmp_path / "cls.csv", listed)
    got = pd.read_csv(tmp_path / "cls.csv")
    assert np.allclose(got["prediction"], expected["prediction"], atol=1e-5)  # submit.py reproduces blend.py
    points = read_localization(tmp_path / "loc.csv", listed)
    sizes = {p: Image.open(cwd / p).size for p in listed}
    assert all(0 < len(found) <= 10 for found in points.values())
    assert all(0 <= x < sizes[p][0] and 0 <= y < sizes[p][1] for p, found in points.items() for _, x, y in found)
    # the FROC blend.py printed for the dev side is the FROC of the file submit.py wrote
    _, dev_objects = annotations(cwd / "input/tiny")
    submitted = froc({p: points[p] for p in listed}, {p: dev_objects[p.removeprefix("input/tiny/")] for p in listed})[0]
    printed = json.loads((cwd / "submissions/maps/blend.json").read_text())["froc"]["test"]["froc"]
    assert printed == pytest.approx(submitted, abs=1e-12)


def test_a_map_model_needs_annotations(tmp_path):
    run_script("make_demo.py", "--out", "input/ml", "--n-train", 12, "--n-dev", 4, "--min-size", 64, "--max-size", 64,
               "--multi-label", cwd=tmp_path)
    run_script("make_folds.py", "--dataset", "ml", "--n-folds", 2, cwd=tmp_path)
    result = run_script("train.py", "--dataset", "ml", "--kind", "map", "--epochs", 1, cwd=tmp_path, check=False)
    one_error_line(result, "--kind map learns from object annotations")
    assert not (tmp_path / "weights").exists()


@pytest.mark.parametrize("flags, message", [
    (["--crop-size", 150], "--crop-size 150: a map model's input must be a multiple of its deepest stride, --map-depth 16"
                           " (its map cells and the mask's would not line up): 144 or 160"),
    (["--img-size", 100, "--crop-size", 64, "--map-depth", 32], "--img-size 100: a map model's input must be a multiple "
                                                                "of its deepest stride, --map-depth 32"),
])
def test_a_map_input_off_the_stride_grid_is_refused_before_training(tmp_path, flags, message):
    result = run_script("train.py", "--dataset", "nowhere", "--kind", "map", *flags, cwd=tmp_path, check=False)
    one_error_line(result, message)


def test_blend_points_are_the_points_the_localization_file_holds():
    """blend.py scores the points as submit.py writes them: probabilities to 6 decimals, whole pixels."""
    from cxr.localization.evaluation import blend_points

    heatmaps = np.zeros((1, 24, 24), np.float32)
    heatmaps[0, 5, 7], heatmaps[0, 15, 18] = 1.0, 0.6
    spec = ImageSpec(96, "letterbox", False, 0.0, "linear")
    points = blend_points(["a.png"], np.array([0.123456789]), [[heatmaps]], [1.0], spec, {"a.png": (333, 250)})
    assert points["a.png"] and all(x == int(x) and y == int(y) and p == round(p, 6) for p, x, y in points["a.png"])


def test_a_map_models_folds_are_put_on_one_image_score(capsys):
    """Folds that chose max, mean and max: every fold's OOF and test rows become its max score."""
    from cxr.blending.inputs import one_image_score

    rng = np.random.default_rng(0)

    def part(chosen, n=5):
        scores = {name: rng.random(n) for name in ("max", "head", "mean")}
        return pd.DataFrame({"image_id": [f"i{j}" for j in range(n)], "prediction": scores[chosen],
                             **{f"score_{name}": values for name, values in scores.items()}})

    oof = {0: part("max"), 1: part("mean"), 2: part("max")}
    tests = [part("max"), part("mean"), part("max")]
    assert one_image_score("m-map", oof, tests) == "max"
    assert all(np.array_equal(p["prediction"], p["score_max"]) for p in [*oof.values(), *tests])
    assert "m-map: its folds chose the image scores max, mean, max; every fold is scored by max" in capsys.readouterr().out
    plain = {0: pd.DataFrame({"image_id": ["a"], "prediction": [0.3]})}  # a classifier: nothing to unify
    assert one_image_score("m", plain, [plain[0].copy()]) == "" and plain[0]["prediction"].tolist() == [0.3]


def test_select_last_fixes_the_image_score_without_looking_at_the_validation_rows():
    from cxr.config import TrainConfig
    from cxr.training.fold_run import image_score_setting

    assert image_score_setting(TrainConfig(kind="map", select="last")) == "mean"
    assert image_score_setting(TrainConfig(kind="map")) == "auto"  # --select best: chosen on the OOF rows, recorded
    assert image_score_setting(TrainConfig(kind="map", select="last", image_score="max")) == "max"
    assert image_score_setting(TrainConfig()) == ""


def test_a_blend_spec_is_found_from_any_folder(tmp_path, monkeypatch):
    """A relative --submissions-dir not found from the working directory is looked up in the
    repository; the runs are then read beside that submissions folder, all from one tree."""
    from cxr import artifacts

    spec = tmp_path / "repo/submissions/e/blend.json"
    spec.parent.mkdir(parents=True)
    spec.write_text("{}")
    (tmp_path / "repo/weights/e/m/fold_0").mkdir(parents=True)
    monkeypatch.setattr(artifacts, "REPOSITORY", tmp_path / "repo")
    monkeypatch.chdir(tmp_path)
    found = artifacts.blend_spec_path("submissions", "e")
    assert found == tmp_path / "repo/submissions/e/blend.json"
    runs = artifacts.spec_runs({"models": ["m"], "runs": {"m": ["weights/e/m/fold_0"]}}, found)
    assert runs == {"m": [tmp_path / "repo/weights/e/m/fold_0"]}
    (tmp_path / "weights/e/m/fold_0").mkdir(parents=True)  # the working directory holds the runs too: it wins
    assert artifacts.spec_runs({"models": ["m"], "runs": {"m": ["weights/e/m/fold_0"]}}, found) == \
        {"m": [Path("weights/e/m/fold_0")]}


def test_a_map_model_with_a_map_per_class_is_rebuilt_from_its_saved_config():
    """network_of reads `map_classes` from a saved config (inference rebuilds what training made);
    the image score reads the strongest class's map."""
    from cxr.localization.map_scores import any_object_map, map_maximum
    from cxr.models.factory import network_of

    network = network_of({"kind": "map", "arch": "resnet18", "map_classes": ["0", "1", "2"]})
    head, maps = network(torch.zeros(1, 3, 64, 64))
    assert head.shape == (1, 1) and maps.shape == (1, 3, 16, 16)
    assert network_of({"kind": "map", "arch": "resnet18"})(torch.zeros(1, 3, 64, 64))[1].shape == (1, 1, 16, 16)
    per_class = np.zeros((2, 3, 8, 8), np.float32)
    per_class[1, 2, 3:6, 3:6] = 0.9
    assert map_maximum(per_class).tolist() == pytest.approx([0.0, 0.9])
    assert any_object_map(per_class).shape == (2, 8, 8) and any_object_map(torch.as_tensor(per_class)).shape == (2, 8, 8)
