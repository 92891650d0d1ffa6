"""Metrics, checked against hand computations and scikit-learn (tests/test_metrics.py)."""
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


def mean_auc(targets, scores):
    """The mean AUC over label columns of (n, labels) targets and scores (NaN columns, with one
    class only, left out; NaN when every column is); (n,) arrays are one column."""
    targets, scores = np.asarray(targets), np.asarray(scores)
    targets, scores = targets.reshape(len(targets), -1), scores.reshape(len(scores), -1)
    aucs = [safe_roc_auc(targets[:, j], scores[:, j]) for j in range(targets.shape[1])]
    return float(np.nanmean(aucs)) if np.isfinite(aucs).any() else float("nan")


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


FROC_THRESHOLDS = (0.125, 0.25, 0.5, 1, 2, 4, 8)  # false positives per image


def froc(points, objects, thresholds=FROC_THRESHOLDS, copies=None):
    """Object-CXR's FROC, as the challenge's scorer computes it (see the design notes).

    `points`: {image: [(probability, x, y), ...]}; `objects`: {image: [Shape, ...]} for every
    test image (an image without objects has []). All points of all images are ranked by
    probability together (a stable sort, images in `objects` order). A point inside objects
    not hit before hits each of them; a point inside only hit objects counts nothing; a point
    outside every object is a false positive. After each point, if false positives / images
    has reached the next threshold, the sensitivity is recorded for it (at most one threshold
    per point); thresholds never reached repeat the last recorded value; if none was reached,
    the final sensitivity stands for all. Returns (FROC = mean over thresholds, sensitivities).
    `copies` ({image: count}, default 1 each) scores a resample in which an image appears
    `count` times (a bootstrap), as froc_of_ranked does."""
    return froc_of_ranked(ranked_hits(points, objects), objects, thresholds, copies)


def ranked_hits(points, objects):
    """[(image, indices of its objects the point is inside)] of every point, ranked by
    probability (stable, images in `objects` order): the hit tests done once."""
    unknown = sorted(set(points) - set(objects))
    if unknown:
        raise ValueError(f"predictions for images that are not in the ground truth, first {unknown[0]}")
    ranked = sorted(((float(p), image, x, y) for image in objects for p, x, y in points.get(image, [])),
                    key=lambda point: -point[0])
    return [(image, [i for i, shape in enumerate(objects[image]) if shape.contains(x, y)]) for _, image, x, y in ranked]


def froc_of_ranked(ranked, objects, thresholds=FROC_THRESHOLDS, copies=None):
    """FROC (and the sensitivities) of ranked_hits' list. An image present `copies[image]`
    times (0 = left out) has that many identical copies of its points and objects: the copies
    of one point come together (equal probabilities), each hitting its own copy of the objects
    or counting one false positive, and each may record one threshold."""
    count = (lambda image: 1) if copies is None else (lambda image: copies.get(image, 0))
    n_images = sum(count(image) for image in objects)
    n_objects = sum(len(shapes) * count(image) for image, shapes in objects.items())
    hit = {image: [False] * len(shapes) for image, shapes in objects.items()}
    hits = false_positives = 0
    recorded = []
    for image, inside in ranked:
        for _ in range(count(image)):
            if not inside:
                false_positives += 1
            fresh = [i for i in inside if not hit[image][i]]
            hits += len(fresh)
            if len(recorded) < len(thresholds) and false_positives / n_images >= thresholds[len(recorded)]:
                recorded.append(hits / n_objects)
        for i in inside:
            hit[image][i] = True
    if not recorded:
        recorded = [hits / n_objects]
    sensitivities = recorded + [recorded[-1]] * (len(thresholds) - len(recorded))
    return float(np.mean(sensitivities)), sensitivities


def adjust_to_prior(probabilities, train_prior, new_prior):
    """Posteriors learned under the class balance `train_prior`, re-weighted for `new_prior`
    (Bayes' rule with the likelihoods held fixed; the ranking, hence the AUC, is unchanged)."""
    p = np.asarray(probabilities, dtype=float)
    a, b = new_prior / train_prior, (1 - new_prior) / (1 - train_prior)
    return a * p / (a * p + b * (1 - p))


def estimate_prior(probabilities, train_prior, iterations=100, tolerance=1e-6):
    """The positive share of an unlabelled set by EM on the priors (Saerens, Latinne and Decaestecker,
    2002): adjust the posteriors to the current estimate, take their mean as the next, until it settles."""
    prior = float(train_prior)
    for _ in range(iterations):
        updated = float(np.mean(adjust_to_prior(probabilities, train_prior, prior)))
        if abs(updated - prior) < tolerance:
            return updated
        prior = updated
    return prior


def prior_threshold(train_prior, new_prior):
    """The score threshold (on posteriors learned under `train_prior`) that the accuracy-optimal
    0.5 threshold under `new_prior` becomes: where the adjusted posterior is exactly 0.5."""
    a, b = new_prior / train_prior, (1 - new_prior) / (1 - train_prior)
    return b / (a + b)
