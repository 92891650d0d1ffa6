"""Read a data set folder, whatever its layout, into one table per side (train, test).

Every table has one row per image with
    image_id    the image's path relative to the data set folder (`train/00001.jpg`); the key
                of every fold, OOF and submission file
    target      1 / 0 (NaN on an unlabelled test side); a multi-label table has one target_<name>
                column per label instead, a multi-class table one-hot target_<class> columns and a
                class_name column (labels.task_of tells them apart; `attrs["task"]` says it in words)
    annotation  Object-CXR annotation string ('' = no object; Object-CXR layout only)
    study       the study an image belongs to, when the table has studies (a row naming a folder
                of images, or a StudyInstanceUID column; studies.py); absent otherwise
and `table.attrs["source"]` names the file it came from, for error messages.

Layouts (auto-detected, or forced with --layout):
    objectcxr    train.csv + dev.csv (image_name|image_path, annotation), train/ and dev/ folders;
                 the test side is dev.csv, or image_path.csv (a header-less list) when there is no dev.csv
    kaggle       train.csv (an id column, a label column) + train/ folder, test.csv (ids only; or only
                 sample_submission.csv; or neither: every image below test/) + test/ folder; ids are
                 matched to files (ids.py)
    imagefolder  one sub-folder per class: a multi-class task; --positive-classes names the positive
                 ones for a binary target instead; no test side
    rsna, vinbig, siim  the box and mask competitions as shipped (competitions.py): the objects as
                 annotations (boxes as rectangles, masks as polygons), the test ids from the sample submission
    medmnist     one MedMNIST .npz (train_images/labels, val_*, test_images[, test_labels]); it is
                 unpacked once into PNGs beside it (<name>_png/), read from then on like files;
                 train and val together form the cross-validated training side
"""
import os
from pathlib import Path

import numpy as np
import pandas as pd

from cxr.artifacts import skipped_rows_file, write_csv
from cxr.data.ids import IMAGE_SUFFIXES, bad_row, id_column, plain, resolve_ids
from cxr.data.images import check_images
from cxr.data.annotations import parse_annotation
from cxr.data.labels import CLASS_COLUMN, target_columns
from cxr.data.studies import STUDY_COLUMN, expand_folders, study_column
from cxr.data.competitions import READERS as COMPETITIONS, competition_layout
from cxr.errors import STRICT, RowProblems, UserError

LABEL_COLUMNS = ("label", "target", "labels")
BINARY_VALUES = ("0", "1", "0.0", "1.0")
UNCERTAIN_VALUES = ("-1", "-1.0")  # an uncertain label, as CheXpert writes it
LAYOUTS = ("auto", "objectcxr", "kaggle", "imagefolder", "medmnist", *COMPETITIONS)


def read_csv(path, header="infer"):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, header=0 if header == "infer" else None)
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not a readable CSV table ({str(err).strip().splitlines()[0]})") from None
    if raw.empty:
        raise UserError(f"{path}: the table has no rows")
    return raw


def as_image_ids(names, folder, path, first_line=2, problems=STRICT, inside=True, repeats=False):
    """Names relative to `folder` -> ids relative to the data set folder; empty and (unless
    `repeats`: rows merged later) repeated names, and (when `inside`) names that lead out of the
    data set folder, go to `problems` (their rows keep a placeholder id until they are dropped)."""
    ids, seen = [], set()
    for row, name in enumerate(names):
        name = str(name).strip()
        image_id = name if not folder or name.startswith(f"{folder}/") else f"{folder}/{name}"
        problem = None
        if not name:
            problem = "empty image name"
        elif image_id in seen and not repeats:
            problem = f"image {image_id} is listed twice"
        elif inside and leads_out(name, image_id):
            problem = f"image {name} lies outside the data set folder (ids are paths inside it)"
        if problem:
            image_id = bad_row(problems, path, row, first_line, problem)
        seen.add(image_id)
        ids.append(image_id)
    return ids


