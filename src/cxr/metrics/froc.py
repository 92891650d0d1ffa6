"""FROC as Object-CXR's own scorer computes it (the rules in docs/localization.md): all points
ranked together, hits per object, sensitivity at 0.125 ... 8 false positives per image."""
import numpy as np


FROC_THRESHOLDS = (0.125, 0.25, 0.5, 1, 2, 4, 8)  # false positives per image


def froc(points, objects, thresholds=FROC_THRESHOLDS, copies=None):
    """Object-CXR's FROC, as the challenge's scorer computes it (see the design notes).

    `points`: {image: [(probability, x, y), ...]}; `objects`: {image: [Shape, ...]} for every
    test image (an image without objects has []). All points of all images are ranked by
    probability together (a stable sort, images in `objects` order). A point inside objects
    not hit before hits each of them; a point inside only hit objects counts nothing; a point
    outside every object is a false positive. After each point, if false positives / images
    has reached the next threshold, the sensitivity is recorded for it (at most one threshold
    per point); thresholds never reached repeat the last recorded value; if none was reached,
    the final sensitivity stands for all. Returns (FROC = mean over thresholds, sensitivities).
    `copies` ({image: count}, default 1 each) scores a resample in which an image appears
    `count` times (a bootstrap), as froc_of_ranked does."""
    return froc_of_ranked(ranked_hits(points, objects), objects, thresholds, copies)


def froc_score(objects, points):
    """The FROC alone, in the metric registry's (truth, predictions) order."""
    return froc(points, objects)[0]


def ranked_hits(points, objects):
    """[(image, indices of its objects the point is inside)] of every point, ranked by
    probability (stable, images in `objects` order): the hit tests done once."""
    unknown = sorted(set(points) - set(objects))
    if unknown:
        raise ValueError(f"predictions for images that are not in the ground truth, first {unknown[0]}")
    ranked = sorted(((float(p), image, x, y) for image in objects for p, x, y in points.get(image, [])),
                    key=lambda point: -point[0])
    return [(image, [i for i, shape in enumerate(objects[image]) if shape.contains(x, y)]) for _, image, x, y in ranked]


def froc_of_ranked(ranked, objects, thresholds=FROC_THRESHOLDS, copies=None):
    """FROC (and the sensitivities) of ranked_hits' list. An image present `copies[image]`
    times (0 = left out) has that many identical copies of its points and objects: the copies
    of one point come together (equal probabilities), each hitting its own copy of the objects
    or counting one false positive, and each may record one threshold."""
    count = (lambda image: 1) if copies is None else (lambda image: copies.get(image, 0))
    n_images = sum(count(image) for image in objects)
    n_objects = sum(len(shapes) * count(image) for image, shapes in objects.items())
    hit = {image: [False] * len(shapes) for image, shapes in objects.items()}
    hits = false_positives = 0
    recorded = []
    for image, inside in ranked:
        for _ in range(count(image)):
            if not inside:
                false_positives += 1
            fresh = [i for i in inside if not hit[image][i]]
            hits += len(fresh)
            if len(recorded) < len(thresholds) and false_positives / n_images >= thresholds[len(recorded)]:
                recorded.append(hits / n_objects)
        for i in inside:
            hit[image][i] = True
    if not recorded:
        recorded = [hits / n_objects]
    sensitivities = recorded + [recorded[-1]] * (len(thresholds) - len(recorded))
    return float(np.mean(sensitivities)), sensitivities
