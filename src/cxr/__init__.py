"""cxr: the library behind the scripts in src/. One sub-package a concern; a script
(src/train.py, src/blend.py, ...) parses flags and calls in here; nothing here imports a script.

    data/          layouts and readers, annotations, images and DICOM, cache, dedup, folds, the Dataset, transforms
    models/        the backbone factory (timm), the map model
    training/      the epoch loop, losses, the recipe, one fold's run, distributed, the overfit check
    localization/  Grad-CAM, map scores, heatmap peaks to points, targets from outlines, FROC of a blend
    metrics/       AUC and DeLong, threshold metrics, FROC
    blending/      blending methods and nested evaluation, weak folds
    testside/      adversarial validation, pseudo-labels, BatchNorm adaptation (AdaBN), label-prior shift
    inference/     a saved blend applied to new images, the Kaggle package and its entry point
    formats/       submission files: columns, ids, validation, writers
    diagnosis/     saliency, occlusion, concepts (TCAV), the training search
    config.py, run_file.py   settings of a run, and of a whole experiment file
    artifacts.py, errors.py, figures.py   where files live and how they are written; user errors; PNGs
"""
