"""SIIM-ACR's run-length encoding (cxr/formats/rle.py): a hand-worked mask, round trips of any
mask, the refusals, and agreement with ../shared/tools' encoder (the layouts' truth) when present."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cxr.formats.rle import decode, encode

TOOL = Path(__file__).resolve().parents[2] / "shared" / "tools" / "make_challenge_layouts.py"


def test_a_mask_by_hand():
    mask = np.array([[0, 1, 0],
                     [1, 1, 0],
                     [0, 0, 1]], bool)
    # column-major: 0 1 0 | 1 1 0 | 0 0 1 -> runs at pixel 1 (length 1), 3 (length 2), 8 (length 1)
    assert encode(mask) == "1 1 1 2 3 1"
    assert (decode("1 1 1 2 3 1", 3, 3) == mask).all()
    assert encode(np.zeros((2, 2))) == "-1" and not decode("-1", 2, 2).any() and not decode(" ", 2, 2).any()
    assert encode(np.ones((2, 2))) == "0 4"  # a run touching the last pixel is written


@pytest.mark.parametrize("text, why", [("1 2 3", "pairs"), ("-1 2", "below 0"), ("0 0", "below 1"),
                                       ("2 3", "past the image's"), ("a b", "whole numbers")])
def test_bad_runs_are_refused_with_the_reason(text, why):
    with pytest.raises(ValueError, match=why):
        decode(text, 2, 2)


@settings(max_examples=200, deadline=None)
@given(arrays(bool, st.tuples(st.integers(1, 12), st.integers(1, 12))))
def test_any_mask_round_trips(mask):
    assert (decode(encode(mask), *mask.shape) == mask).all()


@pytest.mark.skipif(not TOOL.is_file(), reason="../shared/tools is not here")
@settings(max_examples=100, deadline=None)
@given(arrays(bool, st.tuples(st.integers(1, 10), st.integers(1, 10))))
def test_the_encoding_is_the_layout_tools(mask):
    spec = importlib.util.spec_from_file_location("make_challenge_layouts", TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert encode(mask) == tool.rle_encode(mask)
    assert (tool.rle_decode(encode(mask), *mask.shape) == mask).all()
