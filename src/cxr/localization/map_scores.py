"""A map model's image score: from its object map (the maximum, the mean) or its head,
chosen per fold on the OOF images (auto), or fixed; every score is written beside the chosen
one (SCORE_COLUMNS), so blend.py can put every fold of a model on one scale."""

import numpy as np
import torch
import torch.nn.functional as F


MAP_IMAGE_SCORES = ("max", "head", "mean")  # in order of preference on a tie
UNSEEN_IMAGE_SCORE = "mean"  # --image-score auto under --select last, which promises no look at the validation rows
SCORE_COLUMNS = {name: f"score_{name}" for name in MAP_IMAGE_SCORES}  # every image score, beside the chosen one


def map_maximum(maps):
    """(N,) the maximum of each object map (N, h, w) or maps (N, classes, h, w) after a 3x3 mean
    (one hot cell alone is not an object)."""
    maps = torch.as_tensor(np.asarray(maps, dtype=np.float32))
    maps = maps[:, None] if maps.ndim == 3 else maps
    return F.avg_pool2d(maps, 3, stride=1, padding=1, count_include_pad=False).amax((1, 2, 3)).numpy()


def any_object_map(maps):
    """(N, h, w) maps of any object: a model's one map as it is, maps per class (N, classes, h, w)
    as their maximum per cell (points and FROC ask where an object is, not which)."""
    if maps.ndim == 3:
        return maps
    return maps.amax(1) if hasattr(maps, "amax") else maps.max(1)  # a torch tensor, or a NumPy array


def map_image_probability(head, maps, score):
    """(N, 1) image probabilities of a map model: the smoothed map's maximum (max), the image
    head's probability (head, `head` (N, 1)), or the mean of the two (mean)."""
    if score == "head":
        return np.asarray(head, dtype=float)
    peak = map_maximum(maps)[:, None]
    return peak if score == "max" else (peak + np.asarray(head, dtype=float)) / 2


def choose_image_score(targets, head, maps):
    """(name, (N, 1) probabilities) of the image score with the best AUC against `targets`
    (a tie goes to the earlier of MAP_IMAGE_SCORES)."""
    from cxr.metrics.auc import safe_roc_auc

    candidates = {name: map_image_probability(head, maps, name) for name in MAP_IMAGE_SCORES}
    aucs = {name: safe_roc_auc(np.asarray(targets).ravel(), p[:, 0]) for name, p in candidates.items()}
    best = max(MAP_IMAGE_SCORES, key=lambda name: (np.nan_to_num(aucs[name], nan=-1.0), -MAP_IMAGE_SCORES.index(name)))
    return best, candidates[best]


def every_image_score(head, maps):
    """{name: (N, 1) probabilities} of every image score (an empty side gives empty columns)."""
    if maps is None or not len(head):
        return {name: np.zeros((len(head), 1)) for name in MAP_IMAGE_SCORES}
    return {name: map_image_probability(head, maps, name) for name in MAP_IMAGE_SCORES}
