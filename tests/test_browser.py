"""What a visitor sees and does, in a real headless Chromium against ``python app.py``, on a
laptop (1440×900) and a phone (390×844).

Layout: on Live (webcam running) and Image (a picture analysed) the result block — input |
saliency overlay, what the CNN sees, Grad-CAM, top-k, confusion statistics — fits the laptop's
first screen beside the input, and stacks on the phone with every picture at least 300 px wide;
no title covers its picture, no sideways scrolling, every tab in the tab bar, a short header on
the phone, and no console error or warning. Flows: ten different uploads in a row, the examples
and the face picker, the fake webcam with posing and Stop, a refused camera, the video example
sampled at two rates, Evaluate quoted on the Image tab, Settings redrawing the Image tab and
warning about saliency input, Gradio's API page.

One app server and one browser serve every test (`tests.browser_helpers`, `tests.browser_page`);
each test opens its own browser contexts, so its own Gradio sessions, and leaves a screenshot of
each in ``$FER_TEST_ARTIFACTS/browser/`` (default ``<tmp>/fer-test-artifacts``).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pytest

from .browser_helpers import (
    ARTIFACTS,
    ASSETS,
    ASTRONAUT,
    NO_FACE,
    PHONE,
    SMALL_LAPTOP,
    VIEWPORT,
    AppServer,
    make_eval_zip,
    own_picture,
)
from .browser_page import (
    AppPage,
    analyse_video,
    app_page,
    camera_tracks,
    click_example,
    launch_chromium,
    load_video_example,
    run_evaluation,
    session_frames,
    show_image,
    start_webcam,
    stop_webcam,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, FloatRect, ViewportSize

# The shared app server and browser fixtures.
pytest_plugins = ["tests.browser_helpers", "tests.browser_page"]

pytestmark = pytest.mark.browser

COLLAGE = ASSETS / "astronaut-collage.jpg"
TABS = ["Image", "Live", "Video", "Evaluate", "Settings", "About"]
PANELS = ("saliency", "model-input", "gradcam")
#: Narrowest picture view on a phone, and tallest header, in CSS pixels.
MIN_PICTURE_PX = 300
MAX_PHONE_HEADER_PX = 120
#: Rounding of layout coordinates, in CSS pixels.
SLACK = 0.5


#: Gradio's API page probes routes of features this app turns off (MCP server, monitoring): a
#: 404 is how the page learns they are off, so Chromium logs it however the app is configured.
API_PAGE_PROBES = ("/gradio_api/mcp/schema", "/monitoring/summary",
                   "Failed to load resource: the server responded with a status of 404")

@pytest.fixture
def open_app(browser: Browser, app_server: AppServer, request: pytest.FixtureRequest) -> Iterator[Callable[..., AppPage]]:
    """Opens fresh users on the app (``open_app(viewport)``); each page is saved as
    ``ARTIFACTS/<test>-<n>.png`` whatever the outcome."""
    with contextlib.ExitStack() as stack:
        pages: list[AppPage] = []

        def open_page(viewport: ViewportSize = VIEWPORT) -> AppPage:
            pages.append(stack.enter_context(app_page(browser, app_server, viewport)))
            return pages[-1]

        try:
            yield open_page
        finally:
            for number, page in enumerate(pages):
                page.screenshot(ARTIFACTS / f"{request.node.name}-{number}.png")


@pytest.fixture
def app(open_app: Callable[..., AppPage]) -> AppPage:
    """A fresh user on the app at the laptop's size."""
    return open_app()


# --------------------------------------------------------------------------- checks


def assert_healthy(app: AppPage, allowed: Sequence[str] = ()) -> None:
    """No console error or warning, failed request, error toast or server traceback
    (`AppPage.problems`; ``allowed``: substrings of problems that are no fault of the app)."""
    problems = app.problems(allowed)
    assert not problems, "\n".join(problems)


def block_ids(tab: str) -> list[str]:
    """The result block's seven elements in reading order: input, the three maps, top-k, second
    opinion, trust."""
    return [f"#{tab}-{part}" for part in ("input", *PANELS, "top-k", "second-opinion", "confusion")]


