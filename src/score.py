"""Score a submission against the test side's truth, as the organizers would.

    python src/score.py submissions/cxr4/submission.csv input/cxr4_test_truth.csv
    python src/score.py submissions/cxr4/submission.csv input/cxr4_test_truth.csv --bootstrap 2000

A box or mask competition's truth file (RSNA's, VinBigData's or SIIM-ACR's training-label format, as
../shared/tools/make_challenge_layouts.py writes <name>_test_truth.csv) scores its submission by
that competition's metric with a bootstrap interval (cxr/metrics/object_scoring.py).

The truth is otherwise a table with an id column and a label column (class names: a multi-class task; 0/1:
binary), as ../shared/tools' generators write <name>_test_truth.csv beside a data set; the
submission holds the same ids with a probability column per class (or one), or a column of
class names. Prints macro one-vs-rest AUC (a binary task: the AUC), accuracy (the most probable
class) and log loss (rows scaled to sum to 1, clipped at 1e-15), each with its 95 % bootstrap
interval over images, and per class its one-vs-rest AUC. A class name per row scores accuracy
exactly; its AUC and log loss are those of 0/1 probabilities. Exit 2 with one line naming the
file and line for a row missing on either side or a value that is no probability.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cxr.config import Parser  # noqa: E402
from cxr.errors import exit_on_user_error  # noqa: E402


@exit_on_user_error
def main(argv=None):
    parser = Parser(description=__doc__)
    parser.add_argument("submission", help="the submission CSV (an id column, then probability or class columns)")
    parser.add_argument("truth", help="the truth CSV (an id column and a label column)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = parser.parse_args(argv)
    from cxr.blending.classes import class_report, show_class_report
    from cxr.data.layouts import read_csv
    from cxr.metrics.auc import safe_roc_auc
    from cxr.metrics.object_scoring import truth_kind
    from cxr.metrics.scoring import read_scored_pair

    kind = truth_kind(read_csv(args.truth).columns)
    if kind:  # a box or mask competition's truth file
        score_object_submission(args, kind)
        return
    truth, probabilities, classes = read_scored_pair(args.submission, args.truth)
    report = class_report(truth, {Path(args.submission).name: probabilities}, args.bootstrap, args.seed)
    print(f"{len(truth)} test images, {'binary' if classes == [''] else f'{len(classes)} classes'} "
          f"({args.truth})\n" + show_class_report(report, "test, 95 % bootstrap"))
    if classes != [""]:
        print("one-vs-rest AUC per class: " + ", ".join(
            f"{c} {safe_roc_auc(truth[:, j], probabilities[:, j]):.4f} ({int(truth[:, j].sum())} images)"
            for j, c in enumerate(classes)))


def score_object_submission(args, kind):
    from cxr.data.layouts import read_csv
    from cxr.metrics.object_scoring import matched_ids, read_predictions, read_truth, score_objects

    truth = read_truth(kind, read_csv(args.truth))
    predictions = read_predictions(kind, read_csv(args.submission), args.submission)
    matched_ids(truth, predictions, args.submission)
    value, (low, high), name = score_objects(kind, truth, predictions, args.bootstrap, args.seed)
    print(f"{len(truth)} test images ({kind}: {args.truth}): {name} {value:.4f} [{low:.4f}, {high:.4f}] "
          f"(95 % bootstrap over images)")


if __name__ == "__main__":
    main()
