"""A torchvision detector beside a map model at the same training budget: FCOS (boxes from the
annotations' bounding boxes) on a resnet18 FPN from scratch, trained on the same fold-0 rows,
the same 160 px crops near objects at the same image size, for as many seconds as the map
model's fold 0 trained; both scored on the test side (dev): AUC (the image's top box score vs
the map model's image probability) and FROC (box centres vs map peaks).

    bash bench/objectcxr.sh                    # first: the map model's runs
    python bench/bench_detector.py --dataset objectcxr_semireal --exp objectcxr_semireal_bench
"""
import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from torchvision.models.detection import FCOS  # noqa: E402
from torchvision.models.detection.backbone_utils import BackboneWithFPN  # noqa: E402
from torchvision.models.detection.anchor_utils import AnchorGenerator  # noqa: E402
from torchvision.models.detection.fcos import FCOSHead  # noqa: E402

from cxr.artifacts import cams_file, folds_file, run_dir, test_pred_file  # noqa: E402
from cxr.data.cache import ImageSpec, build_cache, to_original  # noqa: E402
from cxr.data.annotations import parse_annotation  # noqa: E402
from cxr.data.folds import read_folds
from cxr.localization.evaluation import annotations, blend_points  # noqa: E402
from cxr.localization.targets import crop_window, cut, to_network  # noqa: E402
from cxr.metrics.froc import froc  # noqa: E402
from cxr.metrics.auc import roc_auc
from cxr.data.layouts import read_checked  # noqa: E402
from cxr.config import DataSettings  # noqa: E402


