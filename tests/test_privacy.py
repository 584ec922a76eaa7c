"""Privacy (issue 9, item 5): once a request has been answered, nothing of the user's picture, clip
or archive is left on the server's disk, and the logs hold no image data.

Every request type runs through the real app (``python app.py``: the server shared with the API and
browser tests, with its own GRADIO_TEMP_DIR and TMPDIR) as a program sends it: `gradio_client` for
``/predict``, ``/redo_image``, ``/show_redone_image``, ``/analyse_video`` and ``/evaluate``, Gradio's
streaming protocol for the webcam. Everything under the server's Gradio cache and temporary folder
is listed before and after: nothing may appear (no upload, no copy, no picture served, no CSV, no
unpacked archive, not even an empty file or folder). The same is checked for a browser's uploads in
`tests/test_browser.py`.
"""

from __future__ import annotations

import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file

from fer import demo
from fer.io import read_image

from .browser_helpers import ASTRONAUT, NO_FACE, ROOT, AppServer, free_port, image_data_in, own_picture
from .test_api import LiveStream, inline_picture, settings_values

# The shared app server fixture.
pytest_plugins = ["tests.browser_helpers"]


def entries(server: AppServer) -> set[Path]:
    """Every file and folder now under the server's Gradio cache and temporary folder."""
    return {p for folder in (server.gradio_dir, server.tmp_dir) for p in folder.rglob("*")}


class Watch:
    """What a server held on disk, and where its log stood, before some requests."""

    def __init__(self, server: AppServer) -> None:
        self.server = server
        self.before = entries(server)
        self.log_start = server.log_size()

    def assert_nothing_left(self) -> None:
        """No file or folder appeared on the server's disk, and its log holds no image data."""
        left = sorted(str(p.relative_to(self.server.gradio_dir.parent)) for p in entries(self.server) - self.before)
        assert not left, f"left on the server's disk: {left}"
        assert not image_data_in(self.server.log(self.log_start))


# --------------------------------------------------------------------------- what may be deleted


def test_only_gradio_uploads_are_deleted(tmp_path: Path) -> None:
    cache = tmp_path / "gradio"
    folder = cache / ("0123abcd" * 8)  # Gradio's layout: <cache>/<SHA-256 hex>/<name>
    folder.mkdir(parents=True)
    upload = folder / "me.png"
    upload.write_bytes(b"picture")
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"the user's own file")
    other = cache / "not-a-hash"
    other.mkdir()
    (other / "x.png").write_bytes(b"x")
    (cache / "loose.png").write_bytes(b"x")
    link_folder = cache / ("f" * 64)
    link_folder.mkdir()
    (link_folder / "link.png").symlink_to(mine)
    (link_folder / "folder.png").mkdir()
    example = cache / ("e" * 64) / "astronaut.png"
    example.parent.mkdir()
    example.write_bytes(b"shared example copy")

    refused = [None, "", mine, ASTRONAUT, other / "x.png", cache / "loose.png", link_folder / "link.png",
               link_folder / "folder.png", folder / ".." / ".." / "mine.png", example]
    for path in refused:
        assert not demo.discard_upload(path, cache, keep={str(example)}), path
    for path in (mine, ASTRONAUT, other / "x.png", cache / "loose.png", link_folder / "link.png", example):
        assert path.exists(), f"{path} was deleted"

    sibling = folder / "me-too.png"
    sibling.write_bytes(b"picture")
    assert demo.discard_upload(str(upload), cache) and not upload.exists() and folder.is_dir()
    assert not demo.discard_upload(str(upload), cache)  # gone already: nothing to do
    assert demo.discard_upload(sibling, str(cache)) and not folder.exists()


# --------------------------------------------------------------------------- each request type


