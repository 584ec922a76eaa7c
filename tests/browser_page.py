"""The browser half of the app's tests and screenshots: one headless Chromium (Debian's, driven by
Playwright: Playwright's own browser download needs the internet), one user's page on the app
(`AppPage`) with everything that went wrong in it recorded, and the user flows the browser tests
and ``scripts/screenshots.py`` share.

The server half (``python app.py`` as a subprocess, test inputs) is `tests.browser_helpers`. A test
module loads both modules' fixtures with ``pytest_plugins = ["tests.browser_helpers",
"tests.browser_page"]``. PYTEST_DONT_REWRITE: test modules import this one before pytest loads it
as a plugin, too late for pytest to rewrite its asserts (it has none: it raises its own messages).
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pytest

from tests.browser_helpers import (
    ASTRONAUT,
    CHROMIUM_ARGS,
    FIRST_FRAME_TIMEOUT_S,
    MAX_READ_SIDE,
    STEP_TIMEOUT_S,
    VIEWPORT,
    AppServer,
    make_fake_webcam,
    missing,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, FloatRect, Page, ViewportSize

#: Console messages of Gradio's own bundle that no app can avoid, by exact text.
#: "Method not implemented.": after every upload, Gradio's upload-progress widget closes its
#: fetch-based stand-in for an EventSource, whose ``close`` is a stub that warns (gradio 6.31,
#: ``Object.close`` in ``index-*.js``, called from ``src-*.js`` when the progress stream says "done"
#: and again when the widget is destroyed).
GRADIO_UNAVOIDABLE = frozenset({"Method not implemented."})

#: The Chromium flag that answers every camera prompt with "allow" (without it, and without the
#: camera permission granted, headless Chromium refuses the camera as a visitor would).
FAKE_CAMERA_PROMPT = "--use-fake-ui-for-media-stream"

# Records every toast (gr.Error, gr.Warning, gr.Info) the page shows: they vanish after seconds,
# so reading the page later would miss them.
_TOAST_RECORDER = """(() => {
  const seen = window.__ferToasts = [];
  const record = (el) => setTimeout(() => {
    const kind = ["error", "warning", "info", "success"].find((k) => el.classList.contains(k)) || "toast";
    seen.push(kind + ": " + (el.innerText || "").replace(/\\s+/g, " ").trim());
  }, 300);
  new MutationObserver((changes) => {
    for (const change of changes) for (const node of change.addedNodes) {
      if (node.nodeType !== 1) continue;
      (node.matches(".toast-body") ? [node] : node.querySelectorAll(".toast-body")).forEach(record);
    }
  }).observe(document, {childList: true, subtree: true});
})();"""


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


def launch_chromium(browser_type: Any, video: Path | None, camera_allowed: bool = True) -> Browser:
    """Launch headless Chromium whose webcam plays ``video`` (a ``.y4m``; None: Chromium's own
    test pattern).

    Args:
        browser_type: Playwright's ``chromium`` (``playwright.chromium`` or ``browser.browser_type``).
        camera_allowed: answer camera prompts with "allow"; False: the camera is refused unless
            the page's context was granted the permission.
    """
    args = [a for a in CHROMIUM_ARGS if camera_allowed or a != FAKE_CAMERA_PROMPT]
    if video is not None:
        args.append(f"--use-file-for-fake-video-capture={video}")
    return browser_type.launch(executable_path=chromium_executable(), args=args)


@contextlib.contextmanager
def running_browser(workdir: Path) -> Iterator[Browser]:
    """Headless Chromium whose webcam plays a fake video made in ``workdir``; closed on exit."""
    from playwright.sync_api import sync_playwright

    video = make_fake_webcam(workdir / "webcam.y4m")
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright.chromium, video)
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
        console: ``(type, text)`` of every console message of type error or warning, from the
            page's first script on.
        page_errors: uncaught exceptions of the page's scripts.
        failed_requests: requests to the app that failed or were answered with an HTTP error, and
            every attempt to reach another host.
        uploads: the URL of every file upload the page sent (``POST /gradio_api/upload``).
        log_start: where the server log stood when the page was opened (see `problems`).
    """

    page: Page
    server: AppServer
    console: list[tuple[str, str]] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    uploads: list[str] = field(default_factory=list)
    log_start: int = 0

    # ----------------------------------------------------------------- navigation

    def open(self) -> None:
        """Load the app and wait until the tabs are drawn (never for "network idle": Gradio keeps a
        heartbeat connection open)."""
        self.log_start = self.server.log_size()
        self.page.goto(self.server.url, wait_until="domcontentloaded", timeout=STEP_TIMEOUT_S * 1000)
        self.page.locator("#tabs [role=tab]").first.wait_for(timeout=STEP_TIMEOUT_S * 1000)
        # Every visitor arrives on a worked example (the Image tab analysing the astronaut): wait
        # for it, so that nothing a test does next races with it.
        self.wait_text("#image-status", r"^Example: ")

    def tab(self, name: str) -> None:
        """Switch to the tab labelled ``name`` ("Live", "Image", …) by its button in the tab bar."""
        button = self.page.get_by_role("tab", name=name, exact=True)
        button.click()
        self.page.wait_for_function("b => b.getAttribute('aria-selected') === 'true'",
                                    arg=button.element_handle(), timeout=STEP_TIMEOUT_S * 1000)

    def choose(self, elem_id: str, option: str | re.Pattern[str]) -> list[str]:
        """Pick ``option`` (its whole text, or a pattern it matches) in the dropdown ``#elem_id``
        as a user does (this fires its input event); returns the names of the options offered."""
        self.page.locator(f"#{elem_id} input").click()
        options = self.page.get_by_role("option")
        options.first.wait_for()
        offered = [options.nth(i).get_attribute("aria-label") or "" for i in range(options.count())]
        # The list closes on the click; a key press in the box would keep it focused, and Gradio's
        # dropdown sends its value again when it loses focus (racing whatever the next click does).
        self.page.get_by_role("option", name=option, exact=isinstance(option, str)).click()
        return offered

    def check(self, elem_id: str, choice: str) -> None:
        """Select the radio button labelled ``choice`` in the radio group ``#elem_id``."""
        self.page.locator(f"#{elem_id}").get_by_label(choice, exact=True).check()

    def upload(self, elem_id: str, path: Path) -> None:
        """Give ``path`` to the file input of the upload widget ``#elem_id``."""
        self.page.locator(f"#{elem_id} input[type=file]").set_input_files(str(path))

    # ----------------------------------------------------------------- reading the page

    def text(self, selector: str) -> str:
        """Visible text of the first element matching ``selector``, stripped."""
        return self.page.locator(selector).first.inner_text().strip()

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
        """Poll ``condition`` (an exception counts as False: the page may be re-rendering) until it holds.

        Raises:
            AssertionError: ``what`` did not happen within ``timeout`` s.
        """
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(Exception):
                if condition():
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout:.0f} s")
            time.sleep(0.25)

    def label(self, elem_id: str) -> str:
        """The top label shown by the ``gr.Label`` ``#elem_id`` ("" when empty)."""
        heading = self.page.locator(f"#{elem_id} [data-testid=label-output-value]")
        return heading.first.inner_text().strip() if heading.count() else ""

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
        """Where the first element matching ``selector`` is drawn, in CSS pixels of the viewport
        (``y`` grows downwards from the top of the page as scrolled now).

        Raises:
            AssertionError: it is not shown.
        """
        found = self.page.locator(selector).first.bounding_box()
        if found is None:
            raise AssertionError(f"{selector} is not shown")
        return found

    def text_box(self, selector: str) -> FloatRect:
        """Where the text of the first element matching ``selector`` is drawn (its glyphs' lines,
        not the element's padding), in CSS pixels of the viewport.

        Raises:
            AssertionError: it is not shown or holds no text.
        """
        found = self.page.evaluate("""(selector) => {
            const element = document.querySelector(selector);
            if (!element) return null;
            const range = document.createRange();
            range.selectNodeContents(element);
            const r = range.getBoundingClientRect();
            return r.width > 0 && r.height > 0 ? {x: r.x, y: r.y, width: r.width, height: r.height} : null;
        }""", selector)
        if found is None:
            raise AssertionError(f"{selector}: no text shown")
        return found

    def broken_words(self, selector: str) -> list[str]:
        """Words of the visible elements matching ``selector`` that are drawn across two lines
        (broken inside the word, as "Archit|ecture")."""
        found: list[str] = self.page.evaluate("""(selector) => {
            const broken = [];
            for (const element of document.querySelectorAll(selector)) {
                if (!element.checkVisibility()) continue;
                const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
                for (let node = walker.nextNode(); node; node = walker.nextNode()) {
                    for (const match of node.textContent.matchAll(/\\S+/g)) {
                        const range = document.createRange();
                        range.setStart(node, match.index);
                        range.setEnd(node, match.index + match[0].length);
                        const tops = new Set(Array.from(range.getClientRects()).map((r) => Math.round(r.top)));
                        if (tops.size > 1) broken.push(match[0]);
                    }
                }
            }
            return broken;
        }""", selector)
        return found

    def src(self, selector: str) -> str:
        """The ``src`` of the first ``<img>`` matching ``selector`` ("" when there is none)."""
        image = self.page.locator(selector)
        return (image.first.get_attribute("src") or "") if image.count() else ""

    def wait_src_change(self, selector: str, old: str, timeout: float = STEP_TIMEOUT_S) -> str:
        """Wait until the ``<img>`` ``selector`` shows another picture than ``old``; returns the new src."""
        self.wait_until(lambda: self.src(selector) not in ("", old), f"{selector}: another picture", timeout)
        return self.src(selector)

    def viewport(self) -> tuple[float, float]:
        """``(innerWidth, innerHeight)`` in CSS pixels."""
        width, height = self.page.evaluate("[innerWidth, innerHeight]")
        return float(width), float(height)

    def scroll_width(self) -> float:
        """The page's ``scrollWidth``: wider than the viewport means sideways scrolling."""
        return float(self.page.evaluate("document.documentElement.scrollWidth"))

    # ----------------------------------------------------------------- health

    def toasts(self, kind: str | None = None) -> list[str]:
        """Every toast shown so far, as ``"error: text"`` (``kind``: only those of that kind)."""
        shown: list[str] = self.page.evaluate("window.__ferToasts || []")
        return [t for t in shown if kind is None or t.startswith(f"{kind}: ")]

    def server_warnings(self) -> list[str]:
        """Python warnings (``…: UserWarning: …``) the server logged since `open`."""
        return [line for line in self.server.log(self.log_start).splitlines() if re.search(r"\w+Warning: ", line)]

    def problems(self, allowed: Iterable[str] = ()) -> list[str]:
        """Console errors and warnings (but `GRADIO_UNAVOIDABLE`), uncaught exceptions, failed
        requests, error toasts and server tracebacks since `open` (empty when healthy).

        Args:
            allowed: substrings of console messages and failed requests to leave out.
        """
        allowed = tuple(allowed)

        def kept(text: str) -> bool:
            return not any(part in text for part in allowed)

        found = [f"console {kind}: {text}" for kind, text in self.console if text not in GRADIO_UNAVOIDABLE]
        found += [f"uncaught: {e}" for e in self.page_errors]
        found += [f"request: {r}" for r in self.failed_requests]
        found = [p for p in found if kept(p)]
        with contextlib.suppress(Exception):  # the page may be closing
            found += [f"toast {t}" for t in self.toasts("error")]
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
def app_page(browser: Browser, server: AppServer, viewport: ViewportSize = VIEWPORT,
             camera: bool = True) -> Iterator[AppPage]:
    """A new browser context (its own cookies, so its own Gradio session) opened on the app at
    ``viewport``, the camera permission granted when ``camera``. Requests to any other host are
    refused and recorded: the app must not need the internet."""
    context = browser.new_context(viewport=viewport, device_scale_factor=1)
    if camera:
        context.grant_permissions(["camera"], origin=server.url.rstrip("/"))
    context.add_init_script(_TOAST_RECORDER)
    page = context.new_page()
    page.set_default_timeout(STEP_TIMEOUT_S * 1000)
    app = AppPage(page, server)
    page.on("console", lambda m: app.console.append((m.type, m.text)) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda error: app.page_errors.append(str(error)))

    def on_failed(request: Any) -> None:
        # The page itself aborts its event-stream connection whenever no event is pending: normal.
        if request.url.startswith(server.url) and request.failure != "net::ERR_ABORTED":
            app.failed_requests.append(f"{request.method} {request.url}: {request.failure}")

    def on_response(response: Any) -> None:
        if response.url.startswith(server.url) and response.status >= 400:
            app.failed_requests.append(f"{response.request.method} {response.url}: HTTP {response.status}")

    page.on("requestfailed", on_failed)
    page.on("response", on_response)
    page.on("request", lambda r: app.uploads.append(r.url) if r.method == "POST" and "/gradio_api/upload?" in r.url else None)

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


