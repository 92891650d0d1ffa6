"""An experiment file (configs/*.yaml): run.sh's settings and train.py's, every value checked as the
flag it becomes checks it, turned into shell assignments (src/experiment.py prints them; run.sh
evals them). Keys are run.sh's variables in lower case, plus the train: and map_train: sections."""
import dataclasses
import shlex

from cxr.config import (SUBMISSION_FORMATS, FoldSettings, TrainConfig, arch_problem, checked, read_settings_file,
                        settings_of, unknown_key, value_type)
from cxr.errors import UserError

FIELDS = {f.name: f for cls in (FoldSettings, TrainConfig) for f in dataclasses.fields(cls)}


def text(value, kind, choices=None):
    """The shell word of a checked value (true/false as run.sh's 1/0; numbers as written)."""
    value_checked = checked(value, kind, choices)
    return ("1" if value_checked else "0") if kind is bool else str(value)


def plain(kind, choices=None):
    return lambda value: text(value, kind, choices)


def flag(name):
    """Checked as the make_folds.py / train.py flag --<name> checks its value."""
    return plain(value_type(FIELDS[name]), FIELDS[name].metadata["choices"])


def architecture(value):
    name = text(value, str)
    problem = arch_problem(name)
    if problem:
        raise ValueError(problem)
    return name


def listed(each):
    """A YAML list, each item checked: run.sh's space-separated word list."""
    def check(value):
        if not isinstance(value, list):
            raise ValueError(f"expected a list, got {value!r}")
        return " ".join(each(item) for item in value)
    return check


SETTINGS = {  # key: its check; the run.sh variable is the key in capitals
    "dataset": flag("dataset"), "exp": flag("exp"), "layout": flag("layout"), "skip_bad": flag("skip_bad"),
    "positive_classes": flag("positive_classes"), "label_column": flag("label_column"), "id_column": flag("id_column"),
    "group_column": flag("group_column"), "uncertain": flag("uncertain"),
    "n_folds": flag("n_folds"), "folds": listed(flag("fold")), "test_like": flag("test_like"), "seed": flag("seed"),
    "archs": listed(architecture), "img_size": flag("img_size"), "epochs": flag("epochs"),
    "batch_size": flag("batch_size"), "lr": flag("lr"),
    "map_archs": listed(architecture), "map_img_size": flag("img_size"), "map_max_size": flag("print_map_size"),
    "crop_size": flag("crop_size"), "map_epochs": flag("epochs"), "map_batch_size": flag("batch_size"),
    "map_min_steps": flag("min_steps"), "seeds": flag("seeds"), "det_archs": listed(architecture),
    "trials": plain(int), "bootstrap": plain(int), "metric": flag("metric"), "format": plain(str, SUBMISSION_FORMATS),
    "bn_adapt": plain(bool), "gpus": listed(plain(int)),
}
# train: keys run.sh itself sets on every train.py call: as train: settings they would fight its own.
RUN_SH_SETS = {**{name: f"a run.sh setting: write it as the top-level key {name}" for name in
                  ("dataset", "exp", "layout", "positive_classes", "label_column", "id_column", "group_column", "uncertain",
                   "skip_bad",
                   "img_size", "epochs", "batch_size", "lr", "seed", "seeds", "crop_size", "metric")},
               **{name: "run.sh sets it for each job (from archs, map_archs, det_archs, folds)"
                  for name in ("arch", "fold", "kind")}}
TRAIN_SECTIONS = {"train": "CONFIG_TRAIN_ARGS", "map_train": "CONFIG_MAP_ARGS"}  # shell arrays of train.py flags


def train_flags(values):
    """train.py's flags for checked TrainConfig values."""
    flags = []
    for name, value in values.items():
        option = name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(f"--{option}" if value else f"--no-{option}")
        else:
            flags += [f"--{option}", str(value)]
    return flags


def assignments(path, environ):
    """The shell lines that set run.sh's variables from the experiment file `path`, every value checked
    first (a UserError names the file and key). A variable in `environ` (the user's) is left as it is."""
    lines, seen = [], set()
    for key, value in read_settings_file(path).items():
        name = str(key).replace("-", "_")
        if name in seen:
            raise UserError(f"{path}: {key}: given twice")
        seen.add(name)
        if name in TRAIN_SECTIONS:
            if not isinstance(value, dict):
                raise UserError(f"{path}: {key}: expected a mapping of train.py settings, got {value!r}")
            flags = train_flags(settings_of(value, TrainConfig, f"{path}: {key}", refused=RUN_SH_SETS))
            lines.append(f"{TRAIN_SECTIONS[name]}=({' '.join(map(shlex.quote, flags))})")
            continue
        if name not in SETTINGS:
            raise unknown_key(path, key, [*SETTINGS, *TRAIN_SECTIONS])
        try:
            word = SETTINGS[name](value)
        except ValueError as err:
            raise UserError(f"{path}: {key}: {err}") from None
        variable = name.upper()
        lines.append(f"# {variable}={shlex.quote(environ[variable])} from the environment, not the file's "
                     f"{shlex.quote(word)}" if variable in environ else f"{variable}={shlex.quote(word)}")
    return lines
