"""Blending methods as pure functions of (OOF matrix, targets).

Every method is a pair: `fit(P, y) -> weights` learns one weight per model on the OOF
matrix P (n images x m models, probabilities) and targets y; `combine(P, weights) -> (n,)`
applies them to any matrix of the same models (OOF or test). The list METHODS is ordered
from simplest to most complex: a tie in OOF AUC goes to the earlier one."""
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.stats import rankdata

from metrics import roc_auc


def uniform_weights(P, y=None):
    return np.full(P.shape[1], 1.0 / P.shape[1])


def weighted_mean(P, weights):
    return P @ (np.asarray(weights) / np.sum(weights))


def weighted_rank_mean(P, weights):
    """Mean of each model's ranks scaled to (0, 1]: only the order of each model counts."""
    return weighted_mean(rankdata(P, axis=0) / len(P), weights)


def majority_vote(P, weights, threshold=0.5):
    """The Object-CXR roadmap's vote: the side (positive / negative at `threshold`) holding
    the weighted majority wins, and the image gets the mean probability of the models on
    that side; a tied vote gets the mean of all."""
    weights = np.asarray(weights) / np.sum(weights)
    votes_pos = P > threshold
    share_pos = votes_pos @ weights
    share_pos = share_pos[:, None]
    side = np.where(share_pos > 0.5, votes_pos, np.where(share_pos < 0.5, ~votes_pos, True))
    side_weights = side * weights
    return (P * side_weights).sum(1) / side_weights.sum(1)


def softmax_auc_weights(P, y, temperature=125.0):
    """w_i = softmax(temperature * AUC_i): the roadmap's weighting (temperature 125)."""
    scores = temperature * roc_auc(y, P)
    scores = np.exp(scores - scores.max())
    return scores / scores.sum()


def optuna_weights(P, y, n_trials=100, seed=42):
    """Search weights on the simplex that maximize the OOF AUC of the weighted mean (Optuna TPE).

    Each model gets a free value in [0, 1]; weights are those values normalized to sum 1.
    The uniform blend is the first trial, so the search never returns worse than the mean."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    m = P.shape[1]

    def to_weights(values):
        values = np.asarray(values, dtype=float)
        return values / values.sum() if values.sum() > 0 else np.full(m, 1.0 / m)

    def objective(trial):
        values = [trial.suggest_float(f"w{i}", 0.0, 1.0) for i in range(m)]
        return roc_auc(y, weighted_mean(P, to_weights(values)))

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.enqueue_trial({f"w{i}": 1.0 for i in range(m)})
    study.optimize(objective, n_trials=n_trials)
    return to_weights([study.best_params[f"w{i}"] for i in range(m)])


@dataclass(frozen=True)
class Method:
    name: str
    fit: Callable
    combine: Callable


def methods(temperature=125.0, n_trials=100, seed=42):
    """The blending methods, simplest first."""
    return [
        Method("mean", uniform_weights, weighted_mean),
        Method("rank_mean", uniform_weights, weighted_rank_mean),
        Method("majority_vote", uniform_weights, majority_vote),
        Method("softmax_auc", lambda P, y: softmax_auc_weights(P, y, temperature), weighted_mean),
        Method("optuna", lambda P, y: optuna_weights(P, y, n_trials, seed), weighted_mean),
    ]


def best_method(scores, tolerance=1e-9):
    """Index of the highest score; within `tolerance`, the earliest (simplest) wins."""
    scores = np.asarray(scores, dtype=float)
    return int(np.flatnonzero(scores >= np.nanmax(scores) - tolerance)[0])
