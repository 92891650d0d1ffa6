"""See the shift between the training and the test side of a data set (adversarial validation).

    python src/shift.py --dataset pneumoniamnist
    python src/shift.py --dataset demo --share 0.25

A classifier learns to tell training images from test images (src/cxr/testside/adversarial.py); its
cross-validated AUC is the shift (0.5: the sides look alike; the further above, the less the
OOF AUC says about the test score). Writes to <reports-dir>/<dataset>/:
    shift.json            the AUC with its 95 % interval, the sides' sizes, each fold's test-likeness
    test_likeness.csv     every training image's test-likeness (out-of-fold P(test side)), its
                          importance weight, and whether it is among the --share most test-like
    shift.png             both sides' intensity histograms; the training images most and least
                          like the test side, and a few test images
`make_folds.py --test-like SHARE` marks the test-like rows for blend.py's second OOF estimate."""
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402

from cxr.testside.adversarial import HIGH_SHIFT, fold_likeness, likeness_table, measure_shift  # noqa: E402
from cxr.artifacts import folds_file, shift_report_file, write_csv, write_json  # noqa: E402
from cxr.config import DataSettings, option, parse_config  # noqa: E402
from cxr.errors import exit_on_user_error  # noqa: E402
from cxr.metrics.auc import delong_interval, roc_auc  # noqa: E402
from cxr.figures import shift_figure  # noqa: E402

# pandas and the modules that import it after the flags are parsed: --help answers at once.


@dataclass
class ShiftSettings(DataSettings):
    img_size: int = option(64, "images are compared at this size (through the decode-once cache)")
    share: float = option(0.25, "the share of training images counted as test-like")
    seed: int = option(0, "cross-validation seed of the adversarial classifier (0, as make_folds.py --test-like's)")


@exit_on_user_error
def main(argv=None):
    args = parse_config(argv, ShiftSettings, description=__doc__)
    from cxr.data.folds import read_folds
    from cxr.data.layouts import read_checked

    train, test, root = read_checked(args, require_task=False)
    if not len(test):
        print(f"shift {args.dataset}: no test side to compare the training images with")
        return
    images, is_test, scores = measure_shift(train, test, root, Path(args.cache_dir) / args.dataset, args.img_size,
                                            args.seed)
    auc = float(roc_auc(is_test, scores))
    low, high = delong_interval(is_test, scores)
    table = likeness_table(train, scores[:len(train)], args.share, len(test))
    report = {"adversarial_auc": auc, "low": float(low), "high": float(high), "n_train": len(train),
              "n_test": len(test), "share": args.share, "img_size": args.img_size}
    if folds_file(args.folds_dir, args.dataset).is_file():
        report["folds"] = fold_likeness(read_folds(folds_file(args.folds_dir, args.dataset)), table)
    out = shift_report_file(args.reports_dir, args.dataset).parent
    order = np.argsort(-table["test_likeness"].to_numpy())
    shift_figure(images[:len(train)], images[len(train):], order, out / "shift.png",
                 title=f"{args.dataset}: adversarial AUC {auc:.3f} (0.5 = no shift)")
    write_csv(out / "test_likeness.csv", table, float_format="%.6f")
    write_json(out / "shift.json", report)
    verdict = "the sides look alike" if auc < HIGH_SHIFT else "a shift" if auc < 0.8 else "a strong shift"
    print(f"shift {args.dataset}: adversarial AUC {auc:.3f} [{low:.3f}, {high:.3f}] ({verdict}; 0.5 = none), "
          f"{len(train)} training vs {len(test)} test images")
    if "folds" in report:
        print("validation folds, mean test-likeness: " + ", ".join(
            f"{fold} {v['mean_test_likeness']:.3f}" for fold, v in report["folds"].items()))
    print(f"wrote {out / 'shift.json'}, {out / 'test_likeness.csv'}, {out / 'shift.png'}")


if __name__ == "__main__":
    main()
