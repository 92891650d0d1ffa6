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
import numpy as np  # noqa: E402

from cxr.artifacts import duplicates_file  # noqa: E402
from cxr.config import DataSettings, option, parse_config  # noqa: E402
from cxr.errors import exit_on_user_error  # noqa: E402
from cxr.figures import draw_shapes, grid_figure  # noqa: E402

# pandas and the modules that import it (data, readers) are imported where they are used, after the flags
# are parsed: --help answers at once.


@dataclasses.dataclass
class InspectSettings(DataSettings):
    samples: int = option(12, "images in the sample grid")
    seed: int = option(0, "which images are sampled")
    out: str = option("", "the folder for the PNGs (default: <reports-dir>/<dataset>)", metavar="DIR")


def describe(table):
    """Per-image facts: the table's columns (sizes included), objects by type, object sizes."""
    import pandas as pd

    from cxr.data.annotations import SHAPE_NAMES, parse_annotation

    rows = []
    for text in table.get("annotation", [""] * len(table)):
        shapes = parse_annotation(text)
        spans = [np.ptp(s.points, axis=0) for s in shapes]
        rows.append({**{name: sum(s.kind == kind for s in shapes) for kind, name in SHAPE_NAMES.items()},
                     "object_sizes": [float(np.sqrt(max(w, 1) * max(h, 1))) for w, h in spans]})
    return pd.concat([table.drop(columns=["annotation"], errors="ignore").reset_index(drop=True),
                      pd.DataFrame(rows, columns=[*SHAPE_NAMES.values(), "object_sizes"])], axis=1)


def label_counts(facts):
    """Counts per class: of the binary target, of each multi-label column, or of the class names."""
    if "class_name" in facts:
        return facts["class_name"].value_counts().sort_index().to_dict()
    multi = [c for c in facts.columns if c.startswith("target_")]
    if multi:
        return {c[len("target_"):]: int(facts[c].sum()) for c in multi}
    labelled = facts["target"].notna()
    return facts.loc[labelled, "target"].value_counts().sort_index().to_dict() if labelled.any() else "unlabelled"


def summary_tables(facts_by_side):
    from cxr.data.annotations import SHAPE_NAMES

    lines = []
    for side, facts in facts_by_side.items():
        if facts.empty:
            lines.append(f"{side}: no images")
            continue
        lines.append(f"{side}: {len(facts)} images, class counts {label_counts(facts)}")
        sizes = facts[["width", "height"]].describe(percentiles=[0.5]).loc[["min", "50%", "max"]].astype(int)
        lines.append("  image size (px):\n" + "\n".join("    " + l for l in sizes.to_string().splitlines()))
        per_image = facts[list(SHAPE_NAMES.values())]
        counts = per_image.sum()
        if counts.sum():
            with_objects = int((per_image.sum(axis=1) > 0).sum())
            lines.append(f"  objects: {counts.to_dict()} in {with_objects} images")
            sizes = np.concatenate([np.asarray(s, float) for s in facts["object_sizes"] if s])
            q = np.percentile(sizes, [0, 25, 50, 75, 100]).round(1)
            lines.append(f"  object size sqrt(w*h) px: min {q[0]}, q1 {q[1]}, median {q[2]}, q3 {q[3]}, max {q[4]}")
    return "\n".join(lines)


def panel(root, row):
    from cxr.data.annotations import parse_annotation
    from cxr.data.images import read_image

    image = read_image(Path(root) / row.image_id)
    shapes = parse_annotation(getattr(row, "annotation", ""))
    label = f"target {row.target:g}" if hasattr(row, "target") else getattr(row, "class_name", "")
    return draw_shapes(image, shapes), f"{row.image_id} · {label} · {len(shapes)} obj"


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
