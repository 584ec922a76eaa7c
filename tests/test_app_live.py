"""`fer.app.live`: one webcam frame at a time: tracking, smoothing, counting posed expressions,
broken frames as one-line statuses, file records refused."""

from __future__ import annotations

import numpy as np
import pytest

from fer.app import live
from fer.app.media import data_url, decode_frame
from fer.app.settings import PIPELINES, Settings, default_settings
from fer.errors import InputError


@pytest.fixture(scope="module")
def settings() -> Settings:
    return default_settings("mini_xception_fer2013")


def test_frames_are_tracked_smoothed_and_counted(settings: Settings, astronaut: np.ndarray) -> None:
    url = data_url(astronaut, quality=95)
    session, out = live.step(url, settings, live.NOT_POSING, None, now=100.0)
    assert session is not None and out.label == "happy" and list(out.view.top_k)[0] == "happy"
    assert set(out.view.pictures) == {"saliency", "model_input", "attention"}
    assert out.status == "1 face (#1 happy); following #1, the largest." and out.timeline is not None
    first = session.tracker.tracks[0].probabilities.copy()
    shifted = np.roll(astronaut, 6, axis=1)
    session, out = live.step(data_url(shifted, quality=95), settings, live.NOT_POSING, session, now=100.1)
    assert [t.id for t in session.tracker.tracks] == [1] and session.confusion.total == 0
    assert out.timeline is None  # redrawn at most once a second
    raw = PIPELINES.get(settings)(decode_frame(data_url(shifted, quality=95)))[0].probabilities
    expected = settings.smoothing * first + (1 - settings.smoothing) * raw
    np.testing.assert_allclose(session.tracker.tracks[0].probabilities, expected / expected.sum(), atol=1e-4)
    session, out = live.step(url, settings, "happy", session, now=101.5)
    assert session.confusion.total == 1 and "Counting: posing **happy**" in out.status
    # The second opinion is counted on the followed face, frame by frame.
    agreement = session.agreement
    assert (agreement.first, agreement.second) == ("mini_xception_fer2013", "face_api_expression")
    assert agreement.total == 3 and agreement.rate == 1.0
    assert "This session: agreed on <b>100%</b> of 3 faces." in out.opinion  # under the line naming both
    assert out.session is not None and "1 frames</b> counted" in out.session and out.timeline is not None
    _, off = live.step(None, settings, "happy", session)
    assert off.status == live.CAMERA_OFF and off.view.pictures == {}


def test_sessions_are_separate_and_reset(settings: Settings, astronaut: np.ndarray) -> None:
    url = data_url(astronaut)
    one = two = None
    for i in range(3):
        one, _ = live.step(url, settings, "happy", one, now=float(i))
    for i in range(2):
        two, _ = live.step(url, settings, "sad", two, now=float(i))
    assert one.confusion.total == 3 and one.confusion.accuracy == 1.0
    assert two.confusion.top_confusions() == [("sad", "happy", 2)]
    html = live.session_html(two)
    assert "posed sad → said happy (2×)" in html and "<table" in html
    assert "Choose <b>I&#x27;m posing</b>" in live.session_html(None)


@pytest.mark.parametrize(("frame", "reason"), [
    ("data:image/jpeg;base64,@@@", "not valid base64"),
    ("data:image/png;base64,aGVsbG8=", "unsupported image format"),
    ({"path": "/etc/passwd", "url": None}, "not a file"),
    ({"path": "/work/main/assets/astronaut.png"}, "not a file"),
    ("/etc/passwd", "data: URL"),
    (12, "data: URL"),
    # Bounded before decoding: the bytes by the URL's length, the pixels by the header.
    ("data:image/png;base64," + "A" * (3 * 2**20), "larger than 2 MB"),
    ("data:image/png;base64," + __import__("base64").b64encode(
        __import__("tests.badinputs", fromlist=["png_bomb"]).png_bomb(4000, 2200)).decode(), "webcam frame: image is"),
])
def test_broken_or_file_frames_are_a_status_line(settings: Settings, frame: object, reason: str) -> None:
    with pytest.raises(InputError, match=reason):
        decode_frame(frame)
    session, out = live.step(frame, settings, live.NOT_POSING, None, now=0.0)
    assert session is None and out.status.startswith("⚠️") and "\n" not in out.status and reason in out.status
    assert "bytes>" not in out.status  # named as a person knows it, not "<N bytes>"


def test_a_truncated_frame_then_a_good_one(settings: Settings, astronaut: np.ndarray) -> None:
    url = data_url(astronaut)
    head, payload = url.split(",", 1)
    _, out = live.step(f"{head},{payload[: len(payload) // 3 // 4 * 4]}", settings, None, None, now=0.0)
    assert out.status.startswith("⚠️") and "truncated" in out.status
    _, out = live.step(url, settings, None, None, now=1.0)
    assert out.label == "happy"


