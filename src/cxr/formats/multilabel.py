"""A Kaggle-style multi-label submission: submission.csv with sample_submission.csv's header and
row order (its id column, then one probability column per label, in the sample's column order),
or, without a sample, the test table's id column and one column per label. Kaggle's rules, one
column per label: kaggle.py's plan and check serve both."""
from cxr.formats.kaggle import FILE, plan, validate
from cxr.formats.registry import Format

FORMAT = Format(name="multilabel", task="multilabel", files=(FILE,),
                ids="the test table's id column (test.csv, else sample_submission.csv), as written there; rows in "
                    "sample_submission.csv's order when it exists",
                summary="Kaggle multi-label: submission.csv, one probability column per label",
                plan=plan, validate=validate, requires=("test.csv|sample_submission.csv",))
