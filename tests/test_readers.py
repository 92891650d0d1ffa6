import numpy as np
import pandas as pd
import pytest

from cxr.errors import UserError
from cxr.data.layouts import detect_layout, read_dataset, read_image_list


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def kaggle(tmp_path):
    write(tmp_path / "train.csv", "image_name,label,split\na.png,0,train\nb.png,1,train\nc.png,1,val\n")
    write(tmp_path / "test.csv", "image_name\nt1.png\nt2.png\n")
    return tmp_path


def test_kaggle_layout(kaggle):
    assert detect_layout(kaggle) == "kaggle"
    train, test = read_dataset(kaggle)
    assert train["image_id"].tolist() == ["train/a.png", "train/b.png", "train/c.png"]
    assert train["target"].tolist() == [0, 1, 1]
    assert test["image_id"].tolist() == ["test/t1.png", "test/t2.png"] and test["target"].isna().all()


@pytest.mark.parametrize("train_csv, why", [
    ("image_name,label\na.png,0\nb.png,2\n", "train.csv line 3: label '2' in column 'label' is not 0 or 1"),
    ("image_name,label\na.png,0\nb.png,yes\n", "train.csv line 3: label 'yes'"),
    ("picture,label\na.png,0\n", "no image id column (expected one of image_name"),
    ("image_name,note\na.png,x\n", "no label column found"),
    ("", "the file is empty"),
    ("image_name,label\n", "the table has no rows"),
])
def test_kaggle_bad_tables(kaggle, train_csv, why):
    write(kaggle / "train.csv", train_csv)
    with pytest.raises(UserError, match=why.replace("(", r"\(").replace(")", r"\)")):
        read_dataset(kaggle, layout="kaggle")


def test_kaggle_multi_label_is_read_as_one_binary_column_per_label(kaggle):
    from cxr.data.layouts import require_targets

    write(kaggle / "train.csv", "image_name,effusion,nodule\na.png,0,1\nb.png,1,0\n")
    train, _ = read_dataset(kaggle)
    assert train["target_effusion"].tolist() == [0, 1] and train["target_nodule"].tolist() == [1, 0]
    assert train.attrs["task"] == "multi-label (2 label columns: effusion, nodule)"
    require_targets(train)  # trainable: one binary target per label
    write(kaggle / "train.csv", "image_name,effusion,nodule\na.png,0,1\nb.png,1,3\n")
    with pytest.raises(UserError, match="line 3: label '3' in column 'nodule'"):
        read_dataset(kaggle)


def test_kaggle_label_column_flag(kaggle):
    write(kaggle / "train.csv", "image_name,effusion,nodule\na.png,0,1\nb.png,1,0\n")
    train, _ = read_dataset(kaggle, label_column="nodule")
    assert train["target"].tolist() == [1, 0]
    with pytest.raises(UserError, match="no label column 'mass'"):
        read_dataset(kaggle, label_column="mass")


def test_image_folder_layout(tmp_path):
    for cls, n in [("Normal", 2), ("Bacterial", 1), ("Viral", 1)]:
        for i in range(n):
            write(tmp_path / cls / f"{i}.jpeg", "")
    write(tmp_path / "Normal" / "notes.txt", "")  # not an image: ignored
    assert detect_layout(tmp_path) == "imagefolder"
    multi, _ = read_dataset(tmp_path)  # multi-class, read as such
    assert multi["class_name"].tolist() == ["Bacterial", "Normal", "Normal", "Viral"]
    assert "multi-class (3 classes" in multi.attrs["task"] and "target" not in multi
    with pytest.raises(UserError, match="--positive-classes Covid not found"):
        read_dataset(tmp_path, positive_classes="Covid")
    train, test = read_dataset(tmp_path, positive_classes="Bacterial,Viral")
    assert dict(zip(train["image_id"], train["target"])) == {
        "Bacterial/0.jpeg": 1, "Normal/0.jpeg": 0, "Normal/1.jpeg": 0, "Viral/0.jpeg": 1}
    assert len(test) == 0


