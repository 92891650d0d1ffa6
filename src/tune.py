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
from cxr.diagnosis.hyperparameter_search import (SEARCHABLE, build_study, confirm_on_other_folds,  # noqa: E402
                                           objective_of, write_reports)


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


@exit_on_user_error
def main(argv=None):
    args, train_flags = parse(argv)
    import warnings

    import optuna

    from cxr.diagnosis import hyperparameter_search
    from cxr.config import parse_config

    base_cfg = parse_config(train_flags)  # every base flag checked as train.py would, before any trial starts
    if base_cfg.overfit_batches or base_cfg.resume:
        raise UserError("--overfit-batches and --resume are not settings to tune from")
    if base_cfg.fold in args.confirm_folds:
        raise UserError(f"--confirm-folds: fold {base_cfg.fold} is the fold the search chooses on; name other folds")
    name = args.study or f"{base_cfg.dataset}_{base_cfg.model_name}_fold{base_cfg.fold}"
    folder = Path(args.out_dir) / name
    sizes = sorted({*(args.img_sizes or hyperparameter_search.default_sizes(base_cfg.img_size)), base_cfg.img_size})
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    storage = args.storage or f"sqlite:///{folder / 'study.db'}"
    study = build_study(args, name, folder, storage)
    retried = hyperparameter_search.recover_orphans(study)
    if retried:
        print(f"resuming: trial(s) {', '.join(map(str, retried))} of a killed search queued again")
    if not study.trials:  # the base settings first: the search's yardstick, on the same fold
        study.enqueue_trial(hyperparameter_search.as_parameters(base_cfg, args.space), skip_if_exists=True)
    done = len(hyperparameter_search.finished_trials(study))
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
    written = write_reports(study, hyperparameter_search.explicit_settings(base_cfg), folder, base_cfg.arch, base_cfg.fold)
    counts = {state.name.lower(): sum(t.state == state for t in study.trials)
              for state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)}
    base_auc = f"{first.value:.4f}" if first.value is not None else f"not complete ({first.state.name.lower()})"
    print(f"trials: {counts['complete']} complete, {counts['pruned']} pruned, {counts['fail']} failed")
    print(f"base settings (trial 0): validation AUC {base_auc}")
    print(f"best (trial {best.number}): validation AUC {best.value:.4f}: {' '.join(hyperparameter_search.flags_of(best.user_attrs['settings'], digits=3))}")
    if args.confirm_folds:
        written.append(confirm_on_other_folds(args.confirm_folds, train_flags, first, best, folder, base_cfg))
    else:
        print(f"the best of {counts['complete']} trials on one fold leans optimistic: confirm it on other folds "
              f"(--confirm-folds K ..., or python src/train.py --config {folder / 'best.yaml'} --fold K)")
    print(f"wrote {', '.join(map(str, written))}")


if __name__ == "__main__":
    main()