def leads_out(name, image_id):
    """Whether a table's image name would be read from outside the data set folder: an absolute
    path, or one climbing out with '..' (judged on the text alone, so a data set folder that is
    a symbolic link, or holds some, still works)."""
    return os.path.isabs(name) or os.path.normpath(image_id).split(os.sep)[0] == ".."


def framed(columns, path):
    table = pd.DataFrame(columns)
    table.attrs["source"] = str(path)
    return table


def read_objectcxr_table(csv_path, image_folder, problems=STRICT, requested_id="", requested_group=""):
    """One Object-CXR table (`train.csv`, `dev.csv`): target 1 where the annotation is not empty."""
    raw = read_csv(csv_path)
    id_col = id_column(raw, csv_path, requested_id)
    if "annotation" not in raw.columns:
        raise UserError(f"{csv_path}: no 'annotation' column (found {', '.join(raw.columns)})")
    ids = table_ids(raw[id_col], image_folder, csv_path, problems)
    targets = []
    for row, text in enumerate(raw["annotation"]):
        try:
            targets.append(int(len(parse_annotation(text)) > 0))
        except ValueError as err:
            problems.report(csv_path, row, f"{csv_path} line {row + 2} ({ids[row]}): malformed annotation: {err}")
            targets.append(-1)
    return with_groups(framed({"image_id": ids, "annotation": raw["annotation"], "target": targets}, csv_path), raw,
                       csv_path, id_col, requested_group)


def read_image_list(path, inside=False):
    """A header-less list of image paths (Object-CXR's image_path.csv), unlabelled. `inside`: the
    paths are a data set's ids and must stay inside its folder (submit.py's list, relative to
    the working directory, may point anywhere)."""
    raw = read_csv(path, header=None)
    ids = as_image_ids(raw[0], "", path, first_line=1, inside=inside)
    return framed({"image_id": ids, "target": np.nan}, path)


def label_columns(raw, path, requested, id_col=None, requested_group=""):
    """The label column(s): the requested one, else label/target, else (not the id column, nor the
    patient or study column) every column of 0/1 values (-1 and blanks allowed: uncertain labels)
    when there are several, else every all-numeric column."""
    if requested:
        if requested not in raw.columns:
            raise UserError(f"{path}: no label column '{requested}' (found {', '.join(raw.columns)})")
        return [requested]
    by_lower = {str(c).lower(): c for c in reversed(raw.columns)}  # RSNA's Target is a target
    named = [by_lower[c] for c in LABEL_COLUMNS if c in by_lower]
    if named:
        return named[:1]
    id_col = id_col or id_column(raw, path)
    group = group_column(raw, path, id_col, requested_group)
    candidates = [c for c in raw.columns if c not in (id_col, group)]
    flags = set(BINARY_VALUES) | set(UNCERTAIN_VALUES) | {""}  # 0/1 labels, uncertain ones and blanks (CheXpert)
    binary = [c for c in candidates if set(raw[c].str.strip()) <= flags and (raw[c].str.strip() != "").any()]
    if len(binary) > 1:  # several label columns: a numeric column of other values (an age, a view count) is none
        return binary
    numeric = [c for c in candidates if pd.to_numeric(raw[c], errors="coerce").notna().all()]
    if not numeric:
        raise UserError(f"{path}: no label column found (name it one of {', '.join(LABEL_COLUMNS)}, or pass --label-column)")
    return numeric


# The patient (or study) of each image, in the names competitions use; matched like ids.ID_COLUMNS
GROUP_COLUMNS = ("Patient ID", "PatientID", "patient_id", "patient", "subject_id", "StudyInstanceUID", "study_id")


def group_column(raw, path, id_col, requested=""):
    """The column that groups a table's images (their patient or study), or None: `requested`
    (--group-column; 'none' turns grouping off), else the first of GROUP_COLUMNS the table has
    besides its id column (ignoring case, spaces and underscores)."""
    if requested == "none":
        return None
    if requested:
        if requested not in raw.columns:
            raise UserError(f"{path}: no group column '{requested}' (--group-column; found {', '.join(map(str, raw.columns))})")
        return requested
    by_plain = {plain(c): c for c in reversed(raw.columns) if c != id_col}
    return next((by_plain[plain(c)] for c in GROUP_COLUMNS if plain(c) in by_plain), None)


