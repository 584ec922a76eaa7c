"""Every named endpoint of ``python app.py``, called as a program would: `gradio_client` for the
request/response endpoints, Gradio's HTTP streaming protocol for the live webcam stream (which
`gradio_client` cannot drive). ``/predict`` itself is covered in `tests/test_app.py`; here it is
called after a settings change, to show the settings follow the API session.

Pictures and downloads come back inline: a file record whose ``path`` is None and whose ``url`` is a
``data:`` URL (`fer.demo.inline_file`), never a file on the server (`tests/test_privacy.py`).

The server is the one the browser tests use (`tests/browser_helpers.py`).
"""

from __future__ import annotations

import ast
import json
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from fer import demo
from fer.io import read_image

from .browser_helpers import (
    ASTRONAUT,
    NO_FACE,
    ROOT,
    AppServer,
    make_eval_zip,
)

# The shared app server (and browser) fixtures.
pytest_plugins = ["tests.browser_helpers"]

#: Every ``api_name`` app.py gives an event, and the test here (or elsewhere) that calls it.
TESTED_ENDPOINTS = {
    "predict": "tests/test_app.py::test_app_serves_predict_to_gradio_client, test_settings_follow_the_api_session",
    "apply_settings": "test_settings_follow_the_api_session",
    "redo_image": "test_settings_follow_the_api_session",
    "show_redone_image": "test_settings_follow_the_api_session",
    "analyse_video": "test_analyse_video",
    "evaluate": "test_evaluate, test_evaluate_counts_skipped_images_by_their_name_in_the_archive",
    "live_frame": "test_live_frame_stream_over_http",
}

LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def named_endpoints() -> set[str]:
    """The ``api_name=...`` values written in app.py."""
    tree = ast.parse((ROOT / "app.py").read_text(encoding="utf-8"))
    return {kw.value.value for node in ast.walk(tree) if isinstance(node, ast.Call) for kw in node.keywords
            if kw.arg == "api_name" and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str)}


def settings_values(saliency: str = "face-prior", model: str = "mini_xception_fer2013") -> list[Any]:
    """The Settings tab's widget values, in the order ``/apply_settings`` takes them: model,
    saliency, saliency input, margin, max faces, detector, top-k, smoothing."""
    return [model, saliency, "model default", 0.2, 5, "short", 3, 0.5]


def test_every_named_endpoint_is_tested_and_callable(client: Client) -> None:
    assert named_endpoints() == set(TESTED_ENDPOINTS)
    callable_ = {endpoint.api_name.lstrip("/") for endpoint in client.endpoints.values() if endpoint.is_valid}
    assert set(TESTED_ENDPOINTS) <= callable_


def inline_picture(record: dict[str, Any]) -> np.ndarray:
    """The ``(H, W, 3)`` uint8 RGB picture an inline file record carries."""
    assert record["path"] is None and record["url"].startswith("data:image/"), str(record)[:200]
    return read_image(demo.data_url_bytes(record["url"]))


def test_settings_follow_the_api_session(client: Client) -> None:
    _, data = client.predict(handle_file(str(ASTRONAUT)), api_name="/predict")
    assert data["saliency"] == "face-prior"
    status, about, _posing, _margin = client.predict(*settings_values("spectral-residual"), api_name="/apply_settings")
    assert "saliency shown: **spectral-residual**" in status and "# Model card: mini_xception_fer2013" in about

    # The settings changed this session's state: /redo_image redoes the session's picture (from the
    # bytes the session kept: the upload is deleted) and /predict uses them.
    label, data = client.predict(api_name="/redo_image")
    assert label["label"] == "happy" and data["saliency"] == "spectral-residual"
    assert [face["label"] for face in data["faces"]] == ["happy"]
    _, data = client.predict(handle_file(str(ASTRONAUT)), api_name="/predict")
    assert data["saliency"] == "spectral-residual"

    # /show_redone_image draws the session's last result.
    (annotated, gallery, face_choice, status, saliency, cnn_input, gradcam, top_k, captions, trust_plot,
     trust_text) = client.predict(api_name="/show_redone_image")
    assert status.startswith("1 face found") and face_choice["value"].startswith("#1 happy")
    assert len(gallery) == 1 and gallery[0]["caption"] == face_choice["value"]
    assert inline_picture(gallery[0]["image"]).shape == (224, 224, 3)
    assert inline_picture(annotated).shape == (512, 512, 3)
    for record in (saliency, cnn_input, gradcam):
        picture = inline_picture(record)
        assert picture.shape == (224, 224, 3) and picture.std() > 10
    assert top_k["label"] == "happy" and "where humans would look (spectral-residual)" in captions
    assert trust_plot is None and "without a measured evaluation" in trust_text

    # Refused settings leave the session's settings as they were.
    with pytest.raises(AppError, match="no-such-model is not in the list of choices"):
        client.predict(*settings_values(model="no-such-model"), api_name="/apply_settings")
    _, data = client.predict(api_name="/redo_image")
    assert data["model"] == "mini_xception_fer2013" and data["saliency"] == "spectral-residual"

    # Another session still has the defaults.
    other = Client(client.src, verbose=False)
    try:
        _, data = other.predict(handle_file(str(ASTRONAUT)), api_name="/predict")
    finally:
        other.close()
    assert data["saliency"] == "face-prior"


