"""The overfit check: a model that can learn memorizes a few fixed batches; frozen weights cannot."""
import torch
from conftest import make_tiny_dataset, run_script
from torch.utils.data import DataLoader, TensorDataset

from cxr.training import engine, losses
from cxr.training import overfit
from cxr.training import recipe


def tiny_batches(n=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, 8, 8, generator=generator)
    targets = (torch.rand(n, 1, generator=generator) < 0.5).float()  # random labels: only memory fits them
    return DataLoader(TensorDataset(images, targets), batch_size=8, shuffle=False)


def check(model, passes=150):
    optimizer = recipe.build_optimizer(model, 1e-2, 0.0)
    scheduler = recipe.build_scheduler(optimizer, "constant", 1, 0, 1e-2)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    return overfit.run_check(model, tiny_batches(), optimizer, scheduler, scaler, torch.device("cpu"), engine.FP32,
                             losses.classifier_loss(), passes)


def small_network():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))


def test_a_network_that_learns_passes_and_stops_early():
    result = check(small_network())
    assert result.passed and len(result.losses) < 150
    assert result.losses[-1] < overfit.NEAR_ZERO * result.losses[0]
    assert "PASSED" in overfit.verdict(result, 2, 16)


def test_frozen_weights_fail_the_check():
    network = small_network()
    for parameter in network.parameters():  # the optimizer steps, the weights never move
        parameter.register_hook(torch.zeros_like)
    before = [p.detach().clone() for p in network.parameters()]
    result = check(network, passes=40)
    assert not result.passed and len(result.losses) == 40
    assert all(torch.equal(a, b) for a, b in zip(before, network.parameters()))
    assert "FAILED" in overfit.verdict(result, 2, 16)


def test_overfit_settings_switch_off_what_keeps_a_model_from_memorizing():
    from cxr.config import TrainConfig

    cfg = overfit.overfit_settings(TrainConfig(aug="shift", mixup=0.4, drop_rate=0.3, weight_decay=0.05, ema=True,
                                               balance="sampler", schedule="cosine", overfit_batches=2))
    assert (cfg.aug, cfg.mixup, cfg.drop_rate, cfg.weight_decay, cfg.ema, cfg.balance, cfg.schedule) == \
        ("none", 0.0, 0.0, 0.0, False, "none", "constant")
    assert overfit.passes_for(cfg) * cfg.overfit_batches >= overfit.MIN_STEPS


def test_train_py_overfit_batches_passes_on_the_demo_and_writes_only_its_figure(tmp_path):
    cwd = make_tiny_dataset(tmp_path, n_train=24, n_dev=4)
    result = run_script("train.py", "--dataset", "tiny", "--arch", "resnet18", "--img-size", 64, "--batch-size", 8,
                        "--overfit-batches", 1, "--exp", "o", cwd=cwd)
    assert "overfit check PASSED" in result.stdout
    assert not (cwd / "oof" / "o").exists() and not (cwd / "weights" / "o").exists()
    figure = cwd / "reports" / "o" / "overfit" / "resnet18_fold0.png"
    assert f"drew {figure.relative_to(cwd)}" in result.stdout and figure.stat().st_size > 0
    refused = run_script("train.py", "--dataset", "tiny", "--overfit-batches", 5, "--batch-size", 8, cwd=cwd,
                         check=False)
    assert refused.returncode == 2 and "the training fold has" in refused.stderr
