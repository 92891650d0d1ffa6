"""The overfit check (train.py --overfit-batches N): can the model and the pipeline memorize a
few fixed batches? The first step of the training recipe this toolkit follows (Karpathy's "A
Recipe for Training Neural Networks": overfit one batch). A model that cannot drive the
training loss of N batches it sees again and again near zero, with augmentation and
regularization off, has a bug before it has a tuning problem: labels that do not match the
images, a loss on the wrong outputs, frozen weights, a learning rate of zero."""
import dataclasses
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Subset

NEAR_ZERO = 0.05  # passed: a pass's mean loss below this share of the first pass's
MIN_STEPS = 200  # at least this many optimizer steps before the check gives up


def overfit_settings(cfg):
    """The settings with everything that keeps a model from memorizing switched off: augmentation,
    mixup and cutmix, dropout, stochastic depth, weight decay, EMA, class balancing, the map
    models' random crop scaling; a constant learning rate without warm-up."""
    return dataclasses.replace(cfg, aug="none", mixup=0.0, cutmix=0.0, drop_rate=0.0, drop_path=0.0, weight_decay=0.0,
                               ema=False, balance="none", scale_aug=0.0, schedule="constant", warmup_epochs=0.0,
                               accumulate=1, freeze_epochs=0)


def fixed_batches(dataset, n_batches, batch_size, generator):
    """A loader of `n_batches` batches of one seeded draw of the training rows, in the same
    order every pass (plain indices: a map model's crops are drawn once per row, then kept)."""
    rows = torch.randperm(len(dataset), generator=generator)[:n_batches * batch_size].tolist()
    return DataLoader(Subset(dataset, rows), batch_size=batch_size, shuffle=False)


@dataclass
class OverfitResult:
    losses: list  # the mean training loss of each pass
    steps: int

    @property
    def ratio(self):
        return self.losses[-1] / max(self.losses[0], 1e-12)

    @property
    def target(self):
        """The loss a pass must fall below: NEAR_ZERO x the first pass's."""
        return NEAR_ZERO * self.losses[0]

    @property
    def passed(self):
        return self.ratio < NEAR_ZERO


def run_check(model, loader, optimizer, scheduler, scaler, device, precision, loss_fn, passes, on_pass=None):
    """Train on `loader`'s batches for up to `passes` passes, stopping once a pass's loss is near
    zero (below NEAR_ZERO x the first's). `on_pass(index, loss)` sees each pass."""
    from cxr.training import engine

    losses = []
    for index in range(1, passes + 1):
        loss = engine.train_one_epoch(model, loader, optimizer, scheduler, scaler, device, precision,
                                      loss_fn=loss_fn, desc=f"overfit pass {index}").loss
        losses.append(loss)
        if on_pass is not None:
            on_pass(index, loss)
        if OverfitResult(losses, 0).passed:
            break
    return OverfitResult(losses, len(losses) * len(loader))


def check(cfg, model, data, device, precision):
    """The check as train.py runs it on a built model and FoldData (settings from overfit_settings)."""
    from cxr.training import engine
    from cxr.training.losses import loss_for
    from cxr.training import recipe

    loader = fixed_batches(data.train_loader.dataset, cfg.overfit_batches, cfg.batch_size, data.generator)
    optimizer = recipe.build_optimizer(engine.unwrap(model), cfg.lr, cfg.weight_decay, cfg.optimizer, cfg.momentum)
    scheduler = recipe.build_scheduler(optimizer, "constant", 1, 0, cfg.lr)
    scaler = torch.amp.GradScaler(device.type, enabled=precision.scale_loss)
    every = max(passes_for(cfg) // 10, 1)

    def report(index, loss):
        if index == 1 or index % every == 0:
            print(f"overfit pass {index}: training loss {loss:.4f}", flush=True)

    loss_fn = loss_for(cfg.kind, None, data.task, cfg.label_smoothing, reducible_only=True)
    result = run_check(model, loader, optimizer, scheduler, scaler, device, precision, loss_fn, passes_for(cfg), report)
    return result, verdict(result, len(loader), len(loader.dataset))


def passes_for(cfg):
    """--epochs passes, and at least MIN_STEPS optimizer steps' worth."""
    return max(cfg.epochs, -(-MIN_STEPS // cfg.overfit_batches))


def verdict(result, n_batches, n_images):
    first, last = result.losses[0], result.losses[-1]
    said = (f"training loss {first:.4f} -> {last:.4f} ({100 * result.ratio:.1f} % of the first pass) after "
            f"{len(result.losses)} passes ({result.steps} steps) over {n_batches} fixed batches ({n_images} images)")
    if result.passed:
        return f"overfit check PASSED: {said}: the model and the pipeline can learn"
    return (f"overfit check FAILED: {said}; it should fall below {100 * NEAR_ZERO:.0f} %. Look for labels that do "
            f"not match the images, frozen weights or a learning rate of 0, a loss on the wrong outputs; or give "
            f"it more passes (--epochs) or another --lr")
