"""The training hyperparameter search behind tune.py: its search space, one trial as a real
train.py run watched epoch by epoch, stale trials of killed processes, and the best settings
written as files train.py and run.sh take.

Each trial runs `python src/train.py <base flags> <the trial's settings>` in its own process
(what the user would run, so a trial measures exactly that), writing into the study's own
folders (never the experiment's oof/). The trial reads the run's log.csv after every epoch,
reports the validation AUC to Optuna and stops the run when the pruner says so."""
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from cxr.config import TrainConfig
from cxr.models.kinds import OBJECT_KINDS

SEARCHABLE = ("lr", "weight_decay", "aug", "img_size", "optimizer", "schedule", "ema")
LEARNING_RATES = {"adamw": (1e-4, 1e-2), "sgd": (1e-3, 2e-1)}  # SGD needs ~10x AdamW's rate
# Settings of the trials' runs that are the study's, not the model's: they stay out of the best settings.
STUDY_OWNED = ("exp", "weights_dir", "oof_dir", "tb_dir", "tensorboard", "heatmaps", "fold", "resume")
SRC = Path(__file__).resolve().parents[2]  # src/: where train.py is


def default_sizes(img_size):
    """Image sizes to try around the base size: 2/3, 1 and 4/3 of it, multiples of 8 (at least 16)."""
    return sorted({max(16, int(round(img_size * factor / 8)) * 8) for factor in (2 / 3, 1, 4 / 3)} | {img_size})


def suggest(trial, space, sizes):
    """{setting: value} of one trial, for the settings named in `space` (SEARCHABLE's names)."""
    chosen = {}
    if "optimizer" in space:
        chosen["optimizer"] = trial.suggest_categorical("optimizer", ["adamw", "sgd"])
    if "lr" in space:  # its range depends on the optimizer: one parameter per optimizer keeps TPE's models apart
        optimizer = chosen.get("optimizer", "adamw")
        chosen["lr"] = trial.suggest_float(f"lr_{optimizer}", *LEARNING_RATES[optimizer], log=True)
    if "weight_decay" in space:
        chosen["weight_decay"] = trial.suggest_float("weight_decay", 1e-6, 1e-1, log=True)
    if "aug" in space:
        chosen["aug"] = trial.suggest_categorical("aug", ["none", "basic", "shift"])
    if "img_size" in space:
        chosen["img_size"] = trial.suggest_categorical("img_size", list(sizes))
    if "schedule" in space:
        chosen["schedule"] = trial.suggest_categorical("schedule", ["cosine", "onecycle", "constant"])
    if "ema" in space:
        chosen["ema"] = trial.suggest_categorical("ema", [False, True])
    return chosen


def as_parameters(settings, space):
    """The Optuna parameters that give `settings` (a TrainConfig): to enqueue the base settings as a trial."""
    params = {name: getattr(settings, name) for name in space if name != "lr"}
    if "lr" in space:
        params[f"lr_{settings.optimizer}"] = settings.lr
    return params


def flags_of(values, digits=None):
    """train.py flags for {setting: value} (numbers to `digits` significant digits: for people)."""
    flags = []
    for name, value in values.items():
        option = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(option if value else f"--no-{name.replace('_', '-')}")
        else:
            flags += [option, f"{value:.{digits}g}" if digits and isinstance(value, float) else str(value)]
    return flags


def explicit_settings(cfg):
    """The settings of `cfg` that differ from TrainConfig's defaults (the base the user gave)."""
    defaults = asdict(TrainConfig())
    return {k: v for k, v in asdict(cfg).items() if v != defaults[k]}


def die_with_parent():
    """In the child, before exec: the kernel kills a trial's train.py when tune.py dies (Linux), so a
    killed search leaves no run behind writing into its folders."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def epoch_aucs(log_csv):
    """The selection score of each epoch train.py has logged so far ([] before the first): its
    validation AUC, or under train.py --metric the metric's value (negated when lower is better:
    val_score), so a trial is searched on the metric its runs select by."""
    import pandas as pd

    try:
        log = pd.read_csv(log_csv)
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return []
    scores = log["val_score"].replace(-np.inf, np.nan) if "val_score" in log else log["val_auc"]  # -inf: not validated
    return [float(v) for v in scores]


class Pruned(Exception):
    """The pruner stopped the trial's run after epoch `epoch`."""


