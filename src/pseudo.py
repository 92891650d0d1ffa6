"""Pseudo-labels for a second round of training: the test images the first round is sure of, fold-safe.

    python src/pseudo.py --exp pmnist --models resnet18 regnety_002
    python src/train.py --dataset pneumoniamnist --exp pmnist_round2 --arch resnet18 --fold 0 \\
        --pseudo-labels oof/pmnist/pseudo_labels.csv

A test image's probability for fold k is the mean of the --models' fold-k models
(oof/<exp>/<model>/test_fold_<k>.csv), which never trained on fold k's rows; the second-round
fold-k model learns from those pseudo-labels only, so its OOF predictions stay honest. Per fold,
an image's label is 1 where p >= --threshold, else 0; within each label the most confident
--share of the images so labelled are kept if their confidence max(p, 1 - p) reaches
--min-confidence (the labels keep the proportion the models predict).
Writes oof/<exp>/pseudo_labels.csv (--out): image_id, fold, target, probability.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cxr.artifacts import list_models, test_pred_file, write_csv  # noqa: E402
from cxr.config import Parser, add_settings  # noqa: E402
from cxr.errors import UserError, exit_on_user_error  # noqa: E402

def parse_args(argv=None):
    parser = Parser(description=__doc__)
    add_settings(parser, "exp", exp="the first round's experiment")
    parser.add_argument("--models", nargs="*", default=None, metavar="MODEL",
                        help="its models to average: names or shell patterns ('resnet*'), as blend.py's (default: "
                             "every model with test predictions)")
    add_settings(parser, "oof_dir", oof_dir="where the OOF and test predictions are (<oof-dir>/<exp>/<model>/)")
    parser.add_argument("--share", type=float, default=0.5, help="at most this share of the test images of each label, per fold")
    parser.add_argument("--min-confidence", type=float, default=0.9, help="only images with max(p, 1 - p) >= this")
    parser.add_argument("--threshold", type=float, default=0.5, help="label 1 where p >= this")
    parser.add_argument("--out", metavar="FILE", default="", help="the CSV to write (default: <oof-dir>/<exp>/pseudo_labels.csv)")
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv=None):
    args = parse_args(argv)
    from cxr.testside.self_training import TEST_FILE, mean_fold_predictions, pseudo_labels, read_test_predictions

    exp_dir = Path(args.oof_dir) / args.exp
    if args.models:
        names = list_models(exp_dir, args.models)
    else:
        names = sorted(p.name for p in exp_dir.glob("*") if any(p.glob(f"{TEST_FILE}*.csv")))
    predictions = {}
    for name in names:
        found = read_test_predictions(exp_dir / name)
        if not found:
            raise UserError(f"{test_pred_file(args.oof_dir, args.exp, name, 0)}: no test predictions of model {name}")
        predictions[name] = found
    if not predictions:
        raise UserError(f"{exp_dir}: no model with test predictions (train the first round first)")
    ids, fold_means = mean_fold_predictions(predictions)
    if not ids:
        raise UserError(f"{exp_dir}: the test side is empty: there is nothing to pseudo-label")
    table = pseudo_labels(ids, fold_means, args.share, args.min_confidence, args.threshold)
    out = Path(args.out or exp_dir / "pseudo_labels.csv")
    write_csv(out, table, float_format="%.6f")
    print(f"pseudo-labels from {', '.join(names)} (fold-safe: fold k from the fold-k models only):")
    for fold in fold_means:
        rows = table[table["fold"] == fold]
        print(f"  fold {fold}: {len(rows)} of {len(ids)} test images, {int(rows['target'].sum())} labelled 1, "
              f"{int((rows['target'] == 0).sum())} labelled 0")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
