"""The metrics, by name: what selection (the best epoch of a fold), blending (the method chosen
by nested score, the weak-fold rule) and the reports ask. A metric is one entry: its name, whether
higher is better, the function, the tasks it scores. To add one (a challenge's own metric): write
its function in a module of this folder, with a test against a hand computation, and add an
entry to METRICS; docs/development.md walks through it.

    function(truth, predictions) -> float
        binary, multilabel: truth (n,) or (n, labels) 0/1 targets, predictions the probabilities
        multiclass:         truth (n, classes) one-hot, predictions (n, classes) probabilities
        localization:       truth {image: [Shape]}, predictions {image: [(probability, x, y)]}
        boxes:              truth {image: [box]}, predictions {image: [(score, box)]} (box: x1, y1, x2, y2)
        classed boxes:      truth {image: [(class, box)]}, predictions {image: [(class, score, box)]}
        masks:              truth and predictions {image: boolean mask}"""
from dataclasses import dataclass
from typing import Callable

import numpy as np

from cxr.metrics.auc import mean_auc
from cxr.metrics.classes import accuracy, log_loss
from cxr.metrics.detection import mean_dice, rsna_map, voc_map
from cxr.metrics.froc import froc_score


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    function: Callable
    tasks: tuple  # of "binary", "multilabel", "multiclass", "localization"
    summary: str

    def best(self, values, tolerance=1e-9):
        """Index of the best of `values` (NaN never wins); within `tolerance` of it, the earliest
        (the simplest, when values are listed simplest first)."""
        signed = np.asarray(values, dtype=float) * (1 if self.higher_is_better else -1)
        return int(np.flatnonzero(signed >= np.nanmax(signed) - tolerance)[0])

    def shortfall(self, value, reference):
        """How far `value` is behind `reference` (positive: worse)."""
        return (reference - value) if self.higher_is_better else (value - reference)


METRICS = {
    "auc": Metric("auc", True, mean_auc, ("binary", "multilabel", "multiclass"),
                  "ROC AUC (Mann-Whitney, ties one half); a multi-label task's mean over its labels, a multi-class "
                  "task's macro one-vs-rest mean over its classes"),
    "log_loss": Metric("log_loss", False, log_loss, ("multiclass", "binary"),
                       "log loss: the mean negative log probability of the true class (rows scaled to sum to 1, "
                       "clipped at 1e-15)"),
    "accuracy": Metric("accuracy", True, accuracy, ("multiclass", "binary"),
                       "accuracy: the share of images whose most probable class is the true one (binary: p > 0.5)"),
    "rsna_map": Metric("rsna_map", True, rsna_map, ("boxes",),
                       "RSNA Pneumonia's mean over images of TP / (TP + FP + FN) averaged over IoU 0.40-0.75 "
                       "(an image with no truth and no box left out)"),
    "voc_map": Metric("voc_map", True, lambda truth, predictions: voc_map(truth, predictions)[0], ("classed boxes",),
                      "VinBigData's PASCAL VOC mean average precision at IoU 0.4 over the classes with truth boxes"),
    "dice": Metric("dice", True, mean_dice, ("masks",),
                   "SIIM-ACR's mean Dice over images (an empty prediction on an empty truth scores 1)"),
    "froc": Metric("froc", True, froc_score, ("localization",),
                   "Object-CXR's FROC: mean sensitivity at 0.125, 0.25, 0.5, 1, 2, 4, 8 false positives per image"),
}


def get(name):
    """The Metric called `name` (a UserError listing the names for an unknown one)."""
    from cxr.errors import UserError

    if name not in METRICS:
        raise UserError(f"metric {name}: unknown (choose from {', '.join(METRICS)})")
    return METRICS[name]


def for_task(task):
    """The default metric of a task: the first entry that scores it."""
    return next(m for m in METRICS.values() if task in m.tasks)
