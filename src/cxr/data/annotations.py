"""Object-CXR annotations: the shapes (rectangle, ellipse, polygon) of a table's annotation
column, parsed and written back, and the geometry a hit test needs (point in polygon, area)."""
from dataclasses import dataclass

import numpy as np


SHAPE_NAMES = {0: "rectangle", 1: "ellipse", 2: "polygon"}
LARGEST_COORDINATE = 10**6  # far beyond any radiograph, and exact as a float (10**400 does not even convert)


# ---------------------------------------------------------------- annotations
@dataclass(frozen=True)
class Shape:
    """One annotated object, in original-image pixels: TYPE 0 rectangle and TYPE 1 ellipse
    are `x1 y1 x2 y2` (the ellipse by its bounding box), TYPE 2 polygon is `x1 y1 ... xn yn`."""

    kind: int
    coords: tuple

    @property
    def points(self):
        return np.asarray(self.coords, dtype=float).reshape(-1, 2)

    def contains(self, x, y):
        """Whether the point (x, y) hits this object, as the challenge's scorer decides: a
        rectangle inclusively, an ellipse inscribed in its box, a polygon by skimage's
        points_in_poly. Scalars give a truth value; arrays (of one shape) an array of them."""
        if self.kind == 2:
            return point_in_polygon(self.points, x, y)
        x1, y1, x2, y2 = self.coords
        inside = (x1 <= x) & (x <= x2) & (y1 <= y) & (y <= y2)  # `&`, not `and`: arrays too
        if self.kind == 1 and x1 != x2 and y1 != y2:  # a degenerate ellipse is its box's segment
            cx, cy, ax, ay = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
            inside = inside & (((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 <= 1)
        return inside


def point_in_polygon(vertices, x, y):
    """Whether (x, y) (scalars, or arrays of one shape) lies in the polygon of (n, 2) `vertices`,
    by the scorer's own test, skimage.measure.points_in_poly: even-odd, where a point on the
    boundary may count either way (a hand-written ray cast disagrees there)."""
    from skimage.measure import points_in_poly

    x, y = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    points = np.stack([x.ravel(), y.ravel()], axis=1)
    inside = points_in_poly(points, np.asarray(vertices, dtype=float)).reshape(x.shape)
    return inside if inside.ndim else bool(inside)


def polygon_area(vertices):
    """The shoelace area of a polygon's (n, 2) vertices."""
    x, y = vertices[:, 0], vertices[:, 1]
    return 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))


def parse_annotation(text):
    """`'0 1 2 3 4;2 0 0 5 0 5 5'` -> [Shape(0, (1, 2, 3, 4)), Shape(2, (...))]; '' -> [].

    Raises ValueError naming the malformed object."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return []
    shapes = []
    for part in str(text).split(";"):
        fields = part.split()
        if not fields:
            continue
        try:
            kind, coords = int(fields[0]), tuple(int(v) for v in fields[1:])
        except ValueError:
            raise ValueError(f"object '{part.strip()}' has a non-integer field") from None
        if any(abs(v) > LARGEST_COORDINATE for v in coords):
            raise ValueError(f"object '{part.strip()}' has a coordinate beyond {LARGEST_COORDINATE} pixels")
        if kind not in SHAPE_NAMES:
            raise ValueError(f"object '{part.strip()}' has unknown type {kind} (0, 1 or 2 expected)")
        if kind in (0, 1) and len(coords) != 4:
            raise ValueError(f"{SHAPE_NAMES[kind]} '{part.strip()}' needs 4 coordinates, has {len(coords)}")
        if kind == 2 and (len(coords) < 6 or len(coords) % 2):
            raise ValueError(f"polygon '{part.strip()}' needs an even number (>= 6) of coordinates, has {len(coords)}")
        if kind in (0, 1) and (coords[2] < coords[0] or coords[3] < coords[1]):
            raise ValueError(f"{SHAPE_NAMES[kind]} '{part.strip()}' has x2 < x1 or y2 < y1")
        if kind in (0, 1) and (coords[2] == coords[0] or coords[3] == coords[1]):
            raise ValueError(f"{SHAPE_NAMES[kind]} '{part.strip()}' has zero area (x1 = x2 or y1 = y2)")
        if kind == 2 and polygon_area(np.asarray(coords, dtype=float).reshape(-1, 2)) == 0:
            raise ValueError(f"polygon '{part.strip()}' has zero area (its points lie on one line)")
        shapes.append(Shape(kind, coords))
    return shapes


def format_annotation(shapes):
    """Inverse of parse_annotation."""
    return ";".join(" ".join(str(v) for v in (s.kind, *s.coords)) for s in shapes)
