"""Uncertain labels (CheXpert's -1, blanks meaning not mentioned): a policy (--uncertain ignore,
ones, zeros or a soft value) read into the targets, recorded with the run; an ignored label left
out of the loss, the validation loss and every metric; the blend fitted and scored on each
label's certain rows."""
import json
import zlib

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from conftest import one_error_line, run_script
from cxr.data.folds import assign_folds
from cxr.data.layouts import read_dataset
from cxr.errors import UserError

VALUES = {"Atelectasis": ["1.0", "0.0", "-1.0", "", "1.0", "0.0"], "Edema": ["0.0", "-1.0", "1.0", "1.0", "", "0.0"]}


def chexpert_like(root, n=36):
    """A CheXpert-shaped Kaggle set: an id column, a text and a numeric column that are no labels,
    two label columns of 1.0 / 0.0 / -1.0 / blank."""
    import cv2

    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    for i in range(n):
        image = np.random.default_rng(zlib.crc32(f"u{i}".encode())).integers(0, 255, (36, 36)).astype(np.uint8)
        cv2.imwrite(str(root / "train" / f"u{i:02d}.png"), image)
    cv2.imwrite(str(root / "test" / "t0.png"), np.zeros((36, 36), np.uint8))
    pd.DataFrame({"id": [f"u{i:02d}" for i in range(n)], "Sex": "Female", "Age": [30 + i for i in range(n)],
                  **{label: [values[i % 6] for i in range(n)] for label, values in VALUES.items()}}
                 ).to_csv(root / "train.csv", index=False)
    pd.DataFrame({"id": ["t0"]}).to_csv(root / "test.csv", index=False)
    return root


@pytest.mark.parametrize("policy, uncertain", [("ignore", np.nan), ("ones", 1.0), ("zeros", 0.0), ("0.6", 0.6)])
def test_each_policy_gives_uncertain_labels_its_target_and_blanks_zero(tmp_path, policy, uncertain):
    train, _ = read_dataset(chexpert_like(tmp_path), uncertain=policy)
    assert [c for c in train.columns if c.startswith("target_")] == ["target_Atelectasis", "target_Edema"]  # not Age
    expected = [1, 0, uncertain, 0, 1, 0]  # -1 -> the policy's target; blank -> 0
    np.testing.assert_array_equal(train["target_Atelectasis"].to_numpy(float)[:6], expected)
    folds = assign_folds(train, 3)
    assert folds["fold"].nunique() == 3


def test_without_a_policy_or_with_a_wrong_one_the_row_is_named(tmp_path):
    chexpert_like(tmp_path)
    with pytest.raises(UserError, match=r"train.csv line 4: label '-1.0' in column 'Atelectasis' .*--uncertain"):
        read_dataset(tmp_path)
    with pytest.raises(UserError, match="--uncertain maybe: expected ignore, ones, zeros or a number in"):
        read_dataset(tmp_path, uncertain="maybe")


def test_an_ignored_label_counts_in_no_loss_and_no_metric():
    from sklearn.metrics import roc_auc_score

    from cxr.metrics.auc import mean_auc
    from cxr.training.engine import summed_loss
    from cxr.training.losses import classifier_loss

    logits = torch.tensor([[1.0, -2.0], [0.5, 0.3], [-1.0, 2.0]])
    targets = torch.tensor([[1.0, -1.0], [0.0, 1.0], [-1.0, 1.0]])  # -1: ignored (the data set's NaN)
    each = F.binary_cross_entropy_with_logits(logits, targets.clamp(min=0), reduction="none")
    known = targets >= 0
    assert float(classifier_loss()(logits, targets)) == pytest.approx(float(each[known].mean()))
    total, rows = summed_loss(logits, targets)
    assert rows == 3 and total == pytest.approx(float(each[0, 0] + each[1].mean() + each[2, 1]))
    y = np.array([[1, np.nan], [0, 1], [np.nan, 0], [1, 0.6], [0, 1]])
    p = np.array([[0.9, 0.2], [0.4, 0.7], [0.3, 0.1], [0.6, 0.9], [0.5, 0.8]])
    by_hand = np.mean([roc_auc_score([1, 0, 1, 0], [0.9, 0.4, 0.6, 0.5]), roc_auc_score([1, 0, 1], [0.7, 0.1, 0.8])])
    assert mean_auc(y, p) == pytest.approx(by_hand)  # NaN and the soft 0.6 left out


TRAIN = ["--dataset", "cx", "--exp", "cx", "--arch", "resnet18", "--img-size", "32", "--epochs", "1", "--batch-size",
         "8", "--heatmaps", "off", "--no-tensorboard", "--uncertain", "ignore"]


def test_a_run_with_ignored_labels_end_to_end(tmp_path):
    chexpert_like(tmp_path / "input" / "cx")
    run_script("make_folds.py", "--dataset", "cx", "--n-folds", 2, "--uncertain", "ignore", cwd=tmp_path)
    folds = pd.read_csv(tmp_path / "folds/cx.csv")
    assert folds["target_Atelectasis"].isna().sum() == 6  # one row in six
    for fold in (0, 1):
        run_script("train.py", *TRAIN, "--fold", fold, cwd=tmp_path)
    config = json.loads((tmp_path / "weights/cx/resnet18/fold_0/config.json").read_text())
    assert config["uncertain"] == "ignore"
    log = pd.read_csv(tmp_path / "weights/cx/resnet18/fold_0/log.csv")
    assert np.isfinite(log[["train_loss", "val_loss", "val_auc"]].to_numpy()).all()
    oof = pd.read_csv(tmp_path / "oof/cx/resnet18/fold_0.csv")
    assert oof["target_Edema"].isna().any() and oof["prediction_Edema"].notna().all()
    blend = run_script("blend.py", "--exp", "cx", "--dataset", "cx", "--trials", 3, "--bootstrap", 20, cwd=tmp_path)
    assert "Atelectasis: 6 uncertain label(s) left out" in blend.stdout
    # --metric: each label's method chosen by its nested log loss (on the certain rows), not its AUC
    blend = run_script("blend.py", "--exp", "cx", "--dataset", "cx", "--trials", 3, "--bootstrap", 20, "--metric",
                       "log_loss", cwd=tmp_path)
    report = pd.read_csv(tmp_path / "oof/cx/blend_report.csv", keep_default_na=False, na_values=[""])
    for label in VALUES:
        methods = report[(report["kind"] == "blend") & (report["label"] == label)]
        assert methods.loc[methods["chosen"], "nested_log_loss"].item() == methods["nested_log_loss"].min()
    assert "chosen by nested log loss [Edema]" in blend.stdout
    # the fold file was cut under another policy: train.py says so instead of training on other targets
    one_error_line(run_script("train.py", *TRAIN[:-1], "zeros", "--fold", 0, cwd=tmp_path, check=False),
                   "folds/cx.csv: its targets differ", "--uncertain")
