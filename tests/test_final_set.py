"""The final models' data set (src/final_set.py): train and the labelled dev side together, nothing copied."""
import pandas as pd

from conftest import make_tiny_dataset, one_error_line, run_script
from cxr.data.images import check_images
from cxr.data.layouts import read_dataset


def test_the_final_set_trains_on_train_and_dev_and_has_no_test_side(tmp_path):
    cwd = make_tiny_dataset(tmp_path, n_train=24, n_dev=6)
    out = run_script("final_set.py", "--dataset", "tiny", cwd=cwd).stdout
    assert "input/tiny_final/train.csv: 24 training and 6 dev images" in out
    root = cwd / "input/tiny_final"
    assert (root / "train").is_symlink() and (root / "dev").is_symlink()
    train, test = read_dataset(root)
    original_train, original_dev = read_dataset(cwd / "input/tiny")
    assert len(train) == 30 and len(test) == 0
    assert train["target"].tolist() == original_train["target"].tolist() + original_dev["target"].tolist()
    assert train["annotation"].tolist()[24:] == original_dev["annotation"].tolist()
    assert all(w > 0 for w, _ in check_images(train, root))  # every dev image found through its ../dev/ name
    run_script("make_folds.py", "--dataset", "tiny_final", "--n-folds", 2, cwd=cwd)
    run_script("train.py", "--dataset", "tiny_final", "--exp", "final", "--img-size", 32, "--epochs", 1,
               "--batch-size", 8, "--tta", "none", cwd=cwd)
    assert len(pd.read_csv(cwd / "oof/final/resnet18/test_fold_0.csv")) == 0  # no test side: the server's is hidden

    one_error_line(run_script("final_set.py", "--dataset", "tiny", cwd=cwd, check=False), "tiny_final: exists already")
    one_error_line(run_script("final_set.py", "--dataset", "tiny_final", cwd=cwd, check=False),
                   "no labelled dev side")
