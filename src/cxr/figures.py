"""Figures: annotations drawn on radiographs, sample grids, learning curves, ROC curves,
confusion matrices, the learning-rate sweep. Every PNG is written atomically."""
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


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, dpi=100):
    from cxr.artifacts import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    pyplot().close(fig)


def grid_figure(panels, titles, path, columns=4, panel_inches=3.0, suptitle=None):
    """Save RGB panels in a grid with a title each, as a PNG."""
    plt = pyplot()
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
    save_figure(fig, path)


def learning_curves(log, path, title=""):
    """Loss (train, val), validation AUC and learning rate per epoch, from train.py's log rows."""
    epochs = [row["epoch"] for row in log]
    fig, (loss_ax, auc_ax, lr_ax) = pyplot().subplots(1, 3, figsize=(13, 3.6))
    loss_ax.plot(epochs, [r["train_loss"] for r in log], "o-", label="train")
    loss_ax.plot(epochs, [r["val_loss"] for r in log], "o-", label="validation")
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    loss_ax.legend()
    auc_ax.plot(epochs, [r["val_auc"] for r in log], "o-", label="kept weights")
    if any(np.isfinite(r.get("ema_val_auc", np.nan)) for r in log):
        auc_ax.plot(epochs, [r["raw_val_auc"] for r in log], ".--", label="raw")
        auc_ax.plot(epochs, [r["ema_val_auc"] for r in log], ".--", label="EMA")
    auc_ax.set(xlabel="epoch", ylabel="AUC", title="validation AUC")
    auc_ax.legend()
    lr_ax.plot(epochs, [r["lr"] for r in log], "o-")
    lr_ax.set(xlabel="epoch", ylabel="learning rate (end of epoch)", title="learning rate")
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def roc_figure(curves, path, title="ROC"):
    """`curves`: {label: (targets, scores)}; one ROC curve each, AUC in the legend."""
    from sklearn.metrics import roc_curve

    from cxr.metrics.auc import roc_auc

    fig, ax = pyplot().subplots(figsize=(5.5, 5.5))
    for label, (targets, scores) in curves.items():
        fpr, tpr, _ = roc_curve(targets, scores)
        ax.plot(fpr, tpr, label=f"{label} (AUC {roc_auc(targets, scores):.4f})")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def froc_figure(curves, thresholds, path, title="FROC"):
    """`curves`: {label: sensitivities at `thresholds` (false positives per image)}; log-scaled x."""
    fig, ax = pyplot().subplots(figsize=(6, 4.5))
    for label, sensitivities in curves.items():
        ax.plot(thresholds, sensitivities, marker="o", label=f"{label} (FROC {sum(sensitivities) / len(sensitivities):.3f})")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="false positives per image", ylabel="sensitivity (objects hit)", title=title, ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def confusion_figure(matrix, path, title):
    """A 2x2 confusion matrix [[TN, FP], [FN, TP]] with counts in the cells."""
    fig, ax = pyplot().subplots(figsize=(4.2, 4))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", color="black", fontsize=14)
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["0", "1"], yticklabels=["0", "1"],
           xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    save_figure(fig, path)


def lr_sweep_figure(lrs, losses, smoothed, suggestion, path, title=""):
    fig, ax = pyplot().subplots(figsize=(6, 4))
    ax.plot(lrs, losses, ".", alpha=0.3, label="loss per batch")
    ax.plot(lrs, smoothed, "-", label="smoothed")
    ax.axvline(suggestion, color="red", linestyle="--", label=f"suggested {suggestion:.1e}")
    ax.set(xscale="log", xlabel="learning rate", ylabel="training loss", title=title)
    finite = np.asarray(smoothed)[np.isfinite(smoothed)]
    if len(finite):
        ax.set_ylim(finite.min() * 0.9, min(finite.max(), finite[0] * 2.5))
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


