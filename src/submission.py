"""Challenge-format submission files, validated before they are written.

Object-CXR's `prediction_classification.csv`: header `image_path,prediction`, one row per
test image, probabilities in [0, 1]."""
import numpy as np
import pandas as pd

from artifacts import atomic_path
from errors import UserError

CLASSIFICATION_HEADER = "image_path,prediction"


def validate_classification(path, expected_paths, shown_as=None):
    """Raise UserError (naming the file and line) unless `path` is a valid classification
    submission covering exactly `expected_paths`, each once. Messages name `shown_as` (the
    final name of a file still being written) when given."""
    lines = open(path, encoding="utf-8").read().splitlines()
    path = shown_as or path
    if not lines or lines[0] != CLASSIFICATION_HEADER:
        raise UserError(f"{path} line 1: header must be exactly '{CLASSIFICATION_HEADER}', "
                        f"found '{lines[0] if lines else ''}'")
    expected = set(expected_paths)
    seen = set()
    for number, line in enumerate(lines[1:], start=2):
        image, sep, value = line.rpartition(",")
        if not sep or not image:
            raise UserError(f"{path} line {number}: expected 'image_path,prediction', found '{line}'")
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


def write_classification(path, image_paths, predictions, expected_paths=None):
    """Write the file atomically; the temporary file is validated before it replaces `path`,
    so an invalid submission never overwrites a valid one."""
    frame = pd.DataFrame({"image_path": list(image_paths), "prediction": np.asarray(predictions, dtype=float)})
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.8f", lineterminator="\n")
        validate_classification(tmp, frame["image_path"] if expected_paths is None else expected_paths, shown_as=path)
