"""Metrics: AUC and DeLong (auc), metrics at a threshold (thresholds), Object-CXR's FROC (froc),
and the registry that selection, blending and reports ask by name (registry)."""
