"""A multi-class task end to end: a label column of class names (or class folders) read as
one-hot targets beside class_name; softmax cross-entropy (class weights, label smoothing); OOF
and test files with a probability per class summing to 1; accuracy, log loss and macro AUC
against scikit-learn; each class blended, rows scaled back to probabilities, scored as a whole;
a submission in the sample's columns (or one class name per image) that predict.py reproduces."""
import json
import zlib

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from conftest import one_error_line, run_script
from cxr.data.folds import assign_folds, read_folds
from cxr.data.labels import task_of
from cxr.data.layouts import read_dataset
from cxr.errors import RowProblems, UserError

CLASSES = ["COVID", "Normal", "Viral"]


def write_png(path, value, band=0):
    import cv2

    image = np.random.default_rng(zlib.crc32(path.name.encode())).integers(0, 90, (40, 40)).astype(np.uint8)
    image[4 + band * 12:12 + band * 12, 6:34] = value  # the class: where the band lies (the noise: no duplicates)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image)


def kaggle_classes(root, n_train=36, n_test=9, sample_columns=None):
    """A Kaggle-style multi-class set as make_kaggle_multiclass.py ships one: ids without their
    extension, a label column of class names, only a sample submission on the test side."""
    rows = []
    for i in range(n_train):
        name = CLASSES[i % 3]
        write_png(root / "train" / f"id{i:03d}.png", 200 + i % 5, band=i % 3)
        rows.append((f"id{i:03d}", name))
    pd.DataFrame(rows, columns=["id", "label"]).to_csv(root / "train.csv", index=False)
    ids = [f"t{i:02d}" for i in range(n_test)]
    for i, image_id in enumerate(ids):
        write_png(root / "test" / f"{image_id}.png", 210, band=i % 3)
    columns = sample_columns or CLASSES
    value = "Normal" if columns == ["label"] else round(1 / len(columns), 4)  # a class-name column holds a class
    pd.DataFrame({"id": ids, **{c: value for c in columns}}).to_csv(root / "sample_submission.csv", index=False)
    return root


def test_a_label_column_of_class_names_is_a_multiclass_task(tmp_path):
    train, test = read_dataset(kaggle_classes(tmp_path))
    assert task_of(train) == "multiclass" and task_of(test) == "binary"  # the test side is unlabelled
    assert [c for c in train.columns if c.startswith("target_")] == [f"target_{c}" for c in CLASSES]
    assert (train[[f"target_{c}" for c in CLASSES]].sum(1) == 1).all()
    assert train["class_name"].tolist()[:3] == CLASSES and "multi-class (3 classes" in train.attrs["task"]
    folds = assign_folds(train, 3)
    assert "class_name" in folds and task_of(folds) == "multiclass"


@pytest.mark.parametrize("values, classes", [("0 1 2 1 0 2", ["0", "1", "2"]),
                                             ("2 10 1 2 10 1", ["1", "2", "10"]),  # numbers sort as numbers
                                             ("Normal Pneumonia Normal Normal Pneumonia Normal", ["Normal", "Pneumonia"]),
                                             ("0 1 1 0 1 0", None)])  # 0/1: binary
def test_numbered_classes_and_binary_targets(tmp_path, values, classes):
    for i in range(6):
        write_png(tmp_path / "train" / f"{i}.png", 200)
    pd.DataFrame({"id": range(6), "label": values.split()}).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame({"id": [0]}).to_csv(tmp_path / "test.csv", index=False)
    write_png(tmp_path / "test" / "0.png", 200)
    train, _ = read_dataset(tmp_path)
    if classes is None:
        assert task_of(train) == "binary" and train["target"].tolist() == [0, 1, 1, 0, 1, 0]
    else:
        assert [c[len("target_"):] for c in train.columns if c.startswith("target_")] == classes


