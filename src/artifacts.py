"""Where every artifact lives, and how it is written (atomically: temp file, then rename)."""
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path, text):
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_csv(path, frame, float_format="%.8f"):
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format=float_format)


def write_npz(path, **arrays):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:  # a file object: np.savez would append .npz to a name
            np.savez_compressed(handle, **arrays)


def save_torch(path, obj):
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


# The layout of a run (see README, "Where outputs go").
def folds_file(folds_dir, dataset):
    return Path(folds_dir) / f"{dataset}.csv"


def duplicates_file(folds_dir, dataset):
    return Path(folds_dir) / f"{dataset}_duplicates.csv"


def skipped_rows_file(reports_dir, dataset):
    return Path(reports_dir) / dataset / "skipped_rows.csv"


def run_dir(weights_dir, exp, model, fold):
    return Path(weights_dir) / exp / model / f"fold_{fold}"


def oof_file(oof_dir, exp, model, fold):
    return Path(oof_dir) / exp / model / f"fold_{fold}.csv"


def test_pred_file(oof_dir, exp, model, fold):
    return Path(oof_dir) / exp / model / f"test_fold_{fold}.csv"


def cams_file(oof_dir, exp, model, fold):
    return Path(oof_dir) / exp / model / f"cams_fold_{fold}.npz"