def blend_chart(report, path, title=""):
    """Horizontal bars per model and method: in-sample OOF AUC and nested AUC with its interval."""
    rows = report.iloc[::-1]
    y = np.arange(len(rows))
    fig, ax = pyplot().subplots(figsize=(7.5, 0.45 * len(rows) + 1.5))
    ax.barh(y + 0.2, rows["oof_auc"], height=0.38, label="OOF AUC (in-sample)", color="#bbbbbb")
    errors = np.vstack([rows["nested_auc"] - rows["nested_low"], rows["nested_high"] - rows["nested_auc"]])
    colours = ["#d62728" if chosen else "#1f77b4" for chosen in rows.get("chosen", [False] * len(rows))]
    ax.barh(y - 0.2, rows["nested_auc"], height=0.38, xerr=np.clip(errors, 0, None), color=colours,
            label="nested AUC (95 % interval; red = chosen)")
    ax.set_yticks(y, [f"{kind}: {name}" for kind, name in zip(rows["kind"], rows["name"])])
    low = np.nanmin(rows[["oof_auc", "nested_low"]].to_numpy())
    ax.set_xlim(max(0.0, low - 0.02), 1.0)
    ax.set(xlabel="AUC", title=title)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def heatmap_overlay(gray, heatmap, path, title=""):
    """The radiograph with its heatmap (original pixels, any range) as a translucent colour layer."""
    heatmap_panels(gray, [[(title, heatmap)]], path)


