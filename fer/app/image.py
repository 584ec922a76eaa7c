"""The Image tab: one picture in (upload, paste, snapshot or an example), every face found; the
result block beside it shows the chosen face. `analyse` is also what ``/predict`` answers."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from fer.app import faces as face_table
from fer.app import trust, views
from fer.app.media import fit_image, inline_outputs
from fer.app.sessions import MEMORY, Kept
from fer.app.settings import PIPELINES, Settings
from fer.app.uploads import read_upload
from fer.assets import ASSETS_DIR
from fer.errors import FerError, InputError
from fer.io import read_image
from fer.limits import MAX_UPLOAD_BYTES

ASSETS = ASSETS_DIR
#: The examples offered: button text → shipped file (read by key, never by a client's path).
EXAMPLES: dict[str, Path] = {
    "astronaut (one face)": ASSETS / "astronaut.png",
    "collage (five faces)": ASSETS / "astronaut-collage.jpg",
    "coffee (no face)": ASSETS / "coffee.png",
}
#: The example every visitor finds analysed on arrival (a key of `EXAMPLES`).
ARRIVAL = "astronaut (one face)"
ARRIVAL_NOTE = ("Example: the astronaut photo, analysed. Drop your own picture above, paste one, take a "
                "snapshot, or try another example.")
#: Longest side of the annotated picture shown (and kept in the session's memory).
DISPLAY_MAX_SIDE = 1280
KIND = "image"

NO_FACE_MESSAGE = (
    "No face found. Try a brighter, frontal face that fills more of the picture; for group photos "
    "or small faces choose the full-range detector in Settings."
)


@dataclass
class ImageAnalysis:
    """What one picture gave.

    Attributes:
        ok: False when the input was refused (``message`` says why).
        message: one line for the status bar.
        shown: ``(H, W, 3)`` uint8 RGB picture with numbered boxes (longest side at most
            `DISPLAY_MAX_SIDE`), or None.
        predictions: one per face, largest first (each with saliency and Grad-CAM).
        settings: the settings used.
    """

    ok: bool
    message: str
    shown: np.ndarray | None = None
    predictions: list[Any] = field(default_factory=list)
    settings: Settings = field(default_factory=Settings)

    @property
    def nbytes(self) -> int:
        """Memory held by the pictures and maps."""
        arrays = [self.shown] + [a for p in self.predictions
                                 for a in (p.crop, p.model_input, p.saliency, p.attention) if a is not None]
        return sum(a.nbytes for a in arrays if a is not None)

    def captions(self) -> list[str]:
        """``"#1 happy 99%"`` per face."""
        return [f"#{i + 1} {p.label} {p.top_k(1)[0][1]:.0%}" for i, p in enumerate(self.predictions)]

    def alt_text(self) -> str:
        """What the annotated picture shows, for a screen reader: how many faces, each one's number
        and top-1 in reading order."""
        if not self.predictions:
            return "Your picture; no face found."
        order = face_table.reading_order(self.predictions)
        faces = "; ".join(f"#{i + 1} {self.predictions[i].label} {self.predictions[i].top_k(1)[0][1]:.0%}"
                          for i in order)
        count = "1 face" if len(self.predictions) == 1 else f"{len(self.predictions)} faces"
        return f"Your picture with {count} boxed and numbered, left to right: {faces}."

    def to_json(self) -> dict[str, Any]:
        """Per-face JSON: ``{"message", "model", "saliency", "saliency_input", "faces": [{"face",
        "label", "box", "score", "top_k": [{"label", "probability"}]}]}``."""
        faces = [{"face": i + 1, "label": p.label, **p.to_dict(self.settings.top_k)}
                 for i, p in enumerate(self.predictions)]
        return {"message": self.message, "model": self.settings.model, "saliency": self.settings.saliency,
                "saliency_input": self.settings.saliency_input, "faces": faces}

    def top_k(self, index: int = 0) -> dict[str, float]:
        """Label → probability of face ``index`` ({} when there is no such face)."""
        if not 0 <= index < len(self.predictions):
            return {}
        return dict(self.predictions[index].top_k(self.settings.top_k))


def analyse(data: bytes | np.ndarray, settings: Settings, name: str = "the picture") -> ImageAnalysis:
    """Find and classify every face in a picture, with saliency and Grad-CAM for each.

    Args:
        data: the encoded file, or ``(H, W, 3)`` uint8 RGB.
        name: what to call the picture in messages.
    Returns:
        `ImageAnalysis`; ``ok=False`` with a message when the input is refused; no face is ``ok``
        with `NO_FACE_MESSAGE`.
    """
    from fer.viz import annotate

    try:
        rgb = read_image(data)
        pipe = PIPELINES.get(settings)
        predictions = pipe(rgb, attention=True)
    except FerError as exc:
        return ImageAnalysis(False, _named(exc, data, name), settings=settings)
    if not predictions:
        return ImageAnalysis(True, NO_FACE_MESSAGE, fit_image(rgb, DISPLAY_MAX_SIDE), [], settings)
    shown = fit_image(annotate(rgb, predictions, [f"#{i + 1}" for i in range(len(predictions))]), DISPLAY_MAX_SIDE)
    return ImageAnalysis(True, status_line(predictions, 0), shown, predictions, settings)


def status_line(predictions: list[Any], index: int) -> str:
    """The status for the face shown: ``"1 face: **happy** 99%."`` or, with several faces, which one
    the views show and how to pick another."""
    shown = predictions[index]
    if len(predictions) == 1:
        return f"1 face: **{shown.label}** {shown.top_k(1)[0][1]:.0%}."
    return (f"{len(predictions)} faces; showing #{index + 1} (**{shown.label}**). "
            "Choose another face in the table below to see its views.")


def _named(exc: Exception, data: Any, name: str) -> str:
    """The error's message with the reader's name for the input (``<N bytes>``) replaced by ``name``."""
    from fer.io import describe

    return str(exc).replace(describe(data), name) if isinstance(data, bytes) else str(exc)


def face_outputs(analysis: ImageAnalysis | None, index: int, evaluation: Mapping[str, Any] | None,
                 live: Any) -> list[Any]:
    """Values of the per-face widgets (three picture panels, top-k, second opinion, trust) for
    face ``index``."""
    if analysis is None or not analysis.predictions:
        empty = views.FaceView()
        note = "no face" if analysis is not None and analysis.ok else None
        settings = analysis.settings if analysis is not None else None
        return [*views.panels_html(empty, note), {}, views.second_opinion_html(None, ""),
                trust_for(settings, None, evaluation, live)]
    index = index if 0 <= index < len(analysis.predictions) else 0
    pipe = PIPELINES.get(analysis.settings)
    pred = analysis.predictions[index]
    view = views.face_view(pred, pipe, analysis.settings.top_k)
    opinion = views.second_opinion_html(pred, pipe.main.spec.name, ensemble=views.is_ensemble(pipe))
    return [*views.panels_html(view), view.top_k, opinion,
            trust_for(analysis.settings, view.label, evaluation, live, analysis.predictions)]


def trust_for(settings: Settings | None, label: str | None, evaluation: Mapping[str, Any] | None, live: Any,
              predictions: list[Any] | None = None) -> str:
    """The trust panel for the answer ``label`` (`fer.app.trust`): the card's figures, this session's
    Evaluate run of the model, the visitor's posed counts, and the networks' agreement over the
    picture's faces."""
    from fer.tracking import count_opinion

    settings = settings or Settings()
    try:
        pipe = PIPELINES.get(settings)
    except FerError:
        return ""
    agreement = None
    for pred in predictions or ():
        agreement = count_opinion(agreement, pred, pipe.main.spec.name)
    where = "on this picture" if predictions and len(predictions) > 1 else "on this face"
    measured = views.measured(pipe, evaluation)
    return trust.trust_html(pipe, label, measured, getattr(live, "confusion", None), agreement, where)


