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
