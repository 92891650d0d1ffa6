"""Search the training settings of one model on one fold: an Optuna study whose every trial is a
real train.py run, pruned on its validation AUC epoch by epoch.

    python src/tune.py --trials 20 --timeout 1800 --dataset pneumoniamnist --arch resnet18 --img-size 32 --epochs 5
    python src/tune.py --study pm --trials 40 ...     # the same again: resumes the study (the killed trial is retried)
    python src/tune.py --storage postgresql://host/db --study pm ...   # one study, processes on several machines

Any train.py flag (--dataset, --arch, --fold, --epochs, --config FILE, ...) sets the base settings
every trial starts from; the search varies --space (learning rate per optimizer, weight decay,
augmentation none/basic/shift, image size from --img-sizes, AdamW or SGD with momentum, schedule,
EMA). The base settings themselves are the first trial, so the study measures them beside the
best it finds, on the same fold. TPE samples; the median pruner (or Hyperband) stops a run whose
validation AUC after an epoch trails the other trials' at that epoch. Every finished trial is in
the storage (SQLite by default): running the command again continues the study up to --trials
finished trials, and processes given the same --storage and --study share the work.

Writes tune/<study>/ (--out-dir): best.yaml (the best settings: `train.py --config`), run.yaml
(the same as an experiment file: `CONFIG=tune/<study>/run.yaml bash run.sh`), trials.csv,
search.png (every trial's validation AUC per epoch, pruned ones dashed, and each trial's AUC
with the best so far), importance.png (fANOVA importance of each setting), study.db, and each
trial's run (weights/, oof/, logs/trial_<n>.log), kept apart from the experiment's oof/ so
blend.py never mistakes a trial for a model.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cxr.config import Parser  # noqa: E402
from cxr.errors import UserError, exit_on_user_error  # noqa: E402

SEARCHABLE = ("lr", "weight_decay", "aug", "img_size", "optimizer", "schedule", "ema")  # training_search.SEARCHABLE


def parse(argv):
    parser = Parser(description=__doc__)
    parser.add_argument("--study", default="", help="study name (default: <dataset>_<arch>_fold<k>)")
    parser.add_argument("--storage", default="", metavar="URL", help="Optuna RDB storage (default: "
                        "sqlite:///<out-dir>/<study>/study.db); the same URL and --study from several processes or "
                        "machines share one study")
    parser.add_argument("--trials", type=int, default=20, help="finished (complete or pruned) trials the study should "
                        "reach, counting those of earlier runs")
    parser.add_argument("--timeout", type=float, default=0, metavar="SECONDS", help="stop starting trials after this "
                        "long (0 = no limit)")
    parser.add_argument("--pruner", choices=("median", "hyperband", "none"), default="median",
                        help="median: stop a run whose AUC after an epoch is below the median of the earlier trials' "
                             "at that epoch (once 4 trials have finished, from epoch 2); hyperband: successive halving")
    parser.add_argument("--space", nargs="+", choices=SEARCHABLE, default=list(SEARCHABLE), metavar="SETTING",
                        help=f"the settings to search (default: all of {', '.join(SEARCHABLE)})")
    parser.add_argument("--img-sizes", type=int, nargs="+", default=None, metavar="PX",
                        help="image sizes to try (default: 2/3, 1 and 4/3 of --img-size)")
    parser.add_argument("--sampler-seed", type=int, default=0, help="the TPE sampler's seed for a new study (--seed "
                        "is train.py's); a process that joins or resumes a study draws a seed of its own")
    parser.add_argument("--confirm-folds", type=int, nargs="+", default=[], metavar="K",
                        help="after the search, train the base and the best settings on these folds too and compare "
                             "them on the same images (paired DeLong test): the best of many trials on one fold leans "
                             "optimistic")
    parser.add_argument("--out-dir", default="tune", metavar="DIR", help="the study's folder is <out-dir>/<study>/")
    args, train_flags = parser.parse_known_args(argv)
    if args.trials < 1:
        parser.error("--trials: 1 or more")
    return args, train_flags


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

    from cxr.diagnosis import training_search

    def objective(trial):
        chosen = training_search.suggest(trial, space, sizes)
        trial.set_user_attr("settings", chosen)
        for key, value in training_search.this_process().items():
            trial.set_user_attr(key, value)
        exp = training_search.trial_exp(trial.number)
        log_csv = folder / "weights" / exp / base_cfg.model_name / f"fold_{base_cfg.fold}" / "log.csv"
        (folder / "logs").mkdir(exist_ok=True)
        output = folder / "logs" / f"{exp}.log"
        command = training_search.trial_command(base_flags, chosen, exp, folder)
        shown = " ".join(training_search.flags_of(chosen, digits=3))
        try:
            aucs = training_search.run_trial(command, log_csv, output, trial.report, trial.should_prune, base_cfg.epochs)
        except training_search.Pruned as pruned:
            print(f"trial {trial.number}: pruned after epoch {pruned.args[0]} ({shown})", flush=True)
            raise optuna.TrialPruned() from None
        except RuntimeError as err:
            print(f"trial {trial.number}: failed ({shown}): {err}; see {output}", flush=True)
            raise
        value = training_search.objective_value(aucs, base_cfg.select)
        print(f"trial {trial.number}: validation AUC {value:.4f} after {len(aucs)} epochs ({shown})", flush=True)
        return value

    return objective


def write_reports(study, base, folder, arch, fold):
    """trials.csv, the best settings' files, search.png (every trial's AUC per epoch and in order) and
    importance.png (fANOVA importance of each setting, once there are enough trials)."""
    import warnings

    from optuna.visualization import matplotlib as plots

    from cxr.diagnosis import training_search
    from cxr.artifacts import write_csv
    from cxr.figures import search_figure, save_figure

    write_csv(folder / "trials.csv", study.trials_dataframe())
    written = [folder / "trials.csv", *training_search.best_files(study, base, folder, arch, fold)]
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


@exit_on_user_error
def main(argv=None):
    args, train_flags = parse(argv)
    import warnings

    import optuna

    from cxr.diagnosis import training_search
    from cxr.config import parse_config

    base_cfg = parse_config(train_flags)  # every base flag checked as train.py would, before any trial starts
    if base_cfg.overfit_batches or base_cfg.resume:
        raise UserError("--overfit-batches and --resume are not settings to tune from")
    if base_cfg.fold in args.confirm_folds:
        raise UserError(f"--confirm-folds: fold {base_cfg.fold} is the fold the search chooses on; name other folds")
    name = args.study or f"{base_cfg.dataset}_{base_cfg.model_name}_fold{base_cfg.fold}"
    folder = Path(args.out_dir) / name
    sizes = sorted({*(args.img_sizes or training_search.default_sizes(base_cfg.img_size)), base_cfg.img_size})
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    storage = args.storage or f"sqlite:///{folder / 'study.db'}"
    study = build_study(args, name, folder, storage)
    retried = training_search.recover_orphans(study)
    if retried:
        print(f"resuming: trial(s) {', '.join(map(str, retried))} of a killed search queued again")
    if not study.trials:  # the base settings first: the search's yardstick, on the same fold
        study.enqueue_trial(training_search.as_parameters(base_cfg, args.space), skip_if_exists=True)
    done = len(training_search.finished_trials(study))
    print(f"study {name}: {done} of {args.trials} trials finished; searching {', '.join(args.space)}"
          f"{f' (sizes {sizes})' if 'img_size' in args.space else ''} with {args.pruner} pruning on fold {base_cfg.fold}; storage {storage}")
    if done < args.trials:
        from optuna.study import MaxTrialsCallback
        from optuna.trial import TrialState

        study.optimize(objective_of(train_flags, base_cfg, args.space, sizes, folder), timeout=args.timeout or None,
                       callbacks=[MaxTrialsCallback(args.trials, states=(TrialState.COMPLETE, TrialState.PRUNED))],
                       catch=(RuntimeError,))
    if not any(t.value is not None for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))):
        raise UserError(f"study {name}: no trial has completed yet (see {folder / 'logs'})")
    best, first = study.best_trial, study.trials[0]
    written = write_reports(study, training_search.explicit_settings(base_cfg), folder, base_cfg.arch, base_cfg.fold)
    counts = {state.name.lower(): sum(t.state == state for t in study.trials)
              for state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)}
    base_auc = f"{first.value:.4f}" if first.value is not None else f"not complete ({first.state.name.lower()})"
    print(f"trials: {counts['complete']} complete, {counts['pruned']} pruned, {counts['fail']} failed")
    print(f"base settings (trial 0): validation AUC {base_auc}")
    print(f"best (trial {best.number}): validation AUC {best.value:.4f}: {' '.join(training_search.flags_of(best.user_attrs['settings'], digits=3))}")
    if args.confirm_folds:
        written.append(confirm_on_other_folds(args.confirm_folds, train_flags, first, best, folder, base_cfg))
    else:
        print(f"the best of {counts['complete']} trials on one fold leans optimistic: confirm it on other folds "
              f"(--confirm-folds K ..., or python src/train.py --config {folder / 'best.yaml'} --fold K)")
    print(f"wrote {', '.join(map(str, written))}")


def confirm_on_other_folds(folds, train_flags, first, best, folder, base_cfg):
    """tune.py --confirm-folds: the base (trial 0) and best settings on other folds, printed and in confirm.csv."""
    import pandas as pd

    from cxr.diagnosis import training_search
    from cxr.artifacts import write_csv

    rows = training_search.confirm(train_flags, first.user_attrs["settings"], best.user_attrs["settings"], folds, folder,
                          base_cfg.model_name)
    for row in rows:
        print(f"confirm fold {row['fold']}: base {row['base_auc']:.4f}, best {row['best_auc']:.4f}, difference "
              f"{row['difference']:+.4f} [{row['low']:+.4f}, {row['high']:+.4f}], p = {row['p_value']:.3g} "
              f"(paired DeLong, {row['images']} images)")
    write_csv(folder / "confirm.csv", pd.DataFrame(rows))
    return folder / "confirm.csv"


if __name__ == "__main__":
    main()