def assert_block_filled(app: AppPage, tab: str) -> None:
    """Every panel of the block shows a result: the maps, the top-k, the second opinion and the
    card's published figure with its source, n and interval."""
    for panel in PANELS:
        assert app.src(f"#{tab}-{panel} img").startswith("data:"), f"#{tab}-{panel}: no picture"
    assert app.label(f"{tab}-top-k") == "happy"
    assert re.search(r"face-api \(trained on other data\): happy \d+% · agrees", app.text(f"#{tab}-second-opinion"))
    trust = app.text(f"#{tab}-confusion")
    for part in ("about 66 %", "n = 3,589", "95 % interval 64–68 %", "arXiv 1710.07557", "not measured by us"):
        assert part in trust, f"#{tab}-confusion: no {part!r} in {trust!r}"


def assert_honest_maps(app: AppPage, tab: str) -> None:
    """Each map says what made it and carries its own colour key, human gaze and Grad-CAM in two
    different colour maps; every panel has its ⓘ line."""
    assert app.text(f"#{tab}-saliency .fer-title") == "Typical human gaze on faces"
    assert app.text(f"#{tab}-gradcam .fer-title") == "Where mini-Xception looked"
    keys = [app.page.locator(f"#{tab}-{p} .fer-key-bar").evaluate("e => getComputedStyle(e).backgroundImage")
            for p in ("saliency", "gradcam")]
    assert all(k.startswith("linear-gradient") for k in keys) and keys[0] != keys[1], keys
    for panel in PANELS:
        assert app.page.locator(f"#{tab}-{panel} .fer-info").is_visible(), f"#{tab}-{panel}: no ⓘ line"


def overlap(a: FloatRect, b: FloatRect) -> bool:
    """Whether two rectangles share more than a rounding's width."""
    return (a["x"] + SLACK < b["x"] + b["width"] and b["x"] + SLACK < a["x"] + a["width"]
            and a["y"] + SLACK < b["y"] + b["height"] and b["y"] + SLACK < a["y"] + a["height"])


def assert_panels_readable(app: AppPage, tab: str) -> None:
    """Each panel's title sits above its picture and its caption below, none cut off; the top-k's
    badge is clear of its top answer."""
    for panel in PANELS:
        scope = f"#{tab}-{panel}"
        title, picture, caption = (app.box(f"{scope} {part}") for part in (".fer-title", ".fer-picture", ".fer-caption"))
        assert title["y"] + title["height"] <= picture["y"] + SLACK, f"{scope}: title over the picture"
        assert picture["y"] + picture["height"] <= caption["y"] + SLACK, f"{scope}: caption over the picture"
        cut = app.page.locator(f"{scope} .fer-title").evaluate("e => e.scrollWidth > e.clientWidth + 1")
        assert not cut, f"{scope}: title cut off"
    badge = app.box(f"#{tab}-top-k [data-testid=block-label]")
    answer = app.text_box(f"#{tab}-top-k [data-testid=label-output-value]")
    assert not overlap(badge, answer), f"#{tab}-top-k: the badge covers the answer"


def assert_tab_bar_complete(app: AppPage) -> None:
    """All six tabs are buttons drawn inside the viewport; Gradio's "⋯" menu holds none of them."""
    tabs = app.page.locator("#tabs [role=tab]")
    assert tabs.all_inner_texts() == TABS
    width, _ = app.viewport()
    for index in range(tabs.count()):
        button = tabs.nth(index)
        box = button.bounding_box()
        assert button.is_visible() and box is not None, f"tab {TABS[index]} hidden"
        assert box["x"] >= 0 and box["x"] + box["width"] <= width + SLACK, f"tab {TABS[index]} off screen: {box}"
    hidden = app.page.locator("#tabs .overflow-dropdown button").all_inner_texts()
    assert not hidden, f"tabs behind the ⋯ menu: {hidden}"


def assert_no_sideways_scrolling(app: AppPage) -> None:
    width, _ = app.viewport()
    assert app.scroll_width() <= width, f"page {app.scroll_width():.0f} px wide in a {width:.0f} px viewport"


# --------------------------------------------------------------------------- layout


