"""Augmentation pipelines (albumentations): train and eval, on the grayscale uint8 image.

They end in a (1, H, W) uint8 tensor: normalization and the repeat to 3 channels happen on the
device (engine.to_device), so a loader moves one byte a pixel."""
import albumentations as A
from albumentations.pytorch import ToTensorV2

# Images arrive at network size (resized once, see cache.py): no Resize here.
def eval_transform():
    """Nothing random: the image as a tensor."""
    return A.Compose([ToTensorV2()])


AUGMENTATIONS = ("none", "basic", "shift")


def train_transform(seed=None, strength="basic", size=None):
    """none: nothing random (the overfit check; a search may find it best).
    basic: the Object-CXR roadmap's augmentation: flips, a small rotation, brightness/contrast
    (foreign objects do not care about orientation, so both flips are used).
    shift: basic plus what targets a test side that looks different (another scanner, another
    hospital, another resolution): random resized crops of the `size` x `size` image (scale 0.7-1,
    so framing and magnification vary), gamma, CLAHE at random, and blur or sharpening."""
    if strength not in AUGMENTATIONS:
        raise ValueError(f"augmentation must be one of {', '.join(AUGMENTATIONS)}, not {strength!r}")
    if strength == "none":
        return eval_transform()
    appearance = [] if strength == "basic" else [
        A.RandomResizedCrop(size=(size, size), scale=(0.7, 1.0), ratio=(0.85, 1.18), p=0.5),
        A.RandomGamma(gamma_limit=(70, 150), p=0.5),
        A.CLAHE(clip_limit=(1, 3), tile_grid_size=(4, 4), p=0.2),
        A.OneOf([A.GaussianBlur(sigma_limit=(0.3, 1.2), blur_limit=0), A.Sharpen(alpha=(0.1, 0.4))], p=0.3),
    ]
    return A.Compose([
        *appearance,
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.5),
        A.Affine(rotate=(-10, 10), p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
        ToTensorV2(),
    ], seed=seed)
