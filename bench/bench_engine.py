"""Training and inference speed on this machine; every number a ratio against a plain baseline
measured in the same run (runs alternate and the median is kept: the machine is noisy).

    python bench/bench_engine.py                   # about 10 minutes on 2 CPU cores
    python bench/bench_engine.py --only overhead flops

Sections (README "Speed"):
  overhead   the project's training loop (engine.train_one_epoch: the cache memmap, the
             augmentation, the per-step scheduler, loss bookkeeping, progress bar) vs a minimal
             hand-written PyTorch loop over the same images as ready tensors; same model,
             batch size, optimizer. Target: >= 0.95.
  flops      achieved training FLOP/s (torch.utils.flop_counter.FlopCounterMode on one step)
             / the FLOP/s of a large dense fp32 matmul, for resnet18 and regnety_002 at 128 px.
  levers     channels_last, bf16 autocast, torch.compile: each on vs off in the minimal loop.
  loader     DataLoader workers, persistent workers, prefetch: the project's loop per setting,
             with its data-wait share.
  datapath   the loader alone: float32 RGB batches normalized by the loader vs 1-channel uint8
             normalized by engine.to_device; bytes a batch and images/s, workers 0 and 2.
  stem       the project's loop with a 3-channel stem (gray repeated on the device) vs a
             1-channel stem (--in-chans 1).
  inference  src/cxr/inference/ensemble.py (what submit.py runs) on full-size images, TTA none vs hflip.
Images are demo radiographs made by src/make_demo.py; models are initialized at random (speed
does not depend on the weights)."""
import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from albumentations.pytorch import ToTensorV2  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from cxr.training import engine  # noqa: E402
import make_demo  # noqa: E402
from cxr.training import recipe  # noqa: E402
from cxr.data.cache import ImageSpec, build_cache  # noqa: E402
from cxr.data.dataset import ImageTable, seeded_key  # noqa: E402
from cxr.models.backbones import create_model  # noqa: E402
from cxr.data.transforms import eval_transform, train_transform  # noqa: E402

CPU = torch.device("cpu")
FP32 = engine.FP32


def demo_images(folder, n, min_size, max_size):
    make_demo.main(["--out", str(folder), "--n-train", str(n), "--n-dev", "0", "--min-size", str(min_size),
                    "--max-size", str(max_size)])
    return [f"train/{p.name}" for p in sorted((Path(folder) / "train").iterdir())]


def ready_tensors(cache, ids):
    """The images as the network sees them without augmentation: (n, 3, s, s) float tensors."""
    table = ImageTable(pd.DataFrame({"image_id": ids, "target": np.arange(len(ids)) % 2}), cache.__getitem__,
                       eval_transform())
    images, targets = zip(*(table[i] for i in range(len(table))))
    return engine.to_device(torch.stack(images), CPU, False), torch.as_tensor(np.stack(targets))


