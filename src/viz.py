"""Figures: annotations drawn on radiographs, sample grids."""
import cv2
import numpy as np

SHAPE_COLOURS = {0: (230, 60, 60), 1: (60, 200, 60), 2: (70, 120, 240)}  # RGB: rectangle, ellipse, polygon


def draw_shapes(image, shapes, alpha=0.35, scale=1.0):
    """RGB uint8 copy of `image` with each shape filled translucently and outlined (coordinates x `scale`)."""
    canvas = image.copy()
    fill = image.copy()
    thickness = max(1, round(min(image.shape[:2]) / 200))
    for shape in shapes:
        colour = SHAPE_COLOURS[shape.kind]
        points = np.round(shape.points * scale).astype(np.int32)
        if shape.kind == 0:
            (x1, y1), (x2, y2) = points
            cv2.rectangle(fill, (x1, y1), (x2, y2), colour, -1)
            cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness)
        elif shape.kind == 1:
            (x1, y1), (x2, y2) = points
            center, axes = ((x1 + x2) // 2, (y1 + y2) // 2), (max(1, (x2 - x1) // 2), max(1, (y2 - y1) // 2))
            cv2.ellipse(fill, center, axes, 0, 0, 360, colour, -1)
            cv2.ellipse(canvas, center, axes, 0, 0, 360, colour, thickness)
        else:
            cv2.fillPoly(fill, [points], colour)
            cv2.polylines(canvas, [points], True, colour, thickness)
    return cv2.addWeighted(fill, alpha, canvas, 1 - alpha, 0)


def grid_figure(panels, titles, path, columns=4, panel_inches=3.0, suptitle=None):
    """Save RGB panels in a grid with a title each, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(1, -(-len(panels) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * panel_inches, rows * panel_inches), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, panel, title in zip(axes.ravel(), panels, titles):
        ax.imshow(panel, cmap="gray")
        ax.set_title(title, fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
