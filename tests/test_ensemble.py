import numpy as np
import pytest

from ensemble import (best_method, majority_vote, methods, optuna_weights, softmax_auc_weights, uniform_weights,
                      weighted_mean, weighted_rank_mean)
from metrics import roc_auc

P = np.array([[0.9, 0.8, 0.2],
              [0.6, 0.5, 0.1],
              [0.2, 0.4, 0.7],
              [0.1, 0.2, 0.3]])
y = np.array([1, 1, 0, 0])


def test_mean():
    assert np.allclose(weighted_mean(P, uniform_weights(P)), P.mean(1))
    assert np.allclose(weighted_mean(P, [2, 0, 0]), P[:, 0])


def test_rank_mean():
    # ranks per column / 4: col0 [4,3,2,1], col1 [4,3,2,1], col2 [2,1,4,3]
    expected = np.array([4 + 4 + 2, 3 + 3 + 1, 2 + 2 + 4, 1 + 1 + 3]) / 4 / 3
    assert np.allclose(weighted_rank_mean(P, uniform_weights(P)), expected)


def test_majority_vote_averages_the_winning_side():
    blended = majority_vote(P, uniform_weights(P))
    # row 0: 2 of 3 above 0.5 -> mean(0.9, 0.8); row 1: 1 of 3 (0.5 is not above) -> mean(0.5, 0.1);
    # row 2: 1 of 3 -> mean(0.2, 0.4); row 3: none -> mean of all three
    assert np.allclose(blended, [0.85, 0.3, 0.3, 0.2])


def test_majority_vote_tie_takes_all_models():
    assert np.allclose(majority_vote(np.array([[0.9, 0.1]]), [0.5, 0.5]), [0.5])


def test_softmax_auc_weights():
    aucs = roc_auc(y, P)  # [1.0, 1.0, 0.0]
    assert np.allclose(aucs, [1, 1, 0])
    w = softmax_auc_weights(P, y, temperature=1.0)
    e = np.exp(aucs)
    assert np.allclose(w, e / e.sum())
    assert np.allclose(softmax_auc_weights(P, y, temperature=125.0), [0.5, 0.5, 0.0], atol=1e-12)


def test_optuna_finds_the_informative_model_and_is_seeded():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 2, 300)
    good = np.clip(target * 0.3 + rng.random(300) * 0.7, 0, 1)
    noise = rng.random((300, 2))
    M = np.column_stack([noise[:, 0], good, noise[:, 1]])
    w = optuna_weights(M, target, n_trials=60, seed=3)
    assert w.argmax() == 1 and w.sum() == pytest.approx(1.0)
    assert roc_auc(target, weighted_mean(M, w)) >= roc_auc(target, M.mean(1))
    assert np.array_equal(w, optuna_weights(M, target, n_trials=60, seed=3))


def test_every_method_weights_sum_to_one_and_blend_in_unit_interval():
    for method in methods(n_trials=10):
        w = method.fit(P, y)
        blended = method.combine(P, w)
        assert w.sum() == pytest.approx(1.0), method.name
        assert blended.shape == (4,) and ((blended >= 0) & (blended <= 1)).all(), method.name


def test_tie_goes_to_the_simpler_method():
    assert best_method([0.9, 0.95, 0.95]) == 1
    assert best_method([0.95, 0.95, 0.96]) == 2
    assert best_method([0.95, 0.9, 0.95]) == 0
