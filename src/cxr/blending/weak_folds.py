"""Each fold's OOF AUC of every model, and the rule that names a weak fold (check_folds.py, blend.py).

The rule: a fold is weak when its OOF AUC is more than 0.02 below the median of its model's
fold AUCs AND the upper end of its 95 % DeLong interval is below that median too: a gap that
the sampling of its few validation images does not explain. Nothing is flagged with fewer
than 3 folds of a model with an AUC (with 2 the median is their mean: each is as far from it
as the other). At least half of a model's folds are at or above its median, so a model always
keeps at least half its folds. The worst of several folds is compared with their median, so
sampling alone names one now and then: 5 % of models whose 5 folds of 200 images differ by
chance alone (tests/test_fold_scores.py; docs/blending.md).

For a multi-label set a fold's AUC is the mean over the labels (a label with one class in the
fold left out, as metrics/auc.py mean_auc does), and its interval's half-width the mean of the
labels' DeLong half-widths: the mean's standard error is at most the mean of theirs, so the
interval is if anything too wide and the rule, if anything, too slow to flag.

Pure functions of the OOF frames (columns fold, the target columns and their prediction
columns, as blend.py reads them): no files read or written here.
"""
import numpy as np

from cxr.artifacts import write_csv
from cxr.blending.spec import model_runs
from cxr.metrics.auc import certain_rows, delong_covariance
from cxr.metrics.registry import get

MARGIN = 0.02  # AUC below the model's median fold AUC
LEVEL = 0.95  # the DeLong interval
MIN_FOLDS = 3  # folds with an AUC needed to name a weak one
RULE = (f"a fold is weak when its OOF AUC is more than {MARGIN:g} below the median of its model's fold AUCs and "
        f"the upper end of its {LEVEL * 100:g} % DeLong interval is below that median too (needs {MIN_FOLDS} or "
        f"more folds)")
COLUMNS = ["model", "fold", "n", "auc", "low", "high", "median", "gap", "weak"]


def fold_auc(targets, scores, level=LEVEL):
    """(AUC, low, high) of one fold's OOF rows, `targets` and `scores` (n,) or (n, labels): the
    mean AUC over the labels and its DeLong interval (for several labels the mean half-width);
    low and high are NaN where no label has two images of each class."""
    from scipy.stats import norm

    targets, scores = np.asarray(targets), np.asarray(scores, dtype=float)
    targets, scores = targets.reshape(len(targets), -1), scores.reshape(len(scores), -1)
    auc = get("auc").function(targets, scores)  # the rule's interval is DeLong's: an AUC's
    errors = []
    for j in range(targets.shape[1]):
        try:
            certain = certain_rows(targets[:, j])  # an uncertain label counts nowhere
            _, covariance = delong_covariance(targets[certain, j], scores[certain, j])
        except ValueError:  # fewer than two positives or negatives: no standard error
            continue
        errors.append(np.sqrt(max(covariance[0, 0], 0.0)))
    if not errors or not np.isfinite(auc):
        return auc, float("nan"), float("nan")
    half = norm.ppf(0.5 + level / 2) * float(np.mean(errors))
    return auc, float(max(auc - half, 0.0)), float(min(auc + half, 1.0))


def fold_scores(oofs, columns, margin=MARGIN, level=LEVEL, min_folds=MIN_FOLDS):
    """One row per model and fold (COLUMNS): n (its OOF rows), auc, low and high (its interval),
    median (of the model's fold AUCs), gap (median - auc) and weak (the rule, see the module).
    `oofs`: {model: its OOF frame}; `columns`: the target columns."""
    import pandas as pd

    from cxr.data.labels import prediction_column

    predictions = [prediction_column(c) for c in columns]
    rows = []
    for model, oof in oofs.items():
        for fold, part in oof.groupby("fold", sort=True):
            auc, low, high = fold_auc(part[columns].to_numpy(), part[predictions].to_numpy(), level)
            rows.append({"model": model, "fold": int(fold), "n": len(part), "auc": auc, "low": low, "high": high})
    table = pd.DataFrame(rows, columns=COLUMNS[:6])
    by_model = table.groupby("model", sort=False)["auc"]
    table["median"] = by_model.transform("median")
    table["gap"] = table["median"] - table["auc"]
    judged = by_model.transform("count") >= min_folds
    table["weak"] = (judged & (table["gap"] > margin) & (table["high"] < table["median"])).astype(bool)
    return table


def weak_folds(table):
    """{model: [its weak folds]} of a fold_scores table, only the models with one."""
    weak = table[table["weak"]]
    return {model: sorted(int(f) for f in part["fold"]) for model, part in weak.groupby("model", sort=False)}


def format_fold_scores(table, margin=MARGIN, level=LEVEL, min_folds=MIN_FOLDS):
    """The table as text: a line per model with each fold's AUC side by side, the weak ones
    marked * and the reason at the line's end."""
    folds = sorted(table["fold"].unique())
    width = max([len("model"), *map(len, table["model"])])
    lines = [f"OOF AUC of each fold (* weak: more than {margin:g} below the model's median fold AUC, and the "
             f"median beyond the fold's {level * 100:g} % DeLong interval; {min_folds} folds or more)",
             (f"{'model':<{width}}" + "".join(f"{f'fold {k}':>8} " for k in folds)).rstrip()]
    for model, part in table.groupby("model", sort=False):
        by_fold = part.set_index("fold")
        cells = []
        for k in folds:
            if k not in by_fold.index or not np.isfinite(by_fold.at[k, "auc"]):
                cells.append(f"{'n/a':>8} ")
            else:
                cells.append(f"{by_fold.at[k, 'auc']:>8.3f}" + ("*" if by_fold.at[k, "weak"] else " "))
        median, scored = part["median"].iat[0], int(part["auc"].notna().sum())
        if part["weak"].any():
            note = (f"(* weak: more than {margin:g} below the median {median:.3f} and beyond its "
                    f"{level * 100:g} % interval)")
        elif scored < min_folds:
            note = f"({scored} fold{'s' * (scored != 1)}: too few to name a weak one)"
        else:
            note = f"(median {median:.3f}; none weak)"
        lines.append(f"{model:<{width}}" + "".join(cells) + "   " + note)
    return "\n".join(lines)


def handle_weak_folds(args, exp_dir, models, columns, loaded, n_folds):
    """Score each model's folds (printed, oof/<exp>/fold_scores.csv), then {model: the folds whose
    test predictions it keeps} and the record of it for blend.json: with --weak-folds drop a weak
    fold's model leaves the test mean (its OOF rows stay: honest held-out predictions)."""
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
