"""Diagnosis: where a model looks (saliency), whether it needs the objects (occlusion), which
concepts move it (concepts, TCAV), and the search over training settings (training_search)."""
