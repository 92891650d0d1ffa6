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

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cxr.artifacts import atomic_path  # noqa: E402
from cxr.config import Parser  # noqa: E402

# pandas (and data.py, which imports it) where they are used: --help does not wait for them.


def draw_chest(rng, width, height):
    """A chest-like radiograph (float32 in [0, 1], bright = dense)."""
    image = np.full((height, width), 0.06, np.float32)
    cx, cy = width / 2 + rng.uniform(-0.03, 0.03) * width, height * rng.uniform(0.52, 0.58)
    body = (int(width * rng.uniform(0.40, 0.47)), int(height * rng.uniform(0.42, 0.50)))
    cv2.ellipse(image, (int(cx), int(cy)), body, 0, 0, 360, 0.55, -1)
    for side in (-1, 1):  # lungs: darker, air-filled
        lung_c = (int(cx + side * width * rng.uniform(0.17, 0.21)), int(cy - height * rng.uniform(0.02, 0.07)))
        lung_axes = (int(width * rng.uniform(0.13, 0.17)), int(height * rng.uniform(0.28, 0.34)))
        cv2.ellipse(image, lung_c, lung_axes, side * rng.uniform(3, 9), 0, 360, 0.22, -1)
    spine_w = max(3, int(width * 0.05))
    cv2.rectangle(image, (int(cx) - spine_w, 0), (int(cx) + spine_w, height), 0.70, -1)
    for k in range(9):  # ribs: bright arcs on each side
        y = int(cy - height * 0.33 + k * height * 0.075)
        for side in (-1, 1):
            center = (int(cx), y)
            axes = (int(width * 0.36), int(height * 0.09))
            start, end = (180, 300) if side < 0 else (240, 360)
            cv2.ellipse(image, center, axes, 0, start, end, 0.42, max(2, height // 90))
    for side in (-1, 1):  # clavicles
        p1 = (int(cx + side * width * 0.04), int(cy - height * 0.36))
        p2 = (int(cx + side * width * 0.33), int(cy - height * 0.42))
        cv2.line(image, p1, p2, 0.65, max(3, height // 60))
    heart = (int(cx + width * 0.06), int(cy + height * 0.10))
    cv2.ellipse(image, heart, (int(width * 0.12), int(height * 0.13)), 20, 0, 360, 0.50, -1)
    image = cv2.GaussianBlur(image, (0, 0), sigmaX=max(1.5, width / 120))
    image += rng.normal(0, 0.025, image.shape).astype(np.float32)
    return image


def random_object(rng, width, height):
    """A foreign object inside the lung fields: (Shape in integer pixels, mask-drawing args)."""
    from cxr.data.annotations import Shape

    kind = int(rng.integers(0, 3))
    size = rng.uniform(0.04, 0.09) * min(width, height)
    x = rng.uniform(0.22, 0.78) * width
    y = rng.uniform(0.28, 0.75) * height
    if kind in (0, 1):
        w, h = size * rng.uniform(0.6, 1.4), size * rng.uniform(0.6, 1.4)
        box = (int(x - w / 2), int(y - h / 2), int(x + w / 2), int(y + h / 2))
        return Shape(kind, box)
    n = int(rng.integers(5, 9))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = size * rng.uniform(0.35, 0.7, n)
    pts = np.stack([x + radii * np.cos(angles), y + radii * np.sin(angles)], 1).round().astype(int)
    return Shape(2, tuple(int(v) for v in pts.ravel()))


def draw_object(image, shape, intensity):
    x = shape.coords
    if shape.kind == 0:
        cv2.rectangle(image, (x[0], x[1]), (x[2], x[3]), intensity, -1)
    elif shape.kind == 1:
        center = ((x[0] + x[2]) // 2, (x[1] + x[3]) // 2)
        cv2.ellipse(image, center, ((x[2] - x[0]) // 2, (x[3] - x[1]) // 2), 0, 0, 360, intensity, -1)
    else:
        cv2.fillPoly(image, [shape.points.astype(np.int32)], intensity)


def make_image(rng, positive, size_range):
    (w_lo, w_hi), (h_lo, h_hi) = size_range
    width, height = int(rng.integers(w_lo, w_hi + 1)), int(rng.integers(h_lo, h_hi + 1))
    image = draw_chest(rng, width, height)
    shapes = [random_object(rng, width, height) for _ in range(int(rng.integers(1, 4)))] if positive else []
    for shape in shapes:
        draw_object(image, shape, float(rng.uniform(0.6, 0.9)))  # as dense as bone, or denser
    if shapes:  # objects sit under the same detector blur as the anatomy
        image = cv2.GaussianBlur(image, (3, 3), 0)
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8), shapes


KIND_LABELS = ("rectangle", "ellipse", "polygon")  # Shape.kind 0, 1, 2: the --multi-label columns


def write_images(folder, count, first_index, rng, size_range, positive_rate):
    """Write `count` images into `folder`; [(file name, shapes)] in order."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(count):
        name = f"{first_index + i:05d}.jpg"
        image, shapes = make_image(rng, rng.random() < positive_rate, size_range)
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        assert ok
        with atomic_path(folder / name) as tmp:
            tmp.write_bytes(encoded.tobytes())
        written.append((name, shapes))
    return written


def write_table(path, rows):
    import pandas as pd

    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)


def kind_labels(shapes):
    return {label: int(any(s.kind == kind for s in shapes)) for kind, label in enumerate(KIND_LABELS)}


def write_objectcxr(out, splits):
    from cxr.data.annotations import format_annotation

    for split, written in splits.items():
        write_table(out / f"{split}.csv", [{"image_name": n, "annotation": format_annotation(s)} for n, s in written])


def write_multilabel(out, splits):
    write_table(out / "train.csv", [{"image_name": n, **kind_labels(s)} for n, s in splits["train"]])
    write_table(out / "test.csv", [{"image_name": n} for n, _ in splits["test"]])
    write_table(out / "sample_submission.csv", [{"image_name": n, **dict.fromkeys(KIND_LABELS, 0.5)}
                                                 for n, _ in splits["test"]])


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