def with_groups(table, raw, path, id_col, requested=""):
    """The table with a `patient` column (the group of each image, as text) when the table names one;
    attrs["grouped_by"] records the column. (A DICOM set without one: folds.join_patients reads
    the PatientID tags, once, when the folds are cut.)"""
    column = group_column(raw, path, id_col, requested)
    if column is None:
        return table
    grouped = table.assign(patient=raw[column].astype(str).str.strip().to_numpy())
    grouped.attrs = {**table.attrs, "grouped_by": column}
    return grouped


UNCERTAIN_POLICIES = ("ignore", "ones", "zeros")  # or a number in (0, 1)


def uncertain_target(policy, path="--uncertain"):
    """The target an uncertain label gets under `policy`: NaN (ignore), 1, 0 or the soft value; a
    UserError for a policy that is none of these."""
    named = {"ignore": float("nan"), "ones": 1.0, "zeros": 0.0}
    if policy in named:
        return named[policy]
    try:
        value = float(policy)
    except ValueError:
        value = -1.0
    if not 0 < value < 1:
        raise UserError(f"{path} {policy}: expected {', '.join(UNCERTAIN_POLICIES)} or a number in (0, 1)")
    return value


def binary_targets(values, path, column, problems=STRICT, uncertain=""):
    """0/1 targets of a label column. With an `uncertain` policy, -1 (uncertain) becomes the policy's
    target (uncertain_target) and a blank 0 (CheXpert: not mentioned); without one, either is a
    bad row (placeholder -1), as is any other value."""
    soft = uncertain_target(uncertain) if uncertain else None
    targets = []
    for row, value in enumerate(values):
        value = value.strip()
        if soft is not None and value in UNCERTAIN_VALUES:
            targets.append(soft)
            continue
        if soft is not None and not value:
            targets.append(0)
            continue
        if value not in BINARY_VALUES:
            problems.report(path, row, f"{path} line {row + 2}: label '{value}' in column '{column}' is not 0 or 1 "
                                       f"(a binary task" + ("; --uncertain sets a policy for -1 and blanks)" if
                                                            value in ("", *UNCERTAIN_VALUES) else ")"))
            value = "-1"
        targets.append(int(float(value)))
    return targets


def holds_classes(values):
    """Whether a label column names classes (a multi-class task) rather than 0/1 targets: every
    value is text (class names), or every value is a whole number, three or more of them, each
    on two rows or more ('0', '1', '2'). 0/1 with -1 (uncertain labels), a mix of 0/1 and text,
    or a number found once (a typo in a binary column) make a binary column (with bad rows)."""
    counts = pd.Series([str(v).strip() for v in values]).value_counts().drop("", errors="ignore")
    if set(counts.index) <= {*BINARY_VALUES, *UNCERTAIN_VALUES}:  # 0/1 with uncertain -1s: --uncertain's
        return False
    numbers = pd.to_numeric(pd.Series(counts.index), errors="coerce")
    if numbers.isna().all():
        return True
    return bool(numbers.notna().all() and (numbers % 1 == 0).all() and len(counts) >= 3 and counts.min() >= 2)


def class_targets(values, path, column, problems=STRICT):
    """{target_<class>: one-hot 0/1 list} and the class name of each row, classes sorted (as numbers
    when every class is one); a row without a class goes to `problems`."""
    names = [str(v).strip() for v in values]
    classes = sorted(set(names) - {""}, key=lambda c: (float(c), c) if _is_number(c) else (float("inf"), c))
    for row, name in enumerate(names):
        if not name:
            problems.report(path, row, f"{path} line {row + 2}: no class in column '{column}' (a multi-class task)")
    with_comma = next((c for c in classes if "," in c), None)
    if with_comma is not None:
        raise UserError(f"{path}: class '{with_comma}' in column '{column}' holds a comma: a submission's header could "
                        f"not name it (rename the class)")
    return {f"target_{c}": [int(n == c) for n in names] for c in classes}, names


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def class_table(ids, names_and_targets, path, source):
    """A multi-class table: one-hot target_<class> columns and class_name; `source` says where the classes came from."""
    targets, names = names_and_targets
    table = framed({"image_id": ids, **targets, CLASS_COLUMN: names}, path)
    classes = [c[len("target_"):] for c in targets]
    table.attrs["task"] = f"multi-class ({len(classes)} classes, {source}: {', '.join(classes)})"
    return table


