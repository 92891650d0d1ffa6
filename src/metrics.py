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
