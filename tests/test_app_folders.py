"""`fer.app.folders`: the app's own folders, the start-up sweep of what a killed server left, and the
sweep of torn uploads; nothing a running request may read is removed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from fer.app import folders


def test_folders_follow_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FER_APP_DIR", str(tmp_path / "app"))
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    assert folders.upload_dir() == tmp_path / "app" / "uploads" and folders.work_dir() == tmp_path / "app" / "work"
    # A caller's GRADIO_TEMP_DIR is never the upload folder itself (other programs' files live there).
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "mine"))
    assert folders.upload_dir() == tmp_path / "app" / "uploads"


def test_each_app_owns_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without FER_APP_DIR an app takes the first free slot under GRADIO_TEMP_DIR (or the temp
    folder) and never touches anything else there; a slot another process holds is skipped, and an
    explicit FER_APP_DIR another process holds is refused in one line."""
    import subprocess
    import sys

    shared = tmp_path / "shared"
    other = shared / ("ab" * 32) / "another-programs-file.png"
    other.parent.mkdir(parents=True)
    other.write_bytes(b"not ours")
    (shared / "tmpzz").write_bytes(b"not ours either")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import os, sys, time; os.environ.pop('FER_APP_DIR', None); from fer.app import folders; "
        "folders.prepare(); print(os.environ['FER_APP_DIR'], flush=True); time.sleep(60)")],
        env={**os.environ, "GRADIO_TEMP_DIR": str(shared)}, stdout=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parent.parent)
    try:
        first = Path(holder.stdout.readline().strip())
        assert first == shared / "fer-app" / "1"
        monkeypatch.delenv("FER_APP_DIR", raising=False)
        monkeypatch.setenv("GRADIO_TEMP_DIR", str(shared))
        uploads = folders.prepare()
        assert uploads == shared / "fer-app" / "2" / "uploads" and os.environ["GRADIO_TEMP_DIR"] == str(uploads)
        monkeypatch.setenv("FER_APP_DIR", str(first))
        with pytest.raises(folders.FolderInUse, match=f"pid {holder.pid}"):
            folders.prepare()
    finally:
        holder.kill()
        holder.wait()
        folders.release(shared / "fer-app" / "2")
    assert other.read_bytes() == b"not ours" and (shared / "tmpzz").exists()
    # The holder is gone: its slot is free again, and swept when claimed.
    (first / "uploads" / ("cd" * 32)).mkdir(parents=True)
    (first / "uploads" / ("cd" * 32) / "left.png").write_bytes(b"left by the killed app")
    monkeypatch.delenv("FER_APP_DIR")
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(shared))  # prepare pointed it at its own uploads
    assert folders.prepare() == first / "uploads" and not (first / "uploads" / ("cd" * 32)).exists()
    folders.release(first)
    assert other.read_bytes() == b"not ours"


def test_start_up_sweep_removes_a_killed_runs_files_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("FER_APP_DIR", str(tmp_path))
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    uploads, work = tmp_path / "uploads", tmp_path / "work"
    (uploads / ("ab" * 32)).mkdir(parents=True)
    (uploads / ("ab" * 32) / "me.png").write_bytes(b"picture")
    (uploads / "tmpa1b2c3").write_bytes(b"half an upload")
    (uploads / "deep_links").mkdir()
    (uploads / "user-notes.txt").write_text("not Gradio's")
    (work / "fer-eval-x1" / "data" / "happy").mkdir(parents=True)
    (work / "fer-eval-x1" / "data" / "happy" / "a.png").write_bytes(b"a face")
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"kept")
    (work / "link").symlink_to(outside)
    with caplog.at_level("INFO", logger="fer.app.folders"):
        assert folders.prepare() == uploads and os.environ["GRADIO_TEMP_DIR"] == str(uploads)
    folders.release(tmp_path)
    assert "removed 4 files a previous run left on disk" in caplog.text
    assert sorted(p.name for p in uploads.iterdir()) == ["user-notes.txt"]
    assert list(work.iterdir()) == [] and outside.read_bytes() == b"kept"


def test_uploads_and_torn_uploads_are_removed_once_old(tmp_path: Path) -> None:
    torn = tmp_path / "tmpq9w8e7"
    torn.write_bytes(b"half")
    upload = tmp_path / ("cd" * 32) / "me.png"
    upload.parent.mkdir()
    upload.write_bytes(b"whole")
    example = tmp_path / ("ab" * 32) / "example.png"
    example.parent.mkdir()
    example.write_bytes(b"shared by every session")
    empty = tmp_path / ("ef" * 32)
    empty.mkdir()
    notes = tmp_path / "notes.txt"
    notes.write_text("not Gradio's")
    now = time.time()
    assert folders.sweep_uploads(tmp_path, max_age_s=60, keep={str(example)}, now=now) == 0
    assert torn.exists() and upload.exists() and not empty.exists()  # an empty upload folder goes at once
    assert folders.sweep_uploads(tmp_path, max_age_s=60, keep={str(example)}, now=now + 120) == 2
    assert not torn.exists() and not upload.exists() and not upload.parent.exists()
    assert example.exists() and notes.exists()


def test_scratch_folders_go_when_the_request_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FER_APP_DIR", str(tmp_path))
    with pytest.raises(RuntimeError), folders.scratch("fer-eval-") as folder:
        (folder / "x.png").write_bytes(b"1")
        raise RuntimeError("the request failed")
    assert list((tmp_path / "work").iterdir()) == []


def test_refused_routes_and_headers() -> None:
    from fer.app.security import REFUSED_ROUTES, security_headers

    for path in ("/gradio_api/deep_link", "/gradio_api/dev/reload", "/monitoring", "/monitoring/x/dashboard",
                 "/gradio_api/process_recording", "/gradio_api/proxy=http://x/y", "/gradio_api/runs"):
        assert REFUSED_ROUTES.match(path), path
    for path in ("/", "/config", "/gradio_api/upload", "/gradio_api/queue/join", "/gradio_api/file=/x",
                 "/gradio_api/runsx", "/gradio_api/call/predict"):
        assert not REFUSED_ROUTES.match(path), path
    headers = dict(security_headers())
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert b"frame-ancestors 'self' https://huggingface.co" in headers[b"content-security-policy"]
