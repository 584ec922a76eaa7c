"""Regenerate the README screenshots with the browser tests' own code: the same ``python app.py``
subprocess, the same headless Chromium with the astronaut as a fake webcam, the same user flows
(`tests/browser_helpers.py`, `tests/browser_page.py`).

Usage:
    python scripts/screenshots.py                 # writes docs/screenshots/*.png
    python scripts/screenshots.py --out /tmp/shots
    python scripts/screenshots.py --only-image    # only the Image tab's pictures
    python scripts/screenshots.py --only-video    # only video.png

Writes, each with a result shown: ``image-SIZE.png`` (the worked example a visitor arrives on)
and ``live-SIZE.png`` (the fake webcam running), the first screen of a 1440×900 laptop
(``desktop``), a 1280×720 one (``laptop``) and a 390×844 phone (``phone``), plus
``image-phone-full.png`` (the phone down to the maps); ``image-group-SIZE.png`` (the five-face
collage with its face table, down to the table); ``video.png`` and ``evaluate.png``
(1440×900, down to the results).

Needs Debian's ``chromium`` (or ``FER_CHROMIUM=/path/to/chrome``), ``ffmpeg`` and Playwright
(requirements-dev.txt).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser_helpers import PHONE, SMALL_LAPTOP, VIEWPORT, make_eval_zip, running_app_server  # noqa: E402
from tests.browser_page import (  # noqa: E402
    AppPage,
    analyse_video,
    app_page,
    browser_prerequisites,
    click_example,
    load_video_example,
    run_evaluation,
    running_browser,
    start_webcam,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, FloatRect, ViewportSize

    from tests.browser_helpers import AppServer

#: Space kept below the last element shown, in CSS pixels.
MARGIN = 16
#: Seconds the live page runs before its picture: the smoothed label and the statistics settle.
LIVE_SETTLE_S = 3.0


def shoot(app: AppPage, path: Path, *last: str) -> Path:
    """Save the page from its top down to the lowest bottom edge of the elements ``last`` (none:
    the first screen, as the visitor sees it without scrolling).

    Raises:
        RuntimeError: the page is broken (an uncaught error, a failed request, an error toast, a
            server traceback: no screenshot for the README), or an element is not shown. Console
            warnings are printed.
    """
    problems = app.problems()
    broken = [p for p in problems if not p.startswith("console warning")]
    if broken:
        raise RuntimeError(f"{path.name}: the page is not healthy:\n" + "\n".join(broken))
    for warning in problems:
        print(f"{path.name}: {warning}", file=sys.stderr)
    app.page.evaluate("scrollTo(0, 0)")
    app.page.mouse.move(0, 0)  # no button drawn in its hover colour
    width, height = app.viewport()
    bottom = height
    if last:
        bottom = max(app.box(selector)["y"] + app.box(selector)["height"] for selector in last) + MARGIN
    # A clip of the full page, not a resized viewport: resizing would reflow the layout.
    clip: FloatRect = {"x": 0, "y": 0, "width": width, "height": bottom}
    path.parent.mkdir(parents=True, exist_ok=True)
    app.page.screenshot(path=str(path), full_page=True, clip=clip)
    print(f"wrote {path}")
    return path


#: The sizes shot: name in the file → viewport.
SIZES: dict[str, ViewportSize] = {"desktop": VIEWPORT, "laptop": SMALL_LAPTOP, "phone": PHONE}


def shoot_image(browser: Browser, server: AppServer, out: Path) -> None:
    """Image: the worked example a visitor arrives on (no click), on a laptop, a small laptop and a
    phone, the phone also from the picture down to the maps; then the five-face collage down to
    its face table."""
    for size, viewport in SIZES.items():
        with app_page(browser, server, viewport) as app:
            shoot(app, out / f"image-{size}.png")
            if size == "phone":
                shoot(app, out / "image-phone-full.png", "#image-gradcam")
            click_example(app, 1)
            shoot(app, out / f"image-group-{size}.png", "#image-faces")


def shoot_result_blocks(browser: Browser, server: AppServer, out: Path) -> None:
    """The Image tab (`shoot_image`) and Live (webcam running), on a laptop, a small laptop and a
    phone."""
    shoot_image(browser, server, out)
    for size, viewport in SIZES.items():
        with app_page(browser, server, viewport) as app:
            start_webcam(app)
            app.wait_text("#live-top-k [data-testid=label-output-value]", r"^happy$")
            app.page.wait_for_timeout(LIVE_SETTLE_S * 1000)
            shoot(app, out / f"live-{size}.png")


def shoot_video(browser: Browser, server: AppServer, out: Path) -> None:
    """Video: the example clip analysed at 5 frames/s, down to the annotated copy (its first frame
    shown: the player waits until it can draw one)."""
    with app_page(browser, server) as app:
        load_video_example(app)
        analyse_video(app, "5")
        app.wait_until(lambda: app.page.evaluate(
            "(document.querySelector('#video-annotated video') || {}).readyState >= 2"), "the annotated copy drawn")
        shoot(app, out / "video.png", "#video-summary", "#video-timeline", "#video-annotated")


def main(argv: list[str] | None = None) -> int:
    """Start the app and a browser, walk through Live, Image, Video and Evaluate, save PNGs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots", help="folder for the PNGs")
    parser.add_argument("--only-results", action="store_true", help="only the Image and Live result blocks")
    parser.add_argument("--only-image", action="store_true", help="only the Image tab's pictures")
    parser.add_argument("--only-video", action="store_true", help="only the Video tab's picture")
    args = parser.parse_args(argv)
    reason = browser_prerequisites()
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="fer-screenshots-") as tmp:
        work = Path(tmp)
        with running_app_server(work / "server") as server, running_browser(work) as browser:
            if args.only_image:
                shoot_image(browser, server, args.out)
                return 0
            if args.only_video:
                shoot_video(browser, server, args.out)
                return 0
            shoot_result_blocks(browser, server, args.out)
            if args.only_results:
                return 0
            shoot_video(browser, server, args.out)
            with app_page(browser, server) as app:
                run_evaluation(app, make_eval_zip(work / "faces.zip"))
                shoot(app, args.out / "evaluate.png", "#evaluate-table", "#evaluate-plot")
    return 0


if __name__ == "__main__":
    sys.exit(main())
