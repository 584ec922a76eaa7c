"""Gradio demo: live webcam, images, video and evaluation of facial expressions with visual saliency.

    python app.py                     # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT)
    python app.py --model runs/x/best.json --share

UI only: every handler calls `fer.demo`, which holds the logic (and its tests). The same file runs
unchanged as a Hugging Face Space.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

# Before gradio is imported: it reads these at import time.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("MPLBACKEND", "Agg")

import gradio as gr  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402
from starlette.responses import PlainTextResponse  # noqa: E402

from fer import demo, plots  # noqa: E402
from fer.errors import FerError, InputError  # noqa: E402
from fer.limits import MAX_FACES, MAX_UPLOAD_BYTES, MAX_VIDEO_SECONDS, QUEUE_MAX_SIZE  # noqa: E402

log = logging.getLogger("fer.app")

ASSETS = Path(__file__).resolve().parent / "assets"

#: Events other than the live stream running at once (the CNN is small; detection and drawing
#: share the CPU cores).
DEFAULT_CONCURRENCY = 2
#: Threads per PyTorch operation. The CNN runs at batch 1 for a few milliseconds, so splitting an
#: operation across cores gains little while concurrent requests fighting over the same cores lose
#: a lot (measured ~10x slower per frame on a busy 2-core machine); FER_TORCH_THREADS overrides.
TORCH_THREADS = int(os.environ.get("FER_TORCH_THREADS", "1"))
#: Longest side of the annotated picture shown (and kept in the session's memory).
DISPLAY_MAX_SIDE = 1280
#: Gradio's "deep link" route writes a session's widget values, pictures included, into its cache
#: as a file that nothing deletes, for anyone who names the session. The app offers no deep link.
REFUSED_PATHS = ("/gradio_api/deep_link",)

HEADER = """\
# Facial expressions, with where humans look and where the CNN looks
Every face is found, cropped, weighted by a map of where people look at faces (visual saliency, after
Mavani et al., ICCV-W 2017) and classified by a CNN; Grad-CAM shows what the CNN used.
**Expressions are facial movements, not feelings** — do not use this to judge anyone (see *About*).
Webcam frames are processed in memory and never stored; uploads are deleted as soon as they are read.
"""

CSS = """
.fer-panel figcaption { font-size: 0.8em; opacity: 0.8; text-align: center; }
.fer-empty { aspect-ratio: 1; display: flex; align-items: center; justify-content: center;
             border: 1px dashed var(--border-color-primary); border-radius: 8px; opacity: 0.6; }
