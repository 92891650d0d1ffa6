"""Train one backbone on one fold; write its OOF and test predictions.

    python src/train.py --arch resnet18 --fold 0
    python src/train.py --arch efficientnet_b0 --fold 3 --img-size 512 --epochs 20 --batch-size 16 --exp full

Outputs (see README):
    weights/<exp>/<name>/fold_<k>/best.pt     weights with the best validation AUC
    weights/<exp>/<name>/fold_<k>/last.pt     weights + optimizer/scheduler/scaler state of the last epoch
    weights/<exp>/<name>/fold_<k>/config.json the settings used
    weights/<exp>/<name>/fold_<k>/log.csv     per epoch: train loss, val loss, val AUC, lr, seconds
    oof/<exp>/<name>/fold_<k>.csv             OOF rows of fold k: image_id, target, fold, prediction
    oof/<exp>/<name>/test_fold_<k>.csv        test predictions of the best fold-k model
"""
import dataclasses
import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

import engine  # noqa: E402
from cache import ImageSpec, build_cache, uncached_loader  # noqa: E402
from artifacts import folds_file, oof_file, run_dir, test_pred_file, write_csv, write_json  # noqa: E402
from config import parse_config  # noqa: E402
from data import ImageTable, read_folds  # noqa: E402
from errors import UserError, exit_on_user_error  # noqa: E402
from metrics import safe_roc_auc  # noqa: E402
from models import create_model  # noqa: E402
from readers import read_checked  # noqa: E402
from transforms import eval_transform, train_transform  # noqa: E402


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_split(cfg):
    """(train rows, validation rows, test table, data root) for cfg.fold, checked against the data set."""
    train_table, test, root = read_checked(cfg)
    folds = read_folds(folds_file(cfg.folds_dir, cfg.dataset))
    if set(folds["image_id"]) != set(train_table["image_id"]):
        raise UserError(f"{folds.attrs['source']} was cut from a different {train_table.attrs['source']}; "
                        f"re-run make_folds.py with --overwrite")
    n_folds = folds["fold"].nunique()
    if not 0 <= cfg.fold < n_folds:
        raise UserError(f"--fold {cfg.fold}: {folds.attrs['source']} has folds 0..{n_folds - 1}")
    return folds[folds["fold"] != cfg.fold], folds[folds["fold"] == cfg.fold], test, root


def make_loader(table, load, transform, cfg, shuffle):
    return DataLoader(
        ImageTable(table, load, transform), batch_size=cfg.batch_size, shuffle=shuffle, drop_last=False,
        num_workers=cfg.num_workers, pin_memory=torch.cuda.is_available(),
        generator=torch.Generator().manual_seed(cfg.seed) if shuffle else None,
    )


@exit_on_user_error
def main(argv=None):
    cfg = parse_config(argv, description=__doc__)
    seed_everything(cfg.seed)
    device = engine.resolve_device(cfg.device)
    precision = engine.resolve_precision(cfg.amp, device)
    train_rows, val_rows, test, root = load_split(cfg)

    spec = ImageSpec(cfg.img_size, cfg.resize, cfg.clahe, cfg.blur, cfg.interpolation)
    if cfg.cache:
        all_ids = [*train_rows["image_id"], *val_rows["image_id"], *test["image_id"]]
        load = build_cache(all_ids, root, Path(cfg.cache_dir) / cfg.dataset, spec).__getitem__
    else:
        load = uncached_loader(root, spec)
    train_loader = make_loader(train_rows, load, train_transform(seed=cfg.seed), cfg, shuffle=True)
    val_loader = make_loader(val_rows, load, eval_transform(), cfg, shuffle=False)
    test_loader = make_loader(test, load, eval_transform(), cfg, shuffle=False)

    model = create_model(cfg.arch, pretrained=cfg.pretrained, weights=cfg.weights)
    model = engine.prepare_model(model, device, cfg.channels_last, cfg.compile, cfg.cudnn_benchmark)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs * len(train_loader))
    scaler = torch.amp.GradScaler(device.type, enabled=precision.scale_loss)

    out = run_dir(cfg.weights_dir, cfg.exp, cfg.model_name, cfg.fold)
    config = dataclasses.asdict(cfg)
    write_json(out / "config.json", {**config, "resolved_device": str(device), "precision": precision.name,
                                     "n_train": len(train_rows), "n_val": len(val_rows), "n_test": len(test),
                                     "torch": torch.__version__, "timm": timm.__version__})
    print(f"{cfg.model_name} fold {cfg.fold}: {len(train_rows)} train / {len(val_rows)} val / {len(test)} test images, "
          f"{device} {precision.name}, {'pretrained' if cfg.pretrained or cfg.weights else 'from scratch'}")

    log, best_score = [], -math.inf
    for epoch in range(1, cfg.epochs + 1):
        start = time.time()
        train_loss = engine.train_one_epoch(model, train_loader, optimizer, scheduler, scaler, device, precision,
                                            cfg.channels_last, desc=f"epoch {epoch}/{cfg.epochs}")
        val_probs, val_loss = engine.predict(model, val_loader, device, precision, cfg.channels_last, desc="validate")
        val_auc = safe_roc_auc(val_rows["target"], val_probs)
        score = val_auc if np.isfinite(val_auc) else -val_loss  # a one-class fold has no AUC
        improved = score > best_score
        log.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_auc": val_auc,
                    "lr": scheduler.get_last_lr()[0], "seconds": time.time() - start})
        engine.save_checkpoint(out / "last.pt", model, config, epoch, score, optimizer, scheduler, scaler)
        if improved:
            best_score = score
            engine.save_checkpoint(out / "best.pt", model, config, epoch, score)
        write_csv(out / "log.csv", pd.DataFrame(log), float_format="%.6g")
        row = log[-1]
        print(f"epoch {epoch:>3}/{cfg.epochs}  train_loss {train_loss:.4f}  val_loss {val_loss:.4f}  "
              f"val_auc {val_auc:.4f}  lr {row['lr']:.2e}  {row['seconds']:.1f}s{'  *best' if improved else ''}", flush=True)

    best = engine.load_checkpoint(out / "best.pt")
    engine.unwrap(model).load_state_dict(best["model"])
    oof_probs, _ = engine.predict(model, val_loader, device, precision, cfg.channels_last, desc="oof")
    test_probs, _ = engine.predict(model, test_loader, device, precision, cfg.channels_last, desc="test")
    oof = val_rows[["image_id", "target", "fold"]].assign(prediction=oof_probs)
    write_csv(oof_file(cfg.oof_dir, cfg.exp, cfg.model_name, cfg.fold), oof)
    write_csv(test_pred_file(cfg.oof_dir, cfg.exp, cfg.model_name, cfg.fold),
              test[["image_id", "target"]].assign(prediction=test_probs))
    print(f"best epoch {best['epoch']}: val_auc {safe_roc_auc(oof['target'], oof_probs):.4f}; "
          f"wrote {oof_file(cfg.oof_dir, cfg.exp, cfg.model_name, cfg.fold)}")


if __name__ == "__main__":
    main()
