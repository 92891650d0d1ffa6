"""Fuzzed input: whatever a user's file holds, each parser gives a valid result or one
UserError naming the file, never a traceback (nor a silently wrong image).

Property-based (hypothesis), derandomized so that every run tries the same inputs; each
test's budget is its `fuzz(max_examples)`. Inputs are drawn from what users really get
wrong (paths, labels, annotations, numbers, quoting, line ends, encodings, damaged bytes)
mixed with arbitrary text and bytes."""
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from cxr.data.annotations import Shape, format_annotation, parse_annotation
from cxr.data.images import check_images, read_image
from cxr.errors import RowProblems, UserError
from cxr.data.layouts import kaggle_test_ids, read_dataset
from cxr.formats.files import CLASSIFICATION_HEADER, parse_points, read_localization, validate_classification

SCALE = float(os.environ.get("FUZZ_SCALE", "1"))  # e.g. FUZZ_SCALE=20: a deeper search than the suite's


def fuzz(max_examples):
    return settings(max_examples=max(1, round(max_examples * SCALE)), deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def user_error_or(call, *args, **kwargs):
    """call(...)'s result, or the UserError it raised (any other exception fails the test)."""
    try:
        return call(*args, **kwargs)
    except UserError as err:
        assert str(err)
        return err


def lines_of(line, header=st.just(None), min_lines=0):
    """A file's text: an optional header, then lines, joined by one kind of line end."""
    return st.builds(lambda head, rows, end: end.join(([head] if head is not None else []) + rows) + end,
                     header, st.lists(line, min_size=min_lines, max_size=5), st.sampled_from(["\n", "\r\n", "\r"]))


def file_bytes(text):
    """A file's bytes: four times in six the text (UTF-8), else arbitrary bytes (seldom UTF-8) or
    None, for no file at all."""
    text = text.map(str.encode)
    return st.one_of(text, text, text, text, st.binary(max_size=60), st.none())


# ------------------------------------------------------------------ annotations
NUMBERS = ["0", "3", "-2", "4000", "+5", "1_0", "1.5", "1e3", "nan", "x", "\u0663", "9" * 20, "1" + "0" * 400,
           "9" * 5000]
annotation_object = st.builds(
    lambda kind, coords: " ".join([kind, *coords]),
    st.sampled_from(["0", "1", "2", "3", "-1", "x", ""]),
    st.lists(st.one_of(st.integers(-5, 60).map(str), st.integers().map(str), st.sampled_from(NUMBERS)), max_size=10))
annotations = st.one_of(st.lists(annotation_object, max_size=4).map(";".join),
                        st.text(alphabet="0123456789 -;.+_e\t", max_size=40), st.text(max_size=30))


@fuzz(500)
@given(annotations)
def test_annotation_parser_gives_shapes_or_a_value_error(text):
    """parse_annotation knows no file or row, so it raises ValueError, which the table readers
    turn into a UserError naming the file and line (fuzzed below)."""
    try:
        shapes = parse_annotation(text)
    except ValueError as err:
        assert str(err)
        return
    for shape in shapes:
        assert isinstance(shape, Shape) and np.isfinite(shape.points).all()
        assert isinstance(shape.contains(1, 2), bool)
    assert parse_annotation(format_annotation(shapes)) == shapes


# ------------------------------------------------------------------ data set tables
NAMES = ["a.png", "b.png", "c.png", "missing.png", "train/a.png", "dev/a.png", "a.png ", "../a.png", "../../a.png",
         "/etc/passwd", "x/../../../a.png", "a" * 300 + ".png", "", " ", '"a,b.png"', '"x\ny.png"', "\x00",
         "\u00e9.png"]
LABELS = ["0", "1", "0", "1", "2", "0.0", "1.0", "-1", "yes", "nan", "NA", "", " 1"]
name = st.one_of(st.sampled_from(NAMES), st.text(max_size=6))
label = st.one_of(st.sampled_from(LABELS), st.text(max_size=3))
header_cell = st.one_of(st.sampled_from(["image_name", "image_path", "id", "label", "target", "annotation", "x", "",
                                         "\ufeffimage_name"]), st.text(max_size=4))


def table(**columns):
    """A CSV table's text: mostly the header and cells a layout expects, sometimes any."""
    expected = st.tuples(*columns.values()).map(",".join)
    row = st.one_of(expected, expected, expected, st.lists(st.one_of(name, label), max_size=4).map(",".join))
    header = st.one_of(st.just(",".join(columns)), st.just(",".join(columns)),
                       st.lists(header_cell, max_size=4).map(",".join))
    return lines_of(row, header, min_lines=1)


LAYOUT_FILES = {
    "kaggle": st.fixed_dictionaries({
        "train.csv": st.one_of(file_bytes(table(image_name=name, label=label)),
                               file_bytes(table(id=name, a=label, b=label))),
        "test.csv": file_bytes(table(image_name=name))}),
    "objectcxr": st.fixed_dictionaries({
        "train.csv": file_bytes(table(image_name=name, annotation=annotations)),
        "dev.csv": st.one_of(file_bytes(table(image_path=name, annotation=annotations)), st.none()),
        "image_path.csv": file_bytes(lines_of(name, min_lines=1))}),
}
PNG = cv2.imencode(".png", np.full((8, 8), 128, np.uint8))[1].tobytes()
IMAGES = {f"{side}/{image}": PNG for side in ("train", "dev", "test") for image in ("a.png", "b.png", "c.png")}


def write_files(root, contents):
    """Write each file (bytes), or remove it (None)."""
    for relative, content in contents.items():
        if content is None:
            (root / relative).unlink(missing_ok=True)
        else:
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_bytes(content)


@pytest.fixture(scope="module")
def dataset_folder(tmp_path_factory):
    """A data set folder with a few images; each example writes its own tables into it."""
    root = tmp_path_factory.mktemp("dataset")
    write_files(root, IMAGES)
    return root


def leads_out(image_id):
    return os.path.isabs(image_id) or os.path.normpath(image_id).split(os.sep)[0] == ".."


def read_and_check(root, layout, skip):
    """What a training run does with a data set folder: read its tables, check every image."""
    problems = RowProblems(skip=skip)
    train, test = read_dataset(root, layout, problems=problems)
    check_images(train, root, problems)
    check_images(test, root)
    if layout == "kaggle":
        kaggle_test_ids(root)
    return train, test, problems


@fuzz(400)
@given(st.sampled_from(sorted(LAYOUT_FILES)).flatmap(lambda layout: st.tuples(st.sampled_from([layout, "auto"]),
                                                                               LAYOUT_FILES[layout])),
       st.booleans())
def test_table_readers_give_tables_or_a_user_error(dataset_folder, layout_and_files, skip):
    layout, contents = layout_and_files
    write_files(dataset_folder, dict.fromkeys(["train.csv", "test.csv", "dev.csv", "image_path.csv"]) | contents)
    result = user_error_or(read_and_check, dataset_folder, layout, skip)
    if isinstance(result, UserError):
        assert str(dataset_folder) in str(result)
        return
    train, test, problems = result
    bad = set(problems.rows_of(train.attrs["source"]))
    for row, image_id in enumerate(train["image_id"]):
        assert row in bad or not leads_out(image_id)
    assert not any(leads_out(i) for i in test["image_id"])
    targets = train["target"] if "target" in train else train.filter(like="target_").stack()
    assert set(targets) <= {0, 1, -1}


# ------------------------------------------------------------------ MedMNIST .npz
any_array = arrays(st.sampled_from([np.uint8, np.uint16, np.float32, np.bool_, np.int64, np.dtype("U2")]),
                   array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=3))


