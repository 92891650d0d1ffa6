"""Train one backbone on one fold; write its OOF and test predictions.

    python src/train.py --arch resnet18 --fold 0
    python src/train.py --arch efficientnet_b0 --fold 3 --img-size 512 --epochs 20 --batch-size 16 --exp full
    torchrun --nproc_per_node 4 src/train.py --arch resnet101 --fold 0 --exp full   # one fold on 4 GPUs (DDP)

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
import numpy as np  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402

import engine  # noqa: E402
import recipe  # noqa: E402
from artifacts import cams_file, oof_file, run_dir, test_pred_file, write_csv, write_json, write_npz  # noqa: E402
from config import parse_config  # noqa: E402
from data import prediction_column  # noqa: E402
from distributed import init_world, shutdown, wrap  # noqa: E402
from errors import UserError, exit_on_user_error  # noqa: E402
from fit import build_data, build_model, fit, tensorboard_writer  # noqa: E402
from localize import heatmap_support  # noqa: E402
from viz import learning_curves  # noqa: E402


@exit_on_user_error
def main(argv=None):
    started = time.time()
    cfg = parse_config(argv, description=__doc__)
    world, device_name = init_world(cfg.device)  # torchrun: one process per GPU (or CPU share), else a world of one
    recipe.set_deterministic(cfg.deterministic)
    device = engine.resolve_device(device_name)
    precision = engine.resolve_precision(cfg.amp, device)
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

    out = run_dir(cfg.weights_dir, cfg.exp, cfg.model_name, cfg.fold)
    config = dataclasses.asdict(cfg)
    if main_process:
        write_json(out / "config.json", {**config, "resolved_device": str(device), "precision": precision.name,
                                         "n_train": len(data.train_rows), "n_val": len(data.val_rows),
                                         "n_test": len(data.test), "targets": data.columns, "processes": world.size,
                                         "torch": torch.__version__, "timm": timm.__version__})
        print(f"{cfg.model_name} fold {cfg.fold}: {len(data.train_rows)} train / {len(data.val_rows)} val / "
              f"{len(data.test)} test images, {device} {precision.name}"
              f"{f' x {world.size} processes (DDP)' if world.distributed else ''}, "
              f"{'pretrained' if cfg.pretrained or cfg.weights else 'from scratch'}")

    writer = tensorboard_writer(cfg) if main_process else None
    log, best_predictions = fit(cfg, model, data, device, precision, out, config, writer)
    if writer is not None:
        writer.close()

    best = engine.load_checkpoint(out / "best.pt")
    engine.unwrap(model).load_state_dict(best["model"])
    oof_head, _, oof_maps = best_predictions or data.predict(model, "val", device, precision, cfg, desc="oof")
    predicting = time.time()
    test_head, _, test_maps = data.predict(model, "test", device, precision, cfg, desc="test")
    seconds_per_image = (time.time() - predicting) / max(len(data.test), 1)
    image_score, oof_probs = data.image_probabilities(oof_head, oof_maps)  # a map model: auto chooses by OOF AUC
    _, test_probs = data.image_probabilities(test_head, test_maps, image_score)
    if cfg.kind == "map":  # the object maps are its heatmaps
        cams = {"val": oof_maps, "test": test_maps if test_maps is not None else np.zeros((0, 1, 1), np.float16)}
    else:
        cams = {s: data.cams(model, s, device, cfg.channels_last) for s in ("val", "test")} if with_cams else None
    if not main_process:
        shutdown(world)
        return
    measured = {"test_seconds_per_image": seconds_per_image, **({"image_score_used": image_score} if image_score else {})}
    write_json(out / "config.json", {**json.loads((out / "config.json").read_text()), **measured})
    learning_curves(log, out / "curves.png", title=f"{cfg.exp} / {cfg.model_name} / fold {cfg.fold}")
    predictions = [prediction_column(c) for c in data.columns]
    oof = data.val_rows[["image_id", *data.columns, "fold"]].assign(**dict(zip(predictions, oof_probs.T)))
    write_csv(oof_file(cfg.oof_dir, cfg.exp, cfg.model_name, cfg.fold), oof)
    test_targets = [c for c in data.columns if c in data.test]
    write_csv(test_pred_file(cfg.oof_dir, cfg.exp, cfg.model_name, cfg.fold),
              data.test[["image_id", *test_targets]].assign(**dict(zip(predictions, test_probs.T))))
    if cams is not None:
        write_npz(cams_file(cfg.oof_dir, cfg.exp, cfg.model_name, cfg.fold),
                  oof_ids=data.val_rows["image_id"].to_numpy(str), oof=cams["val"],
                  test_ids=data.test["image_id"].to_numpy(str), test=cams["test"])
    train_rate = sum(r["train_images_per_s"] for r in log) / max(len(log), 1)
    print(f"summary: {cfg.model_name} fold {cfg.fold}: best epoch {best['epoch']} of {len(log)} "
          f"({best.get('weights_from', 'model')} weights), OOF AUC {data.val_auc(oof_probs):.4f}{' (mean over labels)' if len(predictions) > 1 else ''} "
          f"(TTA {cfg.tta}{f', image score {image_score}' if image_score else ''}), {time.time() - started:.0f} s in all, {train_rate:.0f} training images/s; wrote {oof_file(cfg.oof_dir, cfg.exp, cfg.model_name, cfg.fold)}")
    shutdown(world)


if __name__ == "__main__":
    main()
