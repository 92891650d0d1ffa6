"""Heatmaps of where a classifier looks, and scored points from them (Object-CXR's
localization file is points, scored by FROC).

Both heatmaps use timm's split of every backbone into forward_features (the last feature
map) and forward_head (pooling + classifier):
    class_activation_map  the classifier's weights applied at every position of the feature
                          map (exact for global average pooling + one linear layer)
    grad_cam              the feature map weighted by the gradient of the logit (any backbone)"""
import numpy as np
import torch
import torch.nn.functional as F


def class_activation_map(model, images):
    """(N, h, w) CAMs of the one-logit head: w . feature(position); with average pooling their
    mean plus the bias is the logit."""
    with torch.no_grad():
        features = model.forward_features(images)
        weight = model.get_classifier().weight[0]
        return torch.einsum("nchw,c->nhw", features.float(), weight.float())


def grad_cam(model, images, output=0):
    """(N, h, w) Grad-CAM maps: ReLU of the feature map weighted by the spatial mean of the
    gradient of logit `output` (the label, for a multi-label head) with respect to it."""
    with torch.enable_grad():
        features = model.forward_features(images).detach().requires_grad_(True)
        logits = model.forward_head(features)
        (gradients,) = torch.autograd.grad(logits[:, output].sum(), features)
    weights = gradients.mean(dim=(2, 3), keepdim=True)
    return F.relu((weights * features).sum(1)).detach()


def upsample(maps, size):
    """(N, h, w) maps -> (N, size, size), bilinear: heatmaps in network-input pixels."""
    return F.interpolate(maps[:, None].float(), size=(size, size), mode="bilinear", align_corners=False)[:, 0]


def heatmap_points(heatmap, probability, max_points=10, min_distance=8, sigma=1.0):
    """Scored points (score, x, y) from one heatmap (network-input pixels), best first.

    The map is smoothed (Gaussian, `sigma` pixels) and scaled to [0, 1]; its local maxima (a
    plateau of equal maxima counting as one, at its centre) at least `min_distance` pixels apart (non-maximum suppression, strongest first) become points
    scored probability x peak strength, so the image probability orders points across images
    and the peak strength within one. Up to `max_points`: FROC's budget reaches 8 false
    positives per image, and low-confidence points cost nothing once it is spent."""
    from scipy.ndimage import center_of_mass, gaussian_filter, label, maximum, maximum_filter

    smooth = gaussian_filter(np.asarray(heatmap, dtype=float), sigma) if sigma > 0 else np.asarray(heatmap, float)
    low, high = smooth.min(), smooth.max()
    if high <= low:  # a flat map says nothing about where: one guess, the centre
        return [(float(probability), smooth.shape[1] // 2, smooth.shape[0] // 2)]
    strength = (smooth - low) / (high - low)
    peaks = (strength == maximum_filter(strength, size=3, mode="nearest")) & (strength > 0)
    regions, count = label(peaks)  # a plateau of equal maxima is one peak, at its centre
    centres = np.round(center_of_mass(peaks, regions, range(1, count + 1))).astype(int).reshape(-1, 2)
    values = maximum(strength, regions, range(1, count + 1))
    kept = []
    for i in np.argsort(-np.asarray(values), kind="stable"):
        y, x = centres[i]
        if all((x - kx) ** 2 + (y - ky) ** 2 >= min_distance**2 for _, kx, ky in kept):
            kept.append((float(probability * values[i]), int(x), int(y)))
            if len(kept) == max_points:
                break
    return kept
