"""One fold trained by two processes (torchrun, gloo on CPU): every validation and test image
predicted exactly once, only rank 0 writing, resume under DDP; and the sharding itself."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import SRC, make_tiny_dataset
from cxr.training.distributed import World, gather_rows, shard
from cxr.metrics.auc import roc_auc

TRAIN = ["--dataset", "tiny", "--exp", "ddp", "--arch", "resnet18", "--fold", "0", "--img-size", "32",
         "--epochs", "2", "--batch-size", "4", "--ema"]


def torchrun(cwd, *args):
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             str(SRC / "train.py"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.parametrize("n, size", [(10, 2), (7, 3), (1, 2), (0, 2)])
def test_shards_are_disjoint_and_cover_every_row_once(n, size):
    shards = [shard(n, World(rank, size)) for rank in range(size)]
    assert sorted(np.concatenate(shards).tolist()) == list(range(n))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert gather_rows(np.arange(n) * 2.0, shard(n, World()), n, World()).tolist() == (np.arange(n) * 2.0).tolist()


@pytest.mark.slow
def test_two_processes_train_one_fold_and_write_every_prediction_once(tmp_path):
    cwd = make_tiny_dataset(tmp_path, n_train=24, n_dev=7)
    out = torchrun(cwd, *TRAIN)
    assert "x 2 processes (DDP)" in out and out.count("summary:") == 1  # rank 0 alone reports and writes
    folds = pd.read_csv(cwd / "folds/tiny.csv")
    oof = pd.read_csv(cwd / "oof/ddp/resnet18/fold_0.csv")
    assert sorted(oof["image_id"]) == sorted(folds.loc[folds["fold"] == 0, "image_id"])  # each once, no padding
    assert oof["prediction"].between(0, 1).all()
    test = pd.read_csv(cwd / "oof/ddp/resnet18/test_fold_0.csv")
    assert len(test) == 7 and test["image_id"].is_unique
    cams = np.load(cwd / "oof/ddp/resnet18/cams_fold_0.npz")
    assert list(cams["oof_ids"]) == list(oof["image_id"]) and len(cams["test"]) == 7
    assert json.loads((cwd / "weights/ddp/resnet18/fold_0/config.json").read_text())["processes"] == 2
    log = pd.read_csv(cwd / "weights/ddp/resnet18/fold_0/log.csv")
    # the gathered validation AUC of the kept epoch is the OOF file's: both shards predicted by one model
    assert len(log) == 2 and log["val_auc"].max() == pytest.approx(roc_auc(oof["target"], oof["prediction"]), abs=1e-6)

    resumed = torchrun(cwd, *TRAIN, "--resume")
    assert "resuming after epoch 2" in resumed
    assert pd.read_csv(cwd / "oof/ddp/resnet18/fold_0.csv").equals(oof)


@pytest.mark.slow
def test_run_sh_queue_runs_jobs_on_two_slots_reports_a_failure_and_skips_finished_jobs(tmp_path):
    """GPUS="0 1" bash run.sh on a CPU: the arch x fold jobs run two at a time, each logged; the
    jobs of an unknown architecture fail, the others finish; a re-run skips finished jobs."""
    import shutil

    from conftest import ROOT

    shutil.copy(ROOT / "run.sh", tmp_path / "run.sh")
    shutil.copytree(ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    make_tiny_dataset(tmp_path, n_train=24, n_dev=6)
    env = {**os.environ, "TQDM_DISABLE": "1", "DATASET": "tiny", "EXP": "queue", "N_FOLDS": "2", "IMG_SIZE": "32",
           "EPOCHS": "1", "TRIALS": "5", "BOOTSTRAP": "50", "GPUS": "0 1", "OMP_NUM_THREADS": "1", "MAP_ARCHS": ""}

    def run(archs):
        return subprocess.run(["bash", "run.sh", "--batch-size", "8"], cwd=tmp_path, env={**env, "ARCHS": archs},
                              capture_output=True, text=True, timeout=600)

    failed = run("resnet18 nosuchnet")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    for fold in (0, 1):
        assert f"== resnet18 fold {fold}: done (OOF AUC" in failed.stdout
        assert f"== nosuchnet fold {fold}: FAILED on GPU" in failed.stdout and "unknown architecture" in failed.stdout
        assert (tmp_path / f"logs/queue/nosuchnet_fold{fold}.log").is_file()
        assert (tmp_path / f"oof/queue/resnet18/fold_{fold}.csv").is_file()
    assert "nosuchnet fold 0 (logs/queue/nosuchnet_fold0.log)" in failed.stderr
    assert "started on GPU 0" in failed.stdout and "started on GPU 1" in failed.stdout  # both slots took jobs

    again = run("resnet18")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "== resnet18 fold 0: done already" in again.stdout and "started on GPU" not in again.stdout
    assert (tmp_path / "submissions/queue/prediction_classification.csv").is_file()


@pytest.mark.slow
def test_freeze_then_unfreeze_under_two_processes(tmp_path):
    """--freeze-epochs under torchrun: the head trains alone, then everything (DDP used to fail at the first
    step after requires_grad changed)."""
    cwd = make_tiny_dataset(tmp_path, n_train=16, n_dev=4)
    out = torchrun(cwd, *[a for a in TRAIN if a != "--ema"], "--exp", "freeze", "--freeze-epochs", "1")
    assert "x 2 processes (DDP)" in out and out.count("summary:") == 1
    log = pd.read_csv(cwd / "weights/freeze/resnet18/fold_0/log.csv")
    assert len(log) == 2 and np.isfinite(log["train_loss"]).all()


FAKE_SBATCH = r"""#!/usr/bin/env bash
# sbatch's stand-in: runs the job at once (an array's tasks one after another) and prints a job id
array="" wrap="" models=""
args=()
while [ $# -gt 0 ]; do
    if [ ${#args[@]} -gt 0 ]; then args+=("$1"); shift; continue; fi  # after the script: its own arguments
    case "$1" in
        --array=*) array=${1#--array=} ;;
        --export=ALL,MODELS=*) models=${1#--export=ALL,MODELS=} ;;
        --wrap) wrap=$2; shift ;;
        --*) ;;
        *) args+=("$1") ;;
    esac
    shift
