"""Study-level predictions: where a submission has one row per study (a test table whose ids name
folders of images: cxr/data/studies.py), each study's prediction is the mean or the max of its
images' blended predictions. The rule is chosen on OOF: the blend's nested predictions of the
training images, aggregated per training study each way, scored by the blend's metric against
the study's label (the max of its images': a study is positive when any image is). Mean wins a
tie (it is the smoother rule), and without training studies of two images or more both rules
score alike, so mean stands (said in the report)."""
import numpy as np
import pandas as pd

from cxr.blending.classes import as_class_probabilities
from cxr.metrics import registry
from cxr.metrics.auc import certain_rows

RULES = ("mean", "max")  # simplest first: a tie goes to mean


def aggregate(values, studies, rule, multiclass=False):
    """(study ids in the order first seen, (studies, columns) of each study's rows combined by
    `rule`, NaN (an uncertain label left out) skipped); a multi-class task's rows scaled back to
    probabilities."""
    if rule not in RULES:
        raise ValueError(f"study rule {rule}: expected one of {', '.join(RULES)}")
    values = np.asarray(values, dtype=float).reshape(len(values), -1)
    codes, order = pd.factorize(pd.Series(list(studies), dtype=str), use_na_sentinel=False)
    grouped = pd.DataFrame(values).groupby(codes, sort=True)
    combined = (grouped.mean() if rule == "mean" else grouped.max()).to_numpy()
    return list(order), as_class_probabilities(combined) if multiclass else combined


def study_score(metric, truth, predictions, multiclass=False):
    """`metric` (a registry Metric) of (n, columns) predictions: a multi-class task's rows as a whole,
    else each column on its certain rows, averaged over the columns."""
    if multiclass:
        return float(metric.function(truth, predictions))
    values = []
    for j in range(truth.shape[1]):
        kept = certain_rows(truth[:, j])
        if len(np.unique(truth[kept, j])) == 2:
            values.append(metric.function(truth[kept, j], predictions[kept, j]))
    return float(np.mean(values)) if values else float("nan")


def choose_rule(truth, nested, studies, metric_name="auc", multiclass=False):
    """(the rule, report rows) for the training images' `truth` and nested OOF predictions
    ((n, columns) each; NaN where a label is uncertain) grouped by `studies`: each rule's score
    of the studies' aggregated predictions, and the image-level score beside them."""
    metric = registry.get(metric_name)
    truth = np.asarray(truth, dtype=float).reshape(len(truth), -1)
    nested = np.asarray(nested, dtype=float).reshape(len(nested), -1)
    _, study_truth = aggregate(truth, studies, "max")
    # a study is positive when an image is; with no positive and an uncertain image, it is uncertain
    _, uncertain = aggregate(np.isnan(truth).astype(float), studies, "max")
    study_truth = np.where((uncertain > 0) & ~(study_truth == 1), np.nan, study_truth)
    sizes = pd.Series(list(studies)).value_counts()
    images = as_class_probabilities(nested) if multiclass else nested  # on the studies' scale
    rows = [{"level": "image", "rule": "", "n": len(truth), metric.name: study_score(metric, truth, images, multiclass)}]
    for rule in RULES:
        _, combined = aggregate(nested, studies, rule, multiclass)
        rows.append({"level": "study", "rule": rule, "n": len(sizes),
                     metric.name: study_score(metric, study_truth, combined, multiclass)})
    scores = [row[metric.name] for row in rows[1:]]
    chosen = RULES[metric.best(scores)] if np.isfinite(scores).any() and (sizes > 1).any() else "mean"
    for row in rows:
        row["chosen"] = row["rule"] == chosen
    return chosen, pd.DataFrame(rows), int((sizes > 1).sum())


def test_studies(root, test_ids):
    """The study (the id the test table writes) of each test image when some study has several
    images, else None (a submission of one row per image)."""
    from cxr.data.layouts import kaggle_test_ids, kaggle_test_table

    if kaggle_test_table(root) is None:
        return None
    written = kaggle_test_ids(root)[1]
    studies = [written.get(i, i) for i in test_ids]
    return studies if len(set(studies)) < len(studies) else None


def first_images(studies, test_ids):
    """The first test image of each study, in the order the studies are first seen: the ids a
    submission plan maps to the studies' written ids."""
    first = {}
    for study, image_id in zip(studies, test_ids):
        first.setdefault(study, image_id)
    return list(first.values())
