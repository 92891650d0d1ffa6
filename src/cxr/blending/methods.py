"""Blending methods as pure functions of (OOF matrix, targets), and their honest evaluation.

Every method is a pair: `fit(P, y) -> params` learns from the OOF matrix P (n images x m
models, probabilities) and the targets y, and returns a JSON-ready dict (always with one
`weights` entry per model); `combine(P, params) -> (n,)` applies it to any matrix of the
same models (OOF or test). `methods()` lists them from simplest to most complex: a tie goes
to the earlier one.

In-sample OOF AUC flatters every method that learns (its weights were climbed on those very
rows); `nested_predictions` refits a method without each fold and predicts that fold, so its
AUC is an out-of-sample estimate and the fair basis for choosing a method."""
import hashlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.special import expit, logit

from cxr.metrics.auc import roc_auc

EPS = 1e-6


# ------------------------------------------------------------------ combiners
def weighted_mean(P, weights):
    return P @ (np.asarray(weights, dtype=float) / np.sum(weights))


def reference_quantiles(P, points=257):
    """Per model, `points` quantiles of its OOF predictions: the reference that ranks are read
    against, so a new image (or a batch of one) gets the rank it would have had among the OOF
    images, not a rank within whatever batch it came in."""
    return np.quantile(P, np.linspace(0.0, 1.0, points), axis=0).T


def reference_ranks(P, quantiles):
    """Each column's values as their place (0..1) in that model's reference distribution."""
    quantiles = np.asarray(quantiles, dtype=float)
    levels = np.linspace(0.0, 1.0, quantiles.shape[1])
    return np.column_stack([np.interp(P[:, j], quantiles[j], levels) for j in range(P.shape[1])])


def weighted_rank_mean(P, weights, quantiles):
    return weighted_mean(reference_ranks(P, quantiles), weights)


def logits(P):
    return logit(np.clip(P, EPS, 1 - EPS))


def weighted_logit_mean(P, weights):
    """Sigmoid of the weighted mean logit: the weighted geometric mean of the odds."""
    return expit(weighted_mean(logits(P), weights))


def majority_vote(P, weights, threshold=0.5):
    """The Object-CXR roadmap's vote: the side (positive / negative at `threshold`) holding
    the weighted majority wins, and the image gets the mean probability of the models on
    that side; a tied vote gets the mean of all."""
    weights = np.asarray(weights, dtype=float) / np.sum(weights)
    votes_pos = P > threshold
    share_pos = (votes_pos @ weights)[:, None]
    side = np.where(share_pos > 0.5, votes_pos, np.where(share_pos < 0.5, ~votes_pos, True))
    side_weights = side * weights
    return (P * side_weights).sum(1) / side_weights.sum(1)


# ------------------------------------------------------------------ weight learners
def uniform_weights(P, y=None):
    return np.full(P.shape[1], 1.0 / P.shape[1])


def softmax_auc_weights(P, y, temperature=125.0):
    """w_i = softmax(temperature * AUC_i): the roadmap's weighting (temperature 125)."""
    scores = temperature * roc_auc(y, P)
    scores = np.exp(scores - scores.max())
    return scores / scores.sum()