def faces_update(analysis: ImageAnalysis | None) -> Any:
    """The face table's update: the table (`fer.app.faces`) with two faces or more, hidden otherwise."""
    if analysis is None or len(analysis.predictions) < 2:
        return gr.update(value="", visible=False)
    pipe = PIPELINES.get(analysis.settings)
    return gr.update(value=face_table.table_html(analysis.predictions, pipe.main.spec.name, 0, views.is_ensemble(pipe)),
                     visible=True)


def all_outputs(analysis: ImageAnalysis | None, evaluation: Mapping[str, Any] | None, live: Any) -> list[Any]:
    """Values of every widget the tab updates after a picture (see `ImageTab.outputs`)."""
    if analysis is None:
        return [gr.skip(), "", faces_update(None), *face_outputs(None, 0, None, None), None]
    status = analysis.message if analysis.ok else f"⚠️ {analysis.message}"
    shown = (gr.update(value=analysis.shown, alt_text=analysis.alt_text()) if analysis.shown is not None
             else gr.skip())
    return [shown, status, faces_update(analysis), *face_outputs(analysis, 0, evaluation, live), analysis.to_json()]


def remember(session: str | None, data: bytes, name: str, analysis: ImageAnalysis) -> None:
    """Keep the picture's bytes and its analysis for the session (a face pick or a settings
    change then needs no new upload)."""
    if analysis.ok:
        MEMORY.put(session, KIND, Kept(data, name, analysis, len(data) + analysis.nbytes))
    else:
        MEMORY.drop(session, KIND)


