"""Concept tests (TCAV): a planted concept direction is found, an ignored one is not; the
activations and gradients are autograd's; concept images; src/tcav.py on a tiny trained project."""
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch

from cxr.diagnosis.concepts import (activations_and_gradients, checked_layers, crop, folder_concepts, layer_names,
    random_crops, shape_concepts, shape_images, tcav_test)
from conftest import one_error_line, run_script
from cxr.data.annotations import Shape
from cxr.errors import UserError

SIDE = 16


def toy_network():
    """conv -> ReLU -> global mean -> linear. Channel 0 (a 4x4 mean less 0.3) answers a bright blob
    and feeds the logit; channel 1 (rows +-) answers horizontal stripes, which the 4x4 mean cancels
    exactly, and has weight 0: the logit ignores stripes."""
    conv = torch.nn.Conv2d(1, 2, 4, padding="same", padding_mode="circular")
    linear = torch.nn.Linear(2, 1)
    with torch.no_grad():
        conv.weight[0, 0] = 1 / 16
        conv.weight[1, 0] = torch.tensor([1.0, -1, 1, -1]).view(4, 1).expand(4, 4) / 16
        conv.bias[:] = torch.tensor([-0.3, 0.0])
        linear.weight[:] = torch.tensor([[1.0, 0.0]])
        linear.bias.zero_()
    return torch.nn.Sequential(conv, torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), linear).eval()


def toy_images(rng, n, blob=False, stripes=False):
    """Noise, plus a bright Gaussian blob at a random place or full-height horizontal stripes."""
    images = rng.normal(0, 0.3, (n, 1, SIDE, SIDE)).astype(np.float32)
    yy, xx = np.mgrid[:SIDE, :SIDE]
    for image in images:
        if blob:
            cy, cx = rng.uniform(4, SIDE - 4, 2)
            image[0] += 2.0 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 8)
        if stripes:
            image[0] += np.where(yy % 2 == 0, 1.0, -1.0)
    return torch.from_numpy(images)


def test_a_planted_concept_is_found_and_an_ignored_one_is_not():
    network, rng = toy_network(), np.random.default_rng(0)

    def acts(images, score=None):
        activations, gradients = activations_and_gradients(network, images, ["0"], score)
        return activations["0"], gradients["0"] if gradients is not None else None

    blob = acts(toy_images(rng, 30, blob=True))[0]
    stripes = acts(toy_images(rng, 30, stripes=True))[0]
    pool = acts(toy_images(rng, 100))[0]
    _, gradients = acts(toy_images(rng, 40, blob=True), lambda images: network(images)[:, 0])  # the class: blobs
    found = tcav_test(blob, pool, gradients, runs=10, seed=0)
    assert found.score >= 0.95 and found.significant and found.p_value < 0.01 and found.accuracy > 0.9
    assert 0.2 < found.random_score < 0.8  # random CAVs point anywhere
    ignored = tcav_test(stripes, pool, gradients, runs=10, seed=0)
    assert ignored.accuracy > 0.9  # the layer sees stripes (channel 1) ...
    assert not ignored.significant and ignored.std > 0.1  # ... the logit does not: scores scatter like random ones
    null = tcav_test(pool[:30], pool[30:], gradients, runs=10, seed=0)
    assert not null.significant and null.accuracy < 0.7
    assert tcav_test(blob, pool, gradients, runs=10, seed=0) == found  # seeded


