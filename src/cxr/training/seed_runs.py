"""The runs of one fold (src/train.py): one training run per seed (extra seeds in fold_k/seed_<s>/),
each a whole fold_run.fit with its figures and the guard's note, and the overfit check."""
import dataclasses
import json
import sys
import time
from pathlib import Path
from cxr.artifacts import write_json
from cxr.data.labels import auc_averaged
from cxr.errors import UserError


def seed_folder(seed):
    """The folder of one more seed's run inside the fold's run folder."""
    return f"seed_{seed}"


def train_run(cfg, out, world, device, precision, started):
    """Train one seed's model on cfg.fold into `out` (best.pt, last.pt, config.json, log.csv,
    curves.png); returns (its FoldData, its FoldPredictions)."""
    import timm
    import torch

    from cxr.training import engine
    from cxr.training.distributed import wrap
    from cxr.training.fold_run import build_data, build_model, fit, predict_fold, tensorboard_writer
    from cxr.localization.gradcam import heatmap_support
    from cxr.figures import learning_curves

    data = build_data(cfg, world)
    model = build_model(cfg, device, data)
    with_cams = cfg.heatmaps == "on" or (cfg.heatmaps == "auto" and data.annotated)
    if with_cams and cfg.kind == "classifier":  # known before training, not after it (a ViT's class token)
        reason = heatmap_support(model, cfg.img_size)
        if reason and cfg.heatmaps == "on":
            raise UserError(f"--heatmaps on: {reason}")
        if reason:
            print(f"heatmaps: none saved ({reason})")
            with_cams = False
    model = wrap(model, world, device, parameters_change=cfg.freeze_epochs > 0)
    main_process = world.is_main  # only rank 0 writes files
    named = f"{cfg.model_name} fold {cfg.fold}{f' seed {cfg.seed}' if out.name.startswith('seed_') else ''}"

    config = {**dataclasses.asdict(cfg), **({"map_classes": data.map_classes} if data.map_classes else {})}
    n_pseudo = int((data.train_rows["fold"] < 0).sum())  # test images joined with --pseudo-labels
    if main_process:
        write_json(out / "config.json", {**config, "resolved_device": str(device), "precision": precision.name,
                                         "n_train": len(data.train_rows), "n_pseudo": n_pseudo, "n_val": len(data.val_rows),
                                         "n_test": len(data.test), "targets": data.columns, "task": data.task,
                                         "processes": world.size,
                                         "torch": torch.__version__, "timm": timm.__version__})
        print(f"{named}: {len(data.train_rows)} train"
              f"{f' ({n_pseudo} pseudo-labelled test images)' if n_pseudo else ''} / {len(data.val_rows)} val / "
              f"{len(data.test)} test images, {device} {precision.name}"
              f"{f' x {world.size} processes (DDP)' if world.distributed else ''}, "
              f"{'pretrained' if cfg.pretrained or cfg.weights else 'from scratch'}")

    writer = tensorboard_writer(cfg, out.name if out.name.startswith("seed_") else "") if main_process else None
    log, best_predictions, guarded = fit(cfg, model, data, device, precision, out, config, writer)
    if writer is not None:
        writer.close()
    if not (out / "best.pt").is_file():  # a spike in the first epoch, and no restart left
        raise UserError(f"{named}: training diverged before any epoch finished "
                        f"({guarded['stopped_reason']}); try a lower --lr or --clip-grad 1")

    best = engine.load_checkpoint(out / "best.pt")
    engine.unwrap(model).load_state_dict(best["model"])
    predictions = predict_fold(cfg, model, data, device, precision, with_cams, oof=best_predictions)
    if not main_process:
        return data, predictions
    measured = {"test_seconds_per_image": predictions.test_seconds_per_image, **guarded,
                **({"image_score_used": predictions.image_score} if predictions.image_score else {})}
    write_json(out / "config.json", {**json.loads((out / "config.json").read_text()), **measured})
    learning_curves(log, out / "curves.png", title=f"{cfg.exp} / {named}")
    train_rate = sum(r["train_images_per_s"] for r in log) / max(len(log), 1)
    print(f"summary: {named}: best epoch {best['epoch']} of {len(log)} "
          f"({best.get('weights_from', 'model')} weights), OOF AUC {data.val_auc(predictions.oof):.4f}{auc_averaged(data.task)} "
          f"(TTA {cfg.tta}{f', image score {predictions.image_score}' if predictions.image_score else ''}), "
          f"{time.time() - started:.0f} s in all, {train_rate:.0f} training images/s{guard_note(guarded)}")
    return data, predictions


def guard_note(guarded):
    """The summary's words on the divergence guard ('' when it never acted)."""
    if guarded["stopped_reason"]:
        return f", stopped by the divergence guard ({guarded['stopped_reason']})"
    if guarded["restarts"]:
        return f", {len(guarded['restarts'])} restart(s) after loss spikes (learning rate x {guarded['lr_scale']:g})"
    return ""


def overfit_check(cfg, model, data, device, precision, world):
    """train.py --overfit-batches: the check alone (training/overfit.py); exit 1 when it fails. Writes no
    weights or predictions; draws the loss per pass in <reports-dir>/<exp>/overfit/."""
    from cxr.training import overfit
    from cxr.figures import overfit_figure

    if world.distributed:
        raise UserError("--overfit-batches runs in one process: start it with python, not torchrun")
    if cfg.overfit_batches < 0 or cfg.overfit_batches * cfg.batch_size > len(data.train_rows):
        raise UserError(f"--overfit-batches {cfg.overfit_batches} x --batch-size {cfg.batch_size} images: the "
                        f"training fold has {len(data.train_rows)}")
    result, said = overfit.check(cfg, model, data, device, precision)
    figure = Path(cfg.reports_dir) / cfg.exp / "overfit" / f"{cfg.model_name}_fold{cfg.fold}.png"
    overfit_figure(result.losses, result.target, figure, f"overfit check {'PASSED' if result.passed else 'FAILED'}: "
                   f"{cfg.model_name}, {cfg.overfit_batches} fixed batches of {cfg.batch_size}")
    print(said)
    print(f"drew {figure}")
    sys.exit(0 if result.passed else 1)
