"""Studies: a table row naming a folder of images (SIIM-COVID's test/<study>/<series>/<image>.dcm)
stands for each image below it; the folds keep a study's images together; blend.py writes one
prediction per study, the mean or the max of its images', chosen on the training studies' nested
OOF predictions."""
import json
import zlib

import numpy as np
import pandas as pd
import pytest

from conftest import one_error_line, run_script
from cxr.blending.studies import aggregate, choose_rule, first_images
from cxr.data.folds import assign_folds, join_patients, read_folds
from cxr.data.layouts import kaggle_test_ids, read_dataset
from cxr.errors import RowProblems, UserError


def png(path, seed=0):
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 255, (24, 24)).astype(np.uint8))


def study_set(root, n_train=24, n_test=4):
    """A SIIM-COVID-shaped Kaggle set: train.csv and sample_submission.csv list study ids, each a
    folder train/<study>/<series>/ of 1-3 images (no extension, no image named in the tables)."""
    def study(side, i):
        name = f"1.2.{side}.{i}"
        for k in range(1 + i % 3):
            png(root / side / name / f"9.{i % 2}" / f"{name}.{k}.png", zlib.crc32(f"{side}{i}{k}".encode()))
        return name
    train = [study("train", i) for i in range(n_train)]
    test = [study("test", i) for i in range(n_test)]
    pd.DataFrame({"StudyInstanceUID": train, "label": [i % 2 for i in range(n_train)]}).to_csv(root / "train.csv",
                                                                                            index=False)
    pd.DataFrame({"id": test, "prediction": 0.5}).to_csv(root / "sample_submission.csv", index=False)
    return root


def test_a_row_naming_a_folder_stands_for_every_image_below_it(tmp_path):
    study_set(tmp_path)
    train, test = read_dataset(tmp_path)
    assert len(train) == sum(1 + i % 3 for i in range(24)) and len(test) == 1 + 2 + 3 + 1
    first = train[train["study"] == "1.2.train.2"]
    assert first["image_id"].tolist() == [f"train/1.2.train.2/9.0/1.2.train.2.{k}.png" for k in range(3)]
    assert (first["target"] == 0).all() and train.attrs["lines"][:4] == [2, 3, 3, 4]
    column, written = kaggle_test_ids(tmp_path)
    assert column == "id" and written["test/1.2.test.2/9.0/1.2.test.2.1.png"] == "1.2.test.2"
    assert set(written.values()) == {f"1.2.test.{i}" for i in range(4)}


def test_no_study_spans_two_folds(tmp_path):
    study_set(tmp_path, n_train=40)
    train, _ = read_dataset(tmp_path)
    grouped, said = join_patients(train)
    folds = assign_folds(grouped, n_folds=4, seed=1)
    assert "studies (folders: 40 rows for 79 images: 26 of 40 with 2 or more images)" in said
    assert (folds.groupby("study")["fold"].nunique() == 1).all() and folds["fold"].nunique() == 4
    assert "study" in folds.columns


def images_with_studies(root, column, studies, labels):
    """A Kaggle set of one row per image (im0, im1, ...) with a study column, and one test image."""
    for i in range(len(studies)):
        png(root / "train" / f"im{i}.png", i)
    pd.DataFrame({"image_id": [f"im{i}" for i in range(len(studies))], column: studies,
                  "label": labels}).to_csv(root / "train.csv", index=False)
    png(root / "test" / "t.png")
    pd.DataFrame({"image_id": ["t"]}).to_csv(root / "test.csv", index=False)
    return read_dataset(root)[0]


def test_a_study_column_names_the_studies_of_a_table_of_images(tmp_path):
    train = images_with_studies(tmp_path, "StudyInstanceUID", ["s1", "s1", "s2", "s3"], [1, 1, 0, 0])
    assert train["study"].tolist() == ["s1", "s1", "s2", "s3"] and train.attrs["studies"] == "column 'StudyInstanceUID'"


