"""Backbone factory: any timm architecture by name, from scratch, pretrained, or a local file.

A missing download never hangs a run: when the weights hub cannot be reached, timm is put
in offline mode, so weights come from the local cache or the run stops with one clear line."""
import os
import socket
from pathlib import Path

import timm
import torch
import torch.nn.functional as F

from errors import UserError

HUB_HOST = "huggingface.co"


def hub_reachable(timeout=3.0):
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        socket.create_connection((HUB_HOST, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


POOLS = ("avg", "max", "avgmax", "catavgmax")


def create_model(arch, num_classes=1, pretrained=False, weights="", drop_rate=0.0, drop_path_rate=0.0, pool="avg",
                 img_size=None, in_chans=3):
    """A timm model with a `num_classes` head (1 = one logit for a binary target).

    `weights` (a local .pth/.bin/.safetensors file of timm's layout) wins over `pretrained`;
    the classifier is re-initialized when its size differs from the file's, as timm does.
    `img_size` reaches the architectures built for one input size (ViT, Swin: their position
    embeddings and windows; timm resamples pretrained ones); the others take any size."""
    if pool not in POOLS:
        raise UserError(f"--pool {pool}: expected one of {', '.join(POOLS)}")
    return timm_model(arch, pretrained, weights, drop_path_rate, num_classes=num_classes, drop_rate=drop_rate,
                      in_chans=in_chans, **({"global_pool": pool} if pool != "avg" else {}), **({"img_size": img_size} if img_size else {}))


def timm_model(arch, pretrained=False, weights="", drop_path_rate=0.0, **kwargs):
    """timm.create_model(arch, **kwargs) from scratch, from timm's pretrained weights (the local
    cache when the hub cannot be reached), or from a local weights file; every failure is one
    UserError line."""
    if not timm.is_model(arch):
        close = timm.list_models(f"*{arch.split('.')[0][:6]}*")[:8]
        raise UserError(f"unknown architecture '{arch}'" + (f" (similar: {', '.join(close)})" if close else ""))
    if drop_path_rate:
        kwargs["drop_path_rate"] = drop_path_rate

    def make(**how):
        try:
            return timm.create_model(arch, **how, **kwargs)
        except TypeError as err:
            if "img_size" in str(err) and "img_size" in kwargs:  # a network for any input size
                kwargs.pop("img_size")
                return make(**how)
            if "drop_path_rate" in str(err):
                raise UserError(f"--drop-path: {arch} has no stochastic depth (drop_path_rate)") from None
            if "global_pool" in str(err):
                raise UserError(f"--pool {kwargs.get('global_pool')}: {arch} has no choice of global pooling") from None
            raise

    if weights:
        path = Path(weights)
        if not path.is_file():
            raise UserError(f"--weights {weights}: file not found")
        try:
            return make(pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
        except (RuntimeError, KeyError, ValueError, OSError) as err:
            raise UserError(f"--weights {weights}: cannot load into {arch} ({str(err).splitlines()[0]})") from None
    if not pretrained:
        return make(pretrained=False)
    if not hub_reachable():
        import huggingface_hub.constants

        huggingface_hub.constants.HF_HUB_OFFLINE = True  # use the cache, never wait on retries
    try:
        return make(pretrained=True)
    except UserError:
        raise
    except Exception as err:  # timm/hub raise many types; all mean "no weights"
        raise UserError(
            f"pretrained weights for {arch} are not available ({type(err).__name__}: {str(err).splitlines()[0][:160]}); "
            f"download them once with network access, pass --weights FILE, or train from scratch with --no-pretrained"
        ) from None


# ---------------------------------------------------------------- map models
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

    def __init__(self, encoder, channels=64, num_classes=1, drop_rate=0.0):
        super().__init__()
        self.encoder = encoder
        widths = encoder.feature_info.channels()
        self.lateral = torch.nn.ModuleList(torch.nn.Conv2d(w, channels, 1) for w in widths)
        self.smooth = torch.nn.Sequential(torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                                          torch.nn.BatchNorm2d(channels), torch.nn.ReLU(inplace=True))
        self.object_logits = torch.nn.Conv2d(channels, num_classes, 1)
        torch.nn.init.constant_(self.object_logits.bias, -4.0)  # objects are rare pixels: start near p = 0.02
        self.dropout = torch.nn.Dropout(drop_rate)
        self.head = torch.nn.Linear(2 * widths[-1], num_classes)

    def forward(self, images):
        """(image-head logits (N, labels), object-map logits (N, labels, H / 4, W / 4))."""
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
                     channels=64, deepest_stride=16, in_chans=3):
    """A MapModel on any convolutional timm encoder (pretrained as create_model)."""
    if deepest_stride not in (16, 32):
        raise UserError(f"--map-depth {deepest_stride}: expected 16 or 32")
    levels = map_levels(arch, deepest_stride)
    encoder = timm_model(arch, pretrained, weights, drop_path_rate, features_only=True, out_indices=levels,
                         in_chans=in_chans)
    return MapModel(encoder, channels, num_classes, drop_rate)


def network_of(settings, num_labels=1, pretrained=False, weights=""):
    """The network a run's settings (a TrainConfig, or its saved config as a dict) describe:
    a classifier or a map model. Training and inference build it here alike. The network keeps
    its input channels as `input_channels` (engine.to_device makes its input from them)."""
    get = settings.get if isinstance(settings, dict) else lambda name, default=None: getattr(settings, name)
    channels = get("in_chans", 3)
    common = dict(num_classes=num_labels, pretrained=pretrained, weights=weights, drop_rate=get("drop_rate", 0.0),
                  drop_path_rate=get("drop_path", 0.0), in_chans=channels)
    if get("kind", "classifier") == "map":
        network = create_map_model(get("arch"), channels=get("map_channels", 64), deepest_stride=get("map_depth", 16),
                                   **common)
    else:
        network = create_model(get("arch"), pool=get("pool", "avg"), img_size=get("img_size"), **common)
    network.input_channels = channels
    return network


def enable_grad_checkpointing(network, arch):
    """Activation checkpointing through timm's set_grad_checkpointing (a map model: its encoder's);
    one UserError line for a backbone that has none."""
    try:
        network.set_grad_checkpointing(True)
    except (AssertionError, NotImplementedError, AttributeError) as err:
        raise UserError(f"--grad-checkpointing: {arch} has no activation checkpointing in timm "
                        f"({type(err).__name__}{': ' + str(err) if str(err) else ''}); train without it, "
                        f"or with a smaller --batch-size and --accumulate") from None


def penultimate_features(model, images):
    """(N, features): the pooled features the classifier sees (timm's forward_head(pre_logits=True))."""
    return model.forward_head(model.forward_features(images), pre_logits=True)