def build_detector(size):
    """FCOS on a from-scratch resnet18 with a 64-channel FPN at strides 4-32 (objects a few pixels wide need stride 4)."""
    body = torchvision.models.resnet18(weights=None)
    backbone = BackboneWithFPN(body, {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"},
                               [64, 128, 256, 512], 64)
    anchors = AnchorGenerator(sizes=((8,), (16,), (32,), (64,), (128,)), aspect_ratios=((1.0,),) * 5)
    return FCOS(backbone, num_classes=2, min_size=size, max_size=size, anchor_generator=anchors,
                head=FCOSHead(64, 1, 2, num_convs=2), score_thresh=0.01, detections_per_img=10, nms_thresh=0.3,
                image_mean=[0.5] * 3, image_std=[0.25] * 3)


def network_boxes(shapes, width, height, spec):
    """(n, 4) boxes x1 y1 x2 y2 of the shapes in the network frame, at least 2 px a side."""
    boxes = []
    for shape in shapes:
        corners = to_network(shape.points, width, height, spec.size, spec.mode)
        (x1, y1), (x2, y2) = corners.min(0), corners.max(0)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        half_w, half_h = max((x2 - x1) / 2, 1.0), max((y2 - y1) / 2, 1.0)
        boxes.append([cx - half_w, cy - half_h, cx + half_w, cy + half_h])
    return np.array(boxes, dtype=np.float32).reshape(-1, 4)


def crop_sample(image, boxes, crop, rng, spec):
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    left, top, side = crop_window(spec.size, crop, list(centres), 0.7, rng, 0.25)
    scale = crop / side
    patch = cut(image, left, top, side, crop, 1)
    moved = (boxes - [left, top, left, top]) * scale
    moved = np.clip(moved, 0, crop)
    keep = ((moved[:, 2] - moved[:, 0]) >= 1) & ((moved[:, 3] - moved[:, 1]) >= 1)
    tensor = torch.from_numpy(patch).float().div(255)[None].expand(3, -1, -1)
    return tensor, {"boxes": torch.from_numpy(moved[keep]).float(), "labels": torch.ones(int(keep.sum()), dtype=torch.int64)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--exp", required=True, help="the experiment whose map model (fold 0) sets the budget")
    parser.add_argument("--model", default="resnet18-map")
    parser.add_argument("--seconds", type=float, default=0, help="training budget (default: the map model's fold 0)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    run = run_dir("weights", args.exp, args.model, 0)
    config = json.loads((run / "config.json").read_text())
    spec, crop = ImageSpec.of(config), config["crop_size"]
    map_seconds = float(pd.read_csv(run / "log.csv")["seconds"].sum())
    budget = args.seconds or map_seconds
    settings = DataSettings(dataset=args.dataset)
    train_table, test, root = read_checked(settings)
    folds = read_folds(folds_file("folds", args.dataset))
    train_ids = set(folds.loc[folds["fold"] != 0, "image_id"])
    rows = train_table[train_table["image_id"].isin(train_ids)]
    cache = build_cache([*rows["image_id"], *test["image_id"]], root, Path("cache") / args.dataset, spec)
    boxes = {i: network_boxes(parse_annotation(a), w, h, spec)
             for i, a, w, h in zip(rows["image_id"], rows["annotation"], rows["width"], rows["height"])}
    ids = list(rows["image_id"])

    model = build_detector(crop)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-2)
    rng = np.random.default_rng(0)
    started, steps, images_seen = time.time(), 0, 0
    model.train()
    while time.time() - started < budget:
        batch = [crop_sample(cache[i], boxes[i], crop, rng, spec) for i in rng.choice(ids, args.batch_size)]
        losses = model([b[0] for b in batch], [b[1] for b in batch])
        loss = sum(losses.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps += 1
        images_seen += len(batch)
        if steps % 20 == 0:
            print(f"step {steps}: loss {loss.item():.3f}, {time.time() - started:.0f} s", flush=True)
    train_seconds = time.time() - started

    model.eval()
    model.transform.min_size, model.transform.max_size = (spec.size,), spec.size
    _, test_objects = annotations(root)
    test_ids = list(test["image_id"])
    sizes = dict(zip(test["image_id"], zip(test["width"], test["height"])))
    probabilities, points = [], {}
    started = time.time()
    with torch.no_grad():
        for start in range(0, len(test_ids), 8):
            chunk = test_ids[start:start + 8]
            found = model([torch.from_numpy(cache[i]).float().div(255)[None].expand(3, -1, -1) for i in chunk])
            for image, detections in zip(chunk, found):
                scores, centres = detections["scores"].numpy(), ((detections["boxes"][:, :2] + detections["boxes"][:, 2:]) / 2).numpy()
                probabilities.append(float(scores.max()) if len(scores) else 0.0)
                width, height = sizes[image]
                xs, ys = to_original(centres[:, 0], centres[:, 1], width, height, spec.size, spec.mode)
                points[image] = [(float(s), float(np.clip(x, 0, width - 1)), float(np.clip(y, 0, height - 1)))
                                 for s, x, y in zip(scores, np.atleast_1d(xs), np.atleast_1d(ys))]
    per_image = (time.time() - started) / len(test_ids)
    y = test["target"].to_numpy()
    objects = {i: test_objects[i] for i in test_ids}
    detector = {"model": "fcos resnet18 (fold 0)", "dev_auc": roc_auc(y, probabilities),
                "dev_froc": froc(points, objects)[0], "train_s": train_seconds, "s_per_test_image": per_image,
                "train_images": images_seen}

    predicted = pd.read_csv(test_pred_file("oof", args.exp, args.model, 0))
    maps = np.load(cams_file("oof", args.exp, args.model, 0))["test"]
    map_points = blend_points(test_ids, predicted["prediction"].to_numpy(), [[maps]], [1.0], spec, sizes)
    mapped = {"model": f"{args.model} (fold 0)", "dev_auc": roc_auc(y, predicted["prediction"].to_numpy()),
              "dev_froc": froc(map_points, objects)[0], "train_s": map_seconds,
              "s_per_test_image": config.get("test_seconds_per_image", np.nan),
              "train_images": int(config["n_train"]) * int(config["epochs"])}
    print("one model each, trained on fold 0's training rows (the map model's seconds include its validation; its "
          "per-image time its hflip TTA), scored on the test side:\n"
          + pd.DataFrame([mapped, detector]).to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