def npz_split(split):
    """One split's arrays: mostly n images and n labels, the images uint8 (n, h, w[, c]), labels
    (n,) or (n, 1) holding 0, 1 and wrong values; else any arrays, or none."""
    def images_and_labels(n):
        return st.fixed_dictionaries({
            f"{split}_images": st.builds(lambda h, w, c: np.zeros((n, h, w) + c, np.uint8), st.sampled_from([1, 3, 0]),
                                         st.integers(1, 3), st.sampled_from([(), (), (3,), (1,)])),
            f"{split}_labels": st.builds(lambda values, shape: np.array(values, float).reshape(shape),
                                         st.lists(st.sampled_from([0, 1, 0, 1, 2, np.nan]), min_size=n, max_size=n),
                                         st.sampled_from([(n,), (n, 1)]))})
    coherent = st.integers(0, 3).flatmap(images_and_labels)
    return st.one_of(coherent, coherent, st.fixed_dictionaries({}, optional={f"{split}_images": any_array,
                                                                             f"{split}_labels": any_array}))


npz_arrays = st.tuples(*map(npz_split, ("train", "val", "test"))).map(
    lambda splits: {name: array for split in splits for name, array in split.items()})


def damaged(data, how, where, bit):
    """`data` truncated, with one bit flipped, or emptied; `where` in [0, 1) picks the byte."""
    at = int(where * len(data))
    if how == "truncated":
        return data[:at]
    if how == "flipped":
        return data[:at] + bytes([data[at] ^ (1 << bit)]) + data[at + 1:]
    return b""