def run_trial(command, log_csv, output, report, should_prune, epochs=None, poll=0.5):
    """Run train.py `command` (its output to the file `output`), calling report(auc, epoch) for each
    epoch as it is logged; kill the run and raise Pruned when should_prune() says so (not after the
    last of `epochs`: its cost is paid, and a finished trial tells the sampler more). Returns the
    validation AUCs of its epochs; a run that fails raises RuntimeError with its last lines."""
    seen = 0
    Path(log_csv).unlink(missing_ok=True)  # an earlier run's log (a study started over) is not this run's epochs
    with open(output, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
                                   env={**os.environ, "TQDM_DISABLE": "1"})
        try:
            while True:
                finished = process.poll() is not None
                aucs = epoch_aucs(log_csv)
                for epoch in range(seen + 1, len(aucs) + 1):
                    if not np.isfinite(aucs[epoch - 1]):  # an epoch between --val-every validations
                        continue
                    report(aucs[epoch - 1], epoch)
                    last = epoch == epochs or (finished and epoch == len(aucs))
                    if not last and should_prune():
                        raise Pruned(epoch)
                seen = len(aucs)
                if finished:
                    break
                time.sleep(poll)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    if process.returncode != 0:
        tail = Path(output).read_text().strip().splitlines()[-3:]
        raise RuntimeError(f"train.py exited {process.returncode}: {' | '.join(tail)}")
    return epoch_aucs(log_csv)


def trial_command(base_flags, chosen, exp, folder):
    """The train.py command of a run `exp` of the study: the base flags, the run's settings, the study's folders."""
    return [sys.executable, str(SRC / "train.py"), *base_flags, *flags_of(chosen), "--exp", exp,
            "--weights-dir", str(folder / "weights"), "--oof-dir", str(folder / "oof"), "--no-tensorboard",
            "--heatmaps", "off"]


def trial_exp(number):
    return f"trial_{number:04d}"


def confirm(base_flags, base_settings, best_settings, folds, folder, model_name):
    """The base and the best settings trained again on other `folds` (the best of many trials on one
    fold leans optimistic): [{fold, base_auc, best_auc, difference, low, high, p_value}] from the OOF
    predictions of both on the same images (paired DeLong test, metrics/auc.py delong_test)."""
    import pandas as pd

    rows = []
    for fold in folds:
        predictions = {}
        for name, settings in (("base", base_settings), ("best", best_settings)):
            exp = f"confirm_{name}"
            flags = [*base_flags, "--fold", str(fold)]
            run_trial(trial_command(flags, settings, exp, folder),
                      folder / "weights" / exp / model_name / f"fold_{fold}" / "log.csv",
                      folder / "logs" / f"{exp}_fold_{fold}.log", lambda *_: None, lambda: False)
            predictions[name] = pd.read_csv(folder / "oof" / exp / model_name / f"fold_{fold}.csv")
        rows.append({"fold": fold, "images": len(predictions["base"]), **paired_comparison(predictions["base"],
                                                                                          predictions["best"])})
    return rows


def paired_comparison(base, best):
    """{base_auc, best_auc, difference, low, high, p_value} of two OOF frames of the same images: a
    binary target by DeLong's paired test; several label or class columns by their mean AUC (the
    task's selection AUC), the interval and p-value left NaN (DeLong's test is of one AUC)."""
    from cxr.data.labels import prediction_column, target_columns
    from cxr.metrics.auc import delong_test, mean_auc

    columns = target_columns(base)
    if columns == ["target"]:
        test = delong_test(base["target"].to_numpy(), best["prediction"].to_numpy(), base["prediction"].to_numpy())
        return {"base_auc": test["auc_b"], "best_auc": test["auc_a"], "difference": test["difference"],
                "low": test["low"], "high": test["high"], "p_value": test["p_value"]}
    predicted = [prediction_column(c) for c in columns]
    base_auc, best_auc = (mean_auc(frame[columns].to_numpy(), frame[predicted].to_numpy()) for frame in (base, best))
    return {"base_auc": base_auc, "best_auc": best_auc, "difference": best_auc - base_auc, "low": np.nan,
            "high": np.nan, "p_value": np.nan}


