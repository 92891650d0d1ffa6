"""Predict new images with a trained experiment: a folder or a list of images in, a CSV of
blended probabilities out, heatmap overlays on request.

    python src/predict.py path/to/folder --exp demo --out predictions.csv
    python src/predict.py image_path.csv --exp full --heatmaps-dir heatmaps/

Uses the experiment's blend spec (submissions/<exp>/blend.json) and checkpoints, with the same
preprocessing, TTA and blend as its submission (see src/cxr/inference/ensemble.py). Writes --out with
`image_path,probability`; with --heatmaps-dir, one PNG per image (its path below the images' common folder, plus .png): the radiograph with the
ensemble's Grad-CAM heatmap over it. A multi-label experiment gets one probability column
per label, a multi-class one a column per class, each row summing to 1 (heatmaps are of the
first label or class; explain.py --label draws another's)."""
import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cxr.artifacts import write_csv  # noqa: E402
from cxr.config import INFERENCE_BATCH_SIZE, Parser, add_settings  # noqa: E402
from cxr.errors import exit_on_user_error  # noqa: E402

# torch, pandas and the inference modules are imported after the flags are parsed: --help answers at once.


def heatmap_names(paths):
    """{image path: its overlay's name}: the path below the images' common folder plus .png, so
    a/x.jpg and b/x.jpg (or x.jpg and x.png) never overwrite each other."""
    absolute = [os.path.abspath(p) for p in paths]
    common = os.path.commonpath([os.path.dirname(p) for p in absolute]) if absolute else ""
    return {p: os.path.relpath(a, common) + ".png" for p, a in zip(paths, absolute)}


@exit_on_user_error
def main(argv=None):
    parser = Parser(description=__doc__)
    parser.add_argument("source", help="a folder of images, or a header-less CSV list of image paths")
    add_settings(parser, "exp", exp="experiment whose blend spec (<submissions-dir>/<exp>/blend.json) to load")
    parser.add_argument("--out", metavar="FILE", default="predictions.csv", help="the CSV to write")
    parser.add_argument("--heatmaps-dir", metavar="DIR", default="",
                        help="also write heatmap overlay PNGs into this folder (default: none)")
    parser.add_argument("--heatmaps", dest="heatmaps_dir", default="", help=argparse.SUPPRESS)  # the old spelling
    parser.add_argument("--submissions-dir", default="submissions", metavar="DIR", help="where blend specs are")
    parser.add_argument("--batch-size", type=int, default=INFERENCE_BATCH_SIZE, help="images per batch")
    add_settings(parser, "device")
    args = parser.parse_args(argv)
    import pandas as pd

    from cxr.training import engine
    from cxr.artifacts import blend_spec_path
    from cxr.inference.ensemble import load_ensemble, run
    from cxr.data.layouts import list_images
    from cxr.figures import heatmap_overlay

    started = time.time()
    device = engine.resolve_device(args.device)
    ensemble = load_ensemble(blend_spec_path(args.submissions_dir, args.exp), device)
    paths = list_images(args.source)

    names_of = heatmap_names(paths)

    def draw(path, gray, heatmap):
        heatmap_overlay(gray, heatmap, Path(args.heatmaps_dir) / names_of[path], title=str(path))

    probabilities, _ = run(ensemble, paths, device, args.batch_size, on_heatmap=draw if args.heatmaps_dir else None)
    names = ["probability"] if ensemble.labels == [""] else ensemble.labels
    write_csv(args.out, pd.DataFrame({"image_path": paths, **dict(zip(names, probabilities.T))}))
    seconds = time.time() - started
    print(f"{len(paths)} images: {len(paths) / max(seconds, 1e-9):.1f} images/s; wrote {args.out}"
          + (f" and {len(paths)} heatmaps in {args.heatmaps_dir}/" if args.heatmaps_dir else ""))


if __name__ == "__main__":
    main()
