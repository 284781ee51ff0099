"""The three figures every training run logs (confusion matrix, ROC curves, learning
curves), written as SVG.

Why not matplotlib, as the rest of ``emorec.plots``: these are drawn at the end of every
run and study trial, and matplotlib took 0.4-0.6 s of CPU for the three on this
project's 2-core machine, nearly all of it laying out and rasterising their ~130 texts:
~3 % of an 8-epoch CK+48 run (``benchmarks/tracking_overhead.py``), even drawn in a
helper process beside the run, as they were. Written as SVG, the browser lays the text
out and the three take ~3 ms in the run's own process. The MLflow UI shows an ``.svg``
artifact as an image; it stays sharp at any zoom and goes into a paper as vector art.

Every text is XML-escaped: class names come from a user's folder names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from xml.sax.saxutils import escape, quoteattr

import numpy as np

FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
# ColorBrewer's "Blues" (matplotlib's Blues colormap is the linear ramp through these).
BLUES = ("#f7fbff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5",
         "#08519c", "#08306b")
# matplotlib's tab10 and tab20: distinct colours per class, stable by class index.
TAB10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
         "#7f7f7f", "#bcbd22", "#17becf")
TAB20 = ("#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728",
         "#ff9896", "#9467bd", "#c5b0d5", "#8c564b", "#c49c94", "#e377c2", "#f7b6d2",
         "#7f7f7f", "#c7c7c7", "#bcbd22", "#dbdb8d", "#17becf", "#9edae5")
GRID = "#e6e6e6"
SPLIT_STYLES = (("train", None), ("val", "6 4"))  # solid and dashed lines


def evaluation_svgs(confusion: Sequence[Sequence[int]] | np.ndarray, class_names: Sequence[str],
                    roc_curves: Mapping[int, tuple[np.ndarray, np.ndarray, float]],
                    history: Mapping[str, Sequence[float]]) -> dict[str, bytes]:
    """The three figures, as SVG files' bytes by artifact path."""
    names = [str(n) for n in class_names]
    return {"plots/confusion_matrix.svg": confusion_matrix_svg(confusion, names),
            "plots/roc_curves.svg": roc_svg(roc_curves, names),
            "plots/learning_curves.svg": learning_curves_svg(history)}


