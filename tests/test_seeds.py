"""Seeds as an ensemble axis: train.py --seeds N trains the fold N times; the fold's predictions
are their mean, and the blend spec applies every seed's model, as it does every fold's."""
import json

import numpy as np
import pandas as pd
import pytest

from conftest import make_tiny_dataset, run_script
from cxr.training.fold_run import FoldPredictions, mean_predictions


def test_the_seeds_of_a_fold_are_averaged_probabilities_and_maps():
    cams = lambda v: {"val": np.full((2, 3, 3), v, np.float16), "test": np.full((1, 3, 3), v, np.float16)}  # noqa: E731
    one = FoldPredictions(np.array([[0.2], [0.4]]), np.array([[0.6]]), "max", cams(0.0), 0.1)
    two = FoldPredictions(np.array([[0.4], [0.8]]), np.array([[0.2]]), "mean", cams(1.0), 0.2)
    both = mean_predictions([one, two])
    assert both.oof == pytest.approx(np.array([[0.3], [0.6]]))
    assert both.test == pytest.approx(np.array([[0.4]]))
    assert both.image_score == "max/mean" and both.test_seconds_per_image == pytest.approx(0.3)
    assert both.cams["val"].dtype == np.float16 and np.all(both.cams["val"] == 0.5)
    assert mean_predictions([one]) is one


def train(cwd, exp, fold, *more):
    return run_script("train.py", "--arch", "resnet18", "--fold", fold, "--dataset", "tiny", "--exp", exp,
                      "--img-size", 32, "--epochs", 1, "--batch-size", 8, "--amp", "off", "--heatmaps", "off",
                      "--no-tensorboard", *more, cwd=cwd)


@pytest.mark.slow  # over half a minute: CI runs it with -m slow
def test_a_fold_trained_with_two_seeds_predicts_their_mean_and_the_blend_applies_both(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    cwd = make_tiny_dataset(tmp_path, n_train=24, n_dev=4)
    for fold in (0, 1):
        result = train(cwd, "two", fold, "--seeds", 2)
        assert f"resnet18 fold {fold}, 2 seeds (42 " in result.stdout
    train(cwd, "alone42", 0, "--seed", 42)
    train(cwd, "alone43", 0, "--seed", 43)

    run = cwd / "weights" / "two" / "resnet18" / "fold_0"
    config = json.loads((run / "config.json").read_text())
    assert config["seeds"] == 2 and config["seed_runs"] == ["seed_43"] and set(config["seed_oof_auc"]) == {"42", "43"}
    assert json.loads((run / "seed_43" / "config.json").read_text())["seed"] == 43
    read = lambda exp, name: pd.read_csv(cwd / "oof" / exp / "resnet18" / name)["prediction"].to_numpy()  # noqa: E731
    for name in ("fold_0.csv", "test_fold_0.csv"):  # the seeds' mean, each seed as its own run trains it
        assert read("two", name) == pytest.approx((read("alone42", name) + read("alone43", name)) / 2, abs=1e-6)

    run_script("blend.py", "--exp", "two", "--dataset", "tiny", "--trials", 3, "--bootstrap", 10, cwd=cwd)
    spec = json.loads((cwd / "submissions" / "two" / "blend.json").read_text())
    runs = [str(r) for r in spec["runs"]["resnet18"]]
    assert runs == ["weights/two/resnet18/fold_0", "weights/two/resnet18/fold_0/seed_43",
                    "weights/two/resnet18/fold_1", "weights/two/resnet18/fold_1/seed_43"]
    # new images get what the blend gave the test side: every fold's and seed's model, averaged
    submitted = pd.read_csv(cwd / "submissions" / "two" / "prediction_classification.csv")
    images = cwd / "images.csv"
    images.write_text("".join(f"input/tiny/{p}\n" for p in submitted["image_path"]))
    run_script("submit.py", images, cwd / "cls.csv", cwd / "loc.csv", "--exp", "two", cwd=cwd)
    again = pd.read_csv(cwd / "cls.csv")
    assert again["prediction"].to_numpy() == pytest.approx(submitted["prediction"].to_numpy(), abs=1e-4)
