"""src/package.py: an experiment as one folder for an offline Kaggle notebook, which gives the
probabilities src/predict.py gives from any directory, with the repository out of reach."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, make_tiny_dataset, one_error_line, run_script

TRAIN = ["--dataset", "tiny", "--exp", "pkg", "--arch", "resnet18", "--img-size", "32", "--epochs", "1",
         "--batch-size", "8", "--heatmaps", "off", "--no-tensorboard"]

# Run in the moved package, as a notebook and a shell would: the entry point exactly as `python
# predict.py IMAGES --out OUT` runs it (its folder first on sys.path, run as __main__), then
# `from predict import predict_paths` on a list file's images; then every module it loaded, its
# sys.path, and where the repository's modules (training and blending among them) would be found.
IN_PACKAGE = """
import importlib.util, json, runpy, sys
package, images, out, image_list = sys.argv[1:]
sys.path[0] = package
sys.argv = [package + "/predict.py", images, "--out", out, "--device", "cpu", "--batch-size", "3"]
runpy.run_path(sys.argv[0], run_name="__main__")
from predict import predict_paths
from cxr.data.layouts import list_images  # lib/ is on the path once predict is imported
predict_paths(list_images(image_list), batch_size=2, device="cpu").to_csv(out + ".listed.csv", index=False)
found = {n: importlib.util.find_spec(n) for n in ("cxr.training.fold_run", "blend", "train", "cxr.config", "cxr.inference.notebook_entry",
                                                      "cxr.inference.ensemble")}