def optuna_weights(P, y, n_trials=100, seed=42, storage=None, study_name=None):
    """Search weights on the simplex that maximize the OOF AUC of the weighted mean (Optuna TPE).

    Each model gets a free value in [0, 1]; weights are those values normalized to sum 1
    (a Dirichlet-style projection onto the simplex). The uniform blend is the first trial, so
    the search never returns worse than the mean. With `storage` (an Optuna RDB URL such as
    sqlite:///blend.db or postgresql://...) and a `study_name`, several processes add their
    trials to one shared study and the best of all of them is returned. The study's full name
    ends in a fingerprint of (P, y): another label, model list or retrained OOF file starts a
    study of its own instead of joining one scored on other data."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    m = P.shape[1]

    def to_weights(values):
        values = np.asarray(values, dtype=float)
        return values / values.sum() if values.sum() > 0 else np.full(m, 1.0 / m)

    def objective(trial):
        values = [trial.suggest_float(f"w{i}", 0.0, 1.0) for i in range(m)]
        return roc_auc(y, weighted_mean(P, to_weights(values)))

    if storage is not None:
        study_name = shared_study_name(study_name, P, y)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
                                storage=storage, study_name=study_name, load_if_exists=storage is not None)
    if not study.trials:
        study.enqueue_trial({f"w{i}": 1.0 for i in range(m)})
    study.optimize(objective, n_trials=n_trials)
    return to_weights([study.best_params[f"w{i}"] for i in range(m)])


def shared_study_name(base, P, y):
    """`<base>-<12 hex digits of the OOF matrix and targets>`: one study per blend problem."""
    digest = hashlib.sha1(np.ascontiguousarray(P, dtype=np.float64).tobytes())
    digest.update(np.asarray(P.shape, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(y, dtype=np.float64).tobytes())
    return f"{base or 'blend'}-{digest.hexdigest()[:12]}"


def caruana_weights(P, y, n_bags=10, bag_fraction=0.5, steps=30, init_top=3, seed=42):
    """Caruana et al.'s ensemble selection (2004): forward selection with replacement of the
    model whose addition most raises the AUC of the mean, from a sorted initialization (the
    `init_top` best single models), bagged over random halves of the models to resist
    overfitting; the weights are the selection counts averaged over bags."""
    rng = np.random.default_rng(seed)
    m = P.shape[1]
    counts = np.zeros(m)
    for _ in range(n_bags if m > 2 else 1):
        bag = np.sort(rng.choice(m, size=max(2, int(round(bag_fraction * m))), replace=False)) if m > 2 else np.arange(m)
        counts += select_with_replacement(P[:, bag], y, steps, init_top) @ np.eye(m)[bag]
    return counts / counts.sum()


def select_with_replacement(P, y, steps, init_top):
    """Counts per column of P after greedy forward selection; the best prefix is kept."""
    m = P.shape[1]
    single = roc_auc(y, P)
    picks = list(np.argsort(-single, kind="stable")[:min(init_top, m)])
    total = P[:, picks].sum(1)
    best_auc, best_len = roc_auc(y, total), len(picks)
    for _ in range(steps):
        candidates = roc_auc(y, total[:, None] + P)  # all m additions at once
        pick = int(np.argmax(candidates))
        picks.append(pick)
        total = total + P[:, pick]
        if candidates[pick] > best_auc + 1e-12:
            best_auc, best_len = candidates[pick], len(picks)
    return np.bincount(picks[:best_len], minlength=m).astype(float)


def stacking_features(P, params):
    return logits(P) if params["features"] == "logit" else reference_ranks(P, params["quantiles"])


def fit_stacking(P, y, features="logit", inner_folds=5, seed=42):
    """Logistic regression on the models' logits (or reference ranks); its L2 strength C is
    chosen by an inner stratified CV on AUC. Returns weights (the coefficients), intercept, C."""
    import warnings

    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    params = {"features": features, **({"quantiles": reference_quantiles(P).tolist()} if features == "rank" else {})}
    folds = max(2, min(inner_folds, int(np.bincount(np.asarray(y, dtype=int)).min())))
    model = LogisticRegressionCV(Cs=np.logspace(-3, 2, 8), cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
                                 scoring="roc_auc", max_iter=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # scikit-learn's announced parameter renames
        model.fit(stacking_features(P, params), y)
    return {"weights": model.coef_[0].tolist(), "intercept": float(model.intercept_[0]), "C": float(model.C_[0]),
            **params}


def stacking_combine(P, params):
    return expit(stacking_features(P, params) @ np.asarray(params["weights"]) + params["intercept"])


# ------------------------------------------------------------------ the list
@dataclass(frozen=True)
class Method:
    name: str
    fit: Callable  # (P, y) -> params dict with "weights"
    combine: Callable  # (P, params) -> (n,)


def weighted(name, learn, combiner):
    """A method whose params are only weights."""
    return Method(name, lambda P, y: {"weights": np.asarray(learn(P, y), dtype=float).tolist()},
                  lambda P, params: combiner(P, params["weights"]))


def methods(temperature=125.0, n_trials=100, seed=42, storage=None, study_name=None, bags=10):
    """The blending methods, simplest first."""
    return [
        weighted("mean", uniform_weights, weighted_mean),
        Method("rank_mean", lambda P, y: {"weights": uniform_weights(P).tolist(), "quantiles": reference_quantiles(P).tolist()},
               lambda P, params: weighted_rank_mean(P, params["weights"], params["quantiles"])),
        weighted("logit_mean", uniform_weights, weighted_logit_mean),
        weighted("majority_vote", uniform_weights, majority_vote),
        weighted("softmax_auc", lambda P, y: softmax_auc_weights(P, y, temperature), weighted_mean),
        weighted("optuna", lambda P, y: optuna_weights(P, y, n_trials, seed, storage, study_name), weighted_mean),
        weighted("caruana", lambda P, y: caruana_weights(P, y, n_bags=bags, seed=seed), weighted_mean),
        Method("stacking", lambda P, y: fit_stacking(P, y, seed=seed), stacking_combine),
    ]


def nested_predictions(method, P, y, folds):
    """Out-of-sample blend predictions: for each fold k, fit on the other folds' OOF rows and
    combine fold k's rows. Their AUC estimates how the method does on images it never saw."""
    folds = np.asarray(folds)
    out = np.empty(len(y))
    for k in np.unique(folds):
        held = folds == k
        out[held] = method.combine(P[held], method.fit(P[~held], y[~held]))
    return out


def best_method(scores, metric="auc", tolerance=1e-9):
    """Index of the best score by `metric` (cxr/metrics/registry.py); within `tolerance`, the
    earliest (simplest) method wins."""
    from cxr.metrics.registry import get

    return get(metric).best(scores, tolerance)
