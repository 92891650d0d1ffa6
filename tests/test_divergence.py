"""The divergence guard: a loss spike is caught while training, the epoch is trained again from
the last good state with a lower learning rate, or the fold stops with the reason; and the map
loss's normalizer does not jump with a batch's object cells."""
import json
import math

import pandas as pd
import pytest
import torch

from cxr.training import losses
from cxr.training import recipe
from conftest import make_tiny_dataset, run_script


@pytest.mark.parametrize("previous, loss, factor, spiked", [
    ([], 5.0, 1.3, False),  # the first epoch has no reference
    ([1.0, 0.8], 1.0, 1.3, False),  # noise above the minimum, within the factor
    ([1.0, 0.8], 1.1, 1.3, True),  # 1.375 x the minimum
    ([1.0, 0.8], math.nan, 1.3, True),
    ([1.0, 0.8], math.inf, 1.3, True),
    ([1.0, 0.8], 100.0, 0.0, False),  # the guard off
])
def test_a_spike_is_a_loss_above_a_multiple_of_the_running_minimum_or_not_finite(previous, loss, factor, spiked):
    assert bool(recipe.loss_spike(previous, loss, factor)) == spiked


@pytest.mark.parametrize("schedule", ["cosine", "onecycle", "constant"])
def test_a_lowered_learning_rate_holds_for_the_rest_of_the_schedule(schedule):
    def rates(scale_at=None):
        model = torch.nn.Linear(2, 1)
        optimizer = recipe.build_optimizer(model, 1e-2, 0.0)
        scheduler = recipe.build_scheduler(optimizer, schedule, 40, 5, 1e-2)
        seen = []
        for step in range(40):
            if step == scale_at:
                recipe.scale_learning_rate(optimizer, scheduler, 0.5)
            seen.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        return seen

    plain, scaled = rates(), rates(scale_at=10)
    assert scaled[:10] == plain[:10]
    assert scaled[10:] == pytest.approx([0.5 * r for r in plain[10:]], rel=1e-6, abs=1e-12)


def test_the_map_loss_divides_by_a_running_mean_of_object_cells_not_the_batchs_own():
    torch.manual_seed(0)
    maps, head = torch.randn(4, 1, 16, 16), torch.zeros(4, 1)
    targets = torch.ones(4, 1)
    crowded = torch.zeros(4, 1, 16, 16)
    crowded[:, :, 2:12, 2:12] = 1  # 400 object cells
    sparse = torch.zeros(4, 1, 16, 16)
    sparse[0, 0, 5, 5] = 1  # one object cell
    loss = losses.map_loss()
    for _ in range(20):
        loss((head, maps), targets, crowded)
    after_sparse = loss((head, maps), targets, sparse)
    per_batch = losses.MapLoss()((head, maps), targets, sparse)  # a fresh loss: normalized by this batch's one cell
    assert float(after_sparse) < float(per_batch) / 50  # the running mean (about 360 cells) does not jump to 1
    assert loss.normalizer == pytest.approx(0.9 * 400 + 0.1 * 1, rel=1e-4)
    restored = losses.MapLoss()
    restored.load_state_dict(loss.state_dict())  # last.pt keeps it: a resumed run continues the same mean
    with torch.no_grad():  # evaluation does not move it
        assert float(restored((head, maps), targets, sparse)) == pytest.approx(float(loss((head, maps), targets, sparse)))
    assert restored.normalizer == pytest.approx(loss.normalizer)


def test_a_spike_is_divergence_only_when_the_last_good_weights_find_the_same_batches_easier():
    from types import SimpleNamespace

    from cxr.training.fold_run import Guard

    guard = Guard(SimpleNamespace(spike_factor=1.3, restart_lr_factor=0.5, max_restarts=3))
    # measured: an epoch at 1.37 x the running minimum whose batches the last good weights scored alike
    assert guard.confirm(32, "spike", loss=0.4268, reference=0.4153, main=False) == ""
    assert guard.hard_epochs == [{"epoch": 32, "loss": 0.4268, "good_weights_loss": 0.4153}]
    # the fold: 0.94 -> 2.18; the weights before the jump did far better on those batches
    assert "0.9400" in guard.confirm(3, "spike", loss=2.18, reference=0.94, main=False)
    assert guard.confirm(3, "spike", loss=math.nan, reference=0.94, main=False)
    assert guard.record()["hard_epochs"] == guard.hard_epochs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("divergence"), n_train=40, n_dev=4)


def exploding_run(cwd, exp, *more):
    """resnet18 at a learning rate of 3 (AdamW): its loss explodes within a few epochs."""
    return run_script("train.py", "--arch", "resnet18", "--fold", 0, "--dataset", "tiny", "--exp", exp,
                      "--img-size", 32, "--epochs", 4, "--batch-size", 8, "--lr", 3, "--amp", "off",
                      "--heatmaps", "off", "--no-tensorboard", *more, cwd=cwd)


def test_a_spiking_epoch_is_trained_again_at_a_lower_rate_and_recorded(tiny):
    result = exploding_run(tiny, "restart", "--max-restarts", 5)
    assert "divergence: epoch" in result.stdout and "restarting it from epoch" in result.stdout
    run = tiny / "weights" / "restart" / "resnet18" / "fold_0"
    config = json.loads((run / "config.json").read_text())
    assert config["restarts"], config
    first = config["restarts"][0]
    assert first["lr_scale"] == 0.5 and "above 1.3 x the lowest" in first["reason"]
    log = pd.read_csv(run / "log.csv")
    assert list(log["epoch"]) == list(range(1, len(log) + 1))  # an undone epoch leaves no row
    redone = log[log["epoch"] >= first["epoch"]]
    assert (redone["lr_scale"] <= 0.5).all() and (redone["restarts"] >= 1).all()
    assert (log.loc[log["epoch"] < first["epoch"], "lr_scale"] == 1).all()
    # the settings file the run wrote trains the same run again (the guard's record is a measurement)
    run_script("train.py", "--config", run / "config.json", "--exp", "again", "--epochs", 1, cwd=tiny)


def test_a_fold_that_cannot_recover_stops_with_the_reason_and_keeps_its_last_good_weights(tiny):
    result = exploding_run(tiny, "stop", "--max-restarts", 0, "--val-every", 4)  # validated only after the last epoch
    assert "stopped by the divergence guard" in result.stdout
    run = tiny / "weights" / "stop" / "resnet18" / "fold_0"
    config = json.loads((run / "config.json").read_text())
    assert "training stopped" in config["stopped_reason"] and config["restarts"] == []
    best = torch.load(run / "best.pt", weights_only=True)
    log = pd.read_csv(run / "log.csv")
    assert best["epoch"] == len(log) < 4  # the last good epoch, validated when the fold stopped
    assert (tiny / "oof" / "stop" / "resnet18" / "fold_0.csv").is_file()


def test_the_guard_off_lets_the_loss_run(tiny):
    result = exploding_run(tiny, "off", "--spike-factor", 0)
    assert "divergence" not in result.stdout
    config = json.loads((tiny / "weights" / "off" / "resnet18" / "fold_0" / "config.json").read_text())
    assert config["restarts"] == [] and config["stopped_reason"] == ""
