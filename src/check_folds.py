"""Name the weak folds of an experiment's models before they are blended.

    python src/check_folds.py --exp demo --dataset demo
    python src/check_folds.py --exp full --dataset objectcxr --models "resnet*"

Reads oof/<exp>/<model>/fold_<k>.csv of every selected model (checked against
folds/<dataset>.csv as blend.py checks them; a fold not trained yet is named and left out),
scores each fold's OOF predictions (the mean AUC over the labels of a multi-label set, with
its 95 % DeLong interval) and prints a line per model with each fold's AUC side by side, the
weak ones marked *. A fold is weak when its OOF AUC is more than 0.02 below the median of
its model's fold AUCs and the upper end of its 95 % interval is below that median too (3 or
more folds; see src/cxr/blending/weak_folds.py). blend.py prints the same table and leaves a weak fold's
model out of the test predictions (--weak-folds drop, its default). Writes
oof/<exp>/fold_scores.csv (model, fold, n, auc, low, high, median, gap, weak). Exit 0
whatever the scores; 2 for a wrong flag or file.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cxr.artifacts import folds_file, list_models, read_oof_folds, write_csv  # noqa: E402
from cxr.config import Parser, add_settings  # noqa: E402
from cxr.errors import UserError, exit_on_user_error  # noqa: E402


@exit_on_user_error
def main(argv=None):
    parser = Parser(description=__doc__)
    add_settings(parser, "exp", "dataset", exp="experiment name: reads oof/<exp>/*/",
                 dataset="data set whose fold file the OOF files must match")
    parser.add_argument("--models", nargs="*", default=None, metavar="MODEL",
                        help="model names or shell patterns ('resnet*') to score (default: all in <oof-dir>/<exp>/)")
    add_settings(parser, "input_dir", "folds_dir", "oof_dir",
                 oof_dir="where the OOF predictions are (<oof-dir>/<exp>/<model>/); fold_scores.csv goes there")
    args = parser.parse_args(argv)
    import pandas as pd

    from cxr.data.labels import prediction_column, target_columns
    from cxr.data.folds import read_folds
    from cxr.blending.weak_folds import fold_scores, format_fold_scores
    from cxr.data.layouts import require_data_set

    path = folds_file(args.folds_dir, args.dataset)
    if not path.is_file():  # a wrong --dataset: say so, with the data sets there are
        require_data_set(Path(args.input_dir) / args.dataset)
    folds = read_folds(path)
    columns = target_columns(folds)
    exp_dir = Path(args.oof_dir) / args.exp
    models = list_models(exp_dir, args.models)
    predictions = [prediction_column(c) for c in columns]
    oofs, missing = {}, []
    for model in models:
        parts = read_oof_folds(exp_dir / model, folds, columns, predictions, missing_ok=True)
        absent = sorted(set(folds["fold"]) - set(parts))
        if absent:
            missing.append(f"{model} fold{'s' * (len(absent) > 1)} {', '.join(map(str, absent))}")
        if parts:
            oofs[model] = pd.concat(parts.values())
    if not oofs:
        raise UserError(f"{exp_dir}: no OOF file of any fold of {', '.join(models)} (train a fold first)")
    table = fold_scores(oofs, columns)
    print(format_fold_scores(table))
    if missing:
        print("not scored, no OOF file yet: " + "; ".join(missing))
    write_csv(exp_dir / "fold_scores.csv", table, float_format="%.6f")
    print(f"wrote {exp_dir / 'fold_scores.csv'}")


if __name__ == "__main__":
    main()
