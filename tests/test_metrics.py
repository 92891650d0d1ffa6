import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from cxr.metrics.auc import roc_auc, safe_roc_auc


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
    from cxr.metrics.thresholds import confusion, threshold_metrics, youden_threshold

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

    from cxr.metrics.thresholds import youden_threshold

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.random(300) + y * 0.4, 2)
    fpr, tpr, thresholds = roc_curve(y, s)
    j = tpr - fpr
    best = thresholds[np.flatnonzero(j == j.max())].max()
    assert youden_threshold(y, s) == pytest.approx(best)


def test_youden_threshold_on_200000_rows_stays_small():
    """A rows x thresholds matrix would take about 40 GB here; the sweep needs a few arrays of n."""
    import tracemalloc

    from cxr.metrics.thresholds import youden_threshold

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200_000)
    s = rng.random(200_000) + y * 0.5
    tracemalloc.start()
    threshold = youden_threshold(y, s)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50e6
    assert 0.4 < threshold < 1.1


def test_bootstrap_intervals_hold_the_estimate_and_narrow_with_more_data():
    from cxr.metrics.thresholds import bootstrap_intervals, threshold_metrics

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
    from cxr.metrics.auc import delong_covariance

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
    from cxr.metrics.auc import delong_test

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    strong = rng.random(2000) + 1.0 * y
    weak = rng.random(2000) + 0.3 * y
    result = delong_test(y, strong, weak)
    assert result["difference"] > 0.1 and result["p_value"] < 1e-6 and result["low"] > 0
    same = delong_test(y, strong, strong + 1e-9 * rng.random(2000))
    assert abs(same["difference"]) < 1e-3 and same["p_value"] > 0.05


# ------------------------------------------------------------------ FROC (Object-CXR's scorer)
def shapes(text):
    from cxr.data.annotations import parse_annotation

    return parse_annotation(text)


def test_hit_tests_for_each_shape():
    from cxr.data.annotations import parse_annotation

    rectangle, ellipse, polygon = parse_annotation("0 10 10 20 20;1 0 0 20 10;2 0 0 10 0 0 10")
    assert rectangle.contains(10, 10) and rectangle.contains(20, 20) and not rectangle.contains(20.01, 15)
    assert ellipse.contains(10, 5) and ellipse.contains(0, 5) and ellipse.contains(10, 0)  # on the ellipse
    assert not ellipse.contains(1, 1)  # inside the box, outside the inscribed ellipse
    assert polygon.contains(2, 2) and polygon.contains(5, 5) and polygon.contains(0, 0)  # inside, hypotenuse, vertex
    assert not polygon.contains(6, 6) and not polygon.contains(-1, 2)


def test_froc_worked_example():
    """4 images, 3 objects (a rectangle and an ellipse in a, a polygon in b); points in order of
    probability: hit the rectangle, inside it again, a false positive, hit the ellipse, a false
    positive, hit the polygon -> sensitivities 1/3, then 2/3 six times: FROC 0.619."""
    from cxr.metrics.froc import froc

    objects = {"a": shapes("0 0 0 10 10;1 50 50 70 60"), "b": shapes("2 0 0 10 0 0 10"), "c": [], "d": []}
    points = {"a": [(0.9, 5, 5), (0.8, 6, 6), (0.6, 60, 55)], "b": [(0.4, 2, 2)], "c": [(0.7, 1, 1), (0.5, 3, 3)]}
    score, sensitivities = froc(points, objects)
    assert sensitivities == pytest.approx([1 / 3] + [2 / 3] * 6)
    assert score == pytest.approx((1 / 3 + 6 * 2 / 3) / 7) and round(score, 3) == 0.619


def test_froc_one_point_hits_every_overlapping_object():
    from cxr.metrics.froc import froc

    objects = {"a": shapes("0 0 0 10 10;1 0 0 10 10"), "b": []}
    score, sensitivities = froc({"a": [(0.9, 5, 5)], "b": [(0.1, 1, 1)] * 16}, objects)
    assert sensitivities == [1.0] * 7 and score == 1.0


def test_froc_one_false_positive_past_two_thresholds_records_only_one():
    from cxr.metrics.froc import froc

    objects = {"a": shapes("0 0 0 10 10;0 20 20 30 30"), "b": [], "c": [], "d": []}
    # FP 1 -> 0.25 per image: reaches 0.125 and 0.25, records only 0.125 (sensitivity 0); then a hit
    # records 0.25 at 1/2; the last hit comes after every threshold it could reach and is lost
    points = {"a": [(0.5, 5, 5), (0.1, 25, 25)], "b": [(0.9, 50, 50)]}
    _, sensitivities = froc(points, objects)
    assert sensitivities == [0.0] + [0.5] * 6