def heatmap_panels(gray, rows, path, shapes=(), points=(), suptitle=""):
    """The radiograph once per panel, a row of panels per entry of `rows` (each a list of (title,
    heatmap in original pixels or None)), each heatmap a translucent colour layer; annotated
    `shapes` drawn on every panel, scored `points` (score, x, y) circled on the last panel, the
    strongest numbered."""
    plt = pyplot()
    aspect = gray.shape[0] / gray.shape[1]
    columns = max(len(row) for row in rows)
    fig, axes = plt.subplots(len(rows), columns, figsize=(4.2 * columns, (4.2 * aspect + 0.6) * len(rows) + 0.3),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    base = draw_shapes(cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB), shapes) if shapes else gray
    for row, row_axes in zip(rows, axes):
        for (title, heatmap), ax in zip(row, row_axes):
            ax.imshow(base, cmap="gray")
            if heatmap is not None:
                ax.imshow(heatmap, cmap="jet", alpha=0.35)
            ax.set_title(title, fontsize=9)
    last = axes[len(rows) - 1][len(rows[-1]) - 1]
    radius = max(gray.shape) / 40
    for rank, (_, x, y) in enumerate(points):
        last.add_patch(plt.Circle((x, y), radius, fill=False, color="white", linewidth=1.2))
        if rank < 3:
            last.annotate(str(rank + 1), (x + radius, y - radius), color="white", fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def embedding_figure(coords, groups, path, title=""):
    """A 2-D embedding (t-SNE) scatter, one colour per group (label)."""
    fig, ax = pyplot().subplots(figsize=(6.5, 6))
    groups = np.asarray(groups)
    for group in sorted(set(groups)):
        chosen = groups == group
        ax.scatter(coords[chosen, 0], coords[chosen, 1], s=8, alpha=0.7, label=f"{group} ({chosen.sum()})")
    ax.legend(fontsize=8, markerscale=2)
    ax.set(title=title, xticks=[], yticks=[])
    fig.tight_layout()
    save_figure(fig, path)


def shift_figure(train_images, test_images, order, path, title="", per_row=6):
    """Both sides' intensity histograms over a grid of training images most like the test side
    (`order`: training rows, most test-like first), least like it, and a few test images."""
    plt = pyplot()
    fig = plt.figure(figsize=(per_row * 1.6, 8.5))
    grid = fig.add_gridspec(4, per_row, height_ratios=[1.6, 1, 1, 1])
    ax = fig.add_subplot(grid[0, :])
    bins = np.arange(257)
    for images, name in ((train_images, "training side"), (test_images, "test side")):
        ax.hist(np.asarray(images).ravel(), bins=bins, density=True, histtype="step", label=name)
    ax.set_xlabel("pixel intensity")
    ax.legend()
    ax.set_title(title)
    rows = (("most test-like training images", train_images[order[:per_row]]),
            ("least test-like training images", train_images[order[::-1][:per_row]]),
            ("test images", test_images[np.linspace(0, len(test_images) - 1, per_row).astype(int)]))
    for r, (label, images) in enumerate(rows, start=1):
        for c in range(per_row):
            panel = fig.add_subplot(grid[r, c])
            panel.axis("off")
            if c < len(images):
                panel.imshow(images[c], cmap="gray", vmin=0, vmax=255)
            if c == 0:
                panel.set_title(label, fontsize=8, loc="left")
    fig.tight_layout()
    save_figure(fig, path)


def overfit_figure(losses, target, path, title=""):
    """The overfit check (train.py --overfit-batches): the mean training loss of each pass over the
    fixed batches on a log scale, and the line it must fall below to pass."""
    fig, ax = pyplot().subplots(figsize=(6, 4))
    passes = np.arange(1, len(losses) + 1)
    ax.plot(passes, np.maximum(losses, 1e-8), marker="." if len(losses) < 60 else None, label="training loss per pass")
    ax.axhline(target, color="red", linestyle="--", label=f"near zero: {target:.3g}")
    ax.set(yscale="log", xlabel="pass over the fixed batches", ylabel="mean training loss", title=title)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


def search_figure(trials, path, title=""):
    """A hyperparameter search (tune.py) in two panels: the validation AUC per epoch of every
    trial (pruned ones grey and dashed, ending where they were stopped; the base settings'
    black) and each trial's final AUC in order, pruned ones as crosses at their last AUC, with
    the best so far. `trials`: dicts of number, state ('COMPLETE', 'PRUNED', ...), value and
    curve ({epoch: AUC})."""
    fig, (curves_ax, history_ax) = pyplot().subplots(1, 2, figsize=(11, 4))
    best, best_so_far = -np.inf, []
    for trial in trials:
        epochs, aucs = zip(*sorted(trial["curve"].items())) if trial["curve"] else ((), ())
        pruned = trial["state"] == "PRUNED"
        style = dict(color="black", linewidth=2, zorder=3) if trial["number"] == 0 else (
            dict(color="grey", linestyle="--", alpha=0.6) if pruned else dict(alpha=0.8))
        curves_ax.plot(epochs, aucs, marker=".", **style)
        if trial["state"] == "COMPLETE":
            history_ax.plot(trial["number"], trial["value"], "o", color="black" if trial["number"] == 0 else "C0")
            best = max(best, trial["value"])
        elif pruned and aucs:
            history_ax.plot(trial["number"], aucs[-1], "x", color="grey")
        best_so_far.append(best)
    history_ax.step([t["number"] for t in trials], best_so_far, where="post", color="C3", label="best so far")
    history_ax.plot([], [], "o", color="black", label="trial 0: the base settings")
    history_ax.plot([], [], "x", color="grey", label="pruned (its last AUC)")
    curves_ax.set(xlabel="epoch", ylabel="validation AUC", title="every trial, epoch by epoch (pruned: dashed)")
    from matplotlib.ticker import MaxNLocator

    curves_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    history_ax.set(xlabel="trial", ylabel="validation AUC", title="each trial's AUC")
    finished = [v for t in trials for v in t["curve"].values()]
    if finished:  # zoom on the useful range: the best third of what was seen, and the base settings
        low = min(np.percentile(finished, 30), min(trials[0]["curve"].values(), default=1.0))
        for ax in (curves_ax, history_ax):
            ax.set_ylim(low - 0.002, max(finished) + 0.002)
    history_ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
