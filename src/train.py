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
from cxr.training.seed_runs import overfit_check, seed_folder, train_run  # noqa: E402


@exit_on_user_error
def main(argv=None):
    started = time.time()
    cfg = parse_config(argv, description=__doc__)
    if cfg.skip_done and trained_already(cfg):
        return
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
        model = build_model(cfg, device, data)
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


def trained_already(cfg):
    """--skip-done: True (and says so) when this fold's OOF and test predictions exist and its
    config.json holds these settings; a UserError naming the difference when it holds others (a
    blend must not mix folds trained two ways under one experiment name)."""
    from cxr.artifacts import oof_file, test_pred_file
    from cxr.config import changed_settings

    if not (oof_file(cfg.oof_dir, cfg.exp, cfg.model_name, cfg.fold).is_file()
            and test_pred_file(cfg.oof_dir, cfg.exp, cfg.model_name, cfg.fold).is_file()):
        return False
    saved = run_dir(cfg.weights_dir, cfg.exp, cfg.model_name, cfg.fold) / "config.json"
    changed = changed_settings(json.loads(saved.read_text()), cfg, SKIP_FREE) if saved.is_file() else []
    if changed:
        raise UserError(f"{cfg.model_name} fold {cfg.fold} of experiment {cfg.exp} was trained with other settings "
                        f"({', '.join(changed[:4])}{', ...' if len(changed) > 4 else ''}): retrain it (FORCE=1 for "
                        f"run.sh) or name another experiment (EXP=...)")
    print(f"== {cfg.model_name} fold {cfg.fold}: done already (FORCE=1 retrains)")
    return True


# Settings that do not change what a finished fold predicts
SKIP_FREE = {"resume", "skip_done", "num_workers", "prefetch", "tensorboard", "tb_dir", "device", "heatmaps",
             "grad_checkpointing", "cudnn_benchmark", "compile", "cache", "cache_dir", "reports_dir"}


if __name__ == "__main__":
    main()
