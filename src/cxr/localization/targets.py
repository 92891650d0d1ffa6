"""Targets for map models: object masks rasterized from the annotations, and training crops.

A map model learns where the objects are from their outlines. Each image's shapes
(original-image pixels) are mapped through the same resize as the image (cache.placement:
squash or letterbox) and rasterized in the network frame, every object at least one pixel,
objects touching the border kept. Training sees crops of the network-size image (a share of
them centred near an object, so objects a few pixels wide keep every pixel and an epoch stays
cheap), rescaled by a random factor (scale augmentation: objects of another pixel size are
still found), then flipped, rotated and contrast-jittered with their mask (albumentations)."""
import math

import cv2
import numpy as np
import torch

from cxr.data.cache import placement
from cxr.data.dataset import seeded_key

SUBPIXEL = 4  # cv2 drawing with 4 fractional bits: shapes keep their sub-pixel extent after a resize


def to_network(points, width, height, size, mode):
    """(n, 2) original-image pixel coordinates -> the network frame's (the inverse of cache.to_original)."""
    left, top, new_w, new_h = placement(width, height, size, mode)
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    return np.column_stack([(points[:, 0] + 0.5) * new_w / width - 0.5 + left,
                            (points[:, 1] + 0.5) * new_h / height - 0.5 + top])


def object_mask(shapes, width, height, size, mode):
    """(size, size) uint8 mask (1 = object) of a width x height image's shapes in its network
    frame (see rasterize), each clipped to the image first (a letterbox's padding holds no object)."""
    return rasterize(shapes, size, size, lambda points: to_network(on_image(points, width, height), width, height,
                                                                   size, mode))


def on_image(points, width, height):
    """(n, 2) original-pixel points clamped to the width x height image: an object that crosses the
    border (an annotation tool's slip) is clipped to it, not refused."""
    return np.clip(np.asarray(points, dtype=float).reshape(-1, 2), 0, [width, height])


def rasterize(shapes, height, width, to_frame=None):
    """(height, width) uint8 mask (1 = object) of `shapes`, their points mapped by `to_frame`
    (original pixels -> the mask's; None: the mask is in original pixels): rectangles filled,
    ellipses inscribed in their box, polygons filled with their outline (a wire one pixel thick
    stays one pixel thick), every object at least one pixel, objects past the border clipped to
    it. No shapes: an empty mask."""
    mask = np.zeros((height, width), np.uint8)
    scale = 1 << SUBPIXEL
    for shape in shapes:
        corners = shape.points if to_frame is None else to_frame(shape.points)
        fixed = np.round(np.clip(corners, 0, [width - 1, height - 1]) * scale).astype(np.int32)  # kept inside
        if shape.kind == 2:
            cv2.fillPoly(mask, [fixed], 1, lineType=cv2.LINE_8, shift=SUBPIXEL)
            cv2.polylines(mask, [fixed], True, 1, lineType=cv2.LINE_8, shift=SUBPIXEL)
            continue
        (x1, y1), (x2, y2) = fixed
        if shape.kind == 0:
            cv2.rectangle(mask, (int(x1), int(y1)), (int(x2), int(y2)), 1, thickness=-1, shift=SUBPIXEL)
        else:
            centre = (int(round((x1 + x2) / 2)), int(round((y1 + y2) / 2)))
            axes = (int(round((x2 - x1) / 2)), int(round((y2 - y1) / 2)))
            cv2.ellipse(mask, centre, axes, 0, 0, 360, 1, thickness=-1, shift=SUBPIXEL)
        cx, cy = int(round((x1 + x2) / 2 / scale)), int(round((y1 + y2) / 2 / scale))
        mask[cy, cx] = 1  # an object smaller than a pixel is still one pixel
    return mask


def crop_window(size, crop, centres, object_share, rng, scale_range=0.0):
    """(left, top, side) of a square window of the (size, size) frame, `side` = crop / scale
    for a random scale in [1 / (1 + scale_range), 1 + scale_range] (log-uniform). With
    probability `object_share`, when `centres` (object centres, network pixels) is not empty,
    the window holds a random object's centre at a random place at least a quarter of the
    window from its edges; otherwise the window is placed uniformly. Windows may reach past
    the frame (padded with black) only when they are larger than it."""
    scale = math.exp(rng.uniform(-math.log1p(scale_range), math.log1p(scale_range))) if scale_range > 0 else 1.0
    side = max(1, int(round(crop / scale)))
    room = size - side
    if len(centres) and rng.random() < object_share:
        cx, cy = centres[rng.integers(len(centres))]
        left = rng.uniform(cx - 3 * side / 4, cx - side / 4)  # the centre lands in the middle half of the window
        top = rng.uniform(cy - 3 * side / 4, cy - side / 4)
        left, top = (int(round(np.clip(v, min(0, room), max(0, room)))) for v in (left, top))
    else:
        left = int(rng.integers(min(0, room), max(0, room) + 1))
        top = int(rng.integers(min(0, room), max(0, room) + 1))
    return left, top, side


def cut(array, left, top, side, out, interpolation):
    """The side x side window at (left, top) of a 2-D array, or (h, w, channels) (black beyond its
    edges), resized to out x out."""
    padded = np.zeros((side, side, *array.shape[2:]), array.dtype)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + side, array.shape[0]), min(left + side, array.shape[1])
    if y1 > y0 and x1 > x0:
        padded[y0 - top:y1 - top, x0 - left:x1 - left] = array[y0:y1, x0:x1]
    if side == out:
        return padded
    resized = cv2.resize(padded, (out, out), interpolation=interpolation)
    return resized.reshape(out, out, *array.shape[2:])  # cv2 drops a single channel's axis


