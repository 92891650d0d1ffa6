"""Occlusion of the annotated objects vs an equal-area control: the pure functions, a constructed
model that reacts to one region, and src/occlude.py end to end on a tiny trained project."""
import subprocess

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from conftest import one_error_line, run_script
from cxr.data.annotations import Shape
from cxr.diagnosis.occlusion import (body_mask, control_mask, cover, drop_summary, object_area_mask, occlude,
    predict_occluded)

BOX = (slice(24, 56), slice(24, 56))  # the region the constructed model reads


def test_cover_fills_a_bright_square_with_the_flat_background_and_changes_nothing_else():
    gray = np.full((64, 80), 120, np.uint8)
    gray[20:30, 40:50] = 230
    mask = object_area_mask([Shape(0, (40, 20, 49, 29))], 64, 80, margin=2)
    assert mask[20:30, 40:50].all() and mask.sum() > 100 and not mask[:15].any()  # the square and a rim
    covered = cover(gray, mask, radius=5)
    assert (covered[mask == 0] == gray[mask == 0]).all()
    assert np.abs(covered[mask > 0].astype(int) - 120).max() <= 2


def test_control_mask_keeps_the_area_and_stays_clear_of_the_objects_and_the_border():
    shapes = [Shape(0, (10, 12, 25, 20)), Shape(2, (60, 50, 75, 52, 70, 70)), Shape(1, (30, 70, 44, 80))]
    mask = object_area_mask(shapes, 100, 120, margin=3)
    avoid = cv2.dilate(mask, np.ones((9, 9), np.uint8))
    ys, xs = np.nonzero(mask)
    for seed in range(20):
        control = control_mask(mask, avoid, np.random.default_rng(seed))
        assert control is not None and control.sum() == mask.sum()
        assert not (control & avoid).any()
        assert not (control[0].any() or control[-1].any() or control[:, 0].any() or control[:, -1].any())
        cy, cx = np.nonzero(control)
        assert np.ptp(cy - ys) == 0 and np.ptp(cx - xs) == 0  # a rigid translation of the same pixels
    assert control_mask(np.pad(np.ones((90, 110), np.uint8), 5), avoid, np.random.default_rng(0)) is None  # no room


def test_the_control_stays_in_the_body_not_in_the_air_around_it():
    gray = np.zeros((100, 160), np.uint8)
    gray[:, 40:120] = 110  # the body: a bright band between dark air
    gray[40:50, 60:70] = 230
    body = body_mask(gray)
    assert body[:, 45:115].all() and not body[:, :30].any() and not body[:, 130:].any()
    for seed in range(10):
        views = occlude(gray, [Shape(0, (60, 40, 69, 49))], np.random.default_rng(seed), margin=2, radius=3)
        assert views is not None and (views.control & body).sum() >= 0.9 * views.control.sum()


def box_score(images, box):
    """A constructed 'model': the sigmoid of the mean brightness in `box` above the grey background."""
    return torch.sigmoid((images[:, box[0], box[1]].mean(dim=(1, 2)) - 115) / 3)


def predict(grays):
    """(b, 2): a model that reads BOX (where the objects are) and one that reads a corner without objects."""
    images = torch.from_numpy(np.stack(grays)).float()
    return torch.stack([box_score(images, BOX), box_score(images, (slice(0, 16), slice(0, 16)))], dim=1).numpy()


def test_a_model_that_looks_at_the_objects_loses_its_probability_only_when_they_are_covered():
    rng = np.random.default_rng(0)
    occluded = []
    for _ in range(20):
        gray = np.clip(rng.normal(100, 4, (96, 96)), 0, 255).astype(np.uint8)
        x, y = rng.integers(26, 40, size=2)
        shapes = [Shape(0, (int(x), int(y), int(x) + 12, int(y) + 12))]
        gray[y:y + 13, x:x + 13] = 240  # a bright object inside BOX
        occluded.append(occlude(gray, shapes, rng, margin=2, radius=4))
    probabilities = predict_occluded(occluded, predict)
    assert probabilities.shape == (20, 3, 2)
    looks = drop_summary(*probabilities[:, :, 0].T, n_boot=500, seed=0)
    assert looks["images"] == 20 and looks["drop_objects"] > 0.8 and abs(looks["drop_control"]) < 0.05
    assert looks["difference_low"] > 0.5
    assert looks["drop_objects_low"] <= looks["drop_objects"] <= looks["drop_objects_high"]
    elsewhere = drop_summary(*probabilities[:, :, 1].T, n_boot=500, seed=0)
    assert abs(elsewhere["drop_objects"]) < 0.05 and abs(elsewhere["difference"]) < 0.05


@pytest.fixture
def project(tiny_trained):
    return tiny_trained


def test_occlude_writes_out_of_fold_probabilities_a_summary_and_pairs(project):
    result = run_script("occlude.py", "--exp", "t", "--dataset", "tiny", "--n-boot", 50, cwd=project)
    out = project / "reports/t/occlusion"
    table = pd.read_csv(out / "occlusion.csv")
    assert list(table.columns) == ["image_id", "fold", "model", "p_original", "p_objects_covered",
                                   "p_control_covered", "covered_pixels"]
    assert set(table["model"]) == {"blend", "resnet18"} and table["image_id"].str.startswith("train/").all()
    probabilities = table[["p_original", "p_objects_covered", "p_control_covered"]]
    assert probabilities.notna().all().all() and probabilities.stack().between(0, 1).all()
    oof = pd.concat([pd.read_csv(project / f"oof/t/resnet18/fold_{k}.csv") for k in (0, 1)])
    mine = table[table["model"] == "resnet18"].merge(oof, on="image_id", suffixes=("", "_oof"))
    assert len(mine) == (table["model"] == "resnet18").sum() > 0 and (mine["fold"] == mine["fold_oof"]).all()
    assert np.allclose(mine["p_original"], mine["prediction"], atol=1e-5)  # out-of-fold, as train.py predicted
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["model"]) == ["blend", "resnet18"]
    assert (summary["images"] == table["image_id"].nunique()).all()
    assert f"{summary['images'][0]} annotated positive train images (out-of-fold); {summary['skipped'][0]} skipped" \
        in result.stdout
    for name in ("drop_objects", "drop_control", "difference"):
        assert (summary[f"{name}_low"] <= summary[name]).all() and (summary[name] <= summary[f"{name}_high"]).all()
    assert (out / "pairs.png").read_bytes()[:4] == b"\x89PNG" and "objects drop" in result.stdout



def occlude_here(cwd, monkeypatch, capsys, *args):
    """src/occlude.py's main run in this process, where torch is imported already (a few seconds
    less than a new process), as a CompletedProcess."""
    import occlude

    monkeypatch.chdir(cwd)
    try:
        occlude.main([str(a) for a in args])
        code = 0
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


def test_occlude_dev_side_uses_every_fold_model(project, monkeypatch, capsys):
    result = occlude_here(project, monkeypatch, capsys, "--exp", "t", "--dataset", "tiny", "--side", "dev",
                          "--n-boot", 0, "--figures", 1, "--reports-dir", "dev_reports")
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(project / "dev_reports/t/occlusion_dev/occlusion.csv")
    assert len(table) and table["image_id"].str.startswith("dev/").all() and (table["fold"] == -1).all()


def test_occlude_stops_with_one_line_for_a_missing_blend(project, monkeypatch, capsys):
    one_error_line(occlude_here(project, monkeypatch, capsys, "--exp", "nope", "--dataset", "tiny"),
                   "submissions/nope/blend.json", "no blend spec")
