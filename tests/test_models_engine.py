import time

import pytest
import torch
import torch.nn.functional as F

from cxr.training import engine
from cxr.errors import UserError
from cxr.models.backbones import create_model

ARCHS = ["resnet18", "resnet34", "resnet50", "resnet101", "densenet121", "efficientnet_b0",
         "mobilenetv3_large_100", "convnext_tiny"]


@pytest.mark.parametrize("arch", ARCHS)
def test_required_architectures_build_and_give_one_logit(arch):
    model = create_model(arch).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 1)


def test_unknown_architecture_is_one_clear_error():
    with pytest.raises(UserError, match="unknown architecture 'resnet1800'"):
        create_model("resnet1800")


def test_pretrained_unavailable_fails_fast_and_clearly(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    monkeypatch.setattr("cxr.models.backbones.hub_reachable", lambda timeout=3.0: False)
    start = time.time()
    with pytest.raises(UserError, match="pretrained weights for resnet18 are not available"):
        create_model("resnet18", pretrained=True)
    assert time.time() - start < 30


def test_local_weights_file_is_loaded(tmp_path):
    source = create_model("resnet18", num_classes=1000)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    model = create_model("resnet18", weights=str(path))  # 1-logit head: the classifier is re-initialized
    assert torch.equal(model.conv1.weight, source.conv1.weight)
    assert model.fc.out_features == 1
    with pytest.raises(UserError, match="file not found"):
        create_model("resnet18", weights=str(tmp_path / "missing.pth"))


def test_cpu_runs_fp32_unless_bf16_is_asked_for_by_name():
    cpu = torch.device("cpu")
    for amp in ["auto", "fp16", "off"]:
        precision = engine.resolve_precision(amp, cpu)
        assert precision.dtype is None and not precision.scale_loss and precision.name == "fp32"
    assert engine.resolve_precision("bf16", cpu) == engine.Precision(torch.bfloat16, False)
    model = create_model("resnet18").eval()
    with engine.autocast(cpu, engine.Precision(torch.bfloat16, False)):
        assert model(torch.randn(2, 3, 32, 32)).dtype == torch.bfloat16  # bf16 autocast really runs on a CPU


def test_cuda_precision_choices(monkeypatch):
    cuda = torch.device("cuda")
    assert engine.resolve_precision("fp16", cuda) == engine.Precision(torch.float16, True)
    assert engine.resolve_precision("bf16", cuda) == engine.Precision(torch.bfloat16, False)
    assert engine.resolve_precision("off", cuda).dtype is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert engine.resolve_precision("auto", cuda).name == "fp16"
    with pytest.raises(ValueError):
        engine.resolve_precision("fp8", cuda)


def test_asking_for_cuda_without_it_is_a_user_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(UserError, match="CUDA is not available"):
        engine.resolve_device("cuda")


def test_training_step_with_gpu_switches_on_runs_on_cpu(tmp_path):
    """channels_last, AMP and GradScaler requested: on a CPU they fall back and training still learns."""
    torch.manual_seed(0)
    device = torch.device("cpu")
    precision = engine.resolve_precision("fp16", device)
    model = engine.prepare_model(create_model("resnet18"), device, channels_last=True, cudnn_benchmark=True)
    images = torch.randn(16, 3, 32, 32)
    targets = (images.mean((1, 2, 3)) > 0).float()[:, None]  # (batch, labels)
    loader = [(images, targets)] * 4
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=8)
    scaler = torch.amp.GradScaler("cpu", enabled=precision.scale_loss)
    before = F.binary_cross_entropy_with_logits(model.eval()(images), targets).item()
    for _ in range(2):
        engine.train_one_epoch(model, loader, optimizer, scheduler, scaler, device, precision, channels_last=True)
    probs, loss = engine.predict(model, loader[:1], device, precision, channels_last=True)
    assert probs.shape == (16, 1) and loss < before

    engine.save_checkpoint(tmp_path / "last.pt", model, {"arch": "resnet18"}, 2, 0.9, optimizer=optimizer.state_dict(),
                           scheduler=scheduler.state_dict(), scaler=scaler.state_dict())
    state = engine.load_checkpoint(tmp_path / "last.pt")  # weights_only=True
    assert state["epoch"] == 2 and state["config"]["arch"] == "resnet18" and "optimizer" in state
    fresh = create_model("resnet18")
    fresh.load_state_dict(state["model"])
    assert torch.equal(fresh.fc.weight, model.fc.weight)


def test_torch_compile_switch_keeps_checkpoints_loadable(tmp_path):
    model = engine.prepare_model(create_model("resnet18"), torch.device("cpu"), compile=True)
    engine.save_checkpoint(tmp_path / "best.pt", model, {}, 1, 0.5)
    create_model("resnet18").load_state_dict(engine.load_checkpoint(tmp_path / "best.pt")["model"])


def test_deterministic_wins_over_cudnn_benchmark_on_cuda(monkeypatch):
    """recipe.set_deterministic turns cudnn.benchmark off; preparing the model on a GPU must not turn it back on."""
    from cxr.training import recipe

    class Placed(torch.nn.Module):  # stands in for a network moved to a CUDA device this machine lacks
        def to(self, *args, **kwargs):
            return self

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    try:
        recipe.set_deterministic(True)
        engine.prepare_model(Placed(), torch.device("cuda"), channels_last=False, cudnn_benchmark=True)
        assert torch.backends.cudnn.benchmark is False
    finally:
        recipe.set_deterministic(False)
    engine.prepare_model(Placed(), torch.device("cuda"), channels_last=False, cudnn_benchmark=True)
    assert torch.backends.cudnn.benchmark is True
