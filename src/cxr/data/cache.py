"""Decode once: every image of a data set is read, resized and preprocessed once into a
uint8 memmap (`cache/<dataset>/<key>/images.npy`) that every epoch and fold reads from.

The key holds the size, the resize mode and the preprocessing, so each setting has its
own cache; `index.csv` beside it records each source file's size and modification time
(rows whose source changed are decoded again) and the original image sizes (to map
coordinates back). Only the row being read is in memory: the cache of 10,000 images at
512 px is 2.6 GB on disk and a batch in RAM."""
import functools
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from filelock import FileLock, Timeout
from tqdm.auto import tqdm

from cxr.artifacts import atomic_path, write_csv
from cxr.data.images import check_complete, file_orientation, image_size, orient, read_image
from cxr.models.kinds import OBJECT_KINDS
from cxr.errors import UserError

RESIZE_MODES = ("squash", "letterbox")
# Part of every cache's name: raised when decoding changes what the same file gives (v2: EXIF
# orientation, deep images over their range, area only when shrinking), so no cache of before is read.
DECODER = "_v2"
# Measured on the demo (resnet18 at 96 px, fold 0): linear 0.991 validation AUC, area averaging 0.849 -
# averaging lowers the contrast of objects a few pixels wide. Linear does not anti-alias, though: a wire
# shrunk 6x keeps full contrast, half or none by its sub-pixel phase; area keeps the same share at
# every phase (tests/test_cache.py). Area is the choice for large downscales of full-size films.
# On the full-size proxy (2,400 px films shrunk 4.7x to 512 px, three folds) the map model scored OOF FROC
# 0.926 with area against 0.902 with linear (dev 0.948 against 0.944): `auto` (the default) is area for a
# map model's images shrunk 2x or more (area2x), linear otherwise and for classifiers.
INTERPOLATIONS = {"linear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA, "area2x": cv2.INTER_AREA}
AREA_FROM = 2.0  # area2x: the shrink from which area averaging is used


@dataclass(frozen=True)
class ImageSpec:
    """How an image becomes a network input: square `size`, resize mode and interpolation,
    optional CLAHE and blur."""

    size: int
    mode: str = "squash"
    clahe: bool = False
    blur: float = 0.0
    interpolation: str = "linear"

    @classmethod
    def of(cls, settings):
        """The spec a run's settings (a TrainConfig, or its saved config.json as a dict) name:
        one place, so training and inference preprocess alike."""
        get = settings.get if isinstance(settings, dict) else lambda name, default=None: getattr(settings, name, default)
        interpolation = get("interpolation")
        if interpolation == "auto":
            interpolation = "area2x" if get("kind", "classifier") in OBJECT_KINDS else "linear"
        return cls(get("img_size"), get("resize"), get("clahe"), get("blur"), interpolation)

    @property
    def key(self):
        return (f"{self.size}_{self.mode}_{self.interpolation}" + ("_clahe" if self.clahe else "")
                + (f"_blur{self.blur:g}" if self.blur else "") + DECODER)


# OpenCV decodes a JPEG at 1/2, 1/4 or 1/8 scale for about that share of the time.
JPEG_REDUCTIONS = ((8, cv2.IMREAD_REDUCED_GRAYSCALE_8), (4, cv2.IMREAD_REDUCED_GRAYSCALE_4),
                   (2, cv2.IMREAD_REDUCED_GRAYSCALE_2), (1, cv2.IMREAD_GRAYSCALE))


def decode_gray(path, at_least=None):
    """Grayscale uint8 of the whole image (a JPEG must end with its end marker). With `at_least`,
    a JPEG may be decoded at reduced scale, its short side still at least that many pixels
    (a thumbnail for hashing, in the same 8-bit mapping as the cache)."""
    if Path(path).suffix.lower() in (".jpg", ".jpeg"):
        flag = cv2.IMREAD_GRAYSCALE
        if at_least:  # image_size also checks the file is whole: OpenCV would decode a truncated one half grey
            short_side = min(image_size(path))
            flag = next(f for factor, f in JPEG_REDUCTIONS if short_side // factor >= at_least or factor == 1)
        else:
            check_complete(path)
        image = cv2.imread(str(path), flag | cv2.IMREAD_IGNORE_ORIENTATION)
        if image is None:
            raise UserError(f"image {path} cannot be decoded")
        return orient(image, file_orientation(path))  # the same turn as image_size's and read_image's
    return cv2.cvtColor(read_image(path), cv2.COLOR_RGB2GRAY)


def resize(gray, size, mode, interpolation="linear"):
    """Squash to size x size, or letterbox: keep the aspect, scale the long side to size, pad with black."""
    if interpolation not in INTERPOLATIONS:
        raise UserError(f"--interpolation {interpolation}: expected one of {', '.join(INTERPOLATIONS)}")
    if mode not in RESIZE_MODES:
        raise UserError(f"--resize {mode}: expected one of {', '.join(RESIZE_MODES)}")
    height, width = gray.shape
    left, top, new_w, new_h = placement(width, height, size, mode)
    # area averages each output pixel's whole footprint when shrinking (anti-aliased: a wire keeps the
    # same contrast at every sub-pixel phase); enlarging, where it would copy pixels, it interpolates
    shrink = max(width / new_w, height / new_h)
    flag = INTERPOLATIONS[interpolation] if shrink > 1 else cv2.INTER_LINEAR
    if interpolation == "area2x" and shrink < AREA_FROM:
        flag = cv2.INTER_LINEAR
    if mode == "squash":
        return cv2.resize(gray, (size, size), interpolation=flag)
    canvas = np.zeros((size, size), np.uint8)
    canvas[top:top + new_h, left:left + new_w] = cv2.resize(gray, (new_w, new_h), interpolation=flag)
    return canvas


def placement(width, height, size, mode):
    """(left, top, width, height) of a width x height image inside the size x size network input."""
    if mode == "squash":
        return 0, 0, size, size
    scale = size / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    return (size - new_w) // 2, (size - new_h) // 2, new_w, new_h


def map_to_original(heatmap, width, height, mode):
    """A (size, size) map over the network input -> (height, width) over the original image."""
    left, top, new_w, new_h = placement(width, height, heatmap.shape[0], mode)
    return cv2.resize(np.ascontiguousarray(heatmap[top:top + new_h, left:left + new_w], dtype=np.float32),
                      (width, height), interpolation=cv2.INTER_LINEAR)


def to_original(x, y, width, height, size, mode):
    """Network-input pixel coordinates -> the original image's (pixel centres, as cv2.resize maps them)."""
    left, top, new_w, new_h = placement(width, height, size, mode)
    return ((np.asarray(x, dtype=float) - left + 0.5) * width / new_w - 0.5,
            (np.asarray(y, dtype=float) - top + 0.5) * height / new_h - 0.5)


def prepare_image(path, spec):
    """The network-size grayscale image of one file: decode, resize, CLAHE, blur."""
    return preprocess(decode_gray(path), spec)


def preprocess(gray, spec):
    """A decoded grayscale image at network size: resize, CLAHE, blur."""
    image = resize(gray, spec.size, spec.mode, spec.interpolation)
    if spec.clahe:
        image = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(image)
    if spec.blur:
        image = cv2.GaussianBlur(image, (0, 0), spec.blur)
    return image


def source_stamp(path):
    stat = Path(path).stat()
    return stat.st_size, stat.st_mtime_ns


def uncached_loader(root, spec):
    """The same images as a cache holds, decoded from the source file on every call."""
    return functools.partial(_load_uncached, Path(root), spec)


def _load_uncached(root, spec, image_id):
    return prepare_image(root / image_id, spec)


class ImageCache:
    """Read-only view of a built cache: `cache[image_id]` -> (size, size) uint8."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.index = pd.read_csv(self.folder / "index.csv", dtype={"image_id": str})
        self.images = np.load(self.folder / "images.npy", mmap_mode="r")
        self.row_of = {image_id: row for row, image_id in enumerate(self.index["image_id"])}

    def __getitem__(self, image_id):
        return np.asarray(self.images[self.row_of[image_id]])

    def original_size(self, image_id):
        row = self.index.iloc[self.row_of[image_id]]
        return int(row["width"]), int(row["height"])


def build_cache(image_ids, root, cache_root, spec, progress=True):
    """Make sure `cache_root/<spec.key>/` holds every image of `image_ids`, current with its
    source file; decode only what is missing or changed. Returns an ImageCache.

    Concurrent jobs (GPUS="0 1", a Slurm array) take turns through a file lock beside the
    folder: the check, the build and the opening of the cache happen under it, so no job
    pairs one build's index with another's images."""
    folder = Path(cache_root) / spec.key
    folder.parent.mkdir(parents=True, exist_ok=True)
    with cache_lock(folder):
        return _build_cache(folder, image_ids, root, spec, progress)


@contextmanager
def cache_lock(folder):
    lock = FileLock(f"{folder}.lock")
    try:
        lock.acquire(timeout=1)
    except Timeout:
        print(f"waiting for another job building {folder} ...", flush=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _build_cache(folder, image_ids, root, spec, progress):
    image_ids = list(dict.fromkeys(image_ids))
    paths = [Path(root) / i for i in image_ids]
    stamps = [source_stamp(p) for p in paths]
    old = ImageCache(folder) if (folder / "index.csv").is_file() and (folder / "images.npy").is_file() else None
    reusable = {}
    if old is not None:
        for row, (image_id, size, mtime) in enumerate(zip(old.index["image_id"], old.index["bytes"], old.index["mtime_ns"])):
            reusable[image_id] = (row, (int(size), int(mtime)))
    fresh = [i for i, (image_id, stamp) in enumerate(zip(image_ids, stamps))
             if reusable.get(image_id, (None, None))[1] != stamp]
    if old is not None and not fresh:  # every image present and current (in any order, extras kept)
        return old
    folder.mkdir(parents=True, exist_ok=True)
    sizes = [old.original_size(i) if old is not None and i in reusable else None for i in image_ids]
    with atomic_path(folder / "images.npy") as tmp:
        images = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(image_ids), spec.size, spec.size))
        fresh_set = set(fresh)
        for row, image_id in enumerate(image_ids):
            if row not in fresh_set:
                images[row] = old.images[reusable[image_id][0]]
        started = time.time()
        for row in tqdm(fresh, desc=f"cache {spec.key}", leave=False, **({} if progress else {"disable": True})):
            images[row] = prepare_image(paths[row], spec)
            sizes[row] = image_size(paths[row])
        if progress and fresh:  # the cost of big films is here, once per size and preprocessing
            seconds = time.time() - started
            print(f"cache {spec.key}: {len(fresh)} image(s) decoded in {seconds:.0f} s ({seconds / len(fresh):.3f} s each)",
                  flush=True)
        images.flush()
        del images
        (folder / "index.csv").unlink(missing_ok=True)  # a crash before the new index is written means a full rebuild
    write_csv(folder / "index.csv", pd.DataFrame({
        "image_id": image_ids, "bytes": [s[0] for s in stamps], "mtime_ns": [s[1] for s in stamps],
        "width": [s[0] for s in sizes], "height": [s[1] for s in sizes]}))
    return ImageCache(folder)
