"""The named HTTP API: ``/predict``, ``/analyse_video`` and ``/evaluate``, for programs (e.g.
`gradio_client`). Each call is stateless: it reads the upload it names (`fer.app.uploads`),
answers, and keeps nothing, not even in the session. The browser UI runs its own events.

They read the session's settings (changed through the undocumented ``/apply_settings``), and are
bound to hidden triggers: no UI action fires them. These four are the only events callable by name
(`CALLABLE_BY_NAME`); every other event is the UI's own, private, reached only through the queue
as the page reaches it.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from fer.app import evaluate, image, video
from fer.app.media import inline_outputs
from fer.app.settings import Settings
from fer.app.uploads import read_upload
from fer.errors import InputError
from fer.limits import MAX_VIDEO_BYTES


def predict(value: Any, current: Settings) -> list[Any]:
    """A picture in; out: the largest face's top expressions (label and confidences) and every face as JSON."""
    _, _, analysis = image.from_widget(value, current)
    if analysis is None:
        analysis = image.ImageAnalysis(False, "Upload, paste or snap a picture.", settings=current)
    if not analysis.ok:
        gr.Warning(analysis.message)
    return [analysis.top_k(0), analysis.to_json()]


def analyse_video(value: Any, fps: Any, current: Settings, progress: Any = None) -> list[Any]:
    """A clip and a sampling rate (1, 2, 5 or 10 frames per second) in; out: a status line, the timelines (HTML), the per-face summary table and the per-frame CSV."""
    try:
        upload = read_upload(value, MAX_VIDEO_BYTES)
    except InputError as exc:
        report = video.VideoReport(False, str(exc))
    else:
        if upload is None:
            report = video.VideoReport(False, "Upload a short clip first.")
        else:
            step = None if progress is None else (lambda f, m: progress(f, desc=m))
            # The endpoint answers data (the table, the CSV); the annotated copy is the tab's.
            report = video.analyse_clip(upload.data, upload.name, current, fps, progress=step, annotate=False)
    if not report.ok:
        gr.Warning(report.message)
    return video.report_outputs(report)[:4]


def run_evaluation(value: Any, current: Settings) -> list[Any]:
    """A zip of labelled faces in; out: a status line, the accuracy headline, the per-class table, the confusion plot and the full result as JSON."""
    report = evaluate.from_widget(value, current, progress=True)
    if not report.ok:
        gr.Warning(report.message)
    return evaluate.report_outputs(report)


#: Events a client may call by name (``/call/<name>``; `fer.app.security` refuses any other name).
PUBLIC = ("predict", "analyse_video", "evaluate")
CALLABLE_BY_NAME = (*PUBLIC, "apply_settings")


def bind(settings: Any, guarded: Any) -> None:
    """Register the three endpoints on hidden triggers, with hidden widgets of their own as their
    schema (the UI's widgets are never their inputs or outputs).

    Call it before any other event: Gradio's JavaScript client takes dependency 0 for ``/predict``
    when an app has a ``/predict`` endpoint, so ``/predict`` must be dependency 0.
    """
    with gr.Group(visible=False):
        picture = gr.Image(type="filepath", image_mode=None, label="Picture", elem_id="api-picture")
        top_k, faces = gr.Label(label="Top expressions"), gr.JSON(label="Faces")
        clip = gr.Video(label="Clip", elem_id="api-clip")
        rate = gr.Radio(video.fps_choices(), value="5", label="Frames sampled per second")
        video_out = [gr.Markdown(), gr.HTML(), gr.Dataframe(headers=video.SUMMARY_HEADERS), gr.File(label="Per-frame CSV")]
        archive = gr.File(file_types=[".zip"], label="Labelled faces (.zip)", elem_id="api-archive")
        evaluate_out = [gr.Markdown(), gr.Markdown(), gr.Dataframe(headers=evaluate.TABLE_HEADERS),
                        gr.Image(format="png", label="Confusion matrix"), gr.JSON(label="Result")]
        triggers = [gr.Button(visible=False) for _ in range(3)]
    triggers[0].click(guarded(predict), [picture, settings], [top_k, faces], api_name="predict", preprocess=False,
                      show_progress="hidden")

    def video_endpoint(value: Any, fps: Any, current: Settings, progress: gr.Progress = gr.Progress()) -> list[Any]:
        return analyse_video(value, fps, current, progress)

    triggers[1].click(guarded(inline_outputs(video_out)(video_endpoint)), [clip, rate, settings], video_out,
                      api_name="analyse_video", concurrency_limit=1, concurrency_id="long-jobs",
                      preprocess=False, postprocess=False)

    def evaluate_endpoint(value: Any, current: Settings, progress: gr.Progress = gr.Progress(track_tqdm=True)) -> list[Any]:
        return run_evaluation(value, current)

    triggers[2].click(guarded(inline_outputs(evaluate_out)(evaluate_endpoint)), [archive, settings], evaluate_out,
                      api_name="evaluate", concurrency_limit=1, concurrency_id="long-jobs",
                      preprocess=False, postprocess=False)
