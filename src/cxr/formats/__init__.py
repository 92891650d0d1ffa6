"""Submission formats, found by name in registry: objectcxr (the worked example), kaggle,
multilabel, multiclass, and the box and mask competitions' rsna, vinbig and siim (their shared
rows and checks in boxes); files holds the CSV reading, validation and atomic writing they share,
rle SIIM-ACR's run-length encoding of masks."""
