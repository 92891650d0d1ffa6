"""Every layout through the whole of run.sh: a Kaggle-style set (with a test side; run.sh's default two
models, BN_ADAPT=1), an image folder (none: it used to stop in blend.py with a TypeError), as a binary
task and as a multi-class one, and a MedMNIST .npz, these three with one model (a blend of one still runs every method; the suite's time stays near 10
minutes). The Object-CXR layout runs in tests/test_pipeline.py (the demo)."""
import os
import shutil
import subprocess

import cv2
import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, run_script


def demo_images(tmp_path):
    """(train [(image file, label)], dev [image files]) of a small generated demo."""
    run_script("make_demo.py", "--out", "demo", "--n-train", 24, "--n-dev", 6, "--min-size", 48, "--max-size", 64,
               cwd=tmp_path)
    train = pd.read_csv(tmp_path / "demo/train.csv", keep_default_na=False)
    dev = pd.read_csv(tmp_path / "demo/dev.csv")
    return ([(tmp_path / "demo/train" / name, int(bool(text))) for name, text in zip(train["image_name"], train["annotation"])],
            [tmp_path / "demo/dev" / name for name in dev["image_name"]])


def kaggle_set(folder, train, dev):
    for side, files in (("train", [f for f, _ in train]), ("test", dev)):
        (folder / side).mkdir(parents=True)
        for f in files:
            shutil.copy(f, folder / side / f.name)
    pd.DataFrame({"image_name": [f.name for f, _ in train], "label": [y for _, y in train]}).to_csv(
        folder / "train.csv", index=False)
    pd.DataFrame({"image_name": [f.name for f in dev]}).to_csv(folder / "test.csv", index=False)
    pd.DataFrame({"image_name": [f.name for f in dev], "label": 0.5}).to_csv(folder / "sample_submission.csv", index=False)
    return {"BN_ADAPT": "1"}  # and each model adapted to the test side


def imagefolder_set(folder, train, dev):
    for f, y in train:
        (folder / ("abnormal" if y else "normal")).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, folder / ("abnormal" if y else "normal") / f.name)
    return {"POSITIVE_CLASSES": "abnormal", "ARCHS": "resnet18"}


def imagefolder_classes_set(folder, train, dev):
    """Three class folders and no --positive-classes: a multi-class task (no test side)."""
    for i, (f, y) in enumerate(train):
        name = "abnormal" if y else ("normal", "other")[i % 2]
        (folder / name).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, folder / name / f.name)
    return {"ARCHS": "resnet18"}


def medmnist_set(folder, train, dev):
    def small(files):
        return np.stack([cv2.resize(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE), (28, 28)) for f in files])

    folder.mkdir(parents=True)
    labels = np.array([[y] for _, y in train])
    np.savez(folder / "tinymnist.npz", train_images=small([f for f, _ in train[:18]]), train_labels=labels[:18],
             val_images=small([f for f, _ in train[18:]]), val_labels=labels[18:], test_images=small(dev))
    return {"ARCHS": "resnet18"}


@pytest.mark.slow
@pytest.mark.parametrize("layout", [kaggle_set, imagefolder_set, imagefolder_classes_set, medmnist_set],
                         ids=["kaggle", "imagefolder", "imagefolder-classes", "medmnist"])
def test_run_sh_on_every_layout(tmp_path, layout):
    shutil.copy(ROOT / "run.sh", tmp_path / "run.sh")
    shutil.copytree(ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    train, dev = demo_images(tmp_path)
    extra = layout(tmp_path / "input/set", train, dev)
    env = {**os.environ, "TQDM_DISABLE": "1", "MAP_MIN_STEPS": "0", "DATASET": "set", "N_FOLDS": "2", "IMG_SIZE": "32", "EPOCHS": "1",
           "TRIALS": "5", "BOOTSTRAP": "50", **extra}
    result = subprocess.run(["bash", "run.sh", "--batch-size", "32", "--no-tensorboard"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for model in extra.get("ARCHS", "resnet18 regnety_002").split():  # run.sh's default pair without annotations
        assert f"== {model} fold 1" in result.stdout
    assert "chosen by nested AUC" in result.stdout  # a multi-class set: per class, "[<class>]:"
    assert (tmp_path / "oof/set/blend_report.csv").is_file() and (tmp_path / "oof/set/oof_metrics.csv").is_file()
    submissions = sorted(p.name for p in (tmp_path / "submissions/set").glob("*.csv"))
    if layout is imagefolder_classes_set:  # softmax over the folders, scored as a whole
        assert "multi-class blend" in result.stdout and (tmp_path / "oof/set/class_report.csv").is_file()
    if layout in (imagefolder_set, imagefolder_classes_set):  # no test side: no submission, no shift to measure
        assert not submissions and "shift set: no test side" in result.stdout
    else:  # the shift is measured once and the test-like rows are scored apart
        assert submissions and "shift set: adversarial AUC" in result.stdout and "test_like_auc" in result.stdout
    if layout is kaggle_set:  # BN_ADAPT=1: both models adapted to the test images, and blended with the others
        assert "regnety_002-bn fold 1:" in result.stdout and "resnet18-bn fold 1:" in result.stdout
        assert {"resnet18-bn", "regnety_002-bn"} <= set(pd.read_csv(tmp_path / "oof/set/blend_report.csv")["name"])