def test_activations_and_gradients_are_autograds():
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(inplace=True), torch.nn.Conv2d(4, 2, 3),
                                  torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(2 * 4 * 4, 1)).eval()
    images = torch.randn(5, 3, 8, 8)

    def score(x):
        return network(x)[:, 0] ** 2  # nonlinear in the activations: each image its own gradient

    activations, gradients = activations_and_gradients(network, images, ["0", "2"], score)
    first = network[0](images)  # by hand; the in-place ReLU gets a copy so `first` stays what it was
    second = network[2](network[1](first.clone()))
    manual = torch.autograd.grad(score_from(network, second).sum(), [first, second])
    for name, tensor, gradient in zip(["0", "2"], [first, second], manual):
        assert activations[name].shape == (5, tensor[0].numel()) and activations[name].dtype == np.float32
        np.testing.assert_allclose(activations[name], tensor.detach().flatten(1).numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(gradients[name], gradient.flatten(1).numpy(), rtol=1e-4, atol=1e-6)
    alone, none = activations_and_gradients(network, images[:2], ["2"])
    assert none is None and np.allclose(alone["2"], activations["2"][:2], atol=1e-6)
    np.testing.assert_allclose(activations_and_gradients(network, images[3:], ["2"], score)[1]["2"],
                               gradients["2"][3:], rtol=1e-5, atol=1e-7)  # batches do not mix


def score_from(network, second):
    return network[5](network[4](network[3](second)))[:, 0] ** 2


def test_layer_names_of_a_classifier_and_a_map_model():
    from cxr.models.factory import network_of

    classifier = network_of({"arch": "resnet18", "img_size": 32})
    assert layer_names(classifier) == ["layer1", "layer2", "layer3", "layer4"]
    map_model = network_of({"arch": "resnet18", "img_size": 32, "kind": "map"})
    assert layer_names(map_model) == ["encoder.layer1", "encoder.layer2", "encoder.layer3"]
    assert checked_layers(map_model, ["layer2", "encoder.layer3.0.conv1"]) == ["encoder.layer2", "encoder.layer3.0.conv1"]
    with pytest.raises(UserError, match="--layers nope: no such module .*layer1, layer2"):
        checked_layers(classifier, ["layer4", "nope"])


def test_concept_crops_and_random_counterparts():
    objects = {"b.jpg": [Shape(0, (10, 10, 30, 20)), Shape(1, (50, 60, 52, 62))],
               "a.jpg": [Shape(2, (0, 0, 40, 0, 0, 40))], "c.jpg": []}
    concepts = shape_concepts(objects, per_concept=5)
    assert concepts == {"rectangular": [("b.jpg", (20.0, 15.0, 60.0))], "round": [("b.jpg", (51.0, 61.0, 32))],
                        "irregular": [("a.jpg", (20.0, 20.0, 120.0))]}  # 3 x the larger extent, at least 32
    many = {f"{i}.jpg": [Shape(0, (0, 0, 5, 5))] for i in range(20)}
    drawn = shape_concepts(many, per_concept=7, seed=1)["rectangular"]
    assert len(drawn) == 7 and drawn == shape_concepts(many, per_concept=7, seed=1)["rectangular"]
    gray = np.arange(100 * 80, dtype=np.uint8).reshape(100, 80)  # height 100, width 80
    assert crop(gray, (20, 15, 60)).shape == (60, 60) and crop(gray, (20, 15, 60))[0, 0] == gray[0, 0]  # moved inside
    assert crop(gray, (40, 50, 120)).shape == (100, 80)  # larger than the image: the image
    assert np.array_equal(crop(gray, (50, 60, 10)), gray[55:65, 45:55])
    crops = random_crops({"c.jpg": (80, 100), "d.jpg": (300, 200)}, [40.0, 90.0], 50, seed=3)
    assert len(crops) == 50 and crops == random_crops({"c.jpg": (80, 100), "d.jpg": (300, 200)}, [40.0, 90.0], 50, 3)
    assert {side for _, (_, _, side) in crops} == {40.0, 90.0} and {i for i, _ in crops} == {"c.jpg", "d.jpg"}
    for image, (x, y, side) in crops:  # the whole window lies in its image
        width, height = {"c.jpg": (80, 100), "d.jpg": (300, 200)}[image]
        assert min(side, width) / 2 <= x <= width - min(side, width) / 2 and min(side, height) / 2 <= y


def test_whole_image_concepts_hold_objects_of_one_kind_alone():
    objects = {"mixed.jpg": [Shape(0, (10, 10, 30, 20)), Shape(1, (50, 60, 52, 62))], "empty.jpg": [],
               **{f"r{i}.jpg": [Shape(0, (0, 0, 5, 5)), Shape(0, (9, 9, 12, 12))] for i in range(4)},
               **{f"e{i}.jpg": [Shape(1, (0, 0, 5, 5))] for i in range(3)}}
    concepts = shape_images(objects, per_concept=3, seed=0, exclude={"e0.jpg"})
    assert concepts["irregular"] == [] and concepts["round"] == [("e1.jpg", None), ("e2.jpg", None)]
    assert len(concepts["rectangular"]) == 3 and {i for i, _ in concepts["rectangular"]} < {f"r{i}.jpg" for i in range(4)}


def test_folder_concepts(tmp_path):
    for path in ["many/stripes/1.png", "many/stripes/2.jpg", "many/dots/a.png", "many/notes/readme.txt",
                 "one/x.png", "one/y.txt"]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(b"")
    many = folder_concepts(tmp_path / "many")
    assert sorted(many) == ["dots", "stripes"] and [p.name for p, _ in many["stripes"]] == ["1.png", "2.jpg"]
    assert {name: [p.name for p, _ in items] for name, items in folder_concepts(tmp_path / "one").items()} == {
        "one": ["x.png"]}
    (tmp_path / "empty/sub").mkdir(parents=True)
    with pytest.raises(UserError, match="no images"):
        folder_concepts(tmp_path / "empty")
    with pytest.raises(UserError, match="no such folder"):
        folder_concepts(tmp_path / "absent")


@pytest.fixture
def project(tiny_trained):
    return tiny_trained


def test_tcav_script_tests_the_annotated_shapes(project):
    flags = ["--exp", "t", "--dataset", "tiny", "--runs", 3, "--per-concept", 10, "--random-images", 20,
             "--concepts", "crops"]
    out = run_script("tcav.py", *flags, cwd=project).stdout
    table = pd.read_csv(project / "reports/t/tcav/tcav.csv")
    assert list(table.columns) == ["model", "fold", "layer", "concept", "tcav", "tcav_std", "random_tcav", "random_std",
                                   "p_value", "significant", "cav_accuracy", "n_concept", "n_random", "n_positives",
                                   "runs"]
    folds = pd.read_csv(project / "folds/tiny.csv")
    assert set(table["layer"]) == {"layer1", "layer2", "layer3", "layer4"} and (table["model"] == "resnet18").all()
    assert set(table["concept"]) <= {"rectangular", "round", "irregular"} and len(table) == 4 * table["concept"].nunique()
    assert (table["n_concept"] == 10).all() and (table["n_random"] == 20).all()
    assert (table["n_positives"] == ((folds["fold"] == 0) & (folds["target"] == 1)).sum()).all()  # fold 0's OOF positives
    for column in ["tcav", "random_tcav", "p_value", "cav_accuracy"]:
        assert table[column].between(0, 1).all(), column
    assert (table["significant"] == (table["p_value"] < 0.05)).all()
    assert (project / "reports/t/tcav/tcav_resnet18.png").read_bytes()[:4] == b"\x89PNG" and "p_value" in out


def test_tcav_script_names_an_unknown_layer(project, monkeypatch, capsys):
    import tcav  # in this process: a second start of torch would double the test's time

    monkeypatch.chdir(project)
    with pytest.raises(SystemExit) as stop:
        tcav.main(["--exp", "t", "--dataset", "tiny", "--runs", "3", "--concepts", "crops", "--layers", "layer4", "nope"])
    captured = capsys.readouterr()
    one_error_line(subprocess.CompletedProcess("tcav.py", stop.value.code, captured.out, captured.err),
                   "--layers nope", "layer1, layer2, layer3, layer4")


def test_a_cav_fitted_in_the_span_of_the_activations_is_the_full_fit():
    """concept_vector fits in the images' span (n coordinates, not D): the same SGD solution."""
    from sklearn.linear_model import SGDClassifier
    from sklearn.model_selection import train_test_split

    from cxr.diagnosis.concepts import concept_vector

    rng = np.random.default_rng(0)
    acts = rng.standard_normal((40, 5000))
    acts[:20, :50] += 3.0  # the concept: a direction the random images lack
    cav, accuracy = concept_vector(acts[:20], acts[20:], seed=3)
    centred = acts - acts.mean(0)
    labels = np.r_[np.ones(20), np.zeros(20)]
    train, _ = train_test_split(np.arange(40), test_size=1 / 3, stratify=labels, random_state=3)
    full = SGDClassifier(alpha=0.01, max_iter=1000, tol=1e-3, random_state=3).fit(centred[train], labels[train]).coef_[0]
    assert float(cav @ full / np.linalg.norm(full)) > 0.999 and np.isclose(np.linalg.norm(cav), 1.0)
    assert cav[:50].mean() > 0 and accuracy > 0.8


def test_pooled_directional_derivatives_are_exact():
    """--activations pooled: moving every position of a layer along v changes the score by the
    gradient's spatial sum . v (checked by a finite difference through a hook)."""
    from cxr.diagnosis.concepts import activations_and_gradients

    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Tanh(), torch.nn.Conv2d(4, 2, 3),
                                  torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(2 * 6 * 6, 1)).double()
    images = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    score = lambda x: network(x.double())[:, 0]  # noqa: E731
    acts, grads = activations_and_gradients(network, images, ["1"], score, pooled=True)
    assert acts["1"].shape == (3, 4) and np.allclose(acts["1"], network[:2](images).mean((2, 3)).detach().numpy())
    v, eps = np.array([0.3, -1.0, 0.5, 2.0]), 1e-6
    shift = network[1].register_forward_hook(lambda m, i, out: out + eps * torch.tensor(v).view(1, 4, 1, 1))
    with torch.no_grad():
        moved = network(images)[:, 0].numpy()
    shift.remove()
    with torch.no_grad():
        finite = (moved - network(images)[:, 0].numpy()) / eps
    assert np.allclose(grads["1"] @ v, finite, rtol=1e-4, atol=1e-6)