def test_analyse_video(client: Client, tmp_path: Path) -> None:
    # 2 s at 10 fps of the astronaut, shifting sideways, then 1 s of a picture without a face.
    face = cv2.cvtColor(read_image(ASTRONAUT), cv2.COLOR_RGB2BGR)
    empty = cv2.resize(cv2.cvtColor(read_image(NO_FACE), cv2.COLOR_RGB2BGR), face.shape[1::-1])
    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10, face.shape[1::-1])
    for i in range(20):
        writer.write(np.roll(face, 2 * i, axis=1))
    for _ in range(10):
        writer.write(empty)
    writer.release()

    status, plot, table, csv = client.predict(handle_file(str(path)), "5", api_name="/analyse_video")
    assert status.startswith("15 frames sampled, 10 with a face, 1 face track"), status
    assert plot["type"] == "matplotlib" and plot["plot"].startswith("data:image/")
    assert table["headers"] == demo.SUMMARY_HEADERS
    (row,) = table["data"]
    assert row[0] == 1 and row[1] == 10 and row[4] == "happy"
    assert csv["path"] is None and csv["orig_name"] == "video-expressions.csv"
    lines = demo.data_url_bytes(csv["url"]).decode().splitlines()
    assert len(lines) == 1 + 10 and "happy" in lines[0]

    # A still picture is refused with one line naming the upload.
    status, plot, table, csv = client.predict(handle_file(str(ASTRONAUT)), "5", api_name="/analyse_video")
    assert status.startswith("astronaut.png:") and "\n" not in status and csv is None


def test_evaluate(client: Client, tmp_path: Path) -> None:
    archive = tmp_path / "faces.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(ASTRONAUT, "happy/astronaut.png")
        zipped.write(ASTRONAUT, "neutral/astronaut.png")  # the model says happy: one mistake
    message, headline, table, confusion, result = client.predict(handle_file(str(archive)), api_name="/evaluate")
    assert message == "Scored 2 faces of 2 labelled images."
    assert headline.startswith("**Accuracy 50.0%** on n=2")
    assert [row[0] for row in table["data"]] == ["happy", "neutral"]
    assert confusion["mime_type"] == "image/png" and inline_picture(confusion).std() > 20
    assert result["n"] == 2 and result["labels"] == ["happy", "neutral"]
    assert result["confusion"] == [[1, 0], [1, 0]]

    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"not a zip at all")
    message, headline, table, confusion, result = client.predict(handle_file(str(broken)), api_name="/evaluate")
    assert message == "broken.zip: not a zip archive (or a damaged one)"
    assert headline == "" and confusion is None and result is None


def test_evaluate_counts_skipped_images_by_their_name_in_the_archive(client: Client, tmp_path: Path) -> None:
    message, headline, table, confusion, result = client.predict(
        handle_file(str(make_eval_zip(tmp_path / "faces.zip"))), api_name="/evaluate")
    assert message == "Scored 1 face of 2 labelled images. 1 skipped (no face or unreadable)."
    assert headline.startswith("**Accuracy 100.0%** on n=1")
    assert [row[0] for row in table["data"]] == ["happy", "sad"]
    assert result["n"] == 1 and [s["file"] for s in result["skipped"]] == ["faces/sad/coffee.png"]
    assert "fer-eval-" not in json.dumps(result)  # no server path in what the user gets


# --------------------------------------------------------------------------- the live stream


