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


def grad_cam(model, images):
    """(N, h, w) Grad-CAM maps: ReLU of the feature map weighted by the spatial mean of the
    logit's gradient with respect to it."""
    with torch.enable_grad():
        features = model.forward_features(images).detach().requires_grad_(True)
        logits = model.forward_head(features)
        (gradients,) = torch.autograd.grad(logits.sum(), features)
    weights = gradients.mean(dim=(2, 3), keepdim=True)
    return F.relu((weights * features).sum(1)).detach()


def upsample(maps, size):
    """(N, h, w) maps -> (N, size, size), bilinear: heatmaps in network-input pixels."""
    return F.interpolate(maps[:, None].float(), size=(size, size), mode="bilinear", align_corners=False)[:, 0]


def heatmap_points(heatmap, probability, max_points=10, min_distance=4, sigma=1.0):
    """Scored points (score, x, y) from one heatmap (network-input pixels), best first.

    The map is smoothed (Gaussian, `sigma` pixels) and scaled to [0, 1]; its local maxima at
    least `min_distance` pixels apart (non-maximum suppression, strongest first) become points
    scored probability x peak strength, so the image probability orders points across images
    and the peak strength within one. Up to `max_points`: FROC's budget reaches 8 false
    positives per image, and low-confidence points cost nothing once it is spent."""
    from scipy.ndimage import gaussian_filter, maximum_filter

    smooth = gaussian_filter(np.asarray(heatmap, dtype=float), sigma) if sigma > 0 else np.asarray(heatmap, float)
    low, high = smooth.min(), smooth.max()
    strength = (smooth - low) / (high - low) if high > low else np.ones_like(smooth)
    peaks = (strength == maximum_filter(strength, size=3, mode="nearest")) & (strength > 0)
    ys, xs = np.nonzero(peaks)
    order = np.argsort(-strength[ys, xs], kind="stable")
    kept = []
    for i in order:
        if all((xs[i] - x) ** 2 + (ys[i] - y) ** 2 >= min_distance**2 for _, x, y in kept):
            kept.append((float(probability * strength[ys[i], xs[i]]), int(xs[i]), int(ys[i])))
            if len(kept) == max_points:
                break
    return kept
