"""Train one epoch, evaluate, predict; device, AMP and memory format; checkpoints.

GPU-only speed-ups (AMP, channels_last, cudnn.benchmark, torch.compile) are switches in
TrainConfig; on a CPU they fall back to plain fp32 (bf16 autocast only when named), which
the tests exercise."""
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from cxr.artifacts import save_torch
from cxr.training.losses import classifier_loss


@dataclass(frozen=True)
class Precision:
    """How the forward pass runs: autocast dtype (None = fp32) and whether to scale the loss."""

    dtype: torch.dtype | None
    scale_loss: bool

    @property
    def name(self):
        return {dtype: name for name, dtype in DTYPES.items()}[self.dtype]


FP32 = Precision(None, False)
DTYPES = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def precision_named(name):
    """The inference precision of a run's recorded one (config.json "precision"): the same autocast
    dtype on any device (a CPU runs fp16 and bf16 autocast too), no loss scaling."""
    if name not in DTYPES:
        raise ValueError(f"precision must be one of {', '.join(DTYPES)}, not {name!r}")
    return Precision(DTYPES[name], False)


def resolve_device(name):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        from cxr.errors import UserError

        raise UserError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    return device


def resolve_precision(amp, device):
    """auto: bf16 where the GPU supports it, else fp16 with a GradScaler. On a CPU, fp32 unless
    bf16 is asked for by name (bench/bench_engine.py measured it 1.43x faster on a 2-core CPU;
    its predictions differ from fp32's in the second or third digit). The precision used is
    recorded in config.json, and inference runs each model in it (precision_named)."""
    if device.type != "cuda":
        return Precision(torch.bfloat16, False) if amp == "bf16" else FP32
    if amp == "off":
        return FP32
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


def to_device(images, device, channels_last, channels=3):
    """The network's input from a loader batch. The loaders give (N, 1, H, W) uint8 images: one
    byte a pixel crosses to the device (a twelfth of float32 RGB), non-blocking from pinned
    memory, and becomes float there: scaled to [0, 1] and normalized with ImageNet's statistics,
    repeated to `channels` = 3 (what ImageNet weights expect) or kept as one channel for an
    in_chans=1 stem (normalized by the channel means). Float batches pass as they are."""
    images = images.to(device, non_blocking=True)
    if images.dtype == torch.uint8:
        images = normalize(images, channels)
    if channels_last and device.type == "cuda":
        images = images.contiguous(memory_format=torch.channels_last)
    return images


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(images, channels=3):
    """(N, 1, H, W) uint8 -> (N, channels, H, W) float32, normalized as albumentations' Normalize does."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device) * 255.0
    std = torch.tensor(IMAGENET_STD, device=images.device) * 255.0
    if channels == 1:
        mean, std = mean.mean(0, keepdim=True), std.mean(0, keepdim=True)
    elif channels != 3:
        raise ValueError(f"a grayscale batch becomes 1 or 3 channels, not {channels}")
    return (images.float() - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def input_channels(model):
    """The channels a network takes (models/factory.py network_of records them; 3 otherwise)."""
    return getattr(unwrap(model), "input_channels", 3)


def train_one_epoch(model, loader, optimizer, scheduler, scaler, device, precision, channels_last=True,
                    loss_fn=None, clip_grad=0.0, ema=None, desc="train", mix=None, accumulate=1, learn=True):
    """One pass over `loader` (batches of images, (b, labels) targets and, for a map model,
    masks). The optimizer steps once every `accumulate` batches (gradient accumulation: the
    effective batch is accumulate x batch, for memory a bigger batch would not fit in), and the
    scheduler and the EMA (when given) with it; `mix(images, targets)` (recipe.batch_mixer)
    mixes a classifier's batches. `loss_fn(outputs, targets, *rest of the batch)` defaults to
    classifier_loss(); `clip_grad` > 0 clips the gradient norm. Returns the mean loss and the
    share of the epoch spent waiting for the loader (near 1: the data pipeline starves the
    model; add --num-workers). `learn` False: the same forward passes in training mode, no
    gradient and no step (the loss the weights have on an epoch's batches; BatchNorm's running
    statistics still move, as in training)."""
    with torch.set_grad_enabled(learn):
        return epoch_pass(model, loader, optimizer, scheduler, scaler, device, precision, channels_last, loss_fn,
                          clip_grad, ema, desc, mix, accumulate, learn)


def epoch_pass(model, loader, optimizer, scheduler, scaler, device, precision, channels_last, loss_fn, clip_grad, ema,
               desc, mix, accumulate, learn):
    """train_one_epoch's loop."""
    model.train()
    loss_fn = loss_fn or classifier_loss()
    channels = input_channels(model)
    total, count, waited = 0.0, 0, 0.0
    group_images = 0  # images whose gradients wait for the next optimizer step
    optimizer.zero_grad(set_to_none=True)
    bar = tqdm(loader, desc=desc, leave=False, dynamic_ncols=True)
    batches = len(loader)
    started = asked = time.perf_counter()
    for index, (images, targets, *rest) in enumerate(bar):
        waited += time.perf_counter() - asked
        images = to_device(images, device, channels_last, channels)
        targets = targets.to(device, dtype=torch.float32)
        rest = [r.to(device, non_blocking=True) for r in rest]
        if mix is not None:
            images, targets = mix(images, targets)
        steps_now = (index + 1) % accumulate == 0 or index + 1 == batches
        with (nullcontext() if steps_now else no_sync(model)):  # DDP: all-reduce once per step
            with autocast(device, precision):
                outputs = model(images)
            loss = loss_fn(outputs, targets, *rest)
            # Accumulating: each batch's mean loss weighs by its images, the sum is divided by the
            # group's images before the step: the mean over the group, as one large batch gives.
            if learn:
                scaler.scale(loss * len(targets) if accumulate > 1 else loss).backward()
        group_images += len(targets)
        if steps_now and learn:
            if accumulate > 1:
                divide_gradients(model, group_images)
            if clip_grad > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            if ema is not None:
                ema.update(unwrap(model), step=scheduler.last_epoch)  # steps taken: the EMA warms up over them
            group_images = 0
        total += loss.item() * len(targets)  # .item() waits for the device: the step is done
        count += len(targets)
        bar.set_postfix(loss=f"{total / count:.4f}")
        asked = time.perf_counter()
    return EpochResult(total / max(count, 1), waited / max(time.perf_counter() - started, 1e-9))


