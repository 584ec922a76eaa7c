"""Reliability, security and privacy of the Gradio app, through its HTTP API on 127.0.0.1.

One server (``python app.py``, as a user starts it) serves the whole module, with its own
GRADIO_TEMP_DIR and TMPDIR, outbound network attempts recorded by an audit hook, HF_HUB_OFFLINE=1 and
GRADIO_ANALYTICS_ENABLED unset. The tests send it the bad-input corpus (tests/badinputs.py), broken
webcam frames, a flood of requests and 20 concurrent webcam streams, then stop it and check that no
user picture is left on disk, nothing went out and the logs hold no image data.

Tests run in file order: the last ones stop the server.
"""

from __future__ import annotations

import base64
import json
import os
import re
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

from fer.demo import data_url
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
from .conftest import ASTRONAUT, ROOT

httpx = pytest.importorskip("httpx")
gradio_client = pytest.importorskip("gradio_client")

CASES: dict[str, BadInput] = {c.name: c for c in image_cases()}
ZIPS: dict[str, BadInput] = {c.name: c for c in zip_cases()}
VIDEO_NAMES = ["video-empty", "video-text", "video-png-renamed", "video-truncated", "video-too-long", "video-good"]

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
    gradio_dir: Path
    tmp_dir: Path
    stdout: Path
    stderr: Path
    net_log: Path
    baseline: set[Path] = field(default_factory=set)

    def files(self) -> set[Path]:
        """Every file now under the server's GRADIO_TEMP_DIR and TMPDIR."""
        return {p for d in (self.gradio_dir, self.tmp_dir) for p in d.rglob("*") if p.is_file()}

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Server:
    base = tmp_path_factory.mktemp("app")
    gradio_dir, tmp_dir = base / "gradio", base / "tmp"
    gradio_dir.mkdir()
    tmp_dir.mkdir()
    env, net_log = net_audit_env(base / "audit", dict(os.environ))
    env.pop("GRADIO_SERVER_NAME", None)  # the app's own default must be loopback
    port = _free_port()
    env.update(GRADIO_TEMP_DIR=str(gradio_dir), TMPDIR=str(tmp_dir), GRADIO_SERVER_PORT=str(port),
               PYTHONUNBUFFERED="1")
    stdout, stderr = base / "stdout.log", base / "stderr.log"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        # SIGINT at its default: a shell running us in the background may have set it to "ignore",
        # and then Ctrl-C (what `stop` sends) would not reach the app.
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    srv = Server(f"http://127.0.0.1:{port}", proc, base, gradio_dir, tmp_dir, stdout, stderr, net_log)
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
        message, _figure, rows, _csv = outputs
        assert "1 face track" in message, message
        assert rows["data"][0][4] == "happy", rows
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
        assert result["n"] >= 3 and "Accuracy" in headline, (message, headline)
        assert result["confusion"], result
    else:
        message = error if outputs is None else outputs[0]
        assert _clear(message, case.reason), message
        assert str(server.base) not in message, "the message shows the server's own paths"
    # Nothing escaped the archive, and the unpacked copy is gone already.
    escaped = [p for p in (server.base.parent / "evil.png", Path("/tmp/fer-evil-absolute.png")) if p.exists()]
    escaped += [p for p in server.base.rglob("evil*.png")]
    assert not escaped, escaped
    leftovers = [p for p in server.files() - before if "fer-eval-" in str(p)]
    assert not leftovers, leftovers


