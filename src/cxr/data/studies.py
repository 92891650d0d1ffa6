"""Studies: several images scored as one. A table row whose id names a folder (SIIM-COVID's
`test/<StudyInstanceUID>/<SeriesInstanceUID>/<image>.dcm`: the study is the folder) stands for
every image below it; each image becomes a row that carries the row's labels and a `study`
column, the id as the table wrote it, so the folds keep a study's images together and blend.py
writes one prediction per study (the mean or max of its images, chosen on OOF:
cxr/blending/studies.py). A table of one row per image with a study column (StudyInstanceUID,
study_id) names the studies the same way."""
import os
from pathlib import Path

from cxr.data.ids import image_suffix, named_folder, plain

STUDY_COLUMN = "study"  # the study each image belongs to, as the table wrote it (tables, fold files)
STUDY_COLUMNS = ("StudyInstanceUID", "study_id", "study")  # a table's own study column; matched like ids.ID_COLUMNS


def images_below(folder, root):
    """The image files below `folder` (any depth, links followed), as ids relative to `root`, sorted."""
    found = []
    for parent, _, files in os.walk(folder, followlinks=True):
        found += [(Path(parent) / f).relative_to(root).as_posix() for f in files if image_suffix(f)]
    return sorted(found)


def expand_folders(ids, root):
    """For each id, the image ids it stands for: itself, or every image below the folder it names
    (an empty list for a folder without images: the caller names the row)."""
    return [images_below(Path(root) / i, root) if named_folder(Path(root) / i) else [i] for i in ids]


def study_column(raw, id_col):
    """A table's own study column (other than its id column), or None."""
    by_plain = {plain(c): c for c in reversed(raw.columns) if c != id_col}
    return next((by_plain[plain(c)] for c in STUDY_COLUMNS if plain(c) in by_plain), None)
