"""The blend spec (submissions/<exp>/blend.json): everything inference needs to give new images
the same blend: per label the method, its fitted parameters and threshold, the fold runs of
each model, the precision each predicted in, and what was done with weak folds."""
from pathlib import Path

from cxr.artifacts import fold_runs

def blend_spec(args, models, kept, weak_folds, labels, choices, image_scores=None):
    """Everything inference needs to reproduce the blend on new images: per label (one entry,
    flat, for a binary target) the method, its fitted parameters and threshold; the fold runs
    of each model whose test predictions were averaged (`kept`), what was done with weak folds,
    and the one image score each map model's folds were put on (`image_scores`)."""
    runs = {m: model_runs(args, m, kept[m]) for m in models}
    common = {"exp": args.exp, "dataset": args.dataset, "models": models, "format": args.format, "runs": runs,
              "precision": recorded_precisions(runs), "weak_folds": weak_folds, "image_scores": image_scores or {},
              "test_prediction": "each model: mean of its fold models' probabilities; then the method"}
    if labels == [""]:
        return {**common, **choices[0]}
    return {**common, "labels": dict(zip(labels, choices))}


def model_runs(args, model, folds):
    """The run folders of `model`'s `folds`, every seed's of each (artifacts.fold_runs), as the spec names them."""
    return [str(run) for fold in folds for run in fold_runs(args.weights_dir, args.exp, model, fold)]


def recorded_precisions(runs):
    """{model: the precision its fold models predicted their OOF and test rows in (config.json;
    'fp32/bf16' when folds differ)}: inference (inference/ensemble.py) runs each fold model in its own."""
    import json

    def precision(run):
        path = Path(run) / "config.json"
        return json.loads(path.read_text()).get("precision", "fp32") if path.is_file() else "fp32"
    return {model: "/".join(sorted({precision(run) for run in folder})) for model, folder in runs.items()}
