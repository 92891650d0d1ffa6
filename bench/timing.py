"""Seconds per training epoch and per image at inference of every model of an experiment, from
what train.py recorded (log.csv, config.json): the cost side of a benchmark's table.

    python bench/timing.py --exp objectcxr_semireal_bench"""
import argparse
import json
from pathlib import Path

import pandas as pd


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--exp", required=True)
    parser.add_argument("--weights-dir", default="weights")
    args = parser.parse_args(argv)
    rows = []
    for model in sorted(p for p in (Path(args.weights_dir) / args.exp).iterdir() if p.is_dir()):
        folds = sorted(model.glob("fold_*"))
        logs = pd.concat([pd.read_csv(f / "log.csv") for f in folds if (f / "log.csv").is_file()])
        configs = [json.loads((f / "config.json").read_text()) for f in folds]
        rows.append({"model": model.name, "folds": len(folds), "epochs": int(logs["epoch"].max()),
                     "s_per_epoch": logs["seconds"].mean(), "train_images_per_s": logs["train_images_per_s"].mean(),
                     "s_per_test_image": sum(c.get("test_seconds_per_image", float("nan")) for c in configs) / len(configs),
                     "image_size": configs[0]["img_size"], "crop": configs[0]["crop_size"] if configs[0].get("kind") == "map" else "",
                     "image_score": ",".join(sorted({c.get("image_score_used", "") for c in configs})) or "-"})
    print("cost per model (mean over folds; an epoch includes its validation when it had one; per test image: one "
          "fold model with its TTA):\n" + pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
