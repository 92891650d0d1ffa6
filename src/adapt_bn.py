"""Adapt a trained model's BatchNorm statistics to the test images (AdaBN): a new model of the experiment.

    python src/adapt_bn.py --exp pmnist --model resnet18          # -> model resnet18-bn
    python src/blend.py --exp pmnist --dataset pneumoniamnist     # reports (and may blend) both

Every fold model (weights/<exp>/<model>/fold_<k>/best.pt) gets the running mean and variance of
each BatchNorm layer recomputed on the data set's test images, layer by layer (exact statistics:
batching does not change them, so submit.py and predict.py reproduce the predictions); its
weights do not change. The adapted model then predicts its OOF and test images again, so
blend.py learns and reports (all rows, test-like rows) on the predictions of the models that
predict the test side. Writes weights/<exp>/<model>-bn/fold_<k>/ (best.pt, config.json) and
oof/<exp>/<model>-bn/ (fold_<k>.csv, test_fold_<k>.csv; heatmaps where the source had them).
"""
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cxr.artifacts import cams_file, run_dir, write_json  # noqa: E402
from cxr.config import Parser, TrainConfig, add_settings  # noqa: E402
from cxr.errors import UserError, exit_on_user_error  # noqa: E402

# torch and the training modules are imported after the flags are parsed: --help answers at once.


def parse_args(argv=None):
    parser = Parser(description=__doc__)
    add_settings(parser, "exp")
    parser.add_argument("--model", required=True, help="the model (name in <weights-dir>/<exp>/) to adapt")
    parser.add_argument("--suffix", default="-bn", help="the adapted model's name is the model's plus this")
    add_settings(parser, "weights_dir", "oof_dir", "device",
                 weights_dir="where the checkpoints are; the adapted model's go to <weights-dir>/<exp>/<model><suffix>/",
                 oof_dir="where OOF and test predictions are; the adapted model's go to <oof-dir>/<exp>/<model><suffix>/")
    return parser.parse_args(argv)


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
    config = {**dataclasses.asdict(adapted), "bn_adapted": {"from": str(source / "best.pt"), "test_images": len(data.test),
                                                          "layers": layers}}
    engine.save_checkpoint(out / "best.pt", model, config, state["epoch"], state["score"],
                           weights_from=state.get("weights_from", "model"))
    write_json(out / "config.json", {**recorded, **config, "test_seconds_per_image": predictions.test_seconds_per_image})
    write_predictions(adapted, data, predictions)
    return run.fold, layers, before, data.val_auc(predictions.oof)


@exit_on_user_error
def main(argv=None):
    args = parse_args(argv)
    from cxr.training import engine

    sources = sorted(p for p in (Path(args.weights_dir) / args.exp / args.model).glob("fold_*")
                     if (p / "best.pt").is_file() and (p / "config.json").is_file())
    if not sources:
        raise UserError(f"{Path(args.weights_dir) / args.exp / args.model}: no trained fold (best.pt and "
                        f"config.json) to adapt")
    device = engine.resolve_device(args.device)
    for source in sources:
        started = time.time()
        fold, layers, before, after = adapt_fold(source, args, device)
        print(f"{args.model}{args.suffix} fold {fold}: {layers} BatchNorm layers adapted to the test images; "
              f"OOF AUC {before:.4f} -> {after:.4f} ({time.time() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