print(json.dumps({"files": sorted({m.__file__ for m in list(sys.modules.values()) if getattr(m, "__file__", None)}),
                  "path": sys.path, "found": {n: s and s.origin for n, s in found.items()}}))
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A working folder after demo -> folds -> resnet18 x 2 folds -> blend, and its package in `built/`."""
    cwd = make_tiny_dataset(tmp_path_factory.mktemp("project"), n_train=16, n_dev=5, max_size=72)
    for fold in (0, 1):
        run_script("train.py", "--fold", fold, *TRAIN, cwd=cwd)
    run_script("blend.py", "--exp", "pkg", "--dataset", "tiny", "--trials", 3, "--bootstrap", 20, cwd=cwd)
    built = run_script("package.py", "--exp", "pkg", "--out", "built/kaggle", cwd=cwd)
    return cwd, built.stdout


def test_the_package_holds_the_spec_checkpoints_inference_code_and_requirements(project):
    cwd, stdout = project
    package = cwd / "built/kaggle"
    files = [p for p in package.rglob("*") if p.is_file()]
    assert f"{len(files)} files, " in stdout and "MiB" in stdout
    spec = json.loads((package / "blend.json").read_text())
    assert spec["runs_relative_to"] == "spec" and spec["models"] == ["resnet18"]
    assert spec["runs"] == {"resnet18": ["weights/resnet18/fold_0", "weights/resnet18/fold_1"]}
    for fold in (0, 1):
        for name in ("best.pt", "config.json"):
            assert (package / f"weights/resnet18/fold_{fold}/{name}").read_bytes() == (
                cwd / f"weights/pkg/resnet18/fold_{fold}/{name}").read_bytes()
    lib = {p.relative_to(package / "lib").as_posix() for p in (package / "lib").rglob("*.py")}
    assert {"cxr/__init__.py", "cxr/inference/ensemble.py", "cxr/models/factory.py", "cxr/training/engine.py",
            "cxr/errors.py"} <= lib
    assert not lib & {"cxr/training/fold_run.py", "blend.py", "train.py", "cxr/config.py", "package.py", "predict.py",
                      "cxr/blending/report.py", "cxr/inference/bundle.py"}
    recorded = json.loads((cwd / "weights/pkg/resnet18/fold_0/config.json").read_text())
    requirements = (package / "requirements.txt").read_text().splitlines()
    assert f"torch=={recorded['torch'].split('+')[0]}" in " ".join(requirements)
    assert any(line.startswith(f"timm=={recorded['timm']}") for line in requirements)
    assert {"opencv-python-headless", "albumentations", "numpy", "pandas"} <= {line.split()[0] for line in requirements}


def test_the_moved_package_predicts_as_predict_py_without_the_repository(project, tmp_path):
    cwd, _ = project
    dev = cwd / "input/tiny/dev"
    run_script("predict.py", dev, "--exp", "pkg", "--out", tmp_path / "expected.csv", "--device", "cpu", cwd=cwd)
    expected = pd.read_csv(tmp_path / "expected.csv")

    package = tmp_path / "attached/kaggle"  # elsewhere, as Kaggle attaches a data set; the project's weights hidden
    shutil.copytree(cwd / "built/kaggle", package)
    image_list = tmp_path / "image_path.csv"
    image_list.write_text("\n".join(expected["image_path"][::-1]) + "\n")
    elsewhere = tmp_path / "working"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"}
    (cwd / "weights").rename(cwd / "weights_hidden")
    try:
        result = subprocess.run([sys.executable, "-c", IN_PACKAGE, package, dev, tmp_path / "got.csv", image_list],
                                cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    finally:
        (cwd / "weights_hidden").rename(cwd / "weights")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 images" in result.stdout and "got.csv" in result.stdout
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert not [f for f in loaded["files"] + loaded["path"] if f.startswith(str(ROOT))]
    assert not [origin for origin in loaded["found"].values() if origin and origin.startswith(str(ROOT))]
    assert loaded["found"]["cxr.inference.ensemble"] == str(package / "lib/cxr/inference/ensemble.py")
    assert {os.path.basename(f) for f in loaded["files"] if f.startswith(str(package))} >= {
        "predict.py", "ensemble.py", "factory.py"}

    got = pd.read_csv(tmp_path / "got.csv")
    assert list(got.columns) == ["image_path", "probability"]
    assert got["image_path"].tolist() == expected["image_path"].tolist()
    assert np.allclose(got["probability"], expected["probability"], atol=1e-5, rtol=0)
    listed = pd.read_csv(tmp_path / "got.csv.listed.csv")
    assert listed["image_path"].tolist() == expected["image_path"][::-1].tolist()
    assert np.allclose(listed["probability"], expected["probability"].to_numpy()[::-1], atol=1e-5, rtol=0)


def test_a_missing_spec_or_checkpoint_or_a_used_folder_is_refused(project, tmp_path):
    cwd, _ = project
    one_error_line(run_script("package.py", "--exp", "nope", "--out", tmp_path / "a", cwd=cwd, check=False),
                   "no blend spec", "nope")

    spec = json.loads((cwd / "submissions/pkg/blend.json").read_text())
    spec["runs"]["resnet18"][1] = "weights/pkg/resnet18/fold_9"
    (tmp_path / "subs/pkg").mkdir(parents=True)
    (tmp_path / "subs/pkg/blend.json").write_text(json.dumps(spec))
    missing = run_script("package.py", "--exp", "pkg", "--out", tmp_path / "b", "--submissions-dir", tmp_path / "subs",
                         cwd=cwd, check=False)
    one_error_line(missing, "missing", "fold_9/best.pt")
    assert not (tmp_path / "b").exists()

    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    for flags, fragment in (((), "exists and is not empty"), (("--overwrite",), "not a package")):
        one_error_line(run_script("package.py", "--exp", "pkg", "--out", used, *flags, cwd=cwd, check=False),
                       fragment, "--overwrite" if not flags else "package.json")
    assert [p.name for p in used.iterdir()] == ["notes.txt"]

    one_error_line(run_script("package.py", "--exp", "pkg", "--out", "built/kaggle", cwd=cwd, check=False),
                   "exists and is not empty")
    replaced = run_script("package.py", "--exp", "pkg", "--out", "built/kaggle", "--overwrite", cwd=cwd)
    assert "wrote built/kaggle/" in replaced.stdout
    assert sorted(p.name for p in (cwd / "built").iterdir()) == ["kaggle"]  # no staging folder left behind
