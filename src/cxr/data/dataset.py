"""The torch Dataset of a table of images (cached or decoded on the fly), with augmentation
seeded by epoch and image so a run on the CPU repeats exactly."""

import numpy as np


class EpochSeeded:
    """A sampler whose indices travel with the epoch's seed, as (index, seed) keys: loader workers
    (persistent ones too, whose copies of the data set never see a change made in the main
    process) then augment row i of an epoch from (seed, i) alone: the same images with any
    number of workers, and again on --resume. `set_seed` before each epoch."""

    def __init__(self, sampler, seed=0):
        self.sampler, self.seed = sampler, seed

    def set_seed(self, seed):
        self.seed = seed

    def __iter__(self):
        seed = self.seed
        return ((int(index), seed) for index in self.sampler)

    def __len__(self):
        return len(self.sampler)


def seeded_key(key, transform=None):
    """(row index, seed or None) of a data set key (an int, or EpochSeeded's pair); a pair reseeds
    `transform` (an albumentations pipeline) for that row first."""
    index, seed = key if isinstance(key, tuple) else (key, None)
    if seed is not None and hasattr(transform, "set_random_seed"):
        transform.set_random_seed((int(seed) * 1_000_003 + index) % 2**32)
    return index, seed


class ImageTable:
    """torch-style Dataset over a table: (image tensor, target vector) per row.

    `load(image_id)` gives the network-size grayscale uint8 image (from the cache, or decoded
    from its file); `transform` is an albumentations pipeline ending in ToTensorV2 (a (1, H, W)
    uint8 tensor: engine.to_device makes the network's input of it on the device). The target
    vector holds the row's `columns` (one per label); rows without targets (an unlabelled test
    set) give -1 in each."""

    def __init__(self, table, load, transform, columns=("target",)):
        self.image_ids = list(table["image_id"])
        columns = list(columns)
        present = all(c in table for c in columns)
        targets = (table[columns].to_numpy(dtype=np.float32) if present
                   else np.full((len(table), len(columns)), np.nan, dtype=np.float32))
        self.targets = np.where(np.isnan(targets), -1.0, targets).astype(np.float32)
        self.load = load
        self.transform = transform

    def __len__(self):
        return len(self.image_ids)

    def __getitem__(self, key):
        index, _ = seeded_key(key, self.transform)
        image = np.array(self.load(self.image_ids[index]))  # a writable copy: the cache is a read-only memmap
        return self.transform(image=image)["image"], self.targets[index]
