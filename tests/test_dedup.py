import shutil

import cv2
import numpy as np
import pandas as pd

from conftest import run_script
from cxr.data.dedup import connected_groups, find_duplicates, near_pairs


def radiograph(seed, size=(120, 100)):
    rng = np.random.default_rng(seed)
    image = cv2.GaussianBlur(rng.random(size).astype(np.float32), (0, 0), 6)
    image = (image - image.min()) / (image.max() - image.min())
    return (image * 255).astype(np.uint8)


def test_exact_near_and_distinct(tmp_path):
    base = radiograph(0)
    cv2.imwrite(str(tmp_path / "a.png"), base)
    shutil.copy(tmp_path / "a.png", tmp_path / "a_copy.png")                      # same bytes
    cv2.imwrite(str(tmp_path / "a_jpeg.jpg"), base, [cv2.IMWRITE_JPEG_QUALITY, 70])  # re-encoded
    cv2.imwrite(str(tmp_path / "other.png"), radiograph(1))
    ids = ["a.png", "a_copy.png", "a_jpeg.jpg", "other.png"]
    report, groups = find_duplicates(ids, ["train", "train", "test", "train"], tmp_path, threshold=8)
    kinds = {(a, b): k for a, b, k in zip(report["image_a"], report["image_b"], report["kind"])}
    assert kinds[("a.png", "a_copy.png")] == "exact"
    assert kinds[("a.png", "a_jpeg.jpg")] == "near" and kinds[("a_copy.png", "a_jpeg.jpg")] == "near"
    assert not any("other.png" in pair for pair in kinds)
    assert groups[0] == groups[1] == groups[2] != groups[3]
    crossing = report[report["side_a"] != report["side_b"]]
    assert set(crossing["image_b"]) == {"a_jpeg.jpg"}


def test_near_pairs_by_hand():
    hashes = np.array([[0b0000], [0b0111], [0b0001], [0b1111_0000]], dtype=np.uint64)
    i, j, d = near_pairs(hashes, threshold=2, chunk=2)
    assert sorted(zip(i.tolist(), j.tolist(), d.tolist())) == [(0, 2, 1), (1, 2, 2)]


def test_groups_are_transitive():
    assert connected_groups(5, [0, 3, 2], [1, 4, 1]).tolist() == [0, 0, 0, 3, 3]


def test_make_folds_keeps_a_duplicate_pair_in_one_fold(tmp_path):
    run_script("make_demo.py", "--out", "input/tiny", "--n-train", 20, "--n-dev", 4, "--min-size", 64,
               "--max-size", 96, cwd=tmp_path)
    root = tmp_path / "input/tiny"
    shutil.copy(root / "train/00001.jpg", root / "train/00002.jpg")
    table = pd.read_csv(root / "train.csv", keep_default_na=False)
    table.loc[1, "annotation"] = table.loc[0, "annotation"]
    table.to_csv(root / "train.csv", index=False)
    out = run_script("make_folds.py", "--dataset", "tiny", "--n-folds", 2, cwd=tmp_path).stdout
    assert "1 exact and 0 near pairs" in out
    folds = pd.read_csv(tmp_path / "folds/tiny.csv").set_index("image_id")
    assert folds.at["train/00001.jpg", "fold"] == folds.at["train/00002.jpg", "fold"]
    report = pd.read_csv(tmp_path / "folds/tiny_duplicates.csv")
    assert report[["image_a", "image_b", "kind"]].values.tolist() == [["train/00001.jpg", "train/00002.jpg", "exact"]]

    # A refused run (different folds without --overwrite) leaves the duplicates file as it was: check first, write last.
    before = (tmp_path / "folds/tiny_duplicates.csv").read_bytes()
    shutil.copy(root / "train/00003.jpg", root / "train/00004.jpg")
    refused = run_script("make_folds.py", "--dataset", "tiny", "--n-folds", 2, "--seed", 7, cwd=tmp_path, check=False)
    assert refused.returncode == 2 and "exists with different folds" in refused.stderr
    assert (tmp_path / "folds/tiny_duplicates.csv").read_bytes() == before


def test_pneumoniamnist_duplicates_are_found(shared_data):
    from cxr.data.layouts import read_dataset

    train, test = read_dataset(shared_data / "pneumoniamnist")
    ids = list(train["image_id"]) + list(test["image_id"])
    report, groups = find_duplicates(ids, ["train"] * len(train) + ["test"] * len(test), shared_data / "pneumoniamnist", 8)
    assert (report["kind"] == "exact").sum() >= 31  # measured: 31 byte-identical pairs
    assert len(set(groups)) < len(ids)


def twelve_bit(seed):
    return (radiograph(seed, (200, 160)).astype(np.float64) / 255 * 3000 + 500).astype(np.uint16)  # 12-bit range


def test_distinct_16_bit_radiographs_stay_apart_and_copies_are_found(tmp_path):
    """A 16-bit PNG is hashed as the cache decodes it, not clipped at 255 (which made distinct
    12-bit radiographs all white and one group)."""
    for seed in range(4):
        cv2.imwrite(str(tmp_path / f"{seed}.png"), twelve_bit(seed))
    cv2.imwrite(str(tmp_path / "0_again.png"), twelve_bit(0) + 1)  # re-exported: other bytes, same picture
    ids = [f"{seed}.png" for seed in range(4)] + ["0_again.png"]
    report, groups = find_duplicates(ids, ["train"] * 5, tmp_path, threshold=8)
    assert groups.tolist() == [0, 1, 2, 3, 0]


def test_dicom_images_are_hashed(tmp_path):
    from test_dicom import write_dicom

    for seed in range(3):
        write_dicom(tmp_path / f"{seed}.dcm", twelve_bit(seed))
    write_dicom(tmp_path / "copy.dcm", twelve_bit(1))
    report, groups = find_duplicates(["0.dcm", "1.dcm", "2.dcm", "copy.dcm"], ["train"] * 4, tmp_path, threshold=8)
    assert groups.tolist() == [0, 1, 2, 1]
    assert report[["image_a", "image_b", "kind"]].values.tolist() == [["1.dcm", "copy.dcm", "near"]]
