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
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402

from cxr.artifacts import folds_file  # noqa: E402
from cxr.config import Parser, add_experiment_reading, add_settings  # noqa: E402
from cxr.errors import UserError, exit_on_user_error  # noqa: E402

# torch, pandas, OpenCV and the modules that import them are imported where they are used, after
# the flags are parsed: --help answers at once.

PROBABILITIES = ["p_original", "p_objects_covered", "p_control_covered"]


def annotated_positives(root, folds, side):
    """{image id: shapes} of the positive images with annotated objects, and {image id: fold}
    (-1 on the dev side: every fold model predicts it)."""
    from cxr.data.labels import target_columns
    from cxr.localization.evaluation import annotations

    objects, dev_objects = annotations(root)
    if objects is None:
        raise UserError(f"{root}: no object annotations (occlusion covers the annotated objects; "
                        f"it needs an Object-CXR-style data set)")
    if side == "dev":
        if dev_objects is None:
            raise UserError(f"{root}: no annotated test side (dev.csv with an annotation column) for --side dev")
        chosen = {i: s for i, s in dev_objects.items() if s}
        fold_of = dict.fromkeys(chosen, -1)
    else:
        positive = folds[target_columns(folds)].eq(1).any(axis=1)
        fold_of = {i: int(k) for i, k in zip(folds["image_id"][positive], folds["fold"][positive]) if objects.get(i)}
        chosen = {i: objects[i] for i in fold_of}
    if not chosen:
        raise UserError(f"{root}: no positive {side} image has an annotated object")
    return chosen, fold_of


def sample(ids, limit, seed):
    """`limit` of `ids` (seeded; all when limit is 0), sorted."""
    ids = sorted(ids)
    if 0 < limit < len(ids):
        ids = sorted(np.random.default_rng(seed).choice(ids, limit, replace=False).tolist())
    return ids


def image_rng(seed, image_id):
    """A generator of the image's own: its control lands where it does whatever else is chosen."""
    return np.random.default_rng([seed, zlib.crc32(image_id.encode())])


def ensemble_predictor(ensemble, device):
    """grayscale images -> (b, 1 + models) probabilities of the first label: the blend's, then each model's."""
    from cxr.inference.predictor import predict_batch

    def predict(grays):
        blended, per_model, _ = predict_batch(ensemble, grays, device)
        return np.column_stack([blended[:, 0], per_model[:, :, 0]])

    return predict


def occlusion_rows(ensemble, ids, shapes, fold_of, root, device, args, keep):
    """(rows of occlusion.csv, skipped image ids, up to `keep` (image id, Occluded, blend's
    probabilities) for the figure). Images go in batches of one fold at a time."""
    from cxr.data.cache import decode_gray
    from cxr.diagnosis.occlusion import occlude, predict_occluded

    names = ["blend", *ensemble.models]
    rows, skipped, examples = [], [], []
    for fold in sorted({fold_of[i] for i in ids}):
        predict = ensemble_predictor(ensemble.held_out(fold) if fold >= 0 else ensemble, device)
        in_fold = [i for i in ids if fold_of[i] == fold]
        for start in range(0, len(in_fold), args.batch_size):
            batch = in_fold[start:start + args.batch_size]
            occluded = [occlude(decode_gray(root / i), shapes[i], image_rng(args.seed, i), args.margin, args.radius)
                        for i in batch]
            skipped += [i for i, o in zip(batch, occluded) if o is None]
            kept = [(i, o) for i, o in zip(batch, occluded) if o is not None]
            for (image_id, views), p in zip(kept, predict_occluded([o for _, o in kept], predict)):
                rows += [{"image_id": image_id, "fold": fold, "model": name, **dict(zip(PROBABILITIES, p[:, j])),
                          "covered_pixels": int(views.objects.sum())} for j, name in enumerate(names)]
                if len(examples) < keep:
                    examples.append((image_id, views, p[:, 0]))
    return rows, skipped, examples


def summary_table(table, skipped, n_boot, seed):
    """summary.csv: one row per model (the blend first) from occlusion.csv's rows."""
    import pandas as pd

    from cxr.diagnosis.occlusion import drop_summary

    return pd.DataFrame([{"model": name, **drop_summary(*(rows[c].to_numpy() for c in PROBABILITIES), n_boot, seed),
                          "skipped": skipped} for name, rows in table.groupby("model", sort=False)])


def format_summary(summary):
    def cell(row, name):
        return f"{row[name]:+.4f} [{row[name + '_low']:+.4f}, {row[name + '_high']:+.4f}]"

    width = max(len("model"), *summary["model"].map(len))
    lines = [f"{'model':<{width}}  images  skipped  {'objects drop [95 % CI]':<27}  {'control drop [95 % CI]':<27}"
             f"  difference [95 % CI]"]
    lines += [f"{row['model']:<{width}}  {row['images']:>6}  {row['skipped']:>7}  {cell(row, 'drop_objects'):<27}  "
              f"{cell(row, 'drop_control'):<27}  {cell(row, 'difference')}" for _, row in summary.iterrows()]
    return "\n".join(lines)


def outlined(gray, mask, colour=(255, 220, 0)):
    """RGB copy of `gray` with the outline of `mask` drawn."""
    import cv2

    rgb = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return cv2.drawContours(rgb, contours, -1, colour, max(1, round(min(gray.shape) / 200)))


def pairs_figure(examples, shapes, path):
    """A row per example: original (objects drawn) | objects covered | control covered (outlined)."""
    import cv2

    from cxr.figures import draw_shapes, grid_figure

    panels, titles = [], []
    for image_id, views, (p_original, p_objects, p_control) in examples:
        panels += [draw_shapes(cv2.cvtColor(views.original, cv2.COLOR_GRAY2RGB), shapes[image_id]),
                   views.objects_covered, outlined(views.control_covered, views.control)]
        titles += [f"{image_id}: p = {p_original:.3f}", f"objects covered: p = {p_objects:.3f}",
                   f"control covered: p = {p_control:.3f}"]
    grid_figure(panels, titles, path, columns=3, suptitle="the blend's probability, objects vs the same area elsewhere")


def blend_dataset(spec_path):
    import json

    return json.loads(Path(spec_path).read_text()).get("dataset")


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
    if args.limit < 0 or args.margin < 0 or args.radius < 1 or args.n_boot < 0 or args.batch_size < 1:
        raise UserError("--limit, --margin and --n-boot must be >= 0; --radius and --batch-size >= 1")
    import pandas as pd

    from cxr.artifacts import write_csv
    from cxr.inference.predictor import check_readable, load_experiment

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
