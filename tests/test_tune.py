"""tune.py: an Optuna study of real train.py runs, pruned per epoch, resumable after a kill, its best
settings written as files train.py and run.sh take."""
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from conftest import SRC, make_tiny_dataset, run_script

from cxr.diagnosis import hyperparameter_search
from cxr.config import parse_config
from cxr.run_file import assignments

BASE = ["--dataset", "tiny", "--arch", "resnet18", "--img-size", 32, "--epochs", 2, "--batch-size", 8,
        "--tta", "none", "--no-cache"]
SEARCH = ["--space", "lr", "aug", "ema", "--study", "s"]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A search killed (SIGKILL, no cleanup) while its second trial runs, then run again to 3 trials."""
    cwd = make_tiny_dataset(tmp_path_factory.mktemp("tune"), n_train=20, n_dev=4)
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, str(SRC / "tune.py"), "--trials", "3", *SEARCH, *map(str, BASE)]
    search = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    running = cwd / "tune/s/logs/trial_0001.log"
    deadline = time.time() + 300
    while not running.is_file() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    search.send_signal(signal.SIGKILL)  # its train.py dies with it (PR_SET_PDEATHSIG)
    search.wait()
    cut = [t for t in study_of(cwd).trials if t.state == optuna.trial.TrialState.RUNNING]
    result = run_script("tune.py", "--trials", 3, *SEARCH, *BASE, "--confirm-folds", 1, cwd=cwd)
    return cwd, result.stdout, cut


def study_of(cwd):
    return optuna.load_study(study_name="s", storage=f"sqlite:///{cwd / 'tune/s/study.db'}")


@pytest.mark.slow  # over half a minute: CI runs it with -m slow
def test_the_study_runs_real_trials_from_the_base_settings_and_writes_the_best_as_configs(tuned):
    cwd, out, _ = tuned
    study = study_of(cwd)
    finished = hyperparameter_search.finished_trials(study)
    assert len(finished) == 3 and "base settings (trial 0): validation AUC" in out
    assert study.trials[0].user_attrs["settings"] == {"lr": 1e-3, "aug": "basic", "ema": True}  # the defaults first
    for trial in finished:  # each trial is a train.py run in the study's own folders, its AUCs reported per epoch
        log = cwd / f"tune/s/weights/trial_{trial.number:04d}/resnet18/fold_0/log.csv"
        assert log.is_file() and (cwd / f"tune/s/logs/trial_{trial.number:04d}.log").is_file()
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert trial.value == pytest.approx(max(hyperparameter_search.epoch_aucs(log)))
            assert sorted(trial.intermediate_values) == [1, 2]
    assert not (cwd / "oof" / "trial_0000").exists()  # blend.py never sees a trial
    best = study.best_trial.user_attrs["settings"]
    cfg = parse_config(["--config", str(cwd / "tune/s/best.yaml")])
    assert (cfg.lr, cfg.aug, cfg.ema, cfg.img_size, cfg.epochs, cfg.dataset) == \
        (best["lr"], best["aug"], best["ema"], 32, 2, "tiny")
    shell = "\n".join(assignments(cwd / "tune/s/run.yaml", {}))
    assert "ARCHS=resnet18" in shell and "IMG_SIZE=32" in shell and f"--aug {best['aug']}" in shell
    for png in ("search.png", "importance.png"):
        assert (cwd / "tune/s" / png).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow  # over half a minute: CI runs it with -m slow
def test_the_base_and_best_settings_are_compared_again_on_another_fold(tuned):
    import pandas as pd

    from cxr.metrics.auc import roc_auc

    cwd, out, _ = tuned
    row = pd.read_csv(cwd / "tune/s/confirm.csv").iloc[0]
    assert row["fold"] == 1 and f"confirm fold 1: base {row['base_auc']:.4f}, best {row['best_auc']:.4f}" in out
    for name in ("base", "best"):  # each AUC is that run's own OOF AUC on fold 1
        oof = pd.read_csv(cwd / f"tune/s/oof/confirm_{name}/resnet18/fold_1.csv")
        assert (oof["fold"] == 1).all() and row[f"{name}_auc"] == pytest.approx(roc_auc(oof["target"], oof["prediction"]))


@pytest.mark.slow  # over half a minute: CI runs it with -m slow
def test_a_killed_search_resumes_and_retries_the_trial_it_was_running(tuned):
    cwd, out, cut = tuned
    assert [t.number for t in cut] == [1]
    assert "resuming: trial(s) 1 of a killed search queued again" in out
    study = study_of(cwd)
    assert study.trials[1].state == optuna.trial.TrialState.FAIL
    retry = next(t for t in study.trials if t.user_attrs.get("retry_of") == 1)
    assert retry.params == cut[0].params and retry.state != optuna.trial.TrialState.FAIL
    assert len(hyperparameter_search.finished_trials(study)) == 3 and len(study.trials) == 4


def test_a_trial_is_stopped_when_the_pruner_says_so(tmp_path):
    """run_trial watches the run's log.csv: the run is killed after the epoch the pruner rejects."""
    log = tmp_path / "log.csv"
    writer = ("import sys, time\nopen(sys.argv[1], 'w').write('epoch,val_auc\\n')\n"
              "for e in range(1, 20):\n    open(sys.argv[1], 'a').write(f'{e},{0.5 + e / 100}\\n'); time.sleep(0.3)\n")
    reported = []
    with pytest.raises(hyperparameter_search.Pruned) as pruned:
        hyperparameter_search.run_trial([sys.executable, "-c", writer, str(log)], log, tmp_path / "out.log",
                         lambda auc, epoch: reported.append((epoch, auc)), lambda: len(reported) >= 3, poll=0.05)
    assert pruned.value.args[0] == 3 and [e for e, _ in reported] == [1, 2, 3]
    assert reported[0][1] == pytest.approx(0.51)
    time.sleep(0.5)
    assert len(hyperparameter_search.epoch_aucs(log)) < 19  # the run was killed, not left to finish
    with pytest.raises(RuntimeError, match="exited 3"):
        hyperparameter_search.run_trial([sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], log, tmp_path / "o2.log",
                         lambda *a: None, lambda: False)


def test_searchable_settings_are_train_py_settings():
    from cxr.config import TrainConfig

    assert set(hyperparameter_search.SEARCHABLE) <= set(TrainConfig.__dataclass_fields__)
    assert hyperparameter_search.default_sizes(96) == [64, 96, 128]


def test_processes_that_join_a_study_do_not_propose_the_same_settings(tmp_path):
    """A new study is seeded by --sampler-seed; each process that joins it (or resumes it) draws a
    seed of its own, or two workers would propose the same settings trial after trial."""
    import tune

    args, _ = tune.parse(["--sampler-seed", "7"])
    storage = f"sqlite:///{tmp_path / 'study.db'}"

    def first_proposals(study):
        trial = study.ask()
        return [trial.suggest_float(f"x{i}", 0, 1) for i in range(3)]

    fresh = [first_proposals(hyperparameter_search.build_study(args, f"s{i}", tmp_path, storage)) for i in range(2)]
    assert fresh[0] == fresh[1]  # same seed, same first proposals: a new study is reproducible
    joined = [first_proposals(hyperparameter_search.build_study(args, "s0", tmp_path, storage)) for _ in range(2)]
    assert joined[0] != joined[1] and fresh[0] not in joined
