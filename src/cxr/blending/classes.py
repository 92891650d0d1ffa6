"""A multi-class task's blend as a whole: each class's column is blended like a label (its own
method, chosen on its one-vs-rest nested AUC), then every row is scaled back to probabilities
that sum to 1; the multi-class metrics (macro AUC, accuracy, log loss) of each model and of the
blend, with bootstrap intervals over images."""
import numpy as np

from cxr.metrics import registry

CLASS_METRICS = ("auc", "accuracy", "log_loss")  # registry names; auc is the macro one-vs-rest mean


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


def blend_classes(args, exp_dir, models, truth, oof_by_model, nested_by_class, test_by_class):
    """A multi-class task after its classes were blended one by one: the blend's nested OOF and test
    columns scaled to rows of probabilities; each model's and the blend's multi-class metrics
    printed and written to oof/<exp>/class_report.csv. Returns the test probabilities (n, classes)."""
    from cxr.artifacts import write_csv

    named = {**oof_by_model, "blend (per-class choice, nested)": np.column_stack(nested_by_class)}
    report = class_report(truth, named, args.bootstrap, args.seed)
    print("\n" + show_class_report(report, "multi-class, OOF (95 % bootstrap)"))
    write_csv(exp_dir / "class_report.csv", report, float_format="%.6f")
    return as_class_probabilities(np.column_stack(test_by_class)) if test_by_class else None