def test_a_row_without_a_class_and_rows_that_disagree_are_named(tmp_path):
    kaggle_classes(tmp_path)
    table = pd.read_csv(tmp_path / "train.csv", dtype=str, keep_default_na=False)
    table.loc[4, "label"] = ""
    table.to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(UserError, match=r"train.csv line 6: no class in column 'label'"):
        read_dataset(tmp_path)
    table.loc[4, "label"] = "Normal"
    pd.concat([table, table.iloc[[2]].assign(label="COVID")]).to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(UserError, match=r"line 4: image train/id002.png has rows of several classes \(COVID, Viral\)"):
        read_dataset(tmp_path)
    problems = RowProblems(skip=True)
    train, _ = read_dataset(tmp_path, problems=problems)
    assert problems.rows_of(str(tmp_path / "train.csv")) == [2] and len(train) == 36


def test_an_image_folder_without_positive_classes_is_multiclass(tmp_path):
    for name, n in (("Normal", 3), ("Viral", 2)):
        for i in range(n):
            write_png(tmp_path / name / f"{i}.png", 200)
    train, _ = read_dataset(tmp_path)
    assert task_of(train) == "multiclass" and train[["target_Normal", "target_Viral"]].sum().tolist() == [3, 2]


def test_cross_entropy_with_class_weights_and_smoothing():
    from cxr.training.losses import classifier_loss, loss_for
    from cxr.training.recipe import class_weight

    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-1.0, 3.0, 0.0], [0.0, 0.0, 4.0]])
    targets = torch.eye(3)[[0, 2, 1, 2]]
    weight = class_weight(targets.numpy(), "loss")
    assert weight.tolist() == pytest.approx([4 / 3, 4 / 3, 2 / 3])  # n / (classes x n_c)
    assert class_weight(targets.numpy(), "none") is None
    loss = loss_for("classifier", weight, "multiclass", 0.1)(logits, targets)
    log_p = torch.log_softmax(logits, 1)
    smoothed = targets * 0.9 + 0.1 / 3
    per_row = -(smoothed * log_p * weight).sum(1)  # torch: weighted sum over rows / sum of the rows' class weights
    assert float(loss) == pytest.approx(float(per_row.sum() / weight[targets.argmax(1)].sum()), rel=1e-5)
    y = torch.tensor([[1.0], [0.0]])
    z = torch.tensor([[0.3], [-0.2]])
    assert float(classifier_loss(label_smoothing=0.2)(z, y)) == pytest.approx(
        float(F.binary_cross_entropy_with_logits(z, torch.tensor([[0.9], [0.1]]))))


def test_accuracy_log_loss_and_macro_auc_match_scikit_learn():
    from sklearn.metrics import accuracy_score, log_loss as sk_log_loss, roc_auc_score

    from cxr.metrics.registry import METRICS, for_task

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    p = rng.dirichlet([1, 1, 1], 60)
    truth = np.eye(3)[y]
    assert METRICS["accuracy"].function(truth, p) == pytest.approx(accuracy_score(y, p.argmax(1)))
    assert METRICS["log_loss"].function(truth, p) == pytest.approx(sk_log_loss(y, p))
    assert METRICS["auc"].function(truth, p) == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average="macro"))
    assert for_task("multiclass").name == "auc" and not METRICS["log_loss"].higher_is_better
    # by hand: true-class probabilities 0.5 and 0.25 -> log loss (ln 2 + ln 4) / 2; one of two rows right
    truth, p = np.eye(3)[[0, 1]], np.array([[0.5, 0.3, 0.2], [0.5, 0.25, 0.25]])
    assert METRICS["log_loss"].function(truth, p) == pytest.approx((np.log(2) + np.log(4)) / 2)
    assert METRICS["accuracy"].function(truth, p) == 0.5
    # binary: one column is the positive class
    assert METRICS["log_loss"].function([1, 0], [0.8, 0.4]) == pytest.approx(sk_log_loss([1, 0], [0.8, 0.4]))
    assert METRICS["accuracy"].function([1, 0, 1], [0.8, 0.4, 0.2]) == pytest.approx(2 / 3)


def test_class_probabilities_sum_to_one():
    from cxr.blending.classes import as_class_probabilities

    scaled = as_class_probabilities([[0.2, 0.2, 0.4], [0, 0, 0]])
    assert np.allclose(scaled, [[0.25, 0.25, 0.5], [1 / 3, 1 / 3, 1 / 3]])


