import pytest

from data import Shape, format_annotation, parse_annotation


def test_round_trip_all_three_shape_types():
    text = "0 10 20 30 40;1 5 6 15 26;2 0 0 10 0 10 10 0 10"
    shapes = parse_annotation(text)
    assert shapes == [Shape(0, (10, 20, 30, 40)), Shape(1, (5, 6, 15, 26)), Shape(2, (0, 0, 10, 0, 10, 10, 0, 10))]
    assert format_annotation(shapes) == text
    assert parse_annotation(format_annotation(shapes)) == shapes


@pytest.mark.parametrize("empty", ["", None, float("nan"), " ", ";"])
def test_empty_annotation_is_no_object(empty):
    assert parse_annotation(empty) == []
    assert format_annotation([]) == ""


def test_polygon_points():
    (shape,) = parse_annotation("2 1 2 3 4 5 0")
    assert shape.points.tolist() == [[1, 2], [3, 4], [5, 0]]


@pytest.mark.parametrize("bad, why", [
    ("3 1 2 3 4", "unknown type"),
    ("0 1 2 3", "needs 4"),
    ("1 1 2 3 4 5", "needs 4"),
    ("2 1 2 3 4", "even number"),
    ("2 1 2 3 4 5 6 7", "even number"),
    ("0 1 2 x 4", "non-integer"),
    ("0 10 10 5 20", "x2 < x1"),
    ("0 10 10 10 20", "zero area"),
    ("1 10 10 20 10", "zero area"),
    ("2 0 0 5 5 10 10", "zero area"),
])
def test_malformed_annotation_is_refused(bad, why):
    with pytest.raises(ValueError, match=why):
        parse_annotation(bad)
