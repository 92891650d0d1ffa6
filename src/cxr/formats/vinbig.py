"""VinBigData's submission: sample_submission.csv's header (`image_id,PredictionString`) and
order, each image's classed boxes as `class conf x1 y1 x2 y2` groups (original pixels), and the
'No finding' class as `14 conf 0 0 1 1` (its confidence the image's probability of no finding):
the metric is mAP over the classes, No finding one of them, so every image writes it."""
from pathlib import Path

from cxr.formats.registry import Format, Submission

FILE = "submission.csv"
HEADER = "image_id,PredictionString"


def plan(out, root, test_ids, labels):
    """write({image: (classed boxes [(class, score, box)], probability of no finding)})."""
    from cxr.formats.boxes import check_vinbig, sample_plan, vinbig_string

    return Submission(*sample_plan(out, root, test_ids, FILE, HEADER,
                                   lambda _, found: vinbig_string(*found), check_vinbig))


def validate(path, expected_ids):
    from cxr.formats.boxes import check_vinbig, validate_rows

    validate_rows(Path(path), HEADER, expected_ids, check_vinbig)


FORMAT = Format(name="vinbig", task="classed boxes", files=(FILE,),
                ids="the sample submission's image_id, in its order",
                summary="VinBigData: submission.csv, image_id,PredictionString of 'class conf x1 y1 x2 y2' boxes "
                        "and the 'No finding' entry",
                plan=plan, validate=validate, requires=("sample_submission.csv",))
