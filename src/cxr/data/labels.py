"""The names of a table's label columns: target (binary) or target_<label> (multi-label),
and the prediction column and label name that go with each."""


def target_columns(table):
    """A table's target column(s): ['target'] for a binary task, else its multi-label
    'target_<label>' columns (one binary column per label), in table order."""
    if "target" in table:
        return ["target"]
    return [c for c in table.columns if c.startswith("target_")]


def prediction_column(target_column):
    """The prediction column that goes with a target column: target -> prediction, target_x -> prediction_x."""
    return "prediction" + target_column[len("target"):]


def label_name(target_column):
    """The label a target column holds ('' for the binary target)."""
    return target_column[len("target_"):]
