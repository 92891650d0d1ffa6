"""Models: any timm backbone by name (backbones), the map model that learns object outlines
(map_model), and the one call that builds either from a run's settings (factory)."""
