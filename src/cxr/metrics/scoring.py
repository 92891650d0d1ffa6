"""A submission scored against the test side's truth, as the organizers score it once the
competition is over (make_kaggle_multiclass.py and make_challenge_layouts.py write it beside
the data set as <name>_test_truth.csv): rows matched by id, the truth's label column read as a
training table's (class names: multi-class; 0/1: binary), the submission's probability columns
(one per class, or one) or its column of class names."""
import numpy as np

from cxr.errors import UserError


def read_scored_pair(submission_path, truth_path):
    """(one-hot or 0/1 truth (n, classes) or (n, 1), probabilities of the same shape, class names
    ([''] for binary)) of a submission and a truth file, rows matched by id; a UserError naming
    the file and line of an id found in one and not the other, or of a value that is no probability."""
    from cxr.data.ids import id_column
    from cxr.data.layouts import class_targets, holds_classes, label_columns, read_csv

    truth, submission = read_csv(truth_path), read_csv(submission_path)
    truth_id, submission_id = id_column(truth, truth_path), id_column(submission, submission_path)
    label = label_columns(truth, truth_path, "", truth_id)[0]
    truth_ids = truth[truth_id].str.strip().tolist()
    rows = {image_id: row for row, image_id in enumerate(submission[submission_id].str.strip())}
    missing = [(line, i) for line, i in enumerate(truth_ids, start=2) if i not in rows]
    if missing:
        raise UserError(f"{submission_path}: no row for {missing[0][1]} ({truth_path} line {missing[0][0]}) and "
                        f"{len(missing) - 1} more")
    extra = sorted(set(rows) - set(truth_ids))
    if extra:
        raise UserError(f"{submission_path} line {rows[extra[0]] + 2}: {extra[0]} is not in {truth_path}")
    submission = submission.iloc[[rows[i] for i in truth_ids]].reset_index(drop=True)
    values = [c for c in submission.columns if c != submission_id]
    if holds_classes(truth[label]):
        targets, _ = class_targets(truth[label], truth_path, label)
        classes = [c[len("target_"):] for c in targets]
        truth_matrix = np.column_stack(list(targets.values()))
        if len(values) == 1:  # one column for several classes: a class name per row
            names = submission[values[0]].str.strip()
            unknown = np.flatnonzero(~names.isin(classes))
            if len(unknown):
                raise UserError(f"{submission_path} line {rows[truth_ids[unknown[0]]] + 2}: '{names[unknown[0]]}' is "
                                f"not a class of {truth_path} ({', '.join(classes)})")
            probabilities = np.column_stack([(names == c).astype(float) for c in classes])
        else:
            lost = sorted(set(classes) - set(values))
            if lost:
                raise UserError(f"{submission_path}: no column for class {lost[0]} (columns: {', '.join(values)})")
            probabilities = probability_matrix(submission, classes, submission_path)
        return truth_matrix, probabilities, classes
    from cxr.data.layouts import binary_targets

    if len(values) != 1:
        raise UserError(f"{submission_path}: {len(values)} prediction columns for a binary truth ({truth_path})")
    targets = np.asarray(binary_targets(truth[label], truth_path, label), dtype=float)[:, None]
    return targets, probability_matrix(submission, values, submission_path), [""]


def probability_matrix(table, columns, path):
    """(n, columns) floats in [0, 1]; a UserError naming the line of the first that is not."""
    import pandas as pd

    values = table[columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    bad = ~(np.isfinite(values) & (values >= 0) & (values <= 1))
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise UserError(f"{path} line {row + 2}: '{table[columns[column]].iloc[row]}' in column {columns[column]} is "
                        f"not a probability")
    return values
