"""Privacy, as the README's "Limits and privacy" states it: nothing of a request stays on the
server's disk once it is answered, except the upload itself in Gradio's upload folder, which is
gone within `fer.limits.UPLOAD_MAX_AGE_S` + `UPLOAD_SWEEP_EVERY_S` seconds; no upload is ever
deleted while a request may read it; webcam frames never touch the disk; the logs hold no image data.

The shared server runs with short upload ages (`tests/browser_helpers.TEST_UPLOAD_MAX_AGE_S`), so
the tests watch the cleaning happen. Requests go through the real app as programs send them.
"""

from __future__ import annotations

import socket
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file

from fer.app.media import data_url, inline_image
from fer.io import read_image

from .browser_helpers import (
    ASTRONAUT,
    TEST_UPLOAD_MAX_AGE_S,
    TEST_UPLOAD_SWEEP_EVERY_S,
    AppServer,
    free_port,
    image_data_in,
    own_picture,
)
from .test_api import LiveStream, clip_with_a_face_then_none

# The shared app server fixture.
pytest_plugins = ["tests.browser_helpers"]

#: Longest an upload may stay: Gradio deletes files older than the age at each sweep.
GONE_WITHIN_S = TEST_UPLOAD_MAX_AGE_S + TEST_UPLOAD_SWEEP_EVERY_S + 3


def entries(server: AppServer) -> set[Path]:
    """Every file and folder now under the server's app folder and temporary folder."""
    return {p for folder in (server.app_dir, server.tmp_dir) for p in folder.rglob("*")}


def new_files(server: AppServer, before: set[Path]) -> set[Path]:
    return {p for p in entries(server) - before if p.is_file()}


