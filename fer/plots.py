"""Figures for the app: confusion matrices (the model's, with the current prediction highlighted, and
the session's) and timelines of expression probabilities (a figure for a video; for the live
stream a table the browser draws, `timeline_table`).

Figures are built on matplotlib's Agg canvas directly (no pyplot), so the process-wide backend is
left alone, nothing needs a display, and a figure is freed like any other object. Drawing one
takes tens of milliseconds: callers on a per-frame path draw them at most about once a second.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

if TYPE_CHECKING:
    import pandas as pd

    from fer.live import SessionConfusion
    from fer.video import VideoAnalysis

def _label_colour(label: str) -> tuple[float, float, float] | None:
    """A label's line colour (RGB in [0, 1]): the app's box colour, `fer.viz.LABEL_COLOURS`."""
    from fer.viz import LABEL_COLOURS

    rgb = LABEL_COLOURS.get(label)
    return None if rgb is None else (rgb[0] / 255, rgb[1] / 255, rgb[2] / 255)


def new_figure(width: float, height: float) -> Figure:
    """A blank figure of ``width × height`` inches on an Agg canvas, constrained layout."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure_to_array(fig: Figure, dpi: int = 100) -> np.ndarray:
    """Render a figure to ``(H, W, 3)`` uint8 RGB pixels."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    fig.set_dpi(dpi)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


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


def confusion_figure(
    confusion: np.ndarray,
    labels: Sequence[str],
    *,
    highlight: str | None = None,
    normalise: bool = True,
    title: str = "",
    row_name: str = "true",
    column_name: str = "predicted",
) -> Figure:
    """A figure holding one confusion matrix (see `draw_confusion` for the arguments), sized to
    its labels.

    Returns:
        A matplotlib `Figure`.
    """
    k = len(labels)
    # Fixed margins sized from the longest label instead of a layout engine (which doubles the
    # drawing time: the session matrix is redrawn live). No colour bar: every cell is written.
    longest = max(len(label) for label in labels) * 0.062  # inches at fontsize 8
    cell = 0.42
    left, bottom, top, right = longest + 0.55, longest * 0.72 + 0.55, 0.35 if title else 0.1, 0.1
    width, height = left + cell * k + right, bottom + cell * k + top
    if width < 0.07 * len(title) + 0.2:  # room for the title (fontsize 9) over the heatmap
        extra = 0.07 * len(title) + 0.2 - width
        left, right, width = left + extra / 2, right + extra / 2, width + extra
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height)
    draw_confusion(fig.add_subplot(), confusion, labels, normalise=normalise, highlight=highlight,
                   row_name=row_name, column_name=column_name)
    if title:
        fig.suptitle(title, fontsize=9, y=1 - 0.06 / height)
    return fig


def model_confusion_figure(evaluation: Mapping[str, Any], highlight: str | None = None) -> Figure:
    """The confusion matrix recorded in a model spec's ``evaluation`` (see `fer.models.ModelSpec`),
    rows normalised, with ``highlight``'s row and column outlined."""
    labels = list(evaluation["labels"])
    dataset = evaluation.get("dataset") or "held-out data"
    split = evaluation.get("split")
    where = f"{dataset} {split}" if split else dataset
    title = f"{where}: n={evaluation.get('n', '?')}, accuracy {float(evaluation.get('accuracy', 0)):.1%}"
    return confusion_figure(np.asarray(evaluation["confusion"]), labels, highlight=highlight, title=title)


def session_confusion_figure(confusion: SessionConfusion) -> Figure:
    """This session's posed-versus-predicted counts (rows posed)."""
    accuracy = confusion.accuracy
    title = (f"this session: {confusion.total} frames, accuracy {accuracy:.0%}" if accuracy is not None
             else "this session: no frames counted yet")
    return confusion_figure(confusion.counts, confusion.labels, normalise=False, title=title,
                            row_name="posed", column_name="predicted")


def draw_timeline(
    ax: Any,
    times: np.ndarray,
    values: np.ndarray,
    labels: Sequence[str],
    *,
    top: int = 3,
    title: str = "",
) -> None:
    """Draw the probabilities of the ``top`` labels (highest peaks) over time on a matplotlib axis.

    Args:
        ax: the axis to draw on.
        times: ``(T,)`` seconds.
        values: ``(T, C)`` probabilities in [0, 1].
        labels: the ``C`` labels.
        top: how many labels to draw.
        title: axes title.
    """
    values = np.asarray(values, np.float32)
    if len(values):
        for i in top_labels(values, top):
            ax.plot(times, values[:, i], label=labels[i], color=_label_colour(labels[i]), linewidth=1.6,
                    marker="." if len(times) < 30 else None)
        # Beside the axes, not on them: a probability near 1 runs along the top edge.
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    else:
        ax.text(0.5, 0.5, "no face yet", ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("seconds", fontsize=9)
    ax.set_ylabel("probability", fontsize=9)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)


def top_labels(values: np.ndarray, top: int) -> list[int]:
    """Indices of the ``top`` labels with the highest peak in ``(T, C)`` probabilities, highest first."""
    return [int(i) for i in np.argsort(-np.asarray(values).max(axis=0), kind="stable")[:top]] if len(values) else []


def label_colours_hex(labels: Sequence[str]) -> dict[str, str]:
    """``{label: "#rrggbb"}``: the app's box colour of each label that has one (`fer.viz.LABEL_COLOURS`)."""
    from fer.viz import LABEL_COLOURS

    return {label: "#" + bytes(LABEL_COLOURS[label]).hex() for label in labels if label in LABEL_COLOURS}


def timeline_table(times: np.ndarray, values: np.ndarray, labels: Sequence[str], *, top: int = 3) -> pd.DataFrame:
    """The data of `draw_timeline` as a long table, for a plot the browser draws (``gr.LinePlot``).

    Args:
        times: ``(T,)`` seconds.
        values: ``(T, C)`` probabilities in [0, 1].
        labels: the ``C`` labels.
        top: how many labels to keep (highest peaks).
    Returns:
        A DataFrame with columns ``seconds`` (float), ``probability`` (float in [0, 1]) and
        ``expression`` (label), ``T × top`` rows; empty when ``T == 0``.
    """
    import pandas as pd

    values = np.asarray(values, np.float32)
    times = np.asarray(times, np.float64)
    keep = top_labels(values, top)
    return pd.DataFrame({
        "seconds": np.tile(times, len(keep)),
        "probability": np.concatenate([values[:, i] for i in keep]) if keep else np.zeros(0, np.float32),
        "expression": np.repeat([labels[i] for i in keep], len(times)),
    })


def video_timeline_figure(analysis: VideoAnalysis, *, top: int = 3, max_faces: int = 4) -> Figure:
    """One timeline per face (the ``max_faces`` most seen), stacked, sharing the time axis."""
    faces = analysis.faces[:max_faces]
    fig = new_figure(7.5, 1.2 + 2.0 * max(1, len(faces)))
    axes = fig.subplots(max(1, len(faces)), 1, sharex=True, squeeze=False)[:, 0]
    if not faces:
        draw_timeline(axes[0], np.zeros(0), np.zeros((0, len(analysis.labels))), analysis.labels,
                      title="no face found in the sampled frames")
    for ax, face in zip(axes, faces, strict=False):
        times, values = analysis.series(face)
        draw_timeline(ax, times, values, analysis.labels, top=top, title=f"face #{face}")
    for ax in axes[:-1]:
        ax.set_xlabel("")  # the time axis is shared: named once, at the bottom
    return fig