def confusion_matrix_svg(cm: Sequence[Sequence[int]] | np.ndarray, class_names: Sequence[str],
                         normalize: bool = True) -> bytes:
    """Confusion matrix (rows true, columns predicted), annotated with counts.

    With ``normalize`` the colours show each row's fraction (recall per class), which
    keeps small classes readable next to large ones; the cells then carry the count and
    the percentage of the true class.
    """
    counts = np.asarray(cm, dtype=float)
    k = counts.shape[0]
    row_sums = counts.sum(axis=1, keepdims=True)
    # A class absent from the labels has an all-zero row: show it as 0, not NaN.
    fractions = np.divide(counts, row_sums, out=np.zeros_like(counts), where=row_sums > 0)
    shade = fractions if normalize else counts
    vmax = 1.0 if normalize else max(counts.max(), 1.0)

    cell = 64 if k <= 8 else max(24, 520 // k)
    font = 13 if k <= 8 else max(7, cell // 5)
    label = 13 if k <= 12 else 10
    name_px = _text_px(max(class_names, key=len, default=""), label)
    left, top = name_px + 52, 44
    bottom = name_px * 0.71 + 62  # room for the names at 45 degrees and "Predicted"
    side = cell * k
    svg = Svg(left + side + 120, top + side + bottom)
    svg.text(left + side / 2, 26, "Confusion matrix" + (" (row-normalised colours)"
                                                          if normalize else ""), 15, "middle")
    for i in range(k):
        for j in range(k):
            x, y = left + j * cell, top + i * cell
            svg.rect(x, y, cell, cell, blues(shade[i, j] / vmax))
            colour = "white" if shade[i, j] > 0.55 * vmax else "black"
            count = f"{counts[i, j]:.0f}"
            if normalize and row_sums[i, 0] > 0:
                svg.text(x + cell / 2, y + cell / 2 - 2, count, font, "middle", colour)
                svg.text(x + cell / 2, y + cell / 2 + font, f"{fractions[i, j]:.0%}", font,
                         "middle", colour)
            else:
                svg.text(x + cell / 2, y + cell / 2 + font * 0.35, count, font, "middle", colour)
    svg.rect(left, top, side, side, "none", stroke="black")
    for i, name in enumerate(class_names):
        centre = left + i * cell + cell / 2
        svg.line(centre, top + side, centre, top + side + 4)
        svg.text(centre + 4, top + side + 12, name, label, "end", rotate=-45)
        middle = top + i * cell + cell / 2
        svg.line(left - 4, middle, left, middle)
        svg.text(left - 7, middle + label * 0.35, name, label, "end")
    svg.text(left + side / 2, top + side + bottom - 12, "Predicted", 13, "middle")
    svg.text(14, top + side / 2, "True", 13, "middle", rotate=-90)
    _colour_bar(svg, left + side + 24, top + side * 0.1, side * 0.8, vmax,
                "Fraction of true class" if normalize else "Count")
    return svg.bytes()


def roc_svg(roc_curves: Mapping[int, tuple[np.ndarray, np.ndarray, float]],
            class_names: Sequence[str]) -> bytes:
    """One-vs-rest ROC curve per class (from ``metrics.roc_curves``) plus the chance line."""
    svg = Svg(600, 560)
    axes = Axes(svg, 70, 50, 460, 460, (-0.01, 1.01), (-0.01, 1.01))
    axes.frame(nice_ticks(0, 1), nice_ticks(0, 1), "False positive rate", "True positive rate")
    title = "ROC curves (one-vs-rest)"
    if roc_curves:  # the same macro average as metrics.auc_roc_macro
        title += f", macro AUC {np.mean([auc for _, _, auc in roc_curves.values()]):.3f}"
    svg.text(70 + 230, 30, title, 15, "middle")
    colours = class_colours(len(class_names))
    entries = []
    for index, (fpr, tpr, auc) in sorted(roc_curves.items()):
        axes.line(fpr, tpr, colours[index], width=2)
        entries.append((f"{class_names[index]} (AUC {auc:.3f})", colours[index], None, False))
    axes.line([0, 1], [0, 1], "grey", width=1, dash="5 4")
    entries.append(("chance", "grey", "5 4", False))
    axes.legend(entries, inside=True)
    return svg.bytes()


def learning_curves_svg(history: Mapping[str, Sequence[float]]) -> bytes:
    """Loss and accuracy per epoch, train and validation, in two panels.

    Missing series are skipped (a panel with none says so); markers are drawn so that a
    one-epoch run still shows its point.
    """
    svg = Svg(1000, 410)
    svg.text(500, 26, "Learning curves", 16, "middle")
    n_epochs = max((len(v) for v in history.values() if v), default=1)
    epoch_ticks = [t for t in nice_ticks(1, n_epochs, integer=True) if 1 <= t <= n_epochs]
    for left, (title, metric) in ((75, ("Loss", "loss")), (575, ("Accuracy", "accuracy"))):
        series = {split: [float(v) for v in history.get(f"{split}_{metric}") or []]
                  for split, _ in SPLIT_STYLES}
        values = [v for vs in series.values() for v in vs if math.isfinite(v)]
        low, high = (min(values), max(values)) if values else (0.0, 1.0)
        pad = (high - low) * 0.05 or max(abs(high) * 0.05, 0.05)
        axes = Axes(svg, left, 66, 400, 280, (0.5, n_epochs + 0.5), (low - pad, high + pad))
        axes.frame(epoch_ticks, nice_ticks(low - pad, high + pad), "Epoch", title)
        svg.text(left, 56, title, 14)
        entries = []
        for (split, dash), colour in zip(SPLIT_STYLES, TAB10):
            if series[split]:
                epochs = np.arange(1, len(series[split]) + 1)
                axes.line(epochs, series[split], colour, width=2, dash=dash, markers=True)
                entries.append((split, colour, dash, True))
        if entries:
            axes.legend(entries, inside=False)
        else:
            svg.text(left + 200, 206, f"no {metric} recorded", 13, "middle", "grey")
    return svg.bytes()


class Svg:
    """An SVG document built element by element, coordinates in pixels from the top left."""

    def __init__(self, width: float, height: float):
        self.width, self.height = width, height
        self.parts: list[str] = []
        self.rect(0, 0, width, height, "white")

    def rect(self, x, y, w, h, fill, *, stroke=None, stroke_width=1) -> None:
        line = f' stroke="{stroke}" stroke-width="{stroke_width}"' if stroke else ""
        self.parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" '
                          f'fill="{fill}"{line}/>')

    def line(self, x1, y1, x2, y2, stroke="black", width=1) -> None:
        self.parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                          f'stroke="{stroke}" stroke-width="{width}"/>')

    def polyline(self, points, stroke, width=1.5, dash=None) -> None:
        coordinates = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(f'<polyline points="{coordinates}" fill="none" stroke="{stroke}" '
                          f'stroke-width="{width}" stroke-linejoin="round"{dashes}/>')

    def circle(self, x, y, r, fill) -> None:
        self.parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{fill}"/>')

    def text(self, x, y, text: str, size=12, anchor="start", fill="black", *,
             rotate: float | None = None) -> None:
        turn = f' transform="rotate({rotate} {x:.1f} {y:.1f})"' if rotate else ""
        colour = f' fill="{fill}"' if fill != "black" else ""
        self.parts.append(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" '
                          f'text-anchor="{anchor}"{colour}{turn}>{escape(text)}</text>')

    def raw(self, element: str) -> None:
        """An element built by the caller, its text already escaped."""
        self.parts.append(element)

    def bytes(self) -> bytes:
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width:.0f}" '
                f'height="{self.height:.0f}" viewBox="0 0 {self.width:.0f} {self.height:.0f}" '
                f'font-family={quoteattr(FONT)}>')
        return "\n".join([head, *self.parts, "</svg>\n"]).encode()


