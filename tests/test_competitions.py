"""The box and mask competitions' layouts read as shipped (cxr/data/competitions.py): RSNA's boxes,
VinBigData's radiologists' classed boxes, SIIM-ACR's run-length masks, each as annotations the map
models learn; the layouts made by ../shared/tools/make_challenge_layouts.py from a slice of the
semi-real set (skipped without ../shared)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import run_script
from cxr.data.annotations import parse_annotation
from cxr.data.competitions import box_classes, fuse_readers, map_classes, mask_polygons
from cxr.data.layouts import read_dataset
from cxr.errors import UserError
from cxr.formats.rle import decode

SHARED = Path(__file__).resolve().parents[2] / "shared"
TOOL = SHARED / "tools" / "make_challenge_layouts.py"
SOURCE = SHARED / "data" / "objectcxr_semireal"


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    if not (TOOL.is_file() and SOURCE.is_dir()):
        pytest.skip("../shared (the layout tool and the semi-real set) is not here")
    root = tmp_path_factory.mktemp("layouts")
    small = root / "small"
    for side, n in (("train", 24), ("dev", 8)):
        table = pd.read_csv(SOURCE / f"{side}.csv", dtype=str, keep_default_na=False).head(n)
        (small / side).mkdir(parents=True)
        for name in table.iloc[:, 0]:
            (small / side / Path(name).name).symlink_to((SOURCE / side / Path(name).name).resolve())
        table.to_csv(small / f"{side}.csv", index=False)
    for layout in ("rsna", "vinbig", "siim"):
        subprocess.run([sys.executable, str(TOOL), str(small), str(root / "input" / layout), "--layout", layout,
                        "--id-map"], check=True, capture_output=True)
    source = pd.read_csv(small / "train.csv", dtype=str, keep_default_na=False)
    return root, dict(zip(source.iloc[:, 0].map(lambda n: Path(n).name), source["annotation"] != ""))


def source_targets(root, layout, train):
    """The semi-real image each training row came from, and whether it holds an object there."""
    id_map = pd.read_csv(root / "input" / f"{layout}_id_map.csv", dtype=str)
    return dict(zip(id_map["path"], id_map["source_image"].map(lambda n: Path(n).name)))


@pytest.mark.parametrize("layout", ["rsna", "vinbig", "siim"])
def test_each_layout_is_read_with_the_source_s_objects(layouts, layout):
    root, positive = layouts
    train, test = read_dataset(root / "input" / layout)
    source_of = source_targets(root, layout, train)
    assert len(train) == 24 and len(test) == 8 and test["target"].isna().all()
    assert [bool(t) for t in train["target"]] == [positive[source_of[i]] for i in train["image_id"]]
    for text in train["annotation"]:
        parse_annotation(text)  # every shape valid for the map models' targets


def test_rsna_boxes_are_the_table_s(layouts):
    root, _ = layouts
    train, _ = read_dataset(root / "input" / "rsna")
    labels = pd.read_csv(root / "input" / "rsna" / "stage_2_train_labels.csv")
    first = labels[labels["Target"] == 1].iloc[0]
    row = train[train["image_id"].str.contains(first["patientId"])].iloc[0]
    boxes = [s.coords for s in parse_annotation(row["annotation"])]
    x, y = int(np.floor(first["x"])), int(np.floor(first["y"]))  # the first and last pixels, inclusive
    assert (x, y, int(np.ceil(first["x"] + first["width"])) - 1, int(np.ceil(first["y"] + first["height"])) - 1) in boxes
    assert len(boxes) == (labels["patientId"] == first["patientId"]).sum()


def test_vinbig_fuses_the_readers_boxes_into_one_per_object(layouts):
    """Three readers' jittered boxes of one object become one box of its class: per image and class,
    at least as many boxes as any one reader drew, and no more than the source image has objects
    of that kind (Clip, Coin, Wire: rectangles, ellipses, polygons)."""
    root, _ = layouts
    train, _ = read_dataset(root / "input" / "vinbig")
    table = pd.read_csv(root / "input" / "vinbig" / "train.csv", dtype=str, keep_default_na=False)
    sources = source_targets(root, "vinbig", train)
    semireal = pd.read_csv(SOURCE / "train.csv", dtype=str, keep_default_na=False)
    source_shapes = dict(zip(semireal.iloc[:, 0].map(lambda n: Path(n).name), semireal["annotation"]))
    checked = 0
    for image, cells, annotation in zip(train["image_id"], train["classes"], train["annotation"]):
        rows = table[table["image_id"] == Path(image).stem]
        fused = box_classes(cells)
        assert len(fused) == len(parse_annotation(annotation))  # one rectangle per fused box, in order
        kinds = [s.kind for s in parse_annotation(source_shapes[sources[image]])]
        for name in set(rows.loc[rows["x_min"] != "", "class_id"]):
            per_reader = rows[rows["class_id"] == name].groupby("rad_id").size().max()
            assert per_reader <= fused.count(name) <= kinds.count(int(name)), (image, name)
            checked += 1
    assert checked >= 5


def test_fuse_readers_by_hand():
    """Readers' boxes of a class overlapping at IoU >= 0.4 average into one; one reader's two boxes
    stay two; another class is never merged."""
    boxes = [("0", (0, 0, 10, 10), "R1"), ("0", (1, 1, 11, 11), "R2"), ("0", (0, 0, 10, 10), "R1"),
             ("1", (0, 0, 10, 10), "R3"), ("0", (50, 50, 60, 60), "R3"), ("0", (20, 0, 30, 10), "R2")]
    fused = fuse_readers(boxes)
    assert fused == [("0", (0.5, 0.5, 10.5, 10.5)), ("0", (0.0, 0.0, 10.0, 10.0)), ("0", (50.0, 50.0, 60.0, 60.0)),
                     ("0", (20.0, 0.0, 30.0, 10.0)), ("1", (0.0, 0.0, 10.0, 10.0))]
    assert map_classes(pd.DataFrame({"classes": ["10 0 0 1 1;2 0 0 1 1", "", "2 5 5 6 6"]})) == ["2", "10"]


def test_siim_masks_become_polygons_over_the_same_pixels(layouts):
    root, _ = layouts
    train, _ = read_dataset(root / "input" / "siim")
    table = pd.read_csv(root / "input" / "siim" / "stage_2_train.csv", dtype=str)
    first = table[table["EncodedPixels"] != "-1"].iloc[0]
    row = train[train["image_id"].str.contains(first["ImageId"], regex=False)].iloc[0]
    from cxr.data.images import image_size

    width, height = image_size(root / "input" / "siim" / row["image_id"])
    mask = decode(first["EncodedPixels"], height, width)
    ys, xs = np.nonzero(mask)
    shape = parse_annotation(mask_polygons(mask))[0]
    assert shape.points[:, 0].min() == xs.min() and shape.points[:, 1].max() in (ys.max(), ys.max() + 1)


def test_a_line_or_a_dot_of_mask_is_a_rectangle_of_its_pixels():
    mask = np.zeros((6, 6), bool)
    mask[2, 1:4] = True  # a horizontal line: no area between its pixels' centres
    mask[5, 5] = True
    shapes = parse_annotation(mask_polygons(mask))
    # the line's pixels x 1-3 on row 2 (a rectangle needs two rows: 2-3); the dot's (5, 5) drawn 2 x 2
    assert sorted(s.coords for s in shapes) == [(1, 2, 3, 3), (5, 5, 6, 6)]


def test_a_box_is_drawn_over_the_pixels_it_covers():
    from cxr.data.competitions import rectangle
    from cxr.localization.targets import rasterize

    drawn = rasterize(parse_annotation(rectangle(10, 10, 12, 13)), 20, 20)  # edges: 2 x 3 pixels
    assert drawn.sum() == 6 and drawn[10:13, 10:12].all()
    assert parse_annotation(rectangle(4.5, 4.5, 4.5, 4.5))[0].coords == (4, 4, 5, 5)  # no area: still drawn


def test_a_bad_row_is_named_with_its_file_and_line(layouts, tmp_path):
    root, _ = layouts
    import shutil

    rsna = tmp_path / "rsna"
    shutil.copytree(root / "input" / "rsna", rsna)
    labels = (rsna / "stage_2_train_labels.csv").read_text().splitlines()
    pid = labels[1].split(",")[0]
    labels.append(f"{pid},10,,5,5,1")
    (rsna / "stage_2_train_labels.csv").write_text("\n".join(labels) + "\n")
    with pytest.raises(UserError, match=f"stage_2_train_labels.csv line {len(labels)}: Target 1 with box"):
        read_dataset(rsna)


@pytest.mark.parametrize("layout", ["rsna", "vinbig", "siim"])
def test_folds_are_cut_from_each_layout(layouts, layout):
    root, _ = layouts
    result = run_script("make_folds.py", "--dataset", layout, "--n-folds", 3, cwd=root)
    assert f"wrote folds/{layout}.csv: 24 images, 3 folds" in result.stdout


def perfect_submission(kind, truth_path, out):
    """The truth file written as that competition's submission."""
    truth = pd.read_csv(truth_path, dtype=str, keep_default_na=False)
    rows = {}
    for row in truth.itertuples(index=False):
        image = row[0]
        text = rows.setdefault(image, [])
        if kind == "rsna" and row.Target == "1":
            text.append(f"0.9 {row.x} {row.y} {row.width} {row.height}")
        elif kind == "vinbig":
            box = [row.x_min, row.y_min, row.x_max, row.y_max]
            text.append(f"{row.class_id} 0.9 " + (" ".join(box) if box[0] else "0 0 1 1"))
        elif kind == "siim" and row.EncodedPixels != "-1":
            text.append(row.EncodedPixels)
    header = {"rsna": "patientId,PredictionString", "vinbig": "image_id,PredictionString",
              "siim": "ImageId,EncodedPixels"}[kind]
    if kind == "siim":  # one mask per image: several objects' runs merged (they never overlap in the tool's output)
        from cxr.formats.rle import decode, encode
        rows = {i: [encode(np.logical_or.reduce([decode(t, 2000, 2000) for t in texts]))] if texts else ["-1"]
                for i, texts in rows.items()}
    out.write_text(header + "\n" + "".join(f"{i},{' '.join(t)}\n" for i, t in rows.items()))
    return out


