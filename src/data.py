"""Object-CXR annotations, image checks and reading, folds, and the torch Dataset.

Data set tables (one row per image: image_id, target, ...) come from readers.py."""
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from errors import STRICT, UserError

SHAPE_NAMES = {0: "rectangle", 1: "ellipse", 2: "polygon"}
LARGEST_COORDINATE = 10**6  # far beyond any radiograph, and exact as a float (10**400 does not even convert)


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

    def contains(self, x, y):
        """Whether the point (x, y) hits this object, as the challenge's scorer decides: a
        rectangle inclusively, an ellipse inscribed in its box, a polygon by skimage's
        points_in_poly. Scalars give a truth value; arrays (of one shape) an array of them."""
        if self.kind == 2:
            return point_in_polygon(self.points, x, y)
        x1, y1, x2, y2 = self.coords
        inside = (x1 <= x) & (x <= x2) & (y1 <= y) & (y <= y2)  # `&`, not `and`: arrays too
        if self.kind == 1 and x1 != x2 and y1 != y2:  # a degenerate ellipse is its box's segment
            cx, cy, ax, ay = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
            inside = inside & (((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 <= 1)
        return inside


def point_in_polygon(vertices, x, y):
    """Whether (x, y) (scalars, or arrays of one shape) lies in the polygon of (n, 2) `vertices`,
    by the scorer's own test, skimage.measure.points_in_poly: even-odd, where a point on the
    boundary may count either way (a hand-written ray cast disagrees there)."""
    from skimage.measure import points_in_poly

    x, y = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    points = np.stack([x.ravel(), y.ravel()], axis=1)
    inside = points_in_poly(points, np.asarray(vertices, dtype=float)).reshape(x.shape)
    return inside if inside.ndim else bool(inside)


def polygon_area(vertices):
    """The shoelace area of a polygon's (n, 2) vertices."""
    x, y = vertices[:, 0], vertices[:, 1]
    return 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))


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
        if any(abs(v) > LARGEST_COORDINATE for v in coords):
            raise ValueError(f"object '{part.strip()}' has a coordinate beyond {LARGEST_COORDINATE} pixels")
        if kind not in SHAPE_NAMES:
            raise ValueError(f"object '{part.strip()}' has unknown type {kind} (0, 1 or 2 expected)")
        if kind in (0, 1) and len(coords) != 4:
            raise ValueError(f"{SHAPE_NAMES[kind]} '{part.strip()}' needs 4 coordinates, has {len(coords)}")
        if kind == 2 and (len(coords) < 6 or len(coords) % 2):
            raise ValueError(f"polygon '{part.strip()}' needs an even number (>= 6) of coordinates, has {len(coords)}")
        if kind in (0, 1) and (coords[2] < coords[0] or coords[3] < coords[1]):
            raise ValueError(f"{SHAPE_NAMES[kind]} '{part.strip()}' has x2 < x1 or y2 < y1")
        if kind in (0, 1) and (coords[2] == coords[0] or coords[3] == coords[1]):
            raise ValueError(f"{SHAPE_NAMES[kind]} '{part.strip()}' has zero area (x1 = x2 or y1 = y2)")
        if kind == 2 and polygon_area(np.asarray(coords, dtype=float).reshape(-1, 2)) == 0:
            raise ValueError(f"polygon '{part.strip()}' has zero area (its points lie on one line)")
        shapes.append(Shape(kind, coords))
    return shapes


def format_annotation(shapes):
    """Inverse of parse_annotation."""
    return ";".join(" ".join(str(v) for v in (s.kind, *s.coords)) for s in shapes)


def check_images(table, root, problems=STRICT):
    """The (width, height) of every image, read from its header only (cheap), so a run fails
    before training, not in epoch 3. A missing or unreadable image, or an annotated object
    outside its image, goes to `problems` (a UserError naming file and line by default);
    rows already reported, and rows reported here, get size (0, 0)."""
    source = table.attrs.get("source", "table")
    already = set(problems.rows_of(source))
    sizes = []
    for row, image_id in enumerate(table["image_id"]):
        problem, size = (None, (0, 0)) if row in already else image_problem(table, row, Path(root))
        if problem:
            problems.report(source, row, f"{source} line {row + 2}: {problem}")
        sizes.append(size if not problem else (0, 0))
    return sizes


