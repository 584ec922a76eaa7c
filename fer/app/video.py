"""The Video tab: a short clip, sampled at a chosen rate, every face followed; a timeline per face
(all on one time axis, the clip's), a summary table, a per-frame CSV and an annotated copy of the
sampled frames (boxes and labels, a WebM sent inline like every other result: it is written to a
private temporary folder only while it is encoded). The clip's bytes stay in the session's memory,
so another sampling rate needs no new upload. `analyse_clip` is also what ``/analyse_video``
answers."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from fer.app import charts, views
from fer.app.folders import scratch
from fer.app.media import inline_file, inline_outputs
from fer.app.sessions import MEMORY, Kept
from fer.app.settings import PIPELINES, Settings
from fer.app.uploads import read_upload
from fer.assets import ASSETS_DIR
from fer.errors import FerError, InputError
from fer.limits import MAX_VIDEO_BYTES, MAX_VIDEO_JOB_S, MAX_VIDEO_SECONDS, SESSION_TTL_S
from fer.video import ANNOTATED_MIME

#: The example clip (made from the shipped pictures by ``scripts/make_assets.py``).
EXAMPLE = ASSETS_DIR / "astronaut-clip.mp4"
#: Sampling rates offered (frames per second of video); no other is accepted.
SAMPLE_FPS = (1.0, 2.0, 5.0, 10.0)
KIND = "video"
#: Most faces drawn as timelines.
MAX_TIMELINES = 4
#: The summary table's columns, in words a visitor reads without a legend.
SUMMARY_HEADERS = ["face", "frames seen", "from (s)", "to (s)", "most often", "share of frames",
                   "mean probability"]
#: Their widths: each keeps room for its longest word ("probability"), down to a phone's width.
SUMMARY_WIDTHS: list[str | int] = ["11%", "16%", "11%", "11%", "13%", "15%", "23%"]


def fps_choices() -> list[str]:
    """The sampling rates as the radio shows them (``"1"``, ``"2"``, ``"5"``, ``"10"``)."""
    return [f"{v:g}" for v in SAMPLE_FPS]


def check_fps(value: Any) -> float:
    """A sampling rate from a client, if it is one of `SAMPLE_FPS`.

    Raises:
        InputError: anything else (text, NaN, infinity, None, a rate not offered).
    """
    try:
        fps = float(value)
    except (TypeError, ValueError):
        fps = math.nan
    if fps not in SAMPLE_FPS:
        raise InputError(f"frames per second must be one of {', '.join(fps_choices())}, got {str(value)[:20]!r}")
    return fps


@dataclass
class VideoReport:
    """What the tab shows for one analysis.

    Attributes:
        ok: False when the clip or the rate was refused.
        message: one line.
        timelines: HTML, one timeline per face (the most seen first).
        rows: the per-face summary table (`SUMMARY_HEADERS`).
        csv: per-frame CSV text (`fer.video.VideoAnalysis.to_csv`), or None.
        annotated: the annotated copy (`fer.video.AnnotatedClip`, WebM bytes), or None.
    """

    ok: bool
    message: str
    timelines: str = ""
    rows: list[list[Any]] = field(default_factory=list)
    csv: str | None = None
    annotated: bytes | None = None


@contextmanager
def _clip_file(data: bytes, name: str) -> Iterator[Path]:
    """The clip as a file in a private temporary folder (`scratch`), deleted when the block ends."""
    with scratch("fer-video-") as folder:
        path = folder / ("clip" + (Path(name).suffix.lower()[:8] or ".mp4"))
        path.write_bytes(data)
        yield path


def analyse_clip(data: bytes, name: str, settings: Settings, sample_fps: Any,
                 progress: Callable[[float, str], None] | None = None, annotate: bool = True) -> VideoReport:
    """Sample a clip held in memory and follow each face (see `fer.video.analyse_video`).

    The bytes, and the annotated copy while it is encoded (when ``annotate``), live in a private
    temporary folder deleted when the analysis ends; the copy comes back as bytes.
    """
    from fer.video import analyse_video

    try:
        fps = check_fps(sample_fps)
        pipe = PIPELINES.get(settings)
    except FerError as exc:
        return VideoReport(False, str(exc))
    with _clip_file(data, name) as path:
        copy = path.parent / "annotated.webm"
        try:
            analysis = analyse_video(pipe, path, sample_fps=fps, smoothing=settings.smoothing, progress=progress,
                                     time_limit_s=MAX_VIDEO_JOB_S, annotated=copy if annotate else None)
        except FerError as exc:
            # The decoder names the private temporary file; the user knows the clip by its name.
            return VideoReport(False, str(exc).replace(str(path), name))
        annotated = copy.read_bytes() if copy.is_file() and copy.stat().st_size else None
    summary = analysis.summary()
    rows = [[r["face"], r["frames"], r["first_s"], r["last_s"], r["top_expression"], r["share"],
             r["mean_probability"]] for r in summary]
    info = analysis.info
    message = (f"{name}: {info.duration or 0:.1f} s at {info.fps:g} frames/s; {analysis.frames_sampled} frames "
               f"sampled ({fps:g} per second), {analysis.frames_with_faces} with a face, {len(summary)} face "
               f"track{'s' if len(summary) != 1 else ''}.")
    if not summary:
        message += " No face found: try a clip with a larger, frontal face."
    elif analysis.agreement is not None and analysis.agreement.total:
        message += " " + views.agreement_sentence(analysis.agreement, "this clip")
    # One time axis for every face: the whole clip, so faces seen at different times line up.
    last = max([o.time for o in analysis.observations], default=0.0)
    span = (0.0, max(info.duration or 0.0, last, 1e-3))
    timelines = "".join(
        charts.timeline_svg(*analysis.series(face), analysis.labels, f"Face #{face}", k=min(settings.top_k, 4),
                            span=span)
        for face in analysis.faces[:MAX_TIMELINES]
    ) or charts.timeline_svg(np.zeros(0), np.zeros((0, len(analysis.labels))), analysis.labels,
                             "No face in the sampled frames", span=span)
    return VideoReport(True, message, timelines, rows, analysis.to_csv() if summary else None, annotated)


def check_clip(data: bytes, name: str) -> str | None:
    """Why a clip is refused (one line naming ``name``: not a video, a still image, too long …), or
    None when its header is fine. Reads the header only (`fer.video.probe_video`)."""
    from fer.video import probe_video

    with _clip_file(data, name) as path:
        try:
            probe_video(path)
        except FerError as exc:
            return str(exc).replace(str(path), name)
    return None


def report_outputs(report: VideoReport) -> list[Any]:
    """Values of status, timelines, table, CSV and annotated-copy widgets (files inline)."""
    csv = None if report.csv is None else inline_file(report.csv.encode(), "video-expressions.csv", "text/csv")
    copy = None if report.annotated is None else inline_file(report.annotated, "video-annotated.webm", ANNOTATED_MIME)
    status = report.message if report.ok else f"⚠️ {report.message}"
    return [status, report.timelines, report.rows or None, csv, copy]


@dataclass
class VideoTab:
    """The tab's widgets; ``outputs`` is what `report_outputs` fills."""

    input: Any
    fps: Any
    run: Any
    status: Any
    timelines: Any
    table: Any
    csv: Any
    annotated: Any

    @property
    def outputs(self) -> list[Any]:
        return [self.status, self.timelines, self.table, self.csv, self.annotated]