def from_widget(value: Any, settings: Settings) -> tuple[bytes | None, str, ImageAnalysis | None]:
    """Read the upload a widget value names (`fer.app.uploads`) and analyse it; ``(None, name,
    None)`` for an empty widget."""
    try:
        upload = read_upload(value, MAX_UPLOAD_BYTES)
    except InputError as exc:
        return None, "", ImageAnalysis(False, str(exc), settings=settings)
    if upload is None:
        return None, "", None
    return upload.data, upload.name, analyse(upload.data, settings, upload.name)


@dataclass
class ImageTab:
    """The tab's widgets; ``outputs`` is what `all_outputs` fills, in order."""

    input: Any
    status: Any
    faces: Any
    panels: list[Any]
    top_k: Any
    opinion: Any
    confusion: Any
    json: Any
    examples: dict[str, Any]

    @property
    def outputs(self) -> list[Any]:
        return [self.input, self.status, self.faces, *self.face_widgets, self.json]

    @property
    def face_widgets(self) -> list[Any]:
        return [*self.panels, self.top_k, self.opinion, self.confusion]


def build(settings: Any, evaluation: Any, live: Any, guarded: Any) -> ImageTab:
    """Lay out the tab (inside an open ``gr.Tab``) and bind its events.

    Args:
        settings, evaluation, live: the session's `gr.State` of `Settings`, Evaluate record and
            live session (both read for the confusion statistics).
        guarded: the app's error wrapper for handlers.
    """
    with gr.Row(equal_height=False, elem_classes="fer-block"):
        with gr.Column(scale=3, min_width=300, elem_classes="fer-input-column"):
            picture = gr.Image(type="filepath", image_mode=None, sources=["upload", "clipboard", "webcam"],
                               label="Your picture", show_label=False, height=430, format="jpeg",
                               buttons=["fullscreen"], elem_id="image-input")
            with gr.Row(elem_classes="fer-examples"):
                gr.Markdown("Examples:", elem_classes="fer-examples-label")
                example_buttons = {text: gr.Button(text, size="sm", elem_id=f"image-example-{i}")
                                   for i, text in enumerate(EXAMPLES)}
            status = gr.Markdown("Drop a picture above, paste one, take a snapshot, or try an example.",
                                 elem_id="image-status")
            faces = gr.HTML("", visible=False, js_on_load=face_table.PICK_JS, padding=False, elem_id="image-faces")
        with gr.Column(scale=8, min_width=300, elem_classes="fer-result"):
            with gr.Row(equal_height=True, elem_classes="fer-panels"):
                empty = views.FaceView()
                panels = [gr.HTML(html, min_width=240, elem_id=f"image-{suffix}", padding=False)
                          for html, suffix in zip(views.panels_html(empty), ("saliency", "model-input", "gradcam"),
                                                  strict=True)]
            with gr.Row(equal_height=False, elem_classes="fer-answer"):
                with gr.Column(min_width=240):
                    top_k = gr.Label(label="Top expressions", show_label=True, elem_id="image-top-k")
                    opinion = gr.HTML(views.second_opinion_html(None, ""), elem_id="image-second-opinion", padding=False)
                confusion = gr.HTML(trust_for(settings.value, None, None, None), min_width=240,
                                    elem_id="image-confusion", padding=False)
    with gr.Accordion("Per-face JSON (what the /predict API returns)", open=False):
        faces_json = gr.JSON(elem_id="image-json")
    tab = ImageTab(picture, status, faces, panels, top_k, opinion, confusion, faces_json, example_buttons)

    @guarded
    @inline_outputs(tab.outputs)
    def on_input(value: Any, current: Settings, measured: Any, live_session: Any, request: gr.Request) -> list[Any]:
        data, name, analysis = from_widget(value, current)
        session = getattr(request, "session_hash", None)
        if analysis is None:  # the picture was removed
            MEMORY.drop(session, KIND)
            return all_outputs(None, None, None)
        if data is not None:
            remember(session, data, name, analysis)
        return all_outputs(analysis, measured, live_session)

    picture.input(on_input, [picture, settings, evaluation, live], tab.outputs, api_visibility="private",
                  preprocess=False, postprocess=False, show_progress="minimal")

    for text, button in example_buttons.items():
        button.click(guarded(inline_outputs(tab.outputs)(_example_handler(EXAMPLES[text]))), [settings, evaluation, live],
                     tab.outputs, api_visibility="private", postprocess=False, show_progress="minimal")

    picked = [status, *tab.face_widgets]

    @guarded
    @inline_outputs(picked)
    def on_face(measured: Any, live_session: Any, evt: gr.EventData, request: gr.Request) -> list[Any]:
        kept = MEMORY.get(getattr(request, "session_hash", None), KIND)
        if kept is None or not kept.extra.predictions:
            raise gr.Error("This picture is no longer in memory; upload it again.", print_exception=False)
        chosen = face_table.picked_index(evt, len(kept.extra.predictions))
        return [status_line(kept.extra.predictions, chosen), *face_outputs(kept.extra, chosen, measured, live_session)]

    # One at a time per app, in the order clicked: a quick second click must not be overtaken.
    faces.click(on_face, [evaluation, live], picked, api_visibility="private", postprocess=False,
                show_progress="hidden", concurrency_id="face-pick", concurrency_limit=1)
    return tab


