"""Blend the models of an experiment on their OOF predictions; write the submission.

    python src/blend.py --exp demo --dataset demo
    python src/blend.py --exp full --dataset objectcxr --models "resnet*" densenet121 --trials 300
    python src/blend.py --exp full --dataset objectcxr --storage sqlite:///blend.db   # in several shells: one search

Reads oof/<exp>/<model>/fold_<k>.csv and test_fold_<k>.csv of every selected model (names
or shell patterns), checks that every model covers exactly the images and folds of
folds/<dataset>.csv, and scores each model's folds (as check_folds.py does: a fold whose OOF
AUC is more than 0.02 below the model's median fold AUC and whose 95 % DeLong interval lies
below it too is weak; --weak-folds drop, the default, leaves its fold model out of the model's
test mean and of blend.json's runs, its OOF rows stay). Then it scores each model and each
blending method (src/cxr/blending/methods.py) twice: in-sample OOF AUC (fitted and scored on the same
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
                                                     Grad-CAMs (see src/cxr/localization/evaluation.py)
    oof/<exp>/class_report.csv, class_methods.csv    a multi-class task: each model's and the blend's macro AUC,
                                                     accuracy and log loss (bootstrap intervals); every method's,
                                                     one method for every class chosen by --metric
    oof/<exp>/study_report.csv                       a data set of studies (a test table whose ids name folders of
                                                     images, a training table of study folders or with a study
                                                     column): the blend's nested OOF metric per image, and per study
                                                     as the mean and as the max of its images; the better rule makes
                                                     the submission's one row per study
    submissions/<exp>/prediction_classification.csv  Object-CXR format (--format objectcxr), validated
    submissions/<exp>/submission.csv                 --format kaggle (or multilabel: a column per label; multiclass:
                                                     a column per class, or the class name): sample_submission.csv's
                                                     header and order, else the test table's id column and `prediction`
(--format auto, the default, picks the data set's own: kaggle, multilabel or multiclass when it has a test.csv or
only a sample_submission.csv, else objectcxr; a data set without a test side gets no submission, the
reports and blend.json only.)
    submissions/<exp>/test_images.csv                a submission per study: each test image's blended prediction
                                                     and its study
    submissions/<exp>/blend.json                     the blend spec: method, models, fitted parameters,
                                                     threshold and the checkpoints, so new images get the same blend;
                                                     weak_folds: the rule, and the folds flagged and dropped
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402

from cxr.artifacts import folds_file, list_models, write_csv, write_json  # noqa: E402
from cxr.config import SUBMISSION_FORMATS, Parser, add_settings  # noqa: E402
from cxr.errors import UserError, exit_on_user_error  # noqa: E402
from cxr.figures import blend_chart  # noqa: E402

# pandas, scipy and the modules that import them (the blending, data and localization rooms) are
# imported in main, after the flags are parsed: --help does not wait for them.


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
    parser.add_argument("--metric", choices=("auto", "auc", "log_loss", "accuracy"), default="auto",
                        help="the metric of the nested OOF predictions that chooses the blending method: of each "
                             "label (binary, multi-label; log_loss and accuracy at 0.5 read them as probabilities), or "
                             "the one method of every class of a multi-class task, on its rows of class probabilities "
                             "(cxr/metrics/registry.py); auto: auc")
    parser.add_argument("--format", choices=SUBMISSION_FORMATS, default="auto",
                        help="the submission file (src/cxr/formats/): objectcxr (prediction_classification.csv: "
                             "image_path,prediction) | kaggle (submission.csv: sample_submission.csv's header and "
                             "order) | multilabel (the same, one column per label) | multiclass (a probability "
                             "column per class, or the class name) | auto: the data set's own (kaggle, multilabel or "
                             "multiclass when it has test.csv or sample_submission.csv, else objectcxr)")
    parser.add_argument("--check-format", action="store_true",
                        help="only resolve --format for the data set and check its submission can be written, then "
                             "stop (run.sh does this before any training)")
    parser.add_argument("--froc-bootstrap", type=int, default=200,
                        help="bootstrap resamples for the FROC intervals (0 = none)")
    parser.add_argument("--choose-by", choices=("nested", "test_like"), default="nested",
                        help="choose the blend by its nested AUC on all OOF rows, or on the rows most like the test "
                             "side (make_folds.py --test-like)")
    parser.add_argument("--max-points", type=int, default=10, help="localization points per image for FROC")
    parser.add_argument("--box-fusion", choices=("wbf", "maps"), default="wbf",
                        help="boxes of the test side (RSNA, VinBigData): wbf: each fold model's map makes its boxes, "
                             "fused by weighted boxes fusion, as each OOF image's boxes come from one fold model's map | "
                             "maps: from the fold models' averaged map (masks always come from the averaged map)")
    parser.add_argument("--weak-folds", choices=("drop", "keep"), default="drop",
                        help="a weak fold (OOF AUC more than 0.02 below its model's median fold AUC and its 95 %% "
                             "interval below it too; src/cxr/blending/weak_folds.py): drop its model from the model's test mean "
                             "and the blend spec (its OOF rows stay), or keep it")
    add_settings(parser, "input_dir", "folds_dir", "oof_dir", "weights_dir", "reports_dir",
                 input_dir="where data sets live (--format kaggle reads test.csv and sample_submission.csv)",
                 oof_dir="where the OOF and test predictions are (<oof-dir>/<exp>/<model>/)",
                 weights_dir="where the checkpoints are (the blend spec names them)",
                 reports_dir="where shift.py's report is (a strong shift is warned of)")
    parser.add_argument("--submissions-dir", default="submissions", metavar="DIR",
                        help="the submission and blend spec go to <submissions-dir>/<exp>/")
    args = parser.parse_args(argv)
    args.metric = "auc" if args.metric == "auto" else args.metric  # every task's default: AUC (macro for classes)
    if args.storage and not args.study_name:
        args.study_name = f"blend-{args.exp}"
    import pandas as pd

    from cxr.blending.inputs import load_model_predictions, mean_of_folds, test_like_mask
    from cxr.blending.report import blend_target, mean_over_labels
    from cxr.blending.spec import blend_spec
    from cxr.blending.studies import aggregate, first_images, test_studies
    from cxr.data.studies import STUDY_COLUMN
    from cxr.blending.weak_folds import handle_weak_folds
    from cxr.data.folds import read_folds
    from cxr.data.labels import label_name, prediction_column, target_columns, task_of
    from cxr.metrics.auc import certain_rows, mean_auc
    from cxr.data.layouts import kaggle_test_ids, kaggle_test_table, require_data_set
    from cxr.formats.registry import OBJECT_TASKS, resolve
    from cxr.localization.evaluation import localization_report
    from cxr.testside.adversarial import shift_warning

    path = folds_file(args.folds_dir, args.dataset)
    if not path.is_file():  # a wrong --dataset: say so, with the data sets there are
        require_data_set(Path(args.input_dir) / args.dataset)
    folds = read_folds(path)
    columns = target_columns(folds)
    labels = [label_name(c) for c in columns]  # [''] for a binary target
    root = Path(args.input_dir) / args.dataset
    task = task_of(folds)
    submission_format = resolve(args.format, root, labels, task)
    args.format = submission_format.name  # the blend spec records the format written
    out = Path(args.submissions_dir) / args.exp
    if args.check_format:
        test_ids = list(kaggle_test_ids(root)[1]) if kaggle_test_table(root) is not None else []
        if test_ids or submission_format.name == "objectcxr":  # without a test table, a Kaggle format has nothing to plan
            submission_format.plan(out, root, test_ids, labels)
        print(f"submission format: {submission_format.name} ({submission_format.summary})")
        return
    exp_dir = Path(args.oof_dir) / args.exp
    models = list_models(exp_dir, args.models)
    loaded = [load_model_predictions(exp_dir / m, folds, columns) for m in models]
    image_scores = {m: score for m, (_, _, score) in zip(models, loaded) if score}  # map models: one per model
    loaded = [(oof, tests) for oof, tests, _ in loaded]
    test_ids = loaded[0][1][0]["image_id"]
    for model, (_, tests) in zip(models, loaded):
        if not tests[0]["image_id"].equals(test_ids):
            raise UserError(f"{exp_dir / model}: test predictions cover other images than {models[0]}'s")

    studies = test_studies(root, list(test_ids)) if len(test_ids) else None  # a submission of one row per study
    if studies and submission_format.name == "objectcxr":
        raise UserError(f"{root}: the test table lists studies of several images; --format objectcxr writes one row per "
                        f"image: use --format auto")
    planned_ids = first_images(studies, list(test_ids)) if studies else list(test_ids)
    submission = submission_format.plan(out, root, planned_ids, labels) if len(test_ids) else None
    test_like = test_like_mask(args, folds)
    kept, weak_folds = handle_weak_folds(args, exp_dir, models, columns, loaded, folds["fold"].nunique())
    loaded = [(oof, mean_of_folds(tests, columns, kept[m])) for m, (oof, tests) in zip(models, loaded)]
    test = loaded[0][1]
    reports, metrics, choices, test_predictions, fitted_by_label, T_by_label = [], [], [], [], [], []
    nested_oof = np.full((len(folds), len(columns)), np.nan)  # the chosen blend's nested predictions (studies' rule)
    for column, label in zip(columns, labels):
        y, fold_ids = folds[column].to_numpy(), folds["fold"].to_numpy()
        P = np.stack([oof[prediction_column(column)].to_numpy() for oof, _ in loaded], axis=1)
        T = np.stack([t[prediction_column(column)].to_numpy() for _, t in loaded], axis=1)
        certain = certain_rows(y)  # an uncertain label (--uncertain) is left out of its label's blend and scores
        if not certain.all():
            print(f"{label or 'target'}: {int((~certain).sum())} uncertain label(s) left out of the blend's fit and scores")
            y, fold_ids, P = y[certain].astype(int), fold_ids[certain], P[certain]
        labelled = len(test) > 0 and column in test and test[column].notna().all()
        test_y = test[column].to_numpy() if labelled else None  # Object-CXR's labelled dev set: a true hold-out
        report, metric, choice, predictions, nested, fitted = blend_target(
            args, exp_dir, models, y, fold_ids, P, T, test_y, label, test_like[certain] if test_like is not None else None,
            "auc" if task == "multiclass" else args.metric)  # a multi-class task: the metric chooses over all classes
        nested_oof[certain, len(reports)] = nested
        reports.append(report.assign(label=label))
        metrics.append(metric.assign(label=label))
        choices.append(choice)
        test_predictions.append(predictions)
        fitted_by_label.append(fitted)
        T_by_label.append(T)
    if task == "multiclass":  # one method for every class, chosen on the rows of class probabilities
        from cxr.blending.classes import blend_classes

        oof_by_model = {m: oof[[prediction_column(c) for c in columns]].to_numpy() for m, (oof, _) in zip(models, loaded)}
        if args.choose_by == "test_like":
            raise UserError("--choose-by test_like chooses each label's method by its own AUC; a multi-class task's one "
                            "method is chosen by --metric on all classes together")
        method, params, scaled = blend_classes(args, exp_dir, folds[columns].to_numpy(), oof_by_model, fitted_by_label,
                                               T_by_label, args.metric)
        for column, report, choice, (fitted_params, nested) in zip(columns, reports, choices, params):
            report["chosen"] = (report["kind"] == "blend") & (report["name"] == method)
            for stale in ("threshold", "oof_auc", "versus_best_model"):  # of the method each class chose alone
                choice.pop(stale, None)
            choice.update(method=method, params=fitted_params, weights=fitted_params["weights"], chosen_by=args.metric,
                          nested_auc=float(mean_auc(folds[column].to_numpy(), nested)))
        test_predictions = test_predictions if scaled is None else list(scaled.T)
        nested_oof = np.column_stack([nested for _, nested in params])

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

    study_rule = None
    if studies is not None or STUDY_COLUMN in folds:  # one prediction per study: its images' mean or max
        study_rule = choose_study_rule(args, exp_dir, folds, columns, nested_oof, task)
    objects = None
    if submission is not None and submission_format.task in OBJECT_TASKS:  # boxes or masks from the object maps
        predictions, objects = object_predictions(args, submission_format.task, models, folds, test, choices[0],
                                                  nested_oof[:, 0], test_predictions[0], kept, root)
        submission.write(predictions)
        submission = None
        written = f"{submission_format.name}'s {submission_format.files[0]} ({len(test)} images)"
    else:
        written = "no submission (the data set has no test side)"
    if submission is not None:
        predictions = np.column_stack(test_predictions)
        if studies is not None:  # the images' blended predictions kept beside the studies' rows
            write_csv(out / "test_images.csv", pd.DataFrame(
                {"image_id": test["image_id"], STUDY_COLUMN: studies,
                 **{prediction_column(c): predictions[:, j] for j, c in enumerate(columns)}}), float_format="%.8f")
            _, predictions = aggregate(predictions, studies, study_rule, task == "multiclass")
        submission.write(predictions)
        written = f"{submission.path} ({len(test)} images" + (f" in {len(predictions)} studies)" if studies else ")")
    spec = blend_spec(args, models, kept, weak_folds, labels, choices, image_scores)
    if study_rule is not None:
        spec["studies"] = {"rule": study_rule, "submission": "one row per study" if studies else "one row per image"}
    if objects is not None:
        spec["objects"] = objects
    write_json(out / "blend.json", spec)
    print("predictions made in " + ", ".join(f"{m} {p}" for m, p in spec["precision"].items())
          + " (submit.py and predict.py run each model in its own precision)")
    print(f"wrote {written}, {out / 'blend.json'}, {exp_dir / 'blend_report.csv'} (+ .png), "
          f"{exp_dir / 'oof_metrics.csv'}, ROC and confusion PNGs")
    warning = shift_warning(args.reports_dir, args.dataset)
    if warning:
        print(warning)


def object_predictions(args, task, models, folds, test, choice, nested, test_probabilities, kept, root):
    """({test image: boxes or mask}, the chosen post-processing and its scores) from the saved object
    maps (localization/objects.py)."""
    from cxr.artifacts import run_dir
    from cxr.localization.evaluation import read_cams, run_spec
    from cxr.localization.objects import object_submission

    test_ids = list(test["image_id"])
    cams = [read_cams(args.oof_dir, args.exp, m, folds, test_ids) for m in models]
    if any(c is None for c in cams):
        raise UserError(f"a {task} submission needs every model's saved maps (train.py --heatmaps on)")
    setups = [run_spec(run_dir(args.weights_dir, args.exp, m, 0)) for m in models]
    return object_submission(args, task, models, folds, cams, setups, choice["weights"], nested, test_ids,
                             np.asarray(test_probabilities), kept, root)


def choose_study_rule(args, exp_dir, folds, columns, nested_oof, task):
    """The rule (mean or max of a study's images) chosen on the training studies' nested OOF
    predictions (blending/studies.py), printed and written to <oof>/<exp>/study_report.csv."""
    from cxr.artifacts import write_csv
    from cxr.blending.studies import choose_rule
    from cxr.data.studies import STUDY_COLUMN

    if STUDY_COLUMN not in folds:
        print("studies: the training table names none (no folders of images, no study column): each study's "
              "prediction is the mean of its images (not chosen on OOF)")
        return "mean"
    rule, report, several = choose_rule(folds[columns].to_numpy(dtype=float), nested_oof, folds[STUDY_COLUMN],
                                        args.metric, task == "multiclass")
    print(f"\nstudies ({several} of {report['n'].iloc[1]} training studies with 2 or more images), the blend's nested "
          f"OOF {args.metric} per image and per study:\n" + report.to_string(index=False, float_format=lambda v: f"{v:.4f}")
          + f"\neach study's prediction: the {rule} of its images'")
    write_csv(exp_dir / "study_report.csv", report, float_format="%.6f")
    return rule


if __name__ == "__main__":
    main()
