"""Apply a trained experiment to images nobody has seen: the blend spec, every model's fold
checkpoints and configs, the same preprocessing and TTA as the OOF predictions; images are
streamed in batches, never all in memory."""
import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from cxr.training import engine
from cxr.artifacts import blend_spec_path, spec_runs
from cxr.data.cache import ImageSpec, decode_gray, map_to_original, preprocess
from cxr.data.images import image_size
from cxr.data.labels import label_name
from cxr.blending.methods import methods
from cxr.errors import UserError
from cxr.localization.peaks import ensemble_heatmaps, heatmap_sources, original_points
from cxr.localization.gradcam import grad_cam
from cxr.localization.map_scores import any_object_map, map_image_probability
from cxr.models.factory import network_of
from cxr.data.transforms import eval_transform


@dataclass
class FoldModel:
    network: torch.nn.Module
    spec: ImageSpec
    tta: str
    targets: list  # the target column of each network output
    kind: str = "classifier"  # or "map" / "detector": its image probability by `image_score`
    image_score: str = ""
    precision: engine.Precision = engine.FP32  # what its OOF and test predictions were made in (config.json)
    fold: int = None  # the fold it held out (config.json); None: its place in the spec's list
    task: str = "binary"  # labels.TASKS: a multi-class network's outputs are a softmax


@dataclass
class Blend:
    """One target's blend: the method and its fitted parameters."""

    method: object
    params: dict


@dataclass
class Ensemble:
    models: dict  # model name -> [FoldModel, ...]
    blends: list  # one Blend per label, in the networks' output order
    labels: list  # the label names ([''] for a binary target)
    left_out: dict = field(default_factory=dict)  # model name -> {fold: FoldModel} blend.py left out as weak

    @property
    def heatmap_sources(self):
        """(model names, weights) whose heatmaps make the ensemble's (peaks.heatmap_sources)."""
        names = list(self.models)
        chosen, weights = heatmap_sources([self.models[n][0].kind for n in names], self.blends[0].params["weights"])
        return [names[j] for j in chosen], weights

    @property
    def task(self):
        """labels.TASKS: binary, multilabel, or multiclass (its blended rows scaled to sum to 1)."""
        return next(iter(self.models.values()))[0].task

    def held_out(self, fold):
        """The ensemble restricted to the fold-`fold` models: what never trained on that fold's images
        (an image of the training set predicted by it is predicted out-of-fold). A fold model that
        blend.py left out of the test predictions as weak is taken from `left_out`: out of fold, it
        is its fold's model all the same (load_ensemble(..., left_out=True) loads them)."""
        models = {}
        for name, folds in self.models.items():
            own = [m for place, m in enumerate(folds) if (place if m.fold is None else m.fold) == fold]
            if not own and fold in self.left_out.get(name, {}):
                own = [self.left_out[name][fold]]
            if not own:
                raise UserError(f"fold {fold}: the blend spec has no fold-{fold} model of {name}")
            models[name] = own
        return replace(self, models=models)

    @property
    def frame(self):
        """The network frame heatmaps are combined in: the first heatmap model's preprocessing."""
        names = self.heatmap_sources[0]
        return self.models[names[0] if names else next(iter(self.models))][0].spec


def load_ensemble(spec_path, device, left_out=False):
    """The blend spec at `spec_path` with every checkpoint it names, ready on `device`; with
    `left_out`, also the fold models blend.py left out of the test predictions as weak (for
    Ensemble.held_out: explain.py, occlude.py, tcav.py)."""
    spec_path = Path(spec_path)
    if not spec_path.is_file():
        raise UserError(f"{spec_path}: no blend spec (run src/blend.py for this experiment first)")
    spec = json.loads(spec_path.read_text())
    scores = spec.get("image_scores", {})  # blend.py put each map model's folds on one image score
    models = {name: [load_fold_model(run / "best.pt", device, scores.get(name)) for run in runs]
              for name, runs in spec_runs(spec, spec_path).items()}
    outputs = next(iter(models.values()))[0].targets
    labels = [label_name(c) for c in outputs]
    per_label = spec["labels"] if "labels" in spec else {"": spec}
    if sorted(per_label) != sorted(labels):
        raise UserError(f"{spec_path}: blends for labels {sorted(per_label)} but the models predict {labels}")
    weak = spec.get("weak_folds", {}) if left_out else {}
    spare = {name: {k: load_fold_model(run / "best.pt", device, scores.get(name))
                    for k, run in zip(weak["dropped"][name], runs)}
             for name, runs in spec_runs(spec, spec_path, weak.get("dropped_runs", {})).items()}
    return Ensemble(models, [blend_of(per_label[label], spec_path) for label in labels], labels, spare)


