"""Does a model look at the foreign objects? Cover an image's annotated objects and predict
again; cover the same area elsewhere (the control) and predict again.

Covering fills the pixels with the local background (OpenCV's Telea inpainting), so the
model sees a plausible radiograph without the objects rather than a black hole it never met
in training. The control is the objects' mask itself, moved rigidly as a whole (the objects
keep their shapes, sizes and relative places: the same pixels, only elsewhere), to a random
place fully inside the image and the body (not the dark air around it) that keeps away from
the objects. A model that uses the objects
loses far more probability when they are covered than when the same area elsewhere is."""
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from cxr.errors import UserError
from cxr.localization.targets import rasterize


@dataclass
class Occluded:
    """One image three ways, with the masks that made them."""

    original: np.ndarray
    objects_covered: np.ndarray
    control_covered: np.ndarray
    objects: np.ndarray  # uint8 mask of the covered objects (their margin included)
    control: np.ndarray  # the same mask, moved

    @property
    def views(self):
        return [self.original, self.objects_covered, self.control_covered]


def disk(radius):
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def object_area_mask(shapes, height, width, margin=3):
    """(height, width) uint8 mask (1 = covered) of the shapes in original pixels, dilated by
    `margin` pixels so that covering leaves no bright rim of the object behind."""
    mask = rasterize(shapes, height, width)
    return cv2.dilate(mask, disk(margin)) if margin > 0 else mask


def cover(gray, mask, radius=5):
    """`gray` with the pixels of `mask` filled by Telea inpainting from the background within
    `radius` pixels around them; every other pixel unchanged."""
    filled = cv2.inpaint(gray, mask, radius, cv2.INPAINT_TELEA)
    return np.where(mask > 0, filled, gray)


def body_mask(gray):
    """uint8 mask of the body: pixels of the blurred image brighter than half its median (the dark
    air around a radiograph is out; an image that is mostly air keeps everything). A control in
    the air would change nothing and prove nothing."""
    blurred = cv2.GaussianBlur(gray, (0, 0), 3)
    return (blurred > 0.5 * np.median(blurred)).astype(np.uint8)


def control_mask(mask, avoid, rng, tries=200, border=1, within=None, share=0.9):
    """`mask` translated as a whole to a random place where it lies fully inside the image, at
    least `border` pixels from its edges, overlaps neither `avoid` nor `mask` itself and, given
    `within` (body_mask), has at least `share` of its pixels there: the same pixel count,
    elsewhere in the body. None when none of `tries` random places fits (or the mask is empty)."""
    ys, xs = np.nonzero(mask)
    if not len(ys):
        return None
    part = mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1] > 0
    (height, width), (part_h, part_w) = mask.shape, part.shape
    if height - part_h - 2 * border < 0 or width - part_w - 2 * border < 0:
        return None
    blocked = (avoid > 0) | (mask > 0)
    for _ in range(tries):
        top = int(rng.integers(border, height - part_h - border + 1))
        left = int(rng.integers(border, width - part_w - border + 1))
        inside = within is None or (within[top:top + part_h, left:left + part_w] > 0)[part].mean() >= share
        if inside and not (blocked[top:top + part_h, left:left + part_w] & part).any():
            moved = np.zeros_like(mask)
            moved[top:top + part_h, left:left + part_w] = part
            assert moved.sum() == (mask > 0).sum()  # equal area is the point of the control
            return moved
    return None


def occlude(gray, shapes, rng, margin=3, radius=5, tries=200):
    """The Occluded views of a grayscale image with its annotated `shapes` (original pixels), or
    None when no equal-area control fits. The control keeps `margin + radius` pixels from the
    objects' mask, so its inpainting never draws on the objects."""
    height, width = gray.shape
    objects = object_area_mask(shapes, height, width, margin)
    control = control_mask(objects, cv2.dilate(objects, disk(margin + radius)), rng, tries, within=body_mask(gray))
    if control is None:
        return None
    return Occluded(gray, cover(gray, objects, radius), cover(gray, control, radius), objects, control)


def predict_occluded(occluded, predict):
    """(n, 3, columns): `predict` (a list of grayscale images -> (b, columns) probabilities) of
    each image's original, objects covered and control covered, in one call."""
    if not occluded:
        return np.zeros((0, 3, 0))
    probabilities = np.asarray(predict([view for o in occluded for view in o.views]))
    return probabilities.reshape(len(occluded), 3, -1)


def mean_with_interval(values, resamples):
    """(mean, 2.5th and 97.5th percentile of the means of `values` over the rows of index
    array `resamples`); NaNs for what cannot be told (no values, no resamples)."""
    if not len(values):
        return np.nan, np.nan, np.nan
    low, high = np.percentile(values[resamples].mean(axis=1), [2.5, 97.5]) if len(resamples) else (np.nan, np.nan)
    return float(values.mean()), float(low), float(high)


def drop_summary(original, objects_covered, control_covered, n_boot=1000, seed=0):
    """Mean probability drops over images with bootstrap 95 % intervals (the same `n_boot`
    resamples of the images for all three, so the difference is paired): {'images',
    'drop_objects', 'drop_control', 'difference' (objects' drop - control's drop), each with
    '_low' and '_high'}; NaNs for no image, and intervals of NaN for no resample."""
    original, objects_covered, control_covered = (np.asarray(a, dtype=float)
                                                  for a in (original, objects_covered, control_covered))
    drops = {"drop_objects": original - objects_covered, "drop_control": original - control_covered}
    drops["difference"] = drops["drop_objects"] - drops["drop_control"]
    summary = {"images": len(original)}
    resamples = np.random.default_rng(seed).integers(len(original), size=(n_boot, len(original)))
    for name, values in drops.items():
        mean, low, high = mean_with_interval(values, resamples)
        summary.update({name: mean, f"{name}_low": low, f"{name}_high": high})
    return summary


# ---------------------------------------------------------------- the study of an experiment (src/occlude.py)
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
    from cxr.inference.ensemble import predict_batch

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