def test_panels_before_any_frame() -> None:
    assert "Timeline: no face in view" in live.timeline_html(None)
    assert live.posing_choices(("a", "b")) == [live.NOT_POSING, "a", "b"]


def test_boxes_are_numbers_for_the_page_to_draw() -> None:
    import html
    import json

    from fer.tracking import Track

    track = Track(2, (64, 48, 192, 240), np.array([0.1, 0.9], np.float32))
    shown = live.boxes_html(640, 480, [track], ("sad", "happy"))
    data = json.loads(html.unescape(shown.split("data-boxes='")[1].split("'")[0]))
    assert data == [[0.1, 0.1, 0.3, 0.5, "#2 happy 90%", "#ffbe0b"]]
    assert "data-boxes='[]'" in live.boxes_html(1, 1, [], ())
    evil = live.boxes_html(10, 10, [Track(1, (0, 0, 5, 5), np.array([1.0], np.float32))], ("<b>'x'</b>",))
    assert "<b>" not in evil and "'x'" not in evil.split("data-boxes=")[1][1:-8]


def test_one_forward_per_frame_gives_probabilities_and_the_smoothed_labels_grad_cam(
        settings: Settings, astronaut: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """The main network runs once per frame (no second forward for Grad-CAM), and the map shown
    is Grad-CAM for the smoothed label, as a separate Grad-CAM call would give it."""
    pipe = PIPELINES.get(settings)
    calls: list[int] = []
    original = type(pipe.main).run

    def counted(self: object, x: np.ndarray, features: bool = False) -> object:
        if self is pipe.main:
            calls.append(len(x))
        return original(self, x, features)  # type: ignore[arg-type]

    monkeypatch.setattr(type(pipe.main), "run", counted)
    session, out = live.step(data_url(astronaut, quality=95), settings, live.NOT_POSING, None, now=5.0)
    # A second frame whose own top-1 differs from the smoothed label: a frame of a sad-looking
    # face is not at hand, so the session's smoothed track is pushed towards another label.
    assert session is not None
    track = session.tracker.tracks[0]
    other = next(i for i, lab in enumerate(pipe.labels) if lab != "happy")
    track.probabilities = np.eye(len(pipe.labels), dtype=np.float32)[other]
    session, out = live.step(data_url(astronaut, quality=95), settings, live.NOT_POSING, session, now=5.1)
    assert calls == [1, 1]
    assert session is not None
    smoothed = session.tracker.tracks[0].probabilities
    label = pipe.labels[int(np.argmax(smoothed))]
    assert out.label == label and out.view.captions["attention"] == f"Grad-CAM for {label}"
    monkeypatch.undo()
    # The picture shown is the one a separate Grad-CAM call for that label gives.
    from fer.viz import heatmap_overlay

    face = pipe.predict_faces(pipe.detect(decode_frame(data_url(astronaut, quality=95))))[0]
    want = pipe.grad_cam(face.model_input[None], [pipe.labels.index(label)], size=face.crop.shape[0])[0]
    shown = out.view.pictures["attention"].astype(int)
    assert np.abs(shown - heatmap_overlay(face.crop, want, palette="attention")).max() <= 1


def test_a_frame_sends_only_what_the_page_does_not_show_yet(settings: Settings, astronaut: np.ndarray) -> None:
    """The three pictures go at most every PICTURES_EVERY_S (at once when the face followed changes
    or goes), the second opinion, trust panel and status only when they change; the top-k and the
    boxes with every frame."""
    import gradio as gr

    face, empty = data_url(astronaut, quality=95), data_url(np.full((240, 320, 3), 128, np.uint8))
    sent = []
    session = None
    for now, frame in ((0.0, face), (0.1, face), (0.2, face), (0.1 + live.PICTURES_EVERY_S, face),
                       (0.5, empty), (0.6, empty), (0.7, face)):
        session, out = live.step(frame, settings, live.NOT_POSING, session, now=now)
        values = live.frame_outputs(session, out, settings, None, now=now)
        skipped = [isinstance(v, dict) and v.get("__type__") == "update" and "value" not in v for v in values]
        sent.append(skipped)
        assert not skipped[3] and not skipped[9]  # top-k and boxes every frame
        assert values[-1] is session
    pictures = [all(s[:3]) for s in sent]
    assert pictures == [False, True, True, False, False, True, False]  # skipped: frames 2, 3 and 6
    assert [s[6] for s in sent] == [False, True, True, True, False, True, False]  # the status, when it changes
    # The second opinion counts the session's agreement, so it changes with each face; without a
    # face it stays the same and is not sent again.
    assert [s[4] for s in sent] == [False, False, False, False, False, True, False]
    assert sent[1][5] and sent[2][5]  # the same trust panel is not sent again
    assert gr.skip()["__type__"] == "update"  # what a skipped output is
