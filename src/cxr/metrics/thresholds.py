"""Metrics at a threshold: Youden's threshold (the point of the ROC curve farthest above the
diagonal), the confusion counts, accuracy, sensitivity, specificity, F1, with bootstrap intervals."""
import numpy as np
from cxr.metrics.auc import safe_roc_auc


def youden_threshold(targets, scores):
    """The score threshold (predict 1 when score >= it) maximizing Youden's J = sensitivity +
    specificity - 1; ties go to the higher threshold."""
    targets = np.asarray(targets).astype(bool)
    scores = np.asarray(scores, dtype=float)
    # A sorted sweep, O(n log n) time and O(n) memory (a rows x thresholds matrix is 10 GB at 100,000 rows).
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], targets[order]
    last_of_each = np.r_[ranked[1:] != ranked[:-1], True]  # the row where each distinct score ends
    true_pos = np.cumsum(hits)[last_of_each]
    false_pos = np.cumsum(~hits)[last_of_each]
    j = true_pos * max((~targets).sum(), 1) - false_pos * max(targets.sum(), 1)  # J x P x N, exact in integers
    return float(ranked[last_of_each][int(np.argmax(j))])  # the first maximum: the highest threshold


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
