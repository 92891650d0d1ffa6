"""An occlusion study of a trained experiment (src/occlude.py): annotated positives sampled, each
image's objects covered and an equal control area covered, the probability drops tabulated with
intervals, and figures of the pairs. occlusion.py holds the covering itself."""
import zlib
from pathlib import Path
import numpy as np
from cxr.errors import UserError


PROBABILITIES = ["p_original", "p_objects_covered", "p_control_covered"]


def annotated_positives(root, folds, side):
    """{image id: shapes} of the positive images with annotated objects, and {image id: fold}
    (-1 on the dev side: every fold model predicts it)."""
    from cxr.data.labels import target_columns
    from cxr.localization.evaluation import annotations

    objects, dev_objects = annotations(root)
    if objects is None:
        raise UserError(f"{root}: no object annotations (occlusion covers the annotated objects; "
                        f"it needs an Object-CXR-style data set)")
    if side == "dev":
        if dev_objects is None:
            raise UserError(f"{root}: no annotated test side (dev.csv with an annotation column) for --side dev")
        chosen = {i: s for i, s in dev_objects.items() if s}
        fold_of = dict.fromkeys(chosen, -1)
    else:
        positive = folds[target_columns(folds)].eq(1).any(axis=1)
        fold_of = {i: int(k) for i, k in zip(folds["image_id"][positive], folds["fold"][positive]) if objects.get(i)}
        chosen = {i: objects[i] for i in fold_of}
    if not chosen:
        raise UserError(f"{root}: no positive {side} image has an annotated object")
    return chosen, fold_of


def sample(ids, limit, seed):
    """`limit` of `ids` (seeded; all when limit is 0), sorted."""
    ids = sorted(ids)
    if 0 < limit < len(ids):
        ids = sorted(np.random.default_rng(seed).choice(ids, limit, replace=False).tolist())
    return ids


def image_rng(seed, image_id):
    """A generator of the image's own: its control lands where it does whatever else is chosen."""
    return np.random.default_rng([seed, zlib.crc32(image_id.encode())])


def ensemble_predictor(ensemble, device):
    """grayscale images -> (b, 1 + models) probabilities of the first label: the blend's, then each model's."""
    from cxr.inference.predictor import predict_batch

    def predict(grays):
        blended, per_model, _ = predict_batch(ensemble, grays, device)
        return np.column_stack([blended[:, 0], per_model[:, :, 0]])

    return predict


def occlusion_rows(ensemble, ids, shapes, fold_of, root, device, args, keep):
    """(rows of occlusion.csv, skipped image ids, up to `keep` (image id, Occluded, blend's
    probabilities) for the figure). Images go in batches of one fold at a time."""
    from cxr.data.cache import decode_gray
    from cxr.diagnosis.occlusion import occlude, predict_occluded

    names = ["blend", *ensemble.models]
    rows, skipped, examples = [], [], []
    for fold in sorted({fold_of[i] for i in ids}):
        predict = ensemble_predictor(ensemble.held_out(fold) if fold >= 0 else ensemble, device)
        in_fold = [i for i in ids if fold_of[i] == fold]
        for start in range(0, len(in_fold), args.batch_size):
            batch = in_fold[start:start + args.batch_size]
            occluded = [occlude(decode_gray(root / i), shapes[i], image_rng(args.seed, i), args.margin, args.radius)
                        for i in batch]
            skipped += [i for i, o in zip(batch, occluded) if o is None]
            kept = [(i, o) for i, o in zip(batch, occluded) if o is not None]
            for (image_id, views), p in zip(kept, predict_occluded([o for _, o in kept], predict)):
                rows += [{"image_id": image_id, "fold": fold, "model": name, **dict(zip(PROBABILITIES, p[:, j])),
                          "covered_pixels": int(views.objects.sum())} for j, name in enumerate(names)]
                if len(examples) < keep:
                    examples.append((image_id, views, p[:, 0]))
    return rows, skipped, examples


def summary_table(table, skipped, n_boot, seed):
    """summary.csv: one row per model (the blend first) from occlusion.csv's rows."""
    import pandas as pd

    from cxr.diagnosis.occlusion import drop_summary

    return pd.DataFrame([{"model": name, **drop_summary(*(rows[c].to_numpy() for c in PROBABILITIES), n_boot, seed),
                          "skipped": skipped} for name, rows in table.groupby("model", sort=False)])


def format_summary(summary):
    def cell(row, name):
        return f"{row[name]:+.4f} [{row[name + '_low']:+.4f}, {row[name + '_high']:+.4f}]"

    width = max(len("model"), *summary["model"].map(len))
    lines = [f"{'model':<{width}}  images  skipped  {'objects drop [95 % CI]':<27}  {'control drop [95 % CI]':<27}"
             f"  difference [95 % CI]"]
    lines += [f"{row['model']:<{width}}  {row['images']:>6}  {row['skipped']:>7}  {cell(row, 'drop_objects'):<27}  "
              f"{cell(row, 'drop_control'):<27}  {cell(row, 'difference')}" for _, row in summary.iterrows()]
    return "\n".join(lines)


def outlined(gray, mask, colour=(255, 220, 0)):
    """RGB copy of `gray` with the outline of `mask` drawn."""
    import cv2

    rgb = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return cv2.drawContours(rgb, contours, -1, colour, max(1, round(min(gray.shape) / 200)))


def pairs_figure(examples, shapes, path):
    """A row per example: original (objects drawn) | objects covered | control covered (outlined)."""
    import cv2

    from cxr.figures import draw_shapes, grid_figure

    panels, titles = [], []
    for image_id, views, (p_original, p_objects, p_control) in examples:
        panels += [draw_shapes(cv2.cvtColor(views.original, cv2.COLOR_GRAY2RGB), shapes[image_id]),
                   views.objects_covered, outlined(views.control_covered, views.control)]
        titles += [f"{image_id}: p = {p_original:.3f}", f"objects covered: p = {p_objects:.3f}",
                   f"control covered: p = {p_control:.3f}"]
    grid_figure(panels, titles, path, columns=3, suptitle="the blend's probability, objects vs the same area elsewhere")


def blend_dataset(spec_path):
    import json

    return json.loads(Path(spec_path).read_text()).get("dataset")
