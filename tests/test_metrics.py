import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from metrics import roc_auc, safe_roc_auc


def test_auc_by_hand():
    # positives 0.8, 0.4; negatives 0.4, 0.1: pairs (0.8>0.4), (0.8>0.1), (0.4=0.4 -> 1/2), (0.4>0.1) = 3.5 / 4
    assert roc_auc([1, 1, 0, 0], [0.8, 0.4, 0.4, 0.1]) == pytest.approx(0.875)
    assert roc_auc([0, 1], [0.2, 0.9]) == 1.0
    assert roc_auc([0, 1], [0.9, 0.2]) == 0.0


@pytest.mark.parametrize("seed", range(20))
def test_auc_equals_sklearn_on_random_cases(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 400))
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    scores = rng.random(n)
    if seed % 2:  # heavy ties
        scores = np.round(scores, 1)
    assert roc_auc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


def test_auc_columns_vectorized():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 100)
    P = rng.random((100, 4))
    expected = [roc_auc_score(y, P[:, j]) for j in range(4)]
    assert np.allclose(roc_auc(y, P), expected)


def test_one_class_auc():
    with pytest.raises(ValueError):
        roc_auc([1, 1, 1], [0.1, 0.2, 0.3])
    assert np.isnan(safe_roc_auc([0, 0], [0.1, 0.2]))


def test_youden_threshold_and_rates_by_hand():
    from metrics import confusion, threshold_metrics, youden_threshold

    y = [0, 0, 0, 1, 1, 1]
    s = [0.1, 0.4, 0.6, 0.5, 0.7, 0.9]
    # t=0.7: sens 2/3 spec 1 (J 0.667); t=0.5: sens 1 spec 2/3 (J 0.667): a tie goes to the higher threshold
    assert youden_threshold(y, s) == 0.7
    assert youden_threshold([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.9]) == 0.3
    assert confusion(y, s, 0.5).tolist() == [[2, 1], [0, 3]]
    m = threshold_metrics(y, s, 0.5)
    assert (m["accuracy"], m["sensitivity"], m["specificity"]) == pytest.approx((5 / 6, 1.0, 2 / 3))


@pytest.mark.parametrize("seed", range(5))
def test_youden_threshold_agrees_with_sklearn_roc_curve(seed):
    from sklearn.metrics import roc_curve

    from metrics import youden_threshold

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.random(300) + y * 0.4, 2)
    fpr, tpr, thresholds = roc_curve(y, s)
    j = tpr - fpr
    best = thresholds[np.flatnonzero(j == j.max())].max()
    assert youden_threshold(y, s) == pytest.approx(best)


def test_bootstrap_intervals_hold_the_estimate_and_narrow_with_more_data():
    from metrics import bootstrap_intervals, threshold_metrics

    rng = np.random.default_rng(0)
    widths = []
    for n in (100, 2000):
        y = rng.integers(0, 2, n)
        s = rng.random(n) + y * 0.5
        point = threshold_metrics(y, s, 0.75)
        intervals = bootstrap_intervals(y, s, 0.75, n_boot=300, seed=1)
        for name, (low, high) in intervals.items():
            assert low <= point[name] <= high, name
        widths.append(intervals["auc"][1] - intervals["auc"][0])
    assert widths[1] < widths[0] / 2


def structural_components(y, s):
    """DeLong's variance the slow way: every positive-negative pair compared explicitly."""
    y = np.asarray(y).astype(bool)
    pos, neg = s[y], s[~y]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    return psi.mean(1), psi.mean(0)


def test_delong_covariance_equals_the_pairwise_definition():
    from metrics import delong_covariance

    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 60)
    a = np.round(rng.random(60) + 0.5 * y, 1)  # rounded: ties on purpose
    b = np.round(a * 0.5 + rng.random(60) * 0.5, 1)
    aucs, cov = delong_covariance(y, np.column_stack([a, b]))
    va, wa = structural_components(y, a)
    vb, wb = structural_components(y, b)
    m, n = int(y.sum()), int((1 - y).sum())
    assert aucs == pytest.approx([va.mean(), vb.mean()])
    assert aucs == pytest.approx([roc_auc_score(y, a), roc_auc_score(y, b)])
    expected = np.cov(va, vb)[0, 1] / m + np.cov(wa, wb)[0, 1] / n
    assert cov[0, 1] == pytest.approx(expected)
    assert cov[0, 0] == pytest.approx(np.var(va, ddof=1) / m + np.var(wa, ddof=1) / n)


def test_delong_test_finds_a_real_difference_and_not_a_fake_one():
    from metrics import delong_test

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    strong = rng.random(2000) + 1.0 * y
    weak = rng.random(2000) + 0.3 * y
    result = delong_test(y, strong, weak)
    assert result["difference"] > 0.1 and result["p_value"] < 1e-6 and result["low"] > 0
    same = delong_test(y, strong, strong + 1e-9 * rng.random(2000))
    assert abs(same["difference"]) < 1e-3 and same["p_value"] > 0.05
