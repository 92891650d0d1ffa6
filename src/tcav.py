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

from cxr.artifacts import write_csv  # noqa: E402
from cxr.config import INFERENCE_BATCH_SIZE, Parser, add_experiment_reading, add_settings  # noqa: E402
from cxr.errors import UserError, exit_on_user_error  # noqa: E402

# torch, pandas and the modules that import them are imported where they are used, after the flags are
# parsed: --help answers at once.


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
    from cxr.diagnosis.concepts import WEAK_CAV, concept_rows, concept_sets, oof_positives, tcav_figure  # torch
    for flag, value, least in (("--runs", args.runs, 2), ("--per-concept", args.per_concept, 10),
                               ("--random-images", args.random_images, 6), ("--positives", args.positives, 1),
                               ("--batch-size", args.batch_size, 1)):
        if value < least:
            raise UserError(f"{flag} {value}: at least {least}")
    if not 0 < args.alpha < 1:
        raise UserError(f"--alpha {args.alpha}: expected a level between 0 and 1")
    import pandas as pd

    from cxr.data.labels import target_columns
    from cxr.inference.ensemble import load_experiment

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
