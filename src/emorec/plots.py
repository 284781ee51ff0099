"""Figures drawn with matplotlib: a dataset's class distribution and sample images
(``emorec explore``), bar charts of reports, Optuna's study plots; ``save_figure`` writes
one as a PNG, ``png_bytes`` gives its bytes.

Figures are built as bare ``matplotlib.figure.Figure`` objects rather than
through ``pyplot``: they render with the Agg canvas on a headless server, need
no display and no global backend switch, and are never registered in pyplot's
figure manager, so a figure the caller forgets to close cannot leak.
``save_figure`` writes a PNG and releases the figure either way.

The figures every training run logs are not here but in ``emorec.evaluation_figures``,
written as SVG: drawn at the end of every run and study trial, they cost too much here.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

DPI = 120


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


def png_bytes(fig: Figure) -> bytes:
    """``fig`` as the bytes of the PNG file ``save_figure`` would write; releases it."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, dpi=DPI, format="png", facecolor="white")
    finally:
        _release(fig)
    return buffer.getvalue()


def _release(fig: Figure) -> None:
    # A figure made through pyplot stays in its registry until closed.
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(fig)
    fig.clear()