def test_the_multiclass_format_writes_probabilities_or_class_names(tmp_path):
    from cxr.formats.registry import get, resolve

    root = kaggle_classes(tmp_path / "probabilities", n_train=6, n_test=3)
    chosen = resolve("auto", root, CLASSES, "multiclass")
    assert chosen.name == "multiclass" and resolve("kaggle", root, CLASSES, "multiclass").name == "multiclass"
    with pytest.raises(UserError, match="--format multilabel is for a multi-label task; this data set is multi-class"):
        resolve("multilabel", root, CLASSES, "multiclass")
    ids = ["test/t00.png", "test/t01.png", "test/t02.png"]
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3]])
    submission = chosen.plan(tmp_path / "out", root, ids[::-1], CLASSES)
    submission.write(p[::-1])
    written = pd.read_csv(submission.path)
    assert list(written.columns) == ["id", *CLASSES] and written["id"].tolist() == ["t00", "t01", "t02"]
    assert np.allclose(written[CLASSES], p)
    get("multiclass").validate(submission.path, ["t00", "t01", "t02"])

    root = kaggle_classes(tmp_path / "names", n_train=6, n_test=3, sample_columns=["label"])
    submission = chosen.plan(tmp_path / "out2", root, ids, CLASSES)
    submission.write(p)
    assert submission.path.read_text().splitlines() == ["id,label", "t00,COVID", "t01,Viral", "t02,Normal"]
    get("multiclass").validate(submission.path, ["t00", "t01", "t02"])
    submission.path.write_text("id,label\nt00,COVID\nt01,\n")
    with pytest.raises(UserError, match="line 3: expected 'id,class'"):
        get("multiclass").validate(submission.path, ["t00", "t01"])
    root = kaggle_classes(tmp_path / "one_number", n_train=6, n_test=3, sample_columns=["target"])
    with pytest.raises(UserError, match=r"one probability column \(target\) for the classes COVID, Normal, Viral"):
        chosen.plan(tmp_path / "out3", root, ids, CLASSES)


def test_a_multiclass_image_folder_needs_no_submission_format(tmp_path):
    from cxr.formats.registry import resolve

    assert resolve("auto", tmp_path, CLASSES, "multiclass").name == "multiclass"  # no test side: nothing to write
    (tmp_path / "test").mkdir()  # a test folder without a table: its ids have no column to go in
    with pytest.raises(UserError, match="needs .*test.csv or .*sample_submission.csv"):
        resolve("auto", tmp_path, CLASSES, "multiclass")


def test_a_class_name_with_a_comma_and_an_uncertain_binary_column(tmp_path):
    kaggle_classes(tmp_path)
    table = pd.read_csv(tmp_path / "train.csv")
    table.assign(label=table["label"].replace("Viral", "Viral, other")).to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(UserError, match="class 'Viral, other' in column 'label' holds a comma"):
        read_dataset(tmp_path)
    table.assign(label=[("1", "0", "-1")[i % 3] for i in range(len(table))]).to_csv(tmp_path / "train.csv", index=False)
    train, _ = read_dataset(tmp_path, uncertain="ignore")  # -1 is an uncertain label, not a third class
    assert task_of(train) == "binary" and train["target"].isna().sum() == 12


