"""The box and mask competitions' layouts, read as shipped into the tables every other layout
gives (layouts.py): one row per image with its objects as an Object-CXR annotation string in
original pixels, so map models learn them as they learn Object-CXR's outlines.

    rsna    stage_2_train_labels.csv (patientId, x, y, width, height, Target: one row per box,
            Target 0 with blanks for an image without one), stage_2_train_images/, the test ids
            from stage_2_sample_submission.csv; each box a rectangle
    vinbig  train.csv (image_id, class_name, class_id, rad_id, x_min, y_min, x_max, y_max: one
            row per box of each of an image's radiologists, 'No finding' rows without a box),
            train/, test/ and sample_submission.csv; the radiologists' boxes of one class fused
            (fuse_readers: boxes of different readers overlapping at IoU >= 0.4 become their mean
            box; a box one reader drew alone is kept, as merge_repeats believes any row), each
            fused box a rectangle, its class kept in the `classes` column ('<class_id> x1 y1 x2 y2'
            per box, in the annotation's order: the map models learn one map per class)
    siim    stage_2_train.csv (ImageId, EncodedPixels: one row per object's mask, '-1' for an image
            without one), the DICOM tree dicom-images-train/<study>/<series>/<ImageId>.dcm, the
            test ids from stage_2_sample_submission.csv; each mask decoded in the image's size
            (its DICOM header) and drawn as the polygons of its outer contours; the run-length
            masks kept in the `masks` column (';' between an image's), which the Dice is scored on

An image's target is 1 when it has an object. A row that cannot be read goes to `problems` with
its file and line."""
from pathlib import Path

import numpy as np
import pandas as pd

from cxr.errors import STRICT, UserError

RSNA_LABELS, SIIM_LABELS, VINBIG_LABELS = "stage_2_train_labels.csv", "stage_2_train.csv", "train.csv"
RSNA_COLUMNS = ("patientId", "x", "y", "width", "height", "Target")
VINBIG_COLUMNS = ("image_id", "class_name", "class_id", "rad_id", "x_min", "y_min", "x_max", "y_max")
SIIM_COLUMNS = ("ImageId", "EncodedPixels")


def competition_layout(root):
    """'rsna', 'vinbig' or 'siim' when the folder holds that competition's training table, else None."""
    from cxr.data.layouts import read_csv

    root = Path(root)
    if (root / RSNA_LABELS).is_file():
        return "rsna"
    if (root / SIIM_LABELS).is_file() and "EncodedPixels" in read_csv(root / SIIM_LABELS).columns:
        return "siim"
    if (root / VINBIG_LABELS).is_file() and {"class_id", "x_min"} <= set(read_csv(root / VINBIG_LABELS).columns):
        return "vinbig"
    return None


def require_columns(raw, path, columns):
    missing = [c for c in columns if c not in raw.columns]
    if missing:
        raise UserError(f"{path}: no column(s) {', '.join(missing)} (found {', '.join(raw.columns)})")


def numbers_of(raw, path, columns, problems, allow_blank):
    """(n, len(columns)) floats of a table's columns; a row with text that is no number (or, unless
    `allow_blank`, a blank) goes to `problems` and reads NaN."""
    values = raw[list(columns)].apply(lambda c: pd.to_numeric(c.str.strip().replace("", np.nan), errors="coerce"))
    bad = raw[list(columns)].apply(lambda c: c.str.strip() != "").to_numpy() & values.isna().to_numpy()
    if not allow_blank:
        bad |= values.isna().to_numpy()
    for row in np.flatnonzero(bad.any(1)):
        problems.report(path, row, f"{path} line {row + 2}: {', '.join(columns)} must be numbers, found "
                                   f"'{', '.join(raw.loc[row, list(columns)])}'")
    return values.to_numpy(dtype=float)


