"""BatchNorm statistics recomputed on the test images (AdaBN: adaptive batch normalization,
Li et al. 2016): a model's normalization layers learn the test side's mean and variance."""
import torch

from cxr.errors import UserError


# ---------------------------------------------------------------- BatchNorm adaptation
def normalization_layers(model):
    """The BatchNorm layers that keep running statistics (timm's BatchNormAct2d included)."""
    return [m for m in model.modules()
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


class _Measured(Exception):
    """Stops a forward pass once the layer being measured has seen its input."""


@torch.no_grad()
def adapt_batchnorm(model, batches):
    """Replace every BatchNorm layer's running mean and variance by those of its input over the
    images `batches()` yields (an iterable of image tensors on the model's device), layer by layer
    in forward order with the layers before it already adapted (AdaBN, Li et al. 2016). Exact
    population statistics, accumulated in float64: the result does not depend on how the images
    are batched or ordered, so inference on the same images reproduces it. Only the running
    statistics change. Costs about one pass over the images per two layers (each pass stops
    at the layer it measures). Returns the number of layers adapted."""
    layers = normalization_layers(model)
    if not layers:
        raise UserError(f"{type(model).__name__} has no BatchNorm layers: there are no statistics to adapt")
    model.eval()
    for layer in layers:
        sums = {}

        def measure(module, inputs):
            x = inputs[0].detach().double().transpose(0, 1).reshape(inputs[0].shape[1], -1)  # (channels, values)
            sums["n"] = sums.get("n", 0) + x.shape[1]
            sums["sum"] = sums.get("sum", 0) + x.sum(1)
            sums["squares"] = sums.get("squares", 0) + (x * x).sum(1)
            raise _Measured

        handle = layer.register_forward_pre_hook(measure)
        try:
            for images in batches():
                try:
                    model(images)
                except _Measured:
                    pass
        finally:
            handle.remove()
        if sums.get("n", 0) < 2:
            raise UserError("BatchNorm adaptation needs at least two values per channel (more images)")
        n = sums["n"]
        mean = sums["sum"] / n
        variance = (sums["squares"] - n * mean * mean).clamp(min=0) / (n - 1)  # unbiased, as BatchNorm keeps it
        layer.running_mean.copy_(mean.to(layer.running_mean.dtype))
        layer.running_var.copy_(variance.to(layer.running_var.dtype))
    return len(layers)
