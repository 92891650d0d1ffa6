"""The learning-rate finder (src/lr_find.py): train briefly while the learning rate grows
exponentially, smooth the losses, and suggest the rate where the loss falls fastest."""
import numpy as np


def smooth(losses, beta=0.9):
    """Bias-corrected exponential moving average, as in fastai's finder."""
    out, avg = [], 0.0
    for i, loss in enumerate(losses, start=1):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta**i))
    return np.asarray(out)


def suggest(lrs, smoothed):
    """The learning rate of the steepest descent of the smoothed loss before its minimum."""
    lrs, smoothed = np.asarray(lrs), np.asarray(smoothed)
    end = int(np.argmin(smoothed)) + 1
    if end < 3:
        return float(lrs[max(end - 1, 0)] / 10)
    slopes = np.gradient(smoothed[:end], np.log(lrs[:end]))
    return float(lrs[int(np.argmin(slopes))])


def sweep(model, loader, device, precision, cfg, task="binary"):
    """(learning rates, losses) of one exponential sweep, with the training loss of `task`."""
    import torch

    from cxr.training import engine, recipe
    from cxr.training.losses import loss_for

    optimizer = recipe.build_optimizer(engine.unwrap(model), cfg.start_lr, cfg.weight_decay, cfg.optimizer, cfg.momentum)
    factor = (cfg.end_lr / cfg.start_lr) ** (1 / max(cfg.steps - 1, 1))
    lrs, losses, best = [], [], np.inf
    loss_fn = loss_for(cfg.kind, None, task, cfg.label_smoothing)
    model.train()
    batches = iter(loader)
    for step in range(cfg.steps):
        try:
            images, targets, *rest = next(batches)
        except StopIteration:
            batches = iter(loader)
            images, targets, *rest = next(batches)
        lr = cfg.start_lr * factor**step
        for group in optimizer.param_groups:
            group["lr"] = lr
        with engine.autocast(device, precision):
            outputs = model(engine.to_device(images, device, cfg.channels_last, engine.input_channels(model)))
        loss = loss_fn(outputs, targets.to(device, dtype=torch.float32), *[r.to(device) for r in rest])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        lrs.append(lr)
        losses.append(loss.item())
        smoothed = smooth(losses)[-1]  # recomputed each step: a sweep is a few hundred steps
        best = min(best, smoothed)
        if not np.isfinite(smoothed) or smoothed > cfg.diverge * best:
            break
    return lrs, losses
