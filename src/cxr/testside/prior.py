"""Label shift: probabilities moved to a new class prior, the test side's prior estimated
by EM (Saerens et al. 2002), and the threshold that goes with it."""
import numpy as np


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