def test_image_upload_leaves_nothing(client: Client, app_server: AppServer, tmp_path: Path) -> None:
    picture = own_picture(tmp_path / "me.png")
    watch = Watch(app_server)
    label, data = client.predict(handle_file(str(picture)), api_name="/predict")
    assert label["label"] == "happy" and len(data["faces"]) == 1
    watch.assert_nothing_left()

    # A settings change redoes the picture from the bytes the session kept; the pictures shown come
    # back inline and are never files.
    client.predict(*settings_values("spectral-residual"), api_name="/apply_settings")
    label, data = client.predict(api_name="/redo_image")
    assert label["label"] == "happy" and data["saliency"] == "spectral-residual"
    annotated, gallery, _choice, _status, saliency, cnn_input, gradcam, *_ = client.predict(
        api_name="/show_redone_image")
    assert inline_picture(annotated).shape == (512, 512, 3)
    assert [inline_picture(face["image"]).shape for face in gallery] == [(224, 224, 3)]
    for record in (saliency, cnn_input, gradcam):
        assert inline_picture(record).shape == (224, 224, 3)
    watch.assert_nothing_left()


def test_refused_image_upload_leaves_nothing(client: Client, app_server: AppServer, tmp_path: Path) -> None:
    fake = tmp_path / "holiday.png"
    fake.write_text("not a picture at all")
    watch = Watch(app_server)
    label, data = client.predict(handle_file(str(fake)), api_name="/predict")
    assert label == {} and data["message"].startswith("holiday.png: not an image format")
    label, data = client.predict(handle_file(str(NO_FACE)), api_name="/predict")
    assert data["message"] == demo.NO_FACE_MESSAGE
    watch.assert_nothing_left()


def test_video_upload_leaves_nothing(client: Client, app_server: AppServer, tmp_path: Path) -> None:
    frame = cv2.cvtColor(read_image(own_picture(tmp_path / "me.png")), cv2.COLOR_RGB2BGR)
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"mp4v"), 10, frame.shape[1::-1])
    for i in range(10):
        writer.write(np.roll(frame, 2 * i, axis=1))
    writer.release()
    watch = Watch(app_server)
    status, _plot, _table, csv = client.predict(handle_file(str(clip)), "5", api_name="/analyse_video")
    assert status.startswith("5 frames sampled, 5 with a face, 1 face track"), status
    assert csv["path"] is None and len(demo.data_url_bytes(csv["url"]).decode().splitlines()) == 1 + 5
    status, *_ = client.predict(handle_file(str(tmp_path / "me.png")), "5", api_name="/analyse_video")
    assert status.startswith("me.png:") and "not a video" in status
    watch.assert_nothing_left()


def test_evaluate_upload_leaves_nothing(client: Client, app_server: AppServer, tmp_path: Path) -> None:
    archive = tmp_path / "faces.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(own_picture(tmp_path / "me.png"), "happy/me.png")
        zipped.write(NO_FACE, "sad/coffee.png")
    notes = tmp_path / "notes.txt"
    notes.write_text("not an archive")
    watch = Watch(app_server)
    message, headline, _table, confusion, result = client.predict(handle_file(str(archive)), api_name="/evaluate")
    assert message == "Scored 1 face of 2 labelled images. 1 skipped (no face or unreadable)."
    assert result["n"] == 1 and inline_picture(confusion).std() > 20
    message, *_ = client.predict(handle_file(str(notes)), api_name="/evaluate")
    assert message == "notes.txt: wrong file type; upload a .zip of labelled face images."
    watch.assert_nothing_left()  # no upload, no unpacked copy, no empty file from Gradio's gr.File


def test_webcam_stream_leaves_nothing(app_server: AppServer) -> None:
    frame = {"url": demo.data_url(read_image(ASTRONAUT))}
    watch = Watch(app_server)
    stream = LiveStream(app_server.url)
    for _ in range(3):
        assert stream.send(frame, "happy")[5] == "1 face; following #1; counting: posing happy"
    stream.close()
    watch.assert_nothing_left()


def test_shared_example_copies_are_kept(client: Client, app_server: AppServer) -> None:
    """The example pictures Gradio copied into its cache serve every session: an upload with the
    same bytes and name is that very file, and is not deleted."""
    examples = {p for p in app_server.files() if p.name in (ASTRONAUT.name, NO_FACE.name)}
    assert len(examples) == 2, examples
    watch = Watch(app_server)
    for _ in range(2):
        label, _ = client.predict(handle_file(str(ASTRONAUT)), api_name="/predict")
        assert label["label"] == "happy"
    assert all(p.is_file() for p in examples)
    watch.assert_nothing_left()


# --------------------------------------------------------------------------- what Gradio itself keeps


