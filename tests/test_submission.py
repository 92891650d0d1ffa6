import re

import numpy as np
import pytest

from cxr.errors import UserError
from cxr.formats.files import validate_classification, write_classification

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


MULTI = "id,effusion,nodule"


@pytest.mark.parametrize("body, why", [
    ("dev/001.jpg,0.1,0.2\ndev/002.jpg,0.9\ndev/003.jpg,0.5,0.5\n", "line 3: expected 'id,effusion,nodule'"),
    ("dev/001.jpg,0.1,0.2\ndev/002.jpg,0.9,1.2\ndev/003.jpg,0.5,0.5\n", "line 3: prediction 1.2"),
])
def test_multi_label_files_are_checked_in_every_column(tmp_path, body, why):
    validate_classification(write(tmp_path, f"{MULTI}\ndev/001.jpg,0.1,0.2\ndev/002.jpg,0.9,0.3\ndev/003.jpg,0.5,0.5\n"),
                            IDS, header=MULTI)
    with pytest.raises(UserError, match=why):
        validate_classification(write(tmp_path, f"{MULTI}\n{body}"), IDS, header=MULTI)


def test_multi_label_writer_puts_each_label_in_its_column(tmp_path):
    path = tmp_path / "submission.csv"
    write_classification(path, IDS, np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]), header=MULTI, order=IDS[::-1])
    assert path.read_text().splitlines() == [MULTI, "dev/003.jpg,0.50000000,0.60000000",
                                             "dev/002.jpg,0.30000000,0.40000000", "dev/001.jpg,0.10000000,0.20000000"]


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


# ------------------------------------------------------------------ localization
def test_localization_round_trip_keeps_the_comma_of_an_empty_list(tmp_path):
    from cxr.formats.files import read_localization, write_localization

    path = tmp_path / "prediction_localization.csv"
    write_localization(path, IDS, [[(0.9, 10.4, 20.6), (0.25, 3, 4)], [], [(1.0, 0, 0)]])
    assert path.read_text() == ("image_path,prediction\ndev/001.jpg,0.900000 10 21;0.250000 3 4\n"
                                "dev/002.jpg,\ndev/003.jpg,1.000000 0 0\n")
    assert read_localization(path, IDS) == {"dev/001.jpg": [(0.9, 10, 21), (0.25, 3, 4)], "dev/002.jpg": [],
                                            "dev/003.jpg": [(1.0, 0, 0)]}


@pytest.mark.parametrize("text, why", [
    ("image_path,prediction\ndev/001.jpg,0.9 10\ndev/002.jpg,\ndev/003.jpg,\n", "line 2: '0.9 10' is not"),
    ("image_path,prediction\ndev/001.jpg,1.5 10 10\ndev/002.jpg,\ndev/003.jpg,\n", "line 2: '1.5 10 10' needs"),
    ("image_path,prediction\ndev/001.jpg,0.5 -1 10\ndev/002.jpg,\ndev/003.jpg,\n", "needs a probability"),
    ("image_path,prediction\ndev/001.jpg\ndev/002.jpg,\ndev/003.jpg,\n", "line 2: expected"),
    ("image_path,prediction\ndev/001.jpg,\ndev/002.jpg,\n", "1 test image(s) have no line, first dev/003.jpg"),
    ("image_path,prediction\ndev/001.jpg,\ndev/001.jpg,\ndev/003.jpg,\n", "line 3: image dev/001.jpg appears twice"),
    ("path,prediction\n", "line 1: header"),
])
def test_localization_validator_names_file_and_line(tmp_path, text, why):
    from cxr.formats.files import read_localization

    path = tmp_path / "prediction_localization.csv"
    path.write_text(text)
    with pytest.raises(UserError, match=why.replace("(", r"\(").replace(")", r"\)")):
        read_localization(path, IDS)


def test_invalid_localization_never_replaces_a_valid_one(tmp_path):
    from cxr.formats.files import write_localization

    path = tmp_path / "prediction_localization.csv"
    write_localization(path, IDS, [[], [], []])
    before = path.read_bytes()
    with pytest.raises(UserError):
        write_localization(path, IDS, [[(2.0, 1, 1)], [], []])
    assert path.read_bytes() == before and len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize("reader", ["classification", "localization"])
@pytest.mark.parametrize("content, why", [
    (None, "cannot be read (No such file or directory)"),
    ("image_path,prediction\ndev/001.jpg,0.1\n".encode("utf-16"), "not UTF-8 text (byte 0: invalid start byte)"),
    (b"image_path,prediction\ndev/00\xe9.jpg,0.1\n", "not UTF-8 text (byte 28: invalid continuation byte)"),
], ids=["missing", "UTF-16", "Latin-1"])
def test_unreadable_submission_files_are_one_user_error(tmp_path, reader, content, why):
    from cxr.formats.files import read_localization

    path = tmp_path / "prediction.csv"
    if content is not None:
        path.write_bytes(content)
    check = validate_classification if reader == "classification" else read_localization
    with pytest.raises(UserError, match="^" + re.escape(f"{path}: {why}")):
        check(path, IDS, shown_as=path)
