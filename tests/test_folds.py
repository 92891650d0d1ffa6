import numpy as np
import pandas as pd
import pytest

from data import assign_folds
from errors import UserError


def table(n=200, positive_rate=0.3, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"image_id": [f"train/{i:05d}.jpg" for i in range(n)],
                         "target": (rng.random(n) < positive_rate).astype(int)})


def test_folds_are_stratified_and_cover_every_image_once():
    t = table()
    folds = assign_folds(t, n_folds=5, seed=1)
    assert list(folds.columns) == ["image_id", "target", "group", "fold"]
    assert sorted(folds["image_id"]) == sorted(t["image_id"])
    assert set(folds["fold"]) == set(range(5))
    counts = pd.crosstab(folds["fold"], folds["target"])
    assert (counts.max() - counts.min()).max() <= 1  # each class split as evenly as possible


def test_same_seed_same_folds_other_seed_other_folds():
    t = table()
    assert assign_folds(t, 5, 7).equals(assign_folds(t, 5, 7))
    assert not assign_folds(t, 5, 7)["fold"].equals(assign_folds(t, 5, 8)["fold"])


def test_a_group_never_straddles_folds():
    t = table(100)
    t["group"] = [f"g{i // 2}" for i in range(100)]  # pairs, as duplicates would be
    t["target"] = [(i // 2) % 2 for i in range(100)]
    folds = assign_folds(t, 5, 0)
    assert (folds.groupby("group")["fold"].nunique() == 1).all()


def test_too_few_images_of_a_class():
    t = table(20)
    t["target"] = [1] * 3 + [0] * 17
    with pytest.raises(UserError, match="at least 5 images of each class"):
        assign_folds(t, 5, 0)