def test_objectcxr_test_side_from_image_path_list(tmp_path):
    write(tmp_path / "train.csv", "image_name,annotation\n1.jpg,0 1 2 3 4\n2.jpg,\n")
    write(tmp_path / "image_path.csv", "images/a.jpg\nimages/b.jpg\n")
    train, test = read_dataset(tmp_path)
    assert train["image_id"].tolist() == ["train/1.jpg", "train/2.jpg"] and train["target"].tolist() == [1, 0]
    assert test["image_id"].tolist() == ["images/a.jpg", "images/b.jpg"] and test["target"].isna().all()


def test_unknown_layout_and_folder(tmp_path):
    with pytest.raises(UserError, match="no such data set"):
        read_dataset(tmp_path / "nothing")
    with pytest.raises(UserError, match="cannot tell the layout"):
        read_dataset(tmp_path)
    with pytest.raises(UserError, match="--layout coco"):
        read_dataset(tmp_path, layout="coco")


@pytest.mark.parametrize("name", ["../../secret.png", "x/../../../etc/passwd", "/etc/passwd", "/tmp/a.png"])
@pytest.mark.parametrize("layout, csv, table", [
    ("kaggle", "train.csv", "image_name,label\na.png,0\n{},1\n"),
    ("kaggle", "test.csv", "image_name\na.png\n{}\n"),
    ("objectcxr", "train.csv", "image_name,annotation\na.png,\n{},\n"),
    ("objectcxr", "dev.csv", "image_name,annotation\na.png,\n{},\n"),
    ("objectcxr", "image_path.csv", "dev/a.png\n{}\n"),
], ids=["kaggle-train", "kaggle-test", "objectcxr-train", "objectcxr-dev", "objectcxr-list"])
def test_ids_leading_out_of_the_data_set_folder_are_refused(tmp_path, layout, csv, table, name):
    """An id is read as <data set folder>/<id>: an absolute path or a climb out with '..' would
    read any file on the disk."""
    tables = {"kaggle": {"train.csv": "image_name,label\na.png,0\n", "test.csv": "image_name\na.png\n"},
              "objectcxr": {"train.csv": "image_name,annotation\na.png,\n", "dev.csv": "image_name,annotation\n"}}
    for other, text in tables[layout].items():
        write(tmp_path / other, text)
    if csv == "image_path.csv":
        (tmp_path / "dev.csv").unlink()
    write(tmp_path / csv, table.format(name))
    line = 2 if csv == "image_path.csv" else 3
    with pytest.raises(UserError, match=f"^{tmp_path / csv} line {line}: image {name} lies outside the data set folder"):
        read_dataset(tmp_path, layout=layout)


def test_ids_may_climb_within_the_folder_and_the_folder_may_be_a_link(tmp_path):
    import cv2

    from cxr.data.images import check_images

    real = tmp_path / "elsewhere" / "x"
    write(real / "train.csv", "image_name,label\na.png,0\n../test/b.png,1\n")
    write(real / "test.csv", "image_name\nt.png\n")
    for image in ("train/a.png", "test/b.png", "test/t.png"):
        (real / image).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(real / image), np.zeros((3, 5), np.uint8))
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "x").symlink_to(real)
    root = tmp_path / "input" / "x"
    train, test = read_dataset(root)
    assert train["image_id"].tolist() == ["train/a.png", "train/../test/b.png"] and test["image_id"].tolist() == ["test/t.png"]
    assert check_images(train, root) == [(5, 3), (5, 3)] and check_images(test, root) == [(5, 3)]


def test_a_submission_list_may_name_images_anywhere(tmp_path):
    write(tmp_path / "list.csv", "/data/a.jpg\n../b.jpg\n")
    assert read_image_list(tmp_path / "list.csv")["image_id"].tolist() == ["/data/a.jpg", "../b.jpg"]


