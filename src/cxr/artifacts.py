"""Where every artifact lives, and how it is written (atomically: temp file, then rename)."""
import errno
import fnmatch
import glob
import json
import os
import re
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from cxr.errors import UserError


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    A write that fails for want of space or permission is one UserError naming the file, and
    the old file stays as it was. The new file gets the mode a plain open() would (0666 less
    the umask: teammates on a shared cluster can read it). Temporary files that killed runs
    left beside `path` are removed first."""
    path, tmp = Path(path), None
    try:
        with cannot_write(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(path)
            fd, tmp = tempfile.mkstemp(prefix=f"{temporary_prefix(path)}{_HOST}-{os.getpid()}.", suffix=".tmp",
                                       dir=path.parent)
            os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600
            os.close(fd)
        with cannot_write(path, only=WRITE_ERRNOS):  # the block may read, too: its missing inputs are its own errors
            yield Path(tmp)
        with cannot_write(path):
            os.replace(tmp, path)
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)


@contextmanager
def cannot_write(path, only=None):
    """OSErrors (or those with an errno in `only`) -> 'cannot write <path>: <reason>'."""
    try:
        yield
    except OSError as err:
        if only is not None and err.errno not in only:
            raise
        raise UserError(f"cannot write {path}: {err.strerror or err}") from err


_HOST = socket.gethostname().replace(".", "_").replace("-", "_")
STALE_AFTER_S = 24 * 3600  # another machine's temporary file (its process cannot be asked) is left a day


def temporary_prefix(path):
    return f".{Path(path).name}."


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_stale_temporaries(path):
    """Delete `.name.<host>-<pid>.*.tmp` files beside `path` whose process has ended (this host), or
    that are older than a day (another host): what a killed writer left. A live writer's file stays."""
    now = time.time()
    for tmp in Path(path).parent.glob(f"{glob.escape(temporary_prefix(path))}*.tmp"):
        owner = tmp.name[len(temporary_prefix(path)):].split(".")[0]
        host, _, pid = owner.rpartition("-")
        try:
            ended = host == _HOST and pid.isdigit() and not process_alive(int(pid))
            if ended or now - tmp.stat().st_mtime > STALE_AFTER_S:
                tmp.unlink()
        except FileNotFoundError:  # its writer finished or another cleaner got there first
            pass


def process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def write_text(path, text):
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_csv(path, frame, float_format="%.8f"):
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format=float_format)


def write_npz(path, **arrays):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:  # a file object: np.savez would append .npz to a name
            np.savez_compressed(handle, **arrays)


def save_torch(path, obj):
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


# The layout of a run (see README, "Where outputs go").
def folds_file(folds_dir, dataset):
    return Path(folds_dir) / f"{dataset}.csv"


def duplicates_file(folds_dir, dataset):
    return Path(folds_dir) / f"{dataset}_duplicates.csv"


def test_like_file(folds_dir, dataset):
    return Path(folds_dir) / f"{dataset}_test_like.csv"


def shift_report_file(reports_dir, dataset):
    return Path(reports_dir) / dataset / "shift.json"


def skipped_rows_file(reports_dir, dataset):
    return Path(reports_dir) / dataset / "skipped_rows.csv"


def run_dir(weights_dir, exp, model, fold):
    return Path(weights_dir) / exp / model / f"fold_{fold}"


def fold_runs(weights_dir, exp, model, fold):
    """The run folders of one model's fold: its own and, when it was trained with train.py
    --seeds, each further seed's (config.json's seed_runs), whose mean its predictions are."""
    run = run_dir(weights_dir, exp, model, fold)
    config = run / "config.json"
    seeds = json.loads(config.read_text()).get("seed_runs", []) if config.is_file() else []
    return [run, *(run / seed for seed in seeds)]


def list_models(exp_dir, selected):
    """The model folders of an experiment (<oof-dir>/<exp>/), or those matching the names / shell patterns in
    `selected` (blend.py's and pseudo.py's --models), sorted."""
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        raise UserError(f"{exp_dir}: no predictions (run src/train.py for this experiment first)")
    found = sorted(p.name for p in exp_dir.iterdir() if p.is_dir())
    if not selected:
        models = found
    else:
        models = []
        for pattern in selected:
            matches = [m for m in found if fnmatch.fnmatchcase(m, pattern)]
            if not matches:
                raise UserError(f"{exp_dir}: no model matches '{pattern}' (found {', '.join(found) or 'none'})")
            models += [m for m in matches if m not in models]
    if not models:
        raise UserError(f"{exp_dir}: no model folders")
    return sorted(models)  # one order, however they were named: the seeded searches then give one answer


REPOSITORY = Path(__file__).resolve().parents[2]  # src/cxr/artifacts.py -> the checkout's root


def blend_spec_path(submissions_dir, exp):
    """<submissions_dir>/<exp>/blend.json; a relative `submissions_dir` not found from the working
    directory is looked up in the repository, so the scripts work from any folder."""
    path = Path(submissions_dir) / exp / "blend.json"
    if path.is_file() or path.is_absolute() or not (REPOSITORY / path).is_file():
        return path
    return REPOSITORY / path


