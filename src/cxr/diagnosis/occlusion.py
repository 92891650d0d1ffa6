"""Does a model look at the foreign objects? Cover an image's annotated objects and predict
again; cover the same area elsewhere (the control) and predict again.

Covering fills the pixels with the local background (OpenCV's Telea inpainting), so the
model sees a plausible radiograph without the objects rather than a black hole it never met
in training. The control is the objects' mask itself, moved rigidly as a whole (the objects
keep their shapes, sizes and relative places: the same pixels, only elsewhere), to a random
place fully inside the image and the body (not the dark air around it) that keeps away from
the objects. A model that uses the objects
loses far more probability when they are covered than when the same area elsewhere is."""
from dataclasses import dataclass

import cv2
import numpy as np

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
