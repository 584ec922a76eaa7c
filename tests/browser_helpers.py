"""One ``python app.py`` subprocess shared by the API, privacy and browser tests and by
``scripts/screenshots.py``, and the inputs they give it. The browser half (one headless Chromium,
one user's page, the user flows) is `tests.browser_page`.

The browser's webcam is a ``.y4m`` video made with ffmpeg from ``assets/astronaut.png``. In CI
(``CI=true``) a missing browser, ffmpeg or Playwright fails the browser tests; elsewhere they skip
with the reason.

A test module loads the fixtures with ``pytest_plugins = ["tests.browser_helpers"]`` (one server
for the whole session, however many modules use it) and imports the rest.
PYTEST_DONT_REWRITE: those modules import this one before pytest loads it as a plugin, too late for
pytest to rewrite its asserts (it has none: it raises its own messages).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import pytest

from .conftest import ARTIFACTS_DIR, free_port

if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
ASTRONAUT = ASSETS / "astronaut.png"
NO_FACE = ASSETS / "coffee.png"
#: Screenshots and the server log of each run (outside the repository: `tests.conftest.ARTIFACTS_DIR`).
ARTIFACTS = ARTIFACTS_DIR / "browser"

#: A loaded 2-core machine takes 10-30 s to import torch, MediaPipe and Gradio and load the model.
STARTUP_TIMEOUT_S = 180.0
#: The first live frame pays for the browser's camera start and the server's first Grad-CAM.
FIRST_FRAME_TIMEOUT_S = 90.0
#: Anything else the page waits for (an upload analysed, a panel redrawn, an evaluation).
STEP_TIMEOUT_S = 60.0

VIEWPORT: ViewportSize = {"width": 1440, "height": 900}
#: A phone (CSS pixels of an iPhone 12-15 class screen).
PHONE: ViewportSize = {"width": 390, "height": 844}
#: A small laptop: the first screen must still hold the whole result block.
SMALL_LAPTOP: ViewportSize = {"width": 1280, "height": 720}
#: Pictures are read back from the page at most this many pixels on a side (enough to compare).
MAX_READ_SIDE = 256

# The machine's network is closed and nothing here should need it: no background services,
# no QUIC probing; the fake camera reads the given video (looped) and needs no permission prompt.
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run", "--disable-quic",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
]


def in_ci() -> bool:
    """True on a CI runner (``CI`` set to a true value, as GitHub Actions and GitLab do)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing(reason: str) -> None:
    """A browser-test prerequisite is missing: fail in CI (the tests must run there), else skip."""
    if in_ci():
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


# --------------------------------------------------------------------------- the app server


@dataclass
class AppServer:
    """A running ``python app.py``.

    Attributes:
        url: ``http://127.0.0.1:PORT/``.
        process: the subprocess.
        log_path: its stdout and stderr.
        gradio_dir: its upload folder (Gradio's cache of uploads and served files).
        tmp_dir: its TMPDIR (the system temporary folder it sees).
        app_dir: its FER_APP_DIR (the app's own folders: ``uploads`` = `gradio_dir`, ``work``).
    """

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    gradio_dir: Path
    tmp_dir: Path
    app_dir: Path

    def files(self) -> set[Path]:
        """Every file now under the server's upload, work and temporary folders."""
        return {p for folder in (self.app_dir, self.tmp_dir) for p in folder.rglob("*") if p.is_file()}

    def rss_bytes(self) -> int:
        """The server process's resident memory."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def log(self, start: int = 0) -> str:
        """The server's output from byte ``start`` on."""
        with self.log_path.open("rb") as handle:
            handle.seek(start)
            return handle.read().decode("utf-8", "replace")

    def log_size(self) -> int:
        """Bytes logged so far (a mark for `log`)."""
        return self.log_path.stat().st_size


#: Upload ages the shared server runs with (seconds): short, so the privacy tests can watch Gradio's
#: cache cleaning remove an upload (`fer.limits.UPLOAD_MAX_AGE_S`, `UPLOAD_SWEEP_EVERY_S`).
TEST_UPLOAD_MAX_AGE_S = 6
TEST_UPLOAD_SWEEP_EVERY_S = 2