def table_ids(names, image_folder, csv_path, problems=STRICT, repeats=False):
    """A table's ids: inside the data set folder (as_image_ids), matched to the files present
    (ids.resolve_ids: with or without an extension, anywhere below the folder). `repeats`: an
    image may have several rows (merged by merge_repeats)."""
    ids = as_image_ids(names, image_folder, csv_path, problems=problems, repeats=repeats)
    return resolve_ids(ids, Path(csv_path).parent, csv_path, image_folder, problems, repeats=repeats)


def merge_repeats(table, path, problems=STRICT):
    """One row per image of a table that lists an image on several rows (RSNA: one per box;
    VinBigData: one per rater and box): the image is positive for a label when any of its rows
    is (its boxes are all objects; a rater who saw one is believed). The first row stands for
    the others; attrs["lines"] keeps its file line for later messages, and rows already
    reported bad are renumbered with it (a bad row makes its image bad)."""
    first = {}
    group = [first.setdefault(image_id, len(first)) for image_id in table["image_id"]]
    if len(first) == len(table):
        return table
    merged = table.groupby(np.asarray(group), sort=True)
    kept = table.iloc[merged.head(1).index].reset_index(drop=True)
    multiclass = CLASS_COLUMN in table
    for column in [] if multiclass else target_columns(table):
        kept[column] = merged[column].max().to_numpy()
    kept.attrs = {**table.attrs, "lines": [int(row) + 2 for row in merged.head(1).index]}
    problems.renumber(path, group)
    if multiclass:  # one class per image: rows that disagree cannot be merged by a rule
        for row, classes in enumerate(merged[CLASS_COLUMN].unique()):
            if len(set(classes) - {""}) > 1:
                problems.report(path, row, f"{path} line {kept.attrs['lines'][row]}: image {kept['image_id'][row]} has "
                                           f"rows of several classes ({', '.join(sorted(classes))}); a multi-class "
                                           f"task needs one")
    print(f"{path}: {len(table)} rows for {len(kept)} images (one row per box or per rater): "
          + ("its rows agree on its class" if multiclass else "an image is positive for a label when any of its rows is"))
    return kept


def read_kaggle_table(csv_path, image_folder, requested_label="", labelled=True, problems=STRICT, requested_id="",
                      requested_group="", uncertain=""):
    raw = read_csv(csv_path)
    id_col = id_column(raw, csv_path, requested_id)
    ids = table_ids(raw[id_col], image_folder, csv_path, problems, repeats=labelled)
    root = Path(csv_path).parent
    if not labelled:
        return with_studies(framed({"image_id": ids, "target": np.nan}, csv_path), raw, id_col, root, csv_path)
    columns = label_columns(raw, csv_path, requested_label, id_col, requested_group)
    if len(columns) == 1 and holds_classes(raw[columns[0]]):
        table = class_table(ids, class_targets(raw[columns[0]], csv_path, columns[0], problems), csv_path,
                            f"from column '{columns[0]}'")
    elif len(columns) == 1:
        table = framed({"image_id": ids, "target": binary_targets(raw[columns[0]], csv_path, columns[0], problems,
                                                                  uncertain)}, csv_path)
    else:
        table = framed({"image_id": ids, **{f"target_{c}": binary_targets(raw[c], csv_path, c, problems, uncertain)
                                            for c in columns}}, csv_path)
        table.attrs["task"] = f"multi-label ({len(columns)} label columns: {', '.join(columns)})"
    table = merge_repeats(with_groups(table, raw, csv_path, id_col, requested_group), csv_path, problems)
    return with_studies(table, raw, id_col, root, csv_path, problems)


