"""One fold's training run: its data, its model, and the epoch loop with checkpoints, EMA,
early stopping and exact resume. train.py and lr_find.py build from here.

Resume is exact on a CPU because nothing random carries over between epochs: every epoch
reseeds torch, numpy and the loader order from (seed, epoch) (recipe.seed_epoch), each row's
augmentation comes from (epoch seed, row) (data.EpochSeeded), and last.pt holds everything
else (weights, optimizer, scheduler, scaler, EMA, the log and the best score). last.pt is written after best.pt, so a run killed
at any moment resumes from a consistent pair."""
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Subset

from cxr.training import engine, losses
from cxr.training import recipe
from cxr.artifacts import cams_file, folds_file, oof_file, test_pred_file, write_csv, write_npz
from cxr.data.cache import ImageSpec, build_cache, uncached_loader
from cxr.data.dataset import EpochSeeded, ImageTable
from cxr.data.annotations import parse_annotation
from cxr.data.competitions import box_classes, map_classes
from cxr.data.labels import prediction_column, target_columns, task_of
from cxr.data.folds import read_folds
from cxr.training.distributed import World, barrier, gather_mean, gather_rows, shard, sync_buffers
from cxr.errors import UserError
from cxr.config import changed_settings, scaled_lr
from cxr.models.kinds import OBJECT_KINDS
from cxr.localization.map_scores import (SCORE_COLUMNS, UNSEEN_IMAGE_SCORE, choose_image_score,
                                         every_image_score, map_image_probability)
from cxr.localization.gradcam import loader_cams
from cxr.localization.targets import BoxedCrops, MaskedCrops, long_sides
from cxr.metrics.registry import for_task, get as get_metric
from cxr.models.map_model import MAP_STRIDE
from cxr.models.backbones import enable_grad_checkpointing
from cxr.models.factory import network_of
from cxr.data.layouts import read_checked
from cxr.data.transforms import eval_transform, train_transform
from cxr.testside.self_training import read_pseudo_labels, with_pseudo_rows

# Settings that may differ between a run and its resumption (they do not change the result).
RESUME_FREE = {"resume", "num_workers", "prefetch", "tensorboard", "tb_dir", "device", "patience", "heatmaps", "seeds",
               "skip_done"}


@dataclass
class FoldData:
    train_rows: pd.DataFrame
    val_rows: pd.DataFrame
    test: pd.DataFrame
    train_loader: DataLoader
    val_loader: DataLoader
    test_loader: DataLoader
    generator: torch.Generator  # the training order's; reseeded every epoch
    columns: list  # the target column(s): ['target'], or one 'target_<label>' per label
    annotated: bool  # the training table has object annotations (FROC can be scored)
    world: World = World()  # the processes training this fold together (torchrun), each loading a shard
    image_score: str = ""  # a map model's image score (map_scores.MAP_IMAGE_SCORES, or auto); '' for a classifier
    metric: str = "auto"  # --metric: what chooses the best epoch (registry name; auto: the task's)
    map_classes: list = field(default_factory=list)  # a map model's class per object map ([]: one map)

    def split(self, name):
        """(loader of this process's shard, number of rows, the shard's row indices) of 'val' or 'test'."""
        loader, n = (self.val_loader, len(self.val_rows)) if name == "val" else (self.test_loader, len(self.test))
        return loader, n, shard(n, self.world)

    def predict(self, model, split, device, precision, cfg, desc):
        """((n, labels) probabilities of every row of `split` ('val' or 'test') in table order,
        mean loss, (n, h, w) object maps of a map model or None): each process predicts its
        shard, the shards are gathered on every process. A map model's probabilities are its
        image head's (see image_probabilities)."""
        loader, n, indices = self.split(split)
        probs, loss, maps = engine.predict_outputs(engine.unwrap(model), loader, device, precision, cfg.channels_last,
                                                   cfg.tta, desc=desc, multiclass=self.task == "multiclass")
        if maps is not None:
            maps = gather_rows(maps, indices, n, self.world)
        return gather_rows(probs, indices, n, self.world), gather_mean(loss, len(indices), self.world), maps

    def image_probabilities(self, probs, maps, score=""):
        """(score name, (n, labels) image probabilities) of validation predictions: a classifier's
        own; a map model's by its image score (`score`, else the run's; auto: the best AUC)."""
        score = score or self.image_score
        if maps is None:
            return "", probs
        if score == "auto":
            return choose_image_score(self.val_rows[self.columns].to_numpy(), probs, maps)
        return score, map_image_probability(probs, maps, score)

    def cams(self, model, split, device, channels_last):
        """(n, h, w) Grad-CAMs of every row of `split`, gathered like `predict`."""
        loader, n, indices = self.split(split)
        return gather_rows(loader_cams(model, loader, device, channels_last), indices, n, self.world)

    def val_auc(self, probs):
        """The selection metric (the registry's for the task: AUC of the target, or the mean over the
        labels; NaN where a fold has one class) of validation predictions."""
        return for_task(self.task).function(self.val_rows[self.columns].to_numpy(), probs)

    def val_score(self, probs, auc, loss):
        """The selection score (higher is better) of validation predictions: --metric's value, negated
        when lower is better; for AUC (`auc`, computed already) its value, or minus the loss when a
        fold has one class."""
        metric = for_task(self.task) if self.metric == "auto" else get_metric(self.metric)
        if metric.name == "auc":
            return auc if np.isfinite(auc) else -loss
        value = metric.function(self.val_rows[self.columns].to_numpy(), probs)
        return value if metric.higher_is_better else -value

    @property
    def task(self):
        return task_of(self.train_rows)


