"""A box or mask submission from the map models' object maps (RSNA's boxes, VinBigData's classed
boxes, SIIM-ACR's masks): the maps the blend's map models saved (train.py's cams_fold_<k>.npz:
per-cell probabilities at stride 4; a map per class for classed boxes) averaged by their blend
weights, turned into boxes or a gated mask (regions.py) with post-processing settings chosen on
the OOF images by the competition's metric.

The search is nested: for each fold the setting best on the other folds' images is scored on that
fold's images, and that is the honest estimate (nested, with a bootstrap interval over images),
beside the in-sample best. RSNA's and the Dice are means over images, so each setting is scored on
every image once; VinBigData's mAP is a set's score, so each setting's boxes are made for every
image once and the mAP taken over each set of images (the nested estimate: the mAP of every image's
boxes under the setting chosen without its fold). The setting best on all OOF images makes the test
side's boxes or masks. Written to oof/<exp>/objects_report.csv."""
from itertools import product
from pathlib import Path

import numpy as np

from cxr.models.kinds import OBJECT_KINDS
from cxr.errors import UserError

# The grids: boxes by map threshold x an image gate (an image below it writes no box: RSNA scores an
# image without truth 0 for any box); masks by sneddy's triplet (top score, minimum area as a share of
# the image, lower threshold)
BOX_GRID = {"threshold": (0.2, 0.3, 0.4, 0.5, 0.6, 0.7), "gate": (0.0, 0.3, 0.5, 0.7, 0.9)}
MASK_GRID = {"top": (0.5, 0.7, 0.9), "min_area": (0.0, 0.001, 0.004), "bottom": (0.3, 0.5)}
# classed boxes: mAP does not punish a low-confidence box much (it ranks), so lower thresholds are tried too
CLASSED_BOX_GRID = {"threshold": (0.1, 0.2, 0.3, 0.4, 0.5, 0.6), "gate": (0.0, 0.3, 0.5)}
GRIDS = {"boxes": BOX_GRID, "classed boxes": CLASSED_BOX_GRID, "masks": MASK_GRID}
METRICS = {"boxes": "RSNA mean precision (IoU 0.40-0.75)", "classed boxes": "VOC mAP at IoU 0.4",
           "masks": "mean Dice"}


def settings_grid(kind):
    grid = GRIDS[kind]
    return [dict(zip(grid, values)) for values in product(*grid.values())]


def blended_maps(cams, weights, size):
    """(n, size, size) maps: each model's fold maps averaged, upsampled to the network input, then
    the models' weighted mean (weights as given; no per-image scaling: thresholds read the maps'
    probabilities). `cams`: per model, a list of (n, h, w) arrays, one per fold model."""
    import torch

    from cxr.localization.peaks import upsample

    total = sum(abs(float(w)) for w in weights) or 1.0
    mixed = 0.0
    for weight, folds in zip(weights, cams):
        mean = torch.stack([upsample(torch.as_tensor(np.asarray(c, dtype=np.float32)), size) for c in folds]).mean(0)
        mixed = mixed + abs(float(weight)) / total * mean
    return mixed.numpy()


def image_objects(kind, heatmap, probability, width, height, spec, settings, classes=()):
    """One image's boxes [(score, box)], classed boxes ([(class, score, box)], its probability of no
    finding) or mask under each of `settings` (the blobs found once per threshold, the map brought
    to the original pixels once). Classed boxes: `heatmap` (len(classes), size, size), a map per class."""
    from cxr.data.cache import map_to_original
    from cxr.localization.regions import map_boxes, mask_with_gate

    if kind == "classed boxes":
        heatmap = np.asarray(heatmap).reshape(len(classes), *np.shape(heatmap)[-2:])  # one class: saved as (h, w)
        by_threshold, found = {}, []
        for setting in settings:
            if setting["threshold"] not in by_threshold:
                by_threshold[setting["threshold"]] = [
                    (int(name), score, box) for name, class_map in zip(classes, heatmap)
                    for score, box in map_boxes(class_map, probability, width, height, spec.size, spec.mode,
                                                threshold=setting["threshold"])]
            boxes = [] if probability < setting["gate"] else by_threshold[setting["threshold"]]
            found.append((boxes, 1.0 - float(probability)))
        return found
    if kind == "boxes":
        by_threshold = {}
        found = []
        for setting in settings:
            if setting["threshold"] not in by_threshold:
                by_threshold[setting["threshold"]] = map_boxes(heatmap, probability, width, height, spec.size,
                                                               spec.mode, threshold=setting["threshold"])
            found.append([] if probability < setting["gate"] else by_threshold[setting["threshold"]])
        return found
    original = map_to_original(np.asarray(heatmap, dtype=np.float32), width, height, spec.mode)
    return [mask_with_gate(original, setting["top"], setting["min_area"] * width * height, setting["bottom"])
            for setting in settings]


