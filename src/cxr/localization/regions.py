"""A map model's object map turned into what box and mask competitions score: boxes of its
blobs (RSNA, VinBigData), or a mask with an image-level gate (SIIM-ACR, after sneddy's first
place: a mask only where the map is sure somewhere, with enough area, then a lower threshold for
its outline). Maps are in network-input pixels (the letterboxed or squashed square); boxes and
masks come out in the original image's pixels."""
import numpy as np

from cxr.data.cache import map_to_original, placement


def blobs(heatmap, threshold):
    """(labels, count) of the 8-connected regions of `heatmap` at or above `threshold`."""
    from scipy.ndimage import label

    return label(np.asarray(heatmap) >= threshold, structure=np.ones((3, 3), int))


def map_boxes(heatmap, probability, width, height, size, mode, threshold=0.5, max_boxes=10, min_pixels=1):
    """[(score, (x1, y1, x2, y2)), ...], best first: one box per blob of a (size, size) network-frame
    map at or above `threshold` (blobs of fewer than `min_pixels` pixels dropped), its edges in
    the original image's pixels (clipped to it), its score the image `probability` times the
    blob's peak (so scores order boxes across images as well as within one)."""
    from scipy.ndimage import find_objects, maximum

    heatmap = np.asarray(heatmap, dtype=float)
    labels, count = blobs(heatmap, threshold)
    if not count:
        return []
    peaks = maximum(heatmap, labels, range(1, count + 1))
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    left, top, new_w, new_h = placement(width, height, size, mode)
    found = []
    for k, region in enumerate(find_objects(labels)):
        if sizes[k] < min_pixels:
            continue
        rows, cols = region
        # the blob's outer pixel edges, from the network frame to the original image
        x1, x2 = [(v - left) * width / new_w for v in (cols.start, cols.stop)]
        y1, y2 = [(v - top) * height / new_h for v in (rows.start, rows.stop)]
        box = (float(np.clip(x1, 0, width)), float(np.clip(y1, 0, height)),
               float(np.clip(x2, 0, width)), float(np.clip(y2, 0, height)))
        if box[2] > box[0] and box[3] > box[1]:
            found.append((float(probability * peaks[k]), box))
    found.sort(key=lambda b: -b[0])
    return found[:max_boxes]


def gated_mask(heatmap, width, height, mode, top=0.75, min_area=0, bottom=0.4):
    """The (height, width) boolean mask of a network-frame map: empty unless at least `min_area`
    original pixels reach `top` (the image-level gate: the map is sure somewhere, on enough
    area); then every pixel at or above `bottom`."""
    return mask_with_gate(map_to_original(np.asarray(heatmap, dtype=np.float32), width, height, mode), top, min_area,
                          bottom)


def mask_with_gate(original, top, min_area, bottom):
    """gated_mask of a map already in the original pixels."""
    if int((original >= top).sum()) < max(min_area, 1):
        return np.zeros(original.shape, bool)
    return original >= bottom
