"""Every figure emorec draws, with matplotlib: a run's confusion matrix, ROC curves and
learning curves; a dataset's class distribution and samples; the comparison report's bar
charts and cross-dataset heatmap. ``figure_bytes`` encodes one (SVG or PNG), ``save``
writes one.

Figures are bare ``matplotlib.figure.Figure`` objects rather than ``pyplot`` ones: they
need no display and no global backend switch, and a figure the caller forgets cannot
leak in pyplot's registry. A run's figures are SVG with their text kept as text: sharp
at any zoom, shown by the MLflow UI, and quicker to write than a raster.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure

DPI = 120
SVG_TEXT = {"svg.fonttype": "none"}  # text stays text (the browser lays it out)


def figure_bytes(fig: Figure, fmt: str = "png") -> bytes:
    """``fig`` as the bytes of an SVG or PNG file."""
    buffer = io.BytesIO()
    with rc_context(SVG_TEXT):
        fig.savefig(buffer, format=fmt, dpi=DPI, facecolor="white")
    return buffer.getvalue()


def save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Write ``fig`` in the format its suffix names (creating parent folders)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(figure_bytes(fig, path.suffix.lstrip(".").lower() or "png"))
    return path


def run_figures(
    confusion,
    class_names: Sequence[str],
    roc: Mapping[int, tuple],
    history: Mapping[str, Sequence[float]],
) -> dict[str, bytes]:
    """A run's three figures, as SVG files' bytes by artifact path; ``roc`` is the
    evaluation's ``roc`` (``emorec.evaluation.metrics.classification_metrics``)."""
    names = [str(n) for n in class_names]
    return {
        "plots/confusion_matrix.svg": figure_bytes(confusion_figure(confusion, names), "svg"),
        "plots/roc_curves.svg": figure_bytes(roc_figure(roc, names), "svg"),
        "plots/learning_curves.svg": figure_bytes(learning_curves_figure(history), "svg"),
    }