def test_wrong_file_type_refused(server, client, uploads):
    from gradio_client import handle_file

    notes = uploads / "notes.txt"
    notes.write_text("not an archive")
    before = server.files()
    outputs, error = _call(client, "/evaluate", handle_file(str(notes)))
    assert error is None and outputs[0].startswith("notes.txt:") and _clear(outputs[0], "file type"), outputs
    assert server.files() - before == set(), "the refused upload was kept"


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
        frame = {"url": frame_url, "meta": {"_type": "gradio.FileData"}}
        return {"data": [frame, "(not posing)", None, None], "fn_index": self.fn_index,
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
    """``(fn_index, trigger_id, index of the status output)`` of the live stream event."""
    config = httpx.get(server.url + "/config", timeout=10).json()
    for dep in config["dependencies"]:
        if dep.get("api_name") == "live_frame":
            components = {c["id"]: c for c in config["components"]}
            status = next(i for i, cid in enumerate(dep["outputs"])
                          if components[cid]["props"].get("elem_id") == "live-status")
            return dep["id"], dep["targets"][0][0], status
    raise AssertionError("no live_frame endpoint")


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
            label = data[4]
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
        self.margin, self.max_faces = detector.margin, detector.max_faces

    def __call__(self, image):
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("detector failed on this frame")
        return self.detector(image)

    def close(self) -> None:
        self.detector.close()


class _OnePipeline:
    """Stands in for `fer.demo.PIPELINES`: every setting gets the pipeline given."""

    def __init__(self, pipe) -> None:
        self.pipe = pipe

    def get(self, settings):
        return self.pipe


def _live_twice(monkeypatch, pipe):
    from fer import demo

    monkeypatch.setattr(demo, "PIPELINES", _OnePipeline(pipe))
    settings = demo.default_settings()
    frame = _webcam_frame()
    session, first = demo.live_step(frame, settings, demo.NOT_POSING, None, now=0.0)
    session, second = demo.live_step(frame, settings, demo.NOT_POSING, session, now=0.1)
    return first, second


@pytest.mark.parametrize("fault", ["detector", "model"])
def test_one_failing_frame_does_not_end_the_stream(monkeypatch, fault):
    """The handler answers the failing frame with a one-line status and the next frame normally."""
    from fer.face import FaceDetector
    from fer.models import LoadedModel, load_model
    from fer.pipeline import Pipeline

    model = load_model("default")
    detector = FaceDetector()
    if fault == "detector":
        detector = _RaisesOnce(detector)
    else:
        calls = []
        real_run = LoadedModel.run

        def fail_once(self, x, features=False):  # the network's forward pass, whichever engine runs it
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("CNN failed on this frame")
            return real_run(self, x, features)

        monkeypatch.setattr(LoadedModel, "run", fail_once)
    pipe = Pipeline(model, detector, saliency="face-prior")
    try:
        first, second = _live_twice(monkeypatch, pipe)
    finally:
        pipe.close()
    assert first.status and "\n" not in first.status
    assert second.view.top_k and max(second.view.top_k, key=second.view.top_k.get) == "happy"


# --------------------------------------------------------------------------- load


def test_queue_full_is_told_and_server_keeps_serving(server, client):
    """More requests than the queue holds: the extra ones are told at once (HTTP 503, which the
    browser shows as "This application is currently busy. Please try again."); every accepted one
    is answered; the next request works."""
    flood = QUEUE_MAX_SIZE * 2
    # One upload per request, as browsers send them: the app deletes each once it has read it.
    picture = ASTRONAUT.read_bytes()
    uploaded = httpx.post(server.url + "/gradio_api/upload", timeout=REQUEST_TIMEOUT,
                          files=[("files", (f"face-{i}.png", picture, "image/png")) for i in range(flood)]).json()
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
    out = ROOT / "test-artifacts"
    out.mkdir(exist_ok=True)
    (out / "load_test.json").write_text(json.dumps(report, indent=2) + "\n")
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


@pytest.mark.parametrize("path", ["/etc/passwd", "{root}/app.py", "{root}/fer/demo.py",
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


def test_no_user_file_left_after_shutdown(server, client):
    """While the server runs, the only files left of this module's requests are the uploads of the
    requests the full queue refused (they never ran; Gradio's sweep or the shutdown deletes them):
    every upload that was analysed is gone, and no picture, download or unpacked archive was
    written. Ctrl-C with a client still connected (an open browser tab) then empties Gradio's cache."""
    running = server.new_files()
    never_ran = {p for p in running if re.fullmatch(r"face-\d+\.png", p.name)}
    assert not running - never_ran, sorted(map(str, running - never_ran))
    server.stop()
    left = sorted(str(p.relative_to(server.base)) for p in server.new_files())
    assert not left, left
    assert not server.net_log.exists(), server.net_log.read_text()
    assert not image_data_in(server.logs())
