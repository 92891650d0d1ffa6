"""Reading a data set into one table, Object-CXR annotations, images, and the torch Dataset.

A data set is a folder under `input/`. In the Object-CXR layout it holds `train.csv` and
`dev.csv` (columns `image_name` or `image_path`, and `annotation`) beside the image folders
`train/` and `dev/`. Every table this module returns has one row per image with:

    image_id    the image's path relative to the data set folder (`train/00001.jpg`);
                it is the key of every fold, OOF and submission file
    annotation  the original annotation string ('' = no object)
    target      1 if the image has at least one object, else 0
"""
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from errors import UserError

SHAPE_NAMES = {0: "rectangle", 1: "ellipse", 2: "polygon"}
ID_COLUMNS = ("image_name", "image_path")


# ---------------------------------------------------------------- annotations
@dataclass(frozen=True)
class Shape:
    """One annotated object, in original-image pixels: TYPE 0 rectangle and TYPE 1 ellipse
    are `x1 y1 x2 y2` (the ellipse by its bounding box), TYPE 2 polygon is `x1 y1 ... xn yn`."""

    kind: int
    coords: tuple

    @property
    def points(self):
        return np.asarray(self.coords, dtype=float).reshape(-1, 2)


def parse_annotation(text):
    """`'0 1 2 3 4;2 0 0 5 0 5 5'` -> [Shape(0, (1, 2, 3, 4)), Shape(2, (...))]; '' -> [].

    Raises ValueError naming the malformed object."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return []
    shapes = []
    for part in str(text).split(";"):
        fields = part.split()
        if not fields:
            continue
        try:
            kind, coords = int(fields[0]), tuple(int(v) for v in fields[1:])
        except ValueError:
            raise ValueError(f"object '{part.strip()}' has a non-integer field") from None
        if kind not in SHAPE_NAMES:
            raise ValueError(f"object '{part.strip()}' has unknown type {kind} (0, 1 or 2 expected)")
        if kind in (0, 1) and len(coords) != 4:
            raise ValueError(f"{SHAPE_NAMES[kind]} '{part.strip()}' needs 4 coordinates, has {len(coords)}")
        if kind == 2 and (len(coords) < 6 or len(coords) % 2):
            raise ValueError(f"polygon '{part.strip()}' needs an even number (>= 6) of coordinates, has {len(coords)}")
        if kind in (0, 1) and (coords[2] < coords[0] or coords[3] < coords[1]):
            raise ValueError(f"{SHAPE_NAMES[kind]} '{part.strip()}' has x2 < x1 or y2 < y1")
        shapes.append(Shape(kind, coords))
    return shapes


def format_annotation(shapes):
    """Inverse of parse_annotation."""
    return ";".join(" ".join(str(v) for v in (s.kind, *s.coords)) for s in shapes)


# ---------------------------------------------------------------- tables
def read_objectcxr_table(csv_path, image_folder):
    """Read one Object-CXR table (`train.csv`, `dev.csv`) into the common table.

    Image names are made relative to the data set folder (`00001.jpg` -> `train/00001.jpg`)
    unless they already start with the image folder."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise UserError(f"{csv_path}: file not found")
    try:
        raw = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise UserError(f"{csv_path}: not a readable CSV table ({str(err).strip().splitlines()[0]})") from None
    id_col = next((c for c in ID_COLUMNS if c in raw.columns), None)
    if id_col is None:
        raise UserError(f"{csv_path}: no image column (expected one of {', '.join(ID_COLUMNS)}; found {', '.join(raw.columns)})")
    if "annotation" not in raw.columns:
        raise UserError(f"{csv_path}: no 'annotation' column (found {', '.join(raw.columns)})")
    targets = []
    for row, (name, text) in enumerate(zip(raw[id_col], raw["annotation"])):
        if not name.strip():
            raise UserError(f"{csv_path} line {row + 2}: empty image name")
        try:
            targets.append(int(len(parse_annotation(text)) > 0))
        except ValueError as err:
            raise UserError(f"{csv_path} line {row + 2} ({name}): malformed annotation: {err}") from None
    names = raw[id_col].str.strip()
    prefix = f"{image_folder}/"
    image_ids = [n if n.startswith(prefix) else prefix + n for n in names]
    table = pd.DataFrame({"image_id": image_ids, "annotation": raw["annotation"], "target": targets})
    duplicated = table["image_id"].duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise UserError(f"{csv_path} line {row + 2}: image {names.iloc[row]} is listed twice")
    table.attrs["source"] = str(csv_path)
    return table


def read_dataset(root):
    """Return (train_table, test_table) of an Object-CXR-layout data set folder.

    The test side is `dev.csv` (the public dev set: labelled, so its AUC can be reported)."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: data set folder not found (run `python src/make_demo.py` for the demo)")
    train = read_objectcxr_table(root / "train.csv", "train")
    test = read_objectcxr_table(root / "dev.csv", "dev")
    return train, test


def check_images(table, root):
    """Fail with the table's file and line if an image is missing or is not an image.

    Reads only each file's header (cheap), so a run fails before training, not in epoch 3."""
    from PIL import Image, UnidentifiedImageError

    source = table.attrs.get("source", "table")
    for row, image_id in enumerate(table["image_id"]):
        path = Path(root) / image_id
        if not path.is_file():
            raise UserError(f"{source} line {row + 2}: image {path} not found")
        try:
            with Image.open(path) as im:
                im.size  # noqa: B018  (the header parse is the check)
        except (UnidentifiedImageError, OSError) as err:
            raise UserError(f"{source} line {row + 2}: image {path} cannot be read ({err})") from None


# ---------------------------------------------------------------- images
def read_image(path):
    """Read an image file as uint8 RGB (H, W, 3); grayscale and 16-bit images are converted."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise UserError(f"image {path} cannot be decoded")
    if image.dtype == np.uint16:
        image = (image / 257.0).round().astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class ImageTable:
    """torch-style Dataset over a table: (image tensor, target) per row.

    `transform` is an albumentations pipeline ending in ToTensorV2; rows without a
    target (an unlabelled test set) give target -1."""

    def __init__(self, table, root, transform):
        self.paths = [Path(root) / i for i in table["image_id"]]
        self.targets = table["target"].to_numpy(dtype=np.float32) if "target" in table else np.full(len(table), -1.0, np.float32)
        self.transform = transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        image = self.transform(image=read_image(self.paths[index]))["image"]
        return image, self.targets[index]


# ---------------------------------------------------------------- folds
FOLD_COLUMNS = ["image_id", "target", "group", "fold"]


def assign_folds(table, n_folds=5, seed=42):
    """One row per image: image_id, target, group, fold; stratified by target, never
    splitting a group (each image is its own group until duplicates are grouped)."""
    from sklearn.model_selection import StratifiedGroupKFold

    counts = table["target"].value_counts()
    if len(table) < n_folds or counts.min() < n_folds:
        raise UserError(f"{n_folds} folds need at least {n_folds} images of each class; the table has {counts.to_dict()}")
    folds = table[["image_id", "target"]].copy()
    folds["group"] = table["group"] if "group" in table else table["image_id"]
    folds["fold"] = -1
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, val) in enumerate(splitter.split(folds, folds["target"], folds["group"])):
        folds.iloc[val, folds.columns.get_loc("fold")] = k
    return folds[FOLD_COLUMNS]


def read_folds(path):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: fold file not found (run `python src/make_folds.py --dataset {path.stem}` first)")
    folds = pd.read_csv(path, dtype={"image_id": str, "group": str})
    folds.attrs["source"] = str(path)
    missing = [c for c in FOLD_COLUMNS if c not in folds.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)}")
    return folds
