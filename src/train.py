"""Train one backbone on one fold; write its OOF and test predictions.

    python src/train.py --arch resnet18 --fold 0
    python src/train.py --arch efficientnet_b0 --fold 3 --img-size 512 --epochs 20 --batch-size 16 --exp full
    torchrun --nproc_per_node 4 src/train.py --arch resnet101 --fold 0 --exp full   # one fold on 4 GPUs (DDP)
    python src/train.py --config weights/full/resnet101/fold_0/config.json --fold 1  # a run's settings, fold 1
    python src/train.py --config my_settings.yaml --epochs 3   # YAML/JSON of these settings; flags win
    python src/train.py --arch resnet18 --overfit-batches 2   # the overfit check: exit 1 if it cannot memorize

Outputs (see README):
    weights/<exp>/<name>/fold_<k>/best.pt     weights with the best validation AUC
    weights/<exp>/<name>/fold_<k>/last.pt     the last epoch's weights and training state (--resume continues it)
    weights/<exp>/<name>/fold_<k>/config.json the settings used
    weights/<exp>/<name>/fold_<k>/log.csv     per epoch: losses, val AUC (raw and EMA weights), lr, seconds, images/s
    weights/<exp>/<name>/fold_<k>/curves.png  learning curves (loss, AUC, lr)
    runs/<exp>/<name>/fold_<k>/               TensorBoard scalars (tensorboard --logdir runs)
    oof/<exp>/<name>/fold_<k>.csv             OOF rows of fold k: image_id, target, fold, prediction
                                              (multi-label: target_<label> and prediction_<label> per label)
    oof/<exp>/<name>/test_fold_<k>.csv        test predictions of the best fold-k model
    oof/<exp>/<name>/cams_fold_<k>.npz        Grad-CAMs of the OOF and test images (feature-map size, float16),
                                              when the data has annotations (--heatmaps): blend.py scores FROC
"""
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cxr.artifacts import run_dir, write_json  # noqa: E402
from cxr.config import parse_config  # noqa: E402
from cxr.errors import UserError, exit_on_user_error  # noqa: E402


@exit_on_user_error
def main(argv=None):
    started = time.time()
    cfg = parse_config(argv, description=__doc__)
    # torch, timm and the training modules after the flags: --help and a wrong flag answer at once
    from cxr.training import engine
    from cxr.training import recipe
    from cxr.training.distributed import init_world, shutdown
    from cxr.training.fold_run import build_data, build_model, mean_predictions, write_predictions

    if cfg.overfit_batches:
        from cxr.training.overfit import overfit_settings

        cfg = overfit_settings(cfg)  # before the data and the model are built: no augmentation, no dropout
    if cfg.seeds < 1:
        raise UserError(f"--seeds {cfg.seeds}: a count of training runs, 1 or more")
    world, device_name = init_world(cfg.device)  # torchrun: one process per GPU (or CPU share), else a world of one
    recipe.set_deterministic(cfg.deterministic)
    device = engine.resolve_device(device_name)
    precision = engine.resolve_precision(cfg.amp, device)
    if cfg.overfit_batches:
        data = build_data(cfg, world)
        model = build_model(cfg, device, num_labels=len(data.columns))
        return overfit_check(cfg, model, data, device, precision, world)

    fold_dir = run_dir(cfg.weights_dir, cfg.exp, cfg.model_name, cfg.fold)
    runs = []  # (seed, data, predictions) of each seed's run
    for seed in range(cfg.seed, cfg.seed + cfg.seeds):  # the first seed's run is the fold's own folder
        one = cfg if seed == cfg.seed else dataclasses.replace(cfg, seed=seed, seeds=1)
        out = fold_dir if seed == cfg.seed else fold_dir / seed_folder(seed)
        runs.append((seed, *train_run(one, out, world, device, precision, started)))
    if not world.is_main:
        shutdown(world)
        return
    data = runs[0][1]
    predictions = mean_predictions([p for _, _, p in runs])
    if cfg.seeds > 1:  # the blend spec applies every seed's model (blend.py reads seed_runs)
        each = {str(seed): float(d.val_auc(p.oof)) for seed, d, p in runs}
        write_json(fold_dir / "config.json", {**json.loads((fold_dir / "config.json").read_text()),
                                              "seed_runs": [seed_folder(seed) for seed, _, _ in runs[1:]],
                                              "seed_oof_auc": each})
    written = write_predictions(cfg, data, predictions)
    if cfg.seeds == 1:
        print(f"wrote {written}")
    else:
        print(f"summary: {cfg.model_name} fold {cfg.fold}, {cfg.seeds} seeds ({', '.join(f'{s} {a:.4f}' for s, a in each.items())}): "
              f"their mean's OOF AUC {data.val_auc(predictions.oof):.4f}, {time.time() - started:.0f} s in all; wrote {written}")
    shutdown(world)


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
    model = build_model(cfg, device, num_labels=len(data.columns))
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

    config = dataclasses.asdict(cfg)
    n_pseudo = int((data.train_rows["fold"] < 0).sum())  # test images joined with --pseudo-labels
    if main_process:
        write_json(out / "config.json", {**config, "resolved_device": str(device), "precision": precision.name,
                                         "n_train": len(data.train_rows), "n_pseudo": n_pseudo, "n_val": len(data.val_rows),
                                         "n_test": len(data.test), "targets": data.columns, "processes": world.size,
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
          f"({best.get('weights_from', 'model')} weights), OOF AUC {data.val_auc(predictions.oof):.4f}{' (mean over labels)' if len(data.columns) > 1 else ''} "
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
    """train.py --overfit-batches: the check alone (overfit.py); exit 1 when it fails. Writes no
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


if __name__ == "__main__":
    main()
