"""Augmentation pipelines (albumentations): train and eval, ImageNet normalization.

Grayscale radiographs are repeated to 3 channels before these (ImageNet-shaped backbones)."""
import albumentations as A
from albumentations.pytorch import ToTensorV2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# Images arrive at network size (resized once, see cache.py): no Resize here.
def eval_transform():
    """Normalize: nothing random."""
    return A.Compose([
        A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
        ToTensorV2(),
    ])


def train_transform(seed=None):
    """The Object-CXR roadmap's augmentation: flips, a small rotation, brightness/contrast.

    Foreign objects do not care about orientation, so both flips are used."""
    return A.Compose([
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.5),
        A.Affine(rotate=(-10, 10), p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
        A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
        ToTensorV2(),
    ], seed=seed)
