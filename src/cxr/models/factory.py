"""One network from a run's settings: a classifier (create_model), a map model
(create_map_model) or a detector (create_detector), from scratch, pretrained or a local weights file."""
from cxr.models.detector import create_detector
from cxr.models.map_model import create_map_model
from cxr.models.backbones import create_model


def network_of(settings, num_labels=1, pretrained=False, weights="", object_maps=None):
    """The network a run's settings (a TrainConfig, or its saved config as a dict) describe:
    a classifier, a map model or a detector (`object_maps` maps, else one per class the saved
    config's `map_classes` lists, else one). Training and inference build it here alike. The network keeps
    its input channels as `input_channels` (engine.to_device makes its input from them)."""
    get = settings.get if isinstance(settings, dict) else lambda name, default=None: getattr(settings, name, default)
    channels = get("in_chans", 3)
    common = dict(num_classes=num_labels, pretrained=pretrained, weights=weights, drop_rate=get("drop_rate", 0.0),
                  drop_path_rate=get("drop_path", 0.0), in_chans=channels)
    maps = object_maps or len(get("map_classes") or []) or 1
    if get("kind", "classifier") == "detector":
        network = create_detector(get("arch"), channels=get("map_channels", 64), object_maps=maps, **common)
    elif get("kind", "classifier") == "map":
        network = create_map_model(get("arch"), channels=get("map_channels", 64), deepest_stride=get("map_depth", 16),
                                   object_maps=maps, **common)
    else:
        network = create_model(get("arch"), pool=get("pool", "avg"), img_size=get("img_size"), **common)
    network.input_channels = channels
    return network
