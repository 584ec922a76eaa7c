"""`fer.app.uploads`: the one place a client-named file is opened. Only uploads in Gradio's layout
inside this server's upload folder are read; every other path, existing or not, gets the same
refusal, which never repeats it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fer.app import uploads
from fer.errors import InputError

from .conftest import ASTRONAUT, ROOT


@pytest.fixture
def upload_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "uploads"
    folder.mkdir()
    monkeypatch.setenv("FER_APP_DIR", str(tmp_path))
    return folder


def received(folder: Path, name: str = "me.png", data: bytes | None = None) -> Path:
    """A file laid out as Gradio stores an upload: ``<folder>/<64 hex>/<name>``."""
    path = folder / ("ab" * 32) / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(ASTRONAUT.read_bytes() if data is None else data)
    return path


def test_an_upload_is_read_once_into_memory(upload_folder: Path) -> None:
    path = received(upload_folder)
    got = uploads.read_upload({"path": str(path), "orig_name": "holiday/me.png"}, 10**8)
    assert got == uploads.Upload(ASTRONAUT.read_bytes(), "me.png")
    assert path.exists()  # never deleted here: Gradio's cache cleaning does that
    video = uploads.read_upload({"video": {"path": str(path), "orig_name": "clip.mp4"}, "subtitles": None}, 10**8)
    assert video is not None and video.name == "clip.mp4"
    assert uploads.read_upload(None, 10) is None and uploads.read_upload({"path": None}, 10) is None


def test_every_other_path_gets_the_same_refusal(upload_folder: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.png"
    outside.write_bytes(ASTRONAUT.read_bytes())
    link_target = received(upload_folder, "real.png")
    link = link_target.parent / "link.png"
    link.symlink_to(outside)
    folder_link = upload_folder / ("cd" * 32)
    folder_link.symlink_to(tmp_path)
    named = [
        "/etc/passwd", "/etc/shadow", "/nonexistent/x.png", str(outside), str(ASTRONAUT), str(ROOT / "app.py"),
        str(upload_folder / "loose.png"), str(upload_folder / "not-a-hash" / "x.png"),
        str(link_target.parent / ".." / ".." / "secret.png"), str(link), str(folder_link / "secret.png"),
        str(link_target.parent), str(upload_folder / ("ab" * 32) / "missing.png"), "relative.png", "",
        "/tmp/x\x00.png", str(upload_folder / "deep_links" / ("ab" * 32) / "x.png"),
    ]
    messages = set()
    for path in named:
        with pytest.raises(InputError) as caught:
            uploads.read_upload({"path": path, "orig_name": "x.png"}, 10**8)
        messages.add(str(caught.value))
    assert messages == {uploads.REFUSED}
    for value in ("/etc/passwd", 5, ["/etc/passwd"]):
        with pytest.raises(InputError, match=uploads.REFUSED):
            uploads.read_upload(value, 10**8)


def test_size_limit_and_empty_files_are_told(upload_folder: Path) -> None:
    big = received(upload_folder, "big.png", bytes(2048))
    with pytest.raises(InputError, match=r"big\.png: file is 0\.0 MB, over the 0 MB limit"):
        uploads.read_upload({"path": str(big), "orig_name": "big.png"}, 1024)
    empty = received(upload_folder, "empty.png", b"")
    with pytest.raises(InputError, match="empty.png: the file is empty"):
        uploads.read_upload({"path": str(empty), "orig_name": "empty.png"}, 1024)
    fifo = upload_folder / ("ab" * 32) / "fifo.png"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match=uploads.REFUSED):  # never blocks on a FIFO
        uploads.read_upload({"path": str(fifo)}, 1024)


def test_shown_names_are_the_clients_and_cleaned() -> None:
    assert uploads.shown_name({"orig_name": "C:\\Users\\me\\a.png"}) == "a.png"
    assert uploads.shown_name({"orig_name": "bad\x00\x1bname.png"}) == "badname.png"
    assert uploads.shown_name({"orig_name": "x" * 200 + ".png"}).endswith("…") and \
        len(uploads.shown_name({"orig_name": "x" * 200})) == 80
    assert uploads.shown_name({}) == uploads.shown_name(None) == "the upload"