def start_app_server(workdir: Path, timeout: float = STARTUP_TIMEOUT_S, env: dict[str, str] | None = None) -> AppServer:
    """Start ``python app.py`` on a free port of 127.0.0.1 with its own app folder and temporary
    folder under ``workdir`` (and short upload ages) and wait (at most ``timeout`` s) until it answers.

    Args:
        env: extra environment variables.
    Raises:
        RuntimeError: the server exited or did not answer in time (the message ends with its log).
    """
    app_dir, tmp_dir = workdir / "app", workdir / "tmp"
    for folder in (app_dir, tmp_dir):
        folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    full_env = {
        **{k: v for k, v in os.environ.items() if k != "GRADIO_TEMP_DIR"},
        "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False", "FER_APP_DIR": str(app_dir), "TMPDIR": str(tmp_dir),
        "FER_UPLOAD_MAX_AGE_S": str(TEST_UPLOAD_MAX_AGE_S), "FER_UPLOAD_SWEEP_EVERY_S": str(TEST_UPLOAD_SWEEP_EVERY_S),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1", **(env or {}),
    }
    log_path = workdir / "app.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=full_env, stdout=log,
                                   stderr=subprocess.STDOUT)
    server = AppServer(f"http://127.0.0.1:{port}/", process, log_path, app_dir / "uploads", tmp_dir, app_dir)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode}:\n{server.log()[-3000:]}")
        try:
            with urllib.request.urlopen(server.url, timeout=5) as response:
                if response.status == 200:
                    return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            stop_app_server(server)
            raise RuntimeError(f"app.py did not answer within {timeout:.0f} s:\n{server.log()[-3000:]}")
        time.sleep(0.5)


def stop_app_server(server: AppServer) -> None:
    """Terminate the server (kill it if it does not stop within 20 s)."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=20)


@contextlib.contextmanager
def running_app_server(workdir: Path) -> Iterator[AppServer]:
    """`start_app_server`, always stopped on exit; its log is copied to `ARTIFACTS`."""
    server = start_app_server(workdir)
    try:
        yield server
    finally:
        stop_app_server(server)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(server.log_path, ARTIFACTS / "app-server.log")


@pytest.fixture(scope="session")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """The app, served once for every API and browser test of the session."""
    try:
        with running_app_server(tmp_path_factory.mktemp("app-server")) as server:
            yield server
    except RuntimeError as exc:  # startup failed: one clear line per test, the log in the message
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def client(app_server: AppServer) -> Iterator[Any]:
    """A new `gradio_client.Client` session (its own settings and state) on the shared server."""
    from gradio_client import Client

    api = Client(app_server.url, verbose=False)
    try:
        yield api
    finally:
        api.close()


# --------------------------------------------------------------------------- test inputs


def make_fake_webcam(path: Path, image: Path = ASTRONAUT, seconds: float = 2.0, fps: int = 5) -> Path:
    """A 640×480 ``.y4m`` video for Chromium's fake camera: ``image`` scaled to 520 px high and
    swaying ±20 px sideways (a still picture would send identical frames, so an updating panel could
    not be told from a stuck one). About 0.5 MB per frame.

    Raises:
        FileNotFoundError: no ffmpeg on PATH.
        subprocess.CalledProcessError: ffmpeg failed.
    """
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise FileNotFoundError("ffmpeg not found on PATH")
    sway = "crop=640:480:x='20+20*sin(2*PI*t/2)':y=20"
    subprocess.run(
        [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-loop", "1", "-i", str(image),
         "-vf", f"scale=-2:520,pad=680:520:(ow-iw)/2:0,{sway},format=yuv420p",
         "-r", str(fps), "-t", str(seconds), "-f", "yuv4mpegpipe", str(path)],
        check=True, capture_output=True, timeout=60,
    )
    return path


def own_picture(path: Path) -> Path:
    """A PNG of the astronaut with one pixel changed: a user's own picture, whose bytes (so whose
    upload path in Gradio's cache) differ from the shipped example's, which the app must keep."""
    from fer.io import read_image

    picture = read_image(ASTRONAUT)
    picture[0, 0] = (1, 2, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path


#: What a log must never hold: ``data:`` URLs and long base64 runs (image-sized data).
_DATA_URL = re.compile(r"data:[\w.+-]+/[\w.+-]+;base64,[A-Za-z0-9+/=]{40,}")
_BLOB = re.compile(r"[A-Za-z0-9+/]{200,}={0,2}")


def image_data_in(text: str) -> list[str]:
    """Image-sized base64 in ``text`` (a log): the start of each ``data:`` URL or long base64 run."""
    return [m.group(0)[:60] + "…" for m in (*_DATA_URL.finditer(text), *_BLOB.finditer(text))]


def make_eval_zip(path: Path) -> Path:
    """A labelled-faces archive, folder per label: ``faces/happy/astronaut.png`` (one smiling face)
    and ``faces/sad/coffee.png`` (no face: skipped)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(ASTRONAUT, "faces/happy/astronaut.png")
        archive.write(NO_FACE, "faces/sad/coffee.png")
    return path
