"""A Kaggle-style multi-class submission: submission.csv in sample_submission.csv's header and row
order, either one probability column per class (each row summing to 1: blend.py scales them) or,
when the sample has a single prediction column, the most probable class's name in it (a
competition scored on accuracy or F1). Without a sample: the test table's id column and one
probability column per class."""
from pathlib import Path

from cxr.errors import UserError
from cxr.formats.registry import Format, Submission

FILE = "submission.csv"


def plan(out, root, test_ids, labels):
    from cxr.formats.files import sample_format, sample_submission_plan

    sample = Path(root) / "sample_submission.csv"
    if sample.is_file():
        header, order = sample_format(sample)
        names = header.split(",")[1:]
        if len(names) == 1 and names != labels:
            if class_names_expected(sample):
                return label_plan(Path(out) / FILE, root, test_ids, labels, header, order)
            raise UserError(f"{sample}: one probability column ({names[0]}) for the classes {', '.join(labels)}: which "
                            f"class it is the probability of is not said (write train.csv's labels as 0/1 for a binary "
                            f"task)")
    return Submission(*sample_submission_plan(out, root, test_ids, labels, FILE))


def class_names_expected(sample):
    """Whether a sample submission's single prediction column holds class names (text), not numbers."""
    import pandas as pd

    from cxr.data.layouts import read_csv

    values = read_csv(sample).iloc[:, 1]
    return bool(pd.to_numeric(values, errors="coerce").isna().any())


def label_plan(path, root, test_ids, classes, header, order):
    """A submission of one class name per image (the most probable), in the sample's header and order."""
    from cxr.data.layouts import kaggle_test_ids

    written_as = kaggle_test_ids(root)[1]
    ids = [written_as[i] for i in test_ids]

    def write(predictions):
        import numpy as np
        import pandas as pd

        from cxr.artifacts import atomic_path

        id_name, label_name = header.split(",")
        frame = pd.DataFrame({id_name: ids, label_name: np.asarray(classes)[np.asarray(predictions).argmax(1)]})
        if sorted(order) != sorted(ids):
            raise UserError(f"{path}: the sample submission lists {len(order)} images, the predictions cover {len(ids)}")
        frame = frame.set_index(id_name).loc[list(order)].reset_index()
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False, lineterminator="\n")
            validate_labels(tmp, ids, classes, shown_as=path)
    return Submission(path, write)


def validate_labels(path, expected_ids, classes=None, shown_as=None):
    """A file of `id,class` rows: the header, each expected id once, every value a class (one of
    `classes` when given); a UserError naming the file and line otherwise."""
    from cxr.formats.files import read_lines

    lines = read_lines(path, shown_as)
    path = shown_as or path
    if not lines or lines[0].count(",") != 1:
        raise UserError(f"{path} line 1: expected an id column and a class column, found '{lines[0] if lines else ''}'")
    expected, seen = set(expected_ids), set()
    for number, line in enumerate(lines[1:], start=2):
        image, _, value = line.rpartition(",")
        if not image or not value or (classes is not None and value not in classes):
            raise UserError(f"{path} line {number}: expected 'id,class' with a class of {', '.join(classes or [])}, "
                            f"found '{line}'")
        if image in seen or image not in expected:
            raise UserError(f"{path} line {number}: image {image} " + ("appears twice" if image in seen else
                                                                         "is not in the test set"))
        seen.add(image)
    if expected - seen:
        raise UserError(f"{path}: {len(expected - seen)} test image(s) have no class, first {sorted(expected - seen)[0]}")


def validate(path, expected_ids):
    from cxr.formats.files import read_lines, validate_sample_shaped

    lines = read_lines(path)
    if lines and lines[0].count(",") == 1:
        validate_labels(path, expected_ids)
    else:
        validate_sample_shaped(path, expected_ids)


FORMAT = Format(name="multiclass", task="multiclass", files=(FILE,),
                ids="the test table's id column (test.csv, else sample_submission.csv), as written there; rows in "
                    "sample_submission.csv's order when it exists",
                summary="Kaggle multi-class: submission.csv, a probability column per class (rows summing to 1), or "
                        "the most probable class's name when the sample has one prediction column",
                plan=plan, validate=validate, requires=("test.csv|sample_submission.csv",))
