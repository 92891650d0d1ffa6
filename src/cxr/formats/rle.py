"""SIIM-ACR's run-length encoding of a mask, as the competition's mask_functions.py writes it:
pixels in column-major order (down each column, then the next column), each run of mask pixels
written as 'start length' where start counts the background pixels since the end of the previous
run (the first from the top-left pixel); an empty mask is '-1'."""
import numpy as np

EMPTY = "-1"


def encode(mask):
    """(height, width) mask -> the relative column-major RLE string ('-1' when empty)."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    if not flat.any():
        return EMPTY
    change = np.flatnonzero(np.diff(np.concatenate([[False], flat, [False]]).astype(np.int8)))
    starts, ends = change[0::2], change[1::2]  # each run: its first pixel and the one after its last
    gaps = starts - np.concatenate([[0], ends[:-1]])
    return " ".join(f"{gap} {length}" for gap, length in zip(gaps, ends - starts))


def runs(text):
    """[(first pixel, length), ...] of an RLE string in column-major pixel numbers ([] for '-1' or
    blank); a ValueError names what is wrong (an odd count, a negative gap, a run of no pixels)."""
    text = str(text).strip()
    if text in ("", EMPTY):
        return []
    try:
        numbers = [int(v) for v in text.split()]
    except ValueError:
        raise ValueError(f"'{text[:40]}' is not whole numbers") from None
    if len(numbers) % 2:
        raise ValueError(f"{len(numbers)} numbers: runs are pairs of start and length")
    found, position = [], 0
    for gap, length in zip(numbers[0::2], numbers[1::2]):
        if gap < 0 or length <= 0:
            raise ValueError(f"run '{gap} {length}': a start below 0 or a length below 1")
        found.append((position + gap, length))
        position += gap + length
    return found


def decode(text, height, width):
    """The RLE string -> (height, width) bool mask; '-1' or blank: empty. A ValueError names what
    is wrong (runs' errors, or a run past the image's end)."""
    flat = np.zeros(height * width, dtype=bool)
    for first, length in runs(text):
        if first + length > flat.size:
            raise ValueError(f"a run ends at pixel {first + length}, past the image's {flat.size}")
        flat[first:first + length] = True
    return flat.reshape((height, width), order="F")