class Axes:
    """A plotting area of ``svg``: its box in pixels and the data limits it shows."""

    def __init__(self, svg: Svg, left, top, width, height, xlim, ylim):
        self.svg, self.box = svg, (left, top, width, height)
        self.xlim, self.ylim = xlim, ylim

    def x(self, value: float) -> float:
        left, _, width, _ = self.box
        low, high = self.xlim
        return left + (value - low) / (high - low) * width

    def y(self, value: float) -> float:
        _, top, _, height = self.box
        low, high = self.ylim
        return top + height - (value - low) / (high - low) * height

    def frame(self, xticks, yticks, xlabel: str, ylabel: str) -> None:
        """Grid, ticks with their labels, the box, and the axis labels."""
        left, top, width, height = self.box
        svg = self.svg
        for tick, text in _tick_labels(xticks):
            x = self.x(tick)
            svg.line(x, top, x, top + height, GRID)
            svg.line(x, top + height, x, top + height + 5)
            svg.text(x, top + height + 19, text, 12, "middle")
        for tick, text in _tick_labels(yticks):
            y = self.y(tick)
            svg.line(left, y, left + width, y, GRID)
            svg.line(left - 5, y, left, y)
            svg.text(left - 8, y + 4, text, 12, "end")
        svg.rect(left, top, width, height, "none", stroke="black")
        svg.text(left + width / 2, top + height + 42, xlabel, 13, "middle")
        svg.text(left - 52, top + height / 2, ylabel, 13, "middle", rotate=-90)

    def line(self, xs, ys, colour, *, width=1.5, dash=None, markers=False) -> None:
        """A data series, clipped to the plotting area's limits; ``markers``: a dot per point."""
        points = [(self.x(x), self.y(y)) for x, y in zip(np.asarray(xs, float),
                                                           np.asarray(ys, float))
                  if math.isfinite(x) and math.isfinite(y)]
        points = [(x, min(max(y, self.box[1]), self.box[1] + self.box[3])) for x, y in points]
        if len(points) > 1:
            self.svg.polyline(points, colour, width, dash)
        if markers or len(points) == 1:
            for x, y in points:
                self.svg.circle(x, y, 3.5, colour)

    def legend(self, entries, *, inside: bool) -> None:
        """The key to the lines, ``entries`` of (label, colour, dash, with marker): boxed in
        the lower right corner ``inside`` the area (where ROC curves leave room), else in a
        row above its top right corner, where it hides no point."""
        left, top, width, height = self.box
        row, size = 18, 11
        widths = [40 + _text_px(label, size) for label, *_ in entries]
        if inside:
            box_w, box_h = 4 + max(widths), row * len(entries) + 8
            x0, y0 = left + width - box_w - 8, top + height - box_h - 8
            self.svg.raw(f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{box_w:.1f}" '
                         f'height="{box_h}" fill="white" stroke="#cccccc" rx="3"/>')
            places = [(x0 + 4, y0 + 4 + row * n + row / 2) for n in range(len(entries))]
        else:
            x = left + width - sum(widths)
            places = [(x + sum(widths[:n]), top - 10) for n in range(len(entries))]
        for (x, y), (label, colour, dash, marker) in zip(places, entries):
            self.svg.polyline([(x + 4, y), (x + 28, y)], colour, 2, dash)
            if marker:
                self.svg.circle(x + 16, y, 3.5, colour)
            self.svg.text(x + 34, y + 4, label, size)


