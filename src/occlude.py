"""Does the model look at the foreign objects? Cover them and see how far the probability falls.

    python src/occlude.py --exp objectcxr_semireal_bench --dataset objectcxr_semireal
    python src/occlude.py --exp demo --dataset demo --side dev --limit 50

Each annotated positive image is predicted three ways: as it is, with its objects covered
(filled with the local background by inpainting, a --margin around them included) and with
the same area covered elsewhere: the control, the objects' mask moved as a whole to a random
place in the image clear of them (an image where no place fits is skipped, and counted). A
model that uses the objects loses far more probability for them than for the control.

Training images are predicted out-of-fold, as oof/<exp>/ holds them: an image of fold k by
the fold-k models, which never trained on it. --side dev takes the labelled test side's
annotated images, with every fold model (their mean, as submit.py predicts). With several
labels, the probability is the first label's.

Writes to reports/<exp>/occlusion/ (--side dev: occlusion_dev/):
    occlusion.csv  per image and model (and 'blend'): image_id, fold (-1: every fold model),
                   model, p_original, p_objects_covered, p_control_covered, covered_pixels
    summary.csv    per model and the blend: images, skipped, the mean drop (p_original - p) of
                   the objects and of the control, each with a bootstrap 95 % interval over
                   images, and their paired difference with its interval (printed as a table)
    pairs.png      a few images: original (objects outlined) | objects covered | control
                   covered (control outlined), each titled with the blend's probability
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cxr.artifacts import folds_file  # noqa: E402
from cxr.config import Parser, add_experiment_reading, add_settings  # noqa: E402
from cxr.errors import UserError, exit_on_user_error  # noqa: E402

# torch, pandas, OpenCV and the modules that import them are imported where they are used, after
# the flags are parsed: --help answers at once.

@exit_on_user_error
def main(argv=None):
    parser = Parser(description=__doc__)
    add_settings(parser, "exp", "dataset", exp="experiment: its blend spec and checkpoints",
                 dataset="its data set: the fold file and annotations")
    parser.add_argument("--side", choices=("train", "dev"), default="train",
                        help="train: the training positives, out-of-fold; dev: the test side's, every fold model")
    parser.add_argument("--limit", type=int, default=0, help="at most this many images, a seeded choice (0: all)")
    parser.add_argument("--seed", type=int, default=0, help="which images (--limit), where the controls go, resamples")
    parser.add_argument("--margin", type=int, default=3, help="pixels covered around each object (original pixels)")
    parser.add_argument("--radius", type=int, default=5, help="inpainting radius: background pixels that fill a hole")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples of the images for the intervals")
    parser.add_argument("--figures", type=int, default=4, help="images shown in pairs.png")
    parser.add_argument("--batch-size", type=int, default=16, help="images per forward pass (times 3 views)")
    add_experiment_reading(parser, "occlusion")
    args = parser.parse_args(argv)
    from cxr.diagnosis.occlusion import (annotated_positives, blend_dataset, format_summary,  # torch
                                         occlusion_rows, pairs_figure, sample, summary_table)
    if args.limit < 0 or args.margin < 0 or args.radius < 1 or args.n_boot < 0 or args.batch_size < 1:
        raise UserError("--limit, --margin and --n-boot must be >= 0; --radius and --batch-size >= 1")
    import pandas as pd

    from cxr.artifacts import write_csv
    from cxr.inference.ensemble import check_readable, load_experiment

    device, ensemble, root, folds = load_experiment(args)
    shapes, fold_of = annotated_positives(root, folds, args.side)
    if args.side == "train":
        trained_on = blend_dataset(Path(args.submissions_dir) / args.exp / "blend.json")
        if trained_on not in (None, args.dataset):
            raise UserError(f"--exp {args.exp} was trained on {trained_on}: its fold models are not out-of-fold on "
                            f"{args.dataset}'s training images (--side dev uses every fold model)")
        n_folds = min(len(runs) for runs in ensemble.models.values())
        if max(fold_of.values()) >= n_folds:
            raise UserError(f"{folds_file(args.folds_dir, args.dataset)} has folds beyond the blend's {n_folds}")
    ids = sample(shapes, args.limit, args.seed)
    check_readable([root / i for i in ids])
    rows, skipped, examples = occlusion_rows(ensemble, ids, shapes, fold_of, root, device, args, args.figures)
    if not rows:
        raise UserError(f"no equal-area control fits in any of the {len(ids)} images (try a smaller --margin)")
    out = Path(args.reports_dir) / args.exp / ("occlusion" if args.side == "train" else f"occlusion_{args.side}")
    table = pd.DataFrame(rows)
    summary = summary_table(table, len(skipped), args.n_boot, args.seed)
    write_csv(out / "occlusion.csv", table)
    write_csv(out / "summary.csv", summary)
    pairs_figure(examples, shapes, out / "pairs.png")
    where = "out-of-fold" if args.side == "train" else "every fold model"
    print(f"{len(ids) - len(skipped)} annotated positive {args.side} images ({where}); "
          f"{len(skipped)} skipped (no place for an equal-area control)")
    print(format_summary(summary))
    print(f"wrote {out / 'occlusion.csv'}, {out / 'summary.csv'}, {out / 'pairs.png'}")


if __name__ == "__main__":
    main()