damage = st.tuples(st.sampled_from(["truncated", "flipped", "empty"]), st.floats(0, 1, exclude_max=True),
                   st.integers(0, 7))


def valid_npz():
    import io

    buffer = io.BytesIO()
    np.savez(buffer, train_images=np.zeros((2, 3, 3), np.uint8), train_labels=np.array([[0], [1]]),
             test_images=np.zeros((1, 3, 3), np.uint8), test_labels=np.array([[1]]))
    return buffer.getvalue()


@fuzz(200)
@given(st.one_of(npz_arrays, damage.map(lambda d: damaged(valid_npz(), *d))),
       st.booleans())
def test_medmnist_reader_gives_tables_or_a_user_error(npz, skip):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        if isinstance(npz, bytes):
            (root / "set.npz").write_bytes(npz)
        else:
            np.savez(root / "set.npz", **npz)
        result = user_error_or(read_and_check, root, "medmnist", skip)
    if isinstance(result, UserError):
        assert str(root) in str(result)
    else:
        train, test, _ = result
        assert set(train["target"]) <= {0, 1, -1} and train["image_id"].is_unique


# ------------------------------------------------------------------ submission files
SUBMITTED = ["a.png", "b.png", "x,y.png"]
VALUES = ["0", "1", "0.5", "-0.1", "1.5", "nan", "inf", "x", "", "1e-3", " 0.2", "\u0663", "10", "-5"]
value = st.one_of(st.sampled_from(VALUES), st.text(max_size=4))
points_text = st.lists(st.one_of(st.lists(value, max_size=4).map(" ".join), st.text(max_size=8)),
                       max_size=4).map(";".join)
submission_line = st.one_of(
    st.builds(lambda image, rest: f"{image},{rest}", st.one_of(st.sampled_from(SUBMITTED + [""]), st.text(max_size=5)),
              st.one_of(points_text, st.lists(value, max_size=3).map(",".join))),
    st.text(max_size=12))
submission_header = st.one_of(st.sampled_from([CLASSIFICATION_HEADER, "id,a,b", "image_path,prediction ", ""]),
                              st.text(max_size=8))
expected_images = st.lists(st.sampled_from(SUBMITTED), unique=True)


@fuzz(400)
@given(points_text)
def test_points_parser_gives_points_or_a_user_error(text):
    result = user_error_or(parse_points, text, "loc.csv line 2")
    if isinstance(result, UserError):
        assert "loc.csv line 2" in str(result)
    else:
        assert all(0 <= p <= 1 and x >= 0 and y >= 0 and np.isfinite([x, y]).all() for p, x, y in result)


@fuzz(300)
@given(file_bytes(lines_of(submission_line, submission_header)), expected_images,
       st.sampled_from([CLASSIFICATION_HEADER, "id,a,b"]), st.booleans())
