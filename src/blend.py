"""Blend the models of an experiment on their OOF predictions; write the submission.

    python src/blend.py --exp demo --dataset demo
    python src/blend.py --exp full --dataset objectcxr --models resnet101 densenet121 --trials 300

Reads oof/<exp>/<model>/fold_<k>.csv and test_fold_<k>.csv of every model, checks that
every model covers exactly the images and folds of folds/<dataset>.csv, scores each model
and each blending method by OOF AUC, picks the best method (a tie goes to the simpler one),
and applies its weights to the test predictions (each model's test prediction is the mean
of its fold models). Writes:
    oof/<exp>/blend_report.csv                       models and methods with OOF AUC and weights
    submissions/<exp>/prediction_classification.csv  Object-CXR format, validated
    submissions/<exp>/blend.json                     the chosen method, models and weights
"""
import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from artifacts import folds_file, write_csv, write_json  # noqa: E402
from data import read_folds  # noqa: E402
from ensemble import best_method, methods, weighted_mean  # noqa: E402
from errors import UserError, exit_on_user_error  # noqa: E402
from metrics import safe_roc_auc  # noqa: E402
from submission import write_classification  # noqa: E402

FOLD_FILE = re.compile(r"^fold_(\d+)\.csv$")


def read_prediction_file(path, columns):
    try:
        frame = pd.read_csv(path, dtype={"image_id": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not a readable CSV ({str(err).splitlines()[0]})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)}")
    bad = ~np.isfinite(frame["prediction"].to_numpy(dtype=float))
    if bad.any():
        raise UserError(f"{path} line {int(np.flatnonzero(bad)[0]) + 2}: prediction is not a finite number")
    return frame


def check_against_folds(frame, path, folds, fold):
    """Every row of an OOF file must be an image of `fold` in the fold file, with its target."""
    reference = folds.set_index("image_id")
    for row, (image_id, target, row_fold) in enumerate(zip(frame["image_id"], frame["target"], frame["fold"])):
        where = f"{path} line {row + 2}: image {image_id}"
        if image_id not in reference.index:
            raise UserError(f"{where} is not in {folds.attrs['source']}")
        if row_fold != fold or reference.at[image_id, "fold"] != fold:
            raise UserError(f"{where} is in fold {row_fold} here but fold {reference.at[image_id, 'fold']} in "
                            f"{folds.attrs['source']}: these OOF files were made with other folds")
        if target != reference.at[image_id, "target"]:
            raise UserError(f"{where} has target {target} but {reference.at[image_id, 'target']} in {folds.attrs['source']}")
    expected = set(folds.loc[folds["fold"] == fold, "image_id"])
    if len(frame) != len(expected) or set(frame["image_id"]) != expected:
        raise UserError(f"{path}: covers {frame['image_id'].nunique()} of the {len(expected)} images of fold {fold}")


def load_model_predictions(model_dir, folds):
    """(OOF frame in fold-file order, test frame with the mean of the fold models) of one model."""
    n_folds = folds["fold"].nunique()
    found = sorted(int(FOLD_FILE.match(p.name).group(1)) for p in model_dir.iterdir() if FOLD_FILE.match(p.name))
    missing = sorted(set(range(n_folds)) - set(found))
    if missing:
        raise UserError(f"{model_dir}: OOF file of fold(s) {', '.join(map(str, missing))} missing "
                        f"(train them: python src/train.py --arch ... --fold {missing[0]})")
    oof_parts, test_parts = [], []
    for fold in range(n_folds):
        path = model_dir / f"fold_{fold}.csv"
        part = read_prediction_file(path, ["image_id", "target", "fold", "prediction"])
        check_against_folds(part, path, folds, fold)
        oof_parts.append(part)
        test_path = model_dir / f"test_fold_{fold}.csv"
        if not test_path.is_file():
            raise UserError(f"{test_path}: test predictions missing")
        test_parts.append(read_prediction_file(test_path, ["image_id", "prediction"]))
    oof = pd.concat(oof_parts).set_index("image_id").loc[folds["image_id"]].reset_index()
    test = test_parts[0][["image_id"] + (["target"] if "target" in test_parts[0] else [])].copy()
    for fold, part in enumerate(test_parts):
        if not part["image_id"].equals(test["image_id"]):
            raise UserError(f"{model_dir / f'test_fold_{fold}.csv'}: covers other test images than test_fold_0.csv")
    test["prediction"] = np.mean([p["prediction"].to_numpy() for p in test_parts], axis=0)
    return oof, test


