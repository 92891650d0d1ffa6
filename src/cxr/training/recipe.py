"""How a model learns: optimizer, learning-rate schedule, class balance, EMA, freezing,
early stopping and per-epoch seeding. Pure builders; train.py wires them into the loop."""
import math
import random

import numpy as np
import torch

SCHEDULES = ("cosine", "onecycle", "constant")
OPTIMIZERS = ("adamw", "sgd")
BALANCE_MODES = ("none", "loss", "sampler")


def build_optimizer(model, lr, weight_decay, name="adamw", momentum=0.9):
    """AdamW, or SGD with Nesterov momentum; biases and normalization weights (1-D parameters)
    get no weight decay."""
    from timm.optim import param_groups_weight_decay

    groups = param_groups_weight_decay(model, weight_decay)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=momentum > 0)
    if name != "adamw":
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {name!r}")
    return torch.optim.AdamW(groups, lr=lr)


def build_scheduler(optimizer, name, total_steps, warmup_steps, max_lr):
    """A per-step schedule over `total_steps`.

    cosine:   linear warm-up from 0 over `warmup_steps`, then cosine decay to 0
    onecycle: torch's OneCycleLR (warm-up share = warmup_steps / total_steps, at least 1 %)
    constant: linear warm-up, then flat"""
    total_steps, warmup_steps = max(int(total_steps), 1), max(int(warmup_steps), 0)
    if name == "onecycle":
        share = min(max(warmup_steps / total_steps, 0.01), 0.99)
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total_steps, pct_start=share)
    if name not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, not {name!r}")

    def factor(step):
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        if name == "constant":
            return 1.0
        progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def positive_weight(targets, mode):
    """BCE pos_weight per target column: n_negative / n_positive when mode is 'loss', else None.
    `targets` is (n,) or (n, labels); the result has one entry per label."""
    if mode != "loss":
        return None
    targets = np.asarray(targets).reshape(len(targets), -1)
    n_pos = (targets == 1).sum(0)
    return torch.tensor((targets == 0).sum(0) / np.maximum(n_pos, 1), dtype=torch.float32)


def class_weight(targets, mode):
    """Cross-entropy weight per class of one-hot `targets` (n, classes) when mode is 'loss':
    n / (classes x n_c), every class weighing as much in all as an average class; else None."""
    if mode != "loss":
        return None
    counts = np.asarray(targets).sum(0)
    return torch.tensor(len(targets) / (len(counts) * np.maximum(counts, 1)), dtype=torch.float32)


def balanced_sampler(targets, generator):
    """Draw each class equally often (with replacement), one epoch = len(targets) draws."""
    targets = np.asarray(targets).astype(int)
    counts = np.bincount(targets, minlength=2).astype(float)
    weights = 1.0 / counts[targets]
    return torch.utils.data.WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double), len(targets),
                                                  replacement=True, generator=generator)


def batch_mixer(mixup_alpha, cutmix_alpha):
    """mix(images, targets) -> (images, targets) with timm's mixup/cutmix, or None when both are 0.

    timm mixes the images (its per-batch mode: one lambda, each image with the batch reversed)
    and returns the lambda, corrected to the pasted box's area for cutmix; the targets are mixed
    here with that lambda, because timm's own target mixing assumes one-hot classes and the
    networks here have one BCE output per label (binary or multi-label). Its lambda comes from
    numpy's random stream, which seed_epoch reseeds: a resumed run mixes alike."""
    if not (mixup_alpha or cutmix_alpha):
        return None
    from timm.data import Mixup

    mixer = Mixup(mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha, label_smoothing=0.0, mode="batch")

    def mix(images, targets):
        lam = mixer._mix_batch(images)  # in place
        return images, lam * targets + (1.0 - lam) * targets.flip(0)
    return mix


def make_ema(model, decay):
    """timm's EMA of the weights (with warm-up, so short runs are not dominated by the start)."""
    from timm.utils import ModelEmaV3

    return ModelEmaV3(model, decay=decay, use_warmup=True)


def set_backbone_trainable(model, trainable):
    """Freeze (or unfreeze) every parameter except the classifier head's."""
    head = {id(p) for p in model.get_classifier().parameters()}
    for parameter in model.parameters():
        parameter.requires_grad_(trainable or id(parameter) in head)


def should_stop(scores, patience):
    """True when the last `patience` epochs brought no better score than the best before them."""
    if patience <= 0 or len(scores) <= patience:
        return False
    return max(scores[-patience:]) <= max(scores[:-patience])


def epochs_for(epochs, min_steps, steps_per_epoch):
    """The epochs a run trains: `epochs`, or more when they would give fewer than `min_steps`
    optimizer steps (a small data set has few steps an epoch, and a network trained from scratch
    needs its steps, not its epochs: docs/training.md#the-default-recipe-and-the-divergence-guard)."""
    return max(int(epochs), math.ceil(max(int(min_steps), 0) / max(int(steps_per_epoch), 1)))


def loss_spike(previous, loss, factor):
    """Why an epoch's training loss says training diverged, or '' when it does not: not finite, or
    above `factor` x the lowest loss of the `previous` epochs (the first epoch has no reference;
    `factor` 0: never). The jumps that ruined small folds were 1.5-2.3 x; a healthy run's hard
    epoch can pass 1.3 x too (its batches, not its weights: fold_run.py then asks the last good
    weights about the same batches; docs/training.md#the-default-recipe-and-the-divergence-guard)."""
    if factor <= 0:
        return ""
    if not math.isfinite(loss):
        return f"training loss {loss}"
    lowest = min((value for value in previous if math.isfinite(value)), default=math.inf)
    if loss > factor * lowest:
        return f"training loss {loss:.4f} is above {factor:g} x the lowest so far ({lowest:.4f})"
    return ""


def scale_learning_rate(optimizer, scheduler, factor):
    """Multiply the learning rate of the rest of the run by `factor`, schedule included: the
    optimizer's groups (and OneCycleLR's initial, peak and final rates kept in them) and the
    base rates LambdaLR multiplies by its schedule."""
    for group in optimizer.param_groups:
        for key in ("lr", "initial_lr", "max_lr", "min_lr"):
            if key in group:
                group[key] *= factor
    if hasattr(scheduler, "base_lrs"):
        scheduler.base_lrs = [lr * factor for lr in scheduler.base_lrs]
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]


def epoch_seed(seed, epoch):
    """The seed of one epoch: the random streams restart from (seed, epoch), so a run resumed
    at epoch e draws exactly what an uninterrupted run draws there."""
    return (int(seed) * 1_000_003 + int(epoch)) % 2**31


def seed_epoch(seed, epoch, generator=None):
    value = epoch_seed(seed, epoch)
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)
    if generator is not None:
        generator.manual_seed(value)


def set_deterministic(enabled):
    """torch's deterministic algorithms (and cuDNN's), for bit-identical reruns at some speed cost."""
    import os

    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(enabled)
