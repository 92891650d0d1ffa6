"""A multi-class task's blend as a whole: each class's column is blended like a label (its own
method, chosen on its one-vs-rest nested AUC), then every row is scaled back to probabilities
that sum to 1; the multi-class metrics (macro AUC, accuracy, log loss) of each model and of the
blend, with bootstrap intervals over images."""
import numpy as np

from cxr.metrics import registry

CLASS_METRICS = ("auc", "accuracy", "log_loss")  # registry names; auc is the macro one-vs-rest mean
# Methods whose outputs are not probabilities of their own class: rank_mean maps each class to its own
# OOF quantiles and majority_vote gives vote shares; scaled into rows they would compare classes on
# different scales (a rare class's rank beside a common one's), however well each ranks alone.
NOT_PROBABILITIES = ("rank_mean", "majority_vote")


def as_class_probabilities(matrix):
    """(n, classes) scores -> each row scaled to sum to 1 (a row of zeros: every class alike)."""
    matrix = np.clip(np.asarray(matrix, dtype=float), 0, None)
    sums = matrix.sum(1, keepdims=True)
    uniform = np.full_like(matrix, 1 / max(matrix.shape[1], 1))
    return np.where(sums > 0, matrix / np.where(sums > 0, sums, 1), uniform)


def class_metrics(truth, probabilities):
    """{metric: value} of CLASS_METRICS for one-hot truth (n, classes) and probabilities."""
    return {name: registry.get(name).function(truth, probabilities) for name in CLASS_METRICS}


def class_report(truth, named, n_boot=1000, seed=0, level=0.95):
    """One row per (name, (n, classes) probabilities): each CLASS_METRICS value and its percentile
    bootstrap interval (images resampled with replacement)."""
    import pandas as pd

    truth = np.asarray(truth, dtype=float)
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(truth), len(truth)) for _ in range(n_boot)]
    tail = (1 - level) / 2 * 100
    rows = []
    for name, probabilities in named.items():
        probabilities = as_class_probabilities(probabilities)
        row = {"name": name, **class_metrics(truth, probabilities)}
        samples = [class_metrics(truth[index], probabilities[index]) for index in draws]
        for metric in CLASS_METRICS:
            low, high = np.nanpercentile([s[metric] for s in samples], [tail, 100 - tail]) if samples else (np.nan,) * 2
            row.update({f"{metric}_low": low, f"{metric}_high": high})
        rows.append(row)
    return pd.DataFrame(rows)


def show_class_report(report, title):
    """The report as text: value [interval] per metric."""
    lines = [f"{title:<40}" + "".join(f"{m:>24}" for m in CLASS_METRICS)]
    for row in report.to_dict("records"):
        cells = [f"{row[m]:.4f} [{row[m + '_low']:.3f}, {row[m + '_high']:.3f}]" for m in CLASS_METRICS]
        lines.append(f"{row['name']:<40}" + "".join(f"{c:>24}" for c in cells))
    return "\n".join(lines)


def blend_classes(args, exp_dir, truth, oof_by_model, fitted_by_class, T_by_class, metric="auc"):
    """A multi-class task after each class was scored alone (report.blend_target): one method for
    every class, the one whose nested OOF predictions, scaled to rows of probabilities, score best
    by `metric` (the registry's name: auc, log_loss, accuracy); each model's and the blend's
    metrics printed (95 % bootstrap) and written to oof/<exp>/class_report.csv, the methods'
    to class_methods.csv (rank_mean and majority_vote are no candidates: NOT_PROBABILITIES).
    Returns (the method's name, [its (params, nested predictions) per class], test probabilities
    (n, classes), or None without test rows)."""
    import pandas as pd

    from cxr.artifacts import write_csv

    chosen_metric = registry.get(metric)
    usable = [m for m, (method, _, _) in enumerate(fitted_by_class[0]) if method.name not in NOT_PROBABILITIES]
    fitted_by_class = [[fitted[m] for m in usable] for fitted in fitted_by_class]
    names = [method.name for method, _, _ in fitted_by_class[0]]
    nested = [as_class_probabilities(np.column_stack([fitted[m][2] for fitted in fitted_by_class]))
              for m in range(len(names))]
    methods = pd.DataFrame([{"name": name, **class_metrics(truth, matrix)} for name, matrix in zip(names, nested)])
    best = chosen_metric.best(methods[metric])
    methods["chosen"] = methods.index == best
    print("\nmulti-class blend: each method on every class, nested OOF, rows scaled to sum to 1 (chosen by "
          f"{metric}):\n" + methods.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    report = class_report(truth, {**oof_by_model, f"blend ({names[best]}, nested)": nested[best]}, args.bootstrap,
                          args.seed)
    print("\n" + show_class_report(report, "multi-class, OOF (95 % bootstrap)"))
    write_csv(exp_dir / "class_report.csv", report, float_format="%.6f")
    write_csv(exp_dir / "class_methods.csv", methods, float_format="%.6f")
    params = [fitted[best][1] for fitted in fitted_by_class]
    chosen = [(fitted[best][1], fitted[best][2]) for fitted in fitted_by_class]
    test = None
    if len(T_by_class) and len(T_by_class[0]):
        method = fitted_by_class[0][best][0]
        test = as_class_probabilities(np.column_stack([method.combine(T, p) for T, p in zip(T_by_class, params)]))
    return names[best], chosen, test