def test_froc_with_fewer_false_positives_than_the_first_threshold_does_not_crash():
    from cxr.metrics.froc import froc

    objects = {f"i{k}": shapes("0 0 0 10 10") if k < 2 else [] for k in range(10)}
    score, sensitivities = froc({"i0": [(0.9, 5, 5)], "i1": [(0.8, 50, 50)]}, objects)  # 1 FP over 10 images
    assert sensitivities == [0.5] * 7 and score == 0.5
    assert froc({}, objects)[0] == 0.0


def test_froc_refuses_points_on_unknown_images():
    from cxr.metrics.froc import froc

    with pytest.raises(ValueError, match="not in the ground truth"):
        froc({"x": [(0.5, 1, 1)]}, {"a": []})


def test_froc_of_a_resample_equals_froc_of_the_images_copied_out():
    """A bootstrap resample scored by counting copies gives what the scorer gives on the
    resample written out (each drawn image renamed, its points and objects copied)."""
    from cxr.data.annotations import Shape
    from cxr.metrics.froc import froc, froc_of_ranked, ranked_hits

    rng = np.random.default_rng(3)
    objects = {f"i{k}": [Shape(0, (10 * j, 0, 10 * j + 8, 8)) for j in range(rng.integers(0, 3))] for k in range(12)}
    points = {image: [(float(rng.random()), float(rng.integers(0, 30)), float(rng.integers(0, 9))) for _ in range(4)]
              for image in objects}
    images = list(objects)
    ranked = ranked_hits(points, objects)
    for _ in range(20):
        drawn = rng.integers(len(images), size=len(images))
        if not any(objects[images[i]] for i in drawn):
            continue
        written = {f"{n}:{images[i]}": images[i] for n, i in enumerate(sorted(drawn))}
        expected = froc({c: points[i] for c, i in written.items()}, {c: objects[i] for c, i in written.items()})
        copies = dict(zip(images, np.bincount(drawn, minlength=len(images)).tolist()))
        assert froc_of_ranked(ranked, objects, copies=copies) == pytest.approx(expected)


def test_prior_shift_is_not_trusted_when_em_misses_the_oof_rows_known_share(capsys):
    """Calibrated posteriors: EM on the OOF rows finds their share, the test estimate moves the threshold.
    Biased ones (the logit + 1.5, as a map's maximum is high on every image): EM on the OOF rows runs off
    (0.80 for a share of 0.50), the estimate is flagged and 0.5 stays."""
    from cxr.blending.report import prior_shift

    rng = np.random.default_rng(1)
    y, test_y = rng.random(4000) < 0.5, rng.random(400) < 0.3
    posterior = lambda labels: 1 / (1 + np.exp(-2 * rng.normal(np.where(labels, 1.0, -1.0), 1.0)))  # noqa: E731
    P, T = posterior(y)[:, None], posterior(test_y)[:, None]
    calibrated = prior_shift(y, P, T, test_y)
    assert calibrated["trusted"] and calibrated["test_positive_share_estimate"] == pytest.approx(0.3, abs=0.05)
    assert calibrated["accuracy_threshold"] > 0.55
    biased = lambda p: 1 / (1 + np.exp(-np.log(p / (1 - p)) - 1.5))  # noqa: E731
    flagged = prior_shift(y, biased(P), biased(T), test_y)
    assert not flagged["trusted"] and flagged["accuracy_threshold"] == 0.5
    assert 0.5 / 400 <= flagged["test_positive_share_estimate"] <= 1 - 0.5 / 400
    assert "not to be trusted: EM on the OOF rows reads" in capsys.readouterr().out


def test_em_prior_estimate_recovers_the_class_balance_of_a_shifted_set():
    """Posteriors of a calibrated model trained at 74 % positives, applied to a set with 40 %: EM finds 40 %,
    and the adjusted threshold equals the 0.5 threshold of posteriors computed under 40 % directly."""
    from cxr.testside.prior import adjust_to_prior, estimate_prior, prior_threshold

    rng = np.random.default_rng(0)
    y = rng.random(20_000) < 0.40
    x = rng.normal(np.where(y, 1.0, -1.0), 1.0)
    likelihood_ratio = np.exp(2 * x)  # N(1, 1) vs N(-1, 1)
    posterior_at = lambda prior: prior * likelihood_ratio / (prior * likelihood_ratio + 1 - prior)  # noqa: E731
    trained = posterior_at(0.74)
    assert estimate_prior(trained, 0.74) == pytest.approx(0.40, abs=0.015)
    assert np.allclose(adjust_to_prior(trained, 0.74, 0.40), posterior_at(0.40))
    t = prior_threshold(0.74, 0.40)
    assert np.array_equal(trained >= t, posterior_at(0.40) >= 0.5 - 1e-12) or np.mean(
        (trained >= t) != (posterior_at(0.40) >= 0.5)) < 1e-3
    assert prior_threshold(0.5, 0.5) == 0.5 and adjust_to_prior([0.3], 0.6, 0.6)[0] == pytest.approx(0.3)
