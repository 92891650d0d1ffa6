"""Pixel saliency: a model that sees one pixel has saliency at that pixel alone; a map model's
differentiable score is the probability inference gives it."""
import numpy as np
import pytest
import torch

from cxr.localization.map_scores import map_image_probability
from cxr.diagnosis.saliency import gradient_saliency, image_score, smoothgrad


class OnePixel(torch.nn.Module):
    """A model whose logit reads one pixel, through a nonlinearity, of the channels' sum."""

    def __init__(self, y, x):
        super().__init__()
        self.y, self.x = y, x

    def forward(self, images):
        return torch.tanh(images[:, :, self.y, self.x].sum(1, keepdim=True) * 3.0)


def test_a_model_that_sees_one_pixel_has_saliency_there_alone():
    images = torch.rand(2, 3, 16, 20, generator=torch.Generator().manual_seed(0))
    model = OnePixel(5, 11)
    for saliency in (gradient_saliency(lambda x: model(x)[:, 0], images),
                     smoothgrad(lambda x: model(x)[:, 0], images, samples=8, noise=0.2,
                                generator=torch.Generator().manual_seed(1))):
        assert saliency.shape == (2, 16, 20)
        assert (saliency[:, 5, 11] > 0).all()
        saliency[:, 5, 11] = 0
        assert saliency.abs().max() == 0
    # the exact value: d tanh(3 s) / d pixel = 3 (1 - tanh(3 s)^2), the same for each channel
    s = images[:, :, 5, 11].sum(1)
    expected = 3 * (1 - torch.tanh(3 * s) ** 2)
    assert torch.allclose(gradient_saliency(lambda x: model(x)[:, 0], images)[:, 5, 11], expected, atol=1e-6)


def test_smoothgrad_averages_the_noisy_copies():
    """For a quadratic score the gradient is linear in the image: SmoothGrad's mean |gradient| over
    noisy copies is not the plain gradient's, and with no noise it is."""
    images = torch.randn(1, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    score = lambda x: (x ** 2).sum((1, 2, 3))  # noqa: E731
    plain = gradient_saliency(score, images)
    assert torch.allclose(smoothgrad(score, images, samples=3, noise=0.0), plain)
    noisy = smoothgrad(score, images, samples=200, noise=0.5, generator=torch.Generator().manual_seed(3))
    assert not torch.allclose(noisy, plain, atol=1e-2) and (noisy > 0).all()


class FixedMapModel(torch.nn.Module):
    """(head logits, map logits) from the image itself: head = mean, map = the image's first channel."""

    def forward(self, images):
        return images.mean((1, 2, 3))[:, None], images[:, :1] * 4 - 2


@pytest.mark.parametrize("score", ["max", "head", "mean"])
def test_a_map_models_score_is_its_image_probability_as_inference_computes_it(score):
    images = torch.rand(3, 3, 12, 12, generator=torch.Generator().manual_seed(4))
    head, maps = FixedMapModel()(images)
    expected = map_image_probability(torch.sigmoid(head).numpy(), torch.sigmoid(maps[:, 0]).numpy(), score)[:, 0]
    got = image_score(FixedMapModel(), images, "map", score).detach().numpy()
    if score == "head":
        got = 1 / (1 + np.exp(-got))  # the head's logit: its probability is inference's
    assert np.allclose(got, expected, atol=1e-6)
    assert gradient_saliency(lambda x: image_score(FixedMapModel(), x, "map", score), images).shape == (3, 12, 12)
