"""The blend report of one target: every model and blending method scored in-sample and nested
(fitted without each fold, scored on it: honest), the choice by nested (or test-like) AUC, the
comparison with the best single model (DeLong, paired), metrics at Youden's threshold with
bootstrap intervals, ROC and confusion figures, and the test side's prior shift. blend.py runs it
per target; `settings` is blend.py's parsed flags."""
import json

import numpy as np

from cxr.figures import confusion_figure, roc_figure
from cxr.metrics.auc import delong_interval, delong_test
from cxr.metrics.registry import get
from cxr.metrics.thresholds import bootstrap_intervals, confusion, threshold_metrics, youden_threshold
from cxr.testside.prior import estimate_prior, prior_threshold

AUC = get("auc")  # the report's score (and the blend's choice): the registry's AUC

# pandas and scipy are imported in the functions that use them.

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


def report_row(kind, name, y, in_sample, nested, test_y, test_scores, weights="", test_like=None):
    """One row of blend_report.csv; the interval is the nested AUC's (DeLong). `test_like`: the
    mask of the OOF rows most like the test side (make_folds.py --test-like), scored apart."""
    low, high = delong_interval(y, nested)
    return {"kind": kind, "name": name, "oof_auc": AUC.function(y, in_sample), "nested_auc": AUC.function(y, nested),
            "nested_low": low, "nested_high": high,
            "test_like_auc": AUC.function(y[test_like], nested[test_like]) if test_like is not None else np.nan,
            "test_auc": AUC.function(test_y, test_scores) if test_y is not None else np.nan, "weights": weights}


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
    best = int(np.argmax([AUC.function(y, P[:, i]) for i in range(len(models))]))
    result = delong_test(y, nested, P[:, best])
    verdict = "significant" if result["p_value"] < 0.05 else "not significant"
    return {**result, "model": models[best], "verdict": verdict}


def blend_target(args, exp_dir, models, y, fold_ids, P, T, test_y, label="", test_like=None, metric="auc"):
    """Score every model and method on one target (P, T: OOF and test matrices, n x models),
    choose by nested AUC (or by its test-like rows' AUC; or by another registry `metric` of the
    nested predictions, a column nested_<metric> of the report), compare with the best model, write
    the figures (suffixed _<label> for a multi-label set). Returns the target's report, metrics,
    choice, test predictions, the chosen method's nested predictions and every method's
    (method, params, nested predictions)."""
    import pandas as pd

    from cxr.blending.methods import best_method

    suffix, named_as = (f"_{label}", f" [{label}]") if label else ("", "")
    method_rows, fitted = score_methods(P, y, fold_ids, T, test_y, args, test_like)
    report = pd.DataFrame(model_rows(models, P, y, T, test_y, test_like) + method_rows)
    blends = report[report["kind"] == "blend"].reset_index(drop=True)
    choose_by = "test_like_auc" if args.choose_by == "test_like" else "nested_auc"
    if metric != "auc" and choose_by == "nested_auc":
        choose_by = f"nested_{metric}"
        values = [get(metric).function(y, predictions) for _, _, predictions in fitted]
        report.loc[report["kind"] == "blend", choose_by] = values
        chosen, params, nested = fitted[best_method(values, metric)]
    else:
        chosen, params, nested = fitted[best_method(blends[choose_by])]
    report["chosen"] = (report["kind"] == "blend") & (report["name"] == chosen.name)
    shown = report.drop(columns=["chosen"] + ([] if test_y is not None else ["test_auc"])
                        + ([] if test_like is not None else ["test_like_auc"]))
    print(f"\n{label or 'target'}:\n" + shown.to_string(
        index=False, float_format=lambda v: f"{v:.4f}", formatters={"weights": lambda w: w if len(w) < 70 else w[:67] + "..."}))

    comparison = compare_with_best_model(y, nested, P, models)
    chosen_by = {"test_like_auc": "test-like AUC", "nested_auc": "nested AUC"}.get(choose_by, choose_by.replace("_", " "))
    print(f"chosen by {chosen_by}{named_as}: {chosen.name}; vs the best single model {comparison['model']} (DeLong, "
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
    return report, metrics, choice, chosen.combine(T, params), nested, fitted


PRIOR_CHECK_TOLERANCE = 0.2  # EM on the OOF rows may miss their known share by this much in log-odds (0.05 at 0.5)


def prior_shift(y, P, T, test_y, named_as=""):
    """The test side's positive share, estimated by EM on the priors from the models' mean probability,
    and the accuracy threshold it moves 0.5 to (the AUC does not change); with test labels, the
    accuracy at both thresholds.

    EM trusts the probabilities to be calibrated posteriors; a map model's maximum or an
    overconfident network's are not, and EM then runs to 0 or 1. So it is first run on the OOF
    rows, whose positive share is known: when it misses that share by more than
    PRIOR_CHECK_TOLERANCE in log-odds (relative, so a rare class is judged as strictly), the
    estimate is reported as not to be trusted and the threshold stays 0.5. The estimate is
    bounded to [0.5 / n, 1 - 0.5 / n] for n test images."""
    train_prior = float(np.mean(y))
    test_mean = T.mean(axis=1)
    check = estimate_prior(P.mean(axis=1), train_prior)
    log_odds = lambda p: np.log(np.clip(p, 1e-6, 1 - 1e-6) / np.clip(1 - p, 1e-6, 1 - 1e-6))  # noqa: E731
    trusted = abs(log_odds(check) - log_odds(train_prior)) <= PRIOR_CHECK_TOLERANCE
    bound = 0.5 / len(test_mean)
    estimate = float(np.clip(estimate_prior(test_mean, train_prior), bound, 1 - bound))
    threshold = prior_threshold(train_prior, estimate) if trusted else 0.5
    shift = {"train_positive_share": train_prior, "test_positive_share_estimate": estimate,
             "oof_check_estimate": check, "trusted": bool(trusted), "accuracy_threshold": threshold}
    line = (f"prior shift{named_as}: positives {train_prior:.3f} of the training side, {estimate:.3f} of the test "
            f"side (EM on the mean model probability)")
    line += (f": the accuracy threshold 0.5 becomes {threshold:.3f}" if trusted else
             f", not to be trusted: EM on the OOF rows reads {check:.3f} where the share is {train_prior:.3f} (the "
             f"probabilities are not calibrated posteriors); the accuracy threshold stays 0.5")
    if test_y is not None:
        shift.update({f"test_accuracy_at_{name}": float(np.mean((test_mean >= t) == test_y))
                      for name, t in (("0.5", 0.5), ("prior_threshold", threshold))})
        line += f"; test accuracy {shift['test_accuracy_at_0.5']:.4f} at 0.5"
        line += f", {shift['test_accuracy_at_prior_threshold']:.4f} at {threshold:.3f}" if trusted else ""
    print(line)
    return shift


def mean_over_labels(report):
    """Per model and method, the mean over the labels of each AUC (label 'mean'; no interval:
    the mean of the labels' interval bounds would not be one)."""
    aucs = ["oof_auc", "nested_auc", "test_auc"]
    means = report.groupby(["kind", "name"], sort=False)[aucs].mean().reset_index()
    return means.assign(label="mean", nested_low=np.nan, nested_high=np.nan, weights="", chosen=False)
