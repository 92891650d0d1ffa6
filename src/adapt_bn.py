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
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cxr.config import Parser, add_settings  # noqa: E402
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


@exit_on_user_error
def main(argv=None):
    args = parse_args(argv)
    from cxr.testside.batchnorm import adapt_fold  # torch: after the flags
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