def test_a_bad_study_row_drops_every_image_of_it_under_skip_bad(tmp_path):
    study_set(tmp_path)
    with open(tmp_path / "train.csv", "a") as table:
        table.write("1.2.train.5,maybe\n")  # study 5 (3 images) listed again with a label that is no 0/1
    (tmp_path / "train.csv").write_text((tmp_path / "train.csv").read_text().replace("1.2.train.5,1\n", ""))
    problems = RowProblems(skip=True)
    train, _ = read_dataset(tmp_path, problems=problems)
    bad = problems.rows_of(train.attrs["source"])
    assert sorted(train["image_id"][bad]) == [f"train/1.2.train.5/9.1/1.2.train.5.{k}.png" for k in range(3)]


def test_a_folder_is_never_swapped_for_a_file_named_like_it(tmp_path):
    """test/t0/ holding t0.png: the row stands for the folder's two images, not for that one file."""
    study_set(tmp_path)
    for name in ("t0.png", "t0.b.png"):
        png(tmp_path / "test" / "t0" / "ser" / name)
    (tmp_path / "sample_submission.csv").write_text("id,prediction\nt0,0.5\n")
    _, test = read_dataset(tmp_path)
    assert test["image_id"].tolist() == ["test/t0/ser/t0.b.png", "test/t0/ser/t0.png"]


def test_images_without_a_study_value_are_studies_of_their_own(tmp_path):
    train = images_with_studies(tmp_path, "study_id", ["NA", "", "", "NA"], [1, 0, 0, 1])
    assert train["study"].tolist() == ["NA", "train/im1.png", "train/im2.png", "NA"]  # 'NA' is an id
    folds = assign_folds(join_patients(train)[0], n_folds=2, seed=0)
    folds.to_csv(tmp_path / "folds.csv", index=False)
    assert read_folds(tmp_path / "folds.csv")["study"].tolist() == train["study"].tolist()


def test_a_study_with_an_uncertain_image_and_no_positive_is_uncertain():
    truth = np.array([0, np.nan, 1, np.nan, 0, 0, 1, 1])
    studies = ["a", "a", "b", "b", "c", "c", "d", "d"]
    _, report, _ = choose_rule(truth, np.linspace(0.1, 0.8, 8), studies)
    # means a .15, b .35, c .55, d .75; b and d positive, c negative, a uncertain and left out: AUC 1/2
    # (read as a negative, a would add two won pairs: 3/4)
    assert report.set_index("rule").loc["mean", "auc"] == 0.5


def test_a_folder_without_images_is_named_with_its_line(tmp_path):
    study_set(tmp_path)
    (tmp_path / "train" / "empty").mkdir()
    with open(tmp_path / "train.csv", "a") as table:
        table.write("empty,1\n")
    with pytest.raises(UserError, match=r"train.csv line 26: train/empty is a folder without images"):
        read_dataset(tmp_path)


def test_mean_and_max_by_hand():
    predictions = np.array([0.2, 0.9, 0.6, 0.5, 0.1, 0.3])
    studies = ["a", "a", "b", "b", "c", "c"]
    order, mean = aggregate(predictions, studies, "mean")
    assert order == ["a", "b", "c"] and np.allclose(mean.ravel(), [0.55, 0.55, 0.2])
    assert np.allclose(aggregate(predictions, studies, "max")[1].ravel(), [0.9, 0.6, 0.3])
    truth = np.array([1, 1, 0, 0, 0, 0])
    # studies a+, b-, c-: the mean ties a with b (AUC (0.5 + 1) / 2 = 0.75), the max ranks a first (1.0)
    rule, report, several = choose_rule(truth, predictions, studies)
    assert rule == "max" and several == 3
    assert report.set_index("rule").loc["mean", "auc"] == 0.75 and report.set_index("rule").loc["max", "auc"] == 1.0
    # one image of b high, its other low: the max calls b positive, the mean does not
    rule, report, _ = choose_rule(truth, np.array([0.6, 0.7, 0.95, 0.1, 0.1, 0.2]), studies)
    assert rule == "mean" and report.set_index("rule")["auc"].tolist()[1:] == [1.0, 0.5]


