"""A data set seen before training (src/inspect_data.py): tables of its make-up (sizes, labels,
objects per image and their kinds) and panels of its images with their annotations drawn."""
from pathlib import Path
import numpy as np
from cxr.figures import draw_shapes


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
