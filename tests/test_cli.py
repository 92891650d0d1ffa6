"""Flags are checked when they are parsed, before any data is read: one error line, exit 2. Every script's
--help is readable (its description as written, no empty defaults) and instant (torch and the like after it)."""
import ast
import os
import subprocess
import sys
import time

import pytest

from cxr import config
from conftest import SRC, one_error_line, run_script

# The scripts a user runs (src/package_entry.py is a package's predict.py, tested in test_package.py).
SCRIPTS = ["make_demo", "make_folds", "train", "blend", "submit", "predict", "explain", "shift", "adapt_bn", "pseudo",
           "inspect_data", "lr_find", "package", "experiment", "tune", "occlude",
           "tcav", "check_folds"]
# What --help must not wait for: each takes a good part of a second or more to import (numpy and cv2 do not).
SLOW_IMPORTS = ("torch", "timm", "pandas", "scipy", "sklearn", "matplotlib", "optuna")
WHICH_LOADED = """import runpy, sys
sys.argv = [sys.argv[1], "--help"]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit:
    pass
print(" ".join(m for m in {slow} if m in sys.modules), file=sys.stderr)
""".format(slow=SLOW_IMPORTS)


def parse_error(capsys, main, argv):
    """The one stderr line of a main() (or parse) that must stop with exit 2."""
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert stopped.value.code == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


@pytest.mark.parametrize("flag, value", [("--arch", "resnet_nope"), ("--schedule", "linear"), ("--amp", "fp8"),
                                         ("--resize", "crop"), ("--tta", "all"), ("--interpolation", "cubic"),
                                         ("--pool", "gem"), ("--balance", "oversample"), ("--kind", "segmenter"),
                                         ("--image-score", "top"), ("--heatmaps", "yes"), ("--layout", "coco"),
                                         ("--device", "gpu"), ("--map-depth", "8"),
                                         ("--optimizer", "lion"), ("--aug", "heavy")])
def test_a_wrong_choice_is_one_line_when_the_flags_are_parsed(capsys, flag, value):
    line = parse_error(capsys, config.parse_config, [flag, value])
    assert flag in line and value in line


def test_train_py_checks_its_flags_before_reading_any_data(tmp_path):
    # tmp_path holds no data set: a check made after reading the data would report the missing data instead
    one_error_line(run_script("train.py", "--arch", "resnet_nope", cwd=tmp_path, check=False), "--arch", "resnet_nope")


@pytest.mark.parametrize("script", ["predict", "submit", "explain"])
def test_a_wrong_device_stops_every_script(capsys, script):
    import importlib

    args = {"predict": ["images/"], "submit": ["a.csv", "b.csv", "c.csv"], "explain": []}[script]
    line = parse_error(capsys, importlib.import_module(script).main, [*args, "--device", "gpu"])
    assert "--device" in line and "gpu" in line


def test_an_unknown_flag_is_one_line(tmp_path):
    one_error_line(run_script("make_folds.py", "--n-fold", 3, cwd=tmp_path, check=False), "--n-fold")


def test_the_choices_are_those_the_code_acts_on():
    from cxr.data import cache
    from cxr.training import engine
    from cxr.models import map_model, backbones
    from cxr.data import layouts
    from cxr.training import recipe
    from cxr.data import transforms

    assert config.AUGMENTATIONS == transforms.AUGMENTATIONS
    assert config.LAYOUTS == layouts.LAYOUTS
    assert config.RESIZE_MODES == cache.RESIZE_MODES
    # auto is resolved by ImageSpec.of to linear or area2x (area for shrinks of 2x or more)
    assert set(config.INTERPOLATIONS) == {"auto"} | (set(cache.INTERPOLATIONS) - {"area2x"})
    assert config.SCHEDULES == recipe.SCHEDULES and config.BALANCE_MODES == recipe.BALANCE_MODES
    assert config.OPTIMIZERS == recipe.OPTIMIZERS
    assert config.POOLS == backbones.POOLS and config.IMAGE_SCORES == map_model.IMAGE_SCORES
    assert config.TTA_MODES == tuple(engine.TTA_FLIPS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_is_instant_and_readable(script):
    env = {**os.environ, "COLUMNS": "100"}
    started = time.perf_counter()
    result = subprocess.run([sys.executable, str(SRC / f"{script}.py"), "--help"], capture_output=True, text=True,
                            env=env, timeout=60)
    seconds = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    assert seconds < 1.5, f"{script}.py --help took {seconds:.2f} s"  # under a second; a margin for a loaded machine
    for noise in ("(default: None)", "(default: )", "(default: False)", "(default: [])"):
        assert noise not in result.stdout, f"{script}.py --help shows {noise}"
    examples = [line for line in ast.get_docstring(ast.parse((SRC / f"{script}.py").read_text()), clean=False)
                .splitlines() if line.startswith("    python")]
    assert examples and all(line + "\n" in result.stdout for line in examples)  # the description's lines as written
    loaded = subprocess.run([sys.executable, "-c", WHICH_LOADED, str(SRC / f"{script}.py")], capture_output=True,
                            text=True, env=env, timeout=60).stderr.split()
    assert loaded == [], f"{script}.py --help imports {', '.join(loaded)}"


@pytest.mark.parametrize("flag, value", [("--format", "csv"), ("--choose-by", "oof")])
def test_blend_checks_its_choices_when_the_flags_are_parsed(capsys, flag, value):
    import blend

    line = parse_error(capsys, blend.main, [flag, value])
    assert flag in line and value in line and "choose from" in line


def test_a_wrong_data_set_name_lists_those_under_input(tmp_path, capsys, monkeypatch):
    import blend
    import make_folds

    for name in ("pneumoniamnist", "demo", ".cache"):
        (tmp_path / "input" / name).mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    expected = "error: input/nope: no such data set (data sets in input/: demo, pneumoniamnist)"
    assert parse_error(capsys, make_folds.main, ["--dataset", "nope"]) == expected
    assert parse_error(capsys, blend.main, ["--dataset", "nope"]) == expected  # rather than a missing fold file
    line = parse_error(capsys, make_folds.main, ["--dataset", "demo", "--input-dir", "nowhere"])
    assert line.startswith("error: nowhere/demo: no such data set (nowhere/ does not exist") and "make_demo.py" in line


def test_the_flags_shared_with_train_py_are_train_py_s():
    """One idea, one flag: a script with its own parser takes --exp, --dataset, --device and the folders from
    config.add_settings (train.py's name, type and default), never spelled anew."""
    shared = ("--exp", "--dataset", "--device", "--input-dir", "--folds-dir", "--oof-dir", "--weights-dir",
              "--reports-dir")
    for script in SCRIPTS:
        text = (SRC / f"{script}.py").read_text()
        assert not [flag for flag in shared if f'add_argument("{flag}"' in text], script
