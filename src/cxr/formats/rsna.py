"""RSNA Pneumonia Detection's submission: stage_2_sample_submission.csv's header
(`patientId,PredictionString`) and order, each image's boxes as `conf x y w h` groups (top-left
corner, width, height in original pixels), empty for no box. The metric counts every box, so
the boxes written are the ones the tuned threshold keeps."""
from pathlib import Path

from cxr.formats.registry import Format, Submission

FILE = "submission.csv"
HEADER = "patientId,PredictionString"


def plan(out, root, test_ids, labels):
    from cxr.formats.boxes import check_rsna, rsna_string, sample_plan

    return Submission(*sample_plan(out, root, test_ids, FILE, HEADER, lambda _, boxes: rsna_string(boxes), check_rsna))


def validate(path, expected_ids):
    from cxr.formats.boxes import check_rsna, validate_rows

    validate_rows(Path(path), HEADER, expected_ids, check_rsna)


FORMAT = Format(name="rsna", task="boxes", files=(FILE,),
                ids="the sample submission's patientId, in its order",
                summary="RSNA Pneumonia: submission.csv, patientId,PredictionString of 'conf x y w h' boxes",
                plan=plan, validate=validate, requires=("stage_2_sample_submission.csv|sample_submission.csv",))
