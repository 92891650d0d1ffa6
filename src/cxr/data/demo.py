"""The demo data set: synthetic chest radiographs (a body, lungs, ribs) with foreign objects drawn in
(rectangles, ellipses, polygons), written in the exact Object-CXR layout or as a Kaggle-style
multi-label set. src/make_demo.py is the script."""
import cv2
import numpy as np
from cxr.artifacts import atomic_path


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
