"""The names of a table's label columns: target (binary), target_<label> (multi-label), or
target_<class> one-hot beside a class_name column (multi-class); the task they make, and the
prediction column and label name that go with each."""

CLASS_COLUMN = "class_name"  # a multi-class table's class of each row, beside its one-hot target_<class> columns
TASKS = ("binary", "multilabel", "multiclass")


def target_columns(table):
    """A table's target column(s): ['target'] for a binary task, else its 'target_<label>'
    columns (one 0/1 column per label, or per class of a multi-class task), in table order."""
    if "target" in table:
        return ["target"]
    return [c for c in table.columns if c.startswith("target_")]


def task_of(table):
    """binary (one target), multiclass (one-hot targets and a class_name column: exactly one class
    per image, softmax) or multilabel (any number of labels per image, one sigmoid each)."""
    if "target" in table:
        return "binary"
    return "multiclass" if CLASS_COLUMN in table else "multilabel"


def prediction_column(target_column):
    """The prediction column that goes with a target column: target -> prediction, target_x -> prediction_x."""
    return "prediction" + target_column[len("target"):]


def label_name(target_column):
    """The label a target column holds ('' for the binary target)."""
    return target_column[len("target_"):]


def auc_averaged(task):
    """What a task's AUC averages, as a summary line says it ('' for a binary target)."""
    return {"multilabel": " (mean over labels)", "multiclass": " (macro over classes)"}.get(task, "")
