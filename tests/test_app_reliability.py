"""Reliability, security and privacy of the Gradio app, through its HTTP API on 127.0.0.1, as users
and hostile clients meet it.

One server (``python app.py``, as a user starts it) serves the whole module, with its own app folder
and TMPDIR, outbound network attempts recorded by an audit hook, HF_HUB_OFFLINE=1 and
GRADIO_ANALYTICS_ENABLED unset. The tests send it the bad-input corpus (tests/badinputs.py), broken
webcam frames, the same upload from many clients at once, a flood of requests and 20 concurrent
webcam streams; check its headers and refused routes; kill it with SIGKILL in the middle of an
evaluation and start it again; then stop it and check that no user file is left on disk, nothing
went out and the logs hold no image data and no traceback.

Tests run in file order: the last ones stop the server.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from fer.app.media import data_url
from fer.limits import MAX_UPLOAD_BYTES, QUEUE_MAX_SIZE

from .badinputs import (
    BadInput,
    astronaut,
    coffee,
    encode,
    image_cases,
    net_audit_env,
    png_bomb,
    video_cases,
    zip_cases,
)
from .browser_helpers import image_data_in
from .conftest import ARTIFACTS_DIR, ASTRONAUT, ROOT, free_port

httpx = pytest.importorskip("httpx")
gradio_client = pytest.importorskip("gradio_client")

CASES: dict[str, BadInput] = {c.name: c for c in image_cases()}
ZIPS: dict[str, BadInput] = {c.name: c for c in zip_cases()}
VIDEO_NAMES = ["video-empty", "video-text", "video-png-renamed", "video-truncated", "video-too-long", "video-good",
               "video-1000fps"]

#: Seconds to wait for the server to start (imports, model load) and for one request.
START_TIMEOUT = 180
REQUEST_TIMEOUT = 60


# --------------------------------------------------------------------------- the server


@dataclass
class Server:
    """A running ``python app.py`` and the folders it may write to."""

    url: str
    proc: subprocess.Popen
    base: Path
    app_dir: Path
    tmp_dir: Path
    stdout: Path
    stderr: Path
    net_log: Path
    env: dict[str, str] = field(default_factory=dict)
    baseline: set[Path] = field(default_factory=set)

    @property
    def gradio_dir(self) -> Path:
        """Gradio's upload folder (the app's ``uploads``)."""
        return self.app_dir / "uploads"

    def files(self) -> set[Path]:
        """Every file now under the server's app folder and TMPDIR."""
        return {p for d in (self.app_dir, self.tmp_dir) for p in d.rglob("*") if p.is_file()}

    def new_files(self) -> set[Path]:
        """Files created since the server finished starting."""
        return self.files() - self.baseline

    def logs(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def restart(self) -> None:
        """Start the app again on the same port and folders (after `stop` or a kill)."""
        fresh = _start(self.base, self.env, int(self.env["GRADIO_SERVER_PORT"]))
        self.proc, self.baseline = fresh.proc, fresh.baseline

    def stop(self) -> int | None:
        """Stop as Ctrl-C does (Gradio then empties its cache); returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode


def _start(base: Path, env: dict[str, str], port: int) -> Server:
    """Start ``python app.py`` with ``env`` and wait until it answers (its logs appended to)."""
    stdout, stderr = base / "stdout.log", base / "stderr.log"
    with stdout.open("ab") as out, stderr.open("ab") as err:
        # SIGINT at its default: a shell running us in the background may have set it to "ignore",
        # and then Ctrl-C (what `stop` sends) would not reach the app.
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    srv = Server(f"http://127.0.0.1:{port}", proc, base, base / "app", base / "tmp", stdout, stderr,
                 Path(env["FER_NET_AUDIT_LOG"]), env)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            pytest.fail(f"app.py exited with {proc.returncode}: {srv.logs()[-3000:]}")
        try:
            if httpx.get(srv.url + "/config", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            srv.stop()
            pytest.fail(f"app.py did not start within {START_TIMEOUT} s: {srv.logs()[-3000:]}")
        time.sleep(0.5)
    srv.baseline = srv.files()
    return srv


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Server:
    base = tmp_path_factory.mktemp("app")
    (base / "app").mkdir()
    (base / "tmp").mkdir()
    env, _net_log = net_audit_env(base / "audit", {k: v for k, v in os.environ.items() if k != "GRADIO_TEMP_DIR"})
    env.pop("GRADIO_SERVER_NAME", None)  # the app's own default must be loopback
    env.update(FER_APP_DIR=str(base / "app"), TMPDIR=str(base / "tmp"), GRADIO_SERVER_PORT=str(free_port()),
               PYTHONUNBUFFERED="1")
    srv = _start(base, env, int(env["GRADIO_SERVER_PORT"]))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server.url, verbose=False, download_files=False)


@pytest.fixture(scope="module")
def uploads(tmp_path_factory) -> Path:
    """Scratch folder for the files this module uploads (outside the server's folders)."""
    return tmp_path_factory.mktemp("uploads")


def _call(client, api_name: str, *args):
    """``(outputs, None)`` or ``(None, error message)`` for one API call."""
    from gradio_client.exceptions import AppError

    try:
        return client.predict(*args, api_name=api_name), None
    except AppError as exc:
        return None, str(exc)


def _clear(message: str, reason: str) -> bool:
    """A message a user can act on: one line, names the reason, no traceback or internals."""
    return (bool(message) and "\n" not in message.strip() and "Traceback" not in message
            and "show_error=True" not in message and reason.lower() in message.lower())


def _predict_file(client, path: Path):
    from gradio_client import handle_file

    return _call(client, "/predict", handle_file(str(path)))


def _assert_astronaut_ok(client) -> None:
    outputs, error = _predict_file(client, ASTRONAUT)
    assert error is None, error
    label, data = outputs[0], outputs[1]
    assert label["label"] == "happy" and len(data["faces"]) == 1


# --------------------------------------------------------------------------- bad input, Image tab


@pytest.mark.parametrize("name", list(CASES))
def test_image_corpus(name, server, client, uploads):
    case = CASES[name]
    path = case.write(uploads)
    if case.name == "over-upload-limit":
        # gradio_client refuses it before sending; a browser sends it: the server must refuse it.
        with path.open("rb") as fh:
            response = httpx.post(server.url + "/gradio_api/upload", files=[("files", (path.name, fh, "image/png"))],
                                  timeout=REQUEST_TIMEOUT)
        assert response.status_code == 413 and f"{MAX_UPLOAD_BYTES}" in response.text, response.text
        _assert_astronaut_ok(client)
        return
    outputs, error = _predict_file(client, path)
    if case.expect == "error":
        message = error if outputs is None else outputs[1]["message"]
        assert outputs is None or outputs[1]["faces"] == [], outputs
        assert _clear(message, case.reason), message
        assert str(server.base) not in message, "the message shows the server's own paths"
        _assert_astronaut_ok(client)
    else:
        assert error is None, error
        label, data = outputs[0], outputs[1]
        lo, hi = case.faces
        assert lo <= len(data["faces"]) <= hi, data
        if case.label and data["faces"]:
            assert label["label"] == case.label
        assert "\n" not in data["message"]


# --------------------------------------------------------------------------- Video tab


@pytest.fixture(scope="module")
def videos(uploads) -> dict[str, Path]:
    work = uploads / "video-work"
    work.mkdir()
    return {c.name: c.write(uploads) for c in video_cases(work)}


VIDEO_REASONS = {"video-empty": "empty", "video-text": "not a video", "video-png-renamed": "not a video",
                 "video-truncated": "not a video", "video-too-long": "s limit"}


@pytest.mark.parametrize("name", VIDEO_NAMES)
def test_video_corpus(name, server, client, videos):
    from gradio_client import handle_file

    outputs, error = _call(client, "/analyse_video", handle_file(str(videos[name])), "5")
    if name == "video-good":
        assert error is None, error
        message, _timelines, rows, _csv = outputs
        assert "1 face track" in message, message
        assert rows["data"][0][4] == "happy", rows
        return
    if name == "video-1000fps":
        assert error is None, error
        assert "4.0 s at 1000 frames/s; 20 frames sampled" in outputs[0], outputs[0]
        return
    message = error if outputs is None else outputs[0]
    assert _clear(message, VIDEO_REASONS[name]), message
    assert str(server.base) not in message, "the message shows the server's own paths"
    _assert_astronaut_ok(client)


# --------------------------------------------------------------------------- Evaluate tab


@pytest.mark.parametrize("name", list(ZIPS))
def test_zip_corpus(name, server, client, uploads):
    from gradio_client import handle_file

    case = ZIPS[name]
    before = server.files()
    outputs, error = _call(client, "/evaluate", handle_file(str(case.write(uploads))))
    if case.expect == "ok":
        assert error is None, error
        message, headline, _rows, _figure, result = outputs
        assert result["n"] >= 2 and "Accuracy" in headline, (message, headline)
        assert result["confusion"], result
    else:
        message = error if outputs is None else outputs[0]
        assert _clear(message, case.reason), message
        assert str(server.base) not in message, "the message shows the server's own paths"
    # Nothing escaped the archive, and the unpacked copy is gone already.
    escaped = [p for p in (server.base.parent / "evil.png", Path("/tmp/fer-evil-absolute.png")) if p.exists()]
    escaped += [p for p in server.base.rglob("evil*.png")]
    assert not escaped, escaped
    leftovers = [p for p in server.files() - before if p.parent.parent != server.gradio_dir]
    assert not leftovers, leftovers  # only the upload itself, in Gradio's folder


def test_wrong_file_type_refused(server, client, uploads):
    from gradio_client import handle_file

    notes = uploads / "notes.txt"
    notes.write_text("not an archive")
    before = server.files()
    outputs, error = _call(client, "/evaluate", handle_file(str(notes)))
    assert error is None and outputs[0].startswith("⚠️ notes.txt:") and _clear(outputs[0], "file type"), outputs
    assert {p.name for p in server.files() - before} <= {"notes.txt"}, "something besides the upload was written"


# --------------------------------------------------------------------------- webcam streams


def _webcam_frame(face: bool = True, mirror: bool = False) -> np.ndarray:
    """A 640×480 webcam-like frame: the astronaut (or the coffee cup) on a grey background."""
    frame = np.full((480, 640, 3), 110, np.uint8)
    picture = np.asarray((astronaut() if face else coffee()).resize((420, 420)))
    frame[30:450, 110:530] = picture[:, ::-1] if mirror else picture
    return frame


@dataclass
class StreamResult:
    """What one webcam stream got back: per frame the status line (or None when no answer came)."""

    statuses: list[str | None] = field(default_factory=list)
    labels: list[str | None] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ended_early: bool = False


class WebcamStream:
    """One browser tab's webcam stream, spoken over Gradio's HTTP API as its JavaScript client does:
    ``queue/join`` with the first frame, then each next frame POSTed to ``stream/{event_id}``, answers
    read from the session's server-sent events; frames are ``data:`` URLs, as the webcam sends them."""

    def __init__(self, url: str, fn_index: int, trigger_id: int, timeout: float = 30.0) -> None:
        self.http = httpx.Client(base_url=url, timeout=timeout)
        self.fn_index, self.trigger_id, self.timeout = fn_index, trigger_id, timeout
        self.session = uuid.uuid4().hex[:11]
        self.event_id: str | None = None
        self._events = None
        self._response = None

    def _body(self, frame_url: str) -> dict:
        frame = {"url": frame_url, "path": None, "meta": {"_type": "gradio.FileData"}}
        return {"data": [frame, "(not posing)", None, None, None], "fn_index": self.fn_index,
                "session_hash": self.session, "event_data": None, "trigger_id": self.trigger_id}

    def send(self, frame_url: str) -> None:
        if self.event_id is None:
            response = self.http.post("/gradio_api/queue/join", json=self._body(frame_url))
            response.raise_for_status()
            self.event_id = response.json()["event_id"]
            self._response = self.http.stream("GET", "/gradio_api/queue/data", params={"session_hash": self.session})
            self._events = self._response.__enter__().iter_lines()
        else:
            self.http.post(f"/gradio_api/stream/{self.event_id}", json=self._body(frame_url)).raise_for_status()

    def receive(self) -> dict:
        """The next answer: ``{"msg": "process_streaming" | "process_completed", "output": ...}``."""
        for line in self._events:
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") in ("process_streaming", "process_completed"):
                    return message
        return {"msg": "closed", "output": {}}

    def close(self) -> None:
        if self.event_id is not None:
            try:
                self.http.post(f"/gradio_api/stream/{self.event_id}/close")
            except httpx.HTTPError:
                pass
        if self._response is not None:
            self._response.__exit__(None, None, None)
        self.http.close()


@pytest.fixture(scope="module")
def live(server) -> tuple[int, int, int]:
    """``(fn_index, trigger_id, index of the status output)`` of the webcam's stream event."""
    from .test_api import live_stream_event

    config = httpx.get(server.url + "/config", timeout=10).json()
    fn_index, trigger = live_stream_event(config)
    dep = next(d for d in config["dependencies"] if d["id"] == fn_index)
    components = {c["id"]: c for c in config["components"]}
    status = next(i for i, cid in enumerate(dep["outputs"]) if components[cid]["props"].get("elem_id") == "live-status")
    return fn_index, trigger, status


def run_stream(server, live, frames: list[str], *, deadline: float | None = None, every: float = 0.1) -> StreamResult:
    """Send ``frames`` one after the other (each after the previous answer, at most one per ``every``
    seconds, the app's ``stream_every``); with ``deadline``, cycle through them until then."""
    fn_index, trigger_id, status_index = live
    stream = WebcamStream(server.url, fn_index, trigger_id)
    result = StreamResult()
    try:
        i = 0
        while True:
            frame = frames[i % len(frames)]
            sent = time.monotonic()
            try:
                stream.send(frame)
                message = stream.receive()
            except httpx.HTTPError as exc:
                result.errors.append(f"frame {i}: {type(exc).__name__}: {exc}")
                break
            if message["msg"] != "process_streaming":
                result.ended_early = True
                result.errors.append(f"frame {i}: stream ended: {str(message.get('output'))[:200]}")
                break
            result.latencies.append(time.monotonic() - sent)
            data = message["output"]["data"]
            label = data[3]
            result.statuses.append(data[status_index] if isinstance(data[status_index], str) else None)
            result.labels.append(label.get("label") if isinstance(label, dict) else None)
            i += 1
            if (deadline is None and i >= len(frames)) or (deadline is not None and time.monotonic() >= deadline):
                break
            time.sleep(max(0.0, every - (time.monotonic() - sent)))
    finally:
        stream.close()
    return result


def test_stream_answers_and_writes_nothing(server, live):
    frames = [data_url(_webcam_frame()), data_url(_webcam_frame(mirror=True)),
              data_url(_webcam_frame(face=False)), data_url(_webcam_frame())]
    before = server.files()
    result = run_stream(server, live, frames)
    assert not result.errors, result.errors
    assert result.labels[0] == "happy" and result.labels[-1] == "happy", result.labels
    assert server.files() == before, "webcam frames were written to disk"



def test_stream_survives_broken_frames(server, live):
    good = data_url(_webcam_frame())
    jpeg = base64.b64decode(good.split(",", 1)[1])
    broken = [
        "data:image/jpeg;base64," + base64.b64encode(jpeg[: len(jpeg) // 3]).decode(),  # truncated
        "data:image/png;base64," + base64.b64encode(b"not an image at all").decode(),
        "data:image/png;base64," + base64.b64encode(encode(astronaut().resize((1, 1)), "PNG")).decode(),
        "data:image/png;base64," + base64.b64encode(png_bomb(20000, 20000)).decode(),
        "data:image/jpeg;base64,@@@not base64@@@",
    ]
    log_before = len(server.logs())
    result = run_stream(server, live, [good, *broken, good])
    assert not result.errors, result.errors
    assert len(result.statuses) == len(broken) + 2 and result.labels[-1] == "happy", result.statuses
    for status in result.statuses[1:-1]:
        assert status and "\n" not in status
    assert not image_data_in(server.logs()[log_before:])


# --------------------------------------------------------------------------- handler faults


class _RaisesOnce:
    """Wraps a real `fer.face.FaceDetector`; its first call fails as a native crash would."""

    def __init__(self, detector) -> None:
        self.detector, self.calls = detector, 0

    def __getattr__(self, name):  # everything else (margin, style, …) is the real detector's
        return getattr(self.detector, name)

    def __call__(self, image):
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("detector failed on this frame")
        return self.detector(image)

    def close(self) -> None:
        self.detector.close()


class _OnePipeline:
    """Stands in for `fer.app.settings.PIPELINES`: every setting gets the pipeline given."""

    def __init__(self, pipe) -> None:
        self.pipe = pipe

    def get(self, settings):
        return self.pipe


def _live_twice(monkeypatch, pipe):
    from fer.app import live
    from fer.app.settings import default_settings

    monkeypatch.setattr(live, "PIPELINES", _OnePipeline(pipe))
    settings = default_settings()
    frame = data_url(_webcam_frame())
    session, first = live.step(frame, settings, live.NOT_POSING, None, now=0.0)
    session, second = live.step(frame, settings, live.NOT_POSING, session, now=0.1)
    return first, second


@pytest.mark.parametrize("fault", ["detector", "model"])
def test_one_failing_frame_does_not_end_the_stream(monkeypatch, fault):
    """The handler answers the failing frame with a one-line status and the next frame normally."""
    import fer
    from fer.models import LoadedModel

    pipe = fer.load("default", saliency="face-prior")
    if fault == "detector":
        monkeypatch.setattr(pipe, "detector", _RaisesOnce(pipe.detector))
    else:
        calls = []
        real_run = LoadedModel.run

        def fail_once(self, x, features=False):  # the network's forward pass, whichever engine runs it
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("CNN failed on this frame")
            return real_run(self, x, features)

        monkeypatch.setattr(LoadedModel, "run", fail_once)
    try:
        first, second = _live_twice(monkeypatch, pipe)
    finally:
        pipe.close()
    assert first.status.startswith("⚠️") and "\n" not in first.status
    assert second.label == "happy" and max(second.view.top_k, key=second.view.top_k.get) == "happy"


# --------------------------------------------------------------------------- load


def test_queue_full_is_told_and_server_keeps_serving(server, client):
    """More requests than the queue holds: the extra ones are told at once (HTTP 503, which the
    browser shows as "This application is currently busy. Please try again."); every accepted one
    is answered; the next request works."""
    flood = QUEUE_MAX_SIZE * 2
    # One upload per request, as browsers send them.
    picture = ASTRONAUT.read_bytes()
    uploaded = [httpx.post(server.url + "/gradio_api/upload", timeout=REQUEST_TIMEOUT,
                           files=[("files", (f"face-{i}.png", picture, "image/png"))]).json()[0] for i in range(flood)]
    config = httpx.get(server.url + "/config", timeout=10).json()
    dep = next(d for d in config["dependencies"] if d.get("api_name") == "predict")
    session = uuid.uuid4().hex[:11]

    def join(i):
        body = {"data": [{"path": uploaded[i], "orig_name": f"face-{i}.png", "meta": {"_type": "gradio.FileData"}},
                         None],
                "fn_index": dep["id"], "session_hash": session, "event_data": None, "trigger_id": dep["targets"][0][0]}
        response = httpx.post(server.url + "/gradio_api/queue/join", json=body, timeout=REQUEST_TIMEOUT)
        return response.status_code, response.json()

    with ThreadPoolExecutor(flood) as pool:
        answers = list(pool.map(join, range(flood)))
    accepted = {a["event_id"] for code, a in answers if code == 200}
    refused = [a for code, a in answers if code != 200]
    assert refused and all(code == 503 for code, _ in answers if code != 200), answers
    assert all("queue is full" in a["detail"].lower() for a in refused), refused
    done, failed = set(), []
    with httpx.stream("GET", server.url + "/gradio_api/queue/data", params={"session_hash": session},
                      timeout=REQUEST_TIMEOUT) as events:
        for line in events.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    done.add(message["event_id"])
                    if not message.get("success") or len(message["output"]["data"][1]["faces"]) != 1:
                        failed.append(message)
                if done >= accepted:
                    break
    assert not failed, failed[:2]  # every accepted request analysed its own upload
    _assert_astronaut_ok(client)
    import importlib.util

    busy = "This application is currently busy. Please try again."
    frontend = Path(importlib.util.find_spec("gradio").origin).parent / "templates" / "frontend" / "assets"
    assert any(busy in p.read_text(errors="ignore") for p in frontend.glob("index-*.js"))


IDENTICAL_CLIENTS = 20
IDENTICAL_SECONDS = 20.0


def test_the_same_upload_from_many_clients_at_once(server):
    """20 clients upload the same picture under the same name and analyse it, over and over: every
    upload is accepted and every request answered with the face (no upload is ever deleted while
    another request may read it)."""
    from gradio_client import Client, handle_file

    picture = server.base / "same.png"
    picture.write_bytes(ASTRONAUT.read_bytes())
    deadline = time.monotonic() + IDENTICAL_SECONDS

    def client_loop(_: int) -> tuple[int, list[str]]:
        done, failures = 0, []
        api = Client(server.url, verbose=False, download_files=False)
        try:
            while time.monotonic() < deadline:
                try:
                    label, data = api.predict(handle_file(str(picture)), api_name="/predict")
                    if label.get("label") != "happy" or len(data["faces"]) != 1:
                        failures.append(str(data)[:200])
                except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
                    failures.append(f"{type(exc).__name__}: {exc}"[:200])
                done += 1
        finally:
            api.close()
        return done, failures

    with ThreadPoolExecutor(IDENTICAL_CLIENTS) as pool:
        results = list(pool.map(client_loop, range(IDENTICAL_CLIENTS)))
    failures = [f for _, fs in results for f in fs]
    assert sum(done for done, _ in results) >= IDENTICAL_CLIENTS and not failures, failures[:5]
    assert "500 Internal Server Error" not in server.logs()


def test_security_headers_and_refused_routes(server):
    page = httpx.get(server.url + "/", timeout=REQUEST_TIMEOUT)
    assert page.headers["x-content-type-options"] == "nosniff"
    policy = page.headers["content-security-policy"]
    # The Hugging Face Hub may frame the app (a Space); other sites may not.
    assert "frame-ancestors 'self' https://huggingface.co" in policy and "*.hf.space" in policy
    for route in ("/gradio_api/dev/reload", "/monitoring", "/monitoring/summary", "/gradio_api/monitoring",
                  "/gradio_api/process_recording", "/gradio_api/deep_link", "/gradio_api/vibe-code",
                  "/gradio_api/profiling/traces", "/gradio_api/proxy=http://example.com/x"):
        for method in ("GET", "POST"):
            response = httpx.request(method, server.url + route, timeout=REQUEST_TIMEOUT)
            assert response.status_code == 404, (method, route, response.status_code)
            assert response.headers["x-content-type-options"] == "nosniff"
    log = server.logs()
    assert log.count("refused GET /gradio_api/dev/reload") == 1  # one line per refused request
    assert "Monitoring URL" not in log


def test_a_refused_widget_value_is_one_log_line(server):
    """A value no widget offers (a model that is a server path) is refused with a message, and
    the log gets one line, no traceback."""
    config = httpx.get(server.url + "/config", timeout=10).json()
    dep = next(d for d in config["dependencies"] if d.get("api_name") == "apply_settings")
    before = len(server.logs())
    body = {"data": [None, "/etc/passwd", "face-prior", "model default", 0.2, 10, "short", 3, 0.6],
            "fn_index": dep["id"], "session_hash": uuid.uuid4().hex[:11], "event_data": None,
            "trigger_id": dep["targets"][0][0]}
    assert httpx.post(server.url + "/gradio_api/queue/join", json=body, timeout=REQUEST_TIMEOUT).status_code == 200
    with httpx.stream("GET", server.url + "/gradio_api/queue/data", params={"session_hash": body["session_hash"]},
                      timeout=REQUEST_TIMEOUT) as events:
        for line in events.iter_lines():
            if '"process_completed"' in line:
                break
    time.sleep(0.5)
    assert "Traceback" not in server.logs()[before:]


def _slow_archive(path: Path, images: int = 480) -> Path:
    """A zip of ``images`` labelled faces (256 px JPEGs, about 10 MB): an evaluation long enough that
    the client sees it running before it ends, even on a fast machine."""
    import io
    import zipfile

    from PIL import Image

    base = Image.open(ASTRONAUT).resize((256, 256))
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(images):
            buffer = io.BytesIO()
            base.rotate(i % 7 - 3).convert("RGB").save(buffer, "JPEG", quality=90)
            archive.writestr(f"happy/s{i}_{i}.jpg", buffer.getvalue())
    return path


def test_kill_during_an_evaluation_then_restart(server, uploads):
    """SIGKILL while an evaluation runs: the archive is read in memory, so nothing of it but Gradio's
    upload is ever on disk, and the restarted server removes that upload before it serves anyone."""
    from gradio_client import Client, handle_file
    from gradio_client.utils import Status

    archive = _slow_archive(uploads / "many.zip")
    work = server.app_dir / "work"
    api = Client(server.url, verbose=False, download_files=False)
    job = api.submit(handle_file(str(archive)), api_name="/evaluate")
    deadline = time.monotonic() + 120
    # Running: PROCESSING, then PROGRESS as its progress bar moves (a poll may miss the first).
    while job.status().code not in (Status.PROCESSING, Status.PROGRESS):
        assert time.monotonic() < deadline and not job.done(), f"the evaluation never ran: {job.exception()!r}"
        time.sleep(0.05)
    assert not work.exists() or not any(work.rglob("*")), sorted(map(str, work.rglob("*")))  # nothing unpacked
    server.proc.kill()
    server.proc.wait(timeout=30)
    assert any(server.gradio_dir.glob("*/many.zip"))  # left by the killed server
    server.restart()
    assert not any(server.gradio_dir.glob("*/many.zip"))
    _assert_astronaut_ok(Client(server.url, verbose=False, download_files=False))


LOAD_CLIENTS = 20
LOAD_SECONDS = 60.0
LOAD_WARMUP_SECONDS = 15.0


@pytest.mark.slow
def test_twenty_streams_for_a_minute(server, live, record_property):
    """20 webcam streams at once for 60 s on loopback: no failed frame, bounded latency, no leak."""
    frames = [data_url(_webcam_frame()), data_url(_webcam_frame(mirror=True)),
              data_url(_webcam_frame(face=False))]
    start = time.monotonic()
    deadline = start + LOAD_SECONDS
    rss: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample_rss() -> None:
        while not stop.is_set():
            rss.append((time.monotonic() - start, server.rss_bytes()))
            stop.wait(1.0)

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    try:
        with ThreadPoolExecutor(LOAD_CLIENTS) as pool:
            results = list(pool.map(lambda _: run_stream(server, live, frames, deadline=deadline), range(LOAD_CLIENTS)))
    finally:
        stop.set()
        sampler.join()
    latencies = np.array([t for r in results for t in r.latencies])
    errors = [e for r in results for e in r.errors]
    warm = [b for t, b in rss if t >= LOAD_WARMUP_SECONDS]
    growth = (warm[-1] - warm[0]) / warm[0] if len(warm) >= 2 else float("nan")
    report = {
        "clients": LOAD_CLIENTS, "seconds": round(time.monotonic() - start, 1), "frames": int(latencies.size),
        "frames_per_client_min": min(len(r.latencies) for r in results),
        "failed": len(errors), "latency_p50_ms": round(float(np.percentile(latencies, 50)) * 1000, 1),
        "latency_p95_ms": round(float(np.percentile(latencies, 95)) * 1000, 1),
        "rss_mb_after_warmup": round(warm[0] / 2**20, 1), "rss_mb_end": round(warm[-1] / 2**20, 1),
        "rss_growth": round(growth, 4),
    }
    for key, value in report.items():
        record_property(key, value)
    print("load test:", json.dumps(report))
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)  # outside the repository
    (ARTIFACTS_DIR / "load_test.json").write_text(json.dumps(report, indent=2) + "\n")
    assert not errors, errors[:5]
    assert report["frames_per_client_min"] >= 3, report  # every client was served (a starved one gets <= 1)
    assert growth < 0.10, report


# --------------------------------------------------------------------------- security defaults


def _listening_addresses(pid: int) -> list[str]:
    """``ip:port`` of every TCP socket process ``pid`` listens on."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                hex_ip, hex_port = cols[1].split(":")
                raw = bytes.fromhex(hex_ip)
                # /proc stores each 32-bit word in host (little-endian) order.
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                ip = socket.inet_ntop(socket.AF_INET if width == 8 else socket.AF_INET6, raw)
                found.append(f"{ip}:{int(hex_port, 16)}")
    return found


def test_listens_on_loopback_only_and_shares_nothing(server):
    addresses = _listening_addresses(server.proc.pid)
    assert addresses, "no listening socket found"
    assert all(a.startswith(("127.0.0.1:", "::1:")) for a in addresses), addresses
    logs = server.logs()
    assert "gradio.live" not in logs and "public URL" not in logs


@pytest.mark.parametrize("path", ["/etc/passwd", "{root}/app.py", "{root}/fer/app/uploads.py",
                                  "{root}/weights/mini_xception_fer2013.safetensors", "{root}/.git/config",
                                  "{gradio}/../stdout.log"])
def test_serves_no_files_beyond_its_cache(server, path):
    target = path.format(root=ROOT, gradio=server.gradio_dir)
    response = httpx.get(f"{server.url}/gradio_api/file={target}", timeout=REQUEST_TIMEOUT)
    assert response.status_code in (403, 404), (target, response.status_code)


# --------------------------------------------------------------------------- privacy (server stopped)


def test_no_outbound_network(server):
    assert not server.net_log.exists(), server.net_log.read_text()


def test_logs_hold_no_image_data(server):
    assert not image_data_in(server.logs())


def test_logs_hold_no_traceback(server):
    assert "Traceback (most recent call last)" not in server.logs()


def test_no_user_file_left_after_shutdown(server, client):
    """While the server runs, the only files of this module's requests are uploads in Gradio's
    folder (removed by its cache cleaning within minutes): no copy, no picture served, no download,
    no unpacked archive. Ctrl-C with a client still connected (an open browser tab) then empties
    Gradio's cache."""
    running = server.new_files()
    assert all(p.parent.parent == server.gradio_dir for p in running), sorted(map(str, running))
    server.stop()
    left = sorted(str(p.relative_to(server.base)) for p in server.new_files())
    assert not left, left
    assert not server.net_log.exists(), server.net_log.read_text()
    assert not image_data_in(server.logs())
