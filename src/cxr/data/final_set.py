"""The final models' data set: the training images and the labelled dev side together, so the
submitted models see every labelled image (on Object-CXR, 1,000 dev images the fold models never
trained on). The dev score is reported first, by the fold models of a run that held dev out;
this set has no test side of its own (the evaluation server's test images are hidden)."""
from pathlib import Path

import pandas as pd

from cxr.artifacts import write_csv
from cxr.data.ids import id_column
from cxr.data.layouts import detect_layout, read_csv, require_data_set
from cxr.errors import UserError


def write_final_set(root, out):
    """input/<name>_final/ from input/<name>/ (Object-CXR layout with dev.csv): train.csv holds the
    training rows and then the dev rows (named ../dev/<name>, so the dev images are read where they
    are), train/ and dev/ link to the original folders; nothing is copied. Returns (training rows, dev rows)."""
    root, out = Path(root), Path(out)
    require_data_set(root)
    if detect_layout(root) != "objectcxr" or not (root / "dev.csv").is_file():
        raise UserError(f"{root}: no labelled dev side (an Object-CXR dev.csv) to train the final models on; "
                        f"other layouts' test sides are unlabelled")
    if out.exists():
        raise UserError(f"{out}: exists already (remove it to write it again)")
    train, dev = read_csv(root / "train.csv"), read_csv(root / "dev.csv")
    if list(train.columns) != list(dev.columns):
        raise UserError(f"{root / 'dev.csv'}: columns {', '.join(dev.columns)} differ from train.csv's "
                        f"({', '.join(train.columns)})")
    name = id_column(dev, root / "dev.csv")
    dev = dev.assign(**{name: "../dev/" + dev[name].str.strip().str.removeprefix("dev/")})
    out.mkdir(parents=True)
    for folder in ("train", "dev"):
        (out / folder).symlink_to((root / folder).resolve())
    write_csv(out / "train.csv", pd.concat([train, dev], ignore_index=True))
    return len(train), len(dev)