def fused_objects(kind, heatmaps, weights, probability, width, height, spec, settings, classes=(), fusion="maps"):
    """image_objects of one image's maps (one per model, or per fold model; each (size, size), or
    (classes, size, size)) under each of `settings`: of their weighted mean (`fusion` maps), or
    each map's boxes fused by weighted boxes fusion (wbf; masks are always made from the mean)."""
    from cxr.localization.box_fusion import fuse_boxes

    if fusion == "maps" or kind == "masks" or len(heatmaps) == 1:
        total = sum(abs(float(w)) for w in weights) or 1.0
        mixed = sum(abs(float(w)) / total * np.asarray(h, dtype=np.float32) for w, h in zip(weights, heatmaps))
        return image_objects(kind, mixed, probability, width, height, spec, settings, classes)
    each = [image_objects(kind, h, probability, width, height, spec, settings, classes) for h in heatmaps]
    if kind == "boxes":  # RSNA: every box counts, so a box most fold models (by weight) missed is dropped
        return [fuse_boxes([e[k] for e in each], weights, width, height, min_share=0.5) for k in range(len(settings))]
    return [(fuse_boxes([e[k][0] for e in each], weights, width, height), each[0][k][1]) for k in range(len(settings))]


def image_score(kind, truth, found):
    """One image's share of the metric: RSNA's mean precision over IoU thresholds (None: an image
    without truth and boxes, left out), or the Dice coefficient."""
    from cxr.metrics.detection import dice, rsna_image_score

    return rsna_image_score(truth, found) if kind == "boxes" else dice(truth, found)


def score_matrix(kind, found, truth, n_settings):
    """(images, settings) of each image's score under each setting (NaN: left out of the mean);
    `found` yields (image, its boxes or masks under each setting)."""
    rows = []
    for image, objects in found:
        values = [image_score(kind, truth[image], one) for one in objects]
        rows.append([np.nan if v is None else v for v in values])
    return np.array(rows, dtype=float).reshape(-1, n_settings)


def nested_choice(scores, fold_ids):
    """(the setting best on all rows, the nested mean: each fold scored by the setting best on the others)."""
    best = best_setting(scores, 0)
    nested = np.full(len(scores), np.nan)
    for fold in np.unique(fold_ids):
        held = fold_ids == fold
        nested[held] = scores[held, best_setting(scores[~held], best)]
    return best, nested


def mean_choice(kind, found, truth, n_settings, fold_ids, n_boot, seed, **_):
    """A metric that is a mean over images (RSNA's, the Dice): (the best setting, each setting's
    in-sample score, the nested estimate, its bootstrap interval)."""
    import warnings

    scores = score_matrix(kind, found, truth, n_settings)
    best, nested = nested_choice(scores, fold_ids)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a setting no image is scored under
        in_sample = np.nanmean(scores, axis=0)
    return best, in_sample, float(np.nanmean(nested)), bootstrap_interval(nested, n_boot, seed)


NO_FINDING_BOX = (0.0, 0.0, 1.0, 1.0)  # VinBigData's box of its No finding entries


def with_no_finding(found, no_finding_class):
    """voc_map's predictions {image: [(class, score, box)]} of classed boxes {image: (boxes, no
    finding probability)}: the No finding entry one more box of its class."""
    return {image: [*boxes, (no_finding_class, nf, NO_FINDING_BOX)] for image, (boxes, nf) in found.items()}


def set_choice(kind, found, truth, n_settings, fold_ids, n_boot, seed, no_finding_class=None):
    """VinBigData's mAP, a set's score: (the best setting, each setting's in-sample mAP, the mAP of
    every image's boxes under the setting best on the other folds (nested), its bootstrap interval)."""
    from cxr.metrics.detection import voc_map
    from cxr.metrics.object_scoring import score_objects

    by_setting = [{} for _ in range(n_settings)]
    ids = []
    for image, objects in found:
        ids.append(image)
        for col, one in enumerate(objects):
            by_setting[col][image] = one
    predicted = [with_no_finding(f, no_finding_class) for f in by_setting]

    def best_on(images):
        scores = [voc_map({i: truth[i] for i in images}, {i: p[i] for i in images})[0] for p in predicted]
        return int(np.nanargmax(scores)) if np.isfinite(scores).any() else 0, scores
    best, in_sample = best_on(ids)
    fold_ids, nested = np.asarray(fold_ids), {}
    for fold in np.unique(fold_ids):
        others = [i for i, f in zip(ids, fold_ids) if f != fold]
        chosen = best_on(others)[0] if others else best
        nested.update({i: predicted[chosen][i] for i, f in zip(ids, fold_ids) if f == fold})
    value, interval, _ = score_objects("vinbig", truth, nested, n_boot, seed)
    return best, np.asarray(in_sample), value, interval


