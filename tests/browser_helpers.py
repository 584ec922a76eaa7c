"""One ``python app.py`` subprocess and one headless Chromium, shared by the API and browser tests
and by ``scripts/screenshots.py``, plus the user flows they drive.

The browser is Debian's Chromium driven by Playwright (Playwright's own browser download needs the
internet); its webcam is a ``.y4m`` video made with ffmpeg from ``assets/astronaut.png``. In CI
(``CI=true``) a missing browser, ffmpeg or Playwright fails the browser tests; elsewhere they skip
with the reason.

A test module loads the fixtures with ``pytest_plugins = ["tests.browser_helpers"]`` (one server
and one browser for the whole session, however many modules use them) and imports the rest.
PYTEST_DONT_REWRITE: those modules import this one before pytest loads it as a plugin, too late for
pytest to rewrite its asserts (it has none: it raises its own messages).
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, FloatRect, Page, ViewportSize

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
ASTRONAUT = ASSETS / "astronaut.png"
NO_FACE = ASSETS / "coffee.png"
#: Screenshots and the server log of each run (git-ignored).
ARTIFACTS = ROOT / "test-artifacts" / "browser"

#: A loaded 2-core machine takes 10-30 s to import torch, MediaPipe and Gradio and load the model.
STARTUP_TIMEOUT_S = 180.0
#: The first live frame pays for the browser's camera start and the server's first Grad-CAM.
FIRST_FRAME_TIMEOUT_S = 90.0
#: Anything else the page waits for (an upload analysed, a panel redrawn, an evaluation).
STEP_TIMEOUT_S = 60.0

VIEWPORT: ViewportSize = {"width": 1440, "height": 900}
#: A phone (CSS pixels of an iPhone 12-15 class screen).
PHONE: ViewportSize = {"width": 390, "height": 844}
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


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


# --------------------------------------------------------------------------- the browser


def chromium_executable() -> str | None:
    """Chromium to drive: ``$FER_CHROMIUM``, else Debian's ``chromium`` on PATH; None if neither."""
    chosen = os.environ.get("FER_CHROMIUM")
    if chosen:
        return chosen if Path(chosen).is_file() else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def browser_prerequisites() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -r requirements-dev.txt)"
    if chromium_executable() is None:
        return "no Chromium found (apt-get install chromium, or set FER_CHROMIUM=/path/to/chrome)"
    if shutil.which("ffmpeg") is None:
        return "no ffmpeg found to make the fake webcam video (apt-get install ffmpeg)"
    return None


