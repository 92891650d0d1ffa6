"""The submission formats, found by name. A format is one module of this folder that declares
FORMAT = Format(...): its files, the task it takes, the rule for its ids, the plan that checks and
writes it, and the check of a written file. To add one: write the module (objectcxr.py is the
worked example), add its name to FORMATS below; docs/development.md walks through it.

This file imports nothing heavy: config.py reads the names for --format's choices, and
--help must not wait for pandas. A format's module is imported when it is asked for."""
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

FORMATS = {  # name: the module that declares it
    "objectcxr": "cxr.formats.objectcxr",
    "kaggle": "cxr.formats.kaggle",
    "multilabel": "cxr.formats.multilabel",
    "multiclass": "cxr.formats.multiclass",
    "rsna": "cxr.formats.rsna",
    "vinbig": "cxr.formats.vinbig",
    "siim": "cxr.formats.siim",
}
AUTO = "auto"  # the data set's own: a Kaggle-style test table (test.csv, or only sample_submission.csv) gets kaggle
# (multilabel for several labels, multiclass for classes), else objectcxr
NAMES = (AUTO, *FORMATS)
OBJECT_TASKS = ("boxes", "classed boxes", "masks")  # made from object maps (localization/objects.py), not probabilities


@dataclass(frozen=True)
class Submission:
    """The file blend.py will write, checked before any blending: `write(predictions)` takes the
    test predictions (n images x labels, in the order of the test ids) and writes it validated."""
    path: Path
    write: Callable


@dataclass(frozen=True)
class Format:
    name: str
    task: str  # "binary" (one probability per image), "multilabel" (one per label), "multiclass" (per class),
    # "boxes", "classed boxes" or "masks" (the box and mask competitions: cxr/formats/boxes.py)
    files: tuple  # the files a submission in this format is made of
    ids: str  # the rule for the ids its rows carry, in words
    summary: str  # one line for --help and the docs
    plan: Callable  # plan(out, root, test_ids, labels) -> Submission; a UserError when it cannot be written
    validate: Callable  # validate(path, expected_ids): a UserError naming file and line unless valid
    requires: tuple = ()  # files the data set folder must hold for it, each "a|b" for either (the test table its ids come from)


def get(name):
    """The Format called `name` (a UserError listing the names for an unknown one)."""
    from cxr.errors import UserError

    if name not in FORMATS:
        raise UserError(f"--format {name}: unknown (choose from {', '.join(NAMES)})")
    return importlib.import_module(FORMATS[name]).FORMAT


def resolve(name, root, labels, task=None):
    """The Format for --format `name` on the data set at `root` with `labels` ([''] for a binary
    target) of `task` (labels.TASKS; default: binary or multilabel by the labels): `auto` picks the
    data set's own; `kaggle` on a multi-label or multi-class set means multilabel or multiclass
    (the same sample_submission.csv rules, one column per label or class); a format for another
    task is refused."""
    from cxr.errors import UserError

    from cxr.data.layouts import kaggle_test_table

    from cxr.data.competitions import competition_layout

    task = task or ("binary" if labels == [""] else "multilabel")
    no_test_table = kaggle_test_table(root) is None
    competition = competition_layout(root) if Path(root).is_dir() else None
    if name == AUTO and competition:  # RSNA, VinBigData, SIIM-ACR: their boxes or masks
        name = competition
    elif name == AUTO:
        name = "objectcxr" if no_test_table and task == "binary" else ("kaggle" if task == "binary" else task)
    elif name == "kaggle" and task != "binary":
        name = task
    chosen = get(name)
    if chosen.task in OBJECT_TASKS:  # written from the map models' object maps of that competition's layout
        if competition != chosen.name:
            raise UserError(f"--format {name} writes {chosen.task} learned from that competition's layout; "
                            f"{root} is {'the ' + competition + ' layout' if competition else 'another layout'}: "
                            f"use --format auto")
    elif chosen.task != task:
        fits = [n for n in FORMATS if get(n).task == task]
        words = {"binary": "binary (one target)", "multilabel": "multi-label", "multiclass": "multi-class",
                 "boxes": "box", "classed boxes": "classed-box", "masks": "mask"}
        raise UserError(f"--format {name} is for a {words[chosen.task]} task; this data set is {words[task]}"
                        f"{' (' + ', '.join(labels) + ')' if task != 'binary' else ''}: use --format "
                        f"{' or '.join(fits)}")
    missing = [f for f in chosen.requires if not any((Path(root) / one).is_file() for one in f.split("|"))]
    # no test side at all (an ImageFolder): nothing to submit; blend.py writes the reports and blend.json only
    nothing_to_submit = no_test_table and task != "binary" and not (Path(root) / "test").is_dir()
    if missing and not nothing_to_submit:
        needed = " or ".join(str(Path(root) / one) for one in missing[0].split("|"))
        raise UserError(f"--format {name} needs {needed} (its ids come from it), which this data "
                        f"set does not have: use --format auto")
    return chosen
