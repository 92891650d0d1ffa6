"""SIIM-ACR Pneumothorax's submission: stage_2_sample_submission.csv's header
(`ImageId,EncodedPixels`) and order, one row per image: its mask's relative column-major
run-length encoding (rle.py), `-1` for an empty mask (an empty prediction on an empty image
scores 1)."""
from pathlib import Path

from cxr.formats.registry import Format, Submission

FILE = "submission.csv"
HEADER = "ImageId,EncodedPixels"


def check(text, where):
    from cxr.errors import UserError
    from cxr.formats.rle import runs

    try:
        runs(text)
    except ValueError as err:
        raise UserError(f"{where}: {err}") from None


def plan(out, root, test_ids, labels):
    """write({image: (height, width) boolean mask in the original pixels})."""
    from cxr.formats.boxes import sample_plan
    from cxr.formats.rle import encode

    return Submission(*sample_plan(out, root, test_ids, FILE, HEADER, lambda _, mask: encode(mask), check))


def validate(path, expected_ids):
    from cxr.formats.boxes import validate_rows

    validate_rows(Path(path), HEADER, expected_ids, check)


FORMAT = Format(name="siim", task="masks", files=(FILE,),
                ids="the sample submission's ImageId, in its order",
                summary="SIIM-ACR: submission.csv, ImageId,EncodedPixels (relative column-major RLE, -1 when empty)",
                plan=plan, validate=validate, requires=("stage_2_sample_submission.csv|sample_submission.csv",))
