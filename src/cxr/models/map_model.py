"""The map model: any timm backbone as the encoder, a light decoder to a per-pixel object map
(one cell per MAP_STRIDE x MAP_STRIDE input pixels), and an image logit beside it."""

import timm
import torch
import torch.nn.functional as F

from cxr.errors import UserError
from cxr.models.backbones import timm_model


MAP_STRIDE = 4  # the object map's resolution: one cell per 4 x 4 input pixels
IMAGE_SCORES = ("auto", "max", "head", "mean")


def map_levels(arch, deepest_stride):
    """The features_only indices of `arch` at strides 4, 8, ... up to `deepest_stride` (one per
    stride, the last of each), read off a throwaway model's feature_info."""
    info = timm.create_model(arch, features_only=True, pretrained=False).feature_info
    last = {stride: i for i, stride in enumerate(info.reduction())}
    strides = [s for s in (4, 8, 16, 32) if s <= deepest_stride]
    missing = [s for s in strides if s not in last]
    if missing:
        raise UserError(f"{arch} has no features at stride {missing[0]} (features_only); a map model needs strides "
                        f"{', '.join(map(str, strides))}: choose a convolutional backbone (resnet, efficientnet, convnext...)")
    return [last[s] for s in strides]


class MapModel(torch.nn.Module):
    """Encoder-decoder for small objects: a timm encoder (features_only, strides 4 to 16 or 32)
    and a small FPN (lateral 1x1 convolutions, nearest upsampling, sum, one 3x3 convolution)
    give per-pixel object logits at stride 4; an image head (global max and mean of the
    deepest features, one linear layer) gives an image logit. Fully convolutional: any input
    size (feature sizes are matched at every sum), so it trains on crops and predicts whole images."""

    def __init__(self, encoder, channels=64, num_classes=1, drop_rate=0.0, object_maps=1):
        super().__init__()
        self.encoder = encoder
        widths = encoder.feature_info.channels()
        self.lateral = torch.nn.ModuleList(torch.nn.Conv2d(w, channels, 1) for w in widths)
        self.smooth = torch.nn.Sequential(torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                                          torch.nn.BatchNorm2d(channels), torch.nn.ReLU(inplace=True))
        self.object_logits = torch.nn.Conv2d(channels, object_maps, 1)  # one map per object class
        torch.nn.init.constant_(self.object_logits.bias, -4.0)  # objects are rare pixels: start near p = 0.02
        self.dropout = torch.nn.Dropout(drop_rate)
        self.head = torch.nn.Linear(2 * widths[-1], num_classes)

    def forward(self, images):
        """(image-head logits (N, labels), object-map logits (N, maps, H / 4, W / 4))."""
        features = self.encoder(images)
        merged = self.lateral[-1](features[-1])
        for feature, lateral in zip(features[-2::-1], self.lateral[-2::-1]):
            merged = lateral(feature) + F.interpolate(merged, size=feature.shape[-2:], mode="nearest")
        deepest = features[-1]
        pooled = torch.cat([deepest.amax((2, 3)), deepest.mean((2, 3))], 1)
        return self.head(self.dropout(pooled)), self.object_logits(self.smooth(merged))

    def set_grad_checkpointing(self, enable=True):
        self.encoder.set_grad_checkpointing(enable)


def create_map_model(arch, num_classes=1, pretrained=False, weights="", drop_rate=0.0, drop_path_rate=0.0,
                     channels=64, deepest_stride=16, in_chans=3, object_maps=1):
    """A MapModel on any convolutional timm encoder (pretrained as create_model): `num_classes`
    image logits, `object_maps` object maps (one per box class; one for every object)."""
    if deepest_stride not in (16, 32):
        raise UserError(f"--map-depth {deepest_stride}: expected 16 or 32")
    levels = map_levels(arch, deepest_stride)
    encoder = timm_model(arch, pretrained, weights, drop_path_rate, features_only=True, out_indices=levels,
                         in_chans=in_chans)
    return MapModel(encoder, channels, num_classes, drop_rate, object_maps)
