"""Fold-safe pseudo-labels for a second round of training: the fold-k model of the second round
learns from test images labelled only by first-round fold-k models, which never trained on
fold k's rows, so no validation row's label reaches its own OOF prediction."""
import numpy as np
import pandas as pd

from cxr.artifacts import read_prediction_file
from cxr.errors import UserError


PSEUDO_COLUMNS = ["image_id", "fold", "target", "probability"]


# ---------------------------------------------------------------- pseudo-labels
def mean_fold_predictions(model_test_predictions):
    """{fold: (n,) mean probability over the models} from {model: {fold: (image ids, probabilities)}};
    every model must cover the same folds and the same test images, in the same order."""
    models = list(model_test_predictions)
    folds = sorted(model_test_predictions[models[0]])
    ids = model_test_predictions[models[0]][folds[0]][0]
    means = {}
    for fold in folds:
        columns = []
        for model in models:
            if fold not in model_test_predictions[model]:
                raise UserError(f"model {model} has no test predictions of fold {fold}")
            fold_ids, probabilities = model_test_predictions[model][fold]
            if list(fold_ids) != list(ids):
                raise UserError(f"model {model} fold {fold}: its test predictions cover other images than "
                                f"{models[0]} fold {folds[0]}'s")
            columns.append(np.asarray(probabilities, dtype=float))
        means[fold] = np.mean(columns, axis=0)
    return list(ids), means


def pseudo_labels(image_ids, fold_probabilities, share=0.5, min_confidence=0.9, threshold=0.5):
    """The pseudo-label table (PSEUDO_COLUMNS). Per fold, each image's label is p >= `threshold`;
    within each label the most confident `share` of the images so labelled are kept if their
    confidence max(p, 1 - p) reaches `min_confidence`. Choosing within each label keeps the
    labels in the proportion the models predict: the most confident images of a shifted test
    side are often nearly all of one class, and would teach the second round a skewed prior.
    A fold's rows come from that fold's probabilities only."""
    if not 0 < share <= 1 or not 0.5 <= min_confidence <= 1 or not 0 < threshold < 1:
        raise UserError("--share is in (0, 1], --min-confidence in [0.5, 1] and --threshold in (0, 1)")
    image_ids = np.asarray(image_ids, dtype=str)
    parts = []
    for fold, probability in sorted(fold_probabilities.items()):
        probability = np.asarray(probability, dtype=float)
        confidence, label = np.maximum(probability, 1.0 - probability), (probability >= threshold).astype(int)
        chosen = []
        for value in (0, 1):
            members = np.flatnonzero(label == value)
            ranked = members[np.argsort(-confidence[members], kind="stable")][: int(np.floor(share * len(members)))]
            chosen.extend(ranked[confidence[ranked] >= min_confidence])
        chosen = np.sort(np.asarray(chosen, dtype=int))
        parts.append(pd.DataFrame({"image_id": image_ids[chosen], "fold": fold, "target": label[chosen],
                                   "probability": probability[chosen]}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=PSEUDO_COLUMNS)


def read_pseudo_labels(path):
    path = str(path)
    try:
        table = pd.read_csv(path, dtype={"image_id": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise UserError(f"--pseudo-labels {path}: not a readable CSV ({str(err).splitlines()[0]})") from None
    missing = [c for c in PSEUDO_COLUMNS if c not in table]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)} (write it with src/pseudo.py)")
    bad = ~table["target"].isin([0, 1]) | ~table["fold"].astype(str).str.fullmatch(r"\d+")
    if bad.any():
        raise UserError(f"{path} line {int(np.flatnonzero(bad.to_numpy())[0]) + 2}: target must be 0 or 1 and "
                        f"fold a fold number")
    return table.astype({"fold": int, "target": int})


def with_pseudo_rows(train_rows, pseudo, fold, test_ids, source):
    """The training rows plus the pseudo-labelled test images of `fold` (and of no other fold):
    each joins as its own group, outside every fold (-1). `source` names the file in errors."""
    if "target" not in train_rows:
        raise UserError(f"{source}: pseudo-labels are for one binary target; this data set has several labels")
    rows = pseudo[pseudo["fold"] == fold]
    unknown = ~rows["image_id"].isin(set(test_ids))
    if unknown.any():
        where = int(np.flatnonzero(unknown.to_numpy())[0])
        raise UserError(f"{source} line {rows.index[where] + 2}: image {rows['image_id'].iat[where]} is not a test "
                        f"image of this data set")
    added = pd.DataFrame({"image_id": rows["image_id"], "target": rows["target"], "group": rows["image_id"],
                          "fold": -1})
    return pd.concat([train_rows, added[[c for c in train_rows.columns if c in added]]], ignore_index=True)


TEST_FILE = "test_fold_"


def read_test_predictions(model_dir):
    """{fold: (image ids, probabilities)} of one model's test prediction files."""
    found = {}
    for path in sorted(model_dir.glob(f"{TEST_FILE}*.csv")):
        fold = path.stem[len(TEST_FILE):]
        if fold.isdigit():
            header = path.open(encoding="utf-8").readline().strip().split(",")
            if "prediction" not in header:  # prediction_<label> columns: a multi-label or multi-class model
                shown = ", ".join(h for h in header if h.startswith("prediction"))
                raise UserError(f"{path}: one probability per label or class ({shown}); pseudo-labels are made for a "
                                f"binary target only")
            frame = read_prediction_file(path, ["image_id", "prediction"])
            found[int(fold)] = (frame["image_id"].tolist(), frame["prediction"].to_numpy())
    return found
