"""Show where the models look and how they see the images: heatmap figures and a t-SNE map.

    python src/explain.py --exp demo --dataset demo                 # 4 positives + 4 negatives, and t-SNE
    python src/explain.py --exp demo --images train/00004.jpg /data/new.png --no-tsne
    python src/explain.py --exp cxr4 --dataset cxr4 --label COVID   # a class's (or label's) Grad-CAM

Loads the experiment's blend spec and checkpoints (as submit.py does). Writes to
reports/<exp>/explain/:
    heatmaps/<image>[_<label>].png  a row per model (of --label's output: a multi-label or
                          multi-class experiment's label or class, default the first): its Grad-CAM (a map model: its object map), its
                          gradient saliency (|d score / d pixel|) and SmoothGrad (the same over
                          noisy copies: less speckle), each the mean over its fold models; and
                          the ensemble (the blend-weighted heatmap whose points submit.py
                          writes, the strongest circled); annotated objects drawn, each panel
                          titled with its probability. An image of the
                          training set is seen only by the fold models that did not train on
                          it: its heatmaps and probabilities are out-of-fold.
    tsne.png              t-SNE (scikit-learn) of the penultimate features of one fold's OOF
                          images (--tsne-fold) from that fold's model of --model, coloured by
                          label (one model: one feature space).
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cxr.config import Parser, add_experiment_reading, add_settings  # noqa: E402
from cxr.errors import UserError, exit_on_user_error  # noqa: E402
from cxr.diagnosis.views import chosen_images, explain_image, tsne_map  # noqa: E402

# torch, pandas and the modules that import them are imported where they are used, after the flags are
# parsed: --help answers at once.


@exit_on_user_error
def main(argv=None):
    parser = Parser(description=__doc__)
    add_settings(parser, "exp", "dataset", exp="experiment: its blend spec and checkpoints",
                 dataset="its data set: the fold file and annotations")
    parser.add_argument("--images", nargs="*", default=None, metavar="IMAGE",
                        help="image ids of the data set (train/00004.jpg) or image files (default: --per-class of each)")
    parser.add_argument("--per-class", type=int, default=4, help="positives and negatives to explain")
    parser.add_argument("--label", default="", help="a multi-label or multi-class experiment: the label or class whose "
                                                    "heatmaps and probabilities are shown (default: the first)")
    parser.add_argument("--tsne", action=argparse.BooleanOptionalAction, default=True, help="draw the t-SNE map")
    parser.add_argument("--tsne-fold", type=int, default=0, help="the fold whose OOF images the t-SNE shows")
    parser.add_argument("--tsne-images", type=int, default=1000, help="at most this many of them")
    parser.add_argument("--model", default="", help="model whose features the t-SNE shows (default: the first)")
    parser.add_argument("--max-points", type=int, default=10, help="points per image, as in submit.py")
    parser.add_argument("--saliency", action=argparse.BooleanOptionalAction, default=True,
                        help="beside each Grad-CAM: gradient saliency and SmoothGrad panels")
    parser.add_argument("--smoothgrad-samples", type=int, default=25, help="noisy copies SmoothGrad averages over")
    parser.add_argument("--smoothgrad-noise", type=float, default=0.15,
                        help="the noise's standard deviation, a share of the image's value range")
    parser.add_argument("--seed", type=int, default=0, help="which images are explained (without --images)")
    add_experiment_reading(parser, "explain")
    args = parser.parse_args(argv)
    from cxr.inference.ensemble import check_readable, load_experiment
    from cxr.localization.evaluation import annotations

    device, ensemble, root, folds = load_experiment(args)
    objects, test_objects = annotations(root) if root.is_dir() else (None, None)
    objects = {**(objects or {}), **(test_objects or {})}
    fold_of = dict(zip(folds["image_id"], folds["fold"]))
    if args.label and args.label not in ensemble.labels:
        raise UserError(f"--label {args.label}: the experiment predicts {', '.join(ensemble.labels) or 'one target'}")
    output = ensemble.labels.index(args.label) if args.label else 0
    ids = args.images if args.images is not None else chosen_images(folds, args.per_class, args.seed, output)
    paths = [root / i if (root / i).is_file() else Path(i) for i in ids]
    check_readable(paths)
    out = Path(args.reports_dir) / args.exp / "explain"
    for image_id, path in zip(ids, paths):
        written, probabilities = explain_image(ensemble, image_id, path, fold_of.get(image_id), objects.get(image_id),
                                               device, out / "heatmaps", args.max_points,
                                               (args.smoothgrad_samples, args.smoothgrad_noise) if args.saliency else None,
                                               output)
        shown = ", ".join(f"{name} {p:.6f}" for name, p in probabilities.items())
        where = f"out-of-fold, fold {fold_of[image_id]}" if image_id in fold_of else "all fold models"
        print(f"{image_id} ({where}): {shown}; wrote {written}")
    if args.tsne:
        model = args.model or next(iter(ensemble.models))
        if model not in ensemble.models:
            raise UserError(f"--model {model}: not in the blend ({', '.join(ensemble.models)})")
        if not 0 <= args.tsne_fold < len(ensemble.models[model]):
            raise UserError(f"--tsne-fold {args.tsne_fold}: the blend has folds 0..{len(ensemble.models[model]) - 1}")
        tsne_map(ensemble, model, args.tsne_fold, folds, root, device, args.tsne_images, args.seed, out / "tsne.png")
        print(f"wrote {out / 'tsne.png'}")


if __name__ == "__main__":
    main()