@functools.lru_cache(maxsize=8)
def example_analysis(path: Path, settings: Settings) -> tuple[bytes, ImageAnalysis]:
    """A shipped example's bytes and analysis, computed once per settings: every visitor's first
    screen shows one, and the analysis is only read afterwards."""
    data = path.read_bytes()
    return data, analyse(data, settings, path.name)


def arrival(current: Settings, measured: Any, live_session: Any, request: gr.Request) -> list[Any]:
    """The page just opened: the Image tab shows the worked example (`ARRIVAL`), every panel filled,
    kept for the session like an upload (a face pick or a settings change redraws it)."""
    path = EXAMPLES[ARRIVAL]
    data, analysis = example_analysis(path, current)
    remember(getattr(request, "session_hash", None), data, path.name, analysis)
    values = all_outputs(analysis, measured, live_session)
    if analysis.ok and analysis.predictions:
        values[1] = f"{ARRIVAL_NOTE} {analysis.message}"
    return values


def _example_handler(path: Path) -> Any:
    """The handler of one example button: the shipped file, read by the server, never named by a client."""

    def on_example(current: Settings, measured: Any, live_session: Any, request: gr.Request) -> list[Any]:
        data = path.read_bytes()
        analysis = analyse(data, current, path.name)
        remember(getattr(request, "session_hash", None), data, path.name, analysis)
        return all_outputs(analysis, measured, live_session)

    return on_example


def redo(session: str | None, settings: Settings, measured: Any, live_session: Any) -> list[Any] | None:
    """Analyse the session's kept picture again with new ``settings``; None when there is none."""
    kept = MEMORY.get(session, KIND)
    if kept is None:
        return None
    analysis = analyse(kept.data, settings, kept.name)
    remember(session, kept.data, kept.name, analysis)
    return all_outputs(analysis, measured, live_session)
