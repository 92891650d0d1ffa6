"""Train one epoch, evaluate, predict; device, AMP and memory format; checkpoints.

GPU-only speed-ups (AMP, channels_last, cudnn.benchmark, torch.compile) are switches in
TrainConfig; on a CPU they fall back to plain fp32 (bf16 autocast only when named), which
the tests exercise."""
import time
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from artifacts import save_torch


@dataclass(frozen=True)
class Precision:
    """How the forward pass runs: autocast dtype (None = fp32) and whether to scale the loss."""

    dtype: torch.dtype | None
    scale_loss: bool

    @property
    def name(self):
        return {None: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[self.dtype]


def resolve_device(name):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        from errors import UserError

        raise UserError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    return device


def resolve_precision(amp, device):
    """auto: bf16 where the GPU supports it, else fp16 with a GradScaler. On a CPU, fp32 unless
    bf16 is asked for by name (bench/bench_engine.py measured it 1.43x faster on this machine's
    CPU, but it changes the predictions, and submit.py must reproduce blend.py's)."""
    if device.type != "cuda":
        return Precision(torch.bfloat16, False) if amp == "bf16" else Precision(None, False)
    if amp == "off":
        return Precision(None, False)
    if amp == "auto":
        amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if amp == "bf16":
        return Precision(torch.bfloat16, False)
    if amp == "fp16":
        return Precision(torch.float16, True)
    raise ValueError(f"amp must be auto, fp16, bf16 or off, not {amp!r}")


def autocast(device, precision):
    if precision.dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=precision.dtype)


def prepare_model(model, device, channels_last=True, compile=False, cudnn_benchmark=True):
    """Move the model to its device; channels_last, cudnn.benchmark and compile only where they pay (CUDA).
    cudnn.benchmark picks kernels by timing them, so it stays off when deterministic algorithms are on."""
    model = model.to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = cudnn_benchmark and not torch.are_deterministic_algorithms_enabled()
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
    if compile:
        model = torch.compile(model)
    return model


def to_device(images, device, channels_last):
    images = images.to(device, non_blocking=True)
    if channels_last and device.type == "cuda":
        images = images.contiguous(memory_format=torch.channels_last)
    return images


def classifier_loss(pos_weight=None):
    """BCE over every label of the image logits; `pos_weight` (one per label) weighs positives."""
    def loss(logits, targets):
        weight = pos_weight.to(targets.device) if pos_weight is not None else None
        return F.binary_cross_entropy_with_logits(logits.float(), targets, pos_weight=weight)
    return loss


def map_loss(pos_weight=None):
    """A map model's loss: focal loss over the object map's cells against the mask (summed and
    divided by the object cells, as RetinaNet does: the many empty cells do not drown the few
    object cells), plus the image head's BCE against whether the crop holds an object."""
    from torchvision.ops import sigmoid_focal_loss

    head_loss = classifier_loss(pos_weight)

    def loss(outputs, targets, masks):
        head, maps = outputs
        focal = sigmoid_focal_loss(maps.float(), masks, alpha=0.25, gamma=2.0, reduction="sum")
        return focal / masks.sum().clamp(min=1.0) + head_loss(head, targets)
    return loss


def loss_for(kind, pos_weight=None):
    """The training loss of a kind of model: classifier_loss or map_loss."""
    return (map_loss if kind == "map" else classifier_loss)(pos_weight)


def train_one_epoch(model, loader, optimizer, scheduler, scaler, device, precision, channels_last=True,
                    loss_fn=None, clip_grad=0.0, ema=None, desc="train", mix=None):
    """One pass over `loader` (batches of images, (b, labels) targets and, for a map model,
    masks); the scheduler (and the EMA, when given) steps every batch; `mix(images, targets)`
    (recipe.batch_mixer) mixes a classifier's batches. `loss_fn(outputs,
    targets, *rest of the batch)` defaults to classifier_loss(); `clip_grad` > 0 clips the
    gradient norm. Returns the mean loss and the share of the epoch spent waiting for the
    loader (near 1: the data pipeline starves the model; add --num-workers)."""
    model.train()
    loss_fn = loss_fn or classifier_loss()
    total, count, waited = 0.0, 0, 0.0
    bar = tqdm(loader, desc=desc, leave=False, dynamic_ncols=True)
    started = asked = time.perf_counter()
    for images, targets, *rest in bar:
        waited += time.perf_counter() - asked
        images = to_device(images, device, channels_last)
        targets = targets.to(device, dtype=torch.float32)
        rest = [r.to(device, non_blocking=True) for r in rest]
        if mix is not None:
            images, targets = mix(images, targets)
        with autocast(device, precision):
            outputs = model(images)
        loss = loss_fn(outputs, targets, *rest)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if clip_grad > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        if ema is not None:
            ema.update(unwrap(model), step=scheduler.last_epoch)  # steps taken: the EMA warms up over them
        total += loss.item() * len(targets)  # .item() waits for the device: the step is done
        count += len(targets)
        bar.set_postfix(loss=f"{total / count:.4f}")
        asked = time.perf_counter()
    return EpochResult(total / max(count, 1), waited / max(time.perf_counter() - started, 1e-9))


