"""Cross-validation folds: stratified by target, grouped (a group, such as a set of duplicate
images, shares one fold), cut once with a seed (make_folds.py writes folds/<dataset>.csv), read back checked."""
from pathlib import Path

import numpy as np
import pandas as pd

from cxr.data.ids import is_dicom
from cxr.data.labels import CLASS_COLUMN, target_columns
from cxr.data.studies import STUDY_COLUMN
from cxr.errors import UserError


FOLD_COLUMNS = ["image_id", "group", "fold"]  # and the target column(s) after image_id (and a multi-class class_name)


def strata(targets, n_folds):
    """One stratum per row: the binary target, or for several labels the combination of
    labels (label powerset), combinations rarer than `n_folds` pooled into one stratum (into
    the commonest one when even the pool is too small to stratify)."""
    certain = np.nan_to_num(targets.to_numpy(dtype=float), nan=0.0) >= 0.5  # an uncertain label: its nearer side
    combos = pd.Series(["".join(map(str, row)) for row in certain.astype(int)])
    rare = combos.map(combos.value_counts()) < n_folds
    pool = "rare" if rare.sum() >= n_folds else combos.value_counts().index[0]
    return combos.where(~rare, pool).to_numpy()


def join_patients(table, root=None):
    """(the table with its `group` column joined with its patients, a sentence saying what grouped
    the rows). Rows that share a duplicate group (dedup) or a patient (the `patient` column a table
    gets from its Patient ID, StudyInstanceUID, ... column; for DICOM files without one, their
    PatientID tags, read from `root` when given) or a study (the `study` column: studies.py) end in
    one group, so no patient's or study's images, nor a copy of one, sit on both sides of a fold."""
    if "patient" not in table and root is not None and len(table) and \
            table["image_id"].map(is_dicom).all():
        from cxr.data.dicom import dicom_patients

        patients = dicom_patients(root, table["image_id"])
        if patients is not None:
            attrs = {**table.attrs, "grouped_by": "the DICOM PatientID tag"}
            table = table.assign(patient=patients)
            table.attrs = attrs
    groups = table["group"] if "group" in table else table["image_id"]
    said = [f"duplicate images ({int((groups.value_counts() > 1).sum())} groups of 2 or more)"
            if "group" in table else "nothing (each image its own group)"]
    keys = [groups] + [table[c] for c in ("patient", STUDY_COLUMN) if c in table]
    if len(keys) == 1:
        return table.assign(group=groups.to_numpy()), "folds grouped by " + said[0]
    parent = list(range(len(table)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i
    for key in keys:  # rows sharing a value of any key join one group
        first = {}
        for row, value in enumerate(key):
            parent[root(row)] = root(first.setdefault(value, row))
    ids = table["image_id"].to_numpy()
    if "patient" in table:
        patients = table["patient"].value_counts()
        source = table.attrs.get("grouped_by", "patient")
        source = source if source.startswith("the ") else f"column '{source}'"
        said.append(f"patients ({source}: {int((patients > 1).sum())} of {len(patients)} with 2 or more images)")
    if STUDY_COLUMN in table:
        studies = table[STUDY_COLUMN].value_counts()
        said.append(f"studies ({table.attrs.get('studies', 'study')}: {int((studies > 1).sum())} of {len(studies)} "
                    f"with 2 or more images)")
    return table.assign(group=[ids[root(row)] for row in range(len(table))]), "folds grouped by " + " and ".join(said)


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
    # a multi-class table keeps its marker, a table of studies each image's study (blend.py scores studies)
    columns = [*columns, *[c for c in (CLASS_COLUMN, STUDY_COLUMN) if c in table]]
    folds = table[["image_id", *columns]].copy()
    folds["group"] = table["group"] if "group" in table else table["image_id"]
    folds["fold"] = -1
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, val) in enumerate(splitter.split(folds, strata(folds[target_columns(table)], n_folds), folds["group"])):
        folds.iloc[val, folds.columns.get_loc("fold")] = k
    return folds[["image_id", *columns, "group", "fold"]]


def read_folds(path):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: fold file not found (run `python src/make_folds.py --dataset {path.stem}` first)")
    folds = pd.read_csv(path, dtype={"image_id": str, "group": str, CLASS_COLUMN: str, STUDY_COLUMN: str})
    if STUDY_COLUMN in folds:  # study ids as written ('NA', 'null' are ids, not missing values)
        folds[STUDY_COLUMN] = pd.read_csv(path, usecols=[STUDY_COLUMN], dtype=str, keep_default_na=False)[STUDY_COLUMN]
    folds.attrs["source"] = str(path)
    missing = [c for c in FOLD_COLUMNS if c not in folds.columns] + ([] if target_columns(folds) else ["target"])
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)}")
    return folds


