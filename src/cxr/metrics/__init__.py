"""Metrics: AUC and DeLong (auc), metrics at a threshold (thresholds), accuracy and log loss of
class probabilities (classes), Object-CXR's FROC (froc), the box and mask
metrics of RSNA, VinBigData and SIIM-ACR (detection) and their submissions scored (object_scoring), a submission matched to its truth file
(scoring), and the registry that selection, blending and reports ask by name (registry)."""