def confusion_figure(cm, class_names: Sequence[str]) -> Figure:
    """Rows true, columns predicted; colours are each row's share (recall per class), which
    keeps small classes readable beside large ones; cells carry the count."""
    counts = np.asarray(cm, dtype=float)
    k = len(counts)
    rows = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    side = 2.5 + 0.6 * k
    fig = Figure(figsize=(side + 1.2, side))
    ax = fig.add_axes((0.24, 0.22, 0.6, 0.68))
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    if k <= 15:
        for i in range(k):
            for j in range(k):
                ax.text(
                    j,
                    i,
                    f"{counts[i, j]:.0f}",
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="white" if shares[i, j] > 0.55 else "black",
                )
    ax.set_xticks(range(k), class_names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")
    ax.set_title("Confusion matrix (colour: share of the true class)")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return fig


def roc_figure(roc: Mapping[int, tuple], class_names: Sequence[str]) -> Figure:
    """One-vs-rest ROC curve per class, with its AUC, and the chance line."""
    fig = Figure(figsize=(6.0, 5.6))
    ax = fig.add_axes((0.12, 0.1, 0.84, 0.8))
    for index, (fpr, tpr, auc) in sorted(roc.items()):
        ax.plot(fpr, tpr, linewidth=2, label=f"{class_names[index]} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=1, label="chance")
    title = "ROC curves (one-vs-rest)"
    if roc:  # the same macro average as auc_roc_macro
        title += f", macro AUC {np.mean([auc for _, _, auc in roc.values()]):.3f}"
    ax.set(
        xlim=(-0.01, 1.01),
        ylim=(-0.01, 1.01),
        xlabel="False positive rate",
        ylabel="True positive rate",
        title=title,
    )
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def learning_curves_figure(history: Mapping[str, Sequence[float]]) -> Figure:
    """Loss and accuracy per epoch, train and validation; markers show a one-epoch run."""
    fig = Figure(figsize=(10.0, 4.1))
    for position, metric in ((0.07, "loss"), (0.57, "accuracy")):
        ax = fig.add_axes((position, 0.14, 0.38, 0.72))
        drawn = False
        for split, style in (("train", "-"), ("val", "--")):
            values = list(history.get(f"{split}_{metric}") or [])
            if values:
                ax.plot(range(1, len(values) + 1), values, style, marker="o", label=split)
                drawn = True
        if drawn:
            ax.legend()
        else:
            ax.text(0.5, 0.5, f"no {metric} recorded", ha="center", transform=ax.transAxes)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set(xlabel="Epoch", title=metric.capitalize())
        ax.grid(alpha=0.3)
    fig.suptitle("Learning curves")
    return fig


def class_distribution_figure(counts: Mapping[str, Mapping[str, int]]) -> Figure:
    """Images per class, as ``{split: {class_name: count}}``: grouped bars per split."""
    classes: list[str] = []
    for per_class in counts.values():
        classes += [c for c in per_class if c not in classes]
    table = {split: [counts[split].get(c, 0) for c in classes] for split in counts}
    title = "Class distribution" + (f" ({next(iter(counts))})" if len(counts) == 1 else "")
    return grouped_bars(classes, table, "Images", title, legend="Split", rotate=True)


def grouped_bars(
    groups: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    ylabel: str,
    title: str,
    *,
    legend: str = "",
    rotate: bool = False,
) -> Figure:
    """One group of bars per ``groups`` entry, one bar per series in each, labelled."""
    x = np.arange(len(groups))
    width = 0.8 / max(len(series), 1)
    fig = Figure(
        figsize=(max(6.0, 1.0 + 0.45 * len(groups) * max(len(series), 2)), 4.5),
        layout="constrained",
    )
    ax = fig.add_subplot()
    for i, (name, values) in enumerate(series.items()):
        heights = [np.nan if v is None else float(v) for v in values]
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, heights, width, label=name)
        if len(groups) * len(series) <= 40:  # beyond that the labels overlap
            ax.bar_label(bars, fmt="%.3g", fontsize=7, padding=1)
    ax.set_xticks(
        x,
        groups,
        rotation=30 if rotate else 0,
        ha="right" if rotate else "center",
        rotation_mode="anchor",
    )
    ax.set(ylabel=ylabel, title=title)
    ax.margins(y=0.15)
    ax.grid(axis="y", alpha=0.3)
    if len(series) > 1:
        ax.legend(title=legend or None, fontsize=8)
    return fig


def sample_grid_figure(images_by_class: Mapping[str, np.ndarray], n_per_class: int = 8) -> Figure:
    """Up to ``n_per_class`` sample images per class, one row per class; images are
    (N, H, W[, 1 or 3]), uint8 0-255 or floats 0-1."""
    names = list(images_by_class)
    rows = max(len(names), 1)
    fig = Figure(figsize=(1.2 * n_per_class + 1.2, 1.25 * rows), layout="constrained")
    axes = np.asarray(fig.subplots(rows, n_per_class, squeeze=False))
    for r, name in enumerate(names):
        images = np.asarray(images_by_class[name])
        for c, ax in enumerate(axes[r]):
            ax.set_axis_off()
            if c < len(images):
                image = images[c][..., 0] if images[c].shape[-1:] == (1,) else images[c]
                # Fixed range so that a dark face is not stretched to full contrast.
                vmax = 255 if np.issubdtype(image.dtype, np.integer) else 1.0
                ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=vmax)
        axes[r, 0].set_axis_on()
        axes[r, 0].set_xticks([])
        axes[r, 0].set_yticks([])
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=10)
    fig.suptitle("Samples per class")
    return fig


def heatmap_figure(
    values: np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str,
    colour_label: str,
) -> Figure:
    """A matrix of shares in [0, 1], each cell written ("n/a" for NaN)."""
    size = 3 + 1.1 * len(col_labels)
    label_room = 0.09 * max(len(label) for label in row_labels)
    fig = Figure(figsize=(size + 1.5 + label_room, size), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(np.nan_to_num(values, nan=0.0), cmap="viridis", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, shrink=0.8, label=colour_label)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            text = "n/a" if np.isnan(values[i, j]) else f"{values[i, j]:.2f}"
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                color="black" if values[i, j] > 0.6 else "white",
            )
    ax.set_xticks(range(len(col_labels)), col_labels, rotation=30, ha="right")
    ax.set_yticks(range(len(row_labels)), row_labels)
    ax.set(title=title)
    return fig
