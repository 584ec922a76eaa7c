"""The app's HTTP API as programs (and hostile clients) use it: `gradio_client` for the named,
stateless endpoints ``/predict``, ``/analyse_video`` and ``/evaluate``; raw HTTP for records naming
server paths; Gradio's streaming protocol for the webcam stream (which `gradio_client` cannot drive).

Pictures and downloads come back inline: a file record whose ``path`` is None and whose ``url`` is
a ``data:`` URL (`fer.app.media.inline_file`), never a file on the server.

The server is the one the browser tests use (`tests/browser_helpers.py`).
"""

from __future__ import annotations

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

from fer.app.live import NOT_POSING
from fer.app.media import data_url, data_url_bytes
from fer.app.uploads import REFUSED
from fer.app.video import SUMMARY_HEADERS
from fer.io import read_image

from .browser_helpers import ASTRONAUT, NO_FACE, ROOT, AppServer, make_eval_zip

# The shared app server (and browser) fixtures.
pytest_plugins = ["tests.browser_helpers"]

#: The endpoints documented for programs (the UI's own events are undocumented or private).
PUBLIC = {"predict", "analyse_video", "evaluate"}


def settings_values(saliency: str = "face-prior", model: str = "mini_xception_fer2013") -> list[Any]:
    """The Settings tab's widget values, in the order ``/apply_settings`` takes them: model,
    saliency, saliency input, margin, max faces, detector, top-k, smoothing."""
    return [model, saliency, "model default", 0.2, 5, "short", 3, 0.5]


def inline_picture(record: dict[str, Any]) -> np.ndarray:
    """The ``(H, W, 3)`` uint8 RGB picture an inline file record carries."""
    assert record["path"] is None and record["url"].startswith("data:image/"), str(record)[:200]
    return read_image(data_url_bytes(record["url"]))


def test_the_documented_endpoints(client: Client) -> None:
    documented = {name.lstrip("/") for name in client.view_api(print_info=False, return_format="dict")["named_endpoints"]}
    assert documented == PUBLIC
    label, data = client.predict(handle_file(str(ASTRONAUT)), api_name="/predict")
    assert label["label"] == "happy" and data["faces"][0]["label"] == "happy" and data["model"] == "mini_xception_fer2013"
    label, data = client.predict(handle_file(str(NO_FACE)), api_name="/predict")
    assert label == {"label": None, "confidences": []} or not label.get("confidences")
    assert data["faces"] == [] and data["message"].startswith("No face found")


def test_api_calls_keep_nothing_between_calls(client: Client, app_server: AppServer) -> None:
    client.predict(handle_file(str(ASTRONAUT)), api_name="/predict")
    # The UI's own events (the redo after a settings change) are not callable by name at all.
    with pytest.raises(ValueError):
        client.predict(api_name="/redo_image")
    assert httpx.post(app_server.url + "gradio_api/call/redo_image", json={"data": []}, timeout=30).status_code == 404


def test_settings_follow_the_api_session_and_refuse_what_is_not_offered(client: Client) -> None:
    status, _about, _posing, _margin = client.predict(*settings_values("spectral-residual"), api_name="/apply_settings")
    assert "saliency shown: **spectral-residual**" in status
    _, data = client.predict(handle_file(str(ASTRONAUT)), api_name="/predict")
    assert data["saliency"] == "spectral-residual"
    for model in ("/etc/passwd", str(ROOT / "weights" / "mini_xception_fer2013.json"), "no-such-model"):
        status, *_ = client.predict(*settings_values(model=model), api_name="/apply_settings")
        assert status == "⚠️ Settings not applied: choose one of the offered models", status
    _, data = client.predict(handle_file(str(ASTRONAUT)), api_name="/predict")
    assert data["model"] == "mini_xception_fer2013" and data["saliency"] == "spectral-residual"
    other = Client(client.src, verbose=False)  # another session still has the defaults
    try:
        _, data = other.predict(handle_file(str(ASTRONAUT)), api_name="/predict")
    finally:
        other.close()
    assert data["saliency"] == "face-prior"


def clip_with_a_face_then_none(path: Path) -> Path:
    """2 s at 10 fps of the astronaut shifting sideways, then 1 s of a picture without a face."""
    face = cv2.cvtColor(read_image(ASTRONAUT), cv2.COLOR_RGB2BGR)
    empty = cv2.resize(cv2.cvtColor(read_image(NO_FACE), cv2.COLOR_RGB2BGR), face.shape[1::-1])
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10, face.shape[1::-1])
    for i in range(20):
        writer.write(np.roll(face, 2 * i, axis=1))
    for _ in range(10):
        writer.write(empty)
    writer.release()
    return path