@contextlib.contextmanager
def running_browser(workdir: Path) -> Iterator[Browser]:
    """Headless Chromium whose webcam plays a fake video made in ``workdir``; closed on exit."""
    from playwright.sync_api import sync_playwright

    video = make_fake_webcam(workdir / "webcam.y4m")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_executable(),
            args=[*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={video}"],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """One headless Chromium for every browser test (skipped locally, failed in CI, when missing)."""
    reason = browser_prerequisites()
    if reason:
        missing(reason)
    with running_browser(tmp_path_factory.mktemp("browser")) as launched:
        yield launched


# --------------------------------------------------------------------------- one user's page


@dataclass
class AppPage:
    """A fresh browser context on the app, with what went wrong in it recorded.

    Attributes:
        page: the Playwright page.
        server: the app server it talks to.
        console_errors: console ``error`` messages and uncaught page exceptions.
        failed_requests: requests to the app that failed or were answered with an HTTP error, and
            every attempt to reach another host.
        log_start: where the server log stood when the page was opened (see `problems`).
    """

    page: Page
    server: AppServer
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    log_start: int = 0

    # ----------------------------------------------------------------- navigation

    def open(self) -> None:
        """Load the app and wait until the tabs are drawn (never for "network idle": Gradio keeps a
        heartbeat connection open)."""
        self.log_start = self.server.log_size()
        self.page.goto(self.server.url, wait_until="domcontentloaded", timeout=STEP_TIMEOUT_S * 1000)
        self.page.locator("#tabs [role=tab]").first.wait_for(timeout=STEP_TIMEOUT_S * 1000)

    def tab(self, name: str) -> None:
        """Switch to the tab labelled ``name`` ("Live", "Image", …)."""
        button = self.page.get_by_role("tab", name=name, exact=True)
        button.click()
        self.page.wait_for_function("b => b.getAttribute('aria-selected') === 'true'",
                                    arg=button.element_handle(), timeout=STEP_TIMEOUT_S * 1000)

    def choose(self, elem_id: str, option: str) -> None:
        """Pick ``option`` in the dropdown ``#elem_id`` as a user does (this fires its input event)."""
        self.page.locator(f"#{elem_id} input").click()
        self.page.get_by_role("option", name=option, exact=True).click()
        self.page.locator(f"#{elem_id} input").press("Escape")

    def upload(self, elem_id: str, path: Path) -> None:
        """Give ``path`` to the file input of the upload widget ``#elem_id``."""
        self.page.locator(f"#{elem_id} input[type=file]").set_input_files(str(path))

    # ----------------------------------------------------------------- reading the page

    def text(self, selector: str) -> str:
        """Visible text of the first element matching ``selector``."""
        return self.page.locator(selector).first.inner_text()

    def wait_text(self, selector: str, pattern: str, timeout: float = STEP_TIMEOUT_S) -> re.Match[str]:
        """Wait until the text of ``selector`` matches the regular expression ``pattern``.

        Raises:
            AssertionError: not within ``timeout`` s (the message shows the text last seen).
        """
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        seen = ""
        while True:
            with contextlib.suppress(Exception):  # the element may be re-rendered while read
                seen = self.page.locator(selector).first.inner_text(timeout=1000)
                match = regex.search(seen)
                if match:
                    return match
            if time.monotonic() > deadline:
                raise AssertionError(f"{selector}: no {pattern!r} within {timeout:.0f} s; text was {seen[:300]!r}")
            time.sleep(0.25)

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = STEP_TIMEOUT_S) -> None:
        """Poll ``condition`` until it holds.

        Raises:
            AssertionError: ``what`` did not happen within ``timeout`` s.
        """
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout:.0f} s")
            time.sleep(0.25)

    def label(self, elem_id: str) -> str:
        """The top label shown by the ``gr.Label`` ``#elem_id`` ("" when empty)."""
        heading = self.page.locator(f"#{elem_id} [data-testid=label-output-value]")
        return heading.first.inner_text() if heading.count() else ""

    def pixels(self, selector: str, timeout: float = STEP_TIMEOUT_S) -> np.ndarray:
        """The picture shown by the ``<img>`` ``selector`` once loaded, as the browser decoded it.

        Returns:
            ``(H, W, 3)`` uint8 RGB, the picture scaled to at most ``MAX_READ_SIDE`` pixels on its
            longer side (inline data URLs and files served by the app are same-origin, so a canvas
            can read them).
        """
        # One script reads the picture shown now: live panels are replaced on every frame, so a
        # handle to the element could point at a detached one by the time it is read.
        script = """async ([selector, side]) => {
            const shown = document.querySelector(selector);
            if (!shown || !shown.getAttribute('src')) return null;
            const img = new Image();
            img.src = shown.currentSrc || shown.src;
            try { await img.decode(); } catch (error) { return null; }
            const scale = Math.min(1, side / Math.max(img.naturalWidth, img.naturalHeight));
            const canvas = document.createElement('canvas');
            canvas.width = Math.max(1, Math.round(img.naturalWidth * scale));
            canvas.height = Math.max(1, Math.round(img.naturalHeight * scale));
            const context = canvas.getContext('2d');
            context.drawImage(img, 0, 0, canvas.width, canvas.height);
            return canvas.toDataURL('image/png');  // lossless, and far smaller than a pixel list
        }"""
        deadline = time.monotonic() + timeout
        while True:
            url = self.page.evaluate(script, [selector, MAX_READ_SIDE])
            if url is not None:
                bgr = cv2.imdecode(np.frombuffer(base64.b64decode(url.partition(",")[2]), np.uint8), cv2.IMREAD_COLOR)
                if bgr is None:
                    raise AssertionError(f"{selector}: the browser's copy of the picture is not a PNG")
                return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            if time.monotonic() > deadline:
                raise AssertionError(f"{selector}: no picture shown within {timeout:.0f} s")
            time.sleep(0.2)

    def box(self, selector: str) -> FloatRect:
        """Where the first element matching ``selector`` is drawn, in CSS pixels of the page.

        Raises:
            AssertionError: it is not shown.
        """
        found = self.page.locator(selector).first.bounding_box()
        if found is None:
            raise AssertionError(f"{selector} is not shown")
        return found

    def src(self, selector: str) -> str:
        """The ``src`` of the first ``<img>`` matching ``selector`` ("" when there is none)."""
        image = self.page.locator(selector)
        return (image.first.get_attribute("src") or "") if image.count() else ""

    def wait_src_change(self, selector: str, old: str, timeout: float = STEP_TIMEOUT_S) -> str:
        """Wait until the ``<img>`` ``selector`` shows another picture than ``old``; returns the new src."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(Exception):
                new = self.src(selector)
                if new and new != old:
                    return new
            if time.monotonic() > deadline:
                raise AssertionError(f"{selector}: picture unchanged for {timeout:.0f} s")
            time.sleep(0.2)

    # ----------------------------------------------------------------- health

    def problems(self) -> list[str]:
        """Console errors, failed requests and server tracebacks since `open` (empty when healthy)."""
        found = [f"console: {m}" for m in self.console_errors] + [f"request: {r}" for r in self.failed_requests]
        log = self.server.log(self.log_start)
        if "Traceback (most recent call last)" in log:
            found.append("server traceback:\n" + log[log.index("Traceback (most recent call last)"):][:3000])
        return found

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        """Save a PNG of the page."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=full_page)
        return path


