"""Pixel saliency: which input pixels move a model's image score, as gradients.

    image_score      the differentiable score a fold model gives an image (what its probability
                     is made of): a classifier's logit, a map model's image head logit or its
                     smoothed map maximum (inference's image score, as its config recorded)
    gradient_saliency  |d score / d pixel|, the largest over the input channels (Simonyan et al. 2014)
    smoothgrad       the mean of gradient_saliency over noisy copies of the image (Smilkov et al.
                     2017): the same map with less pixel-to-pixel noise

Maps are in the network frame (the preprocessed image's pixels); cache.map_to_original maps
them onto the radiograph."""
import torch
import torch.nn.functional as F


def image_score(network, images, kind="classifier", score="max", output=0):
    """(N,) differentiable image scores of `images` (the network's float input): a classifier's
    logit `output`; a map model's head logit (score 'head'), the 3x3-smoothed map's maximum
    probability ('max', as inference scores it), or their mean ('mean', the head as a probability)."""
    out = network(images)
    if kind == "classifier":
        return out[:, output]
    head, maps = out
    if score == "head" or kind == "detector":  # a detector's painted maps carry no gradient
        return head[:, output]
    probabilities = torch.sigmoid(maps[:, output:output + 1])
    peak = F.avg_pool2d(probabilities, 3, stride=1, padding=1, count_include_pad=False).amax((1, 2, 3))
    return peak if score == "max" else (peak + torch.sigmoid(head[:, output])) / 2


def fold_score(fold_model, output=0):
    """image_score as a function of the images for an inference/ensemble.py FoldModel (its kind and image score)."""
    return lambda images: image_score(fold_model.network, images, fold_model.kind, fold_model.image_score, output)


def gradient_saliency(score, images):
    """(N, H, W) |gradient| of `score(images)` (N,) with respect to each pixel, the largest over
    the channels. `score` is any function of the float images (fold_score, or a test's toy)."""
    with torch.enable_grad():
        leaf = images.detach().float().requires_grad_(True)
        (gradients,) = torch.autograd.grad(score(leaf).sum(), leaf)
    return gradients.abs().amax(1)


def smoothgrad(score, images, samples=25, noise=0.15, generator=None):
    """(N, H, W) the mean gradient_saliency over `samples` copies of `images` with Gaussian noise of
    `noise` x each image's value range added (the paper's 10-20 %). `samples` 0 or 1 with noise 0
    is plain gradient saliency."""
    spread = (images.amax((1, 2, 3), keepdim=True) - images.amin((1, 2, 3), keepdim=True)) * noise
    total = torch.zeros(images.shape[0], *images.shape[-2:], device=images.device)
    for _ in range(max(samples, 1)):
        jitter = torch.randn(images.shape, generator=generator).to(images.device) * spread
        total += gradient_saliency(score, images + jitter)
    return total / max(samples, 1)
