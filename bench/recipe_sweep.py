"""The recipe sweep: does every fold hold? The default map-model recipe (run.sh as a user runs it)
on the semi-real Object-CXR set subsampled to several sizes, each with its own seed and fold split,
and every fold's OOF AUC and FROC beside the others.

    python3 bench/recipe_sweep.py --sizes 400 800                   # the docs' table in two commands, each within
    python3 bench/recipe_sweep.py --sizes 1600                      # the hour on 2 cores (one report: both)
    python3 bench/recipe_sweep.py                                   # 400, 800, 1600 images, one split each; 3 folds
    python3 bench/recipe_sweep.py --sizes 400 800 --repeats 3       # more seeds and splits
    python3 bench/recipe_sweep.py --val-every 12                    # run.sh's validations (epochs 12, 24, ...)
    python3 bench/recipe_sweep.py --run-args "--spike-factor 0 --no-ema --clip-grad 0" --tag old  # an ablation

For each size and repeat r: input/sweep_<size>_r<r>/ holds <size> training images drawn with seed r
(the images linked, not copied) and 40 dev images; `bash run.sh` trains the map model (ARCHS="", the
default MAP_ARCHS) on N_FOLDS folds cut with SEED=r, then blends (the weak-fold check included).
Prints and writes reports/recipe_sweep<_tag>.csv (the runs of earlier commands of other sizes or
repeats kept beside this command's): per fold its OOF AUC, OOF FROC, the divergence
guard's restarts, and per run the median, the largest gap below it and the minutes; the goal is
no fold more than 0.02 AUC below its run's median. From scratch on the CPU unless run.sh args say
otherwise (--run-args "--pretrained")."""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from cxr.data.images import image_size  # noqa: E402
from cxr.data.folds import read_folds
from cxr.localization.evaluation import annotations, blend_points, froc_with_interval, run_spec  # noqa: E402
from cxr.metrics.auc import safe_roc_auc  # noqa: E402
from run_sh import run_logged  # noqa: E402

MODEL = "resnet18-map"
GOAL = 0.02  # no fold more than this below its run's median OOF AUC


def subsample(source, out, size, seed, n_dev=40):
    """input/<name>: `size` training rows of `source` (Object-CXR layout) drawn with `seed`, `n_dev` dev rows,
    the image folders linked."""
    out.mkdir(parents=True, exist_ok=True)
    train = pd.read_csv(source / "train.csv", dtype=str, keep_default_na=False)
    if size > len(train):
        raise SystemExit(f"error: --sizes {size}: {source / 'train.csv'} has {len(train)} rows")
    train.sample(size, random_state=seed).to_csv(out / "train.csv", index=False)
    dev = pd.read_csv(source / "dev.csv", dtype=str, keep_default_na=False)
    dev.sample(min(n_dev, len(dev)), random_state=seed).to_csv(out / "dev.csv", index=False)
    for folder in ("train", "dev"):
        if not (out / folder).exists():
            (out / folder).symlink_to((source / folder).resolve())


def fold_rows(dataset, exp):
    """One row per fold of the map model: OOF AUC, OOF FROC, restarts, the guard's verdict."""
    folds = read_folds(ROOT / "folds" / f"{dataset}.csv")
    objects, _ = annotations(ROOT / "input" / dataset)
    rows = []
    for fold in sorted(folds["fold"].unique()):
        oof = pd.read_csv(ROOT / "oof" / exp / MODEL / f"fold_{fold}.csv", dtype={"image_id": str})
        run = ROOT / "weights" / exp / MODEL / f"fold_{fold}"
        config = json.loads((run / "config.json").read_text())
        cams = np.load(ROOT / "oof" / exp / MODEL / f"cams_fold_{fold}.npz")
        ids = list(cams["oof_ids"])
        probability = oof.set_index("image_id").loc[ids, "prediction"].to_numpy()
        spec, _ = run_spec(run)
        sizes = {i: image_size(ROOT / "input" / dataset / i) for i in ids}
        points = blend_points(ids, probability, [[cams["oof"]]], [1.0], spec, sizes)
        froc = froc_with_interval(points, {i: objects[i] for i in ids})[0]
        rows.append({"fold": int(fold), "n_val": len(oof), "auc": safe_roc_auc(oof["target"], oof["prediction"]),
                     "froc": froc, "restarts": len(config.get("restarts", [])),
                     "stopped": bool(config.get("stopped_reason")), "image_score": config.get("image_score_used", "")})
    return rows


