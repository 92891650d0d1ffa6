"""What the box and mask submissions share: one row per test image in the sample submission's
header and order, its prediction a string (RSNA's `conf x y w h ...`, VinBigData's
`class conf x1 y1 x2 y2 ...` with its No finding entry, SIIM-ACR's run-length encoding), written atomically and checked
before it replaces anything; and the checks of each string by the competition's rules.

A plan's `write(predictions)` takes {image_id: what the format writes for it} (boxes as
[(score, (x1, y1, x2, y2))], classed boxes as [(class, score, box)], a mask as a boolean array),
every test image present."""
from pathlib import Path

import numpy as np

from cxr.errors import UserError

FILE = "submission.csv"
NO_FINDING = "No finding"  # VinBigData's class of normal images, written as '<its id> <conf> 0 0 1 1' (14 there)


def rsna_string(boxes):
    """[(score, (x1, y1, x2, y2))] -> 'conf x y w h conf x y w h ...' (RSNA: the top-left corner,
    width and height in whole pixels, the score to 4 decimals)."""
    parts = []
    for score, (x1, y1, x2, y2) in boxes:
        x, y = int(round(x1)), int(round(y1))
        w, h = max(int(round(x2)) - x, 1), max(int(round(y2)) - y, 1)
        parts.append(f"{score:.4f} {x} {y} {w} {h}")
    return " ".join(parts)


def vinbig_string(boxes, no_finding, no_finding_class):
    """[(class, score, box)] and the image's probability of no finding -> 'class conf x1 y1 x2 y2 ...'
    with the 'No finding' entry ('<no_finding_class> conf 0 0 1 1') last: the metric scores it as a
    class of its own, and a low-confidence box costs little."""
    parts = [f"{int(c)} {score:.4f} {int(round(b[0]))} {int(round(b[1]))} {max(int(round(b[2])), int(round(b[0])) + 1)} "
             f"{max(int(round(b[3])), int(round(b[1])) + 1)}" for c, score, b in boxes]
    parts.append(f"{int(no_finding_class)} {no_finding:.4f} 0 0 1 1")
    return " ".join(parts)


def numbers(text, group, where):
    """The whitespace-separated numbers of a prediction string in groups of `group`; a UserError
    naming `where` otherwise."""
    try:
        values = [float(v) for v in str(text).split()]
    except ValueError:
        raise UserError(f"{where}: '{str(text)[:60]}' is not numbers") from None
    if len(values) % group or not np.isfinite(values).all():
        raise UserError(f"{where}: {len(values)} numbers, not groups of {group}")
    return [values[i:i + group] for i in range(0, len(values), group)]


def check_rsna(text, where):
    for score, x, y, w, h in numbers(text, 5, where):
        if not 0 <= score <= 1 or x < 0 or y < 0 or w <= 0 or h <= 0:
            raise UserError(f"{where}: box '{score:g} {x:g} {y:g} {w:g} {h:g}' needs a confidence in [0, 1], a "
                            f"corner at or above 0 and a positive width and height")


def check_vinbig(text, where):
    groups = numbers(text, 6, where)
    if not groups:
        raise UserError(f"{where}: empty; an image without findings has the No finding entry '<class> 1 0 0 1 1'")
    for c, score, x1, y1, x2, y2 in groups:
        if c != int(c) or c < 0 or not 0 <= score <= 1 or x2 <= x1 or y2 <= y1:
            raise UserError(f"{where}: box '{c:g} {score:g} {x1:g} {y1:g} {x2:g} {y2:g}' needs a class id (a whole "
                            f"number), a confidence in [0, 1] and x1 < x2, y1 < y2")


def write_rows(path, header, order, strings, check):
    """Write `header` and one row per id of `order` (strings {id: prediction string}), atomically;
    the temporary file is read back and checked (validate_rows) before it replaces `path`."""
    import pandas as pd

    from cxr.artifacts import atomic_path

    missing = [i for i in order if i not in strings]
    if missing:
        raise UserError(f"{path}: {len(missing)} test image(s) have no prediction, first {missing[0]}")
    id_name, value_name = header.split(",")
    with atomic_path(path) as tmp:
        pd.DataFrame({id_name: list(order), value_name: [strings[i] for i in order]}).to_csv(
            tmp, index=False, lineterminator="\n")
        validate_rows(tmp, header, order, check, shown_as=path)


def validate_rows(path, header, expected_ids, check, shown_as=None):
    """A file of `header` rows covering each expected id once, each prediction passing
    `check(text, where)`; a UserError naming the file and line otherwise."""
    import pandas as pd

    from cxr.formats.files import read_lines

    lines = read_lines(path, shown_as)
    shown = shown_as or path
    if not lines or lines[0] != header:
        raise UserError(f"{shown} line 1: header must be exactly '{header}', found '{lines[0] if lines else ''}'")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    expected, seen = set(expected_ids), set()
    for number, (image, text) in enumerate(zip(table.iloc[:, 0], table.iloc[:, 1]), start=2):
        where = f"{shown} line {number}"
        if image in seen or image not in expected:
            raise UserError(f"{where}: image {image} " + ("appears twice" if image in seen else "is not in the test set"))
        check(text, where)
        seen.add(image)
    if expected - seen:
        raise UserError(f"{shown}: {len(expected - seen)} test image(s) have no row, first {sorted(expected - seen)[0]}")


def sample_plan(out, root, test_ids, file_name, header, to_string, check):
    """(path, write) of a box or mask submission: the sample submission's ids and order (as
    written there), `to_string(image_id, prediction)` making each row's string."""
    from cxr.data.layouts import kaggle_test_ids, kaggle_test_table
    from cxr.formats.files import sample_format

    sample = kaggle_test_table(root)
    if sample is None:
        raise UserError(f"{root}: no sample submission: the test ids of a {header} submission come from it")
    found_header, order = sample_format(sample)
    if found_header != header:
        raise UserError(f"{sample} line 1: expected the header '{header}', found '{found_header}'")
    written_as = kaggle_test_ids(root)[1]
    path = Path(out) / file_name

    def write(predictions):
        missing = [i for i in test_ids if i not in predictions]
        if missing:
            raise UserError(f"{path}: {len(missing)} test image(s) have no prediction, first {missing[0]}")
        strings = {written_as[i]: to_string(i, predictions[i]) for i in test_ids}
        write_rows(path, header, order, strings, check)
    return path, write


def row_format(name, task, header, strings, check, summary, ids, requires):
    """A Format of one row per test image in the sample submission's order (FILE, `header`):
    `strings(root)` gives the function that writes each image's prediction string, `check` the
    competition's rule for a string."""
    from cxr.formats.registry import Format, Submission

    def plan(out, root, test_ids, labels):
        return Submission(*sample_plan(out, root, test_ids, FILE, header, strings(root), check))

    def validate(path, expected_ids):
        validate_rows(Path(path), header, expected_ids, check)
    return Format(name=name, task=task, files=(FILE,), ids=ids, summary=summary, plan=plan, validate=validate,
                  requires=requires)