@dataclass(frozen=True)
class EpochResult:
    loss: float  # mean training loss
    data_share: float  # share of the epoch spent waiting for the next batch


# Test-time augmentation: the flips (tensor dims of NCHW) whose logits are averaged.
TTA_FLIPS = {"none": [()], "hflip": [(), (3,)], "flips": [(), (3,), (2,), (2, 3)]}


@torch.no_grad()
def tta_outputs(model, images, device, precision, tta="none"):
    """(image logits (N, labels), object-map probabilities (N, labels, h, w) or None for a
    classifier), each averaged over the `tta` views (the maps flipped back first). A map
    model's image logits are its image head's."""
    heads, maps = [], []
    with autocast(device, precision):
        for dims in TTA_FLIPS[tta]:
            output = model(torch.flip(images, dims) if dims else images)
            if isinstance(output, tuple):  # a map model: (head logits, map logits)
                output, logits = output
                maps.append(torch.sigmoid(torch.flip(logits, dims) if dims else logits).float())
            heads.append(output.float())
    return torch.stack(heads).mean(0), (torch.stack(maps).mean(0) if maps else None)


def tta_logits(model, images, device, precision, tta="none"):
    """(N, labels) logits of a batch on its device, averaged over the `tta` views."""
    return tta_outputs(model, images, device, precision, tta)[0]


@torch.no_grad()
def predict_outputs(model, loader, device, precision, channels_last=True, tta="none", desc="predict"):
    """((N, labels) sigmoid probabilities (of the logits averaged over the `tta` views), the
    mean loss over labelled rows (NaN when there are none), and for a map model its (N, h, w)
    float16 object maps of the first label, else None)."""
    model.eval()
    probs, maps, losses, count = [], [], 0.0, 0
    for images, targets in tqdm(loader, desc=desc, leave=False, dynamic_ncols=True):
        logits, batch_maps = tta_outputs(model, to_device(images, device, channels_last), device, precision, tta)
        logits = logits.cpu()
        labelled = (targets >= 0).all(1)
        if labelled.any():
            losses += F.binary_cross_entropy_with_logits(logits[labelled], targets[labelled].float(),
                                                         reduction="sum").item() / targets.shape[1]
            count += int(labelled.sum())
        probs.append(torch.sigmoid(logits).numpy())
        if batch_maps is not None:
            maps.append(batch_maps[:, 0].cpu().half().numpy())
    probs = np.concatenate(probs) if probs else np.zeros((0, 1))
    return probs, (losses / count if count else float("nan")), (np.concatenate(maps) if maps else None)


def predict(model, loader, device, precision, channels_last=True, tta="none", desc="predict"):
    """(N, labels) probabilities and the mean loss, as predict_outputs gives them."""
    return predict_outputs(model, loader, device, precision, channels_last, tta, desc)[:2]


def unwrap(model):
    """The plain module inside DistributedDataParallel (.module) and torch.compile (._orig_mod) wrappers."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        model = model.module
    return getattr(model, "_orig_mod", model)


def save_checkpoint(path, model, config, epoch, score, **training_state):
    """Atomically save weights with the config that made them; `training_state` (optimizer,
    scheduler, scaler, EMA state dicts, the log...) is stored beside them for --resume."""
    state = {"model": unwrap(model).state_dict(), "config": config, "epoch": int(epoch), "score": float(score)}
    save_torch(path, {**state, **training_state})


def load_checkpoint(path, map_location="cpu"):
    return torch.load(path, map_location=map_location, weights_only=True)