def objective_value(aucs, select):
    """The trial's score: the validation AUC of the weights train.py keeps (--select best: the best epoch's)."""
    finite = [a for a in aucs if np.isfinite(a)]
    if not finite:
        raise RuntimeError("no epoch had a validation AUC (one class in the validation fold?)")
    return max(finite) if select == "best" else finite[-1]


def this_process():
    return {"host": socket.gethostname(), "pid": os.getpid()}


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def orphaned(trial):
    """Whether a RUNNING trial belongs to a process on this machine that no longer exists (a killed
    search); trials of other machines are left to the storage's heartbeat."""
    owner = trial.user_attrs
    return owner.get("host") == socket.gethostname() and not alive(int(owner.get("pid", -1)))


def recover_orphans(study):
    """Mark the RUNNING trials of killed searches on this machine failed and queue their settings
    again: a resumed search retries what was cut off. Returns their numbers."""
    from optuna.trial import TrialState

    recovered = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if orphaned(trial):
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
            recovered.append(trial.number)
    return recovered


MAP_RUN_SH = {"img_size": "map_img_size", "epochs": "map_epochs", "batch_size": "map_batch_size"}


def best_files(study, base, folder, arch, fold):
    """Write the best trial's settings: best.yaml (train.py --config) and run.yaml (CONFIG= for run.sh:
    its top-level keys, the arch, and a train: section, map_* for a map model). Returns their paths."""
    import yaml

    from cxr.artifacts import atomic_path
    from cxr.run_file import RUN_SH_SETS

    best = study.best_trial
    settings = {k: v for k, v in {**base, **best.user_attrs["settings"]}.items() if k not in STUDY_OWNED}
    if not settings.get("lr_batch"):  # the rate was tuned at this batch: run.sh's --lr-batch must not rescale it
        defaults = TrainConfig()
        settings["lr_batch"] = settings.get("batch_size", defaults.batch_size) * settings.get("accumulate", 1)
    is_map = settings.get("kind") in OBJECT_KINDS
    rename = MAP_RUN_SH if is_map else {}
    run_sh = {rename.get(k, k): v for k, v in settings.items() if k in RUN_SH_SETS and k not in ("arch", "kind")}
    section = {k: v for k, v in settings.items() if k not in RUN_SH_SETS}
    detector = settings.get("kind") == "detector"  # run.sh trains it from det_archs, with the map models' settings
    experiment = {"exp": study.study_name, **run_sh, "archs": [] if is_map else [arch],
                  "map_archs": [arch] if is_map and not detector else [], **({"det_archs": [arch]} if detector else {}),
                  "map_train" if is_map else "train": section}
    header = (f"# tune.py study '{study.study_name}': trial {best.number}, validation AUC {best.value:.4f} on fold "
              f"{fold}; {len(finished_trials(study))} trials finished\n")
    paths = folder / "best.yaml", folder / "run.yaml"
    for path, content in zip(paths, (settings, experiment)):
        with atomic_path(path) as tmp:
            tmp.write_text(header + yaml.safe_dump(content, sort_keys=False))
    return paths


