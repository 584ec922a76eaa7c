"""The app as a stranger on a public Space would try it: raw HTTP against a started ``python app.py``.

Each attack of issue 21 is a test: the queue is the only way in, ``file=`` serves nothing but
uploads and fetches nothing, request bodies and uploads are bounded, a webcam frame is bounded,
a session hash is no bearer token, a clip that decodes too much is refused at once, PostScript
never reaches an interpreter, and two apps never share a folder. After the attacks the server
still answers ``/predict`` and its log holds no traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .badinputs import net_audit_env
from .browser_helpers import AppServer, start_app_server, stop_app_server
from .conftest import ASTRONAUT, ROOT

httpx = pytest.importorskip("httpx")

TIMEOUT = 60
API = "gradio_api"
#: Sessions the server keeps state for here (the shipped 1,000 would take minutes to fill).
STATE_CAPACITY = 80


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    base = tmp_path_factory.mktemp("attacks")
    env, _ = net_audit_env(base / "audit", dict(os.environ))
    env["FER_PROC_AUDIT_LOG"] = str(base / "audit" / "processes.log")
    env["FER_STATE_SESSION_CAPACITY"] = str(STATE_CAPACITY)
    srv = start_app_server(base, env=env)
    yield srv
    stop_app_server(srv)


def _audit(server: AppServer, name: str) -> str:
    path = server.app_dir.parent / "audit" / name
    return path.read_text() if path.exists() else ""


def upload(server: AppServer, data: bytes, name: str, client: Any = httpx) -> dict[str, Any]:
    """Upload ``data`` as Gradio's widgets do; the file record naming it."""
    response = client.post(server.url + f"{API}/upload", files={"files": (name, data)}, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    (path,) = response.json()
    return {"path": path, "orig_name": name, "meta": {"_type": "gradio.FileData"}}


def call(server: AppServer, name: str, data: list[Any], client: Any = httpx) -> tuple[str, Any]:
    """Run the named endpoint through the queue (``/call/<name>``): ``(event, data)`` of its end."""
    response = client.post(server.url + f"{API}/call/{name}", json={"data": data}, timeout=TIMEOUT)
    assert response.status_code == 200, (name, response.status_code, response.text)
    event_id = response.json()["event_id"]
    event = ""
    with client.stream("GET", server.url + f"{API}/call/{name}/{event_id}", timeout=TIMEOUT) as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                return event, json.loads(line[5:])
    raise AssertionError(f"{name}: the stream ended without an answer")


def predict_ok(server: AppServer) -> None:
    event, (label, faces) = call(server, "predict", [upload(server, ASTRONAUT.read_bytes(), "astronaut.png")])
    assert event == "complete" and label["label"] == "happy", faces


def test_the_queue_is_the_only_way_in(server: AppServer) -> None:
    config = httpx.get(server.url + "config", timeout=TIMEOUT).json()
    record = upload(server, ASTRONAUT.read_bytes(), "astronaut.png")
    ui_names = [d["api_name"] for d in config["dependencies"]
                if d.get("api_name") and d["api_name"] not in ("predict", "analyse_video", "evaluate", "apply_settings")]
    assert "redo_image" in ui_names and len(ui_names) > 5
    for name in ("predict", "evaluate", "analyse_video", "apply_settings", *ui_names):
        for route in (f"{API}/run/{name}", f"{API}/api/{name}", f"run/{name}"):
            response = httpx.post(server.url + route, json={"data": [record]}, timeout=TIMEOUT)
            assert response.status_code == 404, (route, response.status_code)
    for name in ui_names:  # the page's own events: never callable by name
        for route in (f"{API}/call/{name}", f"{API}/call/v2/{name}"):
            assert httpx.post(server.url + route, json={"data": []}, timeout=TIMEOUT).status_code == 404, route
    # Not advertised either: the API page lists the endpoints and nothing of the page's own.
    info = httpx.get(server.url + f"{API}/info", params={"all_endpoints": "true"}, timeout=TIMEOUT).json()
    assert set(info["named_endpoints"]) == {"/predict", "/analyse_video", "/evaluate", "/apply_settings"}
    predict_ok(server)


def test_file_urls_serve_uploads_only_and_fetch_nothing(server: AppServer) -> None:
    record = upload(server, ASTRONAUT.read_bytes(), "astronaut.png")
    got = httpx.get(server.url + f"{API}/file={record['path']}", timeout=TIMEOUT)
    assert got.status_code == 200 and got.content == ASTRONAUT.read_bytes()
    uploads = str(server.gradio_dir)
    refused = ["http://example.com/x.png", "https://example.com/x.png", "http:/example.com/x.png",
               "//example.com/x.png", "file:///etc/passwd", "/etc/passwd", "/etc/no-such-file", "etc/passwd",
               f"{uploads}/../../../etc/passwd", f"{uploads}/%2e%2e/%2e%2e/etc/passwd", "%2Fetc%2Fpasswd",
               str(ROOT / "weights" / "mini_xception_fer2013.json"), uploads, f"{uploads}%00.png"]
    answers = set()
    for path in refused:
        for route in (f"{API}/file={path}", f"file={path}", f"{API}/file/{path}"):
            response = httpx.get(server.url + route, timeout=TIMEOUT)
            assert response.status_code == 404, (route, response.status_code)
            answers.add(response.content)
    assert answers == {b"Not Found"}  # one answer, whether the path exists or not
    # A file record naming a URL in an event's inputs: Gradio would download it before any
    # handler runs; it is refused first.
    for url in ("http://example.com/x.png", "https://example.com/x.png", "//example.com/x.png"):
        for meta in ({"_type": "gradio.FileData"}, None):
            response = httpx.post(server.url + f"{API}/call/predict", timeout=TIMEOUT,
                                  json={"data": [{"path": url, "orig_name": "x.png", "meta": meta}]})
            assert response.status_code == 404, (url, response.status_code)
    assert "example.com" not in _audit(server, "network.log")


def test_uploads_are_bounded_in_bytes_and_files(server: AppServer) -> None:
    before = {p for p in server.gradio_dir.rglob("*") if p.is_file()}
    rss = server.rss_bytes()
    part = os.urandom(1024)
    many = httpx.post(server.url + f"{API}/upload", files=[("files", (f"f{i}.bin", part)) for i in range(40)],
                      timeout=TIMEOUT)
    assert many.status_code == 413
    two = httpx.post(server.url + f"{API}/upload", files=[("files", ("a.bin", part)), ("files", ("b.bin", part))],
                     timeout=TIMEOUT)
    assert two.status_code == 413
    big = b"\0" * (30 << 20)
    assert httpx.post(server.url + f"{API}/upload", files={"files": ("big.png", big)},
                      timeout=TIMEOUT).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        boundary = b"--x1y2z3\r\n"
        yield boundary + b'Content-Disposition: form-data; name="files"; filename="c.png"\r\n\r\n'
        for _ in range(30):
            yield b"\0" * (1 << 20)

    chunked = httpx.post(server.url + f"{API}/upload", content=chunks(),
                         headers={"content-type": "multipart/form-data; boundary=x1y2z3"}, timeout=TIMEOUT)
    assert chunked.status_code == 413
    after = {p for p in server.gradio_dir.rglob("*") if p.is_file() and not p.name.startswith("tmp")}
    assert after <= before  # nothing kept (a torn upload's tmp* file is swept with the others)
    assert server.rss_bytes() - rss < 200 << 20
    predict_ok(server)


def test_request_bodies_and_webcam_frames_are_bounded(server: AppServer) -> None:
    config = httpx.get(server.url + "config", timeout=TIMEOUT).json()
    stream = next(d for d in config["dependencies"] if d.get("api_name") == "on_frame")
    huge = "data:image/png;base64," + "A" * (8 << 20)
    body = {"data": [huge, None, None, None, None], "fn_index": stream["id"], "session_hash": uuid.uuid4().hex[:11],
            "event_data": None, "trigger_id": stream["targets"][0][0]}
    response = httpx.post(server.url + f"{API}/queue/join", json=body, timeout=TIMEOUT)
    assert response.status_code == 413
    predict_ok(server)


def _join(server: AppServer, client: Any, dep: dict[str, Any], session: str, data: list[Any]) -> int:
    body = {"data": data, "fn_index": dep["id"], "session_hash": session, "event_data": None,
            "trigger_id": dep["targets"][0][0]}
    return client.post(server.url + f"{API}/queue/join", json=body, timeout=TIMEOUT).status_code


def test_a_session_hash_is_no_bearer_token(server: AppServer) -> None:
    """A session works only from the browser (cookie) that first used it: another client naming the
    same hash can neither read its results stream, nor run its events, nor close it."""
    config = httpx.get(server.url + "config", timeout=TIMEOUT).json()
    reset = next(d for d in config["dependencies"] if d.get("api_name") == "on_reset")
    session = uuid.uuid4().hex[:11]
    with httpx.Client() as visitor, httpx.Client() as stranger:
        assert "fer_browser" in visitor.get(server.url, timeout=TIMEOUT).cookies
        stranger.get(server.url, timeout=TIMEOUT)
        assert _join(server, visitor, reset, session, [None]) == 200
        with visitor.stream("GET", server.url + f"{API}/queue/data", params={"session_hash": session},
                            timeout=TIMEOUT) as events:
            assert events.status_code == 200
            assert any('"process_completed"' in line for line in events.iter_lines())
        for client in (stranger, httpx):  # another browser's cookie, or none
            assert _join(server, client, reset, session, [None]) == 404
            data = client.get(server.url + f"{API}/queue/data", params={"session_hash": session}, timeout=TIMEOUT)
            assert data.status_code == 404
            assert client.get(server.url + f"{API}/heartbeat/{session}", timeout=TIMEOUT).status_code == 404
        assert _join(server, visitor, reset, session, [None]) == 200  # the visitor goes on


def _listen(server: AppServer, client: Any, session: str) -> list[dict[str, Any]]:
    """The completed events of a session's results stream, until it closes."""
    done = []
    with client.stream("GET", server.url + f"{API}/queue/data", params={"session_hash": session},
                       timeout=TIMEOUT) as events:
        for line in events.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    done.append(message)
                if message.get("msg") == "close_stream":
                    break
    return done


def test_many_sessions_of_no_browser_do_not_push_a_visitor_out(server: AppServer) -> None:
    """More one-off sessions than Gradio keeps state for (an API client's calls, each its own
    session) go first when the store is full: the visitor's settings stay."""
    from concurrent.futures import ThreadPoolExecutor

    config = httpx.get(server.url + "config", timeout=TIMEOUT).json()
    deps = {d.get("api_name"): d for d in config["dependencies"]}
    session = uuid.uuid4().hex[:11]
    with httpx.Client() as visitor:
        visitor.get(server.url, timeout=TIMEOUT)
        settings = ["mini_xception_fer2013", "spectral-residual", "model default", 0.2, 5, "short", 3, 0.5]
        assert _join(server, visitor, deps["apply_settings"], session, [None, *settings]) == 200
        assert _listen(server, visitor, session)[0]["success"]

        def anonymous(i: int) -> int:
            while True:  # the queue refuses when full: try again, as a flood would
                code = _join(server, httpx, deps["on_reset"], f"flood{i:06d}", [None])
                if code != 503:
                    return code

        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(anonymous, range(2 * STATE_CAPACITY)))
        assert set(codes) == {200}
        record = upload(server, ASTRONAUT.read_bytes(), "astronaut.png", visitor)
        assert _join(server, visitor, deps["predict"], session, [record, None]) == 200
        (answer,) = _listen(server, visitor, session)
        assert answer["output"]["data"][1]["saliency"] == "spectral-residual", answer


