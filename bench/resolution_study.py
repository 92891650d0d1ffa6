"""The resolution study: one fold of run.sh's map model on large films at several stored resolutions
(and resize interpolations), each scored on its fold's OOF images and on the labelled dev side,
beside the minutes it took; the ratio of minutes is to the first arm, run in the same command.

    python3 bench/resolution_study.py --dataset objectcxr_fullsize                      # 512, 768, 1024 px
    python3 bench/resolution_study.py --dataset objectcxr_fullsize --sizes 512 --interpolations linear area
    python3 bench/resolution_study.py --arms 512:linear 768:linear 1024:linear 512:area   # the docs' table

Each arm is `JOB="resnet18-map <fold>" bash run.sh` (run.sh's map recipe: 160 px crops, 12 epochs
raised to 600 steps, EMA, clipping, the divergence guard) with MAP_IMG_SIZE and --interpolation
set, in its own experiment res_<size>_<interpolation>; the folds are the data set's
(folds/<dataset>.csv: run make_folds.py, or the full-size benchmark, first). Crops are taken from
the stored image, so a larger store shows the crop more detail and less context, and the whole-
image validation and test prediction cost grows with the store's area. Writes
reports/resolution_study.csv. From scratch on the CPU."""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from cxr.data.images import image_size  # noqa: E402
from cxr.localization.evaluation import annotations, blend_points, froc_with_interval, run_spec  # noqa: E402
from cxr.metrics.auc import delong_interval, safe_roc_auc  # noqa: E402
from run_sh import run_logged  # noqa: E402

MODEL = "resnet18-map"


def arm_scores(dataset, exp, fold, n_boot=200):
    """OOF (the fold's validation images) and dev AUC and FROC of one arm's fold model."""
    root = ROOT / "input" / dataset
    train_objects, test_objects = annotations(root)
    run = ROOT / "weights" / exp / MODEL / f"fold_{fold}"
    spec, _ = run_spec(run)
    cams = np.load(ROOT / "oof" / exp / MODEL / f"cams_fold_{fold}.npz")
    rows = {}
    for side, ids_key, maps_key, table, objects in (
            ("oof", "oof_ids", "oof", f"fold_{fold}.csv", train_objects),
            ("dev", "test_ids", "test", f"test_fold_{fold}.csv", test_objects)):
        predictions = pd.read_csv(ROOT / "oof" / exp / MODEL / table, dtype={"image_id": str}).set_index("image_id")
        ids = list(cams[ids_key])
        if objects is None or "target" not in predictions:
            continue
        y, p = predictions.loc[ids, "target"].to_numpy(), predictions.loc[ids, "prediction"].to_numpy()
        sizes = {i: image_size(root / i) for i in ids}
        points = blend_points(ids, p, [[cams[maps_key]]], [1.0], spec, sizes)
        froc, _, (low, high) = froc_with_interval(points, {i: objects[i] for i in ids}, n_boot)
        auc_low, auc_high = delong_interval(y, p)
        rows.update({f"{side}_auc": safe_roc_auc(y, p), f"{side}_auc_low": auc_low, f"{side}_auc_high": auc_high,
                     f"{side}_froc": froc, f"{side}_froc_low": low, f"{side}_froc_high": high})
    config = json.loads((run / "config.json").read_text())
    return {**rows, "image_score": config.get("image_score_used", ""), "restarts": len(config.get("restarts", []))}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="objectcxr_fullsize")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 768, 1024])
    parser.add_argument("--interpolations", nargs="+", default=["linear"], choices=("linear", "area"))
    parser.add_argument("--arms", nargs="+", metavar="SIZE:INTERPOLATION",
                        help="the arms themselves instead of every size x interpolation (512:linear 1024:linear 512:area)")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--run-args", default="", help="more run.sh (train.py) arguments for every arm")
    args = parser.parse_args()
    if not (ROOT / "folds" / f"{args.dataset}.csv").is_file():
        raise SystemExit(f"error: folds/{args.dataset}.csv not found (cut the folds first: python src/make_folds.py "
                         f"--dataset {args.dataset} --n-folds 3)")
    arms = [(int(a.split(":")[0]), a.split(":")[1]) for a in args.arms] if args.arms else \
        [(size, interpolation) for size in args.sizes for interpolation in args.interpolations]
    rows = []
    for size, interpolation in arms:
        exp = f"res_{size}_{interpolation}"
        settings = {"DATASET": args.dataset, "EXP": exp, "JOB": f"{MODEL} {args.fold}", "ARCHS": "",
                    "MAP_IMG_SIZE": str(size), "MAP_ARGS": f"--interpolation {interpolation}", "TQDM_DISABLE": "1",
                    "PYTHONWARNINGS": "ignore"}
        minutes = run_logged(settings, exp, args.run_args)
        rows.append({"size": size, "interpolation": interpolation, "minutes": minutes,
                     **arm_scores(args.dataset, exp, args.fold)})
        table = pd.DataFrame(rows).assign(minutes_ratio=lambda t: t["minutes"] / t["minutes"].iloc[0])
        table.to_csv(ROOT / "reports" / "resolution_study.csv", index=False, float_format="%.4f")
        print(f"{exp}: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                     for k, v in rows[-1].items() if not k.endswith(("_low", "_high"))), flush=True)
    shown = ["size", "interpolation", "oof_auc", "oof_froc", "dev_auc", "dev_froc", "minutes", "minutes_ratio"]
    print("\n" + table[[c for c in shown if c in table]].to_string(index=False, float_format=lambda v: f"{v:.3f}")
          + "\nwrote reports/resolution_study.csv (with 95 % intervals: AUC DeLong, FROC bootstrap)")


if __name__ == "__main__":
    main()