def finished_trials(study):
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def build_study(args, name, folder, storage_url):
    import optuna

    folder.mkdir(parents=True, exist_ok=True)
    # a process on another machine that dies stops its heartbeat: after grace_period its trial is failed and retried
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2)
    storage = optuna.storages.RDBStorage(storage_url, heartbeat_interval=30, grace_period=120,
                                         heartbeat_stale_trial_callback=retry)
    pruner = {"median": lambda: optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=2),
              "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1),
              "none": optuna.pruners.NopPruner}[args.pruner]()
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize", pruner=pruner,
                                sampler=optuna.samplers.TPESampler(seed=args.sampler_seed, n_startup_trials=6),
                                load_if_exists=True)
    if study.trials:  # joining or resuming: a seed of its own, or it would propose what the first process did
        study.sampler = optuna.samplers.TPESampler(seed=None, n_startup_trials=6)
    return study


def objective_of(base_flags, base_cfg, space, sizes, folder):
    import optuna


    def objective(trial):
        chosen = suggest(trial, space, sizes)
        trial.set_user_attr("settings", chosen)
        for key, value in this_process().items():
            trial.set_user_attr(key, value)
        exp = trial_exp(trial.number)
        log_csv = folder / "weights" / exp / base_cfg.model_name / f"fold_{base_cfg.fold}" / "log.csv"
        (folder / "logs").mkdir(exist_ok=True)
        output = folder / "logs" / f"{exp}.log"
        command = trial_command(base_flags, chosen, exp, folder)
        shown = " ".join(flags_of(chosen, digits=3))
        try:
            aucs = run_trial(command, log_csv, output, trial.report, trial.should_prune, base_cfg.epochs)
        except Pruned as pruned:
            print(f"trial {trial.number}: pruned after epoch {pruned.args[0]} ({shown})", flush=True)
            raise optuna.TrialPruned() from None
        except RuntimeError as err:
            print(f"trial {trial.number}: failed ({shown}): {err}; see {output}", flush=True)
            raise
        value = objective_value(aucs, base_cfg.select)
        print(f"trial {trial.number}: validation AUC {value:.4f} after {len(aucs)} epochs ({shown})", flush=True)
        return value

    return objective


def write_reports(study, base, folder, arch, fold):
    """trials.csv, the best settings' files, search.png (every trial's AUC per epoch and in order) and
    importance.png (fANOVA importance of each setting, once there are enough trials)."""
    import warnings

    from optuna.visualization import matplotlib as plots

    from cxr.artifacts import write_csv
    from cxr.figures import search_figure, save_figure

    write_csv(folder / "trials.csv", study.trials_dataframe())
    written = [folder / "trials.csv", *best_files(study, base, folder, arch, fold)]
    trials = [{"number": t.number, "state": t.state.name, "value": t.value, "curve": t.intermediate_values}
              for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    search_figure(trials, folder / "search.png", f"study {study.study_name}: {len(trials)} trials on fold {fold}")
    written.append(folder / "search.png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna's "experimental" notes
        try:
            axes = plots.plot_param_importances(study)
        except (ValueError, RuntimeError) as err:  # it needs two or more finished trials that differ
            print(f"importance.png: not drawn ({err})")
            return written
    axes.figure.set_size_inches(7, 4.5)
    axes.figure.tight_layout()  # room for the settings' names
    save_figure(axes.figure, folder / "importance.png")
    return [*written, folder / "importance.png"]


def confirm_on_other_folds(folds, train_flags, first, best, folder, base_cfg):
    """tune.py --confirm-folds: the base (trial 0) and best settings on other folds, printed and in confirm.csv."""
    import pandas as pd

    from cxr.artifacts import write_csv

    rows = confirm(train_flags, first.user_attrs["settings"], best.user_attrs["settings"], folds, folder,
                          base_cfg.model_name)
    for row in rows:
        tested = (f"[{row['low']:+.4f}, {row['high']:+.4f}], p = {row['p_value']:.3g} (paired DeLong, "
                  if np.isfinite(row["low"]) else "(mean AUC over the labels or classes, no paired test; ")
        print(f"confirm fold {row['fold']}: base {row['base_auc']:.4f}, best {row['best_auc']:.4f}, difference "
              f"{row['difference']:+.4f} {tested}{row['images']} images)")
    write_csv(folder / "confirm.csv", pd.DataFrame(rows))
    return folder / "confirm.csv"