def wait_gone(server: AppServer, before: set[Path], seconds: float = GONE_WITHIN_S) -> None:
    """Every file that appeared since ``before`` is removed within ``seconds``."""
    deadline = time.monotonic() + seconds
    while (left := new_files(server, before)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, f"still on the server's disk after {seconds} s: {sorted(map(str, left))}"


def only_uploads(server: AppServer, files: set[Path], names: set[str]) -> None:
    """``files`` are uploads in Gradio's folder with the given names, nothing else (no copy, no
    picture served, no CSV, no unpacked archive)."""
    assert all(p.parent.parent == server.gradio_dir for p in files), sorted(map(str, files))
    assert {p.name for p in files} <= names, sorted(map(str, files))


def test_an_image_upload_stays_only_in_gradios_folder_and_only_for_minutes(
        client: Client, app_server: AppServer, tmp_path: Path) -> None:
    before = entries(app_server)
    log_start = app_server.log_size()
    picture = own_picture(tmp_path / "me.png")
    label, data = client.predict(handle_file(str(picture)), api_name="/predict")
    assert label["label"] == "happy"
    only_uploads(app_server, new_files(app_server, before), {"me.png"})
    # Answered again at once: never deleted while a request may read it.
    label, _ = client.predict(handle_file(str(picture)), api_name="/predict")
    assert label["label"] == "happy"
    wait_gone(app_server, before)
    assert not image_data_in(app_server.log(log_start))


def test_video_and_evaluate_leave_only_their_uploads(client: Client, app_server: AppServer, tmp_path: Path) -> None:
    before = entries(app_server)
    clip = clip_with_a_face_then_none(tmp_path / "clip.mp4")
    status, *_ = client.predict(handle_file(str(clip)), "5", api_name="/analyse_video")
    assert "1 face track" in status
    archive = tmp_path / "faces.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(ASTRONAUT, "happy/astronaut.png")
    message, *_ = client.predict(handle_file(str(archive)), api_name="/evaluate")
    assert message.startswith("Scored 1 face")
    only_uploads(app_server, new_files(app_server, before), {"clip.mp4", "faces.zip"})
    assert not any((app_server.app_dir / "work").iterdir())  # the unpacked zip and the clip's copy are gone
    wait_gone(app_server, before)


def test_refused_uploads_and_webcam_frames_leave_nothing_but_the_upload(client: Client, app_server: AppServer,
                                                                         tmp_path: Path) -> None:
    before = entries(app_server)
    fake = tmp_path / "holiday.png"
    fake.write_text("not a picture at all")
    _, data = client.predict(handle_file(str(fake)), api_name="/predict")
    assert data["message"].startswith("holiday.png: unsupported image format")
    stream = LiveStream(app_server.url)
    frame = {"url": data_url(read_image(ASTRONAUT)), "path": None}
    for _ in range(3):
        assert "following #1" in stream.send(frame)[6]
    stream.close()
    only_uploads(app_server, new_files(app_server, before), {"holiday.png"})
    wait_gone(app_server, before)


def torn_upload(server: AppServer, field: str = "files", complete: bool = False) -> None:
    """POST a multipart upload whose body stops half way (the client goes away), or, with
    ``complete``, a whole one under form field ``field``."""
    boundary = "fer-test-boundary"
    picture = ASTRONAUT.read_bytes()
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"torn.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    body = head + picture + tail
    port = int(server.url.rstrip("/").rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall((f"POST /gradio_api/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
                      f"Content-Type: multipart/form-data; boundary={boundary}\r\nConnection: close\r\n\r\n").encode())
        sock.sendall(body if complete else body[: len(head) + len(picture) // 2])
        if complete:
            sock.recv(65536)
        else:
            time.sleep(0.5)  # the server has read part of the file; then the client is gone


def test_torn_and_misnamed_uploads_are_removed(app_server: AppServer) -> None:
    before = entries(app_server)
    log_start = app_server.log_size()
    torn_upload(app_server)
    torn_upload(app_server, field="not-files", complete=True)
    # The half-received bytes land in the upload folder (Gradio writes them as it reads, and never
    # tracks them); the app's sweep removes them like an upload.
    deadline = time.monotonic() + 30
    while not (left := new_files(app_server, before)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left and all(p.parent == app_server.gradio_dir and p.name.startswith("tmp") for p in left), left
    wait_gone(app_server, before, GONE_WITHIN_S + TEST_UPLOAD_SWEEP_EVERY_S)
    log = app_server.log(log_start)
    assert "Traceback" not in log and "client went away during POST /gradio_api/upload" in log


def test_routes_that_would_keep_pictures_are_refused(client: Client, app_server: AppServer, tmp_path: Path) -> None:
    client.predict(handle_file(str(own_picture(tmp_path / "me.png"))), api_name="/predict")
    for method, route in [("GET", "gradio_api/deep_link"), ("POST", "gradio_api/process_recording"),
                          ("GET", "gradio_api/runs"), ("POST", "gradio_api/run-history/connect")]:
        response = httpx.request(method, app_server.url + route, params={"session_hash": client.session_hash},
                                 timeout=30)
        assert response.status_code == 404, (route, response.status_code)
    config = httpx.get(app_server.url + "config", timeout=30).json()
    assert config["run_history"] is False and "runs" not in config["footer_links"]
    assert str(app_server.app_dir) not in str(config) and "/tmp" not in str(config)  # no server paths either


def test_gradio_keeps_no_copy_of_shown_pictures(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Gradio keeps each session's last value of every widget (for deep links); the app drops those
    that carry pictures every `fer.app.about.FORGET_SHOWN_EVERY_S` seconds. The app is launched in
    this process, as `fer.app.server.run` launches it, to look into Gradio's session memory."""
    from fer.app import about, folders, server

    monkeypatch.setenv("FER_APP_DIR", str(tmp_path / "app"))
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    folders.prepare()
    monkeypatch.setattr(server, "FORGET_SHOWN_EVERY_S", 1)
    monkeypatch.setattr(about, "FORGET_SHOWN_EVERY_S", 1)
    blocks = server.build_app()
    blocks.queue()
    blocks.launch(**{**server.launch_options(), "server_port": free_port(), "prevent_thread_lock": True, "quiet": True})
    try:
        api = Client(blocks.local_url, verbose=False)
        api.predict(handle_file(str(ASTRONAUT)), api_name="/evaluate")  # a refused archive: a message, no picture
        stream = LiveStream(blocks.local_url)
        stream.send({"url": inline_image(np.full((64, 64, 3), 90, np.uint8), "x.jpg")["url"], "path": None})
        stream.close()
        session = blocks.server_app.state_holder.session_data[stream.session_hash]

        def kept() -> dict[str, Any]:
            return {config["props"].get("elem_id"): config["props"].get("value")
                    for config in session.config_values.values() if isinstance(config, dict) and "props" in config}

        from fer.app.internals import carries_inline

        assert any(carries_inline(v) for v in kept().values())  # the frame and the panels, until the next sweep
        deadline = time.monotonic() + 10
        while any(carries_inline(value) for value in kept().values()):
            assert time.monotonic() < deadline, "copies of the pictures shown are still kept"
            time.sleep(0.2)
        assert kept()["live-status"].startswith("No face in view")  # only the pictures were dropped
        api.close()
    finally:
        blocks.close()
