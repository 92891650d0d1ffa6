"""Adversarial validation: how far apart the training and test images are, and which training
images look like the test side.

A classifier learns to tell training images (0) from test images (1) on simple appearance
features of each image (a 16x16 thumbnail, the intensity histogram and its moments), scored
out-of-fold (every image predicted by a model that never saw it). Its AUC measures the shift:
0.5 = the two sides look alike, 1.0 = any image's side can be told. Its out-of-fold score of a
training image is that image's test-likeness: the chance that a test-side image looks like it.
"""
from pathlib import Path

import cv2
import numpy as np

THUMB = 16
BINS = 32
HIGH_SHIFT = 0.6  # from this adversarial AUC on, blend.py warns that the OOF AUC may overstate the test score


def image_features(images):
    """(n, features) of (n, h, w) uint8 grayscale images: a THUMB x THUMB area-averaged thumbnail,
    a BINS-bin intensity histogram (shares), mean, standard deviation and 5/50/95th percentiles."""
    rows = []
    for image in images:
        thumb = cv2.resize(np.asarray(image), (THUMB, THUMB), interpolation=cv2.INTER_AREA).ravel() / 255.0
        histogram = np.bincount(np.asarray(image).ravel() // (256 // BINS), minlength=BINS) / image.size
        moments = [image.mean() / 255, image.std() / 255, *np.percentile(image, [5, 50, 95]) / 255]
        rows.append(np.concatenate([thumb, histogram, moments]))
    return np.asarray(rows, dtype=np.float32)


def adversarial_scores(features, is_test, n_splits=5, seed=0):
    """Out-of-fold P(test side) of every row: gradient-boosted trees, stratified K-fold."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold

    is_test = np.asarray(is_test, dtype=int)
    scores = np.full(len(is_test), 0.5)
    n_splits = min(n_splits, int(is_test.sum()), int((1 - is_test).sum()))
    if n_splits < 2:  # a side of one image: nothing to learn, no shift measurable
        return scores
    for fit_rows, score_rows in StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(features, is_test):
        model = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.1, random_state=seed)
        model.fit(features[fit_rows], is_test[fit_rows])
        scores[score_rows] = model.predict_proba(features[score_rows])[:, 1]
    return scores


def most_test_like(likeness, share):
    """The `share` of training rows most like the test side (a boolean mask; ties at the cut kept)."""
    likeness = np.asarray(likeness, dtype=float)
    if not 0 <= share <= 1:
        raise ValueError("share must be in [0, 1]")
    if share == 0 or not len(likeness):
        return np.zeros(len(likeness), bool)
    cut = np.quantile(likeness, 1 - share)
    return likeness >= cut


def importance_weights(likeness, n_train, n_test):
    """w = p / (1 - p) x n_train / n_test: how many test images each training image stands for
    (the density ratio the adversarial classifier estimates), clipped at 20 and scaled to mean 1."""
    p = np.clip(np.asarray(likeness, dtype=float), 1e-3, 1 - 1e-3)
    weights = np.minimum(p / (1 - p) * n_train / max(n_test, 1), 20.0)
    return weights / weights.mean()


def measure_shift(train, test, root, cache_root, size=64, seed=0):
    """(grayscale images of train then test at size x size, is_test, out-of-fold P(test) of each):
    the images come through the decode-once cache (cache_root/<size>_squash_linear_v2)."""
    from cxr.data.cache import ImageSpec, build_cache

    ids = [*train["image_id"], *test["image_id"]]
    cache = build_cache(ids, root, cache_root, ImageSpec(size), progress=False)
    images = np.stack([cache[i] for i in ids])
    is_test = np.r_[np.zeros(len(train), int), np.ones(len(test), int)]
    return images, is_test, adversarial_scores(image_features(images), is_test, seed=seed)


def likeness_table(train, likeness, share, n_test):
    """One row per training image: its test-likeness, importance weight and whether it is among the
    `share` most test-like (the rows of the test-like OOF estimate)."""
    import pandas as pd

    return pd.DataFrame({"image_id": train["image_id"].to_numpy(), "test_likeness": likeness,
                         "weight": importance_weights(likeness, len(train), n_test),
                         "test_like": most_test_like(likeness, share)})


def shift_warning(reports_dir, dataset):
    """A warning line when shift.py measured a strong train/test shift for `dataset` (its report in
    `reports_dir`), else ''."""
    import json

    from cxr.artifacts import shift_report_file

    path = shift_report_file(reports_dir, dataset)
    if not path.is_file():
        return ""
    auc = json.loads(path.read_text())["adversarial_auc"]
    if auc < HIGH_SHIFT:
        return ""
    return (f"warning: the test side looks unlike the training side (adversarial AUC {auc:.3f}, {path}): the OOF "
            f"AUC may overstate the test score; compare the test-like AUC (make_folds.py --test-like)")


def fold_likeness(folds, table):
    """Per fold: mean test-likeness and share of test-like rows of its validation images."""
    merged = folds[["image_id", "fold"]].merge(table, on="image_id")
    return {int(fold): {"mean_test_likeness": float(part["test_likeness"].mean()),
                        "test_like_share": float(part["test_like"].mean())} for fold, part in merged.groupby("fold")}


def mark_test_like(args, train, test, root):
    """folds/<dataset>_test_like.csv: each training image's test-likeness (adversarial validation) and
    whether it is among the --test-like share most like the test side."""
    from cxr.artifacts import test_like_file, write_csv
    from cxr.errors import UserError
    from cxr.metrics.auc import roc_auc

    if not 0 < args.test_like <= 1:
        raise UserError(f"--test-like {args.test_like}: a share in (0, 1]")
    if not len(test):
        print(f"--test-like: {root} has no test side to compare with; no test-like rows marked")
        return
    _, is_test, scores = measure_shift(train, test, root, Path(args.cache_dir) / args.dataset)  # as shift.py
    table = likeness_table(train, scores[:len(train)], args.test_like, len(test))
    write_csv(test_like_file(args.folds_dir, args.dataset), table, float_format="%.6f")
    print(f"test-like rows: {int(table['test_like'].sum())} of {len(table)} training images "
          f"(adversarial AUC {roc_auc(is_test, scores):.3f}); {test_like_file(args.folds_dir, args.dataset)}")