def load_experiment(args):
    """(device, Ensemble, data set folder, fold table) for a script reading a trained experiment
    (add_experiment_reading's flags): the blend spec's checkpoints on --device, the data set's folds."""
    from cxr.artifacts import folds_file
    from cxr.data.folds import read_folds
    from cxr.data.layouts import require_data_set

    device = engine.resolve_device(args.device)
    ensemble = load_ensemble(blend_spec_path(args.submissions_dir, args.exp), device, left_out=True)
    root = Path(args.input_dir) / args.dataset
    if not folds_file(args.folds_dir, args.dataset).is_file():  # a wrong --dataset: say so, with those there are
        require_data_set(root)
    return device, ensemble, root, read_folds(folds_file(args.folds_dir, args.dataset))


def blend_of(choice, spec_path):
    method = next((m for m in methods() if m.name == choice["method"]), None)
    if method is None:
        raise UserError(f"{spec_path}: unknown blend method '{choice['method']}'")
    return Blend(method, choice["params"])


def load_fold_model(checkpoint, device, image_score=None):
    """A fold model from its checkpoint and config.json; a map model scores images by `image_score`
    (the blend's one score for the model) or else the one its fold chose."""
    if not checkpoint.is_file():
        raise UserError(f"{checkpoint}: checkpoint named by the blend spec not found")
    state = engine.load_checkpoint(checkpoint)
    cfg = state["config"]
    recorded = json.loads((checkpoint.parent / "config.json").read_text())
    targets = recorded.get("targets", ["target"])
    network = network_of(cfg, len(targets))
    network.load_state_dict(state["model"])
    return FoldModel(network.to(device).eval(), ImageSpec.of(cfg), cfg.get("tta", "none"), targets,
                     cfg.get("kind", "classifier"), image_score or recorded.get("image_score_used", "max"),
                     engine.precision_named(recorded.get("precision", "fp32")), recorded.get("fold"),
                     recorded.get("task", "binary"))


def check_readable(paths):
    """Every image must exist and have a readable header; one error lists all that do not."""
    bad = []
    for path in paths:
        try:
            image_size(path)
        except Exception:  # noqa: BLE001 (any failure to read a header makes the image unusable)
            bad.append(str(path))
    if bad:
        raise UserError(f"{len(bad)} image(s) missing or unreadable: {', '.join(bad[:10])}"
                        + (" ..." if len(bad) > 10 else ""))


def network_batch(grays, network, spec, device):
    """The input of `network` on `device` for grayscale images of any size: preprocessed as train.py's
    cache made its images, then as its loaders gave them (engine.to_device)."""
    as_tensor = eval_transform()
    images = torch.stack([as_tensor(image=preprocess(g, spec))["image"] for g in grays])
    return engine.to_device(images, device, False, engine.input_channels(network))


def predict_batch(ensemble, grays, device, heatmaps=False):
    """(blended probabilities (b, labels), per-model probabilities (b, models, labels), ensemble
    heatmaps or None).

    Each model's probability is the mean of its fold models', as in blend.py; each label is
    blended by its own method. The heatmap (of the first label) is the blend-weighted mean of
    every fold model's object map (map models) or else Grad-CAM (see Ensemble.heatmap_sources),
    each scaled to [0, 1] per image, in the first such model's network frame (models with
    another frame are left out of it)."""
    probabilities, cams, weights = [], [], []
    frame = ensemble.frame
    sources = dict(zip(*ensemble.heatmap_sources))
    for name, folds in ensemble.models.items():
        with_cams = heatmaps and name in sources and folds[0].spec == frame
        model_probabilities, fold_cams = fold_outputs(folds, grays, device, with_cams)
        probabilities.append(model_probabilities)
        if with_cams:
            cams.append(fold_cams)
            weights.append(sources[name])
    P = np.stack(probabilities, axis=1)
    blended = np.column_stack([b.method.combine(P[:, :, j], b.params) for j, b in enumerate(ensemble.blends)])
    if ensemble.task == "multiclass":  # as blend.py: each row's classes sum to 1
        from cxr.blending.classes import as_class_probabilities

        blended = as_class_probabilities(blended)
    return blended, P, (ensemble_heatmaps(cams, weights, frame.size).numpy() if cams else None)