def load_split(cfg):
    """(train rows, validation rows, test table, data root, annotated?) for cfg.fold, checked against the data set."""
    train_table, test, root = read_checked(cfg)
    folds = read_folds(folds_file(cfg.folds_dir, cfg.dataset))
    if set(folds["image_id"]) != set(train_table["image_id"]):
        raise UserError(f"{folds.attrs['source']} was cut from a different {train_table.attrs['source']}; "
                        f"re-run make_folds.py with --overwrite")
    columns = target_columns(folds)
    as_read = train_table.set_index("image_id").reindex(folds["image_id"]).reindex(columns=columns)
    if not np.array_equal(folds[columns].to_numpy(float), as_read.to_numpy(float), equal_nan=True):
        raise UserError(f"{folds.attrs['source']}: its targets differ from {train_table.attrs['source']} as read now "
                        f"(another --uncertain policy or label column?); re-run make_folds.py with --overwrite")
    n_folds = folds["fold"].nunique()
    if not 0 <= cfg.fold < n_folds:
        raise UserError(f"--fold {cfg.fold}: {folds.attrs['source']} has folds 0..{n_folds - 1}")
    return folds[folds["fold"] != cfg.fold], folds[folds["fold"] == cfg.fold], test, root, train_table


def object_table(table, classes=()):
    """{image id: (shapes, width, height, maps)}: every training image's objects in original pixels,
    `maps` each shape's object map (its class's index in `classes`; None: one map of every object)."""
    channel = {c: k for k, c in enumerate(classes)}
    per_shape = table["classes"] if len(classes) else [None] * len(table)
    objects = {}
    for image, text, width, height, cells in zip(table["image_id"], table["annotation"], table["width"],
                                                 table["height"], per_shape):
        shapes = parse_annotation(text)
        maps = None if cells is None else [channel[c] for c in box_classes(cells)]
        if maps is not None and len(maps) != len(shapes):
            raise UserError(f"{image}: {len(shapes)} objects but {len(maps)} classes in its `classes` column")
        objects[image] = (shapes, int(width), int(height), maps)
    return objects