def _colour_bar(svg: Svg, x, top, height, vmax: float, label: str) -> None:
    """A vertical Blues colour bar from 0 (bottom) to ``vmax``, with ticks and a label."""
    stops = "".join(f'<stop offset="{i / (len(BLUES) - 1):.3f}" stop-color="{c}"/>'
                    for i, c in enumerate(BLUES))
    svg.raw(f'<defs><linearGradient id="blues" x1="0" y1="1" x2="0" y2="0">{stops}'
            '</linearGradient></defs>')
    svg.rect(x, top, 18, height, "url(#blues)", stroke="black")
    for tick, text in _tick_labels([t for t in nice_ticks(0, vmax) if t <= vmax]):
        y = top + height - tick / vmax * height
        svg.line(x + 18, y, x + 22, y)
        svg.text(x + 25, y + 4, text, 11)
    svg.text(x + 78, top + height / 2, label, 12, "middle", rotate=-90)


def blues(fraction: float) -> str:
    """The colour at ``fraction`` (0-1) along ``BLUES``, as #rrggbb."""
    position = min(max(float(fraction), 0.0), 1.0) * (len(BLUES) - 1)
    i = min(int(position), len(BLUES) - 2)
    low, high = _rgb(BLUES[i]), _rgb(BLUES[i + 1])
    mixed = (round(a + (b - a) * (position - i)) for a, b in zip(low, high))
    return "#" + "".join(f"{c:02x}" for c in mixed)


def class_colours(n: int) -> tuple[str, ...]:
    """Distinct colours for ``n`` classes, stable by class index (repeating past 20)."""
    palette = TAB10 if n <= 10 else TAB20
    return tuple(palette[i % len(palette)] for i in range(n))


def nice_ticks(low: float, high: float, most: int = 6, integer: bool = False) -> list[float]:
    """Round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) covering
    ``low``-``high`` with at most ``most`` ticks; whole numbers only with ``integer``."""
    span = max(high - low, 1e-12)
    raw = span / max(most - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * (1 - 1e-9))
    if integer:
        step = max(1, round(step))
    first = math.ceil(low / step - 1e-9) * step
    count = int(math.floor((high - first) / step + 1e-9)) + 1
    return [round(first + i * step, 12) for i in range(max(count, 0))]


def _tick_labels(ticks: Sequence[float]) -> list[tuple[float, str]]:
    """Ticks with labels of as few decimals as tell them apart (0.0, 0.2, ... or 1, 2)."""
    decimals = 0
    while decimals < 6 and any(abs(t - round(t, decimals)) > 1e-9 for t in ticks):
        decimals += 1
    return [(t, f"{t:.{decimals}f}") for t in ticks]


def _text_px(text: str, size: float) -> float:
    """About how wide ``text`` is at font size ``size`` (0.6 em a character), for margins
    and legend boxes; the browser does the actual layout."""
    return 0.6 * size * len(text)


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
