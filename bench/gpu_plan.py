"""The GPU plan of docs/scaling.md, computed from bench/bench_memory.py's measurements: for each
GPU size, backbone and image size, the batch that fits, the accumulation to an effective batch,
whether checkpointing is needed, and the expected epoch time, with every term of the arithmetic
printed so it can be checked (and the constants replaced by what your card measures).

    python bench/bench_memory.py && python bench/gpu_plan.py          # reports/bench_memory.csv
    python bench/gpu_plan.py --fraction 0.3 --train-images 6400 --val-images 1600

Memory (a model, stated): training state = parameters x 20 bytes (fp32 weights, gradients, two
AdamW moments, the EMA copy); activations = the bytes autograd saves per image under bf16
autocast (measured, device-independent) x 1.25 (allocator slack, cuDNN workspaces); usable =
the card less 2 GB (CUDA context, fragmentation). Checkpointing keeps the share of the
activations the CPU proxy measured (batch 2 with vs without, above batch 1's state).
Time: (training images x 3 (forward + backward; 4 with checkpointing's second forward) +
validation images x TTA views) x forward FLOPs per image (measured), divided by `fraction` of the
card's published dense bf16 tensor throughput."""
import argparse
import math

import pandas as pd

# Published dense (no sparsity) bf16/fp16 tensor throughput with fp32 accumulation, TFLOP/s
# (NVIDIA's Ampere/Ada/A100 data sheets and whitepapers).
GPUS = {"12 GB (RTX 3060 12 GB)": (12, 25.6), "24 GB (RTX 4090)": (24, 165.2), "80 GB (A100 80 GB)": (80, 312.0)}
STATE_BYTES_PER_PARAMETER = 20
ACTIVATION_SLACK = 1.25
RESERVED_GB = 2.0


def checkpointing_share(rows):
    """Share of the per-image activation memory checkpointing keeps, from the CPU proxy's peaks."""
    peak = rows.set_index("setup")["peak_mb"]
    per_image = peak["batch 2"] - peak["batch 1"]
    state = peak["batch 1"] - per_image
    return min(max((peak["batch 2 + checkpointing"] - state) / 2 / per_image, 0.05), 1.0)


def plan(row, share, memory_gb, tflops, args):
    """One recommendation: batch, accumulation, checkpointing, memory and epoch time, with its terms."""
    state_gb = row["params_m"] * 1e6 * STATE_BYTES_PER_PARAMETER / 1e9
    image_gb = row["saved_mb_bf16"] * 2**20 * ACTIVATION_SLACK / 1e9
    usable = memory_gb - RESERVED_GB - state_gb
    checkpointing = usable / image_gb < args.min_batch
    per_image = image_gb * (share if checkpointing else 1.0)
    fits = int(usable // per_image)
    accumulate = math.ceil(args.effective_batch / fits) if fits >= 1 else 0
    batch = math.ceil(args.effective_batch / accumulate) if fits >= 1 else 0  # the smallest batch for that many steps
    passes = 4 if checkpointing else 3
    tflop = (args.train_images * passes + args.val_images * args.tta_views) * row["gflops"] / 1e3
    seconds = tflop / (args.fraction * tflops)
    return {"batch": batch, "accumulate": accumulate, "checkpointing": checkpointing,
            "memory_gb": state_gb + batch * per_image + RESERVED_GB if batch >= 1 else float("nan"),
            "epoch_tflop": tflop, "epoch_min": seconds / 60 if batch >= 1 else float("nan"),
            "arithmetic": f"({args.train_images}x{passes} + {args.val_images}x{args.tta_views}) x {row['gflops']:.0f} GFLOP "
                          f"= {tflop:.0f} TFLOP / ({args.fraction:g} x {tflops:g} TFLOP/s) = {seconds:.0f} s"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", default="reports/bench_memory.csv")
    parser.add_argument("--fraction", type=float, default=0.2, help="share of the published throughput reached")
    parser.add_argument("--train-images", type=int, default=6400, help="Object-CXR: 8,000 training images, 5 folds")
    parser.add_argument("--val-images", type=int, default=1600)
    parser.add_argument("--tta-views", type=int, default=2, help="validation passes (hflip TTA: 2)")
    parser.add_argument("--effective-batch", type=int, default=32)
    parser.add_argument("--min-batch", type=int, default=8, help="below this many images, turn on checkpointing")
    args = parser.parse_args(argv)
    table = pd.read_csv(args.csv)
    if "error" in table:
        table = table[table["error"].isna()]
    rows = []
    for (arch, size), group in table.groupby(["arch", "size"], sort=False):
        share = checkpointing_share(group)
        first = group.iloc[0]
        for gpu, (memory_gb, tflops) in GPUS.items():
            rows.append({"gpu": gpu, "arch": arch, "size": size, "saved_mb_per_image": first["saved_mb_bf16"],
                         "ckpt_keeps": share, **plan(first, share, memory_gb, tflops, args)})
    out = pd.DataFrame(rows)
    pd.set_option("display.width", 250)
    print(out.drop(columns="arithmetic").to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print("\nepoch time arithmetic:")
    for _, row in out.iterrows():
        print(f"  {row['gpu']:<24} {row['arch']:<16} {row['size']:>5} px: {row['arithmetic']}")


if __name__ == "__main__":
    main()