@contextlib.contextmanager
def app_page(browser: Browser, server: AppServer, viewport: ViewportSize = VIEWPORT) -> Iterator[AppPage]:
    """A new browser context (its own cookies, so its own Gradio session) with the camera allowed,
    opened on the app at ``viewport``. Requests to any other host are refused and recorded: the
    app must not need the internet."""
    context = browser.new_context(viewport=viewport, device_scale_factor=1)
    context.grant_permissions(["camera"], origin=server.url.rstrip("/"))
    page = context.new_page()
    page.set_default_timeout(STEP_TIMEOUT_S * 1000)
    app = AppPage(page, server)
    page.on("console", lambda message: app.console_errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: app.console_errors.append(f"uncaught {error}"))

    def on_failed(request: Any) -> None:
        # The page itself aborts its event-stream connection whenever no event is pending: normal.
        if request.url.startswith(server.url) and request.failure != "net::ERR_ABORTED":
            app.failed_requests.append(f"{request.method} {request.url}: {request.failure}")

    def on_response(response: Any) -> None:
        if response.url.startswith(server.url) and response.status >= 400:
            app.failed_requests.append(f"{response.request.method} {response.url}: HTTP {response.status}")

    page.on("requestfailed", on_failed)
    page.on("response", on_response)

    def refuse_outside(route: Any) -> None:
        app.failed_requests.append(f"outside request {route.request.url}")
        route.abort()

    context.route(re.compile(rf"^(?!{re.escape(server.url)}|data:|blob:).*"), refuse_outside)
    try:
        app.open()
        yield app
    finally:
        context.close()


# --------------------------------------------------------------------------- user flows


def show_image(app: AppPage, image: Path = ASTRONAUT) -> None:
    """Image tab: upload ``image`` and wait until its per-face views are drawn."""
    app.tab("Image")
    old = app.src("#image-gradcam img")
    app.upload("image-input", image)
    app.wait_text("#image-status", r"face|No face|⚠️")
    if "No face" not in app.text("#image-status"):
        app.wait_src_change("#image-gradcam img", old)


def start_webcam(app: AppPage) -> None:
    """Live tab: allow the (fake) webcam, press Record and wait for the first analysed frame."""
    app.tab("Live")
    app.page.locator("#live-input").get_by_text(re.compile("Access Webcam", re.I)).click()
    app.page.locator("#live-input button", has_text="Record").click()
    app.wait_text("#live-status", r"following #\d+", timeout=FIRST_FRAME_TIMEOUT_S)
    app.pixels("#live-saliency img")


def session_frames(app: AppPage) -> int:
    """Frames counted in the live session's posed-versus-said table (0 before any)."""
    match = re.search(r"(\d+) frames counted", app.text("#live-session"))
    return int(match.group(1)) if match else 0


def run_evaluation(app: AppPage, archive: Path) -> None:
    """Evaluate tab: upload a labelled-faces zip, press Evaluate and wait for the accuracy."""
    app.tab("Evaluate")
    app.upload("evaluate-input", archive)
    app.wait_text("#evaluate-input", re.escape(archive.name))
    app.page.locator("#evaluate-run").click()
    app.wait_text("#evaluate-accuracy", r"Accuracy [\d.]+%")
    app.pixels("#evaluate-plot img")
