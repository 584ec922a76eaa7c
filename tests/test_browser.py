"""What a person does in the browser, in a real headless Chromium against ``python app.py``: open
the page, upload a photo, start the (fake) webcam and watch the panels update, pose an expression,
switch the saliency predictor, evaluate a zip of labelled faces, export the session's counts. Each
flow also checks that nothing of what the user gave stays on the server's disk: uploads are deleted
once read and every picture and download comes back inline (``data:`` URLs).

One app server and one browser serve every test (`tests/browser_helpers.py`); each test has its own
browser context, so its own Gradio session, and leaves a screenshot in ``test-artifacts/browser/``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from .browser_helpers import (
    ARTIFACTS,
    AppPage,
    AppServer,
    app_page,
    make_eval_zip,
    own_picture,
    run_evaluation,
    session_frames,
    show_image,
    start_webcam,
)

# The shared app server (and browser) fixtures.
pytest_plugins = ["tests.browser_helpers"]

pytestmark = pytest.mark.browser


@pytest.fixture
def app(browser, app_server: AppServer, request: pytest.FixtureRequest) -> Iterator[AppPage]:
    """A fresh user on the app; the page is saved as ``test-artifacts/browser/<test>.png`` whatever
    the outcome."""
    with app_page(browser, app_server) as page:
        try:
            yield page
        finally:
            page.screenshot(ARTIFACTS / f"{request.node.name}.png")


def assert_healthy(app: AppPage) -> None:
    problems = app.problems()
    assert not problems, "\n".join(problems)


def assert_nothing_left(app: AppPage, before: set[Path]) -> None:
    """No file appeared on the server's disk since ``before`` (`AppServer.files`)."""
    left = sorted(str(p) for p in app.server.files() - before)
    assert not left, f"left on the server's disk: {left}"