def best_setting(scores, fallback):
    """The column of `scores` with the best mean over its scored rows; `fallback` when no row is
    scored under any setting (every image left out: no truth and no box anywhere)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column's mean
        means = np.nanmean(scores, axis=0) if len(scores) else np.full(scores.shape[1], np.nan)
    return int(np.nanargmax(means)) if np.isfinite(means).any() else fallback


def bootstrap_interval(values, n_boot=1000, seed=0):
    """The 2.5 and 97.5 percentiles of the mean of `values` (NaNs left out) over image resamples."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if not len(values) or not n_boot:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = [values[rng.integers(0, len(values), len(values))].mean() for _ in range(n_boot)]
    return tuple(float(v) for v in np.percentile(means, [2.5, 97.5]))


def truth_of(kind, table, root, sizes, no_finding_class=None):
    """{image: truth} of a table with Object-CXR annotations: boxes [(x1, y1, x2, y2)]; classed
    boxes [(class, box)] from its `classes` column (an image without one: No finding, its class
    with the box 0 0 1 1, as VinBigData scores it); or a mask (the run-length encoded masks of a
    `masks` column when it has one, else the shapes filled)."""
    from cxr.data.annotations import parse_annotation

    truth = {}
    for row, (image, text) in enumerate(zip(table["image_id"], table["annotation"])):
        if kind == "classed boxes":
            boxes = [(int(c), tuple(float(v) for v in rest)) for c, *rest in
                     (part.split() for part in str(table["classes"].iloc[row]).split(";") if part.strip())]
            truth[image] = boxes or [(no_finding_class, NO_FINDING_BOX)]
            continue
        shapes = parse_annotation(text)
        if kind == "boxes":  # a rectangle's corners are its first and last pixels: the box's edges one past
            truth[image] = [s.points.min(0).tolist() + (s.points.max(0) + 1).tolist() for s in shapes]
        else:
            masks = table["masks"].iloc[row] if "masks" in table else ""
            truth[image] = mask_of(shapes, masks, *sizes[image])
    return truth


def mask_of(shapes, masks, width, height):
    """An image's truth mask: its run-length masks OR-ed, else its shapes filled."""
    from cxr.formats.rle import decode

    if masks:
        return np.logical_or.reduce([decode(m, height, width) for m in masks.split(";")])
    from cxr.localization.targets import rasterize

    return rasterize(shapes, height, width).astype(bool)


