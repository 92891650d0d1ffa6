"""Drop or keep a weak fold? One fold of a finished run retrained with a brittle recipe (a high
learning rate; no divergence guard, clipping or EMA), then blended twice: its test predictions
left out (blend.py --weak-folds drop, the default) and kept. Prints the fold table and the test
(dev) AUC and FROC of both, from the blend's own reports.

    python3 bench/weak_fold_choice.py --dataset sweep_800_r0 --exp sweep_800_r0 --fold 1
    python3 bench/weak_fold_choice.py --dataset objectcxr_semireal --exp objectcxr_semireal_bench --lr 0.05

The run `--exp` (made by bench/recipe_sweep.py or run.sh) is copied to <exp>_weak (its OOF files and
fold runs); fold --fold of --model is retrained there from its own config.json with --lr and the
guard, clipping and EMA off. Writes reports/weak_fold_choice_<exp>.csv. Needs a labelled test side
(Object-CXR's dev.csv) for the test scores."""
import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    print("$", " ".join(map(str, args)), flush=True)
    result = subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, text=True, capture_output=True)
    if result.returncode:
        raise SystemExit(f"error: {' '.join(map(str, args[:2]))} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def blended_scores(exp):
    """(test AUC, test FROC) of the chosen blend, from blend_report.csv and froc_report.csv."""
    report = pd.read_csv(ROOT / "oof" / exp / "blend_report.csv")
    froc = pd.read_csv(ROOT / "oof" / exp / "froc_report.csv").set_index("name")
    chosen = report[report["chosen"].astype(str) == "True"].iloc[0]
    return float(chosen["test_auc"]), float(froc.loc["blend", "test_froc"])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--exp", required=True, help="a finished run of --dataset (its oof/ and weights/ folders)")
    parser.add_argument("--model", default="resnet18-map")
    parser.add_argument("--fold", type=int, default=1)
    parser.add_argument("--lr", type=float, default=0.02, help="the brittle recipe's learning rate")
    args = parser.parse_args()
    weak = f"{args.exp}_weak"
    for folder in ("oof", "weights"):
        shutil.rmtree(ROOT / folder / weak, ignore_errors=True)
        shutil.copytree(ROOT / folder / args.exp, ROOT / folder / weak, symlinks=True)
    run_dir = ROOT / "weights" / weak / args.model / f"fold_{args.fold}"
    config = json.loads((run_dir / "config.json").read_text())
    shutil.rmtree(run_dir)
    (ROOT / "reports").mkdir(exist_ok=True)
    saved = ROOT / "reports" / f"weak_fold_choice_{args.exp}_config.json"
    saved.write_text(json.dumps(config))
    run("src/train.py", "--config", saved, "--exp", weak, "--fold", args.fold, "--lr", args.lr, "--spike-factor", 0,
        "--clip-grad", 0, "--no-ema", "--no-tensorboard")
    rows = []
    for choice in ("keep", "drop"):
        out = run("src/blend.py", "--exp", weak, "--dataset", args.dataset, "--weak-folds", choice, "--trials", 20)
        if choice == "keep":
            print("\n".join(line for line in out.splitlines()[:8]))
        auc, froc = blended_scores(weak)
        rows.append({"weak_folds": choice, "test_auc": auc, "test_froc": froc})
    table = pd.DataFrame(rows)
    scores = pd.read_csv(ROOT / "oof" / weak / "fold_scores.csv")
    table["flagged"] = ", ".join(f"fold {int(r.fold)} ({r.auc:.3f})" for r in scores.itertuples() if r.weak) or "none"
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    table.to_csv(ROOT / "reports" / f"weak_fold_choice_{args.exp}.csv", index=False)


if __name__ == "__main__":
    main()
