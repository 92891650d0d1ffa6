"""Concept tests (TCAV, Kim et al. 2018): does a concept a person can name push a model's score up?

    python src/tcav.py --exp objectcxr_semireal_bench --dataset objectcxr_semireal   # the annotated shapes
    python src/tcav.py --exp demo --dataset demo --concept-dir my_concepts/          # your own concepts
    python src/tcav.py --exp demo --dataset demo --model resnet18 --layers layer3 layer4 --runs 20

Concepts: without --concept-dir, the data set's annotated objects by shape: 'rectangular'
(TYPE 0), 'round' (1) and 'irregular' (2). --concepts crops (the default): each object a square
crop of 3 times its size (at least 32 px), against random crops of the same sizes from images
without objects: the shape alone, magnified to the model's input size. --concepts whole: training
images whose objects are all of that kind, against training images without objects: the concept
at the model's own scale, but a few pixels of each image (on the semi-real Object-CXR set their
CAVs separate concept from random images far less well: docs/diagnosis.md). With --concept-dir, each sub-folder holding images is a
concept named after it (a folder holding images and no such sub-folder is one concept), against
whole random training images. Images of the tested fold are never concept or random images.
Every crop and image is preprocessed as the model's own input.

Each model of the blend (or --model) is tested through one fold model (--fold: one model, one
feature space), at each layer (--layers, default: its stages). A concept activation vector
(CAV) is the normal of a linear classifier separating the layer's activations of the concept
from those of a random set; the TCAV score is the share of the fold's out-of-fold positives
(images that model never trained on) whose score (saliency.image_score: a classifier's logit,
a map model's image score) grows along the CAV. Each concept is tested against --runs random
sets and its scores compared with those of random-vs-random CAVs by a two-sided t-test:
significant when p < --alpha. A significant score above the random one: the concept raises the
model's score; below it: the concept lowers it.

A layer's activations are each channel's spatial mean (--activations pooled, the default: the
objects of a radiograph are small and anywhere, and a CAV then moves every position alike), or
flattened as in the paper (--activations flat: C x H x W floats an image; with large inputs name
the deeper layers, --layers layer3 layer4). Read each CAV's held-out accuracy before its score:
near 0.5 the layer does not separate the concept from random images and the direction is noise.

Writes to reports/<exp>/tcav/:
    tcav.csv           a row per model, layer and concept: mean TCAV score and its std over the
                       runs, the random baseline, p value, significance, the CAVs' held-out accuracy
    tcav_<model>.png   bars per layer: each concept's mean score with its std, the random baseline
                       marked, non-significant bars grey and hatched, significant ones starred
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402

from cxr.artifacts import write_csv  # noqa: E402
from cxr.config import INFERENCE_BATCH_SIZE, Parser, add_experiment_reading, add_settings  # noqa: E402
from cxr.errors import UserError, exit_on_user_error  # noqa: E402
from cxr.figures import pyplot, save_figure  # noqa: E402

WEAK_CAV = 0.6  # a CAV's held-out accuracy below this: the layer hardly separates the concept from random images

# torch, pandas and the modules that import them are imported where they are used, after the flags are
# parsed: --help answers at once.


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


@exit_on_user_error
def main(argv=None):
    parser = Parser(description=__doc__)
    add_settings(parser, "exp", "dataset", exp="experiment: its blend spec and checkpoints",
                 dataset="its data set: the fold file, the images and their annotations")
    parser.add_argument("--concept-dir", default="", metavar="DIR",
                        help="concept images: one concept per sub-folder, or the folder as one (default: the data "
                             "set's annotated objects by shape)")
    parser.add_argument("--concepts", choices=("crops", "whole"), default="crops",
                        help="annotated data: a shape concept is crops around the objects of that kind (the shape "
                             "isolated, resized to the model's input), or whole training images holding objects of "
                             "that kind alone (the model's own scale; the object is a small part of the image)")
    parser.add_argument("--model", default="", help="the model of the blend to test (default: every one)")
    parser.add_argument("--layers", nargs="+", default=None, metavar="MODULE",
                        help="modules to test, as network.named_modules() names them (default: the network's stages)")
    parser.add_argument("--fold", type=int, default=0,
                        help="the fold model tested; its fold's positives are the images whose gradients are taken")
    parser.add_argument("--label", default="", help="a multi-label experiment: the label tested (default: the first)")
    parser.add_argument("--runs", type=int, default=10, help="random sets each concept is tested against")
    parser.add_argument("--per-concept", type=int, default=50, help="images per concept, at most")
    parser.add_argument("--random-images", type=int, default=100,
                        help="the random pool each run draws two sets of the concept's size from")
    parser.add_argument("--positives", type=int, default=100, help="OOF positives whose gradients are taken, at most")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level of the t-test")
    parser.add_argument("--seed", type=int, default=0, help="which images, crops and random sets are drawn")
    parser.add_argument("--activations", choices=("pooled", "flat"), default="pooled",
                        help="pooled: each channel's spatial mean, the CAV applied at every position alike (an object "
                             "a few pixels wide anywhere in the image is one direction); flat: every value of a "
                             "layer's output, as the paper does (a concept at a fixed place)")
    parser.add_argument("--batch-size", type=int, default=INFERENCE_BATCH_SIZE, help="images per forward pass")
    add_experiment_reading(parser, "tcav")
    args = parser.parse_args(argv)
    for flag, value, least in (("--runs", args.runs, 2), ("--per-concept", args.per_concept, 10),
                               ("--random-images", args.random_images, 6), ("--positives", args.positives, 1),
                               ("--batch-size", args.batch_size, 1)):
        if value < least:
            raise UserError(f"{flag} {value}: at least {least}")
    if not 0 < args.alpha < 1:
        raise UserError(f"--alpha {args.alpha}: expected a level between 0 and 1")
    import pandas as pd

    from cxr.data.labels import target_columns
    from cxr.inference.predictor import load_experiment

    device, ensemble, root, folds = load_experiment(args)
    names = [args.model] if args.model else list(ensemble.models)
    if names[0] not in ensemble.models:
        raise UserError(f"--model {args.model}: not in the blend ({', '.join(ensemble.models)})")
    fold_models = min(len(ensemble.models[name]) + len(ensemble.left_out.get(name, {})) for name in names)
    if not 0 <= args.fold < fold_models:
        raise UserError(f"--fold {args.fold}: the blend has fold models 0..{fold_models - 1}")
    held_out = ensemble.held_out(args.fold)  # the fold-k models, never trained on fold k's images
    if args.label and args.label not in ensemble.labels:
        raise UserError(f"--label {args.label}: the models predict {', '.join(ensemble.labels)}")
    output = ensemble.labels.index(args.label) if args.label else 0
    concepts, randoms = concept_sets(args, root, folds)
    positives = oof_positives(folds, args.fold, target_columns(folds)[output], args.positives, args.seed)
    out = Path(args.reports_dir) / args.exp / "tcav"
    rows = []
    for name in names:
        rows += concept_rows(name, held_out.models[name][0], concepts, randoms, positives, root, args, output,
                           device)
    table = pd.DataFrame(rows)
    write_csv(out / "tcav.csv", table)
    print(table.drop(columns=["fold", "n_random", "n_positives", "runs"]).to_string(index=False, float_format="%.3f"))
    print(f"fold {args.fold}: {len(positives)} OOF positives, {len(randoms)} random images, {args.runs} runs; "
          f"significant: p < {args.alpha:g} (two-sided t-test against random CAVs)")
    weak = table[table["cav_accuracy"] < WEAK_CAV]
    if len(weak):
        print(f"{len(weak)} of {len(table)} CAVs separate their concept from random images no better than "
              f"{WEAK_CAV:.0%} on held-out images: their direction is barely the concept's; read those scores with care "
              f"(more concept images: --per-concept; another layer)")
    for name in names:
        figure = out / f"tcav_{name}.png"
        tcav_figure(table[table["model"] == name], figure,
                    f"TCAV of {name} fold {args.fold} ({len(positives)} OOF positives, {args.runs} runs)")
        print(f"wrote {figure}")
    print(f"wrote {out / 'tcav.csv'}")


if __name__ == "__main__":
    main()
