"""SIIM-ACR Pneumothorax's submission: stage_2_sample_submission.csv's header
(`ImageId,EncodedPixels`) and order, one row per image: its mask's relative column-major
run-length encoding (rle.py), `-1` for an empty mask (an empty prediction on an empty image
scores 1). Its plan's write takes {image: (height, width) boolean mask in the original pixels}."""
from cxr.formats.boxes import row_format


def check(text, where):
    from cxr.errors import UserError
    from cxr.formats.rle import runs

    if not str(text).strip():
        raise UserError(f"{where}: empty; an empty mask is written -1")
    try:
        runs(text)
    except ValueError as err:
        raise UserError(f"{where}: {err}") from None


def mask_string(_, mask):
    from cxr.formats.rle import encode

    return encode(mask)


FORMAT = row_format("siim", "masks", "ImageId,EncodedPixels", lambda root: mask_string, check,
                    summary="SIIM-ACR: submission.csv, ImageId,EncodedPixels (relative column-major RLE, -1 when empty)",
                    ids="the sample submission's ImageId, in its order",
                    requires=("stage_2_sample_submission.csv|sample_submission.csv",))
