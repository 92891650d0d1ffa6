"""The levers that use the unlabelled test side: fold-safe pseudo-labels, BatchNorm adaptation,
the appearance-shift augmentation and mixup/cutmix."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import make_tiny_dataset, one_error_line, run_script
from cxr.errors import UserError
from cxr.testside.batchnorm import adapt_batchnorm, normalization_layers
from cxr.testside.self_training import mean_fold_predictions, pseudo_labels, read_pseudo_labels, with_pseudo_rows


# ---------------------------------------------------------------- pseudo-labels
def test_a_folds_pseudo_labels_come_from_that_folds_models_only():
    rng = np.random.default_rng(0)
    ids = [f"test/{i}.png" for i in range(40)]
    predictions = {m: {k: (ids, rng.random(40)) for k in range(3)} for m in ("a", "b")}
    ids_out, means = mean_fold_predictions(predictions)
    assert ids_out == ids
    np.testing.assert_allclose(means[1], (predictions["a"][1][1] + predictions["b"][1][1]) / 2)
    table = pseudo_labels(ids, means, share=0.5, min_confidence=0.7)
    # Changing the fold-0 and fold-2 models' predictions leaves fold 1's pseudo-labels as they were.
    changed = {m: {k: (ids, rng.random(40) if k != 1 else p) for k, (_, p) in folds.items()}
               for m, folds in predictions.items()}
    again = pseudo_labels(ids, mean_fold_predictions(changed)[1], share=0.5, min_confidence=0.7)
    pd.testing.assert_frame_equal(table[table.fold == 1].reset_index(drop=True),
                                  again[again.fold == 1].reset_index(drop=True))
    assert not table[table.fold == 0].equals(again[again.fold == 0])


def test_pseudo_labels_take_the_confident_share_of_each_label():
    ids = ["a", "b", "c", "d", "e", "f", "g"]
    p = np.array([0.99, 0.01, 0.6, 0.95, 0.3, 0.92, 0.97])  # labelled 1: a c d f g, labelled 0: b e
    table = pseudo_labels(ids, {0: p}, share=0.5, min_confidence=0.9)  # 2 of the 5 ones, 1 of the 2 zeros
    assert table["image_id"].tolist() == ["a", "b", "g"] and table["target"].tolist() == [1, 0, 1]
    table = pseudo_labels(ids, {0: p}, share=1.0, min_confidence=0.9)  # all, if confident
    assert table["image_id"].tolist() == ["a", "b", "d", "f", "g"]
    table = pseudo_labels(ids, {0: p}, share=1.0, min_confidence=0.65, threshold=0.95)
    assert table["image_id"].tolist() == ["a", "b", "d", "e", "f", "g"]
    assert table["target"].tolist() == [1, 0, 1, 0, 0, 1]
    with pytest.raises(UserError):
        pseudo_labels(ids, {0: np.zeros(6)}, share=0)


def test_pseudo_rows_join_the_training_rows_of_their_fold_only(tmp_path):
    train_rows = pd.DataFrame({"image_id": ["t1", "t2"], "target": [0, 1], "group": ["t1", "t2"], "fold": [1, 2]})
    pseudo = pd.DataFrame({"image_id": ["x", "y", "z"], "fold": [0, 1, 0], "target": [1, 0, 0],
                           "probability": [0.95, 0.02, 0.03]})
    rows = with_pseudo_rows(train_rows, pseudo, 0, ["x", "y", "z"], "p.csv")
    assert rows["image_id"].tolist() == ["t1", "t2", "x", "z"] and rows["fold"].tolist() == [1, 2, -1, -1]
    with pytest.raises(UserError, match="p.csv line 4: image z is not a test image"):
        with_pseudo_rows(train_rows, pseudo, 0, ["x", "y"], "p.csv")
    path = tmp_path / "bad.csv"
    pseudo.assign(target=[1, 2, 0]).to_csv(path, index=False)
    with pytest.raises(UserError, match="bad.csv line 3"):
        read_pseudo_labels(path)


# ---------------------------------------------------------------- BatchNorm adaptation
def small_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                               torch.nn.Conv2d(4, 5, 3), torch.nn.BatchNorm2d(5), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(5, 1))


def test_adaptation_changes_only_the_running_statistics_to_the_exact_ones_whatever_the_batching():
    images = torch.randn(23, 3, 12, 12) * 3 + 1
    net = small_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert adapt_batchnorm(net, lambda: images.split(5)) == 2
    after = net.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"1.running_mean", "1.running_var", "4.running_mean", "4.running_var"}
    # The first layer's statistics are its input's over all images; the second's, with the first adapted.
    with torch.no_grad():
        first = net[0](images).transpose(0, 1).reshape(4, -1).double()
        torch.testing.assert_close(net[1].running_mean, first.mean(1).float())
        torch.testing.assert_close(net[1].running_var, first.var(1).float())
        second = net[3](net[2](net[1](net[0](images)))).transpose(0, 1).reshape(5, -1).double()
        torch.testing.assert_close(net[4].running_var, second.var(1).float())
    other = small_net()
    adapt_batchnorm(other, lambda: [images[i:i + 1] for i in torch.randperm(23)])  # one at a time, shuffled
    for key in changed:
        torch.testing.assert_close(other.state_dict()[key], after[key], rtol=1e-5, atol=1e-6)
    assert not net.training  # left in eval mode: predictions use the adapted statistics


def test_a_network_without_batchnorm_is_refused():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.GroupNorm(1, 2))
    assert normalization_layers(net) == []
    with pytest.raises(UserError, match="no BatchNorm layers"):
        adapt_batchnorm(net, lambda: [torch.randn(2, 3, 8, 8)])


# ---------------------------------------------------------------- augmentation and mixing
def test_mixup_and_cutmix_mix_targets_by_the_image_share():
    from cxr.training import recipe

    assert recipe.batch_mixer(0, 0) is None
    np.random.seed(3)
    images = torch.stack([torch.zeros(1, 16, 16), torch.ones(1, 16, 16)])
    mixed, targets = recipe.batch_mixer(0, 1.0)(images.clone(), torch.tensor([[0.0], [1.0]]))
    share_of_first_in_second = 1 - mixed[1].mean()  # the box pasted from the all-zero image
    torch.testing.assert_close(targets[1, 0], 1 - share_of_first_in_second)
    mixed, targets = recipe.batch_mixer(0.4, 0)(images.clone(), torch.tensor([[0.0], [1.0]]))
    torch.testing.assert_close(targets[:, 0], mixed.mean((1, 2, 3)))


def test_the_shift_augmentation_keeps_the_size_and_repeats_with_its_seed():
    from cxr.data.transforms import train_transform

    image = np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    first = [train_transform(7, "shift", 40)(image=image)["image"] for _ in range(2)]
    assert first[0].shape == (3, 40, 40) and torch.equal(first[0], first[1])
    with pytest.raises(ValueError):
        train_transform(7, "strong", 40)


# ---------------------------------------------------------------- the scripts, end to end
TRAIN = ["--dataset", "tiny", "--exp", "u", "--img-size", "32", "--epochs", "1", "--batch-size", "8",
         "--heatmaps", "off", "--no-tensorboard"]


@pytest.mark.slow
def test_pseudo_labelled_second_round_and_batchnorm_adaptation_end_to_end(tmp_path):
    cwd = make_tiny_dataset(tmp_path, n_train=24, n_dev=8)
    run_script("train.py", "--arch", "resnet18", "--fold", 0, *TRAIN, "--aug", "shift", "--mixup", 0.2, cwd=cwd)
    out = run_script("pseudo.py", "--exp", "u", "--min-confidence", 0.5, "--share", 0.5, cwd=cwd).stdout
    assert "fold 0: 4 of 8 test images" in out
    pseudo = pd.read_csv(cwd / "oof/u/pseudo_labels.csv")
    assert set(pseudo["fold"]) == {0} and len(pseudo) == 4
    # 12 training rows + 4 pseudo-labelled, batches of 15: the epoch would end with a batch of one, which
    # BatchNorm cannot train on; that image sits the epoch out.
    out = run_script("train.py", "--arch", "resnet18", "--fold", 0, *TRAIN, "--name", "second", "--batch-size", 15,
                     "--pseudo-labels", "oof/u/pseudo_labels.csv", cwd=cwd).stdout
    assert "(4 pseudo-labelled test images)" in out
    assert json.loads((cwd / "weights/u/second/fold_0/config.json").read_text())["n_pseudo"] == 4
    oof = pd.read_csv(cwd / "oof/u/second/fold_0.csv")
    assert not oof["image_id"].isin(pseudo["image_id"]).any()  # validation rows are training images only
    one_error_line(run_script("train.py", "--arch", "resnet18", "--fold", 0, *TRAIN, "--kind", "map",
                              "--pseudo-labels", "oof/u/pseudo_labels.csv", cwd=cwd, check=False), "--pseudo-labels")

    one_error_line(run_script("adapt_bn.py", "--exp", "u", "--model", "nope", cwd=cwd, check=False), "no trained fold")
    one_error_line(run_script("pseudo.py", "--exp", "nope", cwd=cwd, check=False), "no model with test predictions")
    out = run_script("adapt_bn.py", "--exp", "u", "--model", "resnet18", cwd=cwd).stdout
    assert "resnet18-bn fold 0: 20 BatchNorm layers adapted" in out
    source = torch.load(cwd / "weights/u/resnet18/fold_0/best.pt", weights_only=True)["model"]
    adapted = torch.load(cwd / "weights/u/resnet18-bn/fold_0/best.pt", weights_only=True)["model"]
    assert {k for k in source if not torch.equal(source[k], adapted[k])} == {
        k for k in source if k.endswith(("running_mean", "running_var"))}
    # The saved adapted model predicts the test images as adapt_bn.py did, in other batches (as submit.py would).
    from cxr.data.cache import decode_gray
    from cxr.inference.ensemble import fold_outputs, load_fold_model

    fold = load_fold_model(cwd / "weights/u/resnet18-bn/fold_0/best.pt", torch.device("cpu"))
    test = pd.read_csv(cwd / "oof/u/resnet18-bn/test_fold_0.csv")
    grays = [decode_gray(cwd / "input/tiny" / image_id) for image_id in test["image_id"]]
    probabilities = np.concatenate([fold_outputs([fold], grays[i:i + 3], torch.device("cpu"))[0]
                                    for i in range(0, len(grays), 3)])
    np.testing.assert_allclose(probabilities[:, 0], test["prediction"], atol=2e-5)
