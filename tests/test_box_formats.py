"""The box and mask submissions (RSNA, VinBigData, SIIM-ACR): written in the sample submission's
header and order, every string by the competition's rules, checked before anything is replaced."""
import numpy as np
import pytest

from cxr.errors import UserError
from cxr.formats import registry
from cxr.formats.boxes import rsna_string, vinbig_string
from cxr.formats.rle import decode


def competition(root, sample, header, ids, folder):
    for i in ids:
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / f"{i}.dcm").write_bytes(b"DICM")
    (root / sample).write_text(header + "\n" + "".join(f"{i},\n" for i in ids))
    return [f"{folder}/{i}.dcm" for i in ids]


def test_the_prediction_strings_by_hand():
    assert rsna_string([(0.91234, (10.4, 20.6, 50.2, 80.9)), (0.2, (0, 0, 0.2, 0.3))]) == "0.9123 10 21 40 60 0.2000 0 0 1 1"
    assert rsna_string([]) == ""
    assert vinbig_string([(3, 0.5, (1, 2, 30, 40))], 0.25, 14) == "3 0.5000 1 2 30 40 14 0.2500 0 0 1 1"


def test_rsna_writes_the_sample_s_ids_and_order(tmp_path):
    root = tmp_path / "rsna"
    ids = competition(root, "stage_2_sample_submission.csv", "patientId,PredictionString", ["p2", "p1"],
                      "stage_2_test_images")
    plan = registry.get("rsna").plan(tmp_path / "out", root, ids, [""])
    plan.write({ids[0]: [(0.9, (10, 20, 50, 80))], ids[1]: []})
    assert plan.path.read_text() == "patientId,PredictionString\np2,0.9000 10 20 40 60\np1,\n"
    registry.get("rsna").validate(plan.path, ["p1", "p2"])


@pytest.mark.parametrize("name, text, why", [
    ("rsna", "0.9 10 20 40", "groups of 5"), ("rsna", "1.5 10 20 40 60", "confidence in"),
    ("rsna", "0.5 10 20 0 60", "positive width"), ("vinbig", "", "empty"), ("vinbig", "1.5 0.5 0 0 1 1", "class id"),
    ("vinbig", "3 0.5 10 10 5 20", "x1 < x2"), ("siim", "1 2 3", "pairs"), ("siim", "-2 3", "below 0"),
    ("siim", "", "an empty mask is written -1")])
def test_a_bad_string_is_named_with_its_line(tmp_path, name, text, why):
    header = {"rsna": "patientId,PredictionString", "vinbig": "image_id,PredictionString",
              "siim": "ImageId,EncodedPixels"}[name]
    path = tmp_path / "submission.csv"
    path.write_text(f"{header}\nimage,{text}\n")
    with pytest.raises(UserError, match=f"submission.csv line 2: .*{why}"):
        registry.get(name).validate(path, ["image"])


def test_vinbig_and_siim_write_their_strings(tmp_path):
    root = tmp_path / "vinbig"
    ids = competition(root, "sample_submission.csv", "image_id,PredictionString", ["a", "b"], "test")
    # the No finding id is train.csv's (VinBigData's 14; 3 in a set of three object classes)
    (root / "train.csv").write_text("image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n"
                                    "t1,Clip,0,R1,1,2,3,4\nt2,No finding,3,R2,,,,\n")
    plan = registry.get("vinbig").plan(tmp_path / "v", root, ids, [""])
    plan.write({ids[0]: ([(0, 0.8, (1, 2, 3, 4))], 0.1), ids[1]: ([], 0.9)})
    assert plan.path.read_text().splitlines()[1:] == ["a,0 0.8000 1 2 3 4 3 0.1000 0 0 1 1", "b,3 0.9000 0 0 1 1"]
    root = tmp_path / "siim"
    ids = competition(root, "stage_2_sample_submission.csv", "ImageId,EncodedPixels", ["1.2.3", "1.2.4"],
                      "dicom-images-test/s/r")
    mask = np.zeros((4, 5), bool)
    mask[1:3, 2] = True
    plan = registry.get("siim").plan(tmp_path / "s", root, ids, [""])
    plan.write({ids[0]: mask, ids[1]: np.zeros((4, 5), bool)})
    rows = plan.path.read_text().splitlines()
    assert rows == ["ImageId,EncodedPixels", "1.2.3,9 2", "1.2.4,-1"] and (decode("9 2", 4, 5) == mask).all()


def test_a_missing_prediction_or_another_header_stops_before_writing(tmp_path):
    root = tmp_path / "rsna"
    ids = competition(root, "stage_2_sample_submission.csv", "patientId,PredictionString", ["p1", "p2"],
                      "stage_2_test_images")
    plan = registry.get("rsna").plan(tmp_path / "out", root, ids, [""])
    plan.path.parent.mkdir()
    plan.path.write_text("kept\n")
    with pytest.raises(UserError, match="1 test image.s. have no prediction, first stage_2_test_images/p2.dcm"):
        plan.write({ids[0]: []})
    assert plan.path.read_text() == "kept\n"  # nothing already written is lost
    (root / "stage_2_sample_submission.csv").write_text("patientId,Boxes\np1,\n")
    with pytest.raises(UserError, match="expected the header 'patientId,PredictionString'"):
        registry.get("rsna").plan(tmp_path / "out", root, ids, [""])
    with pytest.raises(UserError, match="--format rsna writes boxes learned from that competition.s layout; .* is another layout"):
        registry.resolve("rsna", root, [""])
