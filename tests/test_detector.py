"""The detector kind: its boxes painted into object maps (and read back as boxes), its training
crops' boxes, the network and its loss, and the scripts end to end (slow)."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import make_tiny_dataset, one_error_line, run_script
from cxr.config import TrainConfig
from cxr.data.annotations import Shape
from cxr.data.cache import ImageSpec
from cxr.localization.peaks import heatmap_sources, upsample
from cxr.localization.regions import map_boxes
from cxr.localization.targets import MAX_BOXES, BoxedCrops, long_sides
from cxr.metrics.detection import box_iou
from cxr.models.detector import PYRAMID_STRIDES, level_anchors, paint_boxes
from cxr.models.factory import network_of
from cxr.training.losses import loss_for


def detections(boxes, scores, labels=None):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32), "scores": torch.tensor(scores, dtype=torch.float32),
            "labels": torch.tensor(labels or [0] * len(boxes), dtype=torch.long)}


def test_boxes_are_painted_by_the_share_of_each_cell_they_cover():
    painted = paint_boxes([detections([(4, 4, 12, 8), (2, 0, 6, 4), (13, 13, 14, 14)], [0.8, 0.6, 0.5])], 1, 4, 4, 4)
    expected = np.zeros((4, 4))
    expected[1, 1:3] = 0.8  # cells x 4-12, y 4-8 covered whole
    expected[0, 0:2] = 0.3  # x 2-6 covers half of cells 0 and 1, y 0-4 all of row 0
    expected[3, 3] = 0.5  # a box thinner than a cell marks its cell whole: it is still seen
    assert np.allclose(painted[0, 0].numpy(), expected)
    overlapping = paint_boxes([detections([(0, 0, 8, 8), (4, 4, 8, 8)], [0.4, 0.9], [1, 1])], 2, 2, 2, 4)
    assert overlapping[0, 0].abs().sum() == 0  # class 1's boxes go to map 1
    assert np.allclose(overlapping[0, 1].numpy(), [[0.4, 0.4], [0.4, 0.9]])  # the best score where they overlap
    outside = paint_boxes([detections([(40, 40, 50, 50)], [0.9])], 1, 4, 4, 4)
    assert outside.abs().sum() == 0
    empty = paint_boxes([detections([(9, 9, 9, 12), (5, 5, 6, 6)], [0.9, 0.7])], 1, 4, 4, 4)  # FCOS may regress l = r = 0
    assert torch.isfinite(empty).all() and empty.max() == pytest.approx(0.7)


def test_anchors_sit_on_each_level_s_true_stride():
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.image_list import ImageList

    def anchors(size, cells):
        levels = [torch.zeros(1, 8, n, n) for n in cells]
        generator = AnchorGenerator(tuple((s,) for s in PYRAMID_STRIDES), ((1.0,),) * len(PYRAMID_STRIDES))
        return generator(ImageList(torch.zeros(1, 3, size, size), [(size, size)]), levels)[0], level_anchors(levels, PYRAMID_STRIDES)

    theirs, ours = anchors(256, (32, 16, 8, 4))  # a multiple of 64: torchvision's anchors exactly
    assert torch.equal(theirs, ours)
    theirs, ours = anchors(160, (20, 10, 5, 3))  # the max-pooled level of a 160 crop: cells at 0, 64, 128
    assert torch.equal(theirs[:-9], ours[:-9]) and ours[-9:-6, 0].tolist() == [-32, 32, 96]
    assert theirs[-8, 0] != ours[-8, 0]  # torchvision's 160 // 3 = 53 px apart


def test_long_boxes_are_measured_in_the_network_frame():
    objects = {"a.png": ([Shape(0, (0, 0, 99, 49)), Shape(1, (10, 10, 20, 30))], 200, 100, None)}
    assert long_sides(objects, ImageSpec(100, "letterbox", False, 0.0, "linear")).tolist() == [49.5, 10.0]


def test_a_painted_box_off_the_cell_grid_reads_back_as_its_box():
    size, box = 128, (21.0, 37.0, 50.0, 58.0)  # edges between cells of 4 pixels
    maps = paint_boxes([detections([box], [0.9])], 1, size // 4, size // 4, 4)
    heatmap = upsample(maps[:, 0], size)[0].numpy()
    found = map_boxes(heatmap, 1.0, size, size, size, "squash", threshold=0.45)  # no resize: pixels are pixels
    assert len(found) == 1 and found[0][0] == pytest.approx(0.9, abs=0.01)
    assert box_iou(np.array(box), np.array([found[0][1]]))[0, 0] > 0.9  # cell-aligned painting reads back at ~0.75


def boxed_rows(objects, spec, **settings):
    table = pd.DataFrame({"image_id": list(objects)})
    images = {image: np.full((spec.size, spec.size), 100, np.uint8) for image in objects}
    from cxr.data.transforms import eval_transform

    crops = BoxedCrops(table, images.__getitem__, eval_transform(), objects, spec, 0, 1.0, 0.0, 4, **settings)
    return [crops[k] for k in range(len(table))]


def test_training_crops_carry_each_object_s_box_and_class():
    spec = ImageSpec(64, "squash", False, 0.0, "linear")
    objects = {"two.png": ([Shape(0, (10, 20, 29, 39)), Shape(1, (40, 40, 49, 59))], 64, 64, [2, 0]),
               "none.png": ([], 64, 64, []),
               "plain.png": ([Shape(2, (5, 5, 20, 5, 5, 15))], 64, 64, None)}
    (image, target, boxes), (_, empty_target, no_boxes), (_, _, plain) = boxed_rows(objects, spec, maps=3)
    assert image.shape == (1, 64, 64) and boxes.shape == (MAX_BOXES, 5) and target.tolist() == [1.0]
    assert boxes[:2].tolist() == [[2, 10, 20, 30, 40], [0, 40, 40, 50, 60]]  # class, the pixels' outer edges
    assert (boxes[2:] == -1).all() and (no_boxes == -1).all() and empty_target.tolist() == [0.0]
    assert plain[0].tolist() == [0, 5, 5, 21, 16]  # one map: every object class 0


def test_the_detector_trains_on_boxes_and_predicts_object_maps():
    torch.manual_seed(0)
    network = network_of({"kind": "detector", "arch": "resnet18", "map_classes": ["3", "5"]}, 1)
    boxes = torch.full((2, MAX_BOXES, 5), -1.0)
    boxes[0, 0] = torch.tensor([1, 8, 8, 40, 30])  # image 0: one box of class 1; image 1: none
    network.train()
    head, waiting = network(torch.randn(2, 3, 64, 64))
    loss = loss_for("detector")((head, waiting), torch.tensor([[1.0], [0.0]]), boxes)
    reducible = loss_for("detector", reducible_only=True)((head, waiting), torch.tensor([[1.0], [0.0]]), boxes)
    assert reducible < loss  # the overfit check leaves out centre-ness (soft targets: a floor above zero)
    loss.backward()
    assert head.shape == (2, 1) and torch.isfinite(loss)
    assert network.fcos.backbone.encoder.conv1.weight.grad.abs().sum() > 0 and network.head.weight.grad is not None
    network.eval()
    with torch.no_grad():
        head, maps = network(torch.randn(2, 3, 64, 96))
    assert head.shape == (2, 1) and maps.shape == (2, 2, 16, 24)  # a map per class at stride 4, any input size
    probabilities = torch.sigmoid(maps)
    assert 0 <= probabilities.min() and probabilities.max() <= 1
    assert heatmap_sources(["classifier", "detector"], [0.5, 0.5]) == ([1], [0.5])  # its maps make the heatmaps
    assert TrainConfig(kind="detector").model_name == "resnet18-det"


def test_a_detector_s_channels_must_suit_its_group_norm(tmp_path):
    run_script("make_demo.py", "--out", "input/tiny", "--n-train", 12, "--n-dev", 4, "--min-size", 64,
               "--max-size", 64, cwd=tmp_path)
    run_script("make_folds.py", "--dataset", "tiny", "--n-folds", 2, cwd=tmp_path)
    one_error_line(run_script("train.py", "--dataset", "tiny", "--kind", "detector", "--map-channels", 16,
                              "--img-size", 64, "--crop-size", 64, "--epochs", 1, cwd=tmp_path, check=False),
                   "--map-channels 16", "multiple of 32")


DETECT = ["--dataset", "tiny", "--exp", "det", "--kind", "detector", "--img-size", "96", "--resize", "letterbox",
          "--crop-size", "64", "--map-channels", "32", "--epochs", "2", "--batch-size", "8", "--lr", "3e-3"]


@pytest.mark.slow
def test_a_detector_goes_through_blend_and_submit_like_a_map_model(tmp_path):
    cwd = make_tiny_dataset(tmp_path, n_train=24, n_dev=8)
    for fold in (0, 1):
        run_script("train.py", "--arch", "resnet18", "--fold", fold, *DETECT, cwd=cwd)
    config = json.loads((cwd / "weights/det/resnet18-det/fold_0/config.json").read_text())
    assert config["kind"] == "detector"
    with np.load(cwd / "oof/det/resnet18-det/cams_fold_0.npz") as saved:
        assert saved["test"].shape == (8, 24, 24) and 0 <= saved["oof"].min() and saved["oof"].max() <= 1
    run_script("blend.py", "--exp", "det", "--dataset", "tiny", "--trials", 5, "--froc-bootstrap", 20, cwd=cwd)
    froc_table = pd.read_csv(cwd / "oof/det/froc_report.csv")
    assert {"resnet18-det", "blend"} <= set(froc_table["name"])
    expected = pd.read_csv(cwd / "submissions/det/prediction_classification.csv")
    listed = ["input/tiny/" + p for p in expected["image_path"]]
    (cwd / "image_path.csv").write_text("\n".join(listed) + "\n")
    run_script("submit.py", "image_path.csv", tmp_path / "cls.csv", tmp_path / "loc.csv", "--exp", "det", cwd=cwd)
    got = pd.read_csv(tmp_path / "cls.csv")
    assert np.allclose(got["prediction"], expected["prediction"], atol=1e-5)  # submit.py reproduces blend.py


def test_a_tuned_detector_s_run_file_trains_a_detector(tmp_path):
    from types import SimpleNamespace

    import yaml

    from cxr.diagnosis.hyperparameter_search import best_files
    from cxr.run_file import assignments

    trial = SimpleNamespace(number=3, value=0.9, user_attrs={"settings": {"lr": 0.002, "crop_size": 128}})
    study = SimpleNamespace(study_name="s", best_trial=trial, get_trials=lambda **_: [trial])
    base = {"arch": "resnet18", "kind": "detector", "img_size": 256, "dataset": "tiny"}
    _, run_yaml = best_files(study, base, tmp_path, "resnet18", 0)
    run = yaml.safe_load(run_yaml.read_text())
    assert run["det_archs"] == ["resnet18"] and run["map_archs"] == [] and run["archs"] == []
    assert run["map_img_size"] == 256 and "map_train" in run
    assert "DET_ARCHS=resnet18" in "\n".join(assignments(run_yaml, {}))  # run.sh reads it
