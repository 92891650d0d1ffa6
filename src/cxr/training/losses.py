"""The losses: binary cross-entropy for classifiers (one sigmoid per label), softmax
cross-entropy for a multi-class task; for map models a focal loss over the object map, divided
by a running mean of object cells (so a batch with few objects does not jump), plus the image
logit's cross-entropy; for detectors FCOS's losses plus the image logit's."""

import torch
import torch.nn.functional as F


def classifier_loss(pos_weight=None, label_smoothing=0.0):
    """BCE over every label of the image logits; `pos_weight` (one per label) weighs positives;
    `label_smoothing` e moves each 0/1 target e/2 towards the other class. A target below 0 (an
    uncertain label under --uncertain ignore: the data set gives -1) is left out: the mean runs
    over the known targets."""
    def loss(logits, targets):
        weight = pos_weight.to(targets.device) if pos_weight is not None else None
        known = targets >= 0
        targets = targets.clamp(min=0)
        targets = targets * (1 - label_smoothing) + label_smoothing / 2 if label_smoothing else targets
        if bool(known.all()):
            return F.binary_cross_entropy_with_logits(logits.float(), targets, pos_weight=weight)
        each = F.binary_cross_entropy_with_logits(logits.float(), targets, pos_weight=weight, reduction="none")
        return (each * known).sum() / known.sum().clamp(min=1)
    return loss


def multiclass_loss(class_weight=None, label_smoothing=0.0):
    """Softmax cross-entropy of the image logits against one-hot (or mixed: mixup) class targets;
    `class_weight` (one per class) weighs each class's images, `label_smoothing` as torch's."""
    def loss(logits, targets):
        weight = class_weight.to(targets.device) if class_weight is not None else None
        return F.cross_entropy(logits.float(), targets, weight=weight, label_smoothing=label_smoothing)
    return loss


class MapLoss:
    """A map model's loss: focal loss over the object map's cells against the mask, plus the
    image head's BCE against whether the crop holds an object.

    The focal sum is divided by the object cells, as RetinaNet does (the many empty cells do not
    drown the few object cells), but by a running mean of the object cells per batch (momentum
    0.9, as detectron2's RetinaNet), not by this batch's own count: a batch holding two object
    cells would otherwise weigh its empty cells a hundred times more than a batch holding two
    hundred, and such a gradient spike is what threw small folds off course. The running mean
    is training state: state_dict() goes into last.pt, so a resumed run continues it."""

    MOMENTUM = 0.9

    def __init__(self, pos_weight=None):
        self.head_loss = classifier_loss(pos_weight)
        self.normalizer = None  # object cells per batch, running mean; set by the first batch

    def __call__(self, outputs, targets, masks):
        from torchvision.ops import sigmoid_focal_loss

        head, maps = outputs
        focal = sigmoid_focal_loss(maps.float(), masks, alpha=0.25, gamma=2.0, reduction="sum")
        cells = masks.sum().detach().clamp(min=1.0)
        if self.normalizer is None:
            self.normalizer = cells
        elif torch.is_grad_enabled():  # a training step moves the mean; evaluation leaves it
            self.normalizer = self.MOMENTUM * self.normalizer.to(cells.device) + (1 - self.MOMENTUM) * cells
        return focal / self.normalizer + self.head_loss(head, targets)

    def state_dict(self):
        return {"normalizer": None if self.normalizer is None else float(self.normalizer)}

    def load_state_dict(self, state):
        value = state.get("normalizer")
        self.normalizer = None if value is None else torch.tensor(float(value))


def map_loss(pos_weight=None):
    """A map model's loss (MapLoss)."""
    return MapLoss(pos_weight)


def detector_loss(pos_weight=None, centre_ness=True):
    """A detector's loss: FCOS's own (focal loss over the locations' classes, GIoU of their boxes,
    centre-ness BCE, each per foreground location) plus the image head's BCE against whether the
    crop holds an object. `outputs` = (head logits, the detection loss waiting for its targets:
    models/detector.py), `boxes` (b, k, 5) rows of class, x1, y1, x2, y2, padded with -1 rows.
    `centre_ness` False leaves that term out: its targets are soft (in (0, 1]), so it cannot fall
    below their entropy, and the overfit check asks for a loss near zero."""
    head_loss = classifier_loss(pos_weight)

    def loss(outputs, targets, boxes):
        head, detection_loss = outputs
        wanted = [{"boxes": rows[rows[:, 0] >= 0, 1:], "labels": rows[rows[:, 0] >= 0, 0].long()} for rows in boxes]
        terms = detection_loss(wanted)
        return sum(v for k, v in terms.items() if centre_ness or k != "bbox_ctrness") + head_loss(head, targets)
    return loss


def loss_for(kind, weight=None, task="binary", label_smoothing=0.0, reducible_only=False):
    """The training loss of a kind of model and task: map_loss, detector_loss, multiclass_loss
    (`weight` per class) or classifier_loss (`weight`: BCE's pos_weight per label). `reducible_only`:
    the terms that can reach zero (the overfit check's; a detector's centre-ness cannot)."""
    if kind == "map":
        return map_loss(weight)
    if kind == "detector":
        return detector_loss(weight, centre_ness=not reducible_only)
    return (multiclass_loss if task == "multiclass" else classifier_loss)(weight, label_smoothing)