# ------------------------------------------------------------ the shared real data sets
def test_shared_pneumoniamnist(shared_data):
    train, test = read_dataset(shared_data / "pneumoniamnist")
    assert len(train) == 5232 and len(test) == 624
    assert 0.70 < train["target"].mean() < 0.78  # about 74 % pneumonia
    assert (shared_data / "pneumoniamnist" / train["image_id"].iloc[0]).is_file()


def test_shared_objectcxr_semireal(shared_data):
    train, dev = read_dataset(shared_data / "objectcxr_semireal")
    assert len(train) == 1602 and len(dev) == 400
    assert 0.4 < train["target"].mean() < 0.6 and dev["target"].notna().all()


def test_shared_image_folder(shared_data):
    train, _ = read_dataset(shared_data / "cxr_pneumonia_folder", positive_classes="BacterialPneumonia,ViralPneumonia")
    assert len(train) == 710 and train["target"].sum() == 350


def test_shared_objectcxr_sample_list(shared_data):
    test = read_image_list(shared_data / "objectcxr_sample" / "image_path.csv")
    assert len(test) == 6 and all((shared_data / "objectcxr_sample" / i).is_file() for i in test["image_id"])
    assert np.isnan(test["target"]).all() and isinstance(test, pd.DataFrame)


def write_npz(folder, with_test_labels=True, labels=None, rgb=False):
    rng = np.random.default_rng(0)
    shape = (28, 28, 3) if rgb else (28, 28)
    arrays = {f"{s}_images": rng.integers(0, 256, (n, *shape), dtype=np.uint8) for s, n in
              (("train", 6), ("val", 2), ("test", 3))}
    arrays.update(train_labels=np.array(labels or [0, 1, 0, 1, 1, 0]).reshape(-1, 1),
                  val_labels=np.array([[1], [0]]))
    if with_test_labels:
        arrays["test_labels"] = np.array([[0], [1], [1]])
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "tinymnist.npz", **arrays)
    return arrays


@pytest.mark.parametrize("with_test_labels, rgb", [(True, False), (False, True)])
def test_medmnist_npz(tmp_path, with_test_labels, rgb):
    import cv2

    arrays = write_npz(tmp_path, with_test_labels, rgb=rgb)
    assert detect_layout(tmp_path) == "medmnist"
    train, test = read_dataset(tmp_path)
    assert len(train) == 8 and train["target"].tolist() == [0, 1, 0, 1, 1, 0, 1, 0]
    assert train["image_id"].iloc[6] == "tinymnist_png/val/00000.png"
    assert len(test) == 3
    assert test["target"].tolist() == [0, 1, 1] if with_test_labels else test["target"].isna().all()
    png = cv2.imread(str(tmp_path / train["image_id"].iloc[0]), cv2.IMREAD_UNCHANGED)
    expected = arrays["train_images"][0]
    assert np.array_equal(png if not rgb else cv2.cvtColor(png, cv2.COLOR_BGR2RGB), expected)
    stamp = (tmp_path / "tinymnist_png/.unpacked").stat().st_mtime_ns
    read_dataset(tmp_path)  # unpacked once: the second read reuses the folder
    assert (tmp_path / "tinymnist_png/.unpacked").stat().st_mtime_ns == stamp


def test_medmnist_labels_must_be_binary(tmp_path):
    write_npz(tmp_path, labels=[0, 1, 2, 1, 1, 0])
    with pytest.raises(UserError, match=r"train_labels\[2\] is 2, not 0 or 1"):
        read_dataset(tmp_path)


