"""The Live tab: the browser's webcam, every face tracked and smoothed; the result block follows the
largest face; below, its timeline and the session's posed-versus-said counts.

Frames are decoded and analysed in memory; nothing of them is written or kept. One bad frame gives
a status line, never the end of the stream.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

import gradio as gr
import numpy as np

from fer.app import charts, trust, views
from fer.app.media import decode_frame, fit_image, inline_file
from fer.app.settings import PIPELINES, Settings
from fer.errors import FerError
from fer.tracking import LiveSession, count_opinion

log = logging.getLogger("fer.app")

#: Seconds between webcam frames sent to the server, streams served at once, and the longest one
#: stream event runs (so none holds a slot for ever). At the limit Gradio 6.31 ends the event and the
#: page's next frame starts a new one by itself (queued like any other): Record stays Stop, and a
#: 4 px bar along the picture's bottom counts the limit down (seen with TIME_LIMIT = 8 in Chromium).
STREAM_EVERY = 0.1
CONCURRENCY = 20
TIME_LIMIT = 300
#: Frames are shrunk to this longest side first: webcam faces stay well above the detector's and
#: the CNN's input sizes.
MAX_SIDE = 640
#: Seconds between redraws of the timeline and of the session table (each a few kB to send).
REDRAW_EVERY_S = 1.0
#: Seconds between redraws of the followed face's three pictures (saliency, CNN input, Grad-CAM):
#: they are most of a result's bytes, while the numbers (top-k, boxes) still go with every frame.
#: A new face followed, or none, is drawn at once.
PICTURES_EVERY_S = 0.3
#: Frames kept in each face's timeline.
TIMELINE_FRAMES = 100
#: The "I'm posing" choice meaning "don't count this frame".
NOT_POSING = "(not posing)"

HOW_TO = ("**Click to Access Webcam** and allow the camera. **On this device** (where the browser can), the "
          "frames are analysed in this page and none is sent; **Stop** releases the camera. **On the server**, press "
          "**Record**: frames go to the app, are analysed as they arrive and nothing is recorded or stored; **Stop** "
          "ends it and releases the camera. A server stream lasts at most "
          f"{TIME_LIMIT // 60} minutes (the thin bar along the bottom of the picture counts them down), then "
          "restarts by itself: no click needed. No camera? Use the **Image** tab.")
#: Where Live's frames are analysed: in the page (fer/app/static/ondevice/live.mjs) or by `step`.
WHERE_CHOICES = [("On this device (nothing sent)", "device"), ("On the server", "server")]
CAMERA_OFF = "Camera off."
#: The no-face hint: the short-range detector misses faces far from the camera.
NO_FACE = ("No face in view: face the camera, with light on your face. Far from the camera? Move closer, "
           "or choose the full-range detector in Settings.")
EXAMPLE_STATUS = ("Until your camera starts, the panels show the astronaut photo as an example. Click to Access "
                  "Webcam, then Record, to see your own face analysed.")
SESSION_HINT = ("Choose **I'm posing** and hold that expression: every frame with a face is counted as "
                "posed versus said. Nothing is counted while *(not posing)*.")


@dataclass
class LiveState(LiveSession):
    """A webcam session as the app keeps it: `fer.tracking.LiveSession` plus when each panel was
    last redrawn (a display concern, so it lives here, not in the core).

    Attributes:
        drawn: panel name → when it was last drawn (seconds, the caller's clock).
        drawn_total: session-confusion frame count when the session table was last drawn (-1: never).
    """

    drawn: dict[str, float] = field(default_factory=dict)
    drawn_total: int = -1
    sent: dict[str, Any] = field(default_factory=dict)

    def unchanged(self, panel: str, value: Any) -> bool:
        """Whether the page already shows ``value`` in ``panel`` (then nothing is sent); else
        remember it as shown."""
        if self.sent.get(panel) == value:
            return True
        self.sent[panel] = value
        return False

    def pictures_due(self, followed: int | None, now: float) -> bool:
        """Whether the three pictures are redrawn for this frame (see `PICTURES_EVERY_S`)."""
        if self.sent.get("followed", -1) != followed:
            self.sent["followed"] = followed
            self.drawn["pictures"] = now
            return True
        when = self.drawn.get("pictures")
        if when is not None and now - when < PICTURES_EVERY_S:
            return False
        self.drawn["pictures"] = now
        return True


def posing_choices(labels: Sequence[str]) -> list[str]:
    """The "I'm posing" dropdown: `NOT_POSING`, then the model's labels."""
    return [NOT_POSING, *labels]


@dataclass
class FrameResult:
    """What one webcam frame updates; None for a panel that keeps what it shows.

    Attributes:
        view: the followed face's pictures and smoothed top-k.
        status: one line.
        timeline, session: HTML of the timeline and of the session table, when redrawn.
        label: the smoothed top-1 of the followed face, or None.
        opinion: the second opinion's HTML; boxes: the tracked boxes' HTML (for the page script).
        followed: the track id of the face followed, or None.
    """

    view: views.FaceView
    status: str
    timeline: str | None = None
    session: str | None = None
    label: str | None = None
    opinion: str = ""
    boxes: str = ""
    followed: int | None = None


def step(frame: Any, settings: Settings, posing: str | None, session: LiveSession | None,
         now: float | None = None) -> tuple[LiveSession | None, FrameResult]:
    """Process one webcam frame; never raises.

    Faces are tracked by box overlap and their probabilities smoothed (``settings.smoothing``); the
    largest face is followed (its saliency, CNN input and Grad-CAM are drawn); while the user poses
    an expression, the label shown is counted in the session's posed-versus-said matrix.

    Args:
        frame: the browser's frame (see `fer.app.media.decode_frame`), or None (camera off).
        posing: a model label, or `NOT_POSING` / None.
        session: the per-user state from the previous frame (None at the start).
        now: clock in seconds (default `time.monotonic`).
    Returns:
        ``(session, result)``; the session is new when the model's labels changed.
    """
    now = time.monotonic() if now is None else now
    try:
        rgb = decode_frame(frame)
        if rgb is None:
            return session, FrameResult(views.FaceView(), CAMERA_OFF)
        return _analyse(fit_image(rgb, MAX_SIDE), settings, posing, session, now)
    except FerError as exc:
        return session, FrameResult(views.FaceView(), f"⚠️ {str(exc).splitlines()[0]}")
    except Exception as exc:  # noqa: BLE001 - a native or numeric failure on one frame; the next may work
        log.warning("live frame not analysed: %s: %s", type(exc).__name__, str(exc).splitlines()[:1])
        return session, FrameResult(views.FaceView(), f"⚠️ This frame could not be analysed ({type(exc).__name__}); "
                                                      "trying the next one.")


def _analyse(rgb: np.ndarray, settings: Settings, posing: str | None, session: LiveSession | None,
             now: float) -> tuple[LiveState, FrameResult]:
    pipe = PIPELINES.get(settings)
    live = session if isinstance(session, LiveState) and session.labels == pipe.labels else LiveState(
        pipe.labels, timeline_frames=TIMELINE_FRAMES)
    session = live
    faces = pipe.detect(rgb)
    tracked: list[Any] = []

    def smoothed_top1(probs: np.ndarray) -> list[int]:
        # Tracking needs this frame's probabilities, and Grad-CAM explains the smoothed label
        # shown (which may differ from this frame's top-1): both from the one forward pass.
        tracked[:] = live.observe(now, [f.box for f in faces], probs, settings.smoothing)
        return [int(np.argmax(t.probabilities)) for t in tracked]

    predictions = pipe.predict_faces(faces, attention=True, target=smoothed_top1)
    tracks = tracked if predictions else session.observe(now, [], np.zeros((0, len(pipe.labels))), settings.smoothing)
    view = views.FaceView()
    label = None
    if predictions:
        focus, smoothed = predictions[0], tracks[0].probabilities
        label = pipe.labels[int(np.argmax(smoothed))]
        view = views.face_view(focus, pipe, settings.top_k, smoothed)
        if posing and posing != NOT_POSING and posing in pipe.labels:
            session.confusion.add(posing, label)
        session.agreement = count_opinion(session.agreement, focus, pipe.main.spec.name)
        opinion = views.second_opinion_html(focus, pipe.main.spec.name, session.agreement,
                                             ensemble=views.is_ensemble(pipe))
        names = ", ".join(f"#{t.id} {pipe.labels[int(np.argmax(t.probabilities))]}" for t in tracks)
        status = f"{len(tracks)} face{'s' if len(tracks) > 1 else ''} ({names}); following #{tracks[0].id}, the largest."
        if posing and posing != NOT_POSING:
            status += f" Counting: posing **{posing}**."
    else:
        status = NO_FACE
        opinion = views.second_opinion_html(None, "")
    result = FrameResult(view, status, label=label, opinion=opinion,
                         boxes=boxes_html(rgb.shape[1], rgb.shape[0], tracks, pipe.labels),
                         followed=tracks[0].id if predictions else None)
    if _due(session, "timeline", now):
        result.timeline = timeline_html(session)
    if session.confusion.total != session.drawn_total and _due(session, "session", now):
        result.session = session_html(session)
        session.drawn_total = session.confusion.total
    return session, result


def frame_outputs(session: LiveSession | None, out: FrameResult, settings: Settings, measured: Any,
                  now: float | None = None) -> list[Any]:
    """The Live tab's outputs for one frame (`LiveTab.outputs`, then the session), sending only
    what the page does not show yet: the pictures at most every `PICTURES_EVERY_S` (at once for a
    new face), the second opinion, trust panel and status only when they change (``gr.skip()``
    otherwise); the top-k and the boxes with every frame."""
    now = time.monotonic() if now is None else now
    state = session if isinstance(session, LiveState) else None
    followed = out.followed if out.view.top_k else None
    if state is None or state.pictures_due(followed, now):
        pictures: list[Any] = views.panels_html(out.view, "no face in view")
    else:
        pictures = [gr.skip()] * 3
    texts = {"opinion": out.opinion, "confusion": confusion_for(session, settings, measured, out.label),
             "status": out.status}
    sent = {k: gr.skip() if state is not None and state.unchanged(k, v) else v for k, v in texts.items()}
    return [*pictures, out.view.top_k, sent["opinion"], sent["confusion"], sent["status"],
            gr.skip() if out.timeline is None else out.timeline,
            gr.skip() if out.session is None else out.session, out.boxes or boxes_html(1, 1, [], ()), session]


def _due(session: LiveState, panel: str, now: float) -> bool:
    """Whether ``panel`` may be redrawn now (at most every `REDRAW_EVERY_S`); marks it drawn."""
    when = session.drawn.get(panel)
    if when is not None and now - when < REDRAW_EVERY_S:
        return False
    session.drawn[panel] = now
    return True


def boxes_html(width: int, height: int, tracks: Sequence[Any], labels: Sequence[str]) -> str:
    """The tracked faces of a frame for the page script to draw over the webcam preview
    (`fer/app/static/app.js`): boxes as fractions of the frame, with their track id, smoothed
    top-1 and colour. Only numbers and labels: no pixels."""
    from fer.viz import label_colour_hex

    boxes = []
    for track in tracks:
        best = int(np.argmax(track.probabilities))
        x0, y0, x1, y1 = track.box
        boxes.append([round(x0 / width, 4), round(y0 / height, 4), round(x1 / width, 4), round(y1 / height, 4),
                      f"#{track.id} {labels[best]} {float(track.probabilities[best]):.0%}",
                      label_colour_hex(labels[best])])
    return f"<div id=\"fer-live-boxes\" data-boxes='{escape(json.dumps(boxes), quote=True)}'></div>"


def timeline_html(session: LiveSession | None) -> str:
    """The followed face's timeline (SVG), or an empty chart."""
    if session is None or session.focus is None or not len(session.timelines.get(session.focus, ())):
        labels = session.labels if session else ()
        return charts.timeline_svg(np.zeros(0), np.zeros((0, len(labels))), labels, "Timeline: no face in view")
    timeline = session.timelines[session.focus]
    return charts.timeline_svg(timeline.times, timeline.values, session.labels,
                               f"Face #{session.focus}, last {len(timeline)} frames (smoothed)")


def session_html(session: LiveSession | None) -> str:
    """The session's posed-versus-said counts as a table with a summary line, or the how-to."""
    if session is None or session.confusion.total == 0:
        return f'<div class="fer-session">{views.markdown_html(SESSION_HINT)}</div>'
    conf = session.confusion
    per = ", ".join(f"{k} {acc:.0%} of {n}" for k, (n, acc) in conf.per_class().items())
    mistakes = "; ".join(f"posed {p} → said {q} ({n}×)" for p, q, n in conf.top_confusions(3))
    summary = f"<p><b>{conf.total} frames</b> counted, <b>{conf.accuracy:.0%}</b> as posed. Per posed expression: {per}."
    if mistakes:
        summary += f" Most frequent confusions: {mistakes}."
    summary += " <i>One person, one room, one camera: a sanity check, not a benchmark.</i></p>"
    table = charts.matrix_html(conf.counts, conf.labels, "posed", "said")
    return f'<div class="fer-session">{summary}{table}</div>'


def confusion_for(session: LiveSession | None, settings: Settings, evaluation: Mapping[str, Any] | None,
                  label: str | None) -> str:
    """The trust panel for the followed face's answer (`fer.app.trust`): the card's figures, this
    session's Evaluate run, the visitor's posed counts, and the networks' agreement over the stream."""
    try:
        pipe = PIPELINES.get(settings)
    except FerError:
        return ""
    measured = views.measured(pipe, evaluation)
    return trust.trust_html(pipe, label, measured, session.confusion if session else None,
                            session.agreement if session else None, "over this stream")


def example_values(settings: Settings) -> list[Any] | None:
    """What the tab shows until the camera starts: the Image tab's arrival example, as panels,
    top-k, second opinion and trust (None when it finds no face)."""
    from fer.app.image import ARRIVAL, EXAMPLES, example_analysis

    _, analysis = example_analysis(EXAMPLES[ARRIVAL], settings)
    if not analysis.predictions:
        return None
    pipe = PIPELINES.get(settings)
    pred = analysis.predictions[0]
    view = views.face_view(pred, pipe, settings.top_k)
    opinion = views.second_opinion_html(pred, pipe.main.spec.name, ensemble=views.is_ensemble(pipe))
    return [*views.panels_html(view), view.top_k, opinion, confusion_for(None, settings, None, view.label)]


@dataclass
class LiveTab:
    """The tab's widgets (``outputs``: what a frame updates, in order)."""

    input: Any
    status: Any
    panels: list[Any]
    top_k: Any
    opinion: Any
    confusion: Any
    timeline: Any
    session: Any
    posing: Any
    boxes: Any

    @property
    def outputs(self) -> list[Any]:
        return [*self.panels, self.top_k, self.opinion, self.confusion, self.status, self.timeline, self.session,
                self.boxes]


def build(settings: Any, evaluation: Any, live: Any, guarded: Any) -> LiveTab:
    """Lay out the tab (inside an open ``gr.Tab``) and bind its events; ``live`` is the session's
    `gr.State` holding its `fer.tracking.LiveSession`."""
    labels = PIPELINES.get(settings.value).labels
    example = example_values(settings.value)
    with gr.Row(equal_height=False, elem_classes="fer-block"):
        with gr.Column(scale=3, min_width=300, elem_classes="fer-input-column"):
            webcam = gr.Image(sources=["webcam"], streaming=True, label="Webcam", show_label=False, height=360,
                              webcam_options=gr.WebcamOptions(mirror=True, constraints={"video": {"width": 640, "height": 480}}),
                              elem_id="live-input")
            # The page script reads this choice; the server never needs it (device mode sends nothing).
            gr.Radio(WHERE_CHOICES, value="device", label="Where frames are analysed", elem_id="live-where",
                     interactive=True)
            gr.HTML('<div id="live-where-note" role="status" aria-live="polite"></div>', padding=False)
            gr.Markdown(HOW_TO, elem_id="live-how-to", elem_classes="fer-note")
            status = gr.Markdown(EXAMPLE_STATUS if example else CAMERA_OFF, elem_id="live-status",
                                 elem_classes="fer-near-input")
            # Filled by the page script (fer/app/static/app.js) when the camera is refused or stopped.
            gr.HTML('<div id="fer-camera-note" role="status" aria-live="polite"></div>', padding=False,
                    elem_classes="fer-near-input")
            # The tracked faces of the last frame, drawn over the preview by the page script.
            boxes = gr.HTML(boxes_html(1, 1, [], ()), padding=False, elem_classes="fer-hidden", elem_id="live-boxes")
        with gr.Column(scale=8, min_width=300, elem_classes="fer-result"):
            first = example or [*views.panels_html(views.FaceView()), None, views.second_opinion_html(None, ""),
                                confusion_for(None, settings.value, None, None)]
            with gr.Row(equal_height=True, elem_classes="fer-panels"):
                panels = [gr.HTML(html, min_width=240, elem_id=f"live-{suffix}", padding=False)
                          for html, suffix in zip(first[:3], ("saliency", "model-input", "gradcam"), strict=True)]
            with gr.Row(equal_height=False, elem_classes="fer-answer"):
                with gr.Column(min_width=240):
                    top_k = gr.Label(first[3], label="Top expressions (smoothed)", elem_id="live-top-k")
                    opinion = gr.HTML(first[4], elem_id="live-second-opinion", padding=False)
                confusion = gr.HTML(first[5], min_width=240, elem_id="live-confusion", padding=False)
    with gr.Row(equal_height=False):
        with gr.Column(min_width=300):
            timeline = gr.HTML(timeline_html(None), elem_id="live-timeline", padding=False)
        with gr.Column(min_width=300):
            posing = gr.Dropdown(posing_choices(labels), value=NOT_POSING, label="I'm posing", elem_id="live-posing")
            session_panel = gr.HTML(session_html(None), elem_id="live-session", padding=False)
            with gr.Row():
                reset = gr.Button("Reset counts", size="sm", elem_id="live-reset")
                export = gr.Button("Export counts (CSV)", size="sm", elem_id="live-export")
            csv_file = gr.File(label="Session counts (CSV)", interactive=False, visible=False, elem_id="live-csv")
    tab = LiveTab(webcam, status, panels, top_k, opinion, confusion, timeline, session_panel, posing, boxes)

    @guarded
    def on_frame(frame: Any, posing_value: Any, current: Settings, measured: Any, session: Any) -> list[Any]:
        session, out = step(frame, current, posing_value if isinstance(posing_value, str) else None, session)
        return frame_outputs(session, out, current, measured)

    # preprocess=False: the frame arrives as the browser sent it and fer decodes it with its own limits.
    webcam.stream(on_frame, [webcam, posing, settings, evaluation, live], [*tab.outputs, live],
                  stream_every=STREAM_EVERY, concurrency_limit=CONCURRENCY, time_limit=TIME_LIMIT,
                  show_progress="hidden", api_visibility="private", preprocess=False)

    @guarded
    def on_reset(session: Any) -> list[Any]:
        if isinstance(session, LiveSession):
            session.confusion.reset()
        return [session, session_html(session)]

    reset.click(on_reset, [live], [live, session_panel], api_visibility="private")
    posing.change(guarded(session_html), [live], [session_panel], api_visibility="private")

    @guarded
    def on_export(session: Any) -> Any:
        if not isinstance(session, LiveSession):
            gr.Info("Nothing to export yet: start the webcam first.")
            return gr.skip()
        # Inline (postprocess=False): the download is never a file on the server.
        return gr.update(value=inline_file(session.confusion.to_csv().encode(), "session-counts.csv", "text/csv"),
                         visible=True)

    export.click(on_export, [live], [csv_file], api_visibility="private", postprocess=False)
    return tab