def minimal_epoch(model, loader, optimizer, channels_last=False, bf16=False):
    """The plainest training loop: forward, loss, backward, step."""
    model.train()
    for images, targets in loader:
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            logits = model(images)
        loss = F.binary_cross_entropy_with_logits(logits.float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def images_per_second(run, n_images, repeats):
    """Median images/s of `repeats` timed calls of run() (after one untimed warm-up call)."""
    run()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        rates.append(n_images / (time.perf_counter() - start))
    return statistics.median(rates)


def alternate(runs, n_images, repeats):
    """{name: median images/s}, the runs interleaved (A B C A B C ...) so drift hits all alike."""
    for run in runs.values():
        run()  # warm-up
    rates = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            rates[name].append(n_images / (time.perf_counter() - start))
    return {name: statistics.median(r) for name, r in rates.items()}


def fresh_model(arch, seed=0, **kwargs):
    torch.manual_seed(seed)
    return create_model(arch, **kwargs)


def project_epoch_runner(model, loader):
    optimizer = recipe.build_optimizer(model, 1e-3, 1e-2)
    steps = len(loader)
    scheduler = recipe.build_scheduler(optimizer, "cosine", 1000 * steps, steps, 1e-3)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    shares = []

    def run():
        shares.append(engine.train_one_epoch(model, loader, optimizer, scheduler, scaler, CPU, FP32,
                                             channels_last=True).data_share)
    return run, shares


def project_loader(cache, ids, batch, **loader_args):
    table = pd.DataFrame({"image_id": ids, "target": np.arange(len(ids)) % 2})
    return DataLoader(ImageTable(table, cache.__getitem__, train_transform(seed=0)), batch_size=batch, shuffle=True,
                      **loader_args)


def section_overhead(cache, ids, args, results):
    images, targets = ready_tensors(cache, ids)
    minimal_model, project_model = fresh_model(args.arch), fresh_model(args.arch)
    minimal_loader = DataLoader(TensorDataset(images, targets), batch_size=args.batch, shuffle=True)
    optimizer = torch.optim.AdamW(minimal_model.parameters(), lr=1e-3)
    project_run, shares = project_epoch_runner(project_model, project_loader(cache, ids, args.batch))
    rates = alternate({"minimal": lambda: minimal_epoch(minimal_model, minimal_loader, optimizer),
                       "project": project_run}, len(ids), args.repeats)
    ratio = rates["project"] / rates["minimal"]
    print(f"[overhead] {args.arch} {args.size}px batch {args.batch}: minimal loop {rates['minimal']:.1f} img/s, "
          f"project loop {rates['project']:.1f} img/s (data wait {100 * statistics.median(shares):.0f}% of it): "
          f"ratio {ratio:.3f} (target >= 0.95)")
    results["overhead"] = {**rates, "ratio": ratio, "data_share": statistics.median(shares)}


def matmul_flops(n=2048, repeats=5):
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def section_flops(cache, ids, args, results):
    from torch.utils.flop_counter import FlopCounterMode

    peak = matmul_flops()
    images, targets = ready_tensors(cache, ids)
    loader = DataLoader(TensorDataset(images, targets), batch_size=args.batch, shuffle=True)
    results["flops"] = {"matmul_gflops": peak / 1e9}
    for arch in ("resnet18", "regnety_002"):
        model = fresh_model(arch)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        with FlopCounterMode(display=False) as counter:
            minimal_epoch(model, [(images[:args.batch], targets[:args.batch])], optimizer)
        per_image = counter.get_total_flops() / args.batch
        rate = images_per_second(lambda: minimal_epoch(model, loader, optimizer), len(ids), args.repeats)
        achieved = per_image * rate
        print(f"[flops] {arch} {args.size}px: {per_image / 1e9:.2f} GFLOP per training image, {rate:.1f} img/s = "
              f"{achieved / 1e9:.1f} GFLOP/s; dense fp32 matmul {peak / 1e9:.1f} GFLOP/s: utilization "
              f"{achieved / peak:.2f}")
        results["flops"][arch] = {"gflop_per_image": per_image / 1e9, "images_per_s": rate,
                                  "achieved_gflops": achieved / 1e9, "utilization": achieved / peak}


def section_levers(cache, ids, args, results):
    images, targets = ready_tensors(cache, ids)
    loader = DataLoader(TensorDataset(images, targets), batch_size=args.batch, shuffle=True)
    plain = fresh_model(args.arch)
    cl = fresh_model(args.arch).to(memory_format=torch.channels_last)
    bf = fresh_model(args.arch)
    runs = {"fp32": (plain, {}), "channels_last": (cl, {"channels_last": True}), "bf16 autocast": (bf, {"bf16": True})}
    if args.compile:
        compiled = torch.compile(fresh_model(args.arch))
        start = time.perf_counter()
        minimal_epoch(compiled, [(images[:args.batch], targets[:args.batch])],
                      torch.optim.AdamW(compiled.parameters(), lr=1e-3))
        results["compile_seconds"] = time.perf_counter() - start
        runs["torch.compile"] = (compiled, {})
    optimizers = {name: torch.optim.AdamW(model.parameters(), lr=1e-3) for name, (model, _) in runs.items()}
    rates = alternate({name: (lambda n=name, m=model, kw=kw: minimal_epoch(m, loader, optimizers[n], **kw))
                       for name, (model, kw) in runs.items()}, len(ids), args.repeats)
    for name, rate in rates.items():
        print(f"[levers] {args.arch} {args.size}px {name}: {rate:.1f} img/s, ratio to fp32 {rate / rates['fp32']:.3f}"
              + (f" (compiling took {results['compile_seconds']:.0f} s)" if name == "torch.compile" else ""))
    results["levers"] = {name: {"images_per_s": rate, "ratio": rate / rates["fp32"]} for name, rate in rates.items()}


def section_loader(cache, ids, args, results):
    settings = {"workers 0 (default)": {}, "workers 1": {"num_workers": 1}, "workers 2": {"num_workers": 2},
                "workers 2, persistent": {"num_workers": 2, "persistent_workers": True},
                "workers 2, persistent, prefetch 4": {"num_workers": 2, "persistent_workers": True, "prefetch_factor": 4}}
    runs, shares = {}, {}
    for name, loader_args in settings.items():
        runs[name], shares[name] = project_epoch_runner(fresh_model(args.arch), project_loader(cache, ids, args.batch,
                                                                                              **loader_args))
    rates = alternate(runs, len(ids), args.repeats)
    base = rates["workers 0 (default)"]
    results["loader"] = {}
    for name, rate in rates.items():
        share = statistics.median(shares[name])
        print(f"[loader] {name}: {rate:.1f} img/s (data wait {100 * share:.0f}%), ratio to workers 0 {rate / base:.3f}")
        results["loader"][name] = {"images_per_s": rate, "data_share": share, "ratio": rate / base}


class FloatRGBTable(ImageTable):
    """The data path before the uint8 one: each image repeated to RGB and normalized to float32 by
    the loader (12 bytes a pixel cross to the device instead of 1)."""

    def __getitem__(self, key):
        index, _ = seeded_key(key, self.transform)
        rgb = cv2.cvtColor(np.array(self.load(self.image_ids[index])), cv2.COLOR_GRAY2RGB)
        return self.transform(image=rgb)["image"], self.targets[index]


def section_datapath(cache, ids, args, results):
    """The loader alone (no model): the same augmentation, batches as float32 RGB normalized by the
    loader vs 1-channel uint8 normalized by engine.to_device (timed with it: on a GPU it runs there)."""
    import albumentations as A

    table = pd.DataFrame({"image_id": ids, "target": np.arange(len(ids)) % 2})
    augment = train_transform(seed=0)
    float_transform = A.Compose([*augment.transforms[:-1], A.Normalize(mean=engine.IMAGENET_MEAN,
                                                                       std=engine.IMAGENET_STD), ToTensorV2()], seed=0)
    loaders, runs = {}, {}
    for workers in (0, 2):
        extra = dict(num_workers=workers, persistent_workers=True, prefetch_factor=4) if workers else {}
        for name, dataset in (("float32 RGB", FloatRGBTable(table, cache.__getitem__, float_transform)),
                              ("uint8 gray", ImageTable(table, cache.__getitem__, train_transform(seed=0)))):
            key = f"{name}, workers {workers}"
            loaders[key] = DataLoader(dataset, batch_size=args.batch, shuffle=True, **extra)
            runs[key] = lambda loader=loaders[key]: [engine.to_device(images, CPU, False) for images, _ in loader]
    rates = alternate(runs, len(ids), args.repeats)
    results["datapath"] = {}
    for key, rate in rates.items():
        batch_bytes = next(iter(loaders[key]))[0].nbytes
        base = rates[key.replace("uint8 gray", "float32 RGB")]
        print(f"[datapath] {key}: {batch_bytes / 2**20:.2f} MB a batch of {args.batch}, {rate:.0f} img/s, "
              f"ratio to float32 RGB {rate / base:.3f}")
        results["datapath"][key] = {"batch_mb": batch_bytes / 2**20, "images_per_s": rate, "ratio": rate / base}


def section_stem(cache, ids, args, results):
    """The project's training loop on uint8 batches: a 3-channel stem (the gray image repeated on
    the device) vs a 1-channel stem (timm in_chans=1), same backbone otherwise."""
    runs, shares = {}, {}
    for channels in (3, 1):
        model = fresh_model(args.arch, in_chans=channels)
        model.input_channels = channels
        runs[f"in_chans {channels}"], shares[channels] = project_epoch_runner(model, project_loader(cache, ids, args.batch))
    rates = alternate(runs, len(ids), args.repeats)
    ratio = rates["in_chans 1"] / rates["in_chans 3"]
    print(f"[stem] {args.arch} {args.size}px: in_chans 3 {rates['in_chans 3']:.1f} img/s, in_chans 1 "
          f"{rates['in_chans 1']:.1f} img/s, ratio {ratio:.3f}")
    results["stem"] = {**rates, "ratio": ratio}


def section_inference(folder, args, results):
    """A blend spec with two random-init resnet18 fold models at --size, run on full-size images."""
    from cxr.artifacts import write_json
    from cxr.inference.ensemble import load_ensemble, run

    paths = [str(folder / "full" / i) for i in demo_images(folder / "full", args.full_images, 1800, 2400)]
    runs = []
    for k in range(2):
        out = folder / "weights" / f"fold_{k}"
        config = {"arch": "resnet18", "img_size": args.size, "resize": "squash", "clahe": False, "blur": 0.0,
                  "interpolation": "linear", "tta": "none"}
        engine.save_checkpoint(out / "best.pt", fresh_model("resnet18", seed=k), config, 1, 0.5)
        write_json(out / "config.json", config)
        runs.append(str(out))
    write_json(folder / "blend.json", {"method": "mean", "models": ["resnet18"], "runs": {"resnet18": runs},
                                       "params": {"weights": [1.0]}})
    ensemble = load_ensemble(folder / "blend.json", CPU)
    rates = {}
    for tta in ("none", "hflip", "none", "hflip"):
        for fold in ensemble.models["resnet18"]:
            fold.tta = tta
        start = time.perf_counter()
        run(ensemble, paths, CPU, batch_size=8, localize=True)
        rates.setdefault(tta, []).append(len(paths) / (time.perf_counter() - start))
    none, hflip = statistics.median(rates["none"]), statistics.median(rates["hflip"])
    print(f"[inference] {len(paths)} images of 1800-2400 px, 2 fold models at {args.size}px, with Grad-CAM points: "
          f"TTA none {none:.2f} img/s, hflip {hflip:.2f} img/s, ratio {hflip / none:.3f}")
    results["inference"] = {"none": none, "hflip": hflip, "ratio": hflip / none}


SECTIONS = ("overhead", "flops", "levers", "loader", "datapath", "stem", "inference")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--images", type=int, default=192, help="images per timed epoch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--full-images", type=int, default=16, help="full-size images for the inference section")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--json", default="", help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    results, started = {}, time.time()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ids = demo_images(folder / "demo", args.images, args.size, int(args.size * 1.5))
        cache = build_cache(ids, folder / "demo", folder / "cache", ImageSpec(args.size), progress=False)
        sections = {"overhead": section_overhead, "flops": section_flops, "levers": section_levers,
                    "loader": section_loader, "datapath": section_datapath, "stem": section_stem}
        for name in args.only:
            if name == "inference":
                section_inference(folder, args, results)
            else:
                sections[name](cache, ids, args, results)
    print(f"total {time.time() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