@pytest.mark.parametrize("change, why", [
    (lambda a: a.pop("val_labels"), "'val_images' has no 'val_labels'"),
    (lambda a: a.update(train_labels=np.array([[0], [1]])), r"'train_labels' of shape \(2, 1\) for 6 images"),
    (lambda a: a.update(train_labels=np.zeros((6, 2))), "has 2 columns: multi-label"),
    (lambda a: a.update(train_labels=np.array(list("010110"))), "'train_labels' is <U1 of shape"),
    (lambda a: a.update(train_labels=np.array([0, 1, np.nan, 1, 1, 0])), r"train_labels\[2\] is nan, not 0 or 1"),
    (lambda a: a.update(train_images=a["train_images"].astype(np.float32)), "'train_images' is float32 of shape"),
    (lambda a: a.update(test_images=np.zeros(3, np.uint8)), r"'test_images' is uint8 of shape \(3,\); uint8 \(n, h, w\)"),
    (lambda a: a.update(val_images=np.zeros((2, 28, 28, 4), np.uint8)), "'val_images' is uint8 of shape"),
], ids=["no val labels", "too few labels", "multi-label", "text labels", "NaN label", "float images", "1-D images",
        "4 channels"])
def test_medmnist_malformed_arrays_are_refused(tmp_path, change, why):
    arrays = write_npz(tmp_path)
    change(arrays)
    np.savez(tmp_path / "tinymnist.npz", **arrays)
    with pytest.raises(UserError, match=f"tinymnist.npz: .*{why}"):
        read_dataset(tmp_path, layout="medmnist")


def with_compression_method(data, method):
    """A zip archive with its first member's compression method (in the central directory) replaced."""
    at = data.index(b"PK\x01\x02") + 10
    return data[:at] + method.to_bytes(2, "little") + data[at + 2:]


