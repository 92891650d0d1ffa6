"""See a data set before training: tables of its make-up and PNGs of its images.

    python src/inspect_data.py --dataset demo
    python src/inspect_data.py --dataset pneumonia_folder --positive-classes BacterialPneumonia,ViralPneumonia

Prints class balance, image sizes, annotated objects per shape type and their sizes, and
the duplicates found by make_folds.py; writes to --out (default reports/<dataset>/):
    samples.png               a grid of training images with their objects drawn
                              (rectangles red, ellipses green, polygons blue, translucent fill)
    positives_negatives.png   positives on the top row, negatives below
"""
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cxr.artifacts import duplicates_file  # noqa: E402
from cxr.config import DataSettings, option, parse_config  # noqa: E402
from cxr.errors import exit_on_user_error  # noqa: E402
from cxr.figures import grid_figure  # noqa: E402
from cxr.data.overview import describe, panel, summary_tables  # noqa: E402

# pandas and the modules that import it (cxr.data) are imported where they are used, after the flags
# are parsed: --help answers at once.


@dataclasses.dataclass
class InspectSettings(DataSettings):
    samples: int = option(12, "images in the sample grid")
    seed: int = option(0, "which images are sampled")
    out: str = option("", "the folder for the PNGs (default: <reports-dir>/<dataset>)", metavar="DIR")


@exit_on_user_error
def main(argv=None):
    args = parse_config(argv, InspectSettings, description=__doc__)
    import pandas as pd

    from cxr.data.layouts import read_checked

    train, test, root = read_checked(args, require_task=False)
    print(summary_tables({"train": describe(train), "test": describe(test)}))
    report = duplicates_file(args.folds_dir, args.dataset)
    if report.is_file():
        pairs = pd.read_csv(report)
        crossing = (pairs["side_a"] != pairs["side_b"]).sum()
        print(f"duplicates ({report}): {len(pairs)} pairs {pairs['kind'].value_counts().to_dict()}, {crossing} between train and test")
    else:
        print(f"duplicates: not searched yet (python src/make_folds.py --dataset {args.dataset} writes {report})")

    out = Path(args.out or Path(args.reports_dir) / args.dataset)
    out.mkdir(parents=True, exist_ok=True)
    sample = train.sample(min(args.samples, len(train)), random_state=args.seed)
    panels, titles = zip(*(panel(root, row) for row in sample.itertuples()))
    grid_figure(panels, titles, out / "samples.png", suptitle=f"{args.dataset}: training samples")
    if "target" not in train:
        print(f"wrote {out / 'samples.png'} (no positives vs negatives figure: the targets are {train.attrs['task']})")
        return
    per_row = 4
    chosen = [train[train["target"] == t].sample(min(per_row, int((train["target"] == t).sum())), random_state=args.seed)
              for t in (1, 0)]
    pairs = [panel(root, row) for side in chosen for row in side.itertuples()]
    grid_figure([p for p, _ in pairs], [t for _, t in pairs], out / "positives_negatives.png", columns=per_row,
                suptitle="positives (top) vs negatives (bottom)")
    print(f"wrote {out / 'samples.png'} and {out / 'positives_negatives.png'}")


if __name__ == "__main__":
    main()
