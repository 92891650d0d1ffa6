"""The predictions a blend learns from: each model's OOF rows (checked against the fold file)
and its fold models' test predictions, their mean over the kept folds, and the OOF rows marked
most like the test side."""
import numpy as np

from cxr.artifacts import read_oof_folds, read_prediction_file, test_like_file
from cxr.errors import UserError

def load_model_predictions(model_dir, folds, columns):
    """(OOF frame in fold-file order, [each fold model's test frame], the image score every fold
    was put on or '') of one model; `columns` are the target columns (prediction_<label> goes
    with target_<label>). A map model's folds are first put on one image score (one_image_score)."""
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
    score = one_image_score(model_dir.name, oof_parts, test_parts)
    oof = pd.concat(oof_parts.values()).set_index("image_id").loc[folds["image_id"]].reset_index()
    return oof, test_parts, score


def one_image_score(model, oof_parts, test_parts):
    """A map model's folds each chose their image score on their own validation rows (max of the
    map, the head, their mean): pooled, their OOF rows would mix scales, and a blend fitted on
    them would weigh a scale, not a model. Every fold is put on the score most folds chose (a tie:
    map_scores.MAP_IMAGE_SCORES's order), from the score_<name> columns train.py writes beside the
    chosen one; the parts are changed in place. Returns the score ('' for a model without those
    columns: a classifier, or a map model trained before they were written)."""
    from collections import Counter

    from cxr.localization.map_scores import MAP_IMAGE_SCORES, SCORE_COLUMNS

    parts = [*oof_parts.values(), *test_parts]
    if not parts or not all(set(SCORE_COLUMNS.values()) <= set(part.columns) for part in parts):
        return ""
    # each fold's choice: the score its predictions are (the nearest, when its seeds chose differently)
    chosen = [min(MAP_IMAGE_SCORES, key=lambda name: np.abs(part[SCORE_COLUMNS[name]] - part["prediction"]).mean())
              for part in oof_parts.values()]
    votes = Counter(chosen)
    score = max(MAP_IMAGE_SCORES, key=lambda name: (votes[name], -MAP_IMAGE_SCORES.index(name)))
    if set(chosen) != {score}:
        print(f"{model}: its folds chose the image scores {', '.join(chosen)}; every fold is "
              f"scored by {score} (one scale for the pooled OOF rows and the blend)")
    for part in parts:
        part["prediction"] = part[SCORE_COLUMNS[score]].astype(float)
    return score


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
