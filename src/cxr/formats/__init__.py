"""Submission formats, found by name in registry: objectcxr (the worked example), kaggle,
multilabel, multiclass; files holds the CSV reading, validation and atomic writing they share,
rle SIIM-ACR's run-length encoding of masks."""