def build(settings: Any, guarded: Any) -> VideoTab:
    """Lay out the tab (inside an open ``gr.Tab``) and bind its UI events."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=4, min_width=300):
            clip = gr.Video(sources=["upload"], include_audio=False, label=f"Clip (up to {MAX_VIDEO_SECONDS:.0f} s)",
                            height=300, buttons=[], elem_id="video-input")
            example = gr.Button("Example: a short clip of the astronaut", size="sm", elem_id="video-example")
            fps = gr.Radio(fps_choices(), value="5", label="Frames sampled per second", elem_id="video-fps")
            run = gr.Button("Analyse clip", variant="primary", elem_id="video-run")
            status = gr.Markdown("Upload a clip (or try the example), then press **Analyse clip**. Change the rate and "
                                 "analyse again without uploading again.", elem_id="video-status")
        with gr.Column(scale=6, min_width=300):
            timelines = gr.HTML(elem_id="video-timeline", padding=False)
            table = gr.Dataframe(headers=SUMMARY_HEADERS, interactive=False, wrap=True, column_widths=SUMMARY_WIDTHS,
                                 elem_id="video-summary")
            csv_file = gr.File(label="Per-frame CSV", interactive=False, elem_id="video-csv")
            annotated = gr.Video(label="The sampled frames, annotated (boxes and labels)", interactive=False,
                                 include_audio=False, height=300, buttons=["download"], loop=True,
                                 elem_id="video-annotated")
    tab = VideoTab(clip, fps, run, status, timelines, table, csv_file, annotated)

    @guarded
    def on_upload(value: Any, request: gr.Request) -> str:
        session = getattr(request, "session_hash", None)
        try:
            upload = read_upload(value, MAX_VIDEO_BYTES)
        except InputError as exc:
            MEMORY.drop(session, KIND)
            return f"⚠️ {exc}"
        if upload is None:
            MEMORY.drop(session, KIND)
            return "Upload a clip, then press **Analyse clip**."
        refusal = check_clip(upload.data, upload.name)
        if refusal is not None:
            # The one message about this upload: the page's own "not playable" toast is muted
            # (app.js), and nothing is kept.
            MEMORY.drop(session, KIND)
            return f"⚠️ {refusal}"
        if not MEMORY.put(session, KIND, Kept(upload.data, upload.name)):
            return "⚠️ The server has no room to keep this clip now; try again in a few minutes."
        return (f"**{upload.name}** received. Choose a rate and press **Analyse clip**. (If its preview stays "
                "blank, this browser cannot play the format; the analysis can still read it.)")

    clip.upload(on_upload, [clip], [status], api_visibility="private", preprocess=False, show_progress="hidden")
    def on_clear(request: gr.Request) -> None:
        MEMORY.drop(getattr(request, "session_hash", None), KIND)

    clip.clear(on_clear, None, None, api_visibility="private")

    @guarded
    def on_example(request: gr.Request) -> list[Any]:
        data = EXAMPLE.read_bytes()
        MEMORY.put(getattr(request, "session_hash", None), KIND, Kept(data, EXAMPLE.name))
        # Gradio 6's video value is a plain file record; this one carries the clip inline.
        return [inline_file(data, EXAMPLE.name, "video/mp4"), f"**{EXAMPLE.name}** loaded. Press **Analyse clip**."]

    example.click(on_example, None, [clip, status], api_visibility="private", postprocess=False)

    @guarded
    @inline_outputs(tab.outputs)
    def on_run(rate: Any, current: Settings, request: gr.Request,
               progress: gr.Progress = gr.Progress()) -> list[Any]:
        kept = MEMORY.get(getattr(request, "session_hash", None), KIND)
        if kept is None:
            return report_outputs(VideoReport(False, f"Upload a clip first (a clip is kept {SESSION_TTL_S // 60} minutes after its last use)."))
        report = analyse_clip(kept.data, kept.name, current, rate, progress=lambda f, m: progress(f, desc=m))
        return report_outputs(report)

    run.click(on_run, [fps, settings], tab.outputs, api_visibility="private", concurrency_limit=1,
              concurrency_id="long-jobs", preprocess=False, postprocess=False)
    return tab