def build_data(cfg, world=World()):
    check_settings(cfg)  # the choice-valued flags were checked when parsed (config.py)
    train_rows, val_rows, test, root, train_table = load_split(cfg)
    if cfg.pseudo_labels:
        train_rows = with_pseudo_rows(train_rows, read_pseudo_labels(cfg.pseudo_labels), cfg.fold, test["image_id"],
                                      cfg.pseudo_labels)
    annotated = "annotation" in train_table
    objects_learned = cfg.kind in OBJECT_KINDS
    if objects_learned and not annotated:
        raise UserError(f"--kind {cfg.kind} learns from object annotations; {train_table.attrs['source']} has none "
                        f"(train a classifier: --kind classifier)")
    spec = ImageSpec.of(cfg)
    if cfg.cache:
        all_ids = [*train_rows["image_id"], *val_rows["image_id"], *test["image_id"]]
        if not world.is_main:
            barrier(world)  # under torchrun rank 0 builds the cache alone; the others then find it current
        load = build_cache(all_ids, root, Path(cfg.cache_dir) / cfg.dataset, spec).__getitem__
        if world.is_main:
            barrier(world)
    else:
        load = uncached_loader(root, spec)
    columns = target_columns(train_rows)
    if train_rows[columns].isna().to_numpy().any() and (cfg.mixup or cfg.cutmix or cfg.balance == "sampler"):
        raise UserError(f"--uncertain {cfg.uncertain} leaves some targets unknown: --mixup, --cutmix and --balance sampler "
                        f"need every target (use --uncertain ones, zeros or a number)")
    task = task_of(train_rows)
    if cfg.metric != "auto" and task not in get_metric(cfg.metric).tasks:
        raise UserError(f"--metric {cfg.metric} scores {' and '.join(get_metric(cfg.metric).tasks)} tasks; this data set "
                        f"is {task} (use auc)")
    if cfg.balance == "sampler" and task == "multilabel":
        raise UserError("--balance sampler draws the classes of one target; with several labels use --balance loss")
    if cfg.balance == "sampler" and world.distributed:
        raise UserError("--balance sampler is single-process; under torchrun use --balance loss")
    generator = torch.Generator().manual_seed(cfg.seed)
    classes = train_rows[columns].to_numpy().argmax(1) if task == "multiclass" else train_rows[columns[0]]
    sampler = recipe.balanced_sampler(classes, generator) if cfg.balance == "sampler" else None
    classes = map_classes(train_table) if objects_learned else []  # one object map per class (VinBigData)
    objects = object_table(train_table, classes) if objects_learned else None
    crops_of = BoxedCrops if cfg.kind == "detector" else MaskedCrops

    crop = min(cfg.crop_size or cfg.img_size, cfg.img_size)  # a crop larger than the image is the image
    if cfg.kind == "detector" and world.is_main:
        warn_of_long_boxes(long_sides(objects, spec), crop)

    def loader(table, transform, sharded=False, crops=False, training=False, **order):
        dataset = (crops_of(table, load, transform, objects, spec, crop, cfg.object_crops, cfg.scale_aug,
                               MAP_STRIDE, cfg.seed, max(len(classes), 1)) if crops else ImageTable(table, load, transform, columns))
        if sharded and world.distributed:  # this process's rows only (gathered after prediction)
            dataset = Subset(dataset, shard(len(table), world).tolist())
        # A training batch of one image cannot be batch-normalized (BatchNorm stops on it): when the
        # epoch would end with one, that image (a random one: the order is shuffled) sits the epoch out.
        drop_last = training and per_process(len(table)) % cfg.batch_size == 1
        workers = dict(persistent_workers=True, prefetch_factor=cfg.prefetch) if cfg.num_workers else {}
        return DataLoader(dataset, batch_size=cfg.batch_size, drop_last=drop_last, num_workers=cfg.num_workers,
                          pin_memory=torch.cuda.is_available(), **workers, **order)

    def per_process(rows):  # what one process draws per epoch
        return math.ceil(rows / world.size) if world.distributed else rows

    if world.distributed:
        sampler = DistributedSampler(ImageTable(train_rows, load, None, columns), num_replicas=world.size,
                                     rank=world.rank, shuffle=True, seed=cfg.seed)
    if sampler is None:
        sampler = RandomSampler(range(len(train_rows)), generator=generator)
    train_order = dict(sampler=EpochSeeded(sampler))  # the epoch's seed rides with each index to the workers
    return FoldData(train_rows, val_rows, test,
                    loader(train_rows, train_transform(cfg.seed, cfg.aug, crop if objects_learned else cfg.img_size),
                           crops=objects_learned, training=True, **train_order),
                    loader(val_rows, eval_transform(), sharded=True), loader(test, eval_transform(), sharded=True),
                    generator, columns, annotated, world, image_score_setting(cfg), cfg.metric, classes)


def warn_of_long_boxes(sides, crop):
    """A detector learns a box from the crops that hold it: a box longer than most crops is seen cut
    (its regression learns a truncated box, FCOS's coarse levels get no positives), while at
    prediction, on the whole image, it is whole. Said once, with the share, before training."""
    long = int((sides > 0.75 * crop).sum())
    if long:
        print(f"warning: {long} of {len(sides)} training boxes ({100 * long / len(sides):.0f} %) are longer than 3/4 of the "
              f"{crop} px training crop: the detector sees them cut; a larger --crop-size (0: the whole image) "
              f"lets it learn them whole", flush=True)


def image_score_setting(cfg):
    """A map model's --image-score, auto made a fixed score under --select last (which promises that
    no choice looks at the validation rows); '' for a classifier."""
    if cfg.kind not in OBJECT_KINDS:
        return ""
    return UNSEEN_IMAGE_SCORE if cfg.image_score == "auto" and cfg.select == "last" else cfg.image_score