def test_deep_links_are_refused(client: Client, app_server: AppServer, tmp_path: Path) -> None:
    """Gradio's deep-link route would write the session's widget values, pictures included, into
    its cache for anyone naming the session; the app refuses it."""
    client.predict(handle_file(str(own_picture(tmp_path / "me.png"))), api_name="/predict")
    client.predict(api_name="/show_redone_image")
    watch = Watch(app_server)
    response = httpx.get(app_server.url + "gradio_api/deep_link", params={"session_hash": client.session_hash},
                         timeout=30)
    assert response.status_code == 404
    watch.assert_nothing_left()


def test_no_run_history(app_server: AppServer) -> None:
    """Gradio's run history would keep every run's inputs and outputs, pictures included, in the
    browser, and lets a visitor have the server copy them to a Hugging Face bucket: it is off."""
    config = httpx.get(app_server.url + "config", timeout=30).json()
    assert config["run_history"] is False and "runs" not in config["footer_links"]
    assert httpx.get(app_server.url + "gradio_api/runs", timeout=30).status_code == 404
    connect = httpx.post(app_server.url + "gradio_api/run-history/connect", json={}, timeout=30)
    assert connect.status_code in (404, 405), connect.status_code


@pytest.fixture(scope="module")
def app_module() -> Any:
    """``app.py`` imported."""
    sys.path.insert(0, str(ROOT))
    try:
        import app
    finally:
        sys.path.remove(str(ROOT))
    return app


def test_gradio_keeps_no_copy_of_shown_pictures(app_module: Any, monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    """Gradio keeps each session's last value of every widget (for deep links); the app drops those
    that carry pictures within `fer.demo.FORGET_SHOWN_EVERY_S` seconds. The app is launched in this
    process, as `app.main` launches it, to look into Gradio's session memory."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    monkeypatch.setattr(demo, "FORGET_SHOWN_EVERY_S", 0.2)
    blocks = app_module.build_app()
    blocks.queue()
    blocks.launch(**{**app_module.launch_options(), "server_port": free_port(), "prevent_thread_lock": True,
                     "quiet": True})
    try:
        api = Client(blocks.local_url, verbose=False)
        api.predict(handle_file(str(own_picture(tmp_path / "me.png"))), api_name="/predict")
        api.predict(api_name="/show_redone_image")
        api.close()
        session = blocks.server_app.state_holder.session_data[api.session_hash]

        def kept() -> dict[str, Any]:
            return {config["props"].get("elem_id"): config["props"].get("value")
                    for config in session.config_values.values() if isinstance(config, dict) and "props" in config}

        deadline = time.monotonic() + 10
        while any(app_module._carries_inline(value) for value in kept().values()):
            assert time.monotonic() < deadline, "copies of the pictures shown are still kept"
            time.sleep(0.2)
        assert kept()["image-status"].startswith("1 face found")  # only the pictures were dropped
    finally:
        blocks.close()


def test_forget_shown_drops_only_inline_values(app_module: Any) -> None:
    from gradio.state_holder import StateHolder

    blocks = app_module.build_app()
    holder = StateHolder()
    holder.set_blocks(blocks)
    session = holder["a-session"]
    ids = {block.elem_id: key for key, block in blocks.blocks.items() if getattr(block, "elem_id", None)}
    picture = demo.inline_image(np.zeros((8, 8, 3), np.uint8), "x.jpg")
    shown = {"image-annotated": picture, "face-gallery": [{"image": picture, "caption": "#1"}],
             "live-annotated": demo.image_html(np.zeros((8, 8, 3), np.uint8), "frame"),
             "live-webcam": {"url": picture["url"], "meta": {"_type": "gradio.FileData"}},
             "image-status": "1 face found.", "faces-json": {"faces": []}}
    for elem_id, value in shown.items():
        session._update_value_in_config(ids[elem_id], value)
    assert app_module._forget_shown(holder) == 4
    kept = {elem_id: session.config_values[ids[elem_id]]["props"]["value"] for elem_id in shown}
    assert kept == {**dict.fromkeys(["image-annotated", "face-gallery", "live-annotated", "live-webcam"]),
                    "image-status": "1 face found.", "faces-json": {"faces": []}}
    assert app_module._forget_shown(holder) == 0
