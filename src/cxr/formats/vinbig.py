"""VinBigData's submission: sample_submission.csv's header (`image_id,PredictionString`) and
order, each image's classed boxes as `class conf x1 y1 x2 y2` groups (original pixels), and the
'No finding' class as `<id> conf 0 0 1 1` (14 in VinBigData: the id train.csv gives it; its
confidence the image's probability of no finding): the metric is mAP over the classes, No finding
one of them, so every image writes it."""
from pathlib import Path

from cxr.formats.boxes import check_vinbig, row_format, vinbig_string


def strings(root):
    """The writer of each image's string: its (classed boxes [(class, score, box)], probability of
    no finding), the No finding entry under train.csv's class id."""
    no_finding = no_finding_class(root)
    return lambda _, found: vinbig_string(*found, no_finding)


def no_finding_class(root):
    """The class id train.csv gives 'No finding' (14 in VinBigData; the classes' count in general)."""
    from cxr.data.layouts import read_csv
    from cxr.errors import UserError
    from cxr.formats.boxes import NO_FINDING

    train = read_csv(Path(root) / "train.csv")
    if not {"class_name", "class_id"} <= set(train.columns):
        raise UserError(f"{Path(root) / 'train.csv'}: no class_name and class_id columns (VinBigData's layout)")
    ids = set(train.loc[train["class_name"].str.strip() == NO_FINDING, "class_id"].str.strip())
    if len(ids) != 1:
        raise UserError(f"{Path(root) / 'train.csv'}: class '{NO_FINDING}' has " + (f"the ids {', '.join(sorted(ids))}"
                        if ids else "no rows") + "; its one class id is the submission's No finding entry")
    return int(float(ids.pop()))


FORMAT = row_format("vinbig", "classed boxes", "image_id,PredictionString", strings, check_vinbig,
                    summary="VinBigData: submission.csv, image_id,PredictionString of 'class conf x1 y1 x2 y2' boxes "
                            "and the 'No finding' entry",
                    ids="the sample submission's image_id, in its order", requires=("sample_submission.csv", "train.csv"))
