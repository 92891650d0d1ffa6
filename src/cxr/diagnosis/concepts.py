"""Concept tests (TCAV, Kim et al. 2018): does a concept a person can name (a rectangular
object, a round one, the images of a folder) push a model's score up?

    concept_vector   the concept activation vector (CAV): the unit normal of a linear classifier
                     separating a layer's activations of concept images from random ones
    tcav_score       the share of a class's images whose score grows along the CAV (positive
                     directional derivative)
    tcav_test        the score against several random sets, compared by a two-sided t-test with
                     random-vs-random CAVs: a CAV of random images scores something too

Concept images are items (path or image id, window or None): a window (centre x, centre y,
side) is a square crop of the image in original pixels, None the whole image. Pure functions
(numpy, torch, scikit-learn, scipy); src/tcav.py runs them on an experiment."""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cxr.errors import UserError
from cxr.figures import pyplot, save_figure

SHAPE_CONCEPTS = {0: "rectangular", 1: "round", 2: "irregular"}  # Shape.kind -> concept name
MIN_CONCEPT_IMAGES = 10  # fewer make a CAV that is noise


# ---------------------------------------------------------------- layers, activations, gradients
def layer_names(network):
    """The modules TCAV tests by default: the stages timm lists in `feature_info` from stride 4 on
    (the stem sees pixels, not concepts): a classifier's own, a map model's encoder's ('encoder.')."""
    encoder = getattr(network, "encoder", None)
    prefix, source = ("encoder.", encoder) if hasattr(encoder, "feature_info") else ("", network)
    info = getattr(source, "feature_info", None) or []
    stages = info.get_dicts() if hasattr(info, "get_dicts") else info
    names = [module_name(network, prefix + stage["module"]) for stage in stages if stage.get("reduction", 4) >= 4]
    return [name for name in names if name]


def module_name(network, name):
    """`name` as `network.named_modules()` spells it, or None: timm's feature wrappers flatten
    `stages.0` to `stages_0`, and a map model's stages may be named without 'encoder.'."""
    modules = dict(network.named_modules())
    prefix = "encoder." if "encoder" in modules else ""
    stem = name[len(prefix):] if prefix and name.startswith(prefix) else name
    candidates = (name, prefix + stem, prefix + stem.replace(".", "_"))
    return next((candidate for candidate in candidates if candidate in modules), None)


def checked_layers(network, names):
    """The modules `names` of `network` (default: layer_names); an unknown one is a UserError
    naming some that exist."""
    if not names:
        names = layer_names(network)
        if not names:
            raise UserError("the network lists no stages (timm feature_info): name modules with --layers")
    found = [module_name(network, name) for name in names]
    unknown = [name for name, module in zip(names, found) if module is None]
    if unknown:
        stages = layer_names(network) or [n for n, _ in network.named_children()]
        raise UserError(f"--layers {unknown[0]}: no such module in the network (its stages: {', '.join(stages)}; "
                        f"any name of network.named_modules() will do)")
    return found


def activations_and_gradients(network, images, layers, score=None, pooled=False):
    """({layer: (N, D) float32 activations}, {layer: (N, D) gradients of `score(images)` (N,) with
    respect to them}, or None without a score) from one forward pass with hooks on the modules
    `layers`. `score` is a function of the network's float input (saliency.fold_score); in eval
    mode each image's gradient is its own score's."""
    modules = dict(network.named_modules())
    outputs = {}

    def keep(name):
        def hook(module, inputs, output):
            if not torch.is_tensor(output):
                raise UserError(f"--layers {name}: its output is a {type(output).__name__}, not one tensor")
            outputs[name] = output
            return output + 0  # the network goes on with a copy: an in-place ReLU must not change what we keep

        return hook

    handles = [modules[name].register_forward_hook(keep(name)) for name in layers]
    try:
        with torch.set_grad_enabled(score is not None):
            leaf = images.detach().float().requires_grad_(score is not None)  # a graph even for frozen weights
            result = score(leaf) if score is not None else network(leaf)
            missing = [name for name in layers if name not in outputs]
            if missing:
                raise UserError(f"--layers {missing[0]}: the network's forward pass never runs it")
            hooked = [outputs[name] for name in layers]
            gradients = (torch.autograd.grad(result.sum(), hooked, allow_unused=True)
                         if score is not None else None)
    finally:
        for handle in handles:
            handle.remove()
    flat = {name: flattened(a, pooled and "mean") for name, a in zip(layers, hooked)}
    if gradients is None:
        return flat, None
    return flat, {name: flattened(g if g is not None else torch.zeros_like(a), pooled and "sum")  # unused: no slope
                  for name, a, g in zip(layers, hooked, gradients)}


