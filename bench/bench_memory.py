"""Peak memory of a training step against image size, batch size, activation checkpointing and
gradient accumulation, and the FLOPs of one image: the numbers behind docs/scaling.md's GPU plan.

    python bench/bench_memory.py                    # 4 backbones x 512/768/1024 px; ~15 min on 2 CPU cores
    python bench/bench_memory.py --archs resnet50 --sizes 512 768

Each configuration (backbone, size, batch, checkpointing, accumulation) trains two optimizer
steps through the project's own loop (engine.train_one_epoch, fed 1-channel uint8 batches) in a
process of its own, so its peak is its own:
  GPU  torch.cuda.max_memory_allocated over the steps (what the card must hold).
  CPU  a proxy, named as such: the process's peak resident memory (ru_maxrss) minus its resident
       memory once the model, optimizer and batches exist. CPU kernels keep other workspaces than
       cuDNN and run fp32 here, so read its ratios (checkpointing vs not, batch 2 vs 1), not its bytes.
Beside it, device-independent: the bytes autograd saves for the backward pass per image (the
activations a GPU holds between forward and backward) in fp32 and under bf16 autocast, and the
forward FLOPs per image (torch.utils.flop_counter). Time: the second step's seconds; ratios
against the plain step of the same backbone, size and images measured in the same run."""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

ARCHS = ("resnet50", "resnet101", "densenet121", "efficientnet_b3")
SIZES = (512, 768, 1024)
# (name, batch size, accumulation, checkpointing): each effective batch of 2 three ways, and batch 1 for the slope
SETUPS = (("batch 1", 1, 1, False), ("batch 2", 2, 1, False), ("batch 2 + checkpointing", 2, 1, True),
          ("batch 1 x accumulate 2", 1, 2, False))


def resident_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_resident_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def one(arch, size, batch, accumulate, checkpointing, amp):
    """Two optimizer steps of one configuration, in this process: {peak_mb, step_s, device}."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from cxr.training import engine
    from cxr.training import recipe
    from cxr.models.backbones import create_model, enable_grad_checkpointing

    device = engine.resolve_device("auto")
    precision = engine.resolve_precision(amp, device)
    torch.manual_seed(0)
    network = create_model(arch)
    if checkpointing:
        enable_grad_checkpointing(network, arch)
    model = engine.prepare_model(network, device)
    images = torch.randint(0, 256, (batch * accumulate, 1, size, size), dtype=torch.uint8)
    loader = DataLoader(TensorDataset(images, torch.ones(len(images), 1)), batch_size=batch,
                        pin_memory=device.type == "cuda")
    optimizer = recipe.build_optimizer(network, 1e-4, 1e-2)
    scheduler = recipe.build_scheduler(optimizer, "constant", 2, 0, 1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=precision.scale_loss)
    baseline = resident_bytes()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device)
    seconds = []
    for _ in range(2):
        started = time.perf_counter()
        engine.train_one_epoch(model, loader, optimizer, scheduler, scaler, device, precision, accumulate=accumulate)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - started)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else peak_resident_bytes()
    return {"peak_mb": (peak - baseline) / 2**20, "step_s": seconds[1], "device": device.type, "precision": precision.name}


def per_image(arch, size):
    """{forward GFLOPs, saved activation MB in fp32 and in bf16, parameters in millions} of one image."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from cxr.models.backbones import create_model

    network = create_model(arch).train()
    images = torch.randn(1, 3, size, size)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        network(images)
    row = {"gflops": counter.get_total_flops() / 1e9, "params_m": sum(p.numel() for p in network.parameters()) / 1e6}
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        row[f"saved_mb_{name}"] = saved_bytes(network, images, dtype) / 2**20
    return row


def saved_bytes(network, images, dtype):
    """Bytes of the distinct tensors autograd keeps for the backward pass of one forward."""
    import torch

    saved = {}

    def keep(tensor):
        saved[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            network(images)
    return sum(saved.values())


def run_child(*args):
    """The JSON a child process (this script with --one or --per-image) prints last."""
    result = subprocess.run([sys.executable, __file__, *map(str, args)], capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": tail[:120]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", default=list(ARCHS))
    parser.add_argument("--sizes", nargs="+", type=int, default=list(SIZES))
    parser.add_argument("--amp", default="off", help="training precision (engine.resolve_precision); off = fp32")
    parser.add_argument("--out", default="reports/bench_memory.csv")
    parser.add_argument("--one", nargs=5, metavar=("ARCH", "SIZE", "BATCH", "ACCUMULATE", "CHECKPOINTING"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--per-image", nargs=2, metavar=("ARCH", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        arch, size, batch, accumulate, checkpointing = args.one
        print(json.dumps(one(arch, int(size), int(batch), int(accumulate), checkpointing == "1", args.amp)))
        return
    if args.per_image:
        print(json.dumps(per_image(args.per_image[0], int(args.per_image[1]))))
        return

    import pandas as pd

    rows = []
    for arch in args.archs:
        for size in args.sizes:
            image = run_child("--per-image", arch, size)
            for name, batch, accumulate, checkpointing in SETUPS:
                step = run_child("--one", arch, size, batch, accumulate, int(checkpointing), "--amp", args.amp)
                rows.append({"arch": arch, "size": size, "setup": name, **image, **step})
                print(json.dumps(rows[-1]), flush=True)
    table = pd.DataFrame(rows)
    plain = table[table["setup"] == "batch 2"].set_index(["arch", "size"])
    for column in ("peak_mb", "step_s"):
        if column in table:
            table[f"{column}_vs_batch2"] = [row[column] / plain.loc[(row["arch"], row["size"]), column]
                                            for _, row in table.iterrows()]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False, float_format="%.4g")
    shown = [c for c in ("arch", "size", "setup", "peak_mb", "peak_mb_vs_batch2", "step_s", "step_s_vs_batch2",
                         "gflops", "saved_mb_fp32", "saved_mb_bf16", "error") if c in table]
    device = table["device"].dropna().iloc[0] if "device" in table and table["device"].notna().any() else "?"
    print(f"\npeak memory of a training step ({'torch.cuda.max_memory_allocated' if device == 'cuda' else 'CPU proxy: peak resident memory'} "
          f"above the built model, MB), seconds of the second step, forward GFLOPs and saved activations per image:")
    print(table[shown].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
