"""Exact and near-duplicate images, found before folds are cut.

Exact duplicates share the same bytes (SHA-1). Near-duplicates share a perceptual
difference hash (dHash: 256 bits from a 17x16 grayscale thumbnail; the common 64-bit one
confuses distinct chest X-rays, which all look alike at 9x8) within `threshold` differing
bits. Duplicates are joined into groups, so stratified group K-fold never puts one copy in
training and the other in validation."""
import hashlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from cxr.data.cache import decode_gray

HASH_SIDE = 16  # 16 x 16 = 256 bits


def image_fingerprints(paths):
    """(sha1 hex digests, dHash as uint64) of image files, hashed from what the cache decodes (the
    8-bit mapping of 16-bit and DICOM images that training sees); JPEGs are decoded at reduced scale."""
    digests, hashes = [], np.zeros((len(paths), HASH_SIDE * HASH_SIDE // 64), dtype=np.uint64)
    for i, path in enumerate(paths):
        digests.append(hashlib.sha1(Path(path).read_bytes()).hexdigest())
        gray = decode_gray(path, at_least=64)
        thumb = cv2.resize(gray, (HASH_SIDE + 1, HASH_SIDE), interpolation=cv2.INTER_AREA).astype(np.int16)
        bits = (thumb[:, 1:] > thumb[:, :-1]).ravel()
        hashes[i] = np.packbits(bits).view(">u8").astype(np.uint64)
    return digests, hashes


def near_pairs(hashes, threshold, chunk=256):
    """All pairs (i < j) whose hashes differ in at most `threshold` bits: (i, j, distance) arrays."""
    hashes = np.asarray(hashes, dtype=np.uint64).reshape(len(hashes), -1)
    found = []
    for start in range(0, len(hashes), chunk):
        block = hashes[start:start + chunk, None, :] ^ hashes[None, :, :]
        distance = np.bitwise_count(block).sum(axis=2, dtype=np.int64)
        i, j = np.nonzero(distance <= threshold)
        i = i + start
        keep = i < j
        found.append((i[keep], j[keep], distance[i[keep] - start, j[keep]]))
    if not found:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0, int)
    return tuple(np.concatenate(parts).astype(int) for parts in zip(*found))


def connected_groups(n, pairs_i, pairs_j):
    """Union-find: a group label (the smallest member index) for each of n items."""
    parent = np.arange(n)

    def root(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in zip(pairs_i, pairs_j):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([root(a) for a in range(n)])


def find_duplicates(image_ids, sides, root, threshold=0):
    """Duplicate pairs among images (train and test alike) and a group per image.

    Returns (pairs frame: image_a, image_b, side_a, side_b, kind, distance; groups array)."""
    paths = [Path(root) / i for i in image_ids]
    digests, hashes = image_fingerprints(paths)
    i, j, distance = near_pairs(hashes, threshold)
    exact_i, exact_j = [], []
    first_of = {}
    for index, digest in enumerate(digests):  # exact copies, even where the dHash would differ (it never does)
        if digest in first_of:
            exact_i.append(first_of[digest])
            exact_j.append(index)
        else:
            first_of[digest] = index
    pairs = pd.DataFrame({"a": np.concatenate([i, exact_i]).astype(int), "b": np.concatenate([j, exact_j]).astype(int),
                          "distance": np.concatenate([distance, np.zeros(len(exact_i), int)])})
    pairs = pairs.drop_duplicates(["a", "b"], keep="last")  # an exact pair is reported once, as exact
    same_bytes = np.array([digests[a] == digests[b] for a, b in zip(pairs["a"], pairs["b"])], dtype=bool)
    ids, sides = np.asarray(image_ids), np.asarray(sides)
    report = pd.DataFrame({
        "image_a": ids[pairs["a"]], "image_b": ids[pairs["b"]], "side_a": sides[pairs["a"]], "side_b": sides[pairs["b"]],
        "kind": np.where(same_bytes, "exact", "near"), "distance": pairs["distance"].to_numpy()})
    groups = connected_groups(len(ids), pairs["a"].to_numpy(), pairs["b"].to_numpy())
    return report.sort_values(["image_a", "image_b"]).reset_index(drop=True), groups


def group_duplicates(train, test, root, threshold):
    """(the train table with a `group` column joining duplicates, the pair report)."""
    ids = list(train["image_id"]) + list(test["image_id"])
    sides = ["train"] * len(train) + ["test"] * len(test)
    report, groups = find_duplicates(ids, sides, root, threshold)
    crossing = (report["side_a"] != report["side_b"]).sum()
    print(f"duplicates: {(report['kind'] == 'exact').sum()} exact and {(report['kind'] == 'near').sum()} near pairs "
          f"(threshold {threshold} bits), {crossing} between train and test")
    return train.assign(group=[ids[g] for g in groups[:len(train)]]), report
