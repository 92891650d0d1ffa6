"""The CSV files submissions are made of, read, validated and written (atomically, validated
before they replace anything); the formats (registry.py) are built from these.

Object-CXR's `prediction_classification.csv`: header `image_path,prediction`, one row per
test image, probabilities in [0, 1]. Other challenges: the header and row order of their
`sample_submission.csv`, or the test table's id column and `prediction` (or one column per label).

Object-CXR's `prediction_localization.csv`: the same header, the prediction being zero or
more `probability x y` triples separated by `;` (original-image pixels); the comma after the
path stays when the list is empty."""
from pathlib import Path

import numpy as np
import pandas as pd

from cxr.artifacts import atomic_path
from cxr.errors import UserError

CLASSIFICATION_HEADER = "image_path,prediction"


def read_lines(path, shown_as=None):
    """The lines of a submission file; a UserError naming it when it is missing or not UTF-8 text."""
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise UserError(f"{shown_as or path}: cannot be read ({err.strerror})") from None
    except UnicodeDecodeError as err:
        raise UserError(f"{shown_as or path}: not UTF-8 text (byte {err.start}: {err.reason})") from None


def validate_classification(path, expected_paths, shown_as=None, header=CLASSIFICATION_HEADER, order=None):
    """Raise UserError (naming the file and line) unless `path` is a valid classification
    submission with `header` (an id column, then one probability column per label), covering
    exactly `expected_paths`, each once (in `order`, when given). Messages name `shown_as`
    (the final name of a file still being written) when given."""
    lines = read_lines(path, shown_as)
    path = shown_as or path
    if not lines or lines[0] != header:
        raise UserError(f"{path} line 1: header must be exactly '{header}', found '{lines[0] if lines else ''}'")
    n_values = header.count(",")
    rows = [line.rsplit(",", n_values) for line in lines[1:]]  # from the right: a path may hold a comma
    if order is not None:
        for number, (parts, expected) in enumerate(zip(rows, order), start=2):
            if parts[0] != expected:
                raise UserError(f"{path} line {number}: expected image {expected} here (the sample submission's order)")
    expected = set(expected_paths)
    seen = set()
    for number, (line, parts) in enumerate(zip(lines[1:], rows), start=2):
        if len(parts) != n_values + 1 or not parts[0]:
            raise UserError(f"{path} line {number}: expected '{header}', found '{line}'")
        image = parts[0]
        for value in parts[1:]:
            try:
                probability = float(value)
            except ValueError:
                raise UserError(f"{path} line {number}: prediction '{value}' is not a number") from None
            if not np.isfinite(probability) or not 0.0 <= probability <= 1.0:
                raise UserError(f"{path} line {number}: prediction {value} is not a probability in [0, 1]")
        if image in seen:
            raise UserError(f"{path} line {number}: image {image} appears twice")
        if image not in expected:
            raise UserError(f"{path} line {number}: image {image} is not in the test set")
        seen.add(image)
    missing = sorted(expected - seen)
    if missing:
        raise UserError(f"{path}: {len(missing)} test image(s) have no prediction, first {missing[0]}")


def write_classification(path, image_paths, predictions, expected_paths=None, header=CLASSIFICATION_HEADER,
                         order=None):
    """Write the file atomically (rows in `order` when given); the temporary file is validated
    before it replaces `path`, so an invalid submission never overwrites a valid one.
    `predictions` is (n,), or (n, labels) for a header with one column per label."""
    id_name, *value_names = header.split(",")
    values = np.asarray(predictions, dtype=float).reshape(len(image_paths), len(value_names))
    frame = pd.DataFrame({id_name: list(image_paths), **dict(zip(value_names, values.T))})
    if order is not None:
        missing = sorted(set(order) - set(frame[id_name]))
        if missing or len(order) != len(frame):
            raise UserError(f"{path}: the sample submission lists {len(order)} images, the predictions cover "
                            f"{len(frame)}" + (f"; first without a prediction: {missing[0]}" if missing else ""))
        frame = frame.set_index(id_name).loc[list(order)].reset_index()
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.8f", lineterminator="\n")
        validate_classification(tmp, frame[id_name] if expected_paths is None else expected_paths, shown_as=path,
                                header=header, order=order)


def sample_format(sample_path):
    """(header, id order) of a Kaggle-style sample_submission.csv: an id column and one
    prediction column (or one per label)."""
    from cxr.data.layouts import read_csv

    sample = read_csv(sample_path)
    if len(sample.columns) < 2:
        raise UserError(f"{sample_path}: expected an id column and prediction column(s), found {', '.join(sample.columns)}")
    return ",".join(sample.columns), list(sample.iloc[:, 0])


