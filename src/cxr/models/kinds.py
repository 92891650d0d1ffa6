"""The kinds of model a run trains, and which of them learn from object annotations and write
object maps (a map model's own, a detector's painted from its boxes): a room of its own so the
inference code a package carries can ask without importing the training settings (config.py)."""

KINDS = ("classifier", "map", "detector")
OBJECT_KINDS = ("map", "detector")