def with_studies(table, raw, id_col, root, path, problems=STRICT):
    """The table with a `study` column when it has studies (studies.py): a row whose id names a
    folder becomes one row per image below it (its labels, group and file line copied; the study
    is the id as the table wrote it), or the table's own study column names each image's study."""
    lines = list(table.attrs.get("lines") or range(2, len(table) + 2))
    written = [str(raw[id_col].iloc[line - 2]).strip() for line in lines]
    images = expand_folders(table["image_id"], root)
    if all(found == [i] for found, i in zip(images, table["image_id"])):
        column = study_column(raw, id_col)
        if column is None:
            return table
        studies = [str(raw[column].iloc[line - 2]).strip() for line in lines]
        # an image without a study is a study of its own (blanks must not join into one group)
        studied = table.assign(**{STUDY_COLUMN: [s or image_id for s, image_id in zip(studies, table["image_id"])]})
        studied.attrs = {**table.attrs, "studies": f"column '{column}'"}
        return studied
    for row, found in enumerate(images):
        if not found:
            problems.report(path, row, f"{path} line {lines[row]}: {table['image_id'][row]} is a folder without images")
            images[row] = [table["image_id"][row]]
    source = [row for row, found in enumerate(images) for _ in found]
    expanded = table.iloc[source].reset_index(drop=True)
    expanded["image_id"] = [i for found in images for i in found]
    expanded[STUDY_COLUMN] = [written[row] for row in source]
    repeated = expanded["image_id"].duplicated()
    if repeated.any():
        row = source[int(np.flatnonzero(repeated)[0])]
        raise UserError(f"{path} line {lines[row]}: image {expanded['image_id'][np.flatnonzero(repeated)[0]]} is "
                        f"listed by another row too (a study's images belong to it alone)")
    starts = np.cumsum([0] + [len(found) for found in images[:-1]])
    problems.renumber(path, [list(range(start, start + len(found))) for start, found in zip(starts, images)])
    expanded.attrs = {**table.attrs, "lines": [lines[row] for row in source],
                      "studies": f"folders: {len(table)} rows for {len(expanded)} images"}
    return expanded


