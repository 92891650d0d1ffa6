import numpy as np
import pytest

from cxr.data.annotations import Shape, format_annotation, parse_annotation


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
    ("0 1 2 3 1" + "0" * 400, "beyond 1000000 pixels"),  # no float holds it
    ("2 0 0 9999999 0 0 5", "beyond 1000000 pixels"),
])
def test_malformed_annotation_is_refused(bad, why):
    with pytest.raises(ValueError, match=why):
        parse_annotation(bad)


def test_polygon_hits_agree_exactly_with_the_scorers_points_in_poly():
    """The challenge's scorer tests polygons with skimage.measure.points_in_poly, whose answer
    on edges and vertices differs from textbook ray casting: random polygons (most of them
    self-intersecting), random points, edge midpoints and vertices must all get its answer,
    point by point and as arrays."""
    from skimage.measure import points_in_poly

    rng = np.random.default_rng(0)
    for _ in range(400):
        vertices = rng.integers(0, 20, size=(rng.integers(3, 10), 2)).astype(float)
        shape = Shape(2, tuple(int(v) for v in vertices.ravel()))
        points = np.concatenate([rng.integers(-1, 21, size=(20, 2)), rng.uniform(-1, 21, size=(10, 2)),
                                 vertices, (vertices + np.roll(vertices, -1, axis=0)) / 2])
        expected = points_in_poly(points, vertices)
        assert [shape.contains(x, y) for x, y in points] == expected.tolist()
        assert shape.contains(points[:, 0], points[:, 1]).tolist() == expected.tolist()


def test_rectangles_and_ellipses_take_arrays_as_they_take_points():
    rectangle, ellipse = parse_annotation("0 10 10 20 20;1 0 0 20 10")
    xs, ys = np.meshgrid(np.arange(-1, 22, 0.5), np.arange(-1, 22, 0.5))
    for shape in (rectangle, ellipse):
        assert shape.contains(xs, ys).tolist() == [[shape.contains(x, y) for x, y in zip(*row)] for row in zip(xs, ys)]
    assert rectangle.contains(np.array([10, 20, 20.01]), 15).tolist() == [True, True, False]