def test_classification_validator_accepts_or_gives_a_user_error(content, expected, header, ordered):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cls.csv"
        if content is not None:
            path.write_bytes(content)
        result = user_error_or(validate_classification, path, expected, header=header,
                               order=expected if ordered else None)
    if isinstance(result, UserError):
        assert str(path) in str(result)


@fuzz(300)
@given(file_bytes(lines_of(submission_line, submission_header)), expected_images)
def test_localization_reader_gives_points_or_a_user_error(content, expected):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "loc.csv"
        if content is not None:
            path.write_bytes(content)
        result = user_error_or(read_localization, path, expected)
    if isinstance(result, UserError):
        assert str(path) in str(result)
    else:
        assert set(result) == set(expected)


# ------------------------------------------------------------------ damaged image files
FORMATS = ("png", "jpg", "dcm")


def sample_images(folder):
    """{format: bytes} of a small PNG, JPEG and 16-bit DICOM image of noise (a few KB each, so
    that the image data, not the header, makes most of each file)."""
    from test_dicom import write_dicom

    pixels = np.random.default_rng(0).integers(0, 256, (48, 64), dtype=np.uint8)
    write_dicom(folder / "sample.dcm", pixels.astype(np.uint16) * 16)
    return {"png": cv2.imencode(".png", pixels)[1].tobytes(), "jpg": cv2.imencode(".jpg", pixels)[1].tobytes(),
            "dcm": (folder / "sample.dcm").read_bytes()}


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    return sample_images(tmp_path_factory.mktemp("samples"))


def read_and_check_image(path):
    """(read_image's result or UserError, check_images' result or UserError) of one file."""
    table = pd.DataFrame({"image_id": [path.name]})
    table.attrs["source"] = "list.csv"
    image = user_error_or(read_image, path)
    checked = user_error_or(check_images, table, path.parent)
    for result in (image, checked):
        if isinstance(result, UserError):
            assert str(path) in str(result)
    if not isinstance(image, UserError):
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and image.size
    return image, checked


def assert_cut_short_refused(image, checked, dicom):
    """A file cut short is refused when read (never decoded half grey), and by the header check
    too (a JPEG or PNG lacks its end marker), unless it is a DICOM file read as one: that check
    reads a DICOM's header only."""
    assert isinstance(image, UserError)
    assert dicom or isinstance(checked, UserError)


@fuzz(400)
@given(st.sampled_from(FORMATS), damage, st.sampled_from(["", "png", "jpg", "dcm", "bmp"]))
def test_damaged_images_are_read_or_refused_naming_the_file(samples, fmt, how, extension):
    extension = extension or fmt
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"x.{extension}"
        path.write_bytes(damaged(samples[fmt], *how))
        image, checked = read_and_check_image(path)
    if how[0] != "flipped":
        assert_cut_short_refused(image, checked, dicom=fmt == extension == "dcm")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("how", ["empty", "header only", "half", "last byte lost"])
def test_incomplete_images_are_refused(samples, tmp_path, fmt, how):
    data = samples[fmt]
    data = {"empty": b"", "header only": data[:200], "half": data[:len(data) // 2], "last byte lost": data[:-1]}[how]
    path = tmp_path / f"x.{fmt}"
    path.write_bytes(data)
    assert_cut_short_refused(*read_and_check_image(path), dicom=fmt == "dcm")


@pytest.mark.parametrize("fmt, extension", [(f, e) for f in FORMATS for e in FORMATS if f != e])
def test_images_under_the_wrong_extension(samples, tmp_path, fmt, extension):
    """OpenCV and PIL go by the bytes, so a PNG or JPEG under another image extension is read as
    what it is; a DICOM is recognized by its extension only."""
    path = tmp_path / f"x.{extension}"
    path.write_bytes(samples[fmt])
    image, checked = read_and_check_image(path)
    readable = fmt != "dcm" and extension != "dcm"
    assert isinstance(image, UserError) != readable and isinstance(checked, UserError) != readable
