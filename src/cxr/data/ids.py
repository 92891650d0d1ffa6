"""Image ids as competitions ship them: the id column found among the names they use
(`patientId`, `ImageId`, `Image Index`, ...), and ids matched to the files present whether or
not they carry an extension and wherever below the data set folder the file sits (SIIM-ACR's
`study/series/<ImageId>.dcm` trees, Kaggle's `train/<id>.png` named `<id>` in the table)."""
import os
import re
from pathlib import Path

from cxr.errors import STRICT, UserError

DICOM_SUFFIXES = {".dcm", ".dicom"}  # VinBigData ships .dicom
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", *DICOM_SUFFIXES}
# In order of preference; matched ignoring case, spaces and underscores ("Image Index" = "image_index")
ID_COLUMNS = ("image_name", "image_path", "image_id", "id", "image", "filename", "file_name", "file", "path",
              "patientId", "ImageId", "Image Index", "SOPInstanceUID", "StudyInstanceUID", "dicom_id", "name")


def plain(name):
    return re.sub(r"[\s_]", "", str(name)).lower()


def id_column(raw, path, requested=""):
    """The id column of a table: `requested` (--id-column) when given, else the first of
    ID_COLUMNS it has (ignoring case, spaces and underscores); a UserError naming the file."""
    if requested:
        if requested not in raw.columns:
            raise UserError(f"{path}: no id column '{requested}' (--id-column; found {', '.join(map(str, raw.columns))})")
        return requested
    by_plain = {plain(c): c for c in reversed(raw.columns)}  # the first of equal plain names wins
    found = next((by_plain[plain(c)] for c in ID_COLUMNS if plain(c) in by_plain), None)
    if found is None:
        raise UserError(f"{path}: no image id column (expected one of {', '.join(ID_COLUMNS)}, or name it with "
                        f"--id-column; found {', '.join(map(str, raw.columns))})")
    return found


def image_suffix(name):
    suffix = Path(name).suffix.lower()
    return suffix if suffix in IMAGE_SUFFIXES else ""


class FileIndex:
    """The image files below a data set folder, by file name and by file name without its image
    suffix (built on first use: a table whose ids all name their files never walks the folder)."""

    def __init__(self, root):
        self.root, self._by_name = Path(root), None

    def matches(self, name):
        """The ids (paths relative to the root) of the files `name`'s last part names, with or without its suffix."""
        if self._by_name is None:
            self._by_name = {}
            for folder, _, files in os.walk(self.root, followlinks=True):
                relative = Path(folder).relative_to(self.root)
                for file in files:
                    if image_suffix(file):
                        image_id = (relative / file).as_posix()
                        self._by_name.setdefault(file, []).append(image_id)
                        self._by_name.setdefault(file[: -len(Path(file).suffix)], []).append(image_id)
        return sorted(set(self._by_name.get(Path(name).name, [])))


def resolve_ids(ids, root, path, folder="", problems=STRICT, first_line=2, repeats=False):
    """Each id that names no file under `root` matched to the one image file of that name (with any
    image suffix, or none) anywhere below it; several matches prefer the one in `folder` (the
    side's own, e.g. train/), else the row goes to `problems` with them named. An id with no match
    stays as it is (the image check reports it missing, with its file and line). Two rows naming one
    file are refused unless `repeats` (a table with a row per box, merged later)."""
    root, index, resolved, seen, given = Path(root), FileIndex(root), [], set(), set(ids)
    for row, image_id in enumerate(ids):
        if image_id.startswith("<bad row") or named_file(root / image_id) or named_folder(root / image_id):
            resolved.append(image_id)
            continue
        found = index.matches(image_id)
        own = [f for f in found if folder and f.startswith(f"{folder}/")]
        match = (own or found or [image_id])[0]
        problem = None
        if len(found) > 1 and len(own) != 1:
            problem = f"image {image_id} is ambiguous: {', '.join(found[:4])}{' ...' if len(found) > 4 else ''} (name the file)"
        elif not repeats and (match in seen or (match != image_id and match in given)):
            problem = f"image {image_id} is {match}, listed already"
        if problem:
            match = bad_row(problems, path, row, first_line, problem)
        seen.add(match)
        resolved.append(match)
    return resolved


def bad_row(problems, path, row, first_line, problem):
    """Report row `row` of table `path` to `problems`; the placeholder id the row keeps until it is dropped."""
    problems.report(path, row, f"{path} line {row + first_line}: {problem}")
    return f"<bad row {row + first_line}>"


def named_file(path):
    """Whether `path` is a file; a name the file system refuses (too long) counts as one, so the
    image check reports it with its own reason."""
    try:
        return path.is_file()
    except OSError:
        return True


def named_folder(path):
    """Whether `path` is a folder (a study's images: data/studies.py); a name the file system
    refuses counts as none."""
    try:
        return path.is_dir()
    except OSError:
        return False


def is_dicom(name):
    return Path(name).suffix.lower() in DICOM_SUFFIXES
