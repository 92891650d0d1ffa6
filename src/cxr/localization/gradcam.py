"""Heatmaps of where a classifier looks (Grad-CAM and CAM); peaks.py turns them into points.

Both heatmaps use timm's split of every backbone into forward_features (the last feature
map) and forward_head (pooling + classifier):
    class_activation_map  the classifier's weights applied at every position of the feature
                          map (exact for global average pooling + one linear layer)
    grad_cam              the feature map weighted by the gradient of the logit (any backbone)
forward_features comes in three layouts, which feature_grid turns into (N, C, h, w):
    NCHW     CNNs (and most hybrids)
    NHWC     Swin, Swin V2, MambaOut, Sequencer... (timm marks them model.output_fmt = 'NHWC')
    tokens   (N, L, C): ViT, DeiT, EVA, BEiT, Mixer... (model.num_prefix_tokens class/register
             tokens first, then the patches in row-major order)
heatmap_support says before training whether a backbone gives a usable Grad-CAM at all."""
import math

import numpy as np
import torch
import torch.nn.functional as F

from cxr.errors import UserError


def architecture(model):
    """The timm name of a model (its class name when it has none)."""
    config = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    return config.get("architecture") or type(model).__name__


def prefix_tokens(model):
    """How many class/distillation/register tokens lead a token model's sequence: timm's
    num_prefix_tokens, else counted from its cls_token, dist_token and reg_token parameters."""
    declared = getattr(model, "num_prefix_tokens", None)
    if declared is not None:
        return int(declared)
    count = sum(getattr(model, name, None) is not None for name in ("cls_token", "dist_token"))
    registers = getattr(model, "reg_token", None)
    return count + (registers.shape[1] if torch.is_tensor(registers) and registers.dim() == 3 else 0)


def token_grid(model, patches, image_size=None):
    """(h, w) of `patches` row-major patch tokens, or None: the patch embedding's grid for this
    image size (dynamic size), its fixed grid, else the one grid of the image's aspect."""
    embed = getattr(model, "patch_embed", None)
    candidates = []
    if image_size is not None and callable(getattr(embed, "dynamic_feat_size", None)):
        candidates.append(embed.dynamic_feat_size(tuple(int(s) for s in image_size)))
    if getattr(embed, "grid_size", None) is not None:
        candidates.append(embed.grid_size)
    if image_size is not None and patches > 0:
        height, width = (int(s) for s in image_size)
        stride = math.sqrt(height * width / patches)
        candidates.append((round(height / stride), round(width / stride)))
    elif patches > 0:
        candidates.append((math.isqrt(patches), math.isqrt(patches)))
    for h, w in candidates:
        if int(h) * int(w) == patches:
            return int(h), int(w)
    return None


def feature_grid(model, features, image_size=None):
    """(N, C, h, w) view of forward_features' output `features` (or of a gradient with its
    shape): NCHW as it is, NHWC permuted, tokens without their prefix tokens reshaped to the
    patch grid (`image_size` (H, W) of the input finds the grid of a dynamic-size model).
    A layout that is none of these is a UserError naming the architecture."""
    name = architecture(model)
    if not torch.is_tensor(features):
        raise UserError(f"{name}: forward_features gives a {type(features).__name__}, not one feature map: "
                        f"no heatmaps for it")
    fmt = getattr(model, "output_fmt", None)  # timm sets it on its NHWC models (Swin...), a str or a Format
    fmt = str(getattr(fmt, "value", fmt) or "").upper()
    channels = getattr(model, "num_features", None)
    if features.dim() == 4:
        if fmt == "NHWC" or (fmt != "NCHW" and features.shape[1] != channels and features.shape[3] == channels):
            return features.permute(0, 3, 1, 2)
        return features
    if features.dim() == 3 and fmt in ("", "NLC"):
        n, length, c = features.shape
        prefix = prefix_tokens(model)
        patches = length - prefix
        if patches <= 0:
            raise UserError(f"{name}: forward_features gives only its {length} class/prefix token(s), "
                            f"no patch tokens: no heatmaps for it")
        grid = token_grid(model, patches, image_size)
        if grid is None:
            raise UserError(f"{name}: forward_features gives {length} tokens ({prefix} prefix), "
                            f"{patches} of which form no patch grid: no heatmaps for it")
        return features[:, prefix:].reshape(n, *grid, c).permute(0, 3, 1, 2)
    raise UserError(f"{name}: forward_features gives shape {tuple(features.shape)}"
                    f"{f' ({fmt})' if fmt else ''}, not a feature map (NCHW, NHWC or tokens): no heatmaps for it")