def differs(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two pictures of the same size, in grey levels."""
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_page_loads_without_errors(app: AppPage) -> None:
    assert app.page.title() == "fer: facial expressions with visual saliency"
    assert "Expressions are facial movements, not feelings" in app.text("#header")
    tabs = app.page.get_by_role("tab").all_inner_texts()
    assert tabs == ["Live", "Image", "Video", "Evaluate", "Settings", "About"]
    assert "Press the camera button" in app.text("#live-status")
    shown = {"Image": "#upload-image", "Video": "#video-run", "Evaluate": "#eval-run",
             "Settings": "#settings-status", "About": "#about"}
    for name, selector in shown.items():
        app.tab(name)
        assert app.page.locator(selector).is_visible(), f"{name} tab: {selector} not shown"
    assert "Responsible use" in app.text("#about") and "Privacy" in app.text("#about")
    app.tab("Settings")
    assert "Model mini_xception_fer2013" in app.text("#settings-status")
    assert_healthy(app)


def test_upload_astronaut_shows_happy_with_overlays(app: AppPage, tmp_path: Path) -> None:
    before = app.server.files()
    # The user's own photo (not byte for byte the shipped example, whose copy the app keeps).
    show_image(app, own_picture(tmp_path / "me.png"))
    assert app.label("top-k-label") == "happy"
    assert app.text("#image-status").startswith("1 face found")
    assert app.page.locator("#face-gallery img").count() == 1
    # The face's thumbnail is whole inside the 170 px panel, one square in a row of 4 (a lone face once
    # spanned the panel's width and showed only its forehead).
    panel, thumbnail = app.box("#face-gallery"), app.box("#face-gallery img")
    assert panel["height"] <= 180
    assert panel["x"] <= thumbnail["x"] and thumbnail["x"] + thumbnail["width"] <= panel["x"] + panel["width"]
    assert panel["y"] <= thumbnail["y"] and thumbnail["y"] + thumbnail["height"] <= panel["y"] + panel["height"]
    assert 100 <= thumbnail["height"] and thumbnail["width"] <= panel["width"] / 3
    assert app.page.locator("#face-gallery img").evaluate("img => getComputedStyle(img).objectFit") == "contain"
    annotated = app.pixels("#image-annotated img")
    assert annotated.shape[0] > 100 and annotated.std() > 20
    views = {elem_id: app.pixels(f"#{elem_id} img") for elem_id in ("saliency-overlay", "cnn-input", "gradcam")}
    for elem_id, picture in views.items():
        assert picture.std() > 10, f"{elem_id} looks blank"
    # What the CNN sees is the grey 64x64 input of the shipped model; the overlays are in colour.
    cnn = views["cnn-input"].astype(int)
    assert np.abs(cnn[..., 0] - cnn[..., 2]).max() <= 2
    assert np.abs(views["saliency-overlay"][..., 0].astype(int) - views["saliency-overlay"][..., 2]).mean() > 10
    assert "face-prior" in app.text("#view-captions") and "Grad-CAM for happy" in app.text("#view-captions")
    for selector in ("#image-annotated img", "#face-gallery img", "#saliency-overlay img", "#cnn-input img",
                     "#gradcam img"):
        assert app.src(selector).startswith("data:image/jpeg;base64,"), selector
    assert_nothing_left(app, before)  # the upload was deleted once read

    # Another saliency predictor (Settings) redraws the picture's overlay without a new upload.
    files_before, before = before, views["saliency-overlay"]
    app.tab("Settings")
    app.choose("saliency-choice", "spectral-residual")
    app.wait_text("#settings-status", r"saliency shown: spectral-residual")
    app.tab("Image")
    app.wait_text("#view-captions", r"where humans would look \(spectral-residual\)")
    after = app.pixels("#saliency-overlay img")
    assert differs(before, after) > 5
    assert app.label("top-k-label") == "happy"
    # Another face in the gallery would be picked the same way: the selection redraws the views.
    app.page.locator("#face-gallery img").first.click()
    app.wait_until(lambda: "selected" in (app.page.locator("#face-gallery button.thumbnail-item").first
                                          .get_attribute("class") or ""), "the clicked face marked selected")
    app.wait_text("#view-captions", r"where humans would look \(spectral-residual\)")

    # A picture without a face (the second example) is a message, not an error.
    app.page.locator("#image-examples button.gallery-item").nth(1).click()
    app.wait_text("#image-status", r"No face found")
    assert app.page.locator("#face-gallery img").count() == 0
    # The shipped examples are shared by every user: kept, so the example works again.
    app.page.locator("#image-examples button.gallery-item").nth(0).click()
    app.wait_text("#image-status", r"1 face found")
    assert_nothing_left(app, files_before)
    assert_healthy(app)  # no failed request: the page never asked for the deleted upload again


def test_live_webcam_updates_counts_and_follows_settings(app: AppPage) -> None:
    files_before = app.server.files()
    start_webcam(app)
    app.wait_text("#live-top-k [data-testid=label-output-value]", r"^happy$")
    assert "(face-prior)" in app.text("#live-saliency")
    # New frames keep arriving: the tracked frame and the saliency overlay are redrawn.
    first_frame = app.src("#live-annotated img")
    app.wait_src_change("#live-annotated img", first_frame, timeout=30)
    first_overlay = app.src("#live-saliency img")
    app.wait_src_change("#live-saliency img", first_overlay, timeout=30)
    assert app.pixels("#live-gradcam img").std() > 10 and app.pixels("#live-input img").std() > 10

    # Posing: every analysed frame is counted in the session confusion matrix.
    assert session_frames(app) == 0
    app.choose("posing-dropdown", "happy")
    app.wait_text("#session-stats", r"[1-9]\d* frames counted", timeout=30)
    counted = session_frames(app)
    app.wait_until(lambda: session_frames(app) > counted, f"more than {counted} frames counted", timeout=30)
    assert "happy 100% of" in app.text("#session-stats")
    assert "counting: posing happy" in app.text("#live-status")

    # The session's counts download as an inline CSV, never a file on the server.
    app.page.locator("#session-export").click()
    link = app.page.locator("#session-csv a[download]")
    link.wait_for()
    href = link.get_attribute("href") or ""
    assert href.startswith("data:text/csv;base64,") and link.get_attribute("download") == "session-confusion.csv"
    assert base64.b64decode(href.partition(",")[2]).decode().splitlines()[0].startswith("posed \\ predicted,")

    # Another saliency predictor applies to the running stream.
    before = app.pixels("#live-saliency img")
    app.tab("Settings")
    app.choose("saliency-choice", "spectral-residual")
    app.wait_text("#settings-status", r"saliency shown: spectral-residual")
    app.tab("Live")
    app.wait_text("#live-saliency", r"\(spectral-residual\)", timeout=30)
    after = app.pixels("#live-saliency img")
    assert differs(before, after) > 5
    assert_nothing_left(app, files_before)
    assert_healthy(app)


def test_evaluate_zip_shows_accuracy_and_confusion_plot(app: AppPage, tmp_path: Path) -> None:
    before = app.server.files()
    run_evaluation(app, make_eval_zip(tmp_path / "faces.zip"))
    assert "Accuracy 100.0%" in app.text("#eval-accuracy") and "n=1" in app.text("#eval-accuracy")
    assert "1 skipped" in app.text("#eval-status")
    plot = app.pixels("#eval-plot img")
    assert plot.shape[0] > 100 and plot.std() > 20
    table = app.text("#eval-table")
    assert "happy" in table and "sad" in table
    assert app.src("#eval-plot img").startswith("data:image/png;base64,")
    # The archive was deleted once evaluated: its widget is emptied rather than left showing it.
    app.wait_until(lambda: "faces.zip" not in app.text("#eval-zip"), "the archive's widget emptied")
    assert_nothing_left(app, before)
    assert_healthy(app)
