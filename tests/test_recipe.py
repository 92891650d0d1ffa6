"""The training recipe: each option changes what it should (tiny data), resume after a real
kill ends where an uninterrupted run ends, and the same seed gives the same OOF files."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
import time

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

from cxr.training import engine
from cxr.training import recipe
from conftest import SRC, make_tiny_dataset, one_error_line, run_script
from cxr.errors import UserError
from cxr.training.lr_range import smooth, suggest
from cxr.models.backbones import create_model

TINY = ["--dataset", "tiny", "--img-size", "32", "--batch-size", "8", "--epochs", "3", "--tta", "none"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("recipe"), n_train=48, n_dev=4, max_size=80)


# ------------------------------------------------------------------ pure parts
def lrs_of(scheduler, optimizer, steps):
    values = []
    for _ in range(steps):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return np.array(values)


def test_learning_rate_scales_with_the_effective_batch():
    from cxr.config import TrainConfig, changed_settings, scaled_lr

    assert scaled_lr(1e-3, 64, 16) == pytest.approx(2e-3)  # AdamW: sqrt(64 / 16) = 2
    assert scaled_lr(1e-3, 8, 32) == pytest.approx(5e-4)
    assert scaled_lr(0.1, 64, 16, "sgd") == pytest.approx(0.4)  # SGD: linear
    assert scaled_lr(1e-3, 64, 0) == 1e-3 and scaled_lr(1e-3, 16, 16) == 1e-3  # off; the same batch
    # a run saved before --lr-batch existed trained at the rate --lr-batch 32 gives its batch 32 now: not a change
    assert changed_settings({"batch_size": 32, "lr": 1e-3}, TrainConfig(lr_batch=32)) == []
    assert changed_settings({"batch_size": 16, "lr": 1e-3}, TrainConfig(batch_size=16, lr_batch=32)) == \
        ["--lr-batch 0 -> 32"]


@pytest.mark.parametrize("name", ["cosine", "onecycle", "constant"])
def test_schedules_warm_up_then_follow_their_shape(name):
    optimizer = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=0.1)
    lrs = lrs_of(recipe.build_scheduler(optimizer, name, total_steps=100, warmup_steps=10, max_lr=0.1), optimizer, 100)
    assert np.all(np.diff(lrs[:10]) > 0), "warm-up rises"
    assert lrs.max() == pytest.approx(0.1, rel=0.02)
    if name == "constant":
        assert np.allclose(lrs[10:], 0.1)
    else:
        assert np.all(np.diff(lrs[12:]) <= 1e-12) and lrs[-1] < 0.01, "decays after the peak"
    with pytest.raises(ValueError):
        recipe.build_scheduler(optimizer, "step", 10, 0, 0.1)


def test_no_weight_decay_on_biases_and_norm_weights():
    optimizer = recipe.build_optimizer(create_model("resnet18"), lr=1e-3, weight_decay=0.05)
    decays = {group["weight_decay"]: sum(p.ndim for p in group["params"]) for group in optimizer.param_groups}
    assert set(decays) == {0.0, 0.05}
    assert all(p.ndim == 1 for g in optimizer.param_groups if g["weight_decay"] == 0 for p in g["params"])


def test_class_balance_by_loss_weight_and_by_sampler():
    targets = np.array([1, 1, 1, 1, 1, 1, 0, 0])
    assert recipe.positive_weight(targets, "loss").item() == pytest.approx(2 / 6)
    assert recipe.positive_weight(targets, "none") is None
    sampler = recipe.balanced_sampler(np.repeat([1, 0], [900, 100]), torch.Generator().manual_seed(0))
    drawn = np.repeat([1, 0], [900, 100])[list(sampler)]
    assert len(drawn) == 1000 and 0.45 < drawn.mean() < 0.55  # balanced draws from a 90 % positive set


def test_freeze_leaves_only_the_head_trainable():
    model = create_model("resnet18")
    recipe.set_backbone_trainable(model, trainable=False)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"fc.weight", "fc.bias"}
    recipe.set_backbone_trainable(model, trainable=True)
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("scores, patience, stop", [
    ([0.6, 0.7, 0.65, 0.69], 2, True), ([0.6, 0.7, 0.65, 0.71], 2, False), ([0.6, 0.7, 0.65], 2, False),
    ([0.6, 0.6, 0.6], 3, False), ([0.6, 0.6, 0.6, 0.6], 3, True), ([0.1, 0.0], 0, False),
])
def test_early_stopping(scores, patience, stop):
    assert recipe.should_stop(scores, patience) is stop


class LeftRight(nn.Module):
    """Logit = mean of the left half minus the right half: a horizontal flip negates it."""

    def forward(self, images):
        half = images.shape[3] // 2
        return (images[..., :half].mean((1, 2, 3)) - images[..., half:].mean((1, 2, 3)) + 0.3).unsqueeze(1)


def test_tta_averages_the_logits_of_the_flipped_views():
    images = torch.rand(6, 3, 8, 8)
    loader = [(images, torch.full((6, 1), -1.0))]
    plain, _ = engine.predict(LeftRight(), loader, torch.device("cpu"), engine.Precision(None, False), tta="none")
    flipped, _ = engine.predict(LeftRight(), loader, torch.device("cpu"), engine.Precision(None, False), tta="hflip")
    assert not np.allclose(plain, flipped)
    assert np.allclose(flipped, torch.sigmoid(torch.tensor(0.3)).item(), atol=1e-6)  # the two views cancel out
    four, _ = engine.predict(LeftRight(), loader, torch.device("cpu"), engine.Precision(None, False), tta="flips")
    assert np.allclose(four, flipped, atol=1e-6)


def test_drop_path_is_refused_for_a_backbone_without_it():
    assert create_model("resnet18", drop_path_rate=0.1) is not None
    with pytest.raises(UserError, match="vgg11 has no stochastic depth"):
        create_model("vgg11", drop_path_rate=0.1)


def test_lr_suggestion_is_the_steepest_descent_before_the_minimum():
    lrs = np.logspace(-6, 0, 61)
    loss = 1.0 - 0.5 / (1 + np.exp(-(np.log10(lrs) + 3) * 3))  # falls fastest at 1e-3
    loss[lrs > 0.1] += (np.log10(lrs[lrs > 0.1]) + 1) * 5  # diverges past 0.1
    assert suggest(lrs, loss) == pytest.approx(1e-3, rel=0.15)
    assert np.allclose(smooth([2.0, 2.0, 2.0]), 2.0)  # bias-corrected: no start-up dip


# ------------------------------------------------------------------ the real script
def oof_and_weights(cwd, exp):
    oof = (cwd / f"oof/{exp}/resnet18/fold_0.csv").read_bytes()
    best = torch.load(cwd / f"weights/{exp}/resnet18/fold_0/best.pt", weights_only=True)
    return oof, best


@pytest.mark.slow  # over half a minute: CI runs it with -m slow
def test_same_seed_same_oof_file_different_seed_different(tiny):
    for exp, seed in (("a", 1), ("b", 1), ("c", 2)):
        run_script("train.py", *TINY, "--exp", exp, "--seed", seed, "--deterministic", "--no-tensorboard", cwd=tiny)
    (oof_a, _), (oof_b, _), (oof_c, _) = (oof_and_weights(tiny, e) for e in "abc")
    assert oof_a == oof_b
    assert oof_a != oof_c


@pytest.mark.slow
def test_resume_after_a_real_kill_ends_with_the_same_weights_and_oof(tiny):
    args = [*TINY, "--epochs", "4", "--ema", "--balance", "sampler", "--no-tensorboard"]
    run_script("train.py", *args, "--exp", "whole", cwd=tiny)
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"}
    process = subprocess.Popen([sys.executable, str(SRC / "train.py"), *args, "--exp", "cut"], cwd=tiny, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = tiny / "weights/cut/resnet18/fold_0/log.csv"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if log.is_file() and len(pd.read_csv(log)) >= 1:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    process.wait()
    killed_at = torch.load(tiny / "weights/cut/resnet18/fold_0/last.pt", weights_only=True)["epoch"]
    assert process.returncode == -signal.SIGKILL and killed_at < 4, "the run must really be cut short"
    assert not (tiny / "oof/cut/resnet18/fold_0.csv").exists()

    out = run_script("train.py", *args, "--exp", "cut", "--resume", cwd=tiny).stdout
    assert f"resuming after epoch {killed_at}" in out
    (oof_whole, best_whole), (oof_cut, best_cut) = oof_and_weights(tiny, "whole"), oof_and_weights(tiny, "cut")
    assert oof_whole == oof_cut
    assert best_whole["epoch"] == best_cut["epoch"] and best_whole["weights_from"] == best_cut["weights_from"]
    assert all(torch.equal(best_whole["model"][k], best_cut["model"][k]) for k in best_whole["model"])
    whole_log = pd.read_csv(tiny / "weights/whole/resnet18/fold_0/log.csv").drop(columns=["seconds", "train_images_per_s", "data_share"])
    cut_log = pd.read_csv(tiny / "weights/cut/resnet18/fold_0/log.csv").drop(columns=["seconds", "train_images_per_s", "data_share"])
    pd.testing.assert_frame_equal(whole_log, cut_log)
    assert whole_log["ema_val_auc"].notna().all()

    changed = run_script("train.py", *args, "--exp", "cut", "--resume", "--lr", "0.1", cwd=tiny, check=False)
    assert changed.returncode == 2 and "--lr 0.001 -> 0.1" in changed.stderr


def test_options_reach_the_run(tiny):
    """Freeze, class-weighted loss, one-cycle, clipping, drop-path, early stopping and TTA, together: the run
    records them and the frozen first epoch changes only the head."""
    args = [*TINY, "--exp", "opts", "--freeze-epochs", "1", "--epochs", "1", "--balance", "loss", "--schedule",
            "onecycle", "--clip-grad", "1.0", "--drop-path", "0.05", "--drop-rate", "0.2", "--patience", "2",
            "--tta", "flips", "--no-tensorboard", "--lr-batch", "32"]
    out = run_script("train.py", *args, cwd=tiny).stdout
    assert "summary: resnet18 fold 0: best epoch 1 of 1" in out and "(TTA flips)" in out
    assert "learning rate 0.0005: --lr 0.001 is meant for an effective batch of 32" in out  # batch 8: x sqrt(1/4)
    config = json.loads((tiny / "weights/opts/resnet18/fold_0/config.json").read_text())
    optimizer = torch.load(tiny / "weights/opts/resnet18/fold_0/last.pt", weights_only=True)["optimizer"]
    assert config["lr_used"] == pytest.approx(5e-4) and optimizer["param_groups"][0]["max_lr"] == pytest.approx(5e-4)
    torch.manual_seed(42)
    initial = create_model("resnet18", drop_rate=0.2, drop_path_rate=0.05).state_dict()
    trained = torch.load(tiny / "weights/opts/resnet18/fold_0/last.pt", weights_only=True)["model"]
    changed = {k for k in initial if initial[k].is_floating_point() and not torch.equal(initial[k], trained[k])}
    assert {"fc.weight", "fc.bias"} <= changed
    assert all(k.startswith("fc.") or "running_" in k for k in changed)  # the backbone's weights stayed put


def test_select_last_keeps_the_last_epochs_ema_weights_without_looking_at_the_validation_rows(tiny):
    from cxr.metrics.auc import roc_auc

    run_script("train.py", *TINY, "--exp", "last", "--ema", "--select", "last", "--no-tensorboard", cwd=tiny)
    best = torch.load(tiny / "weights/last/resnet18/fold_0/best.pt", weights_only=True)
    last = torch.load(tiny / "weights/last/resnet18/fold_0/last.pt", weights_only=True)
    assert best["epoch"] == 3 and best["weights_from"] == "ema"
    assert all(torch.equal(best["model"][k], last["ema"][k]) for k in best["model"])
    log = pd.read_csv(tiny / "weights/last/resnet18/fold_0/log.csv")
    oof = pd.read_csv(tiny / "oof/last/resnet18/fold_0.csv")
    assert log["val_auc"].iloc[-1] == pytest.approx(log["ema_val_auc"].iloc[-1])
    assert roc_auc(oof["target"], oof["prediction"]) == pytest.approx(log["ema_val_auc"].iloc[-1], abs=1e-6)


def test_val_every_0_validates_after_the_last_epoch_only_and_skip_done_compares_the_settings(tiny):
    args = [*TINY, "--exp", "lastval", "--val-every", "0", "--no-tensorboard"]
    run_script("train.py", *args, cwd=tiny)
    log = pd.read_csv(tiny / "weights/lastval/resnet18/fold_0/log.csv")
    assert log["val_auc"].isna().tolist() == [True, True, False]
    again = run_script("train.py", *args, "--skip-done", "--num-workers", 0, cwd=tiny).stdout
    assert again.strip() == "== resnet18 fold 0: done already (FORCE=1 retrains)"
    other = run_script("train.py", *args, "--skip-done", "--epochs", 4, cwd=tiny, check=False)
    one_error_line(other, "resnet18 fold 0 of experiment lastval was trained with other settings (--epochs 3 -> 4)")


def test_the_sweep_report_keeps_earlier_commands_runs(tmp_path):
    """bench/recipe_sweep.py --sizes 400 800, then --sizes 1600: one report holds all three sizes; a
    size run again replaces its rows."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from recipe_sweep import merged_report

    def runs(size, auc):
        return pd.DataFrame({"size": size, "repeat": 0, "fold": [0, 1, 2], "auc": auc})
    path = tmp_path / "recipe_sweep.csv"
    merged_report(path, pd.concat([runs(400, 0.9), runs(800, 0.8)]))
    merged_report(path, runs(1600, 0.99))
    table = merged_report(path, runs(400, 0.5))
    assert table["size"].tolist() == [400] * 3 + [800] * 3 + [1600] * 3
    assert table.groupby("size")["auc"].first().tolist() == [0.5, 0.8, 0.99]
    assert pd.read_csv(path).equals(table)