def test_a_multi_class_study_is_scaled_back_to_probabilities():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    _, combined = aggregate(probabilities, ["s", "s"], "max", multiclass=True)
    assert np.allclose(combined, [[0.7, 0.2, 0.8]] / np.float64(1.7))
    assert first_images(["s", "t", "s"], ["i1", "i2", "i3"]) == ["i1", "i2"]


def fake_model(tmp_path, folds, test_ids, offset):
    """OOF and test files of one model whose prediction is the target plus noise (seeded by `offset`)."""
    folder = tmp_path / "oof" / "st" / f"model{offset}"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(offset)
    for fold in sorted(folds["fold"].unique()):
        part = folds[folds["fold"] == fold][["image_id", "target", "fold"]]
        part.assign(prediction=np.clip(part["target"] * 0.3 + rng.uniform(0, 0.7, len(part)), 0, 1)).to_csv(
            folder / f"fold_{fold}.csv", index=False)
        pd.DataFrame({"image_id": test_ids, "prediction": rng.uniform(0, 1, len(test_ids))}).to_csv(
            folder / f"test_fold_{fold}.csv", index=False)


def test_blend_writes_one_row_per_study_by_the_rule_chosen_on_oof(tmp_path):
    study_set(tmp_path / "input" / "st", n_train=40)
    run_script("make_folds.py", "--dataset", "st", "--n-folds", 3, cwd=tmp_path)
    folds = pd.read_csv(tmp_path / "folds/st.csv", dtype=str).astype({"target": int, "fold": int})
    assert (folds.groupby("study")["fold"].nunique() == 1).all()
    _, test = read_dataset(tmp_path / "input" / "st")
    for offset in (1, 2):
        fake_model(tmp_path, folds, test["image_id"].tolist(), offset)
    result = run_script("blend.py", "--exp", "st", "--dataset", "st", "--trials", 3, "--bootstrap", 20, cwd=tmp_path)
    report = pd.read_csv(tmp_path / "oof/st/study_report.csv", keep_default_na=False)
    chosen = report.loc[report["chosen"].astype(str) == "True", "rule"].item()
    assert chosen in ("mean", "max") and f"each study's prediction: the {chosen} of its images'" in result.stdout
    submission = pd.read_csv(tmp_path / "submissions/st/submission.csv", dtype={"id": str})
    assert submission["id"].tolist() == [f"1.2.test.{i}" for i in range(4)]  # the sample's order, one row per study
    spec = json.loads((tmp_path / "submissions/st/blend.json").read_text())
    assert spec["studies"] == {"rule": chosen, "submission": "one row per study"}
    # each study's row: its images' blended predictions (kept in test_images.csv) combined by the rule
    images = pd.read_csv(tmp_path / "submissions/st/test_images.csv", dtype={"study": str})
    assert len(images) == 7 and images["image_id"].tolist() == test["image_id"].tolist()
    expected = images.groupby("study", sort=False)["prediction"].agg(chosen)
    assert np.allclose(submission.set_index("id").loc[expected.index, "prediction"], expected, atol=1e-6)


def test_a_folder_of_no_images_in_the_test_table_stops_the_run_with_its_line(tmp_path):
    study_set(tmp_path / "input" / "st")
    (tmp_path / "input/st/test/gone").mkdir()
    with open(tmp_path / "input/st/sample_submission.csv", "a") as table:
        table.write("gone,0.5\n")
    result = run_script("make_folds.py", "--dataset", "st", "--n-folds", 3, cwd=tmp_path, check=False)
    one_error_line(result, "sample_submission.csv line 6", "gone is a folder without images")