def check_settings(cfg):
    if cfg.crop_size < 0 or not 0 <= cfg.object_crops <= 1 or cfg.scale_aug < 0 or cfg.val_every < 0:
        raise UserError("--crop-size >= 0, --object-crops is a share in [0, 1], --scale-aug >= 0 and --val-every >= 0 (0: after the last epoch only)")
    if cfg.kind in OBJECT_KINDS and (cfg.img_size % cfg.map_depth or cfg.crop_size % cfg.map_depth):
        bad, value = ("--crop-size", cfg.crop_size) if cfg.crop_size % cfg.map_depth else ("--img-size", cfg.img_size)
        low = value - value % cfg.map_depth
        who = "a map model's" if cfg.kind == "map" else "a detector's"
        raise UserError(f"{bad} {value}: {who} input must be a multiple of its deepest stride, --map-depth "
                        f"{cfg.map_depth} (its map cells and the mask's would not line up): {low or cfg.map_depth} or "
                        f"{low + cfg.map_depth}")
    if cfg.kind == "detector" and (cfg.map_channels < 32 or cfg.map_channels % 32):
        raise UserError(f"--map-channels {cfg.map_channels}: a detector's FCOS head normalizes its channels in groups "
                        f"of 32 (GroupNorm): use a multiple of 32 (64, 128...)")
    if not 0 <= cfg.label_smoothing < 1:
        raise UserError(f"--label-smoothing {cfg.label_smoothing}: a share in [0, 1)")
    if cfg.accumulate < 1 or cfg.prefetch < 1:
        raise UserError("--accumulate and --prefetch are counts of batches: 1 or more")
    if cfg.mixup < 0 or cfg.cutmix < 0:
        raise UserError("--mixup and --cutmix are Beta-distribution alphas: 0 (off) or more")
    if cfg.kind in OBJECT_KINDS and (cfg.mixup or cfg.cutmix or cfg.pseudo_labels):
        raise UserError("--mixup, --cutmix and --pseudo-labels give image targets, not object maps: they are for "
                        "classifiers (--kind classifier)")


def build_model(cfg, device, data):
    """The network for `data` (a FoldData): an image logit per target column, and for a map model
    an object map per box class (one when the boxes have no classes)."""
    torch.manual_seed(cfg.seed)  # the same initial weights for every run with this seed
    model = network_of(cfg, len(data.columns), cfg.pretrained, cfg.weights, max(len(data.map_classes), 1))
    if cfg.grad_checkpointing:
        enable_grad_checkpointing(model, cfg.arch)
    return engine.prepare_model(model, device, cfg.channels_last, cfg.compile, cfg.cudnn_benchmark)


def check_resumable(saved, cfg):
    changed = changed_settings(saved, cfg, RESUME_FREE)
    if changed:
        shown = ", ".join(changed[:4])
        raise UserError(f"--resume: the settings differ from the run being resumed ({shown}); "
                        f"resume with the same settings, or start over without --resume")


def evaluate(candidates, data, device, precision, cfg):
    """{name: (data.predict's (probs, loss, maps), loss, auc, score)} on the validation fold for
    each candidate model."""
    results = {}
    for name, model in candidates.items():
        probs, loss, maps = data.predict(model, "val", device, precision, cfg, desc=f"validate {name}")
        image_probs = data.image_probabilities(probs, maps)[1]
        auc = data.val_auc(image_probs)
        results[name] = ((probs, loss, maps), loss, auc, data.val_score(image_probs, auc, loss))
    return results


NOT_VALIDATED = {"model": (None, math.nan, math.nan, -math.inf)}  # an epoch between --val-every validations


