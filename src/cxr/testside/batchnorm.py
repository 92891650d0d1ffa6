"""BatchNorm statistics recomputed on the test images (AdaBN: adaptive batch normalization,
Li et al. 2016): a model's normalization layers learn the test side's mean and variance."""
import torch

import dataclasses
import json

from cxr.artifacts import cams_file, run_dir, write_json
from cxr.config import TrainConfig
from cxr.errors import UserError


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


def settings_of(recorded, **changes):
    """The TrainConfig a run's config.json describes (keys it does not know are measurements), changed."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return dataclasses.replace(TrainConfig(**{k: v for k, v in recorded.items() if k in known}), **changes)


def adapt_fold(source, args, device):
    """Adapt one fold run (its folder `source`); returns (fold, layers adapted, OOF AUC before, after)."""
    from cxr.training import engine
    from cxr.training.fold_run import build_data, predict_fold, write_predictions
    from cxr.models.factory import network_of
    from cxr.testside.batchnorm import adapt_batchnorm

    recorded = json.loads((source / "config.json").read_text())
    run = settings_of(recorded, device=args.device, weights_dir=args.weights_dir, oof_dir=args.oof_dir, resume=False)
    # The test rows are what matters here; the training rows are not used (nor their pseudo-labels).
    data = build_data(dataclasses.replace(run, pseudo_labels="", image_score=recorded.get("image_score_used", "max")))
    if len(data.test) < 2:
        raise UserError(f"data set {run.dataset} has {len(data.test)} test image(s): nothing to adapt to")
    adapted = dataclasses.replace(run, name=run.model_name + args.suffix)
    state = engine.load_checkpoint(source / "best.pt")
    network = network_of(state["config"], len(data.columns))
    network.load_state_dict(state["model"])
    model = engine.prepare_model(network, device, run.channels_last, compile=False)
    precision = engine.resolve_precision(run.amp, device)
    before = data.val_auc(predict_fold(run, model, data, device, precision, with_cams=False).oof)
    layers = adapt_batchnorm(model, lambda: (engine.to_device(images, device, run.channels_last, engine.input_channels(model))
                                             for images, _ in data.test_loader))
    with_cams = cams_file(run.oof_dir, run.exp, run.model_name, run.fold).is_file()
    predictions = predict_fold(adapted, model, data, device, precision, with_cams)
    out = run_dir(run.weights_dir, run.exp, adapted.model_name, run.fold)
    config = {**dataclasses.asdict(adapted), **{k: state["config"][k] for k in ("map_classes",) if k in state["config"]},
              "bn_adapted": {"from": str(source / "best.pt"), "test_images": len(data.test),
                                                          "layers": layers}}
    engine.save_checkpoint(out / "best.pt", model, config, state["epoch"], state["score"],
                           weights_from=state.get("weights_from", "model"))
    write_json(out / "config.json", {**recorded, **config, "test_seconds_per_image": predictions.test_seconds_per_image})
    write_predictions(adapted, data, predictions)
    return run.fold, layers, before, data.val_auc(predictions.oof)
