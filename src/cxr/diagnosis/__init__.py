"""Diagnosis: where a model looks (saliency, views), whether it needs the objects (occlusion),
which concepts move it (concepts, TCAV), and the search over training settings
(hyperparameter_search)."""
