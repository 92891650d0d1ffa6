"""Predict images with this packaged experiment: a folder or a list of images in, a CSV of
blended probabilities out (the same as the repository's src/predict.py gives).

    python predict.py path/to/images --out predictions.csv
    python predict.py image_path.csv --out predictions.csv --batch-size 32 --device cuda

In a notebook (this folder attached as a data set, no network needed):

    import sys; sys.path.insert(0, "/kaggle/input/<this data set>")
    from predict import predict_paths
    frame = predict_paths(["/kaggle/input/.../a.png", ...])  # image_path, probability column(s)

Uses blend.json, the checkpoints under weights/ and the inference code under lib/, all beside
this file, wherever the folder is. Writes `image_path,probability` (one probability column
per label for a multi-label experiment, per class for a multi-class one). (src/package.py copies this file into a package as
predict.py; it does not run from the repository's src/.)"""
import argparse
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPEC = HERE / "blend.json"
sys.path.insert(0, str(HERE / "lib"))
from cxr.errors import UserError, exit_on_user_error  # noqa: E402  (lib/cxr/errors.py: no third-party imports)

_loaded = {}  # device -> Ensemble: a notebook loads the checkpoints once


def ensemble_on(device="auto"):
    """(the packaged ensemble on `device`, loaded once per device; that torch.device). `device`:
    auto, cpu, cuda, cuda:N or a torch.device."""
    from cxr.training import engine
    from cxr.inference.ensemble import load_ensemble

    device = engine.resolve_device(device) if isinstance(device, str) else device
    if str(device) not in _loaded:
        _loaded[str(device)] = load_ensemble(SPEC, device)
    return _loaded[str(device)], device


def predict_paths(paths, batch_size=16, device="auto"):
    """A DataFrame of `paths` (image files) and their blended probabilities: columns image_path
    and probability (a binary experiment) or one column per label."""
    import pandas as pd
    from cxr.inference.ensemble import run

    paths = [str(p) for p in paths]
    ensemble, device = ensemble_on(device)
    probabilities, _ = run(ensemble, paths, device, batch_size)
    names = ["probability"] if ensemble.labels == [""] else ensemble.labels
    return pd.DataFrame({"image_path": paths, **dict(zip(names, probabilities.T))})


def device_name(value):
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
        raise argparse.ArgumentTypeError(f"invalid choice: {value!r} (choose from auto, cpu, cuda, cuda:N)")
    return value


class Parser(argparse.ArgumentParser):
    """A wrong flag or value is one line, `error: ...`, exit 2."""

    def error(self, message):
        self.exit(2, f"error: {message} (see --help)\n")


@exit_on_user_error
def main(argv=None):
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    parser.add_argument("images", help="a folder of images, or a header-less CSV list of image paths")
    parser.add_argument("--out", default="predictions.csv", help="CSV to write (default: predictions.csv)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per batch (default: 16)")
    parser.add_argument("--device", default="auto", type=device_name, help="auto, cpu, cuda or cuda:N (default: auto)")
    args = parser.parse_args(argv)

    from cxr.artifacts import write_csv
    from cxr.data.layouts import list_images

    started = time.time()
    paths = list_images(args.images)
    frame = predict_paths(paths, args.batch_size, args.device)
    write_csv(args.out, frame)
    seconds = time.time() - started
    print(f"{len(paths)} images: {len(paths) / max(seconds, 1e-9):.1f} images/s; wrote {args.out}")


if __name__ == "__main__":
    main()
