"""Explanations of a trained experiment (src/explain.py): per image, every model's heatmap (object
map or Grad-CAM) and pixel saliency beside the blend's points, and a t-SNE map of the OOF images'
penultimate features."""
from pathlib import Path
import numpy as np
from cxr.errors import UserError
from cxr.figures import embedding_figure, heatmap_panels


def chosen_images(folds, per_class, seed, output=0):
    """`per_class` positives and negatives (of label or class `output`) of the fold file (seeded),
    positives first."""
    from cxr.data.labels import target_columns

    rng = np.random.default_rng(seed)
    column = target_columns(folds)[output]
    picked = []
    for value in (1, 0):
        ids = folds.loc[folds[column] == value, "image_id"].to_numpy()
        picked += sorted(rng.choice(ids, min(per_class, len(ids)), replace=False))
    return picked


def model_maps(folds, gray, device, saliency, output=0):
    """(probability, [(kind of map, (h, w) map in original pixels)]) of label or class `output` of
    one model for one image: its Grad-CAM or object map, then with `saliency` (SmoothGrad's
    (samples, noise)) its gradient saliency and SmoothGrad; each the mean over its fold models of
    their maps scaled to [0, 1]."""
    import torch

    from cxr.data.cache import map_to_original
    from cxr.inference.ensemble import fold_outputs, network_batch
    from cxr.localization.peaks import ensemble_heatmaps
    from cxr.diagnosis.saliency import fold_score, gradient_saliency, smoothgrad

    height, width = gray.shape
    spec = folds[0].spec
    probability, cams = fold_outputs(folds, [gray], device, cams=True, output=output)
    heatmap = ensemble_heatmaps([cams], [1.0], spec.size)[0].numpy()
    maps = [("object map" if folds[0].kind != "classifier" else "Grad-CAM", heatmap)]
    if saliency:
        samples, noise = saliency
        generator = torch.Generator().manual_seed(0)
        per_fold = [(gradient_saliency(fold_score(f, output), images),
                     smoothgrad(fold_score(f, output), images, samples, noise, generator))
                    for f in folds for images in [network_batch([gray], f.network, f.spec, device)]]
        for name, index in (("saliency", 0), (f"SmoothGrad ({samples})", 1)):
            maps.append((name, np.mean([display_scaled(m[index][0].cpu().numpy()) for m in per_fold], axis=0)))
    return float(probability[0, output]), [(name, map_to_original(m, width, height, spec.mode)) for name, m in maps]


def display_scaled(saliency_map):
    """A pixel saliency map scaled to [0, 1] by its 99.5th percentile: a few extreme pixels would
    otherwise leave the rest of the map invisible."""
    top = np.percentile(saliency_map, 99.5)
    return np.clip(saliency_map / top, 0, 1) if top > 0 else saliency_map


def explain_image(ensemble, image_id, path, fold, shapes, device, out, max_points, saliency=None, output=0):
    """One heatmap figure of label or class `output`: a row per model (its Grad-CAM or object map,
    and with `saliency` its gradient saliency and SmoothGrad) and the ensemble's heatmap (of the
    first label: the one submit.py's points come from). Returns (its path, {model or 'ensemble':
    probability of `output`})."""
    from cxr.data.cache import decode_gray, map_to_original
    from cxr.inference.ensemble import predict_batch
    from cxr.localization.peaks import original_points

    views = ensemble.held_out(fold) if fold is not None else ensemble
    gray = decode_gray(path)
    height, width = gray.shape
    frame = ensemble.frame
    rows, probabilities = [], {}
    for name, folds in views.models.items():
        probabilities[name], maps = model_maps(folds, gray, device, saliency, output)
        rows.append([(f"{name}: p = {probabilities[name]:.3f}\n{kind}", heatmap) for kind, heatmap in maps])
    blended, _, maps = predict_batch(views, [gray], device, heatmaps=True)
    points = (original_points(maps[0], blended[0, 0], width, height, frame, max_points)
              if maps is not None and output == 0 else [])
    rows.append([(f"ensemble: p = {blended[0, output]:.3f}\n" + ("blended heatmap, top points" if output == 0 else
                                                                   f"(blended heatmap: {ensemble.labels[0]}'s only)"),
                  map_to_original(maps[0], width, height, frame.mode) if maps is not None and output == 0 else None)])
    where = "out-of-fold" if fold is not None else "all fold models"
    label = f"_{ensemble.labels[output]}" if ensemble.labels != [""] else ""
    target = Path(out) / f"{image_id.replace('/', '_').rsplit('.', 1)[0]}{label}.png"
    heatmap_panels(gray, rows, target, shapes=shapes or (), points=points[:5],
                   suptitle=f"{image_id} ({where}; {len(shapes or [])} annotated objects; circles: top points)")
    return target, {**probabilities, "ensemble": float(blended[0, output])}


def oof_features(fold_model, rows, root, device, batch_size=32):
    """(n, d) penultimate features of the images `rows` from one fold model."""
    import torch

    from cxr.data.cache import decode_gray
    from cxr.inference.ensemble import network_batch
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
