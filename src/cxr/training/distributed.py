"""Training one fold on several processes with PyTorch's DistributedDataParallel, launched by
torchrun (`torchrun --nproc_per_node N src/train.py --arch ... --fold K`): nccl on GPUs (one
per process), gloo on CPUs. A plain `python src/train.py` is a world of one and none of this
changes anything.

Each process trains on its share of the training images (DistributedSampler, reshuffled
every epoch from the seed), gradients are averaged by DDP, so every process holds the same
weights. Validation and test images are split into disjoint shards (every image exactly
once, no padding), predicted in parallel and gathered in table order on every process, so
each computes the same AUC and takes the same decisions (best checkpoint, early stopping).
Only rank 0 writes files; the others wait at a barrier where they must read them."""
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as torch_dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def distributed(self):
        return self.size > 1


def init_world(device_name="auto"):
    """(World, device name for this process). Reads torchrun's environment (RANK, WORLD_SIZE,
    LOCAL_RANK); without it, a world of one and `device_name` unchanged."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(), device_name
    world = World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))
    use_cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(world.local_rank)
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return world, (f"cuda:{world.local_rank}" if use_cuda else "cpu")


def shutdown(world):
    if world.distributed and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()


def barrier(world):
    if world.distributed:
        torch_dist.barrier()


def shard(n, world):
    """The row indices process `world.rank` predicts: every `size`-th row, so the shards are
    disjoint, cover all n rows and differ in length by at most one."""
    return np.arange(world.rank, n, world.size)


def gather_rows(values, indices, n, world):
    """Every process's `values` (rows of its shard `indices`) gathered into one (n, ...) array
    in table order, on every process."""
    if not world.distributed:
        return values
    parts = [None] * world.size
    torch_dist.all_gather_object(parts, (np.asarray(indices), np.asarray(values)))
    out = np.zeros((n, *np.asarray(values).shape[1:]), dtype=np.asarray(values).dtype)
    for part_indices, part_values in parts:
        out[part_indices] = part_values
    return out


def gather_mean(value, weight, world):
    """The `weight`-weighted mean of a number over the processes (a loss over shards)."""
    if not world.distributed:
        return value
    parts = [None] * world.size
    torch_dist.all_gather_object(parts, (float(value) * weight, weight))
    total = sum(w for _, w in parts)
    return sum(v for v, _ in parts) / total if total else float("nan")


def sync_buffers(modules, world):
    """Copy rank 0's buffers (BatchNorm running statistics) to every process. DDP averages the
    gradients, so the weights agree, but each process's last forward pass updated its own
    statistics: without this, the shards would be predicted by slightly different models."""
    if not world.distributed:
        return
    for module in modules:
        for buffer in module.buffers():
            torch_dist.broadcast(buffer.data, src=0)


def wrap(model, world, device, parameters_change=False):
    """DistributedDataParallel around the model in a world of several processes.
    `parameters_change`: some parameters stop or start getting gradients during training
    (--freeze-epochs), so DDP looks for the unused ones at each step (a little slower)."""
    if not world.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                   find_unused_parameters=parameters_change)
