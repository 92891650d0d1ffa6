"""The real scripts, end to end, on a tiny generated demo; and bad input on the way."""
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import make_tiny_dataset, one_error_line, run_script
from cxr.formats.files import validate_classification

TRAIN = ["--dataset", "tiny", "--exp", "e2e", "--img-size", "32", "--epochs", "1", "--batch-size", "8"]
ARCHS = ["resnet18", "mobilenetv3_small_100"]
PRECISION = {"resnet18": "off", "mobilenetv3_small_100": "bf16"}  # the blend mixes fp32 and bf16 models


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A working folder after demo -> folds -> 2 archs x 2 folds -> blend."""
    cwd = make_tiny_dataset(tmp_path_factory.mktemp("project"), n_train=24, n_dev=6)
    for arch in ARCHS:
        for fold in (0, 1):
            run_script("train.py", "--arch", arch, "--fold", fold, "--amp", PRECISION[arch], *TRAIN, cwd=cwd)
    blend = run_script("blend.py", "--exp", "e2e", "--dataset", "tiny", "--trials", 5, cwd=cwd)
    return cwd, blend.stdout


def test_pipeline_writes_a_valid_submission(project):
    cwd, stdout = project
    dev_ids = pd.read_csv(cwd / "input/tiny/dev.csv")["image_name"].map(lambda n: f"dev/{n}")
    submission = cwd / "submissions/e2e/prediction_classification.csv"
    validate_classification(submission, dev_ids)
    assert submission.read_text().splitlines()[0] == "image_path,prediction"
    report = pd.read_csv(cwd / "oof/e2e/blend_report.csv")
    assert set(report["name"]) == {*ARCHS, "mean", "rank_mean", "logit_mean", "majority_vote", "softmax_auc", "optuna",
                                   "caruana", "stacking"}
    assert (report["nested_low"] <= report["nested_auc"]).all() and (report["nested_auc"] <= report["nested_high"]).all()
    assert report["chosen"].sum() == 1 and "chosen by nested AUC:" in stdout and "DeLong" in stdout
    blends = report[report["kind"] == "blend"]
    assert blends.loc[blends["chosen"], "nested_auc"].iloc[0] == blends["nested_auc"].max()
    spec = json.loads((cwd / "submissions/e2e/blend.json").read_text())
    assert spec["method"] == blends.loc[blends["chosen"], "name"].iloc[0] and spec["models"] == sorted(ARCHS)
    assert len(spec["params"]["weights"]) == 2 and 0 <= spec["threshold"] <= 1
    assert spec["runs"]["resnet18"] == ["weights/e2e/resnet18/fold_0", "weights/e2e/resnet18/fold_1"]
    assert (cwd / "oof/e2e/blend_report.png").read_bytes()[:4] == b"\x89PNG"


def test_blend_does_not_depend_on_the_order_models_are_named_in(project):
    cwd, _ = project
    report = (cwd / "oof/e2e/blend_report.csv").read_bytes()
    run_script("blend.py", "--exp", "e2e", "--dataset", "tiny", "--trials", 5, "--models", *ARCHS[::-1], cwd=cwd)
    assert (cwd / "oof/e2e/blend_report.csv").read_bytes() == report
    run_script("blend.py", "--exp", "e2e", "--dataset", "tiny", "--trials", 5, "--models", "mobilenet*", "resnet18",
               cwd=cwd)
    assert (cwd / "oof/e2e/blend_report.csv").read_bytes() == report  # patterns select the same two
    missing = run_script("blend.py", "--exp", "e2e", "--dataset", "tiny", "--models", "vit*", cwd=cwd, check=False)
    one_error_line(missing, "no model matches 'vit*'")


def test_pipeline_writes_every_run_artifact(project):
    cwd, _ = project
    for arch in ARCHS:
        for fold in (0, 1):
            run = cwd / f"weights/e2e/{arch}/fold_{fold}"
            assert {p.name for p in run.iterdir()} == {"best.pt", "last.pt", "config.json", "log.csv", "curves.png"}
            assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"
            log = pd.read_csv(run / "log.csv")
            assert list(log.columns) == ["epoch", "train_loss", "val_loss", "val_auc", "val_score", "raw_val_auc",
                                         "ema_val_auc", "lr", "lr_scale", "restarts", "seconds", "train_images_per_s",
                                         "data_share"]
            assert log["data_share"].between(0, 1).all()
            assert list((cwd / f"runs/e2e/{arch}/fold_{fold}").glob("events.out.tfevents.*"))
            oof = pd.read_csv(cwd / f"oof/e2e/{arch}/fold_{fold}.csv")
            assert list(oof.columns) == ["image_id", "target", "fold", "prediction"]
            assert (oof["fold"] == fold).all() and oof["prediction"].between(0, 1).all()
            assert len(pd.read_csv(cwd / f"oof/e2e/{arch}/test_fold_{fold}.csv")) == 6


@pytest.fixture
def broken(project, tmp_path):
    """A copy of the tiny data set to break, with the project's fold file."""
    cwd, _ = project
    shutil.copytree(cwd / "input", tmp_path / "input")
    shutil.copytree(cwd / "folds", tmp_path / "folds")
    return tmp_path


