import numpy as np
import pytest

from errors import UserError
from submission import validate_classification, write_classification

IDS = ["dev/001.jpg", "dev/002.jpg", "dev/003.jpg"]
GOOD = "image_path,prediction\ndev/001.jpg,0.1\ndev/002.jpg,0.9\ndev/003.jpg,0.5\n"


def write(tmp_path, text):
    path = tmp_path / "prediction_classification.csv"
    path.write_text(text)
    return path


def test_good_file_passes(tmp_path):
    validate_classification(write(tmp_path, GOOD), IDS)


@pytest.mark.parametrize("text, why", [
    ("image_name,prediction\ndev/001.jpg,0.1\ndev/002.jpg,0.9\ndev/003.jpg,0.5\n", "line 1: header"),
    ("", "line 1: header"),
    ("image_path,prediction\ndev/001.jpg,0.1\ndev/002.jpg,0.9\n", "1 test image"),
    ("image_path,prediction\ndev/001.jpg,0.1\ndev/002.jpg,0.9\ndev/003.jpg,0.5\ndev/003.jpg,0.5\n", "line 5: image dev/003.jpg appears twice"),
    ("image_path,prediction\ndev/001.jpg,0.1\ndev/002.jpg,0.9\ndev/004.jpg,0.5\n", "line 4: image dev/004.jpg is not in the test set"),
    ("image_path,prediction\ndev/001.jpg,nan\ndev/002.jpg,0.9\ndev/003.jpg,0.5\n", "line 2: prediction nan"),
    ("image_path,prediction\ndev/001.jpg,1.5\ndev/002.jpg,0.9\ndev/003.jpg,0.5\n", "line 2: prediction 1.5"),
    ("image_path,prediction\ndev/001.jpg,-0.1\ndev/002.jpg,0.9\ndev/003.jpg,0.5\n", "line 2: prediction -0.1"),
    ("image_path,prediction\ndev/001.jpg,inf\ndev/002.jpg,0.9\ndev/003.jpg,0.5\n", "line 2: prediction inf"),
    ("image_path,prediction\ndev/001.jpg,high\ndev/002.jpg,0.9\ndev/003.jpg,0.5\n", "line 2: prediction 'high' is not a number"),
    ("image_path,prediction\ndev/001.jpg 0.1\ndev/002.jpg,0.9\ndev/003.jpg,0.5\n", "line 2: expected"),
])
def test_validator_rejects_each_kind_of_bad_file(tmp_path, text, why):
    with pytest.raises(UserError, match=why):
        validate_classification(write(tmp_path, text), IDS)


def test_writer_round_trip_and_exact_format(tmp_path):
    path = tmp_path / "sub" / "prediction_classification.csv"
    write_classification(path, IDS, [0.25, 1.0, 0.0], IDS)
    assert path.read_text() == "image_path,prediction\ndev/001.jpg,0.25000000\ndev/002.jpg,1.00000000\ndev/003.jpg,0.00000000\n"


def test_invalid_submission_never_replaces_a_valid_one(tmp_path):
    path = write(tmp_path, GOOD)
    with pytest.raises(UserError, match="prediction_classification.csv line 3"):
        write_classification(path, IDS, [0.2, np.nan, 0.3], IDS)
    with pytest.raises(UserError, match="have no prediction"):
        write_classification(path, IDS[:2], [0.2, 0.3], IDS)
    assert path.read_text() == GOOD
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind
