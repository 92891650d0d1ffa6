"""Backbone factory: any timm architecture by name, from scratch, pretrained, or a local file.

A missing download never hangs a run: when the weights hub cannot be reached, timm is put
in offline mode, so weights come from the local cache or the run stops with one clear line."""
import os
import socket
from pathlib import Path

import timm

from cxr.errors import UserError


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