def edit_train_csv(folder, line, new_text):
    path = folder / "input/tiny/train.csv"
    lines = path.read_text().splitlines()
    lines[line - 1] = new_text
    path.write_text("\n".join(lines) + "\n")


def test_malformed_annotation_names_file_and_line(broken):
    edit_train_csv(broken, 4, "00003.jpg,0 1 2 3")
    folds_before = (broken / "folds/tiny.csv").read_bytes()
    result = run_script("make_folds.py", "--dataset", "tiny", "--overwrite", cwd=broken, check=False)
    one_error_line(result, "train.csv line 4", "rectangle", "needs 4 coordinates")
    assert (broken / "folds/tiny.csv").read_bytes() == folds_before


def test_missing_column(broken):
    path = broken / "input/tiny/train.csv"
    path.write_text(path.read_text().replace("image_name,annotation", "image_name,label", 1))
    one_error_line(run_script("make_folds.py", "--dataset", "tiny", cwd=broken, check=False),
                   "train.csv", "no 'annotation' column")


def test_missing_and_unreadable_images(broken):
    (broken / "input/tiny/train/00005.jpg").unlink()
    one_error_line(run_script("make_folds.py", "--dataset", "tiny", cwd=broken, check=False),
                   "train.csv line 6", "00005.jpg not found")
    (broken / "input/tiny/train/00005.jpg").write_bytes(b"this is not a jpeg")
    one_error_line(run_script("train.py", "--arch", "resnet18", *TRAIN, cwd=broken, check=False),
                   "train.csv line 6", "00005.jpg cannot be read")


def test_oof_files_from_other_folds_are_refused_and_the_submission_survives(project, tmp_path):
    cwd, _ = project
    for folder in ("input", "folds", "oof", "submissions"):
        shutil.copytree(cwd / folder, tmp_path / folder)
    submission = tmp_path / "submissions/e2e/prediction_classification.csv"
    before = submission.read_bytes()
    refused = run_script("make_folds.py", "--dataset", "tiny", "--n-folds", 2, "--seed", 9, cwd=tmp_path, check=False)
    one_error_line(refused, "folds/tiny.csv exists with different folds")
    run_script("make_folds.py", "--dataset", "tiny", "--n-folds", 2, "--seed", 9, "--overwrite", cwd=tmp_path)
    result = run_script("blend.py", "--exp", "e2e", "--dataset", "tiny", "--trials", 5, cwd=tmp_path, check=False)
    one_error_line(result, "oof/e2e/", "line", "made with other folds")
    assert submission.read_bytes() == before


def test_missing_fold_is_refused(project, tmp_path):
    cwd, _ = project
    for folder in ("folds", "oof"):
        shutil.copytree(cwd / folder, tmp_path / folder)
    (tmp_path / "oof/e2e/resnet18/fold_1.csv").unlink()
    one_error_line(run_script("blend.py", "--exp", "e2e", "--dataset", "tiny", cwd=tmp_path, check=False),
                   "resnet18", "fold(s) 1 missing")


