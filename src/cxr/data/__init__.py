"""Data: a data set folder read into one table per side (layouts), its ids matched to files (ids),
rows that name folders of images read as studies (studies), the box and mask competitions'
layouts (competitions),
Object-CXR annotations (annotations), images read and checked (images, dicom), the decode-once cache
(cache), duplicates (dedup), folds (folds), label column names and the task (labels), the torch Dataset (dataset)
and its augmentations (transforms), the demo generator (demo), a data set's overview (overview), and
the final models' set of training and dev images (final_set)."""