def class_activation_map(model, images):
    """(N, h, w) CAMs of the one-logit head: w . feature(position); with average pooling their
    mean plus the bias is the logit."""
    with torch.no_grad():
        features = feature_grid(model, model.forward_features(images), images.shape[-2:])
        weight = model.get_classifier().weight
        if weight.dim() != 2 or weight.shape[1] != features.shape[1]:
            raise UserError(f"{architecture(model)}: its classifier does not read the {features.shape[1]} "
                            f"channels of the feature map: no CAM for it (use Grad-CAM)")
        return torch.einsum("nchw,c->nhw", features.float(), weight[0].float())


def grad_cam(model, images, output=0):
    """(N, h, w) Grad-CAM maps: ReLU of the feature map weighted by the spatial mean of the
    gradient of logit `output` (the label, for a multi-label head) with respect to it.

    The head runs on the features as forward_features gives them (any layout); the features
    and their gradient become (N, C, h, w) only afterwards (feature_grid)."""
    with torch.no_grad():  # the backbone needs no graph: the gradient stops at its output
        features = model.forward_features(images)
    with torch.enable_grad():
        features = features.detach().requires_grad_(True)
        logits = model.forward_head(features)
        (gradients,) = torch.autograd.grad(logits[:, output].sum(), features)
    size = images.shape[-2:]
    features, gradients = feature_grid(model, features.detach(), size), feature_grid(model, gradients, size)
    weights = gradients.mean(dim=(2, 3), keepdim=True)
    return F.relu((weights * features).sum(1))


def head_gradients(model, features, generator=None):
    """Gradients w.r.t. `features` of a random projection of the head's pooled features (which
    do not depend on the classifier's weights, zero in some freshly made heads) and of its
    logits (which may read the positions another way, like VOLO's token-labelling head)."""
    gradients = []
    for pre_logits in (True, False):
        with torch.enable_grad():
            leaf = features.detach().requires_grad_(True)
            try:
                out = model.forward_head(leaf, pre_logits=True) if pre_logits else model.forward_head(leaf)
            except TypeError:  # a head without pre_logits
                continue
            out = out.float()
            projection = torch.randn(out.shape, generator=generator).to(out.device)
            gradients.append(torch.autograd.grad((out * projection).sum(), leaf)[0])
    return gradients


def heatmap_support(model, image_size=None):
    """None when `model` gives usable Grad-CAM heatmaps, else the one-line reason it cannot:
    checked on one random image (image_size: the training size, an int or (H, W); default the
    model's own input size) without changing the model (its train/eval mode is restored).
    Refused: a forward_features output that is no feature map (see feature_grid), and a head
    that reads no position of it (a ViT's class-token pooling: every Grad-CAM would be 0)."""
    from cxr.training.engine import unwrap

    network = unwrap(model)
    name = architecture(network)
    if image_size is None:
        image_size = getattr(getattr(network, "patch_embed", None), "img_size", None)
    if image_size is None:
        image_size = (getattr(network, "pretrained_cfg", None) or {}).get("input_size", (3, 224, 224))[1:]
    size = (int(image_size), int(image_size)) if np.isscalar(image_size) else tuple(int(s) for s in image_size)
    generator = torch.Generator().manual_seed(0)  # the global random state (training's) stays untouched
    parameter = next(network.parameters(), None)
    images = torch.randn(1, getattr(network, "input_channels", 3), *size, generator=generator).to(
        device=parameter.device if parameter is not None else "cpu",
        dtype=parameter.dtype if parameter is not None and parameter.is_floating_point() else torch.float32)
    training = network.training
    network.eval()
    try:
        with torch.no_grad():
            features = network.forward_features(images)
        grid = feature_grid(network, features, size)
        gradients = head_gradients(network, features, generator)
        if not any(feature_grid(network, g, size).abs().sum() > 0 for g in gradients):
            pool = getattr(network, "global_pool", None)
            alone = ": the class token alone" if pool == "token" else ""
            how = f" (global_pool='{pool}'{alone})" if isinstance(pool, str) else ""
            return (f"{name}: its head reads none of the {grid.shape[2]}x{grid.shape[3]} feature-map positions{how}, "
                    f"so every Grad-CAM would be 0")
    except UserError as err:
        return str(err)
    except Exception as err:  # noqa: BLE001 - any failure of the test image is a reason, in one line
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        return f"{name}: a {size[0]}x{size[1]} test image failed ({type(err).__name__}: {first})"
    finally:
        network.train(training)
    return None


def loader_cams(model, loader, device, channels_last=True):
    """(N, h, w) float16 Grad-CAMs (first output, feature-map resolution) of every image of a loader."""
    from cxr.training.engine import input_channels, to_device, unwrap

    network = unwrap(model).eval()
    channels = input_channels(network)
    maps = [grad_cam(network, to_device(images, device, channels_last, channels)).cpu().half() for images, _ in loader]
    return torch.cat(maps).numpy() if maps else np.zeros((0, 1, 1), np.float16)