def image_problem(table, row, root):
    """(what is wrong with row `row`'s image or its objects, or None; (width, height))."""
    image_id = table["image_id"].iloc[row]
    path = root / image_id
    try:
        if not path.is_file():
            return f"image {path} not found", (0, 0)
        width, height = image_size(path)
    except UserError as err:
        return str(err), (0, 0)
    except OSError as err:  # a name the file system refuses, e.g. too long
        return f"image {path} cannot be opened ({err.strerror})", (0, 0)
    for shape in parse_annotation(table["annotation"].iloc[row]) if "annotation" in table else []:
        points = shape.points
        if (points < 0).any() or (points[:, 0] > width).any() or (points[:, 1] > height).any():
            return (f"{SHAPE_NAMES[shape.kind]} '{format_annotation([shape])}' lies outside the "
                    f"{width}x{height} image {image_id}"), (width, height)
    return None, (width, height)


# ---------------------------------------------------------------- images
def image_size(path):
    """(width, height) from the file's header, and its last bytes (see check_complete); a
    UserError naming the file when it cannot be read."""
    if Path(path).suffix.lower() == ".dcm":
        from dicom import dicom_size

        return read_dicom_file(dicom_size, path)
    from PIL import Image

    try:
        with Image.open(path) as im:
            size = im.size
    except (OSError, Image.DecompressionBombError) as err:  # OSError: PIL's UnidentifiedImageError too
        raise UserError(f"image {path} cannot be read ({err})") from None
    check_complete(path)
    return size


def check_complete(path):
    """A UserError unless a JPEG or PNG file (told by its first bytes, whatever its name) ends with
    its end marker (trailing zero bytes aside): OpenCV decodes a truncated JPEG padded with grey,
    without a word. Reads 1 KB at most."""
    try:
        with open(path, "rb") as file:
            head = file.read(8)
            file.seek(max(0, file.seek(0, os.SEEK_END) - 1024))
            tail = file.read().rstrip(b"\0")
    except OSError as err:
        raise UserError(f"image {path} cannot be read ({err.strerror})") from None
    for name, start, end in (("JPEG", b"\xff\xd8", b"\xff\xd9"), ("PNG", b"\x89PNG", b"IEND\xaeB`\x82")):
        if head.startswith(start) and not tail.endswith(end):
            raise UserError(f"image {path} is truncated (no {name} end marker)")


def read_dicom_file(read, path):
    """read(path) of a DICOM file. pydicom raises errors of many types for a damaged file (dicom.py
    catches the commonest); each becomes a UserError naming the file."""
    try:
        return read(path)
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001
        raise UserError(f"image {path} is not a readable DICOM file ({type(err).__name__}: {err})") from None


def read_image(path):
    """Read an image file as uint8 RGB (H, W, 3); grayscale and 16-bit images are converted. A
    UserError names a file that cannot be decoded, or is truncated."""
    if Path(path).suffix.lower() == ".dcm":
        from dicom import read_dicom

        return cv2.cvtColor(read_dicom_file(read_dicom, path), cv2.COLOR_GRAY2RGB)
    check_complete(path)
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


# ---------------------------------------------------------------- targets
def target_columns(table):
    """A table's target column(s): ['target'] for a binary task, else its multi-label
    'target_<label>' columns (one binary column per label), in table order."""
    if "target" in table:
        return ["target"]
    return [c for c in table.columns if c.startswith("target_")]


def prediction_column(target_column):
    """The prediction column that goes with a target column: target -> prediction, target_x -> prediction_x."""
    return "prediction" + target_column[len("target"):]


def label_name(target_column):
    """The label a target column holds ('' for the binary target)."""
    return target_column[len("target_"):]


