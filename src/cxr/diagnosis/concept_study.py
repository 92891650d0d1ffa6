"""A concept study of a trained experiment (src/tcav.py): the concept image sets (shapes cut
from the annotations, a folder of your own, random crops), the OOF positives whose gradients are
tested, one table row per concept, model and layer, and its figure. concepts.py holds the math."""
import numpy as np
from cxr.errors import UserError
from cxr.figures import pyplot, save_figure


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
    from cxr.inference.predictor import network_batch
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
