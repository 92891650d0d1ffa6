"""Object-CXR runs side by side: each model's and the submitted blend's dev AUC (DeLong 95 %
interval) and dev FROC (bootstrap 95 % interval, from blend.py's froc_report.csv), and the run's
whole time, for experiments whose test side is a labelled dev set.

    python3 bench/compare_runs.py objectcxr_semireal_bench objectcxr_fullsize_bench

An experiment whose files are missing is named and skipped."""
import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from cxr.localization.map_scores import SCORE_COLUMNS  # noqa: E402
from cxr.metrics.auc import delong_interval, safe_roc_auc  # noqa: E402


def dev_rows(exp, oof_dir, submissions_dir, reports_dir):
    """One row per model and the blend of experiment `exp`: dev AUC with its interval, dev FROC with its interval."""
    exp_dir = Path(oof_dir) / exp
    submission = Path(submissions_dir) / exp / "prediction_classification.csv"
    froc = pd.read_csv(exp_dir / "froc_report.csv").set_index("name") if (exp_dir / "froc_report.csv").is_file() else None
    spec = Path(submissions_dir) / exp / "blend.json"
    # a map model's folds are scored by one image score in the blend (blending/inputs.one_image_score): the same here
    image_scores = json.loads(spec.read_text()).get("image_scores", {}) if spec.is_file() else {}
    truth = None
    rows, predictions = [], {}
    for model in sorted(p for p in exp_dir.iterdir() if p.is_dir()):
        parts = [pd.read_csv(f, dtype={"image_id": str}) for f in sorted(model.glob("test_fold_*.csv"))]
        if not parts or "target" not in parts[0]:
            continue
        column = SCORE_COLUMNS.get(image_scores.get(model.name), "prediction")
        truth = parts[0].set_index("image_id")["target"]
        predictions[model.name] = pd.Series(np.mean([p[column] for p in parts], axis=0), index=truth.index)
    if truth is None or not submission.is_file():
        return []
    predictions["blend"] = pd.read_csv(submission, dtype={"image_path": str}).set_index("image_path")["prediction"]
    minutes = run_minutes(Path(reports_dir) / f"{exp}.log")
    for name, scores in predictions.items():
        y, p = truth.to_numpy(), scores.loc[truth.index].to_numpy()
        low, high = delong_interval(y, p)
        row = {"exp": exp, "name": name, "dev_auc": safe_roc_auc(y, p), "auc_low": low, "auc_high": high}
        if froc is not None and name in froc.index:
            row.update(dev_froc=froc.loc[name, "test_froc"], froc_low=froc.loc[name, "test_low"],
                       froc_high=froc.loc[name, "test_high"])
        rows.append({**row, "minutes": minutes})
    return rows


def run_minutes(log):
    """The whole run's minutes from a benchmark log's last '== ... took N s in all' line, or NaN."""
    if not log.is_file():
        return float("nan")
    found = re.findall(r"took (\d+) s in all", log.read_text(errors="replace"))
    return int(found[-1]) / 60 if found else float("nan")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exps", nargs="+", help="experiment names (oof/<exp>/, submissions/<exp>/)")
    parser.add_argument("--oof-dir", default="oof")
    parser.add_argument("--submissions-dir", default="submissions")
    parser.add_argument("--reports-dir", default="reports")
    args = parser.parse_args(argv)
    rows = []
    for exp in args.exps:
        found = dev_rows(exp, args.oof_dir, args.submissions_dir, args.reports_dir) \
            if (Path(args.oof_dir) / exp).is_dir() else []
        if not found:
            print(f"{exp}: no labelled dev predictions and submission found; skipped")
        rows += found
    if rows:
        table = pd.DataFrame(rows)
        print("dev scores (AUC: DeLong 95 % interval; FROC: bootstrap 95 % interval; minutes: the whole run):\n"
              + table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