@pytest.mark.parametrize("viewport", [VIEWPORT, SMALL_LAPTOP], ids=["1440x900", "1280x720"])
@pytest.mark.parametrize("tab", ["image", "live"])
def test_result_block_fits_a_laptops_first_screen(open_app: Callable[..., AppPage], tab: str,
                                                  viewport: ViewportSize) -> None:
    """Image: the worked example a visitor arrives on, no click; Live: the fake webcam."""
    app = open_app(viewport)
    if tab == "image":
        assert app.page.get_by_role("tab", name="Image", exact=True).get_attribute("aria-selected") == "true"
    else:
        start_webcam(app)
    assert_block_filled(app, tab)
    app.page.evaluate("scrollTo(0, 0)")
    width, height = app.viewport()
    boxes = {selector: app.box(selector) for selector in block_ids(tab)}
    for selector, box in boxes.items():
        assert box["x"] >= 0 and box["y"] >= 0, f"{selector} at {box}"
        assert box["x"] + box["width"] <= width + SLACK and box["y"] + box["height"] <= height + SLACK, \
            f"{selector} not on the first screen: {box}"
    source = boxes[f"#{tab}-input"]
    for selector in block_ids(tab)[1:]:
        assert source["x"] + source["width"] <= boxes[selector]["x"] + SLACK, f"{selector} not right of the input"
    # The three panels side by side, the answer (top-k, second opinion, trust) below them.
    panels = [boxes[f"#{tab}-{p}"] for p in PANELS]
    assert len({round(p["y"]) for p in panels}) == 1 and panels[0]["x"] < panels[1]["x"] < panels[2]["x"]
    for selector in block_ids(tab)[4:]:
        assert boxes[selector]["y"] >= panels[0]["y"] + panels[0]["height"] - SLACK
    assert_panels_readable(app, tab)
    assert_honest_maps(app, tab)
    assert_tab_bar_complete(app)
    assert_no_sideways_scrolling(app)
    assert_healthy(app)


@pytest.mark.parametrize("tab", ["image", "live"])
def test_a_phone_shows_the_answer_under_the_picture_and_the_maps_as_thumbnails(open_app: Callable[..., AppPage],
                                                                                tab: str) -> None:
    app = open_app(PHONE)
    if tab == "live":
        start_webcam(app)
    assert_block_filled(app, tab)
    app.page.evaluate("scrollTo(0, 0)")
    width, height = app.viewport()
    picture = app.box(f"#{tab}-input")
    answer = [app.box(f"#{tab}-{part}") for part in ("top-k", "second-opinion", "confusion")]
    # Directly under the picture (Live: its one-line status between), in order, within one screen.
    assert 0 <= answer[0]["y"] - (picture["y"] + picture["height"]) < 120, (picture, answer[0])
    for above, below in zip(answer, answer[1:], strict=False):
        assert above["y"] + above["height"] <= below["y"] + SLACK
    assert answer[-1]["y"] + answer[-1]["height"] - answer[0]["y"] <= height, "the answer is taller than a screen"
    # Then the three maps, one row of thumbnails.
    maps = [app.box(f"#{tab}-{p}") for p in PANELS]
    assert len({round(m["y"]) for m in maps}) == 1 and maps[0]["x"] < maps[1]["x"] < maps[2]["x"]
    assert maps[0]["y"] >= answer[-1]["y"] + answer[-1]["height"] - SLACK
    assert all(m["width"] < width / 3 for m in maps)
    # A tap opens a map large, over the page; another tap closes it.
    thumbnail = app.page.locator(f"#{tab}-gradcam .fer-panel")
    thumbnail.click()
    app.wait_until(lambda: app.box(f"#{tab}-gradcam .fer-picture")["width"] >= MIN_PICTURE_PX, "the map opened large")
    assert app.page.locator(f"#{tab}-gradcam .fer-key").is_visible()  # its key and ⓘ line come with it
    thumbnail.click()
    app.wait_until(lambda: app.box(f"#{tab}-gradcam .fer-picture")["width"] < width / 3, "the map closed")
    header = app.box("#header")
    assert header["height"] < MAX_PHONE_HEADER_PX, f"header {header['height']:.0f} px high"
    assert_tab_bar_complete(app)
    assert_no_sideways_scrolling(app)
    assert_healthy(app)


def test_every_tab_reachable_and_fitting_on_a_phone(open_app: Callable[..., AppPage]) -> None:
    app = open_app(PHONE)
    assert_tab_bar_complete(app)
    width, _ = app.viewport()
    # Right edges of visible inline code, and of the block holding each.
    code_edges = """() => Array.from(document.querySelectorAll('code')).filter((c) => c.checkVisibility()).map((c) => {
        let block = c.parentElement;
        while (getComputedStyle(block).display.startsWith('inline')) block = block.parentElement;
        return [c.textContent.slice(0, 40), c.getBoundingClientRect().right, block.getBoundingClientRect().right];
    })"""
    for name in TABS:
        app.tab(name)  # by its button in the tab bar
        assert_no_sideways_scrolling(app)
        for text, right, block_right in app.page.evaluate(code_edges):
            assert right <= min(block_right, width) + SLACK, f"{name} tab: code {text!r} overflows"
    # The model card's table: its names whole ("Archit|ecture" was not), no empty header row.
    assert not app.broken_words("#about td:first-child"), app.broken_words("#about td:first-child")
    headers = app.page.locator("#about thead tr")
    for index in range(headers.count()):
        row = headers.nth(index)
        assert not row.is_visible() or row.inner_text().strip(), "About: an empty table header row"
    assert_healthy(app)