def sample_submission_plan(out, root, test_ids, labels, file_name):
    """(path, write(predictions (n, labels))) of a Kaggle-style submission: sample_submission.csv's
    header and row order when `root` has one, else test.csv's id column and `prediction` (one
    column per label for a multi-label task); ids as test.csv writes them. Checked here, before any
    blending: a sample whose prediction columns do not match the labels stops with its name."""
    from cxr.data.layouts import kaggle_test_ids

    multi = labels != [""]
    root = Path(root)
    column, written_as = kaggle_test_ids(root)
    sample = root / "sample_submission.csv"
    if sample.is_file():
        header, order = sample_format(sample)
    else:
        header, order = ",".join([column, *(labels if multi else ["prediction"])]), None
    names = header.split(",")[1:]
    if multi and sorted(names) != sorted(labels):
        raise UserError(f"{sample}: prediction columns {', '.join(names)} differ from the labels {', '.join(labels)}")
    if not multi and len(names) != 1:
        raise UserError(f"{sample}: {len(names)} prediction columns, but the task has one target")
    columns = [labels.index(n) for n in names] if multi else [0]
    path = Path(out) / file_name
    return path, lambda predictions: write_classification(path, [written_as[i] for i in test_ids],
                                                          predictions[:, columns], header=header, order=order)


def validate_sample_shaped(path, expected_ids):
    """Check a written Kaggle-style file: its own header (an id column, then prediction columns), each
    of `expected_ids` once, every value a probability."""
    lines = read_lines(path)
    header = lines[0] if lines else ""
    if header.count(",") < 1:
        raise UserError(f"{path} line 1: expected an id column and prediction column(s), found '{header}'")
    validate_classification(path, expected_ids, header=header)


def format_points(points):
    """[(probability, x, y), ...] -> 'p x y;p x y' (coordinates rounded to whole pixels)."""
    return ";".join(f"{p:.6f} {int(round(x))} {int(round(y))}" for p, x, y in points)


def as_written(points):
    """[(probability, x, y), ...] as the localization file holds them, hence as the challenge's
    scorer reads them: probabilities to 6 decimals, coordinates to whole pixels. blend.py scores
    these, so the FROC it prints is the submitted file's."""
    return parse_points(format_points(points), "points")


def parse_points(text, where):
    """'p x y;p x y' -> [(p, x, y), ...]; a UserError naming `where` for a malformed triple."""
    points = []
    for part in filter(None, (t.strip() for t in text.split(";"))):
        fields = part.split()
        try:
            probability, x, y = (float(v) for v in fields)
        except ValueError:
            raise UserError(f"{where}: '{part}' is not 'probability x y'") from None
        if not (np.isfinite([probability, x, y]).all() and 0.0 <= probability <= 1.0 and x >= 0 and y >= 0):
            raise UserError(f"{where}: '{part}' needs a probability in [0, 1] and non-negative pixel coordinates")
        points.append((probability, x, y))
    return points


def read_localization(path, expected_paths, shown_as=None):
    """{image_path: [(probability, x, y), ...]} of a localization submission covering exactly
    `expected_paths`, each once; a UserError naming the file and line otherwise."""
    lines = read_lines(path, shown_as)
    path = shown_as or path
    if not lines or lines[0] != CLASSIFICATION_HEADER:
        raise UserError(f"{path} line 1: header must be exactly '{CLASSIFICATION_HEADER}', found '{lines[0] if lines else ''}'")
    expected, found = set(expected_paths), {}
    for number, line in enumerate(lines[1:], start=2):
        image, sep, text = line.rpartition(",")  # paths may hold commas, predictions never do
        if not sep or not image:
            raise UserError(f"{path} line {number}: expected 'image_path,p x y;...', found '{line}'")
        if image in found:
            raise UserError(f"{path} line {number}: image {image} appears twice")
        if image not in expected:
            raise UserError(f"{path} line {number}: image {image} is not in the test set")
        found[image] = parse_points(text, f"{path} line {number}")
    missing = sorted(expected - set(found))
    if missing:
        raise UserError(f"{path}: {len(missing)} test image(s) have no line, first {missing[0]}")
    return found


def write_localization(path, image_paths, points_per_image):
    """Write `prediction_localization.csv` atomically, validated before it replaces `path`."""
    image_paths = list(image_paths)
    lines = [CLASSIFICATION_HEADER] + [f"{image},{format_points(points)}" for image, points in
                                       zip(image_paths, points_per_image, strict=True)]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        read_localization(tmp, image_paths, shown_as=path)