def _wait_image_result(app: AppPage, act: Callable[[], None]) -> str:
    """Do ``act`` on the Image tab and wait for its result: the input widget showing a new inline
    picture (the analysed one, boxes drawn), or a new warning in the status. Returns the status."""
    # The status's own text (not Gradio's progress line drawn over it while the event runs).
    status_text = "#image-status .prose"
    before_src, before_status = app.src("#image-input img"), app.text(status_text)
    act()

    def done() -> bool:
        # A new picture, or a new status with a picture (the arrival example pressed again shows
        # the same picture under its own status), or a new warning.
        src, status = app.src("#image-input img"), app.text(status_text)
        return (src.startswith("data:") and (src != before_src or status != before_status)) or \
            (status.startswith("⚠️") and status != before_status)

    app.wait_until(done, "the picture's result")
    return app.text(status_text)


def show_image(app: AppPage, image: Path = ASTRONAUT) -> str:
    """Image tab: upload ``image`` and wait until it is analysed; returns the status line."""
    app.tab("Image")
    return _wait_image_result(app, lambda: app.upload("image-input", image))


def click_example(app: AppPage, index: int) -> str:
    """Image tab: press the example button ``#image-example-<index>`` and wait for its result."""
    app.tab("Image")
    return _wait_image_result(app, lambda: app.page.locator(f"#image-example-{index}").click())


