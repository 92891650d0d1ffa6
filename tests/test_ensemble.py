import numpy as np
import pytest

import json

from cxr.blending.methods import (best_method, caruana_weights, fit_stacking, majority_vote, methods,
    nested_predictions, optuna_weights, reference_quantiles, reference_ranks, softmax_auc_weights, stacking_combine,
    uniform_weights, weighted_logit_mean, weighted_mean, weighted_rank_mean)
from cxr.metrics.auc import roc_auc

P = np.array([[0.9, 0.8, 0.2],
              [0.6, 0.5, 0.1],
              [0.2, 0.4, 0.7],
              [0.1, 0.2, 0.3]])
y = np.array([1, 1, 0, 0])


def test_mean():
    assert np.allclose(weighted_mean(P, uniform_weights(P)), P.mean(1))
    assert np.allclose(weighted_mean(P, [2, 0, 0]), P[:, 0])


def test_rank_mean_reads_ranks_against_the_oof_reference():
    reference = np.linspace(0.0, 1.0, 101)[:, None].repeat(2, axis=1)  # OOF predictions 0.00 ... 1.00
    quantiles = reference_quantiles(reference)
    new = np.array([[0.25, 0.75], [0.5, 0.5]])  # one image at a time gets the same rank as in a batch
    assert np.allclose(reference_ranks(new, quantiles), new)
    assert np.allclose(reference_ranks(new[:1], quantiles), new[:1])
    assert np.allclose(weighted_rank_mean(new, [1, 1], quantiles), [0.5, 0.5])
    assert np.allclose(weighted_rank_mean(new, [3, 1], quantiles), [0.375, 0.5])


def test_logit_mean_is_the_geometric_mean_of_odds():
    # odds 4 and 1 -> geometric mean 2 -> probability 2/3
    assert np.allclose(weighted_logit_mean(np.array([[0.8, 0.5]]), [1, 1]), [2 / 3])
    assert np.allclose(weighted_logit_mean(P, [1, 0, 0]), P[:, 0])


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
    M, target = informative_case()
    w = optuna_weights(M, target, n_trials=60, seed=3)
    assert w.argmax() == 1 and w.sum() == pytest.approx(1.0)
    assert roc_auc(target, weighted_mean(M, w)) >= roc_auc(target, M.mean(1))
    assert np.array_equal(w, optuna_weights(M, target, n_trials=60, seed=3))


def informative_case(n=300, noise_models=2, seed=0):
    """One informative model (column 1) among pure noise; the target."""
    rng = np.random.default_rng(seed)
    target = rng.integers(0, 2, n)
    good = np.clip(target * 0.3 + rng.random(n) * 0.7, 0, 1)
    noise = rng.random((n, noise_models))
    return np.column_stack([noise[:, :1], good, noise[:, 1:]]), target


def test_caruana_selects_the_informative_model_and_is_seeded():
    M, target = informative_case(noise_models=5)
    w = caruana_weights(M, target, n_bags=8, seed=1)
    assert w.argmax() == 1 and w.sum() == pytest.approx(1.0) and w[1] > 0.5
    assert np.array_equal(w, caruana_weights(M, target, n_bags=8, seed=1))


def test_stacking_learns_a_negative_weight_for_an_inverted_model():
    M, target = informative_case(noise_models=1)
    rng = np.random.default_rng(5)
    M[:, 0] = 1 - np.clip(target * 0.3 + rng.random(len(target)) * 0.7, 0, 1)  # model 0: informative, but inverted
    params = fit_stacking(M, target)
    assert params["weights"][0] < 0 < params["weights"][1] and params["C"] in np.logspace(-3, 2, 8)
    assert roc_auc(target, stacking_combine(M, params)) > roc_auc(target, M.mean(1)) + 0.2
    ranked = fit_stacking(M, target, features="rank")
    assert roc_auc(target, stacking_combine(M, ranked)) > 0.8


@pytest.mark.parametrize("name", ["optuna", "caruana"])
def test_nested_evaluation_reveals_an_overfitted_weight_search(name):
    """10 models of pure noise on 100 images: a weight search climbs to an in-sample AUC
    near 0.6, the nested estimate stays near 0.5, where the truth is."""
    rng = np.random.default_rng(0)
    M, target = rng.random((100, 10)), rng.integers(0, 2, 100)
    folds = np.arange(100) % 5
    method = next(m for m in methods(n_trials=100, seed=0) if m.name == name)
    in_sample = roc_auc(target, method.combine(M, method.fit(M, target)))
    nested = roc_auc(target, nested_predictions(method, M, target, folds))
    assert in_sample > 0.58 and abs(nested - 0.5) < 0.06 and in_sample - nested > 0.05


def test_optuna_storage_lets_processes_share_one_study(tmp_path):
    import optuna

    from cxr.blending.methods import shared_study_name

    M, target = informative_case()
    storage = f"sqlite:///{tmp_path / 'blend.db'}"
    optuna_weights(M, target, n_trials=5, seed=1, storage=storage, study_name="s")
    optuna_weights(M, target, n_trials=5, seed=2, storage=storage, study_name="s")
    assert len(optuna.load_study(study_name=shared_study_name("s", M, target), storage=storage).trials) == 10


def test_a_shared_study_never_mixes_other_data(tmp_path):
    """Another label, a longer model list or retrained OOF predictions under the same --study-name
    start their own study (the longer list used to fail with a KeyError on the missing weight)."""
    import optuna

    M, target = informative_case()
    storage = f"sqlite:///{tmp_path / 'blend.db'}"
    other_label = np.random.default_rng(5).integers(0, 2, len(target))
    more_models = np.column_stack([M, M[:, :1] * 0.5])
    retrained = M + 0.01
    for P, t in ((M, target), (M, other_label), (more_models, target), (retrained, target)):
        weights = optuna_weights(P, t, n_trials=4, seed=1, storage=storage, study_name="s")
        assert weights.shape == (P.shape[1],)
    studies = optuna.get_all_study_summaries(storage)
    assert len(studies) == 4 and all(study.n_trials == 4 for study in studies)


def test_every_method_gives_json_params_and_probabilities():
    for method in methods(n_trials=10):
        params = method.fit(P, y)
        json.dumps(params)
        blended = method.combine(P, params)
        assert len(params["weights"]) == 3, method.name
        if method.name != "stacking":
            assert sum(params["weights"]) == pytest.approx(1.0), method.name
        assert blended.shape == (4,) and ((blended >= 0) & (blended <= 1)).all(), method.name


def test_tie_goes_to_the_simpler_method():
    assert best_method([0.9, 0.95, 0.95]) == 1
    assert best_method([0.95, 0.95, 0.96]) == 2
    assert best_method([0.95, 0.9, 0.95]) == 0