def per_image(ids, shapes, path, problems, extra=None):
    """One row per image of a table with a row per object: the annotation (its shapes joined by ';'),
    the target, and `extra` columns ({name: per-row strings} joined alike); the first row's file
    line kept for messages, and rows already reported renumbered to their image's (a bad row
    makes its image bad)."""
    from cxr.data.layouts import framed

    order, rows = {}, {}
    for row, (image_id, shape) in enumerate(zip(ids, shapes)):
        order.setdefault(image_id, row)
        rows.setdefault(image_id, []).append(row)
    images = sorted(order, key=order.get)
    position = {image: k for k, image in enumerate(images)}
    problems.renumber(path, [position[image_id] for image_id in ids])
    table = framed({"image_id": images,
                    "annotation": [";".join(shapes[r] for r in rows[i] if shapes[r]) for i in images]}, path)
    for name, values in (extra or {}).items():
        table[name] = [";".join(values[r] for r in rows[i] if values[r]) for i in images]
    table["target"] = (table["annotation"] != "").astype(int)
    table.attrs["lines"] = [order[i] + 2 for i in images]
    return table


def rectangle(x1, y1, x2, y2):
    """An Object-CXR rectangle of the pixels a box (its edges) covers: the first and the last
    pixel's corners, inclusive, as the targets draw them (annotations are integers; a rectangle
    needs x1 < x2, so a box one pixel wide is drawn two)."""
    left, top = int(np.floor(x1)), int(np.floor(y1))
    return f"0 {left} {top} {max(int(np.ceil(x2)) - 1, left + 1)} {max(int(np.ceil(y2)) - 1, top + 1)}"


def read_rsna(root, problems=STRICT):
    from cxr.data.layouts import read_csv, table_ids

    path = Path(root) / RSNA_LABELS
    raw = read_csv(path)
    require_columns(raw, path, RSNA_COLUMNS)
    ids = table_ids(raw["patientId"], "", path, problems, repeats=True)
    x, y, w, h, target = numbers_of(raw, path, RSNA_COLUMNS[1:], problems, allow_blank=True).T
    shapes = []
    for row in range(len(raw)):
        box = (x[row], y[row], w[row], h[row])
        if target[row] == 1 and np.isfinite(box).all() and w[row] >= 0 and h[row] >= 0:  # rectangle(): >= 1 pixel
            shapes.append(rectangle(x[row], y[row], x[row] + w[row], y[row] + h[row]))
        elif target[row] == 0 and not np.isfinite(box).any():
            shapes.append("")
        else:
            problems.report(path, row, f"{path} line {row + 2}: Target {raw.loc[row, 'Target']} with box "
                                       f"'{', '.join(raw.loc[row, list(RSNA_COLUMNS[1:5])])}': a box needs Target 1 "
                                       f"and a width and height of at least 0, no box Target 0")
            shapes.append("")
    return per_image(ids, shapes, path, problems)


def read_vinbig(root, problems=STRICT):
    from cxr.data.layouts import read_csv, table_ids

    path = Path(root) / VINBIG_LABELS
    raw = read_csv(path)
    require_columns(raw, path, VINBIG_COLUMNS)
    ids = table_ids(raw["image_id"], "train", path, problems, repeats=True)
    boxes = numbers_of(raw, path, VINBIG_COLUMNS[4:], problems, allow_blank=True)
    read = []  # per row: (class id, box, reader) or None (no finding, or a bad row)
    for row, box in enumerate(boxes):
        class_id = raw.loc[row, "class_id"].strip()
        if np.isfinite(box).all() and not class_id.isdigit():
            problems.report(path, row, f"{path} line {row + 2}: class_id '{class_id}' of a box must be a whole number")
            read.append(None)
        elif np.isfinite(box).all() and box[2] >= box[0] and box[3] >= box[1]:  # rectangle(): at least one pixel
            read.append((class_id, tuple(box), raw.loc[row, "rad_id"].strip()))
        else:
            if np.isfinite(box).any():
                problems.report(path, row, f"{path} line {row + 2}: box '{', '.join(raw.loc[row, list(VINBIG_COLUMNS[4:])])}' "
                                           f"needs x_min <= x_max and y_min <= y_max (or all four blank: no finding)")
            read.append(None)
    by_image = {}  # image -> (its first row, its readers' boxes)
    for row, (image_id, found) in enumerate(zip(ids, read)):
        by_image.setdefault(image_id, (row, []))[1].extend([found] if found else [])
    fused = {row: fuse_readers(found) for row, found in by_image.values()}  # on the image's first row
    shapes = [";".join(rectangle(*box) for _, box in fused.get(row, [])) for row in range(len(ids))]
    classes = [";".join(f"{c} " + " ".join(f"{v:g}" for v in box) for c, box in fused.get(row, []))
               for row in range(len(ids))]
    return per_image(ids, shapes, path, problems, {"classes": classes})


