"""Inference like Object-CXR's evaluation server: a header-less list of image paths in, both
submission files out.

    python src/submit.py image_path.csv prediction_classification.csv prediction_localization.csv
    python src/submit.py image_path.csv cls.csv loc.csv --exp full --batch-size 32 --device cuda

Loads submissions/<exp>/blend.json (written by blend.py) and every checkpoint it names,
reads each image once per batch, applies each model's own preprocessing and TTA, blends the
models as blend.py did, and writes the classification file and the localization file (points
from the ensemble's object maps or Grad-CAM heatmaps, in original-image pixels). No training
data is needed, and it runs from any folder. A line about every 10 % of the images shows its
progress. An image that cannot be read (missing, truncated, not an image) does not cost the
others: it gets probability 0.5 and no points, is named on stderr, and after both files are
written (validated, atomically) the exit status is 3. With --strict such an image stops the
run before anything is written (exit 2)."""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cxr.config import INFERENCE_BATCH_SIZE, Parser, add_settings  # noqa: E402
from cxr.errors import UserError, exit_on_user_error  # noqa: E402


@exit_on_user_error
def main(argv=None):
    parser = Parser(description=__doc__)
    parser.add_argument("image_list", help="header-less CSV of image paths (as the evaluation server gives it)")
    parser.add_argument("classification", help="where to write prediction_classification.csv")
    parser.add_argument("localization", help="where to write prediction_localization.csv")
    add_settings(parser, "exp", exp="experiment whose blend spec (<submissions-dir>/<exp>/blend.json) to load")
    parser.add_argument("--submissions-dir", default="submissions", metavar="DIR", help="where blend specs are")
    parser.add_argument("--batch-size", type=int, default=INFERENCE_BATCH_SIZE, help="images per batch")
    parser.add_argument("--max-points", type=int, default=10, help="points per image in the localization file")
    parser.add_argument("--strict", action="store_true",
                        help="an unreadable image stops the run before anything is written (default: it is "
                             "predicted 0.5 with no points, named, and the exit status is 3)")
    add_settings(parser, "device")
    args = parser.parse_args(argv)
    # torch and the inference modules after the flags: --help and a wrong flag answer at once
    from cxr.training import engine
    from cxr.artifacts import blend_spec_path
    from cxr.inference.ensemble import load_ensemble, run
    from cxr.data.layouts import read_image_list
    from cxr.formats.files import write_classification, write_localization

    started = time.time()
    device = engine.resolve_device(args.device)
    ensemble = load_ensemble(blend_spec_path(args.submissions_dir, args.exp), device)
    if ensemble.labels != [""]:
        task = "multi-class" if ensemble.task == "multiclass" else "multi-label"
        raise UserError(f"experiment {args.exp} is {task} ({', '.join(ensemble.labels)}); Object-CXR's files hold "
                        f"one probability per image: use src/predict.py for it")
    paths = list(read_image_list(args.image_list)["image_id"])
    unreadable = None if args.strict else []
    probabilities, points = run(ensemble, paths, device, args.batch_size, localize=True, max_points=args.max_points,
                                unreadable=unreadable, progress=True)
    write_classification(args.classification, paths, probabilities[:, 0])
    write_localization(args.localization, paths, points)
    seconds = time.time() - started
    print(f"{len(paths)} images, {sum(len(f) for f in ensemble.models.values())} fold models: "
          f"{len(paths) / max(seconds, 1e-9):.1f} images/s ({seconds:.1f} s with loading); "
          f"wrote {args.classification} and {args.localization}")
    for path, reason in unreadable or []:
        print(f"error: {reason}" if path in reason else f"error: image {path}: {reason}", file=sys.stderr)
    if unreadable:
        print(f"error: {len(unreadable)} of {len(paths)} image(s) could not be read: predicted 0.5 with no points "
              f"in both files (exit status 3)", file=sys.stderr)
        sys.exit(3)


if __name__ == "__main__":
    main()
