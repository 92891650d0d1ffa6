"""Blend the models of an experiment on their OOF predictions; write the submission.

    python src/blend.py --exp demo --dataset demo
    python src/blend.py --exp full --dataset objectcxr --models "resnet*" densenet121 --trials 300
    python src/blend.py --exp full --storage sqlite:///blend.db     # run it in several shells: one shared search

Reads oof/<exp>/<model>/fold_<k>.csv and test_fold_<k>.csv of every selected model (names
or shell patterns), checks that every model covers exactly the images and folds of
folds/<dataset>.csv, and scores each model's folds (as check_folds.py does: a fold whose OOF
AUC is more than 0.02 below the model's median fold AUC and whose 95 % DeLong interval lies
below it too is weak; --weak-folds drop, the default, leaves its fold model out of the model's
test mean and of blend.json's runs, its OOF rows stay). Then it scores each model and each
blending method (src/ensemble.py) twice: in-sample OOF AUC (fitted and scored on the same
rows: flattering for methods that learn) and nested AUC (fitted without each fold, scored on
it: honest). The method with the best
nested AUC is chosen (a tie goes to the simpler one), refitted on all OOF rows and applied
to the test predictions (each model's test prediction is the mean of its fold models). The
chosen blend is compared with the best single model by DeLong's paired test, and each model
and the blend are scored at the threshold maximizing Youden's J with bootstrap 95 % intervals.
Writes:
    oof/<exp>/fold_scores.csv                        per model and fold: OOF AUC, its interval, the median, weak
    oof/<exp>/blend_report.csv                       per model and method: OOF AUC, nested AUC and its 95 %
                                                     interval (DeLong), test AUC (labelled test side), weights
    oof/<exp>/blend_report.png                       that report as a chart
    oof/<exp>/oof_metrics.csv                        AUC, accuracy, sensitivity, specificity with intervals
    oof/<exp>/roc.png, oof/<exp>/confusion.png       ROC curves (AUC in the legend); the blend's confusion matrix
    oof/<exp>/froc_report.csv                        FROC of each model and the blend on the OOF images (and a labelled
                                                     test side), when the data has annotations and train.py saved
                                                     Grad-CAMs (see src/localization.py)
    submissions/<exp>/prediction_classification.csv  Object-CXR format (--format objectcxr), validated
    submissions/<exp>/submission.csv                 --format kaggle: sample_submission.csv's header and order,
                                                     else the test table's id column and `prediction`
    submissions/<exp>/blend.json                     the blend spec: method, models, fitted parameters,
                                                     threshold and the checkpoints, so new images get the same blend;
                                                     weak_folds: the rule, and the folds flagged and dropped
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402

from cxr.testside.adversarial import HIGH_SHIFT  # noqa: E402
from cxr.artifacts import (fold_runs, folds_file, list_models, read_oof_folds, read_prediction_file, run_dir,
    shift_report_file, test_like_file, write_csv, write_json)
from cxr.config import SUBMISSION_FORMATS, Parser, add_settings  # noqa: E402
from cxr.errors import UserError, exit_on_user_error  # noqa: E402
from cxr.metrics.froc import FROC_THRESHOLDS
from cxr.metrics.thresholds import bootstrap_intervals, confusion, threshold_metrics, youden_threshold
from cxr.metrics.auc import delong_interval, delong_test, safe_roc_auc
from cxr.testside.prior import estimate_prior, prior_threshold
from cxr.figures import blend_chart, confusion_figure, froc_figure, roc_figure  # noqa: E402

# pandas, scipy and the modules that import them (data, ensemble, localization, readers, submission) are
# imported in the functions that use them, after the flags are parsed: --help does not wait for them.

def load_model_predictions(model_dir, folds, columns):
    """(OOF frame in fold-file order, [each fold model's test frame]) of one model; `columns`
    are the target columns (prediction_<label> goes with target_<label>)."""
    import pandas as pd

    from cxr.data.labels import prediction_column

    predictions = [prediction_column(c) for c in columns]
    oof_parts = read_oof_folds(model_dir, folds, columns, predictions)
    test_parts = []
    for fold in oof_parts:
        test_path = model_dir / f"test_fold_{fold}.csv"
        if not test_path.is_file():
            raise UserError(f"{test_path}: test predictions missing")
        test_parts.append(read_prediction_file(test_path, ["image_id", *predictions]))
    for fold, part in enumerate(test_parts):
        if not part["image_id"].equals(test_parts[0]["image_id"]):
            raise UserError(f"{model_dir / f'test_fold_{fold}.csv'}: covers other test images than test_fold_0.csv")
    oof = pd.concat(oof_parts.values()).set_index("image_id").loc[folds["image_id"]].reset_index()
    return oof, test_parts


def mean_of_folds(test_parts, columns, kept):
    """A model's test frame: the image ids, any test target(s), and each prediction the mean of
    the `kept` fold models' (every fold's unless a weak one was dropped)."""
    from cxr.data.labels import prediction_column

    test = test_parts[0][["image_id"] + [c for c in columns if c in test_parts[0]]].copy()
    for column in map(prediction_column, columns):
        test[column] = np.mean([test_parts[k][column].to_numpy() for k in kept], axis=0)
    return test


def handle_weak_folds(args, exp_dir, models, columns, loaded, n_folds):
    """Score each model's folds (printed, oof/<exp>/fold_scores.csv), then {model: the folds whose
    test predictions it keeps} and the record of it for blend.json: with --weak-folds drop a weak
    fold's model leaves the test mean (its OOF rows stay: honest held-out predictions)."""
    from cxr.blending.weak_folds import RULE, fold_scores, format_fold_scores, weak_folds

    table = fold_scores({m: oof for m, (oof, _) in zip(models, loaded)}, columns)
    print(format_fold_scores(table))
    write_csv(exp_dir / "fold_scores.csv", table, float_format="%.6f")
    weak = weak_folds(table)
    dropped = weak if args.weak_folds == "drop" else {}
    for model, flagged in weak.items():
        folds = f"fold{'s' * (len(flagged) > 1)} {', '.join(map(str, flagged))}"
        print(f"{model}: {folds} dropped from the test predictions (weak)" if model in dropped
              else f"{model}: {folds} weak, kept in the test predictions (--weak-folds keep)")
    # never empty: at least half of a model's folds are at or above its median fold AUC, hence not weak
    kept = {m: [k for k in range(n_folds) if k not in dropped.get(m, [])] for m in models}
    record = {"rule": RULE, "action": args.weak_folds, "flagged": weak, "dropped": dropped,
              "dropped_runs": {m: model_runs(args, m, folds) for m, folds in dropped.items()}}
    return kept, record


