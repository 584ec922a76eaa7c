"""The benchmark's output: the stage table, the report and the stage chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fer.bench.runner import stage_ms


def format_table(doc: dict[str, Any]) -> str:
    """The stage table as GitHub markdown: one row per stage, p50/p90 per frame."""
    frames = list(doc["frames"])
    names: list[str] = []
    for row in doc["stages"]:
        if row["stage"] not in names:
            names.append(row["stage"])
    found = ", ".join(f"{f}: {doc['frames'][f]['faces_found']} found ({doc['frames'][f]['detector']} range)"
                      for f in frames)
    head = "| stage | " + " | ".join(f"{f} p50 (ms) | {f} p90 (ms)" for f in frames) + " |"
    lines = [f"Frames {doc['frame_size'][0]}×{doc['frame_size'][1]} — {found}.", "", head,
             "|---|" + "---:|" * (2 * len(frames))]

    def cell(value: float | None) -> str:
        return "–" if value is None else f"{value:.2f}"

    for name in names:
        cells = [cell(stage_ms(doc, f, name, k)) for f in frames for k in ("ms_p50", "ms_p90")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_report(doc: dict[str, Any]) -> str:
    """Human-readable summary: the stage table, the headline numbers and the targets."""
    m = doc["machine"]
    cold = doc["cold_start"]
    lines = [
        f"fer bench ({doc['mode']}, {doc['iterations']} rounds) on {m['cpu']}, {m['cores']} cores, "
        f"detector on {doc['frames']['1 face'].get('detector_engine', 'mediapipe')}, "
        f"CNN on {doc.get('engine', 'torch')}, torch {m['torch']} with {m['torch_threads']} threads; load average {m['load_average'][0]:.2f} "
        f"at start, {m['load_average_end'][0]:.2f} at end",
        "",
        format_table(doc),
        "",
        f"whole frame from pixels (1 face): p50 {doc['pipeline_ms_p50']:.2f} ms = {doc['pipeline_over_detector']}× "
        f"the detector alone ({doc['detector_ms_p50']:.2f} ms)",
        f"whole frame from a JPEG (1 face): p50 {doc['frame_ms_p50']:.2f} ms = {doc['frame_over_decode_and_detector']}× "
        f"decode + detector; {doc['fps']} frames/s (5 faces: {doc['fps_5_faces']} frames/s)",
        f"detect → classify (1 face): p50 {doc['classify_ms_p50']:.2f} ms = {doc['classify_over_detector']}× the detector",
        f"cold start: {cold['cold_start_s']:.2f} s (import {cold['import_s']:.2f} s + load {cold['load_s']:.2f} s), "
        f"first frame {cold['first_frame_ms']:.0f} ms; peak RSS {cold['rss_mb']:.0f} MB",
    ]
    for model, frames in doc.get("models", {}).items():
        lines.append(f"{model}: classify faces p50 " + ", ".join(
            f"{v['classify_ms_p50']:.2f} ms ({f})" for f, v in frames.items() if v["classify_ms_p50"] is not None)
            + "; detect → classify " + ", ".join(
            f"{v['pipeline_ms_p50']:.2f} ms ({f})" for f, v in frames.items() if v["pipeline_ms_p50"] is not None))
    if doc.get("live_step_ms_p50") is not None:
        lines.append(f"app live step (fer.app.live.step, 1 face): p50 {doc['live_step_ms_p50']:.2f} ms")
    if "cnn_threads" in doc:
        sweep = ", ".join(f"{n} thread(s) {v['ms_p50']:.2f} ms" for n, v in doc["cnn_threads"].items())
        lines.append(f"CNN forward in PyTorch by torch threads (1 face): {sweep}")
    lines.append("targets: " + "; ".join(
        f"{k} {t['target']}: {t['value']} {'met' if t['met'] else 'NOT met'}" for k, t in doc["targets"].items()))
    lines.append(f"benchmark took {doc['bench_s']:.0f} s")
    return "\n".join(lines)


#: How the chart names the detector engines (`fer.face.FaceDetector.engine`).
DETECTOR_ENGINE_NAMES = {"litert": "BlazeFace on LiteRT", "mediapipe": "MediaPipe Tasks"}

#: Stages drawn in the chart, in pipeline order (rows missing from a document are skipped).
CHART_STAGES = ("decode (JPEG)", "crop/align", "saliency: face-prior", "saliency: spectral-residual", "face × saliency",
                "preprocess", "CNN forward", "Grad-CAM", "overlay rendering", "pipeline: detect → classify",
                "whole frame (pixels in)", "whole frame (JPEG in)")


def plot_stages(doc: dict[str, Any], path: str | Path, peer: dict[str, Any] | None = None) -> Path:
    """Horizontal bar chart of the p50 of each stage for both frames (PNG).

    Args:
        doc: a `run_benchmark` document.
        path: PNG to write.
        peer: optional ``{"label": str, "ms_p50": {frame: ms}}`` drawn as an extra bar per frame.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = list(doc["frames"])
    rows: list[tuple[str, list[float | None]]] = []
    totals = 0  # rows at the end that are whole runs, not stages
    for name in CHART_STAGES:
        if name == "crop/align":  # the detector sits just before crop/align; each frame has its own
            detectors = [doc["frames"][f]["detector"] for f in frames]
            engines = {DETECTOR_ENGINE_NAMES[doc["frames"][f].get("detector_engine", "mediapipe")] for f in frames}
            ranges = " / ".join(dict.fromkeys(detectors))
            rows.append((f"detect, {' / '.join(sorted(engines))} ({ranges} range)",
                         [stage_ms(doc, f, f"detect ({d} range)") for f, d in zip(frames, detectors, strict=True)]))
            reference = [stage_ms(doc, f, f"detect, MediaPipe Tasks ({d} range)") for f, d in zip(frames, detectors, strict=True)]
            if any(v is not None for v in reference):
                rows.append((f"detect, MediaPipe Tasks ({ranges} range)", reference))
        values = [stage_ms(doc, f, name) for f in frames]
        if any(v is not None for v in values):
            rows.append((name, values))
            totals += name in ("pipeline: detect → classify", "whole frame (pixels in)", "whole frame (JPEG in)")
    if peer:
        rows.append((peer["label"], [peer["ms_p50"].get(f) for f in frames]))
        totals += 1
    rows.reverse()  # matplotlib draws the first row at the bottom
    height = 0.38
    fig, ax = plt.subplots(figsize=(8.5, 0.42 * len(rows) + 1.9), dpi=110)
    colours = ("#3a86ff", "#fb5607")
    peak = max((v for r in rows for v in r[1] if v is not None), default=1.0)
    for j, f in enumerate(frames):
        ys = [i + (0.5 - j) * height for i in range(len(rows))]
        vals: list[float] = [v if (v := r[1][j]) is not None else 0.0 for r in rows]
        bars = ax.barh(ys, vals, height=height, color=colours[j % 2], label=f"{f} ({doc['frames'][f]['faces_found']} "
                       f"found, {doc['frames'][f]['detector']} range detector)")
        for bar, r in zip(bars, rows, strict=True):
            if r[1][j] is not None:
                ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {r[1][j]:.1f}", va="center", fontsize=7)
    if totals:
        ax.axhline(totals - 0.5, color="0.4", linewidth=0.8)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    for label in ax.get_yticklabels()[:totals]:
        label.set_fontweight("bold")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(0, peak * 2.5)
    ax.set_xlabel("milliseconds per frame, median (log scale above 1 ms)")
    m = doc["machine"]
    ax.set_title(f"fer stages on a 640×480 frame: {m['cores']} cores of {m['cpu'][:40]}, load {m['load_average'][0]:.1f}\n"
                 f"CNN on {doc.get('engine', 'torch')}, torch {m['torch_threads']} thread(s)", fontsize=9)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=2, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
