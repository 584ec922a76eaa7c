"""Figures drawn with matplotlib: the confusion-matrix heatmap of the evaluate, train and protocol
PNGs (`draw_confusion` on an axis of `new_figure`).

Figures are built on matplotlib's Agg canvas directly (no pyplot), so the process-wide backend is
left alone, nothing needs a display, and a figure is freed like any other object.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle


def new_figure(width: float, height: float) -> Figure:
    """A blank figure of ``width × height`` inches on an Agg canvas, constrained layout."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def draw_confusion(
    ax: Any,
    confusion: np.ndarray,
    labels: Sequence[str],
    *,
    normalise: bool = True,
    highlight: str | None = None,
    row_name: str = "true",
    column_name: str = "predicted",
) -> None:
    """Draw a confusion matrix heatmap on a matplotlib axis, each non-empty cell annotated.

    Args:
        ax: the axis to draw on.
        confusion: ``(K, K)`` counts, rows = truth (or posed), columns = prediction.
        labels: the ``K`` labels.
        normalise: colour and annotate rows as fractions (recall per class) instead of counts.
            Empty cells are left blank.
        highlight: a label whose column (the model said it) is outlined solid and whose row (it
            was the truth) dashed; None for no highlight.
        row_name, column_name: axis names.
    """
    counts = np.asarray(confusion, np.float64)
    k = len(labels)
    if counts.shape != (k, k):
        raise ValueError(f"confusion matrix of shape {counts.shape} does not fit {k} labels")
    rows = counts.sum(axis=1, keepdims=True)
    values = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0) if normalise else counts
    vmax = 1.0 if normalise else max(float(values.max()), 1.0)
    ax.imshow(values, cmap="Blues", vmin=0, vmax=vmax)
    ax.set_xticks(range(k), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), labels, fontsize=8)
    ax.set_xlabel(column_name, fontsize=9)
    ax.set_ylabel(row_name, fontsize=9)
    for t in range(k):
        for p in range(k):
            if counts[t, p] == 0:
                continue
            text = f"{values[t, p]:.2f}".lstrip("0") if normalise else f"{int(counts[t, p])}"
            ax.text(p, t, text, ha="center", va="center", fontsize=7,
                    color="white" if values[t, p] > vmax / 2 else "black")
    if highlight is not None and highlight in labels:
        i = list(labels).index(highlight)
        ax.add_patch(Rectangle((i - 0.5, -0.5), 1, k, fill=False, edgecolor="#e63946", linewidth=2.5))
        ax.add_patch(Rectangle((-0.5, i - 0.5), k, 1, fill=False, edgecolor="#e63946", linewidth=1.5,
                               linestyle="--"))
        ax.get_xticklabels()[i].set_fontweight("bold")
        ax.get_yticklabels()[i].set_fontweight("bold")
