"""Object-CXR's submission (the worked example of a format): two files, both with the header
`image_path,prediction` and one row per test image, named by its path as the challenge's table
or image_path.csv gave it.

    prediction_classification.csv   the probability that the image holds a foreign object, in [0, 1]
    prediction_localization.csv     zero or more `probability x y` triples separated by `;`, in
                                    original-image pixels (the comma after the path stays when empty)

blend.py writes the classification file from the blend's test predictions; submit.py writes
both, as the evaluation server ran it."""
from pathlib import Path

from cxr.formats.registry import Format, Submission

CLASSIFICATION = "prediction_classification.csv"
LOCALIZATION = "prediction_localization.csv"


def plan(out, root, test_ids, labels):
    from cxr.formats.files import write_classification

    path = Path(out) / CLASSIFICATION
    return Submission(path, lambda predictions: write_classification(path, list(test_ids), predictions[:, 0]))


def validate(path, expected_ids):
    """Check a written file: the localization file when it is named so, else the classification file."""
    from cxr.formats.files import read_localization, validate_classification

    if Path(path).name == LOCALIZATION:
        read_localization(path, expected_ids)
    else:
        validate_classification(path, expected_ids)


FORMAT = Format(name="objectcxr", task="binary", files=(CLASSIFICATION, LOCALIZATION),
                ids="the image path as the challenge's table (or image_path.csv) gives it",
                summary="Object-CXR: prediction_classification.csv (image_path,prediction) and "
                        "prediction_localization.csv (submit.py)",
                plan=plan, validate=validate)
