"""The registries the next task types plug into: submission formats (src/cxr/formats/registry.py)
and metrics (src/cxr/metrics/registry.py): every member found by name, auto choosing the data
set's own format, each format's writer and check agreeing, and the metrics answering as their
functions and direction say."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from cxr import config
from cxr.data.annotations import Shape
from cxr.errors import UserError
from cxr.formats import registry as formats
from cxr.metrics import registry as metrics
from cxr.metrics.froc import froc


def kaggle_set(root, ids, sample_columns=None):
    """A Kaggle-style folder: test.csv with `ids`, and a sample_submission.csv when columns are given."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "test.csv").write_text("id\n" + "".join(f"{i}\n" for i in ids))
    if sample_columns:
        rows = "".join(f"{i}," + ",".join("0.5" for _ in sample_columns) + "\n" for i in reversed(ids))
        (root / "sample_submission.csv").write_text("id," + ",".join(sample_columns) + "\n" + rows)
    return root


def test_every_format_is_found_by_name_and_declares_itself():
    assert config.SUBMISSION_FORMATS == formats.NAMES == ("auto", "objectcxr", "kaggle", "multilabel", "multiclass",
                                                         "rsna", "vinbig", "siim")
    for name in formats.FORMATS:
        chosen = formats.get(name)
        tasks = ("binary", "multilabel", "multiclass", "boxes", "classed boxes", "masks")
        assert chosen.name == name and chosen.task in tasks and chosen.files
        assert chosen.summary
    with pytest.raises(UserError, match="unknown .*choose from auto, objectcxr"):
        formats.get("csv")


def test_auto_picks_the_data_set_s_own_format(tmp_path):
    assert formats.resolve("auto", tmp_path / "no_test_csv", [""]).name == "objectcxr"
    root = kaggle_set(tmp_path / "k", ["a", "b"])
    assert formats.resolve("auto", root, [""]).name == "kaggle"
    assert formats.resolve("auto", root, ["x", "y"]).name == "multilabel"
    assert formats.resolve("kaggle", root, ["x", "y"]).name == "multilabel"  # run.sh's kaggle, one column a label


def test_a_format_the_data_cannot_take_is_refused_with_the_reason(tmp_path):
    root = kaggle_set(tmp_path / "k", ["a"])
    with pytest.raises(UserError, match="--format objectcxr is for a binary .* multi-label \\(x, y\\)"):
        formats.resolve("objectcxr", root, ["x", "y"])
    with pytest.raises(UserError, match="--format multilabel is for a multi-label task; .* binary"):
        formats.resolve("multilabel", root, [""])
    with pytest.raises(UserError, match="--format kaggle needs .*test.csv"):
        formats.resolve("kaggle", tmp_path / "no_test_csv", [""])


@pytest.mark.parametrize("name, labels", [("objectcxr", [""]), ("kaggle", [""]), ("multilabel", ["x", "y"]),
                                         ("multiclass", ["x", "y"])])
def test_each_format_writes_what_its_own_check_accepts_and_its_check_catches_a_broken_file(tmp_path, name, labels):
    names = ["a.png", "b.png", "c.png"]  # as test.csv writes them; the ids are paths inside the data set
    ids = [f"test/{n}" for n in names]
    root = kaggle_set(tmp_path / "data", names, sample_columns=labels[::-1] if labels != [""] else None)
    chosen = formats.get(name)
    submission = chosen.plan(tmp_path / "out", root, ids, labels)
    predictions = np.linspace(0.1, 0.9, 3 * len(labels)).reshape(3, len(labels))
    submission.write(predictions)
    written = submission.path.read_text().splitlines()
    expected = ids if name == "objectcxr" else names
    chosen.validate(submission.path, expected)
    if name in ("multilabel", "multiclass"):  # the sample's column order and row order, whatever the labels' order
        assert written[0] == "id,y,x" and [line.split(",")[0] for line in written[1:]] == names[::-1]
    submission.path.write_text("\n".join(written[:-1]) + "\n")  # a row lost
    with pytest.raises(UserError, match="no prediction"):
        chosen.validate(submission.path, expected)


def test_the_auc_metric_is_scikit_learn_s_and_the_mean_over_labels():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (200, 3))
    p = rng.random((200, 3)) + 0.3 * y
    auc = metrics.get("auc")
    assert auc.higher_is_better and {"binary", "multilabel"} <= set(auc.tasks)
    assert auc.function(y[:, 0], p[:, 0]) == pytest.approx(roc_auc_score(y[:, 0], p[:, 0]), abs=1e-12)
    assert auc.function(y, p) == pytest.approx(np.mean([roc_auc_score(y[:, j], p[:, j]) for j in range(3)]), abs=1e-12)
    assert metrics.for_task("binary") is auc and metrics.for_task("multilabel") is auc


def test_the_froc_metric_is_the_challenge_s_froc_in_truth_predictions_order():
    objects = {"a": [Shape(0, (0, 0, 10, 10))], "b": []}
    points = {"a": [(0.9, 5, 5), (0.2, 50, 50)], "b": [(0.8, 1, 1)]}
    entry = metrics.get("froc")
    assert entry.tasks == ("localization",) and metrics.for_task("localization") is entry
    assert entry.function(objects, points) == froc(points, objects)[0]


def test_the_best_value_follows_the_metric_s_direction_and_prefers_the_earliest_on_a_tie():
    higher = metrics.get("auc")
    assert higher.best([0.7, 0.9, 0.9, np.nan]) == 1
    assert higher.shortfall(0.8, 0.9) == pytest.approx(0.1)
    lower = metrics.Metric("log_loss", False, lambda y, p: 0.0, ("binary",), "a loss: lower is better")
    assert lower.best([0.7, 0.2, 0.2 + 1e-12, 0.5]) == 1
    assert lower.shortfall(0.3, 0.2) == pytest.approx(0.1)
    with pytest.raises(UserError, match="unknown"):
        metrics.get("jaccard")


def test_train_py_s_metric_choices_are_the_registry_s_image_metrics():
    image_metrics = {name for name, m in metrics.METRICS.items() if set(m.tasks) & {"binary", "multiclass"}}
    assert set(config.METRIC_NAMES) == {"auto", *image_metrics}
    for task in ("binary", "multilabel", "multiclass"):
        assert metrics.for_task(task).name == "auc"
