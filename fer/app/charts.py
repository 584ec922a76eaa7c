"""Charts the app draws as inline SVG and HTML: probability timelines and count matrices.

Strings, not figures: building one costs microseconds (no plotting library per frame), it is
readable at any width (SVG scales; the matrix is a table), and nothing is rendered on the server.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import numpy as np

from fer.viz import label_colour_hex

#: Drawing area of a timeline, in SVG units (the picture scales to its container's width).
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 600, 170, 34, 22, 8


def shown_labels(values: np.ndarray, k: int = 3) -> list[int]:
    """Which labels a timeline draws: every label that was ever the most probable, then the ``k``
    labels with the highest peaks, in order of first appearance as top-1, then by peak.

    Args:
        values: ``(T, C)`` probabilities in [0, 1].
    Returns:
        Label indices, no repeats; empty when ``T == 0``.
    """
    values = np.asarray(values)
    if not len(values):
        return []
    chosen: list[int] = []
    for index in values.argmax(axis=1):
        if int(index) not in chosen:
            chosen.append(int(index))
    for index in np.argsort(-values.max(axis=0), kind="stable")[:k]:
        if int(index) not in chosen:
            chosen.append(int(index))
    return chosen


def time_ticks(start: float, end: float, most: int = 7) -> list[float]:
    """Round seconds to label between ``start`` and ``end`` (both included when ``end > start``):
    a step of 0.5, 1, 2, 5, 10, 15 or 30 s, the smallest giving at most ``most`` ticks."""
    span = max(end - start, 0.0)
    step = next((s for s in (0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0) if span / s < most), 60.0)
    first = np.ceil(start / step - 1e-9) * step
    ticks = [float(t) for t in np.arange(first, end + 1e-9, step)]
    return ticks or [start]


def timeline_svg(times: np.ndarray, values: np.ndarray, labels: Sequence[str], title: str, k: int = 3,
                 span: tuple[float, float] | None = None) -> str:
    """A probability timeline as an inline ``<svg>`` with a legend.

    Args:
        times: ``(T,)`` seconds.
        values: ``(T, C)`` probabilities in [0, 1] over ``labels``.
        title: one line above the chart.
        k: see `shown_labels`.
        span: ``(start, end)`` seconds of the x axis; timelines given the same span share one time
            axis (same range, same ticks), so faces can be compared by their position. Default: the
            first to the last of ``times``.
    """
    times = np.asarray(times, np.float64)
    values = np.asarray(values, np.float64)
    keep = shown_labels(values, k)
    plot_w, plot_h = WIDTH - LEFT - 6, HEIGHT - BOTTOM - TOP
    if span is not None:
        start, end = float(span[0]), float(span[1])
    else:
        start, end = (float(times[0]), float(times[-1])) if len(times) else (0.0, 1.0)
    span_s = max(end - start, 1e-6)
    parts = [f'<svg class="fer-timeline-svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-label="{escape(title)}">']
    for level in (0.0, 0.5, 1.0):
        y = TOP + plot_h * (1 - level)
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" class="fer-grid"/>'
                     f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" class="fer-axis">{level:.1f}</text>')
    parts.append(f'<text x="{LEFT}" y="{HEIGHT - 6}" class="fer-axis">{start:.1f} s</text>'
                 f'<text x="{LEFT + plot_w}" y="{HEIGHT - 6}" text-anchor="end" class="fer-axis">{end:.1f} s</text>')
    for tick in time_ticks(start, end):
        share = (tick - start) / span_s
        if 0.06 < share < 0.94:  # the two ends are labelled above, more precisely
            x = LEFT + plot_w * share
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + plot_h}" class="fer-grid fer-tick"/>'
                         f'<text x="{x:.1f}" y="{HEIGHT - 6}" text-anchor="middle" class="fer-axis">{tick:g} s</text>')
    for index in keep:
        if span is None and len(times) < 2:
            xs = np.full(len(times), LEFT + plot_w / 2)
        else:
            xs = LEFT + plot_w * (times - start) / span_s
        ys = TOP + plot_h * (1 - np.clip(values[:, index], 0, 1))
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{label_colour_hex(labels[index])}" stroke-width="2.2" '
                     f'vector-effect="non-scaling-stroke"/>')
    parts.append("</svg>")
    legend = "".join(f'<span class="fer-legend-item"><span class="fer-swatch" style="background:{label_colour_hex(labels[i])}">'
                     f'</span>{escape(labels[i])}</span>' for i in keep)
    empty = "" if len(times) else '<p class="fer-note">nothing yet</p>'
    return (f'<div class="fer-timeline"><p class="fer-chart-title">{escape(title)}</p>{"".join(parts)}'
            f'<div class="fer-legend">{legend}</div>{empty}</div>')


def matrix_html(counts: np.ndarray, labels: Sequence[str], row_name: str, column_name: str,
                title: str = "") -> str:
    """A count matrix as an HTML table, each cell shaded by its share of the row.

    Args:
        counts: ``(K, K)`` non-negative integers, rows ``row_name`` labels, columns ``column_name`` labels.
    """
    counts = np.asarray(counts, np.int64)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    head = "".join(f"<th scope='col'>{escape(label)}</th>" for label in labels)
    body = []
    for i, label in enumerate(labels):
        cells = "".join(
            f'<td style="background:rgba(58,134,255,{0.08 + 0.72 * share[i, j]:.2f})">{counts[i, j] or ""}</td>'
            if counts[i, j] else "<td></td>"
            for j in range(len(labels))
        )
        body.append(f"<tr><th scope='row'>{escape(label)}</th>{cells}</tr>")
    caption = f"<caption>{escape(title)}</caption>" if title else ""
    return (f'<div class="fer-matrix-wrap"><table class="fer-matrix">{caption}<thead><tr>'
            f'<th>{escape(row_name)} ↓ / {escape(column_name)} →</th>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')