def test_make_demo_same_seed_same_bytes(tmp_path):
    args = ["--n-train", 6, "--n-dev", 2, "--min-size", 64, "--max-size", 96]
    run_script("make_demo.py", "--out", "a", *args, cwd=tmp_path)
    run_script("make_demo.py", "--out", "b", *args, cwd=tmp_path)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert {str(f) for f in files} >= {"train.csv", "dev.csv", "train/00001.jpg", "dev/00007.jpg"}
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    run_script("make_demo.py", "--out", "c", *args, "--seed", 1, cwd=tmp_path)
    assert (tmp_path / "c/train/00001.jpg").read_bytes() != (tmp_path / "a/train/00001.jpg").read_bytes()


def test_demo_looks_like_object_cxr(tmp_path):
    run_script("make_demo.py", "--out", "demo", "--n-train", 60, "--n-dev", 10, cwd=tmp_path)
    from PIL import Image

    from cxr.data.annotations import parse_annotation
    from cxr.data.layouts import read_dataset

    train, dev = read_dataset(tmp_path / "demo")
    assert list(pd.read_csv(tmp_path / "demo/train.csv").columns) == ["image_name", "annotation"]
    assert 0.3 < train["target"].mean() < 0.7
    shapes = [s for text in train["annotation"] for s in parse_annotation(text)]
    assert {s.kind for s in shapes} == {0, 1, 2}
    sizes = {Image.open(tmp_path / "demo" / i).size for i in train["image_id"]}
    assert len(sizes) > 10 and any(w != h for w, h in sizes)
    for image_id, text in zip(train["image_id"], train["annotation"]):  # objects inside their image
        w, h = Image.open(tmp_path / "demo" / image_id).size
        for s in parse_annotation(text):
            assert (s.points >= 0).all() and (s.points[:, 0] < w).all() and (s.points[:, 1] < h).all()


