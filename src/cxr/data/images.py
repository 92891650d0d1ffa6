"""Images on disk: every row's image checked before training (readable, objects on it),
its size read from the header, and the pixels read as 8-bit grayscale (PNG, JPEG, DICOM, ...).

Data set tables (one row per image: image_id, target, ...) come from layouts.py."""
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from cxr.data.ids import is_dicom
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
    lines = table.attrs.get("lines") or range(2, len(table) + 2)  # a merged table keeps its rows' file lines
    for row, image_id in enumerate(table["image_id"]):
        problem, size = (None, (0, 0)) if row in already else image_problem(table, row, Path(root))
        if problem:
            problems.report(source, row, f"{source} line {lines[row]}: {problem}")
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
        points = shape.points  # one crossing the border is clipped to the image (targets.py); one wholly outside is an error
        if (points[:, 0] <= 0).all() or (points[:, 0] >= width).all() or (points[:, 1] <= 0).all() or \
                (points[:, 1] >= height).all():  # nothing of it on the image (clipped, it would have no area)
            return (f"{SHAPE_NAMES[shape.kind]} '{format_annotation([shape])}' lies outside the "
                    f"{width}x{height} image {image_id}"), (width, height)
    return None, (width, height)


# ---------------------------------------------------------------- images
# EXIF orientation (tag 274) -> how to turn the stored pixels into the image a viewer shows
ORIENTATIONS = {2: ("flip",), 3: ("rot180",), 4: ("flipud",), 5: ("transpose",), 6: ("rot90cw",),
                7: ("transverse",), 8: ("rot90ccw",)}
_warned = set()  # the kinds of tolerated oddity already reported (once per process)


def image_size(path):
    """(width, height) of the image as a viewer shows it (EXIF orientation applied), from the
    file's header, and its last bytes (see check_complete); a UserError naming the file when it
    cannot be read."""
    if is_dicom(path):
        from cxr.data.dicom import dicom_size

        return read_dicom_file(dicom_size, path)
    from PIL import Image

    try:
        with Image.open(path) as im:
            size, orientation = im.size, exif_orientation(im)
    except (OSError, Image.DecompressionBombError) as err:  # OSError: PIL's UnidentifiedImageError too
        raise UserError(f"image {path} cannot be read ({err})") from None
    check_complete(path)
    return size[::-1] if orientation >= 5 else size  # 5-8 turn the image by a quarter


def exif_orientation(image):
    """The EXIF orientation (1-8; 1 = as stored) of an open PIL image; 1 without EXIF or when it is damaged."""
    try:
        value = image.getexif().get(274, 1)
    except Exception:  # noqa: BLE001 (a damaged EXIF block must not make the pixels unreadable)
        return 1
    return value if value in ORIENTATIONS else 1


def file_orientation(path):
    from PIL import Image

    try:
        with Image.open(path) as im:
            return exif_orientation(im)
    except (OSError, Image.DecompressionBombError):
        return 1


def orient(pixels, orientation):
    """The stored pixels (H, W[, C]) turned as EXIF `orientation` says a viewer shows them."""
    steps = {"flip": lambda a: a[:, ::-1], "rot180": lambda a: a[::-1, ::-1], "flipud": lambda a: a[::-1],
             "transpose": lambda a: a.swapaxes(0, 1), "rot90cw": lambda a: np.rot90(a, -1),
             "transverse": lambda a: np.rot90(a, 2).swapaxes(0, 1), "rot90ccw": lambda a: np.rot90(a, 1)}
    for step in ORIENTATIONS.get(orientation, ()):
        pixels = steps[step](pixels)
    return np.ascontiguousarray(pixels)


def check_complete(path):
    """A UserError unless a JPEG or PNG file (told by its first bytes, whatever its name) holds its
    end marker in its last kilobyte: OpenCV decodes a truncated JPEG padded with grey, without a
    word. Bytes after the end marker (a newline an export tool appended, padding) are tolerated,
    with a warning the first time. Reads 1 KB at most."""
    try:
        with open(path, "rb") as file:
            head = file.read(8)
            file.seek(max(0, file.seek(0, os.SEEK_END) - 1024))
            tail = file.read()
    except OSError as err:
        raise UserError(f"image {path} cannot be read ({err.strerror})") from None
    for name, start, end in (("JPEG", b"\xff\xd8", b"\xff\xd9"), ("PNG", b"\x89PNG", b"IEND\xaeB`\x82")):
        if not head.startswith(start) or tail.endswith(end):
            continue
        extra = len(tail) - tail.rfind(end) - len(end) if end in tail else -1
        if extra < 0:
            raise UserError(f"image {path} is truncated (no {name} end marker)")
        if tail.rstrip(b"\0").endswith(end):
            continue  # zero padding: as common as harmless
        if name not in _warned:
            _warned.add(name)
            print(f"warning: image {path} has {extra} byte(s) after its {name} end marker; read as it is "
                  f"(further such files are not named)", file=sys.stderr)


def read_dicom_file(read, path):
    """read(path) of a DICOM file. pydicom raises errors of many types for a damaged file (cxr/data/dicom.py
    catches the commonest); each becomes a UserError naming the file."""
    try:
        return read(path)
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001
        raise UserError(f"image {path} is not a readable DICOM file ({type(err).__name__}: {err})") from None


def to_8_bit(pixels):
    """uint8 pixels of an image stored with more bits (a 12-bit radiograph in a 16-bit PNG or
    TIFF, a float TIFF): scaled over the range its values span, as cxr/data/dicom.py does a DICOM
    without a window. Dividing by 257 would leave a 12-bit image 17 grey levels."""
    if pixels.dtype == np.uint8:
        return pixels
    values = pixels.astype(np.float64)
    finite = np.isfinite(values)
    low, high = (values[finite].min(), values[finite].max()) if finite.any() else (0.0, 0.0)
    scaled = np.where(finite, (values - low) / (high - low), 0.0) if high > low else np.zeros_like(values)
    return (scaled * 255).round().astype(np.uint8)


def read_image(path):
    """Read an image file as uint8 RGB (H, W, 3) as a viewer shows it (EXIF orientation applied);
    grayscale and 12- or 16-bit images are converted. A UserError names a file that cannot be
    decoded, or is truncated."""
    if is_dicom(path):
        from cxr.data.dicom import read_dicom

        return cv2.cvtColor(read_dicom_file(read_dicom, path), cv2.COLOR_GRAY2RGB)
    check_complete(path)
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # stored pixels: orientation applied below, as image_size
    if image is None:
        raise UserError(f"image {path} cannot be decoded")
    if image.ndim == 3 and image.shape[2] == 4:  # alpha is not intensity: dropped before the range is taken
        image = image[..., :3]
    image = orient(to_8_bit(image), file_orientation(path))
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