# --------------------------------------------------------------------------- the Image tab


def read_bgr(path: Path) -> np.ndarray:
    """``(H, W, 3)`` uint8 BGR, as OpenCV reads ``path``."""
    picture = cv2.imread(str(path))
    if picture is None:
        raise OSError(f"could not read {path}")
    return picture


def varied_pictures(folder: Path) -> list[Path]:
    """Ten different pictures made from the shipped ones: the astronaut as the user's own photo,
    mirrored, cropped, shrunk, framed, darkened, in grey; the collage, mirrored; the coffee cup.
    Each has its own size or content, so each result can be told from the one before."""
    astronaut, collage = read_bgr(ASTRONAUT), read_bgr(COLLAGE)
    height, width = astronaut.shape[:2]
    pictures = {
        "mine.png": read_bgr(own_picture(folder / "own.png")),
        "mirrored.jpg": cv2.flip(astronaut, 1),
        "cropped.png": astronaut[:, 60:],
        "small.jpg": cv2.resize(astronaut, (width * 3 // 5, height * 3 // 5), interpolation=cv2.INTER_AREA),
        "framed.png": cv2.copyMakeBorder(astronaut, 0, 0, 120, 120, cv2.BORDER_CONSTANT, value=(128, 128, 128)),
        "darker.jpg": cv2.convertScaleAbs(astronaut, alpha=0.7),
        "grey.png": cv2.cvtColor(cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR),
        "collage.jpg": collage,
        "coffee.png": read_bgr(NO_FACE),
        "collage-mirrored.png": cv2.flip(collage, 1),
    }
    paths = []
    for name, picture in pictures.items():
        path = folder / name
        if not cv2.imwrite(str(path), picture):
            raise OSError(f"could not write {path}")
        paths.append(path)
    return paths


def test_ten_different_uploads_in_a_row_each_get_their_own_result(app: AppPage, client: Any, tmp_path: Path) -> None:
    from gradio_client import handle_file

    for path in varied_pictures(tmp_path):
        # What this picture gives, asked through the stateless API (the same analysis).
        _, expected = client.predict(handle_file(str(path)), api_name="/predict")
        status = show_image(app, path)
        assert status == expected["message"].replace("**", ""), f"{path.name}: {status!r}"
        faces = expected["faces"]
        assert app.label("image-top-k") == (faces[0]["label"] if faces else ""), path.name
        # The input widget shows this picture (boxes drawn on it), not the one before.
        shown = app.pixels("#image-input img")
        picture = read_bgr(path)
        assert abs(shown.shape[1] / shown.shape[0] - picture.shape[1] / picture.shape[0]) < 0.03, path.name
        assert app.page.locator("#image-faces").is_visible() == (len(faces) > 1), path.name
    assert len(app.uploads) == 10, app.uploads  # each picture uploaded once
    log = app.server.log(app.log_start)
    for refusal in ("not uploaded", "no longer in memory", "no such file"):
        assert refusal not in log
    assert_healthy(app)


#: Per face-table row, whether its text is cut or hidden sideways: any cell, the table or a box
#: around it (up to the page) whose content is wider than what it shows.
HIDDEN_OVERFLOW = """(selector) => {
    const cut = [];
    const root = document.querySelector(selector);
    for (const cell of root.querySelectorAll('caption, th, td, button')) {
        if (cell.scrollWidth > cell.clientWidth + 1) cut.push(cell.textContent.trim());
    }
    for (let box = root; box && box !== document.body; box = box.parentElement) {
        if (box.scrollWidth > box.clientWidth + 1) cut.push(`${box.tagName}#${box.id}.${box.className}`);
    }
    return cut;
}"""


def test_examples_and_the_face_table(open_app: Callable[..., AppPage], client: Any) -> None:
    """One face or none: no table. Five faces: one table in reading order (left to right by box),
    each row a thumbnail, the top-1 with its probability and the second opinion, nothing cut or
    scrolled sideways at 1440×900, 1280×720 and 390×844; a click on a row, or Enter on its button
    (reached with Tab), shows that face, and the status says which."""
    from gradio_client import handle_file

    _, expected = client.predict(handle_file(str(COLLAGE)), api_name="/predict")
    order = [f["face"] - 1 for f in sorted(expected["faces"], key=lambda f: (f["box"][0], f["box"][1]))]
    app = open_app(VIEWPORT)
    assert click_example(app, 0).startswith("1 face") and app.label("image-top-k") == "happy"
    assert not app.page.locator("#image-faces").is_visible()
    assert app.page.locator("#image-input img").first.get_attribute("alt") == \
        "Your picture with 1 face boxed and numbered, left to right: #1 happy 99%."
    assert click_example(app, 2).startswith("No face")
    assert app.page.locator("#image-gradcam img").count() == 0  # placeholders, not the last face
    assert not app.page.locator("#image-faces").is_visible()
    for viewport in (VIEWPORT, SMALL_LAPTOP, PHONE):
        page = app if viewport is VIEWPORT else open_app(viewport)
        assert click_example(page, 1).startswith("5 faces; showing #1")
        rows = page.page.locator("#image-faces tbody tr")
        assert rows.count() == 5 and page.page.locator("#image-gallery, #image-faces select").count() == 0
        assert [int(rows.nth(i).get_attribute("data-face") or -1) for i in range(5)] == order, viewport
        assert (page.page.locator("#image-input img").first.get_attribute("alt") or "").startswith(
            "Your picture with 5 faces boxed and numbered, left to right: #")
        for i in range(5):
            face = expected["faces"][order[i]]
            cells = rows.nth(i).locator("th, td")
            assert cells.nth(0).locator("img.fer-face-thumb").get_attribute("src", timeout=2000).startswith("data:")
            assert cells.nth(0).inner_text().strip() == f"#{face['face']}"
            assert cells.nth(1).inner_text().startswith(face["label"] + " ") and "%" in cells.nth(1).inner_text()
            assert re.fullmatch(r"face-api: \w+ \d+%, (agrees|disagrees)", cells.nth(2).inner_text().strip())
        page.page.locator("#image-faces").scroll_into_view_if_needed()
        assert not page.page.evaluate(HIDDEN_OVERFLOW, "#image-faces"), viewport
        assert not page.broken_words("#image-faces caption, #image-faces th, #image-faces td"), viewport
        width, _ = page.viewport()
        assert page.scroll_width() <= width, f"page {page.scroll_width():.0f} px wide at {viewport}"
        table = page.box("#image-faces table")
        assert table["x"] >= -SLACK and table["x"] + table["width"] <= width + SLACK, viewport
    # A click on a row shows that face (the views redraw, the row is marked, the status follows).
    current = app.page.locator('#image-faces tr[aria-current="true"]')
    assert current.count() == 1 and current.get_attribute("data-face") == "0"
    shown = app.src("#image-gradcam img")
    app.page.locator(f'#image-faces tr[data-face="{order[-1]}"] td').first.click()
    app.wait_src_change("#image-gradcam img", shown)
    app.wait_text("#image-status", rf"^5 faces; showing #{order[-1] + 1} ")
    assert app.label("image-top-k") == expected["faces"][order[-1]]["label"]
    assert current.get_attribute("data-face") == str(order[-1])
    # The keyboard: Tab reaches the next row's button, Enter shows its face, focus stays on it.
    buttons = app.page.locator("#image-faces button.fer-face-pick")
    buttons.nth(0).focus()
    app.page.keyboard.press("Tab")
    assert app.page.evaluate("document.activeElement.closest('tr')?.dataset.face") == str(order[1])
    shown = app.src("#image-gradcam img")
    app.page.keyboard.press("Enter")
    app.wait_src_change("#image-gradcam img", shown)
    app.wait_text("#image-status", rf"^5 faces; showing #{order[1] + 1} ")
    assert app.page.evaluate("document.activeElement.closest('tr')?.dataset.face") == str(order[1])
    assert not app.server_warnings(), app.server_warnings()
    assert_healthy(app)


def test_settings_redraw_the_image_and_warn_about_saliency_input(app: AppPage, tmp_path: Path) -> None:
    show_image(app, own_picture(tmp_path / "me.png"))
    assert "predictor: face-prior" in app.text("#image-saliency")
    before = app.pixels("#image-saliency img")
    app.tab("Settings")
    assert "⚠️" not in app.text("#settings-status")
    app.choose("settings-saliency", "spectral-residual")
    app.wait_text("#settings-status", r"saliency shown: spectral-residual")
    app.tab("Image")
    app.wait_text("#image-saliency", r"predictor: spectral-residual")
    assert app.text("#image-saliency .fer-title") == "What stands out in the image: not human gaze"
    after = app.pixels("#image-saliency img")
    assert float(np.abs(before.astype(np.int16) - after.astype(np.int16)).mean()) > 5
    assert app.label("image-top-k") == "happy" and len(app.uploads) == 1  # redrawn from memory, not uploaded again
    # Feeding the CNN face × saliency, which the shipped model was not trained on, is warned of.
    app.tab("Settings")
    app.check("settings-saliency-input", "on")
    app.wait_text("#settings-status", r"⚠️")
    assert_healthy(app)


def test_a_second_opinion_beside_the_answer(app: AppPage) -> None:
    """The other network (trained on other data) answers beside the top-k, says whether it agrees,
    and follows the model chosen in Settings; the video's status counts their agreement."""
    assert click_example(app, 0).startswith("1 face")
    opinion = app.text("#image-second-opinion")
    assert "Second opinion" in opinion and "face-api (trained on other data): happy" in opinion and "agrees" in opinion
    app.tab("Settings")
    app.choose("settings-model", "face-api (trained on web images)")
    app.wait_text("#settings-status", r"Model \*?\*?face-api \(trained on web images\)")
    app.tab("Image")
    app.wait_text("#image-second-opinion", r"mini-Xception \(trained on other data\): happy")
    # Nothing is published for face-api: the trust panel says so, and quotes the agreement instead.
    trust = app.wait_text("#image-confusion", r"face-api: no accuracy is published").string
    assert re.search(r"agree on 1 of 1 faces on this face \(95 % interval 21–100 %\)", trust), trust
    assert "about 66 %" not in trust
    app.tab("Settings")
    app.choose("settings-model", "both, averaged (ensemble of the two)")
    app.wait_text("#settings-status", r"Model \*?\*?both, averaged")
    app.tab("Image")
    # The ensemble's answer is the average of both: the panel shows both, not one half of itself.
    app.wait_text("#image-second-opinion", r"The ensemble's two networks\s+mini-Xception: happy \d+% · "
                                           r"face-api: happy \d+% · they agree")
    trust = app.text("#image-confusion")
    assert "about 66 %" in trust and "face-api: no accuracy is published" in trust
    load_video_example(app)
    assert re.search(r"agreed on \d+% of \d+ faces", analyse_video(app, "2"))
    assert_healthy(app)


def test_evaluate_is_quoted_beside_the_image_tabs_answer(app: AppPage, tmp_path: Path) -> None:
    run_evaluation(app, make_eval_zip(tmp_path / "faces.zip"))
    accuracy = app.text("#evaluate-accuracy")
    assert "Accuracy 100.0%" in accuracy and "n=1" in accuracy
    assert "95 % interval 21–100 %" in accuracy and "over 1 of 7 expressions" in accuracy
    # The matrix as a table whose numbers are text at a readable size.
    cells = app.page.locator("#evaluate-accuracy table td")
    assert cells.count() >= 2 and float(cells.first.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")) >= 11
    assert "1 skipped" in app.text("#evaluate-status")
    assert "happy" in app.text("#evaluate-table")
    click_example(app, 0)
    # The archive holds two labelled images (the coffee cup has no face and is skipped).
    trust = app.wait_text("#image-confusion", r"Measured in this session on your 2 images").string
    # n, interval and label coverage with the measured figure; the card's published one stays beside it.
    assert re.search(r"100 % right on n = 1 \(95 % interval 21–100 %\), over 1 of 7 expressions \(happy\)", trust), trust
    assert "When it says happy" in trust and "about 66 %" in trust
    assert_healthy(app)


# --------------------------------------------------------------------------- Live, Video, API page


def test_webcam_updates_the_panels_counts_poses_and_stops(app: AppPage) -> None:
    start_webcam(app)
    assert app.label("live-top-k") == "happy"
    for panel in PANELS:  # new frames keep arriving
        app.wait_src_change(f"#live-{panel} img", app.src(f"#live-{panel} img"), timeout=30)
    # The tracked face is boxed on the preview itself, over the face: inside the video's picture.
    app.page.locator("#fer-box-layer .fer-box").first.wait_for(timeout=30_000)
    # One script reads the box and the video together: the boxes are redrawn as frames arrive.
    text, drawn, video = app.page.evaluate("""() => {
        const box = document.querySelector('#fer-box-layer .fer-box');
        const rect = (e) => { const r = e.getBoundingClientRect(); return {x: r.x, y: r.y, width: r.width, height: r.height}; };
        return [box.textContent, rect(box), rect(document.querySelector('#live-input video'))];
    }""")
    assert text.startswith("#1 happy") and drawn["width"] > 20 and drawn["height"] > 20
    assert video["x"] <= drawn["x"] and drawn["x"] + drawn["width"] <= video["x"] + video["width"] + SLACK
    assert video["y"] <= drawn["y"] and drawn["y"] + drawn["height"] <= video["y"] + video["height"] + SLACK
    # The fake camera shows the astronaut (face in the upper middle of the picture).
    assert video["y"] < drawn["y"] < video["y"] + video["height"] / 2
    assert session_frames(app) == 0
    app.choose("live-posing", "happy")
    app.wait_text("#live-session", r"[1-9]\d* frames counted", timeout=30)
    counted = session_frames(app)
    app.wait_until(lambda: session_frames(app) > counted, f"more than {counted} frames counted", timeout=30)
    assert "happy 100% of" in app.text("#live-session")
    stop_webcam(app)
    assert not app.page.locator("#live-status").is_visible()  # the note replaces the last frame's status
    assert app.page.locator("#fer-box-layer .fer-box").count() == 0  # no box on a stopped camera

    def settled() -> bool:  # frames already sent may still come back, then nothing changes
        shown = app.src("#live-saliency img")
        time.sleep(1.5)
        return app.src("#live-saliency img") == shown

    app.wait_until(settled, "the panels standing still after Stop", timeout=15)
    assert_healthy(app)


def test_stop_releases_the_camera_and_record_reopens_it(app: AppPage) -> None:
    start_webcam(app)
    assert "live" in camera_tracks(app)
    assert not app.page.locator("#live-how-to").is_visible()  # streaming: the how-to is done
    for _ in range(2):  # twice Stop then Record: each Stop ends every track the page was ever given
        stop_webcam(app)
        app.wait_until(lambda: set(camera_tracks(app)) == {"ended"}, "every camera track ended", timeout=10)
        assert app.page.evaluate("() => document.querySelector('#live-input video').srcObject") is None
        assert "Press Record" in app.text("#fer-camera-note") and app.page.locator("#live-how-to").is_visible()
        shown = app.src("#live-saliency img")
        app.page.locator("#live-input button", has_text="Record").click()
        app.wait_until(lambda: camera_tracks(app).count("live") == 1, "the camera open again", timeout=30)
        app.wait_src_change("#live-saliency img", shown, timeout=30)  # frames analysed again
        assert app.text("#fer-camera-note") == ""
    assert_healthy(app)


def test_tabs_move_with_the_arrow_keys_and_the_top_k_rows_are_not_buttons(app: AppPage) -> None:
    image = app.page.get_by_role("tab", name="Image", exact=True)
    image.focus()
    app.page.keyboard.press("ArrowRight")
    app.wait_until(lambda: app.page.get_by_role("tab", name="Live", exact=True).get_attribute("aria-selected") == "true",
                   "Live selected by the arrow key")
    app.page.keyboard.press("ArrowLeft")
    app.wait_until(lambda: image.get_attribute("aria-selected") == "true", "Image selected again")
    rows = app.page.locator("#image-top-k button.confidence-set")
    assert rows.count() == 3
    assert all(rows.nth(i).get_attribute("tabindex") == "-1" for i in range(rows.count()))
    # Panel titles are headings (a screen reader's outline of the block).
    assert app.page.locator("#image-saliency h3, #image-second-opinion h3, #image-confusion h3").count() == 3
    assert_healthy(app)


def test_a_refused_camera_points_to_the_image_tab(browser: Browser, app_server: AppServer) -> None:
    refusing = launch_chromium(browser.browser_type, None, camera_allowed=False)
    try:
        with app_page(refusing, app_server, camera=False) as app:
            try:
                app.tab("Live")
                app.page.locator("#live-input").get_by_text(re.compile("Access Webcam", re.I)).click()
                note = app.wait_text("#fer-camera-note", r"refused the camera").string
                assert "Image tab" in note
                assert app.page.locator("#fer-camera-note").is_visible()
                assert_healthy(app)
            finally:
                app.screenshot(ARTIFACTS / "test_a_refused_camera_points_to_the_image_tab.png")
    finally:
        refusing.close()


@pytest.mark.parametrize("viewport", [VIEWPORT, PHONE], ids=["laptop", "phone"])
def test_video_example_resampled_without_uploading_again(open_app: Callable[..., AppPage], viewport: ViewportSize,
                                                         tmp_path: Path) -> None:
    app = open_app(viewport)
    app.tab("Video")
    # A file that is no video: one line from the server, no "received", no "not playable" toast.
    notes = tmp_path / "holiday.mp4"
    notes.write_text("a shopping list, not a clip\n")
    app.upload("video-input", notes)
    app.wait_text("#video-status", r"⚠️ holiday.mp4: not a video")
    # The player has failed on it (so its toast would have been raised by now).
    app.wait_until(lambda: app.page.evaluate("!!(document.querySelector('#video-input video') || {}).error"),
                   "the player refused the file")
    assert "received" not in app.text("#video-status") and not app.toasts(), app.toasts()
    uploaded = len(app.uploads)
    load_video_example(app)
    # The example clip plays in the widget, inline (never a file of the server).
    app.wait_until(lambda: app.page.evaluate("(document.querySelector('#video-input video') || {}).src || ''")
                   .startswith("data:video/mp4;base64,"), "the example clip shown")
    label, clip = app.box("#video-input [data-testid=block-label]"), app.box("#video-input video")
    assert not overlap(label, clip), "the clip's label covers the clip"
    assert clip["y"] + clip["height"] <= app.box("#video-input")["y"] + app.box("#video-input")["height"] + SLACK
    frames = {}
    for fps in ("5", "2"):
        match = re.search(r"(\d+) frames sampled", analyse_video(app, fps))
        assert match, app.text("#video-status")
        frames[fps] = int(match.group(1))
        assert app.page.locator("#video-timeline svg").count() >= 1
        assert "happy" in app.text("#video-timeline") and "happy" in app.text("#video-summary")
        # The summary table fits its column: no table wider than it, nothing inside scrolled sideways.
        column = app.box("#video-summary")
        rights = app.page.locator("#video-summary table").evaluate_all("ts => ts.map((t) => t.getBoundingClientRect().right)")
        assert rights and max(rights) <= column["x"] + column["width"] + SLACK, "summary table wider than its column"
        wide = app.page.locator("#video-summary").evaluate(
            "e => Array.from(e.querySelectorAll('*')).filter((x) => x.scrollWidth > x.clientWidth + 1 &&"
            " getComputedStyle(x).overflowX !== 'visible').map((x) => x.className)")
        assert not wide, f"scrolled sideways inside the summary: {wide}"
        assert not app.broken_words("#video-summary th"), app.broken_words("#video-summary th")
        assert_no_sideways_scrolling(app)
        # Every face on the clip's one time axis, which starts at 0 and ends at 4 s.
        axes = app.page.locator("#video-timeline svg").evaluate_all(
            "ss => ss.map((s) => Array.from(s.querySelectorAll('.fer-axis')).map((t) => t.textContent).join(' '))")
        assert len(set(axes)) == 1 and "0.0 s" in axes[0] and "4.0 s" in axes[0], axes
        # The annotated copy plays in the page, inline: Chromium decodes it to its end.
        app.wait_until(lambda: app.page.evaluate(
            "(() => { const v = document.querySelector('#video-annotated video');"
            " return !!v && v.src.startsWith('data:video/webm;base64,') && v.readyState >= 2 && !v.error"
            " && v.videoWidth === 320 && Math.abs(v.duration - 4) < 0.3; })()"), "the annotated copy playable")
    assert frames["2"] < frames["5"] and len(app.uploads) == uploaded
    assert_healthy(app)


def test_api_page_opens(app: AppPage) -> None:
    app.page.get_by_text("Use via API").click()
    app.wait_text("body", r"API documentation")
    app.wait_text("body", r"API name:\s*/predict")
    assert_healthy(app, allowed=API_PAGE_PROBES)
