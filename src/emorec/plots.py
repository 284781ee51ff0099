"""Evaluation figures logged as MLflow artifacts: confusion matrix, ROC curves,
learning curves, class distribution and a grid of sample images.

Figures are built as bare ``matplotlib.figure.Figure`` objects rather than
through ``pyplot``: they render with the Agg canvas on a headless server, need
no display and no global backend switch, and are never registered in pyplot's
figure manager, so a figure the caller forgets to close cannot leak.
``save_figure`` writes a PNG and releases the figure either way.

The three figures every training run logs (confusion matrix, ROC curves, learning
curves) are laid out with fixed margins in inches (``_margins``) rather than
matplotlib's constrained layout, which lays every text out once more before drawing:
rendering the three took 0.33 instead of 0.63 s of CPU here, at the end of every run and
study trial (the tracking overhead ``benchmarks/tracking_overhead.py`` measures). Their
labels are emotion names, so the room they need is known. The exploration figures, drawn once per dataset
with any number of classes, keep the constrained layout.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

DPI = 120


def confusion_matrix_figure(
    cm: Sequence[Sequence[int]] | np.ndarray, class_names: Sequence[str], normalize: bool = True
) -> Figure:
    """Confusion matrix (rows true, columns predicted), annotated with counts.

    With ``normalize`` the colours show each row's fraction (recall per class),
    which keeps small classes readable next to large ones; the cells then carry
    the count and the percentage of the true class.
    """
    counts = np.asarray(cm, dtype=float)
    k = counts.shape[0]
    row_sums = counts.sum(axis=1, keepdims=True)
    # A class absent from the labels has an all-zero row: show it as 0, not NaN.
    fractions = np.divide(counts, row_sums, out=np.zeros_like(counts), where=row_sums > 0)
    shade = fractions if normalize else counts
    vmax = 1.0 if normalize else max(counts.max(), 1.0)

    size = 2.5 + 0.8 * k
    fig = Figure(figsize=(size + 1.0, size))
    # Room for rotated class names below, names and "True" left, the colour bar's label right.
    _margins(fig, left=1.35, bottom=1.3, right=0.25, top=0.45)
    ax = fig.add_subplot()
    image = ax.imshow(shade, cmap="Blues", vmin=0.0, vmax=vmax)
    fig.colorbar(image, ax=ax, shrink=0.8,
                 label="Fraction of true class" if normalize else "Count")

    fontsize = 9 if k <= 8 else 7
    for i in range(k):
        for j in range(k):
            text = f"{counts[i, j]:.0f}"
            if normalize and row_sums[i, 0] > 0:
                text += f"\n{fractions[i, j]:.0%}"
            dark = shade[i, j] > 0.55 * vmax
            ax.text(j, i, text, ha="center", va="center", fontsize=fontsize,
                    color="white" if dark else "black")

    ax.set_xticks(range(k), class_names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")
    ax.set_title("Confusion matrix" + (" (row-normalised colours)" if normalize else ""))
    return fig


def roc_figure(
    roc_curves: Mapping[int, tuple[np.ndarray, np.ndarray, float]], class_names: Sequence[str]
) -> Figure:
    """One-vs-rest ROC curve per class (from ``metrics.roc_curves``) plus the chance line."""
    fig = Figure(figsize=(6.5, 6))
    _margins(fig, left=0.75, bottom=0.6, right=0.15, top=0.4)
    ax = fig.add_subplot()
    colours = _colours(len(class_names))
    for index, (fpr, tpr, auc) in sorted(roc_curves.items()):
        ax.plot(fpr, tpr, lw=1.8, color=colours[index],
                label=f"{class_names[index]} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], ls="--", lw=1, color="grey", label="chance")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    title = "ROC curves (one-vs-rest)"
    if roc_curves:  # the same macro average as metrics.auc_roc_macro
        title += f", macro AUC {np.mean([auc for _, _, auc in roc_curves.values()]):.3f}"
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def learning_curves_figure(history: Mapping[str, Sequence[float]]) -> Figure:
    """Loss and accuracy per epoch, train and validation, in two panels.

    Missing series are skipped (a panel with none says so); markers are drawn
    so that a one-epoch run still shows its point.
    """
    fig = Figure(figsize=(11, 4.2))
    _margins(fig, left=0.75, bottom=0.55, right=0.15, top=0.75, wspace=0.2)
    n_epochs = max((len(v) for v in history.values() if v), default=1)
    panels = (("Loss", "loss"), ("Accuracy", "accuracy"))
    for ax, (title, metric) in zip(fig.subplots(1, 2), panels):
        drawn = False
        for split, style in (("train", "-"), ("val", "--")):
            values = history.get(f"{split}_{metric}")
            if not values:
                continue
            epochs = np.arange(1, len(values) + 1)
            ax.plot(epochs, values, style, marker="o", markersize=4, label=split)
            drawn = True
        if drawn:
            ax.legend()
        else:
            ax.text(0.5, 0.5, f"no {metric} recorded", ha="center", va="center",
                    transform=ax.transAxes, color="grey")
        # Whole epochs only, with half an epoch of margin so a single epoch
        # gets the tick "1" rather than fractional ones.
        ax.set_xlim(0.5, n_epochs + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.grid(alpha=0.3)
        ax.set_xlabel("Epoch")
        ax.set_ylabel(title)
        ax.set_title(title)
    fig.suptitle("Learning curves")
    return fig


def class_distribution_figure(counts: Mapping[str, Mapping[str, int]]) -> Figure:
    """Images per class, as ``{split: {class_name: count}}``: grouped bars per split.

    Classes keep their first-seen order; a class missing from a split counts 0.
    """
    classes: list[str] = []
    for per_class in counts.values():
        classes += [c for c in per_class if c not in classes]
    splits = list(counts)
    x = np.arange(len(classes))
    width = 0.8 / max(len(splits), 1)

    fig = Figure(figsize=(max(6.0, 1.0 + 0.45 * len(classes) * max(len(splits), 2)), 4.5),
                 layout="constrained")
    ax = fig.add_subplot()
    for i, split in enumerate(splits):
        heights = [counts[split].get(c, 0) for c in classes]
        bars = ax.bar(x + (i - (len(splits) - 1) / 2) * width, heights, width, label=split)
        if len(classes) * len(splits) <= 40:  # beyond that the labels overlap
            ax.bar_label(bars, fontsize=7, padding=1)
    ax.set_xticks(x, classes, rotation=30, ha="right", rotation_mode="anchor")
    ax.set_xlabel("Class")
    ax.set_ylabel("Images")
    ax.set_title("Class distribution" + (f" ({splits[0]})" if len(splits) == 1 else ""))
    ax.margins(y=0.12)
    if len(splits) > 1:
        ax.legend(title="Split")
    return fig


def sample_grid_figure(images_by_class: Mapping[str, np.ndarray], n_per_class: int = 8) -> Figure:
    """Up to ``n_per_class`` sample images per class, one row per class.

    Images are (N, H, W), (N, H, W, 1) or (N, H, W, 3); uint8 in 0-255 or floats
    in 0-1.
    """
    names = list(images_by_class)
    rows = max(len(names), 1)
    fig = Figure(figsize=(1.2 * n_per_class + 1.2, 1.25 * rows), layout="constrained")
    axes = np.asarray(fig.subplots(rows, n_per_class, squeeze=False))
    for r, name in enumerate(names):
        images = np.asarray(images_by_class[name])
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(images):
                image = images[c]
                if image.ndim == 3 and image.shape[-1] == 1:
                    image = image[..., 0]
                # Fixed range so that a dark face is not stretched to full contrast.
                vmax = 255 if np.issubdtype(image.dtype, np.integer) else 1.0
                ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=vmax)
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=10)
    fig.suptitle("Samples per class")
    return fig


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = DPI) -> Path:
    """Write ``fig`` as a PNG (creating parent folders) and release it; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path, dpi=dpi, format="png", facecolor="white")
    finally:
        _release(fig)
    return path


