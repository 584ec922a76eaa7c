"""Live on the visitor's device, in the app, in real headless Chromium with a fake webcam: the
result block filled by the page itself, no request carrying pixels, the switch to the server path,
and the fallback when the page may not run the engine. (Parity with the Python pipeline:
tests/test_ondevice.py; frames per second: benchmarks/ondevice_fps.py.)"""

from __future__ import annotations

import re
from typing import Any

import pytest

from . import test_browser
from .browser_helpers import FIRST_FRAME_TIMEOUT_S
from .browser_page import AppPage
from .test_browser import assert_healthy

# The shared app server and browser fixtures.
pytest_plugins = ["tests.browser_helpers", "tests.browser_page"]

pytestmark = pytest.mark.browser

# The same fresh-user fixtures as tests/test_browser.py (each page saved as a screenshot).
open_app, app = test_browser.open_app, test_browser.app

PANELS = ("saliency", "model-input", "gradcam")
#: Largest request body the page may send while analysing on the device (Gradio's own small JSON
#: messages); one 640×480 frame is ~100 kB as the server path sends it.
MAX_BODY = 4096


def frames(app: AppPage) -> int:
    return int(app.page.evaluate("() => document.querySelector('#live-top-k')?.dataset.frame || '0'"))


def where(app: AppPage) -> str:
    return str(app.page.evaluate("() => document.querySelector('#live-top-k')?.dataset.where || ''"))


def test_live_on_device_fills_the_block_and_sends_no_pixels(app: AppPage) -> None:
    sent: list[Any] = []
    app.page.on("request", lambda request: sent.append(request))
    app.tab("Live")
    app.wait_until(lambda: where(app) == "device", "the on-device mode")
    assert app.page.locator("#live-where").get_by_label(re.compile("On this device")).is_checked()
    watched = len(sent)
    app.page.locator("#live-input").get_by_text(re.compile("Access Webcam", re.I)).click()
    app.wait_until(lambda: frames(app) >= 10, "10 frames analysed on the device", FIRST_FRAME_TIMEOUT_S)
    # The block is the device's: its pictures drawn, the smoothed top-k, the second opinion, boxes.
    for panel in PANELS:
        assert app.page.locator(f"#live-{panel} .fer-device canvas").is_visible()
    assert app.page.locator("#live-top-k .fer-device .fer-bar-label").first.inner_text() == "happy"
    assert "Second opinion" in app.text("#live-second-opinion .fer-device")
    app.page.locator("#fer-box-layer .fer-box").first.wait_for(timeout=30_000)
    assert app.page.locator("#fer-box-layer .fer-box").first.inner_text().startswith("#1 happy")
    # Gradio's Record (which streams frames to the server) is not offered in this mode.
    assert not app.page.locator("#live-input button", has_text="Record").is_visible()
    shown = frames(app)
    app.wait_until(lambda: frames(app) >= shown + 20, "frames still analysed", 60)
    # Nothing of a frame left the page: every request since the camera opened is small, and none
    # is an upload or a stream event.
    for request in sent[watched:]:
        body = request.post_data_buffer or b""
        assert len(body) <= MAX_BODY and b"base64" not in body, f"{request.method} {request.url}: {len(body)} bytes"
        assert "/upload" not in request.url and "/stream" not in request.url, request.url
    # Stop releases the camera and ends the analysis.
    app.page.locator("#live-device-run").click()
    app.wait_until(lambda: app.page.evaluate("() => !document.querySelector('#live-input video')?.srcObject"),
                   "the camera released")
    stopped = frames(app)
    app.page.wait_for_timeout(500)  # the loop would have analysed frames by now
    assert frames(app) == stopped
    assert_healthy(app)


def test_live_switches_to_the_server_path(app: AppPage) -> None:
    app.tab("Live")
    app.wait_until(lambda: where(app) == "device", "the on-device mode")
    app.check("live-where", "On the server")
    app.wait_until(lambda: where(app) == "server", "the server path")
    app.page.locator("#live-input").get_by_text(re.compile("Access Webcam", re.I)).click()
    app.page.locator("#live-input button", has_text="Record").click()
    app.wait_until(lambda: app.src("#live-saliency img").startswith("data:"), "a frame analysed by the server",
                   FIRST_FRAME_TIMEOUT_S)
    app.wait_until(lambda: frames(app) >= 3, "server results counted in data-frame", 60)
    assert app.page.locator("#live-saliency img").is_visible()
    app.page.locator("#live-input button", has_text="Stop").click()
    assert_healthy(app)


def test_a_page_that_may_not_run_it_falls_back_to_the_server(app: AppPage) -> None:
    app.page.goto(app.server.url + "?ondevice=off", wait_until="domcontentloaded")
    app.page.locator("#tabs [role=tab]").first.wait_for()
    app.tab("Live")
    app.wait_until(lambda: where(app) == "server", "the server path")
    # The radio follows once Gradio has drawn the tab (Live is not the first tab).
    app.wait_until(lambda: app.page.locator("#live-where").get_by_label("On the server").is_checked(),
                   "the server path chosen on the radio", timeout=10)
    note = app.text("#live-where-note")
    assert note.startswith("This browser cannot analyse here") and "server" in note and "\n" not in note
    assert_healthy(app)
