"""Gradio demo: live webcam, images, video and evaluation of facial expressions with visual saliency.

    python app.py                     # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT)
    python app.py --model runs/x/best.json --share

UI only: every handler calls `fer.demo`, which holds the logic (and its tests). The same file runs
unchanged as a Hugging Face Space.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# Before gradio is imported: it reads these at import time.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("MPLBACKEND", "Agg")

import gradio as gr  # noqa: E402

from fer import demo  # noqa: E402
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

HEADER = """\
# Facial expressions, with where humans look and where the CNN looks
Every face is found, cropped, weighted by a map of where people look at faces (visual saliency, after
Mavani et al., ICCV-W 2017) and classified by a CNN; Grad-CAM shows what the CNN used.
**Expressions are facial movements, not feelings** — do not use this to judge anyone (see *About*).
Webcam frames are processed in memory and never stored.
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
                live_timeline = gr.Plot(show_label=False, elem_id="live-timeline")
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
                        annotated = gr.Image(label="Faces found", interactive=False, elem_id="image-annotated")
                        gallery = gr.Gallery(label="Faces", columns=6, height=170, object_fit="contain", allow_preview=False,
                                             elem_id="face-gallery")
                face_choice = gr.Dropdown([], type="index", label="Face", elem_id="face-selector")
                with gr.Row(equal_height=True):
                    saliency_img = gr.Image(label="Where humans would look", interactive=False, elem_id="saliency-overlay")
                    input_img = gr.Image(label="What the CNN sees", interactive=False, elem_id="cnn-input")
                    gradcam_img = gr.Image(label="Where the CNN looked (Grad-CAM)", interactive=False, elem_id="gradcam")
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
                        eval_plot = gr.Image(label="Confusion matrix", show_label=False, interactive=False, elem_id="eval-plot")
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
            values += [gr.skip() if stats.timeline is None else stats.timeline]
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
            path = demo.session_csv(session)
            if path is None:
                gr.Info("Nothing to export yet: start the webcam first.")
                return gr.skip()
            return gr.update(value=path, visible=True)

        export.click(on_export, [live_state], [session_file], api_visibility="undocumented")

        # Image: /predict answers API clients; the UI chain then draws everything from the state.
        @_guarded
        def on_predict(image: Any, current: demo.Settings) -> tuple[dict, dict, demo.ImageResult]:
            label, data, result = demo.predict(image, current)
            if not result.ok and image is not None:
                gr.Warning(result.message)
            # The session keeps the annotated picture shown and the per-face results, not the upload.
            annotated_image = result.annotated()
            if annotated_image is not None:
                annotated_image = demo.fit_image(annotated_image, DISPLAY_MAX_SIDE)
            slim = dataclasses.replace(result, image=annotated_image)
            return label, data, slim

        def show_face(result: demo.ImageResult | None, index: int | None) -> list[Any]:
            view, trust = demo.image_face_view(result, index)
            captions = " · ".join(view.captions[k] for k in ("saliency", "model_input", "attention") if k in view.captions)
            return [view.saliency, view.model_input, view.attention, view.top_k, captions,
                    None if trust is None else trust.figure, "" if trust is None else trust.text]

        face_outputs = [saliency_img, input_img, gradcam_img, top_label, view_captions, trust_plot, trust_text]

        @_guarded
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
        predict_event.then(on_show, [image_state], [annotated, gallery, face_choice, image_status, *face_outputs],
                           api_visibility="undocumented", show_progress="hidden")
        face_choice.input(_guarded(show_face), [image_state, face_choice], face_outputs, api_visibility="undocumented")

        @_guarded
        def on_gallery(result: demo.ImageResult | None, evt: gr.SelectData) -> list[Any]:
            captions = result.captions() if result is not None else []
            value = captions[evt.index] if 0 <= evt.index < len(captions) else None
            return [gr.update(value=value), *show_face(result, evt.index)]

        gallery.select(on_gallery, [image_state], [face_choice, *face_outputs], api_visibility="undocumented")

        # Video
        @_guarded
        def on_video(path: str | None, fps: str, current: demo.Settings, progress: gr.Progress = gr.Progress()) -> list[Any]:
            report = demo.analyse_video_file(path, current, float(fps), progress=lambda f, m: progress(f, desc=m))
            if not report.ok:
                gr.Warning(report.message)
            return [report.message, report.figure, report.rows or None, report.csv_path]

        # Video and evaluation are long CPU-bound jobs: one at a time each, so the live stream keeps a core.
        video_run.click(on_video, [video_in, video_fps, settings], [video_status, video_plot, video_table, video_file],
                        api_name="analyse_video", concurrency_limit=1)

        # Evaluate
        @_guarded
        def on_evaluate(path: str | None, current: demo.Settings,
                        progress: gr.Progress = gr.Progress(track_tqdm=True)) -> list[Any]:
            report = demo.evaluate_zip(path, current, progress=True)
            if not report.ok:
                gr.Warning(report.message)
            return [report.message, report.headline, report.rows or None, report.figure, report.result]

        eval_run.click(on_evaluate, [zip_in, settings],
                       [eval_status, eval_headline, eval_table, eval_plot, eval_json], api_name="evaluate",
                       concurrency_limit=1)

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

        gr.on([w.input for w in setting_widgets], on_settings, [settings, *setting_widgets],
              [settings, settings_md, about_md, posing, margin], api_visibility="undocumented",
              api_name="apply_settings").then(
            _redo_image(on_predict), [image_in, settings], [top_label, faces_json, image_state],
            api_visibility="undocumented", api_name="redo_image", preprocess=False).then(
            on_show, [image_state], [annotated, gallery, face_choice, image_status, *face_outputs],
            api_visibility="undocumented", show_progress="hidden", api_name="show_redone_image")
    return app


def _redo_image(on_predict: Callable[..., Any]) -> Callable[..., Any]:
    """``on_predict`` that leaves every output untouched when no picture is loaded."""

    def redo(image: Any, current: demo.Settings) -> Any:
        if image is None:
            return [gr.skip(), gr.skip(), gr.skip()]
        return on_predict(image, current)

    return redo


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
        app.launch(
            server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
            server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
            share=args.share,
            max_file_size=MAX_UPLOAD_BYTES,
            theme=gr.themes.Soft(),
            css=CSS,
        )
    finally:
        _empty_gradio_cache(app)


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