def flattened(tensor, pool=None):
    """(N, D) of a layer's output: every value (the paper's flattened activations), or with `pool`
    a (N, C, H, W) map's spatial mean (activations) or sum (gradients). A pooled CAV v moves every
    position along v alike: the mean moves by v, the score by the gradient's spatial sum . v, so
    the directional derivative stays exact. Objects a few pixels wide anywhere in the image are
    then one direction, not a different one per position."""
    tensor = tensor.detach().float()
    if pool and tensor.dim() == 4:
        tensor = tensor.mean((2, 3)) if pool == "mean" else tensor.sum((2, 3))
    return tensor.flatten(1).cpu().numpy()


def collect(network, items, load, to_input, layers, score=None, batch_size=16, pooled=False):
    """activations_and_gradients of every item, in batches (memory): `load(item)` gives a grayscale
    image, `to_input(grays)` the network's input (inference/ensemble.py network_batch)."""
    activations, gradients = {name: [] for name in layers}, {name: [] for name in layers}
    for start in range(0, len(items), batch_size):
        images = to_input([load(item) for item in items[start:start + batch_size]])
        batch_activations, batch_gradients = activations_and_gradients(network, images, layers, score, pooled)
        for name in layers:
            activations[name].append(batch_activations[name])
            if batch_gradients is not None:
                gradients[name].append(batch_gradients[name])
    joined = {name: np.concatenate(parts) for name, parts in activations.items()}
    return joined, ({name: np.concatenate(parts) for name, parts in gradients.items()} if score is not None else None)


# ---------------------------------------------------------------- CAVs and the test
def concept_vector(concept_acts, random_acts, seed=0):
    """(the unit CAV pointing from the random activations towards the concept's, the linear
    classifier's accuracy on a held-out third). A linear SVM fitted by SGD, as the paper's code
    and captum fit it, on centred activations: SGD's normal would otherwise drift along what all
    the images share (the mean activation), which says nothing of the concept."""
    from sklearn.linear_model import SGDClassifier
    from sklearn.model_selection import train_test_split

    features = np.concatenate([concept_acts, random_acts]).astype(np.float64)
    features -= features.mean(0)
    coordinates, to_activations = span_basis(features)
    labels = np.r_[np.ones(len(concept_acts)), np.zeros(len(random_acts))]
    train, test = train_test_split(np.arange(len(labels)), test_size=1 / 3, stratify=labels, random_state=seed)
    classifier = SGDClassifier(alpha=0.01, max_iter=1000, tol=1e-3, random_state=seed)
    classifier.fit(coordinates[train], labels[train])
    accuracy = float(classifier.score(coordinates[test], labels[test]))
    normal = classifier.coef_[0] @ to_activations
    norm = np.linalg.norm(normal)
    return (normal / norm if norm > 0 else normal), accuracy


def span_basis(features):
    """(the n images' coordinates in an orthonormal basis of the span of their (n, D) activations,
    the (r, D) basis). A linear model with an L2 penalty fitted by SGD only ever moves its weights
    along the samples, so fitting it in these r <= n coordinates is the same fit as in all D
    dimensions, and D (a flattened layer: 10^5-10^6) no longer sets the cost. From the Gram matrix:
    X X^T = U S^2 U^T, the coordinates U S and the basis S^-1 U^T X."""
    gram = features @ features.T
    values, vectors = np.linalg.eigh(gram)
    kept = values > values.max() * 1e-10 if values.max() > 0 else np.zeros_like(values, bool)
    scales = np.sqrt(values[kept])
    if not kept.any():  # all images alike: nothing to separate
        return np.zeros((len(features), 1)), np.zeros((1, features.shape[1]))
    return vectors[:, kept] * scales, (vectors[:, kept] / scales).T @ features


def tcav_score(gradients, cav):
    """The share of images whose directional derivative (gradient . CAV) is positive."""
    return float(np.mean(gradients @ cav > 0))


@dataclass
class TcavResult:
    score: float  # mean TCAV score of the concept's CAVs over the runs
    std: float
    random_score: float  # mean TCAV score of the random-vs-random CAVs: the null
    random_std: float
    p_value: float  # two-sided t-test, concept scores vs random ones
    significant: bool
    accuracy: float  # mean held-out accuracy of the concept's CAVs
    runs: int