class LiveStream:
    """One webcam stream spoken over Gradio's HTTP API as the browser does: join the queue with the
    first frame, read results from the session's event stream, send each next frame to
    ``/stream/{event_id}``, close it.

    Each result is the live tab's outputs, in app.py's order: annotated, saliency, CNN input,
    Grad-CAM (HTML), top-k label, status, model confusion plot and text, session plot and text,
    timeline; a panel not redrawn on a frame is ``{"__type__": "update"}``.
    """

    def __init__(self, url: str) -> None:
        self.api = url.rstrip("/") + "/gradio_api"
        self.http = httpx.Client(timeout=60)
        config = self.http.get(url.rstrip("/") + "/config").json()
        dependency = next(d for d in config["dependencies"] if d.get("api_name") == "live_frame")
        assert dependency.get("connection") == "stream"
        self.fn_index = dependency["id"]
        self.trigger_id = dependency["targets"][0][0]
        self.session_hash = uuid.uuid4().hex[:11]
        self.event_id: str | None = None
        self.messages: Iterator[dict[str, Any]] | None = None
        self._response: Any = None

    def _body(self, frame: Any, posing: str) -> dict[str, Any]:
        # The two trailing inputs are session states (settings, live session): the server keeps them.
        return {"data": [frame, posing, None, None], "fn_index": self.fn_index, "session_hash": self.session_hash,
                "event_data": None, "trigger_id": self.trigger_id}

    def _events(self) -> Iterator[dict[str, Any]]:
        with self.http.stream("GET", f"{self.api}/queue/data", params={"session_hash": self.session_hash}) as response:
            for line in response.iter_lines():
                if line.startswith("data:"):
                    yield json.loads(line[5:])

    def _next_output(self, expect: str = "process_streaming") -> list[Any]:
        assert self.messages is not None
        for message in self.messages:
            if message["msg"] in ("process_streaming", "process_completed"):
                assert message["msg"] == expect and message.get("success", True), message
                return list(message["output"]["data"])
        raise AssertionError("event stream ended")

    def send(self, frame: Any, posing: str = demo.NOT_POSING) -> list[Any]:
        """Send one frame (the first joins the queue) and return what the app answered."""
        if self.event_id is None:
            joined = self.http.post(f"{self.api}/queue/join", json=self._body(frame, posing))
            joined.raise_for_status()
            self.event_id = joined.json()["event_id"]
            self.messages = self._events()
        else:
            self.http.post(f"{self.api}/stream/{self.event_id}", json=self._body(frame, posing)).raise_for_status()
        return self._next_output()

    def close(self) -> list[Any]:
        """End the stream; returns the last result."""
        self.http.post(f"{self.api}/stream/{self.event_id}/close").raise_for_status()
        last = self._next_output("process_completed")
        self.http.close()
        return last


def test_live_frame_stream_over_http(app_server: AppServer) -> None:
    # What the browser's webcam sends: a JPEG data URL record.
    frame = {"url": demo.data_url(read_image(ASTRONAUT))}
    stream = LiveStream(app_server.url)
    out = stream.send(frame)
    annotated, saliency, cnn_input, gradcam, top_k, status = out[:6]
    assert status == "1 face; following #1"
    assert top_k["label"] == "happy" and [c["label"] for c in top_k["confidences"]][0] == "happy"
    for html in (annotated, saliency, cnn_input, gradcam):
        assert '<img src="data:image/jpeg;base64,' in html
    assert "where humans would look (face-prior)" in saliency and "Grad-CAM for happy" in gradcam
    assert "without a measured evaluation" in out[7]  # the model-confusion text, drawn for the first answer

    # A broken frame is one status line; the stream goes on with the same tracked face.
    out = stream.send({"url": "data:image/jpeg;base64,@@@"}, "happy")
    assert out[5].startswith("⚠️ webcam frame: not valid base64") and "<img" not in out[0]

    # Posing: frames are counted in the session matrix, shown when its panel is next redrawn
    # (panels take turns, each at most once a second).
    counted = None
    deadline = time.monotonic() + 30
    while counted is None:
        assert time.monotonic() < deadline, "session counts never shown"
        time.sleep(0.3)
        out = stream.send(frame, "happy")
        assert out[5] == "1 face; following #1; counting: posing happy"
        session_text = out[9]
        if isinstance(session_text, str) and "frames** counted" in session_text:
            counted = session_text
    assert "accuracy **100%**" in counted and "happy 100% of" in counted
    last = stream.close()
    assert last[5].startswith("1 face; following #1")