def test_a_clip_that_decodes_too_much_is_refused_at_once(server: AppServer, tmp_path: Path) -> None:
    """130 frames of 7680×4320 at 1000 frames/s (13 MB; 4.3 billion pixels to decode) are refused on
    their header, and the next call is answered as usual (how long it takes: benchmarks/attacks.py)."""
    one, clip = tmp_path / "one.mp4", tmp_path / "bomb.mp4"
    make = ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "color=c=gray:size=7680x4320:rate=1000",
            "-frames:v", "1", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(one)]
    subprocess.run(make, check=True, timeout=120)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-stream_loop", "129", "-i", str(one), "-c", "copy",
                    str(clip)], check=True, timeout=120)
    record = upload(server, clip.read_bytes(), "holiday.mp4")
    event, (status, *_rest) = call(server, "analyse_video", [record, "5"])
    assert event == "complete" and status.startswith("⚠️ holiday.mp4: too much to decode"), status
    predict_ok(server)


def test_a_damaged_clip_is_one_line_and_no_decoder_noise(server: AppServer, tmp_path: Path) -> None:
    """A clip cut in the middle: one message, and none of FFmpeg's own lines in the server's log."""
    clip = tmp_path / "clip.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x480:rate=25",
                    "-t", "4", "-c:v", "libx264", "-preset", "ultrafast", "-movflags", "faststart", str(clip)],
                   check=True, timeout=120)
    start = server.log_size()
    record = upload(server, clip.read_bytes()[: clip.stat().st_size // 2], "cut.mp4")
    event, (status, *_rest) = call(server, "analyse_video", [record, "5"])
    assert event == "complete" and status.removeprefix("⚠️ ").startswith("cut.mp4: "), status
    log = server.log(start)
    assert "@ 0x" not in log and "error while decoding" not in log and "moov atom" not in log, log[-2000:]


def test_postscript_never_reaches_ghostscript(server: AppServer) -> None:
    eps = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"
           b"newpath 0 0 moveto 10 10 lineto stroke\nshowpage\n%%EOF\n")
    event, (_label, faces) = call(server, "predict", [upload(server, eps, "holiday.jpg")])
    assert event == "complete" and faces["message"].startswith("holiday.jpg: unsupported image format"), faces
    assert "gs" not in _audit(server, "processes.log")


def test_two_apps_never_share_a_folder(server: AppServer) -> None:
    """A second app given the running one's folder stops at once with one line; it deletes nothing."""
    before = sorted(p for p in server.app_dir.rglob("*") if p.is_file())
    env = {**os.environ, "FER_APP_DIR": str(server.app_dir), "GRADIO_SERVER_PORT": "9",
           "PYTHONPATH": str(ROOT)}
    second = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert second.returncode == 1, second.stderr
    assert second.stderr.strip().splitlines()[-1] == (
        f"error: FER_APP_DIR={server.app_dir} is in use by another running app (pid {server.process.pid}); "
        "give each app its own folder")
    assert sorted(p for p in server.app_dir.rglob("*") if p.is_file()) == before
    predict_ok(server)


def test_no_traceback_after_the_attacks_nor_at_sigterm(server: AppServer) -> None:
    """A record naming the upload folder itself (Gradio would keep the folder in its cache set and
    fail deleting it at shutdown) is refused; then SIGTERM stops the server cleanly."""
    for path in (str(server.gradio_dir), str(server.gradio_dir) + "/", str(server.gradio_dir / ("ab" * 32))):
        record = {"path": path, "orig_name": "x.png", "meta": {"_type": "gradio.FileData"}}
        response = httpx.post(server.url + f"{API}/call/predict", json={"data": [record]}, timeout=TIMEOUT)
        assert response.status_code == 404, path
    predict_ok(server)
    stop_app_server(server)  # SIGTERM
    assert server.process.returncode is not None
    log = server.log()
    assert "Traceback" not in log, log[-3000:]
    assert "Exception in ASGI application" not in log and "shutdown failed" not in log
