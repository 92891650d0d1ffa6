"""Images on disk: every row's image checked before training (readable, objects inside it),
its size read from the header, and the pixels read as 8-bit grayscale (PNG, JPEG, DICOM, ...).

Data set tables (one row per image: image_id, target, ...) come from layouts.py."""
import os
from pathlib import Path

import cv2
import numpy as np

from cxr.errors import STRICT, UserError
from cxr.data.annotations import SHAPE_NAMES, format_annotation, parse_annotation


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
        from cxr.data.dicom import dicom_size

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
    """read(path) of a DICOM file. pydicom raises errors of many types for a damaged file (cxr/data/dicom.py
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
        from cxr.data.dicom import read_dicom

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