def test_analyse_video(client: Client, tmp_path: Path) -> None:
    clip = clip_with_a_face_then_none(tmp_path / "clip.mp4")
    status, timelines, table, csv = client.predict(handle_file(str(clip)), "5", api_name="/analyse_video")
    assert status.startswith("clip.mp4: 3.0 s at 10 frames/s; 15 frames sampled (5 per second), 10 with a face, "
                             "1 face track"), status
    assert "<polyline" in timelines and table["headers"] == SUMMARY_HEADERS
    (row,) = table["data"]
    assert row[0] == 1 and row[1] == 10 and row[4] == "happy"
    assert csv["path"] is None and csv["orig_name"] == "video-expressions.csv"
    lines = data_url_bytes(csv["url"]).decode().splitlines()
    assert len(lines) == 1 + 10 and "happy" in lines[0]
    for rate in ("nan", "inf", "abc", "7", "-5", None):
        status, timelines, table, csv = client.predict(handle_file(str(clip)), rate, api_name="/analyse_video")
        assert status.startswith("⚠️ frames per second must be one of 1, 2, 5, 10") and csv is None, (rate, status)
    status, *_ = client.predict(handle_file(str(ASTRONAUT)), "5", api_name="/analyse_video")
    assert status.startswith("⚠️ astronaut.png:") and "still image" in status and "\n" not in status


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
    assert result["n"] == 2 and result["labels"] == ["happy", "neutral"] and result["confusion"] == [[1, 0], [1, 0]]
    message, *_ = client.predict(handle_file(str(make_eval_zip(tmp_path / "labelled.zip"))), api_name="/evaluate")
    assert message == "Scored 1 face of 2 labelled images. 1 skipped (no face or unreadable)."
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"not a zip at all")
    message, headline, table, confusion, result = client.predict(handle_file(str(broken)), api_name="/evaluate")
    from fer.app.evaluate import LAYOUT

    assert message == f"⚠️ broken.zip: not a zip archive (or a damaged one). Expected {LAYOUT}."
    assert headline == "" and confusion is None and result is None


# --------------------------------------------------------------------------- hostile records


def call(server: AppServer, endpoint: str, data: list[Any]) -> str:
    """One raw ``/gradio_api/call/<endpoint>`` request; the body of its event stream."""
    base = server.url + "gradio_api"
    started = httpx.post(f"{base}/call/{endpoint}", json={"data": data}, timeout=60)
    if started.status_code != 200:
        return f"HTTP {started.status_code}: {started.text}"
    return httpx.get(f"{base}/call/{endpoint}/{started.json()['event_id']}", timeout=120).text


@pytest.mark.parametrize("endpoint", ["predict", "analyse_video", "evaluate"])
def test_records_naming_server_paths_are_refused_alike(app_server: AppServer, endpoint: str) -> None:
    """A record naming a file this server did not receive is refused without opening it: the answer
    is the same whether the file exists or not (and whether it is a picture), with Gradio's ``meta``
    or without, and it never repeats the path."""
    uploads = app_server.gradio_dir
    pairs = [  # (exists, does not exist), each pair in the same place
        (str(ASTRONAUT), str(ASTRONAUT.with_name("nothing.png"))),
        (str(ROOT / "app.py"), str(ROOT / "nothing.py")),
        ("/etc/shadow", "/etc/nothing"),
        (str(uploads / ".." / ".." / "app.log"), str(uploads / ".." / ".." / "nothing.log")),
        (str(uploads), str(uploads / "nothing")),
    ]

    def answer(path: str, meta: bool) -> str:
        record: dict[str, Any] = {"path": path, "orig_name": "x.png"}
        if meta:
            record["meta"] = {"_type": "gradio.FileData"}
        data: list[Any] = [{"video": record, "subtitles": None}, "5"] if endpoint == "analyse_video" else [record]
        body = call(app_server, endpoint, data)
        assert path not in body and str(ROOT) not in body and "/etc" not in body, body[:300]
        assert "Traceback" not in body
        return body

    for meta in (False, True):
        for exists, missing in pairs:
            assert answer(exists, meta) == answer(missing, meta), (exists, meta)
    assert REFUSED in answer("/etc/shadow", False) or endpoint != "predict"


# --------------------------------------------------------------------------- the live stream