def spec_runs(spec, spec_path, runs=None):
    """{model name: its fold run folders} of a blend spec: relative to the folder blend.py ran in
    (the working directory then; now the working directory when it holds every run, else the
    folder that holds the spec's submissions folder, so a spec works from any folder), or to the spec's
    own folder when the spec says "runs_relative_to": "spec" (a package written by src/package.py).
    `runs`: another {model name: run folders} of the spec to read alike (weak_folds' dropped_runs)."""
    spec_path = Path(spec_path)
    if spec.get("runs_relative_to") == "spec":
        bases = [spec_path.parent]
    else:  # <root>/submissions/<exp>/blend.json: the runs are under <root>
        bases = [Path(), spec_path.resolve().parents[2] if len(spec_path.resolve().parents) > 2 else Path()]
    runs = {name: spec["runs"][name] for name in spec["models"]} if runs is None else runs
    every = [run for folders in runs.values() for run in folders]
    base = next((b for b in bases if all((b / run).exists() for run in every)), bases[0])  # one tree, never a mix
    return {name: [base / run for run in folders] for name, folders in runs.items()}


def oof_file(oof_dir, exp, model, fold):
    return Path(oof_dir) / exp / model / f"fold_{fold}.csv"


def test_pred_file(oof_dir, exp, model, fold):
    return Path(oof_dir) / exp / model / f"test_fold_{fold}.csv"


def cams_file(oof_dir, exp, model, fold):
    return Path(oof_dir) / exp / model / f"cams_fold_{fold}.npz"


def read_prediction_file(path, columns):
    """An OOF or test prediction file with `columns`, its prediction columns as finite floats;
    a UserError names the file (and the line) that is not."""
    import pandas as pd  # here: the scripts import this module before their --help

    try:
        frame = pd.read_csv(path, dtype={"image_id": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not a readable CSV ({str(err).splitlines()[0]})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)}")
    for column in (c for c in columns if c.startswith("prediction")):
        # float even when the file has no rows (a data set without a test side): an empty column reads as text
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
        bad = ~np.isfinite(frame[column].to_numpy())
        if bad.any():
            raise UserError(f"{path} line {int(np.flatnonzero(bad)[0]) + 2}: {column} is not a finite number")
    return frame


FOLD_FILE = re.compile(r"^fold_(\d+)\.csv$")  # a model's OOF predictions of one fold


def check_against_folds(frame, path, folds, fold, columns):
    """Every row of an OOF file must be an image of `fold` in the fold file, with its target(s)."""
    reference = folds.set_index("image_id")
    for row, (image_id, row_fold) in enumerate(zip(frame["image_id"], frame["fold"])):
        where = f"{path} line {row + 2}: image {image_id}"
        if image_id not in reference.index:
            raise UserError(f"{where} is not in {folds.attrs['source']}")
        if row_fold != fold or reference.at[image_id, "fold"] != fold:
            raise UserError(f"{where} is in fold {row_fold} here but fold {reference.at[image_id, 'fold']} in "
                            f"{folds.attrs['source']}: these OOF files were made with other folds")
        for column in columns:
            target, expected = frame[column].iat[row], reference.at[image_id, column]
            both_unknown = target != target and expected != expected  # NaN on both sides: an ignored uncertain label
            if target != expected and not both_unknown:
                raise UserError(f"{where} has {column} {target} but {expected} in {folds.attrs['source']}")
    expected = set(folds.loc[folds["fold"] == fold, "image_id"])
    if len(frame) != len(expected) or set(frame["image_id"]) != expected:
        raise UserError(f"{path}: covers {frame['image_id'].nunique()} of the {len(expected)} images of fold {fold}")


def read_oof_folds(model_dir, folds, columns, predictions, missing_ok=False):
    """{fold k: its OOF rows} for each fold k of the fold table `folds` of one model
    (<model_dir>/fold_<k>.csv), each file checked against the table: its images, folds and
    target `columns`; `predictions` are the prediction columns that go with them. A missing
    fold is an error, or with `missing_ok` left out."""
    model_dir = Path(model_dir)
    n_folds = folds["fold"].nunique()
    found = sorted(int(FOLD_FILE.match(p.name).group(1)) for p in model_dir.iterdir() if FOLD_FILE.match(p.name))
    missing = sorted(set(range(n_folds)) - set(found))
    if missing and not missing_ok:
        raise UserError(f"{model_dir}: OOF file of fold(s) {', '.join(map(str, missing))} missing "
                        f"(train them: python src/train.py --arch ... --fold {missing[0]})")
    parts = {}
    for fold in sorted(set(range(n_folds)) - set(missing)):
        path = model_dir / f"fold_{fold}.csv"
        parts[fold] = read_prediction_file(path, ["image_id", *columns, "fold", *predictions])
        check_against_folds(parts[fold], path, folds, fold, columns)
    return parts