TRAIN = ["--dataset", "mc", "--exp", "mc", "--arch", "resnet18", "--img-size", "32", "--epochs", "2", "--batch-size",
         "8", "--heatmaps", "off", "--no-tensorboard", "--label-smoothing", "0.05", "--balance", "loss",
         "--metric", "log_loss"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("multiclass")
    kaggle_classes(cwd / "input" / "mc")
    run_script("make_folds.py", "--dataset", "mc", "--n-folds", 2, cwd=cwd)
    for fold in (0, 1):
        run_script("train.py", *TRAIN, "--fold", fold, cwd=cwd)
    blend = run_script("blend.py", "--exp", "mc", "--dataset", "mc", "--trials", 5, "--bootstrap", 50, cwd=cwd)
    return cwd, blend.stdout


def test_training_writes_class_probabilities_and_records_the_task(project):
    cwd, _ = project
    folds = read_folds(cwd / "folds/mc.csv")
    assert task_of(folds) == "multiclass"
    oof = pd.read_csv(cwd / "oof/mc/resnet18/fold_0.csv")
    predictions = oof[[f"prediction_{c}" for c in CLASSES]]
    assert np.allclose(predictions.sum(1), 1, atol=1e-5) and len(oof) == (folds["fold"] == 0).sum()
    test = pd.read_csv(cwd / "oof/mc/resnet18/test_fold_1.csv")
    assert np.allclose(test[[f"prediction_{c}" for c in CLASSES]].sum(1), 1, atol=1e-5) and len(test) == 9
    config = json.loads((cwd / "weights/mc/resnet18/fold_0/config.json").read_text())
    assert config["task"] == "multiclass" and config["label_smoothing"] == 0.05 and config["metric"] == "log_loss"
    # --metric log_loss chose the epoch: its score is minus the validation log loss (the unsmoothed cross-entropy)
    log = pd.read_csv(cwd / "weights/mc/resnet18/fold_0/log.csv")
    assert np.allclose(log["val_score"], -log["val_loss"], rtol=1e-4)
    best = torch.load(cwd / "weights/mc/resnet18/fold_0/best.pt", weights_only=True)
    assert best["epoch"] == int(log.loc[log["val_score"].idxmax(), "epoch"])


def test_the_blend_scores_the_classes_as_a_whole(project):
    from sklearn.metrics import log_loss as sk_log_loss, roc_auc_score

    cwd, stdout = project
    assert "multi-class, OOF" in stdout
    folds = read_folds(cwd / "folds/mc.csv")
    oof = pd.concat([pd.read_csv(cwd / f"oof/mc/resnet18/fold_{k}.csv") for k in (0, 1)]).set_index("image_id")
    oof = oof.loc[folds["image_id"]]
    y = folds[[f"target_{c}" for c in CLASSES]].to_numpy().argmax(1)
    p = oof[[f"prediction_{c}" for c in CLASSES]].to_numpy()
    report = pd.read_csv(cwd / "oof/mc/class_report.csv").set_index("name")
    assert report.loc["resnet18", "log_loss"] == pytest.approx(sk_log_loss(y, p / p.sum(1, keepdims=True)), rel=1e-5)
    assert report.loc["resnet18", "auc"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr"), rel=1e-6)
    assert report.loc["resnet18", "auc_low"] <= report.loc["resnet18", "auc"] <= report.loc["resnet18", "auc_high"]
    methods = pd.read_csv(cwd / "oof/mc/class_methods.csv")
    chosen = methods.loc[methods["chosen"], "name"].tolist()
    assert len(chosen) == 1 and methods.loc[methods["chosen"], "auc"].item() == methods["auc"].max()  # --metric auc
    spec = json.loads((cwd / "submissions/mc/blend.json").read_text())
    assert {spec["labels"][c]["method"] for c in CLASSES} == set(chosen)  # one method for every class


def test_the_submission_sums_to_one_and_predict_reproduces_it(project, tmp_path):
    cwd, _ = project
    submission = pd.read_csv(cwd / "submissions/mc/submission.csv")
    assert list(submission.columns) == ["id", *CLASSES] and np.allclose(submission[CLASSES].sum(1), 1, atol=1e-6)
    assert submission["id"].tolist() == pd.read_csv(cwd / "input/mc/sample_submission.csv")["id"].tolist()
    run_script("predict.py", "input/mc/test", "--exp", "mc", "--out", tmp_path / "p.csv", cwd=cwd)
    predicted = pd.read_csv(tmp_path / "p.csv")
    predicted.index = predicted["image_path"].str.rpartition("/")[2].str.replace(".png", "")
    assert np.allclose(predicted.loc[submission["id"], CLASSES], submission[CLASSES], atol=1e-4)
    (cwd / "list.csv").write_text("input/mc/test/t00.png\n")
    one_error_line(run_script("submit.py", "list.csv", tmp_path / "c.csv", tmp_path / "l.csv", "--exp", "mc",
                              cwd=cwd, check=False), "multi-class")


def test_grad_cam_of_a_chosen_class(project):
    cwd, _ = project
    result = run_script("explain.py", "--exp", "mc", "--dataset", "mc", "--label", "Viral", "--per-class", 1,
                        "--no-tsne", "--no-saliency", cwd=cwd)
    written = sorted(p.name for p in (cwd / "reports/mc/explain/heatmaps").iterdir())
    assert len(written) == 2 and all(name.endswith("_Viral.png") for name in written), result.stdout
    chosen = [line.split(" ")[0] for line in result.stdout.splitlines() if "wrote" in line]
    folds = read_folds(cwd / "folds/mc.csv").set_index("image_id")
    classes = folds.loc[chosen, "class_name"].tolist()
    assert classes[0] == "Viral" and classes[1] != "Viral"  # one of the class, then one of another
    one_error_line(run_script("explain.py", "--exp", "mc", "--dataset", "mc", "--label", "Cat", "--no-tsne", cwd=cwd,
                              check=False), "--label Cat", "COVID, Normal, Viral")


def test_score_py_scores_a_submission_against_the_truth(tmp_path):
    from sklearn.metrics import accuracy_score, log_loss as sk_log_loss, roc_auc_score

    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 30)
    p = rng.dirichlet([1, 1, 1], 30)
    ids = [f"im{i}" for i in range(30)]
    pd.DataFrame({"id": ids, "label": np.asarray(CLASSES)[y]}).to_csv(tmp_path / "truth.csv", index=False)
    order = rng.permutation(30)  # rows matched by id, not by position; columns by name
    pd.DataFrame({"id": np.asarray(ids)[order], **{c: p[order, j] for j, c in reversed(list(enumerate(CLASSES)))}}
                 ).to_csv(tmp_path / "sub.csv", index=False)
    out = run_script("score.py", "sub.csv", "truth.csv", "--bootstrap", 50, cwd=tmp_path).stdout
    row = next(line for line in out.splitlines() if line.startswith("sub.csv")).split()
    assert float(row[1]) == pytest.approx(roc_auc_score(y, p, multi_class="ovr"), abs=5e-5)
    assert float(row[4]) == pytest.approx(accuracy_score(y, p.argmax(1)), abs=5e-5)
    assert float(row[7]) == pytest.approx(sk_log_loss(y, p), abs=5e-5)
    pd.DataFrame({"id": ids, "label": np.asarray(CLASSES)[p.argmax(1)]}).to_csv(tmp_path / "names.csv", index=False)
    out = run_script("score.py", "names.csv", "truth.csv", "--bootstrap", 20, cwd=tmp_path).stdout
    row = next(line for line in out.splitlines() if line.startswith("names.csv")).split()
    assert float(row[4]) == pytest.approx(accuracy_score(y, p.argmax(1)), abs=5e-5)
    pd.DataFrame({"id": ids[1:], "label": "COVID"}).to_csv(tmp_path / "short.csv", index=False)
    one_error_line(run_script("score.py", "short.csv", "truth.csv", cwd=tmp_path, check=False),
                   "short.csv: no row for im0 (truth.csv line 2)")


def test_tune_py_s_confirmation_compares_several_columns_by_their_mean_auc():
    from sklearn.metrics import roc_auc_score

    from cxr.diagnosis.hyperparameter_search import paired_comparison
    from cxr.metrics.auc import delong_test

    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 40)
    frames = [pd.DataFrame({**{f"target_{c}": (y == j).astype(int) for j, c in enumerate(CLASSES)},
                            **{f"prediction_{c}": p[:, j] for j, c in enumerate(CLASSES)}})
              for p in (rng.dirichlet([1, 1, 1], 40), rng.dirichlet([1, 1, 1], 40))]
    row = paired_comparison(*frames)
    aucs = [roc_auc_score(y, f[[f"prediction_{c}" for c in CLASSES]].to_numpy(), multi_class="ovr") for f in frames]
    assert row["base_auc"] == pytest.approx(aucs[0]) and row["best_auc"] == pytest.approx(aucs[1])
    assert row["difference"] == pytest.approx(aucs[1] - aucs[0]) and np.isnan(row["p_value"])
    binary = [pd.DataFrame({"target": (y == 0).astype(int), "prediction": f["prediction_COVID"]}) for f in frames]
    test = delong_test(binary[0]["target"].to_numpy(), binary[1]["prediction"].to_numpy(),
                       binary[0]["prediction"].to_numpy())
    assert paired_comparison(*binary)["p_value"] == pytest.approx(test["p_value"])
