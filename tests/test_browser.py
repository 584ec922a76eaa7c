"""What a person does in the browser, in a real headless Chromium against ``python app.py``: open
the page, upload a photo, start the (fake) webcam and watch the panels update, pose an expression,
switch the saliency predictor, evaluate a zip of labelled faces.

One app server and one browser serve every test (`tests/browser_helpers.py`); each test has its own
browser context, so its own Gradio session, and leaves a screenshot in ``test-artifacts/browser/``.
"""

from __future__ import annotations

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


def test_upload_astronaut_shows_happy_with_overlays(app: AppPage) -> None:
    show_image(app)
    assert app.label("top-k-label") == "happy"
    assert app.text("#image-status").startswith("1 face found")
    assert app.page.locator("#face-gallery img").count() == 1
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

    # Another saliency predictor (Settings) redraws the picture's overlay without a new upload.
    before = views["saliency-overlay"]
    app.tab("Settings")
    app.choose("saliency-choice", "spectral-residual")
    app.wait_text("#settings-status", r"saliency shown: spectral-residual")
    app.tab("Image")
    app.wait_text("#view-captions", r"where humans would look \(spectral-residual\)")
    after = app.pixels("#saliency-overlay img")
    assert differs(before, after) > 5
    assert app.label("top-k-label") == "happy"

    # A picture without a face (the second example) is a message, not an error.
    app.page.locator("#image-examples button.gallery-item").nth(1).click()
    app.wait_text("#image-status", r"No face found")
    assert app.page.locator("#face-gallery img").count() == 0
    assert_healthy(app)


def test_live_webcam_updates_counts_and_follows_settings(app: AppPage) -> None:
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

    # Another saliency predictor applies to the running stream.
    before = app.pixels("#live-saliency img")
    app.tab("Settings")
    app.choose("saliency-choice", "spectral-residual")
    app.wait_text("#settings-status", r"saliency shown: spectral-residual")
    app.tab("Live")
    app.wait_text("#live-saliency", r"\(spectral-residual\)", timeout=30)
    after = app.pixels("#live-saliency img")
    assert differs(before, after) > 5
    assert_healthy(app)


def test_evaluate_zip_shows_accuracy_and_confusion_plot(app: AppPage, tmp_path: Path) -> None:
    run_evaluation(app, make_eval_zip(tmp_path / "faces.zip"))
    assert "Accuracy 100.0%" in app.text("#eval-accuracy") and "n=1" in app.text("#eval-accuracy")
    assert "1 skipped" in app.text("#eval-status")
    plot = app.pixels("#eval-plot img")
    assert plot.shape[0] > 100 and plot.std() > 20
    table = app.text("#eval-table")
    assert "happy" in table and "sad" in table
    assert_healthy(app)
