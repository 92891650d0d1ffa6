"""Backbone factory: any timm architecture by name, from scratch, pretrained, or a local file.

A missing download never hangs a run: when the weights hub cannot be reached, timm is put
in offline mode, so weights come from the local cache or the run stops with one clear line."""
import os
import socket
from pathlib import Path

import timm

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


def create_model(arch, num_classes=1, pretrained=False, weights="", drop_rate=0.0, drop_path_rate=0.0, pool="avg"):
    """A timm model with a `num_classes` head (1 = one logit for a binary target).

    `weights` (a local .pth/.bin/.safetensors file of timm's layout) wins over `pretrained`;
    the classifier is re-initialized when its size differs from the file's, as timm does."""
    if not timm.is_model(arch):
        close = timm.list_models(f"*{arch.split('.')[0][:6]}*")[:8]
        raise UserError(f"unknown architecture '{arch}'" + (f" (similar: {', '.join(close)})" if close else ""))
    if pool not in POOLS:
        raise UserError(f"--pool {pool}: expected one of {', '.join(POOLS)}")
    kwargs = dict(num_classes=num_classes, drop_rate=drop_rate, **({"global_pool": pool} if pool != "avg" else {}))
    if drop_path_rate:
        kwargs["drop_path_rate"] = drop_path_rate

    def make(**how):
        try:
            return timm.create_model(arch, **how, **kwargs)
        except TypeError as err:
            if "drop_path_rate" in str(err):
                raise UserError(f"--drop-path: {arch} has no stochastic depth (drop_path_rate)") from None
            if "global_pool" in str(err):
                raise UserError(f"--pool {pool}: {arch} has no choice of global pooling") from None
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


def penultimate_features(model, images):
    """(N, features): the pooled features the classifier sees (timm's forward_head(pre_logits=True))."""
    return model.forward_head(model.forward_features(images), pre_logits=True)
