"""Heatmaps to scored points (Object-CXR's localization file is points, scored by FROC):
peaks of a (blended) heatmap, each with the image probability times its height, mapped back
to original-image pixels."""

import numpy as np
import torch
import torch.nn.functional as F

from cxr.models.kinds import OBJECT_KINDS


def upsample(maps, size):
    """(N, h, w) maps -> (N, size, size), or (N, classes, h, w) -> (N, classes, size, size), bilinear:
    heatmaps in network-input pixels."""
    one = maps.ndim == 3
    out = F.interpolate((maps[:, None] if one else maps).float(), size=(size, size), mode="bilinear", align_corners=False)
    return out[:, 0] if one else out


def heatmap_points(heatmap, probability, max_points=10, min_distance=8, sigma=1.0):
    """Scored points (score, x, y) from one heatmap (network-input pixels), best first.

    The map is smoothed (Gaussian, `sigma` pixels) and scaled to [0, 1]; its local maxima (a
    plateau of equal maxima counting as one, at its centre) at least `min_distance` pixels
    apart (non-maximum suppression, strongest first) become points scored probability x
    strength, so the image probability orders points across images and the strength within
    one. Fewer peaks than `max_points` are topped up with the strongest remaining pixels, each
    `min_distance` from every point so far: FROC's budget reaches 8 false positives per image,
    unused budget scores nothing, and low-confidence points cost nothing once it is spent."""
    from scipy.ndimage import center_of_mass, gaussian_filter, label, maximum, maximum_filter

    smooth = gaussian_filter(np.asarray(heatmap, dtype=float), sigma) if sigma > 0 else np.asarray(heatmap, float)
    low, high = smooth.min(), smooth.max()
    if high > low:
        strength = (smooth - low) / (high - low)
        peaks = (strength == maximum_filter(strength, size=3, mode="nearest")) & (strength > 0)
        regions, count = label(peaks)  # a plateau of equal maxima is one peak, at its centre
        centres = np.round(center_of_mass(peaks, regions, range(1, count + 1))).astype(int).reshape(-1, 2)
        values = maximum(strength, regions, range(1, count + 1))
    else:  # a flat map (say a 1x1 feature map) says nothing about where: first guess the centre
        strength = np.zeros_like(smooth)
        centres, values = np.array([[smooth.shape[0] // 2, smooth.shape[1] // 2]]), np.ones(1)
    kept = []
    for i in np.argsort(-np.asarray(values), kind="stable"):
        y, x = centres[i]
        if all((x - kx) ** 2 + (y - ky) ** 2 >= min_distance**2 for _, kx, ky in kept):
            kept.append((float(probability * values[i]), int(x), int(y)))
            if len(kept) == max_points:
                return kept
    yy, xx = np.mgrid[0:strength.shape[0], 0:strength.shape[1]]
    free = np.ones(strength.shape, bool)
    for _, kx, ky in kept:
        free &= (xx - kx) ** 2 + (yy - ky) ** 2 >= min_distance**2
    while len(kept) < max_points and free.any():
        y, x = np.unravel_index(np.argmax(np.where(free, strength, -1.0)), strength.shape)
        kept.append((float(probability * strength[y, x]), int(x), int(y)))
        free &= (xx - x) ** 2 + (yy - y) ** 2 >= min_distance**2
    return sorted(kept, key=lambda point: -point[0])  # stable: a peak stays ahead of an equal top-up


def scaled(maps):
    """(N, h, w) maps, each scaled to [0, 1] (a flat map becomes 0)."""
    low, high = maps.amin((1, 2), keepdim=True), maps.amax((1, 2), keepdim=True)
    return (maps - low) / torch.where(high > low, high - low, torch.ones_like(high))


def ensemble_heatmaps(cams, weights, size):
    """(N, size, size) ensemble heatmaps: sum over models of |weight| x the mean over that
    model's fold models of their Grad-CAMs, each upsampled to the network input and scaled
    to [0, 1] per image. `cams`: per model, a list of (N, h, w) maps (one per fold model)."""
    total = 0.0
    for weight, folds in zip(weights, cams):
        total = total + abs(float(weight)) * torch.stack([scaled(upsample(torch.as_tensor(c), size)) for c in folds]).mean(0)
    return total


def original_points(heatmap, probability, width, height, spec, max_points=10):
    """heatmap_points of a network-frame heatmap, in the original image's pixels (kept inside it)."""
    from cxr.data.cache import to_original

    found = heatmap_points(np.asarray(heatmap), probability, max_points=max_points)
    xs, ys = to_original([p[1] for p in found], [p[2] for p in found], width, height, spec.size, spec.mode)
    return [(score, float(np.clip(x, 0, width - 1)), float(np.clip(y, 0, height - 1)))
            for (score, _, _), x, y in zip(found, np.atleast_1d(xs), np.atleast_1d(ys))]


def heatmap_sources(kinds, weights):
    """(indices of the models whose heatmaps make the ensemble's, their weights): the map models
    when there are any (their maps learned where objects are; a classifier's Grad-CAM is only
    the fallback), weighted by |blend weight|, or alike when the blend gave them none; else the
    classifiers with a non-zero weight."""
    maps = [j for j, kind in enumerate(kinds) if kind in OBJECT_KINDS]  # map models and detectors
    if maps:
        weighed = [abs(float(weights[j])) for j in maps]
        return maps, (weighed if any(weighed) else [1.0] * len(maps))
    chosen = [j for j in range(len(kinds)) if weights[j] != 0]
    return chosen, [weights[j] for j in chosen]
