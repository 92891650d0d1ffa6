"""A Kaggle-style binary submission: submission.csv with sample_submission.csv's header and row
order (its id column, then one prediction column), or, without a sample, the test table's id
column and `prediction`. The ids are written as test.csv writes them (with or without a suffix)."""
from cxr.formats.registry import Format, Submission

FILE = "submission.csv"


def plan(out, root, test_ids, labels):
    from cxr.formats.files import sample_submission_plan

    return Submission(*sample_submission_plan(out, root, test_ids, labels, FILE))


def validate(path, expected_ids):
    from cxr.formats.files import validate_sample_shaped

    validate_sample_shaped(path, expected_ids)


FORMAT = Format(name="kaggle", task="binary", files=(FILE,),
                ids="the test table's id column (test.csv, else sample_submission.csv), as written there; rows in "
                    "sample_submission.csv's order when it exists",
                summary="Kaggle binary: submission.csv, sample_submission.csv's header and order",
                plan=plan, validate=validate, requires=("test.csv|sample_submission.csv",))
