"""Metrics: AUC and DeLong (auc), metrics at a threshold (thresholds), Object-CXR's FROC (froc)."""
