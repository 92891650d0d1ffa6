"""Experiment configs: train.py --config FILE (flags over the file over the defaults, a run's config.json
given back reproduces its settings) and CONFIG=FILE bash run.sh (src/experiment.py), every key checked."""
import ast
import dataclasses
import json
import os
import re
import subprocess
import sys

import pytest

from cxr import config
from cxr import run_file as experiment
from conftest import ROOT, SRC, one_error_line, run_script
from cxr.errors import UserError

CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def write(path, text):
    path.write_text(text)
    return path


def test_the_results_configs_are_shipped():
    assert {p.name for p in CONFIGS} >= {"demo.yaml", "pneumoniamnist.yaml", "objectcxr_semireal.yaml",
                                         "objectcxr_gpu.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_config_loads_as_an_experiment_and_its_train_part_as_train_settings(path):
    text = path.read_text()
    assert text.startswith("#") and f"CONFIG=configs/{path.name} bash run.sh" in text  # says what and how
    lines = experiment.assignments(path, environ={})
    assert any(line.startswith("DATASET=") for line in lines) and any(line.startswith("ARCHS=") for line in lines)
    for section in experiment.TRAIN_SECTIONS:
        part = config.read_settings_file(path).get(section) or {}
        config.TrainConfig(**config.settings_of(part, config.TrainConfig, f"{path}: {section}"))


# The data each config's data set stands for: the demo is generated; the others are data sets kept in
# ../shared/data with the same layout as the real download (the real Object-CXR set has the semi-real one's).
STAND_INS = {"demo": None, "pneumoniamnist": "pneumoniamnist", "objectcxr_semireal": "objectcxr_semireal",
             "objectcxr": "objectcxr_semireal"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_config_names_a_submission_format_its_data_set_can_take(path, tmp_path):
    """A format the data cannot take (a Kaggle file for a data set without test.csv, one column for a
    multi-label set) would stop blend.py after all the training: each config's is checked here."""
    from conftest import SHARED_DATA
    from cxr.data.labels import label_name, target_columns
    from cxr.data.layouts import read_dataset
    from cxr.formats.registry import resolve

    settings = config.read_settings_file(path)
    dataset = settings["dataset"]
    assert dataset in STAND_INS, f"{path.name}: add a stand-in for data set {dataset} to STAND_INS"
    if STAND_INS[dataset] is None:
        root = tmp_path / dataset
        run_script("make_demo.py", "--out", root, "--n-train", 8, "--n-dev", 4, "--min-size", 64, "--max-size", 72,
                   cwd=tmp_path)
    else:
        root = SHARED_DATA / STAND_INS[dataset]
        if not root.is_dir():
            pytest.skip(f"{root} is not here")
    train, _ = read_dataset(root)
    labels = [label_name(c) for c in target_columns(train)]
    resolve(str(settings.get("format", "auto")), root, labels)  # raises UserError when it cannot take it


def test_demo_config_is_what_run_sh_does_by_default():
    defaults = dict(re.findall(r"\$\{(\w+):-([^}$]*)\}", (ROOT / "run.sh").read_text()))
    settings = dict(line.split("=", 1) for line in experiment.assignments(ROOT / "configs/demo.yaml", environ={}))
    compared = {name: value for name, value in settings.items() if name in defaults}
    assert len(compared) >= 12 and compared == {name: defaults[name] for name in compared}


def test_run_sh_settings_environment_over_file_and_quoted(tmp_path):
    path = write(tmp_path / "e.yaml", "dataset: my set\nexp: x'y\nfolds: [0, 2]\nbn-adapt: true\nepochs: 3\n"
                                      "train:\n  pretrained: true\n  amp: 'off'\n  ema: false\n"
                                      "map_train:\n  map_channels: 16\n")
    lines = experiment.assignments(path, environ={"EPOCHS": "1"})
    assert lines[:4] == ["DATASET='my set'", "EXP='x'\"'\"'y'", "FOLDS='0 2'", "BN_ADAPT=1"]
    assert lines[4] == "# EPOCHS=1 from the environment, not the file's 3"
    assert lines[5:] == ["CONFIG_TRAIN_ARGS=(--pretrained --amp off --no-ema)", "CONFIG_MAP_ARGS=(--map-channels 16)"]
    shell = subprocess.run(["bash", "-c", 'eval "$1"; printf "%s|" "$DATASET" "$EXP" "${CONFIG_TRAIN_ARGS[@]}"',
                            "_", "\n".join(lines)], capture_output=True, text=True, check=True)
    assert shell.stdout == "my set|x'y|--pretrained|--amp|off|--no-ema|"


@pytest.mark.parametrize("text, fragments", [
    ("dataset: demo\nepoch: 3\n", ["epoch: unknown key", "epochs"]),
    ("train:\n  amp: fp8\n", ["train: amp: invalid choice: 'fp8'"]),
    ("train:\n  pretrianed: true\n", ["train: pretrianed: unknown key"]),
    ("train:\n  img_size: 64\n", ["train: img_size:", "top-level"]),
    ("img_size: big\n", ["img_size: invalid int value: 'big'"]),
    ("archs: resnet18\n", ["archs: expected a list"]),
    ("format: csv\n", ["format: invalid choice"]),
    ("bn_adapt: 1\n", ["bn_adapt: expected true or false"]),
])
def test_a_wrong_experiment_key_or_value_names_the_key_and_the_file(tmp_path, text, fragments):
    path = write(tmp_path / "bad.yaml", text)
    with pytest.raises(UserError) as raised:
        experiment.assignments(path, environ={})
    assert str(raised.value).startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in str(raised.value)


def test_an_unknown_experiment_key_is_one_line_exit_2(tmp_path):
    write(tmp_path / "bad.yaml", "dataset: demo\narchitectures: [resnet18]\n")
    one_error_line(run_script("experiment.py", "bad.yaml", cwd=tmp_path, check=False), "bad.yaml", "architectures")


def test_run_sh_takes_its_settings_from_the_config_before_the_environment_and_arguments(tmp_path):
    """CONFIG= through the whole of run.sh, each python step recorded instead of run (PYTHON is a stub)."""
    (tmp_path / "run.sh").write_text((ROOT / "run.sh").read_text())
    (tmp_path / "src").symlink_to(SRC)
    stub = write(tmp_path / "python", "#!/usr/bin/env bash\n"
                                      f'[ "$1" = src/experiment.py ] && exec {sys.executable} "$@"\n'
                                      'echo "$*" >> calls.txt\n')
    stub.chmod(0o755)
    write(tmp_path / "e.yaml", "dataset: tiny\nn_folds: 2\nepochs: 3\nimg_size: 64\nlr: 5e-4\n"
                               "train:\n  amp: bf16\n  ema: true\n")
    env = {**os.environ, "PYTHON": str(stub), "CONFIG": "e.yaml", "IMG_SIZE": "48", "ARCHS": "resnet18"}
    result = subprocess.run(["bash", "run.sh", "--amp", "off"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "== IMG_SIZE=48 from the environment, not the file's 64" in result.stdout
    # run.sh first asks make_folds.py for the layout (an annotated set's default models); the stub says nothing
    asked, *calls = (tmp_path / "calls.txt").read_text().splitlines()
    assert asked.startswith("src/make_folds.py") and asked.endswith("--print-layout")
    trains = [line for line in calls if line.startswith("src/train.py")]
    assert len(trains) == 2 and "--fold 1" in trains[1]
    for line in trains:
        assert "--dataset tiny" in line and "--img-size 48 --epochs 3" in line and "--lr 5e-4" in line
        assert line.endswith("--amp bf16 --ema --amp off")  # the file's train: settings, then the arguments
    assert "--n-folds 2" in calls[0] and calls[-1].startswith("src/blend.py --exp tiny --dataset tiny")
    assert calls[-2] == "src/check_folds.py --exp tiny --dataset tiny --models resnet18"  # after training, weak folds named


def test_run_sh_stops_on_a_bad_config_before_anything_runs(tmp_path):
    (tmp_path / "run.sh").write_text((ROOT / "run.sh").read_text())
    (tmp_path / "src").symlink_to(SRC)
    write(tmp_path / "e.yaml", "dataset: tiny\ntrain:\n  schedule: linear\n")
    result = subprocess.run(["bash", "run.sh"], cwd=tmp_path, env={**os.environ, "CONFIG": "e.yaml"},
                            capture_output=True, text=True, timeout=60)
    one_error_line(result, "e.yaml: train: schedule: invalid choice: 'linear'")
    assert not (tmp_path / "folds").exists() and not (tmp_path / "input").exists()
    assert subprocess.run(["bash", "-n", str(ROOT / "run.sh")]).returncode == 0


def test_train_config_file_under_the_command_line_over_the_defaults(tmp_path):
    path = write(tmp_path / "t.yaml", "arch: densenet121\nimg-size: 64\nlr: 1e-4\namp: off\nheatmaps: on\n"
                                      "pretrained: true\n")
    cfg = config.parse_config(["--config", str(path), "--img-size", "128", "--no-pretrained"])
    assert cfg == config.TrainConfig(arch="densenet121", img_size=128, lr=1e-4, amp="off", heatmaps="on")


@pytest.mark.parametrize("text, fragment", [
    ("epochs: 6\nimg_sise: 64\n", "img_sise: unknown key (did you mean img_size?)"),
    ("amp: fp8\n", "amp: invalid choice: 'fp8'"),
    ("device: gpu\n", "device: invalid choice: 'gpu'"),
    ("epochs: 2.5\n", "epochs: invalid int value: 2.5"),
    ("ema: 'yes'\n", "ema: expected true or false"),
    ("arch: resnet_nope\n", "arch: unknown architecture 'resnet_nope'"),
])
def test_a_wrong_train_setting_in_a_file_is_one_line_naming_file_and_key(capsys, tmp_path, text, fragment):
    path = write(tmp_path / "t.yaml", text)
    with pytest.raises(SystemExit) as stopped:
        config.parse_config(["--config", str(path)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert stopped.value.code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {path}: {fragment}"), lines


def test_an_experiment_file_given_to_train_py_says_where_it_belongs(capsys):
    with pytest.raises(SystemExit):
        config.parse_config(["--config", str(ROOT / "configs/demo.yaml")])
    assert "unknown key (an experiment file, for run.sh: CONFIG=FILE bash run.sh)" in capsys.readouterr().err


def test_train_py_stops_on_an_unknown_config_key(tmp_path):
    write(tmp_path / "t.yaml", "arch: resnet18\nepoch: 3\n")
    result = run_script("train.py", "--config", "t.yaml", cwd=tmp_path, check=False)
    one_error_line(result, "t.yaml: epoch: unknown key")


def test_a_runs_config_json_given_back_reproduces_its_settings(tmp_path):
    """What train.py (and adapt_bn.py) write: every TrainConfig field and the recorded measurements."""
    run = config.TrainConfig(arch="densenet121", fold=3, img_size=64, lr=3e-4, pretrained=True, amp="bf16",
                             heatmaps="off", positive_classes="a,b", exp="full", cache=False)
    recorded = {"resolved_device": "cuda:0", "precision": "bfloat16", "n_train": 10, "n_pseudo": 0, "n_val": 5,
                "n_test": 4, "targets": ["target"], "task": "binary", "processes": 1, "torch": "2", "timm": "1",
                "test_seconds_per_image": 0.01, "image_score_used": "max", "bn_adapted": {"layers": 3},
                "restarts": [{"epoch": 3, "reason": "spike", "lr_scale": 0.5}], "lr_scale": 0.5, "stopped_reason": "",
                "hard_epochs": [], "epochs_run": 36, "lr_used": 1e-3, "seed_runs": ["seed_43"], "seed_oof_auc": {"42": 0.9, "43": 0.8},
                "map_classes": ["0", "2"]}
    assert set(recorded) == set(config.RECORDED)
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**dataclasses.asdict(run), **recorded}))
    assert config.parse_config(["--config", str(path)]) == run
    assert config.parse_config(["--config", str(path), "--fold", "1"]) == dataclasses.replace(run, fold=1)


def test_what_train_py_and_adapt_bn_py_record_beside_the_settings_is_listed_in_config():
    fields = {f.name for f in dataclasses.fields(config.TrainConfig)}
    # each script with the library module that writes its config.json
    for script in (("train.py", "cxr/training/seed_runs.py"), ("adapt_bn.py", "cxr/testside/batchnorm.py")):
        trees = [ast.parse((SRC / part).read_text()) for part in script]
        dicts = [node for tree in trees for node in ast.walk(tree) if isinstance(node, ast.Dict)]
        nested = {id(value) for node in dicts for value in node.values if isinstance(value, ast.Dict)}
        keys = {key.value for node in dicts if id(node) not in nested for key in node.keys
                if isinstance(key, ast.Constant)}
        assert keys and keys <= fields | set(config.RECORDED), (script, keys - fields - set(config.RECORDED))