# zlib level 1 rather than PIL's 6: the same pixels in a file ~12 % larger, encoded in 15 ms
# instead of 24 (a confusion matrix here; encoding was the largest single cost in a profile
# of a run's figures, though drawing them costs more in all).
_PNG_SAVE_KWARGS = {"format": "png", "pil_kwargs": {"compress_level": 1}}


def png_bytes(fig: Figure) -> bytes:
    """``fig`` as a PNG file's bytes, as ``mlflow.log_figure`` would save it; releases it."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, **_PNG_SAVE_KWARGS)
    finally:
        _release(fig)
    return buffer.getvalue()


def evaluation_pngs(confusion: np.ndarray, class_names: Sequence[str],
                    roc_curves: Mapping[int, tuple[np.ndarray, np.ndarray, float]],
                    history: Mapping[str, Sequence[float]]) -> dict[str, bytes]:
    """The three figures every training run logs, as PNG bytes by artifact path.

    A module-level function of plain arguments, so that ``emorec.figure_helper`` can
    run it in its drawing process."""
    names = list(class_names)
    return {"plots/confusion_matrix.png": png_bytes(confusion_matrix_figure(confusion, names)),
            "plots/roc_curves.png": png_bytes(roc_figure(roc_curves, names)),
            "plots/learning_curves.png": png_bytes(learning_curves_figure(history))}


def _release(fig: Figure) -> None:
    # A figure made through pyplot stays in its registry until closed.
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(fig)
    fig.clear()


def _margins(fig: Figure, *, left: float, bottom: float, right: float, top: float,
             **spacing) -> None:
    """Fixed figure margins given in inches (whatever the figure's size)."""
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                        top=1 - top / height, **spacing)


def _colours(n: int) -> list:
    """Distinct colours for up to 20 classes, stable by class index."""
    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]