class LiveStream:
    """One webcam stream spoken over Gradio's HTTP API as the browser does: join the queue with the
    first frame, read results from the session's event stream, send each next frame to
    ``/stream/{event_id}``, close it.

    Each result is the live tab's outputs (`fer.app.live.LiveTab.outputs`): saliency, CNN input and
    Grad-CAM panels (HTML), top-k label, second opinion, confusion panel, status, timeline, session
    table, the tracked boxes, then the session state, as the page shows them after that result: the
    app skips a panel the page already shows (``{"__type__": "update"}``), which keeps its last value
    here as in the browser (`raw` holds what was sent).
    """

    def __init__(self, url: str) -> None:
        self.raw: list[Any] = []
        self.shown: list[Any] = []
        self.api = url.rstrip("/") + "/gradio_api"
        self.http = httpx.Client(timeout=60)
        self.fn_index, self.trigger_id = live_stream_event(self.http.get(url.rstrip("/") + "/config").json())
        self.session_hash = uuid.uuid4().hex[:11]
        self.event_id: str | None = None
        self.messages: Iterator[dict[str, Any]] | None = None

    def _body(self, frame: Any, posing: str) -> dict[str, Any]:
        # The three trailing inputs are session states (settings, evaluation, live session): the server keeps them.
        return {"data": [frame, posing, None, None, None], "fn_index": self.fn_index,
                "session_hash": self.session_hash, "event_data": None, "trigger_id": self.trigger_id}

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
                self.raw = list(message["output"]["data"])
                skipped = [isinstance(v, dict) and v.get("__type__") == "update" and "value" not in v
                           for v in self.raw]
                self.shown = [old if skip and old is not None else new
                              for new, old, skip in zip(self.raw, self.shown or [None] * len(self.raw), skipped,
                                                        strict=True)]
                return list(self.shown)
        raise AssertionError("event stream ended")

    def send(self, frame: Any, posing: str = NOT_POSING) -> list[Any]:
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


def live_stream_event(config: dict[str, Any]) -> tuple[int, int]:
    """``(fn_index, trigger id)`` of the webcam's stream event, found by its widget's element id."""
    webcam = next(c["id"] for c in config["components"] if c["props"].get("elem_id") == "live-input")
    dependency = next(d for d in config["dependencies"] if [webcam, "stream"] in [list(t) for t in d["targets"]])
    return dependency["id"], webcam


def test_live_stream_over_http(app_server: AppServer) -> None:
    frame = {"url": data_url(read_image(ASTRONAUT)), "path": None}
    stream = LiveStream(app_server.url)
    saliency, cnn_input, gradcam, top_k, opinion, confusion, status, timeline, _session, boxes, _state = stream.send(frame)
    assert status == "1 face (#1 happy); following #1, the largest."
    assert top_k["label"] == "happy" and [c["label"] for c in top_k["confidences"]][0] == "happy"
    for html in (saliency, cnn_input, gradcam):
        assert 'src="data:image/jpeg;base64,' in html
    assert "predictor: face-prior" in saliency and "Grad-CAM for happy" in gradcam
    assert "about 66 %" in confusion and "<svg" in timeline and "face-api" in opinion
    assert "#1 happy" in boxes and "data:" not in boxes  # boxes as numbers for the page to draw

    # A broken frame, and a record naming a file, are one status line each; the stream goes on.
    out = stream.send({"url": "data:image/jpeg;base64,@@@", "path": None}, "happy")
    assert out[6].startswith("⚠️ webcam frame: not valid base64") and "<img" not in out[0]
    out = stream.send({"path": str(ASTRONAUT), "url": None}, "happy")
    assert out[6] == "⚠️ webcam frame: expected the camera's pixels, not a file"

    # Posing: frames are counted in the session table, redrawn at most once a second.
    counted = None
    deadline = time.monotonic() + 30
    while counted is None:
        assert time.monotonic() < deadline, "session counts never shown"
        time.sleep(0.3)
        out = stream.send(frame, "happy")
        assert out[6].endswith("Counting: posing **happy**."), out[6]
        if isinstance(out[8], str) and "frames</b> counted" in out[8]:
            counted = out[8]
    assert "as posed" in counted and "happy 100% of" in counted and "<table" in counted
    # The trust panel now quotes the posed counts as a personal check, beside the card's figure.
    assert "Your personal check (Live, posing" in out[5] and "about 66 %" in out[5]
    last = stream.close()
    assert "following #1" in last[6]