done
[ -d logs ] || { echo "no logs folder: Slurm could not open the job's output file" >&2; exit 1; }
if [ -n "$wrap" ]; then
    bash -c "$wrap" > logs/blend.out 2>&1
else
    for ((i = ${array%-*}; i <= ${array#*-}; i++)); do
        SLURM_ARRAY_TASK_ID=$i MODELS="$models" bash "${args[@]}" > "logs/task_$i.out" 2>&1 || exit 1  # afterok fails
    done
fi
echo 4242
"""


@pytest.mark.slow
def test_slurm_submit_trains_classifiers_and_map_models_then_blends(tmp_path):
    """slurm/submit.sh with sbatch standing in: the folds here, an array task per model x fold (a map
    model among them), the blend after them; the log folder is created first."""
    import shutil

    from conftest import ROOT

    shutil.copy(ROOT / "run.sh", tmp_path / "run.sh")
    shutil.copytree(ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "slurm", tmp_path / "slurm")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin/sbatch").write_text(FAKE_SBATCH)
    (tmp_path / "bin/sbatch").chmod(0o755)
    make_tiny_dataset(tmp_path, n_train=24, n_dev=6)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "TQDM_DISABLE": "1", "DATASET": "tiny",
           "EXP": "slurm", "N_FOLDS": "2", "ARCHS": "resnet18", "IMG_SIZE": "32", "EPOCHS": "1", "TRIALS": "5",
           "BOOTSTRAP": "50", "MAP_IMG_SIZE": "64", "CROP_SIZE": "48", "MAP_EPOCHS": "1", "MAP_MIN_STEPS": "0",
           "MAP_ARGS": "--map-channels 16"}
    done = subprocess.run(["bash", "slurm/submit.sh", "--batch-size", "8"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "training array 4242 (4 tasks: resnet18 resnet18-map x 2 folds" in done.stdout
    assert "task 3: resnet18-map fold 1" in (tmp_path / "logs/task_3.out").read_text()
    for model in ("resnet18", "resnet18-map"):
        assert (tmp_path / f"oof/slurm/{model}/fold_1.csv").is_file()
    blend = (tmp_path / "logs/blend.out").read_text()
    assert "== resnet18-map fold 1: done already" in blend and "chosen by nested AUC" in blend
    assert (tmp_path / "submissions/slurm/prediction_classification.csv").is_file()