def object_submission(args, kind, models, folds, cams, setups, weights, nested, test_ids, test_probabilities, kept,
                      root):
    """{test image: boxes or mask} for the submission, the map models' weights and the
    post-processing setting chosen together on the OOF images by the competition's metric (nested
    estimate printed and written to objects_report.csv)."""
    from cxr.data.images import image_size
    from cxr.data.layouts import read_dataset
    from cxr.errors import RowProblems
    from cxr.localization.peaks import heatmap_sources

    specs, kinds = zip(*setups)
    if not set(kinds) & set(OBJECT_KINDS):
        raise UserError(f"a submission of {kind} comes from map models' (or detectors') object maps; this blend has "
                        f"none (train {models[0]}-map, or run.sh with MAP_ARCHS)")
    sources, source_weights = heatmap_sources(kinds, weights)
    spec = specs[sources[0]]
    if any(specs[j] != spec for j in sources):
        raise UserError("the blend's map models predict in different frames (img-size or resize differ): "
                        "their maps cannot be averaged")
    classes, no_finding_class = object_classes(args, kind, [models[j] for j in sources], root)
    train, _ = read_dataset(root, getattr(args, "layout", "auto"), problems=RowProblems(skip=True))
    table = train.set_index("image_id").loc[list(folds["image_id"])].reset_index()
    ids = list(folds["image_id"])
    sizes = {i: image_size(Path(root) / i) for i in [*ids, *test_ids]}
    truth = truth_of(kind, table, root, sizes, no_finding_class)
    candidates = weight_candidates([models[j] for j in sources], source_weights)
    grid = [{"weights": name, **setting} for name, _ in candidates for setting in settings_grid(kind)]
    fusion = getattr(args, "box_fusion", "maps")
    batch = max(64 // max(len(classes), 1), 4)  # a map per class: fewer images per batch of upsampled maps
    probabilities = np.asarray(nested)

    def oof_found():  # each OOF image's maps (one per map model: its fold model's) -> objects under each entry
        settings = settings_grid(kind)
        for start in range(0, len(ids), batch):
            part = slice(start, start + batch)
            maps = [blended_maps([[cams[j][0][part]]], [1.0], spec.size) for j in sources]
            for row, image in enumerate(ids[part]):
                yield image, [found for _, model_weights in candidates for found in fused_objects(
                    kind, [m[row] for m in maps], model_weights, probabilities[start + row], *sizes[image], spec,
                    settings, classes, fusion)]
    choose = set_choice if kind == "classed boxes" else mean_choice
    best, in_sample, nested_value, (low, high) = choose(kind, oof_found(), truth, len(grid), folds["fold"].to_numpy(),
                                                        args.bootstrap, args.seed, no_finding_class=no_finding_class)
    report_choice(args, kind, grid, best, in_sample, nested_value, low, high, len(ids))
    chosen_weights = dict(candidates)[grid[best]["weights"]]
    setting = {k: v for k, v in grid[best].items() if k != "weights"}
    # the test side: each map model's kept fold models' maps averaged (maps), or each fold model's own (wbf)
    if fusion == "wbf" and kind != "masks":
        test_sources = [([cams[j][1][k]], chosen_weights[n] / len(kept[models[j]]))
                        for n, j in enumerate(sources) for k in kept[models[j]]]
    else:
        test_sources = [([cams[j][1][k] for k in kept[models[j]]], chosen_weights[n]) for n, j in enumerate(sources)]
    predictions = {}
    for start in range(0, len(test_ids), batch):
        part = slice(start, start + batch)
        maps = [blended_maps([[fold[part] for fold in folds_of]], [1.0], spec.size) for folds_of, _ in test_sources]
        for row, (image, probability) in enumerate(zip(test_ids[part], test_probabilities[part])):
            predictions[image] = fused_objects(kind, [m[row] for m in maps], [w for _, w in test_sources], probability,
                                               *sizes[image], spec, [setting], classes, fusion)[0]
    return predictions, {"metric": METRICS[kind], "setting": setting, "oof": float(in_sample[best]), "fusion": fusion,
                         "model_weights": dict(zip([models[j] for j in sources], map(float, chosen_weights))),
                         "nested": nested_value, "nested_low": low, "nested_high": high}


def weight_candidates(map_models, blend_weights):
    """[(name, one weight per map model)] tried for the objects: the blend's weights (chosen by AUC),
    and with several map models equal weights and each model alone, so the competition's metric
    picks among them on the OOF images."""
    candidates = [("blend", list(blend_weights))]
    if len(map_models) > 1:
        candidates.append(("equal", [1.0] * len(map_models)))
        candidates += [(f"{m} alone", [float(k == j) for k in range(len(map_models))]) for j, m in enumerate(map_models)]
    return candidates


def report_choice(args, kind, grid, best, in_sample, nested_value, low, high, n_images):
    """Print the choice and write every entry's OOF score to oof/<exp>/objects_report.csv."""
    import pandas as pd

    from cxr.artifacts import write_csv

    path = Path(args.oof_dir) / args.exp / "objects_report.csv"
    write_csv(path, pd.DataFrame([{**entry, "oof_score": float(in_sample[k]), "chosen": k == best}
                                  for k, entry in enumerate(grid)]), float_format="%.6f")
    shown = ", ".join(f"{k} {v:g}" if not isinstance(v, str) else f"{k} {v}" for k, v in grid[best].items())
    print(f"\n{kind}: {METRICS[kind]} of the blended object maps over {n_images} OOF images: in-sample best "
          f"{in_sample[best]:.4f} ({shown}); nested (each fold by the setting best on the others) {nested_value:.4f} "
          f"[{low:.4f}, {high:.4f}]; wrote {path}")


def object_classes(args, kind, map_models, root):
    """(the class id of each object map, the No finding class id) for classed boxes: the map
    models' saved `map_classes` (all alike) and VinBigData's train.csv; ((), None) otherwise."""
    import json

    from cxr.artifacts import run_dir
    from cxr.formats.vinbig import no_finding_class

    if kind != "classed boxes":
        return (), None
    found = {m: tuple(json.loads((run_dir(args.weights_dir, args.exp, m, 0) / "config.json").read_text())
                      .get("map_classes", [])) for m in map_models}
    if len(set(found.values())) != 1 or not next(iter(found.values())):
        raise UserError("classed boxes need map models with a map per class, the same classes in each; found " +
                        "; ".join(f"{m}: {', '.join(c) or 'one map of every object'}" for m, c in found.items()) +
                        " (retrain them on this data set)")
    return next(iter(found.values())), no_finding_class(root)