def oof_metrics(y, named_scores, n_boot, seed):
    """One row per (name, scores): the Youden threshold and each metric with its bootstrap interval."""
    import pandas as pd

    rows = []
    for name, scores in named_scores.items():
        threshold = youden_threshold(y, scores)
        point = threshold_metrics(y, scores, threshold)
        intervals = bootstrap_intervals(y, scores, threshold, n_boot=n_boot, seed=seed)
        row = {"name": name, "threshold": threshold}
        for metric, value in point.items():
            row.update({metric: value, f"{metric}_low": intervals[metric][0], f"{metric}_high": intervals[metric][1]})
        rows.append(row)
    return pd.DataFrame(rows)


def show_metrics(metrics):
    """The metrics table as text: value [95 % interval] per cell."""
    names = ("auc", "accuracy", "sensitivity", "specificity")
    lines = [f"{'OOF, threshold by Youden J':<32}" + "".join(f"{n:>22}" for n in names)]
    for row in metrics.to_dict("records"):
        label = f"{row['name']} (t={row['threshold']:.3f})"
        cells = [f"{row[n]:.4f} [{row[n + '_low']:.3f}, {row[n + '_high']:.3f}]" for n in names]
        lines.append(f"{label:<32}" + "".join(f"{c:>22}" for c in cells))
    return "\n".join(lines)


