"""Score a blend's localization (FROC) on the OOF images and on a labelled test side, from the
Grad-CAMs train.py saved (oof/<exp>/<model>/cams_fold_<k>.npz).

The points are made exactly as submit.py makes them for new images: per image, the
ensemble heatmap (peaks.ensemble_heatmaps: |blend weight| x each model's scaled Grad-CAM,
test images averaging the fold models) in the first model's network frame, its scored
points (peaks.original_points) in original-image pixels, scored by FROC against the
annotations (metrics.froc). An OOF image's heatmap comes from the one fold model that did
not train on it, as its OOF probability does."""
import json
from pathlib import Path

import numpy as np

from cxr.artifacts import cams_file, run_dir, write_csv
from cxr.data.cache import ImageSpec
from cxr.data.images import image_size
from cxr.data.annotations import parse_annotation
from cxr.errors import RowProblems, UserError
from cxr.localization.peaks import ensemble_heatmaps, heatmap_sources, original_points
from cxr.figures import froc_figure
from cxr.localization.map_scores import any_object_map
from cxr.formats.files import as_written
from cxr.metrics.froc import FROC_THRESHOLDS, froc_of_ranked, ranked_hits
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


def read_cams(oof_dir, exp, model, folds, test_ids, any_object=False):
    """(OOF cams in fold-file order (n, h, w), [test cams (n_test, h, w) per fold model]) of a
    model, or None when train.py saved none for some fold. A map model with a map per class gives
    (n, classes, h, w), or with `any_object` their maximum per cell (map_scores.any_object_map)."""
    paths = [cams_file(oof_dir, exp, model, k) for k in range(folds["fold"].nunique())]
    if not all(p.is_file() for p in paths):
        return None
    oof, tests = {}, []
    for path in paths:
        saved = np.load(path)
        oof.update(zip(saved["oof_ids"], any_object_map(saved["oof"]) if any_object else saved["oof"]))
        if list(saved["test_ids"]) != list(test_ids):
            raise UserError(f"{path}: covers other test images than the test predictions")
        tests.append(any_object_map(saved["test"]) if any_object else saved["test"])
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
    (per model, a list of (n, h, w) arrays, one per fold model) in original pixels, rounded as
    submit.py's localization file holds them (formats.files.as_written)."""
    points = {}
    for start in range(0, len(ids), batch):
        chunk = slice(start, start + batch)
        maps = ensemble_heatmaps([[c[chunk] for c in folds] for folds in cams], weights, spec.size).numpy()
        for image, probability, heatmap in zip(ids[chunk], probabilities[chunk], maps):
            width, height = sizes[image]
            points[image] = as_written(original_points(heatmap, probability, width, height, spec, max_points))
    return points


def froc_scores(models, weights, probabilities, model_probabilities, cams, setups, ids, objects, root, max_points=10,
                n_boot=0, seed=0):
    """{name: (FROC, sensitivities at the 7 thresholds, (low, high) bootstrap 95 % interval or
    NaNs)} of every model alone and of the blend (points from the heatmaps of
    peaks.heatmap_sources sharing the first one's network frame), on the images `ids` with
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


def localization_report(args, models, folds, P, T, test, choice, nested, test_blend, kept):
    """FROC of every model and of the chosen blend on the OOF images (the blend's nested
    probabilities order the points) and on a labelled test side (each model's heatmaps from its
    `kept` fold models, as its test predictions), from the object maps or
    Grad-CAMs train.py saved, with bootstrap intervals and the sensitivity at every threshold;
    written to oof/<exp>/froc_report.csv and froc.png. None when the data has no annotations
    or a model has no saved heatmaps."""
    root = Path(args.input_dir) / args.dataset
    train_objects, test_objects = annotations(root) if root.is_dir() else (None, None)
    if train_objects is None:
        return None
    exp_dir = Path(args.oof_dir) / args.exp
    cams = [read_cams(args.oof_dir, args.exp, m, folds, list(test["image_id"]), any_object=True) for m in models]
    if any(c is None for c in cams):
        print("FROC: not scored (a model has no saved Grad-CAMs: train it with --heatmaps on)")
        return None
    setups = [run_spec(run_dir(args.weights_dir, args.exp, m, 0)) for m in models]
    ids = list(folds["image_id"])
    boot = dict(n_boot=args.froc_bootstrap, seed=args.seed)
    scores = {"oof": froc_scores(models, choice["weights"], nested, P, [[oof] for oof, _ in cams], setups, ids,
                                 {i: train_objects[i] for i in ids}, root, args.max_points, **boot)}
    if test_objects is not None:
        test_ids = list(test["image_id"])
        kept_cams = [[tests[k] for k in kept[m]] for m, (_, tests) in zip(models, cams)]
        scores["test"] = froc_scores(models, choice["weights"], test_blend, T, kept_cams, setups,
                                     test_ids, {i: test_objects[i] for i in test_ids}, root, args.max_points, **boot)
    table = froc_table(scores)
    write_csv(exp_dir / "froc_report.csv", table, float_format="%.6f")
    froc_figure({f"{name} ({side})": values[1] for side, named in scores.items() for name, values in named.items()
                 if name == "blend" or len(models) < 4}, FROC_THRESHOLDS, exp_dir / "froc.png",
                title=f"{args.exp}: FROC curves (OOF and test side)")
    shown = table[["name"] + [c for c in table.columns if c.endswith(("froc", "_low", "_high"))]]
    print(f"FROC ({args.max_points} points per image; map models' object maps, else Grad-CAM; the blend's points from "
          f"its heatmap; 95 % bootstrap intervals over images):\n" + shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    for side, named in scores.items():
        print(f"{side} sensitivity at " + ", ".join(f"{t:g}" for t in FROC_THRESHOLDS) + " false positives per image: "
              + "; ".join(f"{name} " + " ".join(f"{v:.3f}" for v in values[1]) for name, values in named.items()))
    print(f"wrote {exp_dir / 'froc_report.csv'} and {exp_dir / 'froc.png'}")
    return {side: {"froc": named["blend"][0], "low": named["blend"][2][0], "high": named["blend"][2][1],
                   "sensitivities": named["blend"][1]} for side, named in scores.items()}


def froc_table(scores):
    """One row per model and the blend: per side, the FROC, its interval and the sensitivity at each threshold."""
    import pandas as pd

    rows = {}
    for side, named in scores.items():
        for name, (value, sensitivities, (low, high)) in named.items():
            row = rows.setdefault(name, {"name": name})
            row.update({f"{side}_froc": value, f"{side}_low": low, f"{side}_high": high,
                        **{f"{side}_sens@{t:g}": v for t, v in zip(FROC_THRESHOLDS, sensitivities)}})
    return pd.DataFrame(list(rows.values()))
