"""Show where the models look and how they see the images: heatmap figures and a t-SNE map.

    python src/explain.py --exp demo --dataset demo                 # 4 positives + 4 negatives, and t-SNE
    python src/explain.py --exp demo --images train/00004.jpg /data/new.png --no-tsne

Loads the experiment's blend spec and checkpoints (as submit.py does). Writes to
reports/<exp>/explain/:
    heatmaps/<image>.png  a row per model: its Grad-CAM (a map model: its object map), its
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
import numpy as np  # noqa: E402

from cxr.config import Parser, add_experiment_reading, add_settings  # noqa: E402
from cxr.errors import UserError, exit_on_user_error  # noqa: E402
from cxr.figures import embedding_figure, heatmap_panels  # noqa: E402

# torch, pandas and the modules that import them are imported where they are used, after the flags are
# parsed: --help answers at once.


def chosen_images(folds, per_class, seed):
    """`per_class` positives and negatives of the fold file (seeded), positives first."""
    from cxr.data.labels import target_columns

    rng = np.random.default_rng(seed)
    column = target_columns(folds)[0]
    picked = []
    for value in (1, 0):
        ids = folds.loc[folds[column] == value, "image_id"].to_numpy()
        picked += sorted(rng.choice(ids, min(per_class, len(ids)), replace=False))
    return picked


def model_maps(folds, gray, device, saliency):
    """[(kind of map, (h, w) map in original pixels)] of one model for one image: its Grad-CAM or object
    map, then with `saliency` (SmoothGrad's (samples, noise)) its gradient saliency and SmoothGrad;
    each the mean over its fold models of their maps scaled to [0, 1]."""
    import torch

    from cxr.data.cache import map_to_original
    from cxr.inference.predictor import fold_outputs, network_batch
    from cxr.localization.peaks import ensemble_heatmaps
    from cxr.diagnosis.saliency import fold_score, gradient_saliency, smoothgrad

    height, width = gray.shape
    spec = folds[0].spec
    probability, cams = fold_outputs(folds, [gray], device, cams=True)
    heatmap = ensemble_heatmaps([cams], [1.0], spec.size)[0].numpy()
    maps = [("object map" if folds[0].kind == "map" else "Grad-CAM", heatmap)]
    if saliency:
        samples, noise = saliency
        generator = torch.Generator().manual_seed(0)
        per_fold = [(gradient_saliency(fold_score(f), images), smoothgrad(fold_score(f), images, samples, noise, generator))
                    for f in folds for images in [network_batch([gray], f.network, f.spec, device)]]
        for name, index in (("saliency", 0), (f"SmoothGrad ({samples})", 1)):
            maps.append((name, np.mean([display_scaled(m[index][0].cpu().numpy()) for m in per_fold], axis=0)))
    return float(probability[0, 0]), [(name, map_to_original(m, width, height, spec.mode)) for name, m in maps]


def display_scaled(saliency_map):
    """A pixel saliency map scaled to [0, 1] by its 99.5th percentile: a few extreme pixels would
    otherwise leave the rest of the map invisible."""
    top = np.percentile(saliency_map, 99.5)
    return np.clip(saliency_map / top, 0, 1) if top > 0 else saliency_map


def explain_image(ensemble, image_id, path, fold, shapes, device, out, max_points, saliency=None):
    """One heatmap figure: a row per model (its Grad-CAM or object map, and with `saliency`
    its gradient saliency and SmoothGrad) and the ensemble's heatmap. Returns (its path,
    {model or 'ensemble': probability})."""
    from cxr.data.cache import decode_gray, map_to_original
    from cxr.inference.predictor import predict_batch
    from cxr.localization.peaks import original_points

    views = ensemble.held_out(fold) if fold is not None else ensemble
    gray = decode_gray(path)
    height, width = gray.shape
    frame = ensemble.frame
    rows, probabilities = [], {}
    for name, folds in views.models.items():
        probabilities[name], maps = model_maps(folds, gray, device, saliency)
        rows.append([(f"{name}: p = {probabilities[name]:.3f}\n{kind}", heatmap) for kind, heatmap in maps])
    blended, _, maps = predict_batch(views, [gray], device, heatmaps=True)
    points = original_points(maps[0], blended[0, 0], width, height, frame, max_points) if maps is not None else []
    rows.append([(f"ensemble: p = {blended[0, 0]:.3f}\nblended heatmap, top points",
                  map_to_original(maps[0], width, height, frame.mode) if maps is not None else None)])
    where = "out-of-fold" if fold is not None else "all fold models"
    target = Path(out) / f"{image_id.replace('/', '_').rsplit('.', 1)[0]}.png"
    heatmap_panels(gray, rows, target, shapes=shapes or (), points=points[:5],
                   suptitle=f"{image_id} ({where}; {len(shapes or [])} annotated objects; circles: top points)")
    return target, {**probabilities, "ensemble": float(blended[0, 0])}


def oof_features(fold_model, rows, root, device, batch_size=32):
    """(n, d) penultimate features of the images `rows` from one fold model."""
    import torch

    from cxr.data.cache import decode_gray
    from cxr.inference.predictor import network_batch
    from cxr.models.backbones import penultimate_features

    features = []
    for start in range(0, len(rows), batch_size):
        grays = [decode_gray(Path(root) / i) for i in rows["image_id"].iloc[start:start + batch_size]]
        images = network_batch(grays, fold_model.network, fold_model.spec, device)
        with torch.no_grad():
            features.append(penultimate_features(fold_model.network, images).cpu().numpy())
    return np.concatenate(features)


def tsne_map(ensemble, model, fold, folds, root, device, limit, seed, path):
    """t-SNE of fold `fold`'s OOF images as its own fold model sees them (one model: one
    feature space; features of different fold models are not comparable)."""
    from sklearn.manifold import TSNE

    from cxr.data.labels import label_name, target_columns

    rows = folds[folds["fold"] == fold]
    if len(rows) > limit:
        rows = rows.iloc[np.sort(np.random.default_rng(seed).choice(len(rows), limit, replace=False))]
    if len(rows) < 5:
        raise UserError(f"t-SNE needs at least 5 images; fold {fold} has {len(rows)}")
    features = oof_features(ensemble.models[model][fold], rows, root, device)
    coords = TSNE(n_components=2, perplexity=min(30.0, (len(rows) - 1) / 3), init="pca", random_state=seed).fit_transform(
        (features - features.mean(0)) / (features.std(0) + 1e-6))
    columns = target_columns(folds)
    if columns == ["target"]:
        groups = np.where(rows["target"] == 1, "positive", "negative")
    else:  # several labels: the set of labels present
        groups = ["+".join(label_name(c) for c in columns if row[c] == 1) or "none" for _, row in rows.iterrows()]
    embedding_figure(coords, groups, path, title=f"t-SNE of {model} fold {fold}'s penultimate features, "
                                                 f"{len(rows)} of its OOF images")


@exit_on_user_error
def main(argv=None):
    parser = Parser(description=__doc__)
    add_settings(parser, "exp", "dataset", exp="experiment: its blend spec and checkpoints",
                 dataset="its data set: the fold file and annotations")
    parser.add_argument("--images", nargs="*", default=None, metavar="IMAGE",
                        help="image ids of the data set (train/00004.jpg) or image files (default: --per-class of each)")
    parser.add_argument("--per-class", type=int, default=4, help="positives and negatives to explain")
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
    from cxr.inference.predictor import check_readable, load_experiment
    from cxr.localization.evaluation import annotations

    device, ensemble, root, folds = load_experiment(args)
    objects, test_objects = annotations(root) if root.is_dir() else (None, None)
    objects = {**(objects or {}), **(test_objects or {})}
    fold_of = dict(zip(folds["image_id"], folds["fold"]))
    ids = args.images if args.images is not None else chosen_images(folds, args.per_class, args.seed)
    paths = [root / i if (root / i).is_file() else Path(i) for i in ids]
    check_readable(paths)
    out = Path(args.reports_dir) / args.exp / "explain"
    for image_id, path in zip(ids, paths):
        written, probabilities = explain_image(ensemble, image_id, path, fold_of.get(image_id), objects.get(image_id),
                                               device, out / "heatmaps", args.max_points,
                                               (args.smoothgrad_samples, args.smoothgrad_noise) if args.saliency else None)
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