"""

SALIENCY_INPUT_CHOICES = ["model default", "on", "off"]


def _guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn an unexpected exception into a short message in the UI (the traceback goes to the log)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as exc:  # noqa: BLE001 - the user sees one line, the log keeps the details
            log.exception("handler %s failed", fn.__name__)
            raise gr.Error(f"Something went wrong ({type(exc).__name__}); please try another input.",
                           print_exception=False) from None

    return wrapper


def _inline(outputs: Sequence[Any]) -> Callable[[Callable[..., list[Any]]], Callable[..., list[Any]]]:
    """Send a handler's values for ``outputs`` as Gradio's postprocessing would, except pictures,
    which travel inline (``data:`` URLs, `demo.inline_image`) instead of as files Gradio writes into
    its cache: for events declared with ``postprocess=False``.

    Per output: updates (``gr.update``, ``gr.skip``) and None pass as they are; a ``gr.Image`` takes an
    ``(H, W, 3)`` uint8 picture, a ``gr.Gallery`` ``(picture, caption)`` pairs, both encoded in the
    widget's ``format``; a ``gr.File`` takes a `demo.inline_file` record; anything else goes through
    the widget's own ``postprocess`` (which writes no file for the plots, labels, tables and text used).
    """

    def wire(component: Any, value: Any) -> Any:
        if value is None or (isinstance(value, dict) and value.get("__type__") == "update"):
            return value
        if isinstance(component, gr.Gallery):
            return [{"image": demo.inline_image(picture, f"{component.elem_id}-{i + 1}.{component.format}"),
                     "caption": caption} for i, (picture, caption) in enumerate(value)]
        if isinstance(component, gr.Image):
            return demo.inline_image(value, f"{component.elem_id}.{component.format}")
        if isinstance(component, gr.File):
            return value
        processed = component.postprocess(value)
        return processed.model_dump() if hasattr(processed, "model_dump") else processed

    def decorate(fn: Callable[..., list[Any]]) -> Callable[..., list[Any]]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> list[Any]:
            return [wire(c, v) for c, v in zip(outputs, fn(*args, **kwargs), strict=True)]

        return wrapper

    return decorate


def build_app(model: str = "mini_xception_fer2013", extra_models: Sequence[str] = ()) -> gr.Blocks:
    """Lay out the app. ``model`` is selected at start; ``extra_models`` are offered besides the
    registered models and local ``runs/*/best.json`` checkpoints."""
    defaults = demo.default_settings(model)
    ok, settings_status = demo.apply_settings(defaults)
    if not ok:
        raise SystemExit(settings_status)
    pipe = demo.PIPELINES.get(defaults)
    labels = list(pipe.labels)

    with gr.Blocks(title="fer: facial expressions with visual saliency", analytics_enabled=False,
                   delete_cache=(demo.CACHE_CHECK_EVERY_S, demo.CACHE_MAX_AGE_S)) as app:
        settings = gr.State(defaults)
        gr.Markdown(HEADER, elem_id="header")
        with gr.Tabs(elem_id="tabs"):
            # ------------------------------------------------------------------ live
            with gr.Tab("Live", id="live", elem_id="tab-live"):
                live_state = gr.State(None)
                with gr.Row(equal_height=False):
                    webcam = gr.Image(
                        sources=["webcam"], streaming=True, label="Webcam", elem_id="live-webcam",
                        webcam_options=gr.WebcamOptions(mirror=True, constraints={"video": {"width": 640, "height": 480}}),
                    )
                    live_annotated = gr.HTML(demo.image_html(None, "every face, tracked", "camera off"),
                                             elem_id="live-annotated", label="Faces")
                live_status = gr.Markdown("Press the camera button to start.", elem_id="live-status")
                with gr.Row(equal_height=True):
                    live_saliency = gr.HTML(demo.image_html(None, "where humans would look"), elem_id="live-saliency")
                    live_input = gr.HTML(demo.image_html(None, "what the CNN sees"), elem_id="live-input")
                    live_gradcam = gr.HTML(demo.image_html(None, "where the CNN looked"), elem_id="live-gradcam")
                    live_label = gr.Label(label="Expression (smoothed)", elem_id="live-top-k")
                # Plots carry their own titles; Gradio's label badge would cover them.
                # Drawn by the browser from the data (no figure rendered on the server per session).
                live_timeline = gr.LinePlot(x="seconds", y="probability", color="expression", y_lim=[0, 1],
                                            color_map=plots.label_colours_hex(labels), title="timeline",
                                            show_label=False, height=240, elem_id="live-timeline")
                gr.Markdown("### How far to trust the answer")
                with gr.Row():
                    with gr.Column():
                        gr.Markdown("**The model's own confusion matrix** (from its evaluation)")
                        live_trust_plot = gr.Plot(show_label=False, elem_id="live-model-confusion")
                        live_trust_text = gr.Markdown(demo.trust_text(pipe.spec.evaluation, None, pipe.spec.name),
                                                      elem_id="live-model-confusion-text")
                    with gr.Column():
                        gr.Markdown("**This session:** what you pose versus what the model says")
                        posing = gr.Dropdown(demo.posing_choices(labels), value=demo.NOT_POSING, label="I'm posing",
                                             elem_id="posing-dropdown")
                        session_plot = gr.Plot(show_label=False, elem_id="session-confusion")
                        session_md = gr.Markdown(demo.SESSION_HINT, elem_id="session-stats")
                        with gr.Row():
                            reset = gr.Button("Reset counts", elem_id="session-reset", size="sm")
                            export = gr.Button("Export CSV", elem_id="session-export", size="sm")
                        session_file = gr.File(label="Session confusion (CSV)", elem_id="session-csv", interactive=False,
                                               visible=False)

            # ------------------------------------------------------------------ image
            with gr.Tab("Image", id="image", elem_id="tab-image"):
                image_state = gr.State(None, time_to_live=demo.IMAGE_STATE_TTL_S)
                with gr.Row():
                    with gr.Column():
                        image_in = gr.Image(type="filepath", image_mode=None, sources=["upload", "clipboard", "webcam"],
                                            label="Picture", elem_id="upload-image")
                        gr.Examples([[str(ASSETS / "astronaut.png")], [str(ASSETS / "coffee.png")]], inputs=[image_in],
                                    label="Examples (the second has no face)", elem_id="image-examples")
                        image_status = gr.Markdown(elem_id="image-status")
                    with gr.Column():
                        annotated = gr.Image(label="Faces found", interactive=False, format="jpeg", elem_id="image-annotated")
                        # Square thumbnails, 4 to a row (~140 px in a half-width column): one row fits the
                        # 170 px panel. fit_columns=False: Gradio's default widens the columns to the number of
                        # pictures, so a single face filled the panel's width and showed only its forehead.
                        gallery = gr.Gallery(label="Faces", columns=4, fit_columns=False, height=170, object_fit="contain",
                                             allow_preview=False, format="jpeg", elem_id="face-gallery")
                face_choice = gr.Dropdown([], type="index", label="Face", elem_id="face-selector")
                with gr.Row(equal_height=True):
                    saliency_img = gr.Image(label="Where humans would look", interactive=False, format="jpeg",
                                            elem_id="saliency-overlay")
                    input_img = gr.Image(label="What the CNN sees", interactive=False, format="jpeg", elem_id="cnn-input")
                    gradcam_img = gr.Image(label="Where the CNN looked (Grad-CAM)", interactive=False, format="jpeg",
                                           elem_id="gradcam")
                    top_label = gr.Label(label="Expression", elem_id="top-k-label")
                view_captions = gr.Markdown(elem_id="view-captions")
                gr.Markdown("**How far to trust the answer:** the model's own confusion matrix (from its evaluation)")
                with gr.Row():
                    trust_plot = gr.Plot(show_label=False, elem_id="model-confusion")
                    trust_text = gr.Markdown(elem_id="model-confusion-text")
                with gr.Accordion("Per-face JSON (as returned by the /predict API)", open=False):
                    faces_json = gr.JSON(elem_id="faces-json")

            # ------------------------------------------------------------------ video
            with gr.Tab("Video", id="video", elem_id="tab-video"):
                with gr.Row():
                    with gr.Column():
                        video_in = gr.Video(sources=["upload"], include_audio=True, label=f"Clip (up to {MAX_VIDEO_SECONDS:.0f} s)",
                                            elem_id="upload-video")
                        video_fps = gr.Radio([str(v).rstrip("0").rstrip(".") for v in demo.VIDEO_SAMPLE_FPS], value="5",
                                             label="Frames sampled per second", elem_id="video-fps")
                        video_run = gr.Button("Analyse clip", variant="primary", elem_id="video-run")
                        video_status = gr.Markdown(elem_id="video-status")
                    with gr.Column():
                        video_plot = gr.Plot(show_label=False, elem_id="video-timeline")
                        video_table = gr.Dataframe(headers=demo.SUMMARY_HEADERS, interactive=False, elem_id="video-summary")
                        video_file = gr.File(label="Per-frame CSV", interactive=False, elem_id="video-csv")

            # ------------------------------------------------------------------ evaluate
            with gr.Tab("Evaluate", id="evaluate", elem_id="tab-evaluate"):
                gr.Markdown(
                    "Upload a **.zip of labelled face images** — one folder per expression (`happy/001.jpg`, "
                    "`surprised/…`; usual spellings are understood) or RaFD file names "
                    "(`Rafd090_01_Caucasian_female_angry_frontal.jpg`) — to measure the selected model on them."
                )
                with gr.Row():
                    with gr.Column():
                        zip_in = gr.File(file_types=[".zip"], label="Labelled faces (.zip)", elem_id="eval-zip")
                        eval_run = gr.Button("Evaluate", variant="primary", elem_id="eval-run")
                        eval_status = gr.Markdown(elem_id="eval-status")
                        eval_headline = gr.Markdown(elem_id="eval-accuracy")
                        eval_table = gr.Dataframe(headers=["expression", "precision", "recall", "F1", "n"],
                                                  interactive=False, elem_id="eval-table")
                    with gr.Column():
                        eval_plot = gr.Image(label="Confusion matrix", show_label=False, interactive=False, format="png",
                                             elem_id="eval-plot")
                with gr.Accordion("Full result (JSON)", open=False):
                    eval_json = gr.JSON(elem_id="eval-json")

            # ------------------------------------------------------------------ settings
            with gr.Tab("Settings", id="settings", elem_id="tab-settings"):
                with gr.Row():
                    with gr.Column():
                        model_choice = gr.Dropdown(demo.model_choices([model, *extra_models]), value=model,
                                                   label="Expression model", elem_id="model-choice")
                        saliency_choice = gr.Dropdown(demo.saliency_choices(), value=defaults.saliency,
                                                      label="Saliency predictor (where humans would look)",
                                                      elem_id="saliency-choice")
                        saliency_input = gr.Radio(SALIENCY_INPUT_CHOICES, value="model default",
                                                  label="Feed the CNN face × saliency (the paper's method)",
                                                  elem_id="saliency-input")
                        detector = gr.Radio([("short range (webcam, portraits)", "short"),
                                             ("full range (groups, small faces)", "full")], value="short",
                                            label="Face detector", elem_id="detector")
                    with gr.Column():
                        margin = gr.Slider(0.0, 0.6, value=defaults.margin, step=0.05, label="Crop margin per side",
                                           elem_id="margin")
                        max_faces = gr.Slider(1, MAX_FACES, value=defaults.max_faces, step=1, label="Most faces per image",
                                              elem_id="max-faces")
                        top_k = gr.Slider(1, 8, value=defaults.top_k, step=1, label="Expressions shown per face (k)",
                                          elem_id="top-k")
                        smoothing = gr.Slider(0.0, 0.95, value=defaults.smoothing, step=0.05,
                                              label="Smoothing over frames (live and video; 0 = off)", elem_id="smoothing")
                settings_md = gr.Markdown(settings_status, elem_id="settings-status")
                gr.Markdown("#### Saliency predictors\n" + demo.saliency_notes(), elem_id="saliency-notes")

            # ------------------------------------------------------------------ about
            with gr.Tab("About", id="about", elem_id="tab-about"):
                about_md = gr.Markdown(demo.about_markdown(defaults), elem_id="about")

        # ====================================================================== events

        # Live: one long-running stream per user; its inputs (posing, settings) are re-read each frame.
        live_outputs = [live_annotated, live_saliency, live_input, live_gradcam, live_label, live_status,
                        live_trust_plot, live_trust_text, session_plot, session_md, live_timeline, live_state]

        @_guarded
        def on_frame(frame: Any, posing_value: str, current: demo.Settings, session: Any) -> list[Any]:
            # `frame` is the browser's raw data: URL record (preprocess=False below): fer decodes it
            # with its own limits, so a broken frame is one status line, not the end of the stream.
            session, out = demo.live_step(frame, current, posing_value, session)
            view = out.view
            values: list[Any] = [
                demo.image_html(out.annotated, "every face, tracked (smoothed labels)", "no picture"),
                demo.image_html(view.saliency, view.captions.get("saliency", "where humans would look")),
                demo.image_html(view.model_input, view.captions.get("model_input", "what the CNN sees")),
                demo.image_html(view.attention, view.captions.get("attention", "where the CNN looked")),
                view.top_k,
                out.status,
            ]
            stats = out.stats  # panels not redrawn on this frame keep what they show
            values += [gr.skip(), gr.skip()] if stats.trust is None else [stats.trust.figure, stats.trust.text]
            values += [gr.skip(), gr.skip()] if stats.session is None else list(stats.session)
            values += [gr.skip() if stats.timeline is None
                       else gr.LinePlot(value=stats.timeline.table, title=stats.timeline.title)]
            return [*values, session]

        webcam.stream(on_frame, [webcam, posing, settings, live_state], live_outputs,
                      stream_every=demo.LIVE_STREAM_EVERY, concurrency_limit=demo.LIVE_CONCURRENCY,
                      time_limit=demo.LIVE_TIME_LIMIT, show_progress="hidden", api_visibility="undocumented",
                      api_name="live_frame", preprocess=False)

        def session_panels(session: Any) -> list[Any]:
            if session is None:
                return [gr.skip(), demo.SESSION_HINT]
            return list(demo.session_panel(session))

        @_guarded
        def on_reset(session: Any) -> list[Any]:
            session = demo.reset_session_counts(session)
            return [session, *session_panels(session)]

        reset.click(on_reset, [live_state], [live_state, session_plot, session_md],
                    api_visibility="undocumented")
        posing.change(_guarded(session_panels), [live_state], [session_plot, session_md],
                      api_visibility="undocumented")

        @_guarded
        def on_export(session: Any) -> Any:
            text = demo.session_csv(session)
            if text is None:
                gr.Info("Nothing to export yet: start the webcam first.")
                return gr.skip()
            # Inline (postprocess=False): the download is never a file on the server.
            return gr.update(value=demo.inline_file(text.encode(), "session-confusion.csv", "text/csv"), visible=True)

        export.click(on_export, [live_state], [session_file], api_visibility="undocumented", postprocess=False)

        # Image: /predict answers API clients; the UI chain then draws everything from the state.
        # Uploads are deleted from Gradio's cache as soon as they are read, and every picture is sent
        # inline (`_inline`, postprocess=False), so nothing of the user's picture stays on disk.
        def image_answer(result: demo.ImageResult, warn: bool) -> tuple[dict, dict, demo.ImageResult]:
            if warn and not result.ok:
                gr.Warning(result.message)
            # The session keeps the annotated picture shown, the per-face results and the upload's
            # bytes (a settings change re-analyses them), not the full-size pixels.
            annotated_image = result.annotated()
            if annotated_image is not None:
                annotated_image = demo.fit_image(annotated_image, DISPLAY_MAX_SIDE)
            slim = dataclasses.replace(result, image=annotated_image)
            return result.top_k(0), result.to_json(), slim

        @_guarded
        def on_predict(image: Any, current: demo.Settings) -> tuple[dict, dict, demo.ImageResult]:
            try:
                result = demo.analyse_image(image, current)
            finally:
                _forget_upload(app, image)
            return image_answer(result, warn=image is not None)

        @_guarded
        def on_redo(previous: demo.ImageResult | None, current: demo.Settings) -> Any:
            result = demo.reanalyse(previous, current)
            if result is None:
                return [gr.skip(), gr.skip(), gr.skip()]
            return image_answer(result, warn=True)

        def show_face(result: demo.ImageResult | None, index: int | None) -> list[Any]:
            view, trust = demo.image_face_view(result, index)
            captions = " · ".join(view.captions[k] for k in ("saliency", "model_input", "attention") if k in view.captions)
            return [view.saliency, view.model_input, view.attention, view.top_k, captions,
                    None if trust is None else trust.figure, "" if trust is None else trust.text]

        face_outputs = [saliency_img, input_img, gradcam_img, top_label, view_captions, trust_plot, trust_text]
        show_outputs = [annotated, gallery, face_choice, image_status, *face_outputs]

        @_guarded
        @_inline(show_outputs)
        def on_show(result: demo.ImageResult | None) -> list[Any]:
            if result is None:
                return [None, [], gr.update(choices=[], value=None), "", *show_face(None, None)]
            captions = result.captions()
            return [result.image, result.gallery(), gr.update(choices=captions, value=captions[0] if captions else None),
                    result.message, *show_face(result, 0)]

        # preprocess=False: fer reads the uploaded file itself (Gradio would decode it with Pillow
        # first and answer a file it cannot open with a bare "Error").
        predict_event = image_in.change(on_predict, [image_in, settings], [top_label, faces_json, image_state],
                                        api_name="predict", show_progress="minimal", preprocess=False)
        predict_event.then(on_show, [image_state], show_outputs, api_visibility="undocumented", show_progress="hidden",
                           postprocess=False)
        face_choice.input(_guarded(_inline(face_outputs)(show_face)), [image_state, face_choice], face_outputs,
                          api_visibility="undocumented", postprocess=False)

        @_guarded
        @_inline([face_choice, *face_outputs])
        def on_gallery(result: demo.ImageResult | None, evt: gr.SelectData) -> list[Any]:
            captions = result.captions() if result is not None else []
            value = captions[evt.index] if 0 <= evt.index < len(captions) else None
            return [gr.update(value=value), *show_face(result, evt.index)]

        gallery.select(on_gallery, [image_state], [face_choice, *face_outputs], api_visibility="undocumented",
                       postprocess=False)

        def clear() -> None:
            """Empty an upload widget (its file is deleted once analysed)."""
            return None

        # Video. preprocess=False: the handler gets Gradio's file record as it is (the original name
        # for messages; Gradio makes no converted copy).
        video_outputs = [video_status, video_plot, video_table, video_file]

        @_guarded
        @_inline(video_outputs)
        def on_video(video: Any, fps: str, current: demo.Settings, progress: gr.Progress = gr.Progress()) -> list[Any]:
            path, name = demo.upload_source(video)
            try:
                report = demo.analyse_video_file(path, current, float(fps), progress=lambda f, m: progress(f, desc=m),
                                                 name=name)
            finally:
                _forget_upload(app, video)
            if not report.ok:
                gr.Warning(report.message)
            csv = None if report.csv is None else demo.inline_file(report.csv.encode(), "video-expressions.csv", "text/csv")
            return [report.message, report.figure, report.rows or None, csv]

        # Video and evaluation are long CPU-bound jobs: one at a time each, so the live stream keeps a core.
        # The upload is deleted once analysed: the widget is emptied rather than left showing a file
        # the server no longer has (to analyse it again, upload it again).
        video_run.click(on_video, [video_in, video_fps, settings], video_outputs, api_name="analyse_video",
                        concurrency_limit=1, preprocess=False, postprocess=False).then(
            clear, None, [video_in], api_visibility="undocumented", show_progress="hidden")

        # Evaluate. preprocess=False: Gradio's file preprocessing leaves an empty temporary file in
        # its cache on every call; the archive's type is checked by `demo.evaluate_zip`.
        eval_outputs = [eval_status, eval_headline, eval_table, eval_plot, eval_json]

        @_guarded
        @_inline(eval_outputs)
        def on_evaluate(archive: Any, current: demo.Settings,
                        progress: gr.Progress = gr.Progress(track_tqdm=True)) -> list[Any]:
            path, name = demo.upload_source(archive)
            try:
                report = demo.evaluate_zip(path, current, progress=True, name=name)
            finally:
                _forget_upload(app, archive)
            if not report.ok:
                gr.Warning(report.message)
            return [report.message, report.headline, report.rows or None, report.figure, report.result]

        eval_run.click(on_evaluate, [zip_in, settings], eval_outputs, api_name="evaluate", concurrency_limit=1,
                       preprocess=False, postprocess=False).then(
            clear, None, [zip_in], api_visibility="undocumented", show_progress="hidden")

        # Settings: applied on every user change, without restart; then the Image tab is redone.
        setting_widgets: list[Any] = [model_choice, saliency_choice, saliency_input, margin, max_faces, detector, top_k, smoothing]

        @_guarded
        def on_settings(current: demo.Settings, *widget_values: Any) -> list[Any]:
            values = list(widget_values)
            margin_update: Any = gr.skip()
            if values[0] != current.model:
                # A new model brings its own crop margin.
                values[3] = demo.model_margin(values[0])
                margin_update = values[3]
            try:
                new = demo.make_settings(*values)
            except InputError as exc:
                gr.Warning(str(exc))
                return [current, f"⚠️ Settings not applied: {exc}", gr.skip(), gr.skip(), gr.skip()]
            ok, status = demo.apply_settings(new)
            if not ok:
                gr.Warning(status)
                return [current, status, gr.skip(), gr.skip(), gr.skip()]
            new_labels = demo.PIPELINES.get(new).labels
            posing_update = gr.skip()
            if new_labels != tuple(labels_of(current)):
                posing_update = gr.update(choices=demo.posing_choices(new_labels), value=demo.NOT_POSING)
            return [new, status, demo.about_markdown(new), posing_update, margin_update]

        def labels_of(current: demo.Settings) -> tuple[str, ...]:
            try:
                return demo.PIPELINES.get(current).labels
            except demo.FerError:
                return ()

        # The picture is redone from the bytes the session kept (its upload is deleted by then).
        gr.on([w.input for w in setting_widgets], on_settings, [settings, *setting_widgets],
              [settings, settings_md, about_md, posing, margin], api_visibility="undocumented",
              api_name="apply_settings").then(
            on_redo, [image_state, settings], [top_label, faces_json, image_state],
            api_visibility="undocumented", api_name="redo_image").then(
            on_show, [image_state], show_outputs, api_visibility="undocumented", show_progress="hidden",
            api_name="show_redone_image", postprocess=False)
    return app


def _forget_upload(app: gr.Blocks, value: Any) -> None:
    """Delete the upload in ``value`` (Gradio's file record) from Gradio's upload folder, now that
    it has been read; `demo.discard_upload` spares anything else, and the shared copies of the
    examples, which Gradio keeps in its widgets' ``keep_in_cache``."""
    from gradio.utils import get_upload_folder

    path, _ = demo.upload_source(value)
    shared = {kept for block in app.blocks.values() for kept in getattr(block, "keep_in_cache", ())}
    demo.discard_upload(path, get_upload_folder(), shared)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description="Facial expression recognition demo (Gradio).")
    parser.add_argument("--model", default="default",
                        help="registered model name or checkpoint (.json/.safetensors/folder) (default: %(default)s)")
    parser.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Build and launch the app."""
    from fer.models import ALIASES, PRETRAINED

    args = parse_args(argv)
    import torch

    torch.set_num_threads(TORCH_THREADS)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    model = ALIASES.get(args.model, args.model)
    extra = [] if model in PRETRAINED else [model]
    try:
        app = build_app(model, extra)
    except FerError as exc:
        sys.exit(f"error: {exc}")
    app.queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=DEFAULT_CONCURRENCY)
    # SIGTERM (a container or service stopping) takes the same way out as Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        app.launch(**launch_options(args.share))
    finally:
        _empty_gradio_cache(app)


def launch_options(share: bool = False) -> dict[str, Any]:
    """``gr.Blocks.launch`` arguments: loopback unless GRADIO_SERVER_NAME says otherwise, the upload
    limit, the theme, and the privacy guards: no run history (Gradio would save every run's inputs
    and outputs, pictures included, in the browser, and offer to copy them to a Hugging Face
    bucket), no deep links (`_RefusePaths`), no per-session copies of pictures (`_forgetting_shown`)."""
    return {
        "server_name": os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        "server_port": int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        "share": share,
        "max_file_size": MAX_UPLOAD_BYTES,
        "theme": gr.themes.Soft(),
        "css": CSS,
        "run_history": False,
        "app_kwargs": {"middleware": [Middleware(_RefusePaths)], "lifespan": _forgetting_shown},
    }


class _RefusePaths:
    """ASGI middleware: `REFUSED_PATHS` are answered 404, everything else is passed on."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].rstrip("/").endswith(REFUSED_PATHS):
            await PlainTextResponse("Not Found", status_code=404)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _forget_shown(holder: Any) -> int:
    """Drop the copies Gradio keeps, for every session, of widget values that carry data inline
    (base64 ``data:`` URLs: pictures, webcam frames, downloads, plots); returns how many.

    Gradio 6 keeps each session's last value of every widget (``SessionState.config_values``) only
    to serve deep links, which the app refuses (`REFUSED_PATHS`); left alone, these copies would
    keep the last pictures shown to each session in memory until Gradio evicts the session, 10,000
    sessions later.
    """
    dropped = 0
    for session in list(holder.session_data.values()):
        for config in list(session.config_values.values()):
            props = config.get("props") if isinstance(config, dict) else None
            if props and _carries_inline(props.get("value")):
                props["value"] = None
                dropped += 1
    return dropped


def _carries_inline(value: Any) -> bool:
    """Whether a widget value holds a base64 ``data:`` URL anywhere (an HTML panel embeds them)."""
    if isinstance(value, str):
        return ";base64," in value
    if isinstance(value, dict):
        return any(_carries_inline(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_carries_inline(v) for v in value)
    return False


@contextlib.asynccontextmanager
async def _forgetting_shown(server: Any) -> AsyncIterator[None]:
    """For as long as the server runs, `_forget_shown` every `demo.FORGET_SHOWN_EVERY_S` seconds (in a
    worker thread: the event loop keeps serving the live streams)."""
    import anyio

    async def forget() -> None:
        while True:
            await asyncio.sleep(demo.FORGET_SHOWN_EVERY_S)
            try:
                await anyio.to_thread.run_sync(_forget_shown, server.state_holder)
            except Exception:  # noqa: BLE001 - Gradio's internals changed: say so once, keep serving
                log.warning("could not drop Gradio's per-session copies of shown pictures", exc_info=True)
                return

    task = asyncio.create_task(forget())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _empty_gradio_cache(app: gr.Blocks) -> None:
    """Delete every upload and shown picture Gradio cached for this app.

    Gradio does this in its server's shutdown hook, which never runs when a browser tab is still
    connected at Ctrl-C: the server waits for the tab's event stream and the process ends first.
    """
    from gradio.route_utils import delete_files_created_by_app

    try:
        delete_files_created_by_app(app, age=None)
    except Exception:  # noqa: BLE001 - best effort on the way out; never mask the real exit
        log.warning("could not empty Gradio's cache", exc_info=True)


if __name__ == "__main__":
    main()
