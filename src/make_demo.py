"""Generate the demo data set: synthetic chest radiographs in the exact Object-CXR layout.

    python src/make_demo.py                      # -> input/demo/{train,dev}/, train.csv, dev.csv
    python src/make_demo.py --n-train 40 --n-dev 10 --out /tmp/tiny
    python src/make_demo.py --multi-label --out input/demo_multilabel   # Kaggle layout, 3 labels

Images are grayscale JPEGs of varied sizes (not square, not all alike): a body, two lungs,
spine, ribs and clavicles, noise. About half hold one to three radio-opaque foreign objects
(rectangles, ellipses, polygons), annotated in original-image pixels. Same seed, same bytes.

--multi-label writes the same images as a Kaggle-style multi-label set instead: train.csv
with one 0/1 column per object kind (rectangle, ellipse, polygon: does the image hold one),
test.csv with the test ids only, and sample_submission.csv (id + one column per label).
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cxr.config import Parser  # noqa: E402
from cxr.data.demo import KIND_LABELS, write_images, write_multilabel, write_objectcxr  # noqa: E402

# pandas where it is used: --help does not wait for it.


def main(argv=None):
    parser = Parser(description=__doc__)
    parser.add_argument("--out", metavar="DIR", default="input/demo", help="the data set folder to write")
    parser.add_argument("--n-train", type=int, default=300, help="training images")
    parser.add_argument("--n-dev", type=int, default=100, help="dev (test side) images")
    parser.add_argument("--positive-rate", type=float, default=0.5, help="share of images with objects")
    parser.add_argument("--min-size", type=int, default=256, help="smallest image side in pixels")
    parser.add_argument("--max-size", type=int, default=384, help="largest image side in pixels")
    parser.add_argument("--seed", type=int, default=0, help="random seed: same seed, same bytes")
    parser.add_argument("--multi-label", action="store_true",
                        help="a Kaggle-style multi-label set (train/, test/; one label per object kind) instead")
    args = parser.parse_args(argv)
    out = Path(args.out)
    rng = np.random.default_rng(args.seed)
    lo, hi = args.min_size, args.max_size
    size_range = ((lo, (lo + hi) // 2 + (hi - lo) // 4), (lo + (hi - lo) // 4, hi))  # mostly taller than wide
    test_side = "test" if args.multi_label else "dev"
    splits = {"train": write_images(out / "train", args.n_train, 1, rng, size_range, args.positive_rate),
              test_side: write_images(out / test_side, args.n_dev, args.n_train + 1, rng, size_range, args.positive_rate)}
    (write_multilabel if args.multi_label else write_objectcxr)(out, splits)
    print(f"wrote {args.n_train} train and {args.n_dev} {test_side} images to {out}/"
          + (f" (labels: {', '.join(KIND_LABELS)})" if args.multi_label else ""))


if __name__ == "__main__":
    main()