class EpochSeeded:
    """A sampler whose indices travel with the epoch's seed, as (index, seed) keys: loader workers
    (persistent ones too, whose copies of the data set never see a change made in the main
    process) then augment row i of an epoch from (seed, i) alone: the same images with any
    number of workers, and again on --resume. `set_seed` before each epoch."""

    def __init__(self, sampler, seed=0):
        self.sampler, self.seed = sampler, seed

    def set_seed(self, seed):
        self.seed = seed

    def __iter__(self):
        seed = self.seed
        return ((int(index), seed) for index in self.sampler)

    def __len__(self):
        return len(self.sampler)


def seeded_key(key, transform=None):
    """(row index, seed or None) of a data set key (an int, or EpochSeeded's pair); a pair reseeds
    `transform` (an albumentations pipeline) for that row first."""
    index, seed = key if isinstance(key, tuple) else (key, None)
    if seed is not None and hasattr(transform, "set_random_seed"):
        transform.set_random_seed((int(seed) * 1_000_003 + index) % 2**32)
    return index, seed


class ImageTable:
    """torch-style Dataset over a table: (image tensor, target vector) per row.

    `load(image_id)` gives the network-size grayscale uint8 image (from the cache, or decoded
    from its file); `transform` is an albumentations pipeline ending in ToTensorV2 (a (1, H, W)
    uint8 tensor: engine.to_device makes the network's input of it on the device). The target
    vector holds the row's `columns` (one per label); rows without targets (an unlabelled test
    set) give -1 in each."""

    def __init__(self, table, load, transform, columns=("target",)):
        self.image_ids = list(table["image_id"])
        columns = list(columns)
        present = all(c in table for c in columns)
        targets = (table[columns].to_numpy(dtype=np.float32) if present
                   else np.full((len(table), len(columns)), np.nan, dtype=np.float32))
        self.targets = np.where(np.isnan(targets), -1.0, targets).astype(np.float32)
        self.load = load
        self.transform = transform

    def __len__(self):
        return len(self.image_ids)

    def __getitem__(self, key):
        index, _ = seeded_key(key, self.transform)
        image = np.array(self.load(self.image_ids[index]))  # a writable copy: the cache is a read-only memmap
        return self.transform(image=image)["image"], self.targets[index]


# ---------------------------------------------------------------- folds
FOLD_COLUMNS = ["image_id", "group", "fold"]  # and the target column(s) after image_id


def strata(targets, n_folds):
    """One stratum per row: the binary target, or for several labels the combination of
    labels (label powerset), combinations rarer than `n_folds` pooled into one stratum (into
    the commonest one when even the pool is too small to stratify)."""
    combos = pd.Series(["".join(map(str, row)) for row in targets.to_numpy(dtype=int)])
    rare = combos.map(combos.value_counts()) < n_folds
    pool = "rare" if rare.sum() >= n_folds else combos.value_counts().index[0]
    return combos.where(~rare, pool).to_numpy()


def assign_folds(table, n_folds=5, seed=42):
    """One row per image: image_id, target(s), group, fold; stratified by the target (by the
    label combination for several labels), never splitting a group (each image is its own
    group until duplicates are grouped)."""
    from sklearn.model_selection import StratifiedGroupKFold

    columns = target_columns(table)
    for column in columns:
        counts = table[column].value_counts().reindex([0, 1], fill_value=0)
        if len(table) < n_folds or counts.min() < n_folds:
            raise UserError(f"{n_folds} folds need at least {n_folds} images of each class in '{column}'; "
                            f"the table has {counts.to_dict()}")
    folds = table[["image_id", *columns]].copy()
    folds["group"] = table["group"] if "group" in table else table["image_id"]
    folds["fold"] = -1
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, val) in enumerate(splitter.split(folds, strata(folds[columns], n_folds), folds["group"])):
        folds.iloc[val, folds.columns.get_loc("fold")] = k
    return folds[["image_id", *columns, "group", "fold"]]


def read_folds(path):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: fold file not found (run `python src/make_folds.py --dataset {path.stem}` first)")
    folds = pd.read_csv(path, dtype={"image_id": str, "group": str})
    folds.attrs["source"] = str(path)
    missing = [c for c in FOLD_COLUMNS if c not in folds.columns] + ([] if target_columns(folds) else ["target"])
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)}")
    return folds