def read_imagefolder(root, positive_classes):
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = set(positive_classes) - set(classes)
    if unknown:
        raise UserError(f"{root}: --positive-classes {', '.join(sorted(unknown))} not found (classes: {', '.join(classes)})")
    rows = [(f"{c}/{f.name}", c) for c in classes
            for f in sorted((root / c).iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    ids, names = [r[0] for r in rows], [r[1] for r in rows]
    if positive_classes:
        train = framed({"image_id": ids, "target": [int(n in positive_classes) for n in names]}, root)
    else:  # multi-class; --positive-classes makes it binary
        train = class_table(ids, ({f"target_{c}": [int(n == c) for n in names] for c in classes}, names), root,
                            "one folder each; --positive-classes makes it binary")
    return train, framed({"image_id": pd.Series(dtype=str), "target": pd.Series(dtype=float)}, root)


def load_npz(npz_path):
    """{name: array} of a .npz, every array read here, so that a damaged archive fails once, as a
    UserError naming it."""
    try:
        npz = np.load(npz_path)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise TypeError("it holds a single array")
        with npz:
            return {name: npz[name] for name in npz.files}
    except Exception as err:  # noqa: BLE001 (numpy, zipfile and the decompressors raise many types)
        raise UserError(f"{npz_path}: not a readable .npz archive ({err})") from None


def npz_split(arrays, npz_path, split):
    """(images, labels or None) of one MedMNIST split, checked: uint8 images (n, h, w) or
    (n, h, w, 3), and for train and val as many labels as images."""
    images, labels = arrays[f"{split}_images"], arrays.get(f"{split}_labels")
    gray_or_rgb = images.ndim in (3, 4) and images.shape[3:] in ((), (3,)) and 0 not in images.shape[1:]
    if images.dtype != np.uint8 or not gray_or_rgb:
        raise UserError(f"{npz_path}: '{split}_images' is {images.dtype} of shape {images.shape}; "
                        f"uint8 (n, h, w) or (n, h, w, 3) expected")
    if labels is None and split != "test":
        raise UserError(f"{npz_path}: '{split}_images' has no '{split}_labels' (found {', '.join(arrays)})")
    if labels is not None and labels.shape[:1] != images.shape[:1]:
        raise UserError(f"{npz_path}: '{split}_labels' of shape {labels.shape} for {len(images)} images")
    return images, labels


def unpack_npz(npz_path, images_by_split):
    """Write every image of a MedMNIST .npz as a PNG into <name>_png/<split>/NNNNN.png, once
    (a stamp of the .npz's size and time says the folder is complete and current)."""
    import shutil
    import tempfile

    import cv2

    folder = npz_path.with_name(f"{npz_path.stem}_png")
    stamp = f"{npz_path.stat().st_size} {npz_path.stat().st_mtime_ns}"
    if (folder / ".unpacked").is_file() and (folder / ".unpacked").read_text() == stamp:
        return folder
    staging = Path(tempfile.mkdtemp(prefix=".unpacking_", dir=npz_path.parent))
    for split, images in images_by_split.items():
        (staging / split).mkdir()
        for i, image in enumerate(images):
            image = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(staging / split / f"{i:05d}.png"), image)
    (staging / ".unpacked").write_text(stamp)
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder


def npz_targets(labels, npz_path, name, problems=STRICT, first_row=0):
    """0/1 targets of a labels array (n,) or (n, 1); a value that is neither goes to `problems`
    (as table row first_row + i)."""
    if labels.ndim == 2 and labels.shape[1] > 1:
        raise UserError(f"{npz_path}: '{name}' has {labels.shape[1]} columns: multi-label training is not supported yet")
    if labels.ndim not in (1, 2) or labels.size != len(labels) or labels.dtype.kind not in "biuf":
        raise UserError(f"{npz_path}: '{name}' is {labels.dtype} of shape {labels.shape}; "
                        f"numbers (n,) or (n, 1) expected")
    values = labels.reshape(-1)
    bad = ~np.isin(values, (0, 1))  # NaN included
    for row in np.flatnonzero(bad):
        problems.report(npz_path, first_row + row, f"{npz_path}: {name}[{row}] is {values[row]}, not 0 or 1 (a binary "
                                                   f"task; a multi-class MedMNIST set needs its classes mapped to 0/1 first)")
    return np.where(bad, -1, values).astype(int)


def read_medmnist(root, problems=STRICT):
    npz_files = sorted(root.glob("*.npz"))
    if len(npz_files) != 1:
        raise UserError(f"{root}: the medmnist layout needs exactly one .npz file (found {len(npz_files)})")
    npz_path = npz_files[0]
    arrays = load_npz(npz_path)
    if "train_images" not in arrays:
        raise UserError(f"{npz_path}: no 'train_images' array (found {', '.join(arrays)})")
    splits = {split: npz_split(arrays, npz_path, split) for split in ("train", "val", "test")
              if f"{split}_images" in arrays}
    folder = unpack_npz(npz_path, {split: images for split, (images, _) in splits.items()})
    ids, targets = [], []
    for split in ("train", "val"):
        if split in splits:
            images, labels = splits[split]
            ids += [f"{folder.name}/{split}/{i:05d}.png" for i in range(len(images))]
            targets += list(npz_targets(labels, npz_path, f"{split}_labels", problems, len(targets)))
    train = framed({"image_id": ids, "target": targets}, npz_path)
    images, labels = splits.get("test", ([], None))
    test_targets = np.nan if labels is None else npz_targets(labels, npz_path, "test_labels")
    test = framed({"image_id": [f"{folder.name}/test/{i:05d}.png" for i in range(len(images))],
                   "target": test_targets if len(images) else pd.Series(dtype=float)}, npz_path)
    return train, test


def detect_layout(root):
    competition = competition_layout(root)
    if competition:
        return competition
    if any(root.glob("*.npz")) and not (root / "train.csv").is_file():
        return "medmnist"
    train_csv = root / "train.csv"
    if train_csv.is_file():
        header = read_csv(train_csv).columns
        return "objectcxr" if "annotation" in header or (root / "dev.csv").is_file() else "kaggle"
    if (root / "image_path.csv").is_file():
        raise UserError(f"{root}: only a test list (image_path.csv) and no train.csv: nothing to train on; "
                        f"this is input for a trained experiment's inference")
    if any(p.is_dir() and any(f.suffix.lower() in IMAGE_SUFFIXES for f in p.iterdir()) for p in root.iterdir()):
        return "imagefolder"
    raise UserError(f"{root}: cannot tell the layout (no train.csv, no class folders of images); see --layout")


def resolved_layout(root, layout="auto"):
    """The layout of the data set folder `root` (detect_layout for 'auto'), checked."""
    require_data_set(root)
    if layout not in LAYOUTS:
        raise UserError(f"--layout {layout}: expected one of {', '.join(LAYOUTS)}")
    return detect_layout(Path(root)) if layout == "auto" else layout


def annotated(root, layout):
    """Whether a data set of `layout` has its objects' outlines, boxes or masks (map models learn
    them): Object-CXR's annotation column, or a box or mask competition's table."""
    if layout in COMPETITIONS:
        return True
    return layout == "objectcxr" and "annotation" in read_csv(Path(root) / "train.csv").columns


def require_data_set(root):
    """Stop unless the data set folder `root` (<input-dir>/<dataset>) exists; the error names the data sets
    that do: `input/nope: no such data set (data sets in input/: demo, pneumoniamnist)`."""
    root = Path(root)
    if root.is_dir():
        return
    parent = root.parent
    found = sorted(p.name for p in parent.iterdir() if p.is_dir() and not p.name.startswith(".")) if parent.is_dir() else []
    where = f"{parent.as_posix().rstrip('/')}/"
    if found:
        listed = f"data sets in {where}: {', '.join(found)}"
    else:
        listed = f"{where} {'holds no data set' if parent.is_dir() else 'does not exist'}"
    demo = "; `python src/make_demo.py` writes the demo into input/demo" if not found or root.name == "demo" else ""
    raise UserError(f"{root}: no such data set ({listed}{demo})")


def read_dataset(root, layout="auto", positive_classes="", label_column="", problems=STRICT, requested_id="",
                 requested_group="", uncertain=""):
    """(train table, test table) of a data set folder. Bad training rows go to `problems`
    (and stay in the table until the caller drops them); the test side is always strict,
    as a submission must cover every test image."""
    root = Path(root)
    layout = resolved_layout(root, layout)
    if layout == "objectcxr":
        train = read_objectcxr_table(root / "train.csv", "train", problems, requested_id, requested_group)
        if (root / "dev.csv").is_file():
            return train, read_objectcxr_table(root / "dev.csv", "dev", requested_id=requested_id)
        if not (root / "image_path.csv").is_file():  # a final set (final_set.py): dev trains, the server's test is hidden
            return train, framed({"image_id": [], "target": []}, root / "image_path.csv")
        return train, read_image_list(root / "image_path.csv", inside=True)
    if layout == "kaggle":
        train = read_kaggle_table(root / "train.csv", "train", label_column, problems=problems, requested_id=requested_id,
                                  requested_group=requested_group, uncertain=uncertain)
        test_table = kaggle_test_table(root)
        if test_table is None and (root / "test").is_dir():  # no table: every image below test/ is the test side
            found = sorted(p.relative_to(root).as_posix() for p in (root / "test").rglob("*")
                           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            return train, framed({"image_id": pd.Series(found, dtype=str), "target": np.nan}, root / "test")
        if test_table is None:
            raise UserError(f"{root}: no test.csv, no sample_submission.csv and no test/ folder: the test side's ids "
                            f"come from one of them")
        return train, read_kaggle_table(test_table, "test", labelled=False, requested_id=requested_id)
    if layout == "medmnist":
        return read_medmnist(root, problems)
    if layout in COMPETITIONS:  # RSNA, VinBigData, SIIM-ACR: objects as annotations, the test ids from the sample
        test_table = kaggle_test_table(root)
        if test_table is None:
            raise UserError(f"{root}: no sample submission (stage_2_sample_submission.csv or sample_submission.csv): "
                            f"the test side's ids come from it")
        return COMPETITIONS[layout](root, problems), read_kaggle_table(test_table, "test", labelled=False)
    positives = [c.strip() for c in positive_classes.split(",") if c.strip()]
    return read_imagefolder(root, positives)


TEST_TABLES = ("test.csv", "sample_submission.csv", "stage_2_sample_submission.csv")  # RSNA's and SIIM's stage 2


def kaggle_test_table(root):
    """The table a Kaggle-style data set's test ids come from: test.csv, or, as many competitions ship
    it, only sample_submission.csv (its id column; the prediction columns are ignored); None without either."""
    return next((Path(root) / name for name in TEST_TABLES if (Path(root) / name).is_file()), None)


def kaggle_test_ids(root):
    """(id column name, {image_id: the id as the test table writes it}) of a Kaggle-style data set; the
    images of a study (a row naming a folder) all map to the study's id."""
    path = kaggle_test_table(root) or Path(root) / "test.csv"
    raw = read_csv(path)
    column = id_column(raw, path)
    images = expand_folders(table_ids(raw[column], "test", path), root)  # a study's images: its one id
    return column, {i: str(name).strip() for found, name in zip(images, raw[column]) for i in found}


def require_targets(table):
    """The pipeline trains 0/1 target columns (binary, multi-label, one-hot multi-class); refuse,
    with the reason, a table that has none."""
    if not target_columns(table):
        raise UserError(f"{table.attrs['source']}: the targets are {table.attrs.get('task', 'not binary')}; "
                        f"training and blending need binary targets (use --positive-classes)")


def read_checked(settings, require_task=True):
    """(train, test, root) of the data set a DataSettings names, every image's header checked;
    the tables gain the original `width` and `height` read from those headers.

    With settings.skip_bad, bad training rows are dropped and listed (file, line, problem)
    in <reports-dir>/<dataset>/skipped_rows.csv, and their count is printed."""
    root = Path(settings.input_dir) / settings.dataset
    problems = RowProblems(skip=settings.skip_bad)
    train, test = read_dataset(root, settings.layout, settings.positive_classes, settings.label_column, problems,
                               settings.id_column, settings.group_column, getattr(settings, "uncertain", ""))
    if require_task:
        require_targets(train)
    train = with_sizes(train, check_images(train, root, problems))
    test = with_sizes(test, check_images(test, root))
    if problems.skip:
        train = drop_skipped(train, problems, skipped_rows_file(settings.reports_dir, settings.dataset))
    return train, test, root


def drop_skipped(train, problems, log_path):
    """The table without its reported rows; the rows and their problems written to `log_path`."""
    bad = problems.rows_of(train.attrs["source"])
    write_csv(log_path, pd.DataFrame(problems.found, columns=["source", "row", "problem"]))
    print(f"--skip-bad: {len(bad)} bad training row(s) dropped, {len(train) - len(bad)} kept; listed in {log_path}")
    if len(bad) == len(train):
        raise UserError(f"{train.attrs['source']}: every row is bad (see {log_path})")
    kept = train.drop(index=train.index[bad]).reset_index(drop=True)
    kept.attrs = dict(train.attrs)
    return kept


def with_sizes(table, sizes):
    sized = table.assign(width=[w for w, _ in sizes], height=[h for _, h in sizes])
    sized.attrs = dict(table.attrs)
    return sized


def list_images(source):
    """Image paths of a folder (recursively, sorted) or of a header-less list file (one path a line):
    what predict.py and a Kaggle package's predict.py are given."""
    source = Path(source)
    if source.is_dir():
        paths = sorted(str(p) for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise UserError(f"{source}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return paths
    if not source.is_file():
        raise UserError(f"{source}: no such folder or image list")
    return list(read_image_list(source)["image_id"])
