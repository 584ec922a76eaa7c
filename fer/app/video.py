"""The Video tab: a short clip, sampled at a chosen rate, every face followed; a timeline per face,
a summary table and a per-frame CSV. The clip's bytes stay in the session's memory, so another
sampling rate needs no new upload. `analyse_clip` is also what ``/analyse_video`` answers."""

from __future__ import annotations

import math
from collections.abc import Callable
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

#: The example clip (made from the shipped pictures by ``scripts/make_assets.py``).
EXAMPLE = ASSETS_DIR / "astronaut-clip.mp4"
#: Sampling rates offered (frames per second of video); no other is accepted.
SAMPLE_FPS = (1.0, 2.0, 5.0, 10.0)
KIND = "video"
#: Most faces drawn as timelines.
MAX_TIMELINES = 4
SUMMARY_HEADERS = ["face", "frames", "from (s)", "to (s)", "most often", "share", "mean p"]


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
    """

    ok: bool
    message: str
    timelines: str = ""
    rows: list[list[Any]] = field(default_factory=list)
    csv: str | None = None


def analyse_clip(data: bytes, name: str, settings: Settings, sample_fps: Any,
                 progress: Callable[[float, str], None] | None = None) -> VideoReport:
    """Sample a clip held in memory and follow each face (see `fer.video.analyse_video`).

    The bytes are written to a private temporary file only while the decoder reads them.
    """
    from fer.video import analyse_video

    try:
        fps = check_fps(sample_fps)
        pipe = PIPELINES.get(settings)
    except FerError as exc:
        return VideoReport(False, str(exc))
    with scratch("fer-video-") as folder:
        path = folder / ("clip" + (Path(name).suffix.lower()[:8] or ".mp4"))
        path.write_bytes(data)
        try:
            analysis = analyse_video(pipe, path, sample_fps=fps, smoothing=settings.smoothing, progress=progress,
                                     time_limit_s=MAX_VIDEO_JOB_S)
        except FerError as exc:
            # The decoder names the private temporary file; the user knows the clip by its name.
            return VideoReport(False, str(exc).replace(str(path), name))
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
    timelines = "".join(
        charts.timeline_svg(*analysis.series(face), analysis.labels, f"Face #{face}", k=min(settings.top_k, 4))
        for face in analysis.faces[:MAX_TIMELINES]
    ) or charts.timeline_svg(np.zeros(0), np.zeros((0, len(analysis.labels))), analysis.labels,
                             "No face in the sampled frames")
    return VideoReport(True, message, timelines, rows, analysis.to_csv() if summary else None)


def report_outputs(report: VideoReport) -> list[Any]:
    """Values of status, timelines, table and CSV widgets."""
    csv = None if report.csv is None else inline_file(report.csv.encode(), "video-expressions.csv", "text/csv")
    status = report.message if report.ok else f"⚠️ {report.message}"
    return [status, report.timelines, report.rows or None, csv]


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

    @property
    def outputs(self) -> list[Any]:
        return [self.status, self.timelines, self.table, self.csv]


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
            table = gr.Dataframe(headers=SUMMARY_HEADERS, interactive=False, wrap=True, elem_id="video-summary")
            csv_file = gr.File(label="Per-frame CSV", interactive=False, elem_id="video-csv")
    tab = VideoTab(clip, fps, run, status, timelines, table, csv_file)

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
        if not MEMORY.put(session, KIND, Kept(upload.data, upload.name)):
            return "⚠️ The server has no room to keep this clip now; try again in a few minutes."
        return f"**{upload.name}** received. Choose a rate and press **Analyse clip**."

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
