"""The predictions a blend learns from: each model's OOF rows (checked against the fold file)
and its fold models' test predictions, their mean over the kept folds, and the OOF rows marked
most like the test side."""
import numpy as np

from cxr.artifacts import read_oof_folds, read_prediction_file, test_like_file
from cxr.errors import UserError

def load_model_predictions(model_dir, folds, columns):
    """(OOF frame in fold-file order, [each fold model's test frame]) of one model; `columns`
    are the target columns (prediction_<label> goes with target_<label>)."""
    import pandas as pd

    from cxr.data.labels import prediction_column

    predictions = [prediction_column(c) for c in columns]
    oof_parts = read_oof_folds(model_dir, folds, columns, predictions)
    test_parts = []
    for fold in oof_parts:
        test_path = model_dir / f"test_fold_{fold}.csv"
        if not test_path.is_file():
            raise UserError(f"{test_path}: test predictions missing")
        test_parts.append(read_prediction_file(test_path, ["image_id", *predictions]))
    for fold, part in enumerate(test_parts):
        if not part["image_id"].equals(test_parts[0]["image_id"]):
            raise UserError(f"{model_dir / f'test_fold_{fold}.csv'}: covers other test images than test_fold_0.csv")
    oof = pd.concat(oof_parts.values()).set_index("image_id").loc[folds["image_id"]].reset_index()
    return oof, test_parts


def mean_of_folds(test_parts, columns, kept):
    """A model's test frame: the image ids, any test target(s), and each prediction the mean of
    the `kept` fold models' (every fold's unless a weak one was dropped)."""
    from cxr.data.labels import prediction_column

    test = test_parts[0][["image_id"] + [c for c in columns if c in test_parts[0]]].copy()
    for column in map(prediction_column, columns):
        test[column] = np.mean([test_parts[k][column].to_numpy() for k in kept], axis=0)
    return test


def test_like_mask(args, folds):
    """The OOF rows (in fold-file order) make_folds.py --test-like marked as most like the test side, or None."""
    import pandas as pd

    path = test_like_file(args.folds_dir, args.dataset)
    if not path.is_file():
        if args.choose_by == "test_like":
            raise UserError(f"--choose-by test_like: {path} not found (run make_folds.py --test-like 0.25 first)")
        return None
    table = pd.read_csv(path, dtype={"image_id": str}).set_index("image_id")
    missing = folds.loc[~folds["image_id"].isin(table.index), "image_id"]
    if len(missing):
        raise UserError(f"{path}: made for other images ({missing.iloc[0]} and {len(missing) - 1} more are not in it); "
                        f"run make_folds.py --test-like again")
    return table.loc[folds["image_id"], "test_like"].astype(bool).to_numpy()
