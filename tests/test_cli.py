"""Flags are checked when they are parsed, before any data is read: one error line, exit 2."""
import pytest

import config
from conftest import one_error_line, run_script


def parse_error(capsys, main, argv):
    """The one stderr line of a main() (or parse) that must stop with exit 2."""
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert stopped.value.code == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


@pytest.mark.parametrize("flag, value", [("--arch", "resnet_nope"), ("--schedule", "linear"), ("--amp", "fp8"),
                                         ("--resize", "crop"), ("--tta", "all"), ("--interpolation", "cubic"),
                                         ("--pool", "gem"), ("--balance", "oversample"), ("--kind", "detector"),
                                         ("--image-score", "top"), ("--heatmaps", "yes"), ("--layout", "coco"),
                                         ("--device", "gpu"), ("--map-depth", "8")])
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
    import cache
    import engine
    import models
    import readers
    import recipe
    import transforms

    assert config.AUGMENTATIONS == transforms.AUGMENTATIONS
    assert config.LAYOUTS == readers.LAYOUTS
    assert config.RESIZE_MODES == cache.RESIZE_MODES and config.INTERPOLATIONS == tuple(cache.INTERPOLATIONS)
    assert config.SCHEDULES == recipe.SCHEDULES and config.BALANCE_MODES == recipe.BALANCE_MODES
    assert config.POOLS == models.POOLS and config.IMAGE_SCORES == models.IMAGE_SCORES
    assert config.TTA_MODES == tuple(engine.TTA_FLIPS)
