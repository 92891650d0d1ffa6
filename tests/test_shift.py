"""Adversarial validation: no shift reads about 0.5, a known shift near 1; the test-like rows and
their weights; shift.py and make_folds.py --test-like on a Kaggle-style set with a shifted test side."""
import json

import cv2
import numpy as np
import pandas as pd
import pytest

from cxr.testside.adversarial import adversarial_scores, image_features, importance_weights, most_test_like
from conftest import run_script
from cxr.metrics.auc import roc_auc


def radiographs(rng, n, size=32, gamma=1.0):
    """Smooth random images; gamma != 1 darkens or brightens them (an appearance shift)."""
    images = []
    for _ in range(n):
        image = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), 3)
        image = (image - image.min()) / (image.max() - image.min() + 1e-9)
        images.append((255 * image ** gamma).astype(np.uint8))
    return np.stack(images)


@pytest.mark.parametrize("gamma, low, high", [(1.0, 0.3, 0.65), (1.8, 0.95, 1.0)])
def test_adversarial_auc_reads_no_shift_near_half_and_a_known_shift_near_one(gamma, low, high):
    rng = np.random.default_rng(0)
    train, test = radiographs(rng, 150), radiographs(rng, 75, gamma=gamma)
    is_test = np.r_[np.zeros(150, int), np.ones(75, int)]
    scores = adversarial_scores(image_features(np.concatenate([train, test])), is_test)
    assert low <= roc_auc(is_test, scores) <= high


def test_the_training_images_most_like_a_shifted_test_side_are_found():
    """Half the training images carry the test side's look: they are the test-like ones."""
    rng = np.random.default_rng(1)
    train = np.concatenate([radiographs(rng, 80), radiographs(rng, 80, gamma=1.8)])
    test = radiographs(rng, 80, gamma=1.8)
    is_test = np.r_[np.zeros(160, int), np.ones(80, int)]
    likeness = adversarial_scores(image_features(np.concatenate([train, test])), is_test)[:160]
    marked = most_test_like(likeness, 0.25)
    assert marked.sum() == 40 and marked[80:].sum() >= 36  # nearly all from the shifted half
    weights = importance_weights(likeness, 160, 80)
    assert weights.mean() == pytest.approx(1.0) and weights[80:].mean() > 3 * weights[:80].mean()


def test_shares():
    likeness = np.linspace(0, 1, 100)
    assert most_test_like(likeness, 0).sum() == 0 and most_test_like(likeness, 1).all()
    assert most_test_like(likeness, 0.1).tolist() == [False] * 90 + [True] * 10
    with pytest.raises(ValueError):
        most_test_like(likeness, 1.5)


def test_shift_py_and_make_folds_test_like_on_a_shifted_kaggle_set(tmp_path):
    rng = np.random.default_rng(2)
    root = tmp_path / "input/shifted"
    for side, images in (("train", radiographs(rng, 60, 48)), ("test", radiographs(rng, 30, 48, gamma=1.8))):
        (root / side).mkdir(parents=True)
        for i, image in enumerate(images):
            cv2.imwrite(str(root / side / f"{i:03d}.png"), image)
    pd.DataFrame({"image_name": [f"{i:03d}.png" for i in range(60)], "label": np.arange(60) % 2}).to_csv(
        root / "train.csv", index=False)
    pd.DataFrame({"image_name": [f"{i:03d}.png" for i in range(30)]}).to_csv(root / "test.csv", index=False)
    out = run_script("make_folds.py", "--dataset", "shifted", "--n-folds", 2, "--test-like", 0.25, cwd=tmp_path).stdout
    assert "test-like rows: 15 of 60 training images" in out
    marked = pd.read_csv(tmp_path / "folds/shifted_test_like.csv")
    assert len(marked) == 60 and marked["test_like"].sum() == 15
    out = run_script("shift.py", "--dataset", "shifted", cwd=tmp_path).stdout
    report = json.loads((tmp_path / "reports/shifted/shift.json").read_text())
    assert report["adversarial_auc"] > 0.9 and "a strong shift" in out
    assert set(report["folds"]) == {"0", "1"}
    assert (tmp_path / "reports/shifted/shift.png").read_bytes()[:4] == b"\x89PNG"
