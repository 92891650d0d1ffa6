"""ROC AUC (per label and mean), and DeLong's covariance, test and interval; checked against
hand computations and scikit-learn (tests/test_metrics.py)."""
import numpy as np


# scipy.stats is imported in the functions that use it: it alone takes longer than a script's --help may.


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
    from scipy.stats import rankdata

    ranks = rankdata(scores, axis=0)
    rank_sum = ranks[targets].sum(axis=0)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def safe_roc_auc(targets, scores):
    """roc_auc, or NaN when only one class is present (a tiny validation fold)."""
    try:
        return roc_auc(targets, scores)
    except ValueError:
        return float("nan")


def certain_rows(targets):
    """The rows of a target column that are 0 or 1: an uncertain label (NaN under --uncertain
    ignore, or a soft value) is left out of every metric."""
    targets = np.asarray(targets, dtype=float)
    return (targets == 0) | (targets == 1)


def mean_auc(targets, scores):
    """The mean AUC over label columns of (n, labels) targets and scores, each column on its
    certain rows (certain_rows; NaN columns, with one class only, left out; NaN when every
    column is); (n,) arrays are one column."""
    targets, scores = np.asarray(targets, dtype=float), np.asarray(scores)
    targets, scores = targets.reshape(len(targets), -1), scores.reshape(len(scores), -1)
    kept = [certain_rows(targets[:, j]) for j in range(targets.shape[1])]
    aucs = [safe_roc_auc(targets[k, j], scores[k, j]) for j, k in enumerate(kept)]
    return float(np.nanmean(aucs)) if np.isfinite(aucs).any() else float("nan")


def delong_covariance(targets, scores):
    """(AUCs, covariance matrix of the AUCs) of the columns of `scores` (n, k) on the same
    images, by DeLong et al.'s structural components (the fast midrank form of Sun and Xu,
    2014). Used to test whether two correlated AUCs differ."""
    targets = np.asarray(targets).astype(bool)
    scores = np.asarray(scores, dtype=float).reshape(len(targets), -1)
    pos, neg = scores[targets], scores[~targets]
    m, n = len(pos), len(neg)
    if m < 2 or n < 2:
        raise ValueError("DeLong's variance needs at least two positives and two negatives")
    from scipy.stats import rankdata

    rank_all = rankdata(np.vstack([pos, neg]), axis=0)
    rank_pos, rank_neg = rankdata(pos, axis=0), rankdata(neg, axis=0)
    aucs = (rank_all[:m].sum(0) - m * (m + 1) / 2) / (m * n)
    v_pos = (rank_all[:m] - rank_pos) / n  # per positive: share of negatives it outscores (ties 1/2)
    v_neg = 1.0 - (rank_all[m:] - rank_neg) / m  # per negative: share of positives that outscore it
    covariance = np.atleast_2d(np.cov(v_pos, rowvar=False)) / m + np.atleast_2d(np.cov(v_neg, rowvar=False)) / n
    return aucs, covariance


def delong_test(targets, scores_a, scores_b):
    """Paired DeLong test of AUC(a) - AUC(b) on the same images:
    {"auc_a", "auc_b", "difference", "se", "z", "p_value", "low", "high"} (95 % interval of the difference)."""
    from scipy.stats import norm

    aucs, cov = delong_covariance(targets, np.column_stack([scores_a, scores_b]))
    difference = aucs[0] - aucs[1]
    se = float(np.sqrt(max(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1], 0.0)))
    z = difference / se if se > 0 else (0.0 if difference == 0 else np.inf * np.sign(difference))
    return {"auc_a": float(aucs[0]), "auc_b": float(aucs[1]), "difference": float(difference), "se": se,
            "z": float(z), "p_value": float(2 * norm.sf(abs(z))),
            "low": float(difference - 1.959964 * se), "high": float(difference + 1.959964 * se)}


def delong_interval(targets, scores, level=0.95):
    """(low, high): the AUC's normal-approximation interval with DeLong's standard error
    (analytic, so cheap enough for every row of a report; clipped to [0, 1])."""
    from scipy.stats import norm

    try:
        aucs, cov = delong_covariance(targets, scores)
    except ValueError:
        return float("nan"), float("nan")
    half = norm.ppf(0.5 + level / 2) * np.sqrt(max(cov[0, 0], 0.0))
    return float(max(aucs[0] - half, 0.0)), float(min(aucs[0] + half, 1.0))