def plan_submission(args, out, test_ids, labels):
    """(path, write(predictions (n, labels))) of the submission in --format, checked before any
    blending, so that a wrong --format or sample file stops blend.py before it writes anything.
    The binary target's one label is ''."""
    from cxr.data.layouts import kaggle_test_ids
    from cxr.formats.files import sample_format, write_classification

    multi = labels != [""]
    if args.format == "objectcxr":
        if multi:
            raise UserError("--format objectcxr has one prediction per image; a multi-label set needs --format kaggle")
        path = out / "prediction_classification.csv"
        return path, lambda predictions: write_classification(path, test_ids, predictions[:, 0])
    root = Path(args.input_dir) / args.dataset
    column, written_as = kaggle_test_ids(root)
    sample = root / "sample_submission.csv"
    header, order = sample_format(sample) if sample.is_file() else (",".join([column, *(labels if multi else ["prediction"])]), None)
    names = header.split(",")[1:]
    if multi and sorted(names) != sorted(labels):
        raise UserError(f"{sample}: prediction columns {', '.join(names)} differ from the labels {', '.join(labels)}")
    if not multi and len(names) != 1:
        raise UserError(f"{sample}: {len(names)} prediction columns, but the task has one target")
    columns = [labels.index(n) for n in names] if multi else [0]
    path = out / "submission.csv"
    return path, lambda predictions: write_classification(path, [written_as[i] for i in test_ids],
                                                          predictions[:, columns], header=header, order=order)


def report_row(kind, name, y, in_sample, nested, test_y, test_scores, weights="", test_like=None):
    """One row of blend_report.csv; the interval is the nested AUC's (DeLong). `test_like`: the
    mask of the OOF rows most like the test side (make_folds.py --test-like), scored apart."""
    low, high = delong_interval(y, nested)
    return {"kind": kind, "name": name, "oof_auc": safe_roc_auc(y, in_sample), "nested_auc": safe_roc_auc(y, nested),
            "nested_low": low, "nested_high": high,
            "test_like_auc": safe_roc_auc(y[test_like], nested[test_like]) if test_like is not None else np.nan,
            "test_auc": safe_roc_auc(test_y, test_scores) if test_y is not None else np.nan, "weights": weights}


def model_rows(models, P, y, T, test_y, test_like=None):
    # a single model learns nothing from the OOF rows: its nested predictions are its OOF predictions
    return [report_row("model", m, y, P[:, i], P[:, i], test_y, T[:, i], test_like=test_like)
            for i, m in enumerate(models)]


def score_methods(P, y, fold_ids, T, test_y, args, test_like=None):
    """One report row per method, and the fitted params and nested predictions of each."""
    from cxr.blending.methods import methods, nested_predictions

    rows, fitted = [], []
    final = methods(args.temperature, args.trials, args.seed, args.storage, args.study_name, args.bags)
    inner = methods(args.temperature, args.trials, args.seed, bags=args.bags)  # nested fits never join a shared study
    for method, inner_method in zip(final, inner):
        params = method.fit(P, y)
        nested = nested_predictions(inner_method, P, y, fold_ids)
        shown = {k: np.round(v, 4).tolist() if k == "weights" else v for k, v in params.items() if k != "quantiles"}
        rows.append(report_row("blend", method.name, y, method.combine(P, params), nested, test_y,
                               method.combine(T, params), json.dumps(shown), test_like))
        fitted.append((method, params, nested))
    return rows, fitted


def compare_with_best_model(y, nested, P, models):
    """DeLong's paired test: the chosen blend's nested predictions vs the best single model's OOF."""
    best = int(np.argmax([safe_roc_auc(y, P[:, i]) for i in range(len(models))]))
    result = delong_test(y, nested, P[:, best])
    verdict = "significant" if result["p_value"] < 0.05 else "not significant"
    return {**result, "model": models[best], "verdict": verdict}