def tcav_test(concept_acts, random_pool_acts, gradients, runs=10, seed=0, alpha=0.05):
    """TcavResult of a concept at one layer. Each run draws two disjoint random sets of the
    concept set's size from the pool (half the pool when smaller): a CAV of the concept against
    the first gives a score, one of the second against the first a random baseline score; the
    two samples of scores are compared by a two-sided t-test (scipy's ttest_ind), as the paper does."""
    import warnings

    from scipy.stats import ttest_ind

    size = min(len(concept_acts), len(random_pool_acts) // 2)
    if size < 3:
        raise ValueError(f"a random pool of {len(random_pool_acts)} images is too small for the test")
    rng = np.random.default_rng(seed)
    scores, baseline, accuracies = [], [], []
    for run in range(runs):
        order = rng.permutation(len(random_pool_acts))
        negatives, others = random_pool_acts[order[:size]], random_pool_acts[order[size:2 * size]]
        cav, accuracy = concept_vector(concept_acts, negatives, seed + run)
        scores.append(tcav_score(gradients, cav))
        accuracies.append(accuracy)
        baseline.append(tcav_score(gradients, concept_vector(others, negatives, seed + run)[0]))
    with warnings.catch_warnings():  # scores without spread (all 1.0) make scipy warn; the test still holds
        warnings.simplefilter("ignore", RuntimeWarning)
        p_value = float(ttest_ind(scores, baseline).pvalue) if runs > 1 else float("nan")
    p_value = 1.0 if np.isnan(p_value) else p_value  # identical samples without spread: no evidence
    return TcavResult(float(np.mean(scores)), float(np.std(scores)), float(np.mean(baseline)), float(np.std(baseline)),
                      p_value, p_value < alpha, float(np.mean(accuracies)), runs)


# ---------------------------------------------------------------- concept images
def object_window(shape, scale=3.0, min_side=32):
    """(centre x, centre y, side): a square `scale` times the object's larger extent, at least
    `min_side` pixels: the object with some of its surroundings, as a concept image shows it."""
    (x1, y1), (x2, y2) = shape.points.min(0), shape.points.max(0)
    return (x1 + x2) / 2, (y1 + y2) / 2, max(min_side, scale * max(x2 - x1, y2 - y1))


def crop(gray, window):
    """The square `window` of `gray`, moved inside the image (and cut where the image is smaller)."""
    height, width = gray.shape
    cx, cy, side = window
    w, h = min(round(side), width), min(round(side), height)
    left = int(np.clip(round(cx - w / 2), 0, width - w))
    top = int(np.clip(round(cy - h / 2), 0, height - h))
    return gray[top:top + h, left:left + w]


def shape_concepts(objects, per_concept, seed=0, scale=3.0, min_side=32):
    """{concept: [(image id, window)]}: up to `per_concept` annotated objects of each kind
    (SHAPE_CONCEPTS, drawn seeded), each as a window around it. `objects`: {image id: [Shape]}."""
    found = {name: [] for name in SHAPE_CONCEPTS.values()}
    for image_id in sorted(objects):
        for shape in objects[image_id]:
            found[SHAPE_CONCEPTS[shape.kind]].append((image_id, object_window(shape, scale, min_side)))
    return {name: sample(items, per_concept, seed) for name, items in found.items()}


def shape_images(objects, per_concept, seed=0, exclude=()):
    """{concept: [(image id, None)]}: up to `per_concept` whole images (drawn seeded) whose every
    annotated object is of one kind (SHAPE_CONCEPTS): the concept at the scale and in the context
    the model saw it in training. Images in `exclude` (the tested fold's) are left out."""
    found = {name: [] for name in SHAPE_CONCEPTS.values()}
    for image_id in sorted(objects):
        kinds = {shape.kind for shape in objects[image_id]}
        if len(kinds) == 1 and image_id not in exclude:
            found[SHAPE_CONCEPTS[kinds.pop()]].append((image_id, None))
    return {name: sample(items, per_concept, seed) for name, items in found.items()}


def random_crops(sizes, sides, count, seed=0):
    """[(image id, window)]: `count` windows at random places of random images of `sizes` ({image
    id: (width, height)}), their sides drawn from `sides` (the concept windows'): random
    counterparts at the concepts' scale."""
    rng = np.random.default_rng(seed)
    ids = sorted(sizes)
    crops = []
    for _ in range(count):
        image_id, side = ids[rng.integers(len(ids))], float(sides[rng.integers(len(sides))])
        width, height = sizes[image_id]
        half_w, half_h = min(side, width) / 2, min(side, height) / 2
        crops.append((image_id, (rng.uniform(half_w, width - half_w), rng.uniform(half_h, height - half_h), side)))
    return crops


def folder_concepts(folder):
    """{concept: [(image path, None)]}: each sub-folder of `folder` holding images is a concept
    named after it; a folder holding images and no such sub-folder is one concept."""
    from cxr.data.ids import IMAGE_SUFFIXES

    named, folder = folder, Path(folder).absolute()  # absolute: load_gray joins items to the data set's root
    if not folder.is_dir():
        raise UserError(f"--concept-dir {named}: no such folder")

    def images(where):
        return [(p, None) for p in sorted(where.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]

    concepts = {sub.name: images(sub) for sub in sorted(folder.iterdir()) if sub.is_dir()}
    concepts = {name: items for name, items in concepts.items() if items} or {folder.name: images(folder)}
    if not next(iter(concepts.values())):
        raise UserError(f"--concept-dir {named}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in it "
                        f"or its sub-folders")
    return concepts


def sample(items, count, seed=0):
    """Up to `count` of `items`, drawn seeded, in their order."""
    if len(items) <= count:
        return list(items)
    return [items[i] for i in sorted(np.random.default_rng(seed).choice(len(items), count, replace=False))]


def load_gray(item, root="."):
    """The grayscale uint8 image of a concept item (path or image id below `root`, window or None)."""
    from cxr.data.cache import decode_gray

    where, window = item
    gray = decode_gray(Path(root) / where)
    return crop(gray, window) if window is not None else gray


# ---------------------------------------------------------------- the study of an experiment (src/tcav.py)
WEAK_CAV = 0.6  # a CAV's held-out accuracy below this: the layer hardly separates the concept from random images


def concept_sets(args, root, folds):
    """({concept: items}, random items): the folder's concepts against whole random training images;
    or the annotated objects by shape: whole images holding objects of one kind (--concepts whole)
    or crops around the objects (crops), against whole images without objects or random crops of
    them at the concepts' sizes. The tested fold's images are left out of both."""
    from cxr.diagnosis.concepts import (MIN_CONCEPT_IMAGES, folder_concepts, random_crops, sample, shape_concepts,
        shape_images)
    from cxr.data.images import image_size
    from cxr.localization.evaluation import annotations

    others = sorted(folds.loc[folds["fold"] != args.fold, "image_id"])
    if args.concept_dir:
        concepts = {name: sample(items, args.per_concept, args.seed)
                    for name, items in folder_concepts(args.concept_dir).items()}
        small = {name: len(items) for name, items in concepts.items() if len(items) < MIN_CONCEPT_IMAGES}
        if small:
            name, count = next(iter(small.items()))
            raise UserError(f"--concept-dir {args.concept_dir}: concept '{name}' has {count} images; a CAV needs at "
                            f"least {MIN_CONCEPT_IMAGES}")
        return concepts, [(i, None) for i in sample(others, args.random_images, args.seed)]
    objects = annotations(root)[0] if root.is_dir() else None
    if not objects or not any(objects.values()):
        raise UserError(f"{root}: no annotated objects to make concepts of; name concept images with --concept-dir DIR")
    objects = {i: objects[i] for i in others if i in objects}
    if args.concepts == "whole":
        found = shape_images(objects, args.per_concept, args.seed)
    else:
        found = shape_concepts(objects, args.per_concept, args.seed)
    concepts = {name: items for name, items in found.items() if len(items) >= MIN_CONCEPT_IMAGES}
    if not concepts:
        counts = ", ".join(f"{name} {len(items)}" for name, items in found.items())
        raise UserError(f"{root}: fewer than {MIN_CONCEPT_IMAGES} {'images' if args.concepts == 'whole' else 'objects'} "
                        f"of every shape outside fold {args.fold} ({counts}); "
                        f"{'try --concepts crops, or ' if args.concepts == 'whole' else ''}name concept images with "
                        f"--concept-dir DIR")
    for name in found.keys() - concepts.keys():
        print(f"concept '{name}' left out: {len(found[name])} {'images' if args.concepts == 'whole' else 'objects'}, "
              f"a CAV needs {MIN_CONCEPT_IMAGES}")
    empty = sample(sorted(image for image, shapes in objects.items() if not shapes) or sorted(objects),
                   args.random_images, args.seed)
    if args.concepts == "whole":
        return concepts, [(i, None) for i in empty]
    sizes = {image: image_size(root / image) for image in empty}
    sides = [window[2] for items in concepts.values() for _, window in items]
    return concepts, random_crops(sizes, sides, args.random_images, args.seed)


def oof_positives(folds, fold, column, count, seed):
    """Items of up to `count` positives of fold `fold` (seeded): images its fold model never trained on."""
    from cxr.diagnosis.concepts import sample

    if fold not in set(folds["fold"]):
        raise UserError(f"--fold {fold}: the fold file has folds {', '.join(map(str, sorted(set(folds['fold']))))}")
    ids = folds.loc[(folds["fold"] == fold) & (folds[column] == 1), "image_id"]
    if ids.empty:
        raise UserError(f"fold {fold} has no positive images ('{column}' = 1) to take the score's gradients of")
    return [(i, None) for i in sample(sorted(ids), count, seed)]


def concept_rows(name, fold_model, concepts, randoms, positives, root, args, output, device):
    """The result rows of one fold model: every concept at every layer."""
    from cxr.diagnosis.concepts import checked_layers, collect, load_gray, tcav_test
    from cxr.inference.ensemble import network_batch
    from cxr.diagnosis.saliency import fold_score

    network = fold_model.network
    layers = checked_layers(network, args.layers)

    def gather(items, score=None):  # ({layer: activations}, {layer: gradients} or None)
        return collect(network, items, lambda item: load_gray(item, root),
                       lambda grays: network_batch(grays, network, fold_model.spec, device), layers, score,
                       args.batch_size, args.activations == "pooled")

    random_acts, _ = gather(randoms)
    _, gradients = gather(positives, fold_score(fold_model, output))
    rows = []
    for concept, items in concepts.items():
        concept_acts, _ = gather(items)
        for layer in layers:
            result = tcav_test(concept_acts[layer], random_acts[layer], gradients[layer], args.runs, args.seed,
                               args.alpha)
            rows.append({"model": name, "fold": args.fold, "layer": layer, "concept": concept, "tcav": result.score,
                         "tcav_std": result.std, "random_tcav": result.random_score, "random_std": result.random_std,
                         "p_value": result.p_value, "significant": result.significant,
                         "cav_accuracy": result.accuracy, "n_concept": len(items), "n_random": len(randoms),
                         "n_positives": len(positives), "runs": args.runs})
    return rows


def tcav_figure(table, path, title):
    """Bars per layer: each concept's mean TCAV score with its std; the random baseline a black
    dash over each bar; non-significant bars grey and hatched, significant ones starred."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    plt = pyplot()
    layers, concepts = list(dict.fromkeys(table["layer"])), list(dict.fromkeys(table["concept"]))
    colours = plt.get_cmap("tab10").colors
    width = 0.8 / len(concepts)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 + len(layers) * (0.5 + 0.35 * len(concepts))), 4))
    for j, concept in enumerate(concepts):
        rows = table[table["concept"] == concept].set_index("layer").loc[layers]
        x = np.arange(len(layers)) - 0.4 + width * (j + 0.5)
        significant = rows["significant"].to_numpy(bool)
        spread = [np.minimum(rows["tcav_std"], rows["tcav"]), np.minimum(rows["tcav_std"], 1 - rows["tcav"])]  # in [0, 1]
        bars = ax.bar(x, rows["tcav"], width, yerr=spread, capsize=3, edgecolor=colours[j % 10],
                      color=[colours[j % 10] if s else "lightgrey" for s in significant])
        for bar, s in zip(bars, significant):
            bar.set_hatch("" if s else "//")
        ax.hlines(rows["random_tcav"], x - width / 2, x + width / 2, colors="black", linestyles="--")
        for xi, top, s in zip(x, rows["tcav"] + spread[1], significant):
            if s:
                ax.text(xi, top + 0.02, "*", ha="center", fontsize=12)
    handles = [Patch(facecolor=colours[j % 10], label=c) for j, c in enumerate(concepts)]
    handles += [Patch(facecolor="lightgrey", hatch="//", label="not significant"),
                Line2D([], [], color="black", linestyle="--", label="random baseline")]
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_xticks(np.arange(len(layers)), layers, rotation=20, fontsize=8)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("TCAV score")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
