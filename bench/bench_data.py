"""Data time per epoch: the decode-once cache vs decoding and resizing every image every epoch.

    python bench/bench_data.py [--size 512] [--repeat 10] [--semireal-images 800]

Baseline: the plain torchvision pipeline (PIL open -> RGB -> Resize -> ToTensor -> Normalize)
on every item of every epoch. Cache: src/cxr/data/cache.py's memmap read + the eval transform. Both
iterate a DataLoader (batch 32, no workers) over the same items; the one-time cache build is
reported apart. Data: the six full-size radiographs of ../shared/data/objectcxr_sample
(repeated to make an epoch) and the semi-real Object-CXR training images."""
import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402
from torchvision import transforms as T  # noqa: E402

from cxr.data.cache import ImageSpec, build_cache  # noqa: E402
from cxr.data.dataset import ImageTable  # noqa: E402
from cxr.data.layouts import read_dataset, read_image_list  # noqa: E402
from cxr.training import engine  # noqa: E402
from cxr.training.engine import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from cxr.data.transforms import eval_transform  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


class PlainTorchvision(Dataset):
    def __init__(self, paths, size):
        self.paths = paths
        self.transform = T.Compose([T.Resize((size, size)), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        with Image.open(self.paths[i]) as im:
            return self.transform(im.convert("RGB")), 0


def epoch_seconds(dataset):
    """Seconds to draw every batch as the network's float input (the cached path's uint8 batches
    normalized by engine.to_device, as training does; float batches pass as they are)."""
    start = time.perf_counter()
    for images, _ in DataLoader(dataset, batch_size=32, num_workers=0):
        engine.to_device(images, torch.device("cpu"), False)
    return time.perf_counter() - start


def compare(name, root, ids, size, cache_dir):
    table = pd.DataFrame({"image_id": ids, "target": 0})
    start = time.perf_counter()
    built = build_cache(sorted(set(ids)), root, cache_dir / name, ImageSpec(size), progress=False)
    build = time.perf_counter() - start
    plain = epoch_seconds(PlainTorchvision([root / i for i in ids], size))
    cached = epoch_seconds(ImageTable(table, built.__getitem__, eval_transform()))
    print(f"{name:<22} {len(ids):>6} {size:>5} {plain:>10.2f} {cached:>10.2f} {plain / cached:>7.1f}x {build:>10.2f}")
    return plain / cached


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=10, help="copies of the 6 full-size images in an epoch")
    parser.add_argument("--semireal-images", type=int, default=800)
    args = parser.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"{SHARED} is absent: this benchmark needs the shared data sets")
    torch.set_num_threads(2)
    sample = SHARED / "objectcxr_sample"
    sample_ids = list(read_image_list(sample / "image_path.csv")["image_id"]) * args.repeat
    semireal = SHARED / "objectcxr_semireal"
    semireal_ids = list(read_dataset(semireal)[0]["image_id"][: args.semireal_images])
    print(f"{'data':<22} {'images':>6} {'size':>5} {'plain s':>10} {'cache s':>10} {'ratio':>8} {'build s':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        compare("objectcxr_sample x" + str(args.repeat), sample, sample_ids, args.size, Path(tmp))
        compare("objectcxr_semireal", semireal, semireal_ids, min(args.size, 256), Path(tmp))


if __name__ == "__main__":
    main()