def blend_target(args, exp_dir, models, y, fold_ids, P, T, test_y, label="", test_like=None):
    """Score every model and method on one target (P, T: OOF and test matrices, n x models),
    choose by nested AUC (or by its test-like rows' AUC), compare with the best model, write
    the figures (suffixed _<label> for a multi-label set). Returns the target's report, choice
    and test predictions."""
    import pandas as pd

    from cxr.blending.methods import best_method

    suffix, named_as = (f"_{label}", f" [{label}]") if label else ("", "")
    method_rows, fitted = score_methods(P, y, fold_ids, T, test_y, args, test_like)
    report = pd.DataFrame(model_rows(models, P, y, T, test_y, test_like) + method_rows)
    blends = report[report["kind"] == "blend"].reset_index(drop=True)
    choose_by = "test_like_auc" if args.choose_by == "test_like" else "nested_auc"
    chosen, params, nested = fitted[best_method(blends[choose_by])]
    report["chosen"] = (report["kind"] == "blend") & (report["name"] == chosen.name)
    shown = report.drop(columns=["chosen"] + ([] if test_y is not None else ["test_auc"])
                        + ([] if test_like is not None else ["test_like_auc"]))
    print(f"\n{label or 'target'}:\n" + shown.to_string(
        index=False, float_format=lambda v: f"{v:.4f}", formatters={"weights": lambda w: w if len(w) < 70 else w[:67] + "..."}))

    comparison = compare_with_best_model(y, nested, P, models)
    print(f"chosen by {'test-like' if choose_by == 'test_like_auc' else 'nested'} AUC{named_as}: {chosen.name}; vs the best single model {comparison['model']} (DeLong, "
          f"paired): difference {comparison['difference']:+.4f} [{comparison['low']:+.4f}, {comparison['high']:+.4f}], "
          f"p = {comparison['p_value']:.3g}: {comparison['verdict']}")

    in_sample = chosen.combine(P, params)
    threshold = youden_threshold(y, in_sample)  # the final blend's scale: the one the test predictions have
    named = {**{m: P[:, i] for i, m in enumerate(models)}, f"blend ({chosen.name}, nested)": nested}
    metrics = oof_metrics(y, named, args.bootstrap, args.seed)
    print(show_metrics(metrics))
    roc_figure({name: (y, scores) for name, scores in named.items()}, exp_dir / f"roc{suffix}.png",
               title=f"{args.exp}{named_as}: OOF ROC")
    confusion_figure(confusion(y, in_sample, threshold), exp_dir / f"confusion{suffix}.png",
                     title=f"blend ({chosen.name}){named_as}, OOF, threshold {threshold:.3f}")
    row = report[report["chosen"]].iloc[0]
    choice = {"method": chosen.name, "params": params, "weights": params["weights"], "threshold": threshold,
              "oof_auc": float(row["oof_auc"]), "nested_auc": float(row["nested_auc"]), "versus_best_model": comparison}
    if len(T):
        choice["prior_shift"] = prior_shift(y, P, T, test_y, named_as)
    return report, metrics, choice, chosen.combine(T, params), nested


def prior_shift(y, P, T, test_y, named_as=""):
    """The test side's positive share, estimated by EM on the priors from the models' mean probability,
    and the accuracy threshold it moves 0.5 to (the AUC does not change); with test labels, the
    accuracy at both thresholds."""
    train_prior = float(np.mean(y))
    test_mean = T.mean(axis=1)
    estimate = estimate_prior(test_mean, train_prior)
    threshold = prior_threshold(train_prior, estimate)
    shift = {"train_positive_share": train_prior, "test_positive_share_estimate": estimate,
             "accuracy_threshold": threshold}
    line = (f"prior shift{named_as}: positives {train_prior:.3f} of the training side, {estimate:.3f} of the test "
            f"side (EM on the mean model probability): the accuracy threshold 0.5 becomes {threshold:.3f}")
    if test_y is not None:
        shift.update({f"test_accuracy_at_{name}": float(np.mean((test_mean >= t) == test_y))
                      for name, t in (("0.5", 0.5), ("prior_threshold", threshold))})
        line += (f"; test accuracy {shift['test_accuracy_at_0.5']:.4f} at 0.5, "
                 f"{shift['test_accuracy_at_prior_threshold']:.4f} at {threshold:.3f}")
    print(line)
    return shift