def fit(cfg, model, data, device, precision, out, config, writer=None):
    """Train for cfg.epochs, raised to cfg.min_steps optimizer steps on a small data set (or
    until early stopping); best.pt, last.pt and log.csv in `out`.
    Returns the log (one dict per epoch), the best.pt weights' validation predictions (as
    data.predict gives them; None when they were made before a --resume): the OOF predictions,
    not computed twice, and a record of the run: the divergence guard's (Guard.record()) and the
    epochs it planned ("epochs_run").

    The divergence guard: an epoch whose training loss spikes (recipe.loss_spike) is undone, the
    weights and every training state back to the end of the last good epoch, and trained again
    with a lower learning rate; after cfg.max_restarts restarts one more spike ends the fold
    with the last good epoch's weights (validated then if no epoch was)."""
    steps = engine.optimizer_steps(len(data.train_loader), cfg.accumulate)
    batch = cfg.batch_size * cfg.accumulate * data.world.size
    lr = scaled_lr(cfg.lr, batch, cfg.lr_batch, cfg.optimizer)
    if lr != cfg.lr and data.world.is_main:
        print(f"learning rate {lr:.3g}: --lr {cfg.lr:g} is meant for an effective batch of {cfg.lr_batch} (--lr-batch), "
              f"this one is {batch} ({'linear' if cfg.optimizer == 'sgd' else 'square-root'} scaling)")
    optimizer = recipe.build_optimizer(engine.unwrap(model), lr, cfg.weight_decay, cfg.optimizer, cfg.momentum)
    epochs = recipe.epochs_for(cfg.epochs, cfg.min_steps, steps)
    scheduler = recipe.build_scheduler(optimizer, cfg.schedule, epochs * steps, cfg.warmup_epochs * steps, lr)
    scaler = torch.amp.GradScaler(device.type, enabled=precision.scale_loss)
    ema = recipe.make_ema(engine.unwrap(model), cfg.ema_decay) if cfg.ema else None
    targets = data.train_rows[data.columns].to_numpy()
    weight = (recipe.class_weight if data.task == "multiclass" else recipe.positive_weight)(targets, cfg.balance)
    loss_fn = losses.loss_for(cfg.kind, weight, data.task, cfg.label_smoothing)
    mix = recipe.batch_mixer(cfg.mixup, cfg.cutmix)
    log, best_score, stopped, best_predictions = [], -math.inf, False, None
    state = TrainingState(engine.unwrap(model), optimizer, scheduler, scaler, ema, loss_fn)
    guard = Guard(cfg)

    if cfg.resume and (out / "last.pt").is_file():
        saved = engine.load_checkpoint(out / "last.pt")
        check_resumable(saved["config"], cfg)
        state.load(saved)
        log, best_score, stopped = saved["log"], saved["best_score"], saved["stopped"]
        guard.load(saved.get("guard", {}))
        print(f"resuming after epoch {saved['epoch']} (best score {best_score:.4f})")
    elif cfg.resume:
        print(f"--resume: no {out / 'last.pt'} yet, starting from the beginning")
    good = state.snapshot()  # the end of the last good epoch: where a spike goes back to

    epoch = len(log) + 1
    while epoch <= epochs and not stopped:
        start = time.time()
        recipe.seed_epoch(cfg.seed, epoch, data.generator)
        data.train_loader.sampler.set_seed(recipe.epoch_seed(cfg.seed, epoch))  # augmentation, a map model's crops
        if isinstance(data.train_loader.sampler.sampler, DistributedSampler):
            data.train_loader.sampler.sampler.set_epoch(epoch)
        if cfg.freeze_epochs:
            recipe.set_backbone_trainable(engine.unwrap(model), trainable=epoch > cfg.freeze_epochs)
        epoch_result = engine.train_one_epoch(model, data.train_loader, optimizer, scheduler, scaler, device, precision,
                                            cfg.channels_last, loss_fn, cfg.clip_grad, ema,
                                            desc=f"epoch {epoch}/{epochs}", mix=mix, accumulate=cfg.accumulate)
        train_seconds = time.time() - start
        train_loss = gather_mean(epoch_result.loss, len(data.train_loader.sampler), data.world)
        main = data.world.is_main  # every process decides alike (same gathered losses and AUC); one writes
        spike = recipe.loss_spike([row["train_loss"] for row in log], train_loss, cfg.spike_factor)
        if spike:  # the weights, or only the batches? The last good weights on the same batches tell
            trained_state = state.snapshot()
            reference = good_weights_loss(state, good, data, model, cfg, epoch, device, precision, loss_fn, mix)
            spike = guard.confirm(epoch, spike, train_loss, reference, main)
            state.load(good if spike else trained_state)
        if spike:
            if guard.restart(epoch, spike, optimizer, scheduler, main):
                continue  # the same epoch again, at the lower rate
            stopped = True
            if best_score == -math.inf and log:  # nothing validated yet: the last good epoch's weights are the model
                best_score, best_predictions = keep_last_good(state, ema, data, device, precision, cfg, out, config,
                                                              len(log), main)
            if main:
                save_last(out, state, config, len(log), best_score, log, stopped, guard)
            break
        candidates = {"model": model, **({"ema": ema.module} if ema is not None else {})}
        sync_buffers([engine.unwrap(m) for m in candidates.values()], data.world)
        validated = epoch == epochs or (cfg.val_every and epoch % cfg.val_every == 0)
        results = evaluate(candidates, data, device, precision, cfg) if validated else NOT_VALIDATED
        chosen = pick_weights(results, cfg.select)
        predictions, val_loss, val_auc, score = results[chosen]
        improved = validated and (score > best_score or cfg.select == "last")
        if improved:
            best_score, best_predictions = float(score), predictions
            if main:
                engine.save_checkpoint(out / "best.pt", candidates[chosen], config, epoch, score, weights_from=chosen)
        row = {"train_loss": train_loss, "val_loss": val_loss, "val_auc": val_auc, "val_score": score,
               "raw_val_auc": results["model"][2],
               "ema_val_auc": results["ema"][2] if ema and validated else math.nan, "lr": scheduler.get_last_lr()[0],
               "lr_scale": guard.lr_scale, "restarts": len(guard.restarts),
               "seconds": time.time() - start, "train_images_per_s": len(data.train_rows) / max(train_seconds, 1e-9),
               "data_share": epoch_result.data_share}
        log.append({"epoch": epoch, **{k: float(v) for k, v in row.items()}})  # plain floats: last.pt loads weights-only
        stopped = recipe.should_stop([selection_score(row) for row in log if np.isfinite(row["val_loss"])], cfg.patience)
        if main:
            save_last(out, state, config, epoch, best_score, log, stopped, guard)
            report_epoch(log[-1], epochs, improved, chosen if ema else "", writer)
        if stopped and main:
            print(f"early stopping: no better validation score ({cfg.metric}) in the last {cfg.patience} epochs")
        good = state.snapshot()
        epoch += 1
    barrier(data.world)  # the others read best.pt next
    return log, best_predictions, {**guard.record(), "epochs_run": epochs, "lr_used": lr}


