import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
SHARED_DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(SRC))


def run_script(script, *args, cwd, check=True):
    """Run src/<script> as a user would, in `cwd`; return the CompletedProcess."""
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run([sys.executable, str(SRC / script), *map(str, args)], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{script} {' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}")
    return result


def one_error_line(result, *fragments):
    """The script stopped as a user's mistake should stop it: exit 2, one 'error:' line holding each fragment."""
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def make_tiny_dataset(cwd, n_train, n_dev, max_size=96):
    """input/tiny (a small generated demo data set) and folds/tiny.csv with 2 folds, in `cwd`."""
    run_script("make_demo.py", "--out", "input/tiny", "--n-train", n_train, "--n-dev", n_dev, "--min-size", 64,
               "--max-size", max_size, cwd=cwd)
    run_script("make_folds.py", "--dataset", "tiny", "--n-folds", 2, cwd=cwd)
    return cwd


@pytest.fixture(scope="session")
def tiny_trained(tmp_path_factory):
    """A project folder after demo (60 training images: enough objects of each shape for concept
    tests) -> 2 folds -> resnet18 on each (1 epoch, 32 px) -> blend, experiment 't'. Shared by the
    tests that only read it (occlusion, concepts); they write their reports inside it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")  # tiny networks: a second thread only waits
        cwd = make_tiny_dataset(tmp_path_factory.mktemp("trained"), n_train=60, n_dev=6)
        for fold in (0, 1):
            run_script("train.py", "--arch", "resnet18", "--fold", fold, "--dataset", "tiny", "--exp", "t",
                       "--img-size", 32, "--epochs", 1, "--batch-size", 8, "--amp", "off", "--heatmaps", "off",
                       "--no-tensorboard", cwd=cwd)
        run_script("blend.py", "--exp", "t", "--dataset", "tiny", "--trials", 5, "--bootstrap", 20, cwd=cwd)
    return cwd


@pytest.fixture
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent (the real data sets live beside the project, not in it)")
    return SHARED_DATA