def optimizer_steps(batches, accumulate):
    """Optimizer steps in an epoch of `batches` batches (a last, shorter group steps too)."""
    return math.ceil(batches / max(accumulate, 1))


def divide_gradients(model, images):
    for parameter in model.parameters():
        if parameter.grad is not None:
            parameter.grad.div_(images)


def no_sync(model):
    """DistributedDataParallel's no_sync (gradients stay local until the step's last batch); a no-op otherwise."""
    return model.no_sync() if isinstance(model, torch.nn.parallel.DistributedDataParallel) else nullcontext()


@dataclass(frozen=True)
class EpochResult:
    loss: float  # mean training loss
    data_share: float  # share of the epoch spent waiting for the next batch


# Test-time augmentation: the flips (tensor dims of NCHW) whose logits are averaged.
TTA_FLIPS = {"none": [()], "hflip": [(), (3,)], "flips": [(), (3,), (2,), (2, 3)]}


@torch.no_grad()
def tta_outputs(model, images, device, precision, tta="none"):
    """(image logits (N, labels), object-map probabilities (N, maps, h, w) or None for a
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


def probabilities(logits, multiclass=False):
    """Probabilities of image logits (N, labels): a softmax over the classes of a multi-class
    task, else one sigmoid per label."""
    return torch.softmax(logits, dim=1) if multiclass else torch.sigmoid(logits)


def summed_loss(logits, targets, multiclass=False):
    """(the loss summed over rows, the rows it counts): cross-entropy of rows with a class, or BCE
    averaged over each row's known labels (a target below 0 is unknown: an unlabelled test row,
    an ignored uncertain label), rows without one left out."""
    known = targets >= 0
    if multiclass:
        rows = known.all(1)
        return F.cross_entropy(logits[rows], targets[rows].float(), reduction="sum").item(), int(rows.sum())
    each = F.binary_cross_entropy_with_logits(logits, targets.clamp(min=0).float(), reduction="none") * known
    rows = known.any(1)
    per_row = each.sum(1)[rows] / known.sum(1)[rows]
    return per_row.sum().item(), int(rows.sum())


@torch.no_grad()
def predict_outputs(model, loader, device, precision, channels_last=True, tta="none", desc="predict",
                    multiclass=False):
    """((N, labels) probabilities (sigmoid, or a softmax for a `multiclass` task, of the logits
    averaged over the `tta` views), the mean loss over labelled rows (NaN when there are none),
    and for a map model its float16 object maps, (N, h, w) of its one map or (N, maps, h, w) of a
    map per class, else None)."""
    model.eval()
    probs, maps, losses, count = [], [], 0.0, 0
    for images, targets in tqdm(loader, desc=desc, leave=False, dynamic_ncols=True):
        images = to_device(images, device, channels_last, input_channels(model))
        logits, batch_maps = tta_outputs(model, images, device, precision, tta)
        logits = logits.cpu()
        summed, rows = summed_loss(logits, targets, multiclass)
        losses += summed
        count += rows
        probs.append(probabilities(logits, multiclass).numpy())
        if batch_maps is not None:
            maps.append((batch_maps[:, 0] if batch_maps.shape[1] == 1 else batch_maps).cpu().half().numpy())
    probs = np.concatenate(probs) if probs else np.zeros((0, 1))
    return probs, (losses / count if count else float("nan")), (np.concatenate(maps) if maps else None)


def predict(model, loader, device, precision, channels_last=True, tta="none", desc="predict", multiclass=False):
    """(N, labels) probabilities and the mean loss, as predict_outputs gives them."""
    return predict_outputs(model, loader, device, precision, channels_last, tta, desc, multiclass)[:2]


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