def fold_outputs(folds, grays, device, cams=False, output=0):
    """(probabilities (b, labels): the mean of the fold models', [each fold's heatmaps (b, h, w):
    a map model's object maps, a classifier's Grad-CAMs] when `cams`, else []) of one model for a
    batch of grayscale images, as train.py predicted its OOF and test images: the models of one
    fold trained with several seeds (train.py --seeds) are first averaged into the fold's
    prediction and map, as train.py wrote them."""
    by_fold = {}
    for place, model in enumerate(folds):
        by_fold.setdefault(place if model.fold is None else model.fold, []).append(model)
    probabilities, maps = [], []
    for seeds in by_fold.values():
        outputs = [model_outputs(model, grays, device, cams, output) for model in seeds]
        probabilities.append(np.mean([p for p, _ in outputs], axis=0))
        if cams:
            maps.append(torch.stack([m.float() for _, m in outputs]).mean(0).half() if len(outputs) > 1
                        else outputs[0][1])
    return np.mean(probabilities, axis=0), maps


def model_outputs(model, grays, device, cams=False, output=0):
    """(probabilities (b, labels), heatmaps (b, h, w) of label or class `output` when `cams`, else
    None) of one fold model."""
    images = network_batch(grays, model.network, model.spec, device)
    logits, object_maps = engine.tta_outputs(model.network, images, device, model.precision, model.tta)
    probability = engine.probabilities(logits, model.task == "multiclass").cpu().numpy()
    if object_maps is not None:
        object_maps = object_maps.cpu().half()
        probability = map_image_probability(probability, object_maps.numpy(), model.image_score)
        object_maps = any_object_map(object_maps)  # the heatmap of points: (b, h, w)
    if not cams:
        return probability, None
    return probability, object_maps if object_maps is not None else grad_cam(model.network, images, output).cpu()


def run(ensemble, paths, device, batch_size=16, localize=False, max_points=10, on_heatmap=None, unreadable=None,
        progress=False):
    """(probabilities (n, labels), points per image in original pixels or None) for image files `paths`.
    `on_heatmap(path, gray, heatmap)`, when given, receives each image with the ensemble's
    heatmap mapped onto it (original pixels). An image that cannot be read stops the run before
    any prediction, all such listed; with a list as `unreadable`, it is appended there as
    (path, reason) instead and predicted 0.5 for every label with no points (an evaluation
    server scores a file with one unreadable film; it scores no file at all as nothing).
    `progress`: a line on stderr about every 10 % of the images (done, images per second, time left)."""
    localize = localize or on_heatmap is not None
    if unreadable is None:
        check_readable(paths)
    frame = ensemble.frame
    probabilities, points = [], []
    started, reported = time.time(), 0
    for start in range(0, len(paths), batch_size):
        batch = paths[start:start + batch_size]
        grays = [decoded(path, unreadable) for path in batch]
        readable = [j for j, gray in enumerate(grays) if gray is not None]
        blended = np.full((len(batch), len(ensemble.labels)), 0.5)
        maps = [None] * len(batch)
        if readable:
            blended[readable], _, batch_maps = predict_batch(ensemble, [grays[j] for j in readable], device,
                                                             heatmaps=localize)
            for j, heatmap in zip(readable, batch_maps if batch_maps is not None else []):
                maps[j] = heatmap
        probabilities.append(blended)
        for path, gray, probability, heatmap in zip(batch, grays, blended[:, 0], maps):
            if heatmap is None:  # an unreadable image, or an ensemble without heatmaps: no points, one row all the same
                points.append([])
                continue
            height, width = gray.shape
            if on_heatmap is not None:
                on_heatmap(path, gray, map_to_original(heatmap, width, height, frame.mode))
            points.append(original_points(heatmap, probability, width, height, frame, max_points))
        done = start + len(batch)
        if progress and (done - reported >= len(paths) / 10 or done == len(paths)):
            reported = done
            rate = done / max(time.time() - started, 1e-9)
            print(f"predict: {done}/{len(paths)} images, {rate:.1f} images/s, about "
                  f"{(len(paths) - done) / rate:.0f} s left", file=sys.stderr, flush=True)
    probabilities = np.concatenate(probabilities) if probabilities else np.zeros((0, len(ensemble.labels)))
    return probabilities, (points if localize else None)


def decoded(path, unreadable=None):
    """The grayscale pixels of `path`; None, with (path, reason) appended to `unreadable`, when they
    cannot be read and a list is given (else the error stops the run)."""
    try:
        return decode_gray(path)  # checks the end marker too: a truncated file is refused, not padded grey
    except Exception as err:  # noqa: BLE001 (whatever fails, the image is unusable)
        if unreadable is None:
            raise
        unreadable.append((str(path), str(err) if isinstance(err, UserError) else f"{type(err).__name__}: {err}"))
        return None