def start_webcam(app: AppPage) -> None:
    """Live tab, server path: allow the (fake) webcam, press Record and wait for the first
    analysed frame (the on-device path: tests/test_browser_ondevice.py)."""
    app.tab("Live")
    app.check("live-where", "On the server")
    app.page.evaluate(TRACK_RECORDER)
    app.page.locator("#live-input").get_by_text(re.compile("Access Webcam", re.I)).click()
    app.page.locator("#live-input button", has_text="Record").click()
    # Until then the panels show the arrival example: wait for a frame's own status line.
    app.wait_text("#live-status", r"^\d+ faces? \(|^No face in view", FIRST_FRAME_TIMEOUT_S)
    app.wait_until(lambda: app.src("#live-saliency img").startswith("data:") and app.label("live-top-k") != "",
                   "the first analysed webcam frame", FIRST_FRAME_TIMEOUT_S)


def stop_webcam(app: AppPage) -> None:
    """Live tab: press Stop and wait for the page script's note."""
    app.page.locator("#live-input button", has_text="Stop").click()
    app.wait_text("#fer-camera-note", r"Camera off: released")


#: Records every media track the browser hands the page (``window.__ferTracks``): wraps
#: ``getUserMedia`` over the app's own wrapper, so Gradio's calls and the app script's both pass
#: through it; what the page was given, not what the app says.
TRACK_RECORDER = """() => {
  if (window.__ferTracks) return;
  const tracks = window.__ferTracks = [];
  const devices = navigator.mediaDevices, inner = devices.getUserMedia;
  devices.getUserMedia = (constraints) => inner.call(devices, constraints).then((stream) => {
    tracks.push(...stream.getTracks());
    return stream;
  });
}"""


def camera_tracks(app: AppPage) -> list[str]:
    """``readyState`` ("live" or "ended") of every media track the page was given so far."""
    states: list[str] = app.page.evaluate("() => (window.__ferTracks || []).map((t) => t.readyState)")
    return states


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


def load_video_example(app: AppPage) -> None:
    """Video tab: press the example button and wait until the server holds the clip."""
    app.tab("Video")
    app.page.locator("#video-example").click()
    app.wait_text("#video-status", r"loaded")


def analyse_video(app: AppPage, fps: str = "5") -> str:
    """Video tab: choose ``fps`` frames per second, press Analyse and wait for the report; returns
    the status line."""
    app.check("video-fps", fps)
    app.page.locator("#video-run").click()
    app.wait_text("#video-status", rf"sampled \({re.escape(fps)} per second\)|⚠️", timeout=2 * STEP_TIMEOUT_S)
    return app.text("#video-status")
