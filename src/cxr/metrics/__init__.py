"""Metrics: AUC and DeLong (auc), metrics at a threshold (thresholds), accuracy and log loss of
class probabilities (classes), Object-CXR's FROC (froc), a submission matched to its truth file
(scoring), and the registry that selection, blending and reports ask by name (registry)."""