def merged_report(path, rows):
    """The sweep's report: the runs of earlier commands (another size, another repeat) kept, this
    command's runs replacing theirs; written to `path` and returned."""
    if path.is_file():
        earlier = pd.read_csv(path)
        ran = set(zip(rows["size"], rows["repeat"]))
        rows = pd.concat([earlier[[key not in ran for key in zip(earlier["size"], earlier["repeat"])]], rows],
                         ignore_index=True).sort_values(["size", "repeat", "fold"], ignore_index=True)
    rows.to_csv(path, index=False, float_format="%.4f")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default=str(ROOT.parent / "shared" / "data" / "objectcxr_semireal"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[400, 800, 1600])
    parser.add_argument("--repeats", type=int, default=1, help="seeds (and fold splits) per size")
    parser.add_argument("--extra-small", type=int, default=0,
                        help="more repeats at the smallest size, where folds fail first")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--val-every", type=int, default=0,
                        help="map models validate every N epochs and after the last (0: after the last only)")
    parser.add_argument("--run-args", default="", help="more run.sh arguments (train.py flags for every model)")
    parser.add_argument("--tag", default="", help="names the report and experiments (an ablation beside the default)")
    args = parser.parse_args()
    source = Path(args.source)
    if not (source / "train.csv").is_file():
        raise SystemExit(f"error: {source}: no train.csv (the semi-real set lives in ../shared/data; --source DIR)")
    tag = f"_{args.tag}" if args.tag else ""
    plan = [(size, r) for size in args.sizes for r in range(args.repeats + (args.extra_small if size == min(args.sizes) else 0))]
    rows, started = [], time.time()
    for size, repeat in plan:
        dataset = f"sweep_{size}_r{repeat}"
        exp = dataset + tag
        subsample(source, ROOT / "input" / dataset, size, repeat)
        settings = {"DATASET": dataset, "EXP": exp, "N_FOLDS": str(args.folds), "SEED": str(repeat), "ARCHS": "",
                    "MAP_ARGS": f"--val-every {args.val_every}", "TRIALS": "10", "BOOTSTRAP": "100", "TQDM_DISABLE": "1",
                    "PYTHONWARNINGS": "ignore"}
        minutes = run_logged(settings, exp, args.run_args)
        run_rows = fold_rows(dataset, exp)
        median = float(np.median([r["auc"] for r in run_rows]))
        for r in run_rows:
            rows.append({"size": size, "repeat": repeat, **r, "run_median_auc": median, "gap": median - r["auc"],
                         "run_minutes": minutes})
        table = merged_report(ROOT / "reports" / f"recipe_sweep{tag}.csv", pd.DataFrame(rows))
        print(f"{dataset}: fold AUC " + " ".join(f"{r['auc']:.3f}" for r in run_rows) + ", FROC "
              + " ".join(f"{r['froc']:.3f}" for r in run_rows) + f"; restarts {sum(r['restarts'] for r in run_rows)}; "
              f"{minutes:.1f} min", flush=True)
    summary = table.groupby("size").agg(runs=("repeat", "nunique"), folds=("fold", "size"), auc_median=("auc", "median"),
                                        auc_min=("auc", "min"), worst_gap=("gap", "max"), froc_median=("froc", "median"),
                                        froc_min=("froc", "min"), restarts=("restarts", "sum"),
                                        minutes=("run_minutes", "mean"))
    print("\nper size (worst_gap: the largest drop of a fold below its run's median AUC; goal <= "
          f"{GOAL}):\n" + summary.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"goal {'met' if (table['gap'] <= GOAL).all() else 'NOT met'}; "
          f"sweep took {(time.time() - started) / 60:.1f} min; wrote reports/recipe_sweep{tag}.csv")


if __name__ == "__main__":
    main()