def localization_report(args, models, folds, P, T, test, choice, nested, test_blend, kept):
    """FROC of every model and of the chosen blend on the OOF images (the blend's nested
    probabilities order the points) and on a labelled test side (each model's heatmaps from its
    `kept` fold models, as its test predictions), from the object maps or
    Grad-CAMs train.py saved, with bootstrap intervals and the sensitivity at every threshold;
    written to oof/<exp>/froc_report.csv and froc.png. None when the data has no annotations
    or a model has no saved heatmaps."""
    from cxr.localization.evaluation import annotations, froc_scores, read_cams, run_spec

    root = Path(args.input_dir) / args.dataset
    train_objects, test_objects = annotations(root) if root.is_dir() else (None, None)
    if train_objects is None:
        return None
    exp_dir = Path(args.oof_dir) / args.exp
    cams = [read_cams(args.oof_dir, args.exp, m, folds, list(test["image_id"])) for m in models]
    if any(c is None for c in cams):
        print("FROC: not scored (a model has no saved Grad-CAMs: train it with --heatmaps on)")
        return None
    setups = [run_spec(run_dir(args.weights_dir, args.exp, m, 0)) for m in models]
    ids = list(folds["image_id"])
    boot = dict(n_boot=args.froc_bootstrap, seed=args.seed)
    scores = {"oof": froc_scores(models, choice["weights"], nested, P, [[oof] for oof, _ in cams], setups, ids,
                                 {i: train_objects[i] for i in ids}, root, args.max_points, **boot)}
    if test_objects is not None:
        test_ids = list(test["image_id"])
        kept_cams = [[tests[k] for k in kept[m]] for m, (_, tests) in zip(models, cams)]
        scores["test"] = froc_scores(models, choice["weights"], test_blend, T, kept_cams, setups,
                                     test_ids, {i: test_objects[i] for i in test_ids}, root, args.max_points, **boot)
    table = froc_table(scores)
    write_csv(exp_dir / "froc_report.csv", table, float_format="%.6f")
    froc_figure({f"{name} ({side})": values[1] for side, named in scores.items() for name, values in named.items()
                 if name == "blend" or len(models) < 4}, FROC_THRESHOLDS, exp_dir / "froc.png",
                title=f"{args.exp}: FROC curves (OOF and test side)")
    shown = table[["name"] + [c for c in table.columns if c.endswith(("froc", "_low", "_high"))]]
    print(f"FROC ({args.max_points} points per image; map models' object maps, else Grad-CAM; the blend's points from "
          f"its heatmap; 95 % bootstrap intervals over images):\n" + shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    for side, named in scores.items():
        print(f"{side} sensitivity at " + ", ".join(f"{t:g}" for t in FROC_THRESHOLDS) + " false positives per image: "
              + "; ".join(f"{name} " + " ".join(f"{v:.3f}" for v in values[1]) for name, values in named.items()))
    print(f"wrote {exp_dir / 'froc_report.csv'} and {exp_dir / 'froc.png'}")
    return {side: {"froc": named["blend"][0], "low": named["blend"][2][0], "high": named["blend"][2][1],
                   "sensitivities": named["blend"][1]} for side, named in scores.items()}


def froc_table(scores):
    """One row per model and the blend: per side, the FROC, its interval and the sensitivity at each threshold."""
    import pandas as pd

    rows = {}
    for side, named in scores.items():
        for name, (value, sensitivities, (low, high)) in named.items():
            row = rows.setdefault(name, {"name": name})
            row.update({f"{side}_froc": value, f"{side}_low": low, f"{side}_high": high,
                        **{f"{side}_sens@{t:g}": v for t, v in zip(FROC_THRESHOLDS, sensitivities)}})
    return pd.DataFrame(list(rows.values()))


def mean_over_labels(report):
    """Per model and method, the mean over the labels of each AUC (label 'mean'; no interval:
    the mean of the labels' interval bounds would not be one)."""
    aucs = ["oof_auc", "nested_auc", "test_auc"]
    means = report.groupby(["kind", "name"], sort=False)[aucs].mean().reset_index()
    return means.assign(label="mean", nested_low=np.nan, nested_high=np.nan, weights="", chosen=False)


def blend_spec(args, models, kept, weak_folds, labels, choices):
    """Everything inference needs to reproduce the blend on new images: per label (one entry,
    flat, for a binary target) the method, its fitted parameters and threshold; the fold runs
    of each model whose test predictions were averaged (`kept`), and what was done with weak folds."""
    runs = {m: model_runs(args, m, kept[m]) for m in models}
    common = {"exp": args.exp, "dataset": args.dataset, "models": models, "format": args.format, "runs": runs,
              "precision": recorded_precisions(runs), "weak_folds": weak_folds,
              "test_prediction": "each model: mean of its fold models' probabilities; then the method"}
    if labels == [""]:
        return {**common, **choices[0]}
    return {**common, "labels": dict(zip(labels, choices))}


def model_runs(args, model, folds):
    """The run folders of `model`'s `folds`, every seed's of each (artifacts.fold_runs), as the spec names them."""
    return [str(run) for fold in folds for run in fold_runs(args.weights_dir, args.exp, model, fold)]


def recorded_precisions(runs):
    """{model: the precision its fold models predicted their OOF and test rows in (config.json;
    'fp32/bf16' when folds differ)}: inference (inference.py) runs each fold model in its own."""
    import json

    def precision(run):
        path = Path(run) / "config.json"
        return json.loads(path.read_text()).get("precision", "fp32") if path.is_file() else "fp32"
    return {model: "/".join(sorted({precision(run) for run in folder})) for model, folder in runs.items()}


def test_like_mask(args, folds):
    """The OOF rows (in fold-file order) make_folds.py --test-like marked as most like the test side, or None."""
    import pandas as pd

    path = test_like_file(args.folds_dir, args.dataset)
    if not path.is_file():
        if args.choose_by == "test_like":
            raise UserError(f"--choose-by test_like: {path} not found (run make_folds.py --test-like 0.25 first)")
        return None
    table = pd.read_csv(path, dtype={"image_id": str}).set_index("image_id")
    missing = folds.loc[~folds["image_id"].isin(table.index), "image_id"]
    if len(missing):
        raise UserError(f"{path}: made for other images ({missing.iloc[0]} and {len(missing) - 1} more are not in it); "
                        f"run make_folds.py --test-like again")
    return table.loc[folds["image_id"], "test_like"].astype(bool).to_numpy()


def warn_about_shift(args):
    path = shift_report_file(args.reports_dir, args.dataset)
    if path.is_file():
        auc = json.loads(path.read_text())["adversarial_auc"]
        if auc >= HIGH_SHIFT:
            print(f"warning: the test side looks unlike the training side (adversarial AUC {auc:.3f}, {path}): the OOF "
                  f"AUC may overstate the test score; compare the test-like AUC (make_folds.py --test-like)")


@exit_on_user_error
def main(argv=None):
    parser = Parser(description=__doc__)
    add_settings(parser, "exp", "dataset", exp="experiment name: blends oof/<exp>/*/, writes submissions/<exp>/",
                 dataset="data set whose fold file the OOF files must match")
    parser.add_argument("--models", nargs="*", default=None, metavar="MODEL",
                        help="model names or shell patterns ('resnet*') to blend (default: all in <oof-dir>/<exp>/)")
    parser.add_argument("--temperature", type=float, default=125.0, help="softmax-of-AUC temperature")
    parser.add_argument("--trials", type=int, default=100, help="Optuna trials")
    parser.add_argument("--seed", type=int, default=42, help="Optuna, hill climbing, stacking and bootstrap seed")
    parser.add_argument("--bags", type=int, default=10, help="Caruana hill climbing: bags of half the models")
    parser.add_argument("--storage", metavar="URL", help="Optuna storage URL (sqlite:///blend.db, postgresql://...): "
                                                        "processes with the same --study-name search together")
    parser.add_argument("--study-name", help="Optuna study name with --storage (default: blend-<exp>), suffixed with a "
                                             "fingerprint of the OOF data so each label and model list has its own")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals")
    parser.add_argument("--format", choices=SUBMISSION_FORMATS, default="objectcxr",
                        help="the submission file: objectcxr (prediction_classification.csv: image_path + prediction) "
                             "| kaggle (submission.csv: sample_submission.csv's header and order)")
    parser.add_argument("--froc-bootstrap", type=int, default=200,
                        help="bootstrap resamples for the FROC intervals (0 = none)")
    parser.add_argument("--choose-by", choices=("nested", "test_like"), default="nested",
                        help="choose the blend by its nested AUC on all OOF rows, or on the rows most like the test "
                             "side (make_folds.py --test-like)")
    parser.add_argument("--max-points", type=int, default=10, help="localization points per image for FROC")
    parser.add_argument("--weak-folds", choices=("drop", "keep"), default="drop",
                        help="a weak fold (OOF AUC more than 0.02 below its model's median fold AUC and its 95 %% "
                             "interval below it too; src/fold_scores.py): drop its model from the model's test mean "
                             "and the blend spec (its OOF rows stay), or keep it")
    add_settings(parser, "input_dir", "folds_dir", "oof_dir", "weights_dir", "reports_dir",
                 input_dir="where data sets live (--format kaggle reads test.csv and sample_submission.csv)",
                 oof_dir="where the OOF and test predictions are (<oof-dir>/<exp>/<model>/)",
                 weights_dir="where the checkpoints are (the blend spec names them)",
                 reports_dir="where shift.py's report is (a strong shift is warned of)")
    parser.add_argument("--submissions-dir", default="submissions", metavar="DIR",
                        help="the submission and blend spec go to <submissions-dir>/<exp>/")
    args = parser.parse_args(argv)
    if args.storage and not args.study_name:
        args.study_name = f"blend-{args.exp}"
    import pandas as pd

    from cxr.data.labels import label_name, prediction_column, target_columns
    from cxr.data.folds import read_folds
    from cxr.data.layouts import require_data_set

    path = folds_file(args.folds_dir, args.dataset)
    if not path.is_file():  # a wrong --dataset: say so, with the data sets there are
        require_data_set(Path(args.input_dir) / args.dataset)
    folds = read_folds(path)
    columns = target_columns(folds)
    labels = [label_name(c) for c in columns]  # [''] for a binary target
    exp_dir = Path(args.oof_dir) / args.exp
    models = list_models(exp_dir, args.models)
    loaded = [load_model_predictions(exp_dir / m, folds, columns) for m in models]
    test_ids = loaded[0][1][0]["image_id"]
    for model, (_, tests) in zip(models, loaded):
        if not tests[0]["image_id"].equals(test_ids):
            raise UserError(f"{exp_dir / model}: test predictions cover other images than {models[0]}'s")

    out = Path(args.submissions_dir) / args.exp
    submission, write_submission = plan_submission(args, out, test_ids, labels) if len(test_ids) else (None, None)
    test_like = test_like_mask(args, folds)
    kept, weak_folds = handle_weak_folds(args, exp_dir, models, columns, loaded, folds["fold"].nunique())
    loaded = [(oof, mean_of_folds(tests, columns, kept[m])) for m, (oof, tests) in zip(models, loaded)]
    test = loaded[0][1]
    reports, metrics, choices, test_predictions = [], [], [], []
    for column, label in zip(columns, labels):
        y, fold_ids = folds[column].to_numpy(), folds["fold"].to_numpy()
        P = np.stack([oof[prediction_column(column)].to_numpy() for oof, _ in loaded], axis=1)
        T = np.stack([t[prediction_column(column)].to_numpy() for _, t in loaded], axis=1)
        labelled = len(test) > 0 and column in test and test[column].notna().all()
        test_y = test[column].to_numpy() if labelled else None  # Object-CXR's labelled dev set: a true hold-out
        report, metric, choice, predictions, nested = blend_target(args, exp_dir, models, y, fold_ids, P, T, test_y,
                                                                   label, test_like)
        reports.append(report.assign(label=label))
        metrics.append(metric.assign(label=label))
        choices.append(choice)
        test_predictions.append(predictions)

    report = pd.concat(reports, ignore_index=True)
    if len(labels) > 1:
        means = mean_over_labels(report)
        report = pd.concat([report, means], ignore_index=True)
        shown = means[["kind", "name", "oof_auc", "nested_auc"] + (["test_auc"] if means["test_auc"].notna().any() else [])]
        print("\nmean AUC over the labels:\n" + shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        chosen = ", ".join(f"{label}: {choice['method']}" for label, choice in zip(labels, choices))
        print(f"per-label choice ({chosen}): mean nested AUC {np.mean([c['nested_auc'] for c in choices]):.4f}")
    else:
        report = report.drop(columns=["label"])
    write_csv(exp_dir / "blend_report.csv", report, float_format="%.6f")
    chart_rows = report[report["label"] == "mean"] if len(labels) > 1 else report
    blend_chart(chart_rows, exp_dir / "blend_report.png",
                title=f"{args.exp}: in-sample vs nested OOF AUC" + (" (mean over labels)" if len(labels) > 1 else ""))
    write_csv(exp_dir / "oof_metrics.csv", pd.concat(metrics, ignore_index=True).drop(
        columns=[] if len(labels) > 1 else ["label"]), float_format="%.6f")

    if labels == [""]:
        choices[0]["froc"] = localization_report(args, models, folds, P, T, test, choices[0], nested,
                                                 test_predictions[0], kept)

    written = "no submission (the data set has no test side)"
    if submission is not None:
        write_submission(np.column_stack(test_predictions))
        written = f"{submission} ({len(test)} images)"
    spec = blend_spec(args, models, kept, weak_folds, labels, choices)
    write_json(out / "blend.json", spec)
    print("predictions made in " + ", ".join(f"{m} {p}" for m, p in spec["precision"].items())
          + " (submit.py and predict.py run each model in its own precision)")
    print(f"wrote {written}, {out / 'blend.json'}, {exp_dir / 'blend_report.csv'} (+ .png), "
          f"{exp_dir / 'oof_metrics.csv'}, ROC and confusion PNGs")
    warn_about_shift(args)


if __name__ == "__main__":
    main()
