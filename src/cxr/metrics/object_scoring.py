"""A box or mask submission scored against the competition's truth file, as the organizers would
(score.py): RSNA's mean precision over IoU thresholds, VinBigData's mAP at IoU 0.4 (its No finding
entries a class of their own, the box 0 0 1 1), SIIM-ACR's mean Dice, each with a bootstrap
interval over images. The truth file is the competition's own training-label format (the layout
tool writes it beside the data set as <name>_test_truth.csv); its header tells the competition.
Masks are compared as sets of pixel numbers, so no image size is needed."""
import numpy as np

from cxr.errors import UserError
from cxr.metrics.detection import rsna_image_score, voc_map

TRUTH_HEADERS = {"rsna": ["patientId", "x", "y", "width", "height", "Target"],
                 "vinbig": ["image_id", "class_name", "class_id", "rad_id", "x_min", "y_min", "x_max", "y_max"],
                 "siim": ["ImageId", "EncodedPixels"]}
SUBMISSION_VALUES = {"rsna": 5, "vinbig": 6}


def truth_kind(columns):
    """The competition whose truth file has `columns`, or None."""
    return next((name for name, header in TRUTH_HEADERS.items() if list(columns) == header), None)


def read_truth(kind, table):
    """{image: truth}: RSNA boxes [(x1, y1, x2, y2)], VinBigData [(class, box)] (No finding: its
    class with the box 0 0 1 1), SIIM-ACR a mask as the set of its pixel numbers."""
    from cxr.formats.rle import runs

    truth = {}
    for row in table.itertuples(index=False):
        image = str(row[0]).strip()
        found = truth.setdefault(image, [] if kind != "siim" else set())
        if kind == "rsna" and str(row.Target).strip() == "1":
            x, y, w, h = (float(v) for v in (row.x, row.y, row.width, row.height))
            found.append((x, y, x + w, y + h))
        elif kind == "vinbig":
            box = [row.x_min, row.y_min, row.x_max, row.y_max]
            box = [0.0, 0.0, 1.0, 1.0] if all(str(v).strip() == "" for v in box) else [float(v) for v in box]
            found.append((int(float(row.class_id)), box))
        elif kind == "siim":
            found.update(pixels(runs(row.EncodedPixels)))
    return truth


def pixels(found_runs):
    return set(np.concatenate([np.arange(first, first + length) for first, length in found_runs]).tolist()) \
        if found_runs else set()


def read_predictions(kind, table, path):
    """{image: prediction} of a submission: RSNA [(score, box)], VinBigData [(class, score, box)],
    SIIM-ACR a pixel set; a UserError naming the file and line for a string that cannot be read."""
    from cxr.formats.boxes import numbers
    from cxr.formats.rle import runs

    predictions = {}
    for number, (image, text) in enumerate(zip(table.iloc[:, 0], table.iloc[:, 1]), start=2):
        where = f"{path} line {number}"
        image = str(image).strip()
        if image in predictions:
            raise UserError(f"{where}: image {image} appears twice")
        if kind == "siim":
            try:
                predictions[image] = pixels(runs(text))
            except ValueError as err:
                raise UserError(f"{where}: {err}") from None
            continue
        groups = numbers(text, SUBMISSION_VALUES[kind], where)
        if kind == "rsna":
            predictions[image] = [(s, (x, y, x + w, y + h)) for s, x, y, w, h in groups]
        else:
            predictions[image] = [(int(c), s, (x1, y1, x2, y2)) for c, s, x1, y1, x2, y2 in groups]
    return predictions


def matched_ids(truth, predictions, path):
    """Stop with the first image the submission misses or adds, naming the file."""
    missing = [i for i in truth if i not in predictions]
    extra = [i for i in predictions if i not in truth]
    if missing or extra:
        raise UserError(f"{path}: " + (f"{len(missing)} test image(s) have no row, first {missing[0]}" if missing else
                                       f"image {extra[0]} is not in the truth file"))


def image_scores(kind, truth, predictions):
    """Each image's share of a decomposable metric (RSNA, Dice), in `truth`'s order (NaN: left out)."""
    values = []
    for image, found in truth.items():
        if kind == "rsna":
            score = rsna_image_score(found, predictions.get(image, []))
            values.append(np.nan if score is None else score)
        else:
            predicted = predictions.get(image, set())
            total = len(found) + len(predicted)
            values.append(1.0 if total == 0 else 2 * len(found & predicted) / total)
    return np.asarray(values, dtype=float)


def score_objects(kind, truth, predictions, n_boot=1000, seed=0):
    """(the metric, (low, high) percentile bootstrap interval over images, its name)."""
    rng = np.random.default_rng(seed)
    images = list(truth)
    if kind == "vinbig":
        value = voc_map(truth, predictions)[0]
        samples = []
        for _ in range(n_boot):
            drawn = [images[i] for i in rng.integers(0, len(images), len(images))]
            # each drawn copy its own image: duplicates count twice, as in the other bootstraps
            samples.append(voc_map({(k, i): truth[i] for k, i in enumerate(drawn)},
                                   {(k, i): predictions.get(i, []) for k, i in enumerate(drawn)})[0])
        name = "VOC mAP at IoU 0.4"
    else:
        values = image_scores(kind, truth, predictions)
        value = float(np.nanmean(values))
        samples = [np.nanmean(values[rng.integers(0, len(values), len(values))]) for _ in range(n_boot)]
        name = "RSNA mean precision (IoU 0.40-0.75)" if kind == "rsna" else "mean Dice"
    low, high = np.nanpercentile(samples, [2.5, 97.5]) if samples else (np.nan, np.nan)
    return value, (float(low), float(high)), name