def list_models(exp_dir, selected):
    if not exp_dir.is_dir():
        raise UserError(f"{exp_dir}: no predictions (run src/train.py for this experiment first)")
    models = sorted(p.name for p in exp_dir.iterdir() if p.is_dir())
    if selected:
        unknown = [m for m in selected if m not in models]
        if unknown:
            raise UserError(f"{exp_dir}: no model named {', '.join(unknown)} (found {', '.join(models) or 'none'})")
        models = list(selected)
    if not models:
        raise UserError(f"{exp_dir}: no model folders")
    return models


@exit_on_user_error
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp", default="demo", help="experiment name (default: demo)")
    parser.add_argument("--dataset", default="demo", help="data set whose fold file the OOF files must match (default: demo)")
    parser.add_argument("--models", nargs="*", default=None, help="model names to blend (default: all in oof/<exp>/)")
    parser.add_argument("--temperature", type=float, default=125.0, help="softmax-of-AUC temperature (default: 125)")
    parser.add_argument("--trials", type=int, default=100, help="Optuna trials (default: 100)")
    parser.add_argument("--seed", type=int, default=42, help="Optuna sampler seed (default: 42)")
    parser.add_argument("--oof-dir", default="oof")
    parser.add_argument("--folds-dir", default="folds")
    parser.add_argument("--submissions-dir", default="submissions")
    args = parser.parse_args(argv)

    folds = read_folds(folds_file(args.folds_dir, args.dataset))
    exp_dir = Path(args.oof_dir) / args.exp
    models = list_models(exp_dir, args.models)
    loaded = [load_model_predictions(exp_dir / m, folds) for m in models]
    y = folds["target"].to_numpy()
    P = np.stack([oof["prediction"].to_numpy() for oof, _ in loaded], axis=1)
    test = loaded[0][1]
    for model, (_, model_test) in zip(models, loaded):
        if not model_test["image_id"].equals(test["image_id"]):
            raise UserError(f"{exp_dir / model}: test predictions cover other images than {models[0]}'s")
    T = np.stack([t["prediction"].to_numpy() for _, t in loaded], axis=1)
    labelled = len(test) > 0 and "target" in test and test["target"].notna().all()
    test_y = test["target"].to_numpy() if labelled else None

    def test_auc(combine, weights):  # the labelled test side (Object-CXR's dev set) is a true hold-out
        return safe_roc_auc(test_y, combine(T, weights)) if test_y is not None else float("nan")

    rows = [{"kind": "model", "name": m, "oof_auc": safe_roc_auc(y, P[:, i]),
             "test_auc": test_auc(weighted_mean, np.eye(len(models))[i]), "weights": ""} for i, m in enumerate(models)]
    fitted = []
    for method in methods(args.temperature, args.trials, args.seed):
        weights = method.fit(P, y)
        fitted.append((method, weights))
        rows.append({"kind": "blend", "name": method.name, "oof_auc": safe_roc_auc(y, method.combine(P, weights)),
                     "test_auc": test_auc(method.combine, weights),
                     "weights": json.dumps(dict(zip(models, np.round(weights, 4).tolist())))})
    report = pd.DataFrame(rows)
    blends = report[report["kind"] == "blend"].reset_index(drop=True)
    chosen, weights = fitted[best_method(blends["oof_auc"])]
    report["chosen"] = (report["kind"] == "blend") & (report["name"] == chosen.name)
    write_csv(exp_dir / "blend_report.csv", report, float_format="%.6f")

    out = Path(args.submissions_dir) / args.exp
    if len(test):
        write_classification(out / "prediction_classification.csv", test["image_id"], chosen.combine(T, weights))
    write_json(out / "blend.json", {"method": chosen.name, "models": models, "weights": weights.tolist(),
                                    "dataset": args.dataset, "oof_auc": float(blends["oof_auc"].max())})
    shown = report.drop(columns=["chosen"] + ([] if test_y is not None else ["test_auc"]))
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    written = f"{out / 'prediction_classification.csv'} ({len(test)} images)" if len(test) else \
        "no submission (the data set has no test side)"
    print(f"chosen: {chosen.name} (OOF AUC {blends['oof_auc'].max():.4f}); wrote {written} and {exp_dir / 'blend_report.csv'}")


if __name__ == "__main__":
    main()
