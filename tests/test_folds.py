import numpy as np
import pandas as pd
import pytest

from cxr.data.folds import assign_folds
from cxr.errors import UserError


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


def test_multi_label_folds_keep_every_label_and_spread_each_one():
    rng = np.random.default_rng(3)
    t = pd.DataFrame({"image_id": [f"train/{i:05d}.jpg" for i in range(300)],
                      "target_a": (rng.random(300) < 0.3).astype(int), "target_b": (rng.random(300) < 0.1).astype(int)})
    folds = assign_folds(t, n_folds=5, seed=0)
    assert list(folds.columns) == ["image_id", "target_a", "target_b", "group", "fold"]
    for column in ("target_a", "target_b"):
        positives = folds.groupby("fold")[column].sum()
        assert positives.max() - positives.min() <= 2, column  # stratified by the label combination


def test_rare_label_combinations_are_pooled_not_dropped():
    from cxr.data.folds import strata

    targets = pd.DataFrame({"a": [0] * 10 + [1] * 10 + [1], "b": [0] * 10 + [0] * 10 + [1]})
    assert list(strata(targets, 5)) == ["00"] * 10 + ["10"] * 10 + ["00"]  # one "11": too rare even as a pool
    targets = pd.DataFrame({"a": [0] * 10 + [1] * 6, "b": [0] * 10 + [1] * 3 + [0] * 3, "c": [0] * 13 + [1] * 3})
    assert list(strata(targets, 3)) == ["000"] * 10 + ["110"] * 3 + ["101"] * 3
    assert list(strata(targets, 4)) == ["000"] * 10 + ["rare"] * 6


def test_a_label_with_too_few_positives_is_named():
    t = table(50).drop(columns="target").assign(target_x=[1] * 3 + [0] * 47, target_y=[1, 0] * 25)
    with pytest.raises(UserError, match="each class in 'target_x'"):
        assign_folds(t, 5, 0)


def test_no_patient_spans_two_folds_and_duplicates_join_their_patients(tmp_path):
    """A Kaggle set with a 'Patient ID' column: 12 patients of 1-4 films; one film of patient p1 is an
    exact copy of one of p2's, so p1 and p2 share a fold."""
    import cv2

    from conftest import run_script

    rng = np.random.default_rng(0)
    rows, patient_of = [], {}
    for p in range(12):
        for k in range(1 + p % 4):
            name = f"p{p}_{k}.png"
            image = (rng.random((32, 32)) * 255).astype(np.uint8)
            if name == "p2_0.png":
                image = cv2.imread(str(tmp_path / "input/pat/train/p1_0.png"), cv2.IMREAD_GRAYSCALE)
            (tmp_path / "input/pat/train").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(tmp_path / "input/pat/train" / name), image)
            rows.append(f"{name},P{p},{(p + k) % 2}")
            patient_of[f"train/{name}"] = f"P{p}"
    (tmp_path / "input/pat/train.csv").write_text("image_name,Patient ID,label\n" + "\n".join(rows) + "\n")
    (tmp_path / "input/pat/test.csv").write_text("image_name\nt.png\n")
    (tmp_path / "input/pat/test").mkdir()
    cv2.imwrite(str(tmp_path / "input/pat/test/t.png"), np.zeros((32, 32), np.uint8))
    out = run_script("make_folds.py", "--dataset", "pat", "--n-folds", 3, cwd=tmp_path).stdout
    assert "folds grouped by duplicate images (1 groups of 2 or more) and patients (column 'Patient ID': 9 of 12 with " \
           "2 or more images)" in out
    folds = pd.read_csv(tmp_path / "folds/pat.csv")
    by_patient = folds.assign(patient=folds["image_id"].map(patient_of)).groupby("patient")["fold"].nunique()
    assert (by_patient == 1).all() and len(by_patient) == 12
    fold_of = folds.set_index("image_id")["fold"]
    assert fold_of["train/p1_0.png"] == fold_of["train/p2_0.png"]  # the copy joined its two patients
    assert "patient" not in folds and set(folds["label" if "label" in folds else "target"]) <= {0, 1}