def selection_score(row):
    """An epoch's selection score from its log row (a log written before val_score: AUC, else minus the loss)."""
    if "val_score" in row:
        return row["val_score"]
    return row["val_auc"] if np.isfinite(row["val_auc"]) else -row["val_loss"]


@dataclass
class TrainingState:
    """Everything an epoch changes besides the log: what last.pt keeps and a spike rolls back."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: torch.amp.GradScaler
    ema: object
    loss_fn: object

    def state_dicts(self):
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "ema": self.ema.module.state_dict() if self.ema is not None else None,
                "loss_state": self.loss_fn.state_dict() if hasattr(self.loss_fn, "state_dict") else None}

    def snapshot(self):
        """A copy of the state on the CPU, untouched by later steps."""
        return on_cpu(self.state_dicts())

    def load(self, saved):
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.scaler.load_state_dict(saved["scaler"])
        if self.ema is not None:
            self.ema.module.load_state_dict(saved["ema"])
        if saved.get("loss_state") is not None:
            self.loss_fn.load_state_dict(saved["loss_state"])


def on_cpu(value):
    """A nested structure of state dicts with every tensor copied to the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {key: on_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(on_cpu(item) for item in value)
    return value


def good_weights_loss(state, good, data, model, cfg, epoch, device, precision, loss_fn, mix):
    """The training loss the last good epoch's weights have on `epoch`'s own batches (the same
    crops, augmentation and order: the epoch's seed again), forward passes only. Leaves the
    state at the last good epoch's."""
    state.load(good)
    recipe.seed_epoch(cfg.seed, epoch, data.generator)
    data.train_loader.sampler.set_seed(recipe.epoch_seed(cfg.seed, epoch))
    result = engine.train_one_epoch(model, data.train_loader, state.optimizer, state.scheduler, state.scaler, device,
                                    precision, cfg.channels_last, loss_fn, desc=f"epoch {epoch}: loss check", mix=mix,
                                    accumulate=cfg.accumulate, learn=False)
    state.load(good)  # BatchNorm's running statistics moved in the forward passes
    return gather_mean(result.loss, len(data.train_loader.sampler), data.world)


class Guard:
    """The divergence guard's bookkeeping: the restarts so far, the learning-rate scale they left,
    and the epochs whose high loss came from their batches, not from the weights."""

    def __init__(self, cfg):
        self.spike_factor, self.factor, self.max_restarts = cfg.spike_factor, cfg.restart_lr_factor, cfg.max_restarts
        self.restarts, self.lr_scale, self.stopped_reason, self.hard_epochs = [], 1.0, "", []

    def confirm(self, epoch, spike, loss, reference, main=True):
        """The spike's reason when the epoch's loss is also above spike_factor x `reference`, the
        last good weights' loss on the same batches (training made its own batches worse: it
        diverged); '' when those weights find the batches about as hard (a hard epoch, kept)."""
        if recipe.loss_spike([reference], loss, self.spike_factor):
            return f"{spike}; the last good weights' loss on the same batches is {reference:.4f}"
        self.hard_epochs.append({"epoch": int(epoch), "loss": float(loss), "good_weights_loss": float(reference)})
        if main:
            print(f"loss check: epoch {epoch}: {spike}, but the last good weights' loss on the same batches is "
                  f"{reference:.4f}: hard batches, not divergence; the epoch is kept", flush=True)
        return ""

    def restart(self, epoch, reason, optimizer, scheduler, main=True):
        """Lower the learning rate for another try at `epoch`; False when no restart is left."""
        if len(self.restarts) >= self.max_restarts:
            self.stopped_reason = (f"epoch {epoch}: {reason}, after {len(self.restarts)} restart(s): training stopped, "
                                   f"the weights of epoch {epoch - 1} kept")
            if main:
                print(f"divergence: {self.stopped_reason}", flush=True)
            return False
        recipe.scale_learning_rate(optimizer, scheduler, self.factor)
        self.lr_scale *= self.factor
        self.restarts.append({"epoch": int(epoch), "reason": reason, "lr_scale": self.lr_scale})
        if main:
            print(f"divergence: epoch {epoch}: {reason}; restarting it from epoch {epoch - 1}'s state with the learning "
                  f"rate x {self.lr_scale:g} (restart {len(self.restarts)} of {self.max_restarts})", flush=True)
        return True

    def record(self):
        return {"restarts": self.restarts, "lr_scale": self.lr_scale, "stopped_reason": self.stopped_reason,
                "hard_epochs": self.hard_epochs}

    def load(self, record):
        self.restarts = list(record.get("restarts", []))
        self.hard_epochs = list(record.get("hard_epochs", []))
        self.lr_scale = float(record.get("lr_scale", 1.0))
        self.stopped_reason = record.get("stopped_reason", "")


def keep_last_good(state, ema, data, device, precision, cfg, out, config, epoch, main):
    """When a fold stops on a spike before any validation: validate the restored last good
    epoch's weights and keep them as best.pt. Returns (score, validation predictions)."""
    candidates = {"model": state.model, **({"ema": ema.module} if ema is not None else {})}
    results = evaluate(candidates, data, device, precision, cfg)
    chosen = pick_weights(results, cfg.select)
    predictions, _, _, score = results[chosen]
    if main:
        engine.save_checkpoint(out / "best.pt", candidates[chosen], config, epoch, score, weights_from=chosen)
    return float(score), predictions


def save_last(out, state, config, epoch, best_score, log, stopped, guard):
    """last.pt (the training state for --resume, written after best.pt) and log.csv."""
    dicts = state.state_dicts()
    engine.save_checkpoint(out / "last.pt", state.model, config, epoch, best_score,
                           **{k: v for k, v in dicts.items() if k != "model"}, log=log, best_score=best_score,
                           stopped=stopped, guard=guard.record())
    write_csv(out / "log.csv", pd.DataFrame(log), float_format="%.6g")


@dataclass
class FoldPredictions:
    """A fold model's outputs as its files keep them."""

    oof: np.ndarray  # (validation rows, labels) image probabilities
    test: np.ndarray  # (test rows, labels)
    image_score: str  # a map model's image score used ('' for a classifier)
    cams: dict | None  # {"val": (n, h, w), "test": ...} heatmaps, or None
    test_seconds_per_image: float
    every_score: dict | None = None  # a map model's {score name: (oof (n, 1), test (n, 1))}, each image score


def predict_fold(cfg, model, data, device, precision, with_cams, oof=None):
    """The OOF and test predictions (and heatmaps, when `with_cams` or for a map model) of a fold
    model; `oof` reuses validation outputs already made (data.predict's triple)."""
    oof_head, _, oof_maps = oof or data.predict(model, "val", device, precision, cfg, desc="oof")
    predicting = time.time()
    test_head, _, test_maps = data.predict(model, "test", device, precision, cfg, desc="test")
    seconds_per_image = (time.time() - predicting) / max(len(data.test), 1)
    image_score, oof_probs = data.image_probabilities(oof_head, oof_maps)  # a map model: auto chooses by OOF AUC
    _, test_probs = data.image_probabilities(test_head, test_maps, image_score)
    every_score = None
    if cfg.kind in OBJECT_KINDS:  # the object maps are its heatmaps
        cams = {"val": oof_maps, "test": test_maps if test_maps is not None else np.zeros((0, 1, 1), np.float16)}
        oof_scores, test_scores = every_image_score(oof_head, oof_maps), every_image_score(test_head, test_maps)
        every_score = {name: (oof_scores[name], test_scores[name]) for name in oof_scores}
    else:
        cams = {s: data.cams(model, s, device, cfg.channels_last) for s in ("val", "test")} if with_cams else None
    return FoldPredictions(oof_probs, test_probs, image_score, cams, seconds_per_image, every_score)


def mean_predictions(runs):
    """The FoldPredictions of several seeds' models of one fold as one model: the mean of their
    probabilities and heatmaps (as the blend spec applies them: every run's model, averaged)."""
    if len(runs) == 1:
        return runs[0]
    cams = None
    if all(r.cams is not None for r in runs):
        cams = {side: np.mean([r.cams[side].astype(np.float32) for r in runs], axis=0).astype(np.float16)
                for side in ("val", "test")}
    every_score = None
    if all(r.every_score for r in runs):
        every_score = {name: tuple(np.mean([r.every_score[name][side] for r in runs], axis=0) for side in (0, 1))
                       for name in runs[0].every_score}
    return FoldPredictions(np.mean([r.oof for r in runs], axis=0), np.mean([r.test for r in runs], axis=0),
                           "/".join(sorted({r.image_score for r in runs})), cams,
                           sum(r.test_seconds_per_image for r in runs), every_score)


def write_predictions(cfg, data, predictions):
    """oof/<exp>/<name>/fold_<k>.csv, test_fold_<k>.csv and (with heatmaps) cams_fold_<k>.npz;
    returns the OOF file's path."""
    columns = [prediction_column(c) for c in data.columns]
    scores = predictions.every_score or {}  # a map model: every image score beside the chosen one
    oof = data.val_rows[["image_id", *data.columns, "fold"]].assign(
        **dict(zip(columns, predictions.oof.T)), **{SCORE_COLUMNS[name]: p[0][:, 0] for name, p in scores.items()})
    path = oof_file(cfg.oof_dir, cfg.exp, cfg.model_name, cfg.fold)
    write_csv(path, oof)
    test_targets = [c for c in data.columns if c in data.test]
    test = np.asarray(predictions.test).reshape(len(data.test), len(columns))  # no test side: (0, labels), not (0, 1)
    write_csv(test_pred_file(cfg.oof_dir, cfg.exp, cfg.model_name, cfg.fold),
              data.test[["image_id", *test_targets]].assign(
                  **dict(zip(columns, test.T)), **{SCORE_COLUMNS[name]: p[1][:, 0] for name, p in scores.items()}))
    if predictions.cams is not None:
        write_npz(cams_file(cfg.oof_dir, cfg.exp, cfg.model_name, cfg.fold),
                  oof_ids=data.val_rows["image_id"].to_numpy(str), oof=predictions.cams["val"],
                  test_ids=data.test["image_id"].to_numpy(str), test=predictions.cams["test"])
    return path


def pick_weights(results, select):
    """Which candidate weights ("model", "ema") an epoch keeps: the better validation score, or
    with --select last a fixed rule that never looks at the validation rows (EMA when there is one)."""
    if select == "last":
        return "ema" if "ema" in results else "model"
    return max(results, key=lambda name: results[name][3])


def report_epoch(row, epochs, improved, chosen, writer):
    print(f"epoch {row['epoch']:>3}/{epochs}  train_loss {row['train_loss']:.4f}  val_loss {row['val_loss']:.4f}  "
          f"val_auc {row['val_auc']:.4f}{f' ({chosen})' if chosen else ''}  lr {row['lr']:.2e}  "
          f"{row['seconds']:.1f}s  data {100 * row['data_share']:.0f}%{'  *best' if improved else ''}", flush=True)
    if writer is not None:
        step = row["epoch"]
        writer.add_scalars("loss", {"train": row["train_loss"], "val": row["val_loss"]}, step)
        writer.add_scalar("val_auc", row["val_auc"], step)
        if np.isfinite(row["ema_val_auc"]):
            writer.add_scalars("val_auc_by_weights", {"raw": row["raw_val_auc"], "ema": row["ema_val_auc"]}, step)
        writer.add_scalar("lr", row["lr"], step)
        writer.add_scalar("train_images_per_s", row["train_images_per_s"], step)
        writer.add_scalar("data_share", row["data_share"], step)
        writer.flush()


def tensorboard_writer(cfg, subfolder=""):
    """TensorBoard's writer for the run (a seed's `subfolder` inside the fold's), or None."""
    if not cfg.tensorboard:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        print("TensorBoard is not installed (pip install tensorboard): no event files written")
        return None
    return SummaryWriter(str(Path(cfg.tb_dir) / cfg.exp / cfg.model_name / f"fold_{cfg.fold}" / subfolder))