@pytest.mark.slow  # over half a minute: CI runs it with -m slow
def test_run_sh_end_to_end_then_skips_finished_folds(tmp_path):
    """run.sh as a user runs it (in a copy of the repository), with small settings."""
    import os
    import subprocess

    from conftest import ROOT

    shutil.copy(ROOT / "run.sh", tmp_path / "run.sh")
    shutil.copytree(ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "TQDM_DISABLE": "1", "MAP_MIN_STEPS": "0", "N_FOLDS": "2", "ARCHS": "resnet18", "IMG_SIZE": "32",
           "EPOCHS": "1", "TRIALS": "5", "MAP_IMG_SIZE": "64", "CROP_SIZE": "48", "MAP_EPOCHS": "1",
           "MAP_ARGS": "--map-channels 16", "BOOTSTRAP": "50"}

    def run():
        result = subprocess.run(["bash", "run.sh", "--batch-size", "64"], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    first = run()
    assert "== resnet18 fold 1" in first and "chosen by nested AUC:" in first
    assert "== resnet18-map fold 1" in first and "sensitivity at" in first  # the demo is annotated: map models too
    dev = pd.read_csv(tmp_path / "input/demo/dev.csv")
    validate_classification(tmp_path / "submissions/demo/prediction_classification.csv",
                            "dev/" + dev["image_name"])
    second = run()
    assert "== resnet18 fold 0: done already" in second and "chosen by nested AUC:" in second
    env["EPOCHS"] = "2"  # the same experiment with other settings: not blended with the folds of before
    third = subprocess.run(["bash", "run.sh", "--batch-size", "64"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=600)
    assert third.returncode == 2 and "resnet18 fold 0 of experiment demo was trained with other settings (--epochs 1 -> 2)" \
        in third.stderr


def test_pipeline_on_a_kaggle_style_slice_of_pneumoniamnist(shared_data, tmp_path):
    """Real radiographs in the Kaggle layout: 40 training and 8 unlabelled test images (linked, not copied)."""
    source = shared_data / "pneumoniamnist"
    train = pd.read_csv(source / "train.csv").groupby("label").head(20)
    test = pd.read_csv(source / "test.csv").head(8)
    root = tmp_path / "input" / "pm"
    for split, table in (("train", train), ("test", test)):
        (root / split).mkdir(parents=True)
        for name in table["image_name"]:
            (root / split / name).symlink_to(source / split / name)
        table.to_csv(root / f"{split}.csv", index=False)
    run_script("make_folds.py", "--dataset", "pm", "--n-folds", 2, cwd=tmp_path)
    for fold in (0, 1):
        run_script("train.py", "--dataset", "pm", "--exp", "pm", "--arch", "resnet18", "--fold", fold,
                   "--img-size", 28, "--epochs", 1, cwd=tmp_path)
    run_script("blend.py", "--exp", "pm", "--dataset", "pm", "--trials", 5, "--format", "objectcxr", cwd=tmp_path)
    validate_classification(tmp_path / "submissions/pm/prediction_classification.csv", "test/" + test["image_name"])

    # Kaggle format, the default here (auto: the set has a test.csv): the test table's id column and
    # `prediction`; with a sample submission, its header and order
    out = run_script("blend.py", "--exp", "pm", "--dataset", "pm", "--trials", 5, cwd=tmp_path)
    submission = pd.read_csv(tmp_path / "submissions/pm/submission.csv")
    assert list(submission.columns) == ["image_name", "prediction"] and set(submission["image_name"]) == set(test["image_name"])
    assert "blend (" in out.stdout and "[" in out.stdout  # the metrics table with intervals
    sample = pd.DataFrame({"image_name": test["image_name"][::-1], "label": 0.5})
    sample.to_csv(root / "sample_submission.csv", index=False)
    run_script("blend.py", "--exp", "pm", "--dataset", "pm", "--trials", 5, "--format", "kaggle", cwd=tmp_path)
    submission = pd.read_csv(tmp_path / "submissions/pm/submission.csv")
    assert list(submission.columns) == ["image_name", "label"]
    assert submission["image_name"].tolist() == sample["image_name"].tolist()
    metrics = pd.read_csv(tmp_path / "oof/pm/oof_metrics.csv")
    assert (metrics["auc_low"] <= metrics["auc"]).all() and (metrics["auc"] <= metrics["auc_high"]).all()
    for figure in ("roc.png", "confusion.png"):
        assert (tmp_path / "oof/pm" / figure).read_bytes()[:4] == b"\x89PNG"


def test_skip_bad_drops_and_lists_every_bad_row_then_trains(broken):
    edit_train_csv(broken, 4, "00003.jpg,0 1 2 3")  # malformed annotation
    edit_train_csv(broken, 3, "00002.jpg,0 4000 10 5000 20")  # object wholly outside its image
    (broken / "input/tiny/train/00005.jpg").unlink()  # missing image
    edit_train_csv(broken, 8, "00003.jpg,")  # listed twice
    result = run_script("make_folds.py", "--dataset", "tiny", "--n-folds", 2, "--overwrite", "--skip-bad", cwd=broken)
    assert "--skip-bad: 4 bad training row(s) dropped, 20 kept" in result.stdout
    skipped = pd.read_csv(broken / "reports/tiny/skipped_rows.csv")
    assert sorted(skipped["row"]) == [1, 2, 4, 6]  # table rows; the messages carry the file lines
    for problem in ("line 3: rectangle", "line 4 .*malformed", "line 6: image .*00005.jpg not found",
                    "line 8: image train/00003.jpg is listed twice"):
        assert skipped["problem"].str.contains(problem).sum() == 1, problem
    folds = pd.read_csv(broken / "folds/tiny.csv")
    dropped = ["train/00002.jpg", "train/00003.jpg", "train/00005.jpg"]
    assert len(folds) == 20 and not folds["image_id"].isin(dropped).any()
    one_error_line(run_script("train.py", "--arch", "resnet18", *TRAIN, cwd=broken, check=False), "train.csv line 8")
    run_script("train.py", "--arch", "resnet18", *TRAIN, "--skip-bad", cwd=broken)
    assert len(pd.read_csv(broken / "oof/e2e/resnet18/fold_0.csv")) == (folds["fold"] == 0).sum()


def test_object_outside_its_image_names_file_and_line(broken):
    edit_train_csv(broken, 3, "00002.jpg,0 4000 10 5000 20")
    one_error_line(run_script("make_folds.py", "--dataset", "tiny", "--overwrite", cwd=broken, check=False),
                   "train.csv line 3", "rectangle '0 4000 10 5000 20' lies outside")
    edit_train_csv(broken, 3, "00002.jpg,0 10 10 5000 20")  # crossing the border: clipped to the image, not refused
    run_script("make_folds.py", "--dataset", "tiny", "--overwrite", cwd=broken)


def test_truncated_image_stops_training_with_its_name(broken):
    path = broken / "input/tiny/train/00004.jpg"
    whole = path.read_bytes()
    path.write_bytes(whole[:-200])  # header intact, end cut: found when decoding into the cache
    one_error_line(run_script("train.py", "--arch", "resnet18", *TRAIN, cwd=broken, check=False),
                   "00004.jpg is truncated")
    path.write_bytes(whole[:300])  # cut inside the header: found by the header check, with its line
    one_error_line(run_script("train.py", "--arch", "resnet18", *TRAIN, cwd=broken, check=False),
                   "train.csv line 5", "00004.jpg cannot be read")


def test_inspect_data_prints_the_make_up_and_draws_pngs(project):
    cwd, _ = project
    out = run_script("inspect_data.py", "--dataset", "tiny", "--samples", 4, "--out", "reports/t", cwd=cwd).stdout
    train = pd.read_csv(cwd / "input/tiny/train.csv", keep_default_na=False)
    assert f"train: 24 images, class counts {{0: {(train['annotation'] == '').sum()}, 1:" in out
    assert "objects: {'rectangle':" in out and "object size" in out
    assert "duplicates (folds/tiny_duplicates.csv): 0 pairs" in out
    for name in ("samples.png", "positives_negatives.png"):
        assert (cwd / "reports/t" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_submit_reproduces_the_blend_on_new_images_and_writes_both_files(project, tmp_path):
    """submit.py, as the evaluation server ran it, on the dev images listed by path: the same
    probabilities as blend.py's submission (same models, preprocessing, TTA and blend), and a
    valid localization file in original-image pixels."""
    from cxr.formats.files import read_localization

    cwd, _ = project
    expected = pd.read_csv(cwd / "submissions/e2e/prediction_classification.csv")
    listed = ["input/tiny/" + p for p in expected["image_path"]]
    (cwd / "image_path.csv").write_text("\n".join(listed) + "\n")
    out = run_script("submit.py", "image_path.csv", tmp_path / "cls.csv", tmp_path / "loc.csv", "--exp", "e2e",
                     "--batch-size", 4, cwd=cwd).stdout
    assert "images/s" in out
    got = pd.read_csv(tmp_path / "cls.csv")
    assert got["image_path"].tolist() == listed
    assert np.allclose(got["prediction"], expected["prediction"], atol=1e-5)
    points = read_localization(tmp_path / "loc.csv", listed)
    sizes = {p: Image.open(cwd / p).size for p in listed}
    assert all(0 < len(found) <= 10 for found in points.values())
    assert all(0 <= x < sizes[p][0] and 0 <= y < sizes[p][1] for p, found in points.items() for _, x, y in found)

    (cwd / "image_path.csv").write_text("\n".join(listed + ["input/tiny/dev/nothing.jpg"]) + "\n")
    missing = run_script("submit.py", "image_path.csv", tmp_path / "c2.csv", tmp_path / "l2.csv", "--exp", "e2e",
                         "--strict", cwd=cwd, check=False)
    one_error_line(missing, "1 image(s) missing or unreadable", "nothing.jpg")
    assert not (tmp_path / "c2.csv").exists() and not (tmp_path / "l2.csv").exists()


def test_submit_gives_an_unreadable_image_one_half_and_keeps_the_others(project, tmp_path):
    """One missing and one truncated film among good ones: both files are written, the bad films
    predicted 0.5 with no points and named on stderr, the others as blend.py predicted them; the
    exit status is 3. A film with a newline after its end marker is read whole."""
    from cxr.formats.files import read_localization

    cwd, _ = project
    expected = pd.read_csv(cwd / "submissions/e2e/prediction_classification.csv")
    listed = ["input/tiny/" + p for p in expected["image_path"]]
    (tmp_path / "cut.jpg").write_bytes((cwd / listed[0]).read_bytes()[:-200])
    (tmp_path / "newline.jpg").write_bytes((cwd / listed[1]).read_bytes() + b"\n")
    server_list = listed + [str(tmp_path / "missing.jpg"), str(tmp_path / "cut.jpg"), str(tmp_path / "newline.jpg")]
    (tmp_path / "image_path.csv").write_text("\n".join(server_list) + "\n")
    done = run_script("submit.py", tmp_path / "image_path.csv", tmp_path / "cls.csv", tmp_path / "loc.csv",
                      "--exp", "e2e", cwd=cwd, check=False)
    assert done.returncode == 3, done.stderr
    assert "missing.jpg" in done.stderr and "cut.jpg is truncated" in done.stderr
    assert "2 of 9 image(s) could not be read" in done.stderr and "predict: 9/9 images" in done.stderr
    got = pd.read_csv(tmp_path / "cls.csv")
    assert got["image_path"].tolist() == server_list
    assert np.allclose(got["prediction"][:6], expected["prediction"], atol=1e-5)
    assert got["prediction"].tolist()[6:8] == [0.5, 0.5]
    assert got["prediction"].iloc[8] == pytest.approx(expected["prediction"].iloc[1], abs=1e-5)
    points = read_localization(tmp_path / "loc.csv", server_list)
    assert points[server_list[6]] == [] and points[server_list[7]] == [] and points[server_list[8]]


def test_submit_runs_from_any_folder(project, tmp_path):
    """Started outside the folder blend.py ran in, submit.py finds the runs blend.json names beside
    its submissions folder."""
    cwd, _ = project
    expected = pd.read_csv(cwd / "submissions/e2e/prediction_classification.csv")
    (tmp_path / "image_path.csv").write_text("\n".join(str(cwd / "input/tiny" / p) for p in expected["image_path"]))
    run_script("submit.py", "image_path.csv", "cls.csv", "loc.csv", "--exp", "e2e", "--submissions-dir",
               cwd / "submissions", cwd=tmp_path)
    assert np.allclose(pd.read_csv(tmp_path / "cls.csv")["prediction"], expected["prediction"], atol=1e-5)


def test_inference_runs_each_model_in_the_precision_it_was_trained_and_evaluated_in(project, monkeypatch):
    """Precision parity: a bf16-trained model's test predictions (train.py, under --amp bf16 on a
    CPU) are what inference.py (submit.py, predict.py) gives on the same images, because it runs
    each fold model in the precision its config.json records; in fp32 they would differ."""
    import dataclasses

    import torch

    from cxr.training import engine
    from cxr.data.cache import decode_gray
    from cxr.inference.ensemble import fold_outputs, load_ensemble

    cwd, stdout = project
    monkeypatch.chdir(cwd)  # the spec names the runs relative to the project
    assert "predictions made in mobilenetv3_small_100 bf16, resnet18 fp32" in stdout
    spec = json.loads((cwd / "submissions/e2e/blend.json").read_text())
    assert spec["precision"] == {"mobilenetv3_small_100": "bf16", "resnet18": "fp32"}
    cpu = torch.device("cpu")
    ensemble = load_ensemble(cwd / "submissions/e2e/blend.json", cpu)
    for name, precision in spec["precision"].items():
        recorded = [pd.read_csv(cwd / f"oof/e2e/{name}/test_fold_{k}.csv") for k in (0, 1)]
        expected = np.mean([r["prediction"] for r in recorded], axis=0)
        grays = [decode_gray(cwd / "input/tiny" / i) for i in recorded[0]["image_id"]]
        folds = ensemble.models[name]
        assert all(f.precision.name == precision for f in folds)
        got = fold_outputs(folds, grays, cpu)[0][:, 0]
        assert np.abs(got - expected).max() < 1e-5, name
        if precision == "bf16":  # the same models in fp32: a gap parity closes
            in_fp32 = [dataclasses.replace(f, precision=engine.FP32) for f in folds]
            assert np.abs(fold_outputs(in_fp32, grays, cpu)[0][:, 0] - expected).max() > 1e-4


def test_predict_a_folder_with_heatmaps(project, tmp_path):
    cwd, _ = project
    expected = pd.read_csv(cwd / "submissions/e2e/prediction_classification.csv")
    out = run_script("predict.py", "input/tiny/dev", "--exp", "e2e", "--out", tmp_path / "p.csv", "--heatmaps",
                     tmp_path / "maps", cwd=cwd).stdout
    assert "6 images" in out
    got = pd.read_csv(tmp_path / "p.csv")
    assert got["image_path"].tolist() == sorted("input/tiny/" + expected["image_path"])
    by_name = dict(zip("input/tiny/" + expected["image_path"], expected["prediction"]))
    assert np.allclose(got["probability"], [by_name[p] for p in got["image_path"]], atol=1e-5)
    pngs = sorted((tmp_path / "maps").iterdir())
    assert len(pngs) == 6 and all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
    assert sorted(p.name for p in pngs) == sorted(Path(p).name + ".png" for p in got["image_path"])
    same_names = tmp_path / "same_names"  # a/x.jpg and b/x.jpg: two overlays, none overwritten
    for folder in ("a", "b"):
        (same_names / folder).mkdir(parents=True)
        shutil.copy(cwd / got["image_path"][0], same_names / folder / "x.jpg")
    run_script("predict.py", same_names, "--exp", "e2e", "--out", tmp_path / "p2.csv", "--heatmaps", tmp_path / "maps2",
               cwd=cwd)
    assert sorted(str(p.relative_to(tmp_path / "maps2")) for p in (tmp_path / "maps2").rglob("*.png")) == [
        "a/x.jpg.png", "b/x.jpg.png"]
    empty = tmp_path / "empty"
    empty.mkdir()
    one_error_line(run_script("predict.py", empty, "--exp", "e2e", cwd=cwd, check=False), "no images")


def test_explain_draws_out_of_fold_heatmaps_per_model_and_a_tsne_map(project, tmp_path):
    cwd, _ = project
    out = run_script("explain.py", "--exp", "e2e", "--dataset", "tiny", "--per-class", 1, "--reports-dir", tmp_path,
                     cwd=cwd).stdout
    lines = [line for line in out.splitlines() if "out-of-fold" in line]
    assert len(lines) == 2 and "tsne.png" in out
    for line in lines:  # each model's probability is its OOF prediction: the fold model that never saw the image
        image_id, fold = line.split(" (")[0], int(line.split("fold ")[1][0])
        for arch in ARCHS:
            oof = pd.read_csv(cwd / f"oof/e2e/{arch}/fold_{fold}.csv").set_index("image_id")
            shown = float(line.split(f"{arch} ")[1].split(",")[0].split(";")[0])
            assert shown == pytest.approx(oof.at[image_id, "prediction"], abs=1e-5)
    pngs = sorted((tmp_path / "e2e/explain/heatmaps").iterdir()) + [tmp_path / "e2e/explain/tsne.png"]
    assert len(pngs) == 3 and all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
    one_error_line(run_script("explain.py", "--exp", "e2e", "--dataset", "tiny", "--images", "train/nothing.jpg",
                              cwd=cwd, check=False), "missing or unreadable", "nothing.jpg")