@pytest.mark.parametrize("layout, sample, floor", [("rsna", "stage_2_sample_submission.csv", 0.0),
                                                   ("vinbig", "sample_submission.csv", None),
                                                   ("siim", "stage_2_sample_submission.csv", None)])
def test_score_py_scores_each_competition_s_submission(layouts, tmp_path, layout, sample, floor):
    root, _ = layouts
    truth = root / "input" / f"{layout}_test_truth.csv"
    perfect = run_script("score.py", perfect_submission(layout, truth, tmp_path / "p.csv"), truth, "--bootstrap", 50,
                         cwd=root)
    assert " 1.0000 [1.0000, 1.0000]" in perfect.stdout
    baseline = run_script("score.py", root / "input" / layout / sample, truth, "--bootstrap", 50, cwd=root)
    value = float(baseline.stdout.split("]")[0].split("[")[0].split()[-1])
    assert value < 1.0 and (floor is None or value == floor)


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["rsna", "vinbig", "siim"])
def test_run_sh_writes_a_submission_the_competition_accepts(layouts, tmp_path, layout):
    """run.sh on the layout as shipped: map models (the set is annotated), the boxes or masks from
    their maps with post-processing chosen on OOF, the file valid by the competition's rules, and
    score.py scoring it against the truth."""
    import os
    import shutil

    from conftest import ROOT
    from cxr.formats import registry

    root, _ = layouts
    shutil.copy(ROOT / "run.sh", tmp_path / "run.sh")
    shutil.copytree(ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / layout).symlink_to(root / "input" / layout)
    env = {**os.environ, "TQDM_DISABLE": "1", "DATASET": layout, "N_FOLDS": "2", "ARCHS": "", "MAP_IMG_SIZE": "96",
           "CROP_SIZE": "48", "MAP_EPOCHS": "1", "MAP_MIN_STEPS": "0", "TRIALS": "5", "BOOTSTRAP": "50"}
    result = subprocess.run(["bash", "run.sh", "--no-tensorboard"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"submission format: {layout}" in result.stdout and "== resnet18-map fold 1" in result.stdout
    assert "nested (each fold by the setting best on the others)" in result.stdout
    submission = tmp_path / "submissions" / layout / "submission.csv"
    sample = pd.read_csv(root / "input" / layout / ("sample_submission.csv" if layout == "vinbig" else
                                                    "stage_2_sample_submission.csv"), dtype=str)
    registry.get(layout).validate(submission, list(sample.iloc[:, 0]))
    assert pd.read_csv(submission, dtype=str).iloc[:, 0].tolist() == sample.iloc[:, 0].tolist()
    assert (tmp_path / "oof" / layout / "objects_report.csv").is_file()
    scored = run_script("score.py", submission, root / "input" / f"{layout}_test_truth.csv", "--bootstrap", 20,
                        cwd=tmp_path)
    assert "95 % bootstrap over images" in scored.stdout


def test_a_submission_row_given_twice_is_refused_by_the_scorer():
    from cxr.metrics.object_scoring import read_predictions

    table = pd.DataFrame({"patientId": ["a", " a"], "PredictionString": ["0.5 1 1 2 2", ""]})
    with pytest.raises(UserError, match="s.csv line 3: image a appears twice"):
        read_predictions("rsna", table, "s.csv")


def test_a_vinbig_box_without_a_whole_class_id_is_refused_with_its_line(tmp_path):
    from cxr.data.competitions import read_vinbig

    (tmp_path / "train.csv").write_text("image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n"
                                        "a,Clip,0,R1,1,1,5,5\nb,Clip,x,R1,1,1,5,5\n")
    with pytest.raises(UserError, match="train.csv line 3: class_id 'x' of a box must be a whole number"):
        read_vinbig(tmp_path)


def test_the_map_models_weights_for_boxes_are_chosen_by_the_metric(layouts, tmp_path):
    """Two map models, the blend (by AUC) weighing the useless one 0.8: the boxes' weights are
    chosen with the post-processing on the OOF images by RSNA's metric, so the model whose maps
    hold the truth boxes is used alone, and the test side's boxes come from it."""
    import json
    from types import SimpleNamespace

    from cxr.data.cache import ImageSpec
    from cxr.data.images import image_size
    from cxr.localization.objects import object_submission
    from cxr.localization.targets import object_mask, shrink_mask

    root, _ = layouts
    data = root / "input" / "rsna"
    train, test = read_dataset(data)
    spec = ImageSpec(256, "letterbox")

    def truth_maps(table):  # the objects' own mask at the maps' stride: a perfect map model
        maps = []
        for image, text in zip(table["image_id"], table.get("annotation", [""] * len(table))):
            width, height = image_size(data / image)
            maps.append(shrink_mask(object_mask(parse_annotation(text), width, height, 256, "letterbox"), 4) * 0.9)
        return np.array(maps, np.float16)
    rng = np.random.default_rng(0)
    good, noise = truth_maps(train), rng.uniform(0, 0.8, (len(train), 64, 64)).astype(np.float16)
    test_noise = rng.uniform(0, 0.8, (len(test), 64, 64)).astype(np.float16)
    cams = [(good, [np.zeros((len(test), 64, 64), np.float16)] * 2), (noise, [test_noise] * 2)]
    folds = pd.DataFrame({"image_id": train["image_id"], "fold": np.arange(len(train)) % 2})
    for model in ("a-map", "b-map"):
        (tmp_path / "weights" / "x" / model / "fold_0").mkdir(parents=True)
        (tmp_path / "weights" / "x" / model / "fold_0" / "config.json").write_text(json.dumps({"kind": "map"}))
    args = SimpleNamespace(oof_dir=tmp_path / "oof", weights_dir=tmp_path / "weights", exp="x", bootstrap=20, seed=0,
                           box_fusion="wbf")
    predictions, chosen = object_submission(
        args, "boxes", ["a-map", "b-map"], folds, cams, [(spec, "map")] * 2, [0.2, 0.8], train["target"].to_numpy(float),
        list(test["image_id"]), np.full(len(test), 0.9), {"a-map": [0, 1], "b-map": [0, 1]}, data)
    assert chosen["model_weights"] == {"a-map": 1.0, "b-map": 0.0} and chosen["nested"] > 0.3  # 6 px map cells
    assert all(found == [] for found in predictions.values())  # a-map's test maps are empty: no box of b-map's noise
    report = pd.read_csv(tmp_path / "oof" / "x" / "objects_report.csv")
    assert set(report["weights"]) == {"blend", "equal", "a-map alone", "b-map alone"}
    best_of = report.groupby("weights")["oof_score"].max()
    assert best_of["a-map alone"] > best_of["blend"] and best_of["b-map alone"] < 0.1