READER_IOU = 0.4  # VinBigData's metric threshold: boxes this close are one finding


def fuse_readers(boxes, iou=READER_IOU):
    """[(class, (x1, y1, x2, y2))] of one image's readers' boxes [(class, box, reader)]: for each
    class, in file order, a box joins the group whose mean box it overlaps most (IoU >= `iou`)
    and that holds no box of its reader yet, else starts a group; each group becomes its mean
    box. So three readers' jittered boxes of one object train and score as one object, and two
    objects one reader drew stay two."""
    from cxr.metrics.detection import box_iou

    fused = []
    for name in dict.fromkeys(c for c, _, _ in boxes):
        groups = []  # [[boxes], {readers}]
        for c, box, reader in boxes:
            if c != name:
                continue
            means = np.array([np.mean(g[0], axis=0) for g in groups]).reshape(-1, 4)
            overlaps = box_iou(np.array([box]), means)[0] if len(groups) else np.zeros(0)
            open_groups = [k for k in np.argsort(-overlaps) if overlaps[k] >= iou and reader not in groups[k][1]]
            if open_groups:
                groups[open_groups[0]][0].append(box)
                groups[open_groups[0]][1].add(reader)
            else:
                groups.append([[box], {reader}])
        fused.extend((name, tuple(float(v) for v in np.mean(g[0], axis=0))) for g in groups)
    return fused


def box_classes(text):
    """The class ids of a `classes` cell ('<class_id> x1 y1 x2 y2' per box, ';' between), in order."""
    return [part.split()[0] for part in str(text).split(";") if part.strip()]


def map_classes(table):
    """The class ids of a table's boxes (its `classes` column), in numeric order: a map model's
    object maps, one per class; [] for a table without classes (one map of every object)."""
    if "classes" not in table:
        return []
    found = {c for text in table["classes"] for c in box_classes(text)}
    return sorted(found, key=lambda c: (float(c), c))


def mask_polygons(mask):
    """Object-CXR shapes of a boolean mask: each outer contour a polygon through its boundary pixels'
    centres (a contour without area, a line or a dot, the rectangle of its pixels)."""
    import cv2

    contours, _ = cv2.findContours(np.ascontiguousarray(mask, dtype=np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    shapes = []
    for contour in contours:
        points = contour.reshape(-1, 2)
        if len(points) >= 3 and cv2.contourArea(contour) > 0:
            shapes.append("2 " + " ".join(f"{int(x)} {int(y)}" for x, y in points))
        else:  # a line or a dot has no area between its pixels' centres: the rectangle of its pixels
            (x1, y1), (x2, y2) = points.min(0), points.max(0) + 1  # edges: past the last pixel
            shapes.append(rectangle(x1, y1, x2, y2))
    return ";".join(shapes)


def read_siim(root, problems=STRICT):
    from cxr.data.images import image_size
    from cxr.data.layouts import read_csv, table_ids
    from cxr.formats.rle import decode

    root, path = Path(root), Path(root) / SIIM_LABELS
    raw = read_csv(path)
    require_columns(raw, path, SIIM_COLUMNS)
    ids = table_ids(raw["ImageId"], "", path, problems, repeats=True)
    sizes, shapes = {}, []
    masks = [text.strip() if text.strip() not in ("", "-1") else "" for text in raw["EncodedPixels"]]
    for row, (image_id, text) in enumerate(zip(ids, raw["EncodedPixels"])):
        if image_id.startswith("<bad row") or not masks[row]:
            shapes.append("")
            continue
        if image_id not in sizes:
            sizes[image_id] = image_size(root / image_id) if (root / image_id).is_file() else None
        if sizes[image_id] is None:  # the image check names a missing file with its line
            shapes.append("")
            continue
        width, height = sizes[image_id]
        try:
            shapes.append(mask_polygons(decode(text, height, width)))
        except ValueError as err:
            problems.report(path, row, f"{path} line {row + 2}: EncodedPixels of {image_id}: {err}")
            shapes.append("")
    return per_image(ids, shapes, path, problems, {"masks": masks})  # the masks themselves score the Dice


READERS = {"rsna": read_rsna, "vinbig": read_vinbig, "siim": read_siim}
