"""The detector: torchvision's FCOS (anchor-free, one box per feature location, focal loss,
centre-ness) on any convolutional timm encoder, with a feature pyramid at strides 8 to 64.

It is a model kind beside the map model and writes the same files: its image logit comes from
an image head on the deepest features (as the map model's), and its boxes are painted into
object maps at the map model's stride (each cell holds the best score of the boxes covering it,
one map per box class; anti-aliased, see paint_boxes). So folds, blending, nested thresholds, weighted boxes fusion, FROC,
predict.py and submit.py read a detector's outputs as they read a map model's. The painting
costs only where boxes of one class overlap: below both scores they read back as their union."""
from collections import OrderedDict
from functools import partial

import torch

from cxr.models.backbones import timm_model
from cxr.models.map_model import MAP_STRIDE, map_levels

PYRAMID_STRIDES = (8, 16, 32, 64)  # the encoder's 8, 16 and 32, and a max-pooled level for large boxes
SCORE_FLOOR = 0.05  # boxes scored below it are dropped (FCOS's own default, 0.2, would starve mAP's ranking)
BOXES_PER_IMAGE = 100


class PyramidEncoder(torch.nn.Module):
    """A timm encoder (features_only, strides 8, 16, 32) and torchvision's FPN on it (plus a
    max-pooled stride-64 level): returns (the deepest encoder features, the pyramid's levels)."""

    def __init__(self, encoder, channels):
        from torchvision.ops import FeaturePyramidNetwork
        from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

        super().__init__()
        self.encoder = encoder
        self.fpn = FeaturePyramidNetwork(encoder.feature_info.channels(), channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = channels  # what torchvision's FCOS head reads

    def forward(self, images):
        features = self.encoder(images)
        return features[-1], self.fpn(OrderedDict((str(k), f) for k, f in enumerate(features)))


class DetectorModel(torch.nn.Module):
    """FCOS on a PyramidEncoder, and an image head (global max and mean of the deepest features,
    one linear layer). forward(images) gives (image logits (N, labels), X): in training X is the
    detection loss waiting for its targets (a list of {"boxes", "labels"} per image, input
    pixels); in evaluation X is the object-map logits (N, maps, H / 4, W / 4) painted from the
    boxes (paint_boxes). Fully convolutional: trains on crops, predicts whole images."""

    def __init__(self, pyramid, widest, num_classes=1, drop_rate=0.0, object_maps=1):
        from torchvision.models.detection import FCOS
        from torchvision.models.detection.anchor_utils import AnchorGenerator

        super().__init__()
        # only its sizes are read (FCOS's scale ranges, the module check); the anchors come from level_anchors
        anchors = AnchorGenerator(tuple((s,) for s in PYRAMID_STRIDES), ((1.0,),) * len(PYRAMID_STRIDES))
        # FCOS's own resizing and normalization are never called: images arrive normalized at network size
        self.fcos = FCOS(pyramid, object_maps, anchor_generator=anchors, score_thresh=SCORE_FLOOR,
                         detections_per_img=BOXES_PER_IMAGE)
        self.object_maps = object_maps
        self.dropout = torch.nn.Dropout(drop_rate)
        self.head = torch.nn.Linear(2 * widest, num_classes)

    def forward(self, images):
        deepest, pyramid = self.fcos.backbone(images)
        levels = list(pyramid.values())
        outputs = {k: v.float() for k, v in self.fcos.head(levels).items()}  # boxes and loss in float32 (bf16 rounds pixels)
        size = tuple(images.shape[-2:])
        anchors = [level_anchors(levels, PYRAMID_STRIDES)] * len(images)
        per_level = [level.shape[2] * level.shape[3] for level in levels]
        pooled = torch.cat([deepest.amax((2, 3)), deepest.mean((2, 3))], 1)
        logits = self.head(self.dropout(pooled))
        if self.training:
            return logits, partial(self.fcos.compute_loss, head_outputs=outputs, anchors=anchors,
                                   num_anchors_per_level=per_level)
        split = {k: list(v.split(per_level, dim=1)) for k, v in outputs.items()}
        detections = self.fcos.postprocess_detections(split, [list(a.split(per_level)) for a in anchors],
                                                      [size] * len(images))
        painted = paint_boxes(detections, self.object_maps, size[0] // MAP_STRIDE, size[1] // MAP_STRIDE, MAP_STRIDE)
        return logits, torch.logit(painted.to(logits.device), eps=1e-4)

    def set_grad_checkpointing(self, enable=True):
        self.fcos.backbone.encoder.set_grad_checkpointing(enable)


def level_anchors(levels, strides):
    """(locations, 4) float32 anchors of the pyramid's levels, in FCOS's order: per level, row by
    row, a box of the level's stride centred on each cell's corner (x * stride, y * stride), as
    torchvision's AnchorGenerator makes them, but from the true strides: it divides the image by
    the grid, which misplaces a max-pooled level's cells when the input is not a multiple of 64."""
    found = []
    for level, stride in zip(levels, strides):
        height, width = level.shape[-2:]
        ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32, device=level.device) * stride,
                                torch.arange(width, dtype=torch.float32, device=level.device) * stride, indexing="ij")
        centres = torch.stack([xs.reshape(-1), ys.reshape(-1)] * 2, dim=1)
        found.append(centres + torch.tensor([-stride, -stride, stride, stride], device=level.device) / 2)
    return torch.cat(found)


