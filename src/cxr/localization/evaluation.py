"""Score a blend's localization (FROC) on the OOF images and on a labelled test side, from the
Grad-CAMs train.py saved (oof/<exp>/<model>/cams_fold_<k>.npz).

The points are made exactly as submit.py makes them for new images: per image, the
ensemble heatmap (localize.ensemble_heatmaps: |blend weight| x each model's scaled Grad-CAM,
test images averaging the fold models) in the first model's network frame, its scored
points (localize.original_points) in original-image pixels, scored by FROC against the
annotations (metrics.froc). An OOF image's heatmap comes from the one fold model that did
not train on it, as its OOF probability does."""
import json
from pathlib import Path

import numpy as np

from cxr.artifacts import cams_file
from cxr.data.cache import ImageSpec
from cxr.data.images import image_size
from cxr.data.annotations import parse_annotation
from cxr.errors import RowProblems, UserError
from cxr.localization.peaks import ensemble_heatmaps, heatmap_sources, original_points
from cxr.metrics.froc import froc_of_ranked, ranked_hits
from cxr.data.layouts import read_dataset


def annotations(root, layout="auto"):
    """({image id: [Shape]}, for the training side and the test side (None when unlabelled))
    of a data set with Object-CXR annotations; (None, None) when it has none."""
    train, test = read_dataset(root, layout, problems=RowProblems(skip=True))  # training already vetted the rows
    if "annotation" not in train:
        return None, None
    return shapes_by_image(train), (shapes_by_image(test) if "annotation" in test and len(test) else None)


def shapes_by_image(table):
    return {image: parse_annotation(text) for image, text in zip(table["image_id"], table["annotation"])}


def read_cams(oof_dir, exp, model, folds, test_ids):
    """(OOF cams in fold-file order (n, h, w), [test cams (n_test, h, w) per fold model]) of a
    model, or None when train.py saved none for some fold."""
    paths = [cams_file(oof_dir, exp, model, k) for k in range(folds["fold"].nunique())]
    if not all(p.is_file() for p in paths):
        return None
    oof, tests = {}, []
    for path in paths:
        saved = np.load(path)
        oof.update(zip(saved["oof_ids"], saved["oof"]))
        if list(saved["test_ids"]) != list(test_ids):
            raise UserError(f"{path}: covers other test images than the test predictions")
        tests.append(saved["test"])
    missing = [i for i in folds["image_id"] if i not in oof]
    if missing:
        raise UserError(f"{paths[0].parent}: the saved Grad-CAMs miss OOF image {missing[0]} (retrain that fold)")
    return np.stack([oof[i] for i in folds["image_id"]]), tests


def run_spec(run):
    """(the preprocessing (ImageSpec), the kind of model: classifier or map) of a training run,
    from its config.json."""
    config = Path(run) / "config.json"
    if not config.is_file():
        raise UserError(f"{config}: not found (the checkpoints named by the blend are missing)")
    settings = json.loads(config.read_text())
    return ImageSpec.of(settings), settings.get("kind", "classifier")


def blend_points(ids, probabilities, cams, weights, spec, sizes, max_points=10, batch=64):
    """{image: [(score, x, y)]}: each image's points from the ensemble heatmap of `cams`
    (per model, a list of (n, h, w) arrays, one per fold model) in original pixels."""
    points = {}
    for start in range(0, len(ids), batch):
        chunk = slice(start, start + batch)
        maps = ensemble_heatmaps([[c[chunk] for c in folds] for folds in cams], weights, spec.size).numpy()
        for image, probability, heatmap in zip(ids[chunk], probabilities[chunk], maps):
            width, height = sizes[image]
            points[image] = original_points(heatmap, probability, width, height, spec, max_points)
    return points


def froc_scores(models, weights, probabilities, model_probabilities, cams, setups, ids, objects, root, max_points=10,
                n_boot=0, seed=0):
    """{name: (FROC, sensitivities at the 7 thresholds, (low, high) bootstrap 95 % interval or
    NaNs)} of every model alone and of the blend (points from the heatmaps of
    localize.heatmap_sources sharing the first one's network frame), on the images `ids` with
    their `objects`; `setups` holds each model's (ImageSpec, kind)."""
    sizes = {i: image_size(Path(root) / i) for i in ids}
    specs, kinds = zip(*setups)
    scores = {}
    for j, model in enumerate(models):
        points = blend_points(ids, model_probabilities[:, j], [cams[j]], [1.0], specs[j], sizes, max_points)
        scores[model] = froc_with_interval(points, objects, n_boot, seed)
    sources, source_weights = heatmap_sources(kinds, weights)
    frame = specs[sources[0]] if sources else specs[0]
    shared = [(j, w) for j, w in zip(sources, source_weights) if specs[j] == frame]
    points = blend_points(ids, probabilities, [cams[j] for j, _ in shared], [w for _, w in shared], frame, sizes,
                          max_points)
    scores["blend"] = froc_with_interval(points, objects, n_boot, seed)
    return scores


def froc_with_interval(points, objects, n_boot=0, seed=0):
    """(FROC, sensitivities, (low, high)): the interval is the 2.5 and 97.5 percentiles of the
    FROC over `n_boot` resamples of the images with replacement, those holding objects (NaNs
    when n_boot is 0)."""
    ranked = ranked_hits(points, objects)  # the hit tests once; each resample only counts
    score, sensitivities = froc_of_ranked(ranked, objects)
    if not n_boot:
        return score, sensitivities, (np.nan, np.nan)
    images = list(objects)
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n_boot):
        drawn = np.bincount(rng.integers(len(images), size=len(images)), minlength=len(images))
        copies = dict(zip(images, drawn.tolist()))
        if any(objects[image] for image, n in copies.items() if n):  # no object drawn: nothing to measure
            samples.append(froc_of_ranked(ranked, objects, copies=copies)[0])
    return score, sensitivities, tuple(np.percentile(samples, [2.5, 97.5]))
