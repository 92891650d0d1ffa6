"""Metrics of class probabilities: accuracy and log loss, for a multi-class task (one-hot truth,
each row's probabilities over the classes) and for binary targets (one column: the positive
class's probability)."""
import numpy as np

EPSILON = 1e-15  # probabilities are clipped to [EPSILON, 1 - EPSILON] for the logarithm (as Kaggle's scorers)


def class_matrix(truth, probabilities):
    """(n, classes) one-hot truth and probabilities; a single column (binary) becomes two, [1 - p, p]."""
    truth = np.asarray(truth, dtype=float).reshape(len(truth), -1)
    probabilities = np.asarray(probabilities, dtype=float).reshape(len(probabilities), -1)
    if truth.shape[1] == 1:
        truth, probabilities = np.hstack([1 - truth, truth]), np.hstack([1 - probabilities, probabilities])
    return truth, probabilities


def accuracy(truth, probabilities):
    """Share of rows whose most probable class is the true one (binary: p > 0.5 is positive);
    NaN without rows."""
    truth, probabilities = class_matrix(truth, probabilities)
    if not len(truth):
        return float("nan")
    return float(np.mean(probabilities.argmax(1) == truth.argmax(1)))


def log_loss(truth, probabilities):
    """Mean negative log probability of the true class, each row's probabilities first scaled
    to sum to 1 and clipped to [1e-15, 1 - 1e-15] (sklearn's and Kaggle's rule); NaN without rows."""
    truth, probabilities = class_matrix(truth, probabilities)
    if not len(truth):
        return float("nan")
    probabilities = probabilities / np.maximum(probabilities.sum(1, keepdims=True), EPSILON)
    probabilities = np.clip(probabilities, EPSILON, 1 - EPSILON)
    return float(-np.mean(np.sum(truth * np.log(probabilities), axis=1)))
