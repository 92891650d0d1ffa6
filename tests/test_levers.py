"""Memory and data-path levers for large images, each checked on a CPU against the plain path:
gradient accumulation (the same weights as the larger batch), activation checkpointing (the same
gradients, fewer saved activations), the uint8 one-channel loader path (the same network input
as float RGB normalized on the host), persistent workers (the same augmented batches as no
workers), and train.py with all of them on."""
import copy
import json

import albumentations as A
import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from albumentations.pytorch import ToTensorV2
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

from cxr.training import engine
from cxr.training import recipe
from conftest import make_tiny_dataset, one_error_line, run_script
from cxr.data.dataset import EpochSeeded, ImageTable
from cxr.errors import UserError
from cxr.models.map_model import create_map_model
from cxr.models.backbones import create_model, enable_grad_checkpointing
from cxr.data.transforms import train_transform

CPU = torch.device("cpu")


def small_net():
    """No BatchNorm: its batch statistics are the one thing accumulation cannot reproduce."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(4, 1))


def train_epochs(batch_size, accumulate, epochs=2, n=10):
    generator = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (n, 1, 12, 12), dtype=torch.uint8, generator=generator)
    targets = (torch.arange(n) % 2).float()[:, None]
    loader = DataLoader(TensorDataset(images, targets), batch_size=batch_size)
    model = small_net()
    optimizer = recipe.build_optimizer(model, 1e-2, 1e-2)
    steps = engine.optimizer_steps(len(loader), accumulate)
    scheduler = recipe.build_scheduler(optimizer, "cosine", epochs * steps, steps, 1e-2)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    ema = recipe.make_ema(model, 0.9)
    losses = [engine.train_one_epoch(model, loader, optimizer, scheduler, scaler, CPU, engine.FP32, ema=ema,
                                     accumulate=accumulate).loss for _ in range(epochs)]
    return model, ema.module, scheduler.last_epoch, losses


@pytest.mark.parametrize("batch_size, accumulate", [(3, 2), (2, 3)])
def test_accumulated_small_batches_train_like_the_large_batch(batch_size, accumulate):
    """10 images: batch 6 steps on 6 + 4 images; 3 x 2 and 2 x 3 group their batches alike
    (the last group shorter): the same weights, EMA, schedule position and mean loss."""
    large, large_ema, large_steps, large_losses = train_epochs(6, 1)
    small, small_ema, small_steps, small_losses = train_epochs(batch_size, accumulate)
    assert small_steps == large_steps == 4
    for a, b in zip([*large.parameters(), *large_ema.parameters()], [*small.parameters(), *small_ema.parameters()]):
        assert torch.allclose(a, b, atol=1e-6)
    assert np.allclose(large_losses, small_losses, atol=1e-6)
    unaccumulated, *_ = train_epochs(batch_size, 1)  # the same small batches, a step each: other weights
    assert not torch.allclose(unaccumulated[0].weight, large[0].weight, atol=1e-4)


def saved_bytes_and_gradients(model, images):
    """(bytes of the activations autograd saves for the backward pass, {name: gradient})."""
    saved = {}

    def keep(tensor):
        storage = tensor.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()  # a storage saved by several operations counts once
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
        outputs = model(images)
    loss = sum(o.float().square().mean() for o in (outputs if isinstance(outputs, tuple) else [outputs]))
    loss.backward()
    return sum(saved.values()), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("build, share", [(lambda: create_model("resnet18"), 0.5), (lambda: create_map_model("resnet18"), 0.8)],
                         ids=["classifier", "map model (its encoder checkpointed, not its decoder)"])
def test_checkpointing_gives_the_same_gradients_from_fewer_saved_activations(build, share):
    torch.manual_seed(0)
    plain = build().train()
    checkpointed = copy.deepcopy(plain)
    enable_grad_checkpointing(checkpointed, "resnet18")
    images = torch.randn(2, 3, 64, 64)
    plain_bytes, plain_grads = saved_bytes_and_gradients(plain, images)
    lean_bytes, lean_grads = saved_bytes_and_gradients(checkpointed, images)
    assert plain_grads.keys() == lean_grads.keys() and len(plain_grads) == len(list(plain.parameters()))
    for name, grad in plain_grads.items():
        assert torch.allclose(grad, lean_grads[name], rtol=1e-4, atol=1e-6), name
    assert lean_bytes < share * plain_bytes, (lean_bytes, plain_bytes)


def test_a_backbone_without_checkpointing_is_one_clear_error():
    with pytest.raises(UserError, match="--grad-checkpointing: dla34 has no activation checkpointing"):
        enable_grad_checkpointing(create_model("dla34"), "dla34")


def test_uint8_batches_become_the_normalized_rgb_input_on_the_device():
    """The loader's (N, 1, H, W) uint8 batch, normalized on the device, equals what the float
    path made on the host (gray -> RGB -> albumentations Normalize -> tensor), and the network
    gives the same outputs; it moves a twelfth of the bytes. One channel: the channel-mean statistics."""
    gray = np.random.default_rng(0).integers(0, 256, (40, 36), dtype=np.uint8)
    host = A.Compose([A.Normalize(mean=engine.IMAGENET_MEAN, std=engine.IMAGENET_STD), ToTensorV2()])
    float_batch = host(image=cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB))["image"][None]
    uint8_batch = A.Compose([ToTensorV2()])(image=gray)["image"][None]
    assert uint8_batch.dtype == torch.uint8 and uint8_batch.shape == (1, 1, 40, 36)
    assert float_batch.nbytes == 12 * uint8_batch.nbytes
    on_device = engine.to_device(uint8_batch, CPU, False, 3)
    assert on_device.shape == float_batch.shape and torch.allclose(on_device, float_batch, atol=1e-6)
    net = create_model("resnet18").eval()
    with torch.no_grad():
        assert torch.allclose(net(on_device), net(float_batch), atol=1e-5)
    one = engine.to_device(uint8_batch, CPU, False, 1)
    expected = (gray / 255.0 - np.mean(engine.IMAGENET_MEAN)) / np.mean(engine.IMAGENET_STD)
    assert one.shape == (1, 1, 40, 36) and np.allclose(one[0, 0].numpy(), expected, atol=1e-5)
    assert engine.to_device(float_batch, CPU, False, 3) is float_batch  # float input passes as it is


def augmented_epochs(num_workers, epochs=2):
    images = {str(i): np.random.default_rng(i).integers(0, 256, (24, 24), dtype=np.uint8) for i in range(12)}
    table = pd.DataFrame({"image_id": list(images), "target": [i % 2 for i in range(12)]})
    generator = torch.Generator()
    sampler = EpochSeeded(RandomSampler(range(12), generator=generator))
    workers = dict(persistent_workers=True, prefetch_factor=2) if num_workers else {}
    loader = DataLoader(ImageTable(table, images.__getitem__, train_transform(seed=0)), batch_size=4,
                        sampler=sampler, num_workers=num_workers, **workers)
    seen = []
    for epoch in (1, 2)[:epochs]:
        generator.manual_seed(recipe.epoch_seed(42, epoch))
        sampler.set_seed(recipe.epoch_seed(42, epoch))
        seen.append(torch.cat([images for images, _ in loader]))
    return seen


def test_persistent_workers_augment_each_epoch_as_the_main_process_does():
    """Workers that persist across epochs keep their own copy of the data set; the epoch's seed
    rides with each index (data.EpochSeeded), so they draw what no workers draw, epoch by epoch."""
    alone, with_workers = augmented_epochs(0), augmented_epochs(2)
    assert all(torch.equal(a, b) for a, b in zip(alone, with_workers))
    assert not torch.equal(alone[0], alone[1])


def test_train_py_with_every_lever_on(tmp_path):
    """--accumulate 2 --grad-checkpointing --in-chans 1 --num-workers 2 --amp bf16 on a CPU: the
    schedule counts optimizer steps (the cosine ends at 0 after the last), the settings are
    recorded, and inference rebuilds the one-channel network from them."""
    cwd = make_tiny_dataset(tmp_path, n_train=24, n_dev=4)
    args = ["--dataset", "tiny", "--exp", "levers", "--img-size", "32", "--epochs", "2", "--batch-size", "4",
            "--accumulate", "2", "--grad-checkpointing", "--in-chans", "1", "--num-workers", "2", "--prefetch", "2",
            "--amp", "bf16", "--no-tensorboard", "--heatmaps", "on"]
    run_script("train.py", *args, cwd=cwd)
    run = cwd / "weights/levers/resnet18/fold_0"
    config = json.loads((run / "config.json").read_text())
    assert (config["accumulate"], config["grad_checkpointing"], config["in_chans"], config["precision"]) == (2, True, 1, "bf16")
    assert pd.read_csv(run / "log.csv")["lr"].iloc[-1] < 1e-6  # 3 steps an epoch (6 batches), not 6
    from cxr.inference.ensemble import load_fold_model

    assert load_fold_model(run / "best.pt", CPU).network.conv1.in_channels == 1
    one_error_line(run_script("train.py", *args[:-2], "--accumulate", "0", cwd=cwd, check=False),
                   "--accumulate and --prefetch are counts of batches")
