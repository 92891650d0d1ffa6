"""Metrics, checked against hand computations and scikit-learn (tests/test_metrics.py)."""
import numpy as np
from scipy.stats import rankdata


def roc_auc(targets, scores):
    """Area under the ROC curve: the probability that a random positive outscores a random
    negative, ties counting one half (Mann-Whitney U from average ranks).

    `scores` may be (n,) or (n, m): a 2-D input gives one AUC per column, vectorized.
    Raises ValueError when the targets hold only one class."""
    targets = np.asarray(targets).astype(bool)
    scores = np.asarray(scores, dtype=float)
    n_pos = int(targets.sum())
    n_neg = len(targets) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC is undefined when the targets hold only one class")
    ranks = rankdata(scores, axis=0)
    rank_sum = ranks[targets].sum(axis=0)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def safe_roc_auc(targets, scores):
    """roc_auc, or NaN when only one class is present (a tiny validation fold)."""
    try:
        return roc_auc(targets, scores)
    except ValueError:
        return float("nan")


def youden_threshold(targets, scores):
    """The score threshold (predict 1 when score >= it) maximizing Youden's J = sensitivity +
    specificity - 1; ties go to the higher threshold."""
    targets = np.asarray(targets).astype(bool)
    scores = np.asarray(scores, dtype=float)
    candidates = np.unique(scores)[::-1]  # high to low
    positive = scores[None, :] >= candidates[:, None]
    sensitivity = (positive & targets).sum(1) / max(targets.sum(), 1)
    specificity = (~positive & ~targets).sum(1) / max((~targets).sum(), 1)
    return float(candidates[int(np.argmax(sensitivity + specificity - 1))])


def confusion(targets, scores, threshold):
    """[[TN, FP], [FN, TP]] when predicting 1 for score >= threshold."""
    targets = np.asarray(targets).astype(bool)
    predicted = np.asarray(scores, dtype=float) >= threshold
    return np.array([[np.sum(~targets & ~predicted), np.sum(~targets & predicted)],
                     [np.sum(targets & ~predicted), np.sum(targets & predicted)]])


def threshold_metrics(targets, scores, threshold):
    """AUC, and accuracy, sensitivity and specificity at `threshold`."""
    (tn, fp), (fn, tp) = confusion(targets, scores, threshold)
    return {"auc": safe_roc_auc(targets, scores), "accuracy": (tp + tn) / (tn + fp + fn + tp),
            "sensitivity": tp / (tp + fn) if tp + fn else float("nan"),
            "specificity": tn / (tn + fp) if tn + fp else float("nan")}


def bootstrap_intervals(targets, scores, threshold, n_boot=1000, seed=0, level=0.95):
    """Percentile bootstrap intervals of threshold_metrics (images resampled with replacement,
    the threshold held fixed): {metric: (low, high)}."""
    targets, scores = np.asarray(targets), np.asarray(scores, dtype=float)
    rng = np.random.default_rng(seed)
    draws = {name: [] for name in ("auc", "accuracy", "sensitivity", "specificity")}
    for _ in range(n_boot):
        index = rng.integers(0, len(targets), len(targets))
        for name, value in threshold_metrics(targets[index], scores[index], threshold).items():
            draws[name].append(value)
    tail = (1 - level) / 2 * 100
    return {name: tuple(np.nanpercentile(values, [tail, 100 - tail])) for name, values in draws.items()}