@pytest.mark.parametrize("damage, why", [
    (lambda data: data[:len(data) // 2], "not a readable .npz"),
    (lambda data: b"", "not a readable .npz"),
    (lambda data: data[:100] + bytes([data[100] ^ 1]) + data[101:], "not a readable .npz"),
    (lambda data: np.lib.format.magic(1, 0) + data, "not a readable .npz"),
    (lambda data: with_compression_method(data, 99), r"not a readable .npz archive \(That compression method is not"),
], ids=["truncated", "empty", "bit flipped", "npy magic", "unknown compression"])
def test_damaged_npz_is_refused(tmp_path, damage, why):
    write_npz(tmp_path)
    path = tmp_path / "tinymnist.npz"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(UserError, match=f"tinymnist.npz: {why}"):
        read_dataset(tmp_path, layout="medmnist")


def test_a_single_array_is_not_an_npz_archive(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros(3))
    (tmp_path / "a.npy").rename(tmp_path / "a.npz")
    with pytest.raises(UserError, match=r"a.npz: not a readable .npz archive \(it holds a single array\)"):
        read_dataset(tmp_path, layout="medmnist")


def test_a_name_too_long_for_the_file_system_is_a_bad_row(kaggle):
    import cv2

    from cxr.data.images import check_images
    from cxr.errors import RowProblems

    write(kaggle / "train.csv", f"image_name,label\n{'a' * 300}.png,0\nb.png,1\n")
    (kaggle / "train").mkdir()
    cv2.imwrite(str(kaggle / "train" / "b.png"), np.zeros((2, 2), np.uint8))
    problems = RowProblems(skip=True)
    train, _ = read_dataset(kaggle, problems=problems)
    assert check_images(train, kaggle, problems) == [(0, 0), (2, 2)]
    assert [p["row"] for p in problems.found] == [0] and "cannot be opened (File name too long)" in problems.found[0]["problem"]


def test_skip_bad_records_every_bad_training_row_and_the_test_side_stays_strict(kaggle, tmp_path):
    from cxr.errors import RowProblems

    write(kaggle / "train.csv", "image_name,label\na.png,0\nb.png,2\na.png,1\nd.png,1\n")
    problems = RowProblems(skip=True)
    train, _ = read_dataset(kaggle, problems=problems)
    assert problems.rows_of(kaggle / "train.csv") == [1]  # a.png's two rows merge (see merge_repeats); b.png is bad
    assert [p["problem"].split(": ", 1)[1] for p in problems.found] == [
        "label '2' in column 'label' is not 0 or 1 (a binary task)"]
    assert train["target"].tolist() == [1, -1, 1]  # a placeholder until read_checked drops the row
    write(kaggle / "test.csv", "image_name\nt1.png\nt1.png\n")
    with pytest.raises(UserError, match="test.csv line 3: image test/t1.png is listed twice"):
        read_dataset(kaggle, problems=RowProblems(skip=True))

    write_npz(tmp_path / "npz", labels=[0, 1, 2, 1, 1, 0])
    problems = RowProblems(skip=True)
    read_dataset(tmp_path / "npz", problems=problems)
    assert problems.rows_of(tmp_path / "npz/tinymnist.npz") == [2]


def test_a_test_list_alone_is_refused_with_the_reason(tmp_path):
    write(tmp_path / "image_path.csv", "images/a.jpg\n")
    write(tmp_path / "images/a.jpg", "")
    with pytest.raises(UserError, match="only a test list .* nothing to train on"):
        read_dataset(tmp_path)


def png(path):
    """An image file where the name matters, not the content (a .dcm gets stand-in bytes)."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".dcm":
        path.write_bytes(b"DICM")
    else:
        cv2.imwrite(str(path), np.zeros((3, 5), np.uint8))


def lay_out(root, tables, images):
    """A competition folder: its tables ({file name: text}) and image files (names; content does not matter)."""
    for name, text in tables.items():
        write(root / name, text)
    for name in images:
        png(root / name)


@pytest.mark.parametrize("column", ["patientId", "ImageId", "Image Index", "image_id", "StudyInstanceUID"])
def test_common_id_columns_and_ids_without_an_extension(tmp_path, column):
    """RSNA's patientId, SIIM's ImageId, NIH's 'Image Index': the ids name files without their extension."""
    lay_out(tmp_path, {"train.csv": f"{column},label\n0001,0\n0002,1\n", "test.csv": f"{column}\n0003\n"},
            ("train/0001.png", "train/0002.dcm", "test/0003.jpg"))
    train, test = read_dataset(tmp_path)
    assert train["image_id"].tolist() == ["train/0001.png", "train/0002.dcm"] and test["image_id"].tolist() == ["test/0003.jpg"]


def test_ids_are_found_anywhere_below_the_data_set_folder(tmp_path):
    """SIIM-ACR's nested DICOM tree: study/series/<ImageId>.dcm; dotted ids keep their dots."""
    write(tmp_path / "train.csv", "ImageId,label\n1.2.840.1,0\n1.2.840.2,1\n")
    write(tmp_path / "test.csv", "ImageId\n1.2.840.3\n")
    for name in ("dicom-images-train/st1/se1/1.2.840.1.png", "dicom-images-train/st2/se9/1.2.840.2.png",
                 "dicom-images-test/st3/se3/1.2.840.3.png"):
        png(tmp_path / name)
    train, test = read_dataset(tmp_path)
    assert train["image_id"].tolist() == ["dicom-images-train/st1/se1/1.2.840.1.png",
                                          "dicom-images-train/st2/se9/1.2.840.2.png"]
    assert test["image_id"].tolist() == ["dicom-images-test/st3/se3/1.2.840.3.png"]


def test_an_ambiguous_id_names_its_file_line_and_candidates(tmp_path):
    lay_out(tmp_path, {"train.csv": "id,label\na,0\nb,1\n", "test.csv": "id\nt\n"},
            ("train/a.png", "train/b.png", "train/b.jpg", "test/t.png"))
    with pytest.raises(UserError, match=r"train.csv line 3: image train/b is ambiguous: train/b.jpg, train/b.png"):
        read_dataset(tmp_path)


def test_the_id_column_by_flag(tmp_path):
    lay_out(tmp_path, {"train.csv": "id,file,label\nx,a.png,0\ny,b.png,1\n", "test.csv": "id,file\nz,t.png\n"},
            ("train/a.png", "train/b.png", "test/t.png"))
    train, _ = read_dataset(tmp_path, requested_id="file")
    assert train["image_id"].tolist() == ["train/a.png", "train/b.png"]
    with pytest.raises(UserError, match="train.csv: no id column 'nope'"):
        read_dataset(tmp_path, requested_id="nope")


def test_a_competition_that_ships_only_sample_submission_csv(tmp_path):
    """No test.csv: the test ids come from sample_submission.csv; the submission keeps its header and order."""
    from cxr.formats.registry import resolve

    lay_out(tmp_path, {"train.csv": "id,label\n0001,0\n0002,1\n", "sample_submission.csv": "id,label\n0004,0.5\n0003,0.5\n"},
            ("train/0001.png", "train/0002.png", "test/0003.png", "test/0004.png"))
    _, test = read_dataset(tmp_path)
    assert test["image_id"].tolist() == ["test/0004.png", "test/0003.png"] and test["target"].isna().all()
    chosen = resolve("auto", tmp_path, [""])
    assert chosen.name == "kaggle"
    submission = chosen.plan(tmp_path / "out", tmp_path, ["test/0003.png", "test/0004.png"], [""])
    submission.write(np.array([[0.3], [0.9]]))
    assert (tmp_path / "out/submission.csv").read_text() == "id,label\n0004,0.90000000\n0003,0.30000000\n"
    (tmp_path / "sample_submission.csv").unlink()  # no table at all: the images below test/ are the test side
    assert read_dataset(tmp_path)[1]["image_id"].tolist() == ["test/0003.png", "test/0004.png"]
    assert resolve("auto", tmp_path, [""]).name == "objectcxr"  # no test table to copy a Kaggle format from
    for image in (tmp_path / "test").iterdir():
        image.unlink()
    (tmp_path / "test").rmdir()
    with pytest.raises(UserError, match="no test.csv, no sample_submission.csv and no test/ folder"):
        read_dataset(tmp_path)


def test_the_label_column_is_found_whatever_its_case(tmp_path):
    lay_out(tmp_path, {"train.csv": "patientId,x,Target\n0001,,0\n0002,3,1\n", "test.csv": "patientId\n0003\n"},
            ("train/0001.png", "train/0002.png", "test/0003.png"))
    train, _ = read_dataset(tmp_path)
    assert train["target"].tolist() == [0, 1]


def test_several_rows_of_one_image_are_merged_with_the_rule_stated(tmp_path, capsys):
    """RSNA's shape: one row per box (patientId,x,y,width,height,Target), an image without boxes on one row."""
    from cxr.errors import RowProblems

    lay_out(tmp_path, {"train.csv": "patientId,x,y,width,height,Target\n"
                                    "a,,,,,0\nb,10,10,5,5,1\nb,30,30,5,5,1\nc,,,,,0\nd,1,1,2,2,1\n",
                       "test.csv": "patientId\nt\n"},
            ("train/a.png", "train/b.png", "train/c.png", "test/t.png"))  # d's image is missing
    problems = RowProblems(skip=True)
    train, _ = read_dataset(tmp_path, problems=problems)
    assert train["image_id"].tolist() == ["train/a.png", "train/b.png", "train/c.png", "train/d"]
    assert train["target"].tolist() == [0, 1, 0, 1] and train.attrs["lines"] == [2, 3, 5, 6]
    assert "5 rows for 4 images (one row per box or per rater): an image is positive" in capsys.readouterr().out
    from cxr.data.images import check_images

    check_images(train, tmp_path, problems)  # the missing image is named by its row's line in the file
    assert problems.found[-1]["row"] == 3 and "train.csv line 6: image" in problems.found[-1]["problem"]
