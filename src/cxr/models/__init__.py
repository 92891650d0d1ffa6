"""Models: any timm backbone by name (backbones), the map model that learns object outlines
(map_model), the detector that learns their boxes and paints them into object maps (detector),
the one call that builds any of them from a run's settings (factory), and the kinds themselves
(kinds: which of them learn objects)."""