def paint_boxes(detections, maps, height, width, stride):
    """(N, maps, height, width) float32 object maps at `stride` of N images' detections ({"boxes"
    (k, 4) x1 y1 x2 y2 input pixels, "scores", "labels"}): a cell holds a box's score times the
    share of the cell the box covers (anti-aliased, so a box's edges between cells survive the
    map's upsampling: its blob at half the score has the box's extent, not the cells'), the best
    one where boxes of its class overlap; 0 where no box is."""
    painted = torch.zeros(len(detections), maps, height, width)
    for image, found in enumerate(detections):
        for box, score, label in zip(found["boxes"].tolist(), found["scores"].tolist(), found["labels"].tolist()):
            if box[2] <= box[0] or box[3] <= box[1]:  # an empty box (FCOS can regress one) marks nothing
                continue
            columns, rows = cell_cover(box[0], box[2], stride, width), cell_cover(box[1], box[3], stride, height)
            if columns is None or rows is None:
                continue
            (x1, across), (y1, down) = columns, rows
            cells = painted[image, int(label), y1:y1 + len(down), x1:x1 + len(across)]
            torch.maximum(cells, score * torch.outer(down, across), out=cells)
    return painted


def cell_cover(low, high, stride, cells):
    """(first cell, share of each cell from it on that [low, high) covers) along one axis of `cells`
    cells of `stride` pixels; a box thinner than a cell covers its one cell whole (it is still
    seen); None when it lies outside the map."""
    first, last = max(int(low // stride), 0), min(int(-(-high // stride)), cells)
    if last <= first:
        return None
    edges = torch.arange(first, last + 1, dtype=torch.float32) * stride
    share = (torch.clamp(edges[1:], max=high) - torch.clamp(edges[:-1], min=low)).clamp(min=0) / stride
    return first, share / share.max() if high - low < stride else share


def create_detector(arch, num_classes=1, pretrained=False, weights="", drop_rate=0.0, drop_path_rate=0.0,
                    channels=128, in_chans=3, object_maps=1):
    """A DetectorModel on any convolutional timm encoder (pretrained as create_model): `num_classes`
    image logits, `object_maps` box classes (one map each)."""
    levels = map_levels(arch, 32)[1:]  # strides 8, 16, 32
    encoder = timm_model(arch, pretrained, weights, drop_path_rate, features_only=True, out_indices=levels,
                         in_chans=in_chans)
    return DetectorModel(PyramidEncoder(encoder, channels), encoder.feature_info.channels()[-1], num_classes,
                         drop_rate, object_maps)
