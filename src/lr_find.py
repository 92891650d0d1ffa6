"""Learning-rate finder: train briefly while the learning rate grows exponentially, plot
the loss against it, and suggest a peak learning rate for --lr.

    python src/lr_find.py --arch resnet18 --fold 0 --img-size 96
    python src/lr_find.py --arch densenet121 --pretrained --start-lr 1e-6 --end-lr 1 --steps 200

Takes every train.py flag (same data, model and batch size; the weights are not kept).
Writes <weights-dir>/<exp>/<name>/lr_find.png and lr_find.csv. The suggestion is the
learning rate where the smoothed loss falls fastest (steepest slope against log lr),
before the loss minimum: a common, conservative choice."""
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cxr.artifacts import write_csv  # noqa: E402
from cxr.config import TrainConfig, option, parse_config  # noqa: E402
from cxr.errors import UserError, exit_on_user_error  # noqa: E402
from cxr.figures import lr_sweep_figure  # noqa: E402
from cxr.training.lr_range import smooth, suggest, sweep  # noqa: E402

# torch, pandas and the training modules are imported after the flags are parsed: --help answers at once.


@dataclasses.dataclass
class LrFindConfig(TrainConfig):
    start_lr: float = option(1e-7, "first learning rate of the sweep")
    end_lr: float = option(10.0, "last learning rate of the sweep")
    steps: int = option(100, "batches in the sweep (the training loader is repeated if shorter)")
    diverge: float = option(4.0, "stop once the smoothed loss exceeds this many times its minimum")


@exit_on_user_error
def main(argv=None):
    cfg = parse_config(argv, LrFindConfig, description=__doc__)
    import pandas as pd

    from cxr.training import engine, recipe
    from cxr.training.fold_run import build_data, build_model

    if not 0 < cfg.start_lr < cfg.end_lr:
        raise UserError(f"--start-lr {cfg.start_lr} must be positive and below --end-lr {cfg.end_lr}")
    recipe.seed_epoch(cfg.seed, 0)
    device = engine.resolve_device(cfg.device)
    precision = engine.resolve_precision(cfg.amp, device)
    data = build_data(cfg)
    model = build_model(cfg, device, data)
    lrs, losses = sweep(model, data.train_loader, device, precision, cfg, data.task)
    smoothed = smooth(losses)
    suggestion = suggest(lrs, smoothed)
    out = Path(cfg.weights_dir) / cfg.exp / cfg.model_name
    write_csv(out / "lr_find.csv", pd.DataFrame({"lr": lrs, "loss": losses, "smoothed": smoothed}), float_format="%.6g")
    lr_sweep_figure(lrs, losses, smoothed, suggestion, out / "lr_find.png",
                    title=f"{cfg.model_name}, {cfg.img_size} px, batch {cfg.batch_size}")
    print(f"swept {len(lrs)} batches from {lrs[0]:.1e} to {lrs[-1]:.1e}; suggested --lr {suggestion:.1e}; "
          f"wrote {out / 'lr_find.png'}")


if __name__ == "__main__":
    main()
