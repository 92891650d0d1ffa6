"""Data: a data set folder read into one table per side (layouts), Object-CXR annotations,
images (PNG, JPEG, DICOM) read and checked, the decode-once cache, duplicates, folds, the torch
Dataset and its augmentations."""