def shrink_mask(mask, stride):
    """(h, w[, channels]) mask -> (h / stride, w / stride[, channels]) by max-pooling: an object in
    any pixel of a cell marks the cell."""
    h, w = mask.shape[:2]
    cells = mask[:h - h % stride, :w - w % stride].reshape(h // stride, stride, w // stride, stride, *mask.shape[2:])
    return cells.max(axis=(1, 3))


class MaskedCrops:
    """torch-style Dataset for map models: (image crop tensor, target vector, masks at the map's
    stride (maps, h, w)) per row. `objects[image_id]` = (shapes, width, height, each shape's map
    or None) in original pixels: with `maps` > 1 each shape marks its own map (one per class),
    else the one map. The target of a crop is whether it holds an object (what the image head
    can see)."""

    def __init__(self, table, load, transform, objects, spec, crop, object_share, scale_range, stride, seed=0, maps=1):
        self.image_ids = list(table["image_id"])
        self.load, self.transform, self.objects, self.spec = load, transform, objects, spec
        self.crop, self.object_share, self.scale_range, self.stride = crop, object_share, scale_range, stride
        self.seed, self.maps = seed, maps

    def __len__(self):
        return len(self.image_ids)

    def mask(self, image_id):
        """(size, size) uint8 mask of the image's objects, or (size, size, maps) with a map per class."""
        shapes, width, height, channels = self.objects[image_id]
        if self.maps == 1:
            return object_mask(shapes, width, height, self.spec.size, self.spec.mode)
        return np.stack([object_mask([s for s, c in zip(shapes, channels) if c == k], width, height, self.spec.size,
                                     self.spec.mode) for k in range(self.maps)], axis=-1)

    def __getitem__(self, key):
        """A row's crop; with an (index, seed) key (data.EpochSeeded) its window and augmentation
        are drawn from (seed, row), so loader workers and a resumed run draw the same."""
        index, seed = seeded_key(key, self.transform)
        image_id = self.image_ids[index]
        image, mask = self.load(image_id), self.mask(image_id)
        shapes, width, height, _ = self.objects[image_id]
        centres = [to_network(on_image(s.points, width, height), width, height, self.spec.size, self.spec.mode).mean(0)
                   for s in shapes]
        crop = self.crop or self.spec.size
        rng = np.random.default_rng([self.seed if seed is None else seed, index])
        left, top, side = crop_window(self.spec.size, crop, centres, self.object_share, rng, self.scale_range)
        image = cut(image, left, top, side, crop, cv2.INTER_LINEAR)
        mask = self.crop_mask(cut(mask * 255, left, top, side, crop, cv2.INTER_LINEAR))
        out = self.transform(image=image, mask=mask.astype(np.uint8))
        return out["image"], *self.targets(image_id, np.asarray(out["mask"]))

    def crop_mask(self, resized):
        """The crop's mask from the resized 0/255 mask: every pixel an object touches (a thin object never vanishes)."""
        return resized > 0

    def targets(self, image_id, mask):
        """(target vector, (maps, h, w) masks at the map's stride) of a crop's augmented mask."""
        small = shrink_mask(mask, self.stride)
        target = np.array([float(small.any())], np.float32)
        small = small[None] if small.ndim == 2 else small.transpose(2, 0, 1)  # (maps, h, w)
        return target, torch.from_numpy(np.ascontiguousarray(small, dtype=np.float32))


def long_sides(objects, spec):
    """Each object's longest box side in the network frame (pixels of the spec's size x size image);
    `objects[image_id]` = (shapes, width, height, ...) in original pixels."""
    sides = []
    for shapes, width, height, *_ in objects.values():
        _, _, new_w, new_h = placement(width, height, spec.size, spec.mode)
        for shape in shapes:
            extent = np.ptp(on_image(shape.points, width, height), axis=0)
            sides.append(max(extent[0] * new_w / width, extent[1] * new_h / height))
    return np.array(sides, dtype=float)


MAX_BOXES = 64  # a crop's boxes, padded to a fixed count so a batch stacks


class BoxedCrops(MaskedCrops):
    """MaskedCrops for detectors: the same crops and augmentation, each object drawn into a mask of
    its own, so every object's box in the augmented crop is the box of its pixels (a flipped,
    rotated or rescaled object keeps a box that holds it). A row is (image crop tensor, target
    vector, (MAX_BOXES, 5) boxes: class, x1, y1, x2, y2 in crop pixels, rows of -1 after the last)."""

    def mask(self, image_id):
        shapes, width, height, _ = self.objects[image_id]
        if not shapes:
            return np.zeros((self.spec.size, self.spec.size, 1), np.uint8)
        return np.stack([object_mask([s], width, height, self.spec.size, self.spec.mode) for s in shapes], axis=-1)

    def crop_mask(self, resized):
        """Each object's pixels at least half covered after the resize (any pixel it touches would
        grow a rescaled box by up to a pixel a side); an object thinner than that keeps every pixel
        it touches."""
        resized = resized.reshape(*resized.shape[:2], -1)
        half = resized >= 128
        thin = ~half.any(axis=(0, 1))
        half[..., thin] = resized[..., thin] > 0
        return half

    def targets(self, image_id, mask):
        classes = self.objects[image_id][3] or [0] * len(self.objects[image_id][0])
        mask = mask.reshape(*mask.shape[:2], -1)
        boxes = np.full((MAX_BOXES, 5), -1.0, np.float32)
        found = 0
        for channel, label in enumerate(classes):
            ys, xs = np.nonzero(mask[..., channel])
            if len(xs) and found < MAX_BOXES:  # the object is (partly) inside the crop
                boxes[found] = (label, xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)  # pixel edges
                found += 1
        return np.array([float(found > 0)], np.float32), torch.from_numpy(boxes)
